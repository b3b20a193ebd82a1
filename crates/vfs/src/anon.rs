//! Files without a name in any filesystem (epoll, eventfd, timerfd,
//! signalfd): like Linux's anon_inode files, they share one inode, mode 0600
//! with no file type bits.

use std::sync::{Arc, LazyLock};

use veil_abi::{Errno, Stat};

use crate::file::{FileOps, OpenFile};
use crate::inode::Inode;
use crate::vfs::PathRef;

/// anon_inodefs's device number (0:16 on a typical host) and the inode's.
const ANON_DEV: u64 = 0x10;
const ANON_INO: u64 = 1;

struct AnonInode;

impl Inode for AnonInode {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            st_dev: ANON_DEV,
            st_ino: ANON_INO,
            st_nlink: 1,
            st_mode: 0o600,
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    /// Anonymous files have no name to be opened again by.
    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

static INODE: LazyLock<Arc<dyn Inode>> = LazyLock::new(|| Arc::new(AnonInode));

impl OpenFile {
    /// A new anonymous file: `name` is how /proc will show it
    /// ("anon_inode:[eventfd]"), `flags` its status flags.
    pub fn anonymous(name: &str, flags: i32, ops: Box<dyn FileOps>) -> Arc<OpenFile> {
        let path = PathRef::anonymous(format!("anon_inode:{name}").as_bytes(), INODE.clone());
        OpenFile::with_type(path, flags, 0, ops)
    }
}
