//! Generators of /proc files: per-process memory views and the
//! system-wide files, in Linux's formats.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use veil_abi::{Errno, PAGE_SIZE};

use super::{lock, ticks, ProcInode};
use crate::kernel::Kernel;
use crate::mm::{MapInfo, MemoryManager};
use crate::task::{CpuUsage, ThreadGroup};

/// Host facts read once, when /proc is created: the CPU descriptions and
/// the memory the sandbox may use.
struct Host {
    /// Each processor's block of the host's /proc/cpuinfo, by number.
    cpuinfo: Vec<(usize, String)>,
    mem_total: u64,
}

static HOST: OnceLock<Host> = OnceLock::new();

pub(super) fn init_host() {
    HOST.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpuinfo = text
            .split("\n\n")
            .filter_map(|block| {
                let n = block
                    .lines()
                    .find_map(|l| l.strip_prefix("processor"))?
                    .trim_start_matches([' ', '\t', ':'])
                    .trim()
                    .parse()
                    .ok()?;
                Some((n, block.trim_end().to_string()))
            })
            .collect();
        let si = rustix::system::sysinfo();
        Host {
            cpuinfo,
            mem_total: si.totalram.saturating_mul(u64::from(si.mem_unit.max(1))),
        }
    });
}

fn host() -> &'static Host {
    init_host();
    HOST.get().expect("initialized above")
}

/// The sandbox's CPU numbers, from its mask.
pub(crate) fn cpu_ids(k: &Kernel) -> Vec<usize> {
    (0..k.cpus.len() * 8)
        .filter(|&c| k.cpus[c / 8] & (1 << (c % 8)) != 0)
        .collect()
}

/// A CPU list as sysfs writes it: "0-3,5".
pub fn cpu_list(k: &Kernel) -> String {
    let ids = cpu_ids(k);
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    format!("{}\n", out.join(","))
}

/// (total, free) bytes of the sandbox's memory: its limit (`veil do
/// --memory`) or else the host's RAM, less what the memory file holds.
pub fn memory(k: &Kernel) -> (u64, u64) {
    let total = k.memfile.limit().unwrap_or_else(|| host().mem_total);
    (total, total.saturating_sub(k.memfile.allocated()))
}

pub(super) fn meminfo(k: &Kernel) -> String {
    let (total, free) = memory(k);
    let kb = |b: u64| b / 1024;
    let used = total - free;
    let fields: [(&str, u64); 27] = [
        ("MemTotal", kb(total)),
        ("MemFree", kb(free)),
        ("MemAvailable", kb(free)),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("Active", kb(used)),
        ("Inactive", 0),
        ("Active(anon)", kb(used)),
        ("Inactive(anon)", 0),
        ("Active(file)", 0),
        ("Inactive(file)", 0),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", kb(used)),
        ("Mapped", 0),
        ("Shmem", 0),
        ("KReclaimable", 0),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
        ("CommitLimit", kb(total)),
        ("Committed_AS", kb(used)),
    ];
    let mut s = String::new();
    for (name, v) in fields {
        let _ = writeln!(s, "{:<15} {v:>8} kB", format!("{name}:"));
    }
    s
}

pub(super) fn cpuinfo(k: &Kernel) -> String {
    let h = host();
    let mut s = String::new();
    for cpu in cpu_ids(k) {
        if let Some((_, block)) = h.cpuinfo.iter().find(|(n, _)| *n == cpu) {
            let _ = write!(s, "{block}\n\n");
        } else {
            let _ = write!(s, "processor\t: {cpu}\n\n");
        }
    }
    s
}

/// Busy time of every process of the sandbox: the live ones' own and
/// what init collected from the children it reaped.
fn busy(k: &Kernel) -> CpuUsage {
    let tgs: Vec<_> = k.processes().values().cloned().collect();
    let mut total = CpuUsage::default();
    for tg in &tgs {
        total += tg.cpu(k);
        if !tgs.iter().any(|p| p.pid == tg.parent_pid()) {
            total += *lock(&tg.children_cpu);
        }
    }
    total
}

pub(super) fn stat(k: &Kernel) -> String {
    let cpus = cpu_ids(k);
    let n = cpus.len().max(1) as u64;
    let up = k.boot_time.elapsed();
    let b = busy(k);
    let (user, system) = (ticks(b.user_ns), ticks(b.sys_ns));
    let idle = ticks(up.as_nanos() as u64 * n).saturating_sub(user + system);
    let mut s = format!("cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\n");
    // The sentry does not know which CPU ran what: the time is spread evenly.
    for c in &cpus {
        let _ = writeln!(
            s,
            "cpu{c} {} 0 {} {} 0 0 0 0 0 0",
            user / n,
            system / n,
            idle / n
        );
    }
    let btime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.saturating_sub(up).as_secs());
    let procs = k.processes();
    let running = procs.values().filter(|tg| lock(&tg.exit).is_none()).count();
    let created = k.tids_allocated();
    drop(procs);
    let _ = write!(
        s,
        "intr 0\nctxt 0\nbtime {btime}\nprocesses {created}\nprocs_running {running}\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
    );
    s
}

