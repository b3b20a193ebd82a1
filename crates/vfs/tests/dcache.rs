//! The dentry cache stays bounded: a walk over many names does not pin
//! every inode it met (a gofer inode pins a host FD), while names in use
//! stay cached.
#![allow(clippy::unwrap_used)] // A test's failure is a panic.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Fs;
use veil_abi::{Errno, Stat};
use veil_vfs::{FileOps, Inode, Vfs};

/// Inodes alive right now, for the test's one filesystem.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A directory in which every name exists: a file, or (names starting with
/// 'd') a directory of the same kind.
struct Node {
    dir: bool,
}

impl Node {
    fn make(dir: bool) -> Arc<dyn Inode> {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Arc::new(Node { dir })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inode for Node {
    fn stat(&self) -> Result<Stat, Errno> {
        let mode = if self.dir { 0o040755 } else { 0o100644 };
        Ok(Stat {
            st_mode: mode,
            st_nlink: 1,
            ..Stat::default()
        })
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        if !self.dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(Node::make(name.starts_with(b"d")))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn unused_dentries_are_evicted_and_used_ones_kept() {
    let fs = Fs::new(Vfs::new(Node::make(true)));
    let held = fs.lookup("/dkeep/dinner/file").unwrap();
    let held_stat_ino = Arc::as_ptr(held.inode()) as *const u8;
    for i in 0..20_000 {
        fs.lookup(&format!("/dwide/f{i}")).unwrap();
    }
    let live = LIVE.load(Ordering::SeqCst);
    assert!(
        live < 10_000,
        "{live} inodes alive after 20000 lookups: the cache is unbounded"
    );
    // The held path and its ancestors were not evicted: the same inode.
    let again = fs.lookup("/dkeep/dinner/file").unwrap();
    assert_eq!(Arc::as_ptr(again.inode()) as *const u8, held_stat_ino);
    assert_eq!(fs.path_of(&held), "/dkeep/dinner/file");
}

/// A watched directory stays cached however many other names are looked
/// up, so its inotify watch keeps reporting.
#[test]
fn watched_dentries_stay_cached() {
    use veil_vfs::fs::memfs::MemFs;
    use veil_vfs::inotify::{new_instance, IN_CREATE};
    let fs = Fs::new(Vfs::new(MemFs::new(1 << 30, common::memfile()).root()));
    fs.mkdir("/watched").unwrap();
    fs.mkdir("/many").unwrap();
    let inotify = new_instance();
    let watched = fs.lookup("/watched").unwrap();
    inotify.0.add_watch(&watched.dentry, IN_CREATE).unwrap();
    drop(watched);
    for i in 0..6000 {
        fs.write(&format!("/many/f{i}"), b"").unwrap();
        fs.lookup(&format!("/many/f{i}")).unwrap();
    }
    fs.write("/watched/new", b"").unwrap();
    let mut buf = [0u8; 64];
    let n = inotify.read(&mut buf, 0).expect("an event");
    assert_eq!(&buf[16..19], b"new", "{:?}", &buf[..n]);
}
