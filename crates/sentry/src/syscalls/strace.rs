//! `veil --strace`: one line per application syscall, with decoded
//! arguments and result, in the style of strace and runsc's strace mode.

use std::fmt::Write;

use veil_abi::{Errno, SysResult};

use super::{Args, Entry};
use crate::task::Task;

/// How to print one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Int,
    UInt,
    Hex,
    Oct,
    Fd,
    /// A directory FD of an *at() call: AT_FDCWD by name.
    DirFd,
    /// A NUL-terminated path read from application memory.
    Path,
    /// Bytes the application passes in; the length is argument N.
    InBuf(u8),
    /// Bytes the kernel fills in; the length is the return value.
    OutBuf,
    OpenFlags,
    /// The mode of open(2): shown only when the flags (argument N) create.
    OpenMode(u8),
    Prot,
    MapFlags,
    Signal,
}

/// How to print the return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Int,
    Hex,
}

const MAX_SHOWN: usize = 32;
const O_CREAT: u32 = 0o100;
const O_TMPFILE: u32 = 0o20000000;

enum Part {
    Done(String),
    Out(u64),
}

/// A syscall line in the making: arguments are decoded on entry, output
/// buffers on exit.
pub struct Trace {
    tid: i32,
    name: String,
    parts: Vec<Part>,
    ret: Ret,
}

impl Trace {
    pub fn enter(t: &Task, nr: u64, entry: Option<&Entry>, args: &Args) -> Trace {
        let (name, formats, ret) = match entry {
            Some(e) => (e.sysno.name().to_string(), e.args, e.ret),
            None => (
                veil_abi::Sysno::new(nr as usize)
                    .map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_string()),
                &[][..],
                Ret::Int,
            ),
        };
        let parts = formats
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Arg::OutBuf => Some(Part::Out(args.u64(i))),
                Arg::OpenMode(flags)
                    if args.u32(usize::from(*flags)) & (O_CREAT | O_TMPFILE) == 0 =>
                {
                    None
                }
                _ => Some(Part::Done(format_arg(t, *f, args.u64(i), args))),
            })
            .collect();
        let trace = Trace {
            tid: t.tid,
            name,
            parts,
            ret,
        };
        // Calls that do not return print their line now.
        if matches!(
            trace.name.as_str(),
            "exit" | "exit_group" | "execve" | "execveat"
        ) {
            eprintln!("{} ...", trace.line(t, None));
        }
        trace
    }

    pub fn exit(self, t: &Task, result: &SysResult) {
        if matches!(self.name.as_str(), "exit" | "exit_group") {
            return;
        }
        // Handlers that set every register (execve) report through rax.
        let result = &match result {
            Err(Errno::EJUSTRETURN) => Ok(t.regs.rax),
            r => *r,
        };
        let ret = match result {
            Ok(v) => match self.ret {
                Ret::Int => format!("{}", *v as i64),
                Ret::Hex => format!("{v:#x}"),
            },
            Err(e) => format!("-1 {e} ({})", describe(*e)),
        };
        let ok_len = result.as_ref().ok().map(|&v| v as usize);
        eprintln!("{} = {ret}", self.line(t, ok_len));
    }

    fn line(&self, t: &Task, out_len: Option<usize>) -> String {
        let mut s = format!("[{:4}] {}(", self.tid, self.name);
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            match p {
                Part::Done(v) => s.push_str(v),
                Part::Out(addr) => match out_len {
                    Some(n) => s.push_str(&buffer(t, *addr, n)),
                    None => {
                        let _ = write!(s, "{addr:#x}");
                    }
                },
            }
        }
        s.push(')');
        s
    }
}

