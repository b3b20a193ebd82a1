//! The sentry's virtual filesystem: mounts and dentries, filesystems behind
//! the `Inode` trait, open file descriptions and the FD table.
//!
//! Filesystems so far: an overlay whose lower layer is served by the gofer
//! and whose upper layer lives in memory (the root), the same nodes without
//! a lower layer (an in-memory filesystem), a minimal devfs, and open files
//! wrapping host FDs the sentry was handed (the caller's stdio).

mod creds;
pub mod devfs;
mod fdtable;
mod file;
pub mod gofer;
mod hostfd;
mod inode;
pub mod overlay;
mod pipe;
mod vfs;

pub use creds::Creds;
pub use fdtable::{FdTable, DEFAULT_NOFILE, MAX_NOFILE};
pub use file::{statx_from_stat, DirEntry, FileOps, OpenFile, UserMem};
pub use inode::Inode;
pub use pipe::new_pipe;
pub use vfs::{Dentry, FsContext, Mount, PathRef, Vfs};
