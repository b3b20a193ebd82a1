//! The root filesystem: a read-only lower layer served by the gofer under a
//! writable upper layer kept in sentry memory. A node without a lower layer
//! is a plain in-memory file, so the same nodes make a tmpfs-like
//! filesystem. The host is never written.
//!
//! Copy-up happens on the first write (or truncate) of a lower file; removing
//! a lower entry leaves a whiteout in its directory. A node's lower layer is
//! fixed at creation, so a directory made over a whiteout is opaque by
//! construction.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use veil_abi::mode::{dtype, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use veil_abi::{Errno, Stat, Timespec};

use crate::creds::Creds;
use crate::file::{DirEntry, FileOps};
use crate::gofer::GoferNode;
use crate::inode::Inode;

/// Default bound on the bytes the upper layer may hold.
pub const DEFAULT_LIMIT: u64 = 2 << 30;
/// Inode numbers of nodes created in the sandbox start here, far above the
/// host's, so the two never collide.
const FIRST_INO: u64 = 1 << 48;
/// Device number of nodes that exist only in memory.
const MEMORY_DEV: u64 = 0x2c;

/// One overlay instance: its byte budget and inode numbering.
pub struct OverlayFs {
    used: AtomicU64,
    limit: u64,
    next_ino: AtomicU64,
}

impl OverlayFs {
    pub fn new(limit: u64) -> Arc<OverlayFs> {
        Arc::new(OverlayFs {
            used: AtomicU64::new(0),
            limit,
            next_ino: AtomicU64::new(FIRST_INO),
        })
    }

    /// A root directory over `lower`, or an empty in-memory one.
    pub fn root(self: &Arc<Self>, lower: Option<Arc<GoferNode>>) -> Result<Arc<dyn Inode>, Errno> {
        let node = match lower {
            Some(lower) => {
                if !lower.stat().is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                Node::lower(self.clone(), Weak::new(), b"", lower)
            }
            None => Node::upper(
                self.clone(),
                Weak::new(),
                b"",
                S_IFDIR | 0o755,
                &Creds::default(),
                Upper::default(),
            ),
        };
        Ok(node)
    }

    fn charge(&self, old: usize, new: usize) -> Result<(), Errno> {
        if new <= old {
            self.used.fetch_sub((old - new) as u64, Ordering::Relaxed);
            return Ok(());
        }
        let grow = (new - old) as u64;
        let prev = self.used.fetch_add(grow, Ordering::Relaxed);
        if prev + grow > self.limit {
            self.used.fetch_sub(grow, Ordering::Relaxed);
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }
}

/// The in-memory layer of a node: its metadata and contents.
#[derive(Default)]
struct Upper {
    meta: Stat,
    data: Vec<u8>,
    target: Vec<u8>,
}

struct State {
    /// `None` while the node is only in the lower layer.
    upper: Option<Upper>,
    /// Directories: children looked up or created so far.
    children: HashMap<Vec<u8>, Arc<Node>>,
    /// Directories: lower entries removed in the sandbox.
    whiteouts: HashSet<Vec<u8>>,
}

pub struct Node {
    /// This node's own Arc, for handing out parent links.
    me: Weak<Node>,
    fs: Arc<OverlayFs>,
    lower: Option<Arc<GoferNode>>,
    parent: Mutex<Weak<Node>>,
    name: Mutex<Vec<u8>>,
    state: Mutex<State>,
}

fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

impl Node {
    fn lower(
        fs: Arc<OverlayFs>,
        parent: Weak<Node>,
        name: &[u8],
        lower: Arc<GoferNode>,
    ) -> Arc<Node> {
        Arc::new_cyclic(|me| Node {
            me: me.clone(),
            fs,
            lower: Some(lower),
            parent: Mutex::new(parent),
            name: Mutex::new(name.to_vec()),
            state: Mutex::new(State {
                upper: None,
                children: HashMap::new(),
                whiteouts: HashSet::new(),
            }),
        })
    }

