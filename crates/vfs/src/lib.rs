//! The sentry's virtual filesystem, shaped like Linux's VFS and gVisor's
//! VFS2: a mount tree of dentries over inodes that filesystems implement
//! behind the [`Inode`] trait, open file descriptions ([`OpenFile`]) whose
//! I/O filesystems implement behind [`FileOps`], and the FD table.
//!
//! Everything here takes hostile input: paths are arbitrary bytes from the
//! application, and every error is an errno, never a panic.
//!
//! Filesystems so far ([`fs`]): the root overlay (a read-only lower layer
//! served by the gofer under a writable in-memory upper layer), the
//! in-memory filesystem itself, a minimal devfs and devpts
//! (pseudo-terminals, [`pty`]); plus open files outside
//! the tree: host FDs handed to the sentry (the caller's stdio), pipes,
//! and the anonymous files of epoll and eventfd.

mod anon;
mod attr;
mod creds;
mod dcache;
pub mod epoll;
mod eventfd;
mod fdtable;
mod file;
mod flags;
pub mod fs;
mod hostfd;
mod inode;
pub mod inotify;
mod lock;
pub mod mount;
mod pipe;
pub mod pty;
mod vfs;
pub mod wait;
mod xattr;

pub use attr::TimeSpec;
pub use creds::{cap, Creds};
pub use eventfd::new_eventfd;
pub use fdtable::{FdTable, DEFAULT_NOFILE, MAX_NOFILE};
pub use file::{statx_from_stat, FileOps, NoOps, OpenFile, UserMem};
pub use inode::{DirEntry, Inode, SetAttr, XATTR_CREATE, XATTR_REPLACE};
pub use lock::{FlockKind, LockOwner, RangeLock};
pub use pipe::{new_pipe, Fifo};
pub use vfs::{
    Dentry, FsContext, Mount, PathRef, Vfs, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT,
    RESOLVE_BENEATH, RESOLVE_CACHED, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
};
pub use xattr::{XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX};

/// A host call's error, as the application sees it.
fn host_errno(e: rustix::io::Errno) -> veil_abi::Errno {
    veil_abi::Errno::new(e.raw_os_error())
}

/// Makes a host call, again if a signal meant for the sentry interrupted it.
fn host_call<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> Result<T, veil_abi::Errno> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(host_errno),
        }
    }
}
