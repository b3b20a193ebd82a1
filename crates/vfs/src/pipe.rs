//! Pipes: a ring of page-sized buffers between a read end and a write end,
//! with Linux's semantics for end of file, EPIPE, O_NONBLOCK, atomic small
//! writes, packet mode (O_DIRECT) and resizing (F_SETPIPE_SZ).
//!
//! Capacity is counted in slots of one page, as Linux counts it: a write
//! merges its tail into the last buffer when that has room, and otherwise
//! takes whole slots, so how much fits depends on the write sizes exactly as
//! on Linux. A packet (a write by an O_DIRECT writer, one page at most)
//! takes a slot of its own and is read whole or truncated, never merged.
//!
//! The sentry calls the ends with O_NONBLOCK and waits for readiness itself,
//! interruptibly; without it, a read or write blocks on a condition variable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use veil_abi::mode::S_IFIFO;
use veil_abi::{Errno, Stat};
use zerocopy::IntoBytes;

use crate::file::{FileOps, OpenFile, UserMem};
use crate::flags::{O_ACCMODE, O_DIRECT, O_NONBLOCK, O_RDONLY, O_WRONLY};
use crate::inode::Inode;
use crate::vfs::PathRef;
use crate::wait::events::*;
use crate::wait::{WaitQueue, Waiter};

const PAGE: usize = 4096;
/// Linux's default pipe capacity, in slots.
const DEFAULT_SLOTS: usize = 16;
/// /proc/sys/fs/pipe-max-size: the largest size an unprivileged
/// F_SETPIPE_SZ may ask for.
const PIPE_MAX_SIZE: u64 = 1 << 20;
/// pipefs's device number.
const PIPEFS_DEV: u64 = 0xd;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// A new pipe's read and write ends; of `flags` only O_NONBLOCK counts, and
/// O_DIRECT, which makes the write end write packets.
pub fn new_pipe(flags: i32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    let pipe = Pipe::new(NEXT_INO.fetch_add(1, Ordering::Relaxed), 1);
    let name = format!("pipe:[{}]", pipe.ino);
    let path = PathRef::anonymous(name.as_bytes(), Arc::new(PipeInode(pipe.clone())));
    let end = |flags, writer: bool| {
        let ops = Box::new(PipeEnd {
            pipe: pipe.clone(),
            reader: !writer,
            writer,
            wait_for: None,
        });
        OpenFile::with_type(path.clone(), flags, S_IFIFO, ops)
    };
    let nonblock = flags & O_NONBLOCK;
    (
        end(O_RDONLY | nonblock, false),
        end(O_WRONLY | nonblock | (flags & O_DIRECT), true),
    )
}

/// One slot: a page's worth of data, of which `off` bytes are consumed.
struct Buf {
    data: Vec<u8>,
    off: usize,
    packet: bool,
}

impl Buf {
    fn len(&self) -> usize {
        self.data.len() - self.off
    }
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
    bufs: VecDeque<Buf>,
    max_slots: usize,
    readers: usize,
    writers: usize,
    /// Opens of each end so far: a FIFO opener waits for the other's to
    /// change (Linux's r_counter and w_counter).
    read_opens: u64,
    write_opens: u64,
}

impl State {
    fn full(&self) -> bool {
        self.bufs.len() >= self.max_slots
    }

    fn bytes(&self) -> usize {
        self.bufs.iter().map(Buf::len).sum()
    }
}

impl Pipe {
    /// A pipe with `ends` readers and writers already.
    fn new(ino: u64, ends: usize) -> Arc<Pipe> {
        Arc::new(Pipe {
            ino,
            state: Mutex::new(State {
                bufs: VecDeque::new(),
                max_slots: DEFAULT_SLOTS,
                readers: ends,
                writers: ends,
                read_opens: ends as u64,
                write_opens: ends as u64,
            }),
            changed: Condvar::new(),
            pollers: WaitQueue::default(),
        })
    }

