//! Waiting for children: wait4 and waitid report exits (reaping zombies),
//! stops and continues.

use std::sync::Arc;

use veil_abi::{Errno, Rusage, SysResult, Sysno};

use super::strace::Arg::*;
use super::usage::{reaped_usage, rusage};
use super::{Args, Table};
use crate::signal::SIGCHLD;
use crate::sigsend::WaitReport;
use crate::task::{ExitStatus, Task, ThreadGroup};

const WNOHANG: u32 = 1;
/// WUNTRACED for wait4, WSTOPPED for waitid.
const WSTOPPED: u32 = 2;
const WEXITED: u32 = 4;
const WCONTINUED: u32 = 8;
const WNOWAIT: u32 = 0x0100_0000;
const WNOTHREAD: u32 = 0x2000_0000;
const WALL: u32 = 0x4000_0000;
const WCLONE: u32 = 0x8000_0000;
const WAIT4_OPTIONS: u32 = WNOHANG | WSTOPPED | WCONTINUED | WNOTHREAD | WALL | WCLONE;
const WAITID_OPTIONS: u32 = WAIT4_OPTIONS | WEXITED | WNOWAIT;

/// waitid's idtype.
const P_ALL: u32 = 0;
const P_PID: u32 = 1;
const P_PGID: u32 = 2;
const P_PIDFD: u32 = 3;

/// SIGCHLD si_code values.
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_DUMPED: i32 = 3;
const CLD_STOPPED: i32 = 5;
const CLD_CONTINUED: i32 = 6;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::wait4, wait4, &[Int, Hex, Hex, Hex]);
    t.full(Sysno::waitid, waitid, &[Int, Int, Hex, Hex, Hex]);
}

/// Which children a wait is for.
#[derive(Clone, Copy)]
enum Which {
    All,
    Pid(i32),
    Pgid(i32),
}

/// What a wait found.
#[derive(Clone, Copy)]
enum Event {
    Exited(ExitStatus),
    Stopped(i32),
    Continued,
}

impl Event {
    /// The status word wait4 stores, as WIFEXITED and friends decode it.
    fn status_word(self) -> i32 {
        match self {
            Event::Exited(status) => status.wait_status(),
            Event::Stopped(sig) => (sig << 8) | 0x7f,
            Event::Continued => 0xffff,
        }
    }

    /// waitid's si_code and si_status.
    fn code_and_status(self) -> (i32, i32) {
        match self {
            Event::Exited(ExitStatus::Exited(code)) => (CLD_EXITED, code & 0xff),
            Event::Exited(ExitStatus::Signaled { signo, core }) => {
                (if core { CLD_DUMPED } else { CLD_KILLED }, signo)
            }
            Event::Stopped(sig) => (CLD_STOPPED, sig),
            Event::Continued => (CLD_CONTINUED, crate::signal::SIGCONT),
        }
    }
}

/// What a wait found: the child, what happened, and its resource usage
/// (its own and its reaped children's).
struct Found {
    pid: i32,
    /// The child's real UID.
    uid: u32,
    event: Event,
    usage: Rusage,
}

