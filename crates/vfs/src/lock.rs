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
