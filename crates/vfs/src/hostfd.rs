//! Open files over host FDs the sentry was handed: the caller's stdin,
//! stdout and stderr. Data goes to the host FD at its own position (shared
//! with the caller, as for any inherited descriptor); of the ioctls, only a
//! short list of terminal ones reach it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use linux_raw_sys::ioctl::{FIONREAD, TCGETS, TCSETS, TCSETSF, TCSETSW, TIOCGWINSZ, TIOCSWINSZ};
use rustix::fs::SeekFrom;
use veil_abi::mode::{S_IFDIR, S_IFMT, S_IFREG};
use veil_abi::{Errno, Stat, Termios, Timespec, Winsize};
use zerocopy::IntoBytes;

use crate::file::{FileOps, OpenFile, UserMem};
use crate::flags::{SEEK_CUR, SEEK_END, SEEK_SET};
use crate::inode::Inode;
use crate::vfs::PathRef;
use crate::wait::Waiter;
use crate::{host_call, host_errno};

impl OpenFile {
    /// An open file over host FD `fd`; `flags` are its status flags.
    pub fn from_host_fd(fd: OwnedFd, flags: i32) -> Arc<OpenFile> {
        let fd = Arc::new(fd);
        let inode = Arc::new(HostInode(fd.clone()));
        let file_type = inode.stat().map_or(0, |st| st.st_mode & S_IFMT);
        let path = PathRef::anonymous(b"host", inode);
        let tty = rustix::termios::isatty(&*fd);
        // Regular files and directories have no readiness of their own.
        let pollable = !matches!(file_type, S_IFREG | S_IFDIR);
        OpenFile::with_type(
            path,
            flags,
            file_type,
            Box::new(HostFile { fd, tty, pollable }),
        )
    }
}

struct HostInode(Arc<OwnedFd>);

impl Inode for HostInode {
    fn stat(&self) -> Result<Stat, Errno> {
        let st = rustix::fs::fstat(&*self.0).map_err(host_errno)?;
        // rustix's `Stat` is the kernel's, with unsigned times.
        let ts = |sec: u64, nsec: u64| Timespec {
            tv_sec: sec as i64,
            tv_nsec: nsec as i64,
        };
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
            st_atime: ts(st.st_atime, st.st_atime_nsec),
            st_mtime: ts(st.st_mtime, st.st_mtime_nsec),
            st_ctime: ts(st.st_ctime, st.st_ctime_nsec),
            ..Stat::default()
        })
    }

    /// Opened again through /proc/self/fd: another descriptor of the same
    /// host file (with its offset and status flags), as the sentry may not
    /// reopen host paths.
    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        let fd = rustix::io::dup(&*self.0).map_err(host_errno)?;
        let tty = rustix::termios::isatty(&fd);
        let file_type = self.stat().map_or(0, |st| st.st_mode & S_IFMT);
        let pollable = !matches!(file_type, S_IFREG | S_IFDIR);
        Ok(Box::new(HostFile {
            fd: Arc::new(fd),
            tty,
            pollable,
        }))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct HostFile {
    fd: Arc<OwnedFd>,
    /// Whether the FD is a terminal, as it was when handed over.
    tty: bool,
    pollable: bool,
}

impl HostFile {
    /// TCGETS and the TCSETS family, which take the kernel's `termios`.
    fn termios_ioctl(&self, cmd: u32, termios: &mut Termios) -> Result<(), Errno> {
        // SAFETY: `cmd` is TCGETS, TCSETS, TCSETSW or TCSETSF, each of which
        // reads or writes one kernel `struct termios` at the pointer, and
        // `termios` is exactly that struct, valid and exclusively borrowed
        // for the call; the FD is open while `self` lives.
        let r = unsafe {
            nix::libc::ioctl(self.fd.as_raw_fd(), cmd.into(), std::ptr::from_mut(termios))
        };
        if r < 0 {
            return Err(Errno::new(nix::errno::Errno::last_raw()));
        }
        Ok(())
    }
}

