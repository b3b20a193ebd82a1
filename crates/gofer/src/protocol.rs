//! Messages between the sentry (client) and the gofer (server). Each is one
//! SOCK_SEQPACKET message, encoded with postcard; a reply may carry one FD.

use serde::{Deserialize, Serialize};

/// Largest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 64 << 10;
/// Longest file name the protocol carries (NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Most fids one connection may hold at once.
pub const MAX_FIDS: usize = 1 << 20;
/// Budget for the entries of one readdir reply, below MAX_MESSAGE.
pub const READDIR_BUDGET: usize = 48 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The root of the served tree.
    Attach,
    /// One path component beneath a directory; symlinks are not followed.
    Walk {
        dir: u64,
        name: Vec<u8>,
    },
    Stat {
        fid: u64,
    },
    /// Open for I/O; the reply carries the host FD.
    Open {
        fid: u64,
        flags: i32,
    },
    Readlink {
        fid: u64,
    },
    /// Directory entries after `cookie` (0: from the start).
    Readdir {
        dir: u64,
        cookie: u64,
    },
    Clunk {
        fid: u64,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStat {
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub dtype: u8,
    pub cookie: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Fid {
        fid: u64,
        stat: WireStat,
    },
    Stat(WireStat),
    /// The opened FD travels as SCM_RIGHTS with this message.
    Opened,
    Link(Vec<u8>),
    Entries(Vec<WireDirEntry>),
    Done,
    /// A Linux errno.
    Error(i32),
}
