//! System call dispatch: one table, indexed by syscall number, that records
//! each entry's handler, support level and argument formats (for strace).
//! Handlers live one file per family.

mod absent;
mod clone;
pub use clone::VforkDone;
mod cred;
mod epoll;
mod eventfd;
mod fhandle;
mod fs;
mod fsattr;
mod futex;
pub use futex::{exit_robust_list, futex_wake, Futexes};
mod info;
mod inotify;
mod locks;
mod mm;
mod mount;
pub use mount::new_fs;
mod pidfd;
mod poll;
mod process;
mod sched;
mod session;
mod signal;
mod signalfd;
mod splice;
pub mod strace;
mod time;
mod timerfd;
mod timers;
mod usage;
mod wait;

use std::sync::LazyLock;

use veil_abi::{Errno, SysResult, Sysno};

use crate::task::Task;
use strace::{Arg, Ret};

/// The raw arguments of one system call.
#[derive(Clone, Copy, Debug)]
pub struct Args(pub [u64; 6]);

impl Args {
    pub fn u64(&self, i: usize) -> u64 {
        self.0[i]
    }

    pub fn i32(&self, i: usize) -> i32 {
        self.0[i] as i32
    }

    pub fn u32(&self, i: usize) -> u32 {
        self.0[i] as u32
    }

    pub fn usize(&self, i: usize) -> usize {
        self.0[i] as usize
    }

    pub fn i64(&self, i: usize) -> i64 {
        self.0[i] as i64
    }
}

pub type Handler = fn(&mut Task, &Args) -> SysResult;

/// How completely veil implements a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    Full,
    /// Implemented, with the limits the note describes.
    Partial(&'static str),
    /// Fails with the given errno, as Linux does when it lacks the feature.
    Unimplemented(Errno, &'static str),
}

#[derive(Clone, Copy)]
pub struct Entry {
    pub sysno: Sysno,
    pub support: Support,
    handler: Option<Handler>,
    pub args: &'static [Arg],
    pub ret: Ret,
}

pub struct Table {
    entries: Vec<Option<Entry>>,
}

impl Table {
    fn set(
        &mut self,
        sysno: Sysno,
        support: Support,
        handler: Option<Handler>,
        args: &'static [Arg],
        ret: Ret,
    ) {
        let i = sysno.id() as usize;
        debug_assert!(
            self.entries[i].is_none(),
            "{} registered twice",
            sysno.name()
        );
        self.entries[i] = Some(Entry {
            sysno,
            support,
            handler,
            args,
            ret,
        });
    }

    pub(crate) fn full(&mut self, sysno: Sysno, handler: Handler, args: &'static [Arg]) {
        self.set(sysno, Support::Full, Some(handler), args, Ret::Int);
    }

    pub(crate) fn full_hex(&mut self, sysno: Sysno, handler: Handler, args: &'static [Arg]) {
        self.set(sysno, Support::Full, Some(handler), args, Ret::Hex);
    }

    pub(crate) fn partial(
        &mut self,
        sysno: Sysno,
        handler: Handler,
        args: &'static [Arg],
        note: &'static str,
    ) {
        self.set(sysno, Support::Partial(note), Some(handler), args, Ret::Int);
    }

    pub(crate) fn unimplemented(
        &mut self,
        sysno: Sysno,
        errno: Errno,
        args: &'static [Arg],
        note: &'static str,
    ) {
        self.set(
            sysno,
            Support::Unimplemented(errno, note),
            None,
            args,
            Ret::Int,
        );
    }

    /// An unimplemented call whose handler first makes the checks Linux
    /// makes before reaching the missing feature (capabilities, arguments),
    /// then fails with `errno` and logs once.
    pub(crate) fn unimplemented_checked(
        &mut self,
        sysno: Sysno,
        errno: Errno,
        handler: Handler,
        args: &'static [Arg],
        note: &'static str,
    ) {
        self.set(
            sysno,
            Support::Unimplemented(errno, note),
            Some(handler),
            args,
            Ret::Int,
        );
    }

    pub fn get(&self, nr: u64) -> Option<&Entry> {
        self.entries.get(usize::try_from(nr).ok()?)?.as_ref()
    }

    /// Every syscall number of x86-64 with its entry, registered or not.
    pub fn all(&self) -> impl Iterator<Item = (Sysno, Option<&Entry>)> {
        (0..self.entries.len()).filter_map(|i| {
            let sysno = Sysno::new(i)?;
            Some((sysno, self.entries[i].as_ref()))
        })
    }
}

pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut t = Table {
        entries: vec![None; Sysno::last().id() as usize + 1],
    };
    absent::register(&mut t);
    clone::register(&mut t);
    cred::register(&mut t);
    epoll::register(&mut t);
    eventfd::register(&mut t);
    fhandle::register(&mut t);
    fs::register(&mut t);
    splice::register(&mut t);
    inotify::register(&mut t);
    fsattr::register(&mut t);
    futex::register(&mut t);
    info::register(&mut t);
    locks::register(&mut t);
    mm::register(&mut t);
    pidfd::register(&mut t);
    mount::register(&mut t);
    poll::register(&mut t);
    process::register(&mut t);
    session::register(&mut t);
    signal::register(&mut t);
    sched::register(&mut t);
    signalfd::register(&mut t);
    time::register(&mut t);
    timerfd::register(&mut t);
    timers::register(&mut t);
    usage::register(&mut t);
    wait::register(&mut t);
    t
});

