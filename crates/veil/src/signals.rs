//! Host signals to the sandbox, as runsc forwards them: veil's own
//! processes run in sessions of their own, so a terminal's ^C or a
//! `kill` of `veil` reaches only the CLI, which passes it to the sentry,
//! which delivers it to the sandbox's init.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context as _;
use nix::libc;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The signals forwarded; the others keep their default effect on veil
/// (SIGTSTP stops the CLI, SIGKILL ends it and, with it, the sandbox).
const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
];

fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set
}

/// The sentry's side: blocks the forwarded signals in the calling thread,
/// and so in every thread it starts afterwards, and returns a signalfd that
/// receives them.
pub fn block_into_signalfd() -> anyhow::Result<OwnedFd> {
    let set = forwarded_set();
    set.thread_block().context("blocking forwarded signals")?;
    // SAFETY: signalfd reads the sigset and returns a new descriptor, which
    // nothing else owns.
    let fd = unsafe { libc::signalfd(-1, set.as_ref(), libc::SFD_CLOEXEC) };
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
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in FORWARDED {
        // SAFETY: `forward` only makes an async-signal-safe call.
        unsafe { sigaction(s, &action) }.with_context(|| format!("handling {s}"))?;
    }
    Ok(())
}
