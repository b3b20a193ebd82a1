//! poll, ppoll, select and pselect6: waiting for readiness of several files.

use std::time::{Duration, Instant};

use veil_abi::{Errno, SysResult, Sysno, Timespec, Timeval};
use veil_vfs::wait::events::*;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

/// How often sets holding host FDs, which cannot wake us, are looked at again.
const REPOLL: Duration = Duration::from_millis(10);
const RLIMIT_NOFILE: usize = 7;

/// `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

pub(super) fn register(t: &mut Table) {
    const NOTE: &str = "sets with host FDs are re-polled every 10 ms";
    t.partial(Sysno::poll, poll, &[Hex, UInt, Int], NOTE);
    t.partial(Sysno::ppoll, ppoll, &[Hex, UInt, Hex, Hex, UInt], NOTE);
    t.partial(Sysno::select, select, &[Int, Hex, Hex, Hex, Hex], NOTE);
    t.partial(
        Sysno::pselect6,
        pselect6,
        &[Int, Hex, Hex, Hex, Hex, Hex],
        NOTE,
    );
}

/// Fills in `revents` until at least one file is ready or the timeout
/// (`None`: forever) passes; returns the number of ready entries.
fn wait_ready(t: &Task, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno> {
    let deadline = timeout.map(crate::vdso::host_deadline);
    loop {
        let waiter = &t.shared.waiter;
        let mut ready = 0;
        let mut repoll = false;
        for p in fds.iter_mut() {
            p.revents = 0;
            if p.fd < 0 {
                continue;
            }
            let ev = match t.fds.get(p.fd) {
                Err(_) => POLLNVAL,
                Ok(file) => {
                    repoll |= file.needs_repoll();
                    file.poll(Some(waiter)) & (u32::from(p.events as u16) | POLLERR | POLLHUP)
                }
            };
            if ev != 0 {
                p.revents = ev as i16;
                ready += 1;
            }
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if ready > 0 || remaining == Some(Duration::ZERO) {
            return Ok(ready);
        }
        let slice = if repoll {
            Some(remaining.map_or(REPOLL, |r| r.min(REPOLL)))
        } else {
            remaining
        };
        if t.signal_pending() {
            return Err(Errno::ERESTARTNOHAND);
        }
        t.block(slice);
    }
}

fn nofile_limit(t: &Task) -> u64 {
    t.tg.rlimits.lock().unwrap_or_else(|p| p.into_inner())[RLIMIT_NOFILE].rlim_cur
}

fn read_pollfds(t: &Task, addr: u64, nfds: u64) -> Result<Vec<PollFd>, Errno> {
    if nfds > nofile_limit(t) {
        return Err(Errno::EINVAL);
    }
    let mut fds = vec![PollFd::default(); nfds as usize];
    t.mm.copy_in(addr, fds.as_mut_slice().as_mut_bytes())?;
    Ok(fds)
}

fn finish_poll(t: &Task, addr: u64, fds: &[PollFd], ready: usize) -> SysResult {
    t.mm.copy_out(addr, fds.as_bytes())?;
    Ok(ready as u64)
}

fn poll(t: &mut Task, a: &Args) -> SysResult {
    let mut fds = read_pollfds(t, a.u64(0), a.u64(1))?;
    let timeout = u64::try_from(a.i32(2)).ok().map(Duration::from_millis);
    let ready = wait_ready(t, &mut fds, timeout)?;
    finish_poll(t, a.u64(0), &fds, ready)
}

fn timespec_arg(t: &Task, addr: u64) -> Result<Option<Duration>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)))
}

fn ppoll(t: &mut Task, a: &Args) -> SysResult {
    let mut fds = read_pollfds(t, a.u64(0), a.u64(1))?;
    let timeout = timespec_arg(t, a.u64(2))?;
    let mask = super::signal::read_sigmask_arg(t, a.u64(3), a.u64(4))?;
    let ready = t.with_sigmask(mask, |t| wait_ready(t, &mut fds, timeout))?;
    finish_poll(t, a.u64(0), &fds, ready)
}

/// The three fd_set bitmaps of select, as 64-bit words.
struct FdSets {
    sets: [Option<Vec<u64>>; 3],
}

