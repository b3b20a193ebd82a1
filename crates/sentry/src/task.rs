//! Tasks: application threads, each run by one sentry thread that owns its
//! platform context.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use veil_abi::{Errno, KernelSigaction, Rlimit, StackT};
use veil_platform::{Context, Event, Registers};
use veil_vfs::{Creds, FdTable, FsContext};

use crate::kernel::Kernel;
use crate::mm::{BadAccess, MemoryManager};
use crate::syscalls;

/// Number of signals, as `_NSIG`.
pub const NSIG: usize = 64;
/// Number of resource limits (RLIM_NLIMITS).
pub const RLIM_NLIMITS: usize = 16;

/// How a task (and its thread group) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled { signo: i32, core: bool },
}

impl ExitStatus {
    /// The status a shell would report: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c & 0xff,
            ExitStatus::Signaled { signo, .. } => 128 + signo,
        }
    }
}

/// State shared by the threads of one process.
pub struct ThreadGroup {
    pub pid: i32,
    /// The parent's PID; orphans move to the sandbox's init.
    pub ppid: AtomicI32,
    /// Set when the process exits; it stays a zombie until its parent waits.
    pub exit: Mutex<Option<ExitStatus>>,
    /// The TIDs of its live threads.
    pub threads: Mutex<Vec<i32>>,
    /// Set by exit_group or a fatal signal: every thread leaves with it.
    pub group_exit: Mutex<Option<ExitStatus>>,
    /// ITIMER_REAL (alarm); not inherited across fork.
    pub real_timer: Arc<crate::timer::RealTimer>,
    /// The signal the parent gets when this process exits (clone's CSIGNAL).
    pub exit_signal: std::sync::atomic::AtomicI32,
    pub pgid: Mutex<i32>,
    pub sid: Mutex<i32>,
    pub rlimits: Mutex<[Rlimit; RLIM_NLIMITS]>,
    pub sigactions: Mutex<[KernelSigaction; NSIG]>,
    /// The executable's path inside the sandbox (/proc/self/exe).
    pub exe: Mutex<Vec<u8>>,
}

impl ThreadGroup {
    pub fn new(pid: i32, ppid: i32) -> ThreadGroup {
        ThreadGroup {
            pid,
            ppid: AtomicI32::new(ppid),
            exit: Mutex::new(None),
            threads: Mutex::new(vec![pid]),
            group_exit: Mutex::new(None),
            real_timer: Arc::default(),
            exit_signal: AtomicI32::new(17),
            pgid: Mutex::new(pid),
            sid: Mutex::new(pid),
            rlimits: Mutex::new(default_rlimits()),
            sigactions: Mutex::new([KernelSigaction::default(); NSIG]),
            exe: Mutex::new(Vec::new()),
        }
    }
}

