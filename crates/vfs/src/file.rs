//! Open file descriptions: what an FD points to, with its offset and status
//! flags shared between duplicated descriptors.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use veil_abi::{Dirent64Head, Errno, Stat, Statx, StatxTimestamp};
use zerocopy::IntoBytes;

use crate::vfs::PathRef;

const O_ACCMODE: i32 = 3;
const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_APPEND: i32 = 0o2000;
const O_PATH: i32 = 0o10000000;
/// Status flags F_SETFL may change.
const SETFL_MASK: i32 = O_APPEND | 0o4000 | 0o20000 | 0o40000 | 0o1000000;

const SEEK_SET: u32 = 0;
const SEEK_CUR: u32 = 1;
const SEEK_END: u32 = 2;

/// Application memory, for operations (ioctls) whose arguments point into it.
pub trait UserMem {
    fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    fn copy_out(&self, addr: u64, buf: &[u8]) -> Result<(), Errno>;
}

/// A directory entry as getdents reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub dtype: u8,
}

/// The operations of one open file. Offsets are managed by `OpenFile`.
pub trait FileOps: Send + Sync {
    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// Stream files keep their own position (pipes, terminals, host FDs):
    /// `read`, `write` and `seek` go straight to them.
    fn is_stream(&self) -> bool {
        false
    }

    /// Stream reads; `flags` are the open file's status flags (O_NONBLOCK).
    fn read(&self, _buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn write(&self, _buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn seek(&self, _offset: i64, _whence: u32) -> Result<u64, Errno> {
        Err(Errno::ESPIPE)
    }

    fn stat(&self) -> Result<Stat, Errno>;

    /// Sets the file's size, zero-filling any growth.
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }

    /// The entries of a directory, "." and ".." included; ENOTDIR otherwise.
    fn dir_entries(&self) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::ENOTDIR)
    }

    fn ioctl(&self, _cmd: u32, _arg: u64, _mem: &dyn UserMem) -> Result<u64, Errno> {
        Err(Errno::ENOTTY)
    }
}

/// An open file description.
pub struct OpenFile {
    flags: AtomicI32,
    offset: Mutex<u64>,
    path: PathRef,
    ops: Box<dyn FileOps>,
    /// A directory's entries, listed once per open as Linux's readdir sees
    /// a consistent view from the first getdents.
    dir: Mutex<Option<Vec<DirEntry>>>,
}

