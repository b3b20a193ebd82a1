//! The sentry's side of the protocol: one request at a time over the gofer
//! socket. Gofer errors come back as their errno; a lost connection or a
//! malformed reply is EIO, for good.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use veil_abi::Errno;

pub use crate::protocol::{DirEntry, Fid, HostStat, HostStatfs, SetStat};
use crate::protocol::{
    Request, Response, MAX_MESSAGE, MAX_WALK, NAME_MAX, PATH_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX,
};
use crate::wire;

/// A connection to the gofer, shareable between threads.
pub struct GoferClient {
    conn: Mutex<Conn>,
}

struct Conn {
    sock: OwnedFd,
    /// Holds the request, then the reply.
    buf: Box<[u8]>,
    /// Out of step with the gofer: every later call fails.
    broken: bool,
}

impl Conn {
    fn exchange(&mut self, req: &Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        if self.broken {
            return Err(Errno::EIO);
        }
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
        // the connection is done with rather than later replies misread.
        // (Not shut down: the sentry's host filter has no shutdown(2).)
        decoded.ok_or_else(|| {
            self.broken = true;
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
                broken: false,
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

    /// A host FD for the fid's regular file or directory. `flags` are
    /// open(2)'s: write access or O_TRUNC get EROFS from a read-only gofer,
    /// and of the rest only O_DIRECTORY, O_NONBLOCK, O_CLOEXEC, O_NOCTTY,
    /// O_LARGEFILE and O_NOFOLLOW are accepted (others EINVAL). O_DIRECTORY on anything but
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

    /// Fids for a path of up to MAX_WALK components below `dir`, in one
    /// round trip: it stops after a symlink or a non-directory and before a
    /// missing component (an error only if that is the first).
    pub fn walk_stat(&self, dir: Fid, names: &[&[u8]]) -> Result<Vec<(Fid, HostStat)>, Errno> {
        if names.len() > MAX_WALK {
            return Err(Errno::EINVAL);
        }
        if names.iter().any(|n| n.len() > NAME_MAX) {
            return Err(Errno::ENAMETOOLONG);
        }
        let names = names.iter().map(|n| n.to_vec()).collect();
        match self.call(&Request::WalkStat { dir, names })? {
            (Response::Walked(fids), _) => Ok(fids),
            _ => Err(Errno::EIO),
        }
    }

    /// Creates the regular file `name` in `dir` (EEXIST if there is one)
    /// and opens it with open(2) `flags`.
    pub fn create(
        &self,
        dir: Fid,
        name: &[u8],
        flags: i32,
        mode: u32,
    ) -> Result<(Fid, HostStat, OwnedFd), Errno> {
        let name = checked_name(name)?;
        match self.call(&Request::Create {
            dir,
            name,
            flags,
            mode,
        })? {
            (Response::Fid { fid, stat }, Some(fd)) => Ok((fid, stat, fd)),
            _ => Err(Errno::EIO),
        }
    }

    pub fn mkdir(&self, dir: Fid, name: &[u8], mode: u32) -> Result<(Fid, HostStat), Errno> {
        let name = checked_name(name)?;
        self.call_fid(&Request::Mkdir { dir, name, mode })
    }

    /// A regular file, FIFO or socket (the type in `mode`); EPERM for
    /// devices.
    pub fn mknod(&self, dir: Fid, name: &[u8], mode: u32) -> Result<(Fid, HostStat), Errno> {
        let name = checked_name(name)?;
        self.call_fid(&Request::Mknod { dir, name, mode })
    }

    pub fn symlink(&self, dir: Fid, name: &[u8], target: &[u8]) -> Result<(Fid, HostStat), Errno> {
        let name = checked_name(name)?;
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        self.call_fid(&Request::Symlink {
            dir,
            name,
            target: target.to_vec(),
        })
    }

    pub fn link(&self, dir: Fid, name: &[u8], target: Fid) -> Result<(Fid, HostStat), Errno> {
        let name = checked_name(name)?;
        self.call_fid(&Request::Link { dir, name, target })
    }

    /// unlinkat(2): `flags` 0 or AT_REMOVEDIR.
    pub fn unlink(&self, dir: Fid, name: &[u8], flags: u32) -> Result<(), Errno> {
        let name = checked_name(name)?;
        self.call_done(&Request::Unlink { dir, name, flags })
    }

    /// renameat2(2): `flags` 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
    pub fn rename(
        &self,
        dir: Fid,
        name: &[u8],
        new_dir: Fid,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let name = checked_name(name)?;
        let new_name = checked_name(new_name)?;
        self.call_done(&Request::Rename {
            dir,
            name,
            new_dir,
            new_name,
            flags,
        })
    }

    /// Changes what `attr` sets and returns the new attributes.
    pub fn setstat(&self, fid: Fid, attr: SetStat) -> Result<HostStat, Errno> {
        match self.call(&Request::SetStat { fid, attr })? {
            (Response::Stat(stat), _) => Ok(stat),
            _ => Err(Errno::EIO),
        }
    }

    pub fn fsync(&self, fid: Fid, data_only: bool) -> Result<(), Errno> {
        self.call_done(&Request::Fsync { fid, data_only })
    }

    pub fn fallocate(&self, fid: Fid, mode: u32, offset: u64, len: u64) -> Result<(), Errno> {
        self.call_done(&Request::Fallocate {
            fid,
            mode,
            offset,
            len,
        })
    }

    /// Extended attributes: only the user.* and trusted.overlay.*
    /// namespaces (others EOPNOTSUPP).
    pub fn getxattr(&self, fid: Fid, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let name = xattr_name(name)?;
        self.call_bytes(&Request::GetXattr { fid, name })
    }

    pub fn setxattr(&self, fid: Fid, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        let name = xattr_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        self.call_done(&Request::SetXattr {
            fid,
            name,
            value: value.to_vec(),
            flags,
        })
    }

    /// The allowed names, each NUL-terminated.
    pub fn listxattr(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        self.call_bytes(&Request::ListXattr { fid })
    }

    pub fn removexattr(&self, fid: Fid, name: &[u8]) -> Result<(), Errno> {
        let name = xattr_name(name)?;
        self.call_done(&Request::RemoveXattr { fid, name })
    }

    /// A socket of type `kind` connected to the bound Unix socket `fid`
    /// (ECONNREFUSED for anything else).
    pub fn connect(&self, fid: Fid, kind: u32) -> Result<OwnedFd, Errno> {
        match self.call(&Request::Connect { fid, kind })? {
            (Response::Opened, Some(fd)) => Ok(fd),
            _ => Err(Errno::EIO),
        }
    }

    fn call_done(&self, req: &Request) -> Result<(), Errno> {
        match self.call(req)? {
            (Response::Done, _) => Ok(()),
            _ => Err(Errno::EIO),
        }
    }

    fn call_bytes(&self, req: &Request) -> Result<Vec<u8>, Errno> {
        match self.call(req)? {
            (Response::Bytes(bytes), _) => Ok(bytes),
            _ => Err(Errno::EIO),
        }
    }

    /// Forgets a fid; best effort.
    pub fn clunk(&self, fid: Fid) {
        let _ = self.call(&Request::Clunk { fid });
    }
}

/// Bounds a name so the request fits a message; the gofer validates it.
fn checked_name(name: &[u8]) -> Result<Vec<u8>, Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(name.to_vec())
}

fn xattr_name(name: &[u8]) -> Result<Vec<u8>, Errno> {
    if name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    Ok(name.to_vec())
}
