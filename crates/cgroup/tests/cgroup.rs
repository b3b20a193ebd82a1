//! veil-cgroup on the host's real cgroups (needs root): limits read back,
//! a child joins and is listed, the memory limit kills an allocator, a
//! container freezes and thaws, and remove leaves nothing behind.

#![allow(clippy::unwrap_used)] // A test's failure is a panic.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use veil_cgroup::{Cgroup, Version};

const MIB: i64 = 1 << 20;

/// A test's cgroup and the children put in it: on drop (also when the test
/// fails) the cgroup is thawed, the children are killed and reaped, and the
/// cgroup is removed.
struct Guard {
    cgroup: Cgroup,
    children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cgroup.freeze(false);
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = self.cgroup.remove() {
            eprintln!("leaving a test cgroup behind: {e}");
        }
    }
}

impl Guard {
    /// Starts `cmd` and puts it into the cgroup.
    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        self.children.push(child);
        for file in self.cgroup.procs_files() {
            std::fs::write(&file, pid.to_string()).unwrap();
        }
        pid
    }

    /// The value of a controller's file, from its v1 hierarchy or else the
    /// unified one.
    fn value(&self, controller: &str, v1_file: &str, v2_file: &str) -> String {
        let leaves = self.cgroup.leaves();
        let path = match leaves
            .iter()
            .find(|l| l.version == Version::V1 && l.controllers.iter().any(|c| c == controller))
        {
            Some(l) => l.dir.join(v1_file),
            None => leaves
                .iter()
                .find(|l| l.version == Version::V2)
                .unwrap()
                .dir
                .join(v2_file),
        };
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }
}

/// A new cgroup, or None (after saying why) when this host can't make one;
/// under CI it must.
fn make(cgroups_path: Option<&str>, resources: Option<&LinuxResources>) -> Option<Guard> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let skip = |why: &str| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why}, under CI"
        );
        eprintln!("skipped: {why}");
        None
    };
    if !rustix::process::geteuid().is_root() {
        return skip("not root");
    }
    if !Path::new(veil_cgroup::CGROUP_ROOT).is_dir() {
        return skip("no /sys/fs/cgroup");
    }
    let id = format!(
        "veil-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = cgroups_path.map(|p| p.replace("ID", &id));
    let cgroup = Cgroup::plan(path.as_deref().map(Path::new), &id, false).unwrap();
    let guard = Guard {
        cgroup,
        children: Vec::new(),
    };
    guard.cgroup.create(resources, 0).unwrap();
    Some(guard)
}

fn limits(swap: bool) -> LinuxResources {
    let mut memory = LinuxMemoryBuilder::default().limit(64 * MIB);
    if swap {
        // No swap at all, so that the limit can't be met by swapping out.
        memory = memory.swap(64 * MIB);
    }
    LinuxResourcesBuilder::default()
        .memory(memory.build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(100).build().unwrap())
        .cpu(LinuxCpuBuilder::default().shares(512u64).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn limits_are_applied() {
    let Some(cg) = make(Some("/ID"), Some(&limits(false))) else {
        return;
    };
    for leaf in cg.cgroup.leaves() {
        assert!(leaf.dir.is_dir(), "{}", leaf.dir.display());
        assert_eq!(leaf.dir.parent().unwrap(), leaf.mountpoint);
    }
    assert_eq!(
        cg.value("memory", "memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    // 100 application tasks, each a sentry thread and a stub thread, and
    // the fixed slack.
    assert_eq!(cg.value("pids", "pids.max", "pids.max"), "232");
    let cpu = cg.value("cpu", "cpu.shares", "cpu.weight");
    assert!(cpu == "512" || cpu == "20", "{cpu}");
    let stats = cg.cgroup.memory_stats().unwrap();
    assert_eq!(stats.limit, Some(64 << 20), "{stats:?}");
    assert!(stats.usage.is_some(), "{stats:?}");
    assert_eq!(cg.cgroup.pids().unwrap(), Vec::<i32>::new());
}

#[test]
fn a_child_joins_and_remove_leaves_nothing() {
    // No cgroupsPath: under our own cgroup in each hierarchy.
    let Some(mut cg) = make(None, None) else {
        return;
    };
    let pid = cg.spawn(Command::new("sleep").arg("100"));
    assert_eq!(cg.cgroup.pids().unwrap(), [i32::try_from(pid).unwrap()]);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let child = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let name = cg.cgroup.leaves()[0]
        .dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    for (own, child) in own.lines().zip(child.lines()) {
        let own = own.trim_end_matches('/');
        assert_eq!(child, format!("{own}/{name}"), "{child}");
    }
    assert_eq!(child.lines().count(), cg.cgroup.leaves().len());

    for mut child in cg.children.drain(..) {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    cg.cgroup.remove().unwrap();
    for leaf in cg.cgroup.leaves() {
        assert!(!leaf.dir.exists(), "{} is left", leaf.dir.display());
    }
    // Removing again is fine, and a removed cgroup has no pids.
    cg.cgroup.remove().unwrap();
    assert!(cg.cgroup.pids().unwrap_err().is_not_found());
}

#[test]
fn the_memory_limit_kills_an_allocator() {
    let Some(mut cg) = make(Some("/ID"), Some(&limits(true))) else {
        return;
    };
    // tail keeps a line without newline whole: 200 MiB of zeros.
    cg.spawn(
        Command::new("tail")
            .stdin(Stdio::piped())
            .stdout(Stdio::null()),
    );
    let mut stdin = cg.children[0].stdin.take().unwrap();
    let chunk = vec![0u8; 1 << 20];
    let written = (0..200)
        .take_while(|_| stdin.write_all(&chunk).is_ok())
        .count();
    drop(stdin);
    let status = cg.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?} after {written} MiB");
    assert!(written < 200, "{written} MiB");
    let stats = cg.cgroup.memory_stats().unwrap();
    assert!(stats.oom_kill.unwrap() >= 1, "{stats:?}");
    assert!(stats.max_usage.is_none_or(|m| m <= 64 << 20), "{stats:?}");
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14 and 15 of stat; `after_comm` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn proc_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("State:")).unwrap();
    line["State:".len()..].trim().to_string()
}

/// Waits up to 5 s for `pid` to use CPU time beyond `ticks`.
fn runs_beyond(pid: u32, ticks: u64) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if cpu_ticks(pid) > ticks {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn freeze_and_thaw() {
    let Some(mut cg) = make(Some("/ID"), None) else {
        return;
    };
    let pid = cg.spawn(Command::new("sh").args(["-c", "while :; do :; done"]));
    assert!(runs_beyond(pid, 0), "the child doesn't run");

    cg.cgroup.freeze(true).unwrap();
    let v1 = cg
        .cgroup
        .leaves()
        .iter()
        .any(|l| l.controllers.iter().any(|c| c == "freezer"));
    if v1 {
        assert_eq!(cg.value("freezer", "freezer.state", ""), "FROZEN");
        assert!(proc_state(pid).starts_with('D'), "{}", proc_state(pid));
    } else {
        let events = cg.value("", "", "cgroup.events");
        assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    }
    let frozen_at = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), frozen_at, "a frozen child ran");

    cg.cgroup.freeze(false).unwrap();
    if v1 {
        assert_eq!(cg.value("freezer", "freezer.state", ""), "THAWED");
    } else {
        let events = cg.value("", "", "cgroup.events");
        assert!(events.lines().any(|l| l == "frozen 0"), "{events}");
    }
    assert!(runs_beyond(pid, frozen_at), "the thawed child doesn't run");
}