impl ThreadGroup {
    /// A child of `parent` as fork creates it: same limits, dispositions,
    /// executable, process group and session.
    pub fn fork_from(parent: &ThreadGroup, pid: i32) -> ThreadGroup {
        fn copy<T: Copy>(m: &Mutex<T>) -> Mutex<T> {
            Mutex::new(*m.lock().unwrap_or_else(|p| p.into_inner()))
        }
        ThreadGroup {
            pid,
            ppid: AtomicI32::new(parent.pid),
            exit: Mutex::new(None),
            threads: Mutex::new(vec![pid]),
            group_exit: Mutex::new(None),
            real_timer: Arc::default(),
            exit_signal: AtomicI32::new(17),
            pgid: copy(&parent.pgid),
            sid: copy(&parent.sid),
            rlimits: copy(&parent.rlimits),
            sigactions: copy(&parent.sigactions),
            exe: Mutex::new(parent.exe.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    pub fn parent_pid(&self) -> i32 {
        self.ppid.load(Ordering::Relaxed)
    }
}

fn default_rlimits() -> [Rlimit; RLIM_NLIMITS] {
    const INF: u64 = u64::MAX;
    let lim = |cur, max| Rlimit {
        rlim_cur: cur,
        rlim_max: max,
    };
    let mut r = [lim(INF, INF); RLIM_NLIMITS];
    r[3] = lim(crate::mm::STACK_SIZE, INF); // RLIMIT_STACK
    r[4] = lim(0, INF); // RLIMIT_CORE
    r[6] = lim(63_672, 63_672); // RLIMIT_NPROC
    r[7] = lim(veil_vfs::DEFAULT_NOFILE, 1 << 20); // RLIMIT_NOFILE
    r[8] = lim(8 << 20, 8 << 20); // RLIMIT_MEMLOCK
    r[11] = lim(63_672, 63_672); // RLIMIT_SIGPENDING
    r[12] = lim(819_200, 819_200); // RLIMIT_MSGQUEUE
    r
}

pub struct Task {
    pub tid: i32,
    pub kernel: Arc<Kernel>,
    pub tg: Arc<ThreadGroup>,
    pub mm: Arc<MemoryManager>,
    pub fds: Arc<FdTable>,
    pub fs: Arc<Mutex<FsContext>>,
    pub creds: Creds,
    pub regs: Registers,
    ctx: Box<dyn Context>,
    pub signal_mask: u64,
    /// Pending signals and the means to wake this task.
    pub shared: Arc<crate::signal::TaskShared>,
    /// A syscall that returned ERESTART*: its number and code.
    pub restart: Option<(u64, Errno)>,
    /// The mask to restore once rt_sigsuspend's temporary mask has served.
    pub saved_mask: Option<u64>,
    pub altstack: StackT,
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
    pub comm: Vec<u8>,
    /// Set by exit, exit_group and fatal signals; ends the run loop.
    pub exit: Option<ExitStatus>,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kernel: Arc<Kernel>,
        tg: Arc<ThreadGroup>,
        tid: i32,
        mm: Arc<MemoryManager>,
        fds: Arc<FdTable>,
        fs: Arc<Mutex<FsContext>>,
        creds: Creds,
        regs: Registers,
    ) -> Task {
        let ctx = kernel.platform.new_context();
        Task {
            tid,
            kernel,
            tg,
            mm,
            fds,
            fs,
            creds,
            regs,
            ctx,
            signal_mask: 0,
            shared: Arc::new(crate::signal::TaskShared::default()),
            restart: None,
            saved_mask: None,
            altstack: StackT {
                ss_flags: 2, // SS_DISABLE
                ..StackT::default()
            },
            clear_child_tid: 0,
            robust_list: (0, 0),
            comm: Vec::new(),
            exit: None,
        }
    }

    /// Runs the task until it exits.
    /// Runs the task until it exits. Returns the process's exit status if
    /// this was its last thread.
    pub fn run(&mut self) -> Option<ExitStatus> {
        self.kernel.add_task(self.tid, self.shared.clone());
        self.shared.set_interrupter(self.mm.space().interrupter());
        let status = self.run_loop();
        self.shared.set_interrupter(None);
        self.kernel.remove_task(self.tid);
        self.leave_group(status)
    }

    fn run_loop(&mut self) -> ExitStatus {
        loop {
            if self.exit.is_none() {
                self.exit = *self.tg.group_exit.lock().unwrap_or_else(|p| p.into_inner());
            }
            if let Some(status) = self.exit {
                return status;
            }
            self.deliver_pending();
            if self.exit.is_some() {
                continue;
            }
            let event = self.ctx.switch(self.mm.space(), &mut self.regs);
            match event {
                Ok(Event::Syscall) => syscalls::dispatch(self),
                Ok(Event::Fault(f)) => self.handle_fault(f),
                Ok(Event::Signal(signo)) => {
                    tracing::debug!(
                        "task {}: host signal {signo} for the stub ignored",
                        self.tid
                    );
                }
                Err(e) => {
                    tracing::error!("task {}: platform failure: {e}", self.tid);
                    self.exit = Some(ExitStatus::Signaled {
                        signo: 9,
                        core: false,
                    });
                }
            }
        }
    }

    fn handle_fault(&mut self, f: veil_platform::FaultInfo) {
        const SIGBUS: i32 = 7;
        const SIGSEGV: i32 = 11;
        const BUS_ADRERR: i32 = 2;
        const SI_KERNEL: i32 = 0x80;
        let (mut signo, mut code) = (f.signo, f.code);
        if f.signo == SIGSEGV && f.code != SI_KERNEL {
            let access_error = f.code == 2; // SEGV_ACCERR
                                            // An instruction fetch faults at the instruction, or at the
                                            // start of the next page for one that crosses into it.
            let rip = self.regs.rip;
            let exec =
                f.addr == rip || (f.addr.is_multiple_of(4096) && f.addr > rip && f.addr - rip < 16);
            match self.mm.handle_fault(f.addr, access_error, exec) {
                Ok(()) => return,
                Err(BadAccess::Segv(c)) => code = c,
                Err(BadAccess::Bus) => (signo, code) = (SIGBUS, BUS_ADRERR),
            }
        }
        if self.kernel.strace {
            eprintln!(
                "[{:4}] --- signal {} (code {}, addr {:#x}) at rip {:#x} ---",
                self.tid, signo, code, f.addr, self.regs.rip
            );
        }
        self.force_signal(crate::signal::SigInfo::fault(signo, code, f.addr));
    }

    pub fn fp_state(&mut self) -> Result<veil_platform::FpState, Errno> {
        self.ctx.fp_state(self.mm.space()).map_err(|e| {
            tracing::error!("task {}: reading FP state: {e}", self.tid);
            Errno::EFAULT
        })
    }

    pub fn set_fp_state(&mut self, fp: &veil_platform::FpState) -> Result<(), Errno> {
        self.ctx.set_fp_state(self.mm.space(), fp).map_err(|e| {
            tracing::error!("task {}: writing FP state: {e}", self.tid);
            Errno::EFAULT
        })
    }

    /// Applies a signal's default action: terminate. For the signals whose
    /// default dumps core, the status says so when RLIMIT_CORE allows a
    /// dump, as Linux reports it (no core file is written).
    pub fn deliver_fatal(&mut self, signo: i32) {
        const RLIMIT_CORE: usize = 4;
        let core_allowed =
            self.tg.rlimits.lock().unwrap_or_else(|p| p.into_inner())[RLIMIT_CORE].rlim_cur > 0;
        let core = core_allowed && matches!(signo, 3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31);
        self.exit_group(ExitStatus::Signaled { signo, core });
    }

    /// Ends the whole thread group with `status`: the other threads are
    /// killed, and the first status set is the group's.
    pub fn exit_group(&mut self, status: ExitStatus) {
        self.exit = Some(status);
        let first = {
            let mut g = self.tg.group_exit.lock().unwrap_or_else(|p| p.into_inner());
            g.is_none().then(|| *g = Some(status)).is_some()
        };
        if first {
            let others: Vec<i32> = self
                .tg
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for tid in others.into_iter().filter(|&tid| tid != self.tid) {
                if let Some(task) = self.kernel.task(tid) {
                    task.send(crate::signal::SigInfo::user(
                        crate::signal::SIGKILL,
                        self.tg.pid,
                        0,
                    ));
                }
            }
        }
    }

    /// Takes the thread out of its group. Returns the process's exit status
    /// if it was the last thread; otherwise only this thread ends.
    fn leave_group(&mut self, status: ExitStatus) -> Option<ExitStatus> {
        if self.clear_child_tid != 0 {
            // CLONE_CHILD_CLEARTID: zero the TID and wake a joiner.
            if self.mm.write_obj(self.clear_child_tid, &0u32).is_ok() {
                crate::syscalls::futex_wake(self, self.clear_child_tid, 1);
            }
        }
        let last = {
            let mut threads = self.tg.threads.lock().unwrap_or_else(|p| p.into_inner());
            threads.retain(|&t| t != self.tid);
            threads.is_empty()
        };
        if !last {
            self.mm.space().exit_thread();
            return None;
        }
        let group = *self.tg.group_exit.lock().unwrap_or_else(|p| p.into_inner());
        Some(group.unwrap_or(status))
    }
}
