//! File syscalls: the glue between application memory and the VFS.

use veil_abi::{Errno, Iovec, SysResult, Sysno};
use veil_vfs::{OpenFile, PathRef};

use super::locks::{F_GETLK, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_SETLK, F_SETLKW};
use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;
use crate::vfsglue::TaskMem;

pub(super) const AT_FDCWD: i32 = -100;
const O_NONBLOCK: i32 = 0o4000;
pub(super) const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const AT_REMOVEDIR: u32 = 0x200;
const AT_EACCESS: u32 = 0x200;
const AT_NO_AUTOMOUNT: u32 = 0x800;
pub(super) const AT_EMPTY_PATH: u32 = 0x1000;
const AT_STATX_SYNC_TYPE: u32 = 0x6000;
const O_CLOEXEC: i32 = 0o2000000;
const O_TRUNC: i32 = 0o1000;
const PATH_MAX: usize = 4096;
/// Most bytes moved by one read or write, as Linux's MAX_RW_COUNT.
pub(super) const MAX_RW: usize = 0x7fff_f000;
/// Most bytes staged in the sentry per chunk of a read or write.
pub(super) const CHUNK: usize = 1 << 20;
const IOV_MAX: usize = 1024;
/// The top of user space on x86-64.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

const F_DUPFD: i32 = 0;
const F_GETFD: i32 = 1;
const F_SETFD: i32 = 2;
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const F_DUPFD_CLOEXEC: i32 = 1030;
const F_SETPIPE_SZ: i32 = 1031;
const F_GETPIPE_SZ: i32 = 1032;
const FD_CLOEXEC: u64 = 1;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::read, read, &[Fd, OutBuf, UInt]);
    t.full(Sysno::write, write, &[Fd, InBuf(2), UInt]);
    t.full(Sysno::pread64, pread64, &[Fd, OutBuf, UInt, Int]);
    t.full(Sysno::pwrite64, pwrite64, &[Fd, InBuf(2), UInt, Int]);
    t.full(Sysno::readv, readv, &[Fd, Hex, Int]);
    t.full(Sysno::writev, writev, &[Fd, Hex, Int]);
    t.full(Sysno::preadv, preadv, &[Fd, Hex, Int, Int]);
    t.full(Sysno::pwritev, pwritev, &[Fd, Hex, Int, Int]);
    t.full(Sysno::lseek, lseek, &[Fd, Int, Int]);
    t.full(Sysno::open, open, &[Path, OpenFlags, OpenMode(1)]);
    t.full(
        Sysno::openat,
        openat,
        &[DirFd, Path, OpenFlags, OpenMode(2)],
    );
    t.partial(
        Sysno::openat2,
        openat2,
        &[DirFd, Path, Hex, UInt],
        "RESOLVE_CACHED walks the dentry cache like any lookup (EAGAIN only with O_CREAT, O_TRUNC or O_TMPFILE)",
    );
    t.full(Sysno::creat, creat, &[Path, Oct]);
    const MKNOD_NOTE: &str = "FIFOs, sockets' names (nothing can connect: no AF_UNIX yet), regular files; device nodes need CAP_MKNOD and open the memory devices (1:3, 1:5, 1:7, 1:8, 1:9), ENXIO for other devices; only on in-memory filesystems (the root overlay, /dev/shm)";
    t.partial(Sysno::mknod, mknod, &[Path, Oct, Hex], MKNOD_NOTE);
    t.partial(
        Sysno::mknodat,
        mknodat,
        &[DirFd, Path, Oct, Hex],
        MKNOD_NOTE,
    );
    t.full(Sysno::close, close, &[Fd]);
    t.full(Sysno::close_range, close_range, &[UInt, UInt, Hex]);
    t.full(Sysno::fstat, fstat, &[Fd, Hex]);
    t.full(Sysno::stat, stat, &[Path, Hex]);
    t.full(Sysno::lstat, lstat, &[Path, Hex]);
    t.full(Sysno::newfstatat, newfstatat, &[DirFd, Path, Hex, Hex]);
    t.full(Sysno::statx, statx, &[DirFd, Path, Hex, Hex, Hex]);
    t.full(Sysno::getdents64, getdents64, &[Fd, Hex, UInt]);
    t.full(Sysno::readlink, readlink, &[Path, OutBuf, UInt]);
    t.full(Sysno::readlinkat, readlinkat, &[DirFd, Path, OutBuf, UInt]);
    t.full(Sysno::access, access, &[Path, Oct]);
    t.full(Sysno::faccessat, faccessat, &[DirFd, Path, Oct]);
    t.full(Sysno::faccessat2, faccessat2, &[DirFd, Path, Oct, Hex]);
    t.full(Sysno::getcwd, getcwd, &[OutBuf, UInt]);
    t.full(Sysno::chdir, chdir, &[Path]);
    t.full(Sysno::fchdir, fchdir, &[Fd]);
    t.partial(
        Sysno::fcntl,
        fcntl,
        &[Fd, Int, Hex],
        "descriptor flags, status flags, dup, pipe sizes, record locks (F_GETLK, F_SETLK(W) and the OFD forms); no EDEADLK detection; a process that shares its descriptor table with another (CLONE_FILES without CLONE_THREAD) shares its lock ownership",
    );
    t.partial(
        Sysno::ioctl,
        ioctl,
        &[Fd, Hex, Hex],
        "terminal modes and sizes on host terminals, job control (TIOCSCTTY, TIOCNOTTY, TIOC[GS]PGRP, TIOCGSID) in the sentry; on ptys TCGETS, TCSETS(W/F), TIOC[GS]WINSZ, FIONREAD, TIOCOUTQ, TCFLSH, TCSBRK, TCXONC, and on masters TIOCGPTN, TIOC[GS]PTLCK, TIOCGPTPEER (TCGETS2, TIOCPKT, TIOCSTI: ENOTTY); FIONBIO, FIOCLEX, FIONCLEX",
    );
    t.full(Sysno::dup, dup, &[Fd]);
    t.full(Sysno::dup2, dup2, &[Fd, Fd]);
    t.full(Sysno::dup3, dup3, &[Fd, Fd, Hex]);
    t.full(Sysno::umask, umask, &[Oct]);
    t.full(Sysno::mkdir, mkdir, &[Path, Oct]);
    t.full(Sysno::mkdirat, mkdirat, &[DirFd, Path, Oct]);
    t.full(Sysno::unlink, unlink, &[Path]);
    t.full(Sysno::unlinkat, unlinkat, &[DirFd, Path, Hex]);
    t.full(Sysno::rmdir, rmdir, &[Path]);
    t.full(Sysno::rename, rename, &[Path, Path]);
    t.full(Sysno::renameat, renameat, &[DirFd, Path, DirFd, Path]);
    t.partial(
        Sysno::renameat2,
        renameat2,
        &[DirFd, Path, DirFd, Path, Hex],
        "RENAME_NOREPLACE and RENAME_EXCHANGE; RENAME_WHITEOUT fails with EINVAL (no filesystem supports it)",
    );
    t.full(Sysno::symlink, symlink, &[Path, Path]);
    t.full(Sysno::symlinkat, symlinkat, &[Path, DirFd, Path]);
    t.partial(Sysno::link, link, &[Path, Path], LINK_NOTE);
    t.partial(
        Sysno::linkat,
        linkat,
        &[DirFd, Path, DirFd, Path, Hex],
        LINK_NOTE,
    );
    t.partial(
        Sysno::memfd_create,
        memfd_create,
        &[Path, Hex],
        "MFD_CLOEXEC; sealing (MFD_ALLOW_SEALING) and MFD_HUGETLB fail with EINVAL",
    );
    t.full(Sysno::pipe, pipe, &[Hex]);
    t.full(Sysno::pipe2, pipe2, &[Hex, Hex]);
    t.partial(Sysno::ftruncate, ftruncate, &[Fd, Int], TRUNCATE_NOTE);
    t.partial(Sysno::truncate, truncate, &[Path, Int], TRUNCATE_NOTE);
    t.partial(
        Sysno::statfs,
        statfs,
        &[Path, Hex],
        "every filesystem reports itself as a tmpfs",
    );
    t.partial(
        Sysno::fstatfs,
        fstatfs,
        &[Fd, Hex],
        "every filesystem reports itself as a tmpfs",
    );
    const XATTRS: &str = "user.* on regular files and directories and trusted.* (CAP_SYS_ADMIN) of tmpfs and the root overlay's upper layer; host trees serve user.* and trusted.overlay.*; security.* and system.* (ACLs) are EOPNOTSUPP";
    t.partial(Sysno::getxattr, getxattr, &[Path, Path, Hex, UInt], XATTRS);
    t.partial(
        Sysno::lgetxattr,
        lgetxattr,
        &[Path, Path, Hex, UInt],
        XATTRS,
    );
    t.partial(Sysno::fgetxattr, fgetxattr, &[Fd, Path, Hex, UInt], XATTRS);
    t.partial(Sysno::listxattr, listxattr, &[Path, Hex, UInt], XATTRS);
    t.partial(Sysno::llistxattr, llistxattr, &[Path, Hex, UInt], XATTRS);
    t.partial(Sysno::flistxattr, flistxattr, &[Fd, Hex, UInt], XATTRS);
    t.partial(
        Sysno::setxattr,
        setxattr,
        &[Path, Path, Hex, UInt, Hex],
        XATTRS,
    );
    t.partial(
        Sysno::lsetxattr,
        lsetxattr,
        &[Path, Path, Hex, UInt, Hex],
        XATTRS,
    );
    t.partial(
        Sysno::fsetxattr,
        fsetxattr,
        &[Fd, Path, Hex, UInt, Hex],
        XATTRS,
    );
    t.partial(Sysno::removexattr, removexattr, &[Path, Path], XATTRS);
    t.partial(Sysno::lremovexattr, lremovexattr, &[Path, Path], XATTRS);
    t.partial(Sysno::fremovexattr, fremovexattr, &[Fd, Path], XATTRS);
}

