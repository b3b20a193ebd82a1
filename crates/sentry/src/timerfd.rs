//! timerfd: a timer whose expirations a read collects as a count.
//!
//! Expirations are counted lazily from the deadline and the interval when
//! the file is read, polled or queried, so the count is exact however late
//! anyone looks. The timer service only has to wake pollers at each
//! expiration; for very short intervals it does so at most once a
//! millisecond.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use veil_abi::{Errno, Itimerspec};
use veil_vfs::wait::events::*;
use veil_vfs::wait::{WaitQueue, Waiter};
use veil_vfs::FileOps;

pub use crate::timer::duration;
use crate::timer::{first_deadline, forward, timespec, Expiry, TimerKey, TimerService};

/// The shortest gap between two wake-ups of a periodic timer's pollers.
const MIN_WAKE_GAP: Duration = Duration::from_millis(1);

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    interval: Duration,
    /// Expirations counted and not yet read.
    ticks: u64,
    /// Bumped on every setting: the token of the current expiry.
    generation: u64,
    key: Option<TimerKey>,
}

impl State {
    /// Counts the expirations up to `now` and moves the deadline past it.
    fn advance(&mut self, now: Instant) {
        let Some(deadline) = self.deadline.filter(|&d| d <= now) else {
            return;
        };
        if self.interval.is_zero() {
            self.deadline = None;
            self.ticks = self.ticks.saturating_add(1);
        } else {
            let (next, periods) = forward(deadline, self.interval, now);
            self.deadline = Some(next);
            self.ticks = self.ticks.saturating_add(periods);
        }
    }
}

struct Timer {
    state: Mutex<State>,
    waiters: WaitQueue,
    service: Arc<TimerService>,
    me: Weak<Timer>,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule(&self, st: &mut State, at: Instant) {
        let me: Weak<dyn Expiry> = self.me.clone();
        st.key = Some(self.service.schedule(at, me, st.generation));
    }
}

impl Expiry for Timer {
    fn expire(&self, token: u64) {
        let mut st = self.lock();
        if st.generation != token {
            return;
        }
        let now = Instant::now();
        st.advance(now);
        st.key = None;
        if let Some(next) = st.deadline {
            self.schedule(&mut st, next.max(now + MIN_WAKE_GAP));
        }
        drop(st);
        self.waiters.notify_events(POLLIN);
    }
}

/// The FileOps of a timerfd.
pub struct TimerFd {
    /// The clock of absolute settings.
    clock: rustix::time::ClockId,
    timer: Arc<Timer>,
}

impl TimerFd {
    pub fn new(clock: rustix::time::ClockId, service: Arc<TimerService>) -> TimerFd {
        let timer = Arc::new_cyclic(|me| Timer {
            state: Mutex::default(),
            waiters: WaitQueue::default(),
            service,
            me: me.clone(),
        });
        TimerFd { clock, timer }
    }

    /// timerfd_gettime: the time to the next expiration and the interval.
    pub fn get(&self) -> Itimerspec {
        let mut st = self.timer.lock();
        let now = Instant::now();
        st.advance(now);
        Itimerspec {
            it_interval: timespec(st.interval),
            it_value: timespec(st.deadline.map_or(Duration::ZERO, |d| d - now)),
        }
    }

    /// timerfd_settime: arms the timer to expire at `new.it_value` (zero
    /// disarms it), a time on its clock if given the clock's time now
    /// (`clock_now`), from now otherwise,
    /// then every `new.it_interval`; the count starts again. Returns the old
    /// setting.
    /// The clock the timer counts on.
    pub fn clock(&self) -> rustix::time::ClockId {
        self.clock
    }

    pub fn set(&self, new: &Itimerspec, clock_now: Option<Duration>) -> Result<Itimerspec, Errno> {
        let value = duration(&new.it_value)?;
        let interval = duration(&new.it_interval)?;
        let first = first_deadline(value, clock_now, Instant::now());
        Ok(self.arm(first, interval))
    }

    fn arm(&self, first: Option<Instant>, interval: Duration) -> Itimerspec {
        let old = self.get();
        let timer = &self.timer;
        let mut st = timer.lock();
        if let Some(key) = st.key.take() {
            timer.service.cancel(key);
        }
        st.generation += 1;
        st.ticks = 0;
        st.deadline = first;
        st.interval = interval;
        if let Some(at) = first {
            timer.schedule(&mut st, at);
        }
        drop(st);
        timer.waiters.notify();
        old
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        if let Some(key) = self.timer.lock().key.take() {
            self.timer.service.cancel(key);
        }
    }
}

impl FileOps for TimerFd {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    /// Never blocks: the sentry waits for readiness, interruptibly.
    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        let out = buf.get_mut(..8).ok_or(Errno::EINVAL)?;
        let mut st = self.timer.lock();
        st.advance(Instant::now());
        if st.ticks == 0 {
            return Err(Errno::EAGAIN);
        }
        out.copy_from_slice(&st.ticks.to_ne_bytes());
        st.ticks = 0;
        Ok(8)
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.timer.waiters.register(w);
        }
        let mut st = self.timer.lock();
        st.advance(Instant::now());
        match st.ticks {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use super::*;
    use veil_abi::Timespec;

    #[test]
    fn periodic_expirations_are_counted() {
        let tfd = TimerFd::new(rustix::time::ClockId::Monotonic, Arc::default());
        let mut buf = [0u8; 8];
        assert_eq!(tfd.read(&mut buf, 0), Err(Errno::EAGAIN));
        let every = Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        let setting = Itimerspec {
            it_interval: every,
            it_value: Timespec {
                tv_sec: 0,
                tv_nsec: 1,
            },
        };
        tfd.set(&setting, None).unwrap();
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(tfd.read(&mut buf, 0), Ok(8));
        let n = u64::from_ne_bytes(buf);
        assert!((3..=5).contains(&n), "{n} expirations");
        let it = tfd.get();
        assert_eq!(it.it_interval.tv_nsec, 10_000_000);
        assert!(it.it_value.tv_nsec <= 10_000_000);
        tfd.set(&Itimerspec::default(), None).unwrap();
        assert_eq!(tfd.get(), Itimerspec::default());
        let bad = Itimerspec {
            it_value: Timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000_000,
            },
            ..setting
        };
        assert_eq!(tfd.set(&bad, None), Err(Errno::EINVAL));
        assert_eq!(tfd.poll(None), 0);
    }
}
