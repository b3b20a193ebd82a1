//! The gofer's side of the protocol.
//!
//! Every fid is an `O_PATH` descriptor reached from the root by
//! single-component `openat(O_NOFOLLOW)` walks, so neither "..", nor
//! symlinks, nor concurrent renames can lead outside the root. Requests are
//! hostile: each is bounded and validated, and a bad one gets an errno reply,
//! never a panic. The tree is served read-only.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    fstat, fstatfs, openat, readlinkat_raw, seek, FileType, Mode, OFlags, RawDir, SeekFrom, CWD,
};
use rustix::io::{fcntl_dupfd_cloexec, Errno};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::protocol::{
    DirEntry, Fid, HostStat, HostStatfs, Request, Response, MAX_FIDS, MAX_MESSAGE, NAME_MAX,
    PATH_MAX,
};
use crate::wire;

/// Most bytes a directory entry adds to a reply beyond its name: the name's
/// length, ino and cookie as postcard varints, and dtype.
const ENTRY_OVERHEAD: usize = 3 + 10 + 10 + 1;
/// Room for the entries of a readdir reply: a message less the reply's tag
/// and entry count.
const READDIR_BUDGET: usize = MAX_MESSAGE - 16;
/// The getdents buffer.
const DIRENT_BUF: usize = 32 << 10;

