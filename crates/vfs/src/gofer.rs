//! Files served by the gofer: the read-only lower layer of the root overlay.
//! File data is read with pread on host FDs the gofer donates.

use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};

use veil_abi::{Errno, Stat, Timespec};
use veil_gofer::{Fid, GoferClient, HostStat};

use crate::file::DirEntry;

const O_DIRECTORY: i32 = 0o200000;

/// One host file, held by the gofer as a fid.
pub struct GoferNode {
    client: Arc<GoferClient>,
    fid: Fid,
    stat: Stat,
    /// The donated host FD, opened on first read.
    fd: OnceLock<OwnedFd>,
}

fn to_stat(h: &HostStat) -> Stat {
    let ts = |(s, ns): (i64, i64)| Timespec {
        tv_sec: s,
        tv_nsec: ns,
    };
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
    pub fn root(client: Arc<GoferClient>) -> Result<Arc<GoferNode>, Errno> {
        let (fid, st) = client.attach()?;
        Ok(Arc::new(GoferNode {
            client,
            fid,
            stat: to_stat(&st),
            fd: OnceLock::new(),
        }))
    }

    pub fn stat(&self) -> Stat {
        self.stat
    }

    pub fn lookup(&self, name: &[u8]) -> Result<Arc<GoferNode>, Errno> {
        let (fid, st) = self.client.walk(self.fid, name)?;
        Ok(Arc::new(GoferNode {
            client: self.client.clone(),
            fid,
            stat: to_stat(&st),
            fd: OnceLock::new(),
        }))
    }

    pub fn readlink(&self) -> Result<Vec<u8>, Errno> {
        self.client.readlink(self.fid)
    }

    pub fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.client.readdir(self.fid, cookie)?;
            let Some(last) = page.last() else { break };
            cookie = last.cookie;
            out.extend(page.into_iter().map(|e| DirEntry {
                name: e.name,
                ino: e.ino,
                dtype: e.dtype,
            }));
        }
        Ok(out)
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let fd = match self.fd.get() {
            Some(fd) => fd,
            None => {
                let flags = if self.stat.is_dir() { O_DIRECTORY } else { 0 };
                let fd = self.client.open(self.fid, flags)?;
                self.fd.get_or_init(|| fd)
            }
        };
        rustix::io::pread(fd, buf, off).map_err(|e| Errno::new(e.raw_os_error()))
    }
}

impl Drop for GoferNode {
    fn drop(&mut self) {
        self.client.clunk(self.fid);
    }
}
