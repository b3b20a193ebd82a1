//! A writable gofer changes its tree only through directory fids and single
//! names, never following symlinks, and a read-only one changes nothing.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::thread;

use rustix::fs::{makedev, mknodat, FileType, Mode, OFlags, CWD};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use veil_abi::Errno;
use veil_gofer::{open_root, serve_mapped, GoferClient, IdMap, IdMaps, SetStat};

const S_IFREG: u32 = 0o100000;
const S_IFIFO: u32 = 0o010000;
const S_IFSOCK: u32 = 0o140000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const AT_REMOVEDIR: u32 = 0x200;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;
const UTIME_NOW: i64 = (1 << 30) - 1;

fn flag(f: OFlags) -> i32 {
    f.bits() as i32
}

/// Runs `test` against a gofer serving a fresh temporary directory, inside
/// an outer one where the test may put files that must stay untouched.
fn with_gofer(readonly: bool, test: impl FnOnce(&Path, &GoferClient)) {
    let outer = tempfile::tempdir().expect("tempdir");
    let dir = outer.path().join("root");
    fs::create_dir(&dir).expect("mkdir root");
    serve_while(&dir, readonly, IdMaps::default(), |client| {
        test(&dir, client)
    });
}

/// Serves `dir` with `ids` while `test` runs, then checks that closing the
/// client ends the server cleanly.
fn serve_while(dir: &Path, readonly: bool, ids: IdMaps, test: impl FnOnce(&GoferClient)) {
    let root = open_root(dir).expect("open_root");
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let fd_dir = Path::new("/proc/self/fd");
    let server = thread::spawn(move || serve_mapped(root, theirs, readonly, fd_dir, ids));
    let client = GoferClient::new(ours);
    test(&client);
    drop(client);
    server.join().expect("server thread").expect("a clean exit");
}

fn file(fd: OwnedFd) -> fs::File {
    fs::File::from(fd)
}

#[test]
fn creates_files_directories_links_and_nodes() {
    with_gofer(false, |dir, client| {
        let (root, _) = client.attach().expect("attach");
        let (fid, st, fd) = client
            .create(root, b"new", flag(OFlags::RDWR), 0o640)
            .expect("create");
        assert_eq!(st.mode, S_IFREG | 0o640);
        file(fd).write_all(b"written").expect("write");
        assert_eq!(fs::read(dir.join("new")).expect("read"), b"written");
        assert_eq!(client.stat(fid).expect("stat").size, 7);
        assert_eq!(
            client.create(root, b"new", 0, 0o600).map(drop),
            Err(Errno::EEXIST)
        );

        let (d, st) = client.mkdir(root, b"d", 0o750).expect("mkdir");
        assert_eq!(st.mode & 0o7777, 0o750);
        assert!(dir.join("d").is_dir());
        assert_eq!(
            client.mkdir(root, b"d", 0o700).map(drop),
            Err(Errno::EEXIST)
        );

        let (_, st) = client.symlink(d, b"l", b"/etc/passwd").expect("symlink");
        assert_eq!(st.mode & 0o170000, 0o120000);
        assert_eq!(
            fs::read_link(dir.join("d/l")).expect("readlink"),
            Path::new("/etc/passwd")
        );
        assert_eq!(client.symlink(d, b"e", b"").map(drop), Err(Errno::ENOENT));

        let (_, st) = client.link(d, b"hard", fid).expect("link");
        assert_eq!(st.nlink, 2);
        assert_eq!(fs::read(dir.join("d/hard")).expect("read"), b"written");
        assert_eq!(client.link(root, b"dl", d).map(drop), Err(Errno::EPERM));

        client.mknod(d, b"fifo", S_IFIFO | 0o600).expect("mkfifo");
        assert!(fs::metadata(dir.join("d/fifo"))
            .expect("stat")
            .file_type()
            .is_fifo());
        client.mknod(d, b"sock", S_IFSOCK | 0o600).expect("mksock");
        client.mknod(d, b"reg", S_IFREG | 0o600).expect("mknod reg");
        for kind in [S_IFCHR, S_IFBLK] {
            assert_eq!(
                client.mknod(d, b"dev", kind | 0o666).map(drop),
                Err(Errno::EPERM)
            );
        }
        assert!(!dir.join("d/dev").exists());
    });
}

