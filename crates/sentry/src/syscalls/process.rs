//! Process and thread identity, lifetime, exec, limits and prctl.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use veil_abi::{Errno, Rlimit, SysResult, Sysno};
use veil_platform::Registers;

use super::strace::Arg::*;
use super::{Args, Table};
use crate::kernel::Kernel;
use crate::loader::{self, AuxInfo};
use crate::mm::{Layout, MemoryManager};
use crate::task::{ExitStatus, Task, ThreadGroup, RLIM_NLIMITS};
use crate::vfsglue::TaskExecOpener;

const ARCH_SET_GS: i32 = 0x1001;
const ARCH_SET_FS: i32 = 0x1002;
const ARCH_GET_FS: i32 = 0x1003;
const ARCH_GET_GS: i32 = 0x1004;
const ARCH_GET_CPUID: i32 = 0x1011;
const ARCH_SET_CPUID: i32 = 0x1012;

const PR_SET_PDEATHSIG: i32 = 1;
const PR_GET_PDEATHSIG: i32 = 2;
const PR_GET_DUMPABLE: i32 = 3;
const PR_SET_DUMPABLE: i32 = 4;
const PR_SET_NAME: i32 = 15;
const PR_GET_NAME: i32 = 16;
const PR_CAPBSET_READ: i32 = 23;
const PR_SET_NO_NEW_PRIVS: i32 = 38;
const PR_GET_NO_NEW_PRIVS: i32 = 39;
const PR_SET_VMA: i32 = 0x53564d41;

/// Linux's bounds on exec arguments: entries, one string, and all of them
/// together (a quarter of the default stack).
const MAX_ARG_STRINGS: usize = 0x7fff_ffff;
const MAX_ARG_STRLEN: usize = 32 * 4096;
const MAX_ARGS_TOTAL: usize = (crate::mm::STACK_SIZE / 4) as usize;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::getpid, getpid, &[]);
    t.full(Sysno::getppid, getppid, &[]);
    t.full(Sysno::gettid, gettid, &[]);
    t.full(Sysno::getuid, getuid, &[]);
    t.full(Sysno::geteuid, geteuid, &[]);
    t.full(Sysno::getgid, getgid, &[]);
    t.full(Sysno::getegid, getegid, &[]);
    t.full(Sysno::getresuid, getresuid, &[Hex, Hex, Hex]);
    t.full(Sysno::getresgid, getresgid, &[Hex, Hex, Hex]);
    t.full(Sysno::getgroups, getgroups, &[Int, Hex]);
    t.full(Sysno::getpgrp, getpgrp, &[]);
    t.full(Sysno::getpgid, getpgid, &[Int]);
    t.full(Sysno::getsid, getsid, &[Int]);
    t.partial(
        Sysno::setpgid,
        setpgid,
        &[Int, Int],
        "only the calling process exists until fork arrives",
    );
    t.partial(
        Sysno::setsid,
        setsid,
        &[],
        "only the calling process exists until fork arrives",
    );
    t.full(Sysno::fork, fork, &[]);
    t.partial(
        Sysno::vfork,
        fork,
        &[],
        "as fork: the parent does not wait for the child's exec",
    );
    t.partial(
        Sysno::clone,
        clone,
        &[Hex, Hex, Hex, Hex, Hex],
        "new processes and threads; CLONE_VM without CLONE_THREAD (vfork-style) and namespaces fail with EINVAL",
    );
    t.partial(
        Sysno::wait4,
        wait4,
        &[Int, Hex, Hex, Hex],
        "exited children only (no stopped or continued reports)",
    );
    t.full(Sysno::exit, exit, &[Int]);
    t.full(Sysno::exit_group, exit_group, &[Int]);
    t.full(Sysno::set_tid_address, set_tid_address, &[Hex]);
    t.full(Sysno::set_robust_list, set_robust_list, &[Hex, UInt]);
    t.full(Sysno::get_robust_list, get_robust_list, &[Int, Hex, Hex]);
    t.full(Sysno::arch_prctl, arch_prctl, &[Hex, Hex]);
    t.partial(
        Sysno::prctl,
        prctl,
        &[Int, Hex, Hex, Hex, Hex],
        "names, dumpable, no_new_privs, pdeathsig (stored), capability bounding set; others EINVAL",
    );
    t.full(Sysno::prlimit64, prlimit64, &[Int, Int, Hex, Hex]);
    t.full(Sysno::getrlimit, getrlimit, &[Int, Hex]);
    t.full(Sysno::setrlimit, setrlimit, &[Int, Hex]);
    t.partial(
        Sysno::execve,
        execve,
        &[Path, Hex, Hex],
        "single-threaded processes",
    );
    t.unimplemented(
        Sysno::rseq,
        Errno::ENOSYS,
        &[Hex, UInt, Hex, Hex],
        "restartable sequences; glibc falls back",
    );
    const NO_NET: &str = "networking is not implemented yet";
    t.unimplemented(Sysno::socket, Errno::EAFNOSUPPORT, &[Int, Int, Int], NO_NET);
    t.unimplemented(
        Sysno::socketpair,
        Errno::EAFNOSUPPORT,
        &[Int, Int, Int, Hex],
        NO_NET,
    );
    t.unimplemented(
        Sysno::kcmp,
        Errno::ENOSYS,
        &[Int, Int, Int, Hex, Hex],
        "comparing kernel objects of two processes",
    );
}

