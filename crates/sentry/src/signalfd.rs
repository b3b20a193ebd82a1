//! signalfd: reads take the reading task's pending signals of a mask as
//! `struct signalfd_siginfo` records. Like Linux's, the file answers for
//! whichever task reads or polls it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use veil_abi::{Errno, SignalfdSiginfo};
use veil_vfs::wait::events::*;
use veil_vfs::wait::Waiter;
use veil_vfs::FileOps;
use zerocopy::IntoBytes;

use crate::signal::{current, SigInfo};

const RECORD: usize = size_of::<SignalfdSiginfo>();

/// The FileOps of a signalfd.
pub struct SignalFd {
    mask: AtomicU64,
}

impl SignalFd {
    pub fn new(mask: u64) -> SignalFd {
        SignalFd {
            mask: AtomicU64::new(mask),
        }
    }

    /// signalfd on an existing descriptor: a new mask, which may make the
    /// file readable.
    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask, Ordering::Relaxed);
        if let Some(c) = current() {
            c.tg.signals.waiters.notify_events(POLLIN);
        }
    }
}

impl FileOps for SignalFd {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    /// As many records as fit; never blocks: the sentry waits for
    /// readiness, interruptibly.
    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        if buf.len() < RECORD {
            return Err(Errno::EINVAL);
        }
        let c = current().ok_or(Errno::EAGAIN)?;
        let mask = self.mask.load(Ordering::Relaxed);
        let mut done = 0;
        for out in buf.chunks_exact_mut(RECORD) {
            // The thread's own signals first, then the process's.
            let taken = c.task.pending().take(mask);
            let Some(info) = taken.or_else(|| c.tg.signals.pending().take(mask)) else {
                break;
            };
            out.copy_from_slice(record(&info).as_bytes());
            done += RECORD;
        }
        match done {
            0 => Err(Errno::EAGAIN),
            n => Ok(n),
        }
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        let Some(c) = current() else {
            return 0;
        };
        if let Some(w) = waiter {
            c.tg.signals.waiters.register(w);
        }
        let pending = c.task.pending_bits() | c.tg.signals.pending().bits();
        match pending & self.mask.load(Ordering::Relaxed) {
            0 => 0,
            _ => POLLIN | POLLRDNORM,
        }
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Which union member of a `siginfo_t` is live (Linux's siginfo_layout).
enum Layout {
    Kill,
    Timer,
    Poll,
    Fault,
    Child,
    Rt,
    Sys,
}

fn layout(signo: i32, code: i32) -> Layout {
    const SI_KERNEL: i32 = 0x80;
    const SI_TIMER: i32 = -2;
    const SI_SIGIO: i32 = -5;
    // The highest si_code each signal defines for itself.
    let specific = match signo {
        4 => Some((11, Layout::Fault)),  // SIGILL: ILL_BADIADDR
        5 => Some((6, Layout::Fault)),   // SIGTRAP: TRAP_PERF
        7 => Some((5, Layout::Fault)),   // SIGBUS: BUS_MCEERR_AO
        8 => Some((15, Layout::Fault)),  // SIGFPE: FPE_FLTUNK..
        11 => Some((10, Layout::Fault)), // SIGSEGV: SEGV_CPERR
        17 => Some((6, Layout::Child)),  // SIGCHLD: CLD_CONTINUED
        29 => Some((6, Layout::Poll)),   // SIGPOLL: POLL_HUP
        31 => Some((1, Layout::Sys)),    // SIGSYS: SYS_SECCOMP
        _ => None,
    };
    if code > 0 && code < SI_KERNEL {
        match specific {
            Some((limit, layout)) if code <= limit => layout,
            _ if code <= 6 => Layout::Poll,
            _ => Layout::Kill,
        }
    } else if code == SI_TIMER {
        Layout::Timer
    } else if code == SI_SIGIO {
        Layout::Poll
    } else if code < 0 {
        Layout::Rt
    } else {
        Layout::Kill
    }
}

/// A pending signal as signalfd reports it (Linux's signalfd_copyinfo).
fn record(info: &SigInfo) -> SignalfdSiginfo {
    let f = &info.fields;
    let (lo, hi) = (f[0] as u32, (f[0] >> 32) as u32);
    let mut r = SignalfdSiginfo {
        ssi_signo: info.signo as u32,
        ssi_errno: info.errno,
        ssi_code: info.code,
        ..SignalfdSiginfo::default()
    };
    match layout(info.signo, info.code) {
        Layout::Kill => (r.ssi_pid, r.ssi_uid) = (lo, hi),
        Layout::Timer => {
            (r.ssi_tid, r.ssi_overrun) = (lo, hi);
            (r.ssi_ptr, r.ssi_int) = (f[1], f[1] as i32);
        }
        Layout::Poll => (r.ssi_band, r.ssi_fd) = (f[0] as u32, f[1] as i32),
        Layout::Fault => r.ssi_addr = f[0],
        Layout::Child => {
            (r.ssi_pid, r.ssi_uid) = (lo, hi);
            r.ssi_status = f[1] as i32;
            (r.ssi_utime, r.ssi_stime) = (f[2], f[3]);
        }
        Layout::Rt => {
            (r.ssi_pid, r.ssi_uid) = (lo, hi);
            (r.ssi_ptr, r.ssi_int) = (f[1], f[1] as i32);
        }
        Layout::Sys => {
            r.ssi_call_addr = f[0];
            (r.ssi_syscall, r.ssi_arch) = (f[1] as i32, (f[1] >> 32) as u32);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_the_siginfo_layout() {
        let kill = record(&SigInfo::user(10, 42, 1000));
        assert_eq!((kill.ssi_signo, kill.ssi_pid, kill.ssi_uid), (10, 42, 1000));
        let child = record(&SigInfo::child(
            17,
            7,
            0,
            crate::task::ExitStatus::Exited(3),
        ));
        assert_eq!((child.ssi_code, child.ssi_pid, child.ssi_status), (1, 7, 3));
        let fault = record(&SigInfo::fault(11, 1, 0x1000));
        assert_eq!((fault.ssi_addr, fault.ssi_pid), (0x1000, 0));
        let mut tkill = SigInfo::user(12, 5, 0);
        tkill.code = -6;
        assert_eq!(record(&tkill).ssi_pid, 5);
    }
}
