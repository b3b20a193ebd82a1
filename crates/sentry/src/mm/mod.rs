//! Application memory management.
//!
//! A `MemoryManager` is one application address space. It tracks VMAs (what
//! the application asked for: ranges, protections, backing) and PMAs (which
//! memory-file pages actually back a range). VMAs cost nothing until touched:
//! a fault, or a sentry copy, populates PMAs for the touched window, and a
//! fault also maps that window into the platform's address space.
//!
//! Private memory is copy-on-write after fork: parent and child share the
//! memory-file pages (each holding a reference) and map them read-only; the
//! first write to such a page copies the window around it, or, if no one
//! else holds the pages any more, just maps them writable. Shared mappings
//! map the pages of a `FileData` (a memfs file, a memfd, or the object
//! behind a MAP_SHARED|MAP_ANONYMOUS mapping) and are never copied.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use veil_abi::{page_down, page_up, Errno, PAGE_SIZE};
use veil_memory::FileData;
use veil_platform::{AddressSpace, Prot};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use veil_memory::MemoryFile;

/// Lowest address an application may map (Linux's default mmap_min_addr).
pub const MIN_ADDR: u64 = 0x1_0000;
/// Pages populated around a faulting address, clipped to its VMA. Untouched
/// anonymous pages of the window cost no host memory.
const FAULT_WINDOW: u64 = 2 << 20;
/// Pages copied around a write to a copy-on-write page: copies cost little
/// next to a fault (holes are skipped), but a fork child that writes a few
/// pages should not copy megabytes.
const COW_WINDOW: u64 = 256 << 10;
/// A fault window takes at most this share of the room left under the
/// memory limit.
const WINDOW_SHARE: u64 = 64;
/// The default RLIMIT_STACK.
pub const STACK_SIZE: u64 = 8 << 20;
/// Bounds of the gap between the stack top and the mmap base, as Linux's
/// mmap_base: at least 128 MiB, at most 5/6 of the address space.
const STACK_GAP_MIN: u64 = 128 << 20;
/// The guard gap Linux keeps below a stack (stack_guard_gap).
const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

/// A file that can back private mappings: the MM reads its pages on demand.
pub trait MappableFile: Send + Sync {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno>;

    /// The size of a regular file, whose pages past the end fault with
    /// SIGBUS; None for devices, which have no end.
    fn size(&self) -> Option<u64>;
}

/// What a VMA's contents come from.
#[derive(Clone)]
pub enum Backing {
    Anon,
    /// A private copy of `file` from `offset` (the file offset of the VMA's start).
    File {
        file: Arc<dyn MappableFile>,
        offset: u64,
    },
    /// The pages of `data` from `offset`, shared with every other mapping
    /// of it. `may_write`: whether mprotect may add PROT_WRITE (the file
    /// was opened for writing).
    Shared {
        data: Arc<FileData>,
        offset: u64,
        may_write: bool,
    },
}

impl Backing {
    /// The backing of the part of a VMA that starts `delta` bytes later
    /// (negative: earlier, for a stack growing down).
    fn shifted(&self, delta: i64) -> Backing {
        let shift = |o: u64| o.saturating_add_signed(delta);
        match self {
            Backing::Anon => Backing::Anon,
            Backing::File { file, offset } => Backing::File {
                file: file.clone(),
                offset: shift(*offset),
            },
            Backing::Shared {
                data,
                offset,
                may_write,
            } => Backing::Shared {
                data: data.clone(),
                offset: shift(*offset),
                may_write: *may_write,
            },
        }
    }
}

/// Why an application access cannot be served: the signal it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadAccess {
    /// SIGSEGV with this si_code.
    Segv(i32),
    /// SIGBUS (BUS_ADRERR): a file mapping past the end of the file.
    Bus,
}

const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;

#[derive(Clone)]
struct Vma {
    end: u64,
    prot: Prot,
    growsdown: bool,
    backing: Backing,
    name: Option<Arc<MapName>>,
}

/// The file a mapping shows in /proc/PID/maps.
#[derive(Debug, PartialEq, Eq)]
pub struct MapName {
    pub path: Vec<u8>,
    pub dev: u64,
    pub ino: u64,
}

impl MapName {
    /// A mapping the kernel makes, such as "[vdso]": no file, and private
    /// in /proc/PID/maps whatever backs it.
    pub fn special(label: &str) -> MapName {
        MapName {
            path: label.as_bytes().to_vec(),
            dev: 0,
            ino: 0,
        }
    }

    fn is_special(&self) -> bool {
        self.dev == 0 && self.ino == 0 && self.path.starts_with(b"[")
    }
}

/// A mapping as /proc/PID/maps and smaps describe it.
pub struct MapInfo {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub shared: bool,
    /// File offset of `start` (0 for anonymous memory).
    pub offset: u64,
    pub name: Option<Arc<MapName>>,
    /// "[heap]" or "[stack]".
    pub label: Option<&'static str>,
    /// Populated bytes.
    pub rss: u64,
    pub growsdown: bool,
}

/// Where exec put the arguments and environment strings (Linux's
/// mm->arg_start..arg_end, env_start..env_end) and the initial stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgRegions {
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub start_stack: u64,
}

/// A populated range: memory-file pages `off..off + (end - start)`, one
/// reference on them held by this PMA.
#[derive(Clone, Copy, Debug)]
struct Pma {
    end: u64,
    off: u64,
    /// Pages of a shared mapping's `FileData`.
    shared: bool,
    /// Private pages that may have other holders since a fork: mapped
    /// read-only, and copied (or found sole-owned) before any write.
    cow: bool,
}

