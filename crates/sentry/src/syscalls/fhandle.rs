//! name_to_handle_at and open_by_handle_at. No filesystem of the sandbox
//! exports file handles (Linux's filesystems without export operations), so
//! none is ever handed out and none decodes: a forged handle of a host
//! filesystem (the "shocker" escape) opens nothing. Both make Linux's
//! checks first, in its order, so bad arguments get the usual errno.

use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::cap;

use super::fs::{resolve, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const AT_SYMLINK_FOLLOW: u32 = 0x400;
const AT_HANDLE_FID: u32 = 0x200;
const MAX_HANDLE_SZ: u32 = 128;
/// The flag bits of a handle's type an application may set
/// (FILEID_IS_CONNECTABLE, FILEID_IS_DIR).
const FILEID_USER_FLAGS_MASK: u32 = 0xffff_0000;
const FILEID_VALID_USER_FLAGS: u32 = 0x3_0000;

pub(super) fn register(t: &mut Table) {
    t.unimplemented_checked(
        Sysno::name_to_handle_at,
        Errno::EOPNOTSUPP,
        name_to_handle_at,
        &[DirFd, Path, Hex, Hex, Hex],
        "no filesystem exports file handles",
    );
    t.unimplemented_checked(
        Sysno::open_by_handle_at,
        Errno::ESTALE,
        open_by_handle_at,
        &[Fd, Hex, OpenFlags],
        "no handle names a file; EPERM without CAP_DAC_READ_SEARCH",
    );
}

/// Linux resolves the name, then finds no export operations to encode it.
fn name_to_handle_at(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(4);
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH | AT_HANDLE_FID) != 0 {
        return Err(Errno::EINVAL);
    }
    let follow = match flags & AT_SYMLINK_FOLLOW {
        0 => AT_SYMLINK_NOFOLLOW,
        _ => 0,
    };
    resolve(t, a.i32(0), a.u64(1), follow | (flags & AT_EMPTY_PATH))?;
    t.kernel.log_once("name_to_handle_at");
    Err(Errno::EOPNOTSUPP)
}

/// Linux reads and checks the handle, takes the mount descriptor, checks
/// the caller may decode handles, and would then ask the filesystem.
fn open_by_handle_at(t: &mut Task, a: &Args) -> SysResult {
    let mut header = [0u8; 8];
    t.mm.copy_in(a.u64(1), &mut header)?;
    let [b0, b1, b2, b3, t0, t1, t2, t3] = header;
    let bytes = u32::from_ne_bytes([b0, b1, b2, b3]);
    let handle_type = i32::from_ne_bytes([t0, t1, t2, t3]);
    if bytes == 0 || bytes > MAX_HANDLE_SZ {
        return Err(Errno::EINVAL);
    }
    if handle_type < 0
        || handle_type as u32 & FILEID_USER_FLAGS_MASK & !FILEID_VALID_USER_FLAGS != 0
    {
        return Err(Errno::EINVAL);
    }
    let mut handle = vec![0u8; bytes as usize];
    let body = a.u64(1).checked_add(8).ok_or(Errno::EFAULT)?;
    t.mm.copy_in(body, &mut handle)?;
    let mount_fd = a.i32(0);
    if mount_fd != AT_FDCWD {
        t.fds.get(mount_fd)?;
    }
    if !t.creds.capable(cap::CAP_DAC_READ_SEARCH) {
        return Err(Errno::EPERM);
    }
    t.kernel.log_once("open_by_handle_at");
    Err(Errno::ESTALE)
}
