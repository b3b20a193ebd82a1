//! The root overlay over a real gofer serving a temporary directory: the
//! sandbox writes, removes and renames, and the directory on disk never
//! changes.
#![allow(clippy::unwrap_used)] // A test's failure is a panic.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use common::*;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use veil_abi::Errno;
use veil_gofer::GoferClient;
use veil_vfs::fs::memfs::MemFs;
use veil_vfs::mount::{FsKind, MountConfig, MountKind, Superblock};
use veil_vfs::Vfs;

/// The sandbox's view of a host directory, and the gofer serving it.
struct Sandbox {
    fs: Option<Fs>,
    gofer: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
    before: BTreeMap<String, String>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["etc", "bin", "data/dir", "data/empty", "proc"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(p.join("etc/passwd"), "root:x:0:0\n").unwrap();
        std::fs::write(p.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(p.join("bin/busybox"), "ELF").unwrap();
        std::fs::set_permissions(p.join("bin/busybox"), PermissionsExt::from_mode(0o755)).unwrap();
        symlink("busybox", p.join("bin/sh")).unwrap();
        std::fs::write(p.join("data/dir/inner.txt"), "inner").unwrap();
        std::fs::write(p.join("data/file.txt"), "file").unwrap();
        std::fs::write(p.join("proc/leak"), "host proc").unwrap();
        let before = snapshot(p);

        let (client, server) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let root = veil_gofer::open_root(p).unwrap();
        let gofer = std::thread::spawn(move || veil_gofer::serve(root, server, false).unwrap());
        let vfs =
            Vfs::with_gofer_root(Arc::new(GoferClient::new(client)), true, memfile()).unwrap();
        // `veil do`'s tree, with empty directories for what the sentry
        // provides (proc, sysfs).
        for m in MountConfig::default_tree().mounts {
            let fs = match m.kind {
                MountKind::Proc | MountKind::Sysfs => (
                    MemFs::new(0, memfile()).root(),
                    Superblock::new(FsKind::Other, b"none", b""),
                ),
                ref kind => vfs.new_fs(kind, &[], &memfile()).unwrap(),
            };
            vfs.mount_entry(&vfs.root(), &m.destination, m.flags, fs)
                .unwrap();
        }
        Sandbox {
            fs: Some(Fs::new(vfs)),
            gofer: Some(gofer),
            dir,
            before,
        }
    }

    fn fs(&self) -> &Fs {
        self.fs.as_ref().unwrap()
    }

    fn host_ino(&self, path: &str) -> u64 {
        std::fs::symlink_metadata(self.dir.path().join(path))
            .unwrap()
            .ino()
    }

    fn ino(&self, path: &str) -> u64 {
        let p = self
            .fs()
            .vfs
            .lookup(&self.fs().ctx, &self.fs().ctx.root, path.as_bytes(), false)
            .unwrap();
        p.stat().unwrap().st_ino
    }
}

impl Drop for Sandbox {
    /// Closes the gofer connection, then checks the host tree is untouched.
    fn drop(&mut self) {
        drop(self.fs.take());
        if let Some(gofer) = self.gofer.take() {
            gofer.join().unwrap();
        }
        if !std::thread::panicking() {
            assert_eq!(
                snapshot(self.dir.path()),
                self.before,
                "the host tree changed"
            );
        }
    }
}

/// Every file under `root`: its type, mode, size, times and contents.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let body = if m.is_dir() {
                stack.push(path.clone());
                String::new()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&path).unwrap().display().to_string()
            } else {
                std::fs::read_to_string(&path).unwrap()
            };
            let key = path.strip_prefix(root).unwrap().display().to_string();
            let meta = format!(
                "{:o} {} {} {} {body}",
                m.mode(),
                m.size(),
                m.mtime(),
                m.ino()
            );
            out.insert(key, meta);
        }
    }
    let m = std::fs::metadata(root).unwrap();
    out.insert(".".into(), format!("{:o} {}", m.mode(), m.mtime()));
    out
}

