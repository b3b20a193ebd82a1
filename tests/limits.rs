//! Memory limits: RLIMIT_AS and RLIMIT_DATA (tests/c/limits/*.c and Python,
//! natively vs under veil), and the sandbox-wide `veil do --memory`, past
//! which the process asking for more is killed and everything else goes on.

mod common;

use common::{assert_program_passes, compile, run_veil, run_veil_raw, Case, Link, Output, Status};

fn rlimit_as(link: Link) {
    let out = assert_program_passes("limits/rlimit_as", link);
    assert!(
        out.stdout_str()
            .contains("malloc failed after reaching the limit: ok\n"),
        "{}",
        out.describe()
    );
}

#[test]
fn rlimit_as_static() {
    rlimit_as(Link::Static);
}

#[test]
fn rlimit_as_static_pie() {
    rlimit_as(Link::StaticPie);
}

#[test]
fn rlimit_as_dynamic() {
    rlimit_as(Link::Dynamic);
}

#[test]
fn rlimit_data_static() {
    assert_program_passes("limits/rlimit_data", Link::Static);
}

#[test]
fn rlimit_data_static_pie() {
    assert_program_passes("limits/rlimit_data", Link::StaticPie);
}

#[test]
fn rlimit_data_dynamic() {
    assert_program_passes("limits/rlimit_data", Link::Dynamic);
}

/// Python's allocator turns the ENOMEM of mmap and mremap into MemoryError.
#[test]
fn python_memory_error_under_rlimit_as() {
    const SCRIPT: &str = r#"
import resource
resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))
try:
    bytearray(1 << 30)
except MemoryError:
    print("1 GiB at once: MemoryError")
b = bytearray()
try:
    while True:
        b.extend(bytes(8 << 20))
except MemoryError:
    print("growth: MemoryError", 64 << 20 < len(b) < 256 << 20)
del b
print("after freeing:", len(bytearray(64 << 20)))
"#;
    let (_, veil) = Case::new(&["python3", "-c", SCRIPT]).assert_same();
    assert_eq!(
        veil.stdout_str(),
        "1 GiB at once: MemoryError\ngrowth: MemoryError True\nafter freeing: 67108864\n"
    );
}

/// `veil do --memory 128m` running tests/c/limits/oom.c in `mode`.
fn oom(mode: &str, mib: u32) -> Output {
    let bin = compile("limits/oom", Link::Static);
    let bin = bin.to_str().expect("UTF-8 path");
    run_veil_raw(&["do", "--memory", "128m", bin, mode, &mib.to_string()])
}

/// Killed as Linux's OOM killer kills: SIGKILL, reported by veil as a
/// shell does (128 + 9), with one warning; the next sandbox starts fine.
#[track_caller]
fn assert_oom_killed(out: &Output) {
    // veil itself exits: only the sandboxed process was killed.
    assert_eq!(out.status, Status::Exited(137), "{}", out.describe());
    assert_eq!(out.stdout_str(), "", "{}", out.describe());
    let stderr = out.stderr_str();
    assert_eq!(
        stderr
            .matches("out of memory: killed process 1 (limits-oom-stat)")
            .count(),
        1,
        "{}",
        out.describe()
    );
    run_veil(&["true"], &[]).assert_success();
}

/// `mode` past the limit is killed; the same well under it completes.
#[track_caller]
fn assert_oom_boundary(mode: &str, over_mib: u32) {
    assert_oom_killed(&oom(mode, over_mib));
    let under = oom(mode, 64);
    under.assert_success();
    assert_eq!(under.stdout_str(), "done\n");
}

#[test]
fn oom_page_faults_past_the_limit_kill() {
    assert_oom_boundary("touch", 1024);
}

#[test]
fn oom_kernel_writes_past_the_limit_kill() {
    assert_oom_boundary("read", 1024);
}

/// tmpfs data lives in the same memory and counts against the limit.
#[test]
fn oom_tmpfs_data_past_the_limit_kills() {
    assert_oom_boundary("tmpfs", 512);
}

/// The process that asked is killed; its parent gets the memory back and
/// goes on.
#[test]
fn oom_kills_the_child_not_its_parent() {
    let out = oom("fork", 1024);
    out.assert_success();
    assert_eq!(out.stdout_str(), "child: signaled 9 core=0\ndone\n");
    assert!(
        out.stderr_str()
            .contains("out of memory: killed process 2 (limits-oom-stat)"),
        "{}",
        out.describe()
    );
}

/// The sandbox sees its limit as its memory, as a container does.
#[test]
fn memory_limit_is_the_sandbox_memory() {
    let out = run_veil_raw(&[
        "do",
        "--memory",
        "128m",
        "sh",
        "-c",
        "head -1 /proc/meminfo; getconf _PHYS_PAGES; cat /sys/fs/cgroup/memory.max",
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout_str(),
        "MemTotal:         131072 kB\n32768\n134217728\n"
    );
}

#[test]
fn memory_sizes_are_checked() {
    for bad in ["0", "12x", "m", "99999999999g"] {
        let out = run_veil_raw(&["do", "--memory", bad, "true"]);
        assert_eq!(
            out.status,
            Status::Exited(2),
            "--memory {bad}: {}",
            out.describe()
        );
    }
    run_veil_raw(&["do", "--memory", "1G", "true"]).assert_success();
}
