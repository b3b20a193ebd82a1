//! The root filesystem: a read-only lower layer (the gofer's files) under a
//! writable upper layer (a `MemFs`), as Linux's overlayfs. The lower layer
//! is never written.
//!
//! - A lower file is copied up, with its parents, when first opened for
//!   writing or truncated, keeping its metadata and inode number, so `ls`
//!   and `find` see stable numbers. Files made here are numbered by the
//!   upper layer, far above any host's numbers.
//! - Removing a name that exists in the lower layer leaves a whiteout in
//!   the upper directory; directories made here are opaque, so a lower
//!   directory once removed never shows through one made in its place.
//! - A directory lists its upper entries, then the lower ones that no
//!   upper entry or whiteout hides.
//! - A file open for reading before its copy-up reads the copy afterwards.
//! - Like overlayfs without redirect_dir, renaming a directory that has a
//!   lower layer fails with EXDEV (`mv` then copies).

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use veil_abi::mode::{S_IFLNK, S_IFMT, S_IFREG};
use veil_abi::{Errno, Stat};

use super::memfs::{MemFs, MemNode};
use crate::creds::Creds;
use crate::file::FileOps;
use crate::flags::{writes, O_RDONLY, O_TRUNC};
use crate::inode::{DirEntry, Inode, SetAttr};
use crate::vfs::{RENAME_EXCHANGE, RENAME_NOREPLACE};

/// The root of an overlay of `upper` (its root directory) over the
/// directory `lower`.
pub fn new(lower: Arc<dyn Inode>, upper: Arc<MemFs>) -> Result<Arc<dyn Inode>, Errno> {
    let root = lower.stat()?;
    if !root.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let fs = Arc::new(Overlay {
        changes: Mutex::new(()),
        dev: root.st_dev,
    });
    let upper = upper.root_node(&root);
    Ok(Node::new(fs, None, b"", Some(lower), Some(upper)))
}

struct Overlay {
    /// Serializes copy-up and changes, which span both layers.
    changes: Mutex<()>,
    /// The one device number the overlay reports, the lower root's, so that
    /// tools that stay on one filesystem (find -xdev) see all of it.
    dev: u64,
}

impl Overlay {
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Node {
    me: Weak<Node>,
    fs: Arc<Overlay>,
    /// The directory the node was found in and its name there: where
    /// copy-up puts it. Only nodes already in the upper layer move, and
    /// those never copy up again.
    parent: Option<Arc<Node>>,
    name: Vec<u8>,
    /// Absent for nodes made here, and for directories the upper layer
    /// makes opaque.
    lower: Option<Arc<dyn Inode>>,
    /// Set once the node is in the upper layer.
    upper: OnceLock<Arc<MemNode>>,
}

impl Node {
    fn new(
        fs: Arc<Overlay>,
        parent: Option<Arc<Node>>,
        name: &[u8],
        lower: Option<Arc<dyn Inode>>,
        upper: Option<Arc<MemNode>>,
    ) -> Arc<Node> {
        Arc::new_cyclic(|me| Node {
            me: me.clone(),
            fs,
            parent,
            name: name.to_vec(),
            lower,
            upper: upper.map_or_else(OnceLock::new, OnceLock::from),
        })
    }

    fn this(&self) -> Result<Arc<Node>, Errno> {
        self.me.upgrade().ok_or(Errno::ESTALE)
    }

    /// The layer that answers for the node: the upper once it exists.
    fn top(&self) -> Result<&dyn Inode, Errno> {
        match (self.upper.get(), &self.lower) {
            (Some(upper), _) => Ok(upper.as_ref()),
            (None, Some(lower)) => Ok(lower.as_ref()),
            (None, None) => Err(Errno::EIO),
        }
    }

