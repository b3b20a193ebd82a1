//! Clocks and sleeping.

use std::time::Duration;

use veil_abi::{Errno, SysResult, Sysno, Timespec, Timeval};
use veil_vdso::Clock;

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::{RestartBlock, Task};

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
    t.full(Sysno::nanosleep, nanosleep, &[Hex, Hex]);
    t.partial(
        Sysno::clock_nanosleep,
        clock_nanosleep,
        &[Int, Int, Hex, Hex],
        "CPU-time clocks fail with EINVAL",
    );
    t.full(Sysno::alarm, alarm, &[UInt]);
    t.full(Sysno::restart_syscall, restart_syscall, &[]);
    const CPU: &str = "ITIMER_VIRTUAL and ITIMER_PROF count the sentry's accounting of CPU time and are checked at least every millisecond";
    t.partial(Sysno::setitimer, setitimer, &[Int, Hex, Hex], CPU);
    t.partial(Sysno::getitimer, getitimer, &[Int, Hex], CPU);
}

/// Reads a clock; the sandbox shares the host's time. The clocks the
/// vDSO serves are read as the vDSO reads them, so that a process mixing
/// the two never sees time go backwards.
pub(super) fn now(t: &Task, clock: i32) -> Result<Timespec, Errno> {
    let vdso_clock = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
            Some(Clock::Realtime)
        }
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_COARSE => Some(Clock::Monotonic),
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => Some(Clock::Boottime),
        _ => None,
    };
    let vdso_ns = vdso_clock.and_then(|c| t.kernel.vdso.as_ref()?.now_ns(c));
    if let Some(ns) = vdso_ns {
        return Ok(Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as i64,
        });
    }
    let id = match clock {
        // The sandbox cannot set the TAI offset, which stays Linux's default of 0.
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM | CLOCK_TAI => rustix::time::ClockId::Realtime,
        CLOCK_MONOTONIC => rustix::time::ClockId::Monotonic,
        CLOCK_MONOTONIC_RAW => rustix::time::ClockId::MonotonicRaw,
        CLOCK_REALTIME_COARSE => rustix::time::ClockId::RealtimeCoarse,
        CLOCK_MONOTONIC_COARSE => rustix::time::ClockId::MonotonicCoarse,
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => rustix::time::ClockId::Boottime,
        _ => return Err(Errno::EINVAL),
    };
    let ts = rustix::time::clock_gettime(id);
    Ok(Timespec {
        tv_sec: ts.tv_sec,
        tv_nsec: ts.tv_nsec,
    })
}

/// The time on `clock` now, as the vDSO reads it (for absolute deadlines).
pub(super) fn clock_now(t: &Task, clock: i32) -> Result<Duration, Errno> {
    let ts = now(t, clock)?;
    Ok(Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    ))
}

/// Which CPU time a CPU-time clock counts (CPUCLOCK_WHICH).
#[derive(Clone, Copy, PartialEq, Eq)]
enum CpuClock {
    /// User and system time (CPUCLOCK_PROF).
    Prof,
    /// User time (CPUCLOCK_VIRT).
    Virt,
    /// Run time (CPUCLOCK_SCHED): user and system time here.
    Sched,
}