/// A piece of a populated range, as `populate` returns it.
#[derive(Clone, Copy, Debug)]
struct Piece {
    start: u64,
    end: u64,
    off: u64,
    cow: bool,
    /// Its pages changed (a copy-on-write break): the platform's mapping of
    /// the range, if any, shows the old ones.
    moved: bool,
}

/// How `mmap` treats an existing mapping at the requested address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The address is a hint.
    Hint,
    /// MAP_FIXED: replace what is there.
    Fixed,
    /// MAP_FIXED_NOREPLACE: fail with EEXIST if anything is there.
    FixedNoReplace,
}

pub struct MmapRequest {
    pub addr: u64,
    pub len: u64,
    pub prot: Prot,
    pub placement: Placement,
    pub growsdown: bool,
    pub backing: Backing,
    /// The file for /proc/PID/maps, if any.
    pub name: Option<Arc<MapName>>,
}

/// Where things go in a fresh address space.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub max: u64,
    pub stack_top: u64,
    pub mmap_base: u64,
    /// RLIMIT_STACK when the address space was made (exec).
    pub stack_limit: u64,
}

impl Layout {
    /// The layout for a program started with `stack_limit` as its
    /// RLIMIT_STACK: the mmap area starts below room for a stack that
    /// large, as Linux's mmap_base places it.
    pub fn new(max_user_address: u64, stack_limit: u64) -> Layout {
        let stack_top = (max_user_address - (1 << 20)) & !0xffff;
        let gap = stack_limit
            .saturating_add(STACK_GUARD_GAP)
            .clamp(STACK_GAP_MIN, max_user_address / 6 * 5);
        Layout {
            max: max_user_address,
            stack_top,
            mmap_base: page_down(stack_top - gap),
            stack_limit,
        }
    }
}

/// RLIMIT_AS and RLIMIT_DATA in bytes, as mappings are checked against
/// them (`u64::MAX`, RLIM_INFINITY, for none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmLimits {
    pub address_space: u64,
    pub data: u64,
    /// RLIMIT_DATA's hard limit: a soft limit of 0 lets data grow up to
    /// it, as Linux's workaround for Valgrind does.
    pub data_max: u64,
}

impl Default for VmLimits {
    fn default() -> VmLimits {
        VmLimits {
            address_space: u64::MAX,
            data: u64::MAX,
            data_max: u64::MAX,
        }
    }
}

#[derive(Default)]
struct State {
    vmas: BTreeMap<u64, Vma>,
    pmas: BTreeMap<u64, Pma>,
    brk_start: u64,
    brk: u64,
    args: ArgRegions,
    limits: VmLimits,
}

impl State {
    /// Linux's may_expand_vm: whether `len` more bytes of mappings (data
    /// ones if `data`) stay within RLIMIT_AS and RLIMIT_DATA.
    fn may_expand(&self, data: bool, len: u64) -> bool {
        let l = self.limits;
        if l.address_space == u64::MAX && (!data || l.data == u64::MAX) {
            return true;
        }
        let (mut total, mut data_vm) = (0u64, 0u64);
        for (&s, v) in &self.vmas {
            total += v.end - s;
            if v.is_data() {
                data_vm += v.end - s;
            }
        }
        if total.saturating_add(len) > page_down(l.address_space) {
            return false;
        }
        let data_vm = data_vm.saturating_add(len);
        !data || data_vm <= page_down(l.data) || (l.data == 0 && data_vm <= page_down(l.data_max))
    }
}

pub struct MemoryManager {
    state: Mutex<State>,
    space: Arc<dyn AddressSpace>,
    memfile: Arc<MemoryFile>,
    layout: Layout,
    /// How far a stack may grow down (RLIMIT_STACK), kept current by the
    /// tasks using this address space.
    stack_limit: AtomicU64,
}

impl MemoryManager {
    pub fn new(
        space: Arc<dyn AddressSpace>,
        memfile: Arc<MemoryFile>,
        layout: Layout,
    ) -> MemoryManager {
        MemoryManager {
            state: Mutex::new(State::default()),
            space,
            memfile,
            layout,
            stack_limit: AtomicU64::new(layout.stack_limit),
        }
    }

    /// Sets RLIMIT_AS and RLIMIT_DATA as the tasks using this address
    /// space have them, before each change to its mappings.
    pub fn set_vm_limits(&self, limits: VmLimits) {
        self.lock().limits = limits;
    }

    pub fn set_stack_limit(&self, limit: u64) {
        self.stack_limit.store(limit, Ordering::Relaxed);
    }

    fn stack_limit(&self) -> u64 {
        self.stack_limit.load(Ordering::Relaxed)
    }