fn read_path(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    t.mm.read_cstr(addr, PATH_MAX - 1)
}

/// Where a relative path starts: the cwd or the directory `dirfd` names.
fn start_of(t: &Task, dirfd: i32, path: &[u8]) -> Result<PathRef, Errno> {
    let ctx = t.fs.lock().unwrap_or_else(|p| p.into_inner());
    if path.first() == Some(&b'/') {
        return Ok(ctx.root.clone());
    }
    if dirfd == AT_FDCWD {
        return Ok(ctx.cwd.clone());
    }
    drop(ctx);
    Ok(t.fds.get(dirfd)?.path().clone())
}

fn fs_ctx(t: &Task) -> veil_vfs::FsContext {
    t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Resolves `(dirfd, path)` for *at() calls, honouring AT_EMPTY_PATH.
pub(super) fn resolve(t: &Task, dirfd: i32, path_addr: u64, flags: u32) -> Result<PathRef, Errno> {
    let path = read_path(t, path_addr)?;
    if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd == AT_FDCWD {
            return Ok(fs_ctx(t).cwd);
        }
        return Ok(t.fds.get(dirfd)?.path().clone());
    }
    let start = start_of(t, dirfd, &path)?;
    t.kernel.vfs.lookup_as(
        &fs_ctx(t),
        &start,
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        &t.creds,
    )
}

/// Which way a read or write moves data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// From the file into application memory.
    Read,
    /// Into application memory, without waiting for a sandbox stream (the
    /// later buffers of a readv, which returns what is there).
    ReadAvailable,
    /// From application memory into the file.
    Write,
}

/// Moves up to `len` bytes between `file` and application memory at
/// `addr`, in chunks staged in the sentry. A short transfer (EOF, a pipe,
/// a terminal) ends the call; an error after some progress reports it.
fn transfer(
    t: &Task,
    file: &OpenFile,
    addr: u64,
    len: usize,
    mut offset: Option<u64>,
    dir: Dir,
) -> SysResult {
    let len = len.min(MAX_RW);
    t.mm.check_access(addr, len as u64, dir != Dir::Write)?;
    crate::tty::check_io(t, file, dir == Dir::Write)?;
    // Blocking sandbox streams (pipes) wait in the sentry, interruptibly;
    // host FDs wait in the host until ready, with a look at the task's
    // signals now and then, and only then block in the host call.
    let blocking = file.is_stream() && file.flags() & O_NONBLOCK == 0;
    let wait_here = blocking && !file.needs_repoll();
    if blocking && file.needs_repoll() && offset.is_none() {
        if dir == Dir::ReadAvailable {
            use veil_vfs::wait::events::{POLLERR, POLLHUP, POLLIN};
            let ready = file.wait_host(POLLIN, std::time::Duration::ZERO);
            if ready.is_some_and(|r| r & (POLLIN | POLLHUP | POLLERR) == 0) {
                return Ok(0);
            }
        } else {
            wait_host_ready(t, file, dir)?;
        }
    }
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    while done < len {
        let want = buf.len().min(len - done);
        let at = addr + done as u64;
        let chunk = &mut buf[..want];
        let n = match (dir, offset) {
            (Dir::Read, None) if wait_here => wait_io(t, file, || file.read_as(chunk, true)),
            (Dir::ReadAvailable, None) if wait_here => match file.read_as(chunk, true) {
                Err(Errno::EAGAIN) => Ok(0),
                r => r,
            },
            (Dir::Read | Dir::ReadAvailable, None) => file.read(chunk),
            (Dir::Read | Dir::ReadAvailable, Some(off)) => file.pread(chunk, off),
            (Dir::Write, _) => t.mm.copy_in(at, chunk).and_then(|()| match offset {
                None if wait_here => wait_io(t, file, || file.write_as(chunk, true)),
                None => file.write(chunk),
                Some(off) => file.pwrite(chunk, off),
            }),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(e) => {
                // A pipe whose readers left midway: the bytes written
                // count, and the writer gets SIGPIPE all the same.
                if e == Errno::EPIPE {
                    sigpipe(t);
                }
                break;
            }
        };
        if dir != Dir::Write {
            t.mm.copy_out(at, &buf[..n])?;
        }
        done += n;
        offset = offset.map(|o| o + n as u64);
        // A blocking pipe write goes on until all of it is taken.
        if n < want && !(dir == Dir::Write && wait_here && file.writes_whole()) {
            break;
        }
    }
    Ok(done as u64)
}

