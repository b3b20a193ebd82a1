//! Open file descriptions: what FDs point to. Duplicated descriptors share
//! one, and with it the offset and the status flags.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use veil_abi::mode::{S_IFDIR, S_IFIFO, S_IFMT, S_IFREG};
use veil_abi::{Dirent64Head, Errno, Stat, Statx, StatxTimestamp, Timespec};
use veil_memory::FileData;
use zerocopy::IntoBytes;

use crate::flags::*;
use crate::inode::DirEntry;
use crate::inotify;
use crate::lock::{FlockKind, LockOwner, RangeLock};
use crate::vfs::PathRef;
use crate::wait::Waiter;

/// Status flags that F_SETFL may change.
const SETFL_MASK: i32 = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;
/// Largest file offset (Linux's MAX_LFS_FILESIZE).
const MAX_OFFSET: u64 = i64::MAX as u64;

/// Application memory, for the operations (ioctls) whose arguments point
/// into it. The sentry implements it over the calling task's address space.
pub trait UserMem {
    fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    fn copy_out(&self, addr: u64, buf: &[u8]) -> Result<(), Errno>;
}

/// The I/O of one open file. Access modes, O_PATH, directories and offsets
/// are `OpenFile`'s business; an implementation only moves data.
///
/// A file either is seekable, and `OpenFile` keeps its offset and calls the
/// positional `read_at`/`write_at`, or is a stream (`is_stream`): pipes and
/// terminals, which have no offset, and host FDs, which keep their own.
/// Streams get `read`, `write` and `seek`; their `read_at`/`write_at` serve
/// pread/pwrite, ESPIPE where those make no sense.
pub trait FileOps: Send + Sync {
    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn is_stream(&self) -> bool {
        false
    }

