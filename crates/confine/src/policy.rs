//! The allowlists of the sentry and the gofer.
//!
//! Each entry is there because a code path needs it, found by running the
//! whole test suite with the filters in `Mode::Log`. Neither process may
//! open a host path, create a socket (but the gofer's Unix sockets for
//! Connect), map memory executable, or start anything but a thread.

use linux_raw_sys::general::{
    AT_EMPTY_PATH, CLONE_CHILD_CLEARTID, CLONE_FILES, CLONE_FS, CLONE_PARENT_SETTID, CLONE_SETTLS,
    CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD, CLONE_VM, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL,
    F_SETFD, F_SETFL, PROT_EXEC,
};
use linux_raw_sys::ioctl::{FIONREAD, TCGETS, TCSETS, TCSETSF, TCSETSW, TIOCGWINSZ, TIOCSWINSZ};
use syscalls::Sysno;

use crate::seccomp::{Allowed, Cond, Policy};

/// The flags glibc's pthread_create passes to clone: a thread, never a
/// process.
const THREAD_CLONE: u64 = (CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID) as u64;

const NO_EXEC: Cond = Cond::clear(2, PROT_EXEC as u64);

/// One of `values` in argument `arg`.
fn one_of(sysno: Sysno, arg: u8, values: &[u64]) -> Allowed {
    let mut a = Allowed {
        sysno,
        rules: Vec::new(),
    };
    for &v in values {
        a = a.or(&[Cond::eq(arg, v)]);
    }
    a
}

/// Calls every Rust thread of ours makes: memory, signals, futexes, time,
/// and I/O on descriptors it already holds.
fn common() -> Vec<Allowed> {
    use Sysno::*;
    let mut v: Vec<Allowed> = [
        read,
        write,
        close,
        fstat,
        munmap,
        madvise,
        brk,
        mremap,
        futex,
        rt_sigreturn,
        rt_sigprocmask,
        sigaltstack,
        getrandom,
        sched_yield,
        clock_gettime,
        clock_nanosleep,
        gettid,
        exit,
        exit_group,
        // The host's restart of a sleep a signal interrupted.
        restart_syscall,
        set_robust_list,
        rseq,
        recvmsg,
        sendmsg,
        // Only std's and glibc's own handlers.
        rt_sigaction,
    ]
    .into_iter()
    .map(Allowed::any)
    .collect();
    v.extend([
        Allowed::when(mmap, &[NO_EXEC]),
        Allowed::when(mprotect, &[NO_EXEC]),
        Allowed::when(clone, &[Cond::eq64(0, THREAD_CLONE)]),
        // glibc sizes malloc arenas and pthread stacks by the CPUs a thread
        // may use (of its own PID namespace).
        Allowed::any(sched_getaffinity),
        Allowed::when(newfstatat, &[Cond::set(3, u64::from(AT_EMPTY_PATH))]),
        Allowed::when(statx, &[Cond::set(2, u64::from(AT_EMPTY_PATH))]),
        // Commands on descriptors already held.
        one_of(
            fcntl,
            1,
            &[F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC].map(u64::from),
        ),
        // seccompiler sets no_new_privs before each filter it stacks;
        // threads are named.
        one_of(
            prctl,
            0,
            &[
                u64::from(linux_raw_sys::prctl::PR_SET_NO_NEW_PRIVS),
                u64::from(linux_raw_sys::prctl::PR_SET_NAME),
            ],
        ),
        // Stacking filters: only ever stricter.
        Allowed::when(
            seccomp,
            &[Cond::eq(0, nix::libc::SECCOMP_SET_MODE_FILTER as u64)],
        ),
    ]);
    v
}

/// The sentry: the platform's ptrace calls, the memory file, donated host
/// FDs (files from the gofer, stdio) and the gofer sockets.
pub fn sentry() -> Policy {
    use Sysno::*;
    let mut allowed = common();
    allowed.extend(
        [
            pread64, pwrite64, lseek, ftruncate, fallocate, fsync, fdatasync, poll, wait4, sysinfo,
            dup,
        ]
        .into_iter()
        .map(Allowed::any),
    );
    allowed.extend([
        one_of(
            ptrace,
            0,
            &[
                nix::libc::PTRACE_CONT as u64,
                nix::libc::PTRACE_SYSEMU as u64,
                nix::libc::PTRACE_GETREGS as u64,
                nix::libc::PTRACE_SETREGS as u64,
                nix::libc::PTRACE_GETFPREGS as u64,
                nix::libc::PTRACE_SETFPREGS as u64,
                nix::libc::PTRACE_GETREGSET as u64,
                nix::libc::PTRACE_SETREGSET as u64,
                nix::libc::PTRACE_GETSIGINFO as u64,
                nix::libc::PTRACE_SEIZE as u64,
                nix::libc::PTRACE_INTERRUPT as u64,
                nix::libc::PTRACE_SETOPTIONS as u64,
            ],
        ),
        // Host terminals the sandbox's stdio is on.
        one_of(
            ioctl,
            1,
            &[
                u64::from(TCGETS),
                u64::from(TCSETS),
                u64::from(TCSETSW),
                u64::from(TCSETSF),
                u64::from(TIOCGWINSZ),
                u64::from(TIOCSWINSZ),
                u64::from(FIONREAD),
            ],
        ),
        // Interrupting stub threads (SIGCHLD), and abort(3) of our own.
        one_of(
            tgkill,
            2,
            &[nix::libc::SIGCHLD as u64, nix::libc::SIGABRT as u64],
        ),
        // Killing a stub process.
        Allowed::when(kill, &[Cond::eq(1, nix::libc::SIGKILL as u64)]),
        // Reading limits only: they are raised before the filter.
        Allowed::when(prlimit64, &[Cond::eq(0, 0), Cond::eq64(2, 0)]),
        // Connections to the control socket of `veil create`, the only
        // listening socket the sentry holds.
        Allowed::when(accept4, &[Cond::eq(3, nix::libc::SOCK_CLOEXEC as u64)]),
    ]);
    Policy {
        process: "sentry",
        allowed,
        enosys: vec![Sysno::clone3],
    }
}

/// The gofer: file operations relative to directory FDs it holds, never
/// following symlinks, and Unix sockets for connecting to the sockets in
/// its trees.
pub fn gofer() -> Policy {
    use Sysno::*;
    let mut allowed = common();
    allowed.extend(
        [
            pread64,
            pwrite64,
            lseek,
            openat,
            openat2,
            mkdirat,
            mknodat,
            symlinkat,
            linkat,
            unlinkat,
            renameat2,
            readlinkat,
            getdents64,
            fstatfs,
            fsync,
            fdatasync,
            ftruncate,
            fallocate,
            fchmod,
            fchmodat,
            fchownat,
            fchown,
            utimensat,
            fgetxattr,
            fsetxattr,
            flistxattr,
            fremovexattr,
            connect,
        ]
        .into_iter()
        .map(Allowed::any),
    );
    allowed.push(Allowed::when(
        socket,
        &[Cond::eq(0, nix::libc::AF_UNIX as u64)],
    ));
    Policy {
        process: "gofer",
        allowed,
        enosys: vec![Sysno::clone3],
    }
}
