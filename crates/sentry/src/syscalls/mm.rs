//! Memory syscalls: mmap, munmap, mprotect, mremap, brk, madvise.

use std::sync::Arc;

use veil_abi::{page_up, Errno, SysResult, Sysno, PAGE_SIZE};

use super::strace::Arg::*;
use super::{Args, Table};
use veil_abi::mode::{S_IFCHR, S_IFMT};
use veil_memory::FileData;
use veil_vfs::fs::makedev;
use veil_vfs::OpenFile;

use crate::mm::{Backing, MmapRequest, Placement};
use crate::task::Task;
use crate::vfsglue::FileMapping;

const O_ACCMODE: i32 = 3;
const O_RDWR: i32 = 2;
const MAP_SHARED: u32 = 0x01;
const MAP_PRIVATE: u32 = 0x02;
const MAP_SHARED_VALIDATE: u32 = 0x03;
const MAP_TYPE: u32 = 0x0f;
const MAP_FIXED: u32 = 0x10;
const MAP_ANONYMOUS: u32 = 0x20;
const MAP_GROWSDOWN: u32 = 0x100;
const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
/// Flags Linux accepts and that need nothing from us (hints, legacy, locking).
const MAP_IGNORED: u32 =
    0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x40000 | 0x80000;
const PROT_ALL: u32 = 7;
const PROT_EXEC: u32 = 4;
const PROT_GROWSDOWN: u32 = 0x0100_0000;

const MREMAP_MAYMOVE: u32 = 1;
const MREMAP_FIXED: u32 = 2;

const MADV_DONTNEED: i32 = 4;
const MADV_REMOVE: i32 = 9;

pub(super) fn register(t: &mut Table) {
    t.full_hex(Sysno::mmap, mmap, &[Hex, UInt, Prot, MapFlags, Fd, Hex]);
    t.full(Sysno::munmap, munmap, &[Hex, UInt]);
    t.full(Sysno::mprotect, mprotect, &[Hex, UInt, Prot]);
    t.partial(
        Sysno::mremap,
        mremap,
        &[Hex, UInt, UInt, Hex, Hex],
        "MREMAP_DONTUNMAP fails with EINVAL",
    );
    t.full_hex(Sysno::brk, brk, &[Hex]);
    t.partial(
        Sysno::madvise,
        madvise,
        &[Hex, UInt, Int],
        "MADV_DONTNEED drops pages (shared memory keeps its data); MADV_REMOVE fails with EOPNOTSUPP; other advice is accepted without effect",
    );
    t.partial(
        Sysno::msync,
        msync,
        &[Hex, UInt, Hex],
        "shared mappings map the file's own pages: nothing to write back",
    );
    t.partial(
        Sysno::mlock,
        ok0,
        &[Hex, UInt],
        "memory is never swapped; succeeds without effect",
    );
    t.partial(
        Sysno::munlock,
        ok0,
        &[Hex, UInt],
        "memory is never swapped; succeeds without effect",
    );
    t.partial(
        Sysno::mlockall,
        ok0,
        &[Hex],
        "memory is never swapped; succeeds without effect",
    );
    t.partial(
        Sysno::munlockall,
        ok0,
        &[],
        "memory is never swapped; succeeds without effect",
    );
}

fn mmap(t: &mut Task, a: &Args) -> SysResult {
    let (addr, len, prot, flags, fd, off) =
        (a.u64(0), a.u64(1), a.u32(2), a.u32(3), a.i32(4), a.u64(5));
    if len == 0 || off % PAGE_SIZE != 0 || prot & !PROT_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let known =
        MAP_TYPE | MAP_FIXED | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE | MAP_IGNORED;
    let shared = match flags & MAP_TYPE {
        MAP_PRIVATE => false,
        MAP_SHARED => true,
        MAP_SHARED_VALIDATE if flags & !known == 0 => true,
        _ => return Err(Errno::EINVAL),
    };
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed
    } else {
        Placement::Hint
    };
    if placement != Placement::Hint && addr % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    let mut name = None;
    let backing = if flags & MAP_ANONYMOUS != 0 {
        if shared {
            name = Some(dev_zero_name());
            shared_anon(t, len)?
        } else {
            Backing::Anon
        }
    } else {
        let file = t.fds.get(fd)?;
        // Linux's do_mmap: no executable mappings of a noexec mount's files.
        if prot & PROT_EXEC != 0 && file.path().mount.noexec() {
            return Err(Errno::EPERM);
        }
        off.checked_add(len).ok_or(Errno::EOVERFLOW)?;
        let mapping = FileMapping::new(file.clone(), prot & 2 != 0 && shared)?;
        name = crate::vfsglue::map_name(t, &file);
        // Asked only for shared mappings: a host file makes its cache then.
        let data = if shared { file.mappable() } else { None };
        match data {
            Some(data) => Backing::Shared {
                data,
                offset: off,
                may_write: file.flags() & O_ACCMODE == O_RDWR,
            },
            None if shared && is_dev_zero(&file) => {
                name = Some(dev_zero_name());
                shared_anon(t, len)?
            }
            _ => {
                if shared && prot & 2 != 0 {
                    t.kernel
                        .log_once("writable MAP_SHARED mappings of host descriptors and devices are private copies");
                }
                Backing::File {
                    file: Arc::new(mapping),
                    offset: off,
                }
            }
        }
    };
    t.sync_vm_limits();
    t.mm.mmap(MmapRequest {
        addr,
        len,
        prot: veil_platform::Prot(prot),
        placement,
        growsdown: flags & MAP_GROWSDOWN != 0,
        backing,
        name,
    })
}

