//! The mount tree, dentries, path resolution and the namespace operations
//! the syscall glue calls.
//!
//! A walk goes one component at a time from the task's root or a start
//! location (its cwd or an *at() dirfd), checking search permission on each
//! directory, crossing mounts both ways, never leaving the task's root
//! through "..", and following at most [`MAX_SYMLINKS`] symlinks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};

use veil_abi::{Errno, Stat};
use veil_gofer::GoferClient;
use veil_memory::MemoryFile;

use crate::creds::{Creds, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::file::{NoOps, OpenFile};
use crate::flags::*;
use crate::fs::{devfs, devpts, gofer, memfs, overlay};
use crate::inode::Inode;
use crate::lock::{Flocks, RecordLocks};

/// Symlinks one resolution may follow (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
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
}

struct Link {
    name: Vec<u8>,
    /// Empty for a filesystem's root.
    parent: Weak<Dentry>,
}

impl Dentry {
    fn new(name: &[u8], parent: Weak<Dentry>, inode: Arc<dyn Inode>) -> Arc<Dentry> {
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
        lock(&self.children)
            .entry(name.to_vec())
            .or_insert_with(|| Dentry::new(name, Arc::downgrade(self), inode))
            .clone()
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

/// A filesystem attached to the tree.
pub struct Mount {
    root: Arc<Dentry>,
    /// The location it covers; `None` for the root of the tree and for the
    /// private mounts of files outside it.
    mountpoint: Option<PathRef>,
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
        let root = Dentry::new(name, Weak::new(), inode);
        PathRef {
            mount: Arc::new(Mount {
                root: root.clone(),
                mountpoint: None,
            }),
            dentry: root,
        }
    }

    /// The name of a file made by `anonymous` ("pipe:[N]"), which is what
    /// /proc/PID/fd shows for it. The tree's root is nameless.
    pub fn anonymous_name(&self) -> Option<Vec<u8>> {
        let anon = self.mount.mountpoint.is_none() && self.dentry.parent().is_none();
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

fn mount_key(p: &PathRef) -> MountKey {
    (
        Arc::as_ptr(&p.mount) as usize,
        Arc::as_ptr(&p.dentry) as usize,
    )
}

/// The sandbox's mount tree.
pub struct Vfs {
    root: PathRef,
    mounts: RwLock<HashMap<MountKey, Arc<Mount>>>,
    /// Serializes changes to the namespace (creating, removing, renaming),
    /// so that each one's checks still hold when it acts.
    changes: Mutex<()>,
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
        let dentry = Dentry::new(b"", Weak::new(), root);
        let mount = Arc::new(Mount {
            root: dentry.clone(),
            mountpoint: None,
        });
        Vfs {
            root: PathRef { mount, dentry },
            mounts: RwLock::new(HashMap::new()),
            changes: Mutex::new(()),
            devpts: devpts::DevPts::default(),
        }
    }

    /// The sandbox's tree: the gofer's files under an in-memory overlay,
    /// devfs on /dev with an in-memory filesystem on /dev/shm (for
    /// shm_open and sem_open), and empty in-memory filesystems on /proc and
    /// /sys so that the host's never show through the gofer (the sentry
    /// mounts its procfs over the empty /proc). In-memory file data lives
    /// in `memfile`.
    pub fn with_gofer_root(
        client: Arc<GoferClient>,
        memfile: Arc<MemoryFile>,
    ) -> Result<Vfs, Errno> {
        let lower = gofer::root(client)?;
        let memfs = |limit| memfs::MemFs::new(limit, memfile.clone());
        let vfs = Vfs::new(overlay::new(lower, memfs(memfs::DEFAULT_SIZE_LIMIT))?);
        for (dir, fs) in [
            (&b"/dev"[..], devfs::root(&vfs.devpts)),
            (b"/dev/pts", vfs.devpts.root()),
            (
                b"/dev/shm",
                memfs(memfs::DEFAULT_SIZE_LIMIT).root_with_mode(0o1777),
            ),
            (b"/proc", memfs(0).root()),
            (b"/sys", memfs(0).root()),
        ] {
            vfs.mount_at(dir, fs)?;
        }
        Ok(vfs)
    }

    /// Mounts `fs` on the directory at absolute path `dir`, made (by root,
    /// mode 0755) if missing.
    pub fn mount_at(&self, dir: &[u8], fs: Arc<dyn Inode>) -> Result<(), Errno> {
        let ctx = FsContext::new(self.root());
        let at = match self.lookup(&ctx, &ctx.root, dir, true) {
            Err(Errno::ENOENT) => {
                self.mkdir(&ctx, &ctx.root, dir, 0o755, &Creds::new(0, 0))?;
                self.lookup(&ctx, &ctx.root, dir, true)?
            }
            r => r?,
        };
        self.mount(&at, fs)
    }

    pub fn root(&self) -> PathRef {
        self.root.clone()
    }

    /// The ptys of /dev/pts.
    pub fn ptys(&self) -> &Arc<crate::pty::Registry> {
        self.devpts.registry()
    }

    /// Mounts the filesystem whose root directory is `root` over the
    /// directory `at`, on top of any mounts there.
    pub fn mount(&self, at: &PathRef, root: Arc<dyn Inode>) -> Result<(), Errno> {
        let at = self.follow_mounts(at.clone());
        if !at.stat()?.is_dir() || !root.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mount = Arc::new(Mount {
            root: Dentry::new(&at.dentry.name(), Weak::new(), root),
            mountpoint: Some(at.clone()),
        });
        self.mounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(mount_key(&at), mount);
        at.dentry.mounted.store(true, Ordering::Release);
        Ok(())
    }

    fn mount_on(&self, p: &PathRef) -> Option<Arc<Mount>> {
        if !p.dentry.mounted.load(Ordering::Acquire) {
            return None;
        }
        let mounts = self.mounts.read().unwrap_or_else(PoisonError::into_inner);
        mounts.get(&mount_key(p)).cloned()
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
            match &p.mount.mountpoint {
                Some(mp) => p = mp.clone(),
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
        let mut walker = Walker::new(self, ctx, creds);
        if flags & O_PATH != 0 {
            let target = walker.walk(start, path, flags & O_NOFOLLOW == 0)?;
            if flags & O_DIRECTORY != 0 && !target.stat()?.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let kept = flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW);
            return OpenFile::new(target, kept, Box::new(NoOps));
        }
        if flags & O_TMPFILE == O_TMPFILE {
            return Err(Errno::EOPNOTSUPP);
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
                match &cur.mount.mountpoint {
                    Some(mp) => cur = mp.clone(),
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
        dir.inode().mkdir(&name, mode & !ctx.umask & 0o1777, creds)
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
        let (dir, last) = walker.walk_parent(start, path)?;
        let LastKind::Name(name) = last.kind else {
            return Err(Errno::EEXIST);
        };
        walker.check_create(&dir, &name)?;
        // Only directories are made through a trailing slash.
        if last.trailing_slash {
            return Err(Errno::ENOENT);
        }
        dir.inode().symlink(&name, target, creds)
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
        let (dir, last) = walker.walk_parent(new_start, new_path)?;
        let LastKind::Name(name) = last.kind else {
            return Err(Errno::EEXIST);
        };
        walker.check_create(&dir, &name)?;
        if last.trailing_slash {
            return Err(Errno::ENOENT);
        }
        if !Arc::ptr_eq(&src.mount, &dir.mount) {
            return Err(Errno::EXDEV);
        }
        if src.stat()?.is_dir() {
            return Err(Errno::EPERM);
        }
        dir.inode().link(&name, src.inode().as_ref())
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
        Ok(())
    }

    /// rename(2), replacing any target.
    pub fn rename(
        &self,
        ctx: &FsContext,
        old_start: &PathRef,
        old_path: &[u8],
        new_start: &PathRef,
        new_path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
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
        let (src, src_st) = walker.removable(&old_dir, &old_name)?;
        let is_dir = src_st.is_dir();
        if !is_dir && (old_last.trailing_slash || new_last.trailing_slash) {
            return Err(Errno::ENOTDIR);
        }
        let new_dir_st = new_dir.stat()?;
        creds.check(&new_dir_st, MAY_EXEC)?;
        let dst = match new_dir.dentry.child(&new_name) {
            Ok(d) => Some(new_dir.at(d)),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        creds.check(&new_dir_st, MAY_WRITE)?;
        if let Some(dst) = &dst {
            // Two names of one file: Linux does nothing.
            if std::ptr::addr_eq(Arc::as_ptr(src.inode()), Arc::as_ptr(dst.inode())) {
                return Ok(());
            }
            let dst_st = dst.stat()?;
            creds.check_sticky(&new_dir_st, &dst_st)?;
            match (is_dir, dst_st.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
            self.check_unmounted(dst)?;
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
        )?;
        old_dir
            .dentry
            .move_child(&old_name, &new_dir.dentry, &new_name);
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

/// One path resolution: its task's view, identity and symlink budget.
struct Walker<'a> {
    vfs: &'a Vfs,
    ctx: &'a FsContext,
    creds: &'a Creds,
    links: usize,
}

impl<'a> Walker<'a> {
    fn new(vfs: &'a Vfs, ctx: &'a FsContext, creds: &'a Creds) -> Self {
        Walker {
            vfs,
            ctx,
            creds,
            links: 0,
        }
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
            self.ctx.root.clone()
        } else {
            start.clone()
        };
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
        match name {
            b"." => Ok(dir.clone()),
            b".." => Ok(self.vfs.parent_of(&self.ctx.root, dir)),
            _ if name.len() > NAME_MAX => Err(Errno::ENAMETOOLONG),
            _ => Ok(self.vfs.follow_mounts(dir.at(dir.dentry.child(name)?))),
        }
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
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        Ok(Some(target))
    }

    /// Reads a symlink the walk follows, counting it against the budget.
    fn read_link(&mut self, p: &PathRef) -> Result<Vec<u8>, Errno> {
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
                    self.creds.check(&dir_st, MAY_WRITE)?;
                    let inode = dir.inode().create(&name, mode, self.creds)?;
                    return Ok((dir.at(dir.dentry.insert(&name, inode)), true));
                }
                Err(e) => return Err(e),
            }
        }
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
