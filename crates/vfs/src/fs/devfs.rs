//! A minimal devfs, mounted on /dev: the memory devices every program
//! expects, with Linux's modes and device numbers, the fd, stdin, stdout
//! and stderr links into /proc/self/fd, empty `shm` and `pts` directories
//! for the sandbox to mount its /dev/shm and devpts on, `ptmx`, and `tty`
//! and `console`, whose opens the sentry redirects to the caller's
//! controlling terminal and to the host terminal.

use std::any::Any;
use std::sync::Arc;

use veil_abi::mode::{dtype, S_IFCHR, S_IFDIR, S_IFLNK};
use veil_abi::{Errno, Stat};

use super::devpts::{DevPts, TTYAUX_MAJOR};
use super::makedev;
use crate::file::{FileOps, NoOps};
use crate::inode::{DirEntry, Inode};

/// devtmpfs's device number on a typical Linux host.
const DEV: u64 = 5;
const ROOT_INO: u64 = 1;
/// The memory devices' major number.
const MEM_MAJOR: u64 = 1;
const SHM_INO: u64 = 100;
const PTS_INO: u64 = 101;
const PTMX_INO: u64 = 102;
/// /dev/tty's and /dev/console's minor numbers (major `TTYAUX_MAJOR`).
pub const TTY_MINOR: u64 = 0;
pub const CONSOLE_MINOR: u64 = 1;
/// Name, minor number and permission bits of the redirected terminals.
const TTYS: [(&[u8], u64, u32); 2] = [
    (b"tty", TTY_MINOR, 0o666),
    (b"console", CONSOLE_MINOR, 0o600),
];
const TTY_INO: u64 = 110;

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
pub fn root(devpts: &DevPts) -> Arc<dyn Inode> {
    Arc::new(DevDir {
        ptmx: devpts.ptmx(0o666, PTMX_INO, DEV),
    })
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

struct DevDir {
    ptmx: Arc<dyn Inode>,
}

impl Inode for DevDir {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat(ROOT_INO, S_IFDIR | 0o755, 0, 4))
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(NoOps))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        match name {
            b"shm" => return Ok(Arc::new(EmptyDir(SHM_INO, 0o1777))),
            b"pts" => return Ok(Arc::new(EmptyDir(PTS_INO, 0o755))),
            b"ptmx" => return Ok(self.ptmx.clone()),
            _ => {}
        }
        if let Some(&(_, minor, mode)) = TTYS.iter().find(|(n, _, _)| *n == name) {
            return Ok(Arc::new(TtyNode { minor, mode }));
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
        let dirs = [(&b"shm"[..], SHM_INO), (b"pts", PTS_INO)].map(|(name, ino)| DirEntry {
            name: name.to_vec(),
            ino,
            dtype: dtype(S_IFDIR),
        });
        let ptmx = DirEntry {
            name: b"ptmx".to_vec(),
            ino: PTMX_INO,
            dtype: dtype(S_IFCHR),
        };
        let ttys = TTYS.iter().map(|&(name, minor, _)| DirEntry {
            name: name.to_vec(),
            ino: TTY_INO + minor,
            dtype: dtype(S_IFCHR),
        });
        Ok(DEVICES
            .iter()
            .map(|&(name, _, minor)| DirEntry {
                name: name.to_vec(),
                ino: ROOT_INO + minor,
                dtype: dtype(S_IFCHR),
            })
            .chain(dirs)
            .chain(std::iter::once(ptmx))
            .chain(ttys)
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

/// An empty directory for a mount (/dev/shm, /dev/pts): inode number and
/// permission bits.
struct EmptyDir(u64, u32);

impl Inode for EmptyDir {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat(self.0, S_IFDIR | self.1, 0, 2))
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

/// /dev/tty or /dev/console. The sentry swaps an open of one for the
/// terminal it stands for; what is left unswapped has no terminal behind it.
struct TtyNode {
    minor: u64,
    mode: u32,
}

impl Inode for TtyNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let rdev = makedev(TTYAUX_MAJOR, self.minor);
        Ok(stat(TTY_INO + self.minor, S_IFCHR | self.mode, rdev, 1))
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(NoTty))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The placeholder a /dev/tty open leaves before the sentry swaps it.
struct NoTty;

impl FileOps for NoTty {
    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ENXIO)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ENXIO)
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
