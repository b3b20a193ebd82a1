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
