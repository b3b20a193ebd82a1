//! The gofer serves a directory tree, read-only, and nothing outside it,
//! whatever the sentry sends.

use std::collections::HashSet;
use std::fs;
use std::io::{IoSlice, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::thread;

use rustix::fs::{fcntl_getfl, makedev, mknodat, FileType, Mode, OFlags, RawDir, CWD};
use rustix::net::{
    recv, send, sendmsg, socketpair, AddressFamily, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use veil_abi::Errno;
use veil_gofer::protocol::{Request, Response, MAX_MESSAGE};
use veil_gofer::{open_root, serve, Fid, GoferClient, HostStat};

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;

fn flag(f: OFlags) -> i32 {
    f.bits() as i32
}

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

/// Runs `test` against a gofer serving a fresh temporary directory, then
/// checks that closing the client ends the server cleanly.
fn with_gofer(test: impl FnOnce(&Path, &GoferClient)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = open_root(dir.path()).expect("open_root");
    let (ours, theirs) = seqpacket_pair();
    let server = thread::spawn(move || serve(root, theirs, true));
    let client = GoferClient::new(ours);
    test(dir.path(), &client);
    drop(client);
    server.join().expect("server thread").expect("a clean exit");
}

fn assert_stat_matches(st: &HostStat, path: &Path) {
    let m = fs::symlink_metadata(path).expect("metadata");
    let expected = HostStat {
        dev: m.dev(),
        ino: m.ino(),
        mode: m.mode(),
        nlink: m.nlink(),
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev(),
        size: m.size() as i64,
        blksize: m.blksize() as i64,
        blocks: m.blocks() as i64,
        atime: (m.atime(), m.atime_nsec()),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        btime: m.created().ok().map(|t| {
            let d = t
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a birth after 1970");
            (d.as_secs() as i64, i64::from(d.subsec_nanos()))
        }),
    };
    assert_eq!(*st, expected, "{}", path.display());
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    fs::File::from(fd).read_to_end(&mut out).expect("read");
    out
}

#[test]
fn walks_stats_and_reads() {
    with_gofer(|dir, client| {
        fs::create_dir(dir.join("sub")).expect("mkdir");
        fs::write(dir.join("sub/file"), b"hello gofer").expect("write");
        symlink("file", dir.join("sub/link")).expect("symlink");

        let (root, st) = client.attach().expect("attach");
        assert_stat_matches(&st, dir);
        let (sub, st) = client.walk(root, b"sub").expect("walk sub");
        assert_stat_matches(&st, &dir.join("sub"));
        let (file, st) = client.walk(sub, b"file").expect("walk file");
        assert_stat_matches(&st, &dir.join("sub/file"));
        let (link, st) = client.walk(sub, b"link").expect("walk link");
        assert_stat_matches(&st, &dir.join("sub/link"));
        assert_stat_matches(&client.stat(file).expect("stat"), &dir.join("sub/file"));

        assert_eq!(
            read_all(client.open(file, 0).expect("open")),
            b"hello gofer"
        );
        assert_eq!(client.readlink(link), Ok(b"file".to_vec()));
        assert_eq!(client.walk(file, b"x").map(drop), Err(Errno::ENOTDIR));
        assert_eq!(client.walk(sub, b"missing").map(drop), Err(Errno::ENOENT));
    });
}

#[test]
fn fids_outlive_host_renames() {
    with_gofer(|dir, client| {
        fs::create_dir(dir.join("d")).expect("mkdir");
        fs::write(dir.join("d/file"), b"original").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (d, _) = client.walk(root, b"d").expect("walk d");
        let (file, _) = client.walk(d, b"file").expect("walk file");

        // Swap the directory for a symlink out of the tree.
        fs::rename(dir.join("d"), dir.join("moved")).expect("rename");
        symlink("/etc", dir.join("d")).expect("symlink");

        assert_eq!(read_all(client.open(file, 0).expect("open")), b"original");
        assert!(
            client.walk(d, b"file").is_ok(),
            "the fid still names the moved directory"
        );
        assert_eq!(client.walk(d, b"passwd").map(drop), Err(Errno::ENOENT));
        let (swapped, st) = client.walk(root, b"d").expect("walk the new d");
        assert_eq!(st.mode & S_IFMT, S_IFLNK);
        assert_eq!(
            client.walk(swapped, b"passwd").map(drop),
            Err(Errno::ENOTDIR)
        );
    });
}

#[test]
fn symlinks_are_never_followed() {
    with_gofer(|dir, client| {
        fs::create_dir(dir.join("inner")).expect("mkdir");
        fs::write(dir.join("inner/f"), b"x").expect("write");
        let links: [(&[u8], &str); 3] = [
            (b"abs", "/etc"),
            (b"up", "../../../../.."),
            (b"in", "inner"),
        ];
        for (name, target) in links {
            symlink(target, dir.join(std::str::from_utf8(name).expect("utf8"))).expect("symlink");
        }

        let (root, _) = client.attach().expect("attach");
        for (name, target) in links {
            let (link, st) = client.walk(root, name).expect("walk link");
            assert_eq!(st.mode & S_IFMT, S_IFLNK, "the fid is the link itself");
            assert_eq!(client.readlink(link), Ok(target.as_bytes().to_vec()));
            for through in [&b"passwd"[..], b"f", b"etc"] {
                assert_eq!(client.walk(link, through).map(drop), Err(Errno::ENOTDIR));
            }
            assert_eq!(client.open(link, 0).map(drop), Err(Errno::ELOOP));
            // As Linux: O_DIRECTORY on anything but a directory is ENOTDIR.
            assert_eq!(
                client.open(link, flag(OFlags::DIRECTORY)).map(drop),
                Err(Errno::ENOTDIR)
            );
            assert_eq!(client.readdir(link, 0), Err(Errno::ENOTDIR));
        }
        let (inner, _) = client.walk(root, b"inner").expect("walk");
        let (f, _) = client.walk(inner, b"f").expect("walk");
        assert_eq!(client.readlink(root), Err(Errno::EINVAL));
        assert_eq!(client.readlink(f), Err(Errno::EINVAL));
    });
}

#[test]
fn only_single_components_are_walked() {
    with_gofer(|dir, client| {
        fs::create_dir(dir.join("a")).expect("mkdir");
        fs::write(dir.join("a/b"), b"").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (a, _) = client.walk(root, b"a").expect("walk");
        for name in [&b".."[..], b".", b"", b"a/b", b"/etc", b"a/", b"a\0b"] {
            assert_eq!(
                client.walk(root, name).map(drop),
                Err(Errno::EINVAL),
                "{name:?}"
            );
        }
        assert_eq!(client.walk(a, b"..").map(drop), Err(Errno::EINVAL));
        assert_eq!(
            client.walk(root, &[b'x'; 256]).map(drop),
            Err(Errno::ENAMETOOLONG)
        );
        assert_eq!(
            client.walk(root, &[b'x'; 255]).map(drop),
            Err(Errno::ENOENT)
        );
    });
}

#[test]
fn bad_and_clunked_fids_get_ebadf() {
    with_gofer(|dir, client| {
        fs::write(dir.join("f"), b"").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (f, _) = client.walk(root, b"f").expect("walk");
        client.clunk(f);
        client.clunk(f);
        for fid in [Fid(0), Fid(u64::MAX), Fid(9999), f] {
            assert_eq!(client.walk(fid, b"f").map(drop), Err(Errno::EBADF));
            assert_eq!(client.stat(fid), Err(Errno::EBADF));
            assert_eq!(client.open(fid, 0).map(drop), Err(Errno::EBADF));
            assert_eq!(client.readlink(fid), Err(Errno::EBADF));
            assert_eq!(client.readdir(fid, 0), Err(Errno::EBADF));
            assert_eq!(client.statfs(fid), Err(Errno::EBADF));
        }
        assert!(client.stat(root).is_ok(), "other fids are untouched");
    });
}

#[test]
fn opens_are_read_only() {
    with_gofer(|dir, client| {
        fs::write(dir.join("f"), b"data").expect("write");
        let (root, _) = client.attach().expect("attach");
        let (f, _) = client.walk(root, b"f").expect("walk");
        for flags in [
            OFlags::WRONLY,
            OFlags::RDWR,
            OFlags::WRONLY | OFlags::RDWR,
            OFlags::TRUNC,
        ] {
            assert_eq!(
                client.open(f, flag(flags)).map(drop),
                Err(Errno::EROFS),
                "{flags:?}"
            );
        }
        for flags in [
            OFlags::CREATE,
            OFlags::PATH,
            OFlags::TMPFILE,
            OFlags::APPEND,
        ] {
            assert_eq!(
                client.open(f, flag(flags)).map(drop),
                Err(Errno::EINVAL),
                "{flags:?}"
            );
        }
        assert_eq!(
            client.open(f, flag(OFlags::DIRECTORY)).map(drop),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(
            fs::read(dir.join("f")).expect("read"),
            b"data",
            "nothing was truncated"
        );

        let fd = client
            .open(f, flag(OFlags::NONBLOCK | OFlags::CLOEXEC))
            .expect("open");
        let status = fcntl_getfl(&fd).expect("getfl");
        assert!(status.contains(OFlags::NONBLOCK));
        assert!(!status.intersects(OFlags::WRONLY | OFlags::RDWR));
        assert_eq!(read_all(fd), b"data");

        let dirfd = client
            .open(root, flag(OFlags::DIRECTORY))
            .expect("open dir");
        let mut buf = vec![MaybeUninit::uninit(); 4096];
        let mut entries = RawDir::new(dirfd.as_fd(), &mut buf);
        let mut names = Vec::new();
        while let Some(e) = entries.next() {
            names.push(e.expect("getdents").file_name().to_bytes().to_vec());
        }
        assert!(names.contains(&b"f".to_vec()));
    });
}

#[test]
fn special_files_are_never_opened() {
    with_gofer(|dir, client| {
        mknodat(
            CWD,
            dir.join("fifo"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        let _listener = std::os::unix::net::UnixListener::bind(dir.join("sock")).expect("bind");
        // Needs CAP_MKNOD; without it the device case is skipped.
        let device = mknodat(
            CWD,
            dir.join("null"),
            FileType::CharacterDevice,
            Mode::RUSR,
            makedev(1, 3),
        )
        .is_ok();

        let (root, _) = client.attach().expect("attach");
        let mut cases: Vec<(&[u8], Errno)> =
            vec![(b"fifo", Errno::EACCES), (b"sock", Errno::ENXIO)];
        if device {
            cases.push((b"null", Errno::EACCES));
        }
        for (name, errno) in cases {
            let (fid, st) = client.walk(root, name).expect("walk");
            assert_stat_matches(&st, &dir.join(std::str::from_utf8(name).expect("utf8")));
            assert_eq!(client.open(fid, 0).map(drop), Err(errno), "{name:?}");
            assert_eq!(
                client.open(fid, flag(OFlags::NONBLOCK)).map(drop),
                Err(errno),
                "{name:?}"
            );
            assert_eq!(client.readdir(fid, 0), Err(Errno::ENOTDIR));
        }
    });
}

#[test]
fn readdir_pages_through_large_directories() {
    const FILES: usize = 3000;
    with_gofer(|dir, client| {
        for i in 0..FILES {
            fs::write(dir.join(format!("entry-with-a-longish-name-{i:05}")), b"").expect("write");
        }
        fs::create_dir(dir.join("subdir")).expect("mkdir");
        symlink("nowhere", dir.join("link")).expect("symlink");

        let (root, _) = client.attach().expect("attach");
        let mut all = Vec::new();
        let mut cookie = 0;
        let mut pages = 0;
        loop {
            let page = client.readdir(root, cookie).expect("readdir");
            let Some(last) = page.last() else { break };
            cookie = last.cookie;
            pages += 1;
            all.extend(page);
        }
        assert!(pages > 1, "a large directory takes several pages");
        let names: HashSet<_> = all.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names.len(), all.len(), "an entry came twice");
        assert_eq!(all.len(), FILES + 2);
        for e in &all {
            let path = dir.join(std::str::from_utf8(&e.name).expect("utf8"));
            let meta = fs::symlink_metadata(&path).expect("an entry that exists");
            assert_eq!(e.ino, meta.ino());
            let expected = match e.name.as_slice() {
                b"subdir" => DT_DIR,
                b"link" => DT_LNK,
                _ => DT_REG,
            };
            assert_eq!(e.dtype, expected);
        }
        // Any cookie resumes right after its entry.
        let resumed = client.readdir(root, all[1000].cookie).expect("readdir");
        assert_eq!(resumed.first(), all.get(1001));

        let (sub, _) = client.walk(root, b"subdir").expect("walk");
        assert_eq!(client.readdir(sub, 0), Ok(Vec::new()));
        let (file, _) = client
            .walk(root, b"entry-with-a-longish-name-00000")
            .expect("walk");
        assert_eq!(client.readdir(file, 0), Err(Errno::ENOTDIR));
    });
}

#[test]
fn statfs_reports_the_host_filesystem() {
    with_gofer(|dir, client| {
        let (root, _) = client.attach().expect("attach");
        let ours = client.statfs(root).expect("statfs");
        let host = rustix::fs::statfs(dir).expect("statfs");
        assert_eq!(
            (ours.fs_type, ours.bsize, ours.blocks, ours.namelen),
            (host.f_type, host.f_bsize, host.f_blocks, host.f_namelen)
        );
    });
}

#[test]
fn the_client_is_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<GoferClient>();

    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..8 {
        fs::write(dir.path().join(i.to_string()), i.to_string()).expect("write");
    }
    let (ours, theirs) = seqpacket_pair();
    let root = open_root(dir.path()).expect("open_root");
    let server = thread::spawn(move || serve(root, theirs, true));
    let client = Arc::new(GoferClient::new(ours));
    let (root, _) = client.attach().expect("attach");
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for _ in 0..50 {
                    let (fid, _) = client.walk(root, i.to_string().as_bytes()).expect("walk");
                    assert_eq!(
                        read_all(client.open(fid, 0).expect("open")),
                        i.to_string().as_bytes()
                    );
                    client.clunk(fid);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    drop(client);
    server.join().expect("server thread").expect("a clean exit");
}

/// Sends raw bytes, with an optional FD, and decodes the reply.
fn raw_exchange(sock: &OwnedFd, bytes: &[u8], fd: Option<&OwnedFd>) -> Response {
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd.as_fd()];
        ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    }
    sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut ancillary,
        SendFlags::empty(),
    )
    .expect("send");
    let mut buf = vec![0; MAX_MESSAGE];
    let n = recv(sock, &mut buf, RecvFlags::empty()).expect("recv");
    postcard::from_bytes(&buf[..n]).expect("a well-formed reply")
}

#[test]
fn hostile_messages_get_errors_and_the_server_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = open_root(dir.path()).expect("open_root");
    let (ours, theirs) = seqpacket_pair();
    let server = thread::spawn(move || serve(root, theirs, true));
    let badmsg = Response::Error(Errno::EBADMSG.raw());

    for junk in [
        &[0xffu8; 7][..],
        &[200, 1, 2, 3],
        &[1],
        &[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    ] {
        assert_eq!(raw_exchange(&ours, junk, None), badmsg, "{junk:?}");
    }
    let mut trailing = postcard::to_stdvec(&Request::Attach).expect("encode");
    trailing.push(0);
    assert_eq!(raw_exchange(&ours, &trailing, None), badmsg);
    assert_eq!(
        raw_exchange(&ours, &vec![0; MAX_MESSAGE + 1], None),
        Response::Error(Errno::EMSGSIZE.raw())
    );
    // The client's own length check bypassed: the server checks too.
    let long = Request::Walk {
        dir: Fid(1),
        name: vec![b'a'; 60_000],
    };
    let long = postcard::to_stdvec(&long).expect("encode");
    assert_eq!(
        raw_exchange(&ours, &long, None),
        Response::Error(Errno::ENAMETOOLONG.raw())
    );

    // An FD sent along is closed, not kept: the pipe's only writer is ours.
    let (pipe_r, pipe_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).expect("pipe");
    let attach = postcard::to_stdvec(&Request::Attach).expect("encode");
    assert!(matches!(
        raw_exchange(&ours, &attach, Some(&pipe_w)),
        Response::Fid { .. }
    ));
    drop(pipe_w);
    assert_eq!(
        rustix::io::read(&pipe_r, &mut [0; 1]),
        Ok(0),
        "EOF: no writer left"
    );

    // An empty message reads as a close.
    send(&ours, &[], SendFlags::empty()).expect("send");
    server.join().expect("server thread").expect("a clean exit");
}

#[test]
fn a_lost_or_garbled_connection_is_eio_for_good() {
    let (ours, theirs) = seqpacket_pair();
    drop(theirs);
    let client = GoferClient::new(ours);
    assert_eq!(client.attach().map(drop), Err(Errno::EIO));

    let (ours, theirs) = seqpacket_pair();
    let liar = thread::spawn(move || {
        let mut buf = [0; 64];
        recv(&theirs, &mut buf, RecvFlags::empty()).expect("recv");
        send(&theirs, &[0xff; 9], SendFlags::empty()).expect("send");
        // Later requests would get well-formed, but stale, replies.
        let done = postcard::to_stdvec(&Response::Done).expect("encode");
        while recv(&theirs, &mut buf, RecvFlags::empty()).is_ok_and(|n| n > 0) {
            send(&theirs, &done, SendFlags::empty()).expect("send");
        }
    });
    let client = GoferClient::new(ours);
    assert_eq!(client.attach().map(drop), Err(Errno::EIO));
    assert_eq!(client.stat(Fid(1)), Err(Errno::EIO));
    drop(client);
    liar.join().expect("liar");
}

/// A sentry that exits with a reply still unread ends the connection as
/// cleanly as one that closes it between requests.
#[test]
fn a_reply_left_unread_ends_the_connection_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = open_root(dir.path()).expect("open_root");
    let (ours, theirs) = seqpacket_pair();
    let server = thread::spawn(move || serve(root, theirs, true));
    let attach = postcard::to_stdvec(&Request::Attach).expect("encode");
    sendmsg(
        &ours,
        &[IoSlice::new(&attach)],
        &mut SendAncillaryBuffer::default(),
        SendFlags::empty(),
    )
    .expect("send");
    // Wait until the reply is queued on our end, then leave without it.
    let mut pfd = [rustix::event::PollFd::new(
        &ours,
        rustix::event::PollFlags::IN,
    )];
    rustix::event::poll(&mut pfd, -1).expect("poll");
    drop(ours);
    server
        .join()
        .expect("server thread")
        .expect("a clean end, not a socket error");
}
