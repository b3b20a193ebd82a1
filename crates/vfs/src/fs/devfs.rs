//! A minimal devfs, mounted on /dev: the memory devices every program
//! expects, with Linux's modes and device numbers, the fd, stdin, stdout
//! and stderr links into /proc/self/fd, and an empty `shm` directory for
//! the sandbox to mount its /dev/shm on.

use std::any::Any;
use std::sync::Arc;

use veil_abi::mode::{dtype, S_IFCHR, S_IFDIR, S_IFLNK};
use veil_abi::{Errno, Stat};

use super::makedev;
use crate::file::{FileOps, NoOps};
use crate::inode::{DirEntry, Inode};

/// devtmpfs's device number on a typical Linux host.
const DEV: u64 = 5;
const ROOT_INO: u64 = 1;
/// The memory devices' major number.
const MEM_MAJOR: u64 = 1;
const SHM_INO: u64 = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Device {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
}

/// Name, device and minor number.
const DEVICES: [(&[u8], Device, u64); 5] = [
    (b"null", Device::Null, 3),
    (b"zero", Device::Zero, 5),
    (b"full", Device::Full, 7),
    (b"random", Device::Random, 8),
    (b"urandom", Device::Urandom, 9),
];

/// The links every /dev has (udev and systemd make them): name and target.
const LINKS: [(&[u8], &[u8]); 4] = [
    (b"fd", b"/proc/self/fd"),
    (b"stdin", b"/proc/self/fd/0"),
    (b"stdout", b"/proc/self/fd/1"),
    (b"stderr", b"/proc/self/fd/2"),
];
const LINK_INO: u64 = 200;

/// The root directory of a devfs instance.
pub fn root() -> Arc<dyn Inode> {
    Arc::new(DevDir)
}

fn stat(ino: u64, mode: u32, rdev: u64, nlink: u64) -> Stat {
    Stat {
        st_dev: DEV,
        st_ino: ino,
        st_nlink: nlink,
        st_mode: mode,
        st_rdev: rdev,
        st_blksize: 4096,
        ..Stat::default()
    }
}

struct DevDir;

impl Inode for DevDir {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat(ROOT_INO, S_IFDIR | 0o755, 0, 3))
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(NoOps))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        if name == b"shm" {
            return Ok(Arc::new(ShmDir));
        }
        if let Some(i) = LINKS.iter().position(|(n, _)| *n == name) {
            return Ok(Arc::new(DevLink(i)));
        }
        let &(_, device, minor) = DEVICES
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or(Errno::ENOENT)?;
        Ok(Arc::new(DevNode { device, minor }))
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let shm = DirEntry {
            name: b"shm".to_vec(),
            ino: SHM_INO,
            dtype: dtype(S_IFDIR),
        };
        Ok(DEVICES
            .iter()
            .map(|&(name, _, minor)| DirEntry {
                name: name.to_vec(),
                ino: ROOT_INO + minor,
                dtype: dtype(S_IFCHR),
            })
            .chain(std::iter::once(shm))
            .chain(LINKS.iter().enumerate().map(|(i, (name, _))| DirEntry {
                name: name.to_vec(),
                ino: LINK_INO + i as u64,
                dtype: dtype(S_IFLNK),
            }))
            .collect())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The empty directory /dev/shm is mounted on.
struct ShmDir;

impl Inode for ShmDir {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat(SHM_INO, S_IFDIR | 0o1777, 0, 2))
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(NoOps))
    }

    fn lookup(&self, _name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::ENOENT)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Ok(Vec::new())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One of `LINKS`, by index.
struct DevLink(usize);

impl Inode for DevLink {
    fn stat(&self) -> Result<Stat, Errno> {
        let target = LINKS[self.0].1;
        Ok(Stat {
            st_size: target.len() as i64,
            ..stat(LINK_INO + self.0 as u64, S_IFLNK | 0o777, 0, 1)
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ELOOP)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        Ok(LINKS[self.0].1.to_vec())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct DevNode {
    device: Device,
    minor: u64,
}

impl Inode for DevNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let rdev = makedev(MEM_MAJOR, self.minor);
        Ok(stat(ROOT_INO + self.minor, S_IFCHR | 0o666, rdev, 1))
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(DevFile(self.device)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Opens the memory device `rdev` names (a device node made elsewhere):
/// ENXIO for any other device.
pub fn open_device(rdev: u64) -> Result<Box<dyn FileOps>, Errno> {
    DEVICES
        .iter()
        .find(|&&(_, _, minor)| makedev(MEM_MAJOR, minor) == rdev)
        .map(|&(_, device, _)| Box::new(DevFile(device)) as Box<dyn FileOps>)
        .ok_or(Errno::ENXIO)
}

struct DevFile(Device);

impl FileOps for DevFile {
    /// Of the memory devices only /dev/random polls on Linux (always ready
    /// once the host's pool is).
    fn pollable(&self) -> bool {
        self.0 == Device::Random
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        match self.0 {
            Device::Null => Ok(0),
            Device::Zero | Device::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            // The host's entropy; getrandom is one of the host calls the
            // sentry may make.
            Device::Random | Device::Urandom => {
                rustix::rand::getrandom(buf, rustix::rand::GetRandomFlags::empty())
                    .map_err(crate::host_errno)
            }
        }
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> Result<usize, Errno> {
        match self.0 {
            Device::Full => Err(Errno::ENOSPC),
            _ => Ok(buf.len()),
        }
    }
}