    pub fn space(&self) -> &dyn AddressSpace {
        &*self.space
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would already have ended the task;
        // the state itself stays consistent between operations.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a mapping; returns its address. Arguments are already
    /// validated for alignment and flags by the caller.
    pub fn mmap(&self, req: MmapRequest) -> Result<u64, Errno> {
        let len = page_up(req.len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        let addr = match req.placement {
            Placement::Fixed | Placement::FixedNoReplace => {
                let end = req.addr.checked_add(len).ok_or(Errno::ENOMEM)?;
                if req.addr < MIN_ADDR || end > self.layout.max {
                    return Err(if req.placement == Placement::Fixed {
                        Errno::EPERM
                    } else {
                        Errno::ENOMEM
                    });
                }
                if req.placement == Placement::FixedNoReplace && overlaps(&st.vmas, req.addr, end) {
                    return Err(Errno::EEXIST);
                }
                req.addr
            }
            Placement::Hint => self
                .find_free(&st, page_down(req.addr), len)
                .ok_or(Errno::ENOMEM)?,
        };
        // As Linux's mmap_region: what a fixed mapping replaces is not
        // growth.
        let data = is_data(req.prot, req.growsdown, &req.backing);
        if !st.may_expand(data, len)
            && !st.may_expand(data, len - mapped_bytes(&st.vmas, addr, addr + len))
        {
            return Err(Errno::ENOMEM);
        }
        if req.placement != Placement::Hint {
            self.remove_range(&mut st, addr, addr + len)?;
        }
        st.vmas.insert(
            addr,
            Vma {
                end: addr + len,
                prot: req.prot,
                growsdown: req.growsdown,
                backing: req.backing,
                name: req.name,
            },
        );
        Ok(addr)
    }

    /// Reserves `len` bytes of address space (inaccessible anonymous
    /// memory), at `hint` if free: a span for mappings that must stay
    /// together, mapped over with MAP_FIXED.
    pub fn reserve(&self, hint: u64, len: u64) -> Result<u64, Errno> {
        self.mmap(MmapRequest {
            addr: hint,
            len,
            prot: Prot::NONE,
            placement: Placement::Hint,
            growsdown: false,
            backing: Backing::Anon,
            name: None,
        })
    }

    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let end = check_range(addr, len, self.layout.max)?;
        let mut st = self.lock();
        self.remove_range(&mut st, addr, end)
    }

    pub fn mprotect(&self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        let end = check_range(addr, len, self.layout.max)?;
        let mut st = self.lock();
        if !fully_mapped(&st.vmas, addr, end) {
            return Err(Errno::ENOMEM);
        }
        let read_only_shared = |v: &Vma| {
            matches!(
                v.backing,
                Backing::Shared {
                    may_write: false,
                    ..
                }
            )
        };
        if prot.write() && vmas_in(&st.vmas, addr, end).any(|(_, v)| read_only_shared(v)) {
            return Err(Errno::EACCES);
        }
        // Pages turning into data count against RLIMIT_DATA (Linux's
        // mprotect_fixup).
        let new_data: u64 = vmas_in(&st.vmas, addr, end)
            .filter(|(_, v)| !v.is_data() && is_data(prot, v.growsdown, &v.backing))
            .map(|(s, v)| v.end.min(end) - s.max(addr))
            .sum();
        if new_data > 0 && !st.may_expand(true, new_data) && st.may_expand(false, new_data) {
            return Err(Errno::ENOMEM);
        }
        split_vmas(&mut st.vmas, addr);
        split_vmas(&mut st.vmas, end);
        for (_, v) in st.vmas.range_mut(addr..end) {
            v.prot = prot;
        }
        // Drop the stub's mappings; faults map them again with the new
        // protection. Unlike mprotect, munmap tolerates unpopulated holes.
        if any_in(&st.pmas, addr, end) {
            self.space.unmap(addr, end - addr).map_err(platform_errno)?;
        }
        Ok(())
    }

    pub fn madvise_dontneed(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let end = check_range(addr, len, self.layout.max)?;
        let mut st = self.lock();
        if !fully_mapped(&st.vmas, addr, end) {
            return Err(Errno::ENOMEM);
        }
        if self.drop_pmas(&mut st, addr, end) {
            self.space.unmap(addr, end - addr).map_err(platform_errno)?;
        }
        Ok(())
    }

    /// Checks that `[addr, addr + len)` is mapped, for advice that needs no action.
    pub fn check_mapped(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let end = check_range(addr, len, self.layout.max)?;
        if fully_mapped(&self.lock().vmas, addr, end) {
            Ok(())
        } else {
            Err(Errno::ENOMEM)
        }
    }

    /// The file data shared mappings in `[addr, addr+len)` map (msync).
    pub fn shared_data(&self, addr: u64, len: u64) -> Result<Vec<Arc<FileData>>, Errno> {
        let end = check_range(addr, len, self.layout.max)?;
        let st = self.lock();
        let mut out: Vec<Arc<FileData>> = Vec::new();
        for (_, v) in vmas_in(&st.vmas, addr, end) {
            if let Backing::Shared { data, .. } = &v.backing {
                if !out.iter().any(|d| Arc::ptr_eq(d, data)) {
                    out.push(data.clone());
                }
            }
        }
        Ok(out)
    }

    pub fn mremap(
        &self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<u64>,
    ) -> Result<u64, Errno> {
        if !old.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 {
            return Err(Errno::EINVAL);
        }
        let old_end = old.checked_add(old_len).ok_or(Errno::EINVAL)?;
        let mut st = self.lock();
        let (&vstart, vma) = st.vmas.range(..=old).next_back().ok_or(Errno::EFAULT)?;
        if vma.end < old_end || vma.end <= old {
            return Err(Errno::EFAULT);
        }
        let vma = vma.clone();
        if old_len == 0 {
            return self.duplicate(&mut st, old - vstart, &vma, new_len, may_move, fixed);
        }
        if new_len > old_len && !st.may_expand(vma.is_data(), new_len - old_len) {
            return Err(Errno::ENOMEM);
        }
        if fixed.is_none() {
            if new_len <= old_len {
                self.remove_range(&mut st, old + new_len, old_end)?;
                return Ok(old);
            }
            let grown_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
            if vma.end == old_end
                && grown_end <= self.layout.max
                && !overlaps(&st.vmas, old_end, grown_end)
            {
                if let Some(v) = st.vmas.get_mut(&vstart) {
                    v.end = grown_end;
                }
                return Ok(old);
            }
            if !may_move {
                return Err(Errno::ENOMEM);
            }
        }
        let new = match fixed {
            Some(at) => {
                let end = check_range(at, new_len, self.layout.max)?;
                if at < old_end && old < end {
                    return Err(Errno::EINVAL);
                }
                self.remove_range(&mut st, at, end)?;
                at
            }
            None => self.find_free(&st, 0, new_len).ok_or(Errno::ENOMEM)?,
        };
        // Move the VMA piece and its PMAs; the memory-file pages stay put.
        split_vmas(&mut st.vmas, old);
        split_vmas(&mut st.vmas, old_end);
        split_pmas(&mut st.pmas, old);
        split_pmas(&mut st.pmas, old_end);
        let moved: Vec<(u64, Pma)> = st.pmas.range(old..old_end).map(|(&s, &p)| (s, p)).collect();
        for (s, _) in &moved {
            st.pmas.remove(s);
        }
        let keep = new_len.min(old_len);
        for (s, p) in moved {
            if s >= old + keep {
                self.memfile.dec_ref(p.off, p.end - s);
                continue;
            }
            let end = p.end.min(old + keep);
            if p.end > end {
                self.memfile.dec_ref(p.off + (end - s), p.end - end);
            }
            st.pmas.insert(
                new + (s - old),
                Pma {
                    end: new + (end - old),
                    ..p
                },
            );
        }
        st.vmas.remove(&old);
        let backing = vma.backing.shifted((old - vstart) as i64);
        st.vmas.insert(
            new,
            Vma {
                end: new + new_len,
                backing,
                ..vma
            },
        );
        self.space.unmap(old, old_len).map_err(platform_errno)?;
        Ok(new)
    }

    /// mremap with an old size of 0: a second mapping of the same shared
    /// pages (EINVAL for private mappings, as on Linux).
    fn duplicate(
        &self,
        st: &mut State,
        delta: u64,
        vma: &Vma,
        len: u64,
        may_move: bool,
        fixed: Option<u64>,
    ) -> Result<u64, Errno> {
        if !matches!(vma.backing, Backing::Shared { .. }) || !may_move {
            return Err(Errno::EINVAL);
        }
        if !st.may_expand(vma.is_data(), len) {
            return Err(Errno::ENOMEM);
        }
        let at = match fixed {
            Some(at) => {
                let end = check_range(at, len, self.layout.max)?;
                self.remove_range(st, at, end)?;
                at
            }
            None => self.find_free(st, 0, len).ok_or(Errno::ENOMEM)?,
        };
        st.vmas.insert(
            at,
            Vma {
                end: at + len,
                backing: vma.backing.shifted(delta as i64),
                ..vma.clone()
            },
        );
        Ok(at)
    }

    /// The memory of a forked child: the same mappings, private pages
    /// shared copy-on-write. Runs on the parent's thread, which must make
    /// its own view of those pages read-only before it returns to
    /// application code.
    pub fn fork(&self) -> Result<ForkedMemory, Errno> {
        let mut guard = self.lock();
        let st = &mut *guard;
        // The parent's writable mappings of private pages go read-only
        // first: from here on, a write faults and copies.
        let mut remap = Vec::new();
        for (&ps, p) in st.pmas.iter_mut() {
            if p.shared || p.cow {
                continue;
            }
            p.cow = true;
            for (vs, v) in vmas_in(&st.vmas, ps, p.end) {
                let (lo, hi) = (vs.max(ps), v.end.min(p.end));
                if v.prot.write() {
                    remap.push((lo, hi, p.off + (lo - ps), v.prot));
                }
            }
        }
        for (lo, hi, off, prot) in remap {
            let ro = Prot(prot.0 & !Prot::WRITE.0);
            self.space
                .map(lo, hi - lo, ro, off)
                .map_err(platform_errno)?;
        }
        let mut child = State {
            vmas: st.vmas.clone(),
            pmas: BTreeMap::new(),
            brk_start: st.brk_start,
            brk: st.brk,
            args: st.args,
            limits: st.limits,
        };
        for (&s, p) in &st.pmas {
            self.memfile.inc_ref(p.off, p.end - s);
            child.pmas.insert(s, *p);
        }
        Ok(ForkedMemory {
            state: Some(child),
            memfile: self.memfile.clone(),
            layout: self.layout,
            stack_limit: self.stack_limit(),
        })
    }

    /// The address space of a forked child, over its new platform `space`.
    pub fn from_fork(space: Arc<dyn AddressSpace>, mut forked: ForkedMemory) -> MemoryManager {
        let state = forked.state.take().unwrap_or_default();
        MemoryManager {
            state: Mutex::new(state),
            space,
            memfile: forked.memfile.clone(),
            layout: forked.layout,
            stack_limit: AtomicU64::new(forked.stack_limit),
        }
    }

    /// Sets the initial program break, right after the executable's data.
    pub fn set_brk_start(&self, addr: u64) {
        let mut st = self.lock();
        st.brk_start = addr;
        st.brk = addr;
    }

    pub fn brk(&self, new: u64) -> u64 {
        let mut st = self.lock();
        if new < st.brk_start {
            return st.brk;
        }
        let (Some(old_end), Some(new_end)) = (page_up(st.brk), page_up(new)) else {
            return st.brk;
        };
        if new_end > old_end {
            if new_end > self.layout.mmap_base
                || overlaps(&st.vmas, old_end, new_end)
                || !st.may_expand(true, new_end - old_end)
            {
                return st.brk;
            }
            st.vmas.insert(
                old_end,
                Vma {
                    end: new_end,
                    prot: Prot::READ | Prot::WRITE,
                    growsdown: false,
                    backing: Backing::Anon,
                    name: None,
                },
            );
        } else if new_end < old_end && self.remove_range(&mut st, new_end, old_end).is_err() {
            return st.brk;
        }
        st.brk = new;
        new
    }

    /// Handles an application page fault. `access_error`: the page was
    /// mapped but the access not allowed; `exec`: the fault was at the
    /// instruction pointer. `Ok` means the access can be retried.
    pub fn handle_fault(&self, addr: u64, access_error: bool, exec: bool) -> Result<(), BadAccess> {
        let mut st = self.lock();
        let Some((start, vma)) = find_vma(&mut st, addr, self.stack_limit()) else {
            return Err(BadAccess::Segv(SEGV_MAPERR));
        };
        if vma.prot == Prot::NONE {
            return Err(BadAccess::Segv(SEGV_ACCERR));
        }
        // Pages are mapped with the VMA's protection, less PROT_WRITE while
        // copy-on-write. So an access error in a writable VMA is a write to
        // such a page (or one another thread has just copied), unless it is
        // an instruction fetch from a non-executable one.
        if access_error && (!vma.prot.write() || (exec && !vma.prot.exec())) {
            return Err(BadAccess::Segv(SEGV_ACCERR));
        }
        let window = if access_error {
            COW_WINDOW
        } else {
            FAULT_WINDOW
        };
        // Untouched pages of a window count against the memory limit too:
        // near it, the window shrinks with the room left, down to the
        // faulting page alone.
        let half = page_down(window.min(self.memfile.headroom() / WINDOW_SHARE) / 2);
        let page = page_down(addr);
        let wstart = page.saturating_sub(half).max(start);
        let mut wend = (page + half.max(PAGE_SIZE)).min(vma.end);
        // A private file mapping has no pages past the file's last one.
        if let Backing::File { file, offset } = &vma.backing {
            if let Some(eof) = file.size().and_then(page_up) {
                let limit = start.saturating_add(eof.saturating_sub(*offset));
                if page_down(addr) >= limit {
                    return Err(BadAccess::Bus);
                }
                wend = wend.min(limit);
            }
        }
        let pieces = self
            .populate(&mut st, start, &vma, wstart, wend, access_error)
            .map_err(|_| BadAccess::Segv(SEGV_MAPERR))?;
        if !pieces.iter().any(|p| p.start <= addr && addr < p.end) {
            // Only a shared mapping leaves pages unpopulated: past the end
            // of its file.
            return Err(BadAccess::Bus);
        }
        for p in pieces {
            if let Err(err) = self
                .space
                .map(p.start, p.end - p.start, p.prot(vma.prot), p.off)
            {
                tracing::error!(
                    "mapping {:#x}..{:#x} into the stub failed: {err}",
                    p.start,
                    p.end
                );
                return Err(BadAccess::Segv(SEGV_MAPERR));
            }
        }
        Ok(())
    }

    /// The memory-file offset of `addr` if it lies in a shared mapping
    /// (futex keys that other processes can meet); `None` for private
    /// memory. EFAULT if `addr` cannot be read.
    pub fn shared_offset(&self, addr: u64) -> Result<Option<u64>, Errno> {
        let mut st = self.lock();
        let segments = self.segments(&mut st, addr, 1, Access::Read)?;
        let Some((vstart, vma, _, _)) = segments.into_iter().next() else {
            return Err(Errno::EFAULT);
        };
        if !matches!(vma.backing, Backing::Shared { .. }) {
            return Ok(None);
        }
        let page = page_down(addr);
        let pieces = self.populate(&mut st, vstart, &vma, page, page + PAGE_SIZE, false)?;
        match pieces.first() {
            Some(p) if p.start == page => Ok(Some(p.off + (addr - page))),
            _ => Err(Errno::EFAULT),
        }
    }

    /// Copies application memory at `addr` into `buf`.
    pub fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let mut done = 0;
        self.access(addr, buf.len() as u64, Access::Read, |off, len| {
            let r = self.memfile.read(off, &mut buf[done..done + len]);
            done += len;
            r
        })
    }

