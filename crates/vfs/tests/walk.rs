//! Path resolution and the namespace operations, over an in-memory root.
#![allow(clippy::unwrap_used)] // A test's failure is a panic.

mod common;

use common::*;
use veil_abi::mode::{S_IFDIR, S_IFLNK, S_IFMT};
use veil_abi::Errno;
use veil_vfs::fs::memfs::MemFs;
use veil_vfs::Vfs;

fn memfs() -> Fs {
    Fs::new(Vfs::new(MemFs::new(1 << 20, memfile()).root()))
}

/// /a/b/, /a/c (a file), /a/b/up -> ../c, /abs -> /a, /a/dirlink -> b
fn tree() -> Fs {
    let fs = memfs();
    fs.mkdir("/a").unwrap();
    fs.mkdir("/a/b").unwrap();
    fs.write("/a/c", b"c").unwrap();
    fs.symlink("../c", "/a/b/up").unwrap();
    fs.symlink("/a", "/abs").unwrap();
    fs.symlink("b", "/a/dirlink").unwrap();
    fs
}

#[test]
fn dotdot_stops_at_the_root() {
    let fs = tree();
    let p = fs.lookup("/../../a/b/../..").unwrap();
    assert_eq!(fs.path_of(&p), "/");
    assert_eq!(fs.path_of(&fs.lookup("a/./b/../b//").unwrap()), "/a/b");
}

#[test]
fn dotdot_and_absolute_paths_stay_inside_a_chroot() {
    let mut fs = tree();
    let a = fs.lookup("/a").unwrap();
    fs.ctx.root = a.clone();
    fs.ctx.cwd = a;
    assert_eq!(fs.path_of(&fs.lookup("/../../b").unwrap()), "/b");
    assert_eq!(fs.path_of(&fs.lookup("b/../..").unwrap()), "/");
    // An absolute symlink target starts at the chroot too: /abs is gone.
    assert_eq!(fs.lookup("/abs").err(), Some(Errno::ENOENT));
    fs.symlink("/b", "/rootlink").unwrap();
    assert_eq!(fs.path_of(&fs.lookup("/rootlink").unwrap()), "/b");
}

#[test]
fn symlinks_resolve_against_their_directory() {
    let fs = tree();
    assert_eq!(fs.path_of(&fs.lookup("/a/b/up").unwrap()), "/a/c");
    assert_eq!(fs.path_of(&fs.lookup("/abs/b/up").unwrap()), "/a/c");
    assert_eq!(fs.path_of(&fs.lookup("/a/dirlink/up").unwrap()), "/a/c");
    assert_eq!(fs.read("/abs/dirlink/up").unwrap(), b"c");
    // Not followed at the end when not asked to.
    assert_eq!(fs.lstat_mode("/a/b/up").unwrap() & S_IFMT, S_IFLNK);
    // A trailing slash follows it, and asks for a directory.
    assert_eq!(fs.lstat_mode("/a/dirlink/").unwrap() & S_IFMT, S_IFDIR);
    assert_eq!(fs.lstat_mode("/a/b/up/").err(), Some(Errno::ENOTDIR));
    let vfs = &fs.vfs;
    assert_eq!(
        vfs.readlink(&fs.ctx, &fs.ctx.root, b"/a/b/up").unwrap(),
        b"../c"
    );
    assert_eq!(
        vfs.readlink(&fs.ctx, &fs.ctx.root, b"/a/c"),
        Err(Errno::EINVAL)
    );
}

#[test]
fn symlink_loops_and_long_chains_fail_with_eloop() {
    let fs = memfs();
    fs.symlink("/y", "/x").unwrap();
    fs.symlink("/x", "/y").unwrap();
    fs.symlink("self", "/self").unwrap();
    assert_eq!(fs.lookup("/x").err(), Some(Errno::ELOOP));
    assert_eq!(fs.lookup("/self/z").err(), Some(Errno::ELOOP));
    assert_eq!(fs.open("/x", O_RDONLY).err(), Some(Errno::ELOOP));
    assert_eq!(fs.open("/x", O_CREAT | O_WRONLY).err(), Some(Errno::ELOOP));
    // l0 -> target, ln -> l(n-1): 40 links are followed, 41 are not.
    fs.write("/target", b"t").unwrap();
    fs.symlink("target", "/l0").unwrap();
    for i in 1..=40 {
        fs.symlink(&format!("l{}", i - 1), &format!("/l{i}"))
            .unwrap();
    }
    assert_eq!(fs.read("/l39").unwrap(), b"t");
    assert_eq!(fs.read("/l40").err(), Some(Errno::ELOOP));
    // The lstat of a link does not follow it.
    assert!(fs.lstat_mode("/l40").is_ok());
}

#[test]
fn non_directories_in_the_middle_fail_with_enotdir() {
    let fs = tree();
    assert_eq!(fs.lookup("/a/c/x").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.lookup("/a/c/").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.lookup("/a/c/.").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.mkdir("/a/c/d").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.lookup("/a/missing/x").err(), Some(Errno::ENOENT));
}

