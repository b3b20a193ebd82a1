//! Tasks: application threads, each run by one sentry thread that owns its
//! platform context.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

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
pub const RLIMIT_FSIZE: usize = 1;
pub const RLIMIT_DATA: usize = 2;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_AS: usize = 9;
pub const RLIMIT_NICE: usize = 13;
pub const RLIMIT_RTPRIO: usize = 14;

/// Nanoseconds on a monotonic clock, never 0.
fn mono_ns() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_nanos() as u64 + 1
}

/// CPU time of one task, charged by its own sentry thread as gVisor does:
/// time in the platform's switch (application code) is user time, time in
/// the sentry serving system calls and faults is system time, and time
/// blocked in the sentry is neither.
#[derive(Default)]
pub struct CpuTime {
    user_ns: AtomicU64,
    sys_ns: AtomicU64,
    /// When the current stretch of system time began; 0 outside one.
    sys_since: AtomicU64,
    /// When the current stretch of application code began; 0 outside one.
    user_since: AtomicU64,
}

impl CpuTime {
    pub fn enter_sys(&self) {
        self.sys_since.store(mono_ns(), Ordering::Relaxed);
    }

    /// Ends a stretch of system time; returns the time it ended.
    pub fn leave_sys(&self) -> u64 {
        let now = mono_ns();
        let since = self.sys_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            self.sys_ns
                .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        }
        now
    }

    /// Starts a stretch of application code at `now`.
    fn enter_user(&self, now: u64) {
        self.user_since.store(now, Ordering::Relaxed);
    }

    /// Ends the stretch of application code.
    fn leave_user(&self) {
        let since = self.user_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            self.user_ns
                .fetch_add(mono_ns().saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// User and system time so far, the current stretches included.
    pub fn get(&self) -> CpuUsage {
        let running = |since: &AtomicU64| match since.load(Ordering::Relaxed) {
            0 => 0,
            t => mono_ns().saturating_sub(t),
        };
        CpuUsage {
            user_ns: self.user_ns.load(Ordering::Relaxed) + running(&self.user_since),
            sys_ns: self.sys_ns.load(Ordering::Relaxed) + running(&self.sys_since),
        }
    }
}

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub user_ns: u64,
    pub sys_ns: u64,
}

impl std::ops::AddAssign for CpuUsage {
    fn add_assign(&mut self, o: CpuUsage) {
        self.user_ns += o.user_ns;
        self.sys_ns += o.sys_ns;
    }
}

/// A task's scheduling attributes. The sentry does not schedule: they are
/// remembered and reported, as Linux would.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub policy: u32,
    pub reset_on_fork: bool,
    /// The real-time priority (SCHED_FIFO, SCHED_RR).
    pub rt_priority: u32,
    pub nice: i32,
    /// SCHED_DEADLINE's runtime, deadline and period.
    pub deadline: [u64; 3],
    /// The CPUs it may run on (bit n of byte n / 8); None for all.
    pub affinity: Option<Vec<u8>>,
}

impl SchedAttr {
    /// What a child inherits: all of it, unless SCHED_RESET_ON_FORK sends
    /// it back to SCHED_OTHER with a nice value of at least 0.
    pub fn for_child(&self) -> SchedAttr {
        let mut c = self.clone();
        if c.reset_on_fork {
            c.reset_on_fork = false;
            use linux_raw_sys::general::{SCHED_DEADLINE, SCHED_FIFO, SCHED_RR};
            if matches!(c.policy, SCHED_FIFO | SCHED_RR | SCHED_DEADLINE) {
                c.policy = 0;
                c.rt_priority = 0;
                c.deadline = [0; 3];
                c.nice = 0;
            }
            c.nice = c.nice.max(0);
        }
        c
    }
}

/// How a task (and its thread group) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled { signo: i32, core: bool },
}

