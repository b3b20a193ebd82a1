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
    /// A host FD open for reading, with `flags` as for open(2).
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
}