#[test]
fn lower_files_read_through_with_host_identity() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    assert_eq!(fs.read("/etc/passwd").unwrap(), b"root:x:0:0\n");
    assert_eq!(fs.read("/bin/sh").unwrap(), b"ELF");
    assert_eq!(fs.read("/data/dir/../file.txt").unwrap(), b"file");
    assert_eq!(sb.ino("/etc/passwd"), sb.host_ino("etc/passwd"));
    assert_eq!(sb.ino("/"), sb.host_ino("."));
    // The root is merged; its size and links are still the host's.
    let host_root = std::fs::metadata(sb.dir.path()).unwrap();
    let root = fs.lookup("/").unwrap().stat().unwrap();
    assert_eq!(
        (root.st_nlink, root.st_size),
        (host_root.nlink(), host_root.size() as i64)
    );
    assert_eq!(sb.ino("/bin/sh"), sb.host_ino("bin/sh"));
    let vfs = &fs.vfs;
    assert_eq!(
        vfs.readlink(&fs.ctx, &fs.ctx.root, b"/bin/sh").unwrap(),
        b"busybox"
    );
    let exec = vfs.access(&fs.ctx, &fs.ctx.root, b"/bin/sh", 1, 0, &fs.creds);
    assert_eq!(exec, Ok(()));
    assert_eq!(
        fs.list("/data").unwrap(),
        [".", "..", "dir", "empty", "file.txt"]
    );
    // The overlay hides the host's /proc and provides /dev.
    assert_eq!(fs.list("/proc").unwrap(), [".", ".."]);
    assert_eq!(fs.read("/dev/null").unwrap(), b"");
    assert!(fs.lookup("/sys").is_ok());
    assert_eq!(fs.path_of(&fs.lookup("/dev/../etc").unwrap()), "/etc");
}

#[test]
fn writing_copies_up_and_keeps_the_inode_number() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    let ino = sb.ino("/etc/passwd");
    let reader = fs.open("/etc/passwd", O_RDONLY).unwrap();
    let f = fs.open("/etc/passwd", O_WRONLY | O_APPEND).unwrap();
    f.write(b"user:x:1000:1000\n").unwrap();
    assert_eq!(
        fs.read("/etc/passwd").unwrap(),
        b"root:x:0:0\nuser:x:1000:1000\n"
    );
    assert_eq!(sb.ino("/etc/passwd"), ino);
    // A reader from before the copy-up reads the copy.
    let mut buf = [0u8; 64];
    assert_eq!(reader.pread(&mut buf, 11).unwrap(), 17);
    // Truncation copies up without the data.
    fs.open("/data/dir/inner.txt", O_WRONLY | O_TRUNC)
        .unwrap()
        .write(b"new")
        .unwrap();
    assert_eq!(fs.read("/data/dir/inner.txt").unwrap(), b"new");
    let f = fs.open("/data/file.txt", O_RDWR).unwrap();
    f.truncate(2).unwrap();
    assert_eq!(fs.read("/data/file.txt").unwrap(), b"fi");
    // Through a symlink, the target is what gets written.
    fs.open("/bin/sh", O_WRONLY | O_APPEND)
        .unwrap()
        .write(b"!")
        .unwrap();
    assert_eq!(fs.read("/bin/busybox").unwrap(), b"ELF!");
    assert_eq!(fs.lstat_mode("/bin/sh").unwrap() & 0o170000, 0o120000);
    // One device number for the whole overlay, files made here included.
    fs.write("/etc/new", b"").unwrap();
    let dev = |path: &str| fs.lookup(path).unwrap().stat().unwrap().st_dev;
    assert_eq!(dev("/"), dev("/etc/passwd"));
    assert_eq!(dev("/"), dev("/etc/new"));
    assert_ne!(dev("/"), dev("/dev"));
    fs.unlink("/etc/new").unwrap();
    // The merged listing still shows each name once.
    assert_eq!(fs.list("/etc").unwrap(), [".", "..", "hosts", "passwd"]);
}

