//! The stub: a few instructions that are the whole user-space image of every
//! application address space besides the application's own mappings.
//!
//! The code is position independent. The sentry copies it to a fixed page at
//! the top of the address space, forks once, and the child jumps there,
//! unmaps everything else and stops for its tracer: that child is the clean
//! master stub. New address spaces are cloned from the master by injecting a
//! `clone` at `clone_site`; the sentry changes an address space by injecting
//! system calls at `syscall_site`, which returns to the tracer with `int3`.

use std::arch::global_asm;
use std::os::fd::RawFd;

use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};

use crate::{host, PlatformError};

/// Highest user address plus one on x86-64 (4-level paging).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// The file descriptor under which every stub holds the memory file.
pub const STUB_MEMFD: i32 = 0;

/// Where the stub pages live in the sentry and in every stub.
#[derive(Clone, Copy, Debug)]
pub struct StubLayout {
    pub base: u64,
    pub len: u64,
    /// Entry of the master's one-time initialisation (`rdi` = memory file FD).
    pub init: u64,
    /// `syscall; int3`: injected system calls.
    pub syscall_site: u64,
    /// `syscall` then, in the parent, `int3`; the child parks in `pause()`.
    pub clone_site: u64,
    /// The `syscall` of the `pause()` loop of a new stub.
    pub pause_site: u64,
    /// The read-only data page at the end, which holds the seccomp filter.
    pub data: u64,
}

global_asm!(
    ".pushsection .text.veil_stub,\"ax\",@progbits",
    ".balign 4096",
    ".globl veil_stub_start",
    "veil_stub_start:",
    // One-time initialisation of the master stub; rdi holds the memory file.
    "veil_stub_init:",
    "mov r12, rdi",
    // prctl(PR_SET_PDEATHSIG, SIGKILL): die with the sentry thread that forked us.
    "mov eax, 157",
    "mov edi, 1",
    "mov esi, 9",
    "syscall",
    // setsid(): terminal signals go to the sentry, never to stubs.
    "mov eax, 112",
    "syscall",
    // dup2(memfd, STUB_MEMFD) then close_range(1, ~0, 0): keep only the memory file.
    "mov eax, 33",
    "mov rdi, r12",
    "xor esi, esi",
    "syscall",
    "mov eax, 436",
    "mov edi, 1",
    "mov esi, 0xffffffff",
    "xor edx, edx",
    "syscall",
    // rt_sigaction(SIGCHLD, {SIG_IGN}, NULL, 8): dead child stubs are reaped by the kernel.
    "mov eax, 13",
    "mov edi, 17",
    "lea rsi, [rip + veil_stub_sigign]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    // ptrace(PTRACE_TRACEME): the forking sentry thread becomes the tracer.
    "mov eax, 101",
    "xor edi, edi",
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "syscall",
    // Unmap everything below and above the stub pages.
    "mov eax, 11",
    "xor edi, edi",
    "lea rsi, [rip + veil_stub_start]",
    "syscall",
    "mov eax, 11",
    "lea rdi, [rip + veil_stub_end]",
    "mov rsi, 0x7ffffffff000",
    "sub rsi, rdi",
    "syscall",
    // prctl(PR_SET_NAME, "veil-stub"): host tools and tests can tell stubs apart.
    "mov eax, 157",
    "mov edi, 15",
    "lea rsi, [rip + veil_stub_name]",
    "syscall",
    "test rax, rax",
    "jnz 3f",
    // prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) then seccomp(SECCOMP_SET_MODE_FILTER, 0,
    // &prog): the filter the sentry wrote into the data page, inherited by every clone.
    "mov eax, 157",
    "mov edi, 38",
    "mov esi, 1",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jnz 3f",
    "mov eax, 317",
    "mov edi, 1",
    "xor esi, esi",
    "lea rdx, [rip + veil_stub_data]",
    "syscall",
    "test rax, rax",
    "jnz 3f",
    "int3",
    // A stub without its filter must not run: exit_group(errno) tells the sentry why.
    "3:",
    "mov edi, eax",
    "neg edi",
    "mov eax, 231",
    "syscall",
    "veil_stub_syscall:",
    "syscall",
    "int3",
    "veil_stub_clone:",
    "syscall",
    "test rax, rax",
    "jz 2f",
    "int3",
    // The new stub waits in pause() until its owner attaches and takes over its registers.
    "2:",
    "mov eax, 34",
    "veil_stub_pause:",
    "syscall",
    "jmp 2b",
    ".balign 8",
    "veil_stub_sigign:",
    ".quad 1, 0, 0, 0",
    "veil_stub_name:",
    ".asciz \"veil-stub\"",
    // The data page: the sentry writes the seccomp filter here (see `install`).
    ".balign 4096",
    "veil_stub_data:",
    ".skip 4096",
    ".globl veil_stub_end",
    "veil_stub_end:",
    ".popsection",
);