/// Reads a CPU-time clock: CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID,
/// or a clock of clock_getcpuclockid and pthread_getcpuclockid, which
/// encode a process or (in the caller's process) a thread ID. None if
/// `clock` is not a CPU-time clock.
fn cpu_clock(t: &Task, clock: i32) -> Result<Option<(CpuClock, Duration)>, Errno> {
    let (which, thread, pid) = match clock {
        CLOCK_PROCESS_CPUTIME_ID => (CpuClock::Sched, false, 0),
        CLOCK_THREAD_CPUTIME_ID => (CpuClock::Sched, true, 0),
        c if c < 0 => {
            let which = match c & 3 {
                0 => CpuClock::Prof,
                1 => CpuClock::Virt,
                2 => CpuClock::Sched,
                _ => return Err(Errno::EINVAL),
            };
            (which, c & 4 != 0, !(c >> 3))
        }
        _ => return Ok(None),
    };
    let usage = if thread {
        if pid == 0 || pid == t.tid {
            t.shared.cpu.get()
        } else if t
            .tg
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&pid)
        {
            t.kernel.task(pid).ok_or(Errno::EINVAL)?.cpu.get()
        } else {
            return Err(Errno::EINVAL);
        }
    } else if pid == 0 || pid == t.tg.pid || pid == t.tid {
        t.tg.cpu(&t.kernel)
    } else {
        let tg = t.kernel.processes().get(&pid).cloned();
        tg.ok_or(Errno::EINVAL)?.cpu(&t.kernel)
    };
    let ns = match which {
        CpuClock::Virt => usage.user_ns,
        CpuClock::Prof | CpuClock::Sched => usage.user_ns + usage.sys_ns,
    };
    Ok(Some((which, Duration::from_nanos(ns))))
}

fn clock_gettime(t: &mut Task, a: &Args) -> SysResult {
    let ts = match cpu_clock(t, a.i32(0))? {
        Some((_, d)) => Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        },
        None => now(t, a.i32(0))?,
    };
    t.mm.write_obj(a.u64(1), &ts).map(|()| 0)
}

fn clock_getres(t: &mut Task, a: &Args) -> SysResult {
    let clock = a.i32(0);
    let nsec = match cpu_clock(t, clock)? {
        // Sampled CPU clocks tick with the scheduler (HZ 250).
        Some((CpuClock::Prof | CpuClock::Virt, _)) => 4_000_000,
        Some((CpuClock::Sched, _)) => 1,
        None => {
            now(t, clock)?;
            if matches!(clock, CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE) {
                4_000_000
            } else {
                1
            }
        }
    };
    if a.u64(1) == 0 {
        return Ok(0);
    }
    let res = Timespec {
        tv_sec: 0,
        tv_nsec: nsec,
    };
    t.mm.write_obj(a.u64(1), &res).map(|()| 0)
}

