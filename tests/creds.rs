//! Credentials, capabilities, scheduling, resource usage and limits,
//! natively (as root) vs under veil.

mod common;

use common::{assert_program_passes, Link};

fn passes(name: &str) {
    for link in [Link::Static, Link::Dynamic] {
        assert_program_passes(&format!("creds/{name}"), link);
    }
}

#[test]
fn id_state_machine_and_access_checks() {
    passes("ids");
}

#[test]
fn capabilities_bounding_ambient_securebits_and_exec() {
    passes("caps");
}

/// glibc's setuid, setgid and setgroups reach every thread through
/// SIGSETXID and tgkill.
#[test]
fn setxid_in_every_thread() {
    passes("setxid_threads");
}

#[test]
fn scheduling_affinity_policies_and_nice() {
    passes("sched");
}

/// CPU time charged by the sentry: getrusage, times, CPU-time clocks,
/// children's time after wait.
#[test]
fn resource_usage() {
    passes("usage");
}

#[test]
fn rlimits_nofile_stack_and_prlimit() {
    passes("limits");
}
