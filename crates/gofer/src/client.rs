//! The sentry's side of the protocol: one request at a time over the gofer
//! socket. Gofer errors come back as their errno; a lost connection or a
//! malformed reply is EIO, for good.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use rustix::net::{shutdown, Shutdown};
use veil_abi::Errno;

pub use crate::protocol::{DirEntry, Fid, HostStat, HostStatfs};
use crate::protocol::{Request, Response, MAX_MESSAGE, NAME_MAX};
use crate::wire;

/// A connection to the gofer, shareable between threads.
pub struct GoferClient {
    conn: Mutex<Conn>,
}

struct Conn {
    sock: OwnedFd,
    /// Holds the request, then the reply.
    buf: Box<[u8]>,
}

impl Conn {
    fn exchange(&mut self, req: &Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        // Callers bound their variable-sized fields, so a request always fits.
        let len = postcard::to_slice(req, &mut self.buf)
            .map_err(|_| Errno::EIO)?
            .len();
        let reply = wire::send(self.sock.as_fd(), &self.buf[..len], None)
            .and_then(|()| wire::recv(self.sock.as_fd(), &mut self.buf));
        let decoded = match reply {
            Ok(Some((len, fd))) => postcard::from_bytes(&self.buf[..len]).ok().map(|r| (r, fd)),
            _ => None,
        };
        // A lost or garbled reply leaves requests and replies out of step:
        // end the connection rather than misread later replies.
        decoded.ok_or_else(|| {
            let _ = shutdown(&self.sock, Shutdown::ReadWrite);
            Errno::EIO
        })
    }
}

impl GoferClient {
    pub fn new(sock: OwnedFd) -> Self {
        GoferClient {
            conn: Mutex::new(Conn {
                sock,
                buf: vec![0; MAX_MESSAGE].into_boxed_slice(),
            }),
        }
    }

    fn call(&self, req: &Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        let reply = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .exchange(req)?;
        match reply {
            // Only errnos an application may see: from 512 up they are
            // kernel- and sentry-internal (restarts, EJUSTRETURN).
            (Response::Error(e), _) if (1..512).contains(&e) => Err(Errno::new(e)),
            (Response::Error(_), _) => Err(Errno::EIO),
            reply => Ok(reply),
        }
    }

    fn call_fid(&self, req: &Request) -> Result<(Fid, HostStat), Errno> {
        match self.call(req)? {
            (Response::Fid { fid, stat }, _) => Ok((fid, stat)),
            _ => Err(Errno::EIO),
        }
    }

    /// A fid for the mount root.
    pub fn attach(&self) -> Result<(Fid, HostStat), Errno> {
        self.call_fid(&Request::Attach)
    }

    /// A fid for the entry `name` of directory `dir`. A symlink is not
    /// followed: the fid names the link. `name` must be a single component:
    /// "", ".", "..", or a '/' or NUL in it, get EINVAL.
    pub fn walk(&self, dir: Fid, name: &[u8]) -> Result<(Fid, HostStat), Errno> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        self.call_fid(&Request::Walk {
            dir,
            name: name.to_vec(),
        })
    }

    pub fn stat(&self, fid: Fid) -> Result<HostStat, Errno> {
        match self.call(&Request::Stat { fid })? {
            (Response::Stat(stat), _) => Ok(stat),
            _ => Err(Errno::EIO),
        }
    }

    /// A host FD reading the fid's regular file or directory. `flags` are
    /// open(2)'s: write access or O_TRUNC get EROFS, and of the rest only
    /// O_DIRECTORY, O_NONBLOCK, O_CLOEXEC, O_NOCTTY, O_LARGEFILE and
    /// O_NOFOLLOW are accepted (others EINVAL). O_DIRECTORY on anything but
    /// a directory gets ENOTDIR; otherwise symlinks get ELOOP, devices and
    /// FIFOs EACCES, sockets ENXIO.
    pub fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        match self.call(&Request::Open { fid, flags })? {
            (Response::Opened, Some(fd)) => Ok(fd),
            _ => Err(Errno::EIO),
        }
    }

    /// The target of a symlink; EINVAL for anything else.
    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        match self.call(&Request::Readlink { fid })? {
            (Response::Link(target), _) => Ok(target),
            _ => Err(Errno::EIO),
        }
    }

    /// The entries after `cookie` (0: from the start), without "." and "..";
    /// empty at the end.
    pub fn readdir(&self, dir: Fid, cookie: u64) -> Result<Vec<DirEntry>, Errno> {
        match self.call(&Request::Readdir { dir, cookie })? {
            (Response::Entries(entries), _) => Ok(entries),
            _ => Err(Errno::EIO),
        }
    }

    /// The statfs of the filesystem holding the fid.
    pub fn statfs(&self, fid: Fid) -> Result<HostStatfs, Errno> {
        match self.call(&Request::Statfs { fid })? {
            (Response::Statfs(statfs), _) => Ok(statfs),
            _ => Err(Errno::EIO),
        }
    }

    /// Forgets a fid; best effort.
    pub fn clunk(&self, fid: Fid) {
        let _ = self.call(&Request::Clunk { fid });
    }
}