/// Linux backs shared anonymous memory with an unlinked shmem file.
fn dev_zero_name() -> Arc<crate::mm::MapName> {
    Arc::new(crate::mm::MapName {
        path: b"/dev/zero (deleted)".to_vec(),
        dev: 1,
        ino: 0,
    })
}

/// A MAP_SHARED|MAP_ANONYMOUS mapping: a new object of `len` bytes, which
/// forked children share (Linux's shmem file behind /dev/zero). Like
/// Linux's, it does not grow with mremap: past its end is SIGBUS.
fn shared_anon(t: &Task, len: u64) -> Result<Backing, Errno> {
    let data = Arc::new(FileData::new(t.kernel.memfile.clone()));
    data.set_len(len, |_, _| Ok(()))?;
    Ok(Backing::Shared {
        data,
        offset: 0,
        may_write: true,
    })
}

/// Whether `file` is /dev/zero, whose shared mappings are shared anonymous
/// memory.
fn is_dev_zero(file: &OpenFile) -> bool {
    file.stat()
        .is_ok_and(|st| st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == makedev(1, 5))
}

fn munmap(t: &mut Task, a: &Args) -> SysResult {
    t.mm.munmap(a.u64(0), a.u64(1)).map(|()| 0)
}

fn mprotect(t: &mut Task, a: &Args) -> SysResult {
    t.sync_vm_limits();
    let prot = a.u32(2);
    // PROT_GROWSDOWN only extends the change to a stack's guard area.
    if prot & !(PROT_ALL | PROT_GROWSDOWN | 0x0200_0000) != 0 {
        return Err(Errno::EINVAL);
    }
    t.mm.mprotect(a.u64(0), a.u64(1), veil_platform::Prot(prot & PROT_ALL))
        .map(|()| 0)
}

fn mremap(t: &mut Task, a: &Args) -> SysResult {
    t.sync_vm_limits();
    let flags = a.u32(3);
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0
        || (flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0)
    {
        return Err(Errno::EINVAL);
    }
    let fixed = (flags & MREMAP_FIXED != 0).then(|| a.u64(4));
    t.mm.mremap(
        a.u64(0),
        a.u64(1),
        a.u64(2),
        flags & MREMAP_MAYMOVE != 0,
        fixed,
    )
}

fn brk(t: &mut Task, a: &Args) -> SysResult {
    t.sync_vm_limits();
    Ok(t.mm.brk(a.u64(0)))
}

fn madvise(t: &mut Task, a: &Args) -> SysResult {
    let (addr, len, advice) = (a.u64(0), a.u64(1), a.i32(2));
    if addr % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    match advice {
        MADV_DONTNEED => t.mm.madvise_dontneed(addr, len).map(|()| 0),
        MADV_REMOVE => {
            t.mm.check_mapped(addr, len)?;
            t.kernel.log_once("madvise(MADV_REMOVE)");
            Err(Errno::EOPNOTSUPP)
        }
        // Known advice: normal, random, sequential, willneed, free,
        // (no)dontfork, (un)mergeable, hugepage, nohugepage, dontdump, dodump,
        // wipeonfork, keeponfork, cold, pageout.
        0..=3 | 8..=19 | 20 | 21 => t.mm.check_mapped(addr, len).map(|()| 0),
        _ => Err(Errno::EINVAL),
    }
}

fn msync(t: &mut Task, a: &Args) -> SysResult {
    if !a.u64(0).is_multiple_of(PAGE_SIZE) || a.u32(2) & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    if a.u64(1) == 0 {
        return Ok(0);
    }
    t.mm.check_mapped(a.u64(0), a.u64(1))?;
    // Caches of host files go back to them; other memory has no home.
    for data in t.mm.shared_data(a.u64(0), a.u64(1))? {
        data.sync()?;
    }
    Ok(0)
}

fn ok0(_t: &mut Task, _a: &Args) -> SysResult {
    Ok(0)
}