#[test]
fn unlinks_and_renames() {
    with_gofer(false, |dir, client| {
        fs::create_dir(dir.join("a")).expect("mkdir");
        fs::create_dir(dir.join("a/sub")).expect("mkdir");
        fs::write(dir.join("a/x"), b"x").expect("write");
        fs::write(dir.join("a/y"), b"y").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (a, _) = client.walk(root, b"a").expect("walk");

        assert_eq!(client.unlink(a, b"sub", 0), Err(Errno::EISDIR));
        assert_eq!(client.unlink(a, b"x", AT_REMOVEDIR), Err(Errno::ENOTDIR));
        assert_eq!(client.unlink(a, b"x", 1), Err(Errno::EINVAL));
        assert_eq!(
            client.unlink(root, b"a", AT_REMOVEDIR),
            Err(Errno::ENOTEMPTY)
        );

        assert_eq!(
            client.rename(a, b"x", a, b"y", RENAME_NOREPLACE),
            Err(Errno::EEXIST)
        );
        client
            .rename(a, b"x", a, b"y", RENAME_EXCHANGE)
            .expect("exchange");
        assert_eq!(fs::read(dir.join("a/x")).expect("read"), b"y");
        assert_eq!(fs::read(dir.join("a/y")).expect("read"), b"x");
        for bad in [RENAME_NOREPLACE | RENAME_EXCHANGE, RENAME_WHITEOUT, 1 << 20] {
            assert_eq!(client.rename(a, b"x", a, b"z", bad), Err(Errno::EINVAL));
        }
        client.rename(a, b"x", root, b"moved", 0).expect("rename");
        assert_eq!(fs::read(dir.join("moved")).expect("read"), b"y");
        assert_eq!(client.rename(a, b"missing", a, b"z", 0), Err(Errno::ENOENT));

        client.unlink(a, b"y", 0).expect("unlink");
        client.unlink(a, b"sub", AT_REMOVEDIR).expect("rmdir");
        client.unlink(root, b"a", AT_REMOVEDIR).expect("rmdir a");
        assert!(!dir.join("a").exists());
        // The fid of a removed directory stays valid but holds nothing.
        assert_eq!(client.walk(a, b"y").map(drop), Err(Errno::ENOENT));
        assert_eq!(
            client.create(a, b"late", 0, 0o600).map(drop),
            Err(Errno::ENOENT)
        );
    });
}

#[test]
fn setstat_changes_mode_owner_size_and_times() {
    with_gofer(false, |dir, client| {
        fs::write(dir.join("f"), b"0123456789").expect("write");
        symlink("f", dir.join("l")).expect("symlink");
        let (root, _) = client.attach().expect("attach");
        let (f, _) = client.walk(root, b"f").expect("walk");
        let (l, _) = client.walk(root, b"l").expect("walk");

        let st = client
            .setstat(
                f,
                SetStat {
                    mode: Some(0o4600),
                    size: Some(4),
                    atime: Some((1000, 5)),
                    mtime: Some((2000, 6)),
                    ..SetStat::default()
                },
            )
            .expect("setstat");
        assert_eq!((st.mode & 0o7777, st.size), (0o4600, 4));
        assert_eq!((st.atime, st.mtime), ((1000, 5), (2000, 6)));
        let m = fs::metadata(dir.join("f")).expect("stat");
        assert_eq!((m.mode() & 0o7777, m.len(), m.mtime()), (0o4600, 4, 2000));

        let st = client
            .setstat(
                f,
                SetStat {
                    mtime: Some((0, UTIME_NOW)),
                    ..SetStat::default()
                },
            )
            .expect("touch");
        assert!(st.mtime.0 > 2000);
        assert_eq!(st.atime, (1000, 5), "an unset time stays");

        let target_mtime = fs::metadata(dir.join("f")).expect("stat").mtime();
        let me = rustix::process::getuid().as_raw();
        let st = client
            .setstat(
                l,
                SetStat {
                    uid: Some(me),
                    mtime: Some((3000, 0)),
                    ..SetStat::default()
                },
            )
            .expect("lchown and lutimes");
        assert_eq!(st.mtime, (3000, 0));
        assert_eq!(
            fs::metadata(dir.join("f")).expect("stat").mtime(),
            target_mtime
        );
        assert_eq!(
            fs::symlink_metadata(dir.join("l")).expect("lstat").mtime(),
            3000,
            "the link itself, not its target"
        );
        let chmod = SetStat {
            mode: Some(0o777),
            ..SetStat::default()
        };
        assert_eq!(client.setstat(l, chmod), Err(Errno::EOPNOTSUPP));
        let truncate = SetStat {
            size: Some(0),
            ..SetStat::default()
        };
        assert_eq!(client.setstat(l, truncate), Err(Errno::EINVAL));
        assert_eq!(client.setstat(root, truncate), Err(Errno::EISDIR));
        assert_eq!(fs::read(dir.join("f")).expect("read"), b"0123");
    });
}

