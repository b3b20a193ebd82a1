//! Process and thread identity, lifetime, exec, limits and prctl.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use veil_abi::{Errno, Rlimit, SysResult, Sysno};
use veil_platform::Registers;

use super::strace::Arg::*;
use super::{Args, Table};
use veil_vfs::{cap, Creds};

use crate::cred;
use crate::loader::{self, AuxInfo};
use crate::mm::{Layout, MemoryManager};
use crate::task::{ExitStatus, Task, ThreadGroup, RLIMIT_NOFILE, RLIMIT_STACK, RLIM_NLIMITS};
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
const PR_GET_KEEPCAPS: i32 = 7;
const PR_SET_KEEPCAPS: i32 = 8;
const PR_CAPBSET_READ: i32 = 23;
const PR_CAPBSET_DROP: i32 = 24;
const PR_GET_SECUREBITS: i32 = 27;
const PR_SET_SECUREBITS: i32 = 28;
const PR_SET_NO_NEW_PRIVS: i32 = 38;
const PR_GET_NO_NEW_PRIVS: i32 = 39;
const PR_CAP_AMBIENT: i32 = 47;
const PR_CAP_AMBIENT_IS_SET: u64 = 1;
const PR_CAP_AMBIENT_RAISE: u64 = 2;
const PR_CAP_AMBIENT_LOWER: u64 = 3;
const PR_CAP_AMBIENT_CLEAR_ALL: u64 = 4;
const PR_SET_VMA: i32 = 0x53564d41;
const PR_SET_CHILD_SUBREAPER: i32 = 36;
const PR_GET_CHILD_SUBREAPER: i32 = 37;

