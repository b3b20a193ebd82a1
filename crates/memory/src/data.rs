//! The data of an in-memory file (a memfs file, a memfd, the object behind
//! a MAP_SHARED|MAP_ANONYMOUS mapping) as runs of memory-file pages, so that
//! shared mappings map the file's own pages.
//!
//! Pages are allocated when first written or mapped; holes read as zeros.
//! The file holds one reference on each of its pages; a mapping that maps
//! them holds its own, so pages a truncation cuts off stay valid (if
//! detached from the file) for whoever still maps them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use veil_abi::{page_down, page_up, Errno, PAGE_SIZE};

use crate::MemoryFile;

/// Largest file size: page-rounded offsets must not overflow.
const MAX_SIZE: u64 = i64::MAX as u64 & !(PAGE_SIZE - 1);

/// Memory-file pages `off..` backing a file range `..end`.
#[derive(Clone, Copy, Debug)]
struct Extent {
    end: u64,
    off: u64,
}

struct Inner {
    size: u64,
    /// File offset → extent; page aligned, never past `page_up(size)`.
    extents: BTreeMap<u64, Extent>,
}

pub struct FileData {
    memfile: Arc<MemoryFile>,
    inner: Mutex<Inner>,
    /// For a cache of a file kept elsewhere (a host file): where `sync`,
    /// and the last reference going, write the data back.
    writeback: Option<Box<dyn WriteBack>>,
}

/// The home of the data a `FileData` caches.
pub trait WriteBack: Send + Sync {
    fn write_back(&self, data: &FileData) -> Result<(), Errno>;
}

/// A file range `[start, end)` and the memory-file offset backing `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    pub off: u64,
}

impl FileData {
    pub fn new(memfile: Arc<MemoryFile>) -> FileData {
        FileData {
            memfile,
            inner: Mutex::new(Inner {
                size: 0,
                extents: BTreeMap::new(),
            }),
            writeback: None,
        }
    }

    /// A cache of a file kept elsewhere, written back by `writeback`.
    pub fn with_writeback(memfile: Arc<MemoryFile>, writeback: Box<dyn WriteBack>) -> FileData {
        let mut data = FileData::new(memfile);
        data.writeback = Some(writeback);
        data
    }

    /// Writes a cache back to its file (msync, fsync); nothing for data
    /// that lives only here.
    pub fn sync(&self) -> Result<(), Errno> {
        match &self.writeback {
            Some(wb) => wb.write_back(self),
            None => Ok(()),
        }
    }

    pub fn memfile(&self) -> &Arc<MemoryFile> {
        &self.memfile
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn size(&self) -> u64 {
        self.lock().size
    }

    /// Reads at `off`, up to the end of the file.
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let inner = self.lock();
        let end = inner.size.min(off.saturating_add(buf.len() as u64));
        if off >= end {
            return Ok(0);
        }
        let n = (end - off) as usize;
        // Holes read as zeros; only they are cleared.
        let mut cur = 0;
        for (s, e, moff) in inner.pieces(off, end) {
            let at = (s - off) as usize;
            buf[cur..at].fill(0);
            cur = at + (e - s) as usize;
            self.memfile.read(moff, &mut buf[at..cur])?;
        }
        buf[cur..n].fill(0);
        Ok(n)
    }

