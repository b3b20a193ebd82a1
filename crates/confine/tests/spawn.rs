//! Spawning for OCI lifecycles: a detached child outlives its spawner and
//! is re-parented to the spawner's subreaper; an attached one dies with it;
//! a child joins the cgroups asked for before it runs.

#![allow(clippy::unwrap_used)] // A test's failure is a panic.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::libc;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use veil_confine::spawn::{Spawn, SENTRY_NAMESPACES};

/// Set for the spawner helper: `detached` or `attached`.
const SPAWNER: &str = "VEIL_TEST_SPAWNER";

/// The spawner, run in a process of its own by `spawned_by_exited_spawner`:
/// starts a long sleep in the sentry's namespaces with /dev/null as its
/// stdio, prints its pid and exits
/// without waiting for it.
#[test]
#[ignore = "a helper process of the detached/attached tests, not a test"]
fn helper_spawner() {
    let mode = std::env::var(SPAWNER).expect("run by the spawn tests");
    let mut sleep = Spawn::new(Path::new("/bin/sleep"), SENTRY_NAMESPACES).unwrap();
    // Holding none of our pipes, which the test reads to their end.
    sleep.arg("60").null_stdio().unwrap();
    if mode == "detached" {
        sleep.detached();
    }
    let child = sleep.spawn().unwrap();
    println!("spawned-pid={}", child.pid());
    std::process::exit(0);
}

/// Makes this test process the subreaper of its descendants, runs the
/// spawner helper in `mode` until it exits, and returns the pid of the
/// sleep it started, now our child.
fn spawned_by_exited_spawner(mode: &str) -> Pid {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_spawner", "--ignored", "--nocapture"])
        .env(SPAWNER, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "spawner failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("spawned-pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in the spawner's output: {stdout}"));
    Pid::from_raw(pid)
}

fn ppid(pid: Pid) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the parenthesised command: state, then ppid.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_detached_child_outlives_its_spawner() {
    let pid = spawned_by_exited_spawner("detached");
    assert_eq!(ppid(pid), std::process::id() as i32, "re-parented to us");
    // A parent-death signal was sent before the spawner's exit was
    // reported, and a SIGKILL pending beats our SIGSTOP: stopping proves
    // there was none.
    kill(pid, Signal::SIGSTOP).unwrap();
    assert_eq!(
        waitpid(pid, Some(WaitPidFlag::WUNTRACED)).unwrap(),
        WaitStatus::Stopped(pid, Signal::SIGSTOP)
    );
    kill(pid, Signal::SIGKILL).unwrap();
    assert_eq!(
        waitpid(pid, None).unwrap(),
        WaitStatus::Signaled(pid, Signal::SIGKILL, false)
    );
}

#[test]
fn an_attached_child_dies_with_its_spawner() {
    let pid = spawned_by_exited_spawner("attached");
    // Killed by its parent-death signal, then re-parented to us to reap.
    assert_eq!(
        waitpid(pid, None).unwrap(),
        WaitStatus::Signaled(pid, Signal::SIGKILL, false)
    );
}

/// Test cgroups, removed when dropped (after their processes are gone).
struct Cgroups(Vec<PathBuf>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in &self.0 {
            // Busy for a moment after the last process is reaped.
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// A new cgroup `name` in one cgroup v1 hierarchy and in the unified one,
/// wherever we may make them.
fn make_cgroups(name: &str) -> Cgroups {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut made = Cgroups(Vec::new());
    let mut have = (false, false);
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|&f| f == "-") else {
            continue;
        };
        let v1 = match fields.get(sep + 1) {
            Some(&"cgroup") => true,
            Some(&"cgroup2") => false,
            _ => continue,
        };
        let seen = if v1 { &mut have.0 } else { &mut have.1 };
        let dir = Path::new(fields[4]).join(name);
        if !*seen && std::fs::create_dir(&dir).is_ok() {
            *seen = true;
            made.0.push(dir);
        }
    }
    made
}

#[test]
fn a_child_runs_inside_its_cgroups() {
    let name = format!("veil-test-{}", std::process::id());
    let cgroups = make_cgroups(&name);
    if cgroups.0.is_empty() {
        eprintln!("skipped: no writable cgroup hierarchy");
        return;
    }
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut sh = Spawn::new(Path::new("/bin/sh"), SENTRY_NAMESPACES).unwrap();
    let fd = sh.pass_fd(&w);
    sh.args(["-c", &format!("cat /proc/self/cgroup >&{fd}")])
        .cgroup_procs(cgroups.0.iter().map(|d| d.join("cgroup.procs")));
    let child = sh.spawn().unwrap();
    drop(w);
    let mut seen = String::new();
    std::fs::File::from(r).read_to_string(&mut seen).unwrap();
    assert!(child.wait().unwrap().success());
    let inside = seen
        .lines()
        .filter(|l| l.ends_with(&format!(":/{name}")))
        .count();
    assert_eq!(inside, cgroups.0.len(), "{seen}");
}

#[test]
fn a_cgroup_that_cannot_be_joined_fails_the_spawn() {
    let mut sleep = Spawn::new(Path::new("/bin/sleep"), CloneFlags::empty()).unwrap();
    sleep
        .arg("60")
        .cgroup_procs([PathBuf::from("/nonexistent-veil-cgroup/cgroup.procs")]);
    let err = sleep.spawn().unwrap_err().to_string();
    assert!(
        err.starts_with(
            "putting the process into its cgroup: /nonexistent-veil-cgroup/cgroup.procs:"
        ),
        "{err}"
    );
}

/// A child with /dev/null as its own stdio can still be passed ours: the
/// passed descriptors are taken before stdio is replaced.
#[test]
fn passed_stdio_survives_null_stdio() {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let mut sh = Spawn::new(Path::new("/bin/sh"), CloneFlags::empty()).unwrap();
    sh.null_stdio().unwrap();
    let fd = sh.pass_fd(&w);
    sh.arg("-c")
        .arg(format!("echo to-passed >&{fd}; echo to-stdout"));
    let child = sh.spawn().unwrap();
    drop(w);
    let mut got = String::new();
    std::fs::File::from(r).read_to_string(&mut got).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(got, "to-passed\n");
}
