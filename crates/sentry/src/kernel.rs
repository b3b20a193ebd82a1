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
    /// Print every application syscall (`veil --strace`).
    pub strace: bool,
    pub boot_time: Instant,
    next_tid: AtomicI32,
    /// Unsupported syscalls (and other features) already logged once.
    logged: Mutex<HashSet<String>>,
    /// Every process, zombies included, by PID.
    processes: Mutex<HashMap<i32, Arc<ThreadGroup>>>,
    /// Woken whenever a process exits, for waiting parents.
    pub child_events: WaitQueue,
    pub futexes: crate::syscalls::Futexes,
    /// Running tasks by TID, for signals sent to them.
    tasks: Mutex<HashMap<i32, Arc<TaskShared>>>,
}

impl Kernel {
    pub fn new(
        platform: Arc<dyn Platform>,
        memfile: Arc<MemoryFile>,
        vfs: Arc<Vfs>,
        strace: bool,
    ) -> Kernel {
        Kernel {
            platform,
            memfd_fs: MemFs::new(memfs::DEFAULT_SIZE_LIMIT, memfile.clone()),
            memfile,
            vfs,
            hostname: b"veil".to_vec(),
            strace,
            boot_time: Instant::now(),
            next_tid: AtomicI32::new(1),
            logged: Mutex::new(HashSet::new()),
            processes: Mutex::new(HashMap::new()),
            child_events: WaitQueue::default(),
            tasks: Mutex::new(HashMap::new()),
            futexes: Default::default(),
        }
    }

    /// Allocates a thread ID in the sandbox's PID namespace; init gets 1.
    pub fn alloc_tid(&self) -> i32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
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
/// SIGCHLD, whose disposition decides whether zombies are reaped at once.
const SIGCHLD: usize = 17;

impl Kernel {
    pub fn processes(&self) -> MutexGuard<'_, HashMap<i32, Arc<ThreadGroup>>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn task(&self, tid: i32) -> Option<Arc<TaskShared>> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tid)
            .cloned()
    }

    /// Records a process's exit: it becomes a zombie for its parent (or is
    /// reaped at once if the parent ignores SIGCHLD), and its children move
    /// to init.
    pub fn exit_process(&self, tg: &ThreadGroup, status: ExitStatus) {
        let mut procs = self.processes();
        *tg.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        for child in procs.values() {
            if child.parent_pid() == tg.pid {
                child
                    .ppid
                    .store(INIT_PID, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let exit_signal = tg.exit_signal.load(std::sync::atomic::Ordering::Relaxed);
        let parent_ignores = exit_signal == SIGCHLD as i32
            && procs.get(&tg.parent_pid()).is_none_or(|parent| {
                let actions = parent.sigactions.lock().unwrap_or_else(|p| p.into_inner());
                actions[SIGCHLD - 1].handler == 1 || actions[SIGCHLD - 1].flags & 2 != 0
                // SIG_IGN, SA_NOCLDWAIT
            });
        if parent_ignores {
            procs.remove(&tg.pid);
        }
        let parent = tg.parent_pid();
        drop(procs);
        if exit_signal > 0 {
            if let Some(task) = self.task(parent) {
                task.send(SigInfo::child(exit_signal, tg.pid, status));
            }
        }
        self.child_events.notify();
    }
}
