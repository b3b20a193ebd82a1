//! The stubs' seccomp filter: a stub may make only the system calls the
//! sentry injects, and only from the stub's own `syscall` instructions.
//!
//! Application system calls never reach it: under PTRACE_SYSEMU the kernel
//! reports the call to the tracer and skips it before seccomp runs
//! (syscall_trace_enter in kernel/entry/common.c). The filter is the second
//! line: should a stub ever run application code without SYSEMU, or lose its
//! tracer, any system call it makes kills it.
//!
//! The one exception is the legacy vsyscall page, which SYSEMU does not
//! see: the kernel emulates its three calls itself after asking seccomp
//! only (emulate_vsyscall in arch/x86/entry/vsyscall/vsyscall_64.c). The
//! filter traps them, and the tracer hands them to the sentry as system calls.

use std::fmt;

use linux_raw_sys::ptrace::{
    sock_filter, AUDIT_ARCH_X86_64, BPF_ABS, BPF_JA, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD,
    BPF_RET, BPF_W, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_TRAP,
};
use veil_abi::Sysno;

use super::stub::StubLayout;

/// Flags of the `mmap` calls the sentry injects: the memory file, shared,
/// at a fixed address.
pub(super) const MMAP_FLAGS: u64 = (nix::libc::MAP_SHARED | nix::libc::MAP_FIXED) as u64;

/// Flags of the `clone` that makes a new stub process from the master.
pub(super) const CLONE_PROCESS_FLAGS: u64 = nix::libc::SIGCHLD as u64;

/// Flags of the `clone` that adds a thread to a stub process.
pub(super) const CLONE_THREAD_FLAGS: u64 = (nix::libc::CLONE_VM
    | nix::libc::CLONE_FS
    | nix::libc::CLONE_FILES
    | nix::libc::CLONE_SIGHAND
    | nix::libc::CLONE_THREAD
    | nix::libc::CLONE_SYSVSEM) as u64;

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`, injected into every new stub process.
pub(super) const PDEATHSIG_ARGS: [u64; 2] = [
    nix::libc::PR_SET_PDEATHSIG as u64,
    nix::libc::SIGKILL as u64,
];

/// The x32 ABI's bit in the system call number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data` (little-endian: low word first).
const NR: u32 = 0;
const ARCH: u32 = 4;
const IP: u32 = 8;
const ARGS: u32 = 16;

/// A `syscall` instruction of the stub from which system calls may come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubSite {
    /// `syscall; int3`, where the sentry injects calls into an address space.
    Syscall,
    /// The `clone` that makes new stub processes and threads.
    Clone,
    /// The `pause()` loop a new stub parks in until its owner attaches.
    Pause,
    /// An entry point of the vsyscall page.
    Vsyscall(u64),
}

impl StubSite {
    /// The instruction pointer seccomp sees for a call from here in
    /// `layout`: past the 2-byte `syscall`, or the vsyscall entry itself.
    pub fn ip(self, layout: &StubLayout) -> u64 {
        match self {
            StubSite::Syscall => layout.syscall_site + 2,
            StubSite::Clone => layout.clone_site + 2,
            StubSite::Pause => layout.pause_site + 2,
            StubSite::Vsyscall(entry) => entry,
        }
    }
}

impl fmt::Display for StubSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StubSite::Syscall => f.write_str("syscall_site"),
            StubSite::Clone => f.write_str("clone_site"),
            StubSite::Pause => f.write_str("pause_site"),
            StubSite::Vsyscall(entry) => write!(f, "vsyscall {entry:#x}"),
        }
    }
}

/// What the filter does with a call that matches a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The host kernel runs it.
    Allow,
    /// SIGSYS to the stub, which its tracer turns into a system call for
    /// the sentry.
    Trap,
}

/// A condition on one 64-bit system call argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgCheck {
    Equals(u64),
    OneOf(&'static [u64]),
    /// None of these bits is set.
    NoneOf(u64),
}

/// One allowed system call: its number, where it may come from, and what its
/// arguments must be (every check must hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StubRule {
    pub sysno: Sysno,
    pub site: StubSite,
    /// (argument index, argument name, check).
    pub args: &'static [(usize, &'static str, ArgCheck)],
    pub verdict: Verdict,
}

impl fmt::Display for StubRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.sysno.name(), self.site)?;
        for (i, (_, name, check)) in self.args.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            match check {
                ArgCheck::Equals(v) => write!(f, "{name} == {}", number(*v))?,
                ArgCheck::OneOf(vs) => {
                    let vs: Vec<String> = vs.iter().map(|&v| number(v)).collect();
                    write!(f, "{name} in {{{}}}", vs.join(", "))?;
                }
                ArgCheck::NoneOf(m) => write!(f, "{name} & {m:#x} == 0")?,
            }
        }
        if self.verdict == Verdict::Trap {
            f.write_str(" (trapped and served by the sentry)")?;
        }
        Ok(())
    }
}

/// Small numbers (FDs, signals) in decimal, flags and masks in hex.
fn number(v: u64) -> String {
    if v < 10 {
        v.to_string()
    } else {
        format!("{v:#x}")
    }
}

