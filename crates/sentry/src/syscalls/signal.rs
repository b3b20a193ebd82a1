//! Signal syscalls: dispositions, masks, alternate stacks, sending signals
//! to the caller, and returning from handlers. Delivery itself is in
//! `crate::signal`.

use veil_abi::{Errno, KernelSigaction, StackT, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use std::sync::Arc;

use veil_vfs::cap;

use crate::signal::{check_signal, SigInfo, TaskShared, SIGKILL, SIGSTOP, UNBLOCKABLE};
use crate::task::{Task, ThreadGroup};

const SIG_BLOCK: i32 = 0;
const SIG_UNBLOCK: i32 = 1;
const SIG_SETMASK: i32 = 2;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const SS_AUTODISARM: i32 = 1 << 31;
const MINSIGSTKSZ: u64 = 2048;
/// si_code of signals from tkill/tgkill.
const SI_TKILL: i32 = -6;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::rt_sigaction, rt_sigaction, &[Signal, Hex, Hex, UInt]);
    t.full(
        Sysno::rt_sigprocmask,
        rt_sigprocmask,
        &[Int, Hex, Hex, UInt],
    );
    t.full(Sysno::sigaltstack, sigaltstack, &[Hex, Hex]);
    t.full(Sysno::kill, kill, &[Int, Signal]);
    t.full(Sysno::tgkill, tgkill, &[Int, Int, Signal]);
    t.full(Sysno::tkill, tkill, &[Int, Signal]);
    t.full(Sysno::rt_sigqueueinfo, rt_sigqueueinfo, &[Int, Signal, Hex]);
    t.full(
        Sysno::rt_tgsigqueueinfo,
        rt_tgsigqueueinfo,
        &[Int, Int, Signal, Hex],
    );
    t.full(
        Sysno::rt_sigtimedwait,
        rt_sigtimedwait,
        &[Hex, Hex, Hex, UInt],
    );
    t.full(Sysno::rt_sigpending, rt_sigpending, &[Hex, UInt]);
    t.full(Sysno::rt_sigsuspend, rt_sigsuspend, &[Hex, UInt]);
    t.full(Sysno::pause, pause, &[]);
    t.full(Sysno::rt_sigreturn, rt_sigreturn, &[]);
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
    let old = t.tg.sigactions.update(|actions| {
        let old = actions[sig - 1];
        if let Some(mut new) = new {
            new.mask &= !UNBLOCKABLE;
            actions[sig - 1] = new;
        }
        old
    });
    // Setting an ignoring action discards the signal where it is pending.
    if new.is_some_and(|n| crate::signal::is_ignored(sig as i32, &n)) {
        t.kernel
            .discard_pending(&t.tg, crate::signal::bit(sig as i32));
    }
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

/// The processes kill(2)'s `pid` names: one, the caller's group, a group,
/// or every process but init and the caller.
fn kill_targets(t: &Task, pid: i32) -> Vec<Arc<ThreadGroup>> {
    let my_pgid = t.tg.pgid();
    t.kernel
        .processes()
        .values()
        .filter(|p| match pid {
            0 => p.pgid() == my_pgid,
            -1 => p.pid != crate::kernel::INIT_PID && p.pid != t.tg.pid,
            n if n < 0 => p.pgid() == -n,
            n => p.pid == n,
        })
        .cloned()
        .collect()
}

fn kill(t: &mut Task, a: &Args) -> SysResult {
    let (pid, sig) = (a.i32(0), a.i32(1));
    if pid == i32::MIN {
        return Err(Errno::ESRCH);
    }
    let info = SigInfo::user(sig, t.tg.pid, t.creds.uid);
    send_to_all(t, &kill_targets(t, pid), info)
}

/// Sends `info` to every process of group `pgid` (ESRCH if it has none).
pub(super) fn send_to_pgrp(t: &Task, pgid: i32, info: SigInfo) -> SysResult {
    send_to_all(t, &kill_targets(t, -pgid), info)
}

/// Sends `info` to each of `targets` the caller may signal; Linux
/// succeeds if any may take it.
fn send_to_all(t: &Task, targets: &[Arc<ThreadGroup>], info: SigInfo) -> SysResult {
    if info.signo != 0 {
        check_signal(info.signo)?;
    }
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    let mut result = Err(Errno::EPERM);
    for target in targets.iter().filter(|g| may_signal(t, g, info.signo)) {
        if info.signo != 0 {
            t.kernel.signal_process(target, info);
        }
        result = Ok(0);
    }
    result
}

/// check_kill_permission: within a process anything goes; otherwise the
/// sender's real or effective UID must be the target's real or saved one,
/// or the sender holds CAP_KILL; SIGCONT within a session is free. A
/// zombie, with no credentials left, accepts (and ignores) anything.
fn may_signal(t: &Task, target: &ThreadGroup, sig: i32) -> bool {
    if target.pid == t.tg.pid || t.creds.capable(cap::CAP_KILL) {
        return true;
    }
    let Some(thread) = t.kernel.threads_of(target).into_iter().next() else {
        return true;
    };
    let (c, tc) = (&t.creds, thread.creds());
    [c.euid, c.uid].iter().any(|&u| u == tc.suid || u == tc.uid)
        || (sig == crate::signal::SIGCONT && target.sid() == t.tg.sid())
}

