//! The interface every filesystem implements.

use std::any::Any;
use std::sync::Arc;

use veil_abi::{Errno, Stat};

use crate::creds::Creds;
use crate::file::{DirEntry, FileOps};

/// A filesystem object. Directory operations default to ENOTDIR and
/// modifications to EROFS, so read-only and special files implement little.
pub trait Inode: Send + Sync + Any {
    fn stat(&self) -> Result<Stat, Errno>;

    /// Opens the object for I/O; `flags` are the open(2) flags. Access checks
    /// are the VFS's business; this only creates the file's operations.
    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno>;

    fn lookup(&self, _name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::ENOTDIR)
    }

    /// Every entry except "." and "..".
    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::ENOTDIR)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }

    /// Creates a regular file.
    fn create(&self, _name: &[u8], _mode: u32, _creds: &Creds) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EROFS)
    }

    fn mkdir(&self, _name: &[u8], _mode: u32, _creds: &Creds) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn symlink(&self, _name: &[u8], _target: &[u8], _creds: &Creds) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn unlink(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn rmdir(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    /// Moves `name` from this directory to `new_name` in `new_dir` (same
    /// filesystem: the VFS checks mounts).
    fn rename(
        &self,
        _name: &[u8],
        _new_dir: &Arc<dyn Inode>,
        _new_name: &[u8],
    ) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    /// Makes the object writable (an overlay copies it up) and optionally
    /// truncates it to zero.
    fn prepare_write(&self, _truncate: bool) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn as_any(&self) -> &dyn Any;
}