#[test]
fn long_names_and_paths() {
    let fs = memfs();
    let name = "n".repeat(255);
    fs.write(&format!("/{name}"), b"").unwrap();
    assert!(fs.lookup(&format!("/{name}")).is_ok());
    let long = "n".repeat(256);
    assert_eq!(
        fs.lookup(&format!("/{long}")).err(),
        Some(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        fs.lookup(&format!("/{long}/x")).err(),
        Some(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        fs.mkdir(&format!("/{long}")).err(),
        Some(Errno::ENAMETOOLONG)
    );
    let path = "/".repeat(4095);
    assert!(fs.lookup(&path).is_ok());
    assert_eq!(
        fs.lookup(&"/".repeat(4096)).err(),
        Some(Errno::ENAMETOOLONG)
    );
    assert_eq!(fs.lookup("").err(), Some(Errno::ENOENT));
    // Arbitrary bytes are just names.
    let odd = b"/\xff\x01\xfe";
    fs.vfs
        .mkdir(&fs.ctx, &fs.ctx.root, odd, 0o755, &fs.creds)
        .unwrap();
    let p = fs.vfs.lookup(&fs.ctx, &fs.ctx.root, odd, true).unwrap();
    assert_eq!(fs.vfs.path_of(&fs.ctx, &p), odd);
}

#[test]
fn mounts_are_crossed_both_ways() {
    let fs = tree();
    let at = fs.lookup("/a/b").unwrap();
    fs.vfs
        .mount(&at, MemFs::new(1 << 20, memfile()).root())
        .unwrap();
    // The covered directory's entries are hidden.
    assert_eq!(fs.lookup("/a/b/up").err(), Some(Errno::ENOENT));
    fs.write("/a/b/inner", b"i").unwrap();
    let inner = fs.lookup("/a/b/inner").unwrap();
    assert_eq!(fs.path_of(&inner), "/a/b/inner");
    assert_eq!(fs.path_of(&fs.lookup("/a/b/..").unwrap()), "/a");
    assert_eq!(fs.read("/a/b/../b/inner").unwrap(), b"i");
    assert_eq!(
        fs.rename("/a/b/inner", "/a/inner").err(),
        Some(Errno::EXDEV)
    );
    assert_eq!(fs.rmdir("/a/b").err(), Some(Errno::EBUSY));
    assert_eq!(fs.rename("/a/b", "/a/z").err(), Some(Errno::EBUSY));
    // Mounting again stacks on top.
    fs.vfs
        .mount(&at, MemFs::new(1 << 20, memfile()).root())
        .unwrap();
    assert_eq!(fs.lookup("/a/b/inner").err(), Some(Errno::ENOENT));
    assert_eq!(fs.path_of(&fs.lookup("/a/b/.").unwrap()), "/a/b");
}

#[test]
fn search_permission_is_checked_on_every_directory() {
    let mut fs = tree();
    fs.vfs
        .mkdir(&fs.ctx, &fs.ctx.root, b"/private", 0o700, &fs.creds)
        .unwrap();
    fs.write("/private/f", b"secret").unwrap();
    fs.creds = user(1000);
    assert_eq!(fs.lookup("/private/f").err(), Some(Errno::EACCES));
    assert_eq!(fs.lookup("/private/../a").err(), Some(Errno::EACCES));
    assert_eq!(fs.open("/private/f", O_RDONLY).err(), Some(Errno::EACCES));
    // The unchecked lookup is the sentry's own.
    assert!(fs
        .vfs
        .lookup(&fs.ctx, &fs.ctx.root, b"/private/f", true)
        .is_ok());
    // Files root made with umask 022 are not writable by others.
    assert_eq!(fs.open("/a/c", O_WRONLY).err(), Some(Errno::EACCES));
    assert!(fs.open("/a/c", O_RDONLY).is_ok());
    assert_eq!(fs.mkdir("/a/new").err(), Some(Errno::EACCES));
    assert_eq!(fs.unlink("/a/c").err(), Some(Errno::EACCES));
    let p = fs.lookup("/a").unwrap();
    assert!(fs.vfs.check_search(&p, &fs.creds).is_ok());
}

#[test]
fn access_follows_linux_rules() {
    let fs = tree();
    let access = |path: &str, mode: u32, flags: u32, creds: &veil_vfs::Creds| {
        fs.vfs
            .access(&fs.ctx, &fs.ctx.root, path.as_bytes(), mode, flags, creds)
    };
    let root = veil_vfs::Creds::new(0, 0);
    // Root reads and writes anything, but executes only with an x bit.
    assert_eq!(access("/a/c", 4 | 2, 0, &root), Ok(()));
    assert_eq!(access("/a/c", 1, 0, &root), Err(Errno::EACCES));
    assert_eq!(access("/a", 1, 0, &root), Ok(()));
    assert_eq!(access("/a/missing", 0, 0, &root), Err(Errno::ENOENT));
    // A dangling link exists for F_OK only with AT_SYMLINK_NOFOLLOW.
    fs.symlink("/nowhere", "/dangling").unwrap();
    assert_eq!(access("/dangling", 0, 0, &root), Err(Errno::ENOENT));
    assert_eq!(access("/dangling", 0, 0x100, &root), Ok(()));
    // access() uses the real IDs, AT_EACCESS the effective ones.
    let setuid_root = veil_vfs::Creds {
        uid: 1000,
        gid: 1000,
        ..veil_vfs::Creds::new(0, 0)
    };
    assert_eq!(access("/a/c", 2, 0, &setuid_root), Err(Errno::EACCES));
    assert_eq!(access("/a/c", 2, 0x200, &setuid_root), Ok(()));
    // An empty path checks the start itself (AT_EMPTY_PATH).
    let c = fs.lookup("/a/c").unwrap();
    assert_eq!(fs.vfs.access(&fs.ctx, &c, b"", 4, 0, &user(5)), Ok(()));
    assert_eq!(
        fs.vfs.access(&fs.ctx, &c, b"", 2, 0, &user(5)),
        Err(Errno::EACCES)
    );
}

#[test]
fn create_and_remove_errors_match_linux() {
    let fs = tree();
    assert_eq!(fs.mkdir("/a/b").err(), Some(Errno::EEXIST));
    assert_eq!(fs.mkdir("/a/b/").err(), Some(Errno::EEXIST));
    assert_eq!(fs.mkdir("/").err(), Some(Errno::EEXIST));
    assert_eq!(fs.mkdir("/a/..").err(), Some(Errno::EEXIST));
    fs.mkdir("/a/new/").unwrap();
    assert_eq!(fs.symlink("x", "/a/c").err(), Some(Errno::EEXIST));
    assert_eq!(fs.symlink("x", "/a/nodir/").err(), Some(Errno::ENOENT));
    assert_eq!(fs.unlink("/a/b").err(), Some(Errno::EISDIR));
    assert_eq!(fs.unlink("/a/c/").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.unlink("/a/missing").err(), Some(Errno::ENOENT));
    assert_eq!(fs.rmdir("/a/c").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.rmdir("/a").err(), Some(Errno::ENOTEMPTY));
    assert_eq!(fs.rmdir("/a/b/.").err(), Some(Errno::EINVAL));
    assert_eq!(fs.rmdir("/a/b/..").err(), Some(Errno::ENOTEMPTY));
    fs.rmdir("/a/new").unwrap();
    // Removing a symlink removes the link, not its target.
    fs.unlink("/a/b/up").unwrap();
    assert!(fs.lookup("/a/c").is_ok());
    fs.unlink("/a/c").unwrap();
    assert_eq!(fs.lookup("/a/c").err(), Some(Errno::ENOENT));
}

#[test]
fn sticky_directories_protect_other_users_files() {
    let mut fs = memfs();
    fs.ctx.umask = 0;
    fs.vfs
        .mkdir(&fs.ctx, &fs.ctx.root, b"/tmp", 0o1777, &fs.creds)
        .unwrap();
    fs.creds = user(1);
    fs.write("/tmp/mine", b"").unwrap();
    fs.creds = user(2);
    assert_eq!(fs.unlink("/tmp/mine").err(), Some(Errno::EPERM));
    assert_eq!(
        fs.rename("/tmp/mine", "/tmp/theirs").err(),
        Some(Errno::EPERM)
    );
    fs.creds = user(1);
    fs.unlink("/tmp/mine").unwrap();
}

#[test]
fn rename_moves_names_and_cached_locations() {
    let fs = tree();
    fs.mkdir("/a/b/deep").unwrap();
    let deep = fs.lookup("/a/b/deep").unwrap();
    fs.rename("/a/b", "/a/moved").unwrap();
    assert_eq!(fs.path_of(&deep), "/a/moved/deep");
    assert_eq!(fs.lookup("/a/b").err(), Some(Errno::ENOENT));
    assert!(fs.lookup("/a/moved/deep").is_ok());
    // Over a file, into itself, and across types.
    fs.write("/f1", b"1").unwrap();
    fs.write("/f2", b"2").unwrap();
    fs.rename("/f1", "/f2").unwrap();
    assert_eq!(fs.read("/f2").unwrap(), b"1");
    assert_eq!(
        fs.rename("/a", "/a/moved/deep/a").err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(fs.rename("/f2", "/a").err(), Some(Errno::EISDIR));
    assert_eq!(fs.rename("/a", "/f2").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.rename("/f2", "/f3/").err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.rename("/a/.", "/x").err(), Some(Errno::EBUSY));
    fs.mkdir("/empty").unwrap();
    assert_eq!(fs.rename("/empty", "/a").err(), Some(Errno::ENOTEMPTY));
    fs.rename("/a", "/empty").unwrap();
    assert_eq!(fs.read("/empty/c").unwrap(), b"c");
    // Renaming a file onto itself changes nothing.
    fs.rename("/f2", "/f2").unwrap();
    assert_eq!(fs.read("/f2").unwrap(), b"1");
}