    /// Copies `buf` into application memory at `addr`.
    pub fn copy_out(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        self.access(addr, buf.len() as u64, Access::Write, |off, len| {
            let r = self.memfile.write(off, &buf[done..done + len]);
            done += len;
            r
        })
    }

    /// Writes application memory regardless of its protection (loader use).
    pub fn copy_out_force(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        self.access(addr, buf.len() as u64, Access::Force, |off, len| {
            let r = self.memfile.write(off, &buf[done..done + len]);
            done += len;
            r
        })
    }

    pub fn read_obj<T: FromBytes + IntoBytes>(&self, addr: u64) -> Result<T, Errno> {
        let mut v = T::new_zeroed();
        self.copy_in(addr, v.as_mut_bytes())?;
        Ok(v)
    }

    pub fn write_obj<T: IntoBytes + Immutable>(&self, addr: u64, v: &T) -> Result<(), Errno> {
        self.copy_out(addr, v.as_bytes())
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut cur = addr;
        loop {
            let chunk = (PAGE_SIZE - cur % PAGE_SIZE) as usize;
            let mut buf = vec![0u8; chunk.min(max + 1 - out.len())];
            self.copy_in(cur, &mut buf)?;
            if let Some(nul) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            if out.len() > max {
                return Err(Errno::ENAMETOOLONG);
            }
            cur = cur.checked_add(buf.len() as u64).ok_or(Errno::EFAULT)?;
        }
    }