#[derive(Debug, thiserror::Error)]
pub enum GoferError {
    #[error("cannot open the root {}: {err}", path.display())]
    Root { path: PathBuf, err: io::Error },
    #[error("cannot open /proc/self/fd: {0}")]
    Proc(io::Error),
    #[error("gofer socket: {0}")]
    Socket(io::Error),
    #[error("cannot encode a reply")]
    Encode(#[from] postcard::Error),
}

/// Opens the directory (or, for a bind mount of one, the file) to serve,
/// named by trusted configuration.
pub fn open_root(path: &Path) -> Result<OwnedFd, GoferError> {
    openat(CWD, path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(|e| GoferError::Root {
        path: path.to_owned(),
        err: e.into(),
    })
}

/// Serves the tree beneath `root` on `sock` until the sentry closes it.
/// Opens `/proc/self/fd` up front (fids are reopened for I/O through it) and
/// raises the process's soft RLIMIT_NOFILE, as every fid is an FD. A
/// `readonly` tree (a read-only bind) is never written, whatever the
/// sentry asks; so far no tree is.
pub fn serve(root: OwnedFd, sock: OwnedFd, readonly: bool) -> Result<(), GoferError> {
    tracing::debug!(readonly, "gofer: serving a tree");
    raise_fd_limit();
    let proc_fds = openat(
        CWD,
        "/proc/self/fd",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| GoferError::Proc(e.into()))?;
    let mut server = Server {
        root,
        proc_fds,
        fids: HashMap::new(),
        next_fid: 1,
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (response, fd) = match wire::recv(sock.as_fd(), &mut buf) {
            Ok(None) => return Ok(()),
            // The sentry has no FDs to give: any attached are dropped unused.
            Ok(Some((len, _))) => server.handle(&buf[..len]),
            Err(Errno::MSGSIZE) => {
                tracing::warn!("gofer: oversized request");
                (Response::Error(Errno::MSGSIZE.raw_os_error()), None)
            }
            Err(e) => return Err(GoferError::Socket(e.into())),
        };
        let len = postcard::to_slice(&response, &mut buf)?.len();
        match wire::send(sock.as_fd(), &buf[..len], fd.as_ref().map(AsFd::as_fd)) {
            Ok(()) => {}
            // The sentry left without waiting for its reply.
            Err(Errno::PIPE | Errno::CONNRESET) => return Ok(()),
            Err(e) => return Err(GoferError::Socket(e.into())),
        }
    }
}

/// Every fid is an FD: lift the soft limit (often 1024) to the hard one.
fn raise_fd_limit() {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    // Best effort: without it the sentry just gets EMFILE sooner.
    let _ = setrlimit(Resource::Nofile, raised);
}

struct Server {
    root: OwnedFd,
    /// `/proc/self/fd`, through which fids are reopened for I/O.
    proc_fds: OwnedFd,
    fids: HashMap<Fid, OwnedFd>,
    next_fid: u64,
}

impl Server {
    /// Decodes and runs one request; failures become an errno reply.
    fn handle(&mut self, bytes: &[u8]) -> (Response, Option<OwnedFd>) {
        let result = match postcard::take_from_bytes::<Request>(bytes) {
            Ok((req, [])) => self.dispatch(req),
            _ => {
                tracing::warn!("gofer: undecodable request of {} bytes", bytes.len());
                Err(Errno::BADMSG)
            }
        };
        result.unwrap_or_else(|e| (Response::Error(e.raw_os_error()), None))
    }

    fn dispatch(&mut self, req: Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        let response = match req {
            Request::Attach => {
                let fd = fcntl_dupfd_cloexec(&self.root, 0)?;
                self.insert(fd)?
            }
            Request::Walk { dir, name } => {
                let name = component(name)?;
                let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = openat(self.fd(dir)?, name.as_c_str(), flags, Mode::empty())?;
                self.insert(fd)?
            }
            Request::Stat { fid } => Response::Stat(stat(self.fd(fid)?)?),
            Request::Open { fid, flags } => {
                return Ok((Response::Opened, Some(self.open(fid, flags)?)))
            }
            Request::Readlink { fid } => Response::Link(readlink(self.fd(fid)?)?),
            Request::Readdir { dir, cookie } => Response::Entries(self.readdir(dir, cookie)?),
            Request::Clunk { fid } => {
                self.fids.remove(&fid).ok_or(Errno::BADF)?;
                Response::Done
            }
            Request::Statfs { fid } => Response::Statfs(statfs(self.fd(fid)?)?),
        };
        Ok((response, None))
    }

    fn fd(&self, fid: Fid) -> Result<&OwnedFd, Errno> {
        self.fids.get(&fid).ok_or(Errno::BADF)
    }

    fn insert(&mut self, fd: OwnedFd) -> Result<Response, Errno> {
        if self.fids.len() >= MAX_FIDS {
            return Err(Errno::NFILE);
        }
        let stat = stat(&fd)?;
        let fid = Fid(self.next_fid);
        self.next_fid += 1;
        self.fids.insert(fid, fd);
        Ok(Response::Fid { fid, stat })
    }

    /// Validates open(2) flags: read-only access, plus flags that change
    /// nothing on the host or only the FD's own status (O_NONBLOCK).
    fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        let flags = OFlags::from_bits_retain(flags as u32);
        if flags.intersects(OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC) {
            return Err(Errno::ROFS);
        }
        let allowed = OFlags::DIRECTORY
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC
            | OFlags::NOCTTY
            | OFlags::LARGEFILE
            | OFlags::NOFOLLOW;
        if !allowed.contains(flags) {
            return Err(Errno::INVAL);
        }
        self.reopen(fid, flags & (OFlags::DIRECTORY | OFlags::NONBLOCK))
    }

    /// Opens the fid's inode for reading. Only regular files and
    /// directories: never a symlink (ELOOP), a device or FIFO (EACCES, as on
    /// a nodev mount) or a socket (ENXIO, as Linux); with O_DIRECTORY,
    /// nothing but a directory (ENOTDIR). Checking the type first is
    /// race-free: a fid's inode never changes.
    fn reopen(&self, fid: Fid, flags: OFlags) -> Result<OwnedFd, Errno> {
        let fd = self.fd(fid)?;
        let kind = match FileType::from_raw_mode(stat(fd)?.mode) {
            FileType::Directory => OFlags::DIRECTORY,
            _ if flags.contains(OFlags::DIRECTORY) => return Err(Errno::NOTDIR),
            FileType::RegularFile => OFlags::empty(),
            FileType::Symlink => return Err(Errno::LOOP),
            FileType::Socket => return Err(Errno::NXIO),
            _ => return Err(Errno::ACCESS),
        };
        // /proc/self/fd/N opens exactly the fid's inode, wherever it has
        // been renamed to since the walk.
        let flags =
            OFlags::RDONLY | kind | (flags & OFlags::NONBLOCK) | OFlags::CLOEXEC | OFlags::NOCTTY;
        openat(
            &self.proc_fds,
            fd.as_raw_fd().to_string(),
            flags,
            Mode::empty(),
        )
    }

    /// As many entries after `cookie` as fit in one reply.
    fn readdir(&self, dir: Fid, cookie: u64) -> Result<Vec<DirEntry>, Errno> {
        let fd = self.reopen(dir, OFlags::DIRECTORY)?;
        seek(&fd, SeekFrom::Start(cookie))?;
        let mut buf = vec![MaybeUninit::uninit(); DIRENT_BUF];
        let mut dirents = RawDir::new(&fd, &mut buf);
        let mut entries = Vec::new();
        let mut used = 0;
        while let Some(entry) = dirents.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            used += name.len() + ENTRY_OVERHEAD;
            if used > READDIR_BUDGET {
                break;
            }
            entries.push(DirEntry {
                name: name.to_vec(),
                ino: entry.ino(),
                dtype: dtype(entry.file_type()),
                cookie: entry.next_entry_cookie(),
            });
        }
        Ok(entries)
    }
}

