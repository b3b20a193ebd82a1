//! Sandbox-wide state: the platform, the memory file, the filesystem tree,
//! the PID namespace and facts every task shares.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use veil_vfs::wait::WaitQueue;

use crate::signal::{SigInfo, TaskShared};
use std::time::Instant;

use veil_platform::Platform;
use veil_vfs::fs::memfs::{self, MemFs};
use veil_vfs::Vfs;

use crate::mm::MemoryFile;
use crate::task::{ExitStatus, ThreadGroup};

/// The kernel release the sandbox reports from uname(2).
pub const KERNEL_RELEASE: &str = "4.4.0";
/// The kernel version string the sandbox reports.
pub const KERNEL_VERSION: &str = "#1 SMP Sun Jan 10 15:06:54 PST 2016";

pub struct Kernel {
    pub platform: Arc<dyn Platform>,
    pub memfile: Arc<MemoryFile>,
    pub vfs: Arc<Vfs>,
    /// Where memfd_create's files live.
    pub memfd_fs: Arc<MemFs>,
    pub hostname: Vec<u8>,
    /// Init is a PID namespace's init (see `BootConfig::init_protected`).
    pub init_protected: bool,
    /// The user namespace's mappings (/proc/PID/uid_map and gid_map).
    pub ids: veil_gofer::IdMaps,
    /// Print every application syscall (`veil --strace`).
    pub strace: bool,
    /// The vDSO mapped into every process; None if it could not be made.
    pub vdso: Option<Arc<crate::vdso::Vdso>>,
    pub boot_time: Instant,
    next_tid: AtomicI32,
    /// Unsupported syscalls (and other features) already logged once.
    logged: Mutex<HashSet<String>>,
    /// Every process, zombies included, by PID.
    processes: Mutex<HashMap<i32, Arc<ThreadGroup>>>,
    /// Woken whenever a process exits, for waiting parents.
    pub child_events: Arc<WaitQueue>,
    pub futexes: crate::syscalls::Futexes,
    /// Serves every timer: ITIMER_REAL, timerfd.
    pub timers: Arc<crate::timer::TimerService>,
    /// Running tasks by TID, for signals sent to them.
    tasks: Mutex<HashMap<i32, Arc<TaskShared>>>,
    /// The terminal the sandbox was handed, with its session and
    /// foreground process group.
    pub terminal: crate::tty::Terminal,
    /// The CPUs the sandbox offers: those the host lets the sentry use
    /// (bit n of byte n / 8), in a mask as long as Linux's cpumask.
    pub cpus: Vec<u8>,
}

