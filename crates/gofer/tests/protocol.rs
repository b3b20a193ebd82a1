//! The gofer serves a directory tree and nothing outside it.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt};

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use veil_abi::Errno;
use veil_gofer::{open_root, serve, GoferClient};

struct Served {
    dir: tempfile::TempDir,
    client: GoferClient,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        // Closing the client ends the server loop.
        let client = std::mem::replace(&mut self.client, GoferClient::new(pair().0));
        drop(client);
        if let Some(h) = self.server.take() {
            h.join().expect("server thread");
        }
    }
}

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

fn served(populate: impl FnOnce(&std::path::Path)) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let root = open_root(dir.path()).expect("root");
    let (a, b) = pair();
    let server = std::thread::spawn(move || serve(root, b).expect("serve"));
    Served {
        dir,
        client: GoferClient::new(a),
        server: Some(server),
    }
}

#[test]
fn walks_stats_opens_and_reads() {
    let s = served(|d| {
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/file"), b"hello gofer").expect("write");
    });
    let (root, st) = s.client.attach().expect("attach");
    assert_eq!(st.mode & 0o170000, 0o040000);
    let (sub, _) = s.client.walk(root, b"sub").expect("walk sub");
    let (file, st) = s.client.walk(sub, b"file").expect("walk file");
    let meta = std::fs::symlink_metadata(s.dir.path().join("sub/file")).expect("meta");
    assert_eq!(
        (st.ino, st.size as u64, st.mode, st.nlink),
        (meta.ino(), meta.size(), meta.mode(), meta.nlink())
    );
    assert_eq!(
        (st.uid, st.gid, st.mtime.0),
        (meta.uid(), meta.gid(), meta.mtime())
    );
    let fd = s.client.open(file, 0).expect("open");
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "hello gofer");
    assert_eq!(s.client.walk(file, b"x").map(|_| ()), Err(Errno::ENOTDIR));
    assert_eq!(
        s.client.walk(sub, b"missing").map(|_| ()),
        Err(Errno::ENOENT)
    );
    // Reading updated the access time; everything else is unchanged.
    let again = s.client.stat(file).expect("stat");
    assert_eq!(
        veil_gofer::HostStat {
            atime: st.atime,
            ..again
        },
        st
    );
}

#[test]
fn symlinks_are_never_followed() {
    let s = served(|d| {
        symlink("/etc", d.join("escape")).expect("symlink");
        symlink("../../../../..", d.join("up")).expect("symlink");
    });
    let (root, _) = s.client.attach().expect("attach");
    let (link, st) = s.client.walk(root, b"escape").expect("walk link");
    assert_eq!(st.mode & 0o170000, 0o120000, "the fid is the link itself");
    assert_eq!(s.client.readlink(link).expect("readlink"), b"/etc");
    assert_eq!(
        s.client.walk(link, b"passwd").map(|_| ()),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(s.client.open(link, 0).map(|_| ()), Err(Errno::ELOOP));
    let (up, _) = s.client.walk(root, b"up").expect("walk up");
    assert_eq!(s.client.readdir(up, 0).map(|_| ()), Err(Errno::ELOOP));
    assert_eq!(s.client.readlink(root), Err(Errno::EINVAL));
}

#[test]
fn hostile_names_are_rejected() {
    let s = served(|_| {});
    let (root, _) = s.client.attach().expect("attach");
    for name in [&b".."[..], b".", b"", b"a/b", b"/etc", b"a\0b"] {
        assert_eq!(
            s.client.walk(root, name).map(|_| ()),
            Err(Errno::EINVAL),
            "{name:?}"
        );
    }
    assert_eq!(
        s.client.walk(root, &[b'x'; 256]).map(|_| ()),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        s.client.stat(veil_gofer::Fid(9999)).map(|_| ()),
        Err(Errno::EBADF)
    );
}

#[test]
fn only_regular_files_and_directories_open_read_only() {
    let s = served(|d| {
        std::fs::write(d.join("f"), b"x").expect("write");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RWXU,
            0,
        )
        .expect("mkfifo");
    });
    let (root, _) = s.client.attach().expect("attach");
    let (f, _) = s.client.walk(root, b"f").expect("walk");
    assert_eq!(s.client.open(f, 1).map(|_| ()), Err(Errno::EROFS));
    assert_eq!(s.client.open(f, 2).map(|_| ()), Err(Errno::EROFS));
    let (fifo, _) = s.client.walk(root, b"fifo").expect("walk fifo");
    assert_eq!(s.client.open(fifo, 0).map(|_| ()), Err(Errno::EACCES));
    let dir = s.client.open(root, 0o200000).expect("open dir");
    assert!(rustix::fs::fstat(dir.as_fd()).expect("fstat").st_mode & 0o040000 != 0);
}

#[test]
fn readdir_pages_through_large_directories() {
    const N: usize = 3000;
    let s = served(|d| {
        for i in 0..N {
            std::fs::write(d.join(format!("entry-with-a-longish-name-{i:05}")), b"")
                .expect("write");
        }
    });
    let (root, _) = s.client.attach().expect("attach");
    let mut seen = HashSet::new();
    let mut cookie = 0;
    let mut pages = 0;
    loop {
        let page = s.client.readdir(root, cookie).expect("readdir");
        let Some(last) = page.last() else { break };
        cookie = last.cookie;
        pages += 1;
        for e in page {
            assert_eq!(e.dtype, 8);
            assert!(seen.insert(e.name), "an entry came twice");
        }
    }
    assert_eq!(seen.len(), N);
    assert!(pages > 1, "a large directory needs several pages");
}

#[test]
fn garbage_requests_get_errors_not_a_dead_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = open_root(dir.path()).expect("root");
    let (a, b) = pair();
    let server = std::thread::spawn(move || serve(root, b));
    for junk in [&[0xffu8; 7][..], &[200, 1, 2, 3], &[1]] {
        rustix::net::send(&a, junk, rustix::net::SendFlags::empty()).expect("send");
        let mut buf = [0u8; 64];
        let n = rustix::net::recv(&a, &mut buf, rustix::net::RecvFlags::empty()).expect("recv");
        assert!(n > 0, "the server answers");
    }
    let client = GoferClient::new(a);
    client.attach().expect("still serving");
    drop(client);
    server.join().expect("thread").expect("clean exit");
}
