//! POSIX per-process timers (timer_create and friends): each expiry sends
//! a signal to the process or to one of its threads. As on Linux, a timer
//! has at most one signal queued: expiries while it is pending count as
//! overruns in that signal's siginfo.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use veil_abi::{Errno, Itimerspec};

use crate::kernel::Kernel;
use crate::signal::{Pending, SigInfo};
use crate::task::ThreadGroup;
use crate::timer::{first_deadline, forward, timespec, Expiry, TimerKey};

/// si_code of timer signals.
pub const SI_TIMER: i32 = -2;
/// Timers a process may own at once (Linux bounds them by RLIMIT_SIGPENDING).
const MAX_TIMERS: usize = 4096;

/// Where an expiry's signal goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// SIGEV_NONE: nothing; the timer can only be read.
    None,
    /// SIGEV_SIGNAL: the process.
    Process { signo: i32 },
    /// SIGEV_THREAD_ID: one thread.
    Thread { signo: i32, tid: i32 },
}

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    interval: Duration,
    /// Bumped on every setting: the token of the current expiry.
    generation: u64,
    key: Option<TimerKey>,
    /// The overrun count of the last signal delivered.
    overrun: i32,
}

pub struct PosixTimer {
    id: i32,
    clock: rustix::time::ClockId,
    notify: Notify,
    value: u64,
    tg: Weak<ThreadGroup>,
    kernel: Weak<Kernel>,
    state: Mutex<State>,
    me: Weak<PosixTimer>,
}

impl PosixTimer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The remaining time and the interval (timer_gettime).
    pub fn get(&self) -> Itimerspec {
        let st = self.lock();
        let left = st.deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        });
        Itimerspec {
            it_interval: timespec(st.interval),
            // An armed timer never reports zero left, as Linux rounds up.
            it_value: timespec(if st.deadline.is_some() && left.is_zero() {
                Duration::from_nanos(1)
            } else {
                left
            }),
        }
    }

    /// The clock the timer counts on.
    pub fn clock(&self) -> rustix::time::ClockId {
        self.clock
    }

    /// timer_settime: the old setting, then the new one in force. A signal
    /// of the old setting still pending is dropped, as Linux (6.13 on)
    /// drops the stale signals of re-armed timers.
    pub fn set(
        &self,
        kernel: &Kernel,
        value: Duration,
        interval: Duration,
        clock_now: Option<Duration>,
    ) -> Itimerspec {
        let old = self.get();
        self.take_back_signal(kernel);
        let mut st = self.lock();
        if let Some(key) = st.key.take() {
            kernel.timers.cancel(key);
        }
        st.generation += 1;
        st.interval = interval;
        st.deadline = first_deadline(value, clock_now, Instant::now());
        if let Some(at) = st.deadline {
            let me: Weak<dyn Expiry> = self.me.clone();
            st.key = Some(kernel.timers.schedule(at, me, st.generation));
        }
        old
    }

    pub fn overrun(&self) -> i32 {
        self.lock().overrun
    }

    /// Stops the timer for good and takes back its pending signal, as
    /// Linux frees a deleted timer's queued signal.
    fn disarm(&self, kernel: &Kernel) {
        {
            let mut st = self.lock();
            st.generation += 1;
            st.deadline = None;
            if let Some(key) = st.key.take() {
                kernel.timers.cancel(key);
            }
        }
        self.take_back_signal(kernel);
    }

    fn take_back_signal(&self, kernel: &Kernel) {
        match self.notify {
            Notify::None => {}
            Notify::Process { .. } => {
                if let Some(tg) = self.tg.upgrade() {
                    tg.signals.pending().remove_where(|i| self.is_mine(i));
                }
            }
            Notify::Thread { tid, .. } => {
                if let Some(task) = kernel.task(tid) {
                    task.pending().remove_where(|i| self.is_mine(i));
                }
            }
        }
    }

    /// Sends the expiry signal, or counts `periods` as overruns of the one
    /// still pending.
    fn fire(&self, kernel: &Kernel, tg: &ThreadGroup, periods: u64) -> i32 {
        let (signo, tid) = match self.notify {
            Notify::None => return 0,
            Notify::Process { signo } => (signo, None),
            Notify::Thread { signo, tid } => (signo, Some(tid)),
        };
        let extra = i32::try_from(periods.saturating_sub(1)).unwrap_or(i32::MAX);
        let bump = |p: &mut Pending| p.update(|i| self.is_mine(i), |i| add_overrun(i, periods));
        let merged = match tid {
            None => bump(&mut tg.signals.pending()),
            Some(tid) => kernel.task(tid).and_then(|t| bump(&mut t.pending())),
        };
        if let Some(overrun) = merged {
            return overrun;
        }
        let info = self.siginfo(signo, extra);
        match tid.and_then(|tid| kernel.task(tid)) {
            Some(task) => kernel.signal_thread(tg, &task, info),
            None if tid.is_none() => kernel.signal_process(tg, info),
            // The target thread is gone: the signal goes nowhere.
            None => {}
        }
        extra
    }

    fn siginfo(&self, signo: i32, overrun: i32) -> SigInfo {
        let mut info = SigInfo::user(signo, 0, 0);
        info.code = SI_TIMER;
        info.fields[0] = u64::from(self.id as u32) | (u64::from(overrun as u32) << 32);
        info.fields[1] = self.value;
        info
    }

    fn is_mine(&self, info: &SigInfo) -> bool {
        info.code == SI_TIMER
            && info.fields[0] as u32 == self.id as u32
            && info.fields[1] == self.value
    }
}

