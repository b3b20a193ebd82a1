//! Bounds the dentry cache. Each cached dentry pins its inode, and a
//! gofer inode pins a host FD in the gofer, so an unbounded cache would let
//! one `find /` exhaust the gofer's FDs. Dentries nobody uses (no open
//! file, cwd, mount or cached child holds them) are dropped oldest first
//! once a tree caches more than [`MAX_UNUSED`] of them, as gVisor's
//! dentry cache does; a later walk looks them up again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::vfs::Dentry;

/// Cached dentries a tree keeps before evicting unused ones.
const MAX_UNUSED: usize = 4096;
/// Dentries examined per insertion: keeps each lookup's share of the work
/// bounded while still outpacing insertions.
const SCAN_PER_INSERT: usize = 4;

/// The cached dentries of one tree, oldest first. Entries whose dentry has
/// gone (unlinked, or its parent evicted) are dropped when met.
#[derive(Default)]
pub struct DentryLru {
    queue: Mutex<VecDeque<Weak<Dentry>>>,
}

impl DentryLru {
    /// Records a newly cached dentry and evicts unused old ones.
    pub(crate) fn inserted(&self, d: &Arc<Dentry>) {
        let candidates: Vec<Weak<Dentry>> = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.push_back(Arc::downgrade(d));
            let n = q.len().saturating_sub(MAX_UNUSED).min(SCAN_PER_INSERT);
            q.drain(..n).collect()
        };
        let mut kept = Vec::new();
        for weak in candidates {
            let Some(d) = weak.upgrade() else { continue };
            if !d.evict_if_unused() {
                kept.push(weak);
            }
        }
        if !kept.is_empty() {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.extend(kept);
        }
    }
}
