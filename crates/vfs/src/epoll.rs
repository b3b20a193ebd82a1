//! epoll: an interest list of (descriptor, open file) pairs and a ready list
//! that the files' wake-ups fill, as Linux's eventpoll.
//!
//! Each interest entry hangs a callback waiter on its file's wait queue. A
//! wake-up that concerns the entry's events puts the entry on the ready
//! list and wakes the epoll's own waiters (tasks in epoll_wait, pollers of
//! the epoll file, outer epolls). A scan takes the ready list, polls each
//! entry's file for its current events, and reports those that have some:
//! level-triggered entries go back to the tail (so that a small `maxevents`
//! rotates through many ready files), edge-triggered ones wait for the next
//! wake-up, one-shot ones are disarmed until EPOLL_CTL_MOD.
//!
//! Entries hold their file weakly and vanish with the open file
//! description, not with one of its descriptors. Files backed by host FDs
//! cannot wake anyone; they are looked at on every scan instead.
//!
//! Locks, outermost first: the nesting lock (adding an epoll to another),
//! an instance's `interest` lock (held while polling files, so an outer
//! epoll's before an inner one's), the files' own locks, then the leaf locks
//! `ready` and the wait queues, which callbacks take.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use linux_raw_sys::general::{
    EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLIN, EPOLLONESHOT, EPOLLOUT, EPOLLRDNORM,
    EPOLLWAKEUP,
};
use veil_abi::{EpollEvent, Errno};

use crate::file::{FileOps, OpenFile};
use crate::flags::O_RDWR;
use crate::wait::{WaitQueue, Waiter, ALL};

/// Bits that configure an entry rather than select events.
const PRIVATE_BITS: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/// What an EPOLLEXCLUSIVE entry may ask for.
const EXCLUSIVE_OK: u32 =
    EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;
/// How deep epoll instances may nest (Linux's EP_MAX_NESTS).
const MAX_NESTS: usize = 4;
/// Interest lists are swept of entries whose files are gone once they grow
/// past this (and then past twice their live size).
const SWEEP_MIN: usize = 64;

