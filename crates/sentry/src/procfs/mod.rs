//! /proc: the sandbox's processes and system, never the host's. Every
//! node names what it describes (a PID, a TID, an FD) and asks the kernel
//! afresh on each operation, so that a cached dentry of a process that has
//! since exited answers ENOENT. Files are generated when opened and then
//! read from that snapshot, as Linux's seq_file does.

use std::any::Any;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use veil_abi::mode::{dtype, S_IFDIR, S_IFLNK, S_IFREG};
use veil_abi::{Errno, Stat};
use veil_vfs::{DirEntry, FdTable, FileOps, FsContext, Inode, PathRef};

use crate::kernel::{Kernel, KERNEL_RELEASE, KERNEL_VERSION};
use crate::mm::MemoryManager;
use crate::signal::TaskShared;
use crate::task::ThreadGroup;

mod files;
pub(crate) use files::{cpu_ids, cpu_list, memory};

/// procfs's device number on a typical Linux host (anonymous, major 0).
const DEV: u64 = 0x16;
/// Clock ticks per second as /proc reports times (USER_HZ).
const USER_HZ: u64 = 100;
const RLIMIT_RSS: usize = linux_raw_sys::general::RLIMIT_RSS as usize;

/// What /proc shows of a task that only the task itself holds: published
/// by the task whenever it changes one of them.
pub struct TaskView {
    pub mm: Arc<MemoryManager>,
    pub fds: Arc<FdTable>,
    pub fs: Arc<Mutex<FsContext>>,
    pub comm: Vec<u8>,
}

/// Reads what /proc shows of the host (CPUs, memory) while the host's
/// /proc is still reachable: the sentry loses it when it is confined.
pub fn read_host_facts() {
    files::init_host();
}

