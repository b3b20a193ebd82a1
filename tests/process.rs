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

/// The shell line of issue 3: a pipeline, a background job and wait, and a
/// trap for a signal the shell sends itself.
#[test]
fn bash_jobs_pipes_and_traps() {
    let (_, veil) = assert_same(&[
        "/bin/bash",
        "-c",
        "for i in 1 2 3; do echo $i; done | sort -r | head -2; (sleep 0.2; echo bg) & wait; \
         trap \"echo trapped\" USR1; kill -USR1 $$",
    ]);
    assert_eq!(
        veil.stdout_str(),
        "3\n2\nbg\ntrapped\n",
        "{}",
        veil.describe()
    );
}

/// busybox (static) applets: its shell, sort, find, xargs and timeout,
/// which kills its child with SIGTERM.
#[test]
fn busybox_applets() {
    let (_, veil) = assert_same(&[
        "/bin/busybox",
        "sh",
        "-c",
        "printf 'c\\nb\\na\\n' | busybox sort; \
         busybox find /etc/apt -maxdepth 1 -name '*.d' | busybox sort; \
         echo 1 2 3 | busybox xargs -n1 echo item; \
         busybox timeout 1 busybox sleep 5; echo timeout=$?; \
         busybox timeout 5 busybox true; echo quick=$?; \
         (busybox sleep 0.1; echo sub) & wait; echo done",
    ]);
    assert!(
        veil.stdout_str().contains("timeout=143\n"),
        "{}",
        veil.describe()
    );
}

/// Python's signal.alarm interrupts a sleep with its handler.
#[test]
fn python_signal_alarm() {
    let (_, veil) = assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import signal, time\n\
         signal.signal(signal.SIGALRM, lambda s, f: print('alarm', s))\n\
         signal.alarm(1)\n\
         t = time.monotonic(); time.sleep(3); print('slept through', time.monotonic() - t >= 2.9)\n\
         signal.setitimer(signal.ITIMER_REAL, 0.05)\n\
         signal.pause(); print('paused')\n",
    ]);
    assert_eq!(
        veil.stdout_str(),
        "alarm 14\nslept through True\nalarm 14\npaused\n",
        "{}",
        veil.describe()
    );
}

/// Mutexes, condition variables, barriers and semaphores under load, and
/// threaded children all reaped.
#[test]
fn threads_and_processes_under_load() {
    assert_program_passes("process/stress", Link::Static);
    assert_program_passes("process/stress", Link::Dynamic);
}

/// pidfds: open, poll, signal (with scopes), wait, and CLONE_PIDFD.
#[test]
fn pidfds() {
    assert_program_passes("process/pidfd", Link::Static);
}