#[test]
fn removing_lower_entries_leaves_whiteouts() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    fs.unlink("/etc/hosts").unwrap();
    assert_eq!(fs.read("/etc/hosts").err(), Some(Errno::ENOENT));
    assert_eq!(fs.list("/etc").unwrap(), [".", "..", "passwd"]);
    fs.write("/etc/hosts", b"replaced").unwrap();
    assert_eq!(fs.read("/etc/hosts").unwrap(), b"replaced");
    fs.unlink("/etc/hosts").unwrap();
    assert_eq!(fs.lookup("/etc/hosts").err(), Some(Errno::ENOENT));

    assert_eq!(fs.rmdir("/data/dir").err(), Some(Errno::ENOTEMPTY));
    fs.unlink("/data/dir/inner.txt").unwrap();
    fs.rmdir("/data/dir").unwrap();
    assert_eq!(fs.list("/data").unwrap(), [".", "..", "empty", "file.txt"]);
    // A directory made in its place is opaque: the lower one stays hidden.
    fs.mkdir("/data/dir").unwrap();
    assert_eq!(fs.list("/data/dir").unwrap(), [".", ".."]);
    assert_eq!(fs.lookup("/data/dir/inner.txt").err(), Some(Errno::ENOENT));
    fs.rmdir("/data/empty").unwrap();
    assert_eq!(fs.lookup("/data/empty").err(), Some(Errno::ENOENT));
    // Files made in the sandbox go without a trace.
    fs.write("/data/tmp", b"t").unwrap();
    fs.unlink("/data/tmp").unwrap();
    assert_eq!(fs.list("/data").unwrap(), [".", "..", "dir", "file.txt"]);
}

#[test]
fn renames_move_copies_and_hide_the_source() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    let ino = sb.ino("/data/file.txt");
    fs.rename("/data/file.txt", "/etc/moved").unwrap();
    assert_eq!(fs.lookup("/data/file.txt").err(), Some(Errno::ENOENT));
    assert_eq!(fs.read("/etc/moved").unwrap(), b"file");
    assert_eq!(sb.ino("/etc/moved"), ino);
    // Over a lower file.
    fs.rename("/etc/moved", "/etc/passwd").unwrap();
    assert_eq!(fs.read("/etc/passwd").unwrap(), b"file");
    assert_eq!(fs.list("/etc").unwrap(), [".", "..", "hosts", "passwd"]);
    // Lower directories stay put (EXDEV, as overlayfs without redirect_dir),
    // sandbox ones move.
    assert_eq!(
        fs.rename("/data/dir", "/data/dir2").err(),
        Some(Errno::EXDEV)
    );
    fs.mkdir("/new").unwrap();
    fs.write("/new/f", b"f").unwrap();
    let cwd = fs.lookup("/new").unwrap();
    fs.rename("/new", "/data/empty").unwrap();
    assert_eq!(fs.path_of(&cwd), "/data/empty");
    assert_eq!(fs.list("/data/empty").unwrap(), [".", "..", "f"]);
    assert_eq!(fs.read("/data/empty/f").unwrap(), b"f");
    // A file renamed and then written is written where it now is.
    fs.rename("/etc/hosts", "/hosts").unwrap();
    fs.open("/hosts", O_WRONLY | O_APPEND)
        .unwrap()
        .write(b"::1\n")
        .unwrap();
    assert_eq!(fs.lookup("/etc/hosts").err(), Some(Errno::ENOENT));
    assert_eq!(fs.read("/hosts").unwrap(), b"127.0.0.1 localhost\n::1\n");
}