/// Loads the init task's program (the first exec, from the sentry itself).
pub fn exec_init(
    t: &mut Task,
    path: &[u8],
    argv: Vec<Vec<u8>>,
    envp: &[Vec<u8>],
) -> Result<(), Errno> {
    match process::exec(t, path, argv, envp) {
        Err(Errno::EJUSTRETURN) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Serves the system call the task just made, leaving the result in `rax`.
pub fn dispatch(t: &mut Task) {
    // `int 0x80` reaches us as well, with i386 syscall numbers that would be
    // misread as x86-64 ones; veil serves 64-bit code only.
    let mut insn = [0u8; 2];
    if t.mm.copy_in(t.regs.rip.wrapping_sub(2), &mut insn).is_ok() && insn == [0xcd, 0x80] {
        t.kernel.log_once("32-bit system calls (int 0x80)");
        t.regs.rax = Errno::ENOSYS.as_return();
        return;
    }
    let nr = t.regs.orig_rax;
    let args = Args(t.regs.syscall_args());
    let entry = TABLE.get(nr).copied();
    let trace = t
        .kernel
        .strace
        .then(|| strace::Trace::enter(t, nr, entry.as_ref(), &args));
    let result = match entry {
        Some(Entry {
            handler: Some(h), ..
        }) => h(t, &args),
        Some(Entry {
            support: Support::Unimplemented(errno, _),
            sysno,
            ..
        }) => {
            t.kernel.log_once(sysno.name());
            Err(errno)
        }
        _ => {
            let name = Sysno::new(nr as usize)
                .map_or_else(|| format!("syscall {nr}"), |s| s.name().to_string());
            t.kernel.log_once(&name);
            Err(Errno::ENOSYS)
        }
    };
    match result {
        Err(Errno::EJUSTRETURN) => {}
        Ok(v) => t.regs.rax = v,
        // Interrupted by a signal: signal delivery decides between a
        // restart and EINTR (see `Task::deliver_pending`).
        Err(e) if e.raw() >= 512 => {
            t.restart = Some((nr, e));
            t.regs.rax = Errno::EINTR.as_return();
        }
        Err(e) => t.regs.rax = e.as_return(),
    }
    if let Some(trace) = trace {
        trace.exit(t, &result);
    }
}

/// The compatibility table of docs/compatibility.md, generated from `TABLE`.
pub fn compatibility_markdown() -> String {
    use std::fmt::Write;
    let mut full = 0;
    let mut partial = 0;
    let mut rows = String::new();
    for (sysno, entry) in TABLE.all() {
        let (level, note) = match entry.map(|e| e.support) {
            Some(Support::Full) => {
                full += 1;
                ("full", String::new())
            }
            Some(Support::Partial(note)) => {
                partial += 1;
                ("partial", note.to_string())
            }
            Some(Support::Unimplemented(errno, note)) => {
                ("unimplemented", format!("{errno}: {note}"))
            }
            None => ("unimplemented", "ENOSYS".to_string()),
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {level} | {note} |",
            sysno.id(),
            sysno.name()
        );
    }
    let total = TABLE.all().count();
    format!(
        "# System call compatibility\n\n\
         Generated by `veil debug syscalls` from the sentry's dispatch table; \
         a test keeps this file in sync.\n\n\
         x86-64: {full} full, {partial} partial, {} unimplemented of {total}. \
         Unimplemented calls fail with the errno shown and are logged once by name.\n\n\
         | nr | syscall | support | notes |\n|---:|---|---|---|\n{rows}",
        total - full - partial
    )
}