/// Every bit but PROT_READ, PROT_WRITE and PROT_EXEC (application code is
/// mapped executable, so PROT_EXEC stays).
const NOT_RWX: u64 = !7;

/// The vsyscall page's first entry; `time` and `getcpu` follow 1 KiB apart.
pub(super) const VSYSCALL_GETTIMEOFDAY: u64 = 0xffff_ffff_ff60_0000;

const RULES: &[StubRule] = &[
    StubRule {
        sysno: Sysno::mmap,
        site: StubSite::Syscall,
        args: &[
            (2, "prot", ArgCheck::NoneOf(NOT_RWX)),
            (3, "flags", ArgCheck::Equals(MMAP_FLAGS)),
            (4, "fd", ArgCheck::Equals(super::STUB_MEMFD as u64)),
        ],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::munmap,
        site: StubSite::Syscall,
        args: &[],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::mprotect,
        site: StubSite::Syscall,
        args: &[(2, "prot", ArgCheck::NoneOf(NOT_RWX))],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::prctl,
        site: StubSite::Syscall,
        args: &[
            (0, "option", ArgCheck::Equals(PDEATHSIG_ARGS[0])),
            (1, "signal", ArgCheck::Equals(PDEATHSIG_ARGS[1])),
        ],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::exit,
        site: StubSite::Syscall,
        args: &[],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::clone,
        site: StubSite::Clone,
        args: &[(
            0,
            "flags",
            ArgCheck::OneOf(&[CLONE_PROCESS_FLAGS, CLONE_THREAD_FLAGS]),
        )],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::pause,
        site: StubSite::Pause,
        args: &[],
        verdict: Verdict::Allow,
    },
    StubRule {
        sysno: Sysno::gettimeofday,
        site: StubSite::Vsyscall(VSYSCALL_GETTIMEOFDAY),
        args: &[],
        verdict: Verdict::Trap,
    },
    StubRule {
        sysno: Sysno::time,
        site: StubSite::Vsyscall(VSYSCALL_GETTIMEOFDAY + 0x400),
        args: &[],
        verdict: Verdict::Trap,
    },
    StubRule {
        sysno: Sysno::getcpu,
        site: StubSite::Vsyscall(VSYSCALL_GETTIMEOFDAY + 0x800),
        args: &[],
        verdict: Verdict::Trap,
    },
];

/// The system calls a stub may make or that its seccomp filter traps for
/// the sentry; anything else, from anywhere, kills the stub process.
pub fn stub_filter_rules() -> &'static [StubRule] {
    RULES
}

/// The system call the filter trapped at `addr`, if it traps calls there.
pub(super) fn trapped_call(addr: u64) -> Option<Sysno> {
    RULES
        .iter()
        .find(|r| r.verdict == Verdict::Trap && r.site == StubSite::Vsyscall(addr))
        .map(|r| r.sysno)
}

/// Why a BPF program could not be assembled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    #[error("label {0} used but never bound")]
    Unbound(usize),
    #[error("label {0} bound twice")]
    Rebound(usize),
    #[error("jump from {from} to {to} goes backwards or too far")]
    BadJump { from: usize, to: usize },
    #[error("program of {0} instructions is too long")]
    TooLong(usize),
}

/// A jump target in a program under construction.
#[derive(Clone, Copy, Debug)]
pub struct Label(usize);

/// Where a conditional jump goes in one of its two cases.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Next,
    To(Label),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Load(u32),
    Ret(u32),
    Jump(Label),
    Cond {
        op: u32,
        k: u32,
        t: Target,
        f: Target,
    },
}

/// A classic-BPF program with symbolic jump targets, resolved by `finish`.
#[derive(Debug, Default)]
pub struct Bpf {
    ops: Vec<Op>,
    labels: Vec<Option<usize>>,
}

impl Bpf {
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Makes `l` point at the next instruction.
    pub fn bind(&mut self, l: Label) -> Result<(), BpfError> {
        match self.labels[l.0].replace(self.ops.len()) {
            Some(_) => Err(BpfError::Rebound(l.0)),
            None => Ok(()),
        }
    }

    /// Loads the 32-bit word at `offset` of `seccomp_data`.
    pub fn load(&mut self, offset: u32) {
        self.ops.push(Op::Load(offset));
    }

    pub fn ret(&mut self, action: u32) {
        self.ops.push(Op::Ret(action));
    }

    pub fn jump(&mut self, l: Label) {
        self.ops.push(Op::Jump(l));
    }

    /// Goes to `t` if the loaded word equals `k`, else to `f`.
    pub fn jeq(&mut self, k: u32, t: Target, f: Target) {
        self.ops.push(Op::Cond {
            op: BPF_JEQ,
            k,
            t,
            f,
        });
    }

    /// Goes to `t` if the loaded word has any bit of `k`, else to `f`.
    pub fn jset(&mut self, k: u32, t: Target, f: Target) {
        self.ops.push(Op::Cond {
            op: BPF_JSET,
            k,
            t,
            f,
        });
    }

