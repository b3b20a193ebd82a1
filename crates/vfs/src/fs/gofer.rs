//! The files the gofer serves: read-only, the lower layer of the root
//! overlay. Each inode holds a gofer fid; file data is read with pread on a
//! host FD the gofer donates, one per inode while it is open. The sentry
//! never opens a host path itself.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use veil_abi::{Errno, Stat, Timespec};
use veil_gofer::{Fid, GoferClient, HostStat};

use crate::file::{FileOps, NoOps};
use crate::flags::{writes, O_TRUNC};
use crate::inode::{DirEntry, Inode, SetAttr};

/// The root of the tree `client` serves.
pub fn root(client: Arc<GoferClient>) -> Result<Arc<dyn Inode>, Errno> {
    let (fid, st) = client.attach()?;
    Ok(Arc::new(GoferNode::new(client, fid, &st)))
}

struct GoferNode {
    client: Arc<GoferClient>,
    fid: Fid,
    /// As of the walk: the gofer's tree is read-only, so only the host can
    /// change it, and the sandbox need not see that.
    stat: Stat,
    /// The donated host FD of a regular file, shared by its open files and
    /// closed with the last of them: the sentry's FDs stay bounded by the
    /// files the sandbox has open, not by those it has looked at.
    fd: Mutex<Weak<OwnedFd>>,
}

fn to_stat(h: &HostStat) -> Stat {
    let ts = |(tv_sec, tv_nsec): (i64, i64)| Timespec { tv_sec, tv_nsec };
    Stat {
        st_dev: h.dev,
        st_ino: h.ino,
        st_nlink: h.nlink,
        st_mode: h.mode,
        st_uid: h.uid,
        st_gid: h.gid,
        st_rdev: h.rdev,
        st_size: h.size,
        st_blksize: h.blksize,
        st_blocks: h.blocks,
        st_atime: ts(h.atime),
        st_mtime: ts(h.mtime),
        st_ctime: ts(h.ctime),
        ..Stat::default()
    }
}

impl GoferNode {
    fn new(client: Arc<GoferClient>, fid: Fid, st: &HostStat) -> GoferNode {
        GoferNode {
            client,
            fid,
            stat: to_stat(st),
            fd: Mutex::new(Weak::new()),
        }
    }

    fn host_fd(&self) -> Result<Arc<OwnedFd>, Errno> {
        let mut cached = self.fd.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fd) = cached.upgrade() {
            return Ok(fd);
        }
        let fd = Arc::new(self.client.open(self.fid, 0)?);
        *cached = Arc::downgrade(&fd);
        Ok(fd)
    }
}

impl Drop for GoferNode {
    fn drop(&mut self) {
        self.client.clunk(self.fid);
    }
}

impl Inode for GoferNode {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.stat)
    }

    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        if writes(flags) || flags & O_TRUNC != 0 {
            return Err(Errno::EROFS);
        }
        if self.stat.is_dir() {
            return Ok(Box::new(NoOps));
        }
        // Errors (devices, sockets) show at open, as on Linux.
        Ok(Box::new(GoferFile(self.host_fd()?)))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let (fid, st) = self.client.walk(self.fid, name)?;
        Ok(Arc::new(GoferNode::new(self.client.clone(), fid, &st)))
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.client.readdir(self.fid, cookie)?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            cookie = last.cookie;
            out.extend(page.into_iter().map(|e| DirEntry {
                name: e.name,
                ino: e.ino,
                dtype: e.dtype,
            }));
        }
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        self.client.readlink(self.fid)
    }

    fn setattr(&self, _: &SetAttr) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn create(&self, _: &[u8], _: u32, _: &crate::Creds) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EROFS)
    }

    fn mkdir(&self, _: &[u8], _: u32, _: &crate::Creds) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn symlink(&self, _: &[u8], _: &[u8], _: &crate::Creds) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn unlink(&self, _: &[u8]) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn rmdir(&self, _: &[u8]) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn rename(
        &self,
        _: &[u8],
        _: &dyn Inode,
        _: &dyn Inode,
        _: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        Err(Errno::EROFS)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open regular file, read through its inode's donated FD.
struct GoferFile(Arc<OwnedFd>);

impl FileOps for GoferFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        crate::host_call(|| rustix::io::pread(&*self.0, &mut *buf, off))
    }
}