    /// A stream's read; `flags` are the open file's status flags, for
    /// O_NONBLOCK.
    fn read(&self, _buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// A stream's write; `flags` as for `read`.
    fn write(&self, _buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// A stream's lseek.
    fn seek(&self, _offset: i64, _whence: u32) -> Result<u64, Errno> {
        Err(Errno::ESPIPE)
    }

    /// Sets the size of a regular file open for writing.
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }

    /// fallocate(2) of a regular file open for writing, with `mode` 0
    /// (extend), FALLOC_FL_KEEP_SIZE or FALLOC_FL_PUNCH_HOLE|KEEP_SIZE;
    /// `off + len` is checked not to overflow.
    fn allocate(&self, _mode: u32, _off: u64, _len: u64) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// fsync(2), or fdatasync(2) with `data_only`: files whose data lives
    /// on the host flush it there; in-memory files have nothing to flush.
    fn sync(&self, _data_only: bool) -> Result<(), Errno> {
        Ok(())
    }

    fn ioctl(&self, _cmd: u32, _arg: u64, _mem: &dyn UserMem) -> Result<u64, Errno> {
        Err(Errno::ENOTTY)
    }

    /// The poll(2) events ready now. With a waiter, also registers it to be
    /// woken when readiness may change. Files without their own notion of
    /// readiness (regular files, directories) are always ready.
    fn poll(&self, _waiter: Option<&Arc<Waiter>>) -> u32 {
        use crate::wait::events::*;
        POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM
    }

    /// A pipe's queued data, copied without consuming it (splice, tee):
    /// EAGAIN when empty with writers left, 0 when empty without.
    fn peek(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// For a FIFO end opened without a partner: whether one has come since
    /// (open(2) waits for that). With a waiter, registers it to be woken.
    fn open_ready(&self, _waiter: Option<&Arc<Waiter>>) -> bool {
        true
    }

    /// For pipes: how many bytes a non-blocking write takes whole now.
    fn room(&self) -> Option<usize> {
        None
    }

    /// Whether this is a terminal. Process groups, sessions and job control
    /// are the sentry's, which asks this to tell terminals apart.
    fn is_terminal(&self) -> bool {
        false
    }

    /// A terminal's local modes (termios c_lflag, where TOSTOP lives).
    fn terminal_lflag(&self) -> Result<u32, Errno> {
        Err(Errno::ENOTTY)
    }

    /// A sandbox terminal's (a pty end's) job-control state; host
    /// terminals have theirs in the sentry.
    fn tty(&self) -> Option<crate::pty::TtyLink> {
        None
    }

    /// For files backed by host FDs: waits in the host, at most `timeout`,
    /// for any of the poll `events`, and returns the ready ones (0 on
    /// timeout). Others have waiters instead and return None.
    fn wait_host(&self, _events: u32, _timeout: std::time::Duration) -> Option<u32> {
        None
    }

    /// Whether readiness can change without any waiter being woken (files
    /// backed by host FDs): pollers must then look again from time to time.
    fn needs_repoll(&self) -> bool {
        false
    }

    /// Whether the file has its own notion of readiness, which epoll needs
    /// (Linux's `file_can_poll`): not regular files, directories or the
    /// memory devices.
    fn pollable(&self) -> bool {
        false
    }

    /// Whether a blocking write waits until all of it is taken (pipes)
    /// rather than ending at the first short transfer.
    fn writes_whole(&self) -> bool {
        false
    }

    /// F_GETPIPE_SZ (`None`) and F_SETPIPE_SZ (`Some((size, privileged))`):
    /// the pipe's capacity in bytes. EBADF on anything but a pipe.
    fn pipe_size(&self, _set: Option<(u32, bool)>) -> Result<u64, Errno> {
        Err(Errno::EBADF)
    }

    /// The implementation, for the file kinds that others must recognise
    /// (epoll instances nested in each other, signalfd updated in place).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The file's data in the memory file, for shared mappings of it;
    /// `None` for files that can only be mapped as private copies.
    fn mappable(&self) -> Option<Arc<FileData>> {
        None
    }
}

/// The operations of files that have no I/O of their own: directories
/// (whose listing goes through the inode) and O_PATH descriptors.
pub struct NoOps;

impl FileOps for NoOps {}

struct Position {
    offset: u64,
    /// A directory's entries as of the first getdents since the last
    /// rewind, "." and ".." first; the offset indexes it. Linux likewise
    /// gives a reader a stable listing while it iterates.
    listing: Option<Vec<DirEntry>>,
}

/// An open file description.
pub struct OpenFile {
    path: PathRef,
    ops: Box<dyn FileOps>,
    flags: AtomicI32,
    /// The S_IFMT bits, fixed at open.
    file_type: u32,
    pos: Mutex<Position>,
}

/// The last reference to a description releases its flock lock.
impl Drop for OpenFile {
    fn drop(&mut self) {
        let flags = self.flags();
        if flags & O_PATH == 0 {
            let close = match writes(flags) {
                true => inotify::IN_CLOSE_WRITE,
                false => inotify::IN_CLOSE_NOWRITE,
            };
            inotify::notify(&self.path.dentry, close);
        }
        self.path.dentry.flocks.unlock(self.lock_owner());
        let records = &self.path.dentry.records;
        records.release(LockOwner::File(self.lock_owner()));
    }
}

impl OpenFile {
    /// A description of the file at `path` with open(2) `flags`
    /// (O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC and O_CLOEXEC are not kept).
    pub fn new(path: PathRef, flags: i32, ops: Box<dyn FileOps>) -> Result<Arc<OpenFile>, Errno> {
        let file_type = path.dentry.inode().stat()?.st_mode & S_IFMT;
        Ok(OpenFile::with_type(path, flags, file_type, ops))
    }

    /// `new` for a file whose type (S_IFMT bits) is known.
    pub(crate) fn with_type(
        path: PathRef,
        flags: i32,
        file_type: u32,
        ops: Box<dyn FileOps>,
    ) -> Arc<OpenFile> {
        let flags = flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
        if flags & O_PATH == 0 {
            inotify::notify(&path.dentry, inotify::IN_OPEN);
        }
        Arc::new(OpenFile {
            path,
            ops,
            flags: AtomicI32::new(flags),
            file_type,
            pos: Mutex::new(Position {
                offset: 0,
                listing: None,
            }),
        })
    }

    pub fn flags(&self) -> i32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// F_SETFL: changes only the status flags Linux lets it change.
    pub fn set_flags(&self, flags: i32) {
        let _ = self
            .flags
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & !SETFL_MASK) | (flags & SETFL_MASK))
            });
    }

    /// Where the file was opened.
    pub fn path(&self) -> &PathRef {
        &self.path
    }

    pub fn stat(&self) -> Result<Stat, Errno> {
        self.path.dentry.inode().stat()
    }

    fn lock_owner(&self) -> usize {
        self as *const OpenFile as usize
    }

    /// flock(2) without waiting (EAGAIN on a conflict); `None` unlocks.
    /// Descriptors opened for neither reading nor writing (O_PATH) may
    /// only unlock.
    pub fn flock(&self, kind: Option<FlockKind>) -> Result<(), Errno> {
        let flocks = &self.path.dentry.flocks;
        match kind {
            None => {
                flocks.unlock(self.lock_owner());
                Ok(())
            }
            Some(_) if self.is_path_only() => Err(Errno::EBADF),
            Some(kind) => flocks.lock(self.lock_owner(), kind),
        }
    }

    /// Registers `waiter` to be woken when a flock lock of the file goes.
    pub fn watch_flocks(&self, waiter: &Arc<Waiter>) {
        self.path.dentry.flocks.watch(waiter);
    }

    /// The owner of this description's OFD record locks.
    pub fn ofd_owner(&self) -> LockOwner {
        LockOwner::File(self.lock_owner())
    }

    /// F_GETLK: the first record lock that conflicts with `want`.
    pub fn lock_conflict(&self, want: &RangeLock) -> Option<RangeLock> {
        self.path.dentry.records.conflict(want)
    }

    /// F_SETLK without waiting (EAGAIN on a conflict); `None` unlocks.
    /// Read locks need the file open for reading, write locks for writing.
    pub fn set_record_lock(
        &self,
        owner: LockOwner,
        kind: Option<FlockKind>,
        start: u64,
        end: u64,
    ) -> Result<(), Errno> {
        let flags = self.flags();
        let ok = match kind {
            _ if flags & O_PATH != 0 => false,
            Some(FlockKind::Shared) => flags & O_ACCMODE != O_WRONLY,
            Some(FlockKind::Exclusive) => writes(flags),
            None => true,
        };
        if !ok {
            return Err(Errno::EBADF);
        }
        self.path.dentry.records.set(owner, kind, start, end)
    }

    /// Drops the record locks `owner` holds on the file (a process closing
    /// any descriptor of it).
    pub fn release_record_locks(&self, owner: LockOwner) {
        self.path.dentry.records.release(owner);
    }

    /// Registers `waiter` to be woken when a record lock changes.
    pub fn watch_record_locks(&self, waiter: &Arc<Waiter>) {
        self.path.dentry.records.watch(waiter);
    }

    /// fallocate(2) once the sentry has checked `mode`, `off` and `len`.
    pub fn allocate(&self, mode: u32, off: u64, len: u64) -> Result<(), Errno> {
        self.check_write()?;
        match self.file_type {
            S_IFREG if off.checked_add(len).is_none_or(|end| end > MAX_OFFSET) => Err(Errno::EFBIG),
            S_IFREG => self.ops.allocate(mode, off, len),
            S_IFDIR => Err(Errno::EISDIR),
            S_IFIFO => Err(Errno::ESPIPE),
            _ => Err(Errno::ENODEV),
        }
    }

    fn lock_pos(&self) -> MutexGuard<'_, Position> {
        self.pos.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_path_only(&self) -> bool {
        self.flags() & O_PATH != 0
    }

    fn check_read(&self) -> Result<(), Errno> {
        let flags = self.flags();
        if flags & O_PATH != 0 || flags & O_ACCMODE == O_WRONLY {
            return Err(Errno::EBADF);
        }
        if self.file_type == S_IFDIR {
            return Err(Errno::EISDIR);
        }
        Ok(())
    }

    fn check_write(&self) -> Result<(), Errno> {
        let flags = self.flags();
        if flags & O_PATH != 0 || !writes(flags) {
            return Err(Errno::EBADF);
        }
        Ok(())
    }

    /// read(2): at the file offset, which it advances.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.read_as(buf, false)
    }

    /// `read`, never blocking when `nonblock` is set: the sentry then waits
    /// for readiness itself, where a signal can interrupt it.
    pub fn read_as(&self, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        self.check_read()?;
        if self.ops.is_stream() {
            let extra = if nonblock { O_NONBLOCK } else { 0 };
            let n = self.ops.read(buf, self.flags() | extra)?;
            self.accessed(n);
            return Ok(n);
        }
        let mut pos = self.lock_pos();
        let n = self.ops.read_at(buf, pos.offset)?;
        pos.offset += n as u64;
        drop(pos);
        self.accessed(n);
        Ok(n)
    }

    /// pread(2): at `off`, leaving the file offset alone.
    pub fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.check_read()?;
        if off > MAX_OFFSET {
            return Err(Errno::EINVAL);
        }
        let n = self.ops.read_at(buf, off)?;
        self.accessed(n);
        Ok(n)
    }

    /// IN_ACCESS after a read that moved `n` bytes.
    fn accessed(&self, n: usize) {
        if n > 0 {
            inotify::notify(&self.path.dentry, inotify::IN_ACCESS);
        }
    }

    /// write(2): at the file offset, or at the end with O_APPEND.
    pub fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        self.write_as(buf, false)
    }

    /// `write`, never blocking when `nonblock` is set (see `read_as`).
    pub fn write_as(&self, buf: &[u8], nonblock: bool) -> Result<usize, Errno> {
        self.check_write()?;
        if self.ops.is_stream() {
            let extra = if nonblock { O_NONBLOCK } else { 0 };
            let n = self.ops.write(buf, self.flags() | extra)?;
            self.modified(n);
            return Ok(n);
        }
        let mut pos = self.lock_pos();
        if self.flags() & O_APPEND != 0 {
            pos.offset = self.size()?;
        }
        let n = self.ops.write_at(clamp(buf, pos.offset)?, pos.offset)?;
        pos.offset += n as u64;
        drop(pos);
        self.modified(n);
        Ok(n)
    }

    /// pwrite(2): at `off`; like Linux, at the end with O_APPEND anyway.
    pub fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        self.check_write()?;
        if off > MAX_OFFSET {
            return Err(Errno::EINVAL);
        }
        let off = if self.flags() & O_APPEND != 0 && !self.ops.is_stream() {
            self.size()?
        } else {
            off
        };
        let n = self.ops.write_at(clamp(buf, off)?, off)?;
        self.modified(n);
        Ok(n)
    }

    /// IN_MODIFY after a write that moved `n` bytes.
    fn modified(&self, n: usize) {
        if n > 0 {
            inotify::notify(&self.path.dentry, inotify::IN_MODIFY);
        }
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(self.stat()?.st_size.max(0) as u64)
    }

    /// lseek(2). Directories seek by entry and only from the start or the
    /// current entry; rewinding one lists it afresh.
    pub fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        if self.ops.is_stream() {
            return self.ops.seek(offset, whence);
        }
        let mut pos = self.lock_pos();
        let dir = self.file_type == S_IFDIR;
        let new = match whence {
            SEEK_SET => offset,
            SEEK_CUR => (pos.offset as i64)
                .checked_add(offset)
                .ok_or(Errno::EINVAL)?,
            SEEK_END if !dir => self
                .stat()?
                .st_size
                .checked_add(offset)
                .ok_or(Errno::EINVAL)?,
            // Files here have no holes: data runs to the end.
            SEEK_DATA | SEEK_HOLE if !dir => {
                let size = self.stat()?.st_size;
                if offset < 0 || offset >= size {
                    return Err(Errno::ENXIO);
                }
                if whence == SEEK_DATA {
                    offset
                } else {
                    size
                }
            }
            _ => return Err(Errno::EINVAL),
        };
        let new = u64::try_from(new).map_err(|_| Errno::EINVAL)?;
        if dir && new == 0 {
            pos.listing = None;
        }
        pos.offset = new;
        Ok(new)
    }

    /// fsync(2) and fdatasync(2); see `FileOps::sync`.
    pub fn sync(&self, data_only: bool) -> Result<(), Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.sync(data_only)
    }

    /// ftruncate(2).
    pub fn truncate(&self, len: u64) -> Result<(), Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        if !writes(self.flags()) || self.file_type != S_IFREG || len > MAX_OFFSET {
            return Err(Errno::EINVAL);
        }
        self.ops.truncate(len)?;
        inotify::notify(&self.path.dentry, inotify::IN_MODIFY);
        Ok(())
    }

    /// The poll(2) events ready on this file; see `FileOps::poll`.
    pub fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        self.ops.poll(waiter)
    }

    /// Whether this is an end of a pipe or FIFO (splice's rules).
    pub fn is_pipe(&self) -> bool {
        !self.is_path_only() && self.ops.room().is_some()
    }

    /// See `FileOps::peek`.
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.ops.peek(buf)
    }

    /// See `FileOps::open_ready`.
    pub fn open_ready(&self, waiter: Option<&Arc<Waiter>>) -> bool {
        self.ops.open_ready(waiter)
    }

    /// See `FileOps::room`; 0 for files that are not pipes.
    pub fn room(&self) -> usize {
        self.ops.room().unwrap_or(0)
    }

    /// Whether the description may be read (open for reading, not O_PATH).
    pub fn readable(&self) -> bool {
        let flags = self.flags();
        flags & O_PATH == 0 && flags & O_ACCMODE != O_WRONLY
    }

    /// Whether the description may be written.
    pub fn writable(&self) -> bool {
        let flags = self.flags();
        flags & O_PATH == 0 && writes(flags)
    }

    /// The file type bits (S_IFREG, S_IFIFO, ...).
    pub fn file_type(&self) -> u32 {
        self.file_type
    }

    /// Whether the file keeps its own position (pipes, terminals, host FDs).
    pub fn is_stream(&self) -> bool {
        self.ops.is_stream()
    }

    pub fn needs_repoll(&self) -> bool {
        self.ops.needs_repoll()
    }

    pub fn wait_host(&self, events: u32, timeout: std::time::Duration) -> Option<u32> {
        self.ops.wait_host(events, timeout)
    }

    pub fn is_terminal(&self) -> bool {
        !self.is_path_only() && self.ops.is_terminal()
    }

    pub fn terminal_lflag(&self) -> Result<u32, Errno> {
        self.ops.terminal_lflag()
    }

    pub fn tty(&self) -> Option<crate::pty::TtyLink> {
        if self.is_path_only() {
            return None;
        }
        self.ops.tty()
    }

    /// Whether epoll can watch the file (see `FileOps::pollable`).
    pub fn pollable(&self) -> bool {
        self.ops.pollable()
    }

    /// Whether a blocking write continues after a short transfer.
    pub fn writes_whole(&self) -> bool {
        self.ops.writes_whole()
    }

    /// F_GETPIPE_SZ and F_SETPIPE_SZ; see `FileOps::pipe_size`.
    pub fn pipe_size(&self, set: Option<(u32, bool)>) -> Result<u64, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.pipe_size(set)
    }

    /// The file's implementation as `T`, if it is one.
    pub fn ops_as<T: 'static>(&self) -> Option<&T> {
        self.ops.as_any()?.downcast_ref()
    }

    /// See `FileOps::mappable`.
    pub fn mappable(&self) -> Option<Arc<FileData>> {
        self.ops.mappable()
    }

    pub fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.ioctl(cmd, arg, mem)
    }

    /// getdents64(2): the next entries as `linux_dirent64` records that fit
    /// in `max_bytes`, "." and ".." first. Each record's `d_off` is the
    /// offset of the entry after it; an empty result is the end.
    pub fn getdents64(&self, max_bytes: usize) -> Result<Vec<u8>, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        if self.file_type != S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        let mut pos = self.lock_pos();
        let listing = match pos.listing.take() {
            Some(listing) => listing,
            None => self.list()?,
        };
        let start = usize::try_from(pos.offset).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut next = start;
        for (i, entry) in listing.iter().enumerate().skip(start) {
            if !push_dirent(&mut out, entry, i as u64 + 1, max_bytes) {
                break;
            }
            next = i + 1;
        }
        let stalled = out.is_empty() && next < listing.len();
        pos.listing = Some(listing);
        if stalled {
            return Err(Errno::EINVAL);
        }
        pos.offset = next as u64;
        Ok(out)
    }

    fn list(&self) -> Result<Vec<DirEntry>, Errno> {
        let dentry = &self.path.dentry;
        let ino = dentry.inode().stat()?.st_ino;
        // A mount root's ".." is itself, as filesystems report it on Linux.
        let parent_ino = match dentry.parent() {
            Some(parent) => parent.inode().stat()?.st_ino,
            None => ino,
        };
        let dot = |name: &[u8], ino| DirEntry {
            name: name.to_vec(),
            ino,
            dtype: veil_abi::mode::dtype(S_IFDIR),
        };
        let mut entries = vec![dot(b".", ino), dot(b"..", parent_ino)];
        entries.extend(dentry.inode().readdir()?);
        Ok(entries)
    }
}

