//! The gofer's side of the protocol.
//!
//! Every fid is an `O_PATH` descriptor reached from the root by
//! single-component `openat(O_NOFOLLOW)` walks, so neither "..", nor
//! symlinks, nor concurrent renames can lead outside the root. Requests are
//! hostile: each is bounded and validated, and a bad one gets an errno reply,
//! never a panic. Changes name a directory fid and one component and use
//! the `*at()` calls on the directory's FD; a read-only server (as trusted
//! configuration says) refuses them with EROFS. Files are created owned by
//! the gofer's own uid. Device nodes are never opened for I/O nor created.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    chmodat, chownat, fallocate, fdatasync, fgetxattr, flistxattr, fremovexattr, fsetxattr, fstat,
    fstatfs, fsync, ftruncate, linkat, makedev, mkdirat, mknodat, openat, readlinkat_raw,
    renameat_with, seek, statx, symlinkat, unlinkat, utimensat, AtFlags, FallocateFlags, FileType,
    Gid, Mode, OFlags, RawDir, RenameFlags, SeekFrom, StatxFlags, Timespec, Timestamps, Uid,
    XattrFlags, CWD, UTIME_OMIT,
};
use rustix::io::{fcntl_dupfd_cloexec, Errno};
use rustix::net::{
    connect_unix, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::idmap::{IdMap, IdMaps};
use veil_abi::mode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFSOCK};