/// Serializes additions of epoll instances to others, so that two cannot
/// race into a cycle (Linux's epnested_mutex).
static NESTING: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new epoll instance; of `flags` none is kept (EPOLL_CLOEXEC is the
/// descriptor's).
pub fn new_epoll() -> Arc<OpenFile> {
    let ops = Epoll {
        inner: Arc::new(Inner::default()),
    };
    OpenFile::anonymous("[eventpoll]", O_RDWR, Box::new(ops))
}

/// The operations of epoll_ctl.
#[derive(Clone, Copy, Debug)]
pub enum Ctl {
    Add(EpollEvent),
    Mod(EpollEvent),
    Del,
}

/// An epoll instance: the FileOps of its file.
pub struct Epoll {
    inner: Arc<Inner>,
}

impl Epoll {
    /// epoll_ctl on this instance for descriptor `fd` of `file`. The caller
    /// has checked that `file` is pollable and is not this epoll's file.
    pub fn ctl(&self, fd: i32, file: &Arc<OpenFile>, op: Ctl) -> Result<(), Errno> {
        let event = match op {
            Ctl::Add(ev) | Ctl::Mod(ev) => Some(ev),
            Ctl::Del => None,
        };
        if let Some(ev) = event.filter(|ev| ev.events & EPOLLEXCLUSIVE != 0) {
            let nested = file.ops_as::<Epoll>().is_some();
            if matches!(op, Ctl::Mod(_)) || nested || ev.events & !EXCLUSIVE_OK != 0 {
                return Err(Errno::EINVAL);
            }
        }
        match (op, file.ops_as::<Epoll>()) {
            (Ctl::Add(ev), Some(target)) => {
                let _nesting = lock(&NESTING);
                self.inner.check_nesting(&target.inner)?;
                self.inner.add(fd, file, ev, Some(&target.inner))
            }
            (Ctl::Add(ev), None) => self.inner.add(fd, file, ev, None),
            (Ctl::Mod(ev), _) => self.inner.modify(fd, file, ev),
            (Ctl::Del, _) => self.inner.delete(fd, file),
        }
    }

    /// Reports up to `max` ready events to `deliver`, which returns false
    /// if it could not take one (the event then stays ready). Never blocks.
    pub fn collect(&self, max: usize, deliver: impl FnMut(EpollEvent) -> bool) -> usize {
        self.inner.scan(max, deliver)
    }

    /// Registers `waiter` to be woken when events may have become ready.
    pub fn register(&self, waiter: &Arc<Waiter>) {
        self.inner.pollers.register(waiter);
    }
}

impl FileOps for Epoll {
    fn pollable(&self) -> bool {
        true
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.inner.pollers.register(w);
        }
        match self.inner.has_ready() {
            true => EPOLLIN | EPOLLRDNORM,
            false => 0,
        }
    }

    fn needs_repoll(&self) -> bool {
        self.inner.host_entries.load(Ordering::Relaxed) > 0
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// One interest entry.
struct Entry {
    fd: i32,
    file: Weak<OpenFile>,
    /// The instance, if the file is an epoll one (for nesting checks).
    nested: Option<Weak<Inner>>,
    events: AtomicU32,
    data: AtomicU64,
    /// Its callback on the file's wait queue.
    waiter: Arc<Waiter>,
    /// On the ready list (or being scanned); changed under `ready`.
    queued: AtomicBool,
    removed: AtomicBool,
    /// For files that cannot wake us: the events seen at the last look, so
    /// that edge-triggered entries report changes only.
    last: AtomicU32,
}

impl Entry {
    fn events(&self) -> u32 {
        self.events.load(Ordering::Relaxed)
    }

    fn alive(&self) -> bool {
        !self.removed.load(Ordering::Relaxed) && self.file.strong_count() > 0
    }

    /// The entry's events that are ready now.
    fn poll(&self, file: &OpenFile) -> u32 {
        file.poll(None) & self.events()
    }
}

#[derive(Default)]
struct Interest {
    entries: HashMap<(i32, usize), Arc<Entry>>,
    sweep_at: usize,
    /// Entries whose files may need a look on every scan (host FDs, and
    /// epolls that may come to hold some).
    repoll: Vec<Weak<Entry>>,
}

#[derive(Default)]
struct Inner {
    interest: Mutex<Interest>,
    ready: Mutex<VecDeque<Arc<Entry>>>,
    /// Woken when an entry becomes ready: epoll_wait, pollers of this file,
    /// outer epolls.
    pollers: WaitQueue,
    /// How many entries are of files that cannot wake us (or of nested
    /// instances with such entries).
    host_entries: AtomicUsize,
    /// Entries of other instances that watch this one.
    watchers: Mutex<Vec<(Weak<Inner>, Weak<Entry>)>>,
}

fn key(fd: i32, file: &Arc<OpenFile>) -> (i32, usize) {
    (fd, Arc::as_ptr(file) as usize)
}

impl Inner {
    /// Puts `entry` on the ready list, if it is not there, and wakes waiters.
    fn enqueue(&self, entry: &Arc<Entry>) {
        {
            let mut ready = lock(&self.ready);
            if entry.queued.swap(true, Ordering::Relaxed) {
                return;
            }
            ready.push_back(entry.clone());
        }
        self.pollers.notify_events(EPOLLIN);
    }

    /// A wake-up from an entry's file.
    fn wakeup(&self, entry: &Arc<Entry>, events: u32) {
        if entry.removed.load(Ordering::Relaxed) {
            return;
        }
        // The file's last descriptor closed: the next scan drops the entry.
        if entry.file.strong_count() == 0 {
            self.enqueue(entry);
            return;
        }
        let wanted = entry.events() & !PRIVATE_BITS;
        // A disarmed one-shot entry, or a wake-up about other events.
        if wanted == 0 || (events != ALL && events & wanted == 0) {
            return;
        }
        self.enqueue(entry);
    }

    fn add(
        self: &Arc<Self>,
        fd: i32,
        file: &Arc<OpenFile>,
        ev: EpollEvent,
        nested: Option<&Arc<Inner>>,
    ) -> Result<(), Errno> {
        let mut interest = lock(&self.interest);
        if interest.entries.len() >= interest.sweep_at {
            interest.entries.retain(|_, e| e.alive());
            interest.repoll.retain(|e| e.strong_count() > 0);
            interest.sweep_at = (interest.entries.len() * 2).max(SWEEP_MIN);
        }
        let k = key(fd, file);
        if interest.entries.contains_key(&k) {
            return Err(Errno::EEXIST);
        }
        let weak_self = Arc::downgrade(self);
        let entry = Arc::new_cyclic(|me: &Weak<Entry>| {
            let me = me.clone();
            Entry {
                fd,
                file: Arc::downgrade(file),
                nested: nested.map(Arc::downgrade),
                events: AtomicU32::new(ev.events | EPOLLERR | EPOLLHUP),
                data: AtomicU64::new(ev.data),
                waiter: Waiter::with_callback(move |events| {
                    if let (Some(ep), Some(entry)) = (weak_self.upgrade(), me.upgrade()) {
                        ep.wakeup(&entry, events);
                    }
                }),
                queued: AtomicBool::new(false),
                removed: AtomicBool::new(false),
                last: AtomicU32::new(0),
            }
        });
        interest.entries.insert(k, entry.clone());
        if file.needs_repoll() || nested.is_some() {
            interest.repoll.push(Arc::downgrade(&entry));
        }
        if file.needs_repoll() {
            self.host_entries.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(inner) = nested {
            lock(&inner.watchers).push((Arc::downgrade(self), Arc::downgrade(&entry)));
        }
        let ready = file.poll(Some(&entry.waiter)) & entry.events();
        entry.last.store(ready, Ordering::Relaxed);
        if ready != 0 {
            self.enqueue(&entry);
        }
        Ok(())
    }

    fn modify(&self, fd: i32, file: &Arc<OpenFile>, ev: EpollEvent) -> Result<(), Errno> {
        let interest = lock(&self.interest);
        let entry = interest.entries.get(&key(fd, file)).ok_or(Errno::ENOENT)?;
        if entry.events() & EPOLLEXCLUSIVE != 0 {
            return Err(Errno::EINVAL);
        }
        entry.data.store(ev.data, Ordering::Relaxed);
        entry
            .events
            .store(ev.events | EPOLLERR | EPOLLHUP, Ordering::Relaxed);
        let ready = entry.poll(file);
        entry.last.store(ready, Ordering::Relaxed);
        if ready != 0 {
            self.enqueue(entry);
        }
        Ok(())
    }

    fn delete(&self, fd: i32, file: &Arc<OpenFile>) -> Result<(), Errno> {
        let mut interest = lock(&self.interest);
        let entry = interest
            .entries
            .remove(&key(fd, file))
            .ok_or(Errno::ENOENT)?;
        entry.removed.store(true, Ordering::Relaxed);
        if file.needs_repoll() {
            self.host_entries.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Drops an entry whose file is gone.
    fn forget(&self, interest: &mut Interest, entry: &Arc<Entry>) {
        let k = (entry.fd, entry.file.as_ptr() as usize);
        if interest
            .entries
            .get(&k)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            interest.entries.remove(&k);
        }
    }

    /// Queues the entries of files that cannot wake us whose events are
    /// ready (level-triggered) or newly ready (edge-triggered).
    fn repoll(&self, interest: &mut Interest) {
        let mut host = 0;
        let mut keep = Vec::new();
        for weak in std::mem::take(&mut interest.repoll) {
            let Some(entry) = weak.upgrade().filter(|e| e.alive()) else {
                continue;
            };
            let Some(file) = entry.file.upgrade() else {
                continue;
            };
            keep.push(weak);
            if !file.needs_repoll() {
                continue;
            }
            host += 1;
            let ready = entry.poll(&file);
            let before = entry.last.swap(ready, Ordering::Relaxed);
            let fresh = match entry.events() & EPOLLET {
                0 => ready,
                _ => ready & !before,
            };
            if fresh != 0 {
                self.enqueue(&entry);
            }
        }
        interest.repoll = keep;
        self.host_entries.store(host, Ordering::Relaxed);
    }

    /// Moves up to `max` ready events to `deliver`; see `Epoll::collect`.
    fn scan(&self, max: usize, mut deliver: impl FnMut(EpollEvent) -> bool) -> usize {
        let mut interest = lock(&self.interest);
        self.repoll(&mut interest);
        let mut batch = std::mem::take(&mut *lock(&self.ready));
        let mut n = 0;
        while n < max {
            let Some(entry) = batch.pop_front() else {
                break;
            };
            {
                let _ready = lock(&self.ready);
                entry.queued.store(false, Ordering::Relaxed);
            }
            if entry.removed.load(Ordering::Relaxed) {
                continue;
            }
            let Some(file) = entry.file.upgrade() else {
                self.forget(&mut interest, &entry);
                continue;
            };
            let events = entry.poll(&file);
            if events == 0 {
                continue;
            }
            let ev = EpollEvent {
                events,
                data: entry.data.load(Ordering::Relaxed),
            };
            if !deliver(ev) {
                entry.queued.store(true, Ordering::Relaxed);
                batch.push_front(entry);
                break;
            }
            n += 1;
            let flags = entry.events();
            if flags & EPOLLONESHOT != 0 {
                entry.events.store(flags & PRIVATE_BITS, Ordering::Relaxed);
            } else if flags & EPOLLET == 0 {
                let mut ready = lock(&self.ready);
                if !entry.queued.swap(true, Ordering::Relaxed) {
                    ready.push_back(entry);
                }
            }
        }
        // What was not reached stays first in line.
        let mut ready = lock(&self.ready);
        batch.append(&mut ready);
        *ready = batch;
        n
    }

    /// Whether some entry has events ready now; entries found not ready
    /// leave the ready list (Linux's ep_read_events_proc).
    fn has_ready(&self) -> bool {
        let mut interest = lock(&self.interest);
        self.repoll(&mut interest);
        let mut batch = std::mem::take(&mut *lock(&self.ready));
        let mut found = false;
        while let Some(entry) = batch.pop_front() {
            let events = match entry.file.upgrade() {
                Some(file) if !entry.removed.load(Ordering::Relaxed) => entry.poll(&file),
                _ => 0,
            };
            if events != 0 {
                batch.push_front(entry);
                found = true;
                break;
            }
            let _ready = lock(&self.ready);
            entry.queued.store(false, Ordering::Relaxed);
        }
        let mut ready = lock(&self.ready);
        batch.append(&mut ready);
        *ready = batch;
        found
    }

    /// The epoll instances `self` holds, directly.
    fn children(&self) -> Vec<Arc<Inner>> {
        lock(&self.interest)
            .entries
            .values()
            .filter(|e| e.alive())
            .filter_map(|e| e.nested.as_ref()?.upgrade())
            .collect()
    }

    /// How many levels of epoll instances lie below `self`, or None if
    /// `avoid` is among them.
    fn depth_below(&self, avoid: &Inner) -> Option<usize> {
        let mut depth = 0;
        for child in self.children() {
            if std::ptr::eq(Arc::as_ptr(&child), avoid) {
                return None;
            }
            depth = depth.max(1 + child.depth_below(avoid)?);
        }
        Some(depth)
    }

    /// How many levels of epoll instances watch `self`.
    fn depth_above(&self) -> usize {
        let parents: Vec<Arc<Inner>> = {
            let mut watchers = lock(&self.watchers);
            watchers
                .retain(|(p, e)| p.strong_count() > 0 && e.upgrade().is_some_and(|e| e.alive()));
            watchers.iter().filter_map(|(p, _)| p.upgrade()).collect()
        };
        parents
            .iter()
            .map(|p| 1 + p.depth_above())
            .max()
            .unwrap_or(0)
    }

    /// ELOOP if adding `target` to `self` would close a cycle or nest
    /// instances too deeply.
    fn check_nesting(&self, target: &Inner) -> Result<(), Errno> {
        let below = target.depth_below(self).ok_or(Errno::ELOOP)?;
        if self.depth_above() + 1 + below > MAX_NESTS {
            return Err(Errno::ELOOP);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use super::*;
    use crate::flags::O_NONBLOCK;
    use crate::new_pipe;

    fn ready(ep: &Arc<OpenFile>, max: usize) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let epoll = ep.ops_as::<Epoll>().expect("an epoll file");
        epoll.collect(max, |ev| {
            out.push((ev.events, ev.data));
            true
        });
        out
    }

    fn add(ep: &Arc<OpenFile>, fd: i32, file: &Arc<OpenFile>, events: u32) -> Result<(), Errno> {
        let epoll = ep.ops_as::<Epoll>().expect("an epoll file");
        let ev = EpollEvent {
            events,
            data: fd as u64,
        };
        epoll.ctl(fd, file, Ctl::Add(ev))
    }

    #[test]
    fn level_edge_and_one_shot() {
        let ep = new_epoll();
        let (r, w) = new_pipe(O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        add(&ep, 4, &r, EPOLLIN | EPOLLET).unwrap();
        assert_eq!(add(&ep, 3, &r, EPOLLIN), Err(Errno::EEXIST));
        assert!(ready(&ep, 8).is_empty());
        // Wake-ups run newest entry first, as on Linux.
        w.write(b"ab").unwrap();
        assert_eq!(ready(&ep, 8), [(EPOLLIN, 4), (EPOLLIN, 3)]);
        // Level-triggered stays, edge-triggered waits for the next write.
        assert_eq!(ready(&ep, 8), [(EPOLLIN, 3)]);
        w.write(b"c").unwrap();
        assert_eq!(ready(&ep, 8), [(EPOLLIN, 3), (EPOLLIN, 4)]);
        let epoll = ep.ops_as::<Epoll>().unwrap();
        epoll.ctl(3, &r, Ctl::Del).unwrap();
        let one_shot = EpollEvent {
            events: EPOLLIN | EPOLLONESHOT,
            data: 9,
        };
        epoll.ctl(4, &r, Ctl::Mod(one_shot)).unwrap();
        assert_eq!(ready(&ep, 8), [(EPOLLIN, 9)]);
        w.write(b"d").unwrap();
        assert!(ready(&ep, 8).is_empty());
        epoll.ctl(4, &r, Ctl::Mod(one_shot)).unwrap();
        assert_eq!(ready(&ep, 8), [(EPOLLIN, 9)]);
    }

    #[test]
    fn small_batches_rotate() {
        let ep = new_epoll();
        let pipes: Vec<_> = (0..4).map(|_| new_pipe(O_NONBLOCK)).collect();
        for (i, (r, w)) in pipes.iter().enumerate() {
            w.write(b"x").unwrap();
            add(&ep, i as i32, r, EPOLLIN).unwrap();
        }
        let fds = |v: Vec<(u32, u64)>| v.into_iter().map(|(_, d)| d).collect::<Vec<_>>();
        assert_eq!(fds(ready(&ep, 3)), [0, 1, 2]);
        assert_eq!(fds(ready(&ep, 3)), [3, 0, 1]);
        assert_eq!(fds(ready(&ep, 3)), [2, 3, 0]);
    }

    #[test]
    fn entries_go_with_the_open_file() {
        let ep = new_epoll();
        let (r, w) = new_pipe(O_NONBLOCK);
        add(&ep, 5, &r, EPOLLIN).unwrap();
        drop(r);
        w.write(b"x").unwrap_err();
        assert!(ready(&ep, 8).is_empty());
        assert!(lock(&ep.ops_as::<Epoll>().unwrap().inner.interest)
            .entries
            .is_empty());
    }

    #[test]
    fn nesting_is_limited_and_acyclic() {
        let eps: Vec<_> = (0..6).map(|_| new_epoll()).collect();
        for i in 0..4 {
            add(&eps[i], 1, &eps[i + 1], EPOLLIN).unwrap();
        }
        assert_eq!(add(&eps[4], 1, &eps[5], EPOLLIN), Err(Errno::ELOOP));
        assert_eq!(add(&eps[2], 1, &eps[0], EPOLLIN), Err(Errno::ELOOP));
        // A ready file deep down makes the top readable.
        let (r, w) = new_pipe(O_NONBLOCK);
        add(&eps[4], 7, &r, EPOLLIN).unwrap();
        assert_eq!(eps[0].poll(None), 0);
        w.write(b"x").unwrap();
        assert_eq!(eps[0].poll(None), EPOLLIN | EPOLLRDNORM);
    }
}