    /// The child `name`, combining its layers.
    fn child(self: &Arc<Self>, name: &[u8]) -> Result<Arc<Node>, Errno> {
        let upper = match self.upper.get() {
            Some(dir) => dir.entry(name)?,
            None => None,
        };
        if upper.as_ref().is_some_and(|u| u.is_whiteout()) {
            return Err(Errno::ENOENT);
        }
        // An upper non-directory or opaque directory hides the lower
        // entry; an upper directory merges with a lower directory only.
        let lower = match &upper {
            Some(u) if !u.is_dir() || u.is_opaque() => None,
            _ => self
                .lower_child(name)?
                .filter(|l| upper.is_none() || l.stat().is_ok_and(|st| st.is_dir())),
        };
        if upper.is_none() && lower.is_none() {
            return Err(Errno::ENOENT);
        }
        Ok(Node::new(
            self.fs.clone(),
            Some(self.clone()),
            name,
            lower,
            upper,
        ))
    }

    /// The lower layer's entry `name`, unless this directory hides it.
    fn lower_child(&self, name: &[u8]) -> Result<Option<Arc<dyn Inode>>, Errno> {
        let (Some(lower), false) = (&self.lower, self.upper.get().is_some_and(|u| u.is_opaque()))
        else {
            return Ok(None);
        };
        match lower.lookup(name) {
            Ok(child) => Ok(Some(child)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether removing `name` from this directory needs a whiteout.
    fn lower_has(&self, name: &[u8]) -> Result<bool, Errno> {
        Ok(self.lower_child(name)?.is_some())
    }

    /// Brings the node, and first its parents, into the upper layer; with
    /// `data`, a regular file's contents too. The caller holds the lock.
    fn copy_up(&self, data: bool) -> Result<Arc<MemNode>, Errno> {
        if let Some(upper) = self.upper.get() {
            return Ok(upper.clone());
        }
        let (Some(parent), Some(lower)) = (&self.parent, &self.lower) else {
            return Err(Errno::EIO);
        };
        let dir = parent.copy_up(true)?;
        let st = lower.stat()?;
        let content = match st.st_mode & S_IFMT {
            S_IFREG if data => {
                if !dir.has_room(st.st_size.max(0) as u64) {
                    return Err(Errno::ENOSPC);
                }
                read_all(lower.clone(), &st)?
            }
            S_IFLNK => lower.readlink()?,
            _ => Vec::new(),
        };
        let node = dir.copy_in(&self.name, &st, content)?;
        copy_user_xattrs(lower.as_ref(), node.as_ref());
        Ok(self.upper.get_or_init(|| node).clone())
    }

    fn is_dir(&self) -> Result<bool, Errno> {
        Ok(self.top()?.stat()?.is_dir())
    }

    /// Whether a directory lists nothing.
    fn is_empty(&self) -> Result<bool, Errno> {
        Ok(self.readdir()?.is_empty())
    }

    /// Creates `name` in the upper layer with `make`, after copying this
    /// directory up; the new node hides any lower entry of that name.
    fn create_with(
        &self,
        name: &[u8],
        make: impl FnOnce(&MemNode) -> Result<(), Errno>,
    ) -> Result<Arc<Node>, Errno> {
        let me = self.this()?;
        let dir = me.copy_up(true)?;
        // `make` replaces a whiteout but not a visible entry.
        if dir.entry(name)?.is_none() && me.lower_has(name)? {
            return Err(Errno::EEXIST);
        }
        make(&dir)?;
        let upper = dir.entry(name)?.ok_or(Errno::EIO)?;
        Ok(Node::new(me.fs.clone(), Some(me), name, None, Some(upper)))
    }

    /// Removes `name` from the upper layer, leaving a whiteout if the lower
    /// layer has it.
    fn remove(
        &self,
        name: &[u8],
        remove_upper: impl FnOnce(&MemNode) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let dir = self.copy_up(true)?;
        if self.lower_has(name)? {
            dir.whiteout(name)
        } else {
            remove_upper(&dir)
        }
    }
}

impl Node {
    /// `inode` as a node of this overlay; EXDEV for another filesystem's.
    fn same_fs<'a>(&self, inode: &'a dyn Inode) -> Result<&'a Node, Errno> {
        inode
            .as_any()
            .downcast_ref::<Node>()
            .filter(|n| Arc::ptr_eq(&n.fs, &self.fs))
            .ok_or(Errno::EXDEV)
    }
}

/// Copy-up brings the lower file's user.* extended attributes along, as
/// far as the upper layer takes them: like overlayfs, a copy-up does not
/// fail for an attribute it cannot keep.
fn copy_user_xattrs(lower: &dyn Inode, upper: &dyn Inode) {
    let Ok(names) = lower.listxattr() else {
        return;
    };
    for name in names.iter().filter(|n| n.starts_with(b"user.")) {
        if let Ok(value) = lower.getxattr(name) {
            let _ = upper.setxattr(name, &value, 0);
        }
    }
}

/// A lower regular file's contents.
fn read_all(lower: Arc<dyn Inode>, st: &Stat) -> Result<Vec<u8>, Errno> {
    let file = lower.open(O_RDONLY)?;
    let mut data = vec![0; usize::try_from(st.st_size).map_err(|_| Errno::EFBIG)?];
    let mut done = 0;
    while done < data.len() {
        match file.read_at(&mut data[done..], done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    data.truncate(done);
    Ok(data)
}

impl Inode for Node {
    fn btime(&self) -> Option<veil_abi::Timespec> {
        self.top().ok()?.btime()
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let mut st = self.top()?.stat()?;
        st.st_dev = self.fs.dev;
        // A merged directory's size and link count are the lower one's: the
        // host's view, which the upper layer, holding only part of the
        // entries, cannot give.
        if let (Some(lower), true) = (&self.lower, st.is_dir() && self.upper.get().is_some()) {
            let host = lower.stat()?;
            st.st_size = host.st_size;
            st.st_blocks = host.st_blocks;
            st.st_nlink = host.st_nlink;
        }
        Ok(st)
    }

    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        if writes(flags) || flags & O_TRUNC != 0 {
            let _changing = self.fs.lock();
            return self.copy_up(flags & O_TRUNC == 0)?.open(flags);
        }
        match (self.upper.get(), &self.lower) {
            (Some(upper), _) => upper.clone().open(flags),
            (None, Some(lower)) => {
                let ops = lower.clone().open(flags)?;
                if !lower.stat()?.is_reg() {
                    return Ok(ops);
                }
                Ok(Box::new(LowerFile {
                    node: self,
                    lower: ops,
                    upper: OnceLock::new(),
                }))
            }
            (None, None) => Err(Errno::EIO),
        }
    }

    /// Metadata changes copy the file up, data included, as overlayfs does.
    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        self.copy_up(true)?.setattr(attr)
    }

    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        self.top()?.getxattr(name)
    }