/// Limits a write at `off` to the largest file size (EFBIG past it).
fn clamp(buf: &[u8], off: u64) -> Result<&[u8], Errno> {
    let room = MAX_OFFSET.checked_sub(off).filter(|&r| r > 0);
    match room {
        Some(room) => Ok(&buf[..buf.len().min(usize::try_from(room).unwrap_or(usize::MAX))]),
        None if buf.is_empty() => Ok(buf),
        None => Err(Errno::EFBIG),
    }
}

/// Appends one `linux_dirent64` record if it fits within `max` bytes.
fn push_dirent(out: &mut Vec<u8>, e: &DirEntry, next: u64, max: usize) -> bool {
    let head = size_of::<Dirent64Head>();
    // The name is NUL-terminated and the record 8-byte aligned.
    let reclen = (head + e.name.len() + 1).next_multiple_of(8);
    if out.len() + reclen > max {
        return false;
    }
    let rec = Dirent64Head {
        d_ino: e.ino,
        d_off: next as i64,
        d_reclen: reclen as u16,
        d_type: e.dtype,
    };
    out.extend_from_slice(rec.as_bytes());
    out.extend_from_slice(&e.name);
    out.resize(out.len() + reclen - head - e.name.len(), 0);
    true
}

/// statx(2)'s view of a `stat`: the basic fields.
pub fn statx_from_stat(st: &Stat) -> Statx {
    let ts = |t: &Timespec| StatxTimestamp {
        tv_sec: t.tv_sec,
        tv_nsec: t.tv_nsec as u32,
        __reserved: 0,
    };
    // Linux's new_encode_dev in reverse.
    let major = |d: u64| (((d >> 8) & 0xfff) | ((d >> 32) & !0xfff)) as u32;
    let minor = |d: u64| ((d & 0xff) | ((d >> 12) & !0xff)) as u32;
    Statx {
        stx_mask: linux_raw_sys::general::STATX_BASIC_STATS,
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
        stx_rdev_major: major(st.st_rdev),
        stx_rdev_minor: minor(st.st_rdev),
        stx_dev_major: major(st.st_dev),
        stx_dev_minor: minor(st.st_dev),
        ..Statx::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statx_splits_device_numbers() {
        // makedev(259, 70000) in Linux's encoding.
        let dev = (70000 & 0xff) | (259 << 8) | ((70000 & !0xff) << 12);
        let st = Stat {
            st_rdev: dev,
            st_mode: 0o20666,
            ..Stat::default()
        };
        let sx = statx_from_stat(&st);
        assert_eq!((sx.stx_rdev_major, sx.stx_rdev_minor), (259, 70000));
        assert_eq!(sx.stx_mode, 0o20666);
    }

    #[test]
    fn dirent_records_are_aligned_and_terminated() {
        let mut out = Vec::new();
        let e = DirEntry {
            name: b"abcde".to_vec(),
            ino: 42,
            dtype: 8,
        };
        assert!(push_dirent(&mut out, &e, 7, 64));
        // 19-byte head + 5 + NUL = 25, rounded up to 32.
        assert_eq!(out.len(), 32);
        assert_eq!(&out[0..8], &42u64.to_ne_bytes());
        assert_eq!(&out[8..16], &7i64.to_ne_bytes());
        assert_eq!(&out[16..18], &32u16.to_ne_bytes());
        assert_eq!(out[18], 8);
        assert_eq!(&out[19..25], b"abcde\0");
        assert!(!push_dirent(&mut out, &e, 8, 63));
    }

    #[test]
    fn writes_stop_at_the_largest_offset() {
        assert_eq!(clamp(b"abc", MAX_OFFSET - 1), Ok(&b"a"[..]));
        assert_eq!(clamp(b"abc", MAX_OFFSET), Err(Errno::EFBIG));
        assert_eq!(clamp(b"", MAX_OFFSET), Ok(&b""[..]));
    }
}
