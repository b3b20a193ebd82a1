//! Adapters between the VFS and the rest of the sentry: files as mapping
//! and exec sources, and application memory for ioctls.

use std::sync::Arc;

use veil_abi::Errno;
use veil_vfs::{OpenFile, UserMem};

use crate::loader::{ExecFile, ExecOpener};
use crate::mm::{MapName, MappableFile};
use crate::task::Task;

const O_ACCMODE: i32 = 3;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;
const O_PATH: i32 = 0o10000000;

/// An open file backing a private mapping.
pub struct FileMapping(Arc<OpenFile>);

impl FileMapping {
    /// `writable_shared`: a MAP_SHARED mapping with PROT_WRITE, which needs
    /// the file open for reading and writing.
    pub fn new(file: Arc<OpenFile>, writable_shared: bool) -> Result<FileMapping, Errno> {
        let flags = file.flags();
        if flags & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        if flags & O_ACCMODE == O_WRONLY || (writable_shared && flags & O_ACCMODE != O_RDWR) {
            return Err(Errno::EACCES);
        }
        let st = file.stat()?;
        if st.is_dir() {
            return Err(Errno::ENODEV);
        }
        Ok(FileMapping(file))
    }
}

impl MappableFile for FileMapping {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.0.pread(buf, off)
    }

    fn size(&self) -> Option<u64> {
        let st = self.0.stat().ok()?;
        st.is_reg()
            .then_some(u64::try_from(st.st_size).unwrap_or(0))
    }
}

/// Opens executables relative to a task's filesystem context.
pub struct TaskExecOpener<'a> {
    task: &'a Task,
}

impl<'a> TaskExecOpener<'a> {
    pub fn new(task: &'a Task) -> TaskExecOpener<'a> {
        TaskExecOpener { task }
    }
}

impl ExecOpener for TaskExecOpener<'_> {
    fn open_exec(&self, path: &[u8]) -> Result<ExecFile, Errno> {
        let t = self.task;
        let ctx = t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let start = if path.first() == Some(&b'/') {
            ctx.root.clone()
        } else {
            ctx.cwd.clone()
        };
        let file = t.kernel.vfs.open(&ctx, &start, path, 0, 0, &t.creds)?;
        let st = file.stat()?;
        if !st.is_reg() || st.st_mode & 0o111 == 0 || file.path().mount.noexec() {
            return Err(Errno::EACCES);
        }
        t.kernel.vfs.access(&ctx, &start, path, 1, 0, &t.creds)?;
        let resolved = t.kernel.vfs.path_of(&ctx, file.path());
        Ok(ExecFile {
            file: Arc::new(FileMapping(file)),
            name: Arc::new(MapName {
                path: resolved.clone(),
                dev: st.st_dev,
                ino: st.st_ino,
            }),
            path: resolved,
        })
    }
}

/// What a mapping of `file` shows in /proc/PID/maps: its path as the
/// mapping task sees it.
pub fn map_name(t: &Task, file: &OpenFile) -> Option<Arc<MapName>> {
    let st = file.stat().ok()?;
    let path = match file.path().anonymous_name() {
        Some(name) => name,
        None => {
            let ctx = t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone();
            t.kernel.vfs.path_of(&ctx, file.path())
        }
    };
    Some(Arc::new(MapName {
        path,
        dev: st.st_dev,
        ino: st.st_ino,
    }))
}

/// A task's memory as the VFS sees it for ioctl arguments.
pub struct TaskMem<'a>(pub &'a Task);

impl UserMem for TaskMem<'_> {
    fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.0.mm.copy_in(addr, buf)
    }

    fn copy_out(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        self.0.mm.copy_out(addr, buf)
    }
}
