//! Signal syscalls. Dispositions, masks and alternate stacks are kept;
//! delivery to handlers arrives with the process and signal work, so until
//! then a signal sent to the sandbox takes its default action or is ignored.

use veil_abi::{Errno, KernelSigaction, StackT, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::{Task, NSIG};

const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SIGKILL: i32 = 9;
const SIGSTOP: i32 = 19;
const SIG_BLOCK: i32 = 0;
const SIG_UNBLOCK: i32 = 1;
const SIG_SETMASK: i32 = 2;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const SS_AUTODISARM: i32 = 1 << 31;
const MINSIGSTKSZ: u64 = 2048;
/// Signals that can never be blocked.
const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::rt_sigaction, rt_sigaction, &[Signal, Hex, Hex, UInt]);
    t.full(
        Sysno::rt_sigprocmask,
        rt_sigprocmask,
        &[Int, Hex, Hex, UInt],
    );
    t.full(Sysno::sigaltstack, sigaltstack, &[Hex, Hex]);
    t.partial(
        Sysno::kill,
        kill,
        &[Int, Signal],
        "signals to the caller take their default action or are ignored; handlers do not run yet",
    );
    t.partial(Sysno::tgkill, tgkill, &[Int, Int, Signal], "as kill");
    t.partial(Sysno::tkill, tkill, &[Int, Signal], "as kill");
    t.partial(
        Sysno::rt_sigpending,
        rt_sigpending,
        &[Hex, UInt],
        "no signal is ever left pending yet",
    );
    t.unimplemented(
        Sysno::rt_sigreturn,
        Errno::ENOSYS,
        &[],
        "no handler frame exists to return from until signal delivery",
    );
}

fn check_signal(sig: i32) -> Result<usize, Errno> {
    match usize::try_from(sig) {
        Ok(s) if (1..=NSIG).contains(&s) => Ok(s),
        _ => Err(Errno::EINVAL),
    }
}

fn rt_sigaction(t: &mut Task, a: &Args) -> SysResult {
    let sig = check_signal(a.i32(0))?;
    if a.u64(3) != 8 {
        return Err(Errno::EINVAL);
    }
    let new: Option<KernelSigaction> = match a.u64(1) {
        0 => None,
        addr => Some(t.mm.read_obj(addr)?),
    };
    if new.is_some() && matches!(sig as i32, SIGKILL | SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let old = {
        let mut actions = t.tg.sigactions.lock().unwrap_or_else(|p| p.into_inner());
        let old = actions[sig - 1];
        if let Some(mut new) = new {
            new.mask &= !UNBLOCKABLE;
            actions[sig - 1] = new;
        }
        old
    };
    if a.u64(2) != 0 {
        t.mm.write_obj(a.u64(2), &old)?;
    }
    Ok(0)
}

fn rt_sigprocmask(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(3) != 8 {
        return Err(Errno::EINVAL);
    }
    let old = t.signal_mask;
    if a.u64(1) != 0 {
        let set: u64 = t.mm.read_obj(a.u64(1))?;
        t.signal_mask = match a.i32(0) {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        } & !UNBLOCKABLE;
    }
    if a.u64(2) != 0 {
        t.mm.write_obj(a.u64(2), &old)?;
    }
    Ok(0)
}

fn sigaltstack(t: &mut Task, a: &Args) -> SysResult {
    let old = t.altstack;
    if a.u64(0) != 0 {
        let new: StackT = t.mm.read_obj(a.u64(0))?;
        if new.ss_flags & !(SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(Errno::EINVAL);
        }
        t.altstack = if new.ss_flags & SS_DISABLE != 0 {
            StackT {
                ss_flags: SS_DISABLE,
                ..StackT::default()
            }
        } else if new.ss_size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        } else {
            new
        };
    }
    if a.u64(1) != 0 {
        let sp = t.regs.rsp;
        let on_stack =
            old.ss_flags & SS_DISABLE == 0 && sp > old.ss_sp && sp - old.ss_sp <= old.ss_size;
        let reported = StackT {
            ss_flags: if on_stack { SS_ONSTACK } else { old.ss_flags },
            ..old
        };
        t.mm.write_obj(a.u64(1), &reported)?;
    }
    Ok(0)
}

/// Sends `sig` to the calling task: its default action, or nothing if ignored.
pub(super) fn send_self(t: &mut Task, sig: i32) -> SysResult {
    signal_self(t, sig)
}

fn signal_self(t: &mut Task, sig: i32) -> SysResult {
    if sig == 0 {
        return Ok(0);
    }
    let s = check_signal(sig)?;
    let action = t.tg.sigactions.lock().unwrap_or_else(|p| p.into_inner())[s - 1];
    // SIGCHLD, SIGCONT, SIGURG and SIGWINCH are ignored by default.
    let default_ignored = matches!(sig, 17 | 18 | 23 | 28);
    // Stop signals need job control, which arrives with processes.
    let default_stop = matches!(sig, 19..=22);
    let blocked = t.signal_mask & (1 << (s - 1)) != 0 && !matches!(sig, SIGKILL | SIGSTOP);
    match action.handler {
        _ if blocked => {
            t.kernel
                .log_once("blocked signals are dropped until signal delivery arrives");
            Ok(0)
        }
        SIG_IGN if !matches!(sig, SIGKILL | SIGSTOP) => Ok(0),
        SIG_DFL | SIG_IGN if default_ignored || default_stop => Ok(0),
        SIG_DFL | SIG_IGN => {
            t.deliver_fatal(sig);
            Err(Errno::EJUSTRETURN)
        }
        _ => {
            t.kernel.log_once("signal handlers do not run yet");
            Ok(0)
        }
    }
}

fn kill(t: &mut Task, a: &Args) -> SysResult {
    let pid = a.i32(0);
    let pgid = *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner());
    // The sandbox holds one process: itself, its group, or everyone.
    if pid == t.tg.pid || pid == 0 || pid == -1 || pid == -pgid {
        signal_self(t, a.i32(1))
    } else if pid == i32::MIN {
        Err(Errno::ESRCH)
    } else {
        check_signal(a.i32(1)).or(if a.i32(1) == 0 {
            Ok(0)
        } else {
            Err(Errno::EINVAL)
        })?;
        Err(Errno::ESRCH)
    }
}

fn tgkill(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 || a.i32(1) <= 0 {
        return Err(Errno::EINVAL);
    }
    if a.i32(0) != t.tg.pid || a.i32(1) != t.tid {
        return Err(Errno::ESRCH);
    }
    signal_self(t, a.i32(2))
}

fn tkill(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    if a.i32(0) != t.tid {
        return Err(Errno::ESRCH);
    }
    signal_self(t, a.i32(1))
}

fn rt_sigpending(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(1) > 8 {
        return Err(Errno::EINVAL);
    }
    t.mm.write_obj(a.u64(0), &0u64).map(|()| 0)
}
