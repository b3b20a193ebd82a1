//! The memory file: one sentry-owned memfd that backs all application memory.
//!
//! Stubs map ranges of it into application address spaces; the sentry reads
//! and writes application memory through its own mapping of the whole file.
//! Ranges are handed out by a first-fit allocator and returned with a hole
//! punch, so freed memory goes back to the host at once.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Mutex;

use rustix::fs::{fallocate, ftruncate, FallocateFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use veil_abi::{Errno, PAGE_SIZE};

/// Size of the (sparse) memory file: an upper bound on application memory
/// in use at once, not a reservation.
pub const MEMFILE_SIZE: u64 = 64 << 30;

pub struct MemoryFile {
    fd: OwnedFd,
    base: NonNull<u8>,
    size: u64,
    /// Free ranges: start offset → length.
    free: Mutex<BTreeMap<u64, u64>>,
}

// SAFETY: `base` points at a shared file mapping that lives as long as the
// MemoryFile; all access goes through bounds-checked copies, and the
// allocator state is behind a Mutex.
unsafe impl Send for MemoryFile {}
// SAFETY: as above; no method hands out references into the mapping.
unsafe impl Sync for MemoryFile {}

impl MemoryFile {
    pub fn new() -> Result<MemoryFile, Errno> {
        let fd = rustix::fs::memfd_create("veil-memory", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(io_errno)?;
        ftruncate(&fd, MEMFILE_SIZE).map_err(io_errno)?;
        // SAFETY: a fresh shared mapping of our own memfd at an address the
        // kernel chooses; it aliases no Rust object.
        let base = unsafe {
            mmap(
                std::ptr::null_mut(),
                MEMFILE_SIZE as usize,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::NORESERVE,
                &fd,
                0,
            )
        }
        .map_err(io_errno)?;
        let base = NonNull::new(base.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        Ok(MemoryFile {
            fd,
            base,
            size: MEMFILE_SIZE,
            free: Mutex::new(BTreeMap::from([(0, MEMFILE_SIZE)])),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Allocates `len` bytes (a multiple of the page size) of zeroed memory.
    pub fn alloc(&self, len: u64) -> Result<u64, Errno> {
        debug_assert_eq!(len % PAGE_SIZE, 0);
        let mut free = self.free.lock().map_err(|_| Errno::ENOMEM)?;
        let (&start, &flen) = free.iter().find(|(_, &l)| l >= len).ok_or(Errno::ENOMEM)?;
        free.remove(&start);
        if flen > len {
            free.insert(start + len, flen - len);
        }
        Ok(start)
    }

    /// Returns a range to the allocator and its pages to the host.
    pub fn free(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if let Err(e) = fallocate(&self.fd, punch, off, len) {
            // The range stays allocated rather than coming back dirty.
            tracing::error!("memory file hole punch failed: {e}");
            return;
        }
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        let (mut start, mut end) = (off, off + len);
        if let Some((&p, &plen)) = free.range(..start).next_back() {
            if p + plen == start {
                free.remove(&p);
                start = p;
            }
        }
        if let Some(&nlen) = free.get(&end) {
            free.remove(&end);
            end += nlen;
        }
        free.insert(start, end - start);
    }

    fn check(&self, off: u64, len: usize) -> Result<(), Errno> {
        match off.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Errno::EFAULT),
        }
    }

    /// A pointer to `len` bytes at `off`, after checking they are in the file.
    fn ptr(&self, off: u64, len: usize) -> Result<*mut u8, Errno> {
        self.check(off, len)?;
        // SAFETY: `off + len <= size` (checked above), so the result stays
        // inside the mapping that starts at `base`.
        Ok(unsafe { self.base.as_ptr().add(off as usize) })
    }

    /// Copies from the file at `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let src = self.ptr(off, buf.len())?;
        // SAFETY: `src` has `buf.len()` mapped bytes, and `buf` is a sentry
        // buffer that cannot overlap the mapping. Application threads may
        // write the same bytes concurrently; we copy raw bytes and never
        // form a reference into the shared mapping.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `len` bytes from `from` to `to` (two allocated ranges),
    /// skipping holes so that untouched memory stays unallocated.
    pub fn copy(&self, from: u64, to: u64, len: u64) -> Result<(), Errno> {
        self.check(from, len as usize)?;
        self.check(to, len as usize)?;
        let end = from + len;
        let mut cur = from;
        while cur < end {
            let data = match rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Data(cur as i64)) {
                Ok(d) if d < end => d,
                // ENXIO: no data after `cur`.
                _ => break,
            };
            let hole = rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Hole(data as i64))
                .map_or(end, |h| h.min(end));
            let n = (hole - data) as usize;
            let src = self.ptr(data, n)?;
            let dst = self.ptr(to + (data - from), n)?;
            // SAFETY: both pointers have `n` mapped bytes (checked by `ptr`)
            // inside two distinct allocations, which do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
            cur = hole;
        }
        Ok(())
    }

    /// Copies `buf` into the file at `off`.
    pub fn write(&self, off: u64, buf: &[u8]) -> Result<(), Errno> {
        let dst = self.ptr(off, buf.len())?;
        // SAFETY: as in `read`, with the direction reversed.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) };
        Ok(())
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`; no copies are
        // in flight because we hold the only reference.
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.size as usize) };
    }
}

fn io_errno(e: rustix::io::Errno) -> Errno {
    Errno::new(e.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_coalesce_and_zero() {
        let m = MemoryFile::new().expect("memfile");
        let a = m.alloc(2 * PAGE_SIZE).expect("a");
        let b = m.alloc(PAGE_SIZE).expect("b");
        m.write(a + 10, b"hello").expect("write");
        let mut buf = [0u8; 5];
        m.read(a + 10, &mut buf).expect("read");
        assert_eq!(&buf, b"hello");
        m.free(a, 2 * PAGE_SIZE);
        m.free(b, PAGE_SIZE);
        let c = m.alloc(3 * PAGE_SIZE).expect("c");
        assert_eq!(c, a);
        m.read(a + 10, &mut buf).expect("read");
        assert_eq!(buf, [0; 5], "freed memory comes back zeroed");
        assert_eq!(m.read(MEMFILE_SIZE - 2, &mut buf), Err(Errno::EFAULT));
    }

    #[test]
    fn copy_moves_data_and_keeps_holes() {
        let m = MemoryFile::new().expect("memfile");
        let a = m.alloc(8 * PAGE_SIZE).expect("a");
        let b = m.alloc(8 * PAGE_SIZE).expect("b");
        m.write(a + 5, b"first").expect("write");
        m.write(a + 6 * PAGE_SIZE, b"second").expect("write");
        m.copy(a, b, 8 * PAGE_SIZE).expect("copy");
        let mut buf = [0u8; 6];
        m.read(b + 6 * PAGE_SIZE, &mut buf).expect("read");
        assert_eq!(&buf, b"second");
        m.read(b + 5, &mut buf[..5]).expect("read");
        assert_eq!(&buf[..5], b"first");
        let data = rustix::fs::seek(&m.fd, rustix::fs::SeekFrom::Data((b + PAGE_SIZE) as i64))
            .expect("seek");
        assert_eq!(
            data,
            b + 6 * PAGE_SIZE,
            "untouched pages stay holes in the copy"
        );
    }
}
