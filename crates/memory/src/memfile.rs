//! The memory file: one sentry-owned memfd that backs all application memory
//! and in-memory file data.
//!
//! Stubs map ranges of it into application address spaces; the sentry reads
//! and writes through its own mapping of the whole file. Ranges come from a
//! first-fit allocator, carry a reference count per page, and go back with a
//! hole punch when their count drops to zero, so freed memory returns to the
//! host at once.
//!
//! An optional limit (`veil do --memory`) bounds the bytes allocated at
//! once. An allocation past it fails with ENOMEM and marks the calling
//! thread (`take_limit_hit`): the failure surfaces deep in page faults,
//! copies and file writes as a plain errno, and the sentry's task loop then
//! treats it as an out-of-memory kill of the process it runs.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustix::fs::{fallocate, ftruncate, FallocateFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use veil_abi::{Errno, PAGE_SIZE};

/// Size of the (sparse) memory file: an upper bound on memory in use at
/// once, not a reservation.
pub const MEMFILE_SIZE: u64 = 64 << 30;

/// A run of allocated pages with one reference count.
#[derive(Clone, Copy, Debug)]
struct Seg {
    end: u64,
    refs: u32,
}

#[derive(Default)]
struct Alloc {
    /// Free ranges: start offset → length.
    free: BTreeMap<u64, u64>,
    /// Allocated ranges: start offset → end and reference count. Adjacent
    /// runs with equal counts are merged.
    used: BTreeMap<u64, Seg>,
    /// Bytes allocated (the sum of `used`).
    allocated: u64,
}

pub struct MemoryFile {
    fd: OwnedFd,
    base: NonNull<u8>,
    size: u64,
    alloc: Mutex<Alloc>,
    /// Bytes that may be allocated at once; `u64::MAX` for no limit.
    limit: AtomicU64,
}

thread_local! {
    /// Whether an allocation on this thread was refused for the limit
    /// since the last `take_limit_hit`.
    static LIMIT_HIT: Cell<bool> = const { Cell::new(false) };
}