    /// Checks that `[addr, addr + len)` is readable (or writable), without
    /// populating anything.
    pub fn check_access(&self, addr: u64, len: u64, write: bool) -> Result<(), Errno> {
        let access = if write { Access::Write } else { Access::Read };
        self.segments(&mut self.lock(), addr, len, access).map(drop)
    }

    /// The VMA pieces covering `[addr, addr + len)` as (VMA start, VMA,
    /// piece start, piece end), or EFAULT if any part is inaccessible.
    fn segments(
        &self,
        st: &mut State,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<Vec<(u64, Vma, u64, u64)>, Errno> {
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.layout.max {
            return Err(Errno::EFAULT);
        }
        let mut segments = Vec::new();
        let mut cur = addr;
        while cur < end {
            let (start, vma) = find_vma(st, cur, self.stack_limit()).ok_or(Errno::EFAULT)?;
            let ok = match access {
                Access::Read => vma.prot.read(),
                Access::Write => vma.prot.write(),
                Access::Force => true,
            };
            if !ok {
                return Err(Errno::EFAULT);
            }
            let seg_end = vma.end.min(end);
            segments.push((start, vma, cur, seg_end));
            cur = seg_end;
        }
        Ok(segments)
    }

    /// Runs `f(memfile_offset, len)` over each populated piece of
    /// `[addr, addr + len)` after checking that all of it is accessible.
    fn access(
        &self,
        addr: u64,
        len: u64,
        access: Access,
        mut f: impl FnMut(u64, usize) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        let mut st = self.lock();
        // Check the whole range first so that a bad pointer changes nothing.
        let segments = self.segments(&mut st, addr, len, access)?;
        let write = access != Access::Read;
        for (vstart, vma, s, e) in segments {
            let page_end = page_up(e).ok_or(Errno::EFAULT)?;
            let pieces = self.populate(&mut st, vstart, &vma, page_down(s), page_end, write)?;
            // The stub may map the pages a copy-on-write break replaced.
            for p in pieces.iter().filter(|p| p.moved) {
                self.space
                    .map(p.start, p.end - p.start, p.prot(vma.prot), p.off)
                    .map_err(platform_errno)?;
            }
            let mut cur = s;
            for p in pieces {
                let (lo, hi) = (p.start.max(s), p.end.min(e));
                if lo >= hi {
                    continue;
                }
                // A gap: a shared mapping past the end of its file.
                if lo != cur {
                    return Err(Errno::EFAULT);
                }
                f(p.off + (lo - p.start), (hi - lo) as usize)?;
                cur = hi;
            }
            if cur < e {
                return Err(Errno::EFAULT);
            }
        }
        Ok(())
    }

    /// Ensures `[start, end)` (page aligned, inside `vma`) is backed where
    /// it can be (a shared mapping stops at the end of its file), copying
    /// copy-on-write pages first if `write`. Returns the backed pieces.
    fn populate(
        &self,
        st: &mut State,
        vstart: u64,
        vma: &Vma,
        start: u64,
        end: u64,
        write: bool,
    ) -> Result<Vec<Piece>, Errno> {
        split_pmas(&mut st.pmas, start);
        split_pmas(&mut st.pmas, end);
        let mut holes = Vec::new();
        let mut cur = start;
        for (&s, p) in st.pmas.range(start..end) {
            if cur < s {
                holes.push((cur, s));
            }
            cur = p.end;
        }
        if cur < end {
            holes.push((cur, end));
        }
        for (hs, he) in holes {
            if let Backing::Shared { data, offset, .. } = &vma.backing {
                let fstart = offset.checked_add(hs - vstart).ok_or(Errno::EFAULT)?;
                let fend = fstart.checked_add(he - hs).ok_or(Errno::EFAULT)?;
                for p in data.translate(fstart, fend)? {
                    let pma = Pma {
                        end: hs + (p.end - fstart),
                        off: p.off,
                        shared: true,
                        cow: false,
                    };
                    st.pmas.insert(hs + (p.start - fstart), pma);
                }
                continue;
            }
            let off = self.memfile.alloc(he - hs)?;
            if let Err(e) = self.fill(vstart, vma, hs, he, off) {
                self.memfile.dec_ref(off, he - hs);
                return Err(e);
            }
            let pma = Pma {
                end: he,
                off,
                shared: false,
                cow: false,
            };
            st.pmas.insert(hs, pma);
        }
        let mut pieces = Vec::new();
        for (&s, p) in st.pmas.range_mut(start..end) {
            let mut moved = false;
            if write && p.cow {
                moved = self.break_cow(s, p)?;
            }
            pieces.push(Piece {
                start: s,
                end: p.end,
                off: p.off,
                cow: p.cow,
                moved,
            });
        }
        Ok(pieces)
    }

    /// Makes the private pages of `pma` (at `start`) this address space's
    /// own: a copy, unless no one else holds them any more. Returns
    /// whether the pages moved.
    fn break_cow(&self, start: u64, pma: &mut Pma) -> Result<bool, Errno> {
        let len = pma.end - start;
        let sole = self
            .memfile
            .refs(pma.off, len)
            .iter()
            .all(|&(_, _, refs)| refs == 1);
        if sole {
            pma.cow = false;
            return Ok(false);
        }
        let off = self.memfile.alloc(len)?;
        if let Err(e) = self.memfile.copy(pma.off, off, len) {
            self.memfile.dec_ref(off, len);
            return Err(e);
        }
        self.memfile.dec_ref(pma.off, len);
        pma.off = off;
        pma.cow = false;
        Ok(true)
    }

    /// Fills fresh memory-file pages for `[start, end)` of `vma`.
    fn fill(&self, vstart: u64, vma: &Vma, start: u64, end: u64, off: u64) -> Result<(), Errno> {
        let Backing::File { file, offset } = &vma.backing else {
            return Ok(());
        };
        let mut buf = vec![0u8; (end - start).min(256 << 10) as usize];
        let mut done = 0;
        while done < end - start {
            let n = buf.len().min((end - start - done) as usize);
            let file_off = offset + (start - vstart) + done;
            let got = file.read_at(&mut buf[..n], file_off)?;
            if got == 0 {
                break;
            }
            self.memfile.write(off + done, &buf[..got])?;
            done += got as u64;
        }
        Ok(())
    }

    /// Unmaps `[start, end)`: VMAs, PMAs and the stub's view.
    fn remove_range(&self, st: &mut State, start: u64, end: u64) -> Result<(), Errno> {
        split_vmas(&mut st.vmas, start);
        split_vmas(&mut st.vmas, end);
        let keys: Vec<u64> = st.vmas.range(start..end).map(|(&s, _)| s).collect();
        for k in keys {
            st.vmas.remove(&k);
        }
        if self.drop_pmas(st, start, end) {
            self.space
                .unmap(start, end - start)
                .map_err(platform_errno)?;
        }
        Ok(())
    }

    /// Frees the PMAs in `[start, end)`; returns whether there were any.
    fn drop_pmas(&self, st: &mut State, start: u64, end: u64) -> bool {
        split_pmas(&mut st.pmas, start);
        split_pmas(&mut st.pmas, end);
        let gone: Vec<(u64, Pma)> = st.pmas.range(start..end).map(|(&s, &p)| (s, p)).collect();
        for (s, p) in &gone {
            st.pmas.remove(s);
            self.memfile.dec_ref(p.off, p.end - s);
        }
        !gone.is_empty()
    }

    /// Finds a free range of `len` bytes: at `hint` if possible, otherwise the
    /// highest one below the mmap base, as Linux's top-down allocator does.
    fn find_free(&self, st: &State, hint: u64, len: u64) -> Option<u64> {
        if hint >= MIN_ADDR {
            if let Some(end) = hint.checked_add(len) {
                if end <= self.layout.max && !overlaps(&st.vmas, hint, end) {
                    return Some(hint);
                }
            }
        }
        let mut top = self.layout.mmap_base;
        for (&s, v) in st.vmas.range(..top).rev() {
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(s);
        }
        (top >= MIN_ADDR + len).then(|| top - len)
    }

    pub fn set_arg_regions(&self, args: ArgRegions) {
        self.lock().args = args;
    }

    pub fn arg_regions(&self) -> ArgRegions {
        self.lock().args
    }

    /// The mappings in address order, adjacent anonymous ones that Linux
    /// would have merged shown as one.
    pub fn mappings(&self) -> Vec<MapInfo> {
        let st = self.lock();
        let heap = (st.brk_start, page_up(st.brk).unwrap_or(st.brk));
        let mut out: Vec<MapInfo> = Vec::new();
        for (&start, v) in &st.vmas {
            let special = v.name.as_ref().is_some_and(|n| n.is_special());
            let (shared, offset) = match &v.backing {
                Backing::Anon => (false, 0),
                Backing::File { offset, .. } => (false, *offset),
                Backing::Shared { .. } if special => (false, 0),
                Backing::Shared { offset, .. } => (true, *offset),
            };
            let label = if v.backing_is_anon() && start < heap.1 && v.end > heap.0 {
                Some("[heap]")
            } else if v.growsdown && (start..v.end).contains(&st.args.start_stack) {
                Some("[stack]")
            } else {
                None
            };
            let rss = st
                .pmas
                .range(..v.end)
                .rev()
                .take_while(|(_, p)| p.end > start)
                .map(|(&ps, p)| p.end.min(v.end) - ps.max(start))
                .sum();
            if let Some(last) = out.last_mut() {
                if last.end == start
                    && v.backing_is_anon()
                    && last.name.is_none()
                    && !last.shared
                    && last.prot == v.prot
                    && last.growsdown == v.growsdown
                    && last.label == label
                {
                    last.end = v.end;
                    last.rss += rss;
                    continue;
                }
            }
            out.push(MapInfo {
                start,
                end: v.end,
                prot: v.prot,
                shared,
                offset,
                name: v.name.clone(),
                label,
                rss,
                growsdown: v.growsdown,
            });
        }
        out
    }

    /// Bytes of application memory that exist (populated pages), the
    /// resident set size as the sandbox sees it.
    pub fn populated_bytes(&self) -> u64 {
        self.lock().pmas.iter().map(|(s, p)| p.end - s).sum()
    }

    /// Drops the populated pages of shared mappings of `data` that lie past
    /// its end (after a truncation), so that accesses there fault again.
    pub fn invalidate_past_eof(&self, data: &Arc<FileData>) -> Result<(), Errno> {
        let eof = page_up(data.size()).ok_or(Errno::EFBIG)?;
        let mut st = self.lock();
        let stale: Vec<(u64, u64)> = st
            .vmas
            .iter()
            .filter_map(|(&vs, v)| match &v.backing {
                Backing::Shared {
                    data: d, offset, ..
                } if Arc::ptr_eq(d, data) => {
                    let from = vs.saturating_add(eof.saturating_sub(*offset));
                    (from < v.end).then_some((from, v.end))
                }
                _ => None,
            })
            .collect();
        for (from, to) in stale {
            if self.drop_pmas(&mut st, from, to) {
                self.space.unmap(from, to - from).map_err(platform_errno)?;
            }
        }
        Ok(())
    }

    /// Releases every mapping (exit and exec).
    pub fn clear(&self) {
        let mut st = self.lock();
        let max = self.layout.max;
        st.vmas.clear();
        self.drop_pmas(&mut st, 0, max);
    }
}

impl Drop for MemoryManager {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        release(&self.memfile, st);
    }
}

