//! inotify_init1, inotify_add_watch and inotify_rm_watch; the events come
//! from the VFS (veil_vfs::inotify).

use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::inotify::{self as ino, InotifyFile};
use veil_vfs::OpenFile;

use super::fs::{resolve, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const IN_CLOEXEC: u32 = linux_raw_sys::general::IN_CLOEXEC;
const IN_NONBLOCK: u32 = linux_raw_sys::general::IN_NONBLOCK;
/// The VFS's permission bit for reading.
const MAY_READ: u32 = 4;

pub(super) fn register(t: &mut Table) {
    const NOTE: &str = "events for changes made inside the sandbox (not the host's changes to its files); a watch follows a name's dentry, so hard links of a file do not share watches; IN_DELETE_SELF of an unlinked file comes at the unlink, not at its last close";
    t.partial(Sysno::inotify_init, inotify_init, &[], NOTE);
    t.partial(Sysno::inotify_init1, inotify_init1, &[Hex], NOTE);
    t.partial(
        Sysno::inotify_add_watch,
        inotify_add_watch,
        &[Fd, Path, Hex],
        NOTE,
    );
    t.partial(Sysno::inotify_rm_watch, inotify_rm_watch, &[Fd, Int], NOTE);
    const NO_FANOTIFY: &str = "as on a Linux built without fanotify";
    t.unimplemented(
        Sysno::fanotify_init,
        Errno::ENOSYS,
        &[Hex, Hex],
        NO_FANOTIFY,
    );
    t.unimplemented(
        Sysno::fanotify_mark,
        Errno::ENOSYS,
        &[Fd, Hex, Hex, DirFd, Path],
        NO_FANOTIFY,
    );
}

fn inotify_init(t: &mut Task, _a: &Args) -> SysResult {
    init(t, 0)
}

fn inotify_init1(t: &mut Task, a: &Args) -> SysResult {
    init(t, a.u32(0))
}

fn init(t: &Task, flags: u32) -> SysResult {
    const O_RDONLY: i32 = 0;
    if flags & !(IN_CLOEXEC | IN_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let status = O_RDONLY | (flags & IN_NONBLOCK) as i32;
    let file = OpenFile::anonymous("inotify", status, Box::new(ino::new_instance()));
    let fd = t.fds.insert(file, flags & IN_CLOEXEC != 0, 0, t.nofile())?;
    Ok(fd as u64)
}

fn instance(file: &OpenFile) -> Result<&InotifyFile, Errno> {
    file.ops_as::<InotifyFile>().ok_or(Errno::EINVAL)
}

fn inotify_add_watch(t: &mut Task, a: &Args) -> SysResult {
    let mask = a.u32(2);
    let file = t.fds.get(a.i32(0))?;
    let inst = instance(&file)?;
    if mask & ino::IN_ALL_EVENTS == 0
        || mask & (ino::IN_MASK_ADD | ino::IN_MASK_CREATE) == ino::IN_MASK_ADD | ino::IN_MASK_CREATE
    {
        return Err(Errno::EINVAL);
    }
    let nofollow = match mask & ino::IN_DONT_FOLLOW {
        0 => 0,
        _ => AT_SYMLINK_NOFOLLOW,
    };
    let p = resolve(t, AT_FDCWD, a.u64(1), nofollow)?;
    let st = p.stat()?;
    if mask & ino::IN_ONLYDIR != 0 && !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    t.creds.check(&st, MAY_READ)?;
    inst.0.add_watch(&p.dentry, mask).map(|wd| wd as u64)
}

fn inotify_rm_watch(t: &mut Task, a: &Args) -> SysResult {
    let file = t.fds.get(a.i32(0))?;
    instance(&file)?.0.rm_watch(a.i32(1)).map(|()| 0)
}
