//! Clocks and the vDSO, natively vs veil.

mod common;

use common::{assert_program_passes, Case, Link};

/// The vDSO is mapped and listed as Linux's is, and its clocks agree with
/// the system calls' in every link mode (a static binary finds it through
/// AT_SYSINFO_EHDR too).
#[test]
fn the_vdso_serves_the_clocks() {
    for link in Link::ALL {
        assert_program_passes("time/vdso", link);
    }
}

/// clock_gettime and gettimeofday through the vDSO never trap into the
/// sentry: --strace shows none of them.
#[test]
fn vdso_clocks_make_no_system_calls() {
    // After the sentry has measured the TSC (20 ms after boot), between
    // two getppid calls that mark the loop in the trace.
    let script = "import os, time\ntime.sleep(0.2)\nos.getppid()\n\
                  for _ in range(200): time.monotonic(); time.time()\n\
                  os.getppid()\nprint('ok')";
    let out = Case::new(&["/usr/bin/python3", "-c", script])
        .veil_flag("--strace")
        .veil();
    out.assert_success();
    assert_eq!(out.stdout_str(), "ok\n");
    let traced = out.stderr_str();
    assert_eq!(
        traced.matches("getppid(").count(),
        2,
        "the markers are missing:\n{traced}"
    );
    let in_loop: Vec<&str> = traced
        .lines()
        .skip_while(|l| !l.contains("getppid("))
        .skip(1)
        .take_while(|l| !l.contains("getppid("))
        .collect();
    let trapped: Vec<&&str> = in_loop
        .iter()
        .filter(|l| l.contains("clock_gettime(") || l.contains("gettimeofday("))
        .collect();
    assert!(trapped.is_empty(), "clock calls trapped: {trapped:?}");
}
