//! The FD table: descriptor numbers to open files, each with its
//! close-on-exec flag.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use veil_abi::Errno;

use crate::file::OpenFile;
use crate::lock::LockOwner;

/// The default RLIMIT_NOFILE soft limit.
pub const DEFAULT_NOFILE: u64 = 1024;
/// The largest RLIMIT_NOFILE the sandbox allows (Linux's nr_open default).
pub const MAX_NOFILE: u64 = 1 << 20;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    cloexec: bool,
}

#[derive(Clone)]
struct Table {
    slots: Vec<Option<Slot>>,
}

impl Table {
    fn slot(&self, fd: i32) -> Result<&Slot, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }
}

/// A task's descriptors; threads will share one, fork copies it. Files
/// closed by any method are released after the table's lock, since a
/// release may wake other tasks (a pipe's last writer).
///
/// The table's process owns the record locks its descriptors take: closing
/// any descriptor of a file, and dropping the table (exit), releases them.
pub struct FdTable {
    inner: Mutex<Table>,
    /// The process's PID; 0 until a process claims the table.
    owner: AtomicI32,
}

impl Drop for FdTable {
    fn drop(&mut self) {
        let t = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        let files: Vec<Arc<OpenFile>> = t.slots.iter().flatten().map(|s| s.file.clone()).collect();
        self.release_locks(files.iter());
    }
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable::new()
    }
}

impl FdTable {
    pub fn new() -> FdTable {
        FdTable {
            inner: Mutex::new(Table { slots: Vec::new() }),
            owner: AtomicI32::new(0),
        }
    }

    /// Makes process `pid` the owner of the table's record locks, unless a
    /// process already is (threads share their leader's table).
    pub fn claim_lock_owner(&self, pid: i32) {
        let _ = self
            .owner
            .compare_exchange(0, pid, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Releases the owner's record locks on closed `files`.
    fn release_locks<'a>(&self, files: impl Iterator<Item = &'a Arc<OpenFile>>) {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner != 0 {
            for f in files {
                f.release_record_locks(LockOwner::Process(owner));
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs `file` at the lowest free descriptor at or above `min_fd`
    /// and below `limit`, the caller's RLIMIT_NOFILE (open, dup, F_DUPFD):
    /// EINVAL if `min_fd` is out of range, EMFILE if none is free.
    pub fn insert(
        &self,
        file: Arc<OpenFile>,
        cloexec: bool,
        min_fd: i32,
        limit: usize,
    ) -> Result<i32, Errno> {
        let mut t = self.lock();
        let limit = limit.min(MAX_NOFILE as usize);
        let min = usize::try_from(min_fd).map_err(|_| Errno::EINVAL)?;
        if min >= limit {
            return Err(Errno::EINVAL);
        }
        let free = (min..limit).find(|&i| matches!(t.slots.get(i), None | Some(None)));
        let fd = free.ok_or(Errno::EMFILE)?;
        if fd >= t.slots.len() {
            t.slots.resize(fd + 1, None);
        }
        t.slots[fd] = Some(Slot { file, cloexec });
        Ok(fd as i32)
    }

    /// Installs `file` at exactly `fd`, closing what was there (dup2, dup3):
    /// EBADF if `fd` is not below `limit`, the caller's RLIMIT_NOFILE.
    pub fn insert_at(
        &self,
        fd: i32,
        file: Arc<OpenFile>,
        cloexec: bool,
        limit: usize,
    ) -> Result<(), Errno> {
        let replaced = {
            let mut t = self.lock();
            let i = usize::try_from(fd)
                .ok()
                .filter(|&i| i < limit.min(MAX_NOFILE as usize))
                .ok_or(Errno::EBADF)?;
            if i >= t.slots.len() {
                t.slots.resize(i + 1, None);
            }
            t.slots[i].replace(Slot { file, cloexec })
        };
        self.release_locks(replaced.iter().map(|s| &s.file));
        drop(replaced);
        Ok(())
    }

    /// The open descriptors, in order (/proc/PID/fd).
    pub fn open_fds(&self) -> Vec<i32> {
        let t = self.lock();
        (0..t.slots.len())
            .filter(|&i| t.slots[i].is_some())
            .filter_map(|i| i32::try_from(i).ok())
            .collect()
    }

    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        Ok(self.lock().slot(fd)?.file.clone())
    }

    pub fn get_cloexec(&self, fd: i32) -> Result<bool, Errno> {
        Ok(self.lock().slot(fd)?.cloexec)
    }

    pub fn set_cloexec(&self, fd: i32, cloexec: bool) -> Result<(), Errno> {
        let mut t = self.lock();
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let slot = t.slots.get_mut(i).and_then(Option::as_mut);
        slot.ok_or(Errno::EBADF)?.cloexec = cloexec;
        Ok(())
    }

    /// Closes `fd`, handing back its file for the caller to release.
    pub fn remove(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        let mut t = self.lock();
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let file = t
            .slots
            .get_mut(i)
            .and_then(Option::take)
            .ok_or(Errno::EBADF)?
            .file;
        drop(t);
        self.release_locks(std::iter::once(&file));
        Ok(file)
    }

    /// close_range(2): closes `first..=last`, or with `cloexec_only` marks
    /// them close-on-exec.
    pub fn close_range(&self, first: u32, last: u32, cloexec_only: bool) {
        let mut closed = Vec::new();
        {
            let mut t = self.lock();
            let end = (last as usize).saturating_add(1).min(t.slots.len());
            let range = t.slots.iter_mut().take(end).skip(first as usize);
            for slot in range {
                if cloexec_only {
                    if let Some(s) = slot {
                        s.cloexec = true;
                    }
                } else {
                    closed.extend(slot.take());
                }
            }
        }
        self.release_locks(closed.iter().map(|s| &s.file));
        drop(closed);
    }

    /// Closes every close-on-exec descriptor (execve).
    pub fn close_on_exec(&self) {
        let mut closed = Vec::new();
        {
            let mut t = self.lock();
            for slot in t.slots.iter_mut() {
                if slot.as_ref().is_some_and(|s| s.cloexec) {
                    closed.extend(slot.take());
                }
            }
        }
        self.release_locks(closed.iter().map(|s| &s.file));
        drop(closed);
    }

    /// A copy for a child that does not share the table (fork): the same
    /// open files under the same numbers.
    pub fn fork_copy(&self) -> FdTable {
        FdTable {
            inner: Mutex::new(self.lock().clone()),
            owner: AtomicI32::new(0),
        }
    }
}
