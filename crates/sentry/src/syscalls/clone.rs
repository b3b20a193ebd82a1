//! Creating tasks: fork, vfork, clone and clone3. A thread joins its
//! creator's thread group and address space; a process gets a copy of the
//! address space, or shares it (CLONE_VM, as vfork and posix_spawn do).
//! Every task runs on a sentry thread of its own that owns its stub thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::wait::Waiter;

use super::strace::Arg::*;
use super::{Args, Table};
use crate::kernel::{Kernel, INIT_PID};
use crate::mm::MemoryManager;
use crate::signal::{bit, SIGKILL};
use crate::task::{Task, ThreadGroup};

const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_PTRACE: u64 = 0x2000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_DETACHED: u64 = 0x40_0000;
const CLONE_UNTRACED: u64 = 0x80_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const CLONE_IO: u64 = 0x8000_0000;
/// clone3 only: the child starts with every handled signal at SIG_DFL.
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// The namespace flags, and clone3's CLONE_INTO_CGROUP.
const CLONE_NAMESPACES: u64 = 0x7e02_0080 | 0x2_0000_0000;
const SUPPORTED: u64 = CSIGNAL
    | CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_PTRACE
    | CLONE_VFORK
    | CLONE_PARENT
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_UNTRACED
    | CLONE_CHILD_SETTID
    | CLONE_IO
    | CLONE_PIDFD
    | CLONE_CLEAR_SIGHAND;
const SIGCHLD: u64 = 17;
/// `struct clone_args` sizes: the first version, and the largest known.
const CLONE_ARGS_SIZE_VER0: u64 = 64;
const CLONE_ARGS_SIZE_MAX: usize = 88;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::fork, fork, &[]);
    t.full(Sysno::vfork, vfork, &[]);
    t.partial(
        Sysno::clone,
        clone,
        &[Hex, Hex, Hex, Hex, Hex],
        "namespaces fail with EINVAL; CLONE_PTRACE is ignored",
    );
    t.partial(
        Sysno::clone3,
        clone3,
        &[Hex, UInt],
        "as clone; set_tid needs privilege the sandbox lacks (EPERM), cgroups fail with EINVAL",
    );
}

/// A clone request, from clone's registers or clone3's struct.
#[derive(Clone, Copy, Default)]
struct CloneArgs {
    flags: u64,
    exit_signal: u64,
    /// The child's stack pointer (0: the caller's).
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    /// Where CLONE_PIDFD stores the child's pidfd.
    pidfd: u64,
}

fn fork(t: &mut Task, _a: &Args) -> SysResult {
    do_clone(
        t,
        CloneArgs {
            exit_signal: SIGCHLD,
            ..CloneArgs::default()
        },
    )
}

fn vfork(t: &mut Task, _a: &Args) -> SysResult {
    do_clone(
        t,
        CloneArgs {
            flags: CLONE_VM | CLONE_VFORK,
            exit_signal: SIGCHLD,
            ..CloneArgs::default()
        },
    )
}

fn clone(t: &mut Task, a: &Args) -> SysResult {
    // x86-64 order: flags, stack, parent_tid, child_tid, tls.
    let flags = a.u64(0) & 0xffff_ffff;
    // clone has one word for both the pidfd and the parent's TID.
    if flags & CLONE_CLEAR_SIGHAND != 0
        || (flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0)
    {
        return Err(Errno::EINVAL);
    }
    do_clone(
        t,
        CloneArgs {
            flags: flags & !CSIGNAL,
            exit_signal: flags & CSIGNAL,
            stack: a.u64(1),
            parent_tid: a.u64(2),
            child_tid: a.u64(3),
            tls: a.u64(4),
            pidfd: a.u64(2),
        },
    )
}

