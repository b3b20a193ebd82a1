//! File metadata syscalls (chmod, chown, utimes families) and the sync
//! family, which has nothing to flush: every file is in memory or on the
//! read-only lower layer.

use std::sync::Arc;

use veil_abi::mode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use veil_abi::{Errno, SysResult, Sysno, Timespec, Timeval};
use veil_vfs::{OpenFile, PathRef, TimeSpec};

use super::fs::{resolve, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const O_PATH: i32 = 0o10000000;
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::chmod, chmod, &[Path, Oct]);
    t.full(Sysno::fchmod, fchmod, &[Fd, Oct]);
    t.full(Sysno::fchmodat, fchmodat, &[DirFd, Path, Oct]);
    t.full(Sysno::fchmodat2, fchmodat2, &[DirFd, Path, Oct, Hex]);
    t.full(Sysno::chown, chown, &[Path, Int, Int]);
    t.full(Sysno::lchown, lchown, &[Path, Int, Int]);
    t.full(Sysno::fchown, fchown, &[Fd, Int, Int]);
    t.full(Sysno::fchownat, fchownat, &[DirFd, Path, Int, Int, Hex]);
    t.full(Sysno::utimensat, utimensat, &[DirFd, Path, Hex, Hex]);
    t.full(Sysno::utimes, utimes, &[Path, Hex]);
    t.full(Sysno::futimesat, futimesat, &[DirFd, Path, Hex]);
    t.full(Sysno::utime, utime, &[Path, Hex]);
    t.full(Sysno::sync, sync, &[]);
    t.full(Sysno::syncfs, syncfs, &[Fd]);
    t.full(Sysno::fsync, fsync, &[Fd]);
    t.full(Sysno::fdatasync, fdatasync, &[Fd]);
    t.full(
        Sysno::sync_file_range,
        sync_file_range,
        &[Fd, Int, Int, Hex],
    );
    t.partial(
        Sysno::fallocate,
        fallocate,
        &[Fd, Hex, Int, Int],
        "mode 0, FALLOC_FL_KEEP_SIZE (no space is reserved ahead) and FALLOC_FL_PUNCH_HOLE; other modes fail with EOPNOTSUPP",
    );
}

/// The open file behind `fd` for calls that act on the file itself:
/// EBADF for an O_PATH descriptor.
fn file_of(t: &Task, fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let file = t.fds.get(fd)?;
    if file.flags() & O_PATH != 0 {
        return Err(Errno::EBADF);
    }
    Ok(file)
}

/// The target of an *at() call with AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH
/// as its only allowed flags.
fn target_at(t: &Task, dirfd: i32, path: u64, flags: u32) -> Result<PathRef, Errno> {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    resolve(t, dirfd, path, flags)
}

fn do_chmod(t: &Task, p: &PathRef, mode: u32) -> SysResult {
    t.kernel.vfs.chmod(p, mode, &t.creds).map(|()| 0)
}

fn chmod(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), 0)?;
    do_chmod(t, &p, a.u32(1))
}

fn fchmod(t: &mut Task, a: &Args) -> SysResult {
    let file = file_of(t, a.i32(0))?;
    do_chmod(t, file.path(), a.u32(1))
}

fn fchmodat(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, a.i32(0), a.u64(1), 0)?;
    do_chmod(t, &p, a.u32(2))
}

/// fchmodat2: a symlink's own mode cannot change (EOPNOTSUPP).
fn fchmodat2(t: &mut Task, a: &Args) -> SysResult {
    let p = target_at(t, a.i32(0), a.u64(1), a.u32(3))?;
    do_chmod(t, &p, a.u32(2))
}

/// chown's IDs: -1 leaves one as it is.
fn id_arg(v: u32) -> Option<u32> {
    (v != u32::MAX).then_some(v)
}

fn do_chown(t: &Task, p: &PathRef, a: &Args, uid: usize) -> SysResult {
    let (uid, gid) = (id_arg(a.u32(uid)), id_arg(a.u32(uid + 1)));
    // An id the user namespace does not map is invalid, as on Linux.
    let ids = &t.kernel.ids;
    if uid.is_some_and(|u| ids.uid.outside(u).is_none())
        || gid.is_some_and(|g| ids.gid.outside(g).is_none())
    {
        return Err(Errno::EINVAL);
    }
    t.kernel.vfs.chown(p, uid, gid, &t.creds).map(|()| 0)
}

fn chown(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), 0)?;
    do_chown(t, &p, a, 1)
}

fn lchown(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), AT_SYMLINK_NOFOLLOW)?;
    do_chown(t, &p, a, 1)
}

fn fchown(t: &mut Task, a: &Args) -> SysResult {
    let file = file_of(t, a.i32(0))?;
    do_chown(t, file.path(), a, 1)
}

fn fchownat(t: &mut Task, a: &Args) -> SysResult {
    let p = target_at(t, a.i32(0), a.u64(1), a.u32(4))?;
    do_chown(t, &p, a, 2)
}

