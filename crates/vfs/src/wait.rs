//! Readiness notification: pollable files wake the waiters registered on
//! their queue whenever their state changes.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

/// poll(2) event bits.
pub mod events {
    pub const POLLIN: u32 = 0x001;
    pub const POLLPRI: u32 = 0x002;
    pub const POLLOUT: u32 = 0x004;
    pub const POLLERR: u32 = 0x008;
    pub const POLLHUP: u32 = 0x010;
    pub const POLLNVAL: u32 = 0x020;
    pub const POLLRDNORM: u32 = 0x040;
    pub const POLLWRNORM: u32 = 0x100;
}

/// Who a wake-up concerns: a set of poll(2) event bits, or `ALL` for any
/// change (Linux's wake-up without a key).
pub const ALL: u32 = 0;

type Callback = Box<dyn Fn(u32) + Send + Sync>;

/// One blocked poller, or a callback that readiness changes run (how epoll
/// learns of them, as Linux's wait-queue entries with a function).
#[derive(Default)]
pub struct Waiter {
    woken: Mutex<bool>,
    cond: Condvar,
    callback: Option<Callback>,
}

impl Waiter {
    pub fn new() -> Arc<Waiter> {
        Arc::new(Waiter::default())
    }

    /// A waiter that runs `f` with the events of each wake-up instead of
    /// waking a sleeper. It runs under the notifying queue's lock, so it must
    /// only take locks that are never held while notifying that queue.
    pub fn with_callback(f: impl Fn(u32) + Send + Sync + 'static) -> Arc<Waiter> {
        Arc::new(Waiter {
            callback: Some(Box::new(f)),
            ..Waiter::default()
        })
    }

    /// Sleeps until woken or `timeout` passes (`None`: no limit).
    pub fn wait(&self, timeout: Option<Duration>) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        while !*woken {
            match timeout {
                Some(t) => {
                    let (w, res) = self
                        .cond
                        .wait_timeout(woken, t)
                        .unwrap_or_else(PoisonError::into_inner);
                    woken = w;
                    if res.timed_out() {
                        break;
                    }
                }
                None => {
                    woken = self
                        .cond
                        .wait(woken)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
        *woken = false;
    }

    /// Wakes the waiter now, or makes its next wait return at once.
    pub fn wake(&self) {
        self.notify(ALL);
    }

    fn notify(&self, events: u32) {
        if let Some(f) = &self.callback {
            f(events);
            return;
        }
        *self.woken.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cond.notify_all();
    }
}

/// The waiters interested in one object. They are held weakly: a poller
/// that has returned simply drops its waiter.
#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<Weak<Waiter>>>,
}

impl WaitQueue {
    pub fn register(&self, waiter: &Arc<Waiter>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.retain(|w| w.strong_count() > 0);
        // A long-lived waiter (a task's) registers again on every poll.
        if !waiters
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(waiter)))
        {
            waiters.push(Arc::downgrade(waiter));
        }
    }

    /// Wakes every waiter: something changed.
    pub fn notify(&self) {
        self.notify_events(ALL);
    }

    /// Wakes every waiter for a change that concerns `events` (or `ALL`).
    /// Sleepers wake regardless; callbacks may filter. The newest waiter
    /// goes first, as Linux's add_wait_queue puts it at the head (epoll's
    /// ready list shows that order).
    pub fn notify_events(&self, events: u32) {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for w in waiters.iter().rev().filter_map(Weak::upgrade) {
            w.notify(events);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_registered_waiters_only() {
        let q = WaitQueue::default();
        let w = Waiter::new();
        q.register(&w);
        q.notify();
        // Already woken: returns at once.
        w.wait(None);
        let start = std::time::Instant::now();
        w.wait(Some(Duration::from_millis(20)));
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "no wake-up pending"
        );
    }

    #[test]
    fn callbacks_see_the_events_of_each_wake_up() {
        let q = WaitQueue::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let w = Waiter::with_callback(move |ev| {
            log.lock().unwrap_or_else(PoisonError::into_inner).push(ev)
        });
        q.register(&w);
        q.notify_events(events::POLLIN);
        q.notify();
        drop(w);
        q.notify();
        assert_eq!(
            *seen.lock().unwrap_or_else(PoisonError::into_inner),
            [events::POLLIN, ALL]
        );
    }
}
