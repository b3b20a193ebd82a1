//! The mount tree, dentries, path resolution and the namespace operations
//! the syscall glue calls.
//!
//! A walk goes one component at a time from the task's root or a start
//! location (its cwd or an *at() dirfd), checking search permission on each
//! directory, crossing mounts both ways, never leaving the task's root
//! through "..", and following at most [`MAX_SYMLINKS`] symlinks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};

use veil_abi::{Errno, Stat};
use veil_gofer::GoferClient;
use veil_memory::MemoryFile;

use crate::creds::{Creds, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::dcache::DentryLru;
use crate::file::{NoOps, OpenFile};
use crate::flags::*;
use crate::fs::{devfs, devpts, gofer, memfs, overlay};
use crate::inode::Inode;
use crate::inotify::{
    self, IN_ATTRIB, IN_CREATE, IN_DELETE, IN_ISDIR, IN_MOVED_FROM, IN_MOVED_TO, IN_MOVE_SELF,
};
use crate::lock::{Flocks, RecordLocks};
use crate::mount::{
    escape, flag_options, FsKind, MountKind, Superblock, MNT_FLAGS, MNT_NODEV, MNT_NOEXEC,
    MNT_RDONLY,
};

/// Symlinks one resolution may follow (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
pub const RENAME_NOREPLACE: u32 = linux_raw_sys::general::RENAME_NOREPLACE;
pub const RENAME_EXCHANGE: u32 = linux_raw_sys::general::RENAME_EXCHANGE;
pub const RENAME_WHITEOUT: u32 = linux_raw_sys::general::RENAME_WHITEOUT;
pub const RESOLVE_NO_XDEV: u64 = linux_raw_sys::general::RESOLVE_NO_XDEV as u64;
pub const RESOLVE_NO_MAGICLINKS: u64 = linux_raw_sys::general::RESOLVE_NO_MAGICLINKS as u64;
pub const RESOLVE_NO_SYMLINKS: u64 = linux_raw_sys::general::RESOLVE_NO_SYMLINKS as u64;
pub const RESOLVE_BENEATH: u64 = linux_raw_sys::general::RESOLVE_BENEATH as u64;
pub const RESOLVE_IN_ROOT: u64 = linux_raw_sys::general::RESOLVE_IN_ROOT as u64;
pub const RESOLVE_CACHED: u64 = linux_raw_sys::general::RESOLVE_CACHED as u64;
const NAME_MAX: usize = linux_raw_sys::general::NAME_MAX as usize;
const PATH_MAX: usize = linux_raw_sys::general::PATH_MAX as usize;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A name in a filesystem, caching the lookups of its children. Parents
/// hold their cached children; children point back weakly, so the cache is
/// a tree that lives as long as its filesystem's mount.
pub struct Dentry {
    inode: Arc<dyn Inode>,
    /// Name and parent change when a rename moves the dentry.
    link: Mutex<Link>,
    children: Mutex<HashMap<Vec<u8>, Arc<Dentry>>>,
    /// Whether some mount covers this dentry: spares walks the mount table.
    mounted: AtomicBool,
    pub(crate) flocks: Flocks,
    pub(crate) records: RecordLocks,
    lru: Arc<DentryLru>,
    pub(crate) watches: inotify::Watches,
}

struct Link {
    name: Vec<u8>,
    /// Empty for a filesystem's root.
    parent: Weak<Dentry>,
}

impl Dentry {
    fn new(
        name: &[u8],
        parent: Weak<Dentry>,
        inode: Arc<dyn Inode>,
        lru: Arc<DentryLru>,
    ) -> Arc<Dentry> {
        Arc::new(Dentry {
            inode,
            link: Mutex::new(Link {
                name: name.to_vec(),
                parent,
            }),
            children: Mutex::new(HashMap::new()),
            mounted: AtomicBool::new(false),
            flocks: Flocks::default(),
            records: RecordLocks::default(),
            lru,
            watches: Default::default(),
        })
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }

    pub fn name(&self) -> Vec<u8> {
        lock(&self.link).name.clone()
    }

    /// The parent within the filesystem; `None` for its root.
    pub fn parent(&self) -> Option<Arc<Dentry>> {
        lock(&self.link).parent.upgrade()
    }

    /// The child `name`, from the cache or looked up.
    fn child(self: &Arc<Self>, name: &[u8]) -> Result<Arc<Dentry>, Errno> {
        if let Some(d) = lock(&self.children).get(name) {
            return Ok(d.clone());
        }
        let inode = self.inode.lookup(name)?;
        Ok(self.insert(name, inode))
    }

    /// Caches `inode` as child `name`, unless a racing lookup already did.
    fn insert(self: &Arc<Self>, name: &[u8], inode: Arc<dyn Inode>) -> Arc<Dentry> {
        let mut fresh = false;
        let d = lock(&self.children)
            .entry(name.to_vec())
            .or_insert_with(|| {
                fresh = true;
                Dentry::new(name, Arc::downgrade(self), inode, self.lru.clone())
            })
            .clone();
        if fresh {
            self.lru.inserted(&d);
        }
        d
    }

    /// Drops `self` from its parent's cache if nothing but that cache holds
    /// it (the caller's reference aside) and it caches no children.
    /// Returns whether it did, or whether `self` is no longer cached.
    pub(crate) fn evict_if_unused(self: &Arc<Self>) -> bool {
        let Some(parent) = self.parent() else {
            return true;
        };
        let name = self.name();
        let mut siblings = lock(&parent.children);
        match siblings.get(&name) {
            Some(cached) if Arc::ptr_eq(cached, self) => {}
            _ => return true,
        }
        let unused = Arc::strong_count(self) == 2
            && !self.mounted.load(Ordering::Acquire)
            && lock(&self.children).is_empty()
            && !self.watches.watched();
        if unused {
            siblings.remove(&name);
        }
        unused
    }

    fn forget(&self, name: &[u8]) -> Option<Arc<Dentry>> {
        lock(&self.children).remove(name)
    }

    /// Moves the cached child `name` to `new_name` in `new_parent`, so that
    /// locations inside it (a cwd) follow the rename.
    fn move_child(&self, name: &[u8], new_parent: &Arc<Dentry>, new_name: &[u8]) {
        new_parent.forget(new_name);
        if let Some(moved) = self.forget(name) {
            *lock(&moved.link) = Link {
                name: new_name.to_vec(),
                parent: Arc::downgrade(new_parent),
            };
            lock(&new_parent.children).insert(new_name.to_vec(), moved);
        }
    }

    /// Swaps the cached children `a_name` of `a` and `b_name` of `b`
    /// (RENAME_EXCHANGE), so that locations inside either follow.
    fn swap_children(a: &Arc<Dentry>, a_name: &[u8], b: &Arc<Dentry>, b_name: &[u8]) {
        let first = a.forget(a_name);
        let second = b.forget(b_name);
        for (moved, parent, name) in [(first, b, b_name), (second, a, a_name)] {
            if let Some(moved) = moved {
                *lock(&moved.link) = Link {
                    name: name.to_vec(),
                    parent: Arc::downgrade(parent),
                };
                lock(&parent.children).insert(name.to_vec(), moved);
            }
        }
    }

    /// Whether `self` is `ancestor` or lies beneath it.
    fn is_within(self: &Arc<Self>, ancestor: &Arc<Dentry>) -> bool {
        let mut cur = Some(self.clone());
        while let Some(d) = cur {
            if Arc::ptr_eq(&d, ancestor) {
                return true;
            }
            cur = d.parent();
        }
        false
    }
}

/// A filesystem (or, for a bind, a part of one) attached to the tree.
pub struct Mount {
    /// Unique in the sandbox; 0 for the private mounts of files outside
    /// the tree.
    id: u32,
    root: Arc<Dentry>,
    /// The location it covers; `None` for the root of the tree, for
    /// detached mounts and for the private mounts of files outside it.
    /// pivot_root moves it.
    mountpoint: Mutex<Option<PathRef>>,
    /// `MNT_*` flags of this mount.
    flags: AtomicU32,
    pub sb: Arc<Superblock>,
}

impl Mount {
    fn new(id: u32, root: Arc<Dentry>, mountpoint: Option<PathRef>, sb: Arc<Superblock>) -> Self {
        Mount {
            id,
            root,
            mountpoint: Mutex::new(mountpoint),
            flags: AtomicU32::new(0),
            sb,
        }
    }

    pub fn mountpoint(&self) -> Option<PathRef> {
        lock(&self.mountpoint).clone()
    }

    /// The mount ID /proc shows (mountinfo, fdinfo's mnt_id).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The mount's flags with its filesystem's (a read-only superblock).
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire) | self.sb.flags()
    }

    pub fn set_flags(&self, flags: u32) {
        self.flags.store(flags & MNT_FLAGS, Ordering::Release);
    }

    /// EROFS if nothing may be written through this mount.
    pub fn check_writable(&self) -> Result<(), Errno> {
        if self.flags() & MNT_RDONLY != 0 {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    pub fn noexec(&self) -> bool {
        self.flags() & MNT_NOEXEC != 0
    }
}

/// A location: a dentry as reached through a mount.
#[derive(Clone)]
pub struct PathRef {
    pub mount: Arc<Mount>,
    pub dentry: Arc<Dentry>,
}

impl PathRef {
    /// A location outside the tree, for files that have no name in it
    /// (pipes, host FDs): the root of a private mount.
    pub fn anonymous(name: &[u8], inode: Arc<dyn Inode>) -> PathRef {
        let root = Dentry::new(name, Weak::new(), inode, Arc::default());
        let sb = Superblock::new(FsKind::Other, b"none", b"");
        PathRef {
            mount: Arc::new(Mount::new(0, root.clone(), None, sb)),
            dentry: root,
        }
    }

    /// The name of a file made by `anonymous` ("pipe:[N]"), which is what
    /// /proc/PID/fd shows for it. The tree's root is nameless.
    pub fn anonymous_name(&self) -> Option<Vec<u8>> {
        let anon = self.mount.id == 0 && self.dentry.parent().is_none();
        let name = self.dentry.name();
        (anon && !name.is_empty()).then_some(name)
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.dentry.inode
    }

    pub fn stat(&self) -> Result<Stat, Errno> {
        self.dentry.inode.stat()
    }

    fn at(&self, dentry: Arc<Dentry>) -> PathRef {
        PathRef {
            mount: self.mount.clone(),
            dentry,
        }
    }

    fn is_mount_root(&self) -> bool {
        Arc::ptr_eq(&self.dentry, &self.mount.root)
    }

    fn same(&self, other: &PathRef) -> bool {
        Arc::ptr_eq(&self.mount, &other.mount) && Arc::ptr_eq(&self.dentry, &other.dentry)
    }
}

/// A task's view of the tree: its root (chroot), working directory and
/// umask. Threads will share one; fork copies it.
#[derive(Clone)]
pub struct FsContext {
    pub root: PathRef,
    pub cwd: PathRef,
    pub umask: u32,
}

impl FsContext {
    pub fn new(root: PathRef) -> FsContext {
        FsContext {
            cwd: root.clone(),
            root,
            umask: 0o022,
        }
    }
}

/// Mounts are found by the location they cover, named by address.
type MountKey = (usize, usize);

/// The ID of the first mount, the root, as Linux numbers a namespace's.
const FIRST_MOUNT_ID: u32 = 1;

/// The mounts attached to the tree.
struct MountTable {
    /// Each mount by the location it covers.
    covering: HashMap<MountKey, Arc<Mount>>,
    /// In the order /proc/mounts lists them: the root first.
    list: Vec<Arc<Mount>>,
}

fn gofer_superblock(
    client: Arc<GoferClient>,
    upper: Option<Arc<memfs::MemFs>>,
    source: &[u8],
) -> Result<Arc<Superblock>, Errno> {
    // A fid of its own for statfs, held for the mount's life.
    let (fid, _) = client.attach()?;
    let options: &[u8] = if upper.is_some() {
        b"lowerdir=/,upperdir=(memory)"
    } else {
        b""
    };
    Ok(Superblock::new(
        FsKind::Gofer { client, fid, upper },
        source,
        options,
    ))
}

fn mount_key(p: &PathRef) -> MountKey {
    (
        Arc::as_ptr(&p.mount) as usize,
        Arc::as_ptr(&p.dentry) as usize,
    )
}

/// The sandbox's mount tree.
pub struct Vfs {
    /// The namespace's root; pivot_root changes it.
    root: RwLock<PathRef>,
    mounts: RwLock<MountTable>,
    next_id: AtomicU32,
    /// Serializes changes to the namespace (creating, removing, renaming),
    /// so that each one's checks still hold when it acts.
    changes: Mutex<()>,
    /// Bounds the dentries cached by every mount of the tree.
    dcache: Arc<DentryLru>,
    /// The pseudo-terminals, which /dev/ptmx and /dev/pts share.
    devpts: devpts::DevPts,
}

/// The last component of a path, which operations that create or remove
/// a name handle themselves.
struct Last {
    kind: LastKind,
    /// The path ended in '/': the target must be a directory.
    trailing_slash: bool,
}

enum LastKind {
    Name(Vec<u8>),
    /// "." or a path of slashes only.
    Dot,
    DotDot,
}

impl Vfs {
    pub fn new(root: Arc<dyn Inode>) -> Vfs {
        Vfs::with_superblock(root, Superblock::new(FsKind::Other, b"none", b""))
    }

    fn with_superblock(root: Arc<dyn Inode>, sb: Arc<Superblock>) -> Vfs {
        let dcache = Arc::new(DentryLru::default());
        let dentry = Dentry::new(b"", Weak::new(), root, dcache.clone());
        let mount = Arc::new(Mount::new(FIRST_MOUNT_ID, dentry.clone(), None, sb));
        Vfs {
            root: RwLock::new(PathRef {
                mount: mount.clone(),
                dentry,
            }),
            mounts: RwLock::new(MountTable {
                covering: HashMap::new(),
                list: vec![mount],
            }),
            next_id: AtomicU32::new(FIRST_MOUNT_ID + 1),
            dcache,
            changes: Mutex::new(()),
            devpts: devpts::DevPts::default(),
        }
    }

    /// A tree whose root is the gofer's files, under an in-memory overlay
    /// if `overlay` (in-memory file data lives in `memfile`).
    pub fn with_gofer_root(
        client: Arc<GoferClient>,
        overlay: bool,
        memfile: Arc<MemoryFile>,
    ) -> Result<Vfs, Errno> {
        let (root, sb) = Vfs::gofer_root_fs(client, overlay, memfile)?;
        Ok(Vfs::with_superblock(root, sb))
    }

    /// The gofer's files as a root filesystem, under an in-memory overlay
    /// if `overlay`: its root and superblock.
    pub fn gofer_root_fs(
        client: Arc<GoferClient>,
        overlay: bool,
        memfile: Arc<MemoryFile>,
    ) -> Result<(Arc<dyn Inode>, Arc<Superblock>), Errno> {
        let lower = gofer::root(client.clone(), !overlay, memfile.clone())?;
        if !overlay {
            return Ok((lower, gofer_superblock(client, None, b"/")?));
        }
        let upper = memfs::MemFs::new(memfs::DEFAULT_SIZE_LIMIT, memfile);
        let root = overlay::new(lower, upper.clone())?;
        let sb = gofer_superblock(client, Some(upper), b"overlay")?;
        Ok((root, sb))
    }

    /// A tree apart from the namespace's, with `fs` at its root: a pod
    /// container's own mount namespace. Paths resolved from its root never
    /// reach the other trees, and their mounts never show in it.
    pub fn new_tree(&self, fs: (Arc<dyn Inode>, Arc<Superblock>)) -> PathRef {
        let dentry = Dentry::new(b"", Weak::new(), fs.0, self.dcache.clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mount = Arc::new(Mount::new(id, dentry.clone(), None, fs.1));
        let mut table = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        table.list.push(mount.clone());
        PathRef { mount, dentry }
    }

    /// Takes a tree [`Vfs::new_tree`] made, and every mount on it, out of
    /// the mount table; whoever still holds a place in it keeps it.
    pub fn drop_tree(&self, root: &PathRef) {
        let _changing = self.lock_changes();
        let mut table = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<Arc<Mount>> = table
            .list
            .iter()
            .filter(|m| {
                let at = PathRef {
                    mount: (*m).clone(),
                    dentry: m.root.clone(),
                };
                beneath(&at, root)
            })
            .cloned()
            .collect();
        table
            .list
            .retain(|m| !gone.iter().any(|g| Arc::ptr_eq(g, m)));
        table
            .covering
            .retain(|_, m| !gone.iter().any(|g| Arc::ptr_eq(g, m)));
    }

    /// The filesystem a configured mount of `kind` shows, except proc and
    /// sysfs, which the sentry makes: its root and superblock.
    pub fn new_fs(
        &self,
        kind: &MountKind,
        clients: &[Arc<GoferClient>],
        memfile: &Arc<MemoryFile>,
    ) -> Result<(Arc<dyn Inode>, Arc<Superblock>), Errno> {
        match kind {
            MountKind::Bind {
                conn,
                source,
                readonly,
            } => {
                let client = clients.get(*conn).ok_or(Errno::EINVAL)?.clone();
                let root = gofer::root(client.clone(), !readonly, memfile.clone())?;
                Ok((root, gofer_superblock(client, None, source)?))
            }
            MountKind::Tmpfs { size, mode } => {
                let opts = crate::mount::TmpfsOptions {
                    size: *size,
                    mode: *mode,
                    uid: 0,
                    gid: 0,
                };
                Ok(Vfs::tmpfs(&opts, memfile))
            }
            MountKind::Devtmpfs => Ok((
                devfs::root(&self.devpts),
                Superblock::new(FsKind::Devtmpfs, b"none", b"mode=755"),
            )),
            // Every devpts mount shows the sandbox's one set of ptys.
            MountKind::Devpts => Ok((
                self.devpts.root(),
                Superblock::new(FsKind::Devpts, b"devpts", b"gid=5,mode=620,ptmxmode=666"),
            )),
            MountKind::Proc | MountKind::Sysfs => Err(Errno::ENODEV),
        }
    }

    /// A new tmpfs.
    pub fn tmpfs(
        opts: &crate::mount::TmpfsOptions,
        memfile: &Arc<MemoryFile>,
    ) -> (Arc<dyn Inode>, Arc<Superblock>) {
        let fs = memfs::MemFs::new(opts.size, memfile.clone());
        let root = fs.root_with_mode(opts.mode);
        if opts.uid != 0 || opts.gid != 0 {
            let attr = crate::inode::SetAttr {
                uid: Some(opts.uid),
                gid: Some(opts.gid),
                ..Default::default()
            };
            // A fresh memfs directory takes any owner.
            let _ = root.setattr(&attr);
        }
        let sb = Superblock::new(FsKind::Tmpfs(fs), b"tmpfs", &opts.display());
        (root, sb)
    }

    /// Mounts a configured filesystem on `destination`, made (by root,
    /// mode 0755, or as an empty file for a file) if missing, with its
    /// missing parent directories.
    pub fn mount_entry(
        &self,
        root: &PathRef,
        destination: &[u8],
        flags: u32,
        fs: (Arc<dyn Inode>, Arc<Superblock>),
    ) -> Result<(), Errno> {
        let ctx = FsContext::new(root.clone());
        let root_creds = Creds::new(0, 0);
        let slashes = destination.iter().enumerate().filter(|&(_, &b)| b == b'/');
        for (i, _) in slashes.filter(|&(i, _)| i > 0) {
            let parent = &destination[..i];
            if let Err(Errno::ENOENT) = self.lookup(&ctx, &ctx.root, parent, true) {
                self.mkdir(&ctx, &ctx.root, parent, 0o755, &root_creds)?;
            }
        }
        let at = match self.lookup(&ctx, &ctx.root, destination, true) {
            Err(Errno::ENOENT) => {
                if fs.0.stat()?.is_dir() {
                    self.mkdir(&ctx, &ctx.root, destination, 0o755, &root_creds)?;
                } else {
                    self.open(&ctx, &ctx.root, destination, O_CREAT, 0o644, &root_creds)?;
                }
                self.lookup(&ctx, &ctx.root, destination, true)?
            }
            r => r?,
        };
        let mount = self.attach(
            &at,
            Dentry::new(b"", Weak::new(), fs.0, self.dcache.clone()),
            fs.1,
        )?;
        mount.set_flags(flags);
        Ok(())
    }

    pub fn root(&self) -> PathRef {
        self.root
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The ptys of /dev/pts.
    pub fn ptys(&self) -> &Arc<crate::pty::Registry> {
        self.devpts.registry()
    }

    /// Mounts the filesystem whose root directory is `root` over the
    /// directory `at`, on top of any mounts there.
    pub fn mount(&self, at: &PathRef, root: Arc<dyn Inode>) -> Result<(), Errno> {
        if !root.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let sb = Superblock::new(FsKind::Other, b"none", b"");
        self.attach(
            at,
            Dentry::new(b"", Weak::new(), root, self.dcache.clone()),
            sb,
        )
        .map(drop)
    }

    /// Attaches a new mount showing `root` of `sb` over `at` (on top of any
    /// mounts there): a directory over a directory, a file over a file.
    fn attach(
        &self,
        at: &PathRef,
        root: Arc<Dentry>,
        sb: Arc<Superblock>,
    ) -> Result<Arc<Mount>, Errno> {
        let at = self.follow_mounts(at.clone());
        if at.stat()?.is_dir() != root.inode.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mount = Arc::new(Mount::new(id, root, Some(at.clone()), sb));
        let mut table = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        table.covering.insert(mount_key(&at), mount.clone());
        table.list.push(mount.clone());
        at.dentry.mounted.store(true, Ordering::Release);
        Ok(mount)
    }

    fn mount_on(&self, p: &PathRef) -> Option<Arc<Mount>> {
        if !p.dentry.mounted.load(Ordering::Acquire) {
            return None;
        }
        let mounts = self.mounts.read().unwrap_or_else(PoisonError::into_inner);
        mounts.covering.get(&mount_key(p)).cloned()
    }

    /// The root of the topmost mount covering `p`, or `p`.
    fn follow_mounts(&self, mut p: PathRef) -> PathRef {
        while let Some(m) = self.mount_on(&p) {
            p = PathRef {
                dentry: m.root.clone(),
                mount: m,
            };
        }
        p
    }

    /// "..": up to the parent, through mountpoints, but not above `root`.
    fn parent_of(&self, root: &PathRef, cur: &PathRef) -> PathRef {
        let mut p = cur.clone();
        while !p.same(root) && p.is_mount_root() {
            match p.mount.mountpoint() {
                Some(mp) => p = mp,
                None => return p,
            }
        }
        if p.same(root) {
            return p;
        }
        match p.dentry.parent() {
            Some(parent) => self.follow_mounts(p.at(parent)),
            None => p,
        }
    }

    /// Resolves `path` from `start` (or the root, for an absolute path) with
    /// root's search rights: for the sentry's own lookups. `follow` says
    /// whether a final symlink is followed.
    pub fn lookup(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        follow: bool,
    ) -> Result<PathRef, Errno> {
        self.lookup_as(ctx, start, path, follow, &Creds::new(0, 0))
    }

    /// Like `lookup`, checking search permission as `creds`.
    pub fn lookup_as(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        follow: bool,
        creds: &Creds,
    ) -> Result<PathRef, Errno> {
        Walker::new(self, ctx, creds).walk(start, path, follow)
    }

    pub fn stat(&self, p: &PathRef) -> Result<Stat, Errno> {
        p.stat()
    }

    /// Whether `creds` may search the directory `p` (chdir).
    pub fn check_search(&self, p: &PathRef, creds: &Creds) -> Result<(), Errno> {
        creds.check(&p.stat()?, MAY_EXEC)
    }

    pub(crate) fn lock_changes(&self) -> MutexGuard<'_, ()> {
        lock(&self.changes)
    }

    /// open(2), with the permission bits of a created file in `mode`.
    pub fn open(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        flags: i32,
        mode: u32,
        creds: &Creds,
    ) -> Result<Arc<OpenFile>, Errno> {
        self.open_resolve(ctx, start, path, flags, mode, creds, 0)
    }

    /// openat2(2): `open` with `RESOLVE_*` flags restricting the walk.
    /// With RESOLVE_BENEATH or RESOLVE_IN_ROOT, `start` is the scope even
    /// for absolute paths.
    #[allow(clippy::too_many_arguments)]
    pub fn open_resolve(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        flags: i32,
        mode: u32,
        creds: &Creds,
        resolve: u64,
    ) -> Result<Arc<OpenFile>, Errno> {
        let mut walker = Walker::new(self, ctx, creds);
        walker.restrict(resolve, start);
        // O_TMPFILE is two bits; one without the other, or with O_CREAT,
        // is invalid.
        if flags & O_TMPFILE & !O_DIRECTORY != 0 && flags & (O_TMPFILE | O_CREAT) != O_TMPFILE {
            return Err(Errno::EINVAL);
        }
        if flags & O_PATH != 0 {
            let target = walker.walk(start, path, flags & O_NOFOLLOW == 0)?;
            if flags & O_DIRECTORY != 0 && !target.stat()?.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let kept = flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW);
            return OpenFile::new(target, kept, Box::new(NoOps));
        }
        if flags & O_TMPFILE == O_TMPFILE {
            return self.open_tmpfile(&mut walker, start, path, flags, mode & !ctx.umask, creds);
        }
        // Linux 6.4 and later refuse O_CREAT | O_DIRECTORY too.
        if flags & O_ACCMODE == O_ACCMODE
            || flags & (O_CREAT | O_DIRECTORY) == O_CREAT | O_DIRECTORY
        {
            return Err(Errno::EINVAL);
        }
        let (target, created) = if flags & O_CREAT != 0 {
            let _changing = self.lock_changes();
            walker.open_create(start, path, flags, mode & !ctx.umask & 0o7777)?
        } else {
            (walker.walk(start, path, flags & O_NOFOLLOW == 0)?, false)
        };
        // The checks and their order are Linux's do_open and may_open.
        let st = target.stat()?;
        if flags & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL && !created {
            return Err(Errno::EEXIST);
        }
        if st.is_dir() && flags & O_CREAT != 0 {
            return Err(Errno::EISDIR);
        }
        if flags & O_DIRECTORY != 0 && !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if st.is_symlink() {
            return Err(Errno::ELOOP);
        }
        if st.is_dir() && (writes(flags) || flags & O_TRUNC != 0) {
            return Err(Errno::EISDIR);
        }
        // Linux's may_open: device nodes of a nodev mount stay shut, and
        // only devices, FIFOs and sockets are written on a read-only one.
        let fmt = st.st_mode & veil_abi::mode::S_IFMT;
        let device = fmt == veil_abi::mode::S_IFCHR || fmt == veil_abi::mode::S_IFBLK;
        if device && target.mount.flags() & MNT_NODEV != 0 {
            return Err(Errno::EACCES);
        }
        if (writes(flags) || flags & O_TRUNC != 0) && (st.is_reg() || st.is_dir()) {
            target.mount.check_writable()?;
        }
        let mut flags = flags;
        if created {
            // A new file is open as asked whatever its mode, and empty.
            flags &= !O_TRUNC;
        } else {
            let mut want = 0;
            if flags & O_ACCMODE != O_WRONLY {
                want |= MAY_READ;
            }
            if writes(flags) || flags & O_TRUNC != 0 {
                want |= MAY_WRITE;
            }
            creds.check(&st, want)?;
        }
        let ops = target.inode().clone().open(flags)?;
        OpenFile::new(target, flags | O_LARGEFILE, ops)
    }

    /// open(O_TMPFILE): an unnamed regular file in the directory at `path`,
    /// which `linkat` may name unless O_EXCL.
    fn open_tmpfile(
        &self,
        walker: &mut Walker,
        start: &PathRef,
        path: &[u8],
        flags: i32,
        mode: u32,
        creds: &Creds,
    ) -> Result<Arc<OpenFile>, Errno> {
        if !writes(flags) {
            return Err(Errno::EINVAL);
        }
        let dir = walker.walk(start, path, flags & O_NOFOLLOW == 0)?;
        let st = dir.stat()?;
        if !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        creds.check(&st, MAY_WRITE | MAY_EXEC)?;
        dir.mount.check_writable()?;
        let inode = dir
            .inode()
            .tmpfile(mode & 0o7777, creds, flags & O_EXCL == 0)?;
        let name = format!("#{}", inode.stat()?.st_ino);
        // A name under the directory that no lookup finds: linkat gives
        // the file its first real one.
        let dentry = Dentry::new(
            name.as_bytes(),
            Arc::downgrade(&dir.dentry),
            inode.clone(),
            dir.dentry.lru.clone(),
        );
        let target = dir.at(dentry);
        let ops = inode.open(flags & !(O_TRUNC | O_CREAT))?;
        OpenFile::new(target, (flags & !(O_TMPFILE | O_EXCL)) | O_LARGEFILE, ops)
    }

    /// readlink(2), with root's search rights.
    pub fn readlink(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        let p = self.lookup(ctx, start, path, false)?;
        self.readlink_at(&p)
    }

    /// The target of the symlink at `p`; EINVAL for anything else.
    pub fn readlink_at(&self, p: &PathRef) -> Result<Vec<u8>, Errno> {
        if !p.stat()?.is_symlink() {
            return Err(Errno::EINVAL);
        }
        p.inode().readlink()
    }

    /// faccessat2(2): `mode` is F_OK or R_OK|W_OK|X_OK, `flags` AT_EACCESS
    /// and AT_SYMLINK_NOFOLLOW. Without AT_EACCESS the real IDs are used,
    /// for the walk too. An empty `path` checks `start` itself.
    pub fn access(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        mode: u32,
        flags: u32,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let creds = if flags & AT_EACCESS != 0 {
            creds.clone()
        } else {
            creds.for_access()
        };
        let p = if path.is_empty() {
            start.clone()
        } else {
            let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
            Walker::new(self, ctx, &creds).walk(start, path, follow)?
        };
        let st = p.stat()?;
        if mode & 7 == 0 {
            return Ok(());
        }
        creds.check(&st, mode & 7)
    }

    /// The path of `p` as seen from `ctx`'s root: getcwd, /proc/self/exe.
    pub fn path_of(&self, ctx: &FsContext, p: &PathRef) -> Vec<u8> {
        let mut names = Vec::new();
        let mut cur = p.clone();
        while !cur.same(&ctx.root) {
            if cur.is_mount_root() {
                match cur.mount.mountpoint() {
                    Some(mp) => cur = mp,
                    None => break,
                }
                continue;
            }
            let Some(parent) = cur.dentry.parent() else {
                break;
            };
            names.push(cur.dentry.name());
            cur = cur.at(parent);
        }
        if names.is_empty() {
            return b"/".to_vec();
        }
        let mut out = Vec::new();
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        out
    }

    pub fn mkdir(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        mode: u32,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (dir, last) = walker.walk_parent(start, path)?;
        let LastKind::Name(name) = last.kind else {
            return Err(Errno::EEXIST);
        };
        walker.check_create(&dir, &name)?;
        dir.inode()
            .mkdir(&name, mode & !ctx.umask & 0o1777, creds)?;
        inotify::notify_entry(&dir.dentry, IN_CREATE | IN_ISDIR, &name, 0);
        Ok(())
    }

    /// mknod(2) of a FIFO, socket or device node (`mode` has the type and
    /// the permission bits before the umask); regular files go through
    /// `open`.
    #[allow(clippy::too_many_arguments)]
    pub fn mknod(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        mode: u32,
        rdev: u64,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (dir, name) = walker.new_name(start, path)?;
        let kind = mode & veil_abi::mode::S_IFMT;
        if (kind == veil_abi::mode::S_IFCHR || kind == veil_abi::mode::S_IFBLK)
            && !creds.capable(crate::cap::CAP_MKNOD)
        {
            return Err(Errno::EPERM);
        }
        let perms = mode & !ctx.umask & 0o7777;
        dir.inode().mknod(&name, kind | perms, rdev, creds)?;
        inotify::notify_entry(&dir.dentry, IN_CREATE, &name, 0);
        Ok(())
    }

    /// symlink(2): creates `path` pointing at `target`.
    pub fn symlink(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        target: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (dir, name) = walker.new_name(start, path)?;
        dir.inode().symlink(&name, target, creds)?;
        inotify::notify_entry(&dir.dentry, IN_CREATE, &name, 0);
        Ok(())
    }

    /// link(2): `new_path` becomes another name of the file at `src`.
    pub fn link(
        &self,
        ctx: &FsContext,
        src: &PathRef,
        new_start: &PathRef,
        new_path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (dir, name) = walker.new_name(new_start, new_path)?;
        if !Arc::ptr_eq(&src.mount, &dir.mount) {
            return Err(Errno::EXDEV);
        }
        if src.stat()?.is_dir() {
            return Err(Errno::EPERM);
        }
        dir.inode().link(&name, src.inode().as_ref())?;
        inotify::notify_self(&src.dentry, IN_ATTRIB);
        inotify::notify_entry(&dir.dentry, IN_CREATE, &name, 0);
        Ok(())
    }

    pub fn unlink(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (dir, last) = walker.walk_parent(start, path)?;
        dir.mount.check_writable()?;
        let LastKind::Name(name) = last.kind else {
            return Err(Errno::EISDIR);
        };
        let (victim, st) = walker.removable(&dir, &name)?;
        if st.is_dir() {
            return Err(Errno::EISDIR);
        }
        if last.trailing_slash {
            return Err(Errno::ENOTDIR);
        }
        self.check_unmounted(&victim)?;
        dir.inode().unlink(&name)?;
        dir.dentry.forget(&name);
        inotify::notify_self(&victim.dentry, IN_ATTRIB);
        if victim.stat().is_ok_and(|st| st.st_nlink == 0) {
            inotify::notify_gone(&victim.dentry);
        }
        inotify::notify_entry(&dir.dentry, IN_DELETE, &name, 0);
        Ok(())
    }

    pub fn rmdir(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (dir, last) = walker.walk_parent(start, path)?;
        dir.mount.check_writable()?;
        let name = match last.kind {
            LastKind::Name(name) => name,
            LastKind::Dot => return Err(Errno::EINVAL),
            LastKind::DotDot => return Err(Errno::ENOTEMPTY),
        };
        let (victim, st) = walker.removable(&dir, &name)?;
        if !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.check_unmounted(&victim)?;
        if victim.same(&ctx.root) {
            return Err(Errno::EBUSY);
        }
        dir.inode().rmdir(&name)?;
        dir.dentry.forget(&name);
        inotify::notify_gone(&victim.dentry);
        inotify::notify_entry(&dir.dentry, IN_DELETE | IN_ISDIR, &name, 0);
        Ok(())
    }

    /// renameat2(2): with `flags` 0 replacing any target, or with
    /// RENAME_NOREPLACE (EEXIST instead) or RENAME_EXCHANGE (swapping two
    /// existing names); the filesystem decides on RENAME_WHITEOUT.
    #[allow(clippy::too_many_arguments)]
    pub fn rename(
        &self,
        ctx: &FsContext,
        old_start: &PathRef,
        old_path: &[u8],
        new_start: &PathRef,
        new_path: &[u8],
        creds: &Creds,
        flags: u32,
    ) -> Result<(), Errno> {
        let exchange = flags & RENAME_EXCHANGE != 0;
        let _changing = self.lock_changes();
        let mut walker = Walker::new(self, ctx, creds);
        let (old_dir, old_last) = walker.walk_parent(old_start, old_path)?;
        let (new_dir, new_last) = walker.walk_parent(new_start, new_path)?;
        let (LastKind::Name(old_name), LastKind::Name(new_name)) = (old_last.kind, new_last.kind)
        else {
            return Err(Errno::EBUSY);
        };
        if !Arc::ptr_eq(&old_dir.mount, &new_dir.mount) {
            return Err(Errno::EXDEV);
        }
        old_dir.mount.check_writable()?;
        let (src, src_st) = walker.removable(&old_dir, &old_name)?;
        let is_dir = src_st.is_dir();
        if !is_dir && (old_last.trailing_slash || (new_last.trailing_slash && !exchange)) {
            return Err(Errno::ENOTDIR);
        }
        let new_dir_st = new_dir.stat()?;
        creds.check(&new_dir_st, MAY_EXEC)?;
        let dst = match new_dir.dentry.child(&new_name) {
            Ok(d) => Some(new_dir.at(d)),
            Err(Errno::ENOENT) if !exchange => None,
            Err(e) => return Err(e),
        };
        creds.check(&new_dir_st, MAY_WRITE)?;
        if dst.is_some() && flags & RENAME_NOREPLACE != 0 {
            return Err(Errno::EEXIST);
        }
        if let Some(dst) = &dst {
            let dst_st = dst.stat()?;
            let dst_is_dir = dst_st.is_dir();
            if exchange && !dst_is_dir && new_last.trailing_slash {
                return Err(Errno::ENOTDIR);
            }
            // Two names of one file: Linux does nothing.
            if std::ptr::addr_eq(Arc::as_ptr(src.inode()), Arc::as_ptr(dst.inode())) {
                return Ok(());
            }
            creds.check_sticky(&new_dir_st, &dst_st)?;
            match (is_dir, dst_is_dir) {
                _ if exchange => {}
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
            self.check_unmounted(dst)?;
            if exchange && dst_is_dir {
                if old_dir.dentry.is_within(&dst.dentry) {
                    return Err(Errno::EINVAL);
                }
                if !old_dir.same(&new_dir) {
                    creds.check(&dst_st, MAY_WRITE)?;
                }
            }
        }
        self.check_unmounted(&src)?;
        if is_dir {
            if new_dir.dentry.is_within(&src.dentry) {
                return Err(Errno::EINVAL);
            }
            // Its ".." entry changes.
            if !old_dir.same(&new_dir) {
                creds.check(&src_st, MAY_WRITE)?;
            }
        }
        old_dir.inode().rename(
            &old_name,
            src.inode().as_ref(),
            new_dir.inode().as_ref(),
            &new_name,
            flags,
        )?;
        let moved =
            |p: &PathRef, from: &PathRef, from_name: &[u8], to: &PathRef, to_name: &[u8]| {
                let dir_bit = match p.stat().is_ok_and(|st| st.is_dir()) {
                    true => IN_ISDIR,
                    false => 0,
                };
                let cookie = inotify::cookie();
                inotify::notify_entry(&from.dentry, IN_MOVED_FROM | dir_bit, from_name, cookie);
                inotify::notify_entry(&to.dentry, IN_MOVED_TO | dir_bit, to_name, cookie);
                inotify::notify(&p.dentry, IN_MOVE_SELF);
            };
        if exchange {
            Dentry::swap_children(&old_dir.dentry, &old_name, &new_dir.dentry, &new_name);
            moved(&src, &old_dir, &old_name, &new_dir, &new_name);
            if let Some(dst) = &dst {
                moved(dst, &new_dir, &new_name, &old_dir, &old_name);
            }
        } else {
            old_dir
                .dentry
                .move_child(&old_name, &new_dir.dentry, &new_name);
            moved(&src, &old_dir, &old_name, &new_dir, &new_name);
            if let Some(dst) = &dst {
                if dst.stat().is_ok_and(|st| st.st_nlink == 0 || st.is_dir()) {
                    inotify::notify_gone(&dst.dentry);
                }
            }
        }
        Ok(())
    }

    /// EBUSY for a mountpoint or a mount's root, which cannot be removed or
    /// renamed.
    fn check_unmounted(&self, p: &PathRef) -> Result<(), Errno> {
        if p.is_mount_root() || self.mount_on(p).is_some() {
            return Err(Errno::EBUSY);
        }
        Ok(())
    }
}

/// The mount operations of mount(2), umount2(2) and pivot_root(2), and the
/// mount table as /proc shows it.
impl Vfs {
    /// Mounts a new filesystem over `at`.
    pub fn mount_new(
        &self,
        at: &PathRef,
        root: Arc<dyn Inode>,
        sb: Arc<Superblock>,
        flags: u32,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        let mount = self.attach(
            at,
            Dentry::new(b"", Weak::new(), root, self.dcache.clone()),
            sb,
        )?;
        mount.set_flags(flags);
        Ok(())
    }

    /// A bind mount of `src` over `at`, with `src`'s mount's flags; with
    /// `recursive`, the mounts beneath `src` are bound too.
    pub fn bind(&self, src: &PathRef, at: &PathRef, recursive: bool) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        // Taken first: a bind onto a path beneath itself must not copy the
        // new mount too.
        let list = self.mount_list();
        let top = self.attach(at, src.dentry.clone(), src.mount.sb.clone())?;
        top.set_flags(src.mount.flags.load(Ordering::Acquire));
        if !recursive {
            return Ok(());
        }
        // Copies each mount beneath, parents before children, onto the
        // copy of its parent.
        let mut copies = vec![(src.mount.clone(), top)];
        for m in list {
            let Some(mp) = m.mountpoint() else { continue };
            let Some(parent_copy) = copies
                .iter()
                .find(|(orig, _)| Arc::ptr_eq(orig, &mp.mount))
                .map(|(_, copy)| copy.clone())
            else {
                continue;
            };
            if !mp.dentry.is_within(&parent_copy.root) {
                continue;
            }
            let at = PathRef {
                mount: parent_copy,
                dentry: mp.dentry.clone(),
            };
            let copy = self.attach(&at, m.root.clone(), m.sb.clone())?;
            copy.set_flags(m.flags.load(Ordering::Acquire));
            copies.push((m, copy));
        }
        Ok(())
    }

    /// MS_REMOUNT: new flags for the mount whose root is `p`, and with
    /// `bind` unset for its filesystem too.
    pub fn remount(&self, p: &PathRef, flags: u32, bind: bool) -> Result<(), Errno> {
        if !p.is_mount_root() {
            return Err(Errno::EINVAL);
        }
        if !bind {
            p.mount.sb.set_flags(flags);
        }
        p.mount.set_flags(flags);
        Ok(())
    }

    /// Checks that `p` is the root of an attached mount (mount(2) with only
    /// propagation flags, which have nothing to change here).
    pub fn check_mount_root(&self, p: &PathRef) -> Result<(), Errno> {
        if !p.is_mount_root() || !self.attached(&p.mount) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn attached(&self, m: &Arc<Mount>) -> bool {
        let table = self.mounts.read().unwrap_or_else(PoisonError::into_inner);
        table.list.iter().any(|x| Arc::ptr_eq(x, m))
    }

    /// umount2(2) of the mount whose root is `p`. Without `detach` a mount
    /// with mounts on it, or that `busy` says a task uses, stays (EBUSY);
    /// with it the mount and those beneath leave the tree at once, and
    /// whoever still holds a place in them keeps it.
    pub fn umount(
        &self,
        p: &PathRef,
        detach: bool,
        busy: &dyn Fn(&Arc<Mount>) -> bool,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        if !p.is_mount_root() || !self.attached(&p.mount) {
            return Err(Errno::EINVAL);
        }
        if p.mount.mountpoint().is_none() {
            return Err(Errno::EBUSY);
        }
        // Asked before the table is locked: `busy` takes tasks' locks.
        if !detach && busy(&p.mount) {
            return Err(Errno::EBUSY);
        }
        let mut table = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        let children = |table: &MountTable, m: &Arc<Mount>| -> Vec<Arc<Mount>> {
            table
                .list
                .iter()
                .filter(|c| c.mountpoint().is_some_and(|mp| Arc::ptr_eq(&mp.mount, m)))
                .cloned()
                .collect()
        };
        if !detach && !children(&table, &p.mount).is_empty() {
            return Err(Errno::EBUSY);
        }
        let mut doomed = vec![p.mount.clone()];
        let mut i = 0;
        while i < doomed.len() {
            let more = children(&table, &doomed[i]);
            doomed.extend(more);
            i += 1;
        }
        for m in &doomed {
            if let Some(mp) = lock(&m.mountpoint).take() {
                table.covering.remove(&mount_key(&mp));
            }
            table.list.retain(|x| !Arc::ptr_eq(x, m));
        }
        Ok(())
    }

    /// pivot_root(2) with Linux's rules: `new_root`, a mount's root other
    /// than the root's mount, becomes the root, and the old root's mount
    /// moves onto `put_old`, at or beneath it. Returns the old root, which
    /// tasks whose root or cwd it was leave for the new.
    pub fn pivot_root(
        &self,
        ctx: &FsContext,
        new_root: &PathRef,
        put_old: &PathRef,
    ) -> Result<(PathRef, PathRef), Errno> {
        let _changing = self.lock_changes();
        if !new_root.stat()?.is_dir() || !put_old.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let old_root = ctx.root.clone();
        let attached = |m| self.attached(m);
        if !attached(&new_root.mount) || !attached(&old_root.mount) {
            return Err(Errno::EINVAL);
        }
        if Arc::ptr_eq(&new_root.mount, &old_root.mount)
            || Arc::ptr_eq(&put_old.mount, &old_root.mount)
        {
            return Err(Errno::EBUSY);
        }
        if !old_root.is_mount_root() || !new_root.is_mount_root() {
            return Err(Errno::EINVAL);
        }
        // new_root must be beneath the root, and put_old beneath new_root.
        if !beneath(new_root, &old_root) || !beneath(put_old, new_root) {
            return Err(Errno::EINVAL);
        }
        let Some(new_mp) = new_root.mount.mountpoint() else {
            return Err(Errno::EINVAL);
        };
        let mut table = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        table.covering.remove(&mount_key(&new_mp));
        *lock(&new_root.mount.mountpoint) = None;
        // The old root's mount goes where its root was mounted, if it was
        // (a chroot into a mount), and otherwise onto put_old.
        if let Some(mp) = lock(&old_root.mount.mountpoint).replace(put_old.clone()) {
            table.covering.remove(&mount_key(&mp));
        }
        table
            .covering
            .insert(mount_key(put_old), old_root.mount.clone());
        put_old.dentry.mounted.store(true, Ordering::Release);
        table.list.retain(|m| !Arc::ptr_eq(m, &new_root.mount));
        table.list.insert(0, new_root.mount.clone());
        drop(table);
        let mut root = self.root.write().unwrap_or_else(PoisonError::into_inner);
        if root.same(&old_root) {
            *root = new_root.clone();
        }
        Ok((old_root, new_root.clone()))
    }

    /// MS_MOVE: the mount whose root is `src` moves onto `at`, with the
    /// mounts on it.
    pub fn move_mount(&self, src: &PathRef, at: &PathRef) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        if !src.is_mount_root() || !self.attached(&src.mount) {
            return Err(Errno::EINVAL);
        }
        let Some(old_mp) = src.mount.mountpoint() else {
            return Err(Errno::EINVAL);
        };
        let at = self.follow_mounts(at.clone());
        if beneath(&at, src) {
            return Err(Errno::ELOOP);
        }
        if at.stat()?.is_dir() != src.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut table = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        table.covering.remove(&mount_key(&old_mp));
        table.covering.insert(mount_key(&at), src.mount.clone());
        at.dentry.mounted.store(true, Ordering::Release);
        *lock(&src.mount.mountpoint) = Some(at);
        Ok(())
    }

    /// statfs(2) of the filesystem holding `p`, with its mount's flags.
    pub fn statfs(&self, p: &PathRef) -> Result<veil_abi::Statfs, Errno> {
        const ST_VALID: i64 = 0x20;
        let mut st = p.mount.sb.statfs()?;
        st.f_flags = i64::from(p.mount.flags()) | ST_VALID;
        Ok(st)
    }

    /// Every mount, in the order they were made.
    fn mount_list(&self) -> Vec<Arc<Mount>> {
        self.mounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .clone()
    }

    /// /proc/PID/mounts (or with `info`, mountinfo) as the task with view
    /// `ctx` sees them: mounts outside its root are left out, and paths are
    /// relative to it.
    pub fn mounts_text(&self, ctx: &FsContext, info: bool) -> Vec<u8> {
        let list = self.mount_list();
        let mut out = Vec::new();
        for m in list {
            let here = PathRef {
                mount: m.clone(),
                dentry: m.root.clone(),
            };
            let Some(path) = self.path_within(ctx, &here) else {
                continue;
            };
            let flags = flag_options(m.flags.load(Ordering::Acquire) | m.sb.flags());
            let fstype = m.sb.fstype();
            let mut sb_opts = if m.sb.flags() & MNT_RDONLY != 0 {
                b"ro".to_vec()
            } else {
                b"rw".to_vec()
            };
            let extra = m.sb.options();
            if !extra.is_empty() {
                sb_opts.push(b',');
                sb_opts.extend_from_slice(&extra);
            }
            if info {
                let parent = m.mountpoint().map_or(m.id, |mp| mp.mount.id);
                // The mount's root within its filesystem.
                let fs_root = fs_path(&m.root);
                out.extend_from_slice(format!("{} {} 0:{} ", m.id, parent, m.sb.dev).as_bytes());
                escape(&fs_root, &mut out);
                out.push(b' ');
                escape(&path, &mut out);
                out.extend_from_slice(format!(" {flags} - {fstype} ").as_bytes());
                escape(&m.sb.source, &mut out);
                out.push(b' ');
                out.extend_from_slice(&sb_opts);
            } else {
                escape(&m.sb.source, &mut out);
                out.push(b' ');
                escape(&path, &mut out);
                out.extend_from_slice(format!(" {fstype} ").as_bytes());
                let mut opts = flags.into_bytes();
                if !extra.is_empty() {
                    opts.push(b',');
                    opts.extend_from_slice(&extra);
                }
                out.extend_from_slice(&opts);
                out.extend_from_slice(b" 0 0");
            }
            out.push(b'\n');
        }
        out
    }

    /// The path of `p` from `ctx`'s root, if it is at or beneath it.
    fn path_within(&self, ctx: &FsContext, p: &PathRef) -> Option<Vec<u8>> {
        let mut cur = p.clone();
        loop {
            if Arc::ptr_eq(&cur.mount, &ctx.root.mount) {
                return cur
                    .dentry
                    .is_within(&ctx.root.dentry)
                    .then(|| self.path_of(ctx, p));
            }
            cur = cur.mount.mountpoint()?;
        }
    }
}

/// Whether `inner` is `outer` or lies beneath it, across mounts.
fn beneath(inner: &PathRef, outer: &PathRef) -> bool {
    let mut cur = inner.clone();
    loop {
        if Arc::ptr_eq(&cur.mount, &outer.mount) {
            return cur.dentry.is_within(&outer.dentry);
        }
        match cur.mount.mountpoint() {
            Some(mp) => cur = mp,
            None => return false,
        }
    }
}

/// The path of `d` from the root of its filesystem.
fn fs_path(d: &Arc<Dentry>) -> Vec<u8> {
    let mut names = Vec::new();
    let mut cur = d.clone();
    while let Some(parent) = cur.parent() {
        names.push(cur.name());
        cur = parent;
    }
    let mut out = Vec::new();
    for name in names.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(name);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// One path resolution: its task's view, identity, symlink budget and
/// openat2 restrictions.
struct Walker<'a> {
    vfs: &'a Vfs,
    creds: &'a Creds,
    links: usize,
    /// Where absolute paths start and ".." stops: the task's root, or the
    /// scope of RESOLVE_BENEATH and RESOLVE_IN_ROOT.
    root: PathRef,
    resolve: u64,
    /// The mount the walk must stay on (RESOLVE_NO_XDEV).
    mount: Option<Arc<Mount>>,
}

impl<'a> Walker<'a> {
    fn new(vfs: &'a Vfs, ctx: &'a FsContext, creds: &'a Creds) -> Self {
        Walker {
            vfs,
            creds,
            links: 0,
            root: ctx.root.clone(),
            resolve: 0,
            mount: None,
        }
    }

    /// Applies openat2's `resolve` flags to a walk from `start`.
    fn restrict(&mut self, resolve: u64, start: &PathRef) {
        self.resolve = resolve;
        if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0 {
            self.root = start.clone();
        }
        if resolve & RESOLVE_NO_XDEV != 0 {
            self.mount = Some(start.mount.clone());
        }
    }

    /// RESOLVE_NO_XDEV: EXDEV once the walk reaches another mount.
    fn check_mount(&self, p: &PathRef) -> Result<(), Errno> {
        match &self.mount {
            Some(m) if !Arc::ptr_eq(m, &p.mount) => Err(Errno::EXDEV),
            _ => Ok(()),
        }
    }

    fn scoped(&self) -> bool {
        self.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0
    }

    fn walk(&mut self, start: &PathRef, path: &[u8], follow: bool) -> Result<PathRef, Errno> {
        let (dir, last) = self.walk_parent(start, path)?;
        let name: &[u8] = match &last.kind {
            LastKind::Name(name) => name,
            LastKind::Dot => b".",
            LastKind::DotDot => b"..",
        };
        let p = self.step(&dir, name)?;
        let p = if follow || last.trailing_slash {
            self.follow(&dir, p)?
        } else {
            p
        };
        if last.trailing_slash && !p.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(p)
    }

    /// Resolves every component but the last, which it returns; the
    /// location returned is a directory.
    fn walk_parent(&mut self, start: &PathRef, path: &[u8]) -> Result<(PathRef, Last), Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path[0] == b'/' {
            if self.resolve & RESOLVE_BENEATH != 0 {
                return Err(Errno::EXDEV);
            }
            self.root.clone()
        } else {
            start.clone()
        };
        self.check_mount(&cur)?;
        let trimmed_len = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trimmed = &path[..trimmed_len];
        let (dirs, last) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        for name in dirs.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let next = self.step(&cur, name)?;
            cur = self.follow(&cur, next)?;
        }
        if !cur.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let kind = match last {
            b"" | b"." => LastKind::Dot,
            b".." => LastKind::DotDot,
            name if name.len() > NAME_MAX => return Err(Errno::ENAMETOOLONG),
            name => LastKind::Name(name.to_vec()),
        };
        Ok((
            cur,
            Last {
                kind,
                trailing_slash: trimmed_len < path.len(),
            },
        ))
    }

    /// Goes from directory `dir` to its entry `name`.
    fn step(&self, dir: &PathRef, name: &[u8]) -> Result<PathRef, Errno> {
        let st = dir.stat()?;
        if !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.creds.check(&st, MAY_EXEC)?;
        let next = match name {
            b"." => dir.clone(),
            b".." if self.resolve & RESOLVE_BENEATH != 0 && dir.same(&self.root) => {
                return Err(Errno::EXDEV)
            }
            b".." => self.vfs.parent_of(&self.root, dir),
            _ if name.len() > NAME_MAX => return Err(Errno::ENAMETOOLONG),
            _ => self.vfs.follow_mounts(dir.at(dir.dentry.child(name)?)),
        };
        self.check_mount(&next)?;
        Ok(next)
    }

    /// Follows `p`, found in directory `dir`, if it is a symlink.
    fn follow(&mut self, dir: &PathRef, p: PathRef) -> Result<PathRef, Errno> {
        if !p.stat()?.is_symlink() {
            return Ok(p);
        }
        if let Some(target) = self.jump(&p)? {
            return Ok(target);
        }
        let target = self.read_link(&p)?;
        self.walk(dir, &target, true)
    }

    /// The file a magic link (procfs) stands for, counted against the
    /// symlink budget; None for plain symlinks.
    fn jump(&mut self, p: &PathRef) -> Result<Option<PathRef>, Errno> {
        let Some(target) = p.inode().jump() else {
            return Ok(None);
        };
        if self.resolve & (RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) != 0 {
            return Err(Errno::ELOOP);
        }
        self.check_mount(&target)?;
        if self.scoped() {
            return Err(Errno::EXDEV);
        }
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        Ok(Some(target))
    }

    /// Reads a symlink the walk follows, counting it against the budget.
    fn read_link(&mut self, p: &PathRef) -> Result<Vec<u8>, Errno> {
        if self.resolve & RESOLVE_NO_SYMLINKS != 0 {
            return Err(Errno::ELOOP);
        }
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        p.inode().readlink()
    }

    /// The last step of open(O_CREAT): the existing file (a final symlink
    /// followed unless O_EXCL or O_NOFOLLOW), or a new one; with whether it
    /// was created.
    fn open_create(
        &mut self,
        start: &PathRef,
        path: &[u8],
        flags: i32,
        mode: u32,
    ) -> Result<(PathRef, bool), Errno> {
        let (mut dir, mut last) = self.walk_parent(start, path)?;
        loop {
            let name = match last.kind {
                LastKind::Name(name) if !last.trailing_slash => name,
                LastKind::Name(_) => return Err(Errno::EISDIR),
                LastKind::Dot => return Ok((self.step(&dir, b".")?, false)),
                LastKind::DotDot => return Ok((self.step(&dir, b"..")?, false)),
            };
            let dir_st = dir.stat()?;
            self.creds.check(&dir_st, MAY_EXEC)?;
            match dir.dentry.child(&name) {
                Ok(d) => {
                    let p = self.vfs.follow_mounts(dir.at(d));
                    if flags & (O_EXCL | O_NOFOLLOW) != 0 || !p.stat()?.is_symlink() {
                        return Ok((p, false));
                    }
                    if let Some(target) = self.jump(&p)? {
                        return Ok((target, false));
                    }
                    // A dangling symlink's target gets created.
                    let target = self.read_link(&p)?;
                    (dir, last) = self.walk_parent(&dir, &target)?;
                }
                Err(Errno::ENOENT) => {
                    dir.mount.check_writable()?;
                    self.creds.check(&dir_st, MAY_WRITE)?;
                    let inode = dir.inode().create(&name, mode, self.creds)?;
                    inotify::notify_entry(&dir.dentry, IN_CREATE, &name, 0);
                    return Ok((dir.at(dir.dentry.insert(&name, inode)), true));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory and name at which `path` would make a new
    /// non-directory, checked as for creation. Only directories are made
    /// through a trailing slash (ENOENT).
    fn new_name(&mut self, start: &PathRef, path: &[u8]) -> Result<(PathRef, Vec<u8>), Errno> {
        let (dir, last) = self.walk_parent(start, path)?;
        let LastKind::Name(name) = last.kind else {
            return Err(Errno::EEXIST);
        };
        self.check_create(&dir, &name)?;
        if last.trailing_slash {
            return Err(Errno::ENOENT);
        }
        Ok((dir, name))
    }

    /// Checks that `name` may be created in `dir`: EEXIST if it exists.
    fn check_create(&self, dir: &PathRef, name: &[u8]) -> Result<(), Errno> {
        let st = dir.stat()?;
        self.creds.check(&st, MAY_EXEC)?;
        match dir.dentry.child(name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        dir.mount.check_writable()?;
        self.creds.check(&st, MAY_WRITE)
    }

    /// The entry `name` of `dir`, not crossing a mount on it, once checked
    /// that it may be removed or renamed away.
    fn removable(&self, dir: &PathRef, name: &[u8]) -> Result<(PathRef, Stat), Errno> {
        let dir_st = dir.stat()?;
        self.creds.check(&dir_st, MAY_EXEC)?;
        let victim = dir.at(dir.dentry.child(name)?);
        let st = victim.stat()?;
        self.creds.check(&dir_st, MAY_WRITE)?;
        self.creds.check_sticky(&dir_st, &st)?;
        Ok((victim, st))
    }
}