/// Waits until a host FD is ready for `dir` (or hung up), checking the
/// task's signals every `HOST_SIGNAL_CHECK`: a signal ends the wait.
fn wait_host_ready(t: &Task, file: &OpenFile, dir: Dir) -> Result<(), Errno> {
    use veil_vfs::wait::events::*;
    const HOST_SIGNAL_CHECK: std::time::Duration = std::time::Duration::from_millis(20);
    let want = match dir {
        Dir::Read | Dir::ReadAvailable => POLLIN,
        Dir::Write => POLLOUT,
    };
    loop {
        match file.wait_host(want, HOST_SIGNAL_CHECK) {
            None => return Ok(()),
            Some(ready) if ready & (want | POLLHUP | POLLERR | POLLNVAL) != 0 => return Ok(()),
            Some(_) => {}
        }
        if t.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
    }
}

/// Waits until a host FD has data (or hung up); a signal ends the wait.
pub(super) fn wait_host_readable(t: &Task, file: &OpenFile) -> Result<(), Errno> {
    wait_host_ready(t, file, Dir::Read)
}

/// Retries a non-blocking stream operation until it stops saying EAGAIN,
/// waiting for readiness in between; a signal ends the wait.
pub(super) fn wait_io(
    t: &Task,
    file: &OpenFile,
    mut op: impl FnMut() -> Result<usize, Errno>,
) -> Result<usize, Errno> {
    loop {
        match op() {
            Err(Errno::EAGAIN) => {}
            r => return r,
        }
        // Registered before the second try, so no wake-up is lost between.
        file.poll(Some(&t.shared.waiter));
        match op() {
            Err(Errno::EAGAIN) => {}
            r => return r,
        }
        if t.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        t.block(None);
    }
}

fn read_into(t: &Task, file: &OpenFile, addr: u64, len: usize, offset: Option<u64>) -> SysResult {
    transfer(t, file, addr, len, offset, Dir::Read)
}

fn write_from(t: &Task, file: &OpenFile, addr: u64, len: usize, offset: Option<u64>) -> SysResult {
    transfer(t, file, addr, len, offset, Dir::Write)
}

fn read(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    read_into(t, &file, a.u64(1), a.usize(2), None)
}

fn write(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    let r = write_from(t, &file, a.u64(1), a.usize(2), None);
    raise_sigpipe(t, r)
}

/// A write to a pipe without readers also raises SIGPIPE.
fn raise_sigpipe(t: &mut Task, r: SysResult) -> SysResult {
    if r == Err(Errno::EPIPE) {
        sigpipe(t);
    }
    r
}

/// SIGPIPE for the writing thread, as Linux's send_sig(SIGPIPE, current).
pub(super) fn sigpipe(t: &Task) {
    const SIGPIPE: i32 = 13;
    let info = crate::signal::SigInfo::user(SIGPIPE, t.tg.pid, t.creds.uid);
    t.kernel.signal_thread(&t.tg, &t.shared, info);
}

fn offset_arg(v: i64) -> Result<u64, Errno> {
    u64::try_from(v).map_err(|_| Errno::EINVAL)
}

fn pread64(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    read_into(t, &file, a.u64(1), a.usize(2), Some(offset_arg(a.i64(3))?))
}

fn pwrite64(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    write_from(t, &file, a.u64(1), a.usize(2), Some(offset_arg(a.i64(3))?))
}

pub(super) fn read_iovecs(t: &Task, addr: u64, count: i32) -> Result<Vec<Iovec>, Errno> {
    let count = usize::try_from(count).map_err(|_| Errno::EINVAL)?;
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut iovs = vec![Iovec::default(); count];
    t.mm.copy_in(addr, zerocopy::IntoBytes::as_mut_bytes(iovs.as_mut_slice()))?;
    let mut total: u64 = 0;
    for iov in &iovs {
        // Like Linux's access_ok, every buffer must lie in user space up
        // front, even if an earlier one would already satisfy the call.
        if iov
            .iov_base
            .checked_add(iov.iov_len)
            .is_none_or(|end| end > TASK_SIZE)
        {
            return Err(Errno::EFAULT);
        }
        total = total.checked_add(iov.iov_len).ok_or(Errno::EINVAL)?;
        if total > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
    }
    Ok(iovs)
}

