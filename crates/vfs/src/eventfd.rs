//! eventfd: a 64-bit counter that writes add to and reads take, as a file.

use std::sync::{Arc, Mutex, PoisonError};

use veil_abi::Errno;

use crate::file::{FileOps, OpenFile};
use crate::flags::{O_NONBLOCK, O_RDWR};
use crate::wait::events::*;
use crate::wait::{WaitQueue, Waiter};

/// The largest value the counter holds; a write that would pass it waits.
const MAX: u64 = u64::MAX - 1;

/// A new eventfd starting at `initval`; `semaphore` reads take one at a
/// time (EFD_SEMAPHORE); of `flags` only O_NONBLOCK counts.
pub fn new_eventfd(initval: u32, semaphore: bool, flags: i32) -> Arc<OpenFile> {
    let ops = EventFd {
        count: Mutex::new(u64::from(initval)),
        semaphore,
        waiters: WaitQueue::default(),
    };
    OpenFile::anonymous("[eventfd]", O_RDWR | (flags & O_NONBLOCK), Box::new(ops))
}

struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    waiters: WaitQueue,
}

impl FileOps for EventFd {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    /// Never blocks: the sentry waits for readiness, interruptibly.
    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        let out = buf.get_mut(..8).ok_or(Errno::EINVAL)?;
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        if *count == 0 {
            return Err(Errno::EAGAIN);
        }
        let value = if self.semaphore { 1 } else { *count };
        *count -= value;
        drop(count);
        out.copy_from_slice(&value.to_ne_bytes());
        self.waiters.notify_events(POLLOUT);
        Ok(8)
    }

    fn write(&self, buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        let bytes: [u8; 8] = buf
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Errno::EINVAL)?;
        let value = u64::from_ne_bytes(bytes);
        if value == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        if MAX - *count < value {
            return Err(Errno::EAGAIN);
        }
        *count += value;
        drop(count);
        // Even a write of zero wakes readers, as on Linux (edge-triggered
        // epoll sees it).
        self.waiters.notify_events(POLLIN);
        Ok(8)
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.waiters.register(w);
        }
        let count = *self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ev = 0;
        if count > 0 {
            ev |= POLLIN | POLLRDNORM;
        }
        if count < MAX {
            ev |= POLLOUT | POLLWRNORM;
        }
        ev
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(f: &OpenFile) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        f.read(&mut b).map(|_| u64::from_ne_bytes(b))
    }

    #[test]
    fn counter_and_semaphore() {
        let f = new_eventfd(3, false, O_NONBLOCK);
        assert_eq!(read(&f), Ok(3));
        assert_eq!(read(&f), Err(Errno::EAGAIN));
        let s = new_eventfd(2, true, O_NONBLOCK);
        assert_eq!(read(&s), Ok(1));
        assert_eq!(read(&s), Ok(1));
        assert_eq!(read(&s), Err(Errno::EAGAIN));
    }

    #[test]
    fn writes_stop_below_the_maximum() {
        let f = new_eventfd(0, false, O_NONBLOCK);
        assert_eq!(f.write(&MAX.to_ne_bytes()), Ok(8));
        assert_eq!(f.poll(None) & POLLOUT, 0);
        assert_eq!(f.write(&1u64.to_ne_bytes()), Err(Errno::EAGAIN));
        assert_eq!(f.write(&u64::MAX.to_ne_bytes()), Err(Errno::EINVAL));
        assert_eq!(f.write(&[0u8; 7]), Err(Errno::EINVAL));
        assert_eq!(f.read(&mut [0u8; 7]), Err(Errno::EINVAL));
    }
}
