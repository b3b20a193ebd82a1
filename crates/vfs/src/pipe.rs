//! Pipes: a bounded byte queue between a read end and a write end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use veil_abi::mode::S_IFIFO;
use veil_abi::{Errno, Stat};
use zerocopy::IntoBytes;

use crate::file::{FileOps, OpenFile, UserMem};
use crate::vfs::{anon_inode, PathRef};

/// Default pipe capacity, as Linux's.
const PIPE_CAPACITY: usize = 64 << 10;
/// Writes up to this size are atomic (PIPE_BUF).
const PIPE_BUF: usize = 4096;
const O_NONBLOCK: i32 = 0o4000;
const FIONREAD: u32 = 0x541b;
/// The device number pipes report (Linux's pipefs is anonymous too).
const PIPEFS_DEV: u64 = 0xd;

struct State {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

struct Pipe {
    ino: u64,
    state: Mutex<State>,
    changed: Condvar,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    fn stat(&self) -> Stat {
        Stat {
            st_dev: PIPEFS_DEV,
            st_ino: self.ino,
            st_nlink: 1,
            st_mode: S_IFIFO | 0o600,
            st_blksize: 4096,
            ..Stat::default()
        }
    }
}

/// One end of a pipe; dropping the last FD of an end closes it.
struct End {
    pipe: Arc<Pipe>,
    write: bool,
}

impl Drop for End {
    fn drop(&mut self) {
        let mut st = self.pipe.lock();
        if self.write {
            st.writers -= 1;
        } else {
            st.readers -= 1;
        }
        drop(st);
        self.pipe.changed.notify_all();
    }
}

/// Creates a pipe; returns its read and write ends with the given status
/// flags (O_NONBLOCK).
pub fn new_pipe(flags: i32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    static NEXT_INO: AtomicU64 = AtomicU64::new(1);
    let pipe = Arc::new(Pipe {
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        state: Mutex::new(State {
            buf: VecDeque::new(),
            readers: 1,
            writers: 1,
        }),
        changed: Condvar::new(),
    });
    let end = |write: bool| {
        let ops = End {
            pipe: pipe.clone(),
            write,
        };
        let path = PathRef::anonymous(b"pipe", anon_inode());
        OpenFile::new(path, flags | if write { 1 } else { 0 }, Box::new(ops))
    };
    (end(false), end(true))
}

impl FileOps for End {
    fn is_stream(&self) -> bool {
        true
    }

    fn read(&self, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
        if self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.pipe.lock();
        while st.buf.is_empty() {
            if st.writers == 0 {
                return Ok(0);
            }
            if flags & O_NONBLOCK != 0 {
                return Err(Errno::EAGAIN);
            }
            st = self.pipe.wait(st);
        }
        let n = buf.len().min(st.buf.len());
        for (dst, src) in buf.iter_mut().zip(st.buf.drain(..n)) {
            *dst = src;
        }
        drop(st);
        self.pipe.changed.notify_all();
        Ok(n)
    }

    fn write(&self, buf: &[u8], flags: i32) -> Result<usize, Errno> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        let mut done = 0;
        let mut st = self.pipe.lock();
        while done < buf.len() {
            if st.readers == 0 {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            let room = PIPE_CAPACITY - st.buf.len();
            let rest = buf.len() - done;
            // Small writes go in whole or not at all.
            let fits = if rest <= PIPE_BUF {
                room >= rest
            } else {
                room > 0
            };
            if !fits {
                if flags & O_NONBLOCK != 0 {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EAGAIN)
                    };
                }
                st = self.pipe.wait(st);
                continue;
            }
            let n = rest.min(room);
            st.buf.extend(&buf[done..done + n]);
            done += n;
            self.pipe.changed.notify_all();
        }
        Ok(done)
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.pipe.stat())
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        match cmd {
            FIONREAD => {
                let n = self.pipe.lock().buf.len() as i32;
                mem.copy_out(arg, n.as_bytes()).map(|()| 0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }
}
