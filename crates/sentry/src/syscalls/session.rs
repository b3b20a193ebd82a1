//! Process groups and sessions: getpgid, setpgid, getsid, setsid.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use veil_abi::{Errno, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::{Task, ThreadGroup};

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::getpgrp, getpgrp, &[]);
    t.full(Sysno::getpgid, getpgid, &[Int]);
    t.full(Sysno::getsid, getsid, &[Int]);
    t.full(Sysno::setpgid, setpgid, &[Int, Int]);
    t.full(Sysno::setsid, setsid, &[]);
}

/// The live or zombie process `pid` (0: the caller).
fn process(t: &Task, pid: i32) -> Result<Arc<ThreadGroup>, Errno> {
    match pid {
        0 => Ok(t.tg.clone()),
        p if p < 0 => Err(Errno::ESRCH),
        p => t.kernel.processes().get(&p).cloned().ok_or(Errno::ESRCH),
    }
}

fn getpgrp(t: &mut Task, _a: &Args) -> SysResult {
    Ok(t.tg.pgid() as u64)
}

fn getpgid(t: &mut Task, a: &Args) -> SysResult {
    Ok(process(t, a.i32(0))?.pgid() as u64)
}

fn getsid(t: &mut Task, a: &Args) -> SysResult {
    Ok(process(t, a.i32(0))?.sid() as u64)
}

/// setpgid with Linux's rules: the caller or one of its children that has
/// not exec'd, in the caller's session, not a session leader, joining a
/// group of that session or founding its own.
fn setpgid(t: &mut Task, a: &Args) -> SysResult {
    let (pid, pgid) = (a.i32(0), a.i32(1));
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let procs = t.kernel.processes();
    let target = match pid {
        0 => t.tg.clone(),
        p if p < 0 => return Err(Errno::ESRCH),
        p => procs.get(&p).cloned().ok_or(Errno::ESRCH)?,
    };
    let pgid = if pgid == 0 { target.pid } else { pgid };
    if target.pid != t.tg.pid {
        if target.parent_pid() != t.tg.pid {
            return Err(Errno::ESRCH);
        }
        if target.sid() != t.tg.sid() {
            return Err(Errno::EPERM);
        }
        if target.did_exec.load(Ordering::Relaxed) {
            return Err(Errno::EACCES);
        }
    }
    if target.sid() == target.pid {
        return Err(Errno::EPERM);
    }
    if pgid != target.pid
        && !procs
            .values()
            .any(|p| p.pgid() == pgid && p.sid() == t.tg.sid())
    {
        return Err(Errno::EPERM);
    }
    *target.pgid.lock().unwrap_or_else(|p| p.into_inner()) = pgid;
    Ok(0)
}

/// setsid: a new session and process group led by the caller, with no
/// controlling terminal; not for a process whose PID names a group.
fn setsid(t: &mut Task, _a: &Args) -> SysResult {
    let procs = t.kernel.processes();
    let pid = t.tg.pid;
    if procs.values().any(|p| p.pgid() == pid) {
        return Err(Errno::EPERM);
    }
    *t.tg.sid.lock().unwrap_or_else(|p| p.into_inner()) = pid;
    *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner()) = pid;
    Ok(pid as u64)
}