/// Whether an allocation made on this thread was refused for the memory
/// limit since the last call; clears the mark.
pub fn take_limit_hit() -> bool {
    LIMIT_HIT.with(|hit| hit.replace(false))
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
        MemoryFile::with_file(fd)
    }

    /// A memory file over `fd`, an empty regular file open for reading and
    /// writing (`veil do --overlay=file` passes an unlinked file on a host
    /// disk, so that in-memory file data need not fit in RAM). It is grown
    /// sparsely; freed ranges are punched out of it.
    pub fn with_file(fd: OwnedFd) -> Result<MemoryFile, Errno> {
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
            alloc: Mutex::new(Alloc {
                free: BTreeMap::from([(0, MEMFILE_SIZE)]),
                ..Alloc::default()
            }),
            limit: AtomicU64::new(u64::MAX),
        })
    }

    /// Bounds the bytes allocated at once (None: no bound). Memory already
    /// allocated stays.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|&l| l != u64::MAX)
    }

    /// Bytes that may still be allocated before the limit (u64::MAX
    /// without one).
    pub fn headroom(&self) -> u64 {
        match self.limit.load(Ordering::Relaxed) {
            u64::MAX => u64::MAX,
            limit => limit.saturating_sub(self.allocated()),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn lock(&self) -> MutexGuard<'_, Alloc> {
        // Every operation leaves the maps consistent before it can fail.
        self.alloc.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Allocates `len` bytes (a multiple of the page size) of zeroed memory
    /// holding one reference.
    pub fn alloc(&self, len: u64) -> Result<u64, Errno> {
        self.alloc_near(None, len)
    }

    /// `alloc`, at `hint` if that range is free: file data that grows keeps
    /// growing in one contiguous run, which maps with one host call.
    pub fn alloc_near(&self, hint: Option<u64>, len: u64) -> Result<u64, Errno> {
        debug_assert!(len.is_multiple_of(PAGE_SIZE) && len > 0);
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let mut a = self.lock();
        if a.allocated.saturating_add(len) > self.limit.load(Ordering::Relaxed) {
            LIMIT_HIT.with(|hit| hit.set(true));
            return Err(Errno::ENOMEM);
        }
        let at_hint = hint.and_then(|h| {
            let (&fs, &flen) = a.free.range(..=h).next_back()?;
            (h.is_multiple_of(PAGE_SIZE) && h.checked_add(len)? <= fs + flen)
                .then_some((fs, flen, h))
        });
        let (fstart, flen, start) = match at_hint {
            Some(found) => found,
            None => {
                let (&fs, &flen) = a
                    .free
                    .iter()
                    .find(|(_, &l)| l >= len)
                    .ok_or(Errno::ENOMEM)?;
                (fs, flen, fs)
            }
        };
        a.free.remove(&fstart);
        if start > fstart {
            a.free.insert(fstart, start - fstart);
        }
        if fstart + flen > start + len {
            a.free.insert(start + len, fstart + flen - (start + len));
        }
        a.used.insert(
            start,
            Seg {
                end: start + len,
                refs: 1,
            },
        );
        a.allocated += len;
        merge_around(&mut a.used, start, start + len);
        Ok(start)
    }

    /// Takes one more reference on every page of `[off, off + len)`, which
    /// must be allocated.
    pub fn inc_ref(&self, off: u64, len: u64) {
        let mut a = self.lock();
        let end = off + len;
        split(&mut a.used, off);
        split(&mut a.used, end);
        let mut cur = off;
        for (&s, seg) in a.used.range_mut(off..end) {
            debug_assert_eq!(s, cur, "reference to unallocated memory");
            seg.refs = seg.refs.saturating_add(1);
            cur = seg.end;
        }
        debug_assert!(cur >= end || len == 0, "reference to unallocated memory");
        merge_around(&mut a.used, off, end);
    }

    /// Drops one reference on every page of `[off, off + len)`; pages left
    /// without one are freed.
    pub fn dec_ref(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut a = self.lock();
        let end = off + len;
        split(&mut a.used, off);
        split(&mut a.used, end);
        let mut gone = Vec::new();
        let mut cur = off;
        for (&s, seg) in a.used.range_mut(off..end) {
            if s != cur {
                tracing::error!("memory file: released unallocated {cur:#x}..{s:#x}");
            }
            seg.refs -= 1;
            if seg.refs == 0 {
                gone.push((s, seg.end));
            }
            cur = seg.end;
        }
        for &(s, e) in &gone {
            a.used.remove(&s);
            self.release(&mut a, s, e);
        }
        merge_around(&mut a.used, off, end);
    }

    /// The reference counts over `[off, off + len)` as (start, end, count)
    /// runs; unallocated parts have none.
    pub fn refs(&self, off: u64, len: u64) -> Vec<(u64, u64, u32)> {
        let a = self.lock();
        let end = off + len;
        let first = a
            .used
            .range(..off)
            .next_back()
            .filter(|(_, seg)| seg.end > off)
            .map(|(&s, &seg)| (s, seg));
        first
            .into_iter()
            .chain(a.used.range(off..end).map(|(&s, &seg)| (s, seg)))
            .map(|(s, seg)| (s.max(off), seg.end.min(end), seg.refs))
            .collect()
    }

    /// Bytes allocated now.
    pub fn allocated(&self) -> u64 {
        self.lock().allocated
    }

    /// Returns `[start, end)` to the host and the free list.
    fn release(&self, a: &mut Alloc, start: u64, end: u64) {
        a.allocated -= end - start;
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if let Err(e) = fallocate(&self.fd, punch, start, end - start) {
            // The range stays out of the free list rather than coming back
            // dirty.
            tracing::error!("memory file hole punch failed: {e}");
            return;
        }
        let (mut start, mut end) = (start, end);
        if let Some((&p, &plen)) = a.free.range(..start).next_back() {
            if p + plen == start {
                a.free.remove(&p);
                start = p;
            }
        }
        if let Some(nlen) = a.free.remove(&end) {
            end += nlen;
        }
        a.free.insert(start, end - start);
    }

    /// Zeroes `[off, off + len)` of allocated memory, giving whole pages
    /// back to the host.
    pub fn zero(&self, off: u64, len: u64) -> Result<(), Errno> {
        self.check(off, len as usize)?;
        let end = off + len;
        let (ps, pe) = (off.next_multiple_of(PAGE_SIZE), end & !(PAGE_SIZE - 1));
        if ps < pe {
            let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
            fallocate(&self.fd, punch, ps, pe - ps).map_err(io_errno)?;
            self.fill_zero(off, ps - off)?;
            self.fill_zero(pe, end - pe)
        } else {
            self.fill_zero(off, len)
        }
    }

    fn fill_zero(&self, off: u64, len: u64) -> Result<(), Errno> {
        let dst = self.ptr(off, len as usize)?;
        // SAFETY: `dst` has `len` mapped bytes (checked by `ptr`); raw
        // writes, as in `write`.
        unsafe { std::ptr::write_bytes(dst, 0, len as usize) };
        Ok(())
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

    /// Stores `v` at `off` (8-byte aligned) in one atomic write with
    /// release ordering, for data that applications read concurrently
    /// under a sequence lock (the vDSO's time page).
    pub fn store_u64(&self, off: u64, v: u64) -> Result<(), Errno> {
        if !off.is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        let dst = self.ptr(off, 8)?;
        // SAFETY: `dst` has 8 mapped bytes (checked by `ptr`), 8-byte
        // aligned (the mapping is page aligned and `off` a multiple of 8);
        // the memory is only ever accessed with raw or atomic operations.
        let word = unsafe { &*dst.cast::<AtomicU64>() };
        word.store(v, Ordering::Release);
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

/// Splits the run containing `at` so that one starts there.
fn split(used: &mut BTreeMap<u64, Seg>, at: u64) {
    let Some((&s, &seg)) = used.range(..at).next_back() else {
        return;
    };
    if seg.end <= at {
        return;
    }
    if let Some(head) = used.get_mut(&s) {
        head.end = at;
    }
    used.insert(
        at,
        Seg {
            end: seg.end,
            ..seg
        },
    );
}

/// Merges equal-count neighbours among the runs touching `[start, end]`.
fn merge_around(used: &mut BTreeMap<u64, Seg>, start: u64, end: u64) {
    let from = used.range(..start).next_back().map_or(start, |(&s, _)| s);
    let keys: Vec<u64> = used.range(from..=end).map(|(&s, _)| s).collect();
    let mut prev: Option<u64> = None;
    for k in keys {
        let Some(&seg) = used.get(&k) else { continue };
        if let Some(p) = prev {
            if let Some(ps) = used.get_mut(&p) {
                if ps.end == k && ps.refs == seg.refs {
                    ps.end = seg.end;
                    used.remove(&k);
                    continue;
                }
            }
        }
        prev = Some(k);
    }
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
        m.dec_ref(a, 2 * PAGE_SIZE);
        m.dec_ref(b, PAGE_SIZE);
        assert_eq!(m.allocated(), 0);
        let c = m.alloc(3 * PAGE_SIZE).expect("c");
        assert_eq!(c, a);
        m.read(a + 10, &mut buf).expect("read");
        assert_eq!(buf, [0; 5], "freed memory comes back zeroed");
        assert_eq!(m.read(MEMFILE_SIZE - 2, &mut buf), Err(Errno::EFAULT));
    }

    #[test]
    fn pages_live_until_their_last_reference() {
        let m = MemoryFile::new().expect("memfile");
        let a = m.alloc(4 * PAGE_SIZE).expect("a");
        m.write(a, &[7; 4 * PAGE_SIZE as usize]).expect("write");
        // A second holder of the middle two pages.
        m.inc_ref(a + PAGE_SIZE, 2 * PAGE_SIZE);
        assert_eq!(
            m.refs(a, 4 * PAGE_SIZE),
            vec![
                (a, a + PAGE_SIZE, 1),
                (a + PAGE_SIZE, a + 3 * PAGE_SIZE, 2),
                (a + 3 * PAGE_SIZE, a + 4 * PAGE_SIZE, 1)
            ]
        );
        m.dec_ref(a, 4 * PAGE_SIZE);
        assert_eq!(m.allocated(), 2 * PAGE_SIZE);
        let mut buf = [0u8; 1];
        m.read(a + 2 * PAGE_SIZE, &mut buf).expect("read");
        assert_eq!(buf, [7], "still referenced pages keep their data");
        // The freed pages are reused before the held ones are.
        let b = m.alloc(PAGE_SIZE).expect("b");
        assert_eq!(b, a);
        m.dec_ref(a + PAGE_SIZE, 2 * PAGE_SIZE);
        m.dec_ref(b, PAGE_SIZE);
        assert_eq!(m.allocated(), 0);
        assert!(m.lock().used.is_empty());
        assert_eq!(m.lock().free.len(), 1, "free space coalesces back");
    }

    #[test]
    fn equal_counts_merge_back_into_one_run() {
        let m = MemoryFile::new().expect("memfile");
        let a = m.alloc(8 * PAGE_SIZE).expect("a");
        m.inc_ref(a + PAGE_SIZE, PAGE_SIZE);
        m.inc_ref(a + 5 * PAGE_SIZE, PAGE_SIZE);
        m.inc_ref(a, 8 * PAGE_SIZE);
        m.dec_ref(a + PAGE_SIZE, PAGE_SIZE);
        m.dec_ref(a + 5 * PAGE_SIZE, PAGE_SIZE);
        assert_eq!(m.refs(a, 8 * PAGE_SIZE), vec![(a, a + 8 * PAGE_SIZE, 2)]);
        assert_eq!(m.lock().used.len(), 1);
    }

    #[test]
    fn the_limit_refuses_allocations_and_marks_the_thread() {
        let m = MemoryFile::new().expect("memfile");
        m.set_limit(Some(3 * PAGE_SIZE));
        let a = m.alloc(2 * PAGE_SIZE).expect("a");
        assert_eq!(m.headroom(), PAGE_SIZE);
        assert!(!take_limit_hit());
        assert_eq!(m.alloc(2 * PAGE_SIZE), Err(Errno::ENOMEM));
        assert!(take_limit_hit());
        assert!(!take_limit_hit(), "taking the mark clears it");
        let b = m.alloc(PAGE_SIZE).expect("the last page fits");
        m.dec_ref(a, 2 * PAGE_SIZE);
        assert_eq!(
            m.alloc(2 * PAGE_SIZE).map(|_| ()),
            Ok(()),
            "freed memory counts no more"
        );
        m.dec_ref(b, PAGE_SIZE);
        assert!(!take_limit_hit());
        m.set_limit(None);
        assert_eq!(m.limit(), None);
        assert_eq!(m.headroom(), u64::MAX, "no limit, no end");
    }

    #[test]
    fn hinted_allocations_extend_a_run() {
        let m = MemoryFile::new().expect("memfile");
        let a = m.alloc(PAGE_SIZE).expect("a");
        let b = m.alloc_near(Some(a + PAGE_SIZE), 2 * PAGE_SIZE).expect("b");
        assert_eq!(b, a + PAGE_SIZE);
        // A taken hint falls back to first fit.
        let c = m.alloc_near(Some(a), PAGE_SIZE).expect("c");
        assert_eq!(c, a + 3 * PAGE_SIZE);
    }

    #[test]
    fn zero_clears_partial_and_whole_pages() {
        let m = MemoryFile::new().expect("memfile");
        let a = m.alloc(3 * PAGE_SIZE).expect("a");
        m.write(a, &[1; 3 * PAGE_SIZE as usize]).expect("write");
        m.zero(a + 100, 2 * PAGE_SIZE).expect("zero");
        let mut buf = vec![0u8; 3 * PAGE_SIZE as usize];
        m.read(a, &mut buf).expect("read");
        assert!(buf[..100].iter().all(|&b| b == 1));
        assert!(buf[100..100 + 2 * PAGE_SIZE as usize]
            .iter()
            .all(|&b| b == 0));
        assert!(buf[100 + 2 * PAGE_SIZE as usize..].iter().all(|&b| b == 1));
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
