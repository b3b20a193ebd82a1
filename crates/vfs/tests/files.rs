//! Open file descriptions, getdents64, the FD table, devfs, pipes and host
//! FDs.
#![allow(clippy::unwrap_used)] // A test's failure is a panic.

mod common;

use std::os::fd::OwnedFd;
use std::sync::Arc;

use common::*;
use veil_abi::mode::{S_IFCHR, S_IFIFO, S_IFMT};
use veil_abi::Errno;
use veil_vfs::fs::{devfs, memfs::MemFs};
use veil_vfs::{new_pipe, FdTable, OpenFile, UserMem, Vfs};

fn memfs() -> Fs {
    Fs::new(Vfs::new(MemFs::new(1 << 20, memfile()).root()))
}

const SEEK_SET: u32 = 0;
const SEEK_CUR: u32 = 1;
const SEEK_END: u32 = 2;
const SEEK_DATA: u32 = 3;
const SEEK_HOLE: u32 = 4;

#[test]
fn open_creates_truncates_and_appends() {
    let fs = memfs();
    let f = fs.open("/f", O_RDWR | O_CREAT | O_EXCL).unwrap();
    assert_eq!(
        fs.open("/f", O_RDWR | O_CREAT | O_EXCL).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(f.write(b"hello world").unwrap(), 11);
    assert_eq!(f.seek(0, SEEK_SET).unwrap(), 0);
    let mut buf = [0u8; 5];
    assert_eq!(f.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    // Duplicates share the offset; pread and pwrite leave it alone.
    let mut two = [0u8; 2];
    assert_eq!(f.pread(&mut two, 9).unwrap(), 2);
    assert_eq!(&two, b"ld");
    assert_eq!(f.seek(0, SEEK_CUR).unwrap(), 5);

    let app = fs.open("/f", O_WRONLY | O_APPEND).unwrap();
    app.write(b"!").unwrap();
    assert_eq!(app.pwrite(b"?", 0).unwrap(), 1);
    assert_eq!(fs.read("/f").unwrap(), b"hello world!?");

    // O_TRUNC empties even a read-only open, which needs write permission.
    fs.open("/f", O_RDONLY | O_TRUNC).unwrap();
    assert_eq!(fs.read("/f").unwrap(), b"");
    // A file made here is open as asked whatever its mode.
    let made = fs
        .vfs
        .open(
            &fs.ctx,
            &fs.ctx.root,
            b"/ro",
            O_RDWR | O_CREAT,
            0o444,
            &fs.creds,
        )
        .unwrap();
    assert_eq!(made.write(b"x").unwrap(), 1);
    assert_eq!(made.stat().unwrap().st_mode & 0o777, 0o444);
    // The umask applies.
    let mut fs = fs;
    fs.ctx.umask = 0o077;
    fs.open("/private", O_CREAT | O_WRONLY).unwrap();
    assert_eq!(
        fs.lookup("/private").unwrap().stat().unwrap().st_mode & 0o777,
        0o600
    );
}

#[test]
fn open_checks_types_and_access_modes() {
    let fs = memfs();
    fs.mkdir("/d").unwrap();
    fs.write("/f", b"data").unwrap();
    fs.symlink("f", "/link").unwrap();
    fs.symlink("new", "/dangling").unwrap();
    assert_eq!(
        fs.open("/f", O_RDONLY | O_DIRECTORY).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(fs.open("/d", O_WRONLY).err(), Some(Errno::EISDIR));
    assert_eq!(fs.open("/d", O_RDONLY | O_CREAT).err(), Some(Errno::EISDIR));
    assert_eq!(
        fs.open("/new/", O_RDWR | O_CREAT).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(fs.open("/f", 3).err(), Some(Errno::EINVAL));
    assert_eq!(
        fs.open("/link", O_RDONLY | O_NOFOLLOW).err(),
        Some(Errno::ELOOP)
    );
    assert_eq!(
        fs.open("/link", O_RDONLY).unwrap().stat().unwrap().st_size,
        4
    );
    // O_CREAT through a dangling symlink creates its target, unless O_EXCL.
    assert_eq!(
        fs.open("/dangling", O_CREAT | O_EXCL | O_WRONLY).err(),
        Some(Errno::EEXIST)
    );
    fs.open("/dangling", O_CREAT | O_WRONLY).unwrap();
    assert!(fs.lookup("/new").is_ok());

    let d = fs.open("/d", O_RDONLY).unwrap();
    assert_eq!(d.read(&mut [0u8; 4]).err(), Some(Errno::EISDIR));
    let ro = fs.open("/f", O_RDONLY).unwrap();
    assert_eq!(ro.write(b"x").err(), Some(Errno::EBADF));
    assert_eq!(ro.truncate(0).err(), Some(Errno::EINVAL));
    let wo = fs.open("/f", O_WRONLY).unwrap();
    assert_eq!(wo.read(&mut [0u8; 4]).err(), Some(Errno::EBADF));
    wo.truncate(2).unwrap();
    assert_eq!(fs.read("/f").unwrap(), b"da");
    assert_eq!(ro.getdents64(4096).err(), Some(Errno::ENOTDIR));

    // O_PATH names the file without opening it, a symlink too.
    let p = fs.open("/link", O_PATH | O_NOFOLLOW).unwrap();
    assert_eq!(p.stat().unwrap().st_mode & S_IFMT, veil_abi::mode::S_IFLNK);
    assert_eq!(p.read(&mut [0u8; 1]).err(), Some(Errno::EBADF));
    assert_eq!(p.write(b"x").err(), Some(Errno::EBADF));
    assert_eq!(p.seek(0, SEEK_SET).err(), Some(Errno::EBADF));
    assert_eq!(p.flags() & O_PATH, O_PATH);
    assert_eq!(
        fs.open("/f", O_PATH | O_DIRECTORY).err(),
        Some(Errno::ENOTDIR)
    );
}

#[test]
fn status_flags() {
    let fs = memfs();
    let f = fs.open("/f", O_RDWR | O_CREAT | O_EXCL).unwrap();
    assert_eq!(f.flags() & (O_CREAT | O_EXCL), 0);
    f.set_flags(O_APPEND | O_NONBLOCK | O_WRONLY);
    // The access mode stays.
    assert_eq!(
        f.flags() & (3 | O_APPEND | O_NONBLOCK),
        O_RDWR | O_APPEND | O_NONBLOCK
    );
}

#[test]
fn seek() {
    let fs = memfs();
    fs.write("/f", b"0123456789").unwrap();
    let f = fs.open("/f", O_RDONLY).unwrap();
    assert_eq!(f.seek(-3, SEEK_END).unwrap(), 7);
    assert_eq!(f.seek(2, SEEK_CUR).unwrap(), 9);
    assert_eq!(f.seek(-10, SEEK_CUR).err(), Some(Errno::EINVAL));
    assert_eq!(f.seek(100, SEEK_SET).unwrap(), 100);
    assert_eq!(f.read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(f.seek(i64::MAX, SEEK_CUR).err(), Some(Errno::EINVAL));
    assert_eq!(f.seek(3, SEEK_DATA).unwrap(), 3);
    assert_eq!(f.seek(3, SEEK_HOLE).unwrap(), 10);
    assert_eq!(f.seek(10, SEEK_DATA).err(), Some(Errno::ENXIO));
    assert_eq!(f.seek(0, 99).err(), Some(Errno::EINVAL));
    let w = fs.open("/f", O_WRONLY).unwrap();
    assert_eq!(w.pwrite(b"x", i64::MAX as u64).err(), Some(Errno::EFBIG));
}

#[test]
fn getdents64_lays_records_out_as_linux() {
    let fs = memfs();
    fs.mkdir("/d").unwrap();
    fs.mkdir("/d/sub").unwrap();
    fs.write("/d/file", b"").unwrap();
    fs.symlink("x", "/d/link").unwrap();
    let d = fs.open("/d", O_RDONLY | O_DIRECTORY).unwrap();
    let all = dirents(&d, 4096).unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(&names[..2], [".", ".."]);
    let mut rest = names[2..].to_vec();
    rest.sort();
    assert_eq!(rest, ["file", "link", "sub"]);
    // d_off is the offset of the next entry; types and inodes are right.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.off, i as i64 + 1);
        assert_eq!(e.reclen, (19 + e.name.len() + 1).next_multiple_of(8));
    }
    let root_ino = fs.lookup("/").unwrap().stat().unwrap().st_ino;
    let d_ino = fs.lookup("/d").unwrap().stat().unwrap().st_ino;
    assert_eq!((all[0].ino, all[0].dtype), (d_ino, 4));
    assert_eq!((all[1].ino, all[1].dtype), (root_ino, 4));
    let by_name = |n: &str| all.iter().find(|e| e.name == n).cloned().unwrap();
    assert_eq!(by_name("file").dtype, 8);
    assert_eq!(by_name("link").dtype, 10);
    assert_eq!(
        by_name("sub").ino,
        fs.lookup("/d/sub").unwrap().stat().unwrap().st_ino
    );

    // Small buffers continue where the last call stopped.
    d.seek(0, SEEK_SET).unwrap();
    assert_eq!(dirents(&d, 24).unwrap(), all);
    d.seek(0, SEEK_SET).unwrap();
    assert_eq!(d.getdents64(23).err(), Some(Errno::EINVAL));
    assert_eq!(d.getdents64(0).err(), Some(Errno::EINVAL));
    // Seeking to an entry's d_off resumes after it.
    d.seek(all[2].off, SEEK_SET).unwrap();
    assert_eq!(dirents(&d, 4096).unwrap(), all[3..]);
    assert_eq!(d.seek(0, SEEK_END).err(), Some(Errno::EINVAL));
}

#[test]
fn getdents64_sees_a_rewound_directory_afresh() {
    let fs = memfs();
    fs.mkdir("/d").unwrap();
    let d = fs.open("/d", O_RDONLY).unwrap();
    assert_eq!(dirents(&d, 4096).unwrap().len(), 2);
    fs.write("/d/new", b"").unwrap();
    assert_eq!(d.getdents64(4096).unwrap(), b"");
    d.seek(0, SEEK_SET).unwrap();
    assert_eq!(dirents(&d, 4096).unwrap().len(), 3);
}

#[test]
fn unlinked_files_stay_readable_while_open() {
    let fs = memfs();
    fs.write("/f", b"kept").unwrap();
    let f = fs.open("/f", O_RDONLY).unwrap();
    assert_eq!(f.stat().unwrap().st_nlink, 1);
    fs.unlink("/f").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(f.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"kept");
    assert_eq!(f.stat().unwrap().st_nlink, 0);
}

#[test]
fn memfs_enforces_its_size_limit() {
    let fs = Fs::new(Vfs::new(MemFs::new(10, memfile()).root()));
    let f = fs.open("/f", O_RDWR | O_CREAT).unwrap();
    assert_eq!(f.write(&[1; 10]).unwrap(), 10);
    assert_eq!(f.write(&[1]).err(), Some(Errno::ENOSPC));
    assert_eq!(f.pwrite(&[1], 1 << 40).err(), Some(Errno::ENOSPC));
    f.truncate(5).unwrap();
    assert_eq!(f.pwrite(&[2; 5], 5).unwrap(), 5);
    // Space comes back when the last reference goes.
    fs.unlink("/f").unwrap();
    drop(f);
    fs.write("/g", &[3; 10]).unwrap();
}

fn open_file(fs: &Fs) -> Arc<OpenFile> {
    fs.open("/", O_RDONLY).unwrap()
}

#[test]
fn fd_table() {
    const MAX: usize = veil_vfs::DEFAULT_NOFILE as usize;
    let fs = memfs();
    let t = FdTable::new();
    let (a, b) = (open_file(&fs), open_file(&fs));
    assert_eq!(t.insert(a.clone(), false, 0, MAX), Ok(0));
    assert_eq!(t.insert(b.clone(), true, 0, MAX), Ok(1));
    assert_eq!(t.insert(a.clone(), false, 5, MAX), Ok(5));
    assert_eq!(t.insert(a.clone(), false, 0, MAX), Ok(2));
    assert!(Arc::ptr_eq(&t.get(1).unwrap(), &b));
    assert_eq!(t.get(3).err(), Some(Errno::EBADF));
    assert_eq!(t.get(-1).err(), Some(Errno::EBADF));
    assert_eq!(t.get_cloexec(1), Ok(true));
    t.set_cloexec(1, false).unwrap();
    assert_eq!(t.get_cloexec(1), Ok(false));
    assert_eq!(t.set_cloexec(9, true).err(), Some(Errno::EBADF));
    // dup2 onto a used descriptor replaces it.
    t.insert_at(0, b.clone(), true, MAX).unwrap();
    assert!(Arc::ptr_eq(&t.get(0).unwrap(), &b));
    assert!(Arc::ptr_eq(&t.remove(0).unwrap(), &b));
    assert_eq!(t.remove(0).err(), Some(Errno::EBADF));
    assert_eq!(t.insert(a.clone(), false, 0, MAX), Ok(0));

    // The caller's limit bounds new descriptors.
    assert_eq!(t.insert(a.clone(), false, 0, 6), Ok(3));
    assert_eq!(t.insert(a.clone(), false, 0, 6), Ok(4));
    assert_eq!(t.insert(a.clone(), false, 0, 6).err(), Some(Errno::EMFILE));
    assert_eq!(t.insert(a.clone(), false, 6, 6).err(), Some(Errno::EINVAL));
    assert_eq!(t.insert(a.clone(), false, -1, 6).err(), Some(Errno::EINVAL));
    assert_eq!(
        t.insert_at(6, a.clone(), false, 6).err(),
        Some(Errno::EBADF)
    );

    // fork copies; exec closes the close-on-exec ones.
    t.set_cloexec(4, true).unwrap();
    let child = t.fork_copy();
    t.close_on_exec();
    assert_eq!(t.get(4).err(), Some(Errno::EBADF));
    assert!(t.get(3).is_ok());
    assert!(child.get(4).is_ok());
    child.close_range(1, 3, true);
    assert_eq!(child.get_cloexec(2), Ok(true));
    child.close_range(2, u32::MAX, false);
    assert!(child.get(1).is_ok());
    assert_eq!(child.get(2).err(), Some(Errno::EBADF));
    assert_eq!(child.get(5).err(), Some(Errno::EBADF));
}

#[test]
fn devfs_devices() {
    let fs = memfs();
    fs.mkdir("/dev").unwrap();
    let at = fs.lookup("/dev").unwrap();
    let devpts = veil_vfs::fs::devpts::DevPts::default();
    fs.vfs.mount(&at, devfs::root(&devpts)).unwrap();
    assert_eq!(
        fs.list("/dev").unwrap(),
        [
            ".", "..", "console", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr",
            "stdin", "stdout", "tty", "urandom", "zero"
        ]
    );
    let shm = fs.lookup("/dev/shm").unwrap().stat().unwrap();
    assert_eq!(shm.st_mode, veil_abi::mode::S_IFDIR | 0o1777);
    let rdev = |name: &str| {
        let st = fs.lookup(name).unwrap().stat().unwrap();
        assert_eq!(st.st_mode, S_IFCHR | 0o666);
        st.st_rdev
    };
    assert_eq!(rdev("/dev/null"), (1 << 8) | 3);
    assert_eq!(rdev("/dev/zero"), (1 << 8) | 5);
    assert_eq!(rdev("/dev/full"), (1 << 8) | 7);
    assert_eq!(rdev("/dev/random"), (1 << 8) | 8);
    assert_eq!(rdev("/dev/urandom"), (1 << 8) | 9);
    assert_eq!(rdev("/dev/ptmx"), (5 << 8) | 2);
    assert_eq!(rdev("/dev/tty"), 5 << 8);

    let null = fs.open("/dev/null", O_RDWR | O_TRUNC).unwrap();
    assert_eq!(null.read(&mut [1u8; 8]).unwrap(), 0);
    assert_eq!(null.write(b"gone").unwrap(), 4);
    let zero = fs.open("/dev/zero", O_RDWR).unwrap();
    let mut buf = [1u8; 64];
    assert_eq!(zero.read(&mut buf).unwrap(), 64);
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(zero.write(b"x").unwrap(), 1);
    let full = fs.open("/dev/full", O_RDWR).unwrap();
    assert_eq!(full.write(b"x").err(), Some(Errno::ENOSPC));
    assert_eq!(full.read(&mut buf).unwrap(), 64);
    let random = fs.open("/dev/urandom", O_RDONLY).unwrap();
    let (mut r1, mut r2) = ([0u8; 32], [0u8; 32]);
    assert_eq!(random.read(&mut r1).unwrap(), 32);
    assert_eq!(random.read(&mut r2).unwrap(), 32);
    assert_ne!(r1, r2);
    assert_eq!(null.truncate(0).err(), Some(Errno::EINVAL));
    assert_eq!(fs.mkdir("/dev/x").err(), Some(Errno::EPERM));
    assert_eq!(
        fs.open("/dev/x", O_CREAT | O_RDWR).err(),
        Some(Errno::EACCES)
    );
    assert_eq!(fs.unlink("/dev/null").err(), Some(Errno::EPERM));
}

/// Application memory as a flat buffer at address 0.
struct Mem(std::sync::Mutex<Vec<u8>>);

impl UserMem for Mem {
    fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let mem = self.0.lock().unwrap();
        let src = mem
            .get(addr as usize..addr as usize + buf.len())
            .ok_or(Errno::EFAULT)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn copy_out(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut mem = self.0.lock().unwrap();
        let dst = mem
            .get_mut(addr as usize..addr as usize + buf.len())
            .ok_or(Errno::EFAULT)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

const FIONREAD: u32 = 0x541b;

#[test]
fn pipes() {
    let (r, w) = new_pipe(O_NONBLOCK);
    assert_eq!(r.stat().unwrap().st_mode & S_IFMT, S_IFIFO);
    assert_eq!(r.read(&mut [0u8; 4]).err(), Some(Errno::EAGAIN));
    assert_eq!(w.read(&mut [0u8; 4]).err(), Some(Errno::EBADF));
    assert_eq!(r.write(b"x").err(), Some(Errno::EBADF));
    assert_eq!(w.write(b"hello").unwrap(), 5);
    let mem = Mem(std::sync::Mutex::new(vec![0; 8]));
    assert_eq!(r.ioctl(FIONREAD, 0, &mem), Ok(0));
    assert_eq!(mem.0.lock().unwrap()[..4], 5i32.to_ne_bytes());
    assert_eq!(r.seek(0, SEEK_SET).err(), Some(Errno::ESPIPE));
    assert_eq!(r.pread(&mut [0u8; 1], 0).err(), Some(Errno::ESPIPE));
    let mut buf = [0u8; 3];
    assert_eq!(r.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf, b"hel");
    // Nonblocking writes fill the pipe's sixteen page slots, then stop; the
    // write's tail joined the first page, as on Linux.
    let big = vec![7u8; 100_000];
    let n = w.write(&big).unwrap();
    assert_eq!(n, 1696 + 15 * 4096);
    assert_eq!(w.write(b"x").err(), Some(Errno::EAGAIN));
    // Reading part of a page frees no slot.
    r.read(&mut [0u8; 10]).unwrap();
    assert_eq!(w.write(&[1; 10]).err(), Some(Errno::EAGAIN));
    // Readers see end of file once every writer is gone; writers EPIPE.
    drop(w);
    let mut sink = vec![0u8; 1 << 17];
    assert_eq!(r.read(&mut sink).unwrap(), n + 2 - 10);
    assert_eq!(r.read(&mut sink).unwrap(), 0);
    let (r, w) = new_pipe(0);
    drop(r);
    assert_eq!(w.write(b"x").err(), Some(Errno::EPIPE));
}

#[test]
fn blocking_pipes_wait_for_the_other_end() {
    let (r, w) = new_pipe(0);
    let writer = std::thread::spawn(move || {
        let data = vec![9u8; 200_000];
        assert_eq!(w.write(&data).unwrap(), data.len());
    });
    let mut total = 0;
    let mut buf = vec![0u8; 7000];
    loop {
        match r.read(&mut buf).unwrap() {
            0 => break,
            n => total += n,
        }
    }
    assert_eq!(total, 200_000);
    writer.join().unwrap();
}

fn host_file(contents: &[u8]) -> OwnedFd {
    use std::io::{Seek, Write};
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(contents).unwrap();
    f.rewind().unwrap();
    f.into()
}

#[test]
fn host_fds_use_their_own_position() {
    let fd = host_file(b"host data");
    let dup = fd.try_clone().unwrap();
    let f = OpenFile::from_host_fd(fd, O_RDWR);
    let mut buf = [0u8; 4];
    assert_eq!(f.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"host");
    // The position is the host FD's, shared with whoever else holds it.
    assert_eq!(
        rustix::fs::seek(&dup, rustix::fs::SeekFrom::Current(0)).unwrap(),
        4
    );
    assert_eq!(f.seek(1, SEEK_CUR).unwrap(), 5);
    assert_eq!(f.pread(&mut buf, 5).unwrap(), 4);
    assert_eq!(&buf, b"data");
    assert_eq!(f.stat().unwrap().st_size, 9);
    assert_eq!(f.write(b"!").unwrap(), 1);
    f.truncate(4).unwrap();
    assert_eq!(rustix::fs::fstat(&dup).unwrap().st_size, 4);
    // Not a terminal: the terminal ioctls say so, others are refused.
    assert!(!f.is_terminal());
    let mem = Mem(std::sync::Mutex::new(vec![0; 64]));
    for cmd in [0x5401, 0x5413, 0x540f] {
        assert_eq!(f.ioctl(cmd, 0, &mem).err(), Some(Errno::ENOTTY));
    }
    assert_eq!(f.ioctl(0x1234, 0, &mem).err(), Some(Errno::ENOTTY));
    assert_eq!(f.getdents64(4096).err(), Some(Errno::ENOTDIR));
}

#[test]
fn host_terminals_answer_terminal_ioctls() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let f = OpenFile::from_host_fd(pty.slave, O_RDWR);
    let mem = Mem(std::sync::Mutex::new(vec![0; 64]));
    // TCGETS then TCSETS round trip the kernel's termios (36 bytes).
    assert_eq!(f.ioctl(0x5401, 0, &mem), Ok(0));
    assert_eq!(f.ioctl(0x5402, 0, &mem), Ok(0));
    // TIOCSWINSZ then TIOCGWINSZ.
    mem.0.lock().unwrap()[..8].copy_from_slice(&[24, 0, 80, 0, 0, 0, 0, 0]);
    assert_eq!(f.ioctl(0x5414, 0, &mem), Ok(0));
    mem.0.lock().unwrap()[..8].fill(0);
    assert_eq!(f.ioctl(0x5413, 0, &mem), Ok(0));
    assert_eq!(mem.0.lock().unwrap()[..4], [24, 0, 80, 0]);
    // Job control is the sentry's: the host's process groups never show.
    assert!(f.is_terminal());
    assert_eq!(f.ioctl(0x540f, 8, &mem), Err(Errno::ENOTTY));
    assert_eq!(f.terminal_lflag().map(|_| ()), Ok(()));
    assert_eq!(f.ioctl(FIONREAD, 16, &mem), Ok(0));
    // Faults in application memory are reported.
    assert_eq!(f.ioctl(0x5401, 1 << 20, &mem), Err(Errno::EFAULT));
    assert_eq!(f.seek(0, SEEK_SET).err(), Some(Errno::ESPIPE));
}