const SELECT_EVENTS: [u32; 3] = [
    POLLIN | POLLRDNORM | POLLHUP | POLLERR,
    POLLOUT | POLLWRNORM | POLLERR,
    POLLPRI,
];

fn do_select(t: &Task, nfds: i32, addrs: [u64; 3], timeout: Option<Duration>) -> SysResult {
    let nfds = usize::try_from(nfds).map_err(|_| Errno::EINVAL)?;
    if nfds as u64 > nofile_limit(t).max(1024) {
        return Err(Errno::EINVAL);
    }
    let words = nfds.div_ceil(64);
    let mut sets = FdSets {
        sets: [None, None, None],
    };
    for (i, &addr) in addrs.iter().enumerate() {
        if addr != 0 {
            let mut bits = vec![0u64; words];
            t.mm.copy_in(addr, bits.as_mut_slice().as_mut_bytes())?;
            // Bits past nfds are ignored, as Linux does.
            if nfds % 64 != 0 {
                if let Some(last) = bits.last_mut() {
                    *last &= (1u64 << (nfds % 64)) - 1;
                }
            }
            sets.sets[i] = Some(bits);
        }
    }
    let mut pollfds = Vec::new();
    for fd in 0..nfds {
        let mut events = 0u32;
        for (i, set) in sets.sets.iter().enumerate() {
            if set
                .as_ref()
                .is_some_and(|b| b[fd / 64] & (1 << (fd % 64)) != 0)
            {
                events |= SELECT_EVENTS[i];
            }
        }
        if events != 0 {
            t.fds.get(fd as i32)?;
            pollfds.push(PollFd {
                fd: fd as i32,
                events: events as i16,
                revents: 0,
            });
        }
    }
    wait_ready(t, &mut pollfds, timeout)?;
    let mut count = 0;
    for set in sets.sets.iter_mut().flatten() {
        set.iter_mut().for_each(|w| *w = 0);
    }
    for p in &pollfds {
        let fd = p.fd as usize;
        let rev = u32::from(p.revents as u16);
        for (i, set) in sets.sets.iter_mut().enumerate() {
            let wanted = u32::from(p.events as u16) & SELECT_EVENTS[i];
            if let Some(bits) = set {
                if wanted != 0 && rev & SELECT_EVENTS[i] != 0 {
                    bits[fd / 64] |= 1 << (fd % 64);
                    count += 1;
                }
            }
        }
    }
    for (i, &addr) in addrs.iter().enumerate() {
        if let Some(bits) = &sets.sets[i] {
            t.mm.copy_out(addr, bits.as_bytes())?;
        }
    }
    Ok(count)
}

fn select(t: &mut Task, a: &Args) -> SysResult {
    let timeout = match a.u64(4) {
        0 => None,
        addr => {
            let tv: Timeval = t.mm.read_obj(addr)?;
            if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(Errno::EINVAL);
            }
            Some(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
        }
    };
    let start = Instant::now();
    let n = do_select(t, a.i32(0), [a.u64(1), a.u64(2), a.u64(3)], timeout)?;
    // Linux's select reports the time left in the timeval.
    if let Some(total) = timeout {
        let left = total.saturating_sub(start.elapsed());
        let tv = Timeval {
            tv_sec: left.as_secs() as i64,
            tv_usec: i64::from(left.subsec_micros()),
        };
        t.mm.write_obj(a.u64(4), &tv)?;
    }
    Ok(n)
}

fn pselect6(t: &mut Task, a: &Args) -> SysResult {
    let timeout = timespec_arg(t, a.u64(4))?;
    let mask = match a.u64(5) {
        0 => None,
        addr => {
            // struct { const sigset_t *ss; size_t ss_len; }
            let [mask, size]: [u64; 2] = t.mm.read_obj(addr)?;
            super::signal::read_sigmask_arg(t, mask, size)?
        }
    };
    let start = Instant::now();
    let sets = [a.u64(1), a.u64(2), a.u64(3)];
    let n = t.with_sigmask(mask, |t| do_select(t, a.i32(0), sets, timeout))?;
    // Like select's timeval, the timespec reports the time left (glibc's
    // select is built on pselect6 and relies on it).
    if let Some(total) = timeout {
        let left = total.saturating_sub(start.elapsed());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        t.mm.write_obj(a.u64(4), &ts)?;
    }
    Ok(n)
}