impl ExitStatus {
    /// The status word wait(2) stores, as WIFEXITED and friends decode it.
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled { signo, core } => (signo & 0x7f) | if core { 0x80 } else { 0 },
        }
    }

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
    pub sigactions: SigActions,
    /// The executable's path inside the sandbox (/proc/self/exe).
    pub exe: Mutex<Vec<u8>>,
    /// The leader's comm, which /proc still shows once the leader exited.
    pub leader_comm: Mutex<Vec<u8>>,
    /// Signals sent to the process as a whole, and job-control state.
    pub signals: crate::sigsend::GroupSignals,
    /// Set by the first execve: the parent may no longer move it to
    /// another process group.
    pub did_exec: AtomicBool,
    /// PR_SET_CHILD_SUBREAPER: orphaned descendants come here, not to init.
    pub subreaper: AtomicBool,
    /// PR_SET_PDEATHSIG: the signal this process gets when its parent dies.
    pub pdeath_signal: AtomicI32,
    /// The thread that is exec'ing while its siblings are killed (0: none).
    pub execing: AtomicI32,
    /// timer_create's timers; not inherited, deleted by exec and exit.
    pub posix_timers: crate::posix_timer::PosixTimers,
    /// The real UID of the last thread to exit, for the parent's reports.
    pub exit_uid: std::sync::atomic::AtomicU32,
    /// ITIMER_VIRTUAL and ITIMER_PROF; not inherited, kept across exec.
    pub cpu_timers: [Arc<crate::timer::CpuTimer>; 2],
    /// CPU time of the threads that have exited.
    pub dead_cpu: Mutex<CpuUsage>,
    /// CPU time of the children waited for (and of their waited-for
    /// descendants), as RUSAGE_CHILDREN reports it.
    pub children_cpu: Mutex<CpuUsage>,
    /// The most memory the process has had populated, in bytes, and the
    /// most any waited-for child (or its descendants) had.
    pub maxrss: AtomicU64,
    pub children_maxrss: AtomicU64,
    /// When the process was created (/proc/PID/stat's starttime).
    pub start: Instant,
    /// /proc/PID/oom_score_adj, and the least value an unprivileged
    /// writer may set (Linux's oom_score_adj_min); both inherited.
    pub oom_score_adj: AtomicI32,
    pub oom_score_adj_min: AtomicI32,
    /// The pod container it belongs to (0: the sandbox's own); inherited.
    pub container: u32,
    /// A pod container's init, which is a PID namespace's init as the
    /// sandbox's is (see `Kernel::init_protected`).
    pub container_init: bool,
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
            sigactions: SigActions::default(),
            exe: Mutex::new(Vec::new()),
            leader_comm: Mutex::new(Vec::new()),
            signals: Default::default(),
            did_exec: AtomicBool::new(false),
            subreaper: AtomicBool::new(false),
            pdeath_signal: AtomicI32::new(0),
            execing: AtomicI32::new(0),
            posix_timers: Default::default(),
            exit_uid: Default::default(),
            cpu_timers: Default::default(),
            dead_cpu: Mutex::default(),
            children_cpu: Mutex::default(),
            maxrss: AtomicU64::new(0),
            children_maxrss: AtomicU64::new(0),
            start: Instant::now(),
            oom_score_adj: AtomicI32::new(0),
            oom_score_adj_min: AtomicI32::new(0),
            container: 0,
            container_init: false,
        }
    }
}

