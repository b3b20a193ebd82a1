//! An in-memory filesystem: a tmpfs for now, and the writable upper layer
//! of the root overlay. File data lives in the memory file, so that shared
//! mappings map the file's own pages; it is bounded per filesystem (ENOSPC
//! past the limit).
//!
//! For the overlay, a directory entry may be a whiteout (a removed lower
//! entry) and a directory may be opaque (hiding the lower one). Whiteouts are
//! invisible to this filesystem's own operations: lookups miss them, listings
//! skip them, and creating or renaming onto one replaces it.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use veil_abi::mode::{
    dtype, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use veil_abi::{Errno, Stat, Timespec};
use veil_memory::{FileData, MemoryFile};

use super::now;
use crate::creds::Creds;
use crate::file::{FileOps, NoOps};
use crate::flags::O_TRUNC;
use crate::inode::{DirEntry, Inode, SetAttr, XATTR_CREATE, XATTR_REPLACE};
use crate::vfs::{RENAME_EXCHANGE, RENAME_NOREPLACE};

/// The default bound on the file data one filesystem holds.
pub const DEFAULT_SIZE_LIMIT: u64 = 2 << 30;
/// Inode numbers of files made here start far above any host's, so that
/// they never collide with the host inode numbers copied-up files keep.
const FIRST_INO: u64 = 1 << 48;
/// Linux tmpfs's directory size per entry.
const BOGO_DIRENT_SIZE: i64 = 20;
/// The most bytes of extended attribute names and values one file holds,
/// as tmpfs bounds the space its xattrs take (ENOSPC past it).
const XATTR_SPACE: usize = 128 << 10;

/// Device numbers of in-memory filesystems: anonymous ones, major 0.
static NEXT_DEV: AtomicU64 = AtomicU64::new(0x40);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One filesystem instance: its device number, inode numbering and budget.
pub struct MemFs {
    /// Serializes changes to the tree: a change may hold the locks of two
    /// directories, or of a directory and its child.
    changes: Mutex<()>,
    dev: u64,
    next_ino: AtomicU64,
    used: AtomicU64,
    /// A remount may change it.
    limit: AtomicU64,
    memfile: Arc<MemoryFile>,
}

impl MemFs {
    /// A filesystem holding at most `limit` bytes of file data in `memfile`.
    pub fn new(limit: u64, memfile: Arc<MemoryFile>) -> Arc<MemFs> {
        Arc::new(MemFs {
            changes: Mutex::new(()),
            dev: NEXT_DEV.fetch_add(1, Ordering::Relaxed),
            next_ino: AtomicU64::new(FIRST_INO),
            used: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
            memfile,
        })
    }

    /// Bytes of file data held, and the most it may hold.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.used.load(Ordering::Relaxed),
            self.limit.load(Ordering::Relaxed),
        )
    }

    /// A new limit, refused (EINVAL) below what is held, as Linux's tmpfs.
    pub fn set_limit(&self, limit: u64) -> Result<(), Errno> {
        let _changing = lock(&self.changes);
        if limit < self.used.load(Ordering::Relaxed) {
            return Err(Errno::EINVAL);
        }
        self.limit.store(limit, Ordering::Relaxed);
        Ok(())
    }

    /// A regular file with no name (memfd_create's).
    pub fn anon_file(self: &Arc<Self>, mode: u32, creds: &Creds) -> Arc<dyn Inode> {
        let node = self.node(S_IFREG | (mode & 0o7777), creds, self.file_body());
        lock(&node.meta).st_nlink = 0;
        node
    }

    fn file_body(&self) -> Body {
        Body::File(Arc::new(FileData::new(self.memfile.clone())))
    }

    /// A new, empty root directory (root's, mode 0755).
    pub fn root(self: &Arc<Self>) -> Arc<dyn Inode> {
        self.root_with_mode(0o755)
    }

    /// A new, empty root directory with permission bits `mode` (root's).
    pub fn root_with_mode(self: &Arc<Self>, mode: u32) -> Arc<dyn Inode> {
        self.node(S_IFDIR | (mode & 0o7777), &Creds::new(0, 0), Body::dir())
    }

    /// A new, empty root directory with `like`'s metadata (a lower root's).
    pub(crate) fn root_node(self: &Arc<Self>, like: &Stat) -> Arc<MemNode> {
        MemNode::new(self.clone(), *like, Body::dir())
    }

    fn node(self: &Arc<Self>, mode: u32, creds: &Creds, body: Body) -> Arc<MemNode> {
        let t = now();
        let meta = Stat {
            st_dev: self.dev,
            st_ino: self.next_ino.fetch_add(1, Ordering::Relaxed),
            st_nlink: 1,
            st_mode: mode,
            st_uid: creds.fsuid,
            st_gid: creds.fsgid,
            st_blksize: 4096,
            st_atime: t,
            st_mtime: t,
            st_ctime: t,
            ..Stat::default()
        };
        MemNode::new(self.clone(), meta, body)
    }

    /// Accounts a file growing or shrinking from `old` to `new` bytes.
    fn charge(&self, old: u64, new: u64) -> Result<(), Errno> {
        if new <= old {
            self.used.fetch_sub(old - new, Ordering::Relaxed);
            return Ok(());
        }
        let grow = new - old;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(grow)
                    .filter(|&u| u <= self.limit.load(Ordering::Relaxed))
            })
            .map(drop)
            .map_err(|_| Errno::ENOSPC)
    }
}

