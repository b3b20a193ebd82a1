//! pidfd_open and pidfd_send_signal. The file is `crate::pidfd`; waitid
//! takes pidfds with P_PIDFD, and clone makes them with CLONE_PIDFD.

use std::sync::Arc;

use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::OpenFile;

use super::strace::Arg::*;
use super::{Args, Table};
use crate::pidfd::PidFd;
use crate::task::{Task, ThreadGroup};

const PIDFD_NONBLOCK: u32 = 0o4000;
const O_RDWR: i32 = 2;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::pidfd_open,
        pidfd_open,
        &[Int, Hex],
        "process pidfds; PIDFD_THREAD fails with EINVAL",
    );
    t.full(
        Sysno::pidfd_send_signal,
        pidfd_send_signal,
        &[Fd, Signal, Hex, Hex],
    );
}

/// A new pidfd for `process` in the caller's table (always close-on-exec).
pub(super) fn install(t: &Task, process: Arc<ThreadGroup>, nonblock: bool) -> Result<i32, Errno> {
    let status = O_RDWR | if nonblock { PIDFD_NONBLOCK as i32 } else { 0 };
    let ops = PidFd::new(process, t.kernel.child_events.clone());
    let file = OpenFile::anonymous("[pidfd]", status, Box::new(ops));
    t.fds.insert(file, true, 0, t.nofile())
}

/// The process a pidfd names, and whether the pidfd is non-blocking.
pub(super) fn process_of(t: &Task, fd: i32) -> Result<(Arc<ThreadGroup>, bool), Errno> {
    let file = t.fds.get(fd)?;
    let pidfd = file.ops_as::<PidFd>().ok_or(Errno::EBADF)?;
    Ok((
        pidfd.process.clone(),
        file.flags() & PIDFD_NONBLOCK as i32 != 0,
    ))
}

fn pidfd_open(t: &mut Task, a: &Args) -> SysResult {
    let (pid, flags) = (a.i32(0), a.u32(1));
    if flags & !PIDFD_NONBLOCK != 0 || pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let process = t
        .kernel
        .processes()
        .get(&pid)
        .cloned()
        .ok_or(Errno::ESRCH)?;
    install(t, process, flags & PIDFD_NONBLOCK != 0).map(|fd| fd as u64)
}

/// pidfd_send_signal's scopes: the thread, its process, its process group.
const PIDFD_SIGNAL_THREAD: u32 = 1;
const PIDFD_SIGNAL_THREAD_GROUP: u32 = 2;
const PIDFD_SIGNAL_PROCESS_GROUP: u32 = 4;
/// si_code of tkill-style signals.
const SI_TKILL: i32 = -6;

fn pidfd_send_signal(t: &mut Task, a: &Args) -> SysResult {
    let (fd, sig, info_addr, flags) = (a.i32(0), a.i32(1), a.u64(2), a.u32(3));
    let scopes = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP;
    if flags & !scopes != 0 || flags.count_ones() > 1 {
        return Err(Errno::EINVAL);
    }
    let (process, _) = process_of(t, fd)?;
    let exited = process
        .exit
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    if exited {
        return Err(Errno::ESRCH);
    }
    let mut info = match info_addr {
        0 => crate::signal::SigInfo::user(sig, t.tg.pid, t.creds.uid),
        addr => super::signal::queued_info(t, process.pid, sig, addr)?,
    };
    match flags {
        PIDFD_SIGNAL_THREAD => {
            if info_addr == 0 {
                info.code = SI_TKILL;
            }
            super::signal::send_to_thread(t, Some(process.pid), process.pid, info)
        }
        PIDFD_SIGNAL_PROCESS_GROUP => super::signal::send_to_pgrp(t, process.pgid(), info),
        _ => super::signal::send_to_process(t, &process, info),
    }
}