impl ThreadGroup {
    /// A child of `parent` as fork creates it: same limits, dispositions
    /// (shared with CLONE_SIGHAND), executable, process group and session.
    pub fn fork_from(
        parent: &ThreadGroup,
        pid: i32,
        ppid: i32,
        share_sigactions: bool,
    ) -> ThreadGroup {
        fn copy<T: Copy>(m: &Mutex<T>) -> Mutex<T> {
            Mutex::new(*m.lock().unwrap_or_else(|p| p.into_inner()))
        }
        ThreadGroup {
            pgid: copy(&parent.pgid),
            sid: copy(&parent.sid),
            rlimits: copy(&parent.rlimits),
            sigactions: if share_sigactions {
                parent.sigactions.share()
            } else {
                parent.sigactions.copy()
            },
            exe: Mutex::new(parent.exe.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            oom_score_adj: AtomicI32::new(parent.oom_score_adj.load(Ordering::Relaxed)),
            oom_score_adj_min: AtomicI32::new(parent.oom_score_adj_min.load(Ordering::Relaxed)),
            container: parent.container,
            ..ThreadGroup::new(pid, ppid)
        }
    }

    pub fn parent_pid(&self) -> i32 {
        self.ppid.load(Ordering::Relaxed)
    }

    /// Records the current memory use for the high-water mark; returns it.
    pub fn note_rss(&self, mm: &MemoryManager) -> u64 {
        let now = mm.populated_bytes();
        self.maxrss.fetch_max(now, Ordering::Relaxed).max(now)
    }

    pub fn rlimit(&self, r: usize) -> Rlimit {
        self.rlimits.lock().unwrap_or_else(|p| p.into_inner())[r]
    }

    /// The CPU time of the whole process: its live threads (looked up in
    /// `kernel`) and the exited ones.
    pub fn cpu(&self, kernel: &Kernel) -> CpuUsage {
        let dead = self.dead_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = *dead;
        let threads = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for tid in threads {
            if let Some(t) = kernel.task(tid) {
                total += t.cpu.get();
            }
        }
        total
    }

    /// The real UID recorded when the process exited.
    pub fn uid(&self) -> u32 {
        self.exit_uid.load(Ordering::Relaxed)
    }

    pub fn pgid(&self) -> i32 {
        *self.pgid.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn sid(&self) -> i32 {
        *self.sid.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type ActionTable = [KernelSigaction; NSIG];

/// A process's signal dispositions, which processes created with
/// CLONE_SIGHAND share until one of them execs.
pub struct SigActions(Mutex<Arc<Mutex<ActionTable>>>);

impl Default for SigActions {
    fn default() -> SigActions {
        SigActions::new([KernelSigaction::default(); NSIG])
    }
}

impl SigActions {
    fn new(table: ActionTable) -> SigActions {
        SigActions(Mutex::new(Arc::new(Mutex::new(table))))
    }

    fn table(&self) -> Arc<Mutex<ActionTable>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the table, under its lock.
    pub fn update<R>(&self, f: impl FnOnce(&mut ActionTable) -> R) -> R {
        let table = self.table();
        let mut guard = table.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The action of signal `sig` (1..=64).
    pub fn get(&self, sig: i32) -> KernelSigaction {
        self.update(|t| t[sig as usize - 1])
    }

    fn copy(&self) -> SigActions {
        SigActions::new(self.update(|t| *t))
    }

    fn share(&self) -> SigActions {
        SigActions(Mutex::new(self.table()))
    }

    /// What exec does: a private table in which handled signals revert to
    /// the default (ignored ones stay ignored).
    pub fn reset_for_exec(&self) {
        let mut table = self.update(|t| *t);
        reset_handled(&mut table);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(Mutex::new(table));
    }

    /// clone3's CLONE_CLEAR_SIGHAND.
    pub fn reset_handled(&self) {
        self.update(reset_handled);
    }
}

fn reset_handled(table: &mut ActionTable) {
    for act in table.iter_mut() {
        if act.handler > 1 {
            *act = KernelSigaction::default();
        }
    }
}

fn default_rlimits() -> [Rlimit; RLIM_NLIMITS] {
    const INF: u64 = u64::MAX;
    let lim = |cur, max| Rlimit {
        rlim_cur: cur,
        rlim_max: max,
    };
    let mut r = [lim(INF, INF); RLIM_NLIMITS];
    r[RLIMIT_STACK] = lim(crate::mm::STACK_SIZE, INF);
    r[RLIMIT_CORE] = lim(0, INF);
    r[6] = lim(63_672, 63_672); // RLIMIT_NPROC
    r[RLIMIT_NOFILE] = lim(veil_vfs::DEFAULT_NOFILE, 1 << 20);
    r[8] = lim(8 << 20, 8 << 20); // RLIMIT_MEMLOCK
    r[11] = lim(63_672, 63_672); // RLIMIT_SIGPENDING
    r[12] = lim(819_200, 819_200); // RLIMIT_MSGQUEUE
    r[RLIMIT_NICE] = lim(0, 0);
    r[RLIMIT_RTPRIO] = lim(0, 0);
    r
}

/// What restart_syscall needs to continue a call a signal interrupted.
#[derive(Clone, Copy, Debug)]
pub enum RestartBlock {
    /// A relative sleep: its end, and where to report the time left.
    Sleep {
        deadline: std::time::Instant,
        rem: u64,
    },
}

pub struct Task {
    pub tid: i32,
    pub kernel: Arc<Kernel>,
    pub tg: Arc<ThreadGroup>,
    pub mm: Arc<MemoryManager>,
    pub fds: Arc<FdTable>,
    pub fs: Arc<Mutex<FsContext>>,
    /// Per thread, as in Linux; change it with `set_creds`.
    pub creds: Arc<Creds>,
    /// PR_SET_NO_NEW_PRIVS, inherited by children and kept across exec.
    pub no_new_privs: bool,
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
    /// The last group stop this thread parked for.
    pub stop_epoch: u64,
    /// How restart_syscall continues an interrupted call.
    pub restart_block: Option<RestartBlock>,
    /// The parent of a CLONE_VFORK child, waiting for its exec or exit.
    pub vfork_done: Option<Arc<crate::syscalls::VforkDone>>,
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
        creds: Arc<Creds>,
        regs: Registers,
    ) -> Task {
        let ctx = kernel.platform.new_context();
        fds.claim_lock_owner(tg.pid);
        let shared = Arc::new(crate::signal::TaskShared::new(tg.pid, creds.clone()));
        let task = Task {
            tid,
            kernel,
            tg,
            mm,
            fds,
            fs,
            creds,
            no_new_privs: false,
            regs,
            ctx,
            signal_mask: 0,
            shared,
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
            stop_epoch: 0,
            restart_block: None,
            vfork_done: None,
        };
        task.publish_view();
        task
    }

    /// The task's name as /proc last set it or the task itself did.
    pub fn current_comm(&self) -> Vec<u8> {
        let view = self.shared.view.lock().unwrap_or_else(|p| p.into_inner());
        view.as_ref()
            .map_or_else(|| self.comm.clone(), |v| v.comm.clone())
    }

    /// Publishes what /proc shows of the task, after it changed.
    pub fn publish_view(&self) {
        if self.tid == self.tg.pid {
            *self
                .tg
                .leader_comm
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = self.comm.clone();
        }
        *self.shared.view.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(crate::procfs::TaskView {
                mm: self.mm.clone(),
                fds: self.fds.clone(),
                fs: self.fs.clone(),
                comm: self.comm.clone(),
            });
    }

    /// Replaces the task's credentials.
    pub fn set_creds(&mut self, creds: Creds) {
        self.creds = Arc::new(creds);
        self.shared.set_creds(self.creds.clone());
    }

    /// The scheduling attributes a child of this task starts with.
    pub fn sched_for_child(&self) -> SchedAttr {
        self.shared
            .sched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .for_child()
    }

    /// The RLIMIT_NOFILE soft limit: descriptors stay below it.
    pub fn nofile(&self) -> usize {
        usize::try_from(self.tg.rlimit(RLIMIT_NOFILE).rlim_cur).unwrap_or(usize::MAX)
    }

    /// Runs the task until it exits. Returns the process's exit status if
    /// this was its last thread.
    pub fn run(&mut self) -> Option<ExitStatus> {
        self.kernel.add_task(self.tid, self.shared.clone());
        self.shared.set_interrupter(self.mm.space().interrupter());
        crate::signal::set_current(Some(crate::signal::Current {
            task: self.shared.clone(),
            tg: self.tg.clone(),
        }));
        self.shared.cpu.enter_sys();
        let status = self.run_loop();
        self.shared.cpu.leave_sys();
        if let Some(v) = self.vfork_done.take() {
            v.release();
        }
        crate::signal::set_current(None);
        self.shared.set_interrupter(None);
        {
            // Under the lock `ThreadGroup::cpu` holds, so no reader counts
            // this thread twice or not at all.
            let mut dead = self.tg.dead_cpu.lock().unwrap_or_else(|p| p.into_inner());
            self.kernel.remove_task(self.tid);
            *dead += self.shared.cpu.get();
        }
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
            // Writing a signal frame may have needed a page too.
            if veil_memory::take_limit_hit() {
                self.oom_kill();
            }
            if self.exit.is_some() {
                continue;
            }
            self.publish_mask();
            let start = self.shared.cpu.leave_sys();
            self.shared.cpu.enter_user(start);
            let event = self.ctx.switch(self.mm.space(), &mut self.regs);
            self.shared.cpu.leave_user();
            self.shared.cpu.enter_sys();
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
            if veil_memory::take_limit_hit() {
                self.oom_kill();
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
            // Stack growth follows the current RLIMIT_STACK.
            self.mm
                .set_stack_limit(self.tg.rlimit(RLIMIT_STACK).rlim_cur);
            self.sync_vm_limits();
            let access_error = f.code == 2; // SEGV_ACCERR
                                            // An instruction fetch faults at the instruction, or at the
                                            // start of the next page for one that crosses into it.
            let rip = self.regs.rip;
            let exec =
                f.addr == rip || (f.addr.is_multiple_of(4096) && f.addr > rip && f.addr - rip < 16);
            match self.mm.handle_fault(f.addr, access_error, exec) {
                Ok(()) => return,
                Err(_) if veil_memory::take_limit_hit() => return self.oom_kill(),
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

    /// The sandbox's memory limit refused a page this task needed: its
    /// process is killed, as a memory cgroup's OOM killer would. This is
    /// the process that asked, not the largest: the victim's memory is
    /// back once its threads end, which no fault needs to wait for.
    fn oom_kill(&mut self) {
        let exiting = self
            .tg
            .group_exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !exiting {
            let comm = self
                .tg
                .leader_comm
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            tracing::warn!(
                "out of memory: killed process {} ({})",
                self.tg.pid,
                String::from_utf8_lossy(&comm)
            );
        }
        self.deliver_fatal(crate::signal::SIGKILL);
    }

    /// The process's RLIMIT_AS and RLIMIT_DATA, as its mappings obey them.
    pub fn vm_limits(&self) -> crate::mm::VmLimits {
        let (vm, data) = (self.tg.rlimit(RLIMIT_AS), self.tg.rlimit(RLIMIT_DATA));
        crate::mm::VmLimits {
            address_space: vm.rlim_cur,
            data: data.rlim_cur,
            data_max: data.rlim_max,
        }
    }

    /// Brings the address space's limits up to date before it changes
    /// (they are the process's, and setrlimit may have changed them).
    pub fn sync_vm_limits(&self) {
        self.mm.set_vm_limits(self.vm_limits());
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
        let execing = self.tg.execing.load(Ordering::Relaxed);
        if signo == crate::signal::SIGKILL && execing != 0 && execing != self.tid {
            // Killed by a sibling's exec: only this thread ends, silently.
            self.exit = Some(ExitStatus::Signaled { signo, core: false });
            return;
        }
        let core_allowed = self.tg.rlimit(RLIMIT_CORE).rlim_cur > 0;
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
        syscalls::exit_robust_list(self);
        if self.clear_child_tid != 0 {
            // CLONE_CHILD_CLEARTID: zero the TID and wake a joiner.
            if self.mm.write_obj(self.clear_child_tid, &0u32).is_ok() {
                crate::syscalls::futex_wake(self, self.clear_child_tid, 1);
            }
        }
        self.leave_stop();
        let last = {
            let mut threads = self.tg.threads.lock().unwrap_or_else(|p| p.into_inner());
            threads.retain(|&t| t != self.tid);
            threads.is_empty()
        };
        let execing = self.tg.execing.load(Ordering::Relaxed);
        if let Some(task) = (execing != 0).then(|| self.kernel.task(execing)).flatten() {
            task.waiter.wake();
        }
        // The stub thread goes unless its address space goes with it.
        if !last || Arc::strong_count(&self.mm) > 1 {
            self.mm.space().exit_thread();
        }
        if !last {
            return None;
        }
        self.tg.posix_timers.clear(&self.kernel);
        self.tg.note_rss(&self.mm);
        self.tg.exit_uid.store(self.creds.uid, Ordering::Relaxed);
        let group = *self.tg.group_exit.lock().unwrap_or_else(|p| p.into_inner());
        Some(group.unwrap_or(status))
    }
}