/// A walk takes one component: not empty, "." or "..", without '/' or NUL
/// (all EINVAL: the sentry resolves paths, "." and ".." itself), and at most
/// NAME_MAX bytes (ENAMETOOLONG, as Linux).
fn component(name: Vec<u8>) -> Result<CString, Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::NAMETOOLONG);
    }
    if matches!(&name[..], b"" | b"." | b"..") || name.contains(&b'/') {
        return Err(Errno::INVAL);
    }
    CString::new(name).map_err(|_| Errno::INVAL)
}

fn stat(fd: &OwnedFd) -> Result<HostStat, Errno> {
    let st = fstat(fd)?;
    Ok(HostStat {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: (st.st_atime as i64, st.st_atime_nsec as i64),
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    })
}

fn statfs(fd: &OwnedFd) -> Result<HostStatfs, Errno> {
    let st = fstatfs(fd)?;
    Ok(HostStatfs {
        fs_type: st.f_type,
        bsize: st.f_bsize,
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        namelen: st.f_namelen,
        frsize: st.f_frsize,
        flags: st.f_flags,
    })
}

fn readlink(fd: &OwnedFd) -> Result<Vec<u8>, Errno> {
    let mut buf = [MaybeUninit::uninit(); PATH_MAX];
    // With an empty path readlinkat reads the fid itself, and fails with
    // ENOENT when it is not a symlink; Linux's readlink says EINVAL.
    let (target, rest) = readlinkat_raw(fd, c"", &mut buf).map_err(|e| match e {
        Errno::NOENT => Errno::INVAL,
        e => e,
    })?;
    if rest.is_empty() {
        return Err(Errno::NAMETOOLONG);
    }
    Ok(target.to_vec())
}

/// A Linux `DT_*` value: the `S_IFMT` bits of the type, shifted down.
fn dtype(t: FileType) -> u8 {
    match t {
        FileType::Unknown => 0,
        t => (t.as_raw_mode() >> 12) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_readdir_reply_fits_a_message() {
        let entry = DirEntry {
            name: vec![b'x'; NAME_MAX],
            ino: u64::MAX,
            dtype: 10,
            cookie: u64::MAX,
        };
        let encoded = postcard::to_stdvec(&entry).expect("encode");
        assert!(encoded.len() <= NAME_MAX + ENTRY_OVERHEAD);
        let page = vec![entry; READDIR_BUDGET / (NAME_MAX + ENTRY_OVERHEAD)];
        let reply = postcard::to_stdvec(&Response::Entries(page)).expect("encode");
        assert!(reply.len() <= MAX_MESSAGE, "{} bytes", reply.len());
    }

    #[test]
    fn only_single_components_are_walked() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0"] {
            assert_eq!(component(bad.to_vec()), Err(Errno::INVAL), "{bad:?}");
        }
        assert_eq!(component(vec![b'a'; NAME_MAX + 1]), Err(Errno::NAMETOOLONG));
        assert!(component(vec![b'a'; NAME_MAX]).is_ok());
        assert!(component(b"...".to_vec()).is_ok());
    }
}
