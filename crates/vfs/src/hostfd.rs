//! Open files backed by host FDs the sentry was handed: the caller's stdio.
//! Only data transfer and a short list of terminal ioctls reach the host FD.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use veil_abi::{Errno, Stat, Termios, Timespec, Winsize};
use zerocopy::{FromBytes, IntoBytes};

use crate::file::{FileOps, OpenFile, UserMem};
use crate::vfs::{anon_inode, PathRef};

const TCGETS: u32 = 0x5401;
const TCSETS: u32 = 0x5402;
const TCSETSW: u32 = 0x5403;
const TCSETSF: u32 = 0x5404;
const TIOCGPGRP: u32 = 0x540f;
const TIOCSPGRP: u32 = 0x5410;
const TIOCGWINSZ: u32 = 0x5413;
const TIOCSWINSZ: u32 = 0x5414;
const FIONREAD: u32 = 0x541b;
/// The sandbox's foreground process group: its init process.
const SANDBOX_PGRP: i32 = 1;

struct HostFile {
    fd: OwnedFd,
}

impl OpenFile {
    /// Wraps a host FD; `flags` are its open(2) status flags.
    pub fn from_host_fd(fd: OwnedFd, flags: i32) -> Arc<OpenFile> {
        let path = PathRef::anonymous(b"host", anon_inode());
        OpenFile::new(path, flags, Box::new(HostFile { fd }))
    }
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::new(e.raw_os_error())
}

impl HostFile {
    /// Performs a whitelisted ioctl whose argument is a `T` in and/or out.
    fn ioctl_struct<T: FromBytes + IntoBytes>(&self, cmd: u32, arg: &mut T) -> Result<u64, Errno> {
        use std::os::fd::AsRawFd;
        // SAFETY: `cmd` is one of the terminal ioctls above, each of which
        // reads or writes exactly one `T` at the pointer; `arg` is a valid,
        // exclusively borrowed `T` for the duration of the call, and the FD
        // is open for as long as `self` lives.
        let r = unsafe { nix::libc::ioctl(self.fd.as_raw_fd(), cmd as _, std::ptr::from_mut(arg)) };
        if r < 0 {
            return Err(Errno::new(nix::errno::Errno::last_raw()));
        }
        Ok(r as u64)
    }
}

impl FileOps for HostFile {
    // The host FD's own position is shared with whoever else holds it
    // (the caller's shell), so reads, writes and seeks use it directly.
    fn is_stream(&self) -> bool {
        true
    }

    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        rustix::io::read(&self.fd, buf).map_err(errno)
    }

    fn write(&self, buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        rustix::io::write(&self.fd, buf).map_err(errno)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        rustix::io::pread(&self.fd, buf, off).map_err(errno)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        rustix::io::pwrite(&self.fd, buf, off).map_err(errno)
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        rustix::fs::ftruncate(&self.fd, len).map_err(errno)
    }

    fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        let pos = match whence {
            0 => rustix::fs::SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::EINVAL)?),
            1 => rustix::fs::SeekFrom::Current(offset),
            2 => rustix::fs::SeekFrom::End(offset),
            _ => return Err(Errno::EINVAL),
        };
        rustix::fs::seek(&self.fd, pos).map_err(errno)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let st = rustix::fs::fstat(&self.fd).map_err(errno)?;
        Ok(Stat {
            st_dev: st.st_dev,
            st_ino: st.st_ino,
            st_nlink: st.st_nlink,
            st_mode: st.st_mode,
            st_uid: st.st_uid,
            st_gid: st.st_gid,
            st_rdev: st.st_rdev,
            st_size: st.st_size,
            st_blksize: st.st_blksize,
            st_blocks: st.st_blocks,
            st_atime: Timespec {
                tv_sec: st.st_atime as i64,
                tv_nsec: st.st_atime_nsec as i64,
            },
            st_mtime: Timespec {
                tv_sec: st.st_mtime as i64,
                tv_nsec: st.st_mtime_nsec as i64,
            },
            st_ctime: Timespec {
                tv_sec: st.st_ctime as i64,
                tv_nsec: st.st_ctime_nsec as i64,
            },
            ..Stat::default()
        })
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        match cmd {
            TCGETS => {
                let mut t = Termios::default();
                self.ioctl_struct(cmd, &mut t)?;
                mem.copy_out(arg, t.as_bytes()).map(|()| 0)
            }
            TCSETS | TCSETSW | TCSETSF => {
                let mut t = Termios::default();
                mem.copy_in(arg, t.as_mut_bytes())?;
                self.ioctl_struct(cmd, &mut t)
            }
            TIOCGWINSZ => {
                let mut w = Winsize::default();
                self.ioctl_struct(cmd, &mut w)?;
                mem.copy_out(arg, w.as_bytes()).map(|()| 0)
            }
            TIOCSWINSZ => {
                let mut w = Winsize::default();
                mem.copy_in(arg, w.as_mut_bytes())?;
                self.ioctl_struct(cmd, &mut w)
            }
            FIONREAD => {
                let mut n = 0i32;
                self.ioctl_struct(cmd, &mut n)?;
                mem.copy_out(arg, n.as_bytes()).map(|()| 0)
            }
            // Job control stays inside the sandbox: the host terminal's
            // process groups mean nothing here.
            TIOCGPGRP => {
                self.require_tty()?;
                mem.copy_out(arg, SANDBOX_PGRP.as_bytes()).map(|()| 0)
            }
            TIOCSPGRP => {
                self.require_tty()?;
                let mut pgrp = 0i32;
                mem.copy_in(arg, pgrp.as_mut_bytes())?;
                if pgrp == SANDBOX_PGRP {
                    Ok(0)
                } else {
                    Err(Errno::EPERM)
                }
            }
            _ => Err(Errno::ENOTTY),
        }
    }
}

impl HostFile {
    fn require_tty(&self) -> Result<(), Errno> {
        if rustix::termios::isatty(&self.fd) {
            Ok(())
        } else {
            Err(Errno::ENOTTY)
        }
    }
}