/// The /proc root for `kernel`.
pub fn root(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
    files::init_host();
    ProcInode::make(kernel, Node::Root)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Exe,
    Cwd,
    Root,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TaskFile {
    Stat,
    Status,
    Comm,
    Limits,
    Statm,
    Cmdline,
    Environ,
    Maps,
    Smaps,
    OomScoreAdj,
    OomScore,
    Loginuid,
    UidMap,
    GidMap,
    Cgroup,
    Wchan,
    Mounts,
    MountInfo,
}

/// The namespaces of /proc/PID/ns, with the inode numbers of Linux's
/// initial ones: the sandbox has one of each.
const NAMESPACES: [(&str, u64); 10] = [
    ("cgroup", 0xEFFF_FFFB),
    ("ipc", 0xEFFF_FFFF),
    ("mnt", 0xF000_0001),
    ("net", 0xF000_0000),
    ("pid", 0xEFFF_FFFC),
    ("pid_for_children", 0xEFFF_FFFC),
    ("time", 0xEFFF_FFFA),
    ("time_for_children", 0xEFFF_FFFA),
    ("user", 0xEFFF_FFFD),
    ("uts", 0xEFFF_FFFE),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    SelfLink,
    ThreadSelf,
    /// /proc/PID (tid == pid) or /proc/PID/task/TID.
    TaskDir {
        pid: i32,
        tid: i32,
    },
    TaskList(i32),
    File {
        pid: i32,
        tid: i32,
        file: TaskFile,
    },
    Link(i32, Link),
    FdDir(i32),
    Fd(i32, i32),
    FdInfoDir(i32),
    FdInfo(i32, i32),
    NsDir(i32),
    Ns(i32, usize),
    /// A directory of the static system tree, by index into `SYS`.
    SysDir(usize),
    SysFile(usize),
}

/// The static system tree: path below /proc, and the generator of a file
/// (`None` for a directory).
type Gen = fn(&Kernel) -> String;
const SYS: &[(&str, Option<Gen>)] = &[
    ("uptime", Some(uptime)),
    ("loadavg", Some(files::loadavg)),
    // A file rather than Linux's link to self/mounts: the same contents.
    ("mounts", Some(mounts)),
    ("version", Some(version)),
    ("meminfo", Some(files::meminfo)),
    ("cpuinfo", Some(files::cpuinfo)),
    ("stat", Some(files::stat)),
    ("filesystems", Some(files::filesystems)),
    ("net", None),
    ("net/dev", Some(files::net_dev)),
    ("net/if_inet6", Some(|_| String::new())),
    ("net/unix", Some(files::net_unix)),
    ("net/tcp", Some(files::net_tcp)),
    ("net/tcp6", Some(files::net_tcp6)),
    ("net/udp", Some(files::net_udp)),
    ("net/udp6", Some(files::net_tcp6)),
    ("sys", None),
    ("sys/kernel", None),
    (
        "sys/kernel/osrelease",
        Some(|_| format!("{KERNEL_RELEASE}\n")),
    ),
    ("sys/kernel/ostype", Some(|_| "Linux\n".into())),
    ("sys/kernel/hostname", Some(hostname)),
    ("sys/kernel/pid_max", Some(|_| "32768\n".into())),
    ("sys/kernel/ngroups_max", Some(|_| "65536\n".into())),
    ("sys/kernel/cap_last_cap", Some(cap_last_cap)),
    ("sys/kernel/overflowuid", Some(|_| "65534\n".into())),
    ("sys/kernel/overflowgid", Some(|_| "65534\n".into())),
    ("sys/kernel/threads-max", Some(|_| "4194304\n".into())),
    ("sys/kernel/domainname", Some(|_| "(none)\n".into())),
    (
        "sys/kernel/shmmax",
        Some(|_| "18446744073692774399\n".into()),
    ),
    (
        "sys/kernel/shmall",
        Some(|_| "18446744073692774399\n".into()),
    ),
    ("sys/kernel/shmmni", Some(|_| "4096\n".into())),
    ("sys/kernel/yama", None),
    ("sys/kernel/yama/ptrace_scope", Some(|_| "1\n".into())),
    ("sys/kernel/random", None),
    ("sys/kernel/random/boot_id", Some(files::boot_id)),
    ("sys/kernel/random/uuid", Some(|_| files::uuid())),
    ("sys/kernel/random/entropy_avail", Some(|_| "256\n".into())),
    ("sys/kernel/random/poolsize", Some(|_| "256\n".into())),
    ("sys/net", None),
    ("sys/net/core", None),
    ("sys/net/core/somaxconn", Some(|_| "4096\n".into())),
    ("sys/vm", None),
    ("sys/vm/overcommit_memory", Some(|_| "0\n".into())),
    ("sys/vm/max_map_count", Some(|_| "65530\n".into())),
    (
        "sys/vm/mmap_min_addr",
        Some(|_| format!("{}\n", crate::mm::MIN_ADDR)),
    ),
    ("sys/fs", None),
    ("sys/fs/pipe-max-size", Some(|_| "1048576\n".into())),
    ("sys/fs/nr_open", Some(|_| "1048576\n".into())),
    ("sys/fs/file-max", Some(|_| "9223372036854775807\n".into())),
];

fn uptime(k: &Kernel) -> String {
    let up = k.boot_time.elapsed();
    format!("{}.{:02} 0.00\n", up.as_secs(), up.subsec_millis() / 10)
}

fn mounts(k: &Kernel) -> String {
    let ctx = reader_ctx(k).unwrap_or_else(|| FsContext::new(k.vfs.root()));
    String::from_utf8_lossy(&k.vfs.mounts_text(&ctx, false)).into_owned()
}

fn version(_: &Kernel) -> String {
    format!("Linux version {KERNEL_RELEASE} (veil) {KERNEL_VERSION}\n")
}

fn hostname(k: &Kernel) -> String {
    format!("{}\n", String::from_utf8_lossy(&k.hostname))
}

fn cap_last_cap(_: &Kernel) -> String {
    format!("{}\n", veil_vfs::cap::CAP_LAST_CAP)
}

struct ProcInode {
    kernel: Weak<Kernel>,
    node: Node,
}

impl ProcInode {
    fn make(kernel: &Arc<Kernel>, node: Node) -> Arc<dyn Inode> {
        Arc::new(ProcInode {
            kernel: Arc::downgrade(kernel),
            node,
        })
    }

    fn kernel(&self) -> Result<Arc<Kernel>, Errno> {
        self.kernel.upgrade().ok_or(Errno::ENOENT)
    }

    /// The process `pid`, which must still exist.
    fn process(k: &Kernel, pid: i32) -> Result<Arc<ThreadGroup>, Errno> {
        k.processes().get(&pid).cloned().ok_or(Errno::ENOENT)
    }

    /// Thread `tid` of process `pid`, while it runs.
    fn thread(k: &Kernel, pid: i32, tid: i32) -> Result<Arc<TaskShared>, Errno> {
        k.task(tid).filter(|t| t.tgid == pid).ok_or(Errno::ENOENT)
    }

    /// A running thread of `pid`, the leader if it still runs: whose mm,
    /// FDs and fs context stand for the process's.
    fn any_thread(k: &Kernel, pid: i32) -> Result<Arc<TaskShared>, Errno> {
        if let Ok(t) = Self::thread(k, pid, pid) {
            return Ok(t);
        }
        let tg = Self::process(k, pid)?;
        let tids = lock(&tg.threads).clone();
        tids.into_iter()
            .find_map(|tid| Self::thread(k, pid, tid).ok())
            .ok_or(Errno::ENOENT)
    }

    fn view<R>(k: &Kernel, pid: i32, f: impl FnOnce(&TaskView) -> R) -> Result<R, Errno> {
        let t = Self::any_thread(k, pid)?;
        let v = lock(&t.view);
        v.as_ref().map(f).ok_or(Errno::ENOENT)
    }

    /// The owner of a process's nodes: its effective IDs, as Linux's.
    fn owner(k: &Kernel, pid: i32) -> (u32, u32) {
        Self::any_thread(k, pid).map_or((0, 0), |t| {
            let c = t.creds();
            (c.euid, c.egid)
        })
    }

    fn ino(&self) -> u64 {
        let (kind, a, b): (u64, i32, i32) = match self.node {
            Node::Root => return 1,
            Node::SelfLink => return 2,
            Node::ThreadSelf => return 3,
            Node::SysDir(i) | Node::SysFile(i) => return 16 + i as u64,
            Node::TaskDir { pid, tid } => (1, pid, tid),
            Node::TaskList(pid) => (2, pid, 0),
            Node::Link(pid, l) => (3 + l as u64, pid, 0),
            Node::FdDir(pid) => (6, pid, 0),
            Node::Fd(pid, fd) => (7, pid, fd),
            Node::FdInfoDir(pid) => (8, pid, 0),
            Node::FdInfo(pid, fd) => (9, pid, fd),
            Node::NsDir(pid) => (10, pid, 0),
            Node::Ns(_, i) => return NAMESPACES[i].1,
            Node::File { pid, tid, file } => (32 + file as u64, pid, tid),
        };
        (kind << 56) | ((a as u64 & 0xff_ffff) << 32) | (b as u32 as u64)
    }

    /// The (pid, tid) the node belongs to, checked to still exist.
    fn check_alive(&self, k: &Kernel) -> Result<(), Errno> {
        match self.node {
            Node::TaskDir { pid, tid } | Node::File { pid, tid, .. } => {
                Self::process(k, pid)?;
                if tid != pid {
                    Self::thread(k, pid, tid)?;
                }
                Ok(())
            }
            Node::TaskList(pid)
            | Node::Link(pid, _)
            | Node::FdDir(pid)
            | Node::FdInfoDir(pid)
            | Node::NsDir(pid)
            | Node::Ns(pid, _) => Self::process(k, pid).map(drop),
            Node::Fd(pid, fd) | Node::FdInfo(pid, fd) => {
                Self::view(k, pid, |v| v.fds.get(fd).map(drop))?.map_err(|_| Errno::ENOENT)
            }
            _ => Ok(()),
        }
    }

    fn pid_of(&self) -> Option<i32> {
        match self.node {
            Node::TaskDir { pid, .. }
            | Node::TaskList(pid)
            | Node::File { pid, .. }
            | Node::Link(pid, _)
            | Node::FdDir(pid)
            | Node::Fd(pid, _)
            | Node::FdInfoDir(pid)
            | Node::FdInfo(pid, _)
            | Node::NsDir(pid)
            | Node::Ns(pid, _) => Some(pid),
            _ => None,
        }
    }

    fn mode(&self) -> u32 {
        match self.node {
            Node::Root | Node::TaskDir { .. } | Node::TaskList(_) | Node::SysDir(_) => {
                S_IFDIR | 0o555
            }
            Node::FdDir(_) => S_IFDIR | 0o500,
            Node::FdInfoDir(_) => S_IFDIR | 0o500,
            Node::NsDir(_) => S_IFDIR | 0o511,
            Node::SelfLink | Node::ThreadSelf | Node::Link(..) | Node::Fd(..) | Node::Ns(..) => {
                S_IFLNK | 0o777
            }
            Node::File {
                file: TaskFile::Comm | TaskFile::OomScoreAdj | TaskFile::Loginuid,
                ..
            } => S_IFREG | 0o644,
            Node::File {
                file: TaskFile::Environ,
                ..
            } => S_IFREG | 0o400,
            Node::File { .. } | Node::SysFile(_) | Node::FdInfo(..) => S_IFREG | 0o444,
        }
    }

    fn contents(&self, k: &Kernel) -> Result<Vec<u8>, Errno> {
        match self.node {
            Node::SysFile(i) => Ok(SYS[i].1.map_or_else(String::new, |g| g(k)).into_bytes()),
            Node::File { pid, tid, file } => {
                let tg = Self::process(k, pid)?;
                Ok(match file {
                    TaskFile::Stat => stat_line(k, &tg, tid)?.into_bytes(),
                    TaskFile::Status => status(k, &tg, tid)?.into_bytes(),
                    TaskFile::Comm => {
                        let mut c = comm(k, pid, tid);
                        c.push(b'\n');
                        c
                    }
                    TaskFile::Limits => limits(&tg).into_bytes(),
                    // A zombie has no memory left: empty, as Linux shows it.
                    TaskFile::Statm => Self::view(k, pid, |v| files::statm(&v.mm))
                        .unwrap_or_else(|_| "0 0 0 0 0 0 0\n".into())
                        .into_bytes(),
                    TaskFile::Cmdline => mem_view(k, pid, files::cmdline),
                    TaskFile::Environ => mem_view(k, pid, files::environ),
                    TaskFile::Maps => mem_view(k, pid, |mm| files::maps(mm).into_bytes()),
                    TaskFile::Smaps => mem_view(k, pid, |mm| files::smaps(mm).into_bytes()),
                    TaskFile::OomScoreAdj => format!(
                        "{}\n",
                        tg.oom_score_adj.load(std::sync::atomic::Ordering::Relaxed)
                    )
                    .into_bytes(),
                    TaskFile::OomScore => oom_score(k, &tg)?.into_bytes(),
                    TaskFile::Loginuid => b"4294967295".to_vec(),
                    TaskFile::UidMap => k.ids.uid.proc_text().into_bytes(),
                    TaskFile::GidMap => k.ids.gid.proc_text().into_bytes(),
                    TaskFile::Cgroup => b"0::/\n".to_vec(),
                    TaskFile::Wchan => b"0".to_vec(),
                    // As Linux, relative to the process's root.
                    TaskFile::Mounts | TaskFile::MountInfo => {
                        let ctx = Self::view(k, pid, |v| lock(&v.fs).clone())?;
                        k.vfs.mounts_text(&ctx, file == TaskFile::MountInfo)
                    }
                })
            }
            Node::FdInfo(pid, fd) => Ok(files::fdinfo(k, pid, fd)?.into_bytes()),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// `f` of the process's memory; nothing once it has none (a zombie).
fn mem_view(k: &Kernel, pid: i32, f: impl FnOnce(&MemoryManager) -> Vec<u8>) -> Vec<u8> {
    ProcInode::view(k, pid, |v| f(&v.mm)).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn comm(k: &Kernel, pid: i32, tid: i32) -> Vec<u8> {
    let live = ProcInode::thread(k, pid, tid)
        .ok()
        .and_then(|t| lock(&t.view).as_ref().map(|v| v.comm.clone()));
    match live {
        Some(c) => c,
        None => ProcInode::process(k, pid)
            .map_or_else(|_| Vec::new(), |tg| lock(&tg.leader_comm).clone()),
    }
}

/// The state letter: R for the reader itself (it is running this read),
/// Z once the process has exited, else S: the sentry does not track
/// whether a task is on a CPU.
fn state(k: &Kernel, tg: &ThreadGroup, tid: i32) -> (char, &'static str) {
    if lock(&tg.exit).is_some() || ProcInode::thread(k, tg.pid, tid).is_err() {
        return ('Z', "zombie");
    }
    let me = crate::signal::current().is_some_and(|c| c.tg.pid == tg.pid);
    if me {
        ('R', "running")
    } else {
        ('S', "sleeping")
    }
}

/// What `veil ps` shows of a process.
pub(crate) fn process_info(k: &Kernel, tg: &ThreadGroup) -> crate::control::ProcessInfo {
    let (state, _) = state(k, tg, tg.pid);
    let uid = ProcInode::any_thread(k, tg.pid).map_or_else(|_| tg.uid(), |t| t.creds().uid);
    crate::control::ProcessInfo::new(
        k,
        tg,
        comm(k, tg.pid, tg.pid),
        &mem_view(k, tg.pid, files::cmdline),
        uid,
        state,
    )
}

fn ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / USER_HZ)
}

fn stat_line(k: &Kernel, tg: &ThreadGroup, tid: i32) -> Result<String, Errno> {
    let (st, _) = state(k, tg, tid);
    let cpu = match ProcInode::thread(k, tg.pid, tid) {
        Ok(t) if tid != tg.pid => t.cpu.get(),
        _ => tg.cpu(k),
    };
    let children = *lock(&tg.children_cpu);
    let threads = lock(&tg.threads).len().max(1);
    // The console is the host's, whose device number is not the sandbox's
    // business: tty_nr stays 0, tpgid is the foreground group.
    let tpgid = crate::tty::foreground_of(k, tg.sid()).unwrap_or(-1);
    let rsslim = tg.rlimit(RLIMIT_RSS).rlim_cur;
    let comm = String::from_utf8_lossy(&comm(k, tg.pid, tid)).into_owned();
    let start = ticks(tg.start.duration_since(k.boot_time).as_nanos() as u64);
    let (vsize, rss) = ProcInode::view(k, tg.pid, |v| {
        let c = files::mem_counts(&v.mm);
        (c.size * veil_abi::PAGE_SIZE, c.rss)
    })
    .unwrap_or((0, 0));
    let mut s = format!(
        "{tid} ({comm}) {st} {} {} {} 0 {tpgid} 4194304 0 0 0 0 {} {} {} {} 20 0 {threads} 0 {start} {vsize} {rss} {rsslim}",
        tg.parent_pid(),
        tg.pgid(),
        tg.sid(),
        ticks(cpu.user_ns),
        ticks(cpu.sys_ns),
        ticks(children.user_ns),
        ticks(children.sys_ns),
    );
    // startcode .. exit_code: addresses and counters the sentry does not
    // keep, zero as Linux shows them to readers without ptrace access.
    s.push_str(" 0 0 0 0 0 0 0 0 0 0 0 0 ");
    let exit_signal = tg.exit_signal.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(s, "{exit_signal} 0 0 0 0 0 0 0 0 0 0 0 0 0 0");
    Ok(s)
}

fn status(k: &Kernel, tg: &ThreadGroup, tid: i32) -> Result<String, Errno> {
    let (st, what) = state(k, tg, tid);
    let task = ProcInode::thread(k, tg.pid, tid).or_else(|_| ProcInode::any_thread(k, tg.pid));
    let creds = task.as_ref().map(|t| t.creds()).ok();
    let comm = String::from_utf8_lossy(&comm(k, tg.pid, tid)).into_owned();
    let mut s = String::new();
    let _ = writeln!(s, "Name:\t{comm}");
    let _ = writeln!(s, "State:\t{st} ({what})");
    let _ = writeln!(s, "Tgid:\t{}", tg.pid);
    let _ = writeln!(s, "Ngid:\t0");
    let _ = writeln!(s, "Pid:\t{tid}");
    let _ = writeln!(s, "PPid:\t{}", tg.parent_pid());
    let _ = writeln!(s, "TracerPid:\t0");
    if let Some(c) = &creds {
        let _ = writeln!(s, "Uid:\t{}\t{}\t{}\t{}", c.uid, c.euid, c.suid, c.fsuid);
        let _ = writeln!(s, "Gid:\t{}\t{}\t{}\t{}", c.gid, c.egid, c.sgid, c.fsgid);
        let groups: Vec<String> = c.groups.iter().map(u32::to_string).collect();
        // Linux ends the list with a space, even an empty one.
        let _ = writeln!(s, "Groups:\t{} ", groups.join(" "));
    }
    let _ = ProcInode::view(k, tg.pid, |v| files::status_vm(&mut s, &v.mm, tg));
    let _ = writeln!(s, "Threads:\t{}", lock(&tg.threads).len().max(1));
    if let Ok(t) = &task {
        let _ = writeln!(s, "SigPnd:\t{:016x}", t.pending_bits());
        let _ = writeln!(s, "SigBlk:\t{:016x}", t.blocked());
    }
    if let Some(c) = &creds {
        let _ = writeln!(s, "CapInh:\t{:016x}", c.cap_inheritable);
        let _ = writeln!(s, "CapPrm:\t{:016x}", c.cap_permitted);
        let _ = writeln!(s, "CapEff:\t{:016x}", c.cap_effective);
        let _ = writeln!(s, "CapBnd:\t{:016x}", c.cap_bounding);
        let _ = writeln!(s, "CapAmb:\t{:016x}", c.cap_ambient);
    }
    Ok(s)
}

/// Name, units, in RLIMIT_* order.
const LIMITS: [(&str, &str); 16] = [
    ("Max cpu time", "seconds"),
    ("Max file size", "bytes"),
    ("Max data size", "bytes"),
    ("Max stack size", "bytes"),
    ("Max core file size", "bytes"),
    ("Max resident set", "bytes"),
    ("Max processes", "processes"),
    ("Max open files", "files"),
    ("Max locked memory", "bytes"),
    ("Max address space", "bytes"),
    ("Max file locks", "locks"),
    ("Max pending signals", "signals"),
    ("Max msgqueue size", "bytes"),
    ("Max nice priority", ""),
    ("Max realtime priority", ""),
    ("Max realtime timeout", "us"),
];

fn limits(tg: &ThreadGroup) -> String {
    let mut s = format!(
        "{:<25} {:<20} {:<20} {:<10}\n",
        "Limit", "Soft Limit", "Hard Limit", "Units"
    );
    let rl = *lock(&tg.rlimits);
    let show = |v: u64| {
        if v == u64::MAX {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    for ((name, unit), r) in LIMITS.iter().zip(rl.iter()) {
        let _ = writeln!(
            s,
            "{name:<25} {:<20} {:<20} {unit:<10}",
            show(r.rlim_cur),
            show(r.rlim_max)
        );
    }
    s
}

const TASK_FILES: [(&[u8], TaskFile); 17] = [
    (b"stat", TaskFile::Stat),
    (b"status", TaskFile::Status),
    (b"comm", TaskFile::Comm),
    (b"statm", TaskFile::Statm),
    (b"cmdline", TaskFile::Cmdline),
    (b"environ", TaskFile::Environ),
    (b"maps", TaskFile::Maps),
    (b"smaps", TaskFile::Smaps),
    (b"oom_score_adj", TaskFile::OomScoreAdj),
    (b"oom_score", TaskFile::OomScore),
    (b"loginuid", TaskFile::Loginuid),
    (b"uid_map", TaskFile::UidMap),
    (b"gid_map", TaskFile::GidMap),
    (b"cgroup", TaskFile::Cgroup),
    (b"wchan", TaskFile::Wchan),
    (b"mounts", TaskFile::Mounts),
    (b"mountinfo", TaskFile::MountInfo),
];

const LINKS: [(&[u8], Link); 3] = [
    (b"exe", Link::Exe),
    (b"cwd", Link::Cwd),
    (b"root", Link::Root),
];

fn parse_num(name: &[u8]) -> Option<i32> {
    if name.is_empty() || (name[0] == b'0' && name.len() > 1) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

impl ProcInode {
    /// Entries of a directory node, "." and ".." aside.
    fn entries(&self, k: &Arc<Kernel>) -> Result<Vec<(Vec<u8>, Node)>, Errno> {
        let mut out: Vec<(Vec<u8>, Node)> = Vec::new();
        match self.node {
            Node::Root => {
                out.push((b"self".to_vec(), Node::SelfLink));
                out.push((b"thread-self".to_vec(), Node::ThreadSelf));
                out.extend(self.sys_children(""));
                let mut pids: Vec<i32> = k.processes().keys().copied().collect();
                pids.sort_unstable();
                for pid in pids {
                    out.push((
                        pid.to_string().into_bytes(),
                        Node::TaskDir { pid, tid: pid },
                    ));
                }
            }
            Node::SysDir(i) => out.extend(self.sys_children(SYS[i].0)),
            Node::TaskDir { pid, tid } => {
                for (name, file) in TASK_FILES {
                    out.push((name.to_vec(), Node::File { pid, tid, file }));
                }
                if pid == tid {
                    out.push((
                        b"limits".to_vec(),
                        Node::File {
                            pid,
                            tid,
                            file: TaskFile::Limits,
                        },
                    ));
                    for (name, l) in LINKS {
                        out.push((name.to_vec(), Node::Link(pid, l)));
                    }
                    out.push((b"fd".to_vec(), Node::FdDir(pid)));
                    out.push((b"task".to_vec(), Node::TaskList(pid)));
                }
                out.push((b"fdinfo".to_vec(), Node::FdInfoDir(pid)));
                out.push((b"ns".to_vec(), Node::NsDir(pid)));
                if let Some(i) = SYS.iter().position(|(p, _)| *p == "net") {
                    out.push((b"net".to_vec(), Node::SysDir(i)));
                }
            }
            Node::TaskList(pid) => {
                let mut tids = lock(&Self::process(k, pid)?.threads).clone();
                tids.sort_unstable();
                for tid in tids {
                    if Self::thread(k, pid, tid).is_ok() {
                        out.push((tid.to_string().into_bytes(), Node::TaskDir { pid, tid }));
                    }
                }
            }
            Node::FdDir(pid) => {
                for fd in Self::view(k, pid, |v| v.fds.open_fds())? {
                    out.push((fd.to_string().into_bytes(), Node::Fd(pid, fd)));
                }
            }
            Node::FdInfoDir(pid) => {
                for fd in Self::view(k, pid, |v| v.fds.open_fds())? {
                    out.push((fd.to_string().into_bytes(), Node::FdInfo(pid, fd)));
                }
            }
            Node::NsDir(pid) => {
                for (i, (name, _)) in NAMESPACES.iter().enumerate() {
                    out.push((name.as_bytes().to_vec(), Node::Ns(pid, i)));
                }
            }
            _ => return Err(Errno::ENOTDIR),
        }
        Ok(out)
    }

    fn sys_children(&self, dir: &str) -> Vec<(Vec<u8>, Node)> {
        SYS.iter()
            .enumerate()
            .filter_map(|(i, (path, gen))| {
                let name = match dir {
                    "" => path,
                    _ => path.strip_prefix(dir)?.strip_prefix('/')?,
                };
                if name.contains('/') {
                    return None;
                }
                let node = if gen.is_some() {
                    Node::SysFile(i)
                } else {
                    Node::SysDir(i)
                };
                Some((name.as_bytes().to_vec(), node))
            })
            .collect()
    }
}

impl Inode for ProcInode {
    fn stat(&self) -> Result<Stat, Errno> {
        let k = self.kernel()?;
        self.check_alive(&k)?;
        let (uid, gid) = self.pid_of().map_or((0, 0), |pid| Self::owner(&k, pid));
        let mode = self.mode();
        Ok(Stat {
            st_dev: DEV,
            st_ino: self.ino(),
            st_nlink: if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
            st_mode: mode,
            st_uid: uid,
            st_gid: gid,
            st_blksize: 1024,
            ..Stat::default()
        })
    }

    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        let k = self.kernel()?;
        self.check_alive(&k)?;
        if self.mode() & S_IFDIR == S_IFDIR {
            return Ok(Box::new(veil_vfs::NoOps));
        }
        // The VFS checked the mode; files without a write method refuse
        // writes, as Linux's do.
        let data = if flags & linux_raw_sys::general::O_ACCMODE as i32 == 1 {
            Vec::new()
        } else {
            self.contents(&k)?
        };
        Ok(Box::new(Snapshot {
            data,
            kernel: self.kernel.clone(),
            node: self.node,
        }))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let k = self.kernel()?;
        if self.node == Node::Root {
            if let Some(pid) = parse_num(name) {
                Self::process(&k, pid)?;
                return Ok(ProcInode::make(&k, Node::TaskDir { pid, tid: pid }));
            }
        }
        if let Node::TaskList(pid) = self.node {
            let tid = parse_num(name).ok_or(Errno::ENOENT)?;
            Self::thread(&k, pid, tid)?;
            return Ok(ProcInode::make(&k, Node::TaskDir { pid, tid }));
        }
        if let Node::FdDir(pid) | Node::FdInfoDir(pid) = self.node {
            let fd = parse_num(name).ok_or(Errno::ENOENT)?;
            Self::view(&k, pid, |v| v.fds.get(fd).map(drop))
                .and_then(|r| r)
                .map_err(|_| Errno::ENOENT)?;
            return Ok(ProcInode::make(
                &k,
                if matches!(self.node, Node::FdDir(_)) {
                    Node::Fd(pid, fd)
                } else {
                    Node::FdInfo(pid, fd)
                },
            ));
        }
        let entries = self.entries(&k)?;
        entries
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| ProcInode::make(&k, node))
            .ok_or(Errno::ENOENT)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let k = self.kernel()?;
        self.check_alive(&k)?;
        Ok(self
            .entries(&k)?
            .into_iter()
            .map(|(name, node)| {
                let n = ProcInode {
                    kernel: self.kernel.clone(),
                    node,
                };
                DirEntry {
                    name,
                    ino: n.ino(),
                    dtype: dtype(n.mode()),
                }
            })
            .collect())
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        let k = self.kernel()?;
        let cur = crate::signal::current();
        match self.node {
            Node::SelfLink => {
                let c = cur.ok_or(Errno::ENOENT)?;
                Ok(c.tg.pid.to_string().into_bytes())
            }
            Node::ThreadSelf => {
                let c = cur.ok_or(Errno::ENOENT)?;
                let tid = k
                    .tasks()
                    .into_iter()
                    .find(|(_, t)| Arc::ptr_eq(t, &c.task))
                    .ok_or(Errno::ENOENT)?
                    .0;
                Ok(format!("{}/task/{tid}", c.tg.pid).into_bytes())
            }
            Node::Link(pid, Link::Exe) => {
                Self::any_thread(&k, pid)?;
                Ok(lock(&Self::process(&k, pid)?.exe).clone())
            }
            Node::Link(pid, l) => {
                // Paths as seen from the reader's root, as Linux's d_path.
                let (at, reader) = Self::view(&k, pid, |v| {
                    let fs = lock(&v.fs);
                    (
                        if l == Link::Cwd {
                            fs.cwd.clone()
                        } else {
                            fs.root.clone()
                        },
                        fs.clone(),
                    )
                })?;
                let reader = reader_ctx(&k).unwrap_or(reader);
                Ok(k.vfs.path_of(&reader, &at))
            }
            Node::Ns(pid, i) => {
                Self::process(&k, pid)?;
                let (name, ino) = NAMESPACES[i];
                let kind = name.trim_end_matches("_for_children");
                Ok(format!("{kind}:[{ino}]").into_bytes())
            }
            Node::Fd(pid, fd) => {
                let file = Self::view(&k, pid, |v| v.fds.get(fd))?.map_err(|_| Errno::ENOENT)?;
                let p = file.path();
                if let Some(name) = p.anonymous_name() {
                    return Ok(name);
                }
                let reader = match reader_ctx(&k) {
                    Some(r) => r,
                    None => Self::view(&k, pid, |v| lock(&v.fs).clone())?,
                };
                Ok(k.vfs.path_of(&reader, p))
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// fd/N, cwd and root lead to the file itself, whatever its name.
    fn jump(&self) -> Option<PathRef> {
        let k = self.kernel().ok()?;
        match self.node {
            Node::Fd(pid, fd) => {
                let file = Self::view(&k, pid, |v| v.fds.get(fd)).ok()?.ok()?;
                Some(file.path().clone())
            }
            Node::Link(pid, l @ (Link::Cwd | Link::Root)) => Self::view(&k, pid, |v| {
                let fs = lock(&v.fs);
                if l == Link::Cwd {
                    fs.cwd.clone()
                } else {
                    fs.root.clone()
                }
            })
            .ok(),
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The fs context of the task reading /proc.
fn reader_ctx(_k: &Kernel) -> Option<FsContext> {
    let c = crate::signal::current()?;
    let v = lock(&c.task.view);
    v.as_ref().map(|v| lock(&v.fs).clone())
}

/// A generated file's contents as of open; writes go to the node.
struct Snapshot {
    data: Vec<u8>,
    kernel: Weak<Kernel>,
    node: Node,
}

impl FileOps for Snapshot {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let Ok(off) = usize::try_from(off) else {
            return Ok(0);
        };
        let rest = self.data.get(off..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> Result<usize, Errno> {
        let k = self.kernel.upgrade().ok_or(Errno::ESRCH)?;
        let Node::File { pid, tid, file } = self.node else {
            return Err(Errno::EINVAL);
        };
        let tg = ProcInode::process(&k, pid).map_err(|_| Errno::ESRCH)?;
        match file {
            TaskFile::Comm => write_comm(&k, &tg, tid, buf),
            TaskFile::OomScoreAdj => write_oom_score_adj(&tg, buf),
            // Changing the audit login UID takes CAP_AUDIT_CONTROL, which
            // the sandbox never grants.
            TaskFile::Loginuid => Err(Errno::EPERM),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// As Linux's comm_write: the first 15 bytes, newline and all; only a
/// thread of the writer's own process may be renamed.
fn write_comm(k: &Kernel, tg: &ThreadGroup, tid: i32, buf: &[u8]) -> Result<usize, Errno> {
    let me = crate::signal::current().ok_or(Errno::EINVAL)?;
    if me.tg.pid != tg.pid {
        return Err(Errno::EINVAL);
    }
    let mut name = buf[..buf.len().min(15)].to_vec();
    if let Some(nul) = name.iter().position(|&b| b == 0) {
        name.truncate(nul);
    }
    let t = ProcInode::thread(k, tg.pid, tid).map_err(|_| Errno::ESRCH)?;
    if let Some(v) = lock(&t.view).as_mut() {
        v.comm = name.clone();
    }
    if tid == tg.pid {
        *lock(&tg.leader_comm) = name;
    }
    Ok(buf.len())
}

/// CAP_SYS_RESOURCE, which lowers oom_score_adj below its minimum.
const CAP_SYS_RESOURCE: u32 = 24;

/// As Linux's oom_score_adj_write: one integer in -1000..=1000; going
/// below the minimum takes CAP_SYS_RESOURCE, which also sets the minimum.
fn write_oom_score_adj(tg: &ThreadGroup, buf: &[u8]) -> Result<usize, Errno> {
    use std::sync::atomic::Ordering::Relaxed;
    let text = &buf[..buf.len().min(12)];
    let text = std::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    let v = parse_int(text.trim()).ok_or(Errno::EINVAL)?;
    if !(-1000..=1000).contains(&v) {
        return Err(Errno::EINVAL);
    }
    let privileged = crate::signal::current()
        .is_some_and(|c| c.task.creds().cap_effective & (1 << CAP_SYS_RESOURCE) != 0);
    if v < tg.oom_score_adj_min.load(Relaxed) && !privileged {
        return Err(Errno::EACCES);
    }
    tg.oom_score_adj.store(v, Relaxed);
    if privileged {
        tg.oom_score_adj_min.store(v, Relaxed);
    }
    Ok(buf.len())
}

/// An integer as the kernel's kstrtoint with base 0 reads it.
fn parse_int(s: &str) -> Option<i32> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    i32::try_from(if neg { -v } else { v }).ok()
}

/// As Linux's since 5.9: 1000 plus the thousandths of memory the process
/// holds, moved by oom_score_adj, within 0..=2000.
fn oom_score(k: &Kernel, tg: &ThreadGroup) -> Result<String, Errno> {
    let rss = ProcInode::view(k, tg.pid, |v| v.mm.populated_bytes()).unwrap_or(0);
    let (total, _) = files::memory(k);
    let share = (rss.saturating_mul(1000) / total.max(1)) as i64;
    let adj = i64::from(tg.oom_score_adj.load(std::sync::atomic::Ordering::Relaxed));
    Ok(format!("{}\n", (1000 + share + adj).clamp(0, 2000)))
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn integers_as_kstrtoint_reads_them() {
        assert_eq!(parse_int("500"), Some(500));
        assert_eq!(parse_int("-1000"), Some(-1000));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("0"), Some(0));
        for bad in ["", "-", "12abc", "--1", "+-1", "0x", "99999999999"] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
    }
}
