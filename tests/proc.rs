//! /proc: the sandbox's processes and system as its own syscalls see
//! them, natively vs under veil, and real programs that read it.

mod common;

use common::{assert_program_passes, run_native, run_veil, Link};

#[test]
fn self_stat_status_links_fds_tasks_and_children() {
    for link in [Link::Static, Link::StaticPie, Link::Dynamic] {
        assert_program_passes("proc/self", link);
    }
}

/// A program listing its own descriptors: 0-2 plus the directory's own
/// (not compared natively, where the test runner leaks descriptors).
#[test]
fn python_lists_its_fds() {
    let script = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))";
    let veil = run_veil(&["/usr/bin/python3", "-c", script], &[]);
    veil.assert_success();
    assert_eq!(veil.stdout_str(), "[0, 1, 2, 3]\n");
}

/// procps reads /proc/PID/stat and status of every process it lists.
#[test]
fn ps_lists_the_sandbox() {
    if !std::path::Path::new("/usr/bin/ps").exists() {
        eprintln!("skipped: /usr/bin/ps is not installed");
        return;
    }
    let out = run_veil(&["/usr/bin/ps", "-e", "-o", "pid=,comm="], &[]);
    out.assert_success();
    assert_eq!(
        out.stdout_str().split_whitespace().collect::<Vec<_>>(),
        ["1", "ps"]
    );
}

#[test]
fn memory_descriptors_writable_files_and_system_sizes() {
    for link in [Link::Static, Link::StaticPie, Link::Dynamic] {
        assert_program_passes("proc/mem", link);
    }
}

fn have(path: &str) -> bool {
    let there = std::path::Path::new(path).exists();
    if !there {
        eprintln!("skipped: {path} is not installed");
    }
    there
}

/// `ps aux`: the same header as natively, and a line for init (PID 1),
/// which is ps itself.
#[test]
fn ps_aux_shows_init() {
    if !have("/usr/bin/ps") {
        return;
    }
    let native = run_native(&["/usr/bin/ps", "aux"], &[]);
    let veil = run_veil(&["/usr/bin/ps", "aux"], &[]);
    veil.assert_success();
    let (n, v) = (native.stdout_str(), veil.stdout_str());
    assert_eq!(n.lines().next(), v.lines().next(), "{}", veil.describe());
    let init: Vec<&str> = v.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert!(init.len() >= 11, "{v}");
    assert_eq!(init[1], "1", "{v}");
    assert_eq!(init[10..], ["/usr/bin/ps", "aux"], "{v}");
    let (vsz, rss): (u64, u64) = (init[4].parse().unwrap_or(0), init[5].parse().unwrap_or(0));
    assert!(vsz > 0 && rss > 0 && rss <= vsz, "{v}");
    assert!(veil.stderr_str().is_empty(), "{}", veil.describe());
}

/// top's summary lines carry the labels they do natively.
#[test]
fn top_summary() {
    if !have("/usr/bin/top") {
        return;
    }
    let argv = ["/usr/bin/top", "-bn1"];
    let native = run_native(&argv, &[]);
    let veil = run_veil(&argv, &[]);
    veil.assert_success();
    let label = |l: &str| {
        l.split(':')
            .next()
            .unwrap_or("")
            .split(" -")
            .next()
            .unwrap_or("")
            .to_string()
    };
    let labels = |s: String| s.lines().take(5).map(label).collect::<Vec<_>>();
    assert_eq!(
        labels(native.stdout_str()),
        labels(veil.stdout_str()),
        "{}",
        veil.describe()
    );
    assert!(veil.stderr_str().is_empty(), "{}", veil.describe());
}

/// free, uptime and nproc read meminfo, uptime/loadavg and the CPU mask.
#[test]
fn free_uptime_nproc() {
    let free = run_veil(&["/usr/bin/free"], &[]);
    free.assert_success();
    let out = free.stdout_str();
    let mem: Vec<u64> = out
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(mem.len() == 6 && mem[0] > 0 && mem[0] >= mem[5], "{out}");
    let up = run_veil(&["/usr/bin/uptime"], &[]);
    up.assert_success();
    assert!(
        up.stdout_str().contains("load average: 0.00, 0.00, 0.00"),
        "{}",
        up.describe()
    );
    let native = run_native(&["/usr/bin/nproc"], &[]);
    let veil = run_veil(&["/usr/bin/nproc"], &[]);
    veil.assert_success();
    assert_eq!(native.stdout_str(), veil.stdout_str());
}

/// What Python asks of /proc and the CPU mask.
#[test]
fn python_cpus_and_cmdline() {
    let script = "import os; print(os.cpu_count(), sorted(os.sched_getaffinity(0))); \
                  print(open('/proc/self/cmdline','rb').read().split(b'\\0')[1:3])";
    let argv = ["/usr/bin/python3", "-c", script];
    let native = run_native(&argv, &[]);
    let veil = run_veil(&argv, &[]);
    veil.assert_success();
    assert_eq!(
        native.stdout_str(),
        veil.stdout_str(),
        "{}",
        veil.describe()
    );
}
