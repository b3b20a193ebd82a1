//! Host signals to the sandbox, as runsc forwards them: veil's own
//! processes run in sessions of their own, so a terminal's ^C or a
//! `kill` of `veil` reaches only the CLI, which passes it to the sentry,
//! which delivers it to the sandbox's init.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

/// The signals forwarded: those a process can catch, except the ones that
/// mean something to veil itself. SIGTSTP, SIGTTIN and SIGTTOU stop the
/// CLI (a shell's ^Z gets its prompt back), SIGCHLD and SIGWINCH are the
/// CLI's own, SIGPIPE is the sentry's own writes to a closed pipe, SIGURG
/// is out-of-band data, and the synchronous faults (SIGSEGV, SIGBUS,
/// SIGFPE, SIGILL, SIGTRAP, SIGSYS) are veil's crashes. glibc keeps the
/// first two real-time signals (32 and 33) for itself; 34 to 64 go on.
fn forwarded() -> impl Iterator<Item = libc::c_int> {
    const OWN: [libc::c_int; 15] = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGCHLD,
        libc::SIGWINCH,
        libc::SIGPIPE,
        libc::SIGURG,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    (1..32).filter(|s| !OWN.contains(s)).chain(34..=64)
}

fn forwarded_set() -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the plain-data set it is given.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: initialized just above.
    let mut set = unsafe { set.assume_init() };
    for s in forwarded() {
        // SAFETY: changes the set in place; `s` is a signal that exists.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// The sentry's side: blocks the forwarded signals in the calling thread,
/// and so in every thread it starts afterwards, and returns a signalfd that
/// receives them.
pub fn block_into_signalfd() -> anyhow::Result<OwnedFd> {
    let set = forwarded_set();
    // SAFETY: reads the sigset; changes only this thread's mask.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    anyhow::ensure!(
        r == 0,
        "blocking forwarded signals: {}",
        std::io::Error::from_raw_os_error(r)
    );
    // SAFETY: signalfd reads the sigset and returns a new descriptor, which
    // nothing else owns.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    anyhow::ensure!(fd >= 0, "signalfd: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The sentry a forwarded signal goes to (0: none yet).
static SENTRY: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signo: libc::c_int) {
    let pid = SENTRY.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and touches no memory.
        unsafe { libc::kill(pid, signo) };
    }
}

/// The CLI's side: from now on, the forwarded signals go to `sentry`.
pub fn forward_to(sentry: i32) -> anyhow::Result<()> {
    SENTRY.store(sentry, Ordering::Relaxed);
    // SAFETY: sigaction is plain data, for which zeroes are an empty mask
    // and no flags.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    for s in forwarded() {
        // SAFETY: `forward` only makes an async-signal-safe call, and
        // `action` outlives the call.
        let r = unsafe { libc::sigaction(s, &action, std::ptr::null_mut()) };
        anyhow::ensure!(
            r == 0,
            "handling signal {s}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
