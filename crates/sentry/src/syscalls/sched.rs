//! Scheduling: yield, CPU affinity, policies and priorities, nice values.
//! The host schedules the sandbox's threads; policies, priorities and
//! masks are remembered per task and reported back as Linux would, with
//! Linux's permission rules.

use std::sync::{Arc, PoisonError};

use linux_raw_sys::general::{
    PRIO_PGRP, PRIO_PROCESS, PRIO_USER, SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_IDLE,
    SCHED_NORMAL, SCHED_RESET_ON_FORK, SCHED_RR,
};
use veil_abi::{Errno, SysResult, Sysno, Timespec};
use veil_vfs::{cap, Creds};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::signal::TaskShared;
use crate::task::{SchedAttr, Task, RLIMIT_NICE, RLIMIT_RTPRIO};

const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_RECLAIM: u64 = 0x02;
const SCHED_FLAG_DL_OVERRUN: u64 = 0x04;
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
const SCHED_FLAG_UTIL_CLAMP: u64 = 0x60;
/// sched_setattr's "keep the policy", as SETPARAM_POLICY.
const KEEP_POLICY: i64 = -1;
const SCHED_ATTR_SIZE_VER0: usize = 48;
const PAGE_SIZE: usize = 4096;
/// Highest real-time priority (MAX_RT_PRIO - 1).
const MAX_RT_PRIO: u32 = 99;
/// SCHED_DEADLINE's period bounds (sched_dl_period_min_us, _max_us).
const DL_PERIOD_MIN_NS: u64 = 100 * 1000;
const DL_PERIOD_MAX_NS: u64 = (1 << 22) * 1000;
/// What sched_rr_get_interval reports for round-robin and fair tasks.
const TIME_SLICE_NS: i64 = 100_000_000;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::sched_yield, sched_yield, &[]);
    t.full(
        Sysno::sched_getaffinity,
        sched_getaffinity,
        &[Int, UInt, Hex],
    );
    t.partial(
        Sysno::sched_setaffinity,
        sched_setaffinity,
        &[Int, UInt, Hex],
        "remembered and reported; the host places the threads",
    );
    t.partial(
        Sysno::getcpu,
        getcpu,
        &[Hex, Hex, Hex],
        "the host CPU the sentry thread runs on (within the task's mask); node 0",
    );
    t.partial(
        Sysno::sched_setscheduler,
        sched_setscheduler,
        &[Int, Int, Hex],
        "policies and priorities are remembered, not applied: the host schedules",
    );
    t.full(Sysno::sched_getscheduler, sched_getscheduler, &[Int]);
    t.partial(
        Sysno::sched_setparam,
        sched_setparam,
        &[Int, Hex],
        "priorities are remembered, not applied",
    );
    t.full(Sysno::sched_getparam, sched_getparam, &[Int, Hex]);
    t.partial(
        Sysno::sched_setattr,
        sched_setattr,
        &[Int, Hex, Hex],
        "remembered, not applied; no utilization clamping (EOPNOTSUPP) or deadline admission control",
    );
    t.full(Sysno::sched_getattr, sched_getattr, &[Int, Hex, UInt, Hex]);
    t.full(
        Sysno::sched_get_priority_max,
        sched_get_priority_max,
        &[Int],
    );
    t.full(
        Sysno::sched_get_priority_min,
        sched_get_priority_min,
        &[Int],
    );
    t.partial(
        Sysno::sched_rr_get_interval,
        sched_rr_get_interval,
        &[Int, Hex],
        "a fixed 100 ms slice (0 for SCHED_FIFO)",
    );
    t.partial(
        Sysno::getpriority,
        getpriority,
        &[Int, Int],
        "nice values are remembered, not applied",
    );
    t.partial(
        Sysno::setpriority,
        setpriority,
        &[Int, Int, Int],
        "nice values are remembered, not applied",
    );
}

fn sched_yield(_t: &mut Task, _a: &Args) -> SysResult {
    std::thread::yield_now();
    Ok(0)
}