#[test]
fn listings_report_the_inode_numbers_stat_does() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    fs.open("/etc/passwd", O_WRONLY).unwrap();
    fs.write("/etc/new", b"").unwrap();
    let etc = fs.open("/etc", O_RDONLY | O_DIRECTORY).unwrap();
    let entries = dirents(&etc, 64).unwrap();
    assert_eq!(entries.len(), 5);
    for e in &entries {
        assert_eq!(e.ino, sb.ino(&format!("/etc/{}", e.name)), "{}", e.name);
    }
    let root = fs.open("/", O_RDONLY).unwrap();
    let names: Vec<String> = dirents(&root, 4096)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.iter().filter(|n| *n == "dev").count(), 1);
}

/// Only the gofer's files under `dir`, without the overlay: a read-only
/// tree, and the thread serving it (done once the tree is dropped).
fn read_only_tree(dir: &std::path::Path) -> (Fs, std::thread::JoinHandle<()>) {
    let (client, server) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let root = veil_gofer::open_root(dir).unwrap();
    let gofer = std::thread::spawn(move || veil_gofer::serve(root, server, true).unwrap());
    let lower =
        veil_vfs::fs::gofer::root(Arc::new(GoferClient::new(client)), false, memfile()).unwrap();
    (Fs::new(Vfs::new(lower)), gofer)
}

#[test]
fn the_lower_layer_refuses_writes_of_its_own() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    let (ro, gofer) = read_only_tree(sb.dir.path());
    assert_eq!(ro.read("/etc/passwd").unwrap(), b"root:x:0:0\n");
    assert_eq!(ro.open("/etc/passwd", O_WRONLY).err(), Some(Errno::EROFS));
    assert_eq!(
        ro.open("/etc/x", O_WRONLY | O_CREAT).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(ro.mkdir("/x").err(), Some(Errno::EROFS));
    assert_eq!(ro.unlink("/etc/passwd").err(), Some(Errno::EROFS));
    assert_eq!(ro.rename("/etc/passwd", "/etc/p").err(), Some(Errno::EROFS));
    drop(ro);
    gofer.join().unwrap();
    assert!(fs.lookup("/etc").is_ok());
}

#[test]
fn links_copy_up_and_share_one_file() {
    let sb = Sandbox::new();
    let fs = sb.fs();
    // A lower file: copied up, then named twice.
    fs.link("/etc/hosts", "/etc/hosts2").unwrap();
    fs.write("/etc/hosts2", b"changed").unwrap();
    assert_eq!(fs.read("/etc/hosts").unwrap(), b"changed");
    assert_eq!(fs.lookup("/etc/hosts").unwrap().stat().unwrap().st_nlink, 2);
    assert_eq!(sb.ino("/etc/hosts"), sb.ino("/etc/hosts2"));
    fs.unlink("/etc/hosts").unwrap();
    assert_eq!(fs.read("/etc/hosts2").unwrap(), b"changed");
    assert_eq!(
        fs.lookup("/etc/hosts2").unwrap().stat().unwrap().st_nlink,
        1
    );
    // A file made here, into another directory.
    fs.write("/data/new", b"n").unwrap();
    fs.link("/data/new", "/data/dir/new").unwrap();
    assert_eq!(fs.read("/data/dir/new").unwrap(), b"n");
    assert_eq!(fs.link("/data/new", "/data/file.txt"), Err(Errno::EEXIST));
    assert_eq!(fs.link("/data/dir", "/data/dir2"), Err(Errno::EPERM));
    assert_eq!(fs.link("/data/new", "/proc/new"), Err(Errno::EXDEV));
}

