//! File locks: flock(2).

use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::FlockKind;

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
