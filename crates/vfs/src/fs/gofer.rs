//! The files the gofer serves: read-only as the lower layer of the root
//! overlay, or writable when the connection is (`veil do --overlay=none`).
//! Each inode holds a gofer fid; file data moves with pread/pwrite on a host
//! FD the gofer donates, one per inode and access mode while it is open.
//! The sentry never opens a host path itself. Files are created owned by
//! the gofer's uid, whatever the creating task's credentials.
//!
//! A shared mapping of a file of a writable tree maps a cache of its data
//! in the memory file, which read(2) and write(2) then go through too (so
//! all see the same bytes); write(2) also writes through to the host, and
//! msync, fsync and the last unmap write the cache back.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use veil_abi::{Errno, Stat, Timespec};
use veil_gofer::{Fid, GoferClient, HostStat, SetStat};
use veil_memory::{FileData, MemoryFile, WriteBack};

use crate::file::{FileOps, NoOps};
use crate::flags::{writes, O_ACCMODE, O_RDWR, O_TRUNC, O_WRONLY};
use crate::inode::{DirEntry, Inode, SetAttr};

const AT_REMOVEDIR: u32 = linux_raw_sys::general::AT_REMOVEDIR;

/// The root of the tree `client` serves; `writable` if the gofer serves it
/// read-write (it refuses changes otherwise anyway).
pub fn root(
    client: Arc<GoferClient>,
    writable: bool,
    memfile: Arc<MemoryFile>,
) -> Result<Arc<dyn Inode>, Errno> {
    let (fid, st) = client.attach()?;
    Ok(Arc::new(GoferNode::new(
        client, writable, memfile, fid, &st,
    )))
}

struct GoferNode {
    client: Arc<GoferClient>,
    writable: bool,
    fid: Fid,
    /// As of the walk, or of this node's last change. A read-only tree only
    /// the host changes, and the sandbox need not see that; a writable one
    /// is asked again on each stat. With the birth time, if the host has
    /// one.
    stat: Mutex<(Stat, Option<Timespec>)>,
    /// The donated host FDs of a regular file, by access mode, shared by its
    /// open files and closed with the last of them: the sentry's FDs stay
    /// bounded by the files the sandbox has open, not by those it has looked
    /// at.
    fds: Mutex<[Weak<OwnedFd>; 3]>,
    memfile: Arc<MemoryFile>,
    /// The data cache while a shared mapping (or a file it serves) holds it.
    cache: Mutex<Weak<FileData>>,
}

/// Writes a cache back to the host file through a read-write FD.
struct HostFile(Arc<OwnedFd>);

impl WriteBack for HostFile {
    fn write_back(&self, data: &FileData) -> Result<(), Errno> {
        let size = data.size();
        let mut buf = vec![0u8; (1 << 20).min(size as usize)];
        let mut off = 0;
        while off < size {
            let n = data.read_at(&mut buf, off)?;
            if n == 0 {
                break;
            }
            let mut done = 0;
            while done < n {
                let at = off + done as u64;
                done += crate::host_call(|| rustix::io::pwrite(&*self.0, &buf[done..n], at))?;
            }
            off += n as u64;
        }
        crate::host_call(|| rustix::fs::ftruncate(&*self.0, size))
    }
}

fn timespec((tv_sec, tv_nsec): (i64, i64)) -> Timespec {
    Timespec { tv_sec, tv_nsec }
}

fn attrs(h: &HostStat) -> (Stat, Option<Timespec>) {
    (to_stat(h), h.btime.map(timespec))
}

