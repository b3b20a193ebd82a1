//! Pipes: a bounded buffer between a read end and a write end, with Linux's
//! semantics for end of file, EPIPE, O_NONBLOCK and atomic small writes.
//!
//! A blocked read or write waits on a condition variable: nothing can
//! interrupt it yet but the other end's activity or closing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use veil_abi::mode::S_IFIFO;
use veil_abi::{Errno, Stat};
use zerocopy::IntoBytes;

use crate::file::{FileOps, OpenFile, UserMem};
use crate::flags::{O_NONBLOCK, O_RDONLY, O_WRONLY};
use crate::inode::Inode;
use crate::vfs::PathRef;
use crate::wait::{WaitQueue, Waiter};

/// Linux's default pipe capacity.
const CAPACITY: usize = 16 * 4096;
/// Writes up to this size are atomic.
const PIPE_BUF: usize = linux_raw_sys::general::PIPE_BUF as usize;
/// pipefs's device number.
const PIPEFS_DEV: u64 = 0xd;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// A new pipe's read and write ends; of `flags` only O_NONBLOCK counts.
pub fn new_pipe(flags: i32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    let pipe = Arc::new(Pipe {
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        state: Mutex::new(State {
            buf: VecDeque::new(),
            readers: 1,
            writers: 1,
        }),
        changed: Condvar::new(),
        pollers: WaitQueue::default(),
    });
    let name = format!("pipe:[{}]", pipe.ino);
    let path = PathRef::anonymous(name.as_bytes(), Arc::new(PipeInode(pipe.clone())));
    let end = |flags, writer| {
        let ops = Box::new(PipeEnd {
            pipe: pipe.clone(),
            writer,
        });
        OpenFile::with_type(path.clone(), flags, S_IFIFO, ops)
    };
    let nonblock = flags & O_NONBLOCK;
    (
        end(O_RDONLY | nonblock, false),
        end(O_WRONLY | nonblock, true),
    )
}

struct Pipe {
    ino: u64,
    state: Mutex<State>,
    /// Signalled whenever data or the set of ends changes.
    changed: Condvar,
    /// Pollers waiting for the same changes.
    pollers: WaitQueue,
}

struct State {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.notify_all();
        self.pollers.notify();
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

struct PipeInode(Arc<Pipe>);

impl Inode for PipeInode {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            st_dev: PIPEFS_DEV,
            st_ino: self.0.ino,
            st_nlink: 1,
            st_mode: S_IFIFO | 0o600,
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    /// Pipes have no name in the tree to be opened again by.
    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct PipeEnd {
    pipe: Arc<Pipe>,
    writer: bool,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        match self.writer {
            true => state.writers -= 1,
            false => state.readers -= 1,
        }
        drop(state);
        self.pipe.notify();
    }
}

impl FileOps for PipeEnd {
    fn is_stream(&self) -> bool {
        true
    }

    fn read(&self, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
        let mut state = self.pipe.lock();
        loop {
            if !state.buf.is_empty() || buf.is_empty() {
                let n = buf.len().min(state.buf.len());
                for (dst, src) in buf.iter_mut().zip(state.buf.drain(..n)) {
                    *dst = src;
                }
                drop(state);
                self.pipe.notify();
                return Ok(n);
            }
            if state.writers == 0 {
                return Ok(0);
            }
            if flags & O_NONBLOCK != 0 {
                return Err(Errno::EAGAIN);
            }
            state = self.pipe.wait(state);
        }
    }

    fn write(&self, buf: &[u8], flags: i32) -> Result<usize, Errno> {
        let mut state = self.pipe.lock();
        let mut done = 0;
        loop {
            if state.readers == 0 {
                // The sentry raises SIGPIPE for an EPIPE.
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            let room = CAPACITY - state.buf.len();
            let left = &buf[done..];
            // A small write goes in whole or not at all.
            if room > 0 && (left.len() <= room || buf.len() > PIPE_BUF) {
                let n = left.len().min(room);
                state.buf.extend(&left[..n]);
                done += n;
                self.pipe.notify();
                if done == buf.len() {
                    return Ok(done);
                }
            }
            if flags & O_NONBLOCK != 0 {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            state = self.pipe.wait(state);
        }
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        use crate::wait::events::*;
        if let Some(w) = waiter {
            self.pipe.pollers.register(w);
        }
        let state = self.pipe.lock();
        if self.writer {
            match state.readers {
                0 => POLLOUT | POLLWRNORM | POLLERR,
                _ if CAPACITY - state.buf.len() >= PIPE_BUF => POLLOUT | POLLWRNORM,
                _ => 0,
            }
        } else {
            let mut ev = 0;
            if !state.buf.is_empty() {
                ev |= POLLIN | POLLRDNORM;
            }
            if state.writers == 0 {
                ev |= POLLHUP;
            }
            ev
        }
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        if cmd != linux_raw_sys::ioctl::FIONREAD {
            return Err(Errno::ENOTTY);
        }
        let n = self.pipe.lock().buf.len() as i32;
        mem.copy_out(arg, n.as_bytes())?;
        Ok(0)
    }
}