    /// Continues only if the 64-bit word at `offset` equals `v`.
    pub fn expect_eq64(&mut self, offset: u32, v: u64, fail: Label) {
        self.load(offset);
        self.jeq(v as u32, Target::Next, Target::To(fail));
        self.load(offset + 4);
        self.jeq((v >> 32) as u32, Target::Next, Target::To(fail));
    }

    /// Continues only if the 64-bit word at `offset` has no bit of `mask`.
    pub fn expect_none64(&mut self, offset: u32, mask: u64, fail: Label) {
        self.load(offset);
        self.jset(mask as u32, Target::To(fail), Target::Next);
        self.load(offset + 4);
        self.jset((mask >> 32) as u32, Target::To(fail), Target::Next);
    }

    /// Resolves the labels into the kernel's instruction format.
    pub fn finish(self) -> Result<Vec<sock_filter>, BpfError> {
        const BPF_MAXINSNS: usize = 4096;
        if self.ops.len() > BPF_MAXINSNS {
            return Err(BpfError::TooLong(self.ops.len()));
        }
        let resolve = |pc: usize, l: Label, max: usize| -> Result<usize, BpfError> {
            let to = self.labels[l.0].ok_or(BpfError::Unbound(l.0))?;
            // Classic BPF only jumps forwards, relative to the next instruction.
            match to.checked_sub(pc + 1) {
                Some(off) if off <= max && to < self.ops.len() => Ok(off),
                _ => Err(BpfError::BadJump { from: pc, to }),
            }
        };
        let target = |pc: usize, t: Target| match t {
            Target::Next => Ok(0u8),
            Target::To(l) => resolve(pc, l, u8::MAX.into()).map(|o| o as u8),
        };
        let insn = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        self.ops
            .iter()
            .enumerate()
            .map(|(pc, op)| {
                Ok(match *op {
                    Op::Load(off) => insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, off),
                    Op::Ret(action) => insn(BPF_RET | BPF_K, 0, 0, action),
                    Op::Jump(l) => {
                        let off = resolve(pc, l, u32::MAX as usize)?;
                        insn(BPF_JMP | BPF_JA, 0, 0, off as u32)
                    }
                    Op::Cond { op, k, t, f } => {
                        insn(BPF_JMP | op | BPF_K, target(pc, t)?, target(pc, f)?, k)
                    }
                })
            })
            .collect()
    }
}

/// The stubs' filter for stub code at `layout`.
pub fn stub_filter(layout: &StubLayout) -> Result<Vec<sock_filter>, BpfError> {
    compile(layout, RULES)
}

fn compile(layout: &StubLayout, rules: &[StubRule]) -> Result<Vec<sock_filter>, BpfError> {
    let mut b = Bpf::default();
    let kill = b.label();
    let allow = b.label();
    let trap = b.label();
    b.load(ARCH);
    b.jeq(AUDIT_ARCH_X86_64, Target::Next, Target::To(kill));
    b.load(NR);
    b.jset(X32_SYSCALL_BIT, Target::To(kill), Target::Next);

    let mut sites: Vec<(StubSite, Label)> = Vec::new();
    for r in rules {
        if !sites.iter().any(|(s, _)| *s == r.site) {
            sites.push((r.site, b.label()));
        }
    }
    let ip = |s: StubSite| s.ip(layout);
    b.load(IP);
    for &(site, l) in &sites {
        b.jeq(ip(site) as u32, Target::To(l), Target::Next);
    }
    b.jump(kill);

    for &(site, l) in &sites {
        b.bind(l)?;
        b.load(IP + 4);
        b.jeq((ip(site) >> 32) as u32, Target::Next, Target::To(kill));
        let here: Vec<(&StubRule, Label)> = rules
            .iter()
            .filter(|r| r.site == site)
            .map(|r| (r, b.label()))
            .collect();
        b.load(NR);
        for &(r, rl) in &here {
            b.jeq(r.sysno.id() as u32, Target::To(rl), Target::Next);
        }
        b.jump(kill);
        for (r, rl) in here {
            b.bind(rl)?;
            for &(i, _, check) in r.args {
                let off = ARGS + 8 * i as u32;
                match check {
                    ArgCheck::Equals(v) => b.expect_eq64(off, v, kill),
                    ArgCheck::NoneOf(m) => b.expect_none64(off, m, kill),
                    ArgCheck::OneOf(vs) => {
                        let ok = b.label();
                        for &v in vs {
                            let next = b.label();
                            b.expect_eq64(off, v, next);
                            b.jump(ok);
                            b.bind(next)?;
                        }
                        b.jump(kill);
                        b.bind(ok)?;
                    }
                }
            }
            b.jump(match r.verdict {
                Verdict::Allow => allow,
                Verdict::Trap => trap,
            });
        }
    }
    b.bind(kill)?;
    b.ret(SECCOMP_RET_KILL_PROCESS);
    b.bind(allow)?;
    b.ret(SECCOMP_RET_ALLOW);
    b.bind(trap)?;
    b.ret(SECCOMP_RET_TRAP);
    b.finish()
}

#[cfg(test)]
mod tests;
