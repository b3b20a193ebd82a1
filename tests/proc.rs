//! /proc: the sandbox's processes and system as its own syscalls see
//! them, natively vs under veil, and real programs that read it.

mod common;

use common::{assert_program_passes, run_veil, Link};

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
