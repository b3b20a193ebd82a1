//! flock(2) locks: whole-file, held by open file descriptions, kept on the
//! dentry (so two hard links of one file lock separately).

use std::sync::{Arc, Mutex, PoisonError};

use veil_abi::Errno;

use crate::wait::{WaitQueue, Waiter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlockKind {
    Shared,
    Exclusive,
}

/// The flock locks of one file and the tasks waiting for them.
#[derive(Default)]
pub(crate) struct Flocks {
    /// Holders by open file description (its address while it lives).
    held: Mutex<Vec<(usize, FlockKind)>>,
    queue: WaitQueue,
}

impl Flocks {
    /// Takes or converts `owner`'s lock without waiting: EAGAIN if another
    /// description's lock conflicts. A conversion first drops the old lock,
    /// as Linux does, so a failed one leaves none.
    pub(crate) fn lock(&self, owner: usize, kind: FlockKind) -> Result<(), Errno> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.iter().position(|&(o, _)| o == owner);
        if let Some(i) = mine {
            if held[i].1 == kind {
                return Ok(());
            }
            held.remove(i);
            self.queue.notify();
        }
        let conflict = held
            .iter()
            .any(|&(_, k)| kind == FlockKind::Exclusive || k == FlockKind::Exclusive);
        if conflict {
            return Err(Errno::EAGAIN);
        }
        held.push((owner, kind));
        Ok(())
    }

    /// Drops `owner`'s lock, if any, waking waiters.
    pub(crate) fn unlock(&self, owner: usize) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let before = held.len();
        held.retain(|&(o, _)| o != owner);
        if held.len() != before {
            self.queue.notify();
        }
    }

    /// Registers `waiter` to be woken when a lock goes.
    pub(crate) fn watch(&self, waiter: &Arc<Waiter>) {
        self.queue.register(waiter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FlockKind::*;

    #[test]
    fn conflicts_and_conversion() {
        let f = Flocks::default();
        assert_eq!(f.lock(1, Shared), Ok(()));
        assert_eq!(f.lock(2, Shared), Ok(()));
        assert_eq!(f.lock(3, Exclusive), Err(Errno::EAGAIN));
        // A failed upgrade loses the shared lock.
        assert_eq!(f.lock(1, Exclusive), Err(Errno::EAGAIN));
        f.unlock(2);
        assert_eq!(f.lock(3, Exclusive), Ok(()));
        assert_eq!(f.lock(1, Shared), Err(Errno::EAGAIN));
        assert_eq!(f.lock(3, Shared), Ok(()));
        assert_eq!(f.lock(1, Shared), Ok(()));
    }
}

/// Who holds a record lock: a process (fcntl F_SETLK, released when it
/// closes any descriptor of the file) or an open file description
/// (F_OFD_SETLK, released with its last close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOwner {
    Process(i32),
    File(usize),
}

/// A byte-range lock over `[start, end)`; `end` u64::MAX reaches past any
/// end of file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLock {
    pub owner: LockOwner,
    pub kind: FlockKind,
    pub start: u64,
    pub end: u64,
}

impl RangeLock {
    fn conflicts(&self, other: &RangeLock) -> bool {
        self.owner != other.owner
            && self.start < other.end
            && other.start < self.end
            && (self.kind == FlockKind::Exclusive || other.kind == FlockKind::Exclusive)
    }
}

/// The record locks of one file.
#[derive(Default)]
pub(crate) struct RecordLocks {
    held: Mutex<Vec<RangeLock>>,
    queue: WaitQueue,
}

impl RecordLocks {
    /// The lowest lock that conflicts with `want` (F_GETLK): Linux keeps
    /// an owner's locks sorted by start.
    pub(crate) fn conflict(&self, want: &RangeLock) -> Option<RangeLock> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let conflicts = held.iter().filter(|l| l.conflicts(want));
        conflicts.min_by_key(|l| l.start).copied()
    }

    /// Sets `owner`'s lock over `[start, end)` to `kind` (`None` unlocks),
    /// splitting and merging its locks as Linux does; EAGAIN on a conflict.
    pub(crate) fn set(
        &self,
        owner: LockOwner,
        kind: Option<FlockKind>,
        start: u64,
        end: u64,
    ) -> Result<(), Errno> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kind) = kind {
            let want = RangeLock {
                owner,
                kind,
                start,
                end,
            };
            if held.iter().any(|l| l.conflicts(&want)) {
                return Err(Errno::EAGAIN);
            }
        }
        let mut next = Vec::with_capacity(held.len() + 2);
        for l in held.drain(..) {
            if l.owner != owner || l.end <= start || end <= l.start {
                next.push(l);
                continue;
            }
            if l.start < start {
                next.push(RangeLock { end: start, ..l });
            }
            if end < l.end {
                next.push(RangeLock { start: end, ..l });
            }
        }
        if let Some(kind) = kind {
            let (mut start, mut end) = (start, end);
            // Adjacent or overlapping locks of the same kind merge.
            next.retain(|l| {
                let merge = l.owner == owner && l.kind == kind && l.start <= end && start <= l.end;
                if merge {
                    start = start.min(l.start);
                    end = end.max(l.end);
                }
                !merge
            });
            next.push(RangeLock {
                owner,
                kind,
                start,
                end,
            });
        }
        *held = next;
        self.queue.notify();
        Ok(())
    }

    /// Drops every lock of `owner`.
    pub(crate) fn release(&self, owner: LockOwner) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let before = held.len();
        held.retain(|l| l.owner != owner);
        if held.len() != before {
            self.queue.notify();
        }
    }

    pub(crate) fn watch(&self, waiter: &Arc<Waiter>) {
        self.queue.register(waiter);
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;
    use FlockKind::*;

    const P1: LockOwner = LockOwner::Process(1);
    const P2: LockOwner = LockOwner::Process(2);

    fn want(owner: LockOwner, kind: FlockKind, start: u64, end: u64) -> RangeLock {
        RangeLock {
            owner,
            kind,
            start,
            end,
        }
    }

    #[test]
    fn split_merge_and_conflicts() {
        let r = RecordLocks::default();
        assert_eq!(r.set(P1, Some(Exclusive), 0, 100), Ok(()));
        assert_eq!(r.set(P1, None, 40, 60), Ok(()));
        assert_eq!(r.conflict(&want(P2, Shared, 40, 60)), None);
        assert_eq!(
            r.conflict(&want(P2, Shared, 50, 70)),
            Some(want(P1, Exclusive, 60, 100))
        );
        assert_eq!(r.set(P2, Some(Shared), 40, 60), Ok(()));
        assert_eq!(r.set(P1, Some(Exclusive), 30, 50), Err(Errno::EAGAIN));
        // Re-locking the gap merges the three pieces into one.
        r.release(P2);
        assert_eq!(r.set(P1, Some(Exclusive), 40, 60), Ok(()));
        assert_eq!(
            r.conflict(&want(P2, Shared, 0, u64::MAX)),
            Some(want(P1, Exclusive, 0, 100))
        );
        // Downgrading part of a lock splits it.
        assert_eq!(r.set(P1, Some(Shared), 10, 20), Ok(()));
        assert_eq!(r.conflict(&want(P2, Shared, 10, 20)), None);
        r.release(P1);
        assert_eq!(r.conflict(&want(P2, Exclusive, 0, u64::MAX)), None);
    }
}
