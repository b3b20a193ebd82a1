//! The sentry's side of the gofer protocol.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use veil_abi::Errno;

use crate::protocol::{Request, Response, WireStat, MAX_MESSAGE};
use crate::wire;

/// A file the gofer holds open for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fid(pub u64);

/// A host file's attributes, as the gofer saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl From<WireStat> for HostStat {
    fn from(w: WireStat) -> HostStat {
        HostStat {
            dev: w.dev,
            ino: w.ino,
            mode: w.mode,
            nlink: w.nlink,
            uid: w.uid,
            gid: w.gid,
            rdev: w.rdev,
            size: w.size,
            blksize: w.blksize,
            blocks: w.blocks,
            atime: w.atime,
            mtime: w.mtime,
            ctime: w.ctime,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub dtype: u8,
    /// Pass to `readdir` to continue after this entry.
    pub cookie: u64,
}

/// A connection to the gofer; requests are serialized one at a time.
pub struct GoferClient {
    sock: Mutex<OwnedFd>,
}

impl GoferClient {
    pub fn new(sock: OwnedFd) -> GoferClient {
        GoferClient {
            sock: Mutex::new(sock),
        }
    }

    fn call(&self, req: &Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        let bytes = postcard::to_stdvec(req).map_err(|_| Errno::ENAMETOOLONG)?;
        if bytes.len() > MAX_MESSAGE {
            return Err(Errno::ENAMETOOLONG);
        }
        let sock = self.sock.lock().map_err(|_| Errno::EIO)?;
        wire::send(sock.as_fd(), &bytes, None).map_err(|_| Errno::EIO)?;
        let mut buf = Vec::new();
        let fd = match wire::recv(sock.as_fd(), &mut buf) {
            Ok(Some(fd)) => fd,
            Ok(None) | Err(_) => return Err(Errno::EIO),
        };
        match postcard::from_bytes::<Response>(&buf) {
            Ok(Response::Error(e)) => Err(Errno::new(e)),
            Ok(r) => Ok((r, fd)),
            Err(_) => Err(Errno::EIO),
        }
    }

    fn fid_reply(&self, req: &Request) -> Result<(Fid, HostStat), Errno> {
        match self.call(req)? {
            (Response::Fid { fid, stat }, _) => Ok((Fid(fid), stat.into())),
            _ => Err(Errno::EIO),
        }
    }

    /// The root of the served tree.
    pub fn attach(&self) -> Result<(Fid, HostStat), Errno> {
        self.fid_reply(&Request::Attach)
    }

    /// One component beneath `dir`; a symlink yields a fid for the link itself.
    pub fn walk(&self, dir: Fid, name: &[u8]) -> Result<(Fid, HostStat), Errno> {
        self.fid_reply(&Request::Walk {
            dir: dir.0,
            name: name.to_vec(),
        })
    }

    pub fn stat(&self, fid: Fid) -> Result<HostStat, Errno> {
        match self.call(&Request::Stat { fid: fid.0 })? {
            (Response::Stat(s), _) => Ok(s.into()),
            _ => Err(Errno::EIO),
        }
    }

    /// A host FD for reading a regular file or directory.
    pub fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        match self.call(&Request::Open { fid: fid.0, flags })? {
            (Response::Opened, Some(fd)) => Ok(fd),
            _ => Err(Errno::EIO),
        }
    }

    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        match self.call(&Request::Readlink { fid: fid.0 })? {
            (Response::Link(target), _) => Ok(target),
            _ => Err(Errno::EIO),
        }
    }

    /// Entries after `cookie` (0: from the start); empty at the end.
    pub fn readdir(&self, dir: Fid, cookie: u64) -> Result<Vec<DirEntry>, Errno> {
        match self.call(&Request::Readdir { dir: dir.0, cookie })? {
            (Response::Entries(entries), _) => Ok(entries
                .into_iter()
                .map(|e| DirEntry {
                    name: e.name,
                    ino: e.ino,
                    dtype: e.dtype,
                    cookie: e.cookie,
                })
                .collect()),
            _ => Err(Errno::EIO),
        }
    }

    /// Forgets a fid; best effort.
    pub fn clunk(&self, fid: Fid) {
        let _ = self.call(&Request::Clunk { fid: fid.0 });
    }
}
