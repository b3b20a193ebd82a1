//! The FD table: descriptor numbers to open files, with close-on-exec.

use std::sync::{Arc, Mutex, MutexGuard};

use veil_abi::Errno;

use crate::file::OpenFile;

/// The default RLIMIT_NOFILE soft limit.
pub const DEFAULT_NOFILE: u64 = 1024;
/// The largest RLIMIT_NOFILE the sandbox allows (Linux's nr_open default).
pub const MAX_NOFILE: u64 = 1 << 20;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    cloexec: bool,
}

struct Table {
    slots: Vec<Option<Slot>>,
    limit: usize,
}

pub struct FdTable {
    inner: Mutex<Table>,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable::new()
    }
}

impl FdTable {
    pub fn new() -> FdTable {
        FdTable {
            inner: Mutex::new(Table {
                slots: Vec::new(),
                limit: DEFAULT_NOFILE as usize,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the highest descriptor number plus one (RLIMIT_NOFILE).
    pub fn set_limit(&self, limit: usize) {
        self.lock().limit = limit;
    }

    /// Installs `file` at the lowest free descriptor at or above `min_fd`.
    pub fn insert(&self, file: Arc<OpenFile>, cloexec: bool, min_fd: i32) -> Result<i32, Errno> {
        let mut t = self.lock();
        let min = usize::try_from(min_fd).map_err(|_| Errno::EINVAL)?;
        if min >= t.limit {
            return Err(Errno::EINVAL);
        }
        let fd = (min..t.limit)
            .find(|&i| t.slots.get(i).is_none_or(Option::is_none))
            .ok_or(Errno::EMFILE)?;
        if fd >= t.slots.len() {
            t.slots.resize(fd + 1, None);
        }
        t.slots[fd] = Some(Slot { file, cloexec });
        Ok(fd as i32)
    }

    /// Installs `file` at exactly `fd`, closing what was there (dup2).
    pub fn insert_at(&self, fd: i32, file: Arc<OpenFile>, cloexec: bool) -> Result<(), Errno> {
        let old = {
            let mut t = self.lock();
            let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
            if i >= t.limit {
                return Err(Errno::EBADF);
            }
            if i >= t.slots.len() {
                t.slots.resize(i + 1, None);
            }
            t.slots[i].replace(Slot { file, cloexec })
        };
        // The replaced file is released outside the lock.
        drop(old);
        Ok(())
    }

    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        let t = self.lock();
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        t.slots
            .get(i)
            .and_then(Option::as_ref)
            .map(|s| s.file.clone())
            .ok_or(Errno::EBADF)
    }

    pub fn get_cloexec(&self, fd: i32) -> Result<bool, Errno> {
        let t = self.lock();
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        t.slots
            .get(i)
            .and_then(Option::as_ref)
            .map(|s| s.cloexec)
            .ok_or(Errno::EBADF)
    }

    pub fn set_cloexec(&self, fd: i32, cloexec: bool) -> Result<(), Errno> {
        let mut t = self.lock();
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        match t.slots.get_mut(i).and_then(Option::as_mut) {
            Some(s) => {
                s.cloexec = cloexec;
                Ok(())
            }
            None => Err(Errno::EBADF),
        }
    }

    pub fn remove(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        let mut t = self.lock();
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        t.slots
            .get_mut(i)
            .and_then(Option::take)
            .map(|s| s.file)
            .ok_or(Errno::EBADF)
    }

    /// close_range(2): closes, or marks close-on-exec, `first..=last`.
    pub fn close_range(&self, first: u32, last: u32, cloexec_only: bool) {
        let mut closed = Vec::new();
        {
            let mut t = self.lock();
            let end = (last as usize).saturating_add(1).min(t.slots.len());
            for slot in t.slots.iter_mut().take(end).skip(first as usize) {
                if cloexec_only {
                    if let Some(s) = slot {
                        s.cloexec = true;
                    }
                } else if let Some(s) = slot.take() {
                    closed.push(s);
                }
            }
        }
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
        drop(closed);
    }
}