/// What a node holds, by file type.
enum Body {
    File(Arc<FileData>),
    Dir(Mutex<Dir>),
    Symlink(Vec<u8>),
    /// A named pipe.
    Fifo(crate::pipe::Fifo),
    /// A socket's name, or a device node (its number is in the metadata).
    Node,
    /// The overlay's mark of a removed lower entry.
    Whiteout,
}

impl Body {
    fn dir() -> Body {
        Body::Dir(Mutex::new(Dir::default()))
    }
}

#[derive(Default)]
struct Dir {
    entries: BTreeMap<Vec<u8>, Arc<MemNode>>,
    /// The overlay shows no lower directory beneath this one.
    opaque: bool,
}

impl Dir {
    fn get(&self, name: &[u8]) -> Option<&Arc<MemNode>> {
        self.entries.get(name).filter(|n| !n.is_whiteout())
    }

    fn is_empty(&self) -> bool {
        self.entries.values().all(|n| n.is_whiteout())
    }
}

/// A file, directory or symlink of a `MemFs`.
pub struct MemNode {
    me: Weak<MemNode>,
    fs: Arc<MemFs>,
    /// Owner, mode, identity, times and a file's link count; sizes and
    /// directories' link counts are derived.
    meta: Mutex<Stat>,
    body: Body,
    /// An O_TMPFILE file that `link` may still name (Linux's I_LINKABLE).
    linkable: std::sync::atomic::AtomicBool,
    /// When it was made, as tmpfs records it.
    btime: Timespec,
    /// Extended attributes of the user.* and trusted.* namespaces.
    xattrs: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Drop for MemNode {
    fn drop(&mut self) {
        if let Body::File(data) = &self.body {
            let _ = self.fs.charge(data.size(), 0);
        }
    }
}

impl MemNode {
    fn new(fs: Arc<MemFs>, meta: Stat, body: Body) -> Arc<MemNode> {
        Arc::new_cyclic(|me| MemNode {
            me: me.clone(),
            fs,
            btime: meta.st_ctime,
            meta: Mutex::new(meta),
            body,
            linkable: Default::default(),
            xattrs: Default::default(),
        })
    }

