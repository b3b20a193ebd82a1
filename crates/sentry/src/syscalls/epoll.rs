//! epoll_create, epoll_ctl and the epoll_wait family. The instances
//! themselves are `veil_vfs::epoll`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use linux_raw_sys::general::{EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use veil_abi::{EpollEvent, Errno, SysResult, Sysno, Timespec};
use veil_vfs::epoll::{new_epoll, Ctl, Epoll};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

/// How often instances watching host FDs, which cannot wake us, look again.
const REPOLL: Duration = Duration::from_millis(10);
const EVENT_SIZE: u64 = size_of::<EpollEvent>() as u64;
/// Most events one call may ask for (Linux's EP_MAX_EVENTS).
const MAX_EVENTS: i32 = (i32::MAX as u64 / EVENT_SIZE) as i32;
/// The top of user space on x86-64.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

pub(super) fn register(t: &mut Table) {
    const NOTE: &str = "host FDs (the caller's stdio) are re-polled every 10 ms; EPOLLEXCLUSIVE wakes every waiter; EPOLLWAKEUP is ignored";
    t.full(Sysno::epoll_create, epoll_create, &[Int]);
    t.full(Sysno::epoll_create1, epoll_create1, &[Hex]);
    t.partial(Sysno::epoll_ctl, epoll_ctl, &[Fd, Int, Fd, Hex], NOTE);
    t.partial(Sysno::epoll_wait, epoll_wait, &[Fd, Hex, Int, Int], NOTE);
    t.partial(
        Sysno::epoll_pwait,
        epoll_pwait,
        &[Fd, Hex, Int, Int, Hex, UInt],
        NOTE,
    );
    t.partial(
        Sysno::epoll_pwait2,
        epoll_pwait2,
        &[Fd, Hex, Int, Hex, Hex, UInt],
        NOTE,
    );
}

fn create(t: &Task, cloexec: bool) -> SysResult {
    t.fds
        .insert(new_epoll(), cloexec, 0, t.nofile())
        .map(|fd| fd as u64)
}

fn epoll_create(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    create(t, false)
}

fn epoll_create1(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(0);
    if flags & !EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    create(t, flags != 0)
}

fn epoll_ctl(t: &mut Task, a: &Args) -> SysResult {
    let (op, fd) = (a.u32(1), a.i32(2));
    let event = match op {
        EPOLL_CTL_ADD | EPOLL_CTL_MOD => t.mm.read_obj::<EpollEvent>(a.u64(3))?,
        _ => EpollEvent::default(),
    };
    let ep_file = t.fds.get(a.i32(0))?;
    let file = t.fds.get(fd)?;
    if !file.pollable() {
        return Err(Errno::EPERM);
    }
    if Arc::ptr_eq(&ep_file, &file) {
        return Err(Errno::EINVAL);
    }
    let ep = ep_file.ops_as::<Epoll>().ok_or(Errno::EINVAL)?;
    let op = match op {
        EPOLL_CTL_ADD => Ctl::Add(event),
        EPOLL_CTL_MOD => Ctl::Mod(event),
        EPOLL_CTL_DEL => Ctl::Del,
        _ => return Err(Errno::EINVAL),
    };
    ep.ctl(fd, &file, op).map(|()| 0)
}

/// Waits until events are ready, a signal arrives (EINTR: epoll_wait is
/// never restarted) or `timeout` passes (`None`: never); copies the events
/// out.
fn wait(t: &Task, epfd: i32, addr: u64, max: i32, timeout: Option<Duration>) -> SysResult {
    if max <= 0 || max > MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(max as u64 * EVENT_SIZE);
    if end.is_none_or(|end| end > TASK_SIZE) {
        return Err(Errno::EFAULT);
    }
    let file = t.fds.get(epfd)?;
    let ep = file.ops_as::<Epoll>().ok_or(Errno::EINVAL)?;
    let deadline = timeout.map(crate::vdso::host_deadline);
    loop {
        // Registered before looking, so no wake-up is lost in between.
        ep.register(&t.shared.waiter);
        let mut at = addr;
        let mut fault = false;
        let n = ep.collect(max as usize, |ev| {
            let ok = t.mm.write_obj(at, &ev).is_ok();
            at += EVENT_SIZE;
            fault |= !ok;
            ok
        });
        if n > 0 {
            return Ok(n as u64);
        }
        if fault {
            return Err(Errno::EFAULT);
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining == Some(Duration::ZERO) {
            return Ok(0);
        }
        if t.signal_pending() {
            return Err(Errno::EINTR);
        }
        let slice = match file.needs_repoll() {
            true => Some(remaining.map_or(REPOLL, |r| r.min(REPOLL))),
            false => remaining,
        };
        t.block(slice);
    }
}

fn ms_timeout(ms: i32) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

fn epoll_wait(t: &mut Task, a: &Args) -> SysResult {
    wait(t, a.i32(0), a.u64(1), a.i32(2), ms_timeout(a.i32(3)))
}

fn epoll_pwait(t: &mut Task, a: &Args) -> SysResult {
    let timeout = ms_timeout(a.i32(3));
    let mask = super::signal::read_sigmask_arg(t, a.u64(4), a.u64(5))?;
    t.with_sigmask(mask, |t| wait(t, a.i32(0), a.u64(1), a.i32(2), timeout))
}

fn epoll_pwait2(t: &mut Task, a: &Args) -> SysResult {
    let timeout = match a.u64(3) {
        0 => None,
        addr => {
            let ts: Timespec = t.mm.read_obj(addr)?;
            if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
                return Err(Errno::EINVAL);
            }
            Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
        }
    };
    let mask = super::signal::read_sigmask_arg(t, a.u64(4), a.u64(5))?;
    t.with_sigmask(mask, |t| wait(t, a.i32(0), a.u64(1), a.i32(2), timeout))
}