/// The task with thread ID `pid` (0 for the caller).
fn target(t: &Task, pid: i32) -> Result<Arc<TaskShared>, Errno> {
    if pid == 0 || pid == t.tid {
        Ok(t.shared.clone())
    } else {
        t.kernel.task(pid).ok_or(Errno::ESRCH)
    }
}

fn lock(p: &TaskShared) -> std::sync::MutexGuard<'_, SchedAttr> {
    p.sched.lock().unwrap_or_else(PoisonError::into_inner)
}

/// check_same_owner: the caller's effective UID is the target's real or
/// effective one.
fn same_owner(c: &Creds, target: &Creds) -> bool {
    c.euid == target.euid || c.euid == target.uid
}

fn sched_getaffinity(t: &mut Task, a: &Args) -> SysResult {
    let len = a.usize(1);
    let cpus = &t.kernel.cpus;
    if len.saturating_mul(8) < nr_cpus(cpus) || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let p = target(t, a.i32(0))?;
    let mut mask = lock(&p).affinity.clone().unwrap_or_else(|| cpus.clone());
    for (m, c) in mask.iter_mut().zip(cpus) {
        *m &= c;
    }
    let n = len.min(mask.len());
    t.mm.copy_out(a.u64(2), &mask[..n])?;
    Ok(n as u64)
}

/// nr_cpu_ids: one past the highest CPU.
fn nr_cpus(cpus: &[u8]) -> usize {
    (0..cpus.len() * 8)
        .rev()
        .find(|&c| cpus[c / 8] & (1 << (c % 8)) != 0)
        .map_or(1, |c| c + 1)
}

fn sched_setaffinity(t: &mut Task, a: &Args) -> SysResult {
    let cpus = t.kernel.cpus.clone();
    // A short mask leaves the other CPUs out; a long one is cut.
    let mut mask = vec![0u8; cpus.len()];
    if a.usize(1) >= mask.len() {
        t.mm.copy_in(a.u64(2), &mut mask)?;
    }
    let p = target(t, a.i32(0))?;
    if !same_owner(&t.creds, &p.creds()) && !t.creds.capable(cap::CAP_SYS_NICE) {
        return Err(Errno::EPERM);
    }
    for (m, c) in mask.iter_mut().zip(&cpus) {
        *m &= c;
    }
    if mask.iter().all(|&b| b == 0) {
        return Err(Errno::EINVAL);
    }
    lock(&p).affinity = Some(mask);
    Ok(0)
}

fn getcpu(t: &mut Task, a: &Args) -> SysResult {
    let mask = lock(&t.shared)
        .affinity
        .clone()
        .unwrap_or_else(|| t.kernel.cpus.clone());
    let allowed = |c: usize| mask.get(c / 8).is_some_and(|b| b & (1 << (c % 8)) != 0);
    let host = rustix::process::sched_getcpu();
    let cpu = if allowed(host) {
        host
    } else {
        (0..mask.len() * 8).find(|&c| allowed(c)).unwrap_or(0)
    };
    if a.u64(0) != 0 {
        t.mm.write_obj(a.u64(0), &(cpu as u32))?;
    }
    if a.u64(1) != 0 {
        t.mm.write_obj(a.u64(1), &0u32)?;
    }
    Ok(0)
}

fn rt_policy(policy: u32) -> bool {
    policy == SCHED_FIFO || policy == SCHED_RR
}

