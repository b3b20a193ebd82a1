//! Resource usage: getrusage and times, from the CPU time the sentry
//! charges to each task (see `task::CpuTime`) and the populated memory of
//! address spaces.

use std::sync::atomic::Ordering;

use veil_abi::{Errno, Rusage, SysResult, Sysno, Timeval, Tms};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::{CpuUsage, Task, ThreadGroup};

const RUSAGE_SELF: i32 = 0;
const RUSAGE_CHILDREN: i32 = -1;
const RUSAGE_THREAD: i32 = 1;
/// Clock ticks per second of times(2) (USER_HZ).
const USER_HZ: u64 = 100;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::getrusage,
        getrusage,
        &[Int, Hex],
        "CPU times and maxrss (populated memory); other fields are zero",
    );
    t.full(Sysno::times, times, &[Hex]);
}

fn timeval(ns: u64) -> Timeval {
    Timeval {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_usec: (ns % 1_000_000_000 / 1000) as i64,
    }
}

/// A `struct rusage` with CPU times and the high-water mark of memory.
pub fn rusage(cpu: CpuUsage, maxrss_bytes: u64) -> Rusage {
    let mut r = Rusage {
        ru_utime: timeval(cpu.user_ns),
        ru_stime: timeval(cpu.sys_ns),
        ..Rusage::default()
    };
    r.rest[0] = (maxrss_bytes / 1024) as i64;
    r
}

/// What a parent learns of a child it reaps: the child's own usage and
/// that of the children it reaped, which wait4 reports and the parent
/// adds to its RUSAGE_CHILDREN.
pub fn reaped_usage(child: &ThreadGroup) -> (CpuUsage, u64) {
    let mut cpu = *child.dead_cpu.lock().unwrap_or_else(|p| p.into_inner());
    cpu += *child.children_cpu.lock().unwrap_or_else(|p| p.into_inner());
    let maxrss = child
        .maxrss
        .load(Ordering::Relaxed)
        .max(child.children_maxrss.load(Ordering::Relaxed));
    (cpu, maxrss)
}

fn getrusage(t: &mut Task, a: &Args) -> SysResult {
    let r = match a.i32(0) {
        RUSAGE_SELF => rusage(t.tg.cpu(&t.kernel), t.tg.note_rss(&t.mm)),
        RUSAGE_THREAD => rusage(t.shared.cpu.get(), t.tg.note_rss(&t.mm)),
        RUSAGE_CHILDREN => rusage(
            *t.tg.children_cpu.lock().unwrap_or_else(|p| p.into_inner()),
            t.tg.children_maxrss.load(Ordering::Relaxed),
        ),
        _ => return Err(Errno::EINVAL),
    };
    t.mm.write_obj(a.u64(1), &r).map(|()| 0)
}

fn ticks(ns: u64) -> i64 {
    (ns / (1_000_000_000 / USER_HZ)) as i64
}

fn times(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(0) != 0 {
        let own = t.tg.cpu(&t.kernel);
        let children = *t.tg.children_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let tms = Tms {
            tms_utime: ticks(own.user_ns),
            tms_stime: ticks(own.sys_ns),
            tms_cutime: ticks(children.user_ns),
            tms_cstime: ticks(children.sys_ns),
        };
        t.mm.write_obj(a.u64(0), &tms)?;
    }
    Ok(t.kernel.boot_time.elapsed().as_millis() as u64 / (1000 / USER_HZ))
}
