//! Seccomp allowlists as data: built into BPF with `seccompiler`, printed by
//! `veil debug host-syscalls`, and published in docs/security.md.

use std::collections::BTreeMap;
use std::fmt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use syscalls::Sysno;

use crate::Error;

/// A comparison of one system call argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq(u64),
    /// `arg & mask == value`.
    Masked {
        mask: u64,
        value: u64,
    },
    Le(u64),
}

/// A condition on the low 32 bits (`int` arguments) or all 64 bits of an
/// argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub arg: u8,
    pub wide: bool,
    pub cmp: Cmp,
}

impl Cond {
    pub const fn eq(arg: u8, value: u64) -> Cond {
        Cond {
            arg,
            wide: false,
            cmp: Cmp::Eq(value),
        }
    }

    pub const fn eq64(arg: u8, value: u64) -> Cond {
        Cond {
            arg,
            wide: true,
            cmp: Cmp::Eq(value),
        }
    }

    /// No bit of `mask` set.
    pub const fn clear(arg: u8, mask: u64) -> Cond {
        Cond {
            arg,
            wide: false,
            cmp: Cmp::Masked { mask, value: 0 },
        }
    }

    /// Every bit of `mask` set.
    pub const fn set(arg: u8, mask: u64) -> Cond {
        Cond {
            arg,
            wide: false,
            cmp: Cmp::Masked { mask, value: mask },
        }
    }

    pub const fn le(arg: u8, value: u64) -> Cond {
        Cond {
            arg,
            wide: false,
            cmp: Cmp::Le(value),
        }
    }

    fn compile(&self) -> Result<SeccompCondition, Error> {
        let len = match self.wide {
            true => SeccompCmpArgLen::Qword,
            false => SeccompCmpArgLen::Dword,
        };
        let (op, value) = match self.cmp {
            Cmp::Eq(v) => (SeccompCmpOp::Eq, v),
            Cmp::Masked { mask, value } => (SeccompCmpOp::MaskedEq(mask), value),
            Cmp::Le(v) => (SeccompCmpOp::Le, v),
        };
        Ok(SeccompCondition::new(self.arg, len, op, value)?)
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.arg;
        match self.cmp {
            Cmp::Eq(v) => write!(f, "arg{a} == {v:#x}"),
            Cmp::Masked { mask, value } => write!(f, "arg{a} & {mask:#x} == {value:#x}"),
            Cmp::Le(v) => write!(f, "arg{a} <= {v:#x}"),
        }
    }
}

/// An allowed system call: with any arguments if `rules` is empty, else
/// when every condition of at least one rule holds.
#[derive(Clone, Debug)]
pub struct Allowed {
    pub sysno: Sysno,
    pub rules: Vec<Vec<Cond>>,
}

impl Allowed {
    pub fn any(sysno: Sysno) -> Allowed {
        Allowed {
            sysno,
            rules: Vec::new(),
        }
    }

    /// Allowed when all of `conds` hold; call again for alternatives.
    pub fn when(sysno: Sysno, conds: &[Cond]) -> Allowed {
        Allowed {
            sysno,
            rules: vec![conds.to_vec()],
        }
    }

    pub fn or(mut self, conds: &[Cond]) -> Allowed {
        self.rules.push(conds.to_vec());
        self
    }
}

/// A whole policy: what one process may call, and what it is told ENOSYS
/// for instead (so that libc falls back, as glibc does from clone3 to clone,
/// whose flags a filter can see).
#[derive(Clone, Debug)]
pub struct Policy {
    pub process: &'static str,
    pub allowed: Vec<Allowed>,
    pub enosys: Vec<Sysno>,
}

/// What a call outside the allowlist gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Kill the whole process (SIGSYS, as a core-dumping signal).
    Enforce,
    /// Allow it, but have the kernel log it (audit type 1326): for finding
    /// what a new code path needs, never for production.
    Log,
}

impl Policy {
    /// The BPF programs that implement this policy, in installation order.
    pub fn compile(&self, mode: Mode) -> Result<Vec<BpfProgram>, Error> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for a in self.allowed.iter().chain(
            // Allowed here, answered by the ENOSYS program: the strictest
            // result of stacked filters wins.
            self.enosys
                .iter()
                .map(|&s| Allowed::any(s))
                .collect::<Vec<_>>()
                .iter(),
        ) {
            let entry = rules.entry(a.sysno.id().into()).or_default();
            for rule in &a.rules {
                let conds = rule.iter().map(Cond::compile).collect::<Result<_, _>>()?;
                entry.push(SeccompRule::new(conds)?);
            }
        }
        let mismatch = match mode {
            Mode::Enforce => SeccompAction::KillProcess,
            Mode::Log => SeccompAction::Log,
        };
        let allow = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch())?;
        let mut programs = vec![BpfProgram::try_from(allow)?];
        if !self.enosys.is_empty() {
            let enosys = self
                .enosys
                .iter()
                .map(|s| (i64::from(s.id()), Vec::new()))
                .collect();
            let filter = SeccompFilter::new(
                enosys,
                SeccompAction::Allow,
                SeccompAction::Errno(nix::libc::ENOSYS as u32),
                arch(),
            )?;
            programs.push(BpfProgram::try_from(filter)?);
        }
        Ok(programs)
    }

    /// Installs the policy on every thread of the calling process (TSYNC),
    /// setting no_new_privs first.
    pub fn install(&self, mode: Mode) -> Result<(), Error> {
        for program in self.compile(mode)? {
            seccompiler::apply_filter_all_threads(&program)?;
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} system calls allowed, everything else kills the process",
            self.process,
            self.allowed.len()
        )?;
        for a in &self.allowed {
            write!(f, "  {}", a.sysno.name())?;
            for (i, rule) in a.rules.iter().enumerate() {
                let conds: Vec<String> = rule.iter().map(ToString::to_string).collect();
                let sep = if i == 0 { ": " } else { " | " };
                write!(f, "{sep}{}", conds.join(" && "))?;
            }
            writeln!(f)?;
        }
        for s in &self.enosys {
            writeln!(f, "  {}: fails with ENOSYS", s.name())?;
        }
        Ok(())
    }
}

/// Keeps glibc from opening files behind our back once a filter forbids
/// it; call before the process starts any thread. glibc's malloc reads
/// /proc/sys/vm/overcommit_memory the first time it shrinks the heap of a
/// thread's arena; with only the main arena (brk-based, with per-thread
/// caches in front) it never does.
pub fn prepare_libc() {
    // SAFETY: mallopt only sets a malloc tunable; no thread is running.
    unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1) };
}

fn arch() -> TargetArch {
    TargetArch::x86_64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_rules() {
        let p = Policy {
            process: "test",
            allowed: vec![
                Allowed::any(Sysno::read),
                Allowed::when(Sysno::mmap, &[Cond::clear(2, 4)]).or(&[Cond::eq(4, 3)]),
            ],
            enosys: vec![Sysno::clone3],
        };
        let text = p.to_string();
        assert!(text.starts_with("test: 2 system calls allowed"), "{text}");
        assert!(text.contains("  read\n"), "{text}");
        assert!(
            text.contains("  mmap: arg2 & 0x4 == 0x0 | arg4 == 0x3\n"),
            "{text}"
        );
        assert!(text.contains("  clone3: fails with ENOSYS\n"), "{text}");
        assert_eq!(p.compile(Mode::Enforce).map(|v| v.len()).ok(), Some(2));
    }
}