fn format_arg(t: &Task, f: Arg, v: u64, args: &Args) -> String {
    match f {
        Arg::Int => format!("{}", v as i64),
        Arg::UInt => format!("{v}"),
        Arg::Hex => format!("{v:#x}"),
        Arg::Oct => format!("{v:#o}"),
        Arg::Fd => format!("{}", v as i32),
        Arg::DirFd if v as i32 == -100 => "AT_FDCWD".to_string(),
        Arg::DirFd => format!("{}", v as i32),
        Arg::Path => match t.mm.read_cstr(v, 4096) {
            Ok(p) => quote(&p, usize::MAX),
            Err(_) => format!("{v:#x}"),
        },
        Arg::InBuf(len_arg) => buffer(t, v, args.usize(usize::from(len_arg))),
        Arg::OutBuf => format!("{v:#x}"),
        Arg::OpenFlags => open_flags(v as u32),
        Arg::OpenMode(_) => format!("{v:#o}"),
        Arg::Prot => flags(
            v,
            &[(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")],
            "PROT_NONE",
        ),
        Arg::MapFlags => flags(
            v,
            &[
                (0x01, "MAP_SHARED"),
                (0x02, "MAP_PRIVATE"),
                (0x10, "MAP_FIXED"),
                (0x20, "MAP_ANONYMOUS"),
                (0x100, "MAP_GROWSDOWN"),
                (0x800, "MAP_DENYWRITE"),
                (0x2000, "MAP_LOCKED"),
                (0x4000, "MAP_NORESERVE"),
                (0x8000, "MAP_POPULATE"),
                (0x10_0000, "MAP_FIXED_NOREPLACE"),
            ],
            "0",
        ),
        Arg::Signal => signal_name(v as i32),
    }
}

fn buffer(t: &Task, addr: u64, len: usize) -> String {
    let shown = len.min(MAX_SHOWN);
    let mut buf = vec![0u8; shown];
    match t.mm.copy_in(addr, &mut buf) {
        Ok(()) => {
            let mut s = quote(&buf, shown);
            if len > shown {
                s.push_str("...");
            }
            s
        }
        Err(_) => format!("{addr:#x}"),
    }
}

fn quote(bytes: &[u8], max: usize) -> String {
    let mut s = String::from("\"");
    for &b in bytes.iter().take(max) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:o}");
            }
        }
    }
    s.push('"');
    s
}

fn flags(v: u64, names: &[(u64, &str)], zero: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = v;
    for &(bit, name) in names {
        if v & bit == bit && bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        zero.to_string()
    } else {
        parts.join("|")
    }
}

fn open_flags(v: u32) -> String {
    let mode = match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = flags(
        u64::from(v & !3),
        &[
            (0o100, "O_CREAT"),
            (0o200, "O_EXCL"),
            (0o400, "O_NOCTTY"),
            (0o1000, "O_TRUNC"),
            (0o2000, "O_APPEND"),
            (0o4000, "O_NONBLOCK"),
            (0o10000, "O_DSYNC"),
            (0o40000, "O_DIRECT"),
            (0o200000, "O_DIRECTORY"),
            (0o400000, "O_NOFOLLOW"),
            (0o1000000, "O_NOATIME"),
            (0o2000000, "O_CLOEXEC"),
            (0o10000000, "O_PATH"),
            (0o20000000 | 0o200000, "O_TMPFILE"),
            (0o100000, "O_LARGEFILE"),
        ],
        "",
    );
    if rest.is_empty() {
        mode.to_string()
    } else {
        format!("{mode}|{rest}")
    }
}

pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig) {
        Ok(i) if i < NAMES.len() => NAMES[i].to_string(),
        Ok(i) if i <= 64 => format!("SIGRT_{}", i - 32),
        _ => format!("{sig}"),
    }
}

fn describe(e: Errno) -> &'static str {
    match e {
        Errno::ENOENT => "No such file or directory",
        Errno::EBADF => "Bad file descriptor",
        Errno::EFAULT => "Bad address",
        Errno::EINVAL => "Invalid argument",
        Errno::ENOSYS => "Function not implemented",
        Errno::EACCES => "Permission denied",
        Errno::EPERM => "Operation not permitted",
        Errno::ENOTTY => "Inappropriate ioctl for device",
        Errno::EEXIST => "File exists",
        Errno::ENOTDIR => "Not a directory",
        Errno::EISDIR => "Is a directory",
        Errno::EAGAIN => "Resource temporarily unavailable",
        Errno::ENOMEM => "Cannot allocate memory",
        Errno::ESPIPE => "Illegal seek",
        Errno::ERANGE => "Numerical result out of range",
        Errno::EROFS => "Read-only file system",
        Errno::ELOOP => "Too many levels of symbolic links",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_flags() {
        assert_eq!(open_flags(0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(
            flags(3, &[(1, "PROT_READ"), (2, "PROT_WRITE")], "PROT_NONE"),
            "PROT_READ|PROT_WRITE"
        );
        assert_eq!(flags(0, &[(1, "PROT_READ")], "PROT_NONE"), "PROT_NONE");
        assert_eq!(quote(b"a\n\x7f", 10), "\"a\\n\\177\"");
        assert_eq!(signal_name(11), "SIGSEGV");
    }
}