fn vectored(t: &Task, a: &Args, offset: Option<u64>, write: bool) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    let iovs = read_iovecs(t, a.u64(1), a.i32(2))?;
    let mut total = 0u64;
    for iov in iovs.iter().filter(|v| v.iov_len > 0) {
        let off = offset.map(|o| o + total);
        let len = iov.iov_len as usize;
        let r = match (write, total) {
            (true, _) => write_from(t, &file, iov.iov_base, len, off),
            (false, 0) => read_into(t, &file, iov.iov_base, len, off),
            // Once some data is in, a read takes only what is there.
            (false, _) => transfer(t, &file, iov.iov_base, len, off, Dir::ReadAvailable),
        };
        match r {
            Ok(n) => {
                total += n;
                if n < iov.iov_len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

fn readv(t: &mut Task, a: &Args) -> SysResult {
    vectored(t, a, None, false)
}

fn writev(t: &mut Task, a: &Args) -> SysResult {
    let r = vectored(t, a, None, true);
    raise_sigpipe(t, r)
}

fn preadv(t: &mut Task, a: &Args) -> SysResult {
    vectored(t, a, Some(offset_arg(a.i64(3))?), false)
}

fn pwritev(t: &mut Task, a: &Args) -> SysResult {
    vectored(t, a, Some(offset_arg(a.i64(3))?), true)
}

fn lseek(t: &mut Task, a: &Args) -> SysResult {
    t.fds.get(a.i32(0))?.seek(a.i64(1), a.u32(2))
}

fn do_open(t: &Task, dirfd: i32, path_addr: u64, flags: i32, mode: u32) -> SysResult {
    let path = read_path(t, path_addr)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let start = start_of(t, dirfd, &path)?;
    let ctx = fs_ctx(t);
    let file = t
        .kernel
        .vfs
        .open(&ctx, &start, &path, flags, mode & 0o7777, &t.creds)?;
    install_opened(t, file, flags)
}

/// The last steps of open(2) and openat2(2): a FIFO waits for its other
/// end, a truncation is noted, a terminal may become the controlling one;
/// then the file gets a descriptor.
fn install_opened(t: &Task, file: std::sync::Arc<OpenFile>, flags: i32) -> SysResult {
    wait_partner(t, &file)?;
    if flags & O_TRUNC != 0 {
        truncated(t, &file);
    }
    let file = crate::tty::on_open(t, file, flags)?;
    let fd = t.fds.insert(file, flags & O_CLOEXEC != 0, 0, t.nofile())?;
    Ok(fd as u64)
}

/// A FIFO opened for reading only or writing only waits for the other
/// end; a signal ends the wait (the open end goes with `file`).
fn wait_partner(t: &Task, file: &OpenFile) -> Result<(), Errno> {
    while !file.open_ready(None) {
        if file.open_ready(Some(&t.shared.waiter)) {
            break;
        }
        if t.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        t.block(None);
    }
    Ok(())
}

/// mknod(2): FIFOs, sockets' names, device nodes (CAP_MKNOD) and regular
/// files.
fn do_mknod(t: &Task, dirfd: i32, path_addr: u64, mode: u32, dev: u32) -> SysResult {
    use veil_abi::mode::*;
    let kind = match mode & S_IFMT {
        0 => S_IFREG,
        k @ (S_IFREG | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK) => k,
        S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    let (start, path) = parent_and_name(t, dirfd, path_addr)?;
    let ctx = fs_ctx(t);
    if kind == S_IFREG {
        const O_CREAT: i32 = 0o100;
        const O_EXCL: i32 = 0o200;
        const O_WRONLY: i32 = 1;
        // Made as open(O_CREAT | O_EXCL) makes it; the descriptor goes.
        let flags = O_CREAT | O_EXCL | O_WRONLY;
        return t
            .kernel
            .vfs
            .open(&ctx, &start, &path, flags, mode & 0o7777, &t.creds)
            .map(|_| 0);
    }
    t.kernel
        .vfs
        .mknod(
            &ctx,
            &start,
            &path,
            kind | (mode & 0o7777),
            u64::from(dev),
            &t.creds,
        )
        .map(|()| 0)
}

fn mknod(t: &mut Task, a: &Args) -> SysResult {
    do_mknod(t, AT_FDCWD, a.u64(0), a.u32(1), a.u32(2))
}

fn mknodat(t: &mut Task, a: &Args) -> SysResult {
    do_mknod(t, a.i32(0), a.u64(1), a.u32(2), a.u32(3))
}

/// openat2(2): `struct open_how` with strict flag checks and `RESOLVE_*`
/// restrictions on the walk.
fn openat2(t: &mut Task, a: &Args) -> SysResult {
    use veil_vfs::*;
    const OPEN_HOW_SIZE_VER0: usize = 24;
    const PAGE_SIZE: usize = 4096;
    const O_CREAT: u64 = 0o100;
    const O_PATH: u64 = 0o10000000;
    const O_TMPFILE: u64 = 0o20200000;
    const O_TMPFILE_BIT: u64 = 0o20000000;
    /// Linux's VALID_OPEN_FLAGS.
    const VALID: u64 = 0o37777703;
    /// Linux's O_PATH_FLAGS: O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC.
    const O_PATH_FLAGS: u64 = 0o12600000;
    const VALID_RESOLVE: u64 = RESOLVE_NO_XDEV
        | RESOLVE_NO_MAGICLINKS
        | RESOLVE_NO_SYMLINKS
        | RESOLVE_BENEATH
        | RESOLVE_IN_ROOT
        | RESOLVE_CACHED;
    let (dirfd, path_addr, how_addr, size) = (a.i32(0), a.u64(1), a.u64(2), a.usize(3));
    if size < OPEN_HOW_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > PAGE_SIZE {
        return Err(Errno::E2BIG);
    }
    let mut raw = vec![0u8; size];
    t.mm.copy_in(how_addr, &mut raw)?;
    if raw[OPEN_HOW_SIZE_VER0..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let field = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(b)
    };
    let (flags, mode, resolve) = (field(0), field(1), field(2));
    if flags & !VALID != 0 || resolve & !VALID_RESOLVE != 0 {
        return Err(Errno::EINVAL);
    }
    if resolve & RESOLVE_BENEATH != 0 && resolve & RESOLVE_IN_ROOT != 0 {
        return Err(Errno::EINVAL);
    }
    let creates = flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE;
    if (creates && mode & !0o7777 != 0) || (!creates && mode != 0) {
        return Err(Errno::EINVAL);
    }
    if flags & O_TMPFILE_BIT != 0 && (flags & O_TMPFILE != O_TMPFILE || flags & 3 == 0) {
        return Err(Errno::EINVAL);
    }
    if flags & O_PATH != 0 && flags & !O_PATH_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    if resolve & RESOLVE_CACHED != 0 && flags & (O_TRUNC as u64 | O_CREAT | O_TMPFILE_BIT) != 0 {
        return Err(Errno::EAGAIN);
    }
    let path = read_path(t, path_addr)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    // A scoped walk starts at dirfd whatever the path.
    let start = if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0 {
        match dirfd {
            AT_FDCWD => fs_ctx(t).cwd,
            fd => t.fds.get(fd)?.path().clone(),
        }
    } else {
        start_of(t, dirfd, &path)?
    };
    let flags = flags as i32;
    let file = t.kernel.vfs.open_resolve(
        &fs_ctx(t),
        &start,
        &path,
        flags,
        mode as u32,
        &t.creds,
        resolve,
    )?;
    install_opened(t, file, flags)
}

fn open(t: &mut Task, a: &Args) -> SysResult {
    do_open(t, AT_FDCWD, a.u64(0), a.i32(1), a.u32(2))
}

fn openat(t: &mut Task, a: &Args) -> SysResult {
    do_open(t, a.i32(0), a.u64(1), a.i32(2), a.u32(3))
}

fn creat(t: &mut Task, a: &Args) -> SysResult {
    const O_CREAT: i32 = 0o100;
    const O_WRONLY: i32 = 1;
    do_open(
        t,
        AT_FDCWD,
        a.u64(0),
        O_CREAT | O_WRONLY | O_TRUNC,
        a.u32(1),
    )
}

fn close(t: &mut Task, a: &Args) -> SysResult {
    t.fds.remove(a.i32(0)).map(|_| 0)
}

fn close_range(t: &mut Task, a: &Args) -> SysResult {
    const CLOSE_RANGE_UNSHARE: u32 = 2;
    const CLOSE_RANGE_CLOEXEC: u32 = 4;
    let (first, last, flags) = (a.u32(0), a.u32(1), a.u32(2));
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    t.fds
        .close_range(first, last, flags & CLOSE_RANGE_CLOEXEC != 0);
    Ok(0)
}

fn write_stat(t: &Task, addr: u64, st: &veil_abi::Stat) -> SysResult {
    t.mm.write_obj(addr, st).map(|()| 0)
}

fn fstat(t: &mut Task, a: &Args) -> SysResult {
    let st = t.fds.get(a.i32(0))?.stat()?;
    write_stat(t, a.u64(1), &st)
}

fn stat(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), 0)?;
    write_stat(t, a.u64(1), &t.kernel.vfs.stat(&p)?)
}

fn lstat(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), AT_SYMLINK_NOFOLLOW)?;
    write_stat(t, a.u64(1), &t.kernel.vfs.stat(&p)?)
}