#[test]
fn writable_opens_fsync_and_fallocate() {
    with_gofer(false, |dir, client| {
        fs::write(dir.join("f"), b"old contents").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (f, _) = client.walk(root, b"f").expect("walk");
        let mut w = file(
            client
                .open(f, flag(OFlags::RDWR | OFlags::TRUNC))
                .expect("open rw"),
        );
        w.write_all(b"new").expect("write");
        w.rewind().expect("rewind");
        let mut back = String::new();
        w.read_to_string(&mut back).expect("read");
        assert_eq!(back, "new");
        client.fsync(f, false).expect("fsync");
        client.fsync(f, true).expect("fdatasync");
        client.fallocate(f, 0, 0, 100).expect("fallocate");
        assert_eq!(fs::metadata(dir.join("f")).expect("stat").len(), 100);
        client.fallocate(f, 1, 0, 4096).expect("keep size");
        assert_eq!(fs::metadata(dir.join("f")).expect("stat").len(), 100);
        assert_eq!(client.fallocate(f, 0, 0, 0), Err(Errno::EINVAL));
        assert_eq!(client.fallocate(f, 0, u64::MAX, 2), Err(Errno::EINVAL));
        assert_eq!(client.fallocate(f, 0x10, 0, 1), Err(Errno::EOPNOTSUPP));
        assert_eq!(client.fallocate(root, 0, 0, 1), Err(Errno::EISDIR));
        assert_eq!(
            client.open(root, flag(OFlags::WRONLY)).map(drop),
            Err(Errno::EISDIR)
        );
        assert_eq!(
            client
                .open(f, flag(OFlags::APPEND | OFlags::WRONLY))
                .map(drop),
            Err(Errno::EINVAL)
        );
    });
}

#[test]
fn xattrs_are_limited_to_user_and_overlay_namespaces() {
    with_gofer(false, |dir, client| {
        fs::write(dir.join("f"), b"").expect("write");
        symlink("f", dir.join("l")).expect("symlink");
        let (root, _) = client.attach().expect("attach");
        let (f, _) = client.walk(root, b"f").expect("walk");
        let (l, _) = client.walk(root, b"l").expect("walk");
        // Not every host filesystem stores user xattrs (tmpfs before 6.6).
        match client.setxattr(f, b"user.test", b"value", 0) {
            Err(Errno::EOPNOTSUPP) => {}
            r => {
                r.expect("setxattr");
                assert_eq!(client.getxattr(f, b"user.test"), Ok(b"value".to_vec()));
                assert_eq!(client.listxattr(f), Ok(b"user.test\0".to_vec()));
                assert_eq!(
                    client.setxattr(f, b"user.test", b"v", 1),
                    Err(Errno::EEXIST),
                    "XATTR_CREATE"
                );
                assert_eq!(
                    client.setxattr(f, b"user.test", b"v", 3),
                    Err(Errno::EINVAL)
                );
                client.removexattr(f, b"user.test").expect("removexattr");
                assert_eq!(client.getxattr(f, b"user.test"), Err(Errno::ENODATA));
            }
        }
        for name in [
            &b"security.selinux"[..],
            b"system.posix_acl_access",
            b"trusted.other",
            b"user",
        ] {
            assert_eq!(client.getxattr(f, name), Err(Errno::EOPNOTSUPP));
            assert_eq!(client.setxattr(f, name, b"x", 0), Err(Errno::EOPNOTSUPP));
            assert_eq!(client.removexattr(f, name), Err(Errno::EOPNOTSUPP));
        }
        assert_eq!(client.getxattr(f, b""), Err(Errno::ERANGE));
        assert_eq!(client.getxattr(f, &[b'u'; 256]), Err(Errno::ERANGE));
        assert_eq!(client.getxattr(f, b"user.a\0b"), Err(Errno::EINVAL));
        assert_eq!(client.setxattr(l, b"user.x", b"x", 0), Err(Errno::EPERM));
        assert_eq!(client.getxattr(l, b"user.x"), Err(Errno::ENODATA));
        assert_eq!(client.listxattr(l), Ok(Vec::new()));
    });
}

