//! mount(2), umount2(2), pivot_root(2) and chroot(2) over the VFS's mount
//! table (crates/vfs/src/vfs.rs); the filesystems mount(2) makes are also
//! what the boot configuration mounts.

use std::sync::Arc;

use linux_raw_sys::general as g;
use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::mount::{FsKind, MountKind, Superblock, TmpfsOptions, MNT_FLAGS};
use veil_vfs::{FsContext, Inode, Mount, PathRef, Vfs};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::kernel::Kernel;
use crate::task::Task;

/// Options mount(2) copies in: a page, as Linux.
const DATA_MAX: usize = 4096;
/// Filesystem type names are short.
const FSTYPE_MAX: usize = 256;
const PROPAGATION: u32 = g::MS_SHARED | g::MS_PRIVATE | g::MS_SLAVE | g::MS_UNBINDABLE;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::mount,
        mount,
        &[Path, Path, Path, Hex, Hex],
        "tmpfs, proc, sysfs, devtmpfs; MS_BIND (and MS_REC), MS_REMOUNT, MS_MOVE; propagation flags are accepted with nothing to propagate; other filesystems fail with ENODEV; a remount changes only tmpfs's size",
    );
    t.full(Sysno::umount2, umount2, &[Path, Hex]);
    t.partial(
        Sysno::pivot_root,
        pivot_root,
        &[Path, Path],
        "only roots, working directories and open descriptors make a mount busy, not memory mappings of its files",
    );
    t.full(Sysno::chroot, chroot, &[Path]);
}

/// A new filesystem of `kind` for mount(2) or the boot configuration;
/// binds use the gofer connections `clients`.
pub fn new_fs(
    k: &Arc<Kernel>,
    kind: &MountKind,
    clients: &[Arc<veil_gofer::GoferClient>],
) -> Result<(Arc<dyn Inode>, Arc<Superblock>), Errno> {
    match kind {
        MountKind::Proc => Ok((
            crate::procfs::root(k),
            Superblock::new(FsKind::Proc, b"proc", b""),
        )),
        MountKind::Sysfs => Ok((
            crate::sysfs::root(k),
            Superblock::new(FsKind::Sysfs, b"sysfs", b""),
        )),
        _ => k.vfs.new_fs(kind, clients, &k.memfile),
    }
}

