//! A minimal devfs: the memory devices every program expects in /dev.

use std::any::Any;
use std::sync::Arc;

use veil_abi::mode::{S_IFCHR, S_IFDIR, S_IFREG};
use veil_abi::{Errno, Stat};

use crate::file::{DirEntry, FileOps};
use crate::inode::Inode;

/// The device number devfs reports for itself.
const DEVFS_DEV: u64 = 0x5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Device {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
}

const DEVICES: [(&[u8], Device, u64); 5] = [
    (b"null", Device::Null, 3),
    (b"zero", Device::Zero, 5),
    (b"full", Device::Full, 7),
    (b"random", Device::Random, 8),
    (b"urandom", Device::Urandom, 9),
];

fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

/// The root directory of a devfs instance.
pub fn root() -> Arc<dyn Inode> {
    Arc::new(DevDir)
}

/// The inode of files that live outside any filesystem (host FDs).
pub(crate) fn anon() -> Arc<dyn Inode> {
    Arc::new(Anon)
}

struct DevDir;

impl Inode for DevDir {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            st_dev: DEVFS_DEV,
            st_ino: 1,
            st_nlink: 2,
            st_mode: S_IFDIR | 0o755,
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(DevDirFile(self)))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        DEVICES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, dev, minor)| Arc::new(DevNode { dev, minor }) as Arc<dyn Inode>)
            .ok_or(Errno::ENOENT)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Ok(DEVICES
            .iter()
            .map(|&(name, _, minor)| DirEntry {
                name: name.to_vec(),
                ino: 10 + minor,
                dtype: 2,
            })
            .collect())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct DevDirFile(Arc<DevDir>);

impl FileOps for DevDirFile {
    fn stat(&self) -> Result<Stat, Errno> {
        self.0.stat()
    }

    fn dir_entries(&self) -> Result<Vec<DirEntry>, Errno> {
        let mut entries = vec![
            DirEntry {
                name: b".".to_vec(),
                ino: 1,
                dtype: 4,
            },
            DirEntry {
                name: b"..".to_vec(),
                ino: 1,
                dtype: 4,
            },
        ];
        entries.extend(self.0.readdir()?);
        Ok(entries)
    }
}

struct DevNode {
    dev: Device,
    minor: u64,
}

impl Inode for DevNode {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            st_dev: DEVFS_DEV,
            st_ino: 10 + self.minor,
            st_nlink: 1,
            st_mode: S_IFCHR | 0o666,
            st_rdev: makedev(1, self.minor),
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(DevFile(self)))
    }

    fn prepare_write(&self, _truncate: bool) -> Result<(), Errno> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct DevFile(Arc<DevNode>);

impl FileOps for DevFile {
    fn read_at(&self, buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        match self.0.dev {
            Device::Null => Ok(0),
            Device::Zero | Device::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Device::Random | Device::Urandom => {
                rustix::rand::getrandom(buf, rustix::rand::GetRandomFlags::empty())
                    .map_err(|e| Errno::new(e.raw_os_error()))
            }
        }
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> Result<usize, Errno> {
        match self.0.dev {
            Device::Full => Err(Errno::ENOSPC),
            _ => Ok(buf.len()),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.0.stat()
    }
}

struct Anon;

impl Inode for Anon {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            st_mode: S_IFREG | 0o600,
            st_nlink: 1,
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