pub(super) fn loadavg(k: &Kernel) -> String {
    let procs = k.processes();
    let threads: usize = procs.values().map(|tg| lock(&tg.threads).len()).sum();
    let last = procs.keys().max().copied().unwrap_or(0);
    format!("0.00 0.00 0.00 1/{threads} {last}\n")
}

/// The filesystems the sentry implements, as mount(2) and /proc list them.
pub(super) fn filesystems(_: &Kernel) -> String {
    ["proc", "sysfs", "tmpfs", "devpts", "cgroup2"]
        .iter()
        .map(|fs| format!("nodev\t{fs}\n"))
        .collect()
}

pub(super) fn net_dev(_: &Kernel) -> String {
    "Inter-|   Receive                                                |  Transmit\n \
     face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
        .into()
}

pub(super) fn net_unix(_: &Kernel) -> String {
    "Num       RefCount Protocol Flags    Type St Inode Path\n".into()
}

pub(super) fn net_tcp(_: &Kernel) -> String {
    format!(
        "{:<150}\n",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    )
}

pub(super) fn net_tcp6(_: &Kernel) -> String {
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n".into()
}

pub(super) fn net_udp(_: &Kernel) -> String {
    format!(
        "{:<127}\n",
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops"
    )
}

pub(super) fn boot_id(_: &Kernel) -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(uuid).clone()
}

/// A random (version 4) UUID, as /proc/sys/kernel/random/uuid.
pub(super) fn uuid() -> String {
    let mut b = [0u8; 16];
    // A failed getrandom leaves zeros: still a well-formed UUID.
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}\n",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Page counts of an address space, as statm and status report them.
pub(super) struct MemCounts {
    pub size: u64,
    pub rss: u64,
    pub shared: u64,
    pub text: u64,
    pub data: u64,
    pub stack: u64,
}

pub(super) fn mem_counts(mm: &MemoryManager) -> MemCounts {
    let mut c = MemCounts {
        size: 0,
        rss: 0,
        shared: 0,
        text: 0,
        data: 0,
        stack: 0,
    };
    for m in mm.mappings() {
        let pages = (m.end - m.start) / PAGE_SIZE;
        c.size += pages;
        c.rss += m.rss / PAGE_SIZE;
        if m.name.is_some() {
            c.shared += m.rss / PAGE_SIZE;
        }
        if m.prot.exec() && m.name.is_some() && !m.shared {
            c.text += pages;
        }
        if m.growsdown {
            c.stack += pages;
        } else if m.prot.write() && !m.shared {
            c.data += pages;
        }
    }
    c
}

pub(super) fn statm(mm: &MemoryManager) -> String {
    let c = mem_counts(mm);
    format!(
        "{} {} {} {} 0 {} 0\n",
        c.size,
        c.rss,
        c.shared,
        c.text,
        c.data + c.stack
    )
}

fn map_line(s: &mut String, m: &MapInfo) {
    let p = |on: bool, c: char| if on { c } else { '-' };
    let (dev, ino) = m.name.as_ref().map_or((0, 0), |n| (n.dev, n.ino));
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let head = format!(
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {ino} ",
        m.start,
        m.end,
        p(m.prot.read(), 'r'),
        p(m.prot.write(), 'w'),
        p(m.prot.exec(), 'x'),
        if m.shared { 's' } else { 'p' },
        m.offset,
        major,
        minor,
    );
    let name = match (&m.name, m.label) {
        (Some(n), _) => String::from_utf8_lossy(&n.path).into_owned(),
        (None, Some(l)) => l.to_string(),
        (None, None) => String::new(),
    };
    if name.is_empty() {
        let _ = writeln!(s, "{head}");
    } else {
        // Linux pads to 72 columns, then a space (seq_pad).
        let _ = writeln!(s, "{head:<72} {name}");
    }
}

pub(super) fn maps(mm: &MemoryManager) -> String {
    let mut s = String::new();
    for m in mm.mappings() {
        map_line(&mut s, &m);
    }
    s
}

