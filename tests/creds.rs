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
