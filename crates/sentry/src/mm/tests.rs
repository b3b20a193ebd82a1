//! Memory manager semantics, over a recording stand-in for the platform.

use std::sync::{Arc, Mutex};

use veil_abi::{Errno, PAGE_SIZE};
use veil_platform::{AddressSpace, PlatformError, Prot};

use super::*;
use veil_memory::FileData;

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
        MemoryManager::new(rec.clone(), memfile, Layout::new(MAX, STACK_SIZE)),
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
        name: None,
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

fn mm_with(memfile: &Arc<MemoryFile>) -> (MemoryManager, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (
        MemoryManager::new(rec.clone(), memfile.clone(), Layout::new(MAX, STACK_SIZE)),
        rec,
    )
}

fn ops(rec: &Recorder) -> Vec<String> {
    std::mem::take(&mut *rec.ops.lock().expect("lock"))
}

fn read_byte(m: &MemoryManager, addr: u64) -> u8 {
    let mut b = [0u8; 1];
    m.copy_in(addr, &mut b).expect("read");
    b[0]
}

#[test]
fn fork_shares_pages_until_written() {
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    let (parent, prec) = mm_with(&memfile);
    let at = 0x1000_0000;
    parent
        .mmap(anon(at, 256 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    parent
        .copy_out(at, &[1; 256 * PAGE_SIZE as usize])
        .expect("fill");
    let before = memfile.allocated();
    ops(&prec);
    let forked = parent.fork().expect("fork");
    assert_eq!(memfile.allocated(), before, "fork copies nothing");
    assert_eq!(
        ops(&prec),
        [format!("map {at:#x}+{:#x} 1", 256 * PAGE_SIZE)],
        "the parent's view goes read-only"
    );
    let crec = Arc::new(Recorder::default());
    let child = MemoryManager::from_fork(crec.clone(), forked);
    // A child read fault maps the shared pages read-only.
    child.handle_fault(at, false, false).expect("read fault");
    assert_eq!(
        ops(&crec),
        [format!("map {at:#x}+{:#x} 1", 256 * PAGE_SIZE)]
    );
    // Its write fault copies the window and maps it writable.
    child.handle_fault(at, true, false).expect("write fault");
    assert_eq!(
        ops(&crec),
        [format!("map {at:#x}+{:#x} 3", COW_WINDOW / 2)],
        "only the window from the start of the VMA"
    );
    assert_eq!(memfile.allocated(), before + COW_WINDOW / 2);
    child.copy_out(at + 3, b"c").expect("child write");
    parent.copy_out(at + 3, b"p").expect("parent write");
    assert_eq!(read_byte(&child, at + 3), b'c');
    assert_eq!(read_byte(&parent, at + 3), b'p');
    assert!(
        ops(&prec).is_empty(),
        "the child copied those pages: the parent's are its own again"
    );
    let far = at + 200 * PAGE_SIZE;
    parent.copy_out(far, b"p").expect("parent write");
    assert_eq!(
        ops(&prec),
        [format!("map {far:#x}+{PAGE_SIZE:#x} 3")],
        "a sentry write into still shared pages copies and remaps them"
    );
    assert_eq!(read_byte(&child, far), 1);
    drop(child);
    // Sole owner now: a write fault takes the pages as they are.
    let held = memfile.allocated();
    parent
        .handle_fault(at + 8 * PAGE_SIZE, true, false)
        .expect("write fault");
    assert_eq!(memfile.allocated(), held, "no copy once sole-owned");
    assert_eq!(read_byte(&parent, at + 8 * PAGE_SIZE), 1);
    drop(parent);
    assert_eq!(memfile.allocated(), 0, "every page went back");
}

#[test]
fn write_faults_on_read_only_vmas_and_exec_faults_stay_errors() {
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    let (m, _) = mm_with(&memfile);
    let at = 0x1000_0000;
    m.mmap(anon(at, PAGE_SIZE, Prot::READ, Placement::Fixed))
        .expect("map");
    m.handle_fault(at, false, false).expect("read");
    assert_eq!(m.handle_fault(at, true, false), Err(BadAccess::Segv(2)));
    m.mprotect(at, PAGE_SIZE, RW).expect("protect");
    assert_eq!(
        m.handle_fault(at, true, true),
        Err(BadAccess::Segv(2)),
        "executing a non-executable page"
    );
}

#[test]
fn forked_memory_released_without_a_child() {
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    let (m, _) = mm_with(&memfile);
    let at = 0x1000_0000;
    m.mmap(anon(at, 4 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.copy_out(at, b"x").expect("touch");
    let held = memfile.allocated();
    drop(m.fork().expect("fork"));
    m.copy_out(at, b"y").expect("write");
    assert_eq!(memfile.allocated(), held, "sole owner again: no copy");
    m.clear();
    assert_eq!(memfile.allocated(), 0);
}

#[test]
fn fork_heavy_use_returns_to_baseline() {
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    let (root, _) = mm_with(&memfile);
    let at = 0x1000_0000;
    root.mmap(anon(at, 64 * PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    root.copy_out(at, &[7; 64 * PAGE_SIZE as usize])
        .expect("fill");
    let baseline = memfile.allocated();
    let mut gens = vec![root];
    for i in 0..6u64 {
        let forked = gens.last().expect("gen").fork().expect("fork");
        let child = MemoryManager::from_fork(Arc::new(Recorder::default()), forked);
        child.copy_out(at + i * 9 * PAGE_SIZE, b"w").expect("write");
        child
            .handle_fault(at + 60 * PAGE_SIZE, true, false)
            .expect("fault");
        child
            .munmap(at + 30 * PAGE_SIZE, 2 * PAGE_SIZE)
            .expect("hole");
        gens.push(child);
    }
    assert!(memfile.allocated() > baseline);
    // Exits in any order, and an exec (clear) in the middle.
    gens[3].clear();
    let root = gens.remove(0);
    while gens.len() > 1 {
        drop(gens.remove(1));
    }
    drop(gens);
    assert_eq!(memfile.allocated(), baseline);
    assert_eq!(read_byte(&root, at + 9 * PAGE_SIZE), 7);
    drop(root);
    assert_eq!(memfile.allocated(), 0);
}

#[test]
fn shared_mappings_share_pages_and_stop_at_eof() {
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    let data = Arc::new(FileData::new(memfile.clone()));
    data.set_len(PAGE_SIZE + 10, |_, _| Ok(())).expect("size");
    let shared = |m: &MemoryManager, at: u64| {
        m.mmap(MmapRequest {
            addr: at,
            len: 4 * PAGE_SIZE,
            prot: RW,
            placement: Placement::Fixed,
            growsdown: false,
            backing: Backing::Shared {
                data: data.clone(),
                offset: 0,
                may_write: true,
            },
            name: None,
        })
        .expect("map")
    };
    let (a, _) = mm_with(&memfile);
    let (b, _) = mm_with(&memfile);
    let (at_a, at_b) = (0x1000_0000, 0x2000_0000);
    shared(&a, at_a);
    shared(&b, at_b);
    a.copy_out(at_a + PAGE_SIZE + 2, b"both").expect("write");
    let mut buf = [0u8; 4];
    b.copy_in(at_b + PAGE_SIZE + 2, &mut buf).expect("read");
    assert_eq!(&buf, b"both");
    assert_eq!(data.read_at(&mut buf, PAGE_SIZE + 2), Ok(4));
    assert_eq!(&buf, b"both");
    assert_eq!(
        a.handle_fault(at_a + 2 * PAGE_SIZE, false, false),
        Err(BadAccess::Bus)
    );
    assert_eq!(
        a.copy_in(at_a + 2 * PAGE_SIZE, &mut buf),
        Err(Errno::EFAULT)
    );
    a.handle_fault(at_a, true, false).expect("in the file");
    assert_eq!(
        a.shared_offset(at_a + PAGE_SIZE + 4),
        b.shared_offset(at_b + PAGE_SIZE + 4),
        "one futex key in both"
    );
    // Fork neither copies nor marks shared pages copy-on-write.
    let child = MemoryManager::from_fork(Arc::new(Recorder::default()), a.fork().expect("fork"));
    let held = memfile.allocated();
    child.copy_out(at_a + 4, b"kid").expect("write");
    assert_eq!(memfile.allocated(), held);
    assert_eq!(data.read_at(&mut buf[..3], 4), Ok(3));
    assert_eq!(&buf[..3], b"kid");
    drop((a, b, child));
    assert_eq!(memfile.allocated(), 2 * PAGE_SIZE, "the file's own pages");
    drop(data);
    assert_eq!(memfile.allocated(), 0);
}

#[test]
fn private_futex_keys_stay_per_address_space() {
    let (m, _) = mm();
    let at = 0x1000_0000;
    m.mmap(anon(at, PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    assert_eq!(m.shared_offset(at), Ok(None));
    assert_eq!(m.shared_offset(at + PAGE_SIZE), Err(Errno::EFAULT));
}

#[test]
fn mappings_merge_anonymous_neighbours_and_label_heap_and_stack() {
    let (m, _) = mm();
    let at = 0x4000_0000;
    m.mmap(anon(at, PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.mmap(anon(at + PAGE_SIZE, PAGE_SIZE, RW, Placement::Fixed))
        .expect("map");
    m.mmap(anon(
        at + 2 * PAGE_SIZE,
        PAGE_SIZE,
        Prot::READ,
        Placement::Fixed,
    ))
    .expect("map");
    m.copy_out(at, &[1]).expect("touch");
    m.set_brk_start(0x1000_0000);
    m.brk(0x1000_0000 + 3 * PAGE_SIZE);
    let stack = 0x7000_0000;
    m.mmap(MmapRequest {
        growsdown: true,
        ..anon(stack, PAGE_SIZE, RW, Placement::Fixed)
    })
    .expect("map");
    m.set_arg_regions(ArgRegions {
        start_stack: stack + 8,
        ..ArgRegions::default()
    });
    let maps: Vec<(u64, u64, Option<&str>)> = m
        .mappings()
        .iter()
        .map(|i| (i.start, i.end, i.label))
        .collect();
    assert_eq!(
        maps,
        [
            (0x1000_0000, 0x1000_0000 + 3 * PAGE_SIZE, Some("[heap]")),
            (at, at + 2 * PAGE_SIZE, None),
            (at + 2 * PAGE_SIZE, at + 3 * PAGE_SIZE, None),
            (stack, stack + PAGE_SIZE, Some("[stack]")),
        ]
    );
    let rss: u64 = m.mappings().iter().map(|i| i.rss).sum();
    assert_eq!(rss, m.populated_bytes());
    assert!(m.mappings()[1].rss > 0);
}

fn limits(address_space: u64, data: u64) -> VmLimits {
    VmLimits {
        address_space,
        data,
        data_max: data,
    }
}

#[test]
fn rlimit_as_bounds_growth_but_not_replacement() {
    let (m, _) = mm();
    let at = 0x4000_0000;
    m.set_vm_limits(limits(8 * PAGE_SIZE, u64::MAX));
    m.mmap(anon(at, 6 * PAGE_SIZE, Prot::NONE, Placement::Fixed))
        .expect("within the limit");
    assert_eq!(
        m.mmap(anon(0, 4 * PAGE_SIZE, RW, Placement::Hint)),
        Err(Errno::ENOMEM)
    );
    // Over 4 pages of its own, a fixed mapping adds 2.
    m.mmap(anon(
        at + 2 * PAGE_SIZE,
        6 * PAGE_SIZE,
        RW,
        Placement::Fixed,
    ))
    .expect("replacement is not growth");
    let rw = at + 2 * PAGE_SIZE;
    assert_eq!(
        m.mremap(rw, 6 * PAGE_SIZE, 7 * PAGE_SIZE, true, None),
        Err(Errno::ENOMEM)
    );
    m.mremap(rw, 6 * PAGE_SIZE, 5 * PAGE_SIZE, false, None)
        .expect("shrinking");
    m.mremap(rw, 5 * PAGE_SIZE, 6 * PAGE_SIZE, false, None)
        .expect("growing back");
}

#[test]
fn stacks_stop_growing_at_rlimit_as() {
    let (m, _) = mm();
    let at = 0x8000_0000;
    m.set_vm_limits(limits(4 * PAGE_SIZE, u64::MAX));
    m.mmap(MmapRequest {
        growsdown: true,
        ..anon(at, PAGE_SIZE, RW, Placement::Fixed)
    })
    .expect("map");
    m.handle_fault(at - 3 * PAGE_SIZE, false, false)
        .expect("to 4 pages");
    assert_eq!(
        m.handle_fault(at - 4 * PAGE_SIZE, false, false),
        Err(BadAccess::Segv(1)),
        "a fifth page is past RLIMIT_AS"
    );
}

#[test]
fn rlimit_data_counts_private_writable_memory_only() {
    let (m, _) = mm();
    m.set_brk_start(0x1000_0000);
    m.set_vm_limits(limits(u64::MAX, 4 * PAGE_SIZE));
    assert_eq!(
        m.mmap(anon(0, 5 * PAGE_SIZE, RW, Placement::Hint)),
        Err(Errno::ENOMEM)
    );
    let ro = m
        .mmap(anon(0, 5 * PAGE_SIZE, Prot::READ, Placement::Hint))
        .expect("read-only is not data");
    m.mmap(MmapRequest {
        growsdown: true,
        ..anon(0, 5 * PAGE_SIZE, RW, Placement::Hint)
    })
    .expect("a stack is not data");
    assert_eq!(m.mprotect(ro, 5 * PAGE_SIZE, RW), Err(Errno::ENOMEM));
    m.mprotect(ro, 3 * PAGE_SIZE, RW).expect("3 pages fit");
    assert_eq!(
        m.brk(0x1000_0000 + 2 * PAGE_SIZE),
        0x1000_0000,
        "brk is data"
    );
    assert_eq!(
        m.brk(0x1000_0000 + PAGE_SIZE),
        0x1000_0000 + PAGE_SIZE,
        "the last page"
    );
    // A soft limit of 0 lets data grow to the hard limit.
    m.set_vm_limits(VmLimits {
        data: 0,
        ..limits(u64::MAX, 8 * PAGE_SIZE)
    });
    m.brk(0x1000_0000 + 4 * PAGE_SIZE);
    assert_eq!(m.brk(0), 0x1000_0000 + 4 * PAGE_SIZE);
}

#[test]
fn fault_windows_shrink_near_the_memory_limit() {
    let memfile = Arc::new(MemoryFile::new().expect("memfile"));
    let (m, rec) = mm_with(&memfile);
    let at = 0x4000_0000;
    m.mmap(anon(at, 64 << 20, RW, Placement::Fixed))
        .expect("map");
    memfile.set_limit(Some(WINDOW_SHARE * FAULT_WINDOW));
    m.handle_fault(at + (16 << 20), false, false)
        .expect("fault");
    assert_eq!(memfile.allocated(), FAULT_WINDOW, "a whole window");
    memfile.set_limit(Some(FAULT_WINDOW + 3 * PAGE_SIZE));
    ops(&rec);
    m.handle_fault(at + (32 << 20), false, false)
        .expect("fault");
    assert_eq!(
        ops(&rec),
        vec![format!("map {:#x}+0x1000 3", at + (32 << 20))]
    );
    for page in 1..3 {
        m.handle_fault(at + (32 << 20) + page * PAGE_SIZE, false, false)
            .expect("fault");
    }
    assert!(!veil_memory::take_limit_hit());
    assert_eq!(
        m.handle_fault(at + (48 << 20), false, false),
        Err(BadAccess::Segv(1))
    );
    assert!(veil_memory::take_limit_hit(), "the task loop learns why");
}