    /// Opens an end by access mode, as a FIFO's open(2) does, without
    /// waiting: the opener waits for a partner with `FileOps::open_ready`.
    fn open_end(self: &Arc<Self>, flags: i32, fifo: bool) -> Result<Box<dyn FileOps>, Errno> {
        let (reader, writer) = match flags & O_ACCMODE {
            O_RDONLY => (true, false),
            O_WRONLY => (false, true),
            _ if fifo => (true, true),
            _ => return Err(Errno::ENXIO),
        };
        let mut state = self.lock();
        if fifo && writer && !reader && state.readers == 0 && flags & O_NONBLOCK != 0 {
            return Err(Errno::ENXIO);
        }
        // A blocking FIFO opener without a partner waits for the other
        // side's next open.
        let wait_for = match (reader, writer) {
            (true, false) if fifo && state.writers == 0 && flags & O_NONBLOCK == 0 => {
                Some((true, state.write_opens))
            }
            (false, true) if fifo && state.readers == 0 => Some((false, state.read_opens)),
            _ => None,
        };
        if reader {
            state.readers += 1;
            state.read_opens += 1;
        }
        if writer {
            state.writers += 1;
            state.write_opens += 1;
        }
        drop(state);
        self.notify(crate::wait::ALL);
        Ok(Box::new(PipeEnd {
            pipe: self.clone(),
            reader,
            writer,
            wait_for,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, events: u32) {
        self.changed.notify_all();
        self.pollers.notify_events(events);
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

    /// Opened again through /proc/self/fd: a new read or write end, as
    /// Linux opens a pipe there like a FIFO.
    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        self.0.open_end(flags, false)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct PipeEnd {
    pipe: Arc<Pipe>,
    reader: bool,
    writer: bool,
    /// For a FIFO opener without a partner: whether it waits for a writer
    /// (or a reader), and that side's open count when it came.
    wait_for: Option<(bool, u64)>,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        if self.reader {
            state.readers -= 1;
        }
        if self.writer {
            state.writers -= 1;
        }
        // A FIFO's data lasts only while it is open.
        if state.readers == 0 && state.writers == 0 {
            state.bufs.clear();
        }
        drop(state);
        self.pipe.notify(crate::wait::ALL);
    }
}

impl FileOps for PipeEnd {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    fn writes_whole(&self) -> bool {
        true
    }

    fn read(&self, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.pipe.lock();
        // Writers wait only for a full pipe to have room again.
        let mut wake_writers = false;
        let mut want = buf.len();
        let mut done = 0;
        loop {
            if let Some(b) = state.bufs.front_mut() {
                let n = b.len().min(want);
                buf[done..done + n].copy_from_slice(&b.data[b.off..b.off + n]);
                done += n;
                b.off += n;
                // A packet is read once: what did not fit is dropped.
                if b.packet {
                    want = n;
                    b.off = b.data.len();
                }
                if b.len() == 0 {
                    wake_writers |= state.full();
                    state.bufs.pop_front();
                }
                want -= n;
                if want == 0 {
                    break;
                }
                if !state.bufs.is_empty() {
                    continue;
                }
            }
            if done > 0 || state.writers == 0 {
                break;
            }
            if flags & O_NONBLOCK != 0 {
                return Err(Errno::EAGAIN);
            }
            state = self.pipe.wait(state);
        }
        drop(state);
        if wake_writers {
            self.pipe.notify(POLLOUT | POLLWRNORM);
        }
        Ok(done)
    }

    fn write(&self, buf: &[u8], flags: i32) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let packet = flags & O_DIRECT != 0;
        let mut state = self.pipe.lock();
        // The sentry raises SIGPIPE for an EPIPE.
        if state.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let mut done = 0;
        // The tail of the write joins the last buffer if it fits there, which
        // keeps writes of up to a page (PIPE_BUF) whole.
        let tail = buf.len() % PAGE;
        if let Some(last) = state.bufs.back_mut() {
            if tail > 0 && !last.packet && last.data.len() + tail <= PAGE {
                last.data.extend_from_slice(&buf[..tail]);
                done = tail;
            }
        }
        while done < buf.len() {
            if state.readers == 0 {
                break;
            }
            if !state.full() {
                let n = (buf.len() - done).min(PAGE);
                let mut data = Vec::with_capacity(if packet { n } else { PAGE });
                data.extend_from_slice(&buf[done..done + n]);
                state.bufs.push_back(Buf {
                    data,
                    off: 0,
                    packet,
                });
                done += n;
                continue;
            }
            if flags & O_NONBLOCK != 0 {
                break;
            }
            self.pipe.notify(POLLIN | POLLRDNORM);
            state = self.pipe.wait(state);
        }
        let readers = state.readers;
        drop(state);
        if done > 0 {
            self.pipe.notify(POLLIN | POLLRDNORM);
            return Ok(done);
        }
        Err(if readers == 0 {
            Errno::EPIPE
        } else {
            Errno::EAGAIN
        })
    }

    fn peek(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let state = self.pipe.lock();
        if state.bufs.is_empty() {
            return match state.writers {
                0 => Ok(0),
                _ => Err(Errno::EAGAIN),
            };
        }
        let mut done = 0;
        for b in &state.bufs {
            let n = b.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&b.data[b.off..b.off + n]);
            done += n;
            if done == buf.len() {
                break;
            }
        }
        Ok(done)
    }

    fn open_ready(&self, waiter: Option<&Arc<Waiter>>) -> bool {
        let Some((for_writer, seen)) = self.wait_for else {
            return true;
        };
        if let Some(w) = waiter {
            self.pipe.pollers.register(w);
        }
        let state = self.pipe.lock();
        match for_writer {
            true => state.write_opens != seen,
            false => state.read_opens != seen,
        }
    }

    fn room(&self) -> Option<usize> {
        let state = self.pipe.lock();
        Some(state.max_slots.saturating_sub(state.bufs.len()) * PAGE)
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.pipe.pollers.register(w);
        }
        let state = self.pipe.lock();
        let mut ev = 0;
        if self.writer {
            if !state.full() {
                ev |= POLLOUT | POLLWRNORM;
            }
            if state.readers == 0 {
                ev |= POLLERR;
            }
        }
        if self.reader {
            if !state.bufs.is_empty() {
                ev |= POLLIN | POLLRDNORM;
            }
            if state.writers == 0 {
                ev |= POLLHUP;
            }
        }
        ev
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
        let n = self.pipe.lock().bytes() as i32;
        mem.copy_out(arg, n.as_bytes())?;
        Ok(0)
    }

    fn pipe_size(&self, set: Option<(u32, bool)>) -> Result<u64, Errno> {
        let mut state = self.pipe.lock();
        if let Some((size, privileged)) = set {
            // Linux's round_pipe_size: at least a page, a power of two.
            if size > 1 << 31 {
                return Err(Errno::EINVAL);
            }
            let size = u64::from(size.max(PAGE as u32).next_power_of_two());
            let slots = (size / PAGE as u64) as usize;
            if slots > state.max_slots && size > PIPE_MAX_SIZE && !privileged {
                return Err(Errno::EPERM);
            }
            if slots < state.bufs.len() {
                return Err(Errno::EBUSY);
            }
            let grew = slots > state.max_slots;
            state.max_slots = slots;
            if grew {
                drop(state);
                self.pipe.notify(POLLOUT | POLLWRNORM);
                return Ok(size);
            }
        }
        Ok((state.max_slots * PAGE) as u64)
    }
}

/// A named pipe's pipe (mknod S_IFIFO), made on its first open.
#[derive(Default)]
pub struct Fifo(Mutex<Option<Arc<Pipe>>>);

impl Fifo {
    /// Opens an end as open(2) does for `flags`: O_RDWR never waits, a
    /// non-blocking writer without readers is ENXIO.
    pub fn open(&self, ino: u64, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        let pipe = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| Pipe::new(ino, 0))
            .clone();
        pipe.open_end(flags, true)
    }
}