fn fair_policy(policy: u32) -> bool {
    matches!(policy, SCHED_NORMAL | SCHED_BATCH | SCHED_IDLE)
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct SchedAttrAbi {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// A requested change: `policy` KEEP_POLICY keeps the current one.
struct Request {
    policy: i64,
    flags: u64,
    nice: i32,
    priority: u32,
    deadline: [u64; 3],
}

/// Whether lowering the nice value to `nice` stays within RLIMIT_NICE.
fn nice_within_rlimit(t: &Task, nice: i32) -> bool {
    let rlim = t.tg.rlimit(RLIMIT_NICE).rlim_cur;
    (20 - i64::from(nice)) as u64 <= rlim
}

/// __checkparam_dl: runtime <= deadline <= period within the bounds.
fn deadline_valid(dl: [u64; 3]) -> bool {
    let [runtime, deadline, period] = dl;
    let period = if period == 0 { deadline } else { period };
    deadline != 0
        && runtime >= 1 << 10
        && (deadline | period) >> 63 == 0
        && period >= deadline
        && deadline >= runtime
        && (DL_PERIOD_MIN_NS..=DL_PERIOD_MAX_NS).contains(&period)
}

/// __sched_setscheduler's checks and update, for `p`.
fn set_scheduler(t: &Task, p: &TaskShared, req: Request) -> Result<(), Errno> {
    let mut cur = lock(p);
    let (policy, reset_on_fork) = if req.policy == KEEP_POLICY {
        (cur.policy, cur.reset_on_fork)
    } else {
        let policy = u32::try_from(req.policy).map_err(|_| Errno::EINVAL)?;
        if !rt_policy(policy) && !fair_policy(policy) && policy != SCHED_DEADLINE {
            return Err(Errno::EINVAL);
        }
        (policy, req.flags & SCHED_FLAG_RESET_ON_FORK != 0)
    };
    if req.priority > MAX_RT_PRIO
        || (policy == SCHED_DEADLINE && !deadline_valid(req.deadline))
        || rt_policy(policy) != (req.priority != 0)
    {
        return Err(Errno::EINVAL);
    }
    let target = p.creds();
    let rtprio = t.tg.rlimit(RLIMIT_RTPRIO).rlim_cur;
    let needs_privilege = (fair_policy(policy)
        && req.nice < cur.nice
        && !nice_within_rlimit(t, req.nice))
        || (rt_policy(policy)
            && ((policy != cur.policy && rtprio == 0)
                || (req.priority > cur.rt_priority && u64::from(req.priority) > rtprio)))
        || policy == SCHED_DEADLINE
        || (cur.policy == SCHED_IDLE && policy != SCHED_IDLE && !nice_within_rlimit(t, cur.nice))
        || !same_owner(&t.creds, &target)
        || (cur.reset_on_fork && !reset_on_fork);
    if needs_privilege && !t.creds.capable(cap::CAP_SYS_NICE) {
        return Err(Errno::EPERM);
    }
    cur.reset_on_fork = reset_on_fork;
    if req.flags & SCHED_FLAG_KEEP_PARAMS == 0 {
        cur.policy = policy;
        if policy == SCHED_DEADLINE {
            cur.deadline = req.deadline;
        } else if fair_policy(policy) {
            cur.nice = req.nice;
        }
        cur.rt_priority = req.priority;
    }
    Ok(())
}

/// sched_setscheduler and sched_setparam: a `struct sched_param`.
fn set_with_param(t: &mut Task, pid: i32, policy: i64, param: u64) -> SysResult {
    if param == 0 || pid < 0 {
        return Err(Errno::EINVAL);
    }
    let priority: i32 = t.mm.read_obj(param)?;
    let p = target(t, pid)?;
    let mut req = Request {
        policy,
        flags: 0,
        nice: lock(&p).nice,
        priority: u32::try_from(priority).unwrap_or(u32::MAX),
        deadline: [0; 3],
    };
    if policy != KEEP_POLICY && policy as u64 & u64::from(SCHED_RESET_ON_FORK) != 0 {
        req.flags |= SCHED_FLAG_RESET_ON_FORK;
        req.policy &= !i64::from(SCHED_RESET_ON_FORK);
    }
    set_scheduler(t, &p, req).map(|()| 0)
}

fn sched_setscheduler(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(1) < 0 {
        return Err(Errno::EINVAL);
    }
    set_with_param(t, a.i32(0), i64::from(a.i32(1)), a.u64(2))
}

fn sched_setparam(t: &mut Task, a: &Args) -> SysResult {
    set_with_param(t, a.i32(0), KEEP_POLICY, a.u64(1))
}

fn sched_getscheduler(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) < 0 {
        return Err(Errno::EINVAL);
    }
    let p = target(t, a.i32(0))?;
    let s = lock(&p);
    let reset = if s.reset_on_fork {
        SCHED_RESET_ON_FORK
    } else {
        0
    };
    Ok(u64::from(s.policy | reset))
}

fn sched_getparam(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(1) == 0 || a.i32(0) < 0 {
        return Err(Errno::EINVAL);
    }
    let p = target(t, a.i32(0))?;
    let prio = lock(&p).rt_priority;
    t.mm.write_obj(a.u64(1), &prio).map(|()| 0)
}

fn sched_setattr(t: &mut Task, a: &Args) -> SysResult {
    let (pid, addr) = (a.i32(0), a.u64(1));
    if addr == 0 || pid < 0 || a.u32(2) != 0 {
        return Err(Errno::EINVAL);
    }
    let attr = read_sched_attr(t, addr)?;
    if attr.flags
        & !(SCHED_FLAG_RESET_ON_FORK
            | SCHED_FLAG_RECLAIM
            | SCHED_FLAG_DL_OVERRUN
            | SCHED_FLAG_KEEP_POLICY
            | SCHED_FLAG_KEEP_PARAMS
            | SCHED_FLAG_UTIL_CLAMP)
        != 0
    {
        return Err(Errno::EINVAL);
    }
    if attr.flags & SCHED_FLAG_UTIL_CLAMP != 0 {
        t.kernel.log_once("sched_setattr utilization clamping");
        return Err(Errno::EOPNOTSUPP);
    }
    if (attr.policy as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let p = target(t, pid)?;
    let req = Request {
        policy: if attr.flags & SCHED_FLAG_KEEP_POLICY != 0 {
            KEEP_POLICY
        } else {
            i64::from(attr.policy)
        },
        flags: attr.flags,
        nice: attr.nice.clamp(-20, 19),
        priority: attr.priority,
        deadline: [attr.runtime, attr.deadline, attr.period],
    };
    set_scheduler(t, &p, req).map(|()| 0)
}

/// Reads a `struct sched_attr` of the size it states (0 for the first
/// one); a larger one must be zero beyond what the kernel knows, or its
/// size field is set to the kernel's and the call fails with E2BIG.
fn read_sched_attr(t: &Task, addr: u64) -> Result<SchedAttrAbi, Errno> {
    let ksize = size_of::<SchedAttrAbi>();
    let size = match t.mm.read_obj::<u32>(addr)? as usize {
        0 => SCHED_ATTR_SIZE_VER0,
        n => n,
    };
    let too_big = |t: &Task| -> Errno {
        match t.mm.write_obj(addr, &(ksize as u32)) {
            Ok(()) => Errno::E2BIG,
            Err(e) => e,
        }
    };
    if !(SCHED_ATTR_SIZE_VER0..=PAGE_SIZE).contains(&size) {
        return Err(too_big(t));
    }
    let mut buf = vec![0u8; size.max(ksize)];
    t.mm.copy_in(addr, &mut buf[..size])?;
    if buf[ksize..].iter().any(|&b| b != 0) {
        return Err(too_big(t));
    }
    SchedAttrAbi::read_from_prefix(&buf)
        .map(|(attr, _)| attr)
        .map_err(|_| Errno::EFAULT)
}

fn sched_getattr(t: &mut Task, a: &Args) -> SysResult {
    let (pid, addr, usize_) = (a.i32(0), a.u64(1), a.usize(2));
    if addr == 0
        || pid < 0
        || !(SCHED_ATTR_SIZE_VER0..=PAGE_SIZE).contains(&usize_)
        || a.u32(3) != 0
    {
        return Err(Errno::EINVAL);
    }
    let p = target(t, pid)?;
    let s = lock(&p).clone();
    let mut attr = SchedAttrAbi {
        policy: s.policy,
        flags: if s.reset_on_fork {
            SCHED_FLAG_RESET_ON_FORK
        } else {
            0
        },
        ..SchedAttrAbi::default()
    };
    if s.policy == SCHED_DEADLINE {
        [attr.runtime, attr.deadline, attr.period] = s.deadline;
    } else if rt_policy(s.policy) {
        attr.priority = s.rt_priority;
    } else {
        attr.nice = s.nice;
    }
    let n = usize_.min(size_of::<SchedAttrAbi>());
    attr.size = n as u32;
    t.mm.copy_out(addr, &attr.as_bytes()[..n]).map(|()| 0)
}

fn sched_get_priority_max(_t: &mut Task, a: &Args) -> SysResult {
    match a.u32(0) {
        SCHED_FIFO | SCHED_RR => Ok(u64::from(MAX_RT_PRIO)),
        SCHED_NORMAL | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

fn sched_get_priority_min(_t: &mut Task, a: &Args) -> SysResult {
    match a.u32(0) {
        SCHED_FIFO | SCHED_RR => Ok(1),
        SCHED_NORMAL | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

fn sched_rr_get_interval(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) < 0 {
        return Err(Errno::EINVAL);
    }
    let p = target(t, a.i32(0))?;
    let policy = lock(&p).policy;
    let ts = Timespec {
        tv_sec: 0,
        tv_nsec: if policy == SCHED_FIFO {
            0
        } else {
            TIME_SLICE_NS
        },
    };
    t.mm.write_obj(a.u64(1), &ts).map(|()| 0)
}

/// The tasks getpriority and setpriority address: a thread, every thread
/// of a process group, or every thread of a user.
fn prio_targets(t: &Task, which: u32, who: i32) -> Result<Vec<Arc<TaskShared>>, Errno> {
    Ok(match which {
        PRIO_PROCESS => target(t, who).into_iter().collect(),
        PRIO_PGRP => {
            let pgid = if who == 0 {
                *t.tg.pgid.lock().unwrap_or_else(PoisonError::into_inner)
            } else {
                who
            };
            let tids: Vec<i32> = t
                .kernel
                .processes()
                .values()
                .filter(|g| *g.pgid.lock().unwrap_or_else(PoisonError::into_inner) == pgid)
                .flat_map(|g| {
                    g.threads
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone()
                })
                .collect();
            tids.into_iter()
                .filter_map(|tid| t.kernel.task(tid))
                .collect()
        }
        PRIO_USER => {
            let uid = if who == 0 { t.creds.uid } else { who as u32 };
            t.kernel
                .tasks()
                .into_iter()
                .map(|(_, p)| p)
                .filter(|p| p.creds().uid == uid)
                .collect()
        }
        _ => return Err(Errno::EINVAL),
    })
}

/// getpriority: the highest priority among the targets as 20 - nice
/// (1..=40), since a system call cannot return negative values; ESRCH
/// if none.
fn getpriority(t: &mut Task, a: &Args) -> SysResult {
    let targets = prio_targets(t, a.u32(0), a.i32(1))?;
    targets
        .iter()
        .map(|p| (20 - lock(p).nice) as u64)
        .max()
        .ok_or(Errno::ESRCH)
}

fn setpriority(t: &mut Task, a: &Args) -> SysResult {
    let targets = prio_targets(t, a.u32(0), a.i32(1))?;
    let nice = a.i32(2).clamp(-20, 19);
    let mut result = Err(Errno::ESRCH);
    for p in targets {
        let target = p.creds();
        if target.uid != t.creds.euid
            && target.euid != t.creds.euid
            && !t.creds.capable(cap::CAP_SYS_NICE)
        {
            result = Err(Errno::EPERM);
            continue;
        }
        let mut s = lock(&p);
        if nice < s.nice && !nice_within_rlimit(t, nice) && !t.creds.capable(cap::CAP_SYS_NICE) {
            result = Err(Errno::EACCES);
            continue;
        }
        s.nice = nice;
        if result == Err(Errno::ESRCH) {
            result = Ok(0);
        }
    }
    result
}
