//! `veil do`: start a gofer for the host root and a sentry running the
//! command, then report the command's exit status as a shell would.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use rustix::io::FdFlags;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

/// Where the sandbox's changes to its root go (`--overlay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    Memory,
    /// In an unlinked file in this directory.
    File(PathBuf),
    /// Through to the host.
    None,
}

impl Overlay {
    pub fn parse(s: &str) -> Result<Overlay, String> {
        match s.split_once(':') {
            None if s == "memory" => Ok(Overlay::Memory),
            None if s == "none" => Ok(Overlay::None),
            None if s == "file" => Ok(Overlay::File(std::env::temp_dir())),
            Some(("file", dir)) if !dir.is_empty() => Ok(Overlay::File(dir.into())),
            _ => Err("expected memory, file[:DIR] or none".into()),
        }
    }
}

/// Runs `command` in a sandbox over the host directory `root` and returns
/// the exit code to report.
pub fn run(
    command: &[OsString],
    root: &Path,
    overlay: &Overlay,
    strace: bool,
    debug_log: Option<&Path>,
) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("locating the veil binary")?;
    let (sentry_end, gofer_end) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("creating the gofer socket")?;

    let mut gofer = spawn_with_fds(&exe, &[&gofer_end], debug_log, |cmd, fds| {
        cmd.arg("gofer")
            .arg("--root")
            .arg(root)
            .args(["--sock-fd", &fds[0].to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if *overlay == Overlay::None {
            cmd.arg("--writable");
        }
    })
    .context("starting the gofer")?;
    drop(gofer_end);

    // The cwd is the host's only for the host's root.
    let cwd = match root == Path::new("/") {
        true => std::env::current_dir().unwrap_or_else(|_| "/".into()),
        false => "/".into(),
    };
    // The file lives only as long as some process holds it open.
    let upper = match overlay {
        Overlay::File(dir) => Some(OwnedFd::from(
            tempfile::tempfile_in(dir)
                .with_context(|| format!("creating the overlay file in {}", dir.display()))?,
        )),
        _ => None,
    };
    let mut fds = vec![&sentry_end];
    fds.extend(upper.as_ref());
    let mut sentry = spawn_with_fds(&exe, &fds, debug_log, |cmd, fds| {
        cmd.arg("boot")
            .arg("--gofer-fd")
            .arg(fds[0].to_string())
            .arg("--cwd")
            .arg(&cwd);
        match overlay {
            Overlay::File(_) => {
                cmd.arg("--overlay-fd").arg(fds[1].to_string());
            }
            Overlay::None => {
                cmd.arg("--no-overlay");
            }
            Overlay::Memory => {}
        }
        if strace {
            cmd.arg("--strace");
        }
        cmd.arg("--").args(command);
    })
    .context("starting the sentry")?;
    drop(sentry_end);
    drop(upper);

    let status = sentry.wait().context("waiting for the sentry")?;
    // The gofer exits when the sentry's end of the socket closes.
    let _ = gofer.wait();
    if let Some(sig) = status.signal() {
        eprintln!("veil: the sentry crashed (killed by signal {sig})");
        return Ok(128u8.wrapping_add(sig as u8));
    }
    Ok(status.code().unwrap_or(1) as u8)
}

/// Spawns `exe` with `fds` inherited (their close-on-exec flags cleared for
/// the duration of the spawn) and passed by number.
fn spawn_with_fds(
    exe: &Path,
    fds: &[&OwnedFd],
    debug_log: Option<&Path>,
    configure: impl FnOnce(&mut Command, &[i32]),
) -> anyhow::Result<std::process::Child> {
    let mut cmd = Command::new(exe);
    if let Some(dir) = debug_log {
        cmd.arg("--debug-log").arg(dir);
    }
    let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    configure(&mut cmd, &raw);
    for fd in fds {
        rustix::io::fcntl_setfd(fd.as_fd(), FdFlags::empty())?;
    }
    let child = cmd.spawn();
    for fd in fds {
        rustix::io::fcntl_setfd(fd.as_fd(), FdFlags::CLOEXEC)?;
    }
    Ok(child?)
}
