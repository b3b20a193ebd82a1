//! Messages between the sentry (client) and the gofer (server).
//!
//! Strictly one request then one reply per connection, each a single
//! SOCK_SEQPACKET message of at most [`MAX_MESSAGE`] bytes, encoded with
//! postcard; a reply may carry one FD as SCM_RIGHTS. Files are named by fids,
//! never by paths, so host renames cannot redirect a request.
//!
//! postcard numbers enum variants by position: new operations (create,
//! mkdir, unlink, rename, setstat, symlink, link, xattrs, fsync, ...) and
//! their replies are appended at the end of [`Request`] and [`Response`].

use serde::{Deserialize, Serialize};

/// Largest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 64 << 10;
/// Longest file name a walk accepts (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Size of the readlink buffer; Linux symlink targets are shorter (PATH_MAX).
pub const PATH_MAX: usize = 4096;
/// Most components one `WalkStat` takes.
pub const MAX_WALK: usize = 64;
/// Largest extended attribute value (Linux XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 60 << 10;
/// Longest extended attribute name (Linux XATTR_NAME_MAX).
pub const XATTR_NAME_MAX: usize = 255;
/// Most fids one connection may hold at once; beyond it walks fail with ENFILE.
pub const MAX_FIDS: usize = 1 << 20;

/// A file the gofer holds open for the sentry, valid until clunked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fid(pub u64);

/// A host file's attributes. Times are (seconds, nanoseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The birth time, if the host filesystem records one.
    pub btime: Option<(i64, i64)>,
}

/// One directory entry; never "." or "..".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    /// A Linux `DT_*` value.
    pub dtype: u8,
    /// Pass it to readdir to continue after this entry.
    pub cookie: u64,
}

/// The host filesystem's `statfs`, with Linux's field meanings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatfs {
    pub fs_type: i64,
    pub bsize: i64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: i64,
    pub frsize: i64,
    pub flags: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A new fid for the root of the served tree. Reply: `Fid`.
    Attach,
    /// A new fid for one component beneath `dir`; a symlink is not followed
    /// but named itself. Reply: `Fid`.
    Walk { dir: Fid, name: Vec<u8> },
    /// Reply: `Stat`.
    Stat { fid: Fid },
    /// A host FD open with `flags` as for open(2); write access only on a
    /// writable server.
    /// Reply: `Opened`, with the FD attached.
    Open { fid: Fid, flags: i32 },
    /// Reply: `Link`.
    Readlink { fid: Fid },
    /// Entries after `cookie` (0: from the start). Reply: `Entries`, empty
    /// at the end.
    Readdir { dir: Fid, cookie: u64 },
    /// Forgets a fid. Reply: `Done`.
    Clunk { fid: Fid },
    /// Reply: `Statfs`.
    Statfs { fid: Fid },
    /// Walks up to [`MAX_WALK`] components from `dir`, stopping after the
    /// first symlink or non-directory and before the first missing one (an
    /// error only if that is the first). Reply: `Walked`, a fid per
    /// component reached.
    WalkStat { dir: Fid, names: Vec<Vec<u8>> },
    /// Creates and opens a regular file (`O_CREAT | O_EXCL`, never through a
    /// symlink) with open(2) `flags` and permission bits `mode`.
    /// Reply: `Fid`, with the open FD attached.
    Create {
        dir: Fid,
        name: Vec<u8>,
        flags: i32,
        mode: u32,
    },
    /// Reply: `Fid`.
    Mkdir { dir: Fid, name: Vec<u8>, mode: u32 },
    /// A regular file, FIFO or socket node (`mode` holds the type); device
    /// nodes get EPERM. Reply: `Fid`.
    Mknod { dir: Fid, name: Vec<u8>, mode: u32 },
    /// Reply: `Fid`.
    Symlink {
        dir: Fid,
        name: Vec<u8>,
        target: Vec<u8>,
    },
    /// A new name for `target`, a non-directory. Reply: `Fid`.
    Link {
        dir: Fid,
        name: Vec<u8>,
        target: Fid,
    },
    /// unlinkat(2); `flags` is 0 or AT_REMOVEDIR. Reply: `Done`.
    Unlink { dir: Fid, name: Vec<u8>, flags: u32 },
    /// renameat2(2); `flags` is 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
    /// Reply: `Done`.
    Rename {
        dir: Fid,
        name: Vec<u8>,
        new_dir: Fid,
        new_name: Vec<u8>,
        flags: u32,
    },
    /// Changes what is set. Reply: `Stat`, the result.
    SetStat { fid: Fid, attr: SetStat },
    /// fsync(2), or fdatasync(2) with `data_only`. Reply: `Done`.
    Fsync { fid: Fid, data_only: bool },
    /// fallocate(2) of a regular file. Reply: `Done`.
    Fallocate {
        fid: Fid,
        mode: u32,
        offset: u64,
        len: u64,
    },
    /// Reply: `Bytes`, the value.
    GetXattr { fid: Fid, name: Vec<u8> },
    /// `flags` as setxattr(2)'s. Reply: `Done`.
    SetXattr {
        fid: Fid,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
    },
    /// Reply: `Bytes`, the allowed names, each NUL-terminated.
    ListXattr { fid: Fid },
    /// Reply: `Done`.
    RemoveXattr { fid: Fid, name: Vec<u8> },
    /// A new socket of type `kind` (SOCK_STREAM, SOCK_SEQPACKET or
    /// SOCK_DGRAM, no flags) connected to the bound Unix socket `fid`.
    /// Reply: `Opened`, with the socket attached.
    Connect { fid: Fid, kind: u32 },
}

/// A change of attributes: what is `None` stays. Times are (seconds,
/// nanoseconds), with UTIME_NOW as the nanoseconds for "now".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStat {
    /// Permission bits (07777).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<(i64, i64)>,
    pub mtime: Option<(i64, i64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Fid {
        fid: Fid,
        stat: HostStat,
    },
    Stat(HostStat),
    Opened,
    Link(Vec<u8>),
    Entries(Vec<DirEntry>),
    Done,
    Statfs(HostStatfs),
    /// The request failed with this Linux errno.
    Error(i32),
    Walked(Vec<(Fid, HostStat)>),
    Bytes(Vec<u8>),
}
