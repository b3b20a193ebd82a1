//! Clocks and sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use veil_abi::{Errno, SysResult, Sysno, Timespec, Timeval, Tms};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;
const CLOCK_REALTIME_ALARM: i32 = 8;
const CLOCK_BOOTTIME_ALARM: i32 = 9;
const CLOCK_TAI: i32 = 11;
const TIMER_ABSTIME: i32 = 1;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::clock_gettime, clock_gettime, &[Int, Hex]);
    t.full(Sysno::clock_getres, clock_getres, &[Int, Hex]);
    t.full(Sysno::gettimeofday, gettimeofday, &[Hex, Hex]);
    t.full(Sysno::time, time, &[Hex]);
    t.partial(
        Sysno::nanosleep,
        nanosleep,
        &[Hex, Hex],
        "not yet interruptible by signals",
    );
    t.partial(
        Sysno::clock_nanosleep,
        clock_nanosleep,
        &[Int, Int, Hex, Hex],
        "not yet interruptible by signals",
    );
    t.partial(
        Sysno::times,
        times,
        &[Hex],
        "CPU times of the stub threads are not accounted yet: zero",
    );
}

/// Reads a host clock; the sandbox shares the host's time.
fn now(clock: i32) -> Result<Timespec, Errno> {
    let id = match clock {
        // The sandbox cannot set the TAI offset, which stays Linux's default of 0.
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM | CLOCK_TAI => rustix::time::ClockId::Realtime,
        CLOCK_MONOTONIC => rustix::time::ClockId::Monotonic,
        CLOCK_MONOTONIC_RAW => rustix::time::ClockId::MonotonicRaw,
        CLOCK_REALTIME_COARSE => rustix::time::ClockId::RealtimeCoarse,
        CLOCK_MONOTONIC_COARSE => rustix::time::ClockId::MonotonicCoarse,
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => rustix::time::ClockId::Boottime,
        CLOCK_PROCESS_CPUTIME_ID => rustix::time::ClockId::ProcessCPUTime,
        CLOCK_THREAD_CPUTIME_ID => rustix::time::ClockId::ThreadCPUTime,
        _ => return Err(Errno::EINVAL),
    };
    let ts = rustix::time::clock_gettime(id);
    Ok(Timespec {
        tv_sec: ts.tv_sec,
        tv_nsec: ts.tv_nsec,
    })
}

fn clock_gettime(t: &mut Task, a: &Args) -> SysResult {
    let ts = now(a.i32(0))?;
    t.mm.write_obj(a.u64(1), &ts).map(|()| 0)
}

fn clock_getres(t: &mut Task, a: &Args) -> SysResult {
    let coarse = matches!(a.i32(0), CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE);
    now(a.i32(0))?;
    if a.u64(1) == 0 {
        return Ok(0);
    }
    let res = Timespec {
        tv_sec: 0,
        tv_nsec: if coarse { 4_000_000 } else { 1 },
    };
    t.mm.write_obj(a.u64(1), &res).map(|()| 0)
}

fn gettimeofday(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(0) != 0 {
        let ts = now(CLOCK_REALTIME)?;
        let tv = Timeval {
            tv_sec: ts.tv_sec,
            tv_usec: ts.tv_nsec / 1000,
        };
        t.mm.write_obj(a.u64(0), &tv)?;
    }
    if a.u64(1) != 0 {
        // struct timezone: always UTC, as Linux reports without settimeofday.
        t.mm.write_obj(a.u64(1), &[0u32; 2])?;
    }
    Ok(0)
}

fn time(t: &mut Task, a: &Args) -> SysResult {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if a.u64(0) != 0 {
        t.mm.write_obj(a.u64(0), &secs)?;
    }
    Ok(secs)
}

fn read_timespec(t: &Task, addr: u64) -> Result<Duration, Errno> {
    let ts: Timespec = t.mm.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn nanosleep(t: &mut Task, a: &Args) -> SysResult {
    std::thread::sleep(read_timespec(t, a.u64(0))?);
    Ok(0)
}

fn clock_nanosleep(t: &mut Task, a: &Args) -> SysResult {
    let clock = a.i32(0);
    if matches!(clock, CLOCK_THREAD_CPUTIME_ID) {
        return Err(Errno::EINVAL);
    }
    let req = read_timespec(t, a.u64(2))?;
    let sleep = if a.i32(1) & TIMER_ABSTIME != 0 {
        let n = now(clock)?;
        let now = Duration::new(n.tv_sec as u64, n.tv_nsec as u32);
        req.saturating_sub(now)
    } else {
        req
    };
    std::thread::sleep(sleep);
    Ok(0)
}

fn times(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(0) != 0 {
        t.mm.write_obj(a.u64(0), &Tms::default())?;
    }
    Ok(t.kernel.boot_time.elapsed().as_millis() as u64 / 10)
}
