//! Signals: handlers, masks, frames and default actions, natively vs veil.

mod common;

use common::{assert_program_passes, assert_same, Link};

#[test]
fn handlers_static() {
    assert_program_passes("signal/handlers", Link::Static);
}

#[test]
fn handlers_dynamic() {
    assert_program_passes("signal/handlers", Link::Dynamic);
}

#[test]
fn cross_process_and_interrupted_calls() {
    assert_program_passes("signal/cross", Link::Static);
}

/// bash's trap runs its handler for a signal the shell sends itself.
#[test]
fn bash_trap() {
    let (_, veil) = assert_same(&[
        "/bin/bash",
        "-c",
        "trap 'echo trapped' USR1; kill -USR1 $$; echo after",
    ]);
    assert_eq!(veil.stdout_str(), "trapped\nafter\n", "{}", veil.describe());
}

/// Process- and thread-directed signals with threads, real-time queueing,
/// sigqueue rules, sigtimedwait and discarding by SIG_IGN.
#[test]
fn queueing_targets_and_timed_waits() {
    assert_program_passes("signal/queue", Link::Static);
    assert_program_passes("signal/queue", Link::Dynamic);
}

/// Signal frames save and restore the whole XSAVE (AVX) state.
#[test]
fn frames_carry_avx_state() {
    assert_program_passes("signal/avx", Link::Static);
}

/// A blocking read of a host pipe (veil's own stdin) is interrupted by a
/// signal inside the sandbox, and restarted under SA_RESTART.
#[test]
fn host_pipe_reads_are_interruptible() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let bin = common::compile("signal/host_read", Link::Static);
    let mut child = Command::new(common::veil_bin())
        .args(["do", common::path_str(&bin)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start veil");
    let stdin = child.stdin.take();
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read output");
    let status = child.wait().expect("wait");
    assert_eq!(
        out, "read interrupted: -1 EINTR\nrestarted read: 0\nall ok\n",
        "{status}"
    );
}

/// POSIX timers: SI_TIMER signals to processes and threads, overruns,
/// SIGEV_NONE and SIGEV_THREAD, absolute times, deletion and fork.
#[test]
fn posix_timers() {
    assert_program_passes("signal/timers", Link::Static);
    assert_program_passes("signal/timers", Link::Dynamic);
}

/// Synchronous signals from faults, with Linux's siginfo, caught and not.
#[test]
fn fault_signals() {
    assert_program_passes("signal/faults", Link::Static);
    assert_program_passes("signal/faults", Link::Dynamic);
}

/// A blocked signal that is ignored by default reaches a sigwait that
/// sleeps when it is sent.
#[test]
fn sigwait_for_default_ignored_signal() {
    assert_program_passes("signal/sigwait_ignored", Link::Static);
}
