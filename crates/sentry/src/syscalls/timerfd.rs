//! timerfd_create, timerfd_settime and timerfd_gettime. The timer itself
//! is `crate::timerfd`.

use linux_raw_sys::general::{
    TFD_CLOEXEC, TFD_NONBLOCK, TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET,
};
use rustix::time::ClockId;
use veil_abi::{Errno, Itimerspec, SysResult, Sysno};
use veil_vfs::OpenFile;

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;
use crate::timerfd::TimerFd;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_BOOTTIME: i32 = 7;
const CLOCK_REALTIME_ALARM: i32 = 8;
const CLOCK_BOOTTIME_ALARM: i32 = 9;
const O_RDWR: i32 = 2;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::timerfd_create,
        timerfd_create,
        &[Int, Hex],
        "the *_ALARM clocks need root (for CAP_WAKE_ALARM) and behave as their plain clocks",
    );
    t.partial(
        Sysno::timerfd_settime,
        timerfd_settime,
        &[Fd, Hex, Hex, Hex],
        "TFD_TIMER_CANCEL_ON_SET is accepted and never fires: the sandbox cannot set the clock",
    );
    t.full(Sysno::timerfd_gettime, timerfd_gettime, &[Fd, Hex]);
}

fn timerfd_create(t: &mut Task, a: &Args) -> SysResult {
    let (clock, flags) = (a.i32(0), a.u32(1));
    if flags & !(TFD_CLOEXEC | TFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let id = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => ClockId::Realtime,
        CLOCK_MONOTONIC => ClockId::Monotonic,
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => ClockId::Boottime,
        _ => return Err(Errno::EINVAL),
    };
    if matches!(clock, CLOCK_REALTIME_ALARM | CLOCK_BOOTTIME_ALARM)
        && !t.creds.capable(veil_vfs::cap::CAP_WAKE_ALARM)
    {
        return Err(Errno::EPERM);
    }
    let ops = TimerFd::new(id, t.kernel.timers.clone());
    let status = O_RDWR | (flags & TFD_NONBLOCK) as i32;
    let file = OpenFile::anonymous("[timerfd]", status, Box::new(ops));
    t.fds
        .insert(file, flags & TFD_CLOEXEC != 0, 0, t.nofile())
        .map(|fd| fd as u64)
}

fn timerfd_settime(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(1);
    let new: Itimerspec = t.mm.read_obj(a.u64(2))?;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    // A bad setting fails before the descriptor is looked at, as on Linux.
    crate::timerfd::duration(&new.it_value)?;
    crate::timerfd::duration(&new.it_interval)?;
    let file = t.fds.get(a.i32(0))?;
    let timer = file.ops_as::<TimerFd>().ok_or(Errno::EINVAL)?;
    if flags & TFD_TIMER_CANCEL_ON_SET != 0 {
        t.kernel
            .log_once("timerfd_settime(TFD_TIMER_CANCEL_ON_SET)");
    }
    let clock_now = (flags & TFD_TIMER_ABSTIME != 0)
        .then(|| super::time::clock_now(t, timer.clock() as i32))
        .transpose()?;
    let old = timer.set(&new, clock_now)?;
    if a.u64(3) != 0 {
        t.mm.write_obj(a.u64(3), &old)?;
    }
    Ok(0)
}

fn timerfd_gettime(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    let timer = file.ops_as::<TimerFd>().ok_or(Errno::EINVAL)?;
    t.mm.write_obj(a.u64(1), &timer.get()).map(|()| 0)
}