impl FileOps for HostFile {
    fn is_stream(&self) -> bool {
        true
    }

    /// The host FD's readiness right now; the host cannot wake our waiters.
    fn poll(&self, _waiter: Option<&Arc<Waiter>>) -> u32 {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&*self.fd, PollFlags::IN | PollFlags::OUT)];
        match poll(&mut fds, 0) {
            Ok(_) => u32::from(fds[0].revents().bits()),
            Err(_) => crate::wait::events::POLLERR,
        }
    }

    fn needs_repoll(&self) -> bool {
        true
    }

    fn wait_host(&self, events: u32, timeout: std::time::Duration) -> Option<u32> {
        use rustix::event::{poll, PollFd, PollFlags};
        let flags = PollFlags::from_bits_truncate(events as u16);
        let mut fds = [PollFd::new(&*self.fd, flags)];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        Some(match poll(&mut fds, ms) {
            Ok(_) => u32::from(fds[0].revents().bits()),
            Err(rustix::io::Errno::INTR) => 0,
            Err(_) => crate::wait::events::POLLERR,
        })
    }

    fn is_terminal(&self) -> bool {
        self.tty
    }

    fn terminal_lflag(&self) -> Result<u32, Errno> {
        let mut t = Termios::default();
        self.termios_ioctl(TCGETS, &mut t)?;
        Ok(t.c_lflag)
    }

    fn pollable(&self) -> bool {
        self.pollable
    }

    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        host_call(|| rustix::io::read(&*self.fd, &mut *buf))
    }

    fn write(&self, buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        host_call(|| rustix::io::write(&*self.fd, buf))
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        host_call(|| rustix::io::pread(&*self.fd, &mut *buf, off))
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        host_call(|| rustix::io::pwrite(&*self.fd, buf, off))
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        host_call(|| rustix::fs::ftruncate(&*self.fd, len))
    }

    fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        let pos = match whence {
            SEEK_SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::EINVAL)?),
            SEEK_CUR => SeekFrom::Current(offset),
            SEEK_END => SeekFrom::End(offset),
            _ => return Err(Errno::EINVAL),
        };
        rustix::fs::seek(&*self.fd, pos).map_err(host_errno)
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        let fd = self.fd.as_fd();
        match cmd {
            TCGETS => {
                let mut t = Termios::default();
                self.termios_ioctl(cmd, &mut t)?;
                mem.copy_out(arg, t.as_bytes())?;
            }
            TCSETS | TCSETSW | TCSETSF => {
                let mut t = Termios::default();
                mem.copy_in(arg, t.as_mut_bytes())?;
                self.termios_ioctl(cmd, &mut t)?;
            }
            TIOCGWINSZ => {
                let w = rustix::termios::tcgetwinsize(fd).map_err(host_errno)?;
                let w = Winsize {
                    ws_row: w.ws_row,
                    ws_col: w.ws_col,
                    ws_xpixel: w.ws_xpixel,
                    ws_ypixel: w.ws_ypixel,
                };
                mem.copy_out(arg, w.as_bytes())?;
            }
            TIOCSWINSZ => {
                let mut w = Winsize::default();
                mem.copy_in(arg, w.as_mut_bytes())?;
                let w = rustix::termios::Winsize {
                    ws_row: w.ws_row,
                    ws_col: w.ws_col,
                    ws_xpixel: w.ws_xpixel,
                    ws_ypixel: w.ws_ypixel,
                };
                rustix::termios::tcsetwinsize(fd, w).map_err(host_errno)?;
            }
            FIONREAD => {
                let n = rustix::io::ioctl_fionread(fd).map_err(host_errno)?;
                let n = i32::try_from(n).unwrap_or(i32::MAX);
                mem.copy_out(arg, n.as_bytes())?;
            }
            _ => return Err(Errno::ENOTTY),
        }
        Ok(0)
    }
}
