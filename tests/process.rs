//! Processes: fork, exec and wait, natively vs under veil.

mod common;

use common::{assert_program_passes, assert_same, Link};

fn fork_wait(link: Link) {
    assert_program_passes("process/fork_wait", link);
}

#[test]
fn fork_wait_static() {
    fork_wait(Link::Static);
}

#[test]
fn fork_wait_dynamic() {
    fork_wait(Link::Dynamic);
}

#[test]
fn poll_and_select_on_pipes() {
    assert_program_passes("process/poll_pipes", Link::Static);
    assert_program_passes("process/poll_pipes", Link::Dynamic);
}

#[test]
fn pthreads_static() {
    assert_program_passes("process/threads", Link::Static);
}

#[test]
fn pthreads_dynamic() {
    assert_program_passes("process/threads", Link::Dynamic);
}

/// Python threads and a thread pool: clone, futexes and thread exit.
#[test]
fn python_threads() {
    assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import threading, concurrent.futures\n\
         r = []\n\
         ts = [threading.Thread(target=lambda i=i: r.append(i * i)) for i in range(8)]\n\
         [t.start() for t in ts]; [t.join() for t in ts]\n\
         print(sorted(r))\n\
         with concurrent.futures.ThreadPoolExecutor(4) as ex: print(list(ex.map(lambda x: x + 1, range(10))))\n",
    ]);
}

/// Python's subprocess: fork, exec, pipes and poll.
#[test]
fn python_subprocess() {
    assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import subprocess; print(subprocess.run(['ls', '/etc/apt'], capture_output=True).stdout.decode()); \
         print(subprocess.check_output('echo hi | tr a-z A-Z', shell=True))",
    ]);
}

/// A shell runs pipelines and command substitutions: fork, exec, pipes,
/// dup2 and wait together.
#[test]
fn shell_pipelines_and_substitutions() {
    assert_same(&[
        "/bin/sh",
        "-c",
        "echo a | cat; /bin/echo hi; x=$(/bin/echo sub); echo $x; /bin/sh -c 'exit 3'; echo rc=$?",
    ]);
    assert_same(&[
        "/bin/bash",
        "-c",
        "for i in 1 2 3; do echo $i; done | sort -r | head -2",
    ]);
}

/// Every wait status and waitid report, stops and continues, group stops.
#[test]
fn wait_statuses_stops_and_continues() {
    assert_program_passes("process/wait_stop", Link::Static);
    assert_program_passes("process/wait_stop", Link::Dynamic);
}

/// vfork, posix_spawn, clone with shared memory, files and dispositions,
/// CLONE_PARENT and clone3.
#[test]
fn clone_sharing_vfork_and_spawn() {
    assert_program_passes("process/clone_vm", Link::Static);
    assert_program_passes("process/clone_vm", Link::Dynamic);
}

/// Process groups and sessions, parent-death signals, subreapers and the
/// hang-up of orphaned stopped groups.
#[test]
fn sessions_groups_and_orphans() {
    assert_program_passes("process/sessions", Link::Static);
}

/// execve from a secondary thread, execveat and fexecve, and robust
/// mutexes whose owner died.
#[test]
fn exec_from_threads_execveat_and_robust_futexes() {
    assert_program_passes("process/exec_threads", Link::Static);
    assert_program_passes("process/exec_threads", Link::Dynamic);
}

/// Job control on a terminal: controlling terminal, foreground group,
/// SIGTTIN/SIGTTOU and TOSTOP, natively and under veil.
#[test]
fn job_control_on_a_terminal() {
    let bin = common::compile("process/jobctl", Link::Static);
    let bin = common::path_str(&bin);
    let timeout = common::run_timeout();
    let (native_status, native) = common::run_on_terminal(bin, &[], timeout);
    let (veil_status, veil) = common::run_on_terminal(&common::veil_bin(), &["do", bin], timeout);
    assert_eq!(
        native, veil,
        "terminal output differs (left native, right veil)"
    );
    assert_eq!(native_status, veil_status);
    assert!(native.contains("all ok"), "{native}");
}