fn newfstatat(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(3);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let (st, _) = stat_at(t, a.i32(0), a.u64(1), flags)?;
    write_stat(t, a.u64(2), &st)
}

/// Stats `(dirfd, path)`, with the birth time where the filesystem keeps
/// one; an empty path with AT_EMPTY_PATH stats the open file itself (which
/// works for pipes and terminals too).
fn stat_at(
    t: &Task,
    dirfd: i32,
    path_addr: u64,
    flags: u32,
) -> Result<(veil_abi::Stat, Option<veil_abi::Timespec>), Errno> {
    if flags & AT_EMPTY_PATH != 0 && dirfd != AT_FDCWD && read_path(t, path_addr)?.is_empty() {
        let file = t.fds.get(dirfd)?;
        return Ok((file.stat()?, file.path().inode().btime()));
    }
    let p = resolve(t, dirfd, path_addr, flags)?;
    Ok((t.kernel.vfs.stat(&p)?, p.inode().btime()))
}

fn statx(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(2);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
    {
        return Err(Errno::EINVAL);
    }
    // STATX__RESERVED
    if a.u32(3) & 0x8000_0000 != 0 {
        return Err(Errno::EINVAL);
    }
    let (st, btime) = stat_at(t, a.i32(0), a.u64(1), flags)?;
    let mut sx = veil_vfs::statx_from_stat(&st);
    if let Some(b) = btime {
        sx.stx_mask |= linux_raw_sys::general::STATX_BTIME;
        sx.stx_btime = veil_abi::StatxTimestamp {
            tv_sec: b.tv_sec,
            tv_nsec: b.tv_nsec as u32,
            __reserved: 0,
        };
    }
    t.mm.write_obj(a.u64(4), &sx).map(|()| 0)
}

fn getdents64(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    let len = a.usize(2).min(MAX_RW);
    t.mm.check_access(a.u64(1), len as u64, true)?;
    let bytes = file.getdents64(len.min(CHUNK))?;
    t.mm.copy_out(a.u64(1), &bytes)?;
    Ok(bytes.len() as u64)
}

fn do_readlink(t: &Task, dirfd: i32, path_addr: u64, buf: u64, size: i32) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(t, path_addr)?;
    let target = if path.is_empty() {
        // readlinkat(fd, "") reads the symlink an O_PATH descriptor refers to.
        if dirfd == AT_FDCWD {
            return Err(Errno::ENOENT);
        }
        let p = t.fds.get(dirfd)?.path().clone();
        t.kernel.vfs.readlink_at(&p)?
    } else {
        let start = start_of(t, dirfd, &path)?;
        t.kernel.vfs.readlink(&fs_ctx(t), &start, &path)?
    };
    let n = target.len().min(size as usize);
    t.mm.copy_out(buf, &target[..n])?;
    Ok(n as u64)
}

fn readlink(t: &mut Task, a: &Args) -> SysResult {
    do_readlink(t, AT_FDCWD, a.u64(0), a.u64(1), a.i32(2))
}

fn readlinkat(t: &mut Task, a: &Args) -> SysResult {
    do_readlink(t, a.i32(0), a.u64(1), a.u64(2), a.i32(3))
}

fn do_access(t: &Task, dirfd: i32, path_addr: u64, mode: u32, flags: u32) -> SysResult {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(t, path_addr)?;
    if path.is_empty() && flags & AT_EMPTY_PATH == 0 {
        return Err(Errno::ENOENT);
    }
    let start = if path.is_empty() {
        resolve(t, dirfd, path_addr, flags)?
    } else {
        start_of(t, dirfd, &path)?
    };
    t.kernel
        .vfs
        .access(&fs_ctx(t), &start, &path, mode, flags, &t.creds)
        .map(|()| 0)
}

fn access(t: &mut Task, a: &Args) -> SysResult {
    do_access(t, AT_FDCWD, a.u64(0), a.u32(1), 0)
}

fn faccessat(t: &mut Task, a: &Args) -> SysResult {
    do_access(t, a.i32(0), a.u64(1), a.u32(2), 0)
}

fn faccessat2(t: &mut Task, a: &Args) -> SysResult {
    do_access(t, a.i32(0), a.u64(1), a.u32(2), a.u32(3))
}

fn getcwd(t: &mut Task, a: &Args) -> SysResult {
    let ctx = fs_ctx(t);
    let mut path = t.kernel.vfs.path_of(&ctx, &ctx.cwd);
    path.push(0);
    if path.len() > a.usize(1) {
        return Err(Errno::ERANGE);
    }
    t.mm.copy_out(a.u64(0), &path)?;
    Ok(path.len() as u64)
}