/// Adds `periods` overruns to a pending timer signal; returns the count.
fn add_overrun(info: &mut SigInfo, periods: u64) -> i32 {
    let old = (info.fields[0] >> 32) as u32 as i32;
    let new = old.saturating_add(i32::try_from(periods).unwrap_or(i32::MAX));
    info.fields[0] = (info.fields[0] & 0xffff_ffff) | (u64::from(new as u32) << 32);
    new
}

impl Expiry for PosixTimer {
    fn expire(&self, token: u64) {
        let (Some(kernel), Some(tg)) = (self.kernel.upgrade(), self.tg.upgrade()) else {
            return;
        };
        let mut st = self.lock();
        let Some(deadline) = st.deadline.filter(|_| st.generation == token) else {
            return;
        };
        let now = Instant::now();
        let periods = if st.interval.is_zero() {
            st.deadline = None;
            1
        } else {
            let (next, periods) = forward(deadline, st.interval, now);
            st.deadline = Some(next);
            let me: Weak<dyn Expiry> = self.me.clone();
            st.key = Some(kernel.timers.schedule(next, me, token));
            periods
        };
        drop(st);
        let overrun = self.fire(&kernel, &tg, periods.max(1));
        self.lock().overrun = overrun;
    }
}

/// A process's POSIX timers, by ID.
#[derive(Default)]
pub struct PosixTimers {
    timers: Mutex<BTreeMap<i32, Arc<PosixTimer>>>,
}

impl PosixTimers {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<i32, Arc<PosixTimer>>> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a timer; its ID is the lowest free one. `value` is the
    /// sigevent's sigval (the ID itself when the caller gave no sigevent).
    pub fn create(
        &self,
        kernel: &Arc<Kernel>,
        tg: &Arc<ThreadGroup>,
        clock: rustix::time::ClockId,
        notify: Notify,
        value: Option<u64>,
    ) -> Result<i32, Errno> {
        let mut timers = self.lock();
        if timers.len() >= MAX_TIMERS {
            return Err(Errno::EAGAIN);
        }
        let id = (0..)
            .find(|i| !timers.contains_key(i))
            .ok_or(Errno::EAGAIN)?;
        let timer = Arc::new_cyclic(|me| PosixTimer {
            id,
            clock,
            notify,
            value: value.unwrap_or(id as u64),
            tg: Arc::downgrade(tg),
            kernel: Arc::downgrade(kernel),
            state: Mutex::default(),
            me: me.clone(),
        });
        timers.insert(id, timer);
        Ok(id)
    }

    pub fn get(&self, id: i32) -> Result<Arc<PosixTimer>, Errno> {
        self.lock().get(&id).cloned().ok_or(Errno::EINVAL)
    }

    pub fn delete(&self, kernel: &Kernel, id: i32) -> Result<(), Errno> {
        let timer = self.lock().remove(&id).ok_or(Errno::EINVAL)?;
        timer.disarm(kernel);
        Ok(())
    }

    /// Deletes every timer (exec and exit).
    pub fn clear(&self, kernel: &Kernel) {
        let all = std::mem::take(&mut *self.lock());
        for timer in all.values() {
            timer.disarm(kernel);
        }
    }
}