/// The CPUs this process may run on, as a byte mask of whole longs.
fn host_cpus() -> Vec<u8> {
    let set = rustix::process::sched_getaffinity(None).ok();
    let online = |cpu: usize| set.as_ref().is_none_or(|s| s.is_set(cpu));
    let n = match &set {
        Some(s) => (0..rustix::process::CpuSet::MAX_CPU)
            .rev()
            .find(|&c| s.is_set(c))
            .map_or(1, |c| c + 1),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut mask = vec![0u8; n.div_ceil(64) * 8];
    for cpu in (0..n).filter(|&c| online(c)) {
        mask[cpu / 8] |= 1 << (cpu % 8);
    }
    mask
}

impl Kernel {
    pub fn new(
        platform: Arc<dyn Platform>,
        memfile: Arc<MemoryFile>,
        vfs: Arc<Vfs>,
        strace: bool,
    ) -> Kernel {
        let vdso = crate::vdso::Vdso::new(memfile.clone())
            .inspect_err(|e| tracing::warn!("no vDSO: {e}"))
            .ok()
            .map(Arc::new);
        Kernel {
            platform,
            vdso,
            memfd_fs: MemFs::new(memfs::DEFAULT_SIZE_LIMIT, memfile.clone()),
            memfile,
            vfs,
            hostname: b"veil".to_vec(),
            init_protected: false,
            ids: veil_gofer::IdMaps::default(),
            strace,
            boot_time: Instant::now(),
            next_tid: AtomicI32::new(1),
            logged: Mutex::new(HashSet::new()),
            processes: Mutex::new(HashMap::new()),
            child_events: Arc::default(),
            tasks: Mutex::new(HashMap::new()),
            futexes: Default::default(),
            terminal: Default::default(),
            timers: Arc::default(),
            cpus: host_cpus(),
        }
    }

    /// Allocates a thread ID in the sandbox's PID namespace; init gets 1.
    pub fn alloc_tid(&self) -> i32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// How many threads and processes have been created.
    pub fn tids_allocated(&self) -> i32 {
        self.next_tid.load(Ordering::Relaxed) - 1
    }

    /// Logs `what` the first time it is seen.
    pub fn log_once(&self, what: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.insert(what.to_string()) {
            tracing::info!("unsupported: {what}");
        }
    }
}

/// The sandbox's init process, which inherits orphans.
pub const INIT_PID: i32 = 1;
use crate::signal::{SIGCHLD, SIGHUP};

impl Kernel {
    pub fn processes(&self) -> MutexGuard<'_, HashMap<i32, Arc<ThreadGroup>>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The process the thread `tid` belongs to.
    pub fn thread_group_of(&self, tid: i32) -> Option<Arc<ThreadGroup>> {
        let procs = self.processes();
        if let Some(tg) = procs.get(&tid) {
            return Some(tg.clone());
        }
        procs
            .values()
            .find(|tg| {
                tg.threads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&tid)
            })
            .cloned()
    }

    pub fn add_process(&self, tg: Arc<ThreadGroup>) {
        self.processes().insert(tg.pid, tg);
    }

    pub fn add_task(&self, tid: i32, shared: Arc<TaskShared>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tid, shared);
    }

    pub fn remove_task(&self, tid: i32) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tid);
    }

    /// The task with this TID, if it is running.
    /// Every running thread.
    pub fn all_tasks(&self) -> Vec<Arc<TaskShared>> {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.values().cloned().collect()
    }

    pub fn task(&self, tid: i32) -> Option<Arc<TaskShared>> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tid)
            .cloned()
    }

    /// Every running task.
    pub fn tasks(&self) -> Vec<(i32, Arc<TaskShared>)> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(&tid, t)| (tid, t.clone()))
            .collect()
    }

    /// Records a process's exit: it becomes a zombie for its parent (or is
    /// reaped at once if the parent ignores SIGCHLD), and its children move
    /// to the nearest subreaper among its ancestors, or to init.
    pub fn exit_process(&self, tg: &ThreadGroup, status: ExitStatus) {
        let mut procs = self.processes();
        *tg.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        let reaper = reaper_for(&procs, tg);
        let orphans: Vec<Arc<ThreadGroup>> = procs
            .values()
            .filter(|c| c.parent_pid() == tg.pid)
            .cloned()
            .collect();
        for orphan in &orphans {
            orphan.ppid.store(reaper, Ordering::Relaxed);
        }
        let exit_signal = tg.exit_signal.load(Ordering::Relaxed);
        let parent = procs.get(&tg.parent_pid()).cloned();
        if exit_signal == SIGCHLD && parent.as_ref().is_none_or(|p| ignores_children(p)) {
            procs.remove(&tg.pid);
        }
        // The groups this exit may leave orphaned: its own, if its parent
        // was its link to the session, and those of its children.
        let (pgid, sid) = (tg.pgid(), tg.sid());
        let mut groups: Vec<i32> = orphans
            .iter()
            .filter(|c| c.pgid() != pgid && c.sid() == sid)
            .map(|c| c.pgid())
            .collect();
        if parent
            .as_ref()
            .is_some_and(|p| p.pgid() != pgid && p.sid() == sid)
        {
            groups.push(pgid);
        }
        drop(procs);
        if let Some(parent) = parent.filter(|_| exit_signal > 0) {
            self.signal_process(
                &parent,
                SigInfo::child(exit_signal, tg.pid, tg.uid(), status),
            );
        }
        for orphan in &orphans {
            self.adopt(orphan, reaper);
        }
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            self.hang_up_if_orphaned(g);
        }
        self.child_events.notify();
    }

    /// What a child learns when its parent dies: its parent-death signal,
    /// and, if it already is a zombie, its new parent hears of it.
    fn adopt(&self, child: &Arc<ThreadGroup>, reaper: i32) {
        let pdeath = child.pdeath_signal.load(Ordering::Relaxed);
        if pdeath != 0 {
            self.signal_process(child, SigInfo::user(pdeath, 0, 0));
        }
        let Some(status) = *child.exit.lock().unwrap_or_else(|p| p.into_inner()) else {
            return;
        };
        let new_parent = self.processes().get(&reaper).cloned();
        let Some(new_parent) = new_parent else { return };
        let exit_signal = child.exit_signal.load(Ordering::Relaxed);
        if exit_signal == SIGCHLD && ignores_children(&new_parent) {
            self.processes().remove(&child.pid);
        } else if exit_signal > 0 {
            self.signal_process(
                &new_parent,
                SigInfo::child(exit_signal, child.pid, child.uid(), status),
            );
        }
    }

    /// A process group that has just become orphaned while some member is
    /// stopped gets SIGHUP and SIGCONT, so that it does not stay stopped
    /// with no shell to resume it.
    fn hang_up_if_orphaned(&self, pgid: i32) {
        if !self.pgrp_orphaned(pgid) {
            return;
        }
        let stopped = self
            .processes()
            .values()
            .any(|p| p.pgid() == pgid && p.signals.stopped());
        if stopped {
            self.signal_pgrp(pgid, SigInfo::user(SIGHUP, 0, 0));
            self.signal_pgrp(pgid, SigInfo::user(crate::signal::SIGCONT, 0, 0));
        }
    }
}

/// Whether a parent lets its children's exits go unreported: SIGCHLD
/// ignored, or SA_NOCLDWAIT.
fn ignores_children(parent: &ThreadGroup) -> bool {
    const SIG_IGN: u64 = 1;
    const SA_NOCLDWAIT: u64 = 2;
    let act = parent.sigactions.get(SIGCHLD);
    act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0
}

/// Where the children of exiting `tg` go: its nearest living ancestor that
/// is a child subreaper, or init.
fn reaper_for(procs: &HashMap<i32, Arc<ThreadGroup>>, tg: &ThreadGroup) -> i32 {
    let mut pid = tg.parent_pid();
    // Bounded: a parent chain cannot be longer than the process table.
    for _ in 0..procs.len() {
        let Some(p) = procs.get(&pid) else { break };
        let alive = p.exit.lock().unwrap_or_else(|e| e.into_inner()).is_none();
        if alive && p.subreaper.load(Ordering::Relaxed) {
            return p.pid;
        }
        if p.pid == INIT_PID {
            break;
        }
        pid = p.parent_pid();
    }
    INIT_PID
}
