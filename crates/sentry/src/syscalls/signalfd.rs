//! signalfd and signalfd4. The file itself is `crate::signalfd`.

use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::OpenFile;

use super::strace::Arg::*;
use super::{Args, Table};
use crate::signal::UNBLOCKABLE;
use crate::signalfd::SignalFd;
use crate::task::Task;

const SFD_CLOEXEC: u32 = 0o2000000;
const SFD_NONBLOCK: u32 = 0o4000;
const O_RDWR: i32 = 2;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::signalfd, signalfd, &[Fd, Hex, UInt]);
    t.full(Sysno::signalfd4, signalfd4, &[Fd, Hex, UInt, Hex]);
}

fn create_or_update(t: &Task, fd: i32, mask_addr: u64, size: u64, flags: u32) -> SysResult {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = t.mm.read_obj::<u64>(mask_addr)? & !UNBLOCKABLE;
    if flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    if fd != -1 {
        let file = t.fds.get(fd)?;
        let sfd = file.ops_as::<SignalFd>().ok_or(Errno::EINVAL)?;
        sfd.set_mask(mask);
        return Ok(fd as u64);
    }
    let status = O_RDWR | (flags & SFD_NONBLOCK) as i32;
    let file = OpenFile::anonymous("[signalfd]", status, Box::new(SignalFd::new(mask)));
    t.fds
        .insert(file, flags & SFD_CLOEXEC != 0, 0, t.nofile())
        .map(|fd| fd as u64)
}

fn signalfd(t: &mut Task, a: &Args) -> SysResult {
    create_or_update(t, a.i32(0), a.u64(1), a.u64(2), 0)
}

fn signalfd4(t: &mut Task, a: &Args) -> SysResult {
    create_or_update(t, a.i32(0), a.u64(1), a.u64(2), a.u32(3))
}