extern "C" {
    static veil_stub_start: u8;
    static veil_stub_end: u8;
    static veil_stub_init: u8;
    static veil_stub_syscall: u8;
    static veil_stub_clone: u8;
    static veil_stub_pause: u8;
    static veil_stub_data: u8;
}

/// Size of the stub's data page, which holds the seccomp filter.
const DATA_LEN: usize = 4096;

/// Copies the stub code to a fixed, page-aligned place near the top of the
/// address space, which stays free of application mappings, and writes the
/// seccomp filter for that place into its data page.
pub fn install() -> Result<StubLayout, PlatformError> {
    let start = &raw const veil_stub_start as u64;
    let end = &raw const veil_stub_end as u64;
    let len = end - start;
    let offset_of = |sym: *const u8| sym as u64 - start;
    let data_off = offset_of(&raw const veil_stub_data) as usize;
    if data_off + DATA_LEN != len as usize {
        return Err(PlatformError::BadState(
            "the stub's data page is not its last",
        ));
    }
    let size = std::num::NonZeroUsize::new(len as usize).ok_or(PlatformError::Host {
        op: "stub size",
        errno: nix::errno::Errno::EINVAL,
    })?;
    // Try a few candidate bases below the top; the sentry's own mappings may occupy one.
    let mut base = TASK_SIZE - 0x10_0000;
    let ptr = loop {
        let hint = std::num::NonZeroUsize::new(base as usize);
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so
        // this cannot clobber sentry memory; it either maps fresh pages at
        // `base` or fails.
        let mapped = unsafe {
            mmap_anonymous(
                hint,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_FIXED_NOREPLACE,
            )
        };
        match mapped {
            Ok(ptr) => break ptr,
            Err(nix::errno::Errno::EEXIST) if base > TASK_SIZE - 0x1000_0000 => base -= 0x10_0000,
            Err(e) => return Err(host("mmap stub")(e)),
        }
    };
    let layout = StubLayout {
        base,
        len,
        init: base + offset_of(&raw const veil_stub_init),
        syscall_site: base + offset_of(&raw const veil_stub_syscall),
        clone_site: base + offset_of(&raw const veil_stub_clone),
        pause_site: base + offset_of(&raw const veil_stub_pause),
        data: base + data_off as u64,
    };
    let data = filter_page(&layout)?;
    // SAFETY: the destination is the `len` bytes just mapped read-write; the
    // source is the stub's code in our own text, `len` bytes between two
    // symbols of the same section.
    unsafe { std::ptr::copy_nonoverlapping(start as *const u8, ptr.as_ptr().cast(), len as usize) };
    // SAFETY: the data page is the last DATA_LEN bytes of that mapping.
    let data_ptr = unsafe { ptr.as_ptr().cast::<u8>().add(data_off) };
    // SAFETY: `data` is DATA_LEN bytes long, and so is the page at `data_ptr`.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), data_ptr, DATA_LEN) };
    // SAFETY: changes only the protection of the code pages mapped above.
    unsafe { mprotect(ptr, data_off, ProtFlags::PROT_READ | ProtFlags::PROT_EXEC) }
        .map_err(host("mprotect stub"))?;
    let data_nn =
        std::ptr::NonNull::new(data_ptr.cast()).ok_or(PlatformError::BadState("stub data"))?;
    // SAFETY: changes only the protection of the data page mapped above.
    unsafe { mprotect(data_nn, DATA_LEN, ProtFlags::PROT_READ) }.map_err(host("mprotect stub"))?;
    Ok(layout)
}