    fn dir(&self) -> Result<MutexGuard<'_, Dir>, Errno> {
        match &self.body {
            Body::Dir(d) => Ok(lock(d)),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn data(&self) -> Result<&Arc<FileData>, Errno> {
        match &self.body {
            Body::File(d) => Ok(d),
            Body::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn this(&self) -> Option<Arc<MemNode>> {
        self.me.upgrade()
    }

    pub(crate) fn file_data(&self) -> Option<Arc<FileData>> {
        self.data().ok().cloned()
    }

    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    pub(crate) fn is_whiteout(&self) -> bool {
        matches!(self.body, Body::Whiteout)
    }

    pub(crate) fn is_opaque(&self) -> bool {
        self.dir().is_ok_and(|d| d.opaque)
    }

    pub(crate) fn set_opaque(&self) -> Result<(), Errno> {
        self.dir()?.opaque = true;
        Ok(())
    }

    /// The entry `name`, whiteouts included.
    pub(crate) fn entry(&self, name: &[u8]) -> Result<Option<Arc<MemNode>>, Errno> {
        Ok(self.dir()?.entries.get(name).cloned())
    }

    /// Marks the lower entry `name` removed, replacing any entry there.
    pub(crate) fn whiteout(&self, name: &[u8]) -> Result<(), Errno> {
        let meta = Stat {
            st_dev: self.fs.dev,
            st_mode: S_IFCHR,
            ..Stat::default()
        };
        let node = MemNode::new(self.fs.clone(), meta, Body::Whiteout);
        let _changing = lock(&self.fs.changes);
        let replaced = self.dir()?.entries.insert(name.to_vec(), node);
        replaced.inspect(|n| n.unlinked());
        self.touch();
        Ok(())
    }

    /// Whether `len` more bytes of file data would fit now.
    pub(crate) fn has_room(&self, len: u64) -> bool {
        let used = self.fs.used.load(Ordering::Relaxed);
        used.checked_add(len)
            .is_some_and(|u| u <= self.fs.limit.load(Ordering::Relaxed))
    }

    /// Copies a lower file in as `name`, keeping its metadata, identity
    /// (device and inode numbers) included. `content` is the data of a
    /// regular file or the target of a symlink.
    pub(crate) fn copy_in(
        &self,
        name: &[u8],
        meta: &Stat,
        content: Vec<u8>,
    ) -> Result<Arc<MemNode>, Errno> {
        let body = match meta.st_mode & S_IFMT {
            S_IFREG => {
                let body = self.fs.file_body();
                if let Body::File(data) = &body {
                    data.write_at(&content, 0, |old, new| self.fs.charge(old, new))?;
                }
                body
            }
            S_IFDIR => Body::dir(),
            S_IFLNK => Body::Symlink(content),
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let meta = Stat {
            st_nlink: 1,
            ..*meta
        };
        let node = MemNode::new(self.fs.clone(), meta, body);
        self.link(name, node.clone())?;
        Ok(node)
    }

    fn add(
        &self,
        name: &[u8],
        mode: u32,
        creds: &Creds,
        body: Body,
    ) -> Result<Arc<MemNode>, Errno> {
        let node = self.fs.node(mode, creds, body);
        self.link(name, node.clone())?;
        Ok(node)
    }

    /// Enters `node` as `name`, replacing a whiteout but nothing else.
    fn link(&self, name: &[u8], node: Arc<MemNode>) -> Result<(), Errno> {
        let _changing = lock(&self.fs.changes);
        let mut dir = self.dir()?;
        if dir.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        dir.entries.insert(name.to_vec(), node);
        drop(dir);
        self.touch();
        Ok(())
    }

    /// Removes `name` once `check` approves of it.
    fn remove(
        &self,
        name: &[u8],
        check: impl FnOnce(&MemNode) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let _changing = lock(&self.fs.changes);
        let mut dir = self.dir()?;
        check(dir.get(name).ok_or(Errno::ENOENT)?)?;
        let removed = dir.entries.remove(name);
        drop(dir);
        // The file itself goes (and its data with it) once unreferenced:
        // open files keep it.
        removed.inspect(|n| n.unlinked());
        self.touch();
        Ok(())
    }

    /// Records that the file lost a name (fstat shows the count).
    fn unlinked(&self) {
        let mut meta = lock(&self.meta);
        meta.st_nlink = meta.st_nlink.saturating_sub(1);
        meta.st_ctime = now();
    }

    /// Enters `target`, a non-directory of this filesystem, as `name`.
    pub(crate) fn link_node(&self, name: &[u8], target: &MemNode) -> Result<(), Errno> {
        if !Arc::ptr_eq(&self.fs, &target.fs) {
            return Err(Errno::EXDEV);
        }
        if target.is_dir() {
            return Err(Errno::EPERM);
        }
        let node = target.me.upgrade().ok_or(Errno::ENOENT)?;
        // A file without names (an open, unlinked one) gets none back,
        // unless it is an O_TMPFILE file not yet named.
        let unnamed = lock(&node.meta).st_nlink == 0;
        if unnamed && !node.linkable.load(Ordering::Relaxed) {
            return Err(Errno::ENOENT);
        }
        self.link(name, node.clone())?;
        if unnamed {
            node.linkable.store(false, Ordering::Relaxed);
        }
        let mut meta = lock(&node.meta);
        meta.st_nlink += 1;
        meta.st_ctime = now();
        Ok(())
    }

    /// Updates the modification and change times.
    fn touch(&self) {
        let t = now();
        let mut meta = lock(&self.meta);
        meta.st_mtime = t;
        meta.st_ctime = t;
    }

    fn set_len(&self, len: u64) -> Result<(), Errno> {
        self.data()?
            .set_len(len, |old, new| self.fs.charge(old, new))
    }
}

/// tmpfs keeps the user.* and trusted.* namespaces; the others (security.*
/// with no security module, system.* without ACLs) are EOPNOTSUPP.
fn xattr_namespace(name: &[u8]) -> Result<(), Errno> {
    if name.starts_with(b"user.") || name.starts_with(b"trusted.") {
        Ok(())
    } else {
        Err(Errno::EOPNOTSUPP)
    }
}

impl Inode for MemNode {
    fn btime(&self) -> Option<Timespec> {
        Some(self.btime)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let mut st = *lock(&self.meta);
        match &self.body {
            Body::File(data) => {
                st.st_size = data.size() as i64;
                st.st_blocks = (st.st_size + 511) / 512;
            }
            Body::Dir(dir) => {
                let dir = lock(dir);
                let subdirs = dir.entries.values().filter(|n| n.is_dir()).count();
                st.st_size = (dir.entries.len() as i64 + 2) * BOGO_DIRENT_SIZE;
                st.st_nlink = 2 + subdirs as u64;
            }
            Body::Symlink(target) => st.st_size = target.len() as i64,
            Body::Fifo(_) | Body::Node | Body::Whiteout => {}
        }
        Ok(st)
    }

    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let mut meta = lock(&self.meta);
        if let Some(mode) = attr.mode {
            meta.st_mode = (meta.st_mode & S_IFMT) | (mode & 0o7777);
        }
        meta.st_uid = attr.uid.unwrap_or(meta.st_uid);
        meta.st_gid = attr.gid.unwrap_or(meta.st_gid);
        meta.st_atime = attr.atime.unwrap_or(meta.st_atime);
        meta.st_mtime = attr.mtime.unwrap_or(meta.st_mtime);
        meta.st_ctime = now();
        Ok(())
    }

    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        xattr_namespace(name)?;
        lock(&self.xattrs).get(name).cloned().ok_or(Errno::ENODATA)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        xattr_namespace(name)?;
        let mut xattrs = lock(&self.xattrs);
        let old = xattrs.get(name);
        if old.is_some() && flags & XATTR_CREATE != 0 {
            return Err(Errno::EEXIST);
        }
        if old.is_none() && flags & XATTR_REPLACE != 0 {
            return Err(Errno::ENODATA);
        }
        let used: usize = xattrs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let freed = old.map_or(0, |v| name.len() + v.len());
        if used - freed + name.len() + value.len() > XATTR_SPACE {
            return Err(Errno::ENOSPC);
        }
        xattrs.insert(name.to_vec(), value.to_vec());
        drop(xattrs);
        lock(&self.meta).st_ctime = now();
        Ok(())
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        Ok(lock(&self.xattrs).keys().cloned().collect())
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        xattr_namespace(name)?;
        lock(&self.xattrs).remove(name).ok_or(Errno::ENODATA)?;
        lock(&self.meta).st_ctime = now();
        Ok(())
    }

    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        match &self.body {
            Body::File(_) => {
                if flags & O_TRUNC != 0 {
                    self.set_len(0)?;
                    self.touch();
                }
                Ok(Box::new(MemFile(self)))
            }
            Body::Dir(_) => Ok(Box::new(NoOps)),
            Body::Fifo(fifo) => fifo.open(lock(&self.meta).st_ino, flags),
            Body::Node => {
                let meta = *lock(&self.meta);
                match meta.st_mode & S_IFMT {
                    S_IFCHR => super::devfs::open_device(meta.st_rdev),
                    _ => Err(Errno::ENXIO),
                }
            }
            Body::Symlink(_) => Err(Errno::ELOOP),
            Body::Whiteout => Err(Errno::ENOENT),
        }
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let node = self.dir()?.get(name).cloned().ok_or(Errno::ENOENT)?;
        Ok(node)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let dir = self.dir()?;
        let entries = dir.entries.iter().filter(|(_, n)| !n.is_whiteout());
        Ok(entries
            .map(|(name, node)| {
                let meta = lock(&node.meta);
                DirEntry {
                    name: name.clone(),
                    ino: meta.st_ino,
                    dtype: dtype(meta.st_mode),
                }
            })
            .collect())
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        match &self.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn create(&self, name: &[u8], mode: u32, creds: &Creds) -> Result<Arc<dyn Inode>, Errno> {
        let body = self.fs.file_body();
        Ok(self.add(name, S_IFREG | (mode & 0o7777), creds, body)?)
    }

    fn tmpfile(&self, mode: u32, creds: &Creds, linkable: bool) -> Result<Arc<dyn Inode>, Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let node = self
            .fs
            .node(S_IFREG | (mode & 0o7777), creds, self.fs.file_body());
        lock(&node.meta).st_nlink = 0;
        node.linkable.store(linkable, Ordering::Relaxed);
        Ok(node)
    }

    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, creds: &Creds) -> Result<(), Errno> {
        let body = match mode & S_IFMT {
            S_IFIFO => Body::Fifo(Default::default()),
            S_IFCHR | S_IFBLK => Body::Node,
            S_IFSOCK => Body::Node,
            _ => return Err(Errno::EINVAL),
        };
        let node = self.add(name, mode, creds, body)?;
        if mode & S_IFMT != S_IFIFO && mode & S_IFMT != S_IFSOCK {
            lock(&node.meta).st_rdev = rdev;
        }
        Ok(())
    }