#[test]
fn rename_exchange_and_noreplace_of_host_files() {
    use veil_vfs::{RENAME_EXCHANGE, RENAME_NOREPLACE};
    let sb = Sandbox::new();
    let fs = sb.fs();
    let (file, hosts) = (sb.ino("/data/file.txt"), sb.ino("/etc/hosts"));
    assert_eq!(
        fs.rename_flags("/data/file.txt", "/etc/hosts", RENAME_NOREPLACE)
            .err(),
        Some(Errno::EEXIST)
    );
    fs.rename_flags("/data/file.txt", "/etc/hosts", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(fs.read("/etc/hosts").unwrap(), b"file");
    assert_eq!(sb.ino("/etc/hosts"), file);
    assert_eq!(sb.ino("/data/file.txt"), hosts);
    assert_eq!(
        fs.rename_flags("/data/file.txt", "/nothere", RENAME_EXCHANGE)
            .err(),
        Some(Errno::ENOENT)
    );
    // A sandbox directory swaps with a host file; host directories stay.
    fs.mkdir("/new").unwrap();
    fs.rename_flags("/new", "/etc/hosts", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(fs.list("/etc/hosts").unwrap(), [".", ".."]);
    assert_eq!(fs.read("/new").unwrap(), b"file");
    assert_eq!(
        fs.rename_flags("/data/dir", "/new", RENAME_EXCHANGE).err(),
        Some(Errno::EXDEV)
    );
    fs.rename_flags("/new", "/moved", RENAME_NOREPLACE).unwrap();
    assert!(fs.list("/").unwrap().contains(&"moved".to_string()));
}

#[test]
fn xattrs_copy_up_and_never_reach_the_host() {
    let sb = Sandbox::new();
    let host = sb.dir.path().join("data/file.txt");
    rustix::fs::setxattr(&host, "user.host", b"h", rustix::fs::XattrFlags::empty()).unwrap();
    let fs = sb.fs();
    let (vfs, creds) = (&fs.vfs, &fs.creds);
    let p = fs.lookup("/data/file.txt").unwrap();
    assert_eq!(vfs.getxattr(&p, b"user.host", creds).unwrap(), b"h");
    assert_eq!(vfs.listxattr(&p, creds).unwrap(), [b"user.host".to_vec()]);
    // The change copies the file up, its host attribute along.
    vfs.setxattr(&p, b"user.new", b"n", 0, creds).unwrap();
    assert_eq!(
        vfs.listxattr(&p, creds).unwrap(),
        [b"user.host".to_vec(), b"user.new".to_vec()]
    );
    vfs.removexattr(&p, b"user.host", creds).unwrap();
    assert_eq!(
        vfs.getxattr(&p, b"user.host", creds).err(),
        Some(Errno::ENODATA)
    );
    assert_eq!(
        vfs.getxattr(&p, b"security.x", creds).err(),
        Some(Errno::EOPNOTSUPP)
    );
    // A file's attributes take bounded space.
    let big = vec![7u8; 60 << 10];
    vfs.setxattr(&p, b"user.a", &big, 0, creds).unwrap();
    vfs.setxattr(&p, b"user.b", &big, 0, creds).unwrap();
    assert_eq!(
        vfs.setxattr(&p, b"user.c", &big, 0, creds).err(),
        Some(Errno::ENOSPC)
    );
    vfs.setxattr(&p, b"user.b", b"small", 0, creds).unwrap();
    let mut list = [0u8; 256];
    let n = rustix::fs::listxattr(&host, &mut list).unwrap();
    assert_eq!(&list[..n], b"user.host\0");
}

#[test]
fn a_read_only_tree_serves_xattrs_but_refuses_changes() {
    let sb = Sandbox::new();
    let host = sb.dir.path().join("etc/hosts");
    rustix::fs::setxattr(&host, "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap();
    let (ro, gofer) = read_only_tree(sb.dir.path());
    let p = ro.lookup("/etc/hosts").unwrap();
    assert_eq!(ro.vfs.getxattr(&p, b"user.k", &ro.creds).unwrap(), b"v");
    assert_eq!(
        ro.vfs.setxattr(&p, b"user.k", b"w", 0, &ro.creds).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        ro.vfs.removexattr(&p, b"user.k", &ro.creds).err(),
        Some(Errno::EROFS)
    );
    drop(p);
    drop(ro);
    gofer.join().unwrap();
}
