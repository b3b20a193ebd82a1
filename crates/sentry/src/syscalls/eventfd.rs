//! eventfd and eventfd2. The counter itself is `veil_vfs::new_eventfd`.

use linux_raw_sys::general::{EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE};
use veil_abi::{Errno, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::eventfd, eventfd, &[UInt]);
    t.full(Sysno::eventfd2, eventfd2, &[UInt, Hex]);
}

fn create(t: &Task, initval: u32, flags: u32) -> SysResult {
    if flags & !(EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let file = veil_vfs::new_eventfd(
        initval,
        flags & EFD_SEMAPHORE != 0,
        (flags & EFD_NONBLOCK) as i32,
    );
    t.fds
        .insert(file, flags & EFD_CLOEXEC != 0, 0, t.nofile())
        .map(|fd| fd as u64)
}

fn eventfd(t: &mut Task, a: &Args) -> SysResult {
    create(t, a.u32(0), 0)
}

fn eventfd2(t: &mut Task, a: &Args) -> SysResult {
    create(t, a.u32(0), a.u32(1))
}
