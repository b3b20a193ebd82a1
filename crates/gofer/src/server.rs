//! The gofer's side of the protocol. Every fid is an `O_PATH` descriptor
//! reached from the root by single-component `openat(O_NOFOLLOW)` walks, so
//! neither `..`, nor symlinks, nor concurrent renames can lead outside.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, RawDir, CWD};
use rustix::io::Errno;

use crate::protocol::{
    Request, Response, WireDirEntry, WireStat, MAX_FIDS, MAX_MESSAGE, NAME_MAX, READDIR_BUDGET,
};
use crate::wire;

#[derive(Debug, thiserror::Error)]
pub enum GoferError {
    #[error("cannot open the root {path}: {errno}")]
    Root { path: String, errno: Errno },
    #[error("socket: {0}")]
    Socket(Errno),
}

/// Opens the directory to serve, from trusted configuration.
pub fn open_root(path: &Path) -> Result<OwnedFd, GoferError> {
    openat(
        CWD,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| GoferError::Root {
        path: path.display().to_string(),
        errno,
    })
}

struct Server {
    root: OwnedFd,
    fids: HashMap<u64, OwnedFd>,
    next: u64,
}

/// Serves one connection until the sentry closes it.
pub fn serve(root: OwnedFd, sock: OwnedFd) -> Result<(), GoferError> {
    let mut server = Server {
        root,
        fids: HashMap::new(),
        next: 1,
    };
    let mut buf = Vec::with_capacity(MAX_MESSAGE);
    loop {
        let received = match wire::recv(sock.as_fd(), &mut buf) {
            Ok(Some(fd)) => fd,
            Ok(None) => return Ok(()),
            // A malformed packet gets an error reply, not a dead gofer.
            Err(Errno::MSGSIZE) => {
                reply(&sock, &Response::Error(Errno::MSGSIZE.raw_os_error()), None)?;
                continue;
            }
            Err(e) => return Err(GoferError::Socket(e)),
        };
        // The sentry never sends FDs; drop any it does.
        drop(received);
        let (response, fd) = match postcard::from_bytes::<Request>(&buf) {
            Ok(req) => match server.handle(req) {
                Ok(r) => r,
                Err(e) => (Response::Error(e.raw_os_error()), None),
            },
            Err(_) => (Response::Error(Errno::INVAL.raw_os_error()), None),
        };
        reply(&sock, &response, fd.as_ref())?;
    }
}

fn reply(sock: &OwnedFd, response: &Response, fd: Option<&OwnedFd>) -> Result<(), GoferError> {
    let bytes = postcard::to_stdvec(response).map_err(|_| GoferError::Socket(Errno::MSGSIZE))?;
    wire::send(sock.as_fd(), &bytes, fd.map(AsFd::as_fd)).map_err(GoferError::Socket)
}

fn stat_of(fd: &OwnedFd) -> Result<WireStat, Errno> {
    let st = statat(fd, c"", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(WireStat {
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

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::NAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Errno::INVAL);
    }
    Ok(())
}

impl Server {
    fn fid(&self, fid: u64) -> Result<&OwnedFd, Errno> {
        self.fids.get(&fid).ok_or(Errno::BADF)
    }

    fn add(&mut self, fd: OwnedFd) -> Result<(u64, WireStat), Errno> {
        if self.fids.len() >= MAX_FIDS {
            return Err(Errno::NFILE);
        }
        let stat = stat_of(&fd)?;
        let fid = self.next;
        self.next += 1;
        self.fids.insert(fid, fd);
        Ok((fid, stat))
    }

    fn handle(&mut self, req: Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        let response = match req {
            Request::Attach => {
                let fd = rustix::io::fcntl_dupfd_cloexec(&self.root, 0)?;
                let (fid, stat) = self.add(fd)?;
                Response::Fid { fid, stat }
            }
            Request::Walk { dir, name } => {
                check_name(&name)?;
                let name = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
                let fd = openat(
                    self.fid(dir)?,
                    name.as_c_str(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let (fid, stat) = self.add(fd)?;
                Response::Fid { fid, stat }
            }
            Request::Stat { fid } => Response::Stat(stat_of(self.fid(fid)?)?),
            Request::Open { fid, flags } => {
                return Ok((Response::Opened, Some(self.open(fid, flags)?)))
            }
            Request::Readlink { fid } => {
                let target = rustix::fs::readlinkat(self.fid(fid)?, c"", Vec::new())
                    .map_err(|e| if e == Errno::NOENT { Errno::INVAL } else { e })?;
                Response::Link(target.into_bytes())
            }
            Request::Readdir { dir, cookie } => Response::Entries(self.readdir(dir, cookie)?),
            Request::Clunk { fid } => {
                self.fids.remove(&fid);
                Response::Done
            }
        };
        Ok((response, None))
    }

    /// Reopens a fid for reading: only regular files and directories, never
    /// a symlink, a device, a FIFO or a socket.
    fn open(&self, fid: u64, flags: i32) -> Result<OwnedFd, Errno> {
        let accmode = flags & 3;
        if accmode != 0 {
            return Err(Errno::ROFS);
        }
        let allowed = OFlags::DIRECTORY.bits() as i32
            | OFlags::NONBLOCK.bits() as i32
            | OFlags::LARGEFILE.bits() as i32;
        if flags & !allowed != 0 {
            return Err(Errno::INVAL);
        }
        let fd = self.fid(fid)?;
        let st = stat_of(fd)?;
        let oflags = match FileType::from_raw_mode(st.mode) {
            FileType::RegularFile if flags & OFlags::DIRECTORY.bits() as i32 != 0 => {
                return Err(Errno::NOTDIR)
            }
            FileType::RegularFile => OFlags::RDONLY,
            FileType::Directory => OFlags::RDONLY | OFlags::DIRECTORY,
            FileType::Symlink => return Err(Errno::LOOP),
            _ => return Err(Errno::ACCESS),
        };
        // Reopening through /proc/self/fd yields the very inode the fid
        // names, whatever has been renamed since the walk.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let opened = openat(
            CWD,
            path.as_str(),
            oflags | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )?;
        // Guard against the inode changing type between the stat and the open.
        let again = stat_of(&opened)?;
        if again.ino != st.ino || again.dev != st.dev {
            return Err(Errno::AGAIN);
        }
        Ok(opened)
    }

    fn readdir(&self, dir: u64, cookie: u64) -> Result<Vec<WireDirEntry>, Errno> {
        let fd = self.open(dir, OFlags::DIRECTORY.bits() as i32)?;
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(cookie))?;
        let mut buf = vec![std::mem::MaybeUninit::uninit(); 32 << 10];
        let mut entries = Vec::new();
        let mut used = 0;
        let mut dir = RawDir::new(&fd, &mut buf);
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            used += name.len() + 32;
            if used > READDIR_BUDGET {
                break;
            }
            entries.push(WireDirEntry {
                name: name.to_vec(),
                ino: entry.ino(),
                dtype: file_type_to_dtype(entry.file_type()),
                cookie: entry.next_entry_cookie(),
            });
        }
        Ok(entries)
    }
}

fn file_type_to_dtype(t: FileType) -> u8 {
    match t {
        FileType::Fifo => 1,
        FileType::CharacterDevice => 2,
        FileType::Directory => 4,
        FileType::BlockDevice => 6,
        FileType::RegularFile => 8,
        FileType::Symlink => 10,
        FileType::Socket => 12,
        FileType::Unknown => 0,
    }
}