    fn upper(
        fs: Arc<OverlayFs>,
        parent: Weak<Node>,
        name: &[u8],
        mode: u32,
        creds: &Creds,
        mut upper: Upper,
    ) -> Arc<Node> {
        let t = now();
        upper.meta = Stat {
            st_dev: MEMORY_DEV,
            st_ino: fs.next_ino.fetch_add(1, Ordering::Relaxed),
            st_nlink: if mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            st_mode: mode,
            st_uid: creds.euid,
            st_gid: creds.egid,
            st_blksize: 4096,
            st_atime: t,
            st_mtime: t,
            st_ctime: t,
            ..Stat::default()
        };
        Arc::new_cyclic(|me| Node {
            me: me.clone(),
            fs,
            lower: None,
            parent: Mutex::new(parent),
            name: Mutex::new(name.to_vec()),
            state: Mutex::new(State {
                upper: Some(upper),
                children: HashMap::new(),
                whiteouts: HashSet::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node_stat(&self) -> Result<Stat, Errno> {
        let st = self.lock();
        match (&st.upper, &self.lower) {
            (Some(u), _) => {
                let mut meta = u.meta;
                if meta.st_mode & S_IFMT == S_IFREG {
                    meta.st_size = u.data.len() as i64;
                    meta.st_blocks = (u.data.len() as i64 + 511) / 512;
                } else if meta.st_mode & S_IFMT == S_IFLNK {
                    meta.st_size = u.target.len() as i64;
                }
                Ok(meta)
            }
            (None, Some(lower)) => Ok(lower.stat()),
            (None, None) => Err(Errno::EIO),
        }
    }

    fn is_dir(&self) -> bool {
        self.node_stat().is_ok_and(|s| s.is_dir())
    }

    /// Brings the node into the upper layer, copying its parent up first.
    fn copy_up(self: &Arc<Self>, with_data: bool) -> Result<(), Errno> {
        if self.lock().upper.is_some() {
            return Ok(());
        }
        let parent = self
            .parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        if let Some(parent) = parent {
            parent.copy_up(true)?;
        }
        let lower = self.lower.as_ref().ok_or(Errno::EIO)?;
        let meta = lower.stat();
        let mut upper = Upper {
            meta,
            ..Upper::default()
        };
        match meta.st_mode & S_IFMT {
            S_IFREG if with_data => {
                let size = usize::try_from(meta.st_size).map_err(|_| Errno::EFBIG)?;
                self.fs.charge(0, size)?;
                upper.data = vec![0; size];
                let mut done = 0;
                while done < size {
                    match lower.read_at(&mut upper.data[done..], done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) => {
                            self.fs.charge(size, 0)?;
                            return Err(e);
                        }
                    }
                }
                upper.data.truncate(done);
                self.fs.charge(size, done)?;
            }
            S_IFLNK => upper.target = lower.readlink()?,
            _ => {}
        }
        let mut st = self.lock();
        if st.upper.is_none() {
            st.upper = Some(upper);
        }
        Ok(())
    }

    fn touch(&self) {
        if let Some(u) = self.lock().upper.as_mut() {
            let t = now();
            u.meta.st_mtime = t;
            u.meta.st_ctime = t;
        }
    }

    fn child(self: &Arc<Self>, name: &[u8]) -> Result<Arc<Node>, Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        {
            let st = self.lock();
            if st.whiteouts.contains(name) {
                return Err(Errno::ENOENT);
            }
            if let Some(c) = st.children.get(name) {
                return Ok(c.clone());
            }
        }
        let lower = self.lower.as_ref().ok_or(Errno::ENOENT)?.lookup(name)?;
        let node = Node::lower(self.fs.clone(), Arc::downgrade(self), name, lower);
        let mut st = self.lock();
        Ok(st.children.entry(name.to_vec()).or_insert(node).clone())
    }

    fn add_child(
        self: &Arc<Self>,
        name: &[u8],
        mode: u32,
        creds: &Creds,
        upper: Upper,
    ) -> Result<Arc<Node>, Errno> {
        self.copy_up(true)?;
        if self.child(name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let node = Node::upper(
            self.fs.clone(),
            Arc::downgrade(self),
            name,
            mode,
            creds,
            upper,
        );
        {
            let mut st = self.lock();
            st.children.insert(name.to_vec(), node.clone());
            if mode & S_IFMT == S_IFDIR {
                if let Some(u) = st.upper.as_mut() {
                    u.meta.st_nlink += 1;
                }
            }
        }
        self.touch();
        Ok(node)
    }

    fn entries(self: &Arc<Self>) -> Result<Vec<DirEntry>, Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let lower = match &self.lower {
            Some(l) => l.readdir()?,
            None => Vec::new(),
        };
        let st = self.lock();
        let mut out: Vec<DirEntry> = lower
            .into_iter()
            .filter(|e| !st.whiteouts.contains(&e.name) && !st.children.contains_key(&e.name))
            .collect();
        let children: Vec<(Vec<u8>, Arc<Node>)> = st
            .children
            .iter()
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect();
        drop(st);
        for (name, c) in children {
            let s = c.node_stat()?;
            out.push(DirEntry {
                name,
                ino: s.st_ino,
                dtype: dtype(s.st_mode),
            });
        }
        Ok(out)
    }

    /// Removes `name` from this directory, leaving a whiteout over any
    /// lower entry.
    fn remove_child(self: &Arc<Self>, name: &[u8], victim: &Arc<Node>) -> Result<(), Errno> {
        self.copy_up(true)?;
        let mut st = self.lock();
        st.children.remove(name);
        if victim.lower.is_some() {
            st.whiteouts.insert(name.to_vec());
        }
        if victim.is_dir() {
            if let Some(u) = st.upper.as_mut() {
                u.meta.st_nlink = u.meta.st_nlink.saturating_sub(1);
            }
        }
        drop(st);
        self.touch();
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = &st.upper {
            // Returning bytes to the budget cannot fail.
            let _ = self.fs.charge(u.data.len(), 0);
        }
    }
}

impl Node {
    /// An unlinked file lives on while open, with no links.
    fn mark_unlinked(&self) {
        if let Some(u) = self.lock().upper.as_mut() {
            u.meta.st_nlink = 0;
        }
    }

    fn arc(&self) -> Result<Arc<Node>, Errno> {
        self.me.upgrade().ok_or(Errno::ESTALE)
    }
}

impl Inode for Node {
    fn stat(&self) -> Result<Stat, Errno> {
        self.node_stat()
    }

    fn open(self: Arc<Self>, _flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(NodeFile(self)))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.arc()?.child(name)?)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        self.arc()?.entries()
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        let st = self.lock();
        match (&st.upper, &self.lower) {
            (Some(u), _) if u.meta.st_mode & S_IFMT == S_IFLNK => Ok(u.target.clone()),
            (None, Some(lower)) if lower.stat().is_symlink() => lower.readlink(),
            _ => Err(Errno::EINVAL),
        }
    }

    fn create(&self, name: &[u8], mode: u32, creds: &Creds) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self
            .arc()?
            .add_child(name, S_IFREG | (mode & 0o7777), creds, Upper::default())?)
    }

