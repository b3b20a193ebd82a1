//! Application-visible error numbers.

use core::fmt;
use linux_raw_sys::errno;

/// A Linux error number, as returned (negated) from a system call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

/// The result of a system call handler: a return value or an error number.
pub type SysResult = Result<u64, Errno>;

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[allow(missing_docs)]
                pub const $name: Errno = Errno(errno::$name as i32);
            )*

            /// The symbolic name of this error, such as `"ENOENT"`.
            pub fn name(self) -> Option<&'static str> {
                $(if self.0 == errno::$name as i32 { return Some(stringify!($name)); })*
                match self.0 {
                    512 => Some("ERESTARTSYS"),
                    513 => Some("ERESTARTNOINTR"),
                    514 => Some("ERESTARTNOHAND"),
                    516 => Some("ERESTART_RESTARTBLOCK"),
                    _ => None,
                }
            }
        }
    };
}
errnos!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    ENOTBLK,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    ETXTBSY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    EDOM,
    ERANGE,
    EDEADLK,
    ENAMETOOLONG,
    ENOLCK,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENOMSG,
    EIDRM,
    ECHRNG,
    EL2NSYNC,
    EL3HLT,
    EL3RST,
    ELNRNG,
    EUNATCH,
    ENOCSI,
    EL2HLT,
    EBADE,
    EBADR,
    EXFULL,
    ENOANO,
    EBADRQC,
    EBADSLT,
    EBFONT,
    ENOSTR,
    ENODATA,
    ETIME,
    ENOSR,
    ENONET,
    ENOPKG,
    EREMOTE,
    ENOLINK,
    EADV,
    ESRMNT,
    ECOMM,
    EPROTO,
    EMULTIHOP,
    EDOTDOT,
    EBADMSG,
    EOVERFLOW,
    ENOTUNIQ,
    EBADFD,
    EREMCHG,
    ELIBACC,
    ELIBBAD,
    ELIBSCN,
    ELIBMAX,
    ELIBEXEC,
    EILSEQ,
    ERESTART,
    ESTRPIPE,
    EUSERS,
    ENOTSOCK,
    EDESTADDRREQ,
    EMSGSIZE,
    EPROTOTYPE,
    ENOPROTOOPT,
    EPROTONOSUPPORT,
    ESOCKTNOSUPPORT,
    EOPNOTSUPP,
    EPFNOSUPPORT,
    EAFNOSUPPORT,
    EADDRINUSE,
    EADDRNOTAVAIL,
    ENETDOWN,
    ENETUNREACH,
    ENETRESET,
    ECONNABORTED,
    ECONNRESET,
    ENOBUFS,
    EISCONN,
    ENOTCONN,
    ESHUTDOWN,
    ETOOMANYREFS,
    ETIMEDOUT,
    ECONNREFUSED,
    EHOSTDOWN,
    EHOSTUNREACH,
    EALREADY,
    EINPROGRESS,
    ESTALE,
    EUCLEAN,
    ENOTNAM,
    ENAVAIL,
    EISNAM,
    EREMOTEIO,
    EDQUOT,
    ENOMEDIUM,
    EMEDIUMTYPE,
    ECANCELED,
    ENOKEY,
    EKEYEXPIRED,
    EKEYREVOKED,
    EKEYREJECTED,
    EOWNERDEAD,
    ENOTRECOVERABLE,
    ERFKILL,
    EHWPOISON,
);

impl Errno {
    /// Restart the system call if the interrupting signal's handler has SA_RESTART.
    pub const ERESTARTSYS: Errno = Errno(512);
    /// Always restart the system call after a signal.
    pub const ERESTARTNOINTR: Errno = Errno(513);
    /// Restart only if no handler ran.
    pub const ERESTARTNOHAND: Errno = Errno(514);
    /// Restart through restart_syscall.
    pub const ERESTART_RESTARTBLOCK: Errno = Errno(516);
    /// Sentry-internal: the handler already set every register; leave them alone.
    /// Never reaches the application.
    pub const EJUSTRETURN: Errno = Errno(4096);

    /// Builds an errno from its positive number.
    pub const fn new(n: i32) -> Errno {
        Errno(n)
    }

    /// The positive error number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The value a system call returns for this error (`-errno`).
    pub const fn as_return(self) -> u64 {
        (-(self.0 as i64)) as u64
    }

    /// Decodes a raw syscall return value into a result.
    pub fn from_return(ret: u64) -> SysResult {
        let v = ret as i64;
        if (-4095..0).contains(&v) {
            Err(Errno(-v as i32))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(errno::EIO as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_returns() {
        assert_eq!(Errno::ENOENT.name(), Some("ENOENT"));
        assert_eq!(Errno::EFAULT.as_return(), (-14i64) as u64);
        assert_eq!(Errno::from_return((-2i64) as u64), Err(Errno::ENOENT));
        assert_eq!(Errno::from_return(7), Ok(7));
        assert_eq!(Errno::from_return((-5000i64) as u64), Ok((-5000i64) as u64));
    }
}
