//! The interface every filesystem implements for its files.

use std::any::Any;
use std::sync::Arc;

use veil_abi::{Errno, Stat, Timespec};

use crate::creds::Creds;
use crate::file::FileOps;

/// A directory entry, without "." and "..".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    /// A Linux `DT_*` value.
    pub dtype: u8,
}

/// setxattr(2) flags: fail if the attribute exists, or if it does not.
pub const XATTR_CREATE: u32 = linux_raw_sys::general::XATTR_CREATE;
pub const XATTR_REPLACE: u32 = linux_raw_sys::general::XATTR_REPLACE;

/// A change of metadata, checked by the VFS: what is `None` stays. The
/// filesystem also sets the change time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// Permission bits (07777); the file type stays.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
}

/// A file of some filesystem. The VFS resolves paths, checks permissions
/// and keeps the dentry cache; an inode only answers for itself and, if it
/// is a directory, for its entries. Names passed in are single components:
/// never empty, ".", "..", and never containing '/'.
///
/// Directory operations a filesystem does not have fail as Linux fails them
/// for such a filesystem: lookups with ENOTDIR, creation with EACCES, other
/// changes with EPERM. A read-only filesystem returns EROFS instead.
pub trait Inode: Send + Sync {
    fn stat(&self) -> Result<Stat, Errno>;

    /// The birth time statx reports (STATX_BTIME), for filesystems that
    /// record one.
    fn btime(&self) -> Option<Timespec> {
        None
    }

    /// Opens the file for I/O with open(2) `flags` once the VFS has checked
    /// access. The filesystem honours O_TRUNC, and fails write access it
    /// cannot give (EROFS).
    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno>;

    /// For a "magic" link (procfs's fd/N, exe, cwd, root): the file it
    /// stands for, which a path walk jumps to instead of resolving the
    /// link's text, as Linux's nd_jump_link.
    fn jump(&self) -> Option<crate::vfs::PathRef> {
        None
    }

    /// Changes metadata (chmod, chown, utimes). Read-only filesystems
    /// return EROFS; those without stored metadata EPERM.
    fn setattr(&self, _attr: &SetAttr) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// The extended attribute `name` (a full name, "user.foo"), once the VFS
    /// has checked the caller: ENODATA if absent, EOPNOTSUPP for
    /// filesystems or namespaces without them.
    fn getxattr(&self, _name: &[u8]) -> Result<Vec<u8>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Sets `name` to `value`; `flags` are XATTR_CREATE (EEXIST if present)
    /// or XATTR_REPLACE (ENODATA if absent).
    fn setxattr(&self, _name: &[u8], _value: &[u8], _flags: u32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// The names of the file's extended attributes, all namespaces; the VFS
    /// hides those the caller may not see.
    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        Ok(Vec::new())
    }

    fn removexattr(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    fn lookup(&self, _name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::ENOTDIR)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::ENOTDIR)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }

    /// Creates a regular file with permission bits `mode`.
    fn create(&self, _name: &[u8], _mode: u32, _creds: &Creds) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EACCES)
    }

    /// Creates a FIFO, socket or device node: `mode` has the file type,
    /// `rdev` the device number (Linux's encoding).
    fn mknod(&self, _name: &[u8], _mode: u32, _rdev: u64, _creds: &Creds) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// O_TMPFILE: a regular file without a name, in this directory's
    /// filesystem. Unless `linkable` is false (O_EXCL), `link` may give it
    /// one name later.
    fn tmpfile(
        &self,
        _mode: u32,
        _creds: &Creds,
        _linkable: bool,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    fn mkdir(&self, _name: &[u8], _mode: u32, _creds: &Creds) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    fn symlink(&self, _name: &[u8], _target: &[u8], _creds: &Creds) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// Makes `name` another name of `target`, a non-directory of this
    /// filesystem (the VFS has checked the mount and the type).
    fn link(&self, _name: &[u8], _target: &dyn Inode) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// Removes a non-directory.
    fn unlink(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// Removes an empty directory.
    fn rmdir(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// Moves `child`, the entry `name`, to `new_name` in `new_dir`, a
    /// directory of the same filesystem (the VFS has checked the mount),
    /// replacing what is there. The VFS has checked types: a directory only
    /// replaces a directory, which the filesystem must find empty
    /// (ENOTEMPTY). `flags` are renameat2's: with RENAME_NOREPLACE an
    /// existing target is EEXIST, with RENAME_EXCHANGE (the VFS has checked
    /// that both exist) the two entries swap; flags the filesystem does not
    /// support are EINVAL.
    fn rename(
        &self,
        _name: &[u8],
        _child: &dyn Inode,
        _new_dir: &dyn Inode,
        _new_name: &[u8],
        _flags: u32,
    ) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// For `rename`'s downcast of the target directory.
    fn as_any(&self) -> &dyn Any;
}
