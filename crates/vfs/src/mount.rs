//! What a mount is made of: the configuration the sandbox starts from (which
//! an OCI runtime's config.json maps onto), the filesystem instances
//! (superblocks) mounts show, and per-mount flags.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use linux_raw_sys::general as g;
use serde::{Deserialize, Serialize};
use veil_abi::{Errno, Statfs};
use veil_gofer::{Fid, GoferClient};

use crate::fs::memfs::MemFs;

/// Per-mount flags, with `mount(2)`'s `MS_*` values (which `statfs`'s
/// `ST_*` share).
pub const MNT_RDONLY: u32 = g::MS_RDONLY;
pub const MNT_NOSUID: u32 = g::MS_NOSUID;
pub const MNT_NODEV: u32 = g::MS_NODEV;
pub const MNT_NOEXEC: u32 = g::MS_NOEXEC;
/// The flags a mount keeps.
pub const MNT_FLAGS: u32 = MNT_RDONLY | MNT_NOSUID | MNT_NODEV | MNT_NOEXEC;

/// The sandbox's filesystems: the root (gofer connection 0) and then, in
/// order, the mounts on top of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    /// Whether the root keeps writes in memory over the gofer's read-only
    /// tree (an overlay) instead of showing the tree as it is.
    pub root_overlay: bool,
    pub mounts: Vec<MountEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// An absolute path in the sandbox; missing directories are made.
    pub destination: Vec<u8>,
    pub kind: MountKind,
    /// `MNT_*` flags.
    pub flags: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host file or directory served by gofer connection `conn`.
    Bind {
        conn: usize,
        /// The host path, for display only: the gofer opened it.
        source: Vec<u8>,
        readonly: bool,
    },
    Tmpfs {
        size: u64,
        mode: u32,
    },
    Proc,
    Sysfs,
    /// The pseudo-terminals' /dev/pts.
    Devpts,
    /// Our devfs.
    Devtmpfs,
}

impl MountConfig {
    /// `veil do`'s default tree over the root `/`: devfs on /dev, a tmpfs on
    /// /dev/shm (for shm_open and sem_open), procfs and sysfs, so that the
    /// host's never show through the gofer.
    pub fn default_tree() -> MountConfig {
        let entry = |dest: &[u8], kind, flags| MountEntry {
            destination: dest.to_vec(),
            kind,
            flags,
        };
        MountConfig {
            root_overlay: true,
            mounts: vec![
                entry(b"/dev", MountKind::Devtmpfs, MNT_NOSUID),
                entry(b"/dev/pts", MountKind::Devpts, MNT_NOSUID | MNT_NOEXEC),
                entry(
                    b"/dev/shm",
                    MountKind::Tmpfs {
                        size: crate::fs::memfs::DEFAULT_SIZE_LIMIT,
                        mode: 0o1777,
                    },
                    MNT_NOSUID | MNT_NODEV,
                ),
                entry(
                    b"/proc",
                    MountKind::Proc,
                    MNT_NOSUID | MNT_NODEV | MNT_NOEXEC,
                ),
                // Read-write as the host's: sysfs itself refuses writes
                // (EACCES), as the host's read-only attributes do.
                entry(
                    b"/sys",
                    MountKind::Sysfs,
                    MNT_NOSUID | MNT_NODEV | MNT_NOEXEC,
                ),
            ],
        }
    }
}

/// What a filesystem instance is, for statfs and the mount table.
pub enum FsKind {
    /// The gofer's host tree, with the in-memory upper layer if overlaid.
    Gofer {
        client: Arc<GoferClient>,
        fid: Fid,
        upper: Option<Arc<MemFs>>,
    },
    Tmpfs(Arc<MemFs>),
    Proc,
    Sysfs,
    Devtmpfs,
    Devpts,
    /// Files without a name in the tree (pipes), and filesystems built by
    /// tests.
    Other,
}

/// One filesystem instance, shared by every mount of it (binds).
pub struct Superblock {
    pub kind: FsKind,
    /// The device minor shown in mountinfo ("0:N").
    pub dev: u32,
    /// Flags of the filesystem itself (`MNT_RDONLY` from a remount).
    flags: AtomicU32,
    /// The source shown in /proc/mounts.
    pub source: Vec<u8>,
    /// Filesystem options shown after the mount's ("size=...,mode=...").
    options: Mutex<Vec<u8>>,
}

static NEXT_DEV: AtomicU32 = AtomicU32::new(1);

impl Superblock {
    pub fn new(kind: FsKind, source: &[u8], options: &[u8]) -> Arc<Superblock> {
        Arc::new(Superblock {
            kind,
            dev: NEXT_DEV.fetch_add(1, Ordering::Relaxed),
            flags: AtomicU32::new(0),
            source: source.to_vec(),
            options: Mutex::new(options.to_vec()),
        })
    }

    pub fn fstype(&self) -> &'static str {
        match &self.kind {
            FsKind::Gofer { upper: Some(_), .. } => "overlay",
            // Binds of host files, as gVisor names its gofer mounts.
            FsKind::Gofer { upper: None, .. } => "9p",
            FsKind::Tmpfs(_) => "tmpfs",
            FsKind::Proc => "proc",
            FsKind::Sysfs => "sysfs",
            FsKind::Devtmpfs => "devtmpfs",
            FsKind::Devpts => "devpts",
            FsKind::Other => "none",
        }
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    pub fn set_flags(&self, flags: u32) {
        self.flags.store(flags & MNT_RDONLY, Ordering::Release);
    }