fn set_cwd(t: &Task, p: PathRef) -> SysResult {
    if !t.kernel.vfs.stat(&p)?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    t.kernel.vfs.check_search(&p, &t.creds)?;
    t.fs.lock().unwrap_or_else(|p| p.into_inner()).cwd = p;
    Ok(0)
}

fn chdir(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), 0)?;
    set_cwd(t, p)
}

fn fchdir(t: &mut Task, a: &Args) -> SysResult {
    let p = t.fds.get(a.i32(0))?.path().clone();
    set_cwd(t, p)
}

fn fcntl(t: &mut Task, a: &Args) -> SysResult {
    let fd = a.i32(0);
    match a.i32(1) {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let file = t.fds.get(fd)?;
            let min = a.i32(2);
            if min < 0 {
                return Err(Errno::EINVAL);
            }
            t.fds
                .insert(file, a.i32(1) == F_DUPFD_CLOEXEC, min, t.nofile())
                .map(|fd| fd as u64)
        }
        F_GETFD => Ok(if t.fds.get_cloexec(fd)? {
            FD_CLOEXEC
        } else {
            0
        }),
        F_SETFD => t
            .fds
            .set_cloexec(fd, a.u64(2) & FD_CLOEXEC != 0)
            .map(|()| 0),
        F_GETFL => Ok(t.fds.get(fd)?.flags() as u64),
        F_SETFL => {
            t.fds.get(fd)?.set_flags(a.i32(2));
            Ok(0)
        }
        F_GETPIPE_SZ => t.fds.get(fd)?.pipe_size(None),
        // Root stands for CAP_SYS_RESOURCE, which lifts pipe-max-size.
        F_SETPIPE_SZ => t.fds.get(fd)?.pipe_size(Some((
            a.u32(2),
            t.creds.capable(veil_vfs::cap::CAP_SYS_RESOURCE),
        ))),
        cmd @ (F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW) => {
            super::locks::fcntl_lock(t, fd, cmd, a.u64(2))
        }
        cmd => {
            t.fds.get(fd)?;
            t.kernel.log_once(&format!("fcntl command {cmd}"));
            Err(Errno::EINVAL)
        }
    }
}

fn ioctl(t: &mut Task, a: &Args) -> SysResult {
    const FIONCLEX: u32 = 0x5450;
    const FIOCLEX: u32 = 0x5451;
    const FIONBIO: u32 = 0x5421;
    const O_PATH: i32 = 0o10000000;
    let fd = a.i32(0);
    let file = t.fds.get(fd)?;
    // No ioctl, not even the generic ones, works on an O_PATH descriptor.
    if file.flags() & O_PATH != 0 {
        return Err(Errno::EBADF);
    }
    match a.u32(1) {
        FIOCLEX => t.fds.set_cloexec(fd, true).map(|()| 0),
        FIONCLEX => t.fds.set_cloexec(fd, false).map(|()| 0),
        FIONBIO => {
            let on: i32 = t.mm.read_obj(a.u64(2))?;
            let flags = file.flags();
            file.set_flags(if on != 0 {
                flags | O_NONBLOCK
            } else {
                flags & !O_NONBLOCK
            });
            Ok(0)
        }
        cmd if file.is_terminal() && crate::tty::handles(cmd) => {
            crate::tty::ioctl(t, &file, cmd, a.u64(2))
        }
        cmd => {
            if crate::tty::is_change(cmd) {
                crate::tty::check_settings_change(t, &file)?;
            }
            file.ioctl(cmd, a.u64(2), &TaskMem(t))
        }
    }
}

fn dup(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    t.fds.insert(file, false, 0, t.nofile()).map(|fd| fd as u64)
}

fn dup2(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    if a.i32(0) == a.i32(1) {
        return Ok(a.u64(1));
    }
    t.fds
        .insert_at(a.i32(1), file, false, t.nofile())
        .map(|()| a.u64(1))
}

fn dup3(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.i32(2);
    if flags & !O_CLOEXEC != 0 || a.i32(0) == a.i32(1) {
        return Err(Errno::EINVAL);
    }
    let file = t.fds.get(a.i32(0))?;
    t.fds
        .insert_at(a.i32(1), file, flags & O_CLOEXEC != 0, t.nofile())
        .map(|()| a.u64(1))
}

fn umask(t: &mut Task, a: &Args) -> SysResult {
    let mut ctx = t.fs.lock().unwrap_or_else(|p| p.into_inner());
    let old = ctx.umask;
    ctx.umask = a.u32(0) & 0o777;
    Ok(u64::from(old))
}

fn parent_and_name(t: &Task, dirfd: i32, path_addr: u64) -> Result<(PathRef, Vec<u8>), Errno> {
    let path = read_path(t, path_addr)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    Ok((start_of(t, dirfd, &path)?, path))
}

fn do_mkdir(t: &Task, dirfd: i32, path_addr: u64, mode: u32) -> SysResult {
    let (start, path) = parent_and_name(t, dirfd, path_addr)?;
    t.kernel
        .vfs
        .mkdir(&fs_ctx(t), &start, &path, mode & 0o7777, &t.creds)
        .map(|()| 0)
}

fn mkdir(t: &mut Task, a: &Args) -> SysResult {
    do_mkdir(t, AT_FDCWD, a.u64(0), a.u32(1))
}

fn mkdirat(t: &mut Task, a: &Args) -> SysResult {
    do_mkdir(t, a.i32(0), a.u64(1), a.u32(2))
}

fn do_unlink(t: &Task, dirfd: i32, path_addr: u64, flags: u32) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let (start, path) = parent_and_name(t, dirfd, path_addr)?;
    let ctx = fs_ctx(t);
    if flags & AT_REMOVEDIR != 0 {
        t.kernel.vfs.rmdir(&ctx, &start, &path, &t.creds)
    } else {
        t.kernel.vfs.unlink(&ctx, &start, &path, &t.creds)
    }
    .map(|()| 0)
}

fn unlink(t: &mut Task, a: &Args) -> SysResult {
    do_unlink(t, AT_FDCWD, a.u64(0), 0)
}

fn unlinkat(t: &mut Task, a: &Args) -> SysResult {
    do_unlink(t, a.i32(0), a.u64(1), a.u32(2))
}

fn rmdir(t: &mut Task, a: &Args) -> SysResult {
    do_unlink(t, AT_FDCWD, a.u64(0), AT_REMOVEDIR)
}