fn getpid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(t.tg.pid as u64)
}

fn getppid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(t.tg.parent_pid() as u64)
}

fn gettid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(t.tid as u64)
}

fn getuid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.uid))
}

fn geteuid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.euid))
}

fn getgid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.gid))
}

fn getegid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.egid))
}

fn write_three(t: &Task, a: &Args, ids: [u32; 3]) -> SysResult {
    for (i, id) in ids.iter().enumerate() {
        t.mm.write_obj(a.u64(i), id)?;
    }
    Ok(0)
}

fn getresuid(t: &mut Task, a: &Args) -> SysResult {
    let c = &t.creds;
    write_three(t, a, [c.uid, c.euid, c.euid])
}

fn getresgid(t: &mut Task, a: &Args) -> SysResult {
    let c = &t.creds;
    write_three(t, a, [c.gid, c.egid, c.egid])
}

fn getgroups(t: &mut Task, a: &Args) -> SysResult {
    let size = a.i32(0);
    let groups = &t.creds.groups;
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    t.mm.copy_out(a.u64(1), &bytes)?;
    Ok(groups.len() as u64)
}

fn getpgrp(t: &mut Task, _a: &Args) -> SysResult {
    Ok(*t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner()) as u64)
}

fn getpgid(t: &mut Task, a: &Args) -> SysResult {
    check_self(t, a.i32(0))?;
    getpgrp(t, a)
}

fn getsid(t: &mut Task, a: &Args) -> SysResult {
    check_self(t, a.i32(0))?;
    Ok(*t.tg.sid.lock().unwrap_or_else(|p| p.into_inner()) as u64)
}

fn setpgid(t: &mut Task, a: &Args) -> SysResult {
    check_self(t, a.i32(0))?;
    let pgid = a.i32(1);
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    // A session leader cannot change its process group.
    if *t.tg.sid.lock().unwrap_or_else(|p| p.into_inner()) == t.tg.pid {
        return Err(Errno::EPERM);
    }
    if pgid != 0 && pgid != t.tg.pid {
        return Err(Errno::EPERM);
    }
    *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner()) = t.tg.pid;
    Ok(0)
}

fn setsid(t: &mut Task, _a: &Args) -> SysResult {
    // The init process is already a session and group leader.
    if *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner()) == t.tg.pid {
        return Err(Errno::EPERM);
    }
    *t.tg.sid.lock().unwrap_or_else(|p| p.into_inner()) = t.tg.pid;
    *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner()) = t.tg.pid;
    Ok(t.tg.pid as u64)
}

fn check_self(t: &Task, pid: i32) -> Result<(), Errno> {
    if pid == 0 || pid == t.tg.pid {
        Ok(())
    } else if pid < 0 {
        Err(Errno::EINVAL)
    } else {
        Err(Errno::ESRCH)
    }
}

fn exit(t: &mut Task, a: &Args) -> SysResult {
    // Only this thread; the last one out ends the process with its code.
    t.exit = Some(ExitStatus::Exited(a.i32(0) & 0xff));
    Err(Errno::EJUSTRETURN)
}

fn exit_group(t: &mut Task, a: &Args) -> SysResult {
    t.exit_group(ExitStatus::Exited(a.i32(0) & 0xff));
    Err(Errno::EJUSTRETURN)
}