    pub fn options(&self) -> Vec<u8> {
        self.options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A remount's options `data`: tmpfs takes a new `size=` (EINVAL below
    /// what it holds); other options are checked and keep their values.
    pub fn remount(&self, data: &[u8]) -> Result<(), Errno> {
        let FsKind::Tmpfs(fs) = &self.kind else {
            return Ok(());
        };
        let asked = TmpfsOptions::parse(data, 0)?;
        let has_size = data.split(|&b| b == b',').any(|o| o.starts_with(b"size="));
        if !has_size {
            return Ok(());
        }
        let mut options = self.options.lock().unwrap_or_else(PoisonError::into_inner);
        let mut current = TmpfsOptions::parse(&options, 0)?;
        fs.set_limit(asked.size)?;
        current.size = asked.size;
        *options = current.display();
        Ok(())
    }

    /// statfs(2) of the filesystem, before the mount adds its flags.
    pub fn statfs(&self) -> Result<Statfs, Errno> {
        const BSIZE: u64 = 4096;
        let magic = |m: u32| i64::from(m);
        let mut st = Statfs {
            f_bsize: BSIZE as i64,
            f_frsize: BSIZE as i64,
            f_namelen: 255,
            f_fsid: [self.dev as i32, 0],
            ..Statfs::default()
        };
        let memory = |st: &mut Statfs, fs: &MemFs| {
            let (used, limit) = fs.usage();
            st.f_blocks = limit / BSIZE;
            st.f_bfree = limit.saturating_sub(used) / BSIZE;
            st.f_bavail = st.f_bfree;
            st.f_files = 1 << 20;
            st.f_ffree = 1 << 20;
        };
        match &self.kind {
            FsKind::Gofer { client, fid, upper } => {
                let host = client.statfs(*fid)?;
                st.f_bsize = host.bsize;
                st.f_frsize = host.frsize;
                st.f_blocks = host.blocks;
                st.f_bfree = host.bfree;
                st.f_bavail = host.bavail;
                st.f_files = host.files;
                st.f_ffree = host.ffree;
                st.f_namelen = host.namelen;
                st.f_type = match upper {
                    Some(_) => magic(g::OVERLAYFS_SUPER_MAGIC),
                    None => host.fs_type,
                };
            }
            FsKind::Tmpfs(fs) => {
                st.f_type = magic(g::TMPFS_MAGIC);
                memory(&mut st, fs);
            }
            FsKind::Proc => st.f_type = magic(g::PROC_SUPER_MAGIC),
            FsKind::Sysfs => st.f_type = magic(g::SYSFS_MAGIC),
            FsKind::Devtmpfs => st.f_type = magic(g::TMPFS_MAGIC),
            FsKind::Devpts => st.f_type = magic(g::DEVPTS_SUPER_MAGIC),
            FsKind::Other => st.f_type = magic(g::TMPFS_MAGIC),
        }
        Ok(st)
    }
}

impl Drop for Superblock {
    fn drop(&mut self) {
        if let FsKind::Gofer { client, fid, .. } = &self.kind {
            client.clunk(*fid);
        }
    }
}

/// tmpfs's options: `size=` (with a k, m or g suffix), `mode=` (octal),
/// `uid=`, `gid=`, and `nr_inodes=` (checked, not enforced).
pub struct TmpfsOptions {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl TmpfsOptions {
    pub fn parse(data: &[u8], default_size: u64) -> Result<TmpfsOptions, Errno> {
        let mut o = TmpfsOptions {
            size: default_size,
            mode: 0o1777,
            uid: 0,
            gid: 0,
        };
        for opt in data.split(|&b| b == b',').filter(|o| !o.is_empty()) {
            let (key, value) = match opt.iter().position(|&b| b == b'=') {
                Some(i) => (&opt[..i], &opt[i + 1..]),
                None => (opt, &b""[..]),
            };
            let value = std::str::from_utf8(value).map_err(|_| Errno::EINVAL)?;
            let num = |radix| u32::from_str_radix(value, radix).map_err(|_| Errno::EINVAL);
            match key {
                b"size" => o.size = parse_size(value)?,
                b"mode" => o.mode = num(8)? & 0o7777,
                b"uid" => o.uid = num(10)?,
                b"gid" => o.gid = num(10)?,
                b"nr_inodes" => {
                    parse_size(value)?;
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        Ok(o)
    }

    /// The options as /proc/mounts shows them.
    pub fn display(&self) -> Vec<u8> {
        let mut s = format!("size={}k,mode={:o}", self.size / 1024, self.mode);
        if self.uid != 0 {
            s += &format!(",uid={}", self.uid);
        }
        if self.gid != 0 {
            s += &format!(",gid={}", self.gid);
        }
        s.into_bytes()
    }
}

/// A size with an optional k, m or g suffix (memparse).
pub fn parse_size(s: &str) -> Result<u64, Errno> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| Errno::EINVAL)?;
    n.checked_mul(1 << shift).ok_or(Errno::EINVAL)
}

/// The per-mount options of /proc/mounts: "rw,nosuid,nodev,noexec,relatime".
pub fn flag_options(flags: u32) -> String {
    let mut s = String::from(if flags & MNT_RDONLY != 0 { "ro" } else { "rw" });
    for (bit, name) in [
        (MNT_NOSUID, ",nosuid"),
        (MNT_NODEV, ",nodev"),
        (MNT_NOEXEC, ",noexec"),
    ] {
        if flags & bit != 0 {
            s += name;
        }
    }
    s + ",relatime"
}

/// Escapes a path for /proc/mounts as Linux's seq_escape does.
pub fn escape(path: &[u8], out: &mut Vec<u8>) {
    for &b in path {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
}