/// Drops the references of a state's PMAs.
fn release(memfile: &MemoryFile, st: &mut State) {
    for (s, p) in std::mem::take(&mut st.pmas) {
        memfile.dec_ref(p.off, p.end - s);
    }
}

/// A forked child's memory until its address space exists: holds the
/// references its PMAs took.
pub struct ForkedMemory {
    state: Option<State>,
    memfile: Arc<MemoryFile>,
    layout: Layout,
    stack_limit: u64,
}

impl Drop for ForkedMemory {
    fn drop(&mut self) {
        if let Some(st) = &mut self.state {
            release(&self.memfile, st);
        }
    }
}

impl Piece {
    /// How the platform maps it in a VMA with protection `prot`.
    fn prot(&self, prot: Prot) -> Prot {
        if self.cow {
            Prot(prot.0 & !Prot::WRITE.0)
        } else {
            prot
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Force,
}

fn platform_errno(e: veil_platform::PlatformError) -> Errno {
    tracing::error!("platform: {e}");
    Errno::ENOMEM
}

/// Validates a page-aligned, non-empty range; returns its end.
fn check_range(addr: u64, len: u64, max: u64) -> Result<u64, Errno> {
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::EINVAL)?;
    match addr.checked_add(len) {
        Some(end) if end <= max => Ok(end),
        _ => Err(Errno::EINVAL),
    }
}

/// The VMA containing `addr`, growing a MAP_GROWSDOWN VMA down to it if
/// `addr` lies below one and the grown stack stays within `stack_limit`
/// and RLIMIT_AS.
fn find_vma(st: &mut State, addr: u64, stack_limit: u64) -> Option<(u64, Vma)> {
    if let Some((&s, v)) = st.vmas.range(..=addr).next_back() {
        if addr < v.end {
            return Some((s, v.clone()));
        }
    }
    let (&above, v) = st.vmas.range(addr..).next()?;
    let prev_end = st
        .vmas
        .range(..addr)
        .next_back()
        .map_or(MIN_ADDR, |(_, p)| p.end);
    if !v.growsdown
        || v.end - page_down(addr) > stack_limit
        || page_down(addr) < prev_end + PAGE_SIZE
        || !st.may_expand(false, above - page_down(addr))
    {
        return None;
    }
    let vmas = &mut st.vmas;
    let mut grown = vmas.remove(&above)?;
    grown.backing = grown.backing.shifted(-((above - page_down(addr)) as i64));
    vmas.insert(page_down(addr), grown.clone());
    Some((page_down(addr), grown))
}

fn overlaps<T>(map: &BTreeMap<u64, T>, start: u64, end: u64) -> bool
where
    T: HasEnd,
{
    if map.range(start..end).next().is_some() {
        return true;
    }
    map.range(..start)
        .next_back()
        .is_some_and(|(_, v)| v.end() > start)
}

fn any_in(pmas: &BTreeMap<u64, Pma>, start: u64, end: u64) -> bool {
    overlaps(pmas, start, end)
}

/// The VMAs overlapping `[start, end)`.
fn vmas_in(vmas: &BTreeMap<u64, Vma>, start: u64, end: u64) -> impl Iterator<Item = (u64, &Vma)> {
    let first = vmas
        .range(..start)
        .next_back()
        .filter(|(_, v)| v.end > start);
    first
        .into_iter()
        .chain(vmas.range(start..end))
        .map(|(&s, v)| (s, v))
}

/// Bytes of `[start, end)` that VMAs cover.
fn mapped_bytes(vmas: &BTreeMap<u64, Vma>, start: u64, end: u64) -> u64 {
    vmas_in(vmas, start, end)
        .map(|(s, v)| v.end.min(end) - s.max(start))
        .sum()
}

/// Whether a mapping counts as data for RLIMIT_DATA: private, writable,
/// not a stack (Linux's is_data_mapping).
fn is_data(prot: Prot, growsdown: bool, backing: &Backing) -> bool {
    prot.write() && !growsdown && !matches!(backing, Backing::Shared { .. })
}

fn fully_mapped(vmas: &BTreeMap<u64, Vma>, start: u64, end: u64) -> bool {
    let mut cur = match vmas.range(..=start).next_back() {
        Some((_, v)) if v.end > start => v.end,
        _ => return false,
    };
    for (&s, v) in vmas.range(start + 1..end) {
        if s != cur {
            return false;
        }
        cur = v.end;
    }
    cur >= end
}

trait HasEnd {
    fn end(&self) -> u64;
}

impl Vma {
    fn is_data(&self) -> bool {
        is_data(self.prot, self.growsdown, &self.backing)
    }

    fn backing_is_anon(&self) -> bool {
        matches!(self.backing, Backing::Anon) && self.name.is_none()
    }
}

impl HasEnd for Vma {
    fn end(&self) -> u64 {
        self.end
    }
}

impl HasEnd for Pma {
    fn end(&self) -> u64 {
        self.end
    }
}

fn split_vmas(vmas: &mut BTreeMap<u64, Vma>, at: u64) {
    let Some((&s, v)) = vmas.range(..at).next_back() else {
        return;
    };
    if v.end <= at {
        return;
    }
    let mut tail = v.clone();
    tail.backing = v.backing.shifted((at - s) as i64);
    if let Some(head) = vmas.get_mut(&s) {
        head.end = at;
    }
    vmas.insert(at, tail);
}

fn split_pmas(pmas: &mut BTreeMap<u64, Pma>, at: u64) {
    let Some((&s, &p)) = pmas.range(..at).next_back() else {
        return;
    };
    if p.end <= at {
        return;
    }
    if let Some(head) = pmas.get_mut(&s) {
        head.end = at;
    }
    pmas.insert(
        at,
        Pma {
            off: p.off + (at - s),
            ..p
        },
    );
}
