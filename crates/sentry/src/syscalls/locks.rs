//! File locks: flock(2) and fcntl's record locks.

use veil_abi::{Errno, Flock, SysResult, Sysno};
use veil_vfs::{FlockKind, LockOwner, OpenFile, RangeLock};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const LOCK_SH: u32 = 1;
const LOCK_EX: u32 = 2;
const LOCK_NB: u32 = 4;
const LOCK_UN: u32 = 8;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::flock,
        flock,
        &[Fd, Hex],
        "locks belong to a file's name: two hard links of one file lock separately",
    );
}

/// flock: whole-file locks of open file descriptions, released by LOCK_UN
/// or the description's last close; a blocked request ends on a signal.
fn flock(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    let cmd = a.u32(1);
    let kind = match cmd & !LOCK_NB {
        LOCK_SH => Some(FlockKind::Shared),
        LOCK_EX => Some(FlockKind::Exclusive),
        LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    loop {
        match file.flock(kind) {
            Err(Errno::EAGAIN) if cmd & LOCK_NB == 0 => {}
            r => return r.map(|()| 0),
        }
        // Registered before the second try, so no release is missed.
        file.watch_flocks(&t.shared.waiter);
        match file.flock(kind) {
            Err(Errno::EAGAIN) => {}
            r => return r.map(|()| 0),
        }
        if t.block(None) {
            return Err(Errno::ERESTARTSYS);
        }
    }
}

const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;
pub(super) const F_GETLK: i32 = 5;
pub(super) const F_SETLK: i32 = 6;
pub(super) const F_SETLKW: i32 = 7;
pub(super) const F_OFD_GETLK: i32 = 36;
pub(super) const F_OFD_SETLK: i32 = 37;
pub(super) const F_OFD_SETLKW: i32 = 38;

/// The byte range `[start, end)` a `struct flock` names, as Linux's
/// flock_to_posix_lock; `end` u64::MAX for "to any end of file".
fn range_of(file: &OpenFile, fl: &Flock) -> Result<(u64, u64), Errno> {
    const SEEK_SET: i16 = 0;
    const SEEK_CUR: i16 = 1;
    const SEEK_END: i16 = 2;
    let base = match fl.l_whence {
        SEEK_SET => 0,
        // Streams have no offset: Linux's f_pos stays 0 for them.
        SEEK_CUR => file.seek(0, 1).map_or(0, |o| o as i64),
        SEEK_END => file.stat()?.st_size,
        _ => return Err(Errno::EINVAL),
    };
    let start = base.checked_add(fl.l_start).ok_or(Errno::EOVERFLOW)?;
    let (start, end) = match fl.l_len {
        0 => (start, None),
        len if len > 0 => (start, Some(start.checked_add(len).ok_or(Errno::EOVERFLOW)?)),
        len => (start + len, Some(start)),
    };
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    Ok((start as u64, end.map_or(u64::MAX, |e| e as u64)))
}

/// F_GETLK, F_SETLK(W) and their OFD forms.
pub(super) fn fcntl_lock(t: &Task, fd: i32, cmd: i32, addr: u64) -> SysResult {
    let file = t.fds.get(fd)?;
    let mut fl: Flock = t.mm.read_obj(addr)?;
    let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
    if ofd && fl.l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let owner = if ofd {
        file.ofd_owner()
    } else {
        LockOwner::Process(t.tg.pid)
    };
    let kind = match fl.l_type {
        F_RDLCK => Some(FlockKind::Shared),
        F_WRLCK => Some(FlockKind::Exclusive),
        F_UNLCK => None,
        _ => return Err(Errno::EINVAL),
    };
    let (start, end) = range_of(&file, &fl)?;
    if matches!(cmd, F_GETLK | F_OFD_GETLK) {
        let kind = kind.ok_or(Errno::EINVAL)?;
        let want = RangeLock {
            owner,
            kind,
            start,
            end,
        };
        match file.lock_conflict(&want) {
            None => fl.l_type = F_UNLCK,
            Some(l) => {
                fl.l_type = if l.kind == FlockKind::Shared {
                    F_RDLCK
                } else {
                    F_WRLCK
                };
                fl.l_whence = 0;
                fl.l_start = l.start as i64;
                fl.l_len = if l.end == u64::MAX {
                    0
                } else {
                    (l.end - l.start) as i64
                };
                fl.l_pid = match l.owner {
                    LockOwner::Process(pid) => pid,
                    LockOwner::File(_) => -1,
                };
            }
        }
        return t.mm.write_obj(addr, &fl).map(|()| 0);
    }
    let wait = matches!(cmd, F_SETLKW | F_OFD_SETLKW);
    loop {
        match file.set_record_lock(owner, kind, start, end) {
            Err(Errno::EAGAIN) if wait => {}
            r => return r.map(|()| 0),
        }
        file.watch_record_locks(&t.shared.waiter);
        match file.set_record_lock(owner, kind, start, end) {
            Err(Errno::EAGAIN) => {}
            r => return r.map(|()| 0),
        }
        if t.block(None) {
            return Err(Errno::ERESTARTSYS);
        }
    }
}
