//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use veil_abi::Errno;
use veil_memory::MemoryFile;
use veil_vfs::{Creds, FsContext, OpenFile, PathRef, Vfs};

/// One memory file for every filesystem a test process makes.
pub fn memfile() -> Arc<MemoryFile> {
    static MEMFILE: OnceLock<Arc<MemoryFile>> = OnceLock::new();
    MEMFILE
        .get_or_init(|| Arc::new(MemoryFile::new().expect("memory file")))
        .clone()
}

pub const O_RDONLY: i32 = 0;
pub const O_WRONLY: i32 = 1;
pub const O_RDWR: i32 = 2;
pub const O_CREAT: i32 = 0o100;
pub const O_EXCL: i32 = 0o200;
pub const O_TRUNC: i32 = 0o1000;
pub const O_APPEND: i32 = 0o2000;
pub const O_NONBLOCK: i32 = 0o4000;
pub const O_DIRECTORY: i32 = 0o200000;
pub const O_NOFOLLOW: i32 = 0o400000;
pub const O_PATH: i32 = 0o10000000;

/// A task's view of a VFS, acting as `creds`.
pub struct Fs {
    pub vfs: Vfs,
    pub ctx: FsContext,
    pub creds: Creds,
}

impl Fs {
    pub fn new(vfs: Vfs) -> Fs {
        let ctx = FsContext::new(vfs.root());
        Fs {
            vfs,
            ctx,
            creds: Creds::new(0, 0),
        }
    }

    pub fn lookup(&self, path: &str) -> Result<PathRef, Errno> {
        self.vfs
            .lookup_as(&self.ctx, &self.ctx.cwd, path.as_bytes(), true, &self.creds)
    }

    pub fn lstat_mode(&self, path: &str) -> Result<u32, Errno> {
        let p = self.vfs.lookup_as(
            &self.ctx,
            &self.ctx.cwd,
            path.as_bytes(),
            false,
            &self.creds,
        )?;
        Ok(p.stat()?.st_mode)
    }

    pub fn open(&self, path: &str, flags: i32) -> Result<Arc<OpenFile>, Errno> {
        self.vfs.open(
            &self.ctx,
            &self.ctx.cwd,
            path.as_bytes(),
            flags,
            0o666,
            &self.creds,
        )
    }

    pub fn mkdir(&self, path: &str) -> Result<(), Errno> {
        self.vfs.mkdir(
            &self.ctx,
            &self.ctx.cwd,
            path.as_bytes(),
            0o777,
            &self.creds,
        )
    }

    pub fn symlink(&self, target: &str, path: &str) -> Result<(), Errno> {
        self.vfs.symlink(
            &self.ctx,
            &self.ctx.cwd,
            path.as_bytes(),
            target.as_bytes(),
            &self.creds,
        )
    }

    pub fn unlink(&self, path: &str) -> Result<(), Errno> {
        self.vfs
            .unlink(&self.ctx, &self.ctx.cwd, path.as_bytes(), &self.creds)
    }

    pub fn rmdir(&self, path: &str) -> Result<(), Errno> {
        self.vfs
            .rmdir(&self.ctx, &self.ctx.cwd, path.as_bytes(), &self.creds)
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), Errno> {
        self.rename_flags(from, to, 0)
    }

    /// renameat2 with `flags`.
    pub fn rename_flags(&self, from: &str, to: &str, flags: u32) -> Result<(), Errno> {
        let cwd = &self.ctx.cwd;
        self.vfs.rename(
            &self.ctx,
            cwd,
            from.as_bytes(),
            cwd,
            to.as_bytes(),
            &self.creds,
            flags,
        )
    }

    pub fn link(&self, from: &str, to: &str) -> Result<(), Errno> {
        let src = self.lookup(from)?;
        self.vfs
            .link(&self.ctx, &src, &self.ctx.root, to.as_bytes(), &self.creds)
    }

    pub fn write(&self, path: &str, data: &[u8]) -> Result<(), Errno> {
        let f = self.open(path, O_WRONLY | O_CREAT | O_TRUNC)?;
        assert_eq!(f.write(data)?, data.len());
        Ok(())
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let f = self.open(path, O_RDONLY)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match f.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Names listed by getdents64, "." and ".." included, sorted.
    pub fn list(&self, path: &str) -> Result<Vec<String>, Errno> {
        let f = self.open(path, O_RDONLY | O_DIRECTORY)?;
        let mut names: Vec<String> = dirents(&f, 4096)?.into_iter().map(|d| d.name).collect();
        names.sort();
        Ok(names)
    }

    pub fn path_of(&self, p: &PathRef) -> String {
        String::from_utf8(self.vfs.path_of(&self.ctx, p)).expect("utf-8 path")
    }
}

/// One parsed `linux_dirent64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    pub ino: u64,
    pub off: i64,
    pub reclen: usize,
    pub dtype: u8,
    pub name: String,
}

pub fn parse_dirents(buf: &[u8]) -> Vec<Dirent> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rec = &buf[at..];
        let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
        assert!(
            reclen >= 24 && reclen.is_multiple_of(8) && reclen <= rec.len(),
            "reclen {reclen}"
        );
        let name = &rec[19..reclen];
        let nul = name
            .iter()
            .position(|&b| b == 0)
            .expect("NUL-terminated name");
        assert!(name[nul..].iter().all(|&b| b == 0), "zero padding");
        out.push(Dirent {
            ino: u64::from_ne_bytes(rec[0..8].try_into().expect("8 bytes")),
            off: i64::from_ne_bytes(rec[8..16].try_into().expect("8 bytes")),
            reclen,
            dtype: rec[18],
            name: String::from_utf8(name[..nul].to_vec()).expect("utf-8 name"),
        });
        at += reclen;
    }
    out
}

/// Every remaining entry of `f`, read `chunk` bytes at a time.
pub fn dirents(f: &OpenFile, chunk: usize) -> Result<Vec<Dirent>, Errno> {
    let mut out = Vec::new();
    loop {
        let buf = f.getdents64(chunk)?;
        if buf.is_empty() {
            return Ok(out);
        }
        out.extend(parse_dirents(&buf));
    }
}

/// Credentials of an unprivileged user.
pub fn user(uid: u32) -> Creds {
    Creds::new(uid, uid)
}
