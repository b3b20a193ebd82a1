//! pidfds: file descriptors that name a process. Readable once it has
//! exited; they take signals (pidfd_send_signal) and waits (P_PIDFD).

use std::sync::Arc;

use veil_abi::Errno;
use veil_vfs::wait::events::*;
use veil_vfs::wait::{WaitQueue, Waiter};
use veil_vfs::FileOps;

use crate::task::ThreadGroup;

/// The FileOps of a pidfd.
pub struct PidFd {
    pub process: Arc<ThreadGroup>,
    /// The kernel's queue of process exits, where pollers wait.
    exits: Arc<WaitQueue>,
}

impl PidFd {
    pub fn new(process: Arc<ThreadGroup>, exits: Arc<WaitQueue>) -> PidFd {
        PidFd { process, exits }
    }

    fn exited(&self) -> bool {
        self.process
            .exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

impl FileOps for PidFd {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.exits.register(w);
        }
        if self.exited() {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn read(&self, _buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