fn gettimeofday(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(0) != 0 {
        let ts = now(t, CLOCK_REALTIME)?;
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
    let secs = now(t, CLOCK_REALTIME)?.tv_sec.max(0) as u64;
    if a.u64(0) != 0 {
        t.mm.write_obj(a.u64(0), &secs)?;
    }
    Ok(secs)
}

pub(super) fn read_timespec(t: &Task, addr: u64) -> Result<Duration, Errno> {
    let ts: Timespec = t.mm.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Sleeps for `d`; a signal ends the sleep early with the time left.
fn sleep(t: &Task, d: Duration) -> Result<(), Duration> {
    let deadline = crate::vdso::host_deadline(d);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        if t.block(Some(left)) {
            return Err(deadline.saturating_duration_since(std::time::Instant::now()));
        }
    }
}

fn nanosleep(t: &mut Task, a: &Args) -> SysResult {
    let d = read_timespec(t, a.u64(0))?;
    relative_sleep(t, crate::vdso::host_deadline(d), a.u64(1))
}

/// Sleeps until `deadline`. Interrupted, it reports the time left at `rem`
/// (if not null) and leaves a restart block, so that a restart without a
/// handler (after a stop, say) sleeps only what is left, as Linux's
/// restart_syscall does.
fn relative_sleep(t: &mut Task, deadline: std::time::Instant, rem: u64) -> SysResult {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    match sleep(t, left) {
        Ok(()) => Ok(0),
        Err(left) => {
            if rem != 0 {
                write_remaining(t, rem, left)?;
            }
            t.restart_block = Some(RestartBlock::Sleep { deadline, rem });
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
    }
}

/// restart_syscall: continues the call a signal interrupted, from where it
/// was; EINTR if there is nothing to continue.
fn restart_syscall(t: &mut Task, _a: &Args) -> SysResult {
    match t.restart_block.take() {
        Some(RestartBlock::Sleep { deadline, rem }) => relative_sleep(t, deadline, rem),
        None => Err(Errno::EINTR),
    }
}

fn clock_nanosleep(t: &mut Task, a: &Args) -> SysResult {
    let clock = a.i32(0);
    if clock == CLOCK_THREAD_CPUTIME_ID {
        return Err(Errno::EINVAL);
    }
    if cpu_clock(t, clock)?.is_some() {
        t.kernel.log_once("clock_nanosleep on a CPU-time clock");
        return Err(Errno::EINVAL);
    }
    let req = read_timespec(t, a.u64(2))?;
    let sleep = if a.i32(1) & TIMER_ABSTIME != 0 {
        req.saturating_sub(clock_now(t, clock)?)
    } else {
        req
    };
    if a.i32(1) & TIMER_ABSTIME == 0 {
        return relative_sleep(t, crate::vdso::host_deadline(sleep), a.u64(3));
    }
    // An absolute sleep restarts as it was called.
    match self::sleep(t, sleep) {
        Ok(()) => Ok(0),
        Err(_) => Err(Errno::ERESTARTNOHAND),
    }
}

fn write_remaining(t: &Task, addr: u64, left: Duration) -> Result<(), Errno> {
    let rem = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    t.mm.write_obj(addr, &rem)
}

const ITIMER_REAL: i32 = 0;
const ITIMER_VIRTUAL: i32 = 1;
const ITIMER_PROF: i32 = 2;

/// `struct itimerval`.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Default,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
struct Itimerval {
    interval: Timeval,
    value: Timeval,
}

fn to_timeval(d: Duration) -> Timeval {
    Timeval {
        tv_sec: d.as_secs() as i64,
        tv_usec: i64::from(d.subsec_micros()),
    }
}

fn from_timeval(tv: Timeval) -> Result<Duration, Errno> {
    if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
}

fn alarm(t: &mut Task, a: &Args) -> SysResult {
    let (old, _) = t.tg.real_timer.set(
        &t.kernel,
        t.tg.pid,
        Duration::from_secs(u64::from(a.u32(0))),
        Duration::ZERO,
    );
    // Rounded to the nearest second, and never 0 while still armed.
    let secs = (old.as_millis() as u64 + 500) / 1000;
    Ok(if old.is_zero() { 0 } else { secs.max(1) })
}

fn setitimer(t: &mut Task, a: &Args) -> SysResult {
    let which = a.i32(0);
    if !matches!(which, ITIMER_REAL | ITIMER_VIRTUAL | ITIMER_PROF) {
        return Err(Errno::EINVAL);
    }
    let new: Itimerval = match a.u64(1) {
        0 => Itimerval::default(),
        addr => t.mm.read_obj(addr)?,
    };
    let (value, interval) = (from_timeval(new.value)?, from_timeval(new.interval)?);
    let (old_value, old_interval) = match which {
        ITIMER_REAL => t.tg.real_timer.set(&t.kernel, t.tg.pid, value, interval),
        _ => {
            let prof = which == ITIMER_PROF;
            t.tg.cpu_timers[usize::from(prof)].set(&t.kernel, &t.tg, prof, value, interval)
        }
    };
    if a.u64(2) != 0 {
        let old = Itimerval {
            interval: to_timeval(old_interval),
            value: to_timeval(old_value),
        };
        t.mm.write_obj(a.u64(2), &old)?;
    }
    Ok(0)
}

fn getitimer(t: &mut Task, a: &Args) -> SysResult {
    let (value, interval) = match a.i32(0) {
        ITIMER_REAL => t.tg.real_timer.get(),
        which @ (ITIMER_VIRTUAL | ITIMER_PROF) => {
            let prof = which == ITIMER_PROF;
            t.tg.cpu_timers[usize::from(prof)].get(&t.kernel, &t.tg, prof)
        }
        _ => return Err(Errno::EINVAL),
    };
    let cur = Itimerval {
        interval: to_timeval(interval),
        value: to_timeval(value),
    };
    t.mm.write_obj(a.u64(1), &cur).map(|()| 0)
}