    /// Writes at `off`, growing the file if needed. `grow(old, new)` may
    /// refuse a new size (a filesystem's budget).
    pub fn write_at(
        &self,
        buf: &[u8],
        off: u64,
        grow: impl FnOnce(u64, u64) -> Result<(), Errno>,
    ) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= MAX_SIZE)
            .ok_or(Errno::EFBIG)?;
        let mut inner = self.lock();
        if end > inner.size {
            grow(inner.size, end)?;
        }
        let old_size = inner.size;
        inner.size = inner.size.max(end);
        let pieces = match self.fill(&mut inner, page_down(off), page_up(end).unwrap_or(MAX_SIZE)) {
            Ok(p) => p,
            Err(e) => {
                inner.size = old_size;
                self.cut(&mut inner, page_up(old_size).unwrap_or(MAX_SIZE));
                return Err(e);
            }
        };
        for p in pieces {
            let (s, e) = (p.start.max(off), p.end.min(end));
            if s < e {
                let at = (s - off) as usize;
                self.memfile
                    .write(p.off + (s - p.start), &buf[at..at + (e - s) as usize])?;
            }
        }
        Ok(buf.len())
    }

    /// Sets the size. `resize(old, new)` may refuse it. Pages past the new
    /// end leave the file; the tail of the last page is zeroed, so that
    /// growing again shows zeros.
    pub fn set_len(
        &self,
        len: u64,
        resize: impl FnOnce(u64, u64) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        if len > MAX_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut inner = self.lock();
        resize(inner.size, len)?;
        if len < inner.size {
            let cut = page_up(len).unwrap_or(MAX_SIZE);
            for (s, e, off) in inner.pieces(len, cut) {
                self.memfile.zero(off, e - s)?;
            }
            self.cut(&mut inner, cut);
        }
        inner.size = len;
        Ok(())
    }

    /// Grows the file to `len` if it is shorter (the bytes past the end are
    /// already zero); `resize(old, new)` may refuse it.
    pub fn grow_to(
        &self,
        len: u64,
        resize: impl FnOnce(u64, u64) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        if len > MAX_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut inner = self.lock();
        if len > inner.size {
            resize(inner.size, len)?;
            inner.size = len;
        }
        Ok(())
    }

    /// Zeroes `[off, end)` within the file (fallocate's PUNCH_HOLE), giving
    /// whole pages' memory back; the size stays.
    pub fn zero_range(&self, off: u64, end: u64) -> Result<(), Errno> {
        let inner = self.lock();
        for (s, e, moff) in inner.pieces(off, end.min(inner.size)) {
            self.memfile.zero(moff, e - s)?;
        }
        Ok(())
    }

    /// Drops the file's pages from `at` (page aligned) on.
    fn cut(&self, inner: &mut Inner, at: u64) {
        split(&mut inner.extents, at);
        let gone: Vec<(u64, Extent)> = inner.extents.range(at..).map(|(&s, &x)| (s, x)).collect();
        for (s, x) in gone {
            inner.extents.remove(&s);
            self.memfile.dec_ref(x.off, x.end - s);
        }
    }

    /// The pages backing `[start, end)` (page aligned), allocated where
    /// needed, up to the page holding the end of the file. Each piece
    /// comes with a reference for the caller.
    pub fn translate(&self, start: u64, end: u64) -> Result<Vec<Piece>, Errno> {
        let mut inner = self.lock();
        let end = end.min(page_up(inner.size).unwrap_or(MAX_SIZE));
        if start >= end {
            return Ok(Vec::new());
        }
        let pieces = self.fill(&mut inner, start, end)?;
        for p in &pieces {
            self.memfile.inc_ref(p.off, p.end - p.start);
        }
        Ok(pieces)
    }

    /// Allocates the holes of `[start, end)` (page aligned); returns the
    /// pieces covering it.
    fn fill(&self, inner: &mut Inner, start: u64, end: u64) -> Result<Vec<Piece>, Errno> {
        let mut holes = Vec::new();
        let mut cur = start;
        for (s, e, _) in inner.pieces(start, end) {
            if cur < s {
                holes.push((cur, s));
            }
            cur = e;
        }
        if cur < end {
            holes.push((cur, end));
        }
        for (s, e) in holes {
            // Continue the run before the hole, if the memory file allows.
            let hint = inner
                .extents
                .range(..s)
                .next_back()
                .filter(|(_, x)| x.end == s)
                .map(|(&ps, x)| x.off + (s - ps));
            let off = self.memfile.alloc_near(hint, e - s)?;
            inner.extents.insert(s, Extent { end: e, off });
            merge(&mut inner.extents, s);
            if let Some((&n, _)) = inner.extents.range(e..).next() {
                merge(&mut inner.extents, n);
            }
        }
        Ok(inner
            .pieces(start, end)
            .into_iter()
            .map(|(start, end, off)| Piece { start, end, off })
            .collect())
    }
}

impl Inner {
    /// The allocated parts of `[start, end)` as (start, end, memory-file
    /// offset).
    fn pieces(&self, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
        let first = self
            .extents
            .range(..start)
            .next_back()
            .filter(|(_, x)| x.end > start);
        first
            .into_iter()
            .chain(self.extents.range(start..end))
            .map(|(&s, x)| {
                let lo = s.max(start);
                (lo, x.end.min(end), x.off + (lo - s))
            })
            .collect()
    }
}

impl Drop for FileData {
    fn drop(&mut self) {
        if let Some(wb) = self.writeback.take() {
            // Nobody is left to see an error, as after a last munmap.
            let _ = wb.write_back(self);
        }
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (s, x) in std::mem::take(&mut inner.extents) {
            self.memfile.dec_ref(x.off, x.end - s);
        }
    }
}

