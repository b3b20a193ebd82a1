//! Host confinement of veil's own processes: the second security boundary.
//!
//! The sentry is the first boundary between untrusted code and the host.
//! This crate makes a compromised sentry (or gofer) nearly powerless on the
//! host: each starts in fresh namespaces (`spawn`), lives in a root that
//! holds nothing it does not need (`root`), keeps no capability it does not
//! need (`privs`), and may make only the host system calls on its allowlist
//! (`seccomp`, with the lists in `policy`).

pub mod policy;
pub mod privs;
pub mod root;
pub mod seccomp;
pub mod spawn;

/// A confinement step that failed; the process must not go on unconfined.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {errno}")]
    Host {
        what: &'static str,
        errno: rustix::io::Errno,
    },
    #[error("{what}: {path}: {errno}")]
    Path {
        what: &'static str,
        path: String,
        errno: rustix::io::Errno,
    },
    #[error("building the seccomp filter: {0}")]
    Filter(#[from] seccompiler::BackendError),
    #[error("installing the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Builds an `Error::Host` mapper for `map_err`.
pub(crate) fn host(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |errno| Error::Host { what, errno }
}

/// `Error::Host` for the errno a raw libc call just left.
pub(crate) fn last_errno(what: &'static str) -> Error {
    Error::Host {
        what,
        errno: rustix::io::Errno::from_raw_os_error(nix::errno::Errno::last_raw()),
    }
}

/// `Error::Path` for a failed std I/O call on `path`.
pub(crate) fn path_error(what: &'static str, path: &str, e: &std::io::Error) -> Error {
    Error::Path {
        what,
        path: path.into(),
        errno: rustix::io::Errno::from_io_error(e).unwrap_or(rustix::io::Errno::IO),
    }
}