fn to_stat(h: &HostStat) -> Stat {
    let ts = timespec;
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
    fn new(
        client: Arc<GoferClient>,
        writable: bool,
        memfile: Arc<MemoryFile>,
        fid: Fid,
        st: &HostStat,
    ) -> GoferNode {
        GoferNode {
            client,
            writable,
            fid,
            stat: Mutex::new(attrs(st)),
            fds: Mutex::new([Weak::new(), Weak::new(), Weak::new()]),
            memfile,
            cache: Mutex::new(Weak::new()),
        }
    }

    fn child(&self, (fid, st): (Fid, HostStat)) -> Arc<GoferNode> {
        Arc::new(GoferNode::new(
            self.client.clone(),
            self.writable,
            self.memfile.clone(),
            fid,
            &st,
        ))
    }

    fn cached(&self) -> Option<Arc<FileData>> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
    }

    /// The data cache for a shared mapping, read from the host file when
    /// first made. Only a writable tree's files get one: the sandbox is the
    /// only writer of the others, and never writes them.
    fn cache(&self) -> Result<Arc<FileData>, Errno> {
        self.writable()?;
        let mut slot = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(data) = slot.upgrade() {
            return Ok(data);
        }
        let fd = self.host_fd(O_RDWR)?;
        let data = Arc::new(FileData::with_writeback(
            self.memfile.clone(),
            Box::new(HostFile(fd.clone())),
        ));
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        loop {
            let n = crate::host_call(|| rustix::io::pread(&*fd, &mut buf, off))?;
            if n == 0 {
                break;
            }
            data.write_at(&buf[..n], off, |_, _| Ok(()))?;
            off += n as u64;
        }
        *slot = Arc::downgrade(&data);
        Ok(data)
    }

    /// A host FD open with access mode `access` (O_RDONLY, O_WRONLY or
    /// O_RDWR).
    fn host_fd(&self, access: i32) -> Result<Arc<OwnedFd>, Errno> {
        let mut cached = self.fds.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut cached[access as usize];
        if let Some(fd) = slot.upgrade() {
            return Ok(fd);
        }
        let fd = Arc::new(self.client.open(self.fid, access)?);
        *slot = Arc::downgrade(&fd);
        Ok(fd)
    }

    fn writable(&self) -> Result<(), Errno> {
        if !self.writable {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    fn set_stat(&self, st: &HostStat) {
        *self.stat.lock().unwrap_or_else(PoisonError::into_inner) = attrs(st);
    }

    /// Refreshes the cached attributes after a change of this file.
    fn refresh(&self) -> Result<(), Errno> {
        let st = self.client.stat(self.fid)?;
        self.set_stat(&st);
        Ok(())
    }

    fn setstat(&self, attr: SetStat) -> Result<(), Errno> {
        self.writable()?;
        let st = self.client.setstat(self.fid, attr)?;
        self.set_stat(&st);
        Ok(())
    }
}

/// The gofer node behind an inode of this filesystem; EXDEV for others.
fn gofer_node(inode: &dyn Inode) -> Result<&GoferNode, Errno> {
    inode.as_any().downcast_ref().ok_or(Errno::EXDEV)
}

impl Drop for GoferNode {
    fn drop(&mut self) {
        self.client.clunk(self.fid);
    }
}

impl Inode for GoferNode {
    fn btime(&self) -> Option<Timespec> {
        self.stat.lock().unwrap_or_else(PoisonError::into_inner).1
    }

    fn stat(&self) -> Result<Stat, Errno> {
        if self.writable {
            self.refresh()?;
        }
        Ok(self.stat.lock().unwrap_or_else(PoisonError::into_inner).0)
    }

    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        let access = flags & O_ACCMODE;
        if writes(flags) || flags & O_TRUNC != 0 {
            self.writable()?;
        }
        if self.stat()?.is_dir() {
            return Ok(Box::new(NoOps));
        }
        // Errors (devices, sockets) show at open, as on Linux.
        let fd = self.host_fd(if access == O_WRONLY | O_RDWR {
            O_RDWR
        } else {
            access
        })?;
        if flags & O_TRUNC != 0 {
            self.setstat(SetStat {
                size: Some(0),
                ..SetStat::default()
            })?;
        }
        Ok(Box::new(GoferFile { node: self, fd }))
    }

    /// The gofer serves the user.* and trusted.overlay.* namespaces only.
    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        self.client.getxattr(self.fid, name)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        self.writable()?;
        self.client.setxattr(self.fid, name, value, flags)
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        let names = self.client.listxattr(self.fid)?;
        Ok(names
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        self.client.removexattr(self.fid, name)
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.child(self.client.walk(self.fid, name)?))
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

    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let ts = |t: Option<veil_abi::Timespec>| t.map(|t| (t.tv_sec, t.tv_nsec));
        self.setstat(SetStat {
            mode: attr.mode,
            uid: attr.uid,
            gid: attr.gid,
            size: None,
            atime: ts(attr.atime),
            mtime: ts(attr.mtime),
        })
    }

    fn create(&self, name: &[u8], mode: u32, _: &crate::Creds) -> Result<Arc<dyn Inode>, Errno> {
        self.writable()?;
        // The VFS opens the new file itself: the donated FD is not needed.
        let (fid, st, _) = self.client.create(self.fid, name, 0, mode)?;
        Ok(self.child((fid, st)))
    }

    fn mkdir(&self, name: &[u8], mode: u32, _: &crate::Creds) -> Result<(), Errno> {
        self.writable()?;
        let (fid, _) = self.client.mkdir(self.fid, name, mode)?;
        self.client.clunk(fid);
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], _: &crate::Creds) -> Result<(), Errno> {
        self.writable()?;
        let (fid, _) = self.client.symlink(self.fid, name, target)?;
        self.client.clunk(fid);
        Ok(())
    }

    fn link(&self, name: &[u8], target: &dyn Inode) -> Result<(), Errno> {
        self.writable()?;
        let target = gofer_node(target)?;
        let (fid, _) = self.client.link(self.fid, name, target.fid)?;
        self.client.clunk(fid);
        target.refresh()
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        self.client.unlink(self.fid, name, 0)
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        self.client.unlink(self.fid, name, AT_REMOVEDIR)
    }

    fn rename(
        &self,
        name: &[u8],
        _: &dyn Inode,
        new_dir: &dyn Inode,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        self.writable()?;
        let new_dir = gofer_node(new_dir)?;
        self.client
            .rename(self.fid, name, new_dir.fid, new_name, flags)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open regular file, read and written through its inode's donated FD.
/// The inode's attributes are refreshed after each write.
struct GoferFile {
    node: Arc<GoferNode>,
    fd: Arc<OwnedFd>,
}

impl FileOps for GoferFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        if let Some(data) = self.node.cached() {
            return data.read_at(buf, off);
        }
        crate::host_call(|| rustix::io::pread(&*self.fd, &mut *buf, off))
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        let n = crate::host_call(|| rustix::io::pwrite(&*self.fd, buf, off))?;
        if let Some(data) = self.node.cached() {
            data.write_at(&buf[..n], off, |_, _| Ok(()))?;
        }
        self.node.refresh()?;
        Ok(n)
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        crate::host_call(|| rustix::fs::ftruncate(&*self.fd, len))?;
        if let Some(data) = self.node.cached() {
            data.set_len(len, |_, _| Ok(()))?;
        }
        self.node.refresh()
    }

    fn mappable(&self) -> Option<Arc<FileData>> {
        self.node.cache().ok()
    }

    fn sync(&self, data_only: bool) -> Result<(), Errno> {
        if let Some(data) = self.node.cached() {
            data.sync()?;
        }
        if data_only {
            crate::host_call(|| rustix::fs::fdatasync(&*self.fd))
        } else {
            crate::host_call(|| rustix::fs::fsync(&*self.fd))
        }
    }

    fn allocate(&self, mode: u32, off: u64, len: u64) -> Result<(), Errno> {
        let mode = rustix::fs::FallocateFlags::from_bits(mode).ok_or(Errno::EOPNOTSUPP)?;
        crate::host_call(|| rustix::fs::fallocate(&*self.fd, mode, off, len))?;
        self.node.refresh()
    }
}
