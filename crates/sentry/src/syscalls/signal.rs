//! Signal syscalls: dispositions, masks, alternate stacks, sending signals
//! to the caller, and returning from handlers. Delivery itself is in
//! `crate::signal`.

use veil_abi::{Errno, KernelSigaction, StackT, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use veil_vfs::cap;

use crate::signal::{check_signal, SigInfo, TaskShared, SIGKILL, SIGSTOP, UNBLOCKABLE};
use crate::task::Task;

const SIG_BLOCK: i32 = 0;
const SIG_UNBLOCK: i32 = 1;
const SIG_SETMASK: i32 = 2;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const SS_AUTODISARM: i32 = 1 << 31;
const MINSIGSTKSZ: u64 = 2048;
/// si_code of signals from kill(2) and from tkill/tgkill.
const SI_USER: i32 = 0;
const SI_TKILL: i32 = -6;

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
        "process-directed signals go to the process's main thread",
    );
    t.full(Sysno::tgkill, tgkill, &[Int, Int, Signal]);
    t.full(Sysno::tkill, tkill, &[Int, Signal]);
    t.full(Sysno::rt_sigpending, rt_sigpending, &[Hex, UInt]);
    t.full(Sysno::rt_sigsuspend, rt_sigsuspend, &[Hex, UInt]);
    t.partial(
        Sysno::rt_sigreturn,
        rt_sigreturn,
        &[],
        "FXSAVE floating-point state only: AVX upper halves are not saved across handlers",
    );
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

/// Queues `sig` for the calling task, as sent by kill(2) from itself; it is
/// delivered (or takes its default action) before the task resumes.
pub(super) fn send_self(t: &mut Task, sig: i32) -> SysResult {
    send_self_coded(t, sig, SI_USER)
}

/// As `send_self`, with the si_code the sending call implies.
fn send_self_coded(t: &mut Task, sig: i32, code: i32) -> SysResult {
    if sig == 0 {
        return Ok(0);
    }
    check_signal(sig)?;
    let mut info = SigInfo::user(sig, t.tg.pid, t.creds.uid);
    info.code = code;
    t.send_signal(info);
    Ok(0)
}

fn kill(t: &mut Task, a: &Args) -> SysResult {
    let (pid, sig) = (a.i32(0), a.i32(1));
    if pid == i32::MIN {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        check_signal(sig)?;
    }
    if pid == t.tg.pid {
        return send_self(t, sig);
    }
    let my_pgid = *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner());
    let targets: Vec<i32> = t
        .kernel
        .processes()
        .values()
        .filter(|p| match pid {
            0 => *p.pgid.lock().unwrap_or_else(|e| e.into_inner()) == my_pgid,
            -1 => p.pid != crate::kernel::INIT_PID || p.pid == t.tg.pid,
            n if n < 0 => *p.pgid.lock().unwrap_or_else(|e| e.into_inner()) == -n,
            n => p.pid == n,
        })
        .map(|p| p.pid)
        .collect();
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    let info = SigInfo::user(sig, t.tg.pid, t.creds.uid);
    // Linux succeeds if any target takes the signal.
    let mut result = Err(Errno::EPERM);
    for target in targets {
        // A zombie accepts the signal and ignores it, as on Linux.
        let Some(task) = t.kernel.task(target) else {
            result = Ok(0);
            continue;
        };
        if !may_signal(t, &task, sig, target) {
            continue;
        }
        if sig != 0 {
            task.send(info);
        }
        result = Ok(0);
    }
    result
}

/// check_kill_permission: within a process anything goes; otherwise the
/// sender's real or effective UID must be the target's real or saved
/// one, or the sender holds CAP_KILL. SIGCONT within a session is free.
fn may_signal(t: &Task, task: &TaskShared, sig: i32, target_tid: i32) -> bool {
    const SIGCONT: i32 = 18;
    let same_process =
        t.tg.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&target_tid);
    if same_process {
        return true;
    }
    let (c, tc) = (&t.creds, task.creds());
    if [c.euid, c.uid].iter().any(|&u| u == tc.suid || u == tc.uid) || c.capable(cap::CAP_KILL) {
        return true;
    }
    sig == SIGCONT
        && t.kernel.thread_group_of(target_tid).is_some_and(|g| {
            *g.sid.lock().unwrap_or_else(|p| p.into_inner())
                == *t.tg.sid.lock().unwrap_or_else(|p| p.into_inner())
        })
}

/// Sends `sig` to the thread `tid`, in process `tgid` if given (tgkill).
fn send_to_thread(t: &mut Task, tgid: Option<i32>, tid: i32, sig: i32) -> SysResult {
    if tid == t.tid && tgid.is_none_or(|g| g == t.tg.pid) {
        return send_self_coded(t, sig, SI_TKILL);
    }
    let task = t.kernel.task(tid).ok_or(Errno::ESRCH)?;
    if let Some(tgid) = tgid {
        let group = t.kernel.thread_group_of(tid).ok_or(Errno::ESRCH)?;
        if group.pid != tgid {
            return Err(Errno::ESRCH);
        }
    }
    if sig != 0 {
        check_signal(sig)?;
    }
    if !may_signal(t, &task, sig, tid) {
        return Err(Errno::EPERM);
    }
    if sig != 0 {
        let mut info = SigInfo::user(sig, t.tg.pid, t.creds.uid);
        info.code = SI_TKILL;
        task.send(info);
    }
    Ok(0)
}

fn tgkill(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 || a.i32(1) <= 0 {
        return Err(Errno::EINVAL);
    }
    send_to_thread(t, Some(a.i32(0)), a.i32(1), a.i32(2))
}

fn tkill(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    send_to_thread(t, None, a.i32(0), a.i32(1))
}

fn rt_sigpending(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(1) > 8 {
        return Err(Errno::EINVAL);
    }
    t.mm.write_obj(a.u64(0), &(t.shared.pending_bits() & t.signal_mask))
        .map(|()| 0)
}

fn rt_sigreturn(t: &mut Task, _a: &Args) -> SysResult {
    if t.sigreturn().is_err() {
        // A corrupt frame: Linux kills with SIGSEGV.
        t.deliver_fatal(crate::signal::SIGSEGV);
    }
    Err(Errno::EJUSTRETURN)
}

fn rt_sigsuspend(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(1) != 8 {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = t.mm.read_obj(a.u64(0))?;
    // The old mask comes back when the handler returns (or now, if the
    // call restarts without one).
    t.saved_mask.get_or_insert(t.signal_mask);
    t.signal_mask = mask & !UNBLOCKABLE;
    while !t.block(None) {}
    Err(Errno::ERESTARTNOHAND)
}