fn clone3(t: &mut Task, a: &Args) -> SysResult {
    let (addr, size) = (a.u64(0), a.u64(1));
    if size < CLONE_ARGS_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let mut raw = vec![0u8; size as usize];
    t.mm.copy_in(addr, &mut raw)?;
    // Fields this kernel does not know must be zero.
    if raw.iter().skip(CLONE_ARGS_SIZE_MAX).any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    raw.resize(CLONE_ARGS_SIZE_MAX, 0);
    let field = |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (flags, pidfd, child_tid, parent_tid, exit_signal) =
        (field(0), field(1), field(2), field(3), field(4));
    let (stack, stack_size, tls, set_tid, set_tid_size, cgroup) =
        (field(5), field(6), field(7), field(8), field(9), field(10));
    let _ = cgroup;
    if exit_signal > 64 || flags & CSIGNAL != 0 || (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    if set_tid_size > 32 || (set_tid == 0) != (set_tid_size == 0) {
        return Err(Errno::EINVAL);
    }
    if set_tid_size != 0 {
        t.kernel.log_once("clone3 set_tid");
        return Err(Errno::EPERM);
    }
    if flags & CLONE_CLEAR_SIGHAND != 0 && flags & CLONE_SIGHAND != 0 {
        return Err(Errno::EINVAL);
    }
    do_clone(
        t,
        CloneArgs {
            flags,
            exit_signal,
            stack: stack.checked_add(stack_size).ok_or(Errno::EINVAL)?,
            parent_tid,
            child_tid,
            tls,
            pidfd,
        },
    )
}

/// Checks the flag combinations Linux refuses, then creates the task.
fn do_clone(t: &mut Task, args: CloneArgs) -> SysResult {
    let flags = args.flags;
    if flags & !SUPPORTED != 0 {
        let what = if flags & CLONE_NAMESPACES != 0 {
            "namespaces"
        } else {
            "unknown flags"
        };
        t.kernel.log_once(&format!("clone with {what}"));
        return Err(Errno::EINVAL);
    }
    if args.exit_signal > 64 {
        return Err(Errno::EINVAL);
    }
    // The same dependencies copy_process enforces.
    if (flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0)
        || (flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0)
    {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_PIDFD != 0 && flags & (CLONE_THREAD | CLONE_DETACHED) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_THREAD != 0 {
        return clone_thread(t, args);
    }
    if flags & CLONE_PARENT != 0 && t.tg.pid == INIT_PID {
        return Err(Errno::EINVAL);
    }
    clone_process(t, args)
}

/// What a new task starts with: its registers and the resources it shares
/// with, or copies from, its creator.
struct Inherited {
    regs: veil_platform::Registers,
    fds: Arc<veil_vfs::FdTable>,
    fs: Arc<Mutex<veil_vfs::FsContext>>,
    creds: std::sync::Arc<veil_vfs::Creds>,
    comm: Vec<u8>,
    mask: u64,
    sched: crate::task::SchedAttr,
    no_new_privs: bool,
}

fn inherit(t: &Task, args: &CloneArgs) -> Inherited {
    let fds = if args.flags & CLONE_FILES != 0 {
        t.fds.clone()
    } else {
        Arc::new(t.fds.fork_copy())
    };
    let fs = if args.flags & CLONE_FS != 0 {
        t.fs.clone()
    } else {
        Arc::new(Mutex::new(
            t.fs.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        ))
    };
    let mut regs = t.regs;
    regs.rax = 0;
    if args.stack != 0 {
        regs.rsp = args.stack;
    }
    if args.flags & CLONE_SETTLS != 0 {
        regs.fs_base = args.tls;
    }
    Inherited {
        regs,
        fds,
        fs,
        creds: t.creds.clone(),
        comm: t.current_comm(),
        mask: t.signal_mask,
        sched: t.sched_for_child(),
        no_new_privs: t.no_new_privs,
    }
}

impl Inherited {
    fn into_task(
        self,
        kernel: &Arc<Kernel>,
        tg: &Arc<ThreadGroup>,
        tid: i32,
        mm: Arc<MemoryManager>,
    ) -> Task {
        let mut child = Task::new(
            kernel.clone(),
            tg.clone(),
            tid,
            mm,
            self.fds,
            self.fs,
            self.creds,
            self.regs,
        );
        child.comm = self.comm;
        child.publish_view();
        child.signal_mask = self.mask;
        child.no_new_privs = self.no_new_privs;
        *child
            .shared
            .sched
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = self.sched;
        child
    }
}

/// Sets the TID words CLONE_CHILD_SETTID and CLONE_CHILD_CLEARTID name.
fn set_child_tid_words(child: &mut Task, args: &CloneArgs) {
    if args.flags & CLONE_CHILD_SETTID != 0 {
        // Linux ignores a bad address here.
        let _ = child.mm.write_obj(args.child_tid, &child.tid);
    }
    if args.flags & CLONE_CHILD_CLEARTID != 0 {
        child.clear_child_tid = args.child_tid;
    }
}

/// Creates a thread: a new task in the caller's thread group and address
/// space.
fn clone_thread(t: &mut Task, args: CloneArgs) -> SysResult {
    if args.exit_signal != 0 || args.flags & CLONE_VFORK != 0 {
        return Err(Errno::EINVAL);
    }
    let kernel = t.kernel.clone();
    let token = t.mm.space().spawn_thread().map_err(|e| {
        tracing::error!("clone: cannot create a stub thread: {e}");
        Errno::EAGAIN
    })?;
    let tid = kernel.alloc_tid();
    let tg = t.tg.clone();
    let mm = t.mm.clone();
    let inherited = inherit(t, &args);
    tg.threads
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(tid);
    // Before the thread can run: glibc passes the same word as parent_tid
    // and child_tid, and a thread that exits at once clears it.
    if args.flags & CLONE_PARENT_SETTID != 0 {
        let _ = t.mm.write_obj(args.parent_tid, &tid);
    }
    let started = start_task(tid, {
        let kernel = kernel.clone();
        move |ready_tx| {
            if let Err(e) = mm.space().adopt_thread(token) {
                tracing::error!("clone: cannot attach to the stub thread: {e}");
                let _ = ready_tx.send(Err(Errno::EAGAIN));
                return;
            }
            let mut child = inherited.into_task(&kernel, &tg, tid, mm);
            set_child_tid_words(&mut child, &args);
            run_new_task(&kernel, &tg, child, &ready_tx);
        }
    });
    if let Err(e) = started {
        t.tg.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&x| x != tid);
        return Err(e);
    }
    Ok(tid as u64)
}

/// Creates a child process with a copy of the caller's address space, or
/// sharing it with CLONE_VM; with CLONE_VFORK the caller waits until the
/// child has exec'd or exited.
fn clone_process(t: &mut Task, args: CloneArgs) -> SysResult {
    let kernel = t.kernel.clone();
    let pid = kernel.alloc_tid();
    let parent_pid = if args.flags & CLONE_PARENT != 0 {
        t.tg.parent_pid()
    } else {
        t.tg.pid
    };
    let tg = Arc::new(ThreadGroup::fork_from(
        &t.tg,
        pid,
        parent_pid,
        args.flags & CLONE_SIGHAND != 0,
    ));
    if args.flags & CLONE_CLEAR_SIGHAND != 0 {
        tg.sigactions.reset_handled();
    }
    tg.exit_signal
        .store(args.exit_signal as i32, Ordering::Relaxed);
    let shared_vm = args.flags & CLONE_VM != 0;
    // A copy's private memory turns copy-on-write here, on the parent's
    // thread, before the parent runs application code again; a shared
    // address space gets a new stub thread instead.
    let memory = if shared_vm {
        let token = t.mm.space().spawn_thread().map_err(|e| {
            tracing::error!("clone: cannot create a stub thread: {e}");
            Errno::EAGAIN
        })?;
        ChildMemory::Shared(token)
    } else {
        ChildMemory::Forked(t.mm.fork()?)
    };
    let parent_mm = t.mm.clone();
    let inherited = inherit(t, &args);
    let altstack = t.altstack;
    let vfork = (args.flags & CLONE_VFORK != 0).then(|| {
        Arc::new(VforkDone {
            done: AtomicBool::new(false),
            parent: t.shared.waiter.clone(),
        })
    });
    kernel.add_process(tg.clone());
    if args.flags & CLONE_PIDFD != 0 {
        let installed = super::pidfd::install(t, tg.clone(), false).and_then(|fd| {
            t.mm.write_obj(args.pidfd, &fd).inspect_err(|_| {
                let _ = t.fds.remove(fd);
            })
        });
        if let Err(e) = installed {
            kernel.processes().remove(&pid);
            return Err(e);
        }
    }
    let started = start_task(pid, {
        let kernel = kernel.clone();
        let tg = tg.clone();
        let vfork = vfork.clone();
        move |ready_tx| {
            // The stub must be created by the thread that will trace it.
            let mm = match memory {
                ChildMemory::Shared(token) => parent_mm
                    .space()
                    .adopt_thread(token)
                    .map(|()| parent_mm)
                    .map_err(|e| {
                        tracing::error!("clone: cannot attach to the stub thread: {e}");
                        Errno::EAGAIN
                    }),
                ChildMemory::Forked(forked) => {
                    drop(parent_mm);
                    kernel
                        .platform
                        .new_address_space()
                        .map(|space| Arc::new(MemoryManager::from_fork(space, forked)))
                        .map_err(|e| {
                            tracing::error!("fork: cannot create an address space: {e}");
                            Errno::EAGAIN
                        })
                }
            };
            let mm = match mm {
                Ok(mm) => mm,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut child = inherited.into_task(&kernel, &tg, pid, mm);
            if !shared_vm || args.flags & CLONE_VFORK != 0 {
                child.altstack = altstack;
            }
            child.vfork_done = vfork;
            set_child_tid_words(&mut child, &args);
            run_new_task(&kernel, &tg, child, &ready_tx);
        }
    });
    if let Err(e) = started {
        kernel.processes().remove(&pid);
        return Err(e);
    }
    if args.flags & CLONE_PARENT_SETTID != 0 {
        let _ = t.mm.write_obj(args.parent_tid, &pid);
    }
    if let Some(vfork) = vfork {
        vfork.wait(t);
    }
    Ok(pid as u64)
}

/// Where a new process's memory comes from.
enum ChildMemory {
    /// CLONE_VM: the parent's address space, through a new stub thread.
    Shared(u64),
    /// A copy-on-write copy.
    Forked(crate::mm::ForkedMemory),
}

/// The handshake of CLONE_VFORK: the child releases its parent when it
/// stops using the parent's memory (exec or exit).
pub struct VforkDone {
    done: AtomicBool,
    parent: Arc<Waiter>,
}

impl VforkDone {
    pub fn release(&self) {
        self.done.store(true, Ordering::Release);
        self.parent.wake();
    }

    /// Waits for the child; only SIGKILL cuts the wait short, as Linux's
    /// killable wait_for_vfork_done.
    fn wait(&self, t: &Task) {
        while !self.done.load(Ordering::Acquire) && t.pending_signals() & bit(SIGKILL) == 0 {
            t.shared.waiter.wait(None);
        }
    }
}

/// Runs `body` on a new sentry thread for task `id` and waits until it
/// reports the task ready (or failed) through the sender it is given.
fn start_task(
    id: i32,
    body: impl FnOnce(Sender<Result<(), Errno>>) + Send + 'static,
) -> Result<(), Errno> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    match std::thread::Builder::new()
        .name(format!("task-{id}"))
        .spawn(move || body(ready_tx))
    {
        Ok(_) => ready_rx.recv().unwrap_or(Err(Errno::EAGAIN)),
        Err(_) => Err(Errno::EAGAIN),
    }
}

/// Registers a new task (it can take signals from the moment its creator
/// returns), releases the creator, and runs it. The last thread out reports
/// the process's exit.
fn run_new_task(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    mut child: Task,
    ready: &Sender<Result<(), Errno>>,
) {
    kernel.add_task(child.tid, child.shared.clone());
    let _ = ready.send(Ok(()));
    let status = child.run();
    // Files close before the parent can learn of the exit, as on Linux: a
    // reader polling the child's pipe sees the hang-up.
    drop(child);
    if let Some(status) = status {
        kernel.exit_process(tg, status);
    }
}