fn require_admin(t: &Task) -> Result<(), Errno> {
    if !t.creds.capable(g::CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    Ok(())
}

fn ctx(t: &Task) -> FsContext {
    t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn lookup(t: &Task, addr: u64, follow: bool) -> Result<PathRef, Errno> {
    let path = t.mm.read_cstr(addr, g::PATH_MAX as usize - 1)?;
    let ctx = ctx(t);
    let start = if path.first() == Some(&b'/') {
        ctx.root.clone()
    } else {
        ctx.cwd.clone()
    };
    t.kernel
        .vfs
        .lookup_as(&ctx, &start, &path, follow, &t.creds)
}

/// mount(2)'s options string; none for a null pointer.
fn read_data(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    if addr == 0 {
        return Ok(Vec::new());
    }
    t.mm.read_cstr(addr, DATA_MAX)
}

fn mount(t: &mut Task, a: &Args) -> SysResult {
    let (source, target, fstype, flags, data) = (a.u64(0), a.u64(1), a.u64(2), a.u64(3), a.u64(4));
    let flags = flags as u32;
    // Linux resolves the target before it checks the caller's right.
    let at = lookup(t, target, true)?;
    require_admin(t)?;
    let vfs = &t.kernel.vfs;
    if flags & g::MS_REMOUNT != 0 {
        let bind = flags & g::MS_BIND != 0;
        if !bind {
            vfs.check_mount_root(&at)?;
            at.mount.sb.remount(&read_data(t, data)?)?;
        }
        vfs.remount(&at, flags & MNT_FLAGS, bind)?;
        return Ok(0);
    }
    if flags & g::MS_BIND != 0 {
        let src = lookup(t, source, true)?;
        vfs.bind(&src, &at, flags & g::MS_REC != 0)?;
        return Ok(0);
    }
    if flags & PROPAGATION != 0 {
        vfs.check_mount_root(&at)?;
        return Ok(0);
    }
    if flags & g::MS_MOVE != 0 {
        let src = lookup(t, source, true)?;
        vfs.move_mount(&src, &at)?;
        return Ok(0);
    }
    if fstype == 0 {
        return Err(Errno::EINVAL);
    }
    let fstype = t.mm.read_cstr(fstype, FSTYPE_MAX)?;
    let data = read_data(t, data)?;
    let (root, sb) = match &fstype[..] {
        b"tmpfs" => {
            let limit = veil_vfs::fs::memfs::DEFAULT_SIZE_LIMIT;
            let opts = TmpfsOptions::parse(&data, limit)?;
            Vfs::tmpfs(&opts, &t.kernel.memfile)
        }
        b"proc" => new_fs(&t.kernel, &MountKind::Proc, &[])?,
        b"sysfs" => new_fs(&t.kernel, &MountKind::Sysfs, &[])?,
        b"devtmpfs" => new_fs(&t.kernel, &MountKind::Devtmpfs, &[])?,
        b"devpts" => new_fs(&t.kernel, &MountKind::Devpts, &[])?,
        _ => {
            t.kernel.log_once(
                "mount of a filesystem other than tmpfs, proc, sysfs, devtmpfs or devpts",
            );
            return Err(Errno::ENODEV);
        }
    };
    if !at.stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    vfs.mount_new(&at, root, sb, flags & MNT_FLAGS)?;
    Ok(0)
}

/// Whether any task's root, working directory or open file lies in `m`.
fn in_use(k: &Kernel, m: &Arc<Mount>) -> bool {
    k.all_tasks().iter().any(|task| {
        let view = task.view.lock().unwrap_or_else(|p| p.into_inner());
        view.as_ref().is_some_and(|v| {
            let fs = v.fs.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let open = v
                .fds
                .open_fds()
                .into_iter()
                .any(|fd| v.fds.get(fd).is_ok_and(|f| Arc::ptr_eq(&f.path().mount, m)));
            Arc::ptr_eq(&fs.root.mount, m) || Arc::ptr_eq(&fs.cwd.mount, m) || open
        })
    })
}

fn umount2(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u64(1);
    let known = u64::from(g::MNT_FORCE | g::MNT_DETACH | g::MNT_EXPIRE | g::UMOUNT_NOFOLLOW);
    if flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let flags = flags as u32;
    if flags & g::MNT_EXPIRE != 0 && flags & (g::MNT_FORCE | g::MNT_DETACH) != 0 {
        return Err(Errno::EINVAL);
    }
    let at = lookup(t, a.u64(0), flags & g::UMOUNT_NOFOLLOW == 0)?;
    require_admin(t)?;
    if flags & g::MNT_EXPIRE != 0 {
        t.kernel.log_once("umount2(MNT_EXPIRE)");
        return Err(Errno::EAGAIN);
    }
    let k = t.kernel.clone();
    let detach = flags & g::MNT_DETACH != 0;
    k.vfs.umount(&at, detach, &|m| in_use(&k, m))?;
    Ok(0)
}

fn pivot_root(t: &mut Task, a: &Args) -> SysResult {
    require_admin(t)?;
    let new_root = lookup(t, a.u64(0), true)?;
    let put_old = lookup(t, a.u64(1), true)?;
    let (old, new) = t.kernel.vfs.pivot_root(&ctx(t), &new_root, &put_old)?;
    // Every task whose root or cwd was the old root follows.
    for task in t.kernel.all_tasks() {
        let view = task.view.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = view.as_ref() else { continue };
        let mut fs = v.fs.lock().unwrap_or_else(|p| p.into_inner());
        let was_old =
            |p: &PathRef| Arc::ptr_eq(&p.mount, &old.mount) && Arc::ptr_eq(&p.dentry, &old.dentry);
        if was_old(&fs.root) {
            fs.root = new.clone();
        }
        if was_old(&fs.cwd) {
            fs.cwd = new.clone();
        }
    }
    Ok(0)
}

fn chroot(t: &mut Task, a: &Args) -> SysResult {
    let dir = lookup(t, a.u64(0), true)?;
    if !dir.stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    t.kernel.vfs.check_search(&dir, &t.creds)?;
    if !t.creds.capable(g::CAP_SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    t.fs.lock().unwrap_or_else(|p| p.into_inner()).root = dir;
    Ok(0)
}
