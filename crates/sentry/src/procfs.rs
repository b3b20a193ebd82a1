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

/// The /proc root for `kernel`.
pub fn root(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
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
}

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
    /// A directory of the static system tree, by index into `SYS`.
    SysDir(usize),
    SysFile(usize),
}

/// The static system tree: path below /proc, and the generator of a file
/// (`None` for a directory).
type Gen = fn(&Kernel) -> String;
const SYS: &[(&str, Option<Gen>)] = &[
    ("uptime", Some(uptime)),
    ("loadavg", Some(|_| "0.00 0.00 0.00 0/0 0\n".into())),
    ("version", Some(version)),
    ("sys", None),
    ("sys/kernel", None),
    (
        "sys/kernel/osrelease",
        Some(|_| format!("{KERNEL_RELEASE}\n")),
    ),
    ("sys/kernel/ostype", Some(|_| "Linux\n".into())),
    ("sys/kernel/hostname", Some(hostname)),
    ("sys/kernel/pid_max", Some(|_| "4194304\n".into())),
    ("sys/kernel/ngroups_max", Some(|_| "65536\n".into())),
    ("sys/kernel/cap_last_cap", Some(cap_last_cap)),
    ("sys/vm", None),
    ("sys/vm/overcommit_memory", Some(|_| "0\n".into())),
    ("sys/fs", None),
    ("sys/fs/pipe-max-size", Some(|_| "1048576\n".into())),
];

fn uptime(k: &Kernel) -> String {
    let up = k.boot_time.elapsed();
    format!("{}.{:02} 0.00\n", up.as_secs(), up.subsec_millis() / 10)
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
            Node::File { pid, tid, file } => (3 + file as u64, pid, tid),
            Node::Link(pid, l) => (10 + l as u64, pid, 0),
            Node::FdDir(pid) => (14, pid, 0),
            Node::Fd(pid, fd) => (15, pid, fd),
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
            Node::TaskList(pid) | Node::Link(pid, _) | Node::FdDir(pid) => {
                Self::process(k, pid).map(drop)
            }
            Node::Fd(pid, fd) => {
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
            | Node::Fd(pid, _) => Some(pid),
            _ => None,
        }
    }

    fn mode(&self) -> u32 {
        match self.node {
            Node::Root | Node::TaskDir { .. } | Node::TaskList(_) | Node::SysDir(_) => {
                S_IFDIR | 0o555
            }
            Node::FdDir(_) => S_IFDIR | 0o500,
            Node::SelfLink | Node::ThreadSelf | Node::Link(..) | Node::Fd(..) => S_IFLNK | 0o777,
            Node::File {
                file: TaskFile::Comm,
                ..
            } => S_IFREG | 0o644,
            Node::File { .. } | Node::SysFile(_) => S_IFREG | 0o444,
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
                })
            }
            _ => Err(Errno::EINVAL),
        }
    }
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
    let mut s = format!(
        "{tid} ({comm}) {st} {} {} {} 0 {tpgid} 4194304 0 0 0 0 {} {} {} {} 20 0 {threads} 0 0 0 0 {rsslim}",
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

const TASK_FILES: [(&[u8], TaskFile); 3] = [
    (b"stat", TaskFile::Stat),
    (b"status", TaskFile::Status),
    (b"comm", TaskFile::Comm),
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
        if flags & linux_raw_sys::general::O_ACCMODE as i32 != 0 {
            return Err(Errno::EACCES);
        }
        Ok(Box::new(Snapshot(self.contents(&k)?)))
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
        if let Node::FdDir(pid) = self.node {
            let fd = parse_num(name).ok_or(Errno::ENOENT)?;
            Self::view(&k, pid, |v| v.fds.get(fd).map(drop))
                .and_then(|r| r)
                .map_err(|_| Errno::ENOENT)?;
            return Ok(ProcInode::make(&k, Node::Fd(pid, fd)));
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

/// A generated file's contents as of open.
struct Snapshot(Vec<u8>);

impl FileOps for Snapshot {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let Ok(off) = usize::try_from(off) else {
            return Ok(0);
        };
        let rest = self.0.get(off..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EBADF)
    }
}
