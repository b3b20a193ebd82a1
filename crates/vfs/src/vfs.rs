//! The mount tree, dentries and path resolution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use veil_abi::{Errno, Stat};
use veil_gofer::GoferClient;

use crate::creds::{Creds, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::file::{FileOps, OpenFile};
use crate::inode::Inode;
use crate::overlay::OverlayFs;

const O_ACCMODE: i32 = 3;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;
const O_CREAT: i32 = 0o100;
const O_EXCL: i32 = 0o200;
const O_NOCTTY: i32 = 0o400;
const O_TRUNC: i32 = 0o1000;
const O_LARGEFILE: i32 = 0o100000;
const O_DIRECTORY: i32 = 0o200000;
const O_NOFOLLOW: i32 = 0o400000;
const O_CLOEXEC: i32 = 0o2000000;
const O_PATH: i32 = 0o10000000;
const O_TMPFILE: i32 = 0o20000000;
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const AT_EACCESS: u32 = 0x200;

/// Symlinks followed in one resolution before ELOOP, as Linux's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// A name in the tree, caching its children's lookups.
pub struct Dentry {
    name: Vec<u8>,
    parent: Option<Arc<Dentry>>,
    inode: Arc<dyn Inode>,
    children: Mutex<HashMap<Vec<u8>, Arc<Dentry>>>,
}

impl Dentry {
    fn new(name: Vec<u8>, parent: Option<Arc<Dentry>>, inode: Arc<dyn Inode>) -> Arc<Dentry> {
        Arc::new(Dentry {
            name,
            parent,
            inode,
            children: Mutex::new(HashMap::new()),
        })
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<Dentry>>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn child(self: &Arc<Dentry>, name: &[u8]) -> Result<Arc<Dentry>, Errno> {
        if let Some(d) = self.children().get(name) {
            return Ok(d.clone());
        }
        let inode = self.inode.lookup(name)?;
        let d = Dentry::new(name.to_vec(), Some(self.clone()), inode);
        self.children().insert(name.to_vec(), d.clone());
        Ok(d)
    }

    fn forget(&self, name: &[u8]) {
        self.children().remove(name);
    }
}

/// A filesystem attached to the tree.
pub struct Mount {
    root: Arc<Dentry>,
    /// Where it is attached: the parent mount and the covered dentry.
    parent: Option<(Arc<Mount>, Arc<Dentry>)>,
}

/// A location: a dentry as reached through a mount.
#[derive(Clone)]
pub struct PathRef {
    pub mount: Arc<Mount>,
    pub dentry: Arc<Dentry>,
}

impl PathRef {
    fn same(&self, other: &PathRef) -> bool {
        Arc::ptr_eq(&self.mount, &other.mount) && Arc::ptr_eq(&self.dentry, &other.dentry)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.dentry.inode.stat()
    }

    /// A detached location for files that live outside the tree (host FDs).
    pub fn anonymous(name: &[u8], inode: Arc<dyn Inode>) -> PathRef {
        let root = Dentry::new(name.to_vec(), None, inode);
        PathRef {
            mount: Arc::new(Mount {
                root: root.clone(),
                parent: None,
            }),
            dentry: root,
        }
    }
}

/// A task's view of the tree: its root (chroot), working directory and umask.
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

pub struct Vfs {
    root: PathRef,
    mounts: Mutex<Vec<Arc<Mount>>>,
}

/// The result of resolving all but the last component of a path.
struct Parent {
    dir: PathRef,
    name: Vec<u8>,
    trailing_slash: bool,
}

impl Vfs {
    pub fn new(root: Arc<dyn Inode>) -> Vfs {
        let dentry = Dentry::new(Vec::new(), None, root);
        let mount = Arc::new(Mount {
            root: dentry.clone(),
            parent: None,
        });
        Vfs {
            mounts: Mutex::new(vec![mount.clone()]),
            root: PathRef { mount, dentry },
        }
    }

    /// The sandbox root of `veil do`: the gofer's tree under a memory
    /// overlay, with devfs on /dev and empty in-memory /proc and /sys until
    /// their filesystems exist.
    pub fn with_gofer_root(client: Arc<GoferClient>) -> Result<Vfs, Errno> {
        let fs = OverlayFs::new(crate::overlay::DEFAULT_LIMIT);
        let lower = crate::gofer::GoferNode::root(client)?;
        let vfs = Vfs::new(fs.root(Some(lower))?);
        let ctx = FsContext::new(vfs.root());
        let creds = Creds::default();
        for (dir, inode) in [
            (&b"/dev"[..], crate::devfs::root()),
            (b"/proc", fs.root(None)?),
            (b"/sys", fs.root(None)?),
        ] {
            // A missing mount point is created in the overlay.
            let at = match vfs.lookup(&ctx, &ctx.root, dir, true) {
                Ok(at) => at,
                Err(_) => {
                    vfs.mkdir(&ctx, &ctx.root, dir, 0o755, &creds)?;
                    vfs.lookup(&ctx, &ctx.root, dir, true)?
                }
            };
            vfs.mount(&at, inode);
        }
        Ok(vfs)
    }

    pub fn root(&self) -> PathRef {
        self.root.clone()
    }

    /// Mounts a filesystem whose root is `root` over `at`.
    pub fn mount(&self, at: &PathRef, root: Arc<dyn Inode>) {
        let m = Arc::new(Mount {
            root: Dentry::new(at.dentry.name.clone(), at.dentry.parent.clone(), root),
            parent: Some((at.mount.clone(), at.dentry.clone())),
        });
        self.mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(m);
    }

    fn mounted_at(&self, p: &PathRef) -> Option<Arc<Mount>> {
        let mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        // The most recent mount on a point covers earlier ones.
        mounts
            .iter()
            .rev()
            .find(|m| {
                m.parent
                    .as_ref()
                    .is_some_and(|(pm, pd)| Arc::ptr_eq(pm, &p.mount) && Arc::ptr_eq(pd, &p.dentry))
            })
            .cloned()
    }

    fn parent_of(&self, ctx: &FsContext, cur: &PathRef) -> PathRef {
        let mut p = cur.clone();
        loop {
            if p.same(&ctx.root) {
                return p;
            }
            if !Arc::ptr_eq(&p.dentry, &p.mount.root) {
                break;
            }
            match &p.mount.parent {
                Some((m, d)) => {
                    p = PathRef {
                        mount: m.clone(),
                        dentry: d.clone(),
                    }
                }
                None => return p,
            }
        }
        match &p.dentry.parent {
            Some(parent) => PathRef {
                mount: p.mount.clone(),
                dentry: parent.clone(),
            },
            None => p,
        }
    }

    /// One step of a walk: `name` inside directory `cur`, crossing mounts.
    fn step(
        &self,
        ctx: &FsContext,
        cur: &PathRef,
        name: &[u8],
        creds: &Creds,
    ) -> Result<PathRef, Errno> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let st = cur.stat()?;
        if !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        creds.check(&st, MAY_EXEC, true)?;
        if name == b"." {
            return Ok(cur.clone());
        }
        if name == b".." {
            return Ok(self.parent_of(ctx, cur));
        }
        let mut p = PathRef {
            mount: cur.mount.clone(),
            dentry: cur.dentry.child(name)?,
        };
        while let Some(m) = self.mounted_at(&p) {
            p = PathRef {
                dentry: m.root.clone(),
                mount: m,
            };
        }
        Ok(p)
    }

    fn resolve(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        follow: bool,
        creds: &Creds,
        links: &mut usize,
    ) -> Result<PathRef, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path[0] == b'/' {
            ctx.root.clone()
        } else {
            start.clone()
        };
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let trailing = path.ends_with(b"/");
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let next = self.step(ctx, &cur, comp, creds)?;
            if next.stat()?.is_symlink() && (!last || follow || trailing) {
                *links += 1;
                if *links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = next.dentry.inode.readlink()?;
                cur = self.resolve(ctx, &cur, &target, true, creds, links)?;
            } else {
                cur = next;
            }
        }
        if trailing && !cur.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// Resolves everything but the last component.
    fn resolve_parent(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        creds: &Creds,
    ) -> Result<Parent, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let trimmed_len = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trimmed = &path[..trimmed_len];
        let (dir_part, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i + 1], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let dir = if dir_part.is_empty() {
            start.clone()
        } else {
            self.resolve(ctx, start, dir_part, true, creds, &mut 0)?
        };
        // "/" itself has no last component; treat it as "." of the root.
        let name = if name.is_empty() {
            b".".to_vec()
        } else {
            name.to_vec()
        };
        Ok(Parent {
            dir,
            name,
            trailing_slash: trimmed_len < path.len(),
        })
    }

    pub fn lookup(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        follow: bool,
    ) -> Result<PathRef, Errno> {
        self.resolve(ctx, start, path, follow, &Creds::default(), &mut 0)
    }

    /// Like `lookup`, with the task's search permissions enforced.
    pub fn lookup_as(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        follow: bool,
        creds: &Creds,
    ) -> Result<PathRef, Errno> {
        self.resolve(ctx, start, path, follow, creds, &mut 0)
    }

    pub fn stat(&self, p: &PathRef) -> Result<Stat, Errno> {
        p.stat()
    }

    pub fn check_search(&self, p: &PathRef, creds: &Creds) -> Result<(), Errno> {
        creds.check(&p.stat()?, MAY_EXEC, true)
    }

    pub fn open(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        flags: i32,
        mode: u32,
        creds: &Creds,
    ) -> Result<Arc<OpenFile>, Errno> {
        if flags & O_TMPFILE == O_TMPFILE {
            return Err(Errno::EOPNOTSUPP);
        }
        let accmode = flags & O_ACCMODE;
        if accmode == O_ACCMODE && flags & O_PATH == 0 {
            return Err(Errno::EINVAL);
        }
        let mut created = false;
        let target = if flags & O_CREAT != 0 && flags & O_PATH == 0 {
            let parent = self.resolve_parent(ctx, start, path, creds)?;
            if parent.trailing_slash {
                return Err(Errno::EISDIR);
            }
            match self.step(ctx, &parent.dir, &parent.name, creds) {
                Ok(existing) => {
                    if flags & O_EXCL != 0 {
                        return Err(Errno::EEXIST);
                    }
                    if existing.stat()?.is_symlink() && flags & O_NOFOLLOW == 0 {
                        self.resolve(ctx, &parent.dir, &parent.name, true, creds, &mut 0)?
                    } else {
                        existing
                    }
                }
                Err(Errno::ENOENT) => {
                    let dst = parent.dir.stat()?;
                    creds.check(&dst, MAY_WRITE | MAY_EXEC, true)?;
                    let inode = parent.dir.dentry.inode.create(
                        &parent.name,
                        mode & !ctx.umask & 0o7777,
                        creds,
                    )?;
                    let d =
                        Dentry::new(parent.name.clone(), Some(parent.dir.dentry.clone()), inode);
                    parent
                        .dir
                        .dentry
                        .children()
                        .insert(parent.name.clone(), d.clone());
                    created = true;
                    PathRef {
                        mount: parent.dir.mount.clone(),
                        dentry: d,
                    }
                }
                Err(e) => return Err(e),
            }
        } else {
            self.resolve(ctx, start, path, flags & O_NOFOLLOW == 0, creds, &mut 0)?
        };
        let st = target.stat()?;
        let kept = (flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE;
        if flags & O_PATH != 0 {
            if flags & O_DIRECTORY != 0 && !st.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            return Ok(OpenFile::new(
                target.clone(),
                kept & (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_LARGEFILE),
                Box::new(PathOnly(target)),
            ));
        }
        if st.is_symlink() {
            return Err(Errno::ELOOP);
        }
        if flags & O_DIRECTORY != 0 && !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let writes = accmode == O_WRONLY || accmode == O_RDWR;
        if st.is_dir() && (writes || flags & O_CREAT != 0) {
            return Err(Errno::EISDIR);
        }
        if !created {
            let mut want = 0;
            if accmode != O_WRONLY {
                want |= MAY_READ;
            }
            if writes || flags & O_TRUNC != 0 {
                want |= MAY_WRITE;
            }
            creds.check(&st, want, true)?;
        }
        if st.is_reg() && (writes || (flags & O_TRUNC != 0 && !created)) {
            target
                .dentry
                .inode
                .prepare_write(flags & O_TRUNC != 0 && writes)?;
        }
        let ops = target.dentry.inode.clone().open(flags)?;
        Ok(OpenFile::new(target, kept, ops))
    }

    pub fn readlink(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        let p = self.lookup(ctx, start, path, false)?;
        self.readlink_at(&p)
    }

    pub fn readlink_at(&self, p: &PathRef) -> Result<Vec<u8>, Errno> {
        if !p.stat()?.is_symlink() {
            return Err(Errno::EINVAL);
        }
        p.dentry.inode.readlink()
    }

    /// access(2) and faccessat2(2): `mode` is F_OK (0) or R/W/X_OK bits.
    pub fn access(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        mode: u32,
        flags: u32,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let effective = flags & AT_EACCESS != 0;
        // access() checks with the real IDs; AT_EACCESS with the effective ones.
        let as_checked = if effective {
            creds.clone()
        } else {
            Creds {
                euid: creds.uid,
                egid: creds.gid,
                ..creds.clone()
            }
        };
        let p = if path.is_empty() {
            start.clone()
        } else {
            self.resolve(
                ctx,
                start,
                path,
                flags & AT_SYMLINK_NOFOLLOW == 0,
                &as_checked,
                &mut 0,
            )?
        };
        let st = p.stat()?;
        if mode == 0 {
            return Ok(());
        }
        as_checked.check(&st, mode & 7, true)
    }

    /// The path of `p` as seen from `ctx`'s root, as getcwd reports it.
    pub fn path_of(&self, ctx: &FsContext, p: &PathRef) -> Vec<u8> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut cur = p.clone();
        loop {
            if cur.same(&ctx.root) {
                break;
            }
            if Arc::ptr_eq(&cur.dentry, &cur.mount.root) {
                match &cur.mount.parent {
                    Some((m, d)) => {
                        cur = PathRef {
                            mount: m.clone(),
                            dentry: d.clone(),
                        };
                        continue;
                    }
                    None => break,
                }
            }
            parts.push(cur.dentry.name.clone());
            match &cur.dentry.parent {
                Some(parent) => {
                    cur = PathRef {
                        mount: cur.mount.clone(),
                        dentry: parent.clone(),
                    }
                }
                None => break,
            }
        }
        let mut out = Vec::new();
        for part in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(part);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    /// Resolves the parent of a path to be created or removed, checking
    /// write and search permission on it.
    fn parent_for_change(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        creds: &Creds,
    ) -> Result<Parent, Errno> {
        let parent = self.resolve_parent(ctx, start, path, creds)?;
        let st = parent.dir.stat()?;
        if !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        creds.check(&st, MAY_WRITE | MAY_EXEC, true)?;
        Ok(parent)
    }

    pub fn mkdir(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        mode: u32,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let parent = self.parent_for_change(ctx, start, path, creds)?;
        if parent.name == b"."
            || parent.name == b".."
            || self.step(ctx, &parent.dir, &parent.name, creds).is_ok()
        {
            return Err(Errno::EEXIST);
        }
        parent
            .dir
            .dentry
            .inode
            .mkdir(&parent.name, mode & !ctx.umask & 0o7777, creds)?;
        parent.dir.dentry.forget(&parent.name);
        Ok(())
    }

    pub fn symlink(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        target: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let parent = self.parent_for_change(ctx, start, path, creds)?;
        if parent.trailing_slash {
            return Err(Errno::ENOENT);
        }
        if parent.name == b"."
            || parent.name == b".."
            || self.step(ctx, &parent.dir, &parent.name, creds).is_ok()
        {
            return Err(Errno::EEXIST);
        }
        parent
            .dir
            .dentry
            .inode
            .symlink(&parent.name, target, creds)?;
        parent.dir.dentry.forget(&parent.name);
        Ok(())
    }

    /// The entry to remove, refusing mount points (EBUSY).
    fn victim(&self, parent: &Parent) -> Result<PathRef, Errno> {
        let p = PathRef {
            mount: parent.dir.mount.clone(),
            dentry: parent.dir.dentry.child(&parent.name)?,
        };
        if self.mounted_at(&p).is_some() {
            return Err(Errno::EBUSY);
        }
        Ok(p)
    }

    pub fn unlink(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let parent = self.parent_for_change(ctx, start, path, creds)?;
        if parent.name == b"." || parent.name == b".." {
            return Err(Errno::EISDIR);
        }
        let victim = self.victim(&parent)?;
        let st = victim.stat()?;
        if st.is_dir() {
            return Err(Errno::EISDIR);
        }
        if parent.trailing_slash {
            return Err(Errno::ENOTDIR);
        }
        parent.dir.dentry.inode.unlink(&parent.name)?;
        parent.dir.dentry.forget(&parent.name);
        Ok(())
    }

    pub fn rmdir(
        &self,
        ctx: &FsContext,
        start: &PathRef,
        path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let parent = self.parent_for_change(ctx, start, path, creds)?;
        match parent.name.as_slice() {
            b"." => return Err(Errno::EINVAL),
            b".." => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let victim = self.victim(&parent)?;
        if !victim.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        parent.dir.dentry.inode.rmdir(&parent.name)?;
        parent.dir.dentry.forget(&parent.name);
        Ok(())
    }

    pub fn rename(
        &self,
        ctx: &FsContext,
        old_start: &PathRef,
        old_path: &[u8],
        new_start: &PathRef,
        new_path: &[u8],
        creds: &Creds,
    ) -> Result<(), Errno> {
        let old = self.parent_for_change(ctx, old_start, old_path, creds)?;
        let new = self.parent_for_change(ctx, new_start, new_path, creds)?;
        for name in [&old.name, &new.name] {
            if name.as_slice() == b"." || name.as_slice() == b".." {
                return Err(Errno::EBUSY);
            }
        }
        if !Arc::ptr_eq(&old.dir.mount, &new.dir.mount) {
            return Err(Errno::EXDEV);
        }
        let src = self.victim(&old)?;
        let src_st = src.stat()?;
        if (old.trailing_slash || new.trailing_slash) && !src_st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // A directory cannot move beneath itself.
        if src_st.is_dir() {
            let mut d = Some(new.dir.dentry.clone());
            while let Some(cur) = d {
                if Arc::ptr_eq(&cur, &src.dentry) {
                    return Err(Errno::EINVAL);
                }
                d = cur.parent.clone();
            }
        }
        if let Ok(dst) = self.victim(&new) {
            if Arc::ptr_eq(&dst.dentry.inode, &src.dentry.inode) {
                return Ok(());
            }
            let dst_st = dst.stat()?;
            match (src_st.is_dir(), dst_st.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        old.dir
            .dentry
            .inode
            .rename(&old.name, &new.dir.dentry.inode, &new.name)?;
        old.dir.dentry.forget(&old.name);
        new.dir.dentry.forget(&new.name);
        Ok(())
    }
}

/// The operations of an O_PATH descriptor: nothing but stat.
struct PathOnly(PathRef);

impl FileOps for PathOnly {
    fn stat(&self) -> Result<Stat, Errno> {
        self.0.stat()
    }
}

/// The anonymous inode behind files that live outside the tree.
pub(crate) fn anon_inode() -> Arc<dyn Inode> {
    static ANON: OnceLock<Arc<dyn Inode>> = OnceLock::new();
    ANON.get_or_init(|| crate::devfs::anon()).clone()
}