    /// Like metadata changes, xattr changes copy the file up first.
    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        self.copy_up(true)?.setxattr(name, value, flags)
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        self.top()?.listxattr()
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        self.copy_up(true)?.removexattr(name)
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.this()?.child(name)?)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let Some(upper) = self.upper.get() else {
            return self.top()?.readdir();
        };
        let mut entries = upper.readdir()?;
        if let (Some(lower), false) = (&self.lower, upper.is_opaque()) {
            for e in lower.readdir()? {
                if upper.entry(&e.name)?.is_none() {
                    entries.push(e);
                }
            }
        }
        Ok(entries)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        self.top()?.readlink()
    }

    fn create(&self, name: &[u8], mode: u32, creds: &Creds) -> Result<Arc<dyn Inode>, Errno> {
        let _changing = self.fs.lock();
        Ok(self.create_with(name, |dir| dir.create(name, mode, creds).map(drop))?)
    }

    fn mkdir(&self, name: &[u8], mode: u32, creds: &Creds) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        let node = self.create_with(name, |dir| dir.mkdir(name, mode, creds))?;
        node.upper.get().ok_or(Errno::EIO)?.set_opaque()
    }

    fn tmpfile(&self, mode: u32, creds: &Creds, linkable: bool) -> Result<Arc<dyn Inode>, Errno> {
        let _changing = self.fs.lock();
        let me = self.this()?;
        let dir = me.copy_up(true)?;
        let upper = dir.tmpfile(mode, creds, linkable)?;
        let upper = upper
            .as_any()
            .downcast_ref::<MemNode>()
            .and_then(|n| n.this())
            .ok_or(Errno::EIO)?;
        Ok(Node::new(me.fs.clone(), Some(me), b"", None, Some(upper)))
    }

    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, creds: &Creds) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        self.create_with(name, |dir| dir.mknod(name, mode, rdev, creds))
            .map(drop)
    }

    fn symlink(&self, name: &[u8], target: &[u8], creds: &Creds) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        self.create_with(name, |dir| dir.symlink(name, target, creds))
            .map(drop)
    }

    fn link(&self, name: &[u8], target: &dyn Inode) -> Result<(), Errno> {
        let target = self.same_fs(target)?;
        let _changing = self.fs.lock();
        let upper = target.copy_up(true)?;
        self.create_with(name, |dir| dir.link_node(name, &upper))
            .map(drop)
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        if self.this()?.child(name)?.is_dir()? {
            return Err(Errno::EISDIR);
        }
        self.remove(name, |dir| dir.unlink(name))
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        let _changing = self.fs.lock();
        let victim = self.this()?.child(name)?;
        if !victim.is_dir()? {
            return Err(Errno::ENOTDIR);
        }
        if !victim.is_empty()? {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove(name, |dir| dir.rmdir(name))
    }

    fn rename(
        &self,
        name: &[u8],
        child: &dyn Inode,
        new_dir: &dyn Inode,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let (src, new_dir) = (self.same_fs(child)?, self.same_fs(new_dir)?);
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
            return Err(Errno::EINVAL);
        }
        let _changing = self.fs.lock();
        let src_is_dir = src.is_dir()?;
        if src_is_dir && src.lower.is_some() {
            return Err(Errno::EXDEV);
        }
        if flags & RENAME_EXCHANGE != 0 {
            let other = new_dir.this()?.child(new_name)?;
            let other_is_dir = other.is_dir()?;
            if other_is_dir && other.lower.is_some() {
                return Err(Errno::EXDEV);
            }
            let moved = src.copy_up(true)?;
            let swapped = other.copy_up(true)?;
            let dst_dir = new_dir.copy_up(true)?;
            let src_dir = self.copy_up(true)?;
            src_dir.rename(name, moved.as_ref(), dst_dir.as_ref(), new_name, flags)?;
            // No lower directory may show through where either lands.
            for (node, is_dir) in [(moved, src_is_dir), (swapped, other_is_dir)] {
                if is_dir {
                    node.set_opaque()?;
                }
            }
            return Ok(());
        }
        match new_dir.this()?.child(new_name) {
            Ok(_) if flags & RENAME_NOREPLACE != 0 => return Err(Errno::EEXIST),
            Ok(dst) if dst.is_dir()? && !dst.is_empty()? => return Err(Errno::ENOTEMPTY),
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let moved = src.copy_up(true)?;
        let dst_dir = new_dir.copy_up(true)?;
        let src_dir = self.copy_up(true)?;
        let whiteout = self.lower_has(name)?;
        src_dir.rename(name, moved.as_ref(), dst_dir.as_ref(), new_name, flags)?;
        if whiteout {
            src_dir.whiteout(name)?;
        }
        if src_is_dir {
            // No lower directory may show through where it lands.
            moved.set_opaque()?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A lower file open for reading. Once copied up (through another open),
/// it reads the copy, as overlayfs does since Linux 4.19.
struct LowerFile {
    node: Arc<Node>,
    lower: Box<dyn FileOps>,
    upper: OnceLock<Box<dyn FileOps>>,
}

impl FileOps for LowerFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let Some(copy) = self.node.upper.get() else {
            return self.lower.read_at(buf, off);
        };
        let ops = match self.upper.get() {
            Some(ops) => ops,
            None => {
                let ops = copy.clone().open(O_RDONLY)?;
                self.upper.get_or_init(|| ops)
            }
        };
        ops.read_at(buf, off)
    }

    /// The copy's data once there is one; the lower file only maps as a
    /// private copy.
    fn mappable(&self) -> Option<Arc<veil_memory::FileData>> {
        self.node.upper.get()?.file_data()
    }
}