/// Linux's bounds on exec arguments: entries, one string, and all of them
/// together (a quarter of the default stack).
const MAX_ARG_STRINGS: usize = 0x7fff_ffff;
const MAX_ARG_STRLEN: usize = 32 * 4096;
const MAX_ARGS_TOTAL: usize = (crate::mm::STACK_SIZE / 4) as usize;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::getpid, getpid, &[]);
    t.full(Sysno::getppid, getppid, &[]);
    t.full(Sysno::gettid, gettid, &[]);
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
        "names, dumpable, pdeathsig (stored), no_new_privs, keepcaps, securebits, capability bounding and ambient sets; others EINVAL",
    );
    const LIMITS: &str = "every limit is kept and inherited; RLIMIT_NOFILE, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_AS (mmap, mremap, brk, stack growth) and RLIMIT_DATA (brk and private writable mappings, as Linux's may_expand_vm; brk does not also count the executable's data segment) take effect, the others (RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_MEMLOCK, ...) are not enforced";
    t.partial(Sysno::prlimit64, prlimit64, &[Int, Int, Hex, Hex], LIMITS);
    t.full(Sysno::getrlimit, getrlimit, &[Int, Hex]);
    t.partial(Sysno::setrlimit, setrlimit, &[Int, Hex], LIMITS);
    t.partial(
        Sysno::execveat,
        execveat,
        &[Int, Path, Hex, Hex, Hex],
        "as execve; the program is found again by its path, so an FD to an unlinked file cannot be exec'd",
    );
    t.partial(
        Sysno::execve,
        execve,
        &[Path, Hex, Hex],
        "set-user-ID and set-group-ID bits and file capabilities are not honoured, as on a nosuid mount (capabilities are recomputed as for a plain file)",
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
            t.publish_view();
            Ok(0)
        }
        PR_GET_NAME => {
            let mut buf = [0u8; 16];
            let comm = t.current_comm();
            buf[..comm.len().min(15)].copy_from_slice(&comm[..comm.len().min(15)]);
            t.mm.copy_out(a.u64(1), &buf).map(|()| 0)
        }
        PR_SET_PDEATHSIG => {
            if a.u64(1) > 64 {
                return Err(Errno::EINVAL);
            }
            t.tg.pdeath_signal.store(a.i32(1), Relaxed);
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            let sig = t.tg.pdeath_signal.load(Relaxed);
            t.mm.write_obj(a.u64(1), &sig).map(|()| 0)
        }
        PR_SET_CHILD_SUBREAPER => {
            t.tg.subreaper.store(a.u64(1) != 0, Relaxed);
            Ok(0)
        }
        PR_GET_CHILD_SUBREAPER => {
            let on = i32::from(t.tg.subreaper.load(Relaxed));
            t.mm.write_obj(a.u64(1), &on).map(|()| 0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE if a.u64(1) <= 1 => Ok(0),
        PR_CAPBSET_READ => {
            let c = cred::cap_valid(a.u64(1)).ok_or(Errno::EINVAL)?;
            Ok(t.creds.cap_bounding >> c & 1)
        }
        PR_CAPBSET_DROP => set_creds(t, |c| cred::capbset_drop(c, a.u64(1))),
        PR_CAP_AMBIENT => cap_ambient(t, a),
        PR_GET_KEEPCAPS => Ok(u64::from(t.creds.securebits & cred::SECBIT_KEEP_CAPS != 0)),
        PR_SET_KEEPCAPS => set_creds(t, |c| cred::set_keepcaps(c, a.u64(1))),
        PR_GET_SECUREBITS => Ok(u64::from(t.creds.securebits)),
        PR_SET_SECUREBITS => set_creds(t, |c| cred::set_securebits(c, a.u64(1))),
        PR_SET_NO_NEW_PRIVS => {
            if a.u64(1) != 1 || a.u64(2) | a.u64(3) | a.u64(4) != 0 {
                return Err(Errno::EINVAL);
            }
            t.no_new_privs = true;
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => {
            if a.u64(1) | a.u64(2) | a.u64(3) | a.u64(4) != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(u64::from(t.no_new_privs))
        }
        PR_SET_VMA => Ok(0),
        op => {
            t.kernel.log_once(&format!("prctl option {op}"));
            Err(Errno::EINVAL)
        }
    }
}

fn set_creds(t: &mut Task, f: impl FnOnce(&Creds) -> Result<Creds, Errno>) -> SysResult {
    let new = f(&t.creds)?;
    t.set_creds(new);
    Ok(0)
}

fn cap_ambient(t: &mut Task, a: &Args) -> SysResult {
    if a.u64(1) == PR_CAP_AMBIENT_CLEAR_ALL {
        if a.u64(2) | a.u64(3) | a.u64(4) != 0 {
            return Err(Errno::EINVAL);
        }
        return set_creds(t, |c| {
            Ok(Creds {
                cap_ambient: 0,
                ..c.clone()
            })
        });
    }
    let c = cred::cap_valid(a.u64(2))
        .filter(|_| a.u64(3) | a.u64(4) == 0)
        .ok_or(Errno::EINVAL)?;
    match a.u64(1) {
        PR_CAP_AMBIENT_IS_SET => Ok(t.creds.cap_ambient >> c & 1),
        PR_CAP_AMBIENT_RAISE => set_creds(t, |old| cred::ambient(old, c, true)),
        PR_CAP_AMBIENT_LOWER => set_creds(t, |old| cred::ambient(old, c, false)),
        _ => Err(Errno::EINVAL),
    }
}

fn rlimit_index(resource: i32) -> Result<usize, Errno> {
    usize::try_from(resource)
        .ok()
        .filter(|&r| r < RLIM_NLIMITS)
        .ok_or(Errno::EINVAL)
}

fn prlimit64(t: &mut Task, a: &Args) -> SysResult {
    let new: Option<Rlimit> = match a.u64(2) {
        0 => None,
        addr => Some(t.mm.read_obj(addr)?),
    };
    let pid = a.i32(0);
    let tg = if pid == 0 || pid == t.tid {
        t.tg.clone()
    } else {
        let target = super::cred::creds_of(t, pid)?;
        let tg = t.kernel.thread_group_of(pid).ok_or(Errno::ESRCH)?;
        // Another task's limits: same IDs all round, or CAP_SYS_RESOURCE.
        let c = &t.creds;
        let same = [target.uid, target.euid, target.suid] == [c.uid; 3]
            && [target.gid, target.egid, target.sgid] == [c.gid; 3];
        if !same && !c.capable(cap::CAP_SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        tg
    };
    let r = rlimit_index(a.i32(1))?;
    let old = set_limit(&t.creds, &tg, r, new)?;
    if a.u64(3) != 0 {
        t.mm.write_obj(a.u64(3), &old)?;
    }
    Ok(0)
}

/// Replaces limit `r` of `tg` if `new` is given, as `creds` may; returns
/// the old one.
fn set_limit(
    creds: &Creds,
    tg: &ThreadGroup,
    r: usize,
    new: Option<Rlimit>,
) -> Result<Rlimit, Errno> {
    if let Some(new) = new {
        if new.rlim_cur > new.rlim_max {
            return Err(Errno::EINVAL);
        }
        if r == RLIMIT_NOFILE && new.rlim_max > veil_vfs::MAX_NOFILE {
            return Err(Errno::EPERM);
        }
    }
    let mut limits = tg.rlimits.lock().unwrap_or_else(|p| p.into_inner());
    let old = limits[r];
    if let Some(new) = new {
        if new.rlim_max > old.rlim_max && !creds.capable(cap::CAP_SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        limits[r] = new;
    }
    Ok(old)
}

fn getrlimit(t: &mut Task, a: &Args) -> SysResult {
    let r = rlimit_index(a.i32(0))?;
    t.mm.write_obj(a.u64(1), &t.tg.rlimit(r)).map(|()| 0)
}

fn setrlimit(t: &mut Task, a: &Args) -> SysResult {
    let r = rlimit_index(a.i32(0))?;
    let new: Rlimit = t.mm.read_obj(a.u64(1))?;
    set_limit(&t.creds, &t.tg, r, Some(new)).map(|_| 0)
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
    let path = t.mm.read_cstr(a.u64(0), 4096)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let mut budget = MAX_ARGS_TOTAL;
    let argv = read_strings(t, a.u64(1), &mut budget)?;
    let envp = read_strings(t, a.u64(2), &mut budget)?;
    exec(t, &path, argv, &envp)
}

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
const AT_EMPTY_PATH: i32 = 0x1000;

/// execveat: the program is named relative to a directory FD, or is the
/// file an FD refers to (AT_EMPTY_PATH, as fexecve does).
fn execveat(t: &mut Task, a: &Args) -> SysResult {
    let (dirfd, flags) = (a.i32(0), a.i32(4));
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = t.mm.read_cstr(a.u64(1), 4096)?;
    let ctx = t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let path = if name.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        let file = t.fds.get(dirfd)?;
        t.kernel.vfs.path_of(&ctx, file.path())
    } else if name[0] == b'/' || dirfd == AT_FDCWD {
        name
    } else {
        let dir = t.fds.get(dirfd)?;
        if !dir.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut p = t.kernel.vfs.path_of(&ctx, dir.path());
        p.push(b'/');
        p.extend_from_slice(&name);
        p
    };
    if flags & AT_SYMLINK_NOFOLLOW != 0 {
        let start = if path.first() == Some(&b'/') {
            ctx.root.clone()
        } else {
            ctx.cwd.clone()
        };
        let found = t
            .kernel
            .vfs
            .lookup_as(&ctx, &start, &path, false, &t.creds)?;
        if found.dentry.inode().stat()?.st_mode & veil_abi::mode::S_IFMT == veil_abi::mode::S_IFLNK
        {
            return Err(Errno::ELOOP);
        }
    }
    let mut budget = MAX_ARGS_TOTAL;
    let argv = read_strings(t, a.u64(2), &mut budget)?;
    let envp = read_strings(t, a.u64(3), &mut budget)?;
    exec(t, &path, argv, &envp)
}

/// Makes the exec'ing task the process's only thread, as Linux's de_thread:
/// its siblings are killed without a trace, and it takes over the PID if it
/// was not the main thread. Fails if the process is dying or another
/// thread's exec won.
fn de_thread(t: &mut Task) -> Result<(), Errno> {
    let tg = t.tg.clone();
    let others: Vec<i32> = tg
        .threads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .filter(|&tid| tid != t.tid)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    if tg
        .execing
        .compare_exchange(0, t.tid, Relaxed, Relaxed)
        .is_err()
    {
        return Err(Errno::EAGAIN);
    }
    for tid in others {
        if let Some(task) = t.kernel.task(tid) {
            task.send(crate::signal::SigInfo::user(crate::signal::SIGKILL, 0, 0));
        }
    }
    loop {
        if tg.threads.lock().unwrap_or_else(|p| p.into_inner()).len() == 1 {
            break;
        }
        let dying = tg
            .group_exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
            || t.pending_signals() & crate::signal::bit(crate::signal::SIGKILL) != 0;
        if dying {
            tg.execing.store(0, Relaxed);
            return Err(Errno::EAGAIN);
        }
        t.shared.waiter.wait(None);
    }
    if t.tid != tg.pid {
        t.kernel.remove_task(t.tid);
        t.tid = tg.pid;
        t.kernel.add_task(t.tid, t.shared.clone());
        *tg.threads.lock().unwrap_or_else(|p| p.into_inner()) = vec![t.tid];
    }
    tg.execing.store(0, Relaxed);
    Ok(())
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
        Layout::new(
            kernel.platform.max_user_address(),
            t.tg.rlimit(RLIMIT_STACK).rlim_cur,
        ),
    ));
    mm.set_vm_limits(t.vm_limits());
    let opener = TaskExecOpener::new(t);
    let loaded = loader::load(&opener, &mm, path, argv, envp, &aux_info(t))?;
    de_thread(t)?;
    // Point of no return: held robust futexes are released first, as
    // Linux's exec_mm_release does. An address space shared with other
    // processes (CLONE_VM) stays theirs; this task's stub thread leaves it.
    super::futex::exit_robust_list(t);
    t.tg.note_rss(&t.mm);
    if Arc::strong_count(&t.mm) > 1 {
        t.mm.space().exit_thread();
    } else {
        t.mm.clear();
    }
    t.mm = mm;
    if let Some(v) = t.vfork_done.take() {
        v.release();
    }
    t.shared.set_interrupter(t.mm.space().interrupter());
    t.fds.close_on_exec();
    t.tg.sigactions.reset_for_exec();
    t.tg.posix_timers.clear(&t.kernel);
    t.tg.did_exec
        .store(true, std::sync::atomic::Ordering::Relaxed);
    t.altstack = veil_abi::StackT {
        ss_flags: 2,
        ..Default::default()
    };
    t.robust_list = (0, 0);
    t.clear_child_tid = 0;
    t.comm = loaded.comm;
    t.publish_view();
    let creds = cred::exec(&t.creds);
    t.set_creds(creds);
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
        vdso: t.kernel.vdso.clone(),
    }
}