pub(super) fn smaps(mm: &MemoryManager) -> String {
    let mut s = String::new();
    for m in mm.mappings() {
        map_line(&mut s, &m);
        let kb = |b: u64| b / 1024;
        let size = kb(m.end - m.start);
        let rss = kb(m.rss);
        let anon = if m.name.is_none() { rss } else { 0 };
        let (shared, private) = if m.shared { (rss, 0) } else { (0, rss) };
        // Private file pages stay clean until written.
        let (private_clean, private) = if m.name.is_some() && !m.prot.write() {
            (private, 0)
        } else {
            (0, private)
        };
        let rows: [(&str, u64); 23] = [
            ("Size", size),
            ("KernelPageSize", 4),
            ("MMUPageSize", 4),
            ("Rss", rss),
            ("Pss", rss),
            ("Pss_Dirty", shared + private),
            ("Shared_Clean", 0),
            ("Shared_Dirty", shared),
            ("Private_Clean", private_clean),
            ("Private_Dirty", private),
            ("Referenced", rss),
            ("Anonymous", anon),
            ("KSM", 0),
            ("LazyFree", 0),
            ("AnonHugePages", 0),
            ("ShmemPmdMapped", 0),
            ("FilePmdMapped", 0),
            ("Shared_Hugetlb", 0),
            ("Private_Hugetlb", 0),
            ("Swap", 0),
            ("SwapPss", 0),
            ("Locked", 0),
            ("THPeligible", 0),
        ];
        for (name, v) in rows {
            if name == "THPeligible" {
                let _ = writeln!(s, "THPeligible:    {v}");
            } else {
                let _ = writeln!(s, "{:<16}{v:>8} kB", format!("{name}:"));
            }
        }
        let mut flags = String::new();
        for (on, f) in [
            (m.prot.read(), "rd"),
            (m.prot.write(), "wr"),
            (m.prot.exec(), "ex"),
            (m.shared, "sh"),
            (true, "mr"),
            (true, "mw"),
            (true, "me"),
            (m.shared, "ms"),
            (m.growsdown, "gd"),
            (m.name.is_none(), "ac"),
        ] {
            if on {
                flags.push_str(f);
                flags.push(' ');
            }
        }
        let _ = writeln!(s, "VmFlags: {flags}");
    }
    s
}

/// Status lines about memory, after Linux's "Threads" predecessors.
pub(super) fn status_vm(s: &mut String, mm: &MemoryManager, tg: &ThreadGroup) {
    let c = mem_counts(mm);
    let kb = |pages: u64| pages * PAGE_SIZE / 1024;
    let hwm = tg.note_rss(mm) / 1024;
    for (name, v) in [
        ("VmPeak", kb(c.size)),
        ("VmSize", kb(c.size)),
        ("VmLck", 0),
        ("VmPin", 0),
        ("VmHWM", hwm),
        ("VmRSS", kb(c.rss)),
        ("RssAnon", kb(c.rss - c.shared)),
        ("RssFile", kb(c.shared)),
        ("RssShmem", 0),
        ("VmData", kb(c.data)),
        ("VmStk", kb(c.stack)),
        ("VmExe", kb(c.text)),
        ("VmLib", 0),
        ("VmPTE", 0),
        ("VmSwap", 0),
    ] {
        let _ = writeln!(s, "{name}:\t{v:>8} kB");
    }
}

/// The bytes of `start..end` of a process's memory, as far as mapped.
fn read_region(mm: &MemoryManager, start: u64, end: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let n = (end - at).min(PAGE_SIZE - at % PAGE_SIZE);
        let mut buf = vec![0u8; n as usize];
        if mm.copy_in(at, &mut buf).is_err() {
            break;
        }
        out.extend_from_slice(&buf);
        at += n;
    }
    out
}

/// /proc/PID/cmdline: the argument area as the process left it. When the
/// process overwrote the final NUL (setproctitle), the string runs on into
/// the environment, as Linux's get_mm_cmdline.
pub(super) fn cmdline(mm: &MemoryManager) -> Vec<u8> {
    let r = mm.arg_regions();
    if r.arg_end <= r.arg_start {
        return Vec::new();
    }
    let mut args = read_region(mm, r.arg_start, r.arg_end);
    if args.last().is_some_and(|&b| b != 0) {
        if let Some(nul) = args.iter().position(|&b| b == 0) {
            args.truncate(nul);
        } else {
            let env = read_region(mm, r.env_start, r.env_end);
            let n = env.iter().position(|&b| b == 0).unwrap_or(env.len());
            args.extend_from_slice(&env[..n]);
        }
    }
    args
}

pub(super) fn environ(mm: &MemoryManager) -> Vec<u8> {
    let r = mm.arg_regions();
    read_region(mm, r.env_start, r.env_end)
}

/// /proc/PID/fdinfo/N.
pub(super) fn fdinfo(k: &Kernel, pid: i32, fd: i32) -> Result<String, Errno> {
    let (file, cloexec) = ProcInode::view(k, pid, |v| {
        v.fds
            .get(fd)
            .map(|f| (f, v.fds.get_cloexec(fd).unwrap_or(false)))
    })?
    .map_err(|_| Errno::ENOENT)?;
    let pos = file.seek(0, 1).unwrap_or(0);
    let mut flags = file.flags() as u32;
    if cloexec {
        flags |= linux_raw_sys::general::O_CLOEXEC;
    }
    let ino = file.stat().map_or(0, |st| st.st_ino);
    let mnt_id = file.path().mount.id();
    Ok(format!(
        "pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{mnt_id}\nino:\t{ino}\n"
    ))
}