#[test]
fn changes_never_follow_symlinks_or_leave_the_root() {
    with_gofer(false, |dir, client| {
        let outside = dir.parent().expect("parent").join("outside");
        fs::create_dir(&outside).expect("mkdir outside");
        fs::write(outside.join("secret"), b"SECRET").expect("write");
        symlink(&outside, dir.join("out")).expect("symlink");
        symlink(outside.join("secret"), dir.join("secret")).expect("symlink");
        let (root, _) = client.attach().expect("attach");
        let (out, _) = client.walk(root, b"out").expect("walk link");

        // A symlink fid is no directory to create in.
        assert_eq!(
            client.create(out, b"x", 0, 0o600).map(drop),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(
            client.mkdir(out, b"x", 0o700).map(drop),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(client.unlink(out, b"secret", 0), Err(Errno::ENOTDIR));
        // Creating over a symlink fails rather than writing its target.
        assert_eq!(
            client
                .create(root, b"secret", flag(OFlags::WRONLY), 0o600)
                .map(drop),
            Err(Errno::EEXIST)
        );
        let (s, _) = client.walk(root, b"secret").expect("walk");
        assert_eq!(
            client
                .open(s, flag(OFlags::WRONLY | OFlags::TRUNC))
                .map(drop),
            Err(Errno::ELOOP)
        );
        // Unlinking and renaming a symlink act on the link.
        client
            .rename(root, b"secret", root, b"s2", 0)
            .expect("rename link");
        client.unlink(root, b"s2", 0).expect("unlink link");
        for name in [&b""[..], b".", b"..", b"a/b", b"../outside", b"a\0"] {
            assert_eq!(
                client.mkdir(root, name, 0o700).map(drop),
                Err(Errno::EINVAL)
            );
            assert_eq!(client.unlink(root, name, 0), Err(Errno::EINVAL));
            assert_eq!(
                client.rename(root, b"out", root, name, 0),
                Err(Errno::EINVAL),
                "{name:?}"
            );
            assert_eq!(
                client.symlink(root, name, b"x").map(drop),
                Err(Errno::EINVAL)
            );
        }
        assert_eq!(
            client.symlink(root, b"nul", b"a\0b").map(drop),
            Err(Errno::EINVAL)
        );

        // A directory swapped for a symlink after the walk: the fid stays on
        // the directory, wherever it went.
        fs::create_dir(dir.join("d")).expect("mkdir");
        let (d, _) = client.walk(root, b"d").expect("walk");
        fs::rename(dir.join("d"), dir.join("d.old")).expect("rename");
        symlink(&outside, dir.join("d")).expect("symlink");
        client.create(d, b"new", 0, 0o600).expect("create");
        client.unlink(d, b"new", 0).expect("unlink");
        assert!(dir.join("d.old").is_dir());

        assert_eq!(fs::read(outside.join("secret")).expect("read"), b"SECRET");
        let names: Vec<_> = fs::read_dir(&outside)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["secret"], "nothing appeared outside the root");
    });
}

#[test]
fn device_nodes_are_never_opened() {
    with_gofer(false, |dir, client| {
        // Needs CAP_MKNOD.
        if mknodat(
            CWD,
            dir.join("null"),
            FileType::CharacterDevice,
            Mode::RUSR | Mode::WUSR,
            makedev(1, 3),
        )
        .is_err()
        {
            return;
        }
        let (root, _) = client.attach().expect("attach");
        let (null, _) = client.walk(root, b"null").expect("walk");
        for flags in [OFlags::RDONLY, OFlags::WRONLY, OFlags::RDWR | OFlags::TRUNC] {
            assert_eq!(
                client.open(null, flag(flags)).map(drop),
                Err(Errno::EACCES),
                "{flags:?}"
            );
        }
        let truncate = SetStat {
            size: Some(0),
            ..SetStat::default()
        };
        assert_eq!(client.setstat(null, truncate), Err(Errno::EACCES));
        assert_eq!(client.fallocate(null, 0, 0, 1), Err(Errno::EACCES));
        assert!(fs::metadata(dir.join("null"))
            .expect("stat")
            .file_type()
            .is_char_device());
    });
}

#[test]
fn walk_stat_takes_a_path_in_one_request() {
    with_gofer(true, |dir, client| {
        fs::create_dir_all(dir.join("a/b/c")).expect("mkdir");
        fs::write(dir.join("a/b/c/f"), b"").expect("write");
        symlink("../../..", dir.join("a/b/up")).expect("symlink");
        let (root, _) = client.attach().expect("attach");

        let all = client
            .walk_stat(root, &[b"a", b"b", b"c", b"f"])
            .expect("walk");
        assert_eq!(all.len(), 4);
        assert_eq!(
            all[3].1.ino,
            fs::metadata(dir.join("a/b/c/f")).expect("stat").ino()
        );
        // Stops after a symlink, at a missing name and after a file.
        let up = client
            .walk_stat(root, &[b"a", b"b", b"up", b"a"])
            .expect("walk");
        assert_eq!(up.len(), 3);
        assert_eq!(up[2].1.mode & 0o170000, 0o120000);
        let missing = client
            .walk_stat(root, &[b"a", b"nope", b"x"])
            .expect("walk");
        assert_eq!(missing.len(), 1);
        let file = client
            .walk_stat(root, &[b"a", b"b", b"c", b"f", b"g"])
            .expect("walk");
        assert_eq!(file.len(), 4);
        assert_eq!(
            client.walk_stat(root, &[b"nope"]).map(drop),
            Err(Errno::ENOENT)
        );
        assert_eq!(client.walk_stat(root, &[]).map(drop), Err(Errno::EINVAL));
        assert_eq!(
            client.walk_stat(root, &[b"a", b".."]).map(drop),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            client.walk_stat(root, &[&b"a"[..]; 65]).map(drop),
            Err(Errno::EINVAL)
        );
    });
}

#[test]
fn a_read_only_gofer_refuses_every_change() {
    with_gofer(true, |dir, client| {
        fs::write(dir.join("f"), b"data").expect("write");
        fs::create_dir(dir.join("d")).expect("mkdir");
        let mode = fs::metadata(dir.join("f"))
            .expect("stat")
            .permissions()
            .mode();
        let (root, _) = client.attach().expect("attach");
        let (f, _) = client.walk(root, b"f").expect("walk");
        let rofs = Err(Errno::EROFS);
        assert_eq!(client.create(root, b"n", 0, 0o600).map(drop), rofs);
        assert_eq!(client.mkdir(root, b"n", 0o700).map(drop), rofs);
        assert_eq!(client.mknod(root, b"n", S_IFIFO | 0o600).map(drop), rofs);
        assert_eq!(client.symlink(root, b"n", b"f").map(drop), rofs);
        assert_eq!(client.link(root, b"n", f).map(drop), rofs);
        assert_eq!(client.unlink(root, b"f", 0), rofs);
        assert_eq!(client.unlink(root, b"d", AT_REMOVEDIR), rofs);
        assert_eq!(client.rename(root, b"f", root, b"g", 0), rofs);
        let chmod = SetStat {
            mode: Some(0o777),
            ..SetStat::default()
        };
        assert_eq!(client.setstat(f, chmod).map(drop), rofs);
        assert_eq!(client.fallocate(f, 0, 0, 10), rofs);
        assert_eq!(client.setxattr(f, b"user.x", b"x", 0), rofs);
        assert_eq!(client.removexattr(f, b"user.x"), rofs);
        assert_eq!(client.open(f, flag(OFlags::RDWR)).map(drop), rofs);
        client.fsync(f, false).expect("fsync changes nothing");
        assert_eq!(fs::read(dir.join("f")).expect("read"), b"data");
        assert_eq!(
            fs::metadata(dir.join("f"))
                .expect("stat")
                .permissions()
                .mode(),
            mode
        );
        let names: Vec<_> = fs::read_dir(dir).expect("readdir").collect();
        assert_eq!(names.len(), 2);
    });
}

#[test]
fn connects_to_bound_sockets_only_by_fid() {
    with_gofer(true, |dir, client| {
        use std::io::{BufRead, BufReader};
        use std::os::unix::net::UnixListener;
        let listener = UnixListener::bind(dir.join("sock")).expect("bind");
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            conn.write_all(b"hello\n").expect("write");
        });
        fs::write(dir.join("f"), b"").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (sock, _) = client.walk(root, b"sock").expect("walk");
        // The name now holds something else: the fid still reaches the socket.
        fs::rename(dir.join("sock"), dir.join("moved")).expect("rename");
        symlink("/run/elsewhere.sock", dir.join("sock")).expect("symlink");
        let stream = SocketType::STREAM.as_raw();
        let conn = client.connect(sock, stream).expect("connect");
        let mut line = String::new();
        BufReader::new(std::os::unix::net::UnixStream::from(conn))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line, "hello\n");
        server.join().expect("server");

        let (f, _) = client.walk(root, b"f").expect("walk");
        let (link, _) = client.walk(root, b"sock").expect("walk");
        for fid in [f, link, root] {
            assert_eq!(
                client.connect(fid, stream).map(drop),
                Err(Errno::ECONNREFUSED)
            );
        }
        assert_eq!(client.connect(sock, 99).map(drop), Err(Errno::EINVAL));
        // The listener is gone: the host's errno comes back.
        assert_eq!(
            client.connect(sock, stream).map(drop),
            Err(Errno::ECONNREFUSED)
        );
    });
}