fn set_tid_address(t: &mut Task, a: &Args) -> SysResult {
    t.clear_child_tid = a.u64(0);
    Ok(t.tid as u64)
}

fn set_robust_list(t: &mut Task, a: &Args) -> SysResult {
    // sizeof(struct robust_list_head)
    if a.u64(1) != 24 {
        return Err(Errno::EINVAL);
    }
    t.robust_list = (a.u64(0), a.u64(1));
    Ok(0)
}

fn get_robust_list(t: &mut Task, a: &Args) -> SysResult {
    if a.i32(0) != 0 && a.i32(0) != t.tid {
        return Err(Errno::ESRCH);
    }
    t.mm.write_obj(a.u64(1), &t.robust_list.0)?;
    t.mm.write_obj(a.u64(2), &t.robust_list.1)?;
    Ok(0)
}

fn arch_prctl(t: &mut Task, a: &Args) -> SysResult {
    let max = t.mm.layout().max;
    match a.i32(0) {
        ARCH_SET_FS | ARCH_SET_GS if a.u64(1) >= max => Err(Errno::EPERM),
        ARCH_SET_FS => {
            t.regs.fs_base = a.u64(1);
            Ok(0)
        }
        ARCH_SET_GS => {
            t.regs.gs_base = a.u64(1);
            Ok(0)
        }
        ARCH_GET_FS => t.mm.write_obj(a.u64(1), &t.regs.fs_base).map(|()| 0),
        ARCH_GET_GS => t.mm.write_obj(a.u64(1), &t.regs.gs_base).map(|()| 0),
        // CPUID faulting is not offered: CPUID always runs natively.
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

fn prctl(t: &mut Task, a: &Args) -> SysResult {
    match a.i32(0) {
        PR_SET_NAME => {
            // Linux copies at most 15 bytes plus NUL and accepts longer names.
            t.comm = match t.mm.read_cstr(a.u64(1), 15) {
                Ok(name) => name,
                Err(Errno::ENAMETOOLONG) => {
                    let mut name = vec![0u8; 15];
                    t.mm.copy_in(a.u64(1), &mut name)?;
                    name
                }
                Err(e) => return Err(e),
            };
            Ok(0)
        }
        PR_GET_NAME => {
            let mut buf = [0u8; 16];
            buf[..t.comm.len().min(15)].copy_from_slice(&t.comm[..t.comm.len().min(15)]);
            t.mm.copy_out(a.u64(1), &buf).map(|()| 0)
        }
        PR_SET_PDEATHSIG => {
            if a.u64(1) > 64 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PR_GET_PDEATHSIG => t.mm.write_obj(a.u64(1), &0i32).map(|()| 0),
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE if a.u64(1) <= 1 => Ok(0),
        PR_CAPBSET_READ if a.u64(1) <= 40 => Ok(1),
        PR_CAPBSET_READ => Err(Errno::EINVAL),
        PR_SET_NO_NEW_PRIVS if a.u64(1) == 1 => Ok(0),
        PR_GET_NO_NEW_PRIVS => Ok(0),
        PR_SET_VMA => Ok(0),
        op => {
            t.kernel.log_once(&format!("prctl option {op}"));
            Err(Errno::EINVAL)
        }
    }
}

fn rlimit_index(resource: i32) -> Result<usize, Errno> {
    usize::try_from(resource)
        .ok()
        .filter(|&r| r < RLIM_NLIMITS)
        .ok_or(Errno::EINVAL)
}

fn prlimit64(t: &mut Task, a: &Args) -> SysResult {
    let pid = a.i32(0);
    if pid != 0 && pid != t.tg.pid {
        return Err(Errno::ESRCH);
    }
    let r = rlimit_index(a.i32(1))?;
    let new: Option<Rlimit> = match a.u64(2) {
        0 => None,
        addr => Some(t.mm.read_obj(addr)?),
    };
    let old = t.tg.rlimits.lock().unwrap_or_else(|p| p.into_inner())[r];
    if a.u64(3) != 0 {
        t.mm.write_obj(a.u64(3), &old)?;
    }
    if let Some(new) = new {
        set_limit(t, r, new)?;
    }
    Ok(0)
}

fn set_limit(t: &mut Task, r: usize, new: Rlimit) -> Result<(), Errno> {
    const RLIMIT_NOFILE: usize = 7;
    if new.rlim_cur > new.rlim_max {
        return Err(Errno::EINVAL);
    }
    let mut limits = t.tg.rlimits.lock().unwrap_or_else(|p| p.into_inner());
    // Raising a hard limit needs CAP_SYS_RESOURCE, which root has.
    if new.rlim_max > limits[r].rlim_max && t.creds.euid != 0 {
        return Err(Errno::EPERM);
    }
    if r == RLIMIT_NOFILE {
        if new.rlim_cur > veil_vfs::MAX_NOFILE {
            return Err(Errno::EPERM);
        }
        t.fds.set_limit(new.rlim_cur as usize);
    }
    limits[r] = new;
    Ok(())
}

fn getrlimit(t: &mut Task, a: &Args) -> SysResult {
    let r = rlimit_index(a.i32(0))?;
    let old = t.tg.rlimits.lock().unwrap_or_else(|p| p.into_inner())[r];
    t.mm.write_obj(a.u64(1), &old).map(|()| 0)
}

fn setrlimit(t: &mut Task, a: &Args) -> SysResult {
    let r = rlimit_index(a.i32(0))?;
    let new: Rlimit = t.mm.read_obj(a.u64(1))?;
    set_limit(t, r, new).map(|()| 0)
}

/// Reads a NULL-terminated array of string pointers (argv or envp),
/// charging their bytes to `budget` as Linux bounds exec arguments.
fn read_strings(t: &Task, mut addr: u64, budget: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    loop {
        let p: u64 = t.mm.read_obj(addr)?;
        if p == 0 {
            return Ok(out);
        }
        if out.len() >= MAX_ARG_STRINGS {
            return Err(Errno::E2BIG);
        }
        let s = t.mm.read_cstr(p, MAX_ARG_STRLEN).map_err(|e| {
            if e == Errno::ENAMETOOLONG {
                Errno::E2BIG
            } else {
                e
            }
        })?;
        // Each string also costs its NUL and its pointer on the new stack.
        *budget = budget.checked_sub(s.len() + 1 + 8).ok_or(Errno::E2BIG)?;
        out.push(s);
        addr = addr.checked_add(8).ok_or(Errno::EFAULT)?;
    }
}

fn execve(t: &mut Task, a: &Args) -> SysResult {
    if t.tg.threads.lock().unwrap_or_else(|p| p.into_inner()).len() > 1 {
        t.kernel.log_once("execve from a multi-threaded process");
        return Err(Errno::EINVAL);
    }
    let path = t.mm.read_cstr(a.u64(0), 4096)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let mut budget = MAX_ARGS_TOTAL;
    let argv = read_strings(t, a.u64(1), &mut budget)?;
    let envp = read_strings(t, a.u64(2), &mut budget)?;
    exec(t, &path, argv, &envp)
}

/// Replaces the task's image; on failure the old image is untouched.
pub fn exec(t: &mut Task, path: &[u8], argv: Vec<Vec<u8>>, envp: &[Vec<u8>]) -> SysResult {
    let kernel = t.kernel.clone();
    let space = kernel.platform.new_address_space().map_err(|e| {
        tracing::error!("exec: cannot create an address space: {e}");
        Errno::ENOMEM
    })?;
    let mm = Arc::new(MemoryManager::new(
        space,
        kernel.memfile.clone(),
        Layout::new(kernel.platform.max_user_address()),
    ));
    let opener = TaskExecOpener::new(t);
    let loaded = loader::load(&opener, &mm, path, argv, envp, &aux_info(t))?;
    // Point of no return.
    t.mm.clear();
    t.mm = mm;
    t.shared.set_interrupter(t.mm.space().interrupter());
    t.fds.close_on_exec();
    let mut actions = t.tg.sigactions.lock().unwrap_or_else(|p| p.into_inner());
    for act in actions.iter_mut() {
        // Handled signals revert to the default; ignored ones stay ignored.
        if act.handler > 1 {
            *act = veil_abi::KernelSigaction::default();
        }
    }
    drop(actions);
    t.altstack = veil_abi::StackT {
        ss_flags: 2,
        ..Default::default()
    };
    t.robust_list = (0, 0);
    t.clear_child_tid = 0;
    t.comm = loaded.comm;
    *t.tg.exe.lock().unwrap_or_else(|p| p.into_inner()) = loaded.exe_path;
    t.regs = Registers::new_user(loaded.entry, loaded.stack_pointer);
    Err(Errno::EJUSTRETURN)
}

fn aux_info(t: &Task) -> AuxInfo {
    let mut random = [0u8; 16];
    // A failed getrandom leaves zeros: weaker stack canaries, never a crash.
    let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
    let (hwcap, hwcap2) = rustix::param::linux_hwcap();
    AuxInfo {
        uid: t.creds.uid,
        euid: t.creds.euid,
        gid: t.creds.gid,
        egid: t.creds.egid,
        hwcap: hwcap as u64,
        hwcap2: hwcap2 as u64,
        random,
    }
}

const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const SIGCHLD: u64 = 17;

fn fork(t: &mut Task, _a: &Args) -> SysResult {
    fork_process(t, SIGCHLD, 0, 0)
}

fn clone(t: &mut Task, a: &Args) -> SysResult {
    // x86-64 order: flags, stack, parent_tid, child_tid, tls.
    let flags = a.u64(0);
    if flags & CSIGNAL > 64 {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_THREAD != 0 {
        return clone_thread(t, flags, a.u64(1), a.u64(2), a.u64(3), a.u64(4));
    }
    let supported = CSIGNAL | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID;
    if flags & !supported != 0 {
        t.kernel
            .log_once(&format!("clone flags {:#x}", flags & !supported));
        return Err(Errno::EINVAL);
    }
    if a.u64(1) != 0 {
        t.kernel
            .log_once("clone with a new stack for a new process");
        return Err(Errno::EINVAL);
    }
    fork_process(t, flags, a.u64(2), a.u64(3))
}

/// Creates a thread: a new task in the caller's thread group and address
/// space, run by a new sentry thread owning a new stub thread.
fn clone_thread(
    t: &mut Task,
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
) -> SysResult {
    let required = CLONE_VM | CLONE_SIGHAND;
    let supported = required
        | CLONE_THREAD
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID
        | CLONE_CHILD_SETTID;
    // Linux requires CLONE_SIGHAND with CLONE_THREAD, and CLONE_VM with it.
    if flags & required != required || flags & CSIGNAL != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & !supported != 0 {
        t.kernel
            .log_once(&format!("clone thread flags {:#x}", flags & !supported));
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
    let fds = if flags & CLONE_FILES != 0 {
        t.fds.clone()
    } else {
        Arc::new(t.fds.fork_copy())
    };
    let fs = if flags & CLONE_FS != 0 {
        t.fs.clone()
    } else {
        Arc::new(std::sync::Mutex::new(
            t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ))
    };
    let (creds, comm, mask) = (t.creds.clone(), t.comm.clone(), t.signal_mask);
    let mut regs = t.regs;
    regs.rax = 0;
    if stack != 0 {
        regs.rsp = stack;
    }
    if flags & CLONE_SETTLS != 0 {
        regs.fs_base = tls;
    }
    tg.threads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(tid);
    // Before the thread can run: glibc passes the same word as parent_tid
    // and child_tid, and a thread that exits at once clears it.
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = t.mm.write_obj(parent_tid, &tid);
    }
    let started = start_task(tid, {
        let kernel = kernel.clone();
        move |ready_tx| {
            if let Err(e) = mm.space().adopt_thread(token) {
                tracing::error!("clone: cannot attach to the stub thread: {e}");
                let _ = ready_tx.send(Err(Errno::EAGAIN));
                return;
            }
            let mut child = Task::new(kernel.clone(), tg.clone(), tid, mm, fds, fs, creds, regs);
            child.comm = comm;
            child.signal_mask = mask;
            if flags & CLONE_CHILD_SETTID != 0 {
                let _ = child.mm.write_obj(child_tid, &tid);
            }
            if flags & CLONE_CHILD_CLEARTID != 0 {
                child.clear_child_tid = child_tid;
            }
            run_new_task(&kernel, &tg, child, &ready_tx);
        }
    });
    if let Err(e) = started {
        t.tg.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&x| x != tid);
        return Err(e);
    }
    Ok(tid as u64)
}

/// Creates a child process: a copy-on-write copy of the caller's memory,
/// copies of its descriptors and filesystem context, run by a new sentry
/// thread that owns its stub.
fn fork_process(t: &mut Task, flags: u64, parent_tid: u64, child_tid: u64) -> SysResult {
    let kernel = t.kernel.clone();
    let pid = kernel.alloc_tid();
    let tg = Arc::new(ThreadGroup::fork_from(&t.tg, pid));
    tg.exit_signal.store(
        (flags & CSIGNAL) as i32,
        std::sync::atomic::Ordering::Relaxed,
    );
    // The parent's view of its private memory turns copy-on-write here, on
    // its own thread, before it runs application code again.
    let forked = t.mm.fork()?;
    let fds = Arc::new(t.fds.fork_copy());
    let fs = Arc::new(std::sync::Mutex::new(
        t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    ));
    let creds = t.creds.clone();
    let comm = t.comm.clone();
    let mut regs = t.regs;
    regs.rax = 0;
    kernel.add_process(tg.clone());
    let started = start_task(pid, {
        let kernel = kernel.clone();
        let tg = tg.clone();
        move |ready_tx| {
            // The stub must be created by the thread that will trace it.
            let mm = match kernel.platform.new_address_space() {
                Ok(space) => Arc::new(MemoryManager::from_fork(space, forked)),
                Err(e) => {
                    tracing::error!("fork: cannot create an address space: {e}");
                    let _ = ready_tx.send(Err(Errno::EAGAIN));
                    return;
                }
            };
            if flags & CLONE_CHILD_SETTID != 0 {
                // Linux ignores a bad address here.
                let _ = mm.write_obj(child_tid, &pid);
            }
            let mut child = Task::new(kernel.clone(), tg.clone(), pid, mm, fds, fs, creds, regs);
            child.comm = comm;
            if flags & CLONE_CHILD_CLEARTID != 0 {
                child.clear_child_tid = child_tid;
            }
            run_new_task(&kernel, &tg, child, &ready_tx);
        }
    });
    if let Err(e) = started {
        kernel.processes().remove(&pid);
        return Err(e);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = t.mm.write_obj(parent_tid, &pid);
    }
    Ok(pid as u64)
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

const WNOHANG: u32 = 1;
const WUNTRACED: u32 = 2;
const WCONTINUED: u32 = 8;
const WNOTHREAD: u32 = 0x2000_0000;
const WALL: u32 = 0x4000_0000;
const WCLONE: u32 = 0x8000_0000;

/// The wait status word of an exit, as WIFEXITED/WTERMSIG decode it.
fn wait_status(status: ExitStatus) -> i32 {
    match status {
        ExitStatus::Exited(code) => (code & 0xff) << 8,
        ExitStatus::Signaled { signo, core } => signo | if core { 0x80 } else { 0 },
    }
}

fn wait4(t: &mut Task, a: &Args) -> SysResult {
    let (pid, status_addr, options) = (a.i32(0), a.u64(1), a.u32(2));
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0
        || pid == i32::MIN
    {
        return Err(Errno::EINVAL);
    }
    let my_pgid = *t.tg.pgid.lock().unwrap_or_else(|p| p.into_inner());
    let matches = |c: &ThreadGroup| {
        let pgid = *c.pgid.lock().unwrap_or_else(|p| p.into_inner());
        match pid {
            -1 => true,
            0 => pgid == my_pgid,
            p if p < 0 => pgid == -p,
            p => c.pid == p,
        }
    };
    let kernel = t.kernel.clone();
    loop {
        // Registered before looking, so that an exit in between wakes us.
        kernel.child_events.register(&t.shared.waiter);
        let procs = kernel.processes();
        let children: Vec<Arc<ThreadGroup>> = procs
            .values()
            .filter(|c| c.parent_pid() == t.tg.pid && matches(c))
            .cloned()
            .collect();
        if children.is_empty() {
            return Err(Errno::ECHILD);
        }
        let zombie = children.iter().find_map(|c| {
            c.exit
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map(|s| (c.pid, s))
        });
        if let Some((zpid, status)) = zombie {
            if status_addr != 0 {
                t.mm.write_obj(status_addr, &wait_status(status))?;
            }
            if a.u64(3) != 0 {
                t.mm.write_obj(a.u64(3), &veil_abi::Rusage::default())?;
            }
            drop(procs);
            kernel.processes().remove(&zpid);
            return Ok(zpid as u64);
        }
        drop(procs);
        if options & WNOHANG != 0 {
            return Ok(0);
        }
        // A child's exit wins over the signal it raised, as on Linux.
        if t.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        t.block(None);
    }
}
