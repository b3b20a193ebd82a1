//! Platforms: how application code runs and traps back into the sentry.
//!
//! A platform provides address spaces (into which ranges of the sentry's
//! memory file are mapped) and execution contexts (which run application code
//! until the next system call, fault or signal). The sentry only sees the
//! traits here; `ptrace` is the first implementation, `systrap` and `kvm`
//! follow behind the same interface.

use std::any::Any;
use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub mod ptrace;

/// Errors of the platform itself, as opposed to the application's.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A host system call made on the platform's behalf failed.
    #[error("host {op} failed: {errno}")]
    Host {
        op: &'static str,
        errno: nix::errno::Errno,
    },
    /// The stub process backing an address space died unexpectedly.
    #[error("stub process {pid} died unexpectedly ({detail})")]
    StubDied { pid: i32, detail: String },
    /// An address space was used from a sentry thread that has no stub thread in it.
    #[error("no stub thread in this address space for sentry thread {0}")]
    NotOwner(i32),
    /// Register state handed to the platform does not fit the CPU.
    #[error("bad register state: {0}")]
    BadState(&'static str),
    /// The stubs' seccomp filter could not be assembled.
    #[error("stub seccomp filter: {0}")]
    Filter(#[from] ptrace::BpfError),
    /// A syscall injected into a stub failed.
    #[error("stub {op} failed: {errno}")]
    Stub {
        op: &'static str,
        errno: veil_abi::Errno,
    },
}

/// Builds a `PlatformError::Host` mapper for `map_err`.
pub(crate) fn host(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> PlatformError {
    move |errno| PlatformError::Host { op, errno }
}

/// Memory protection of a mapping, as `PROT_*` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Prot(pub u32);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: Prot = Prot(1);
    pub const WRITE: Prot = Prot(2);
    pub const EXEC: Prot = Prot(4);

    pub fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn read(self) -> bool {
        self.0 & 1 != 0
    }

    pub fn write(self) -> bool {
        self.0 & 2 != 0
    }

    pub fn exec(self) -> bool {
        self.0 & 4 != 0
    }
}

impl std::ops::BitOr for Prot {
    type Output = Prot;
    fn bitor(self, rhs: Prot) -> Prot {
        Prot(self.0 | rhs.0)
    }
}

/// General-purpose registers of an x86-64 thread, laid out as the kernel's
/// `struct user_regs_struct`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Registers {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

impl Registers {
    /// Registers for a fresh thread starting at `entry` with stack `sp`.
    pub fn new_user(entry: u64, sp: u64) -> Registers {
        Registers {
            rip: entry,
            rsp: sp,
            cs: 0x33,
            ss: 0x2b,
            eflags: 0x202,
            orig_rax: u64::MAX,
            ..Registers::default()
        }
    }

    /// The six system call arguments, in ABI order.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

/// Why the application stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// It made a system call: the number is in `orig_rax`, and `rip` is past
    /// the `syscall` instruction.
    Syscall,
    /// It faulted (SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGTRAP).
    Fault(FaultInfo),
    /// A host signal arrived for the stub thread (it is not delivered: the
    /// sentry decides what it means).
    Signal(i32),
}

/// A synchronous fault taken by application code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    pub signo: i32,
    pub code: i32,
    pub addr: u64,
}

/// An application address space: the set of memory-file ranges mapped into it.
pub trait AddressSpace: Send + Sync + Any {
    /// Maps `len` bytes of the memory file at `offset` to `addr`, replacing
    /// whatever was there.
    fn map(&self, addr: u64, len: u64, prot: Prot, offset: u64) -> Result<(), PlatformError>;

    /// Removes any mappings in `[addr, addr + len)`.
    fn unmap(&self, addr: u64, len: u64) -> Result<(), PlatformError>;

    /// Changes the protection of mapped pages in `[addr, addr + len)`.
    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<(), PlatformError>;

    /// Creates a new application thread in this address space, from the
    /// calling sentry thread's own thread. Returns a token for `adopt_thread`.
    fn spawn_thread(&self) -> Result<u64, PlatformError>;

    /// Makes the calling sentry thread the owner of a thread from
    /// `spawn_thread`: from now on it runs and changes the space through it.
    fn adopt_thread(&self, token: u64) -> Result<(), PlatformError>;

    /// Ends the calling sentry thread's application thread (the others, and
    /// the address space, live on).
    fn exit_thread(&self);

    /// A handle that makes the calling sentry thread's application thread in
    /// this address space stop and return to the sentry soon, from any
    /// thread (signal delivery).
    fn interrupter(&self) -> Option<Arc<dyn Interrupt>>;

    fn as_any(&self) -> &dyn Any;
}

/// Forces an application thread back into the sentry.
pub trait Interrupt: Send + Sync {
    fn interrupt(&self);
}

/// The execution state of one application thread on a platform.
pub trait Context: Send {
    /// Runs application code in `space` with `regs` until the next event,
    /// and leaves the thread's registers at that point in `regs`.
    fn switch(
        &mut self,
        space: &dyn AddressSpace,
        regs: &mut Registers,
    ) -> Result<Event, PlatformError>;

    /// The thread's floating-point and vector state, as signal frames
    /// carry it.
    fn fp_state(&mut self, space: &dyn AddressSpace) -> Result<FpState, PlatformError>;

    /// Replaces the thread's floating-point and vector state (sigreturn).
    fn set_fp_state(&mut self, space: &dyn AddressSpace, fp: &FpState)
        -> Result<(), PlatformError>;
}

/// Size of the FXSAVE area, which every x86-64 CPU has.
pub const FXSAVE_SIZE: usize = 512;

/// A thread's floating-point and vector registers in the standard
/// (non-compacted) XSAVE layout: the 512-byte FXSAVE area (x87, MMX, SSE,
/// MXCSR), the XSAVE header, then the extended components (AVX, ...). Its
/// length is the host's XSAVE size, or just the FXSAVE area on CPUs
/// without XSAVE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FpState(pub Vec<u8>);

impl FpState {
    /// Whether the state has extended (XSAVE) components.
    pub fn is_xsave(&self) -> bool {
        self.0.len() > FXSAVE_SIZE
    }
}

/// The XSAVE layout of this CPU: the size of the standard-format area and
/// the state components the OS enabled (XCR0), or None without XSAVE.
pub fn xsave_layout() -> Option<(usize, u64)> {
    static LAYOUT: std::sync::OnceLock<Option<(usize, u64)>> = std::sync::OnceLock::new();
    *LAYOUT.get_or_init(probe_xsave)
}

fn probe_xsave() -> Option<(usize, u64)> {
    use std::arch::x86_64::__cpuid_count;
    let leaf1 = __cpuid_count(1, 0);
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    if !osxsave {
        return None;
    }
    let leaf_d = __cpuid_count(0xd, 0);
    // SAFETY: XGETBV(0) is valid when CR4.OSXSAVE is set, which OSXSAVE
    // reports.
    let xcr0 = unsafe { std::arch::x86_64::_xgetbv(0) };
    Some((leaf_d.ebx as usize, xcr0))
}

/// A way of running application code.
pub trait Platform: Send + Sync {
    fn name(&self) -> &'static str;

    /// The highest application address plus one: everything above belongs to
    /// the platform.
    fn max_user_address(&self) -> u64;

    /// Creates an empty address space owned by the calling sentry thread.
    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>, PlatformError>;

    /// Creates an execution context for the calling sentry thread.
    fn new_context(&self) -> Box<dyn Context>;
}