/// The live thread `tid`, in process `tgid` if that is given, with its
/// process.
fn find_thread(
    t: &Task,
    tgid: Option<i32>,
    tid: i32,
) -> Result<(Arc<ThreadGroup>, Arc<TaskShared>), Errno> {
    let task = t.kernel.task(tid).ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| g != task.tgid) {
        return Err(Errno::ESRCH);
    }
    let tg = t
        .kernel
        .processes()
        .get(&task.tgid)
        .cloned()
        .ok_or(Errno::ESRCH)?;
    Ok((tg, task))
}

/// Sends `info` (or just checks the target, for signal 0) to one thread.
pub(super) fn send_to_thread(
    t: &mut Task,
    tgid: Option<i32>,
    tid: i32,
    info: SigInfo,
) -> SysResult {
    if info.signo != 0 {
        check_signal(info.signo)?;
    }
    let (tg, task) = find_thread(t, tgid, tid)?;
    if !may_signal(t, &tg, info.signo) {
        return Err(Errno::EPERM);
    }
    if info.signo != 0 {
        t.kernel.signal_thread(&tg, &task, info);
    }
    Ok(0)
}

fn tkill_info(t: &Task, sig: i32) -> SigInfo {
    let mut info = SigInfo::user(sig, t.tg.pid, t.creds.uid);
    info.code = SI_TKILL;
    info
}

fn tgkill(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 || a.i32(1) <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = tkill_info(t, a.i32(2));
    send_to_thread(t, Some(a.i32(0)), a.i32(1), info)
}

fn tkill(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = tkill_info(t, a.i32(1));
    send_to_thread(t, None, a.i32(0), info)
}

/// The siginfo a sigqueue-style call supplies for `sig`. Only a process
/// signalling itself may pose as the kernel or as kill/tkill, as Linux
/// checks.
pub(super) fn queued_info(
    t: &Task,
    target_pid: i32,
    sig: i32,
    addr: u64,
) -> Result<SigInfo, Errno> {
    let mut info: SigInfo = t.mm.read_obj(addr)?;
    if (info.code >= 0 || info.code == SI_TKILL) && target_pid != t.tg.pid {
        return Err(Errno::EPERM);
    }
    info.signo = sig;
    Ok(info)
}

fn rt_sigqueueinfo(t: &mut Task, a: &Args) -> SysResult {
    let (pid, sig) = (a.i32(0), a.i32(1));
    let info = queued_info(t, pid, sig, a.u64(2))?;
    let tg = t
        .kernel
        .processes()
        .get(&pid)
        .cloned()
        .filter(|_| pid > 0)
        .ok_or(Errno::ESRCH)?;
    send_to_process(t, &tg, info)
}

/// Sends `info` (or just checks the target, for signal 0) to a process,
/// as the caller may.
pub(super) fn send_to_process(t: &Task, tg: &ThreadGroup, info: SigInfo) -> SysResult {
    if info.signo != 0 {
        check_signal(info.signo)?;
    }
    if !may_signal(t, tg, info.signo) {
        return Err(Errno::EPERM);
    }
    if info.signo != 0 {
        t.kernel.signal_process(tg, info);
    }
    Ok(0)
}

fn rt_tgsigqueueinfo(t: &mut Task, a: &Args) -> SysResult {
    let (tgid, tid, sig) = (a.i32(0), a.i32(1), a.i32(2));
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = queued_info(t, tgid, sig, a.u64(3))?;
    send_to_thread(t, Some(tgid), tid, info)
}

fn rt_sigpending(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(1) > 8 {
        return Err(Errno::EINVAL);
    }
    t.mm.write_obj(a.u64(0), &(t.pending_signals() & t.signal_mask))
        .map(|()| 0)
}

/// rt_sigtimedwait: takes a pending signal of `set` without running its
/// handler, waiting up to the timeout for one to arrive.
fn rt_sigtimedwait(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(3) != 8 {
        return Err(Errno::EINVAL);
    }
    let set = t.mm.read_obj::<u64>(a.u64(0))? & !UNBLOCKABLE;
    let deadline = match a.u64(2) {
        0 => None,
        addr => Some(crate::vdso::host_deadline(super::time::read_timespec(
            t, addr,
        )?)),
    };
    t.shared.set_real_blocked(t.signal_mask);
    let r = sigtimedwait(t, a, set, deadline);
    t.shared.set_real_blocked(0);
    r
}

fn sigtimedwait(
    t: &mut Task,
    a: &Args,
    set: u64,
    deadline: Option<std::time::Instant>,
) -> SysResult {
    loop {
        if let Some(info) = t.dequeue_signal(set) {
            if a.u64(1) != 0 {
                t.mm.write_obj(a.u64(1), &info)?;
            }
            t.publish_mask();
            return Ok(info.signo as u64);
        }
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            t.publish_mask();
            return Err(Errno::EAGAIN);
        }
        // Senders of the awaited signals must see this thread as willing.
        t.publish_blocked(t.signal_mask & !set);
        if t.signal_pending() {
            t.publish_mask();
            return Err(Errno::EINTR);
        }
        t.shared.waiter.wait(left);
    }
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

/// pause: sleeps until a signal runs a handler or ends the process.
fn pause(t: &mut Task, _a: &Args) -> SysResult {
    while !t.block(None) {}
    Err(Errno::ERESTARTNOHAND)
}

/// The temporary signal mask of ppoll, pselect6 and epoll_pwait: None for
/// a null pointer, EINVAL for a size other than 8.
pub(super) fn read_sigmask_arg(t: &Task, addr: u64, size: u64) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    t.mm.read_obj(addr).map(Some)
}
