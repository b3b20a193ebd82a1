//! POSIX timers: timer_create, timer_settime, timer_gettime,
//! timer_getoverrun and timer_delete. The timers are `crate::posix_timer`.

use rustix::time::ClockId;
use veil_abi::{Errno, Itimerspec, Sigevent, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::posix_timer::Notify;
use crate::task::Task;
use crate::timer::duration;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_BOOTTIME: i32 = 7;
const CLOCK_REALTIME_ALARM: i32 = 8;
const CLOCK_BOOTTIME_ALARM: i32 = 9;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;
const TIMER_ABSTIME: u32 = 1;
const SIGALRM: i32 = 14;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::timer_create,
        timer_create,
        &[Int, Hex, Hex],
        "REALTIME, MONOTONIC and BOOTTIME clocks (the *_ALARM ones need root); CPU-time clocks fail with EINVAL",
    );
    t.full(Sysno::timer_settime, timer_settime, &[Int, Hex, Hex, Hex]);
    t.full(Sysno::timer_gettime, timer_gettime, &[Int, Hex]);
    t.full(Sysno::timer_getoverrun, timer_getoverrun, &[Int]);
    t.full(Sysno::timer_delete, timer_delete, &[Int]);
}

fn timer_create(t: &mut Task, a: &Args) -> SysResult {
    let (clock, sevp, out) = (a.i32(0), a.u64(1), a.u64(2));
    let id = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => ClockId::Realtime,
        CLOCK_MONOTONIC => ClockId::Monotonic,
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => ClockId::Boottime,
        _ => {
            t.kernel.log_once(&format!("timer_create on clock {clock}"));
            return Err(Errno::EINVAL);
        }
    };
    if matches!(clock, CLOCK_REALTIME_ALARM | CLOCK_BOOTTIME_ALARM)
        && !t.creds.capable(veil_vfs::cap::CAP_WAKE_ALARM)
    {
        return Err(Errno::EPERM);
    }
    let (notify, value) = match sevp {
        0 => (Notify::Process { signo: SIGALRM }, None),
        addr => {
            let ev: Sigevent = t.mm.read_obj(addr)?;
            let valid_signal = (1..=64).contains(&ev.signo);
            let notify = match ev.notify {
                SIGEV_NONE => Notify::None,
                SIGEV_SIGNAL if valid_signal => Notify::Process { signo: ev.signo },
                n if n == SIGEV_SIGNAL | SIGEV_THREAD_ID && valid_signal => {
                    let ours = t.kernel.task(ev.tid).is_some_and(|x| x.tgid == t.tg.pid);
                    if !ours {
                        return Err(Errno::EINVAL);
                    }
                    Notify::Thread {
                        signo: ev.signo,
                        tid: ev.tid,
                    }
                }
                _ => return Err(Errno::EINVAL),
            };
            (notify, Some(ev.value))
        }
    };
    // The ID is written before the timer exists for the process, as an
    // EFAULT must leave no timer behind.
    t.mm.check_access(out, 4, true)?;
    let timer_id =
        t.tg.posix_timers
            .create(&t.kernel, &t.tg, id, notify, value)?;
    if let Err(e) = t.mm.write_obj(out, &timer_id) {
        let _ = t.tg.posix_timers.delete(&t.kernel, timer_id);
        return Err(e);
    }
    Ok(0)
}

fn timer_settime(t: &mut Task, a: &Args) -> SysResult {
    let (id, flags) = (a.i32(0), a.u32(1));
    let new: Itimerspec = t.mm.read_obj(a.u64(2))?;
    let value = duration(&new.it_value)?;
    let interval = duration(&new.it_interval)?;
    let timer = t.tg.posix_timers.get(id)?;
    let clock_now = (flags & TIMER_ABSTIME != 0)
        .then(|| super::time::clock_now(t, timer.clock() as i32))
        .transpose()?;
    let old = timer.set(&t.kernel, value, interval, clock_now);
    if a.u64(3) != 0 {
        t.mm.write_obj(a.u64(3), &old)?;
    }
    Ok(0)
}

fn timer_gettime(t: &mut Task, a: &Args) -> SysResult {
    let timer = t.tg.posix_timers.get(a.i32(0))?;
    t.mm.write_obj(a.u64(1), &timer.get()).map(|()| 0)
}

fn timer_getoverrun(t: &mut Task, a: &Args) -> SysResult {
    Ok(t.tg.posix_timers.get(a.i32(0))?.overrun() as u64)
}

fn timer_delete(t: &mut Task, a: &Args) -> SysResult {
    t.tg.posix_timers.delete(&t.kernel, a.i32(0)).map(|()| 0)
}