/// The contents of the stub's data page: a `sock_fprog` pointing just past
/// itself at the filter's instructions.
fn filter_page(layout: &StubLayout) -> Result<Vec<u8>, PlatformError> {
    const HEADER: usize = 16;
    let prog = super::filter::stub_filter(layout)?;
    let mut page = vec![0u8; DATA_LEN];
    if HEADER + prog.len() * 8 > DATA_LEN {
        return Err(super::filter::BpfError::TooLong(prog.len()).into());
    }
    page[0..2].copy_from_slice(&(prog.len() as u16).to_le_bytes());
    page[8..16].copy_from_slice(&(layout.data + HEADER as u64).to_le_bytes());
    for (i, insn) in prog.iter().enumerate() {
        let at = HEADER + i * 8;
        page[at..at + 2].copy_from_slice(&insn.code.to_le_bytes());
        page[at + 2] = insn.jt;
        page[at + 3] = insn.jf;
        page[at + 4..at + 8].copy_from_slice(&insn.k.to_le_bytes());
    }
    Ok(page)
}

extern "C" {
    /// glibc's offset of the thread's rseq area from the thread pointer.
    static __rseq_offset: isize;
    /// glibc's registered rseq area size (0 when rseq is not in use).
    static __rseq_size: u32;
}

/// Unregisters the calling thread's rseq area, which glibc registers for
/// every thread. A stub forked from this thread must not inherit it: the
/// kernel would write to the (unmapped) area on every return to user mode
/// and kill the stub with SIGSEGV.
pub fn unregister_rseq() -> Result<(), PlatformError> {
    const RSEQ_FLAG_UNREGISTER: u64 = 1;
    const RSEQ_SIG: u64 = 0x5305_3053;
    // SAFETY: both are plain integers exported by glibc (2.35+), written once
    // at start-up.
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return Ok(());
    }
    let tp: u64;
    // SAFETY: on x86-64 Linux fs:0 holds the thread pointer itself.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly)) };
    let area = tp.wrapping_add_signed(offset as i64);
    // The registered length is the area's allocation (32 bytes), which may
    // be larger than the feature size glibc publishes.
    for len in [32u64, u64::from(size)] {
        // SAFETY: unregistering only tells the kernel to stop using the area.
        let r = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_rseq,
                area,
                len,
                RSEQ_FLAG_UNREGISTER,
                RSEQ_SIG,
            )
        };
        if r == 0 {
            return Ok(());
        }
    }
    Err(host("rseq unregister")(nix::errno::Errno::last()))
}

/// Forks the master stub from the calling thread, which becomes its tracer.
/// Returns the child's PID; the child stops with SIGTRAP once it is clean.
pub fn fork_master(layout: &StubLayout, memfd: RawFd) -> Result<i32, PlatformError> {
    // SAFETY: the child runs no Rust code after fork: it jumps straight into
    // the stub, which only makes raw system calls and never returns, so no
    // lock or allocator state inherited from other sentry threads is touched.
    let pid = unsafe { nix::libc::syscall(nix::libc::SYS_clone, nix::libc::SIGCHLD, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(host("fork stub")(nix::errno::Errno::last()));
    }
    if pid == 0 {
        // SAFETY: `init` points at the copied stub code, which is mapped
        // read-execute in this (child) address space and never returns.
        unsafe {
            std::arch::asm!("jmp {entry}", entry = in(reg) layout.init, in("rdi") memfd as u64, options(noreturn))
        }
    }
    Ok(pid as i32)
}