impl OpenFile {
    pub fn new(path: PathRef, flags: i32, ops: Box<dyn FileOps>) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            flags: AtomicI32::new(flags),
            offset: Mutex::new(0),
            path,
            ops,
            dir: Mutex::new(None),
        })
    }

    pub fn flags(&self) -> i32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// F_SETFL: only the status flags Linux lets it change.
    pub fn set_flags(&self, flags: i32) {
        let old = self.flags();
        self.flags.store(
            (old & !SETFL_MASK) | (flags & SETFL_MASK),
            Ordering::Relaxed,
        );
    }

    pub fn path(&self) -> &PathRef {
        &self.path
    }

    fn readable(&self) -> Result<(), Errno> {
        let f = self.flags();
        if f & O_PATH != 0 || f & O_ACCMODE == O_WRONLY {
            return Err(Errno::EBADF);
        }
        Ok(())
    }

    fn writable(&self) -> Result<(), Errno> {
        let f = self.flags();
        if f & O_PATH != 0 || f & O_ACCMODE == O_RDONLY {
            return Err(Errno::EBADF);
        }
        Ok(())
    }

    fn lock_offset(&self) -> std::sync::MutexGuard<'_, u64> {
        self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_not_dir(&self) -> Result<(), Errno> {
        if self.ops.stat()?.is_dir() {
            return Err(Errno::EISDIR);
        }
        Ok(())
    }

    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.readable()?;
        self.check_not_dir()?;
        if self.ops.is_stream() {
            return self.ops.read(buf, self.flags());
        }
        let mut off = self.lock_offset();
        let n = self.ops.read_at(buf, *off)?;
        *off += n as u64;
        Ok(n)
    }

    pub fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.readable()?;
        self.check_not_dir()?;
        self.ops.read_at(buf, off)
    }

    pub fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        self.writable()?;
        if self.ops.is_stream() {
            return self.ops.write(buf, self.flags());
        }
        let mut off = self.lock_offset();
        if self.flags() & O_APPEND != 0 {
            *off = self.ops.stat()?.st_size as u64;
        }
        let n = self.ops.write_at(buf, *off)?;
        *off += n as u64;
        Ok(n)
    }

    pub fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        self.writable()?;
        if self.ops.is_stream() {
            return self.ops.write_at(buf, off);
        }
        // Linux appends even for pwrite on an O_APPEND file.
        let off = if self.flags() & O_APPEND != 0 {
            self.ops.stat()?.st_size as u64
        } else {
            off
        };
        self.ops.write_at(buf, off)
    }

    pub fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        if self.flags() & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        if self.ops.is_stream() {
            return self.ops.seek(offset, whence);
        }
        let mut off = self.lock_offset();
        let base: i64 = match whence {
            SEEK_SET => 0,
            SEEK_CUR => *off as i64,
            SEEK_END => self.ops.stat()?.st_size,
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        // Seeking a directory back to the start rereads it.
        if new == 0 {
            *self.dir.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        *off = new as u64;
        Ok(new as u64)
    }

    pub fn stat(&self) -> Result<Stat, Errno> {
        self.ops.stat()
    }

    /// ftruncate(2): needs the file open for writing.
    pub fn truncate(&self, len: u64) -> Result<(), Errno> {
        if self.writable().is_err() {
            return Err(Errno::EINVAL);
        }
        if self.ops.stat()?.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.ops.truncate(len)
    }

    pub fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        if self.flags() & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        self.ops.ioctl(cmd, arg, mem)
    }

    /// Serializes the next directory entries as `linux_dirent64` records
    /// that fit in `max_bytes`; the offset counts entries.
    pub fn getdents64(&self, max_bytes: usize) -> Result<Vec<u8>, Errno> {
        if self.flags() & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        let mut off = self.lock_offset();
        let mut cache = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if cache.is_none() {
            *cache = Some(self.ops.dir_entries()?);
        }
        let entries = cache.as_deref().unwrap_or_default();
        let mut out = Vec::new();
        let mut i = *off as usize;
        while let Some(e) = entries.get(i) {
            let head = size_of::<Dirent64Head>();
            let reclen = (head + e.name.len() + 1).next_multiple_of(8);
            if out.len() + reclen > max_bytes {
                if out.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let rec = Dirent64Head {
                d_ino: e.ino,
                d_off: (i + 1) as i64,
                d_reclen: reclen as u16,
                d_type: e.dtype,
            };
            out.extend_from_slice(rec.as_bytes());
            out.extend_from_slice(&e.name);
            out.resize(out.len() + reclen - head - e.name.len(), 0);
            i += 1;
        }
        *off = i as u64;
        Ok(out)
    }
}

/// statx(2)'s view of a `stat`.
pub fn statx_from_stat(st: &Stat) -> Statx {
    const STATX_BASIC_STATS: u32 = 0x7ff;
    let ts = |t: &veil_abi::Timespec| StatxTimestamp {
        tv_sec: t.tv_sec,
        tv_nsec: t.tv_nsec as u32,
        __reserved: 0,
    };
    let split = |d: u64| -> (u32, u32) {
        (
            (((d >> 8) & 0xfff) | ((d >> 32) & !0xfff)) as u32,
            ((d & 0xff) | ((d >> 12) & !0xff)) as u32,
        )
    };
    let (rdev_major, rdev_minor) = split(st.st_rdev);
    let (dev_major, dev_minor) = split(st.st_dev);
    Statx {
        stx_mask: STATX_BASIC_STATS,
        stx_blksize: st.st_blksize as u32,
        stx_nlink: st.st_nlink as u32,
        stx_uid: st.st_uid,
        stx_gid: st.st_gid,
        stx_mode: st.st_mode as u16,
        stx_ino: st.st_ino,
        stx_size: st.st_size as u64,
        stx_blocks: st.st_blocks as u64,
        stx_atime: ts(&st.st_atime),
        stx_ctime: ts(&st.st_ctime),
        stx_mtime: ts(&st.st_mtime),
        stx_rdev_major: rdev_major,
        stx_rdev_minor: rdev_minor,
        stx_dev_major: dev_major,
        stx_dev_minor: dev_minor,
        ..Statx::default()
    }
}