    fn mkdir(&self, name: &[u8], mode: u32, creds: &Creds) -> Result<(), Errno> {
        self.arc()?
            .add_child(name, S_IFDIR | (mode & 0o7777), creds, Upper::default())?;
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], creds: &Creds) -> Result<(), Errno> {
        let upper = Upper {
            target: target.to_vec(),
            ..Upper::default()
        };
        self.arc()?.add_child(name, S_IFLNK | 0o777, creds, upper)?;
        Ok(())
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        let me = self.arc()?;
        let victim = me.child(name)?;
        if victim.is_dir() {
            return Err(Errno::EISDIR);
        }
        me.remove_child(name, &victim)?;
        victim.mark_unlinked();
        Ok(())
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        let me = self.arc()?;
        let victim = me.child(name)?;
        if !victim.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !victim.entries()?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        me.remove_child(name, &victim)
    }

    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> Result<(), Errno> {
        let me = self.arc()?;
        let dst_dir = new_dir
            .as_any()
            .downcast_ref::<Node>()
            .ok_or(Errno::EXDEV)?
            .arc()?;
        if !Arc::ptr_eq(&me.fs, &dst_dir.fs) {
            return Err(Errno::EXDEV);
        }
        let src = me.child(name)?;
        // Moving a lower directory would need a deep copy-up; like overlayfs
        // without redirect_dir, report EXDEV and let tools copy instead.
        if src.is_dir() && src.lower.is_some() {
            return Err(Errno::EXDEV);
        }
        if let Ok(dst) = dst_dir.child(new_name) {
            if dst.is_dir() && !dst.entries()?.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            dst_dir.remove_child(new_name, &dst)?;
            dst.mark_unlinked();
        }
        src.copy_up(true)?;
        dst_dir.copy_up(true)?;
        me.remove_child(name, &src)?;
        *src.parent.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&dst_dir);
        *src.name.lock().unwrap_or_else(|p| p.into_inner()) = new_name.to_vec();
        let is_dir = src.is_dir();
        let mut st = dst_dir.lock();
        st.whiteouts.remove(new_name);
        st.children.insert(new_name.to_vec(), src);
        if is_dir {
            if let Some(u) = st.upper.as_mut() {
                u.meta.st_nlink += 1;
            }
        }
        drop(st);
        dst_dir.touch();
        Ok(())
    }

    fn prepare_write(&self, truncate: bool) -> Result<(), Errno> {
        let me = self.arc()?;
        me.copy_up(!truncate)?;
        if truncate {
            let mut st = me.lock();
            if let Some(u) = st.upper.as_mut() {
                let freed = u.data.len();
                u.data = Vec::new();
                self.fs.charge(freed, 0)?;
            }
            drop(st);
            me.touch();
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open overlay file or directory.
struct NodeFile(Arc<Node>);

impl FileOps for NodeFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let st = self.0.lock();
        match (&st.upper, &self.0.lower) {
            (Some(u), _) => {
                let Ok(off) = usize::try_from(off) else {
                    return Ok(0);
                };
                if off >= u.data.len() {
                    return Ok(0);
                }
                let n = buf.len().min(u.data.len() - off);
                buf[..n].copy_from_slice(&u.data[off..off + n]);
                Ok(n)
            }
            (None, Some(lower)) => {
                let lower = lower.clone();
                drop(st);
                lower.read_at(buf, off)
            }
            (None, None) => Err(Errno::EIO),
        }
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        let mut st = self.0.lock();
        let u = st.upper.as_mut().ok_or(Errno::EBADF)?;
        let off = usize::try_from(off).map_err(|_| Errno::EFBIG)?;
        let end = off.checked_add(buf.len()).ok_or(Errno::EFBIG)?;
        if end > u.data.len() {
            self.0.fs.charge(u.data.len(), end)?;
            u.data.resize(end, 0);
        }
        u.data[off..end].copy_from_slice(buf);
        let t = now();
        u.meta.st_mtime = t;
        u.meta.st_ctime = t;
        Ok(buf.len())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.0.node_stat()
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.0.copy_up(true)?;
        let mut st = self.0.lock();
        let u = st.upper.as_mut().ok_or(Errno::EIO)?;
        let len = usize::try_from(len).map_err(|_| Errno::EFBIG)?;
        self.0.fs.charge(u.data.len(), len)?;
        u.data.resize(len, 0);
        let t = now();
        u.meta.st_mtime = t;
        u.meta.st_ctime = t;
        Ok(())
    }

    fn dir_entries(&self) -> Result<Vec<DirEntry>, Errno> {
        let me = self.0.node_stat()?;
        let parent = self
            .0
            .parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        let parent_ino = match parent {
            Some(p) => p.node_stat()?.st_ino,
            None => me.st_ino,
        };
        let mut out = vec![
            DirEntry {
                name: b".".to_vec(),
                ino: me.st_ino,
                dtype: 4,
            },
            DirEntry {
                name: b"..".to_vec(),
                ino: parent_ino,
                dtype: 4,
            },
        ];
        out.extend(self.0.entries()?);
        Ok(out)
    }
}