fn timespec_arg(ts: Timespec) -> Result<TimeSpec, Errno> {
    match ts.tv_nsec {
        UTIME_NOW => Ok(TimeSpec::Now),
        UTIME_OMIT => Ok(TimeSpec::Omit),
        0..=999_999_999 => Ok(TimeSpec::Set(ts)),
        _ => Err(Errno::EINVAL),
    }
}

fn timeval_arg(tv: Timeval) -> Result<TimeSpec, Errno> {
    if !(0..1_000_000).contains(&tv.tv_usec) {
        return Err(Errno::EINVAL);
    }
    Ok(TimeSpec::Set(Timespec {
        tv_sec: tv.tv_sec,
        tv_nsec: tv.tv_usec * 1000,
    }))
}

fn set_times(t: &Task, p: &PathRef, times: Option<[TimeSpec; 2]>) -> SysResult {
    t.kernel.vfs.utimes(p, times, &t.creds).map(|()| 0)
}

/// utimensat; a null path (futimens) changes the open file `dirfd`.
fn utimensat(t: &mut Task, a: &Args) -> SysResult {
    let (dirfd, path, flags) = (a.i32(0), a.u64(1), a.u32(3));
    let times = match a.u64(2) {
        0 => None,
        addr => {
            let [at, mt]: [Timespec; 2] = t.mm.read_obj(addr)?;
            Some([timespec_arg(at)?, timespec_arg(mt)?])
        }
    };
    if path == 0 && dirfd != AT_FDCWD {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let file = file_of(t, dirfd)?;
        return set_times(t, file.path(), times);
    }
    let p = target_at(t, dirfd, path, flags)?;
    set_times(t, &p, times)
}

fn do_utimes(t: &Task, dirfd: i32, path: u64, times: u64) -> SysResult {
    let times = match times {
        0 => None,
        addr => {
            let [at, mt]: [Timeval; 2] = t.mm.read_obj(addr)?;
            Some([timeval_arg(at)?, timeval_arg(mt)?])
        }
    };
    let p = resolve(t, dirfd, path, 0)?;
    set_times(t, &p, times)
}

fn utimes(t: &mut Task, a: &Args) -> SysResult {
    do_utimes(t, AT_FDCWD, a.u64(0), a.u64(1))
}

fn futimesat(t: &mut Task, a: &Args) -> SysResult {
    do_utimes(t, a.i32(0), a.u64(1), a.u64(2))
}

fn utime(t: &mut Task, a: &Args) -> SysResult {
    let times = match a.u64(1) {
        0 => None,
        addr => {
            let [at, mt]: [i64; 2] = t.mm.read_obj(addr)?;
            let set = |s| {
                TimeSpec::Set(Timespec {
                    tv_sec: s,
                    tv_nsec: 0,
                })
            };
            Some([set(at), set(mt)])
        }
    };
    let p = resolve(t, AT_FDCWD, a.u64(0), 0)?;
    set_times(t, &p, times)
}

fn sync(_t: &mut Task, _a: &Args) -> SysResult {
    Ok(0)
}

fn syncfs(t: &mut Task, a: &Args) -> SysResult {
    file_of(t, a.i32(0)).map(|_| 0)
}

fn fsync(t: &mut Task, a: &Args) -> SysResult {
    sync_file(t, a, false)
}

fn fdatasync(t: &mut Task, a: &Args) -> SysResult {
    sync_file(t, a, true)
}

/// EINVAL for files that cannot be synced (pipes, terminals, devices);
/// files on the host (a writable gofer root) are flushed there.
fn sync_file(t: &mut Task, a: &Args, data_only: bool) -> SysResult {
    let file = file_of(t, a.i32(0))?;
    match file.stat()?.st_mode & S_IFMT {
        S_IFREG | S_IFDIR => file.sync(data_only).map(|()| 0),
        _ => Err(Errno::EINVAL),
    }
}

fn sync_file_range(t: &mut Task, a: &Args) -> SysResult {
    const VALID: u32 = 7;
    let file = file_of(t, a.i32(0))?;
    let (off, len) = (a.i64(1), a.i64(2));
    if a.u32(3) & !VALID != 0 || off < 0 || len < 0 || off.checked_add(len).is_none() {
        return Err(Errno::EINVAL);
    }
    match file.stat()?.st_mode & S_IFMT {
        S_IFREG | S_IFDIR | S_IFLNK => Ok(0),
        _ => Err(Errno::ESPIPE),
    }
}

fn fallocate(t: &mut Task, a: &Args) -> SysResult {
    use linux_raw_sys::general::{FALLOC_FL_KEEP_SIZE as KEEP, FALLOC_FL_PUNCH_HOLE as PUNCH};
    let file = file_of(t, a.i32(0))?;
    let (mode, off, len) = (a.u32(1), a.i64(2), a.i64(3));
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    if !matches!(mode, 0 | KEEP) && mode != PUNCH | KEEP {
        if mode & PUNCH == 0 {
            t.kernel
                .log_once("fallocate modes other than KEEP_SIZE and PUNCH_HOLE");
        }
        return Err(Errno::EOPNOTSUPP);
    }
    file.allocate(mode, off as u64, len as u64).map(|()| 0)
}
