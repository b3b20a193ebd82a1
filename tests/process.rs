//! Processes: fork, exec and wait, natively vs under veil.

mod common;

use common::{assert_same, assert_same_program, Link};

fn fork_wait(link: Link) {
    let (_, veil) = assert_same_program("process/fork_wait", link);
    assert!(
        veil.stdout_str().ends_with("all ok\n"),
        "{}",
        veil.describe()
    );
}

#[test]
fn fork_wait_static() {
    fork_wait(Link::Static);
}

#[test]
fn fork_wait_dynamic() {
    fork_wait(Link::Dynamic);
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