fn split(extents: &mut BTreeMap<u64, Extent>, at: u64) {
    let Some((&s, &x)) = extents.range(..at).next_back() else {
        return;
    };
    if x.end <= at {
        return;
    }
    if let Some(head) = extents.get_mut(&s) {
        head.end = at;
    }
    extents.insert(
        at,
        Extent {
            end: x.end,
            off: x.off + (at - s),
        },
    );
}

/// Joins the extent at `at` to the one before it if both runs continue.
fn merge(extents: &mut BTreeMap<u64, Extent>, at: u64) {
    let Some(&x) = extents.get(&at) else {
        return;
    };
    let Some((&ps, p)) = extents.range_mut(..at).next_back() else {
        return;
    };
    if p.end == at && p.off + (at - ps) == x.off {
        p.end = x.end;
        extents.remove(&at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Arc<MemoryFile>, FileData) {
        let m = Arc::new(MemoryFile::new().expect("memfile"));
        (m.clone(), FileData::new(m))
    }

    fn ok(_: u64, _: u64) -> Result<(), Errno> {
        Ok(())
    }

    #[test]
    fn holes_read_as_zeros_and_writes_land() {
        let (m, d) = data();
        d.write_at(b"tail", 3 * PAGE_SIZE + 10, ok).expect("write");
        assert_eq!(d.size(), 3 * PAGE_SIZE + 14);
        assert_eq!(m.allocated(), PAGE_SIZE, "only the written page");
        let mut buf = vec![1u8; 4 * PAGE_SIZE as usize];
        let n = d.read_at(&mut buf, 0).expect("read");
        assert_eq!(n as u64, 3 * PAGE_SIZE + 14);
        assert!(buf[..3 * PAGE_SIZE as usize + 10].iter().all(|&b| b == 0));
        assert_eq!(&buf[n - 4..n], b"tail");
    }

    #[test]
    fn sequential_growth_stays_one_extent() {
        let (_m, d) = data();
        for i in 0..16u64 {
            d.write_at(&[i as u8; 4096], i * PAGE_SIZE, ok)
                .expect("write");
        }
        let pieces = d.translate(0, 16 * PAGE_SIZE).expect("translate");
        assert_eq!(pieces.len(), 1, "{pieces:?}");
        for p in pieces {
            d.memfile().dec_ref(p.off, p.end - p.start);
        }
    }

    #[test]
    fn truncation_zeroes_the_tail_and_mappers_keep_their_pages() {
        let (m, d) = data();
        d.write_at(&[9; 3 * PAGE_SIZE as usize], 0, ok)
            .expect("write");
        let mapped = d.translate(0, 3 * PAGE_SIZE).expect("translate");
        d.set_len(100, ok).expect("shrink");
        assert_eq!(m.allocated(), 3 * PAGE_SIZE, "the mapper still holds them");
        d.set_len(2 * PAGE_SIZE, ok).expect("grow");
        let mut buf = vec![1u8; 2 * PAGE_SIZE as usize];
        assert_eq!(d.read_at(&mut buf, 0).expect("read"), buf.len());
        assert!(buf[..100].iter().all(|&b| b == 9));
        assert!(buf[100..].iter().all(|&b| b == 0));
        for p in mapped {
            m.dec_ref(p.off, p.end - p.start);
        }
        drop(d);
        assert_eq!(m.allocated(), 0);
    }

    #[test]
    fn translate_stops_at_the_end_of_the_file() {
        let (m, d) = data();
        d.set_len(PAGE_SIZE + 1, ok).expect("size");
        let p = d.translate(0, 8 * PAGE_SIZE).expect("translate");
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].start, p[0].end), (0, 2 * PAGE_SIZE));
        assert!(d
            .translate(2 * PAGE_SIZE, 3 * PAGE_SIZE)
            .expect("t")
            .is_empty());
        m.dec_ref(p[0].off, 2 * PAGE_SIZE);
        assert_eq!(m.allocated(), 2 * PAGE_SIZE, "the file's own reference");
    }

    #[test]
    fn refused_growth_changes_nothing() {
        let (m, d) = data();
        let r = d.write_at(b"x", 10, |_, _| Err(Errno::ENOSPC));
        assert_eq!(r, Err(Errno::ENOSPC));
        assert_eq!(d.size(), 0);
        assert_eq!(m.allocated(), 0);
        assert_eq!(d.write_at(b"x", MAX_SIZE, ok), Err(Errno::EFBIG));
    }
}