    fn mkdir(&self, name: &[u8], mode: u32, creds: &Creds) -> Result<(), Errno> {
        self.add(name, S_IFDIR | (mode & 0o7777), creds, Body::dir())?;
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], creds: &Creds) -> Result<(), Errno> {
        let body = Body::Symlink(target.to_vec());
        self.add(name, S_IFLNK | 0o777, creds, body)?;
        Ok(())
    }

    fn link(&self, name: &[u8], target: &dyn Inode) -> Result<(), Errno> {
        let target = target
            .as_any()
            .downcast_ref::<MemNode>()
            .ok_or(Errno::EXDEV)?;
        self.link_node(name, target)
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        self.remove(name, |n| match n.is_dir() {
            true => Err(Errno::EISDIR),
            false => Ok(()),
        })
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        self.remove(name, |n| match n.dir()?.is_empty() {
            true => Ok(()),
            false => Err(Errno::ENOTEMPTY),
        })
    }

    fn rename(
        &self,
        name: &[u8],
        _child: &dyn Inode,
        new_dir: &dyn Inode,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let new_dir = new_dir
            .as_any()
            .downcast_ref::<MemNode>()
            .filter(|d| Arc::ptr_eq(&d.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
            return Err(Errno::EINVAL);
        }
        if std::ptr::eq(self, new_dir) && name == new_name {
            return Ok(());
        }
        let _changing = lock(&self.fs.changes);
        let mut src_dir = self.dir()?;
        let mut dst_guard = match std::ptr::eq(self, new_dir) {
            true => None,
            false => Some(new_dir.dir()?),
        };
        let node = src_dir.get(name).cloned().ok_or(Errno::ENOENT)?;
        let dst_dir = match dst_guard.as_deref_mut() {
            Some(d) => d,
            None => &mut *src_dir,
        };
        if flags & RENAME_EXCHANGE != 0 {
            let other = dst_dir.get(new_name).cloned().ok_or(Errno::ENOENT)?;
            dst_dir.entries.insert(new_name.to_vec(), node.clone());
            src_dir.entries.insert(name.to_vec(), other.clone());
            drop((src_dir, dst_guard));
            self.touch();
            new_dir.touch();
            lock(&node.meta).st_ctime = now();
            lock(&other.meta).st_ctime = now();
            return Ok(());
        }
        if let Some(old) = dst_dir.get(new_name) {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            match (node.is_dir(), old.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !old.dir()?.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let replaced = dst_dir.entries.insert(new_name.to_vec(), node.clone());
        src_dir.entries.remove(name);
        drop((src_dir, dst_guard));
        replaced.inspect(|n| n.unlinked());
        self.touch();
        new_dir.touch();
        lock(&node.meta).st_ctime = now();
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open regular file.
struct MemFile(Arc<MemNode>);

impl FileOps for MemFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.0.data()?.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        let n = self
            .0
            .data()?
            .write_at(buf, off, |old, new| self.0.fs.charge(old, new))?;
        self.0.touch();
        Ok(n)
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.0.set_len(len)?;
        self.0.touch();
        Ok(())
    }

    fn allocate(&self, mode: u32, off: u64, len: u64) -> Result<(), Errno> {
        use linux_raw_sys::general::{FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE};
        let data = self.0.data()?;
        let end = off.saturating_add(len);
        if mode & FALLOC_FL_PUNCH_HOLE != 0 {
            data.zero_range(off, end)?;
        } else if mode & FALLOC_FL_KEEP_SIZE == 0 {
            // Memory is not reserved ahead: the pages come on first use.
            data.grow_to(end, |old, new| self.0.fs.charge(old, new))?;
        } else {
            return Ok(());
        }
        self.0.touch();
        Ok(())
    }

    fn mappable(&self) -> Option<Arc<FileData>> {
        self.0.data().ok().cloned()
    }
}