/// With a user namespace's mappings, owners are the container's ids both
/// ways, and what the gofer makes belongs to the container's root.
#[test]
fn owners_follow_the_containers_id_mappings() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("host-root"), b"").expect("write");
    fs::write(dir.path().join("mapped"), b"").expect("write");
    std::os::unix::fs::chown(dir.path().join("mapped"), Some(100_007), Some(100_009))
        .expect("chown");
    let map = IdMap::parse("0:100000:65536").expect("parses");
    let ids = IdMaps {
        uid: map.clone(),
        gid: map,
    };
    serve_while(dir.path(), false, ids, |client| {
        let (top, _) = client.attach().expect("attach");
        let (_, st) = client.walk(top, b"host-root").expect("walk");
        assert_eq!((st.uid, st.gid), (65534, 65534), "unmapped host root");
        let (mapped, st) = client.walk(top, b"mapped").expect("walk");
        assert_eq!((st.uid, st.gid), (7, 9));
        let (_, st, _) = client
            .create(top, b"new", flag(OFlags::WRONLY), 0o644)
            .expect("create");
        assert_eq!((st.uid, st.gid), (0, 0));
        let (_, st) = client.mkdir(top, b"newdir", 0o755).expect("mkdir");
        assert_eq!((st.uid, st.gid), (0, 0));
        for name in ["new", "newdir"] {
            let meta = fs::symlink_metadata(dir.path().join(name)).expect("stat");
            assert_eq!(
                (meta.uid(), meta.gid()),
                (100_000, 100_000),
                "{name} on the host"
            );
        }
        let chown = |uid| SetStat {
            uid: Some(uid),
            ..SetStat::default()
        };
        let st = client.setstat(mapped, chown(5)).expect("chown");
        assert_eq!(st.uid, 5);
        let meta = fs::metadata(dir.path().join("mapped")).expect("stat");
        assert_eq!(meta.uid(), 100_005, "on the host");
        assert_eq!(client.setstat(mapped, chown(70_000)), Err(Errno::EINVAL));
    });
}