/// Waits for a child matching `which` to have something to report under
/// `options`; reaping a zombie adds its usage to the caller's children's.
/// `Ok(None)`: WNOHANG and nothing yet.
fn do_wait(t: &mut Task, which: Which, options: u32) -> Result<Option<Found>, Errno> {
    let kernel = t.kernel.clone();
    loop {
        // Registered before looking, so that a change in between wakes us.
        kernel.child_events.register(&t.shared.waiter);
        let children: Vec<Arc<ThreadGroup>> = kernel
            .processes()
            .values()
            .filter(|c| c.parent_pid() == t.tg.pid && selects(c, which, options))
            .cloned()
            .collect();
        if children.is_empty() {
            return Err(Errno::ECHILD);
        }
        for c in &children {
            if let Some(event) = consider(c, options) {
                let (cpu, maxrss) = reaped_usage(c);
                // Only the waiter that removes the zombie charges its usage.
                let reaped = matches!(event, Event::Exited(_))
                    && options & WNOWAIT == 0
                    && kernel.processes().remove(&c.pid).is_some();
                if reaped {
                    *t.tg.children_cpu.lock().unwrap_or_else(|p| p.into_inner()) += cpu;
                    t.tg.children_maxrss
                        .fetch_max(maxrss, std::sync::atomic::Ordering::Relaxed);
                }
                return Ok(Some(Found {
                    pid: c.pid,
                    uid: kernel.uid_of(c),
                    event,
                    usage: rusage(cpu, maxrss),
                }));
            }
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        // A child's exit wins over the signal it raised, as on Linux.
        if t.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        t.block(None);
    }
}

/// Whether child `c` is one `which` and the clone options select: without
/// __WALL, __WCLONE picks exactly the children that report with a signal
/// other than SIGCHLD.
fn selects(c: &ThreadGroup, which: Which, options: u32) -> bool {
    let matches = match which {
        Which::All => true,
        Which::Pid(p) => c.pid == p,
        Which::Pgid(g) => c.pgid() == g,
    };
    let clone_child = c.exit_signal.load(std::sync::atomic::Ordering::Relaxed) != SIGCHLD;
    matches && (options & WALL != 0 || clone_child == (options & WCLONE != 0))
}

/// What child `c` has to report under `options`, consuming a stop or
/// continue report unless WNOWAIT.
fn consider(c: &ThreadGroup, options: u32) -> Option<Event> {
    if let Some(status) = *c.exit.lock().unwrap_or_else(|p| p.into_inner()) {
        return (options & WEXITED != 0).then_some(Event::Exited(status));
    }
    let mut st = c.signals.stop();
    let event = match st.report? {
        WaitReport::Stopped(sig) if options & WSTOPPED != 0 => Event::Stopped(sig),
        WaitReport::Continued if options & WCONTINUED != 0 => Event::Continued,
        _ => return None,
    };
    if options & WNOWAIT == 0 {
        st.report = None;
    }
    Some(event)
}

fn wait4(t: &mut Task, a: &Args) -> SysResult {
    let (pid, status_addr, options) = (a.i32(0), a.u64(1), a.u32(2));
    if options & !WAIT4_OPTIONS != 0 || pid == i32::MIN {
        return Err(Errno::EINVAL);
    }
    let which = match pid {
        -1 => Which::All,
        0 => Which::Pgid(t.tg.pgid()),
        p if p < 0 => Which::Pgid(-p),
        p => Which::Pid(p),
    };
    let Some(found) = do_wait(t, which, options | WEXITED)? else {
        return Ok(0);
    };
    if status_addr != 0 {
        t.mm.write_obj(status_addr, &found.event.status_word())?;
    }
    if a.u64(3) != 0 {
        t.mm.write_obj(a.u64(3), &found.usage)?;
    }
    Ok(found.pid as u64)
}

fn waitid(t: &mut Task, a: &Args) -> SysResult {
    let (idtype, id, infop, options) = (a.u32(0), a.i32(1), a.u64(2), a.u32(3));
    if options & !WAITID_OPTIONS != 0 || options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let mut nonblocking_pidfd = false;
    let which = match idtype {
        P_ALL => Which::All,
        P_PID if id > 0 => Which::Pid(id),
        P_PGID if id == 0 => Which::Pgid(t.tg.pgid()),
        P_PGID if id > 0 => Which::Pgid(id),
        P_PIDFD => {
            let (process, nonblocking) = super::pidfd::process_of(t, id)?;
            nonblocking_pidfd = nonblocking;
            Which::Pid(process.pid)
        }
        _ => return Err(Errno::EINVAL),
    };
    // A non-blocking pidfd makes the wait a poll that says EAGAIN.
    let options = if nonblocking_pidfd {
        options | WNOHANG
    } else {
        options
    };
    let found = do_wait(t, which, options)?;
    if found.is_none() && nonblocking_pidfd && a.u32(3) & WNOHANG == 0 {
        return Err(Errno::EAGAIN);
    }
    if infop != 0 {
        // Linux stores these fields only, zeros after a WNOHANG miss.
        let (signo, code, pid, uid, status) = match &found {
            Some(f) => {
                let (code, status) = f.event.code_and_status();
                (SIGCHLD, code, f.pid, f.uid, status)
            }
            None => (0, 0, 0, 0, 0),
        };
        t.mm.write_obj(infop, &[signo, 0, code])?;
        t.mm.write_obj(infop + 16, &[pid as u32, uid, status as u32])?;
    }
    if a.u64(4) != 0 {
        let usage = found.map_or_else(Rusage::default, |f| f.usage);
        t.mm.write_obj(a.u64(4), &usage)?;
    }
    Ok(0)
}
