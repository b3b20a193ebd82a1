//! devpts, mounted on /dev/pts: `ptmx` (c 5:2, mode 0000 as Linux's), which
//! opens a new pseudo-terminal, and one node per pty numbered as TIOCGPTN
//! says (c 136:N), there while the pty's master is open.

use std::any::Any;
use std::sync::Arc;

use veil_abi::mode::{dtype, S_IFCHR, S_IFDIR};
use veil_abi::{Errno, Stat};

use super::makedev;
use crate::file::FileOps;
use crate::inode::{DirEntry, Inode, SetAttr};
use crate::pty::{Pty, Registry, SlaveAttr};

/// An anonymous device number for the instance.
const DEV: u64 = 0x1a;
const ROOT_INO: u64 = 1;
const PTMX_INO: u64 = 2;
/// The first slave's inode number (Linux's: the number plus 3).
const SLAVE_INO: u64 = 3;
pub const TTYAUX_MAJOR: u64 = 5;
const PTMX_MINOR: u64 = 2;
/// The Unix98 slaves' first major number.
const SLAVE_MAJOR: u64 = 136;

/// One devpts instance: its root directory and its ptys.
#[derive(Default)]
pub struct DevPts {
    registry: Arc<Registry>,
}

impl DevPts {
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn root(&self) -> Arc<dyn Inode> {
        Arc::new(Root(self.registry.clone()))
    }

    /// A ptmx node: in the directory with mode 0000, in devfs with 0666.
    pub fn ptmx(&self, mode: u32, ino: u64, dev: u64) -> Arc<dyn Inode> {
        Arc::new(Ptmx {
            registry: self.registry.clone(),
            mode,
            ino,
            dev,
        })
    }
}

fn stat(ino: u64, mode: u32, rdev: u64, nlink: u64) -> Stat {
    Stat {
        st_dev: DEV,
        st_ino: ino,
        st_nlink: nlink,
        st_mode: mode,
        st_rdev: rdev,
        st_blksize: 1024,
        ..Stat::default()
    }
}

struct Root(Arc<Registry>);

impl Inode for Root {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat(ROOT_INO, S_IFDIR | 0o755, 0, 2))
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(crate::file::NoOps))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        if name == b"ptmx" {
            return Ok(Arc::new(Ptmx {
                registry: self.0.clone(),
                mode: 0,
                ino: PTMX_INO,
                dev: DEV,
            }));
        }
        // Only canonical numbers: "01" is not pty 1.
        let index: u32 = std::str::from_utf8(name)
            .ok()
            .filter(|s| !s.starts_with('0') || s.len() == 1)
            .and_then(|s| s.parse().ok())
            .ok_or(Errno::ENOENT)?;
        self.0.get(index).ok_or(Errno::ENOENT)?;
        Ok(Arc::new(SlaveNode {
            registry: self.0.clone(),
            index,
        }))
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let ptmx = DirEntry {
            name: b"ptmx".to_vec(),
            ino: PTMX_INO,
            dtype: dtype(S_IFCHR),
        };
        Ok(std::iter::once(ptmx)
            .chain(self.0.indices().into_iter().map(|i| DirEntry {
                name: i.to_string().into_bytes(),
                ino: SLAVE_INO + u64::from(i),
                dtype: dtype(S_IFCHR),
            }))
            .collect())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct Ptmx {
    registry: Arc<Registry>,
    mode: u32,
    ino: u64,
    dev: u64,
}

impl Inode for Ptmx {
    fn stat(&self) -> Result<Stat, Errno> {
        let rdev = makedev(TTYAUX_MAJOR, PTMX_MINOR);
        Ok(Stat {
            st_dev: self.dev,
            ..stat(self.ino, S_IFCHR | self.mode, rdev, 1)
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        self.registry.new_master()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A slave's node. It asks the registry afresh each time, so that a cached
/// dentry of a pty since gone answers ENOENT, and holds no pty alive.
struct SlaveNode {
    registry: Arc<Registry>,
    index: u32,
}

impl SlaveNode {
    fn pty(&self) -> Result<Arc<Pty>, Errno> {
        self.registry.get(self.index).ok_or(Errno::ENOENT)
    }
}

impl Inode for SlaveNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let a = self.pty()?.attr();
        let i = u64::from(self.index);
        let rdev = makedev(SLAVE_MAJOR + (i >> 20), i & 0xf_ffff);
        Ok(Stat {
            st_uid: a.uid,
            st_gid: a.gid,
            ..stat(SLAVE_INO + i, S_IFCHR | a.mode, rdev, 1)
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        self.pty().map_err(|_| Errno::EIO)?.open_slave()
    }

    /// grantpt's chown and chmod, kept with the pty.
    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let pty = self.pty()?;
        let old = pty.attr();
        pty.set_attr(SlaveAttr {
            mode: attr.mode.map_or(old.mode, |m| m & 0o7777),
            uid: attr.uid.unwrap_or(old.uid),
            gid: attr.gid.unwrap_or(old.gid),
        });
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