use crate::protocol::{
    DirEntry, Fid, HostStat, HostStatfs, Request, Response, SetStat, MAX_FIDS, MAX_MESSAGE,
    MAX_WALK, NAME_MAX, PATH_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX,
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

/// Serves the tree beneath `root` on `sock` until the sentry closes it,
/// refusing every change with EROFS if `readonly`. Opens `/proc/self/fd` up front (fids are reopened for I/O through it) and
/// raises the process's soft RLIMIT_NOFILE, as every fid is an FD.
pub fn serve(root: OwnedFd, sock: OwnedFd, readonly: bool) -> Result<(), GoferError> {
    raise_fd_limit();
    serve_with_fd_dir(root, sock, readonly, Path::new("/proc/self/fd"))
}

/// `serve`, with the process's own `/proc/PID/fd` at `fd_dir`: a confined
/// gofer has it bound there in a root without /proc, and has set its own
/// RLIMIT_NOFILE before its filter forbids changing it.
pub fn serve_with_fd_dir(
    root: OwnedFd,
    sock: OwnedFd,
    readonly: bool,
    fd_dir: &Path,
) -> Result<(), GoferError> {
    serve_mapped(root, sock, readonly, fd_dir, IdMaps::default())
}

/// `serve_with_fd_dir` for a container with a user namespace: owners are
/// shown as the container's ids (unmapped ones as the overflow id),
/// changed to the host's, and what the gofer creates belongs to the
/// container's root.
pub fn serve_mapped(
    root: OwnedFd,
    sock: OwnedFd,
    readonly: bool,
    fd_dir: &Path,
    ids: IdMaps,
) -> Result<(), GoferError> {
    let mut server = Server::new(root, readonly, fd_dir, ids)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (response, fd) = match wire::recv(sock.as_fd(), &mut buf) {
            Ok(None) => return Ok(()),
            // The sentry exited with a reply of ours still unread.
            Err(Errno::CONNRESET) => return Ok(()),
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
    readonly: bool,
    /// `/proc/self/fd`, through which fids are reopened for I/O.
    proc_fds: OwnedFd,
    /// Its path, for connecting to a fid's socket.
    fd_dir: PathBuf,
    fids: HashMap<Fid, OwnedFd>,
    next_fid: u64,
    ids: IdMaps,
}

impl Server {
    fn new(
        root: OwnedFd,
        readonly: bool,
        fd_dir: &Path,
        ids: IdMaps,
    ) -> Result<Server, GoferError> {
        let proc_fds = openat(
            CWD,
            fd_dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| GoferError::Proc(e.into()))?;
        Ok(Server {
            root,
            readonly,
            proc_fds,
            fd_dir: fd_dir.to_owned(),
            fids: HashMap::new(),
            next_fid: 1,
            ids,
        })
    }

    /// Decodes and runs one request; failures become an errno reply.
    fn handle(&mut self, bytes: &[u8]) -> (Response, Option<OwnedFd>) {
        let result = match postcard::take_from_bytes::<Request>(bytes) {
            Ok((req, [])) => self.dispatch(req),
            _ => {
                tracing::warn!("gofer: undecodable request of {} bytes", bytes.len());
                Err(Errno::BADMSG)
            }
        };
        match result {
            Ok((mut response, fd)) => {
                self.map_owners(&mut response);
                (response, fd)
            }
            Err(e) => (Response::Error(e.raw_os_error()), None),
        }
    }

    /// Host owners as the container sees them.
    fn map_owners(&self, response: &mut Response) {
        let map = |st: &mut HostStat| {
            st.uid = self.ids.uid.inside(st.uid);
            st.gid = self.ids.gid.inside(st.gid);
        };
        match response {
            Response::Fid { stat, .. } | Response::Stat(stat) => map(stat),
            Response::Walked(list) => list.iter_mut().for_each(|(_, st)| map(st)),
            _ => {}
        }
    }

    /// Gives what was just made as `name` in `dir` to the container's
    /// root, when the container has ids of its own (else it stays the
    /// gofer's, which the container could not name).
    fn own_new(&self, dir: Fid, name: &CString) -> Result<(), Errno> {
        let Some((uid, gid)) = self.container_root() else {
            return Ok(());
        };
        chownat(
            self.fd(dir)?,
            name.as_c_str(),
            uid,
            gid,
            AtFlags::SYMLINK_NOFOLLOW,
        )
    }

    /// The host ids of the container's root, when it has ids of its own.
    fn container_root(&self) -> Option<(Option<Uid>, Option<Gid>)> {
        if self.ids.uid.is_identity() && self.ids.gid.is_identity() {
            return None;
        }
        // SAFETY: from_raw is unsafe only for -1, which outside() of a
        // checked mapping never gives.
        let uid = self.ids.uid.outside(0).map(|u| unsafe { Uid::from_raw(u) });
        // SAFETY: as for the uid.
        let gid = self.ids.gid.outside(0).map(|g| unsafe { Gid::from_raw(g) });
        Some((uid, gid))
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
                let write = OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC;
                if OFlags::from_bits_retain(flags as u32).intersects(write) {
                    self.writable()?;
                }
                let flags = open_flags(flags)?;
                return Ok((Response::Opened, Some(self.reopen(fid, flags)?)));
            }
            Request::Readlink { fid } => Response::Link(readlink(self.fd(fid)?)?),
            Request::Readdir { dir, cookie } => Response::Entries(self.readdir(dir, cookie)?),
            Request::Clunk { fid } => {
                self.fids.remove(&fid).ok_or(Errno::BADF)?;
                Response::Done
            }
            Request::Statfs { fid } => Response::Statfs(statfs(self.fd(fid)?)?),
            Request::WalkStat { dir, names } => Response::Walked(self.walk_stat(dir, names)?),
            Request::Create {
                dir,
                name,
                flags,
                mode,
            } => return self.create(dir, name, flags, mode),
            Request::Mkdir { dir, name, mode } => {
                let name = self.change(name)?;
                mkdirat(self.fd(dir)?, name.as_c_str(), perm(mode))?;
                self.own_new(dir, &name)?;
                self.walk_new(dir, &name)?
            }
            Request::Mknod { dir, name, mode } => {
                let name = self.change(name)?;
                let kind = match FileType::from_raw_mode(mode) {
                    k @ (FileType::RegularFile | FileType::Fifo | FileType::Socket) => k,
                    _ => return Err(Errno::PERM),
                };
                mknodat(self.fd(dir)?, name.as_c_str(), kind, perm(mode), 0)?;
                self.own_new(dir, &name)?;
                self.walk_new(dir, &name)?
            }
            Request::Symlink { dir, name, target } => {
                let name = self.change(name)?;
                if target.is_empty() {
                    return Err(Errno::NOENT);
                }
                if target.len() >= PATH_MAX {
                    return Err(Errno::NAMETOOLONG);
                }
                let target = CString::new(target).map_err(|_| Errno::INVAL)?;
                symlinkat(target.as_c_str(), self.fd(dir)?, name.as_c_str())?;
                self.own_new(dir, &name)?;
                self.walk_new(dir, &name)?
            }
            Request::Link { dir, name, target } => {
                let name = self.change(name)?;
                let target = self.fd(target)?;
                if stat(target)?.mode & S_IFMT == S_IFDIR {
                    return Err(Errno::PERM);
                }
                // Through /proc/self/fd: linkat's AT_EMPTY_PATH needs
                // CAP_DAC_READ_SEARCH, and following the magic link reaches
                // the fid's inode (a symlink fid links the symlink).
                linkat(
                    &self.proc_fds,
                    target.as_raw_fd().to_string(),
                    self.fd(dir)?,
                    name.as_c_str(),
                    AtFlags::SYMLINK_FOLLOW,
                )?;
                self.walk_new(dir, &name)?
            }
            Request::Unlink { dir, name, flags } => {
                let name = self.change(name)?;
                let flags = match flags {
                    0 => AtFlags::empty(),
                    f if f == AtFlags::REMOVEDIR.bits() => AtFlags::REMOVEDIR,
                    _ => return Err(Errno::INVAL),
                };
                unlinkat(self.fd(dir)?, name.as_c_str(), flags)?;
                Response::Done
            }
            Request::Rename {
                dir,
                name,
                new_dir,
                new_name,
                flags,
            } => {
                let name = self.change(name)?;
                let new_name = component(new_name)?;
                let flags = RenameFlags::from_bits(flags).ok_or(Errno::INVAL)?;
                if flags.intersects(RenameFlags::WHITEOUT)
                    || flags.contains(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE)
                {
                    return Err(Errno::INVAL);
                }
                renameat_with(
                    self.fd(dir)?,
                    name.as_c_str(),
                    self.fd(new_dir)?,
                    new_name.as_c_str(),
                    flags,
                )?;
                Response::Done
            }
            Request::SetStat { fid, attr } => Response::Stat(self.setstat(fid, &attr)?),
            Request::Fsync { fid, data_only } => {
                let fd = self.reopen(fid, OFlags::RDONLY)?;
                if data_only {
                    fdatasync(&fd)?;
                } else {
                    fsync(&fd)?;
                }
                Response::Done
            }
            Request::Fallocate {
                fid,
                mode,
                offset,
                len,
            } => {
                self.writable()?;
                let mode = FallocateFlags::from_bits(mode).ok_or(Errno::OPNOTSUPP)?;
                let allowed = [
                    FallocateFlags::empty(),
                    FallocateFlags::KEEP_SIZE,
                    FallocateFlags::KEEP_SIZE | FallocateFlags::PUNCH_HOLE,
                ];
                if !allowed.contains(&mode) {
                    return Err(Errno::OPNOTSUPP);
                }
                if len == 0
                    || offset
                        .checked_add(len)
                        .is_none_or(|end| end > i64::MAX as u64)
                {
                    return Err(Errno::INVAL);
                }
                fallocate(self.reopen(fid, OFlags::WRONLY)?, mode, offset, len)?;
                Response::Done
            }
            Request::GetXattr { fid, name } => {
                let name = xattr_name(name)?;
                let fd = self.xattr_fd(fid).map_err(|_| Errno::NODATA)?;
                let mut value = vec![0; XATTR_SIZE_MAX];
                let len = fgetxattr(&fd, name.as_c_str(), &mut value)?;
                value.truncate(len);
                Response::Bytes(value)
            }
            Request::SetXattr {
                fid,
                name,
                value,
                flags,
            } => {
                self.writable()?;
                let name = xattr_name(name)?;
                if value.len() > XATTR_SIZE_MAX {
                    return Err(Errno::TOOBIG);
                }
                let flags = XattrFlags::from_bits(flags)
                    .filter(|f| !f.contains(XattrFlags::CREATE | XattrFlags::REPLACE))
                    .ok_or(Errno::INVAL)?;
                fsetxattr(self.xattr_fd(fid)?, name.as_c_str(), &value, flags)?;
                Response::Done
            }
            Request::ListXattr { fid } => Response::Bytes(match self.xattr_fd(fid) {
                Ok(fd) => list_xattrs(&fd)?,
                Err(_) => Vec::new(),
            }),
            Request::Connect { fid, kind } => {
                return Ok((Response::Opened, Some(self.connect(fid, kind)?)))
            }
            Request::RemoveXattr { fid, name } => {
                self.writable()?;
                let name = xattr_name(name)?;
                fremovexattr(self.xattr_fd(fid)?, name.as_c_str())?;
                Response::Done
            }
        };
        Ok((response, None))
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.readonly {
            return Err(Errno::ROFS);
        }
        Ok(())
    }

    /// The name a change applies to, once the server is known writable.
    fn change(&self, name: Vec<u8>) -> Result<CString, Errno> {
        self.writable()?;
        component(name)
    }

    /// A fid for what a change just made as `name` in `dir`.
    fn walk_new(&mut self, dir: Fid, name: &CString) -> Result<Response, Errno> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(self.fd(dir)?, name.as_c_str(), flags, Mode::empty())?;
        self.insert(fd)
    }

    fn walk_stat(&mut self, dir: Fid, names: Vec<Vec<u8>>) -> Result<Vec<(Fid, HostStat)>, Errno> {
        if names.is_empty() || names.len() > MAX_WALK {
            return Err(Errno::INVAL);
        }
        let names = names
            .into_iter()
            .map(component)
            .collect::<Result<Vec<_>, _>>()?;
        let mut cur = fcntl_dupfd_cloexec(self.fd(dir)?, 0)?;
        let mut walked = Vec::new();
        for name in names {
            let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match openat(&cur, name.as_c_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(e) if walked.is_empty() => return Err(e),
                Err(_) => break,
            };
            let next = fcntl_dupfd_cloexec(&fd, 0)?;
            let Response::Fid { fid, stat } = self.insert(fd)? else {
                unreachable!("insert replies with a fid")
            };
            walked.push((fid, stat));
            if stat.mode & S_IFMT != S_IFDIR {
                break;
            }
            cur = next;
        }
        Ok(walked)
    }

    fn create(
        &mut self,
        dir: Fid,
        name: Vec<u8>,
        flags: i32,
        mode: u32,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let name = self.change(name)?;
        let access = open_flags(flags)?;
        let flags = access | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(self.fd(dir)?, name.as_c_str(), flags, perm(mode))?;
        if let Some((uid, gid)) = self.container_root() {
            rustix::fs::fchown(&fd, uid, gid)?;
        }
        // The fid is the created inode itself, whatever the name now holds.
        let path = openat(
            &self.proc_fds,
            fd.as_raw_fd().to_string(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok((self.insert(path)?, Some(fd)))
    }

    fn setstat(&self, fid: Fid, attr: &SetStat) -> Result<HostStat, Errno> {
        self.writable()?;
        let fd = self.fd(fid)?;
        let is_link = stat(fd)?.mode & S_IFMT == S_IFLNK;
        if let Some(size) = attr.size {
            if size > i64::MAX as u64 {
                return Err(Errno::INVAL);
            }
            let file = self.reopen(fid, OFlags::WRONLY).map_err(|e| match e {
                Errno::NOTDIR | Errno::LOOP => Errno::INVAL,
                Errno::ISDIR => Errno::ISDIR,
                e => e,
            })?;
            if FileType::from_raw_mode(fstat(&file)?.st_mode) != FileType::RegularFile {
                return Err(Errno::INVAL);
            }
            ftruncate(&file, size)?;
        }
        if let Some(mode) = attr.mode {
            if is_link {
                return Err(Errno::OPNOTSUPP);
            }
            // fchmod refuses O_PATH FDs; the magic link reaches the inode.
            let path = fd.as_raw_fd().to_string();
            chmodat(&self.proc_fds, path, perm(mode), AtFlags::empty())?;
        }
        if attr.uid.is_some() || attr.gid.is_some() {
            // -1 means "unchanged", as chown(2).
            // The container's ids, which must have host ones (chown(2)'s
            // EINVAL for an id its namespace does not map).
            let host = |id: Option<u32>, map: &IdMap| match id.filter(|&i| i != u32::MAX) {
                None => Ok(None),
                Some(i) => map.outside(i).map(Some).ok_or(Errno::INVAL),
            };
            let (uid, gid) = (
                host(attr.uid, &self.ids.uid)?,
                host(attr.gid, &self.ids.gid)?,
            );
            // SAFETY: from_raw is unsafe only for -1: the container's -1 is
            // filtered out, and a checked mapping never yields it.
            let uid = uid
                .filter(|&u| u != u32::MAX)
                .map(|u| unsafe { Uid::from_raw(u) });
            // SAFETY: as for the uid.
            let gid = gid
                .filter(|&g| g != u32::MAX)
                .map(|g| unsafe { Gid::from_raw(g) });
            chownat(fd, c"", uid, gid, AtFlags::EMPTY_PATH)?;
        }
        if attr.atime.is_some() || attr.mtime.is_some() {
            let ts = |t: Option<(i64, i64)>| match t {
                Some((tv_sec, tv_nsec)) => Timespec { tv_sec, tv_nsec },
                None => Timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_OMIT,
                },
            };
            let times = Timestamps {
                last_access: ts(attr.atime),
                last_modification: ts(attr.mtime),
            };
            utimensat(fd, c"", &times, AtFlags::EMPTY_PATH)?;
        }
        stat(fd)
    }

    /// Connects to the fid's socket through `/proc/self/fd/N`, which names
    /// the fid's inode whatever its path: never another socket, nor one
    /// outside the root. Connecting is allowed on a read-only server, as
    /// it changes no file.
    fn connect(&self, fid: Fid, kind: u32) -> Result<OwnedFd, Errno> {
        let fd = self.fd(fid)?;
        if stat(fd)?.mode & S_IFMT != S_IFSOCK {
            return Err(Errno::CONNREFUSED);
        }
        let kind = match kind {
            k if k == SocketType::STREAM.as_raw() => SocketType::STREAM,
            k if k == SocketType::SEQPACKET.as_raw() => SocketType::SEQPACKET,
            k if k == SocketType::DGRAM.as_raw() => SocketType::DGRAM,
            _ => return Err(Errno::INVAL),
        };
        let sock = socket_with(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)?;
        let path = self.fd_dir.join(fd.as_raw_fd().to_string());
        connect_unix(&sock, &SocketAddrUnix::new(path.as_path())?)?;
        Ok(sock)
    }

    /// An FD for a fid's extended attributes: its regular file or directory
    /// opened for reading; others have none the sandbox may use (EPERM).
    fn xattr_fd(&self, fid: Fid) -> Result<OwnedFd, Errno> {
        self.reopen(fid, OFlags::RDONLY).map_err(|e| match e {
            Errno::BADF => Errno::BADF,
            _ => Errno::PERM,
        })
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

    /// Opens the fid's inode for I/O with `flags` (an access mode, plus
    /// O_DIRECTORY, O_NONBLOCK or O_TRUNC). Only regular files and
    /// directories: never a symlink (ELOOP), a device or FIFO (EACCES, as on
    /// a nodev mount) or a socket (ENXIO, as Linux); with O_DIRECTORY,
    /// nothing but a directory (ENOTDIR); a directory only for reading
    /// (EISDIR). Checking the type first is race-free: a fid's inode never
    /// changes.
    fn reopen(&self, fid: Fid, flags: OFlags) -> Result<OwnedFd, Errno> {
        let fd = self.fd(fid)?;
        let writes = flags.intersects(OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC);
        let kind = match FileType::from_raw_mode(stat(fd)?.mode) {
            FileType::Directory if writes => return Err(Errno::ISDIR),
            FileType::Directory => OFlags::DIRECTORY,
            _ if flags.contains(OFlags::DIRECTORY) => return Err(Errno::NOTDIR),
            FileType::RegularFile => OFlags::empty(),
            FileType::Symlink => return Err(Errno::LOOP),
            FileType::Socket => return Err(Errno::NXIO),
            _ => return Err(Errno::ACCESS),
        };
        // /proc/self/fd/N opens exactly the fid's inode, wherever it has
        // been renamed to since the walk.
        let keep = OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC | OFlags::NONBLOCK;
        let flags = kind | (flags & keep) | OFlags::CLOEXEC | OFlags::NOCTTY;
        openat(
            &self.proc_fds,
            fd.as_raw_fd().to_string(),
            flags,
            Mode::empty(),
        )
    }

    /// As many entries after `cookie` as fit in one reply.
    fn readdir(&self, dir: Fid, cookie: u64) -> Result<Vec<DirEntry>, Errno> {
        let fd = self.reopen(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
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

/// Validates open(2) flags: an access mode, plus flags that change nothing
/// on the host or only the FD's own status (O_NONBLOCK), and O_TRUNC. Of
/// them, those for the host's open are returned.
fn open_flags(flags: i32) -> Result<OFlags, Errno> {
    let flags = OFlags::from_bits_retain(flags as u32);
    let access = flags & (OFlags::WRONLY | OFlags::RDWR);
    if access == OFlags::WRONLY | OFlags::RDWR {
        return Err(Errno::INVAL);
    }
    let kept = OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::TRUNC;
    let ignored = OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::LARGEFILE | OFlags::NOFOLLOW;
    if !(access | kept | ignored).contains(flags) {
        return Err(Errno::INVAL);
    }
    Ok(flags & (access | kept))
}

/// Permission bits only: the type, if any, is the request's.
fn perm(mode: u32) -> Mode {
    Mode::from_raw_mode(mode & 0o7777)
}

/// The extended attribute namespaces the sandbox may use: its own (user.*)
/// and overlayfs's (trusted.overlay.*). Others (security.*, system.*,
/// other trusted.*) are the host's: EOPNOTSUPP.
fn xattr_allowed(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name.starts_with(b"trusted.overlay.")
}

fn xattr_name(name: Vec<u8>) -> Result<CString, Errno> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::RANGE);
    }
    if !xattr_allowed(&name) {
        return Err(Errno::OPNOTSUPP);
    }
    CString::new(name).map_err(|_| Errno::INVAL)
}

/// The allowed names among a file's extended attributes, each
/// NUL-terminated.
fn list_xattrs(fd: &OwnedFd) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0; XATTR_SIZE_MAX];
    let len = flistxattr(fd, &mut buf)?;
    let mut out = Vec::new();
    for name in buf[..len].split(|&b| b == 0).filter(|n| xattr_allowed(n)) {
        out.extend_from_slice(name);
        out.push(0);
    }
    Ok(out)
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

