//! Timers: one sentry thread serves every timer of the sandbox (ITIMER_REAL,
//! timerfd) from a deadline-ordered queue, so timers cost no thread each.
//!
//! A timer schedules an expiry with a token of its choosing; the service
//! calls the timer back with that token when the deadline passes. A timer
//! re-armed or disarmed meanwhile recognises a stale token and ignores it,
//! so cancelling is only a matter of keeping the queue small.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use veil_abi::{Errno, Timespec};

use crate::kernel::Kernel;
use crate::signal::SigInfo;

/// What the service calls when a deadline passes.
pub trait Expiry: Send + Sync {
    /// Runs on the timer thread with no service lock held.
    fn expire(&self, token: u64);
}

/// A scheduled expiry, for cancelling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerKey(Instant, u64);

#[derive(Default)]
struct Queue {
    due: BTreeMap<(Instant, u64), (Weak<dyn Expiry>, u64)>,
    next_seq: u64,
    running: bool,
}

#[derive(Default)]
pub struct TimerService {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl TimerService {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `target.expire(token)` at `at`, unless cancelled first.
    pub fn schedule(
        self: &Arc<Self>,
        at: Instant,
        target: Weak<dyn Expiry>,
        token: u64,
    ) -> TimerKey {
        let mut q = self.lock();
        let key = TimerKey(at, q.next_seq);
        q.next_seq += 1;
        let first = q.due.keys().next().is_none_or(|&(t, _)| at < t);
        q.due.insert((key.0, key.1), (target, token));
        if !q.running {
            let service = self.clone();
            let started = std::thread::Builder::new()
                .name("timers".into())
                .spawn(move || service.run());
            match started {
                Ok(_) => q.running = true,
                Err(e) => tracing::error!("cannot start the timer thread: {e}"),
            }
        }
        drop(q);
        if first {
            self.changed.notify_all();
        }
        key
    }

    pub fn cancel(&self, key: TimerKey) {
        self.lock().due.remove(&(key.0, key.1));
    }

