//! ITIMER_REAL, the timer behind alarm(2) and setitimer(2): one per
//! process, served by a sentry thread that sleeps until it is due.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::kernel::Kernel;
use crate::signal::SigInfo;

const SIGALRM: i32 = 14;
/// si_code of signals the kernel itself sends.
const SI_KERNEL: i32 = 0x80;

#[derive(Default)]
struct State {
    /// Bumped on every change, so that a superseded thread stops.
    generation: u64,
    deadline: Option<Instant>,
    interval: Duration,
}

#[derive(Default)]
pub struct RealTimer {
    state: Mutex<State>,
    changed: Condvar,
}

impl RealTimer {
    fn lock(&self) -> MutexGuard<'_, State> {
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
        st.generation += 1;
        st.interval = interval;
        st.deadline = (!value.is_zero()).then(|| Instant::now() + value);
        let generation = st.generation;
        let armed = st.deadline.is_some();
        drop(st);
        self.changed.notify_all();
        if armed {
            let (timer, kernel) = (self.clone(), kernel.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("itimer-{pid}"))
                .spawn(move || timer.serve(&kernel, pid, generation));
            if spawned.is_err() {
                tracing::error!("cannot start a timer thread for process {pid}");
            }
        }
        old
    }

    fn serve(&self, kernel: &Kernel, pid: i32, generation: u64) {
        let mut st = self.lock();
        loop {
            if st.generation != generation {
                return;
            }
            let Some(deadline) = st.deadline else { return };
            let now = Instant::now();
            if now < deadline {
                st = self
                    .changed
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let tg = kernel.processes().get(&pid).cloned();
            if let Some(tg) = tg {
                let mut info = SigInfo::user(SIGALRM, 0, 0);
                info.code = SI_KERNEL;
                kernel.signal_process(&tg, info);
            }
            if st.interval.is_zero() {
                st.deadline = None;
                return;
            }
            st.deadline = Some(deadline + st.interval);
        }
    }
}