/// statx rather than fstat: it also gives the birth time.
fn stat(fd: &OwnedFd) -> Result<HostStat, Errno> {
    let st = statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )?;
    let ts = |t: rustix::fs::StatxTimestamp| (t.tv_sec, i64::from(t.tv_nsec));
    Ok(HostStat {
        dev: makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mode: u32::from(st.stx_mode),
        nlink: u64::from(st.stx_nlink),
        uid: st.stx_uid,
        gid: st.stx_gid,
        rdev: makedev(st.stx_rdev_major, st.stx_rdev_minor),
        size: st.stx_size as i64,
        blksize: i64::from(st.stx_blksize),
        blocks: st.stx_blocks as i64,
        atime: ts(st.stx_atime),
        mtime: ts(st.stx_mtime),
        ctime: ts(st.stx_ctime),
        btime: (st.stx_mask & StatxFlags::BTIME.bits() != 0).then(|| ts(st.stx_btime)),
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

    /// Requests the client would never send still get errnos.
    #[test]
    fn oversized_fields_get_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server::new(
            open_root(dir.path()).expect("root"),
            false,
            Path::new("/proc/self/fd"),
            IdMaps::default(),
        )
        .expect("server");
        let Ok((Response::Fid { fid: root, .. }, _)) = server.dispatch(Request::Attach) else {
            panic!("attach");
        };
        let errno = |server: &mut Server, req: Request| match server.dispatch(req) {
            Err(e) => e,
            Ok((r, _)) => panic!("{r:?}"),
        };
        let cases = [
            (
                Request::Symlink {
                    dir: root,
                    name: b"l".to_vec(),
                    target: vec![b'a'; PATH_MAX],
                },
                Errno::NAMETOOLONG,
            ),
            (
                Request::WalkStat {
                    dir: root,
                    names: vec![b"a".to_vec(); MAX_WALK + 1],
                },
                Errno::INVAL,
            ),
            (
                Request::SetXattr {
                    fid: root,
                    name: b"user.x".to_vec(),
                    value: vec![0; XATTR_SIZE_MAX + 1],
                    flags: 0,
                },
                Errno::TOOBIG,
            ),
            (
                Request::Create {
                    dir: root,
                    name: vec![b'a'; NAME_MAX + 1],
                    flags: 0,
                    mode: 0o600,
                },
                Errno::NAMETOOLONG,
            ),
            (
                Request::Create {
                    dir: root,
                    name: b"f".to_vec(),
                    flags: -1,
                    mode: u32::MAX,
                },
                Errno::INVAL,
            ),
            (
                Request::SetStat {
                    fid: root,
                    attr: SetStat {
                        size: Some(u64::MAX),
                        ..SetStat::default()
                    },
                },
                Errno::INVAL,
            ),
            (
                Request::Mkdir {
                    dir: Fid(u64::MAX),
                    name: b"d".to_vec(),
                    mode: 0o700,
                },
                Errno::BADF,
            ),
        ];
        for (req, expected) in cases {
            assert_eq!(errno(&mut server, req.clone()), expected, "{req:?}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("readdir").count(), 0);
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