fn do_rename(t: &Task, olddir: i32, old: u64, newdir: i32, new: u64, flags: u32) -> SysResult {
    use veil_vfs::{RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT};
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
        || (flags & RENAME_EXCHANGE != 0 && flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) != 0)
    {
        return Err(Errno::EINVAL);
    }
    let (ostart, opath) = parent_and_name(t, olddir, old)?;
    let (nstart, npath) = parent_and_name(t, newdir, new)?;
    t.kernel
        .vfs
        .rename(
            &fs_ctx(t),
            &ostart,
            &opath,
            &nstart,
            &npath,
            &t.creds,
            flags,
        )
        .map(|()| 0)
}

fn rename(t: &mut Task, a: &Args) -> SysResult {
    do_rename(t, AT_FDCWD, a.u64(0), AT_FDCWD, a.u64(1), 0)
}

fn renameat(t: &mut Task, a: &Args) -> SysResult {
    do_rename(t, a.i32(0), a.u64(1), a.i32(2), a.u64(3), 0)
}

fn renameat2(t: &mut Task, a: &Args) -> SysResult {
    do_rename(t, a.i32(0), a.u64(1), a.i32(2), a.u64(3), a.u32(4))
}

fn do_symlink(t: &Task, target: u64, dirfd: i32, path_addr: u64) -> SysResult {
    let target = read_path(t, target)?;
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let (start, path) = parent_and_name(t, dirfd, path_addr)?;
    t.kernel
        .vfs
        .symlink(&fs_ctx(t), &start, &path, &target, &t.creds)
        .map(|()| 0)
}

const LINK_NOTE: &str =
    "the root filesystem (a host file is copied up first) and /dev/shm; EPERM on devfs";
const TRUNCATE_NOTE: &str = "shrinking a file that another process maps MAP_SHARED leaves the pages it already touched past the new end mapped (detached from the file) until it unmaps them";

fn do_link(t: &Task, olddirfd: i32, old: u64, newdirfd: i32, new: u64, flags: u32) -> SysResult {
    const AT_SYMLINK_FOLLOW: u32 = 0x400;
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let nofollow = if flags & AT_SYMLINK_FOLLOW != 0 {
        0
    } else {
        AT_SYMLINK_NOFOLLOW
    };
    let src = resolve(t, olddirfd, old, nofollow | (flags & AT_EMPTY_PATH))?;
    let (start, path) = parent_and_name(t, newdirfd, new)?;
    t.kernel
        .vfs
        .link(&fs_ctx(t), &src, &start, &path, &t.creds)
        .map(|()| 0)
}

fn link(t: &mut Task, a: &Args) -> SysResult {
    do_link(t, AT_FDCWD, a.u64(0), AT_FDCWD, a.u64(1), 0)
}

fn linkat(t: &mut Task, a: &Args) -> SysResult {
    do_link(t, a.i32(0), a.u64(1), a.i32(2), a.u64(3), a.u32(4))
}

/// memfd_create(2): an in-memory file with no name in the tree.
fn memfd_create(t: &mut Task, a: &Args) -> SysResult {
    const MFD_CLOEXEC: u32 = 1;
    const MFD_ALLOW_SEALING: u32 = 2;
    const MFD_NOEXEC_SEAL: u32 = 8;
    const MFD_EXEC: u32 = 0x10;
    /// NAME_MAX less the "memfd:" prefix.
    const MFD_NAME_MAX: usize = 249;
    let flags = a.u32(1);
    if flags & !(MFD_CLOEXEC | MFD_EXEC) != 0 {
        if flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) != 0 {
            t.kernel.log_once("memfd_create sealing");
        }
        return Err(Errno::EINVAL);
    }
    let name =
        t.mm.read_cstr(a.u64(0), MFD_NAME_MAX)
            .map_err(|e| match e {
                Errno::ENAMETOOLONG => Errno::EINVAL,
                e => e,
            })?;
    let mut label = b"memfd:".to_vec();
    label.extend_from_slice(&name);
    let inode = t.kernel.memfd_fs.anon_file(0o777, &t.creds);
    const O_RDWR: i32 = 2;
    const O_LARGEFILE: i32 = 0o100000;
    let ops = inode.clone().open(O_RDWR)?;
    let file = OpenFile::new(PathRef::anonymous(&label, inode), O_RDWR | O_LARGEFILE, ops)?;
    let fd = t
        .fds
        .insert(file, flags & MFD_CLOEXEC != 0, 0, t.nofile())?;
    Ok(fd as u64)
}

fn symlink(t: &mut Task, a: &Args) -> SysResult {
    do_symlink(t, a.u64(0), AT_FDCWD, a.u64(1))
}

fn symlinkat(t: &mut Task, a: &Args) -> SysResult {
    do_symlink(t, a.u64(0), a.i32(1), a.u64(2))
}

fn fill_statfs(t: &Task, p: &PathRef, addr: u64) -> SysResult {
    let st = t.kernel.vfs.statfs(p)?;
    t.mm.write_obj(addr, &st).map(|()| 0)
}

fn statfs(t: &mut Task, a: &Args) -> SysResult {
    let p = resolve(t, AT_FDCWD, a.u64(0), 0)?;
    fill_statfs(t, &p, a.u64(1))
}

fn fstatfs(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    fill_statfs(t, file.path(), a.u64(1))
}

/// The file an xattr call names: a path (following a final symlink or
/// not), or a descriptor, which may not be O_PATH.
enum XattrTarget {
    Path(u64),
    LPath(u64),
    Fd(i32),
}

fn xattr_target(t: &Task, target: XattrTarget) -> Result<PathRef, Errno> {
    const O_PATH: i32 = 0o10000000;
    match target {
        XattrTarget::Path(addr) => resolve(t, AT_FDCWD, addr, 0),
        XattrTarget::LPath(addr) => resolve(t, AT_FDCWD, addr, AT_SYMLINK_NOFOLLOW),
        XattrTarget::Fd(fd) => {
            let file = t.fds.get(fd)?;
            if file.flags() & O_PATH != 0 {
                return Err(Errno::EBADF);
            }
            Ok(file.path().clone())
        }
    }
}

/// An attribute name from the caller: an empty or overlong one is ERANGE.
fn xattr_name(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    match t.mm.read_cstr(addr, veil_vfs::XATTR_NAME_MAX) {
        Ok(name) if name.is_empty() => Err(Errno::ERANGE),
        Ok(name) => Ok(name),
        Err(Errno::ENAMETOOLONG) => Err(Errno::ERANGE),
        Err(e) => Err(e),
    }
}