    fn run(&self) {
        let mut q = self.lock();
        loop {
            let now = Instant::now();
            let Some((&(at, seq), _)) = q.due.iter().next() else {
                q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            if at > now {
                q = self
                    .changed
                    .wait_timeout(q, at - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let Some((target, token)) = q.due.remove(&(at, seq)) else {
                continue;
            };
            drop(q);
            if let Some(target) = target.upgrade() {
                target.expire(token);
            }
            q = self.lock();
        }
    }
}

/// The first deadline of a periodic timer after `now`, and how many
/// periods have passed since `deadline` (itself included).
pub fn forward(deadline: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    if now < deadline {
        return (deadline, 0);
    }
    let periods = (now - deadline).as_nanos() / interval.as_nanos().max(1) + 1;
    let periods = u64::try_from(periods).unwrap_or(u64::MAX);
    let step = interval.saturating_mul(u32::try_from(periods).unwrap_or(u32::MAX));
    (deadline + step, periods)
}

/// A valid `timespec` as a duration (EINVAL otherwise).
pub fn duration(ts: &Timespec) -> Result<Duration, Errno> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

pub fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// When a timer set to `value` first expires, on the host's clock: never
/// for zero, `value` from `now`, or, for an absolute `value`, when its
/// clock (which reads `clock_now` now) gets there; a little later than
/// that, as every wait on the host's clock (`vdso::host_deadline`). A time
/// in the past keeps its distance, so periodic timers count the periods
/// missed since.
pub fn first_deadline(
    value: Duration,
    clock_now: Option<Duration>,
    now: Instant,
) -> Option<Instant> {
    if value.is_zero() {
        return None;
    }
    let ahead = match clock_now {
        None => value,
        Some(clock_now) => match value.checked_sub(clock_now) {
            Some(ahead) => ahead,
            None => return Some(now.checked_sub(clock_now - value).unwrap_or(now)),
        },
    };
    Some(now + ahead + crate::vdso::wait_margin(ahead))
}

const SIGALRM: i32 = 14;
/// si_code of signals the kernel itself sends.
const SI_KERNEL: i32 = 0x80;

#[derive(Default)]
struct RealState {
    /// Bumped on every change: the token of the current expiry.
    generation: u64,
    deadline: Option<Instant>,
    interval: Duration,
    key: Option<TimerKey>,
    owner: Option<Owner>,
}

/// Where SIGALRM goes, and the timer itself for the service.
struct Owner {
    kernel: Weak<Kernel>,
    pid: i32,
    me: Weak<dyn Expiry>,
}

/// ITIMER_REAL, the timer behind alarm(2) and setitimer(2): one per process.
#[derive(Default)]
pub struct RealTimer {
    state: Mutex<RealState>,
}

impl RealTimer {
    fn lock(&self) -> MutexGuard<'_, RealState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time left and the interval.
    pub fn get(&self) -> (Duration, Duration) {
        let st = self.lock();
        let left = st.deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        });
        (left, st.interval)
    }

    /// Arms the timer to send SIGALRM to process `pid` after `value` (a
    /// zero value disarms it), then every `interval`. Returns the old setting.
    pub fn set(
        self: &Arc<Self>,
        kernel: &Arc<Kernel>,
        pid: i32,
        value: Duration,
        interval: Duration,
    ) -> (Duration, Duration) {
        let old = self.get();
        let mut st = self.lock();
        if let Some(key) = st.key.take() {
            kernel.timers.cancel(key);
        }
        st.generation += 1;
        st.interval = interval;
        let me: Weak<dyn Expiry> = Arc::downgrade(self) as Weak<RealTimer>;
        st.owner = Some(Owner {
            kernel: Arc::downgrade(kernel),
            pid,
            me: me.clone(),
        });
        st.deadline = (!value.is_zero()).then(|| crate::vdso::host_deadline(value));
        if let Some(at) = st.deadline {
            st.key = Some(kernel.timers.schedule(at, me, st.generation));
        }
        old
    }
}

impl Expiry for RealTimer {
    fn expire(&self, token: u64) {
        let mut st = self.lock();
        let Some(deadline) = st.deadline.filter(|_| st.generation == token) else {
            return;
        };
        let Some(owner) = st.owner.as_ref() else {
            return;
        };
        let Some(kernel) = owner.kernel.upgrade() else {
            return;
        };
        let tg = kernel.processes().get(&owner.pid).cloned();
        if let Some(tg) = tg {
            let mut info = SigInfo::user(SIGALRM, 0, 0);
            info.code = SI_KERNEL;
            kernel.signal_process(&tg, info);
        }
        let me = owner.me.clone();
        st.key = None;
        if st.interval.is_zero() {
            st.deadline = None;
            return;
        }
        // Missed periods coalesce into the one signal, as on Linux.
        let (next, _) = forward(deadline, st.interval, Instant::now());
        st.deadline = Some(next);
        st.key = Some(kernel.timers.schedule(next, me, token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(AtomicU64);

    impl Expiry for Counter {
        fn expire(&self, token: u64) {
            self.0.fetch_add(token, Ordering::SeqCst);
        }
    }

    #[test]
    fn expiries_run_in_deadline_order_and_cancel() {
        let service = Arc::new(TimerService::default());
        let c = Arc::new(Counter(AtomicU64::new(0)));
        let target = || Arc::downgrade(&c) as Weak<dyn Expiry>;
        let now = Instant::now();
        service.schedule(now + Duration::from_millis(30), target(), 1);
        let k = service.schedule(now + Duration::from_millis(10), target(), 100);
        service.schedule(now, target(), 10);
        service.cancel(k);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(c.0.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn forward_counts_missed_periods() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(forward(t0 + ms(5), ms(10), t0), (t0 + ms(5), 0));
        assert_eq!(forward(t0, ms(10), t0), (t0 + ms(10), 1));
        assert_eq!(forward(t0, ms(10), t0 + ms(35)), (t0 + ms(40), 4));
    }
}

/// ITIMER_VIRTUAL (user time, SIGVTALRM) or ITIMER_PROF (user and system
/// time, SIGPROF) of a process: a target in the process's CPU time, which
/// the timer service checks at the earliest wall time the process's
/// threads could reach it.
#[derive(Default)]
pub struct CpuTimer {
    state: Mutex<CpuState>,
}

#[derive(Default)]
struct CpuState {
    generation: u64,
    /// The process CPU time (ns) at which the timer fires.
    target: Option<u64>,
    interval: Duration,
    key: Option<TimerKey>,
    owner: Option<CpuOwner>,
}

struct CpuOwner {
    kernel: Weak<Kernel>,
    tg: Weak<crate::task::ThreadGroup>,
    me: Weak<dyn Expiry>,
    /// ITIMER_PROF rather than ITIMER_VIRTUAL.
    prof: bool,
}

/// How often at least an armed CPU timer is looked at.
const CPU_TIMER_MIN_CHECK: Duration = Duration::from_millis(1);

impl CpuTimer {
    fn lock(&self) -> MutexGuard<'_, CpuState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn usage(kernel: &Kernel, tg: &crate::task::ThreadGroup, prof: bool) -> u64 {
        let c = tg.cpu(kernel);
        if prof {
            c.user_ns + c.sys_ns
        } else {
            c.user_ns
        }
    }

    /// The CPU time left and the interval.
    pub fn get(
        &self,
        kernel: &Kernel,
        tg: &crate::task::ThreadGroup,
        prof: bool,
    ) -> (Duration, Duration) {
        let st = self.lock();
        let left = st.target.map_or(0, |target| {
            // Never zero while armed, as Linux reports a tick at least.
            target.saturating_sub(Self::usage(kernel, tg, prof)).max(1)
        });
        (Duration::from_nanos(left), st.interval)
    }

    /// Arms the timer to fire after `value` more CPU time (zero disarms
    /// it), then every `interval`; returns the old setting.
    pub fn set(
        self: &Arc<Self>,
        kernel: &Arc<Kernel>,
        tg: &Arc<crate::task::ThreadGroup>,
        prof: bool,
        value: Duration,
        interval: Duration,
    ) -> (Duration, Duration) {
        let old = self.get(kernel, tg, prof);
        let mut st = self.lock();
        if let Some(key) = st.key.take() {
            kernel.timers.cancel(key);
        }
        st.generation += 1;
        st.interval = interval;
        st.owner = Some(CpuOwner {
            kernel: Arc::downgrade(kernel),
            tg: Arc::downgrade(tg),
            me: Arc::downgrade(self) as Weak<CpuTimer>,
            prof,
        });
        let now = Self::usage(kernel, tg, prof);
        st.target = (!value.is_zero()).then(|| now.saturating_add(value.as_nanos() as u64));
        Self::schedule_check(&mut st, kernel, tg, now);
        old
    }

    /// Asks the service to look again when the process could first have
    /// used the CPU time left, running on all its threads.
    fn schedule_check(st: &mut CpuState, kernel: &Kernel, tg: &crate::task::ThreadGroup, now: u64) {
        let (Some(target), Some(owner)) = (st.target, st.owner.as_ref()) else {
            return;
        };
        let threads = tg
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let wait = Duration::from_nanos(target.saturating_sub(now) / threads.max(1) as u64);
        let at = Instant::now() + wait.max(CPU_TIMER_MIN_CHECK);
        st.key = Some(kernel.timers.schedule(at, owner.me.clone(), st.generation));
    }
}

impl Expiry for CpuTimer {
    fn expire(&self, token: u64) {
        let mut st = self.lock();
        let Some(owner) = st.owner.as_ref().filter(|_| st.generation == token) else {
            return;
        };
        let (Some(kernel), Some(tg)) = (owner.kernel.upgrade(), owner.tg.upgrade()) else {
            return;
        };
        let prof = owner.prof;
        st.key = None;
        let Some(target) = st.target else { return };
        let now = Self::usage(&kernel, &tg, prof);
        if now >= target {
            st.target = (!st.interval.is_zero())
                .then(|| target.saturating_add(st.interval.as_nanos() as u64));
            let mut info = SigInfo::user(if prof { SIGPROF } else { SIGVTALRM }, 0, 0);
            info.code = SI_KERNEL;
            kernel.signal_process(&tg, info);
        }
        Self::schedule_check(&mut st, &kernel, &tg, now);
    }
}

const SIGVTALRM: i32 = 26;
const SIGPROF: i32 = 27;
