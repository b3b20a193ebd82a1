//! Memory manager semantics, over a recording stand-in for the platform.

use std::sync::{Arc, Mutex};

use veil_abi::{Errno, PAGE_SIZE};
use veil_platform::{AddressSpace, PlatformError, Prot};

use super::*;

/// Records what the MM asks of the platform.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<String>>,
}

impl AddressSpace for Recorder {
    fn map(&self, addr: u64, len: u64, prot: Prot, _offset: u64) -> Result<(), PlatformError> {
        self.ops
            .lock()
            .expect("lock")
            .push(format!("map {addr:#x}+{len:#x} {}", prot.0));
        Ok(())
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<(), PlatformError> {
        self.ops
            .lock()
            .expect("lock")
            .push(format!("unmap {addr:#x}+{len:#x}"));
        Ok(())
    }

    fn protect(&self, _addr: u64, _len: u64, _prot: Prot) -> Result<(), PlatformError> {
        Ok(())
    }

    fn spawn_thread(&self) -> Result<u64, PlatformError> {
        Ok(0)
    }

    fn adopt_thread(&self, _token: u64) -> Result<(), PlatformError> {
        Ok(())
    }

    fn exit_thread(&self) {}

    fn interrupter(&self) -> Option<Arc<dyn veil_platform::Interrupt>> {
        None
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

const MAX: u64 = 0x7fff_0000_0000;
const RW: Prot = Prot(3);

fn mm() -> (MemoryManager, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    (
        MemoryManager::new(rec.clone(), memfile, Layout::new(MAX)),
        rec,
    )
}

fn anon(addr: u64, len: u64, prot: Prot, placement: Placement) -> MmapRequest {
    MmapRequest {
        addr,
        len,
        prot,
        placement,
        growsdown: false,
        backing: Backing::Anon,
    }
}

#[test]
fn mappings_go_top_down_below_the_mmap_base() {
    let (m, _) = mm();
    let a = m
        .mmap(anon(0, 3 * PAGE_SIZE, RW, Placement::Hint))
        .expect("a");
    let b = m.mmap(anon(0, PAGE_SIZE, RW, Placement::Hint)).expect("b");
    assert_eq!(a + 3 * PAGE_SIZE, m.layout().mmap_base);
    assert_eq!(b + PAGE_SIZE, a);
}

#[test]
fn fixed_replaces_and_noreplace_refuses() {
    let (m, _) = mm();
    let at = 0x1000_0000;
    m.mmap(anon(at, 4 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("fixed");
    m.copy_out(at, b"keep").expect("write");
    assert_eq!(
        m.mmap(anon(
            at + PAGE_SIZE,
            PAGE_SIZE,
            RW,
            Placement::FixedNoReplace
        )),
        Err(Errno::EEXIST)
    );
    m.mmap(anon(
        at + PAGE_SIZE,
        PAGE_SIZE,
        Prot::READ,
        Placement::Fixed,
    ))
    .expect("replace");
    let mut buf = [0u8; 4];
    m.copy_in(at, &mut buf).expect("read");
    assert_eq!(&buf, b"keep", "pages outside the replaced range survive");
    assert_eq!(
        m.copy_out(at + PAGE_SIZE, b"x"),
        Err(Errno::EFAULT),
        "the new page is read-only"
    );
    assert!(
        m.mmap(anon(MAX, PAGE_SIZE, RW, Placement::Fixed)).is_err(),
        "the stub's range is off limits"
    );
}

#[test]
fn munmap_splits_and_faults_see_holes() {
    let (m, rec) = mm();
    let at = 0x2000_0000;
    m.mmap(anon(at, 3 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.copy_out(at, &[1; 3 * PAGE_SIZE as usize]).expect("fill");
    m.munmap(at + PAGE_SIZE, PAGE_SIZE).expect("hole");
    assert_eq!(m.copy_in(at + PAGE_SIZE, &mut [0u8; 1]), Err(Errno::EFAULT));
    assert_eq!(
        m.handle_fault(at + PAGE_SIZE, false, false),
        Err(BadAccess::Segv(1)),
        "SEGV_MAPERR in the hole"
    );
    let mut b = [0u8; 1];
    m.copy_in(at + 2 * PAGE_SIZE, &mut b)
        .expect("tail survives");
    assert_eq!(b, [1]);
    assert!(rec
        .ops
        .lock()
        .expect("lock")
        .iter()
        .any(|o| o.starts_with("unmap")));
    assert_eq!(m.munmap(at + 1, PAGE_SIZE), Err(Errno::EINVAL));
    assert_eq!(m.munmap(at, 0), Err(Errno::EINVAL));
}

#[test]
fn mprotect_needs_a_fully_mapped_range() {
    let (m, _) = mm();
    let at = 0x3000_0000;
    m.mmap(anon(at, 2 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    assert_eq!(
        m.mprotect(at, 4 * PAGE_SIZE, Prot::READ),
        Err(Errno::ENOMEM)
    );
    m.copy_out(at, b"data").expect("write");
    m.mprotect(at, PAGE_SIZE, Prot::NONE).expect("protect");
    assert_eq!(m.copy_in(at, &mut [0u8; 4]), Err(Errno::EFAULT));
    assert_eq!(
        m.handle_fault(at, false, false),
        Err(BadAccess::Segv(2)),
        "SEGV_ACCERR on PROT_NONE"
    );
    m.mprotect(at, PAGE_SIZE, RW).expect("restore");
    let mut buf = [0u8; 4];
    m.copy_in(at, &mut buf).expect("read");
    assert_eq!(&buf, b"data", "contents survive protection changes");
}

#[test]
fn faults_map_a_window_clipped_to_the_vma() {
    let (m, rec) = mm();
    let at = 0x4000_0000;
    m.mmap(anon(at, 4 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.handle_fault(at + PAGE_SIZE, false, false).expect("fault");
    let ops = rec.ops.lock().expect("lock");
    assert_eq!(
        ops.last().map(String::as_str),
        Some("map 0x40000000+0x4000 3")
    );
}

#[test]
fn mremap_grows_in_place_or_moves_with_contents() {
    let (m, _) = mm();
    let at = 0x5000_0000;
    m.mmap(anon(at, PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.copy_out(at, b"moved").expect("write");
    assert_eq!(
        m.mremap(at, PAGE_SIZE, 2 * PAGE_SIZE, false, None),
        Ok(at),
        "room to grow in place"
    );
    m.mmap(anon(at + 2 * PAGE_SIZE, PAGE_SIZE, RW, Placement::Fixed))
        .expect("blocker");
    assert_eq!(
        m.mremap(at, 2 * PAGE_SIZE, 4 * PAGE_SIZE, false, None),
        Err(Errno::ENOMEM)
    );
    let new = m
        .mremap(at, 2 * PAGE_SIZE, 4 * PAGE_SIZE, true, None)
        .expect("move");
    assert_ne!(new, at);
    let mut buf = [0u8; 5];
    m.copy_in(new, &mut buf).expect("read");
    assert_eq!(&buf, b"moved");
    assert_eq!(
        m.copy_in(at, &mut buf),
        Err(Errno::EFAULT),
        "the old range is gone"
    );
    assert_eq!(
        m.mremap(new, 4 * PAGE_SIZE, PAGE_SIZE, false, None),
        Ok(new),
        "shrink in place"
    );
    assert_eq!(m.copy_in(new + PAGE_SIZE, &mut buf), Err(Errno::EFAULT));
}

#[test]
fn brk_grows_and_shrinks_within_bounds() {
    let (m, _) = mm();
    let start = 0x60_0000;
    m.set_brk_start(start);
    assert_eq!(m.brk(0), start);
    assert_eq!(m.brk(start + 10_000), start + 10_000);
    m.copy_out(start + 9_000, b"heap")
        .expect("heap is writable");
    assert_eq!(m.brk(start + 100), start + 100);
    assert_eq!(m.copy_in(start + 9_000, &mut [0u8; 4]), Err(Errno::EFAULT));
    assert_eq!(
        m.brk(start - PAGE_SIZE),
        start + 100,
        "below the start: unchanged"
    );
    assert_eq!(m.brk(u64::MAX), start + 100, "absurd requests: unchanged");
}

#[test]
fn dontneed_zeroes_private_anonymous_memory() {
    let (m, _) = mm();
    let at = 0x7000_0000;
    m.mmap(anon(at, PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.copy_out(at, b"gone").expect("write");
    m.madvise_dontneed(at, PAGE_SIZE).expect("dontneed");
    let mut buf = [9u8; 4];
    m.copy_in(at, &mut buf).expect("read");
    assert_eq!(buf, [0; 4]);
}

#[test]
fn stacks_grow_down_on_demand() {
    let (m, _) = mm();
    let at = 0x8000_0000;
    m.mmap(MmapRequest {
        growsdown: true,
        ..anon(at, PAGE_SIZE, RW, Placement::Fixed)
    })
    .expect("map");
    m.handle_fault(at - 2 * PAGE_SIZE, false, false)
        .expect("grows");
    m.copy_out(at - 2 * PAGE_SIZE, b"deep").expect("now mapped");
    assert_eq!(
        m.handle_fault(at - STACK_SIZE - 2 * PAGE_SIZE, false, false),
        Err(BadAccess::Segv(1)),
        "too far below"
    );
}

#[test]
fn bad_pointers_are_efault_never_a_crash() {
    let (m, _) = mm();
    let mut buf = [0u8; 8];
    for addr in [
        0,
        1,
        0x0dea_dbee_f000,
        0xffff_8000_0000_0000,
        u64::MAX - 3,
        MAX - 4,
    ] {
        assert_eq!(m.copy_in(addr, &mut buf), Err(Errno::EFAULT), "{addr:#x}");
        assert_eq!(m.copy_out(addr, &buf), Err(Errno::EFAULT), "{addr:#x}");
    }
    assert_eq!(m.read_cstr(0, 10), Err(Errno::EFAULT));
}

#[test]
fn cstrings_stop_at_nul_or_fail_long() {
    let (m, _) = mm();
    let at = 0x9000_0000;
    m.mmap(anon(at, 2 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    // A string that crosses a page boundary.
    let s = at + PAGE_SIZE - 3;
    m.copy_out(s, b"hello\0").expect("write");
    assert_eq!(m.read_cstr(s, 100).expect("read"), b"hello");
    assert_eq!(m.read_cstr(s, 4), Err(Errno::ENAMETOOLONG));
}