/// Hands `data` to a caller's buffer of `size` bytes: size 0 asks for the
/// length only; a short buffer is ERANGE, or E2BIG when even the largest
/// buffer Linux accepts (`max`) could not hold it.
fn xattr_out(t: &Task, data: &[u8], addr: u64, size: usize, max: usize) -> SysResult {
    if size == 0 {
        return Ok(data.len() as u64);
    }
    if data.len() > size.min(max) {
        return Err(if size >= max {
            Errno::E2BIG
        } else {
            Errno::ERANGE
        });
    }
    t.mm.copy_out(addr, data)?;
    Ok(data.len() as u64)
}

fn do_getxattr(t: &Task, target: XattrTarget, a: &Args) -> SysResult {
    let p = xattr_target(t, target)?;
    let name = xattr_name(t, a.u64(1))?;
    let value = t.kernel.vfs.getxattr(&p, &name, &t.creds)?;
    xattr_out(t, &value, a.u64(2), a.usize(3), veil_vfs::XATTR_SIZE_MAX)
}

fn getxattr(t: &mut Task, a: &Args) -> SysResult {
    do_getxattr(t, XattrTarget::Path(a.u64(0)), a)
}

fn lgetxattr(t: &mut Task, a: &Args) -> SysResult {
    do_getxattr(t, XattrTarget::LPath(a.u64(0)), a)
}

fn fgetxattr(t: &mut Task, a: &Args) -> SysResult {
    do_getxattr(t, XattrTarget::Fd(a.i32(0)), a)
}

fn do_listxattr(t: &Task, target: XattrTarget, a: &Args) -> SysResult {
    let p = xattr_target(t, target)?;
    let mut list = Vec::new();
    for name in t.kernel.vfs.listxattr(&p, &t.creds)? {
        list.extend_from_slice(&name);
        list.push(0);
    }
    xattr_out(t, &list, a.u64(1), a.usize(2), veil_vfs::XATTR_LIST_MAX)
}

fn listxattr(t: &mut Task, a: &Args) -> SysResult {
    do_listxattr(t, XattrTarget::Path(a.u64(0)), a)
}

fn llistxattr(t: &mut Task, a: &Args) -> SysResult {
    do_listxattr(t, XattrTarget::LPath(a.u64(0)), a)
}

fn flistxattr(t: &mut Task, a: &Args) -> SysResult {
    do_listxattr(t, XattrTarget::Fd(a.i32(0)), a)
}

/// Like Linux, the flags, name and value are taken before the file.
fn do_setxattr(t: &Task, target: XattrTarget, a: &Args) -> SysResult {
    let flags = a.u32(4);
    if flags & !(veil_vfs::XATTR_CREATE | veil_vfs::XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = xattr_name(t, a.u64(1))?;
    let size = a.usize(3);
    if size > veil_vfs::XATTR_SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    let mut value = vec![0; size];
    t.mm.copy_in(a.u64(2), &mut value)?;
    let p = xattr_target(t, target)?;
    t.kernel
        .vfs
        .setxattr(&p, &name, &value, flags, &t.creds)
        .map(|()| 0)
}

fn setxattr(t: &mut Task, a: &Args) -> SysResult {
    do_setxattr(t, XattrTarget::Path(a.u64(0)), a)
}

fn lsetxattr(t: &mut Task, a: &Args) -> SysResult {
    do_setxattr(t, XattrTarget::LPath(a.u64(0)), a)
}

fn fsetxattr(t: &mut Task, a: &Args) -> SysResult {
    do_setxattr(t, XattrTarget::Fd(a.i32(0)), a)
}

fn do_removexattr(t: &Task, target: XattrTarget, a: &Args) -> SysResult {
    let name = xattr_name(t, a.u64(1))?;
    let p = xattr_target(t, target)?;
    t.kernel.vfs.removexattr(&p, &name, &t.creds).map(|()| 0)
}

fn removexattr(t: &mut Task, a: &Args) -> SysResult {
    do_removexattr(t, XattrTarget::Path(a.u64(0)), a)
}

fn lremovexattr(t: &mut Task, a: &Args) -> SysResult {
    do_removexattr(t, XattrTarget::LPath(a.u64(0)), a)
}

fn fremovexattr(t: &mut Task, a: &Args) -> SysResult {
    do_removexattr(t, XattrTarget::Fd(a.i32(0)), a)
}

fn ftruncate(t: &mut Task, a: &Args) -> SysResult {
    let len = u64::try_from(a.i64(1)).map_err(|_| Errno::EINVAL)?;
    let file = t.fds.get(a.i32(0))?;
    file.truncate(len)?;
    truncated(t, &file);
    Ok(0)
}

/// A shrunk file's pages past its end leave the caller's own mappings of
/// it, so that touching them raises SIGBUS as on Linux. Other processes'
/// mappings keep the old pages until they unmap them: only a stub's own
/// tracer can change its mappings.
fn truncated(t: &Task, file: &OpenFile) {
    if let Some(data) = file.mappable() {
        if let Err(e) = t.mm.invalidate_past_eof(&data) {
            tracing::warn!("dropping mappings past the end of a truncated file: {e}");
        }
    }
}

fn truncate(t: &mut Task, a: &Args) -> SysResult {
    const O_WRONLY: i32 = 1;
    let len = u64::try_from(a.i64(1)).map_err(|_| Errno::EINVAL)?;
    let path = read_path(t, a.u64(0))?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let start = start_of(t, AT_FDCWD, &path)?;
    let file = t
        .kernel
        .vfs
        .open(&fs_ctx(t), &start, &path, O_WRONLY, 0, &t.creds)?;
    file.truncate(len)?;
    truncated(t, &file);
    Ok(0)
}

fn do_pipe(t: &Task, addr: u64, flags: i32) -> SysResult {
    const O_DIRECT: i32 = 0o40000;
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    // Validate the destination before creating descriptors the caller
    // could never learn about.
    t.mm.check_access(addr, 8, true)?;
    let (r, w) = veil_vfs::new_pipe(flags & (O_NONBLOCK | O_DIRECT));
    let cloexec = flags & O_CLOEXEC != 0;
    let rfd = t.fds.insert(r, cloexec, 0, t.nofile())?;
    let wfd = match t.fds.insert(w, cloexec, 0, t.nofile()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.fds.remove(rfd);
            return Err(e);
        }
    };
    if let Err(e) = t.mm.write_obj(addr, &[rfd, wfd]) {
        let _ = t.fds.remove(rfd);
        let _ = t.fds.remove(wfd);
        return Err(e);
    }
    Ok(0)
}

fn pipe(t: &mut Task, a: &Args) -> SysResult {
    do_pipe(t, a.u64(0), 0)
}

fn pipe2(t: &mut Task, a: &Args) -> SysResult {
    do_pipe(t, a.u64(0), a.i32(1))
}
