//! Host confinement: what the host's /proc shows of the sentry, the gofer
//! and the stubs while a sandboxed program runs, and what happens when the
//! sentry breaks its own seccomp allowlist.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A `veil do` whose program blocks reading stdin until dropped.
struct Running {
    cli: Child,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let cli = Command::new(veil_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning veil");
        Running { cli }
    }

    fn pid(&self) -> i32 {
        self.cli.id() as i32
    }

    /// Waits until the sandbox's program is running: its stub exists.
    fn processes(&self) -> Processes {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = Processes::of(self.pid());
            if p.sentry.is_some() && p.gofer.is_some() && !p.stubs.is_empty() {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox did not start: {p:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.cli.kill();
        let _ = self.cli.wait();
    }
}

/// veil's processes under one CLI, by host PID.
#[derive(Debug)]
struct Processes {
    sentry: Option<i32>,
    gofer: Option<i32>,
    stubs: Vec<i32>,
}

fn stat_ppid_comm(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let ppid = stat[close + 2..].split(' ').nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

fn children(of: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        else {
            continue;
        };
        if let Some((ppid, comm)) = stat_ppid_comm(pid) {
            if ppid == of {
                out.push((pid, comm));
            }
        }
    }
    out
}

fn descendants(of: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![of];
    while let Some(p) = todo.pop() {
        for (c, _) in children(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

impl Processes {
    fn of(cli: i32) -> Processes {
        let kids = children(cli);
        let find = |name: &str| kids.iter().find(|(_, c)| c == name).map(|&(p, _)| p);
        let sentry = find("veil-sentry");
        Processes {
            sentry,
            gofer: find("veil-gofer"),
            stubs: sentry.map(descendants).unwrap_or_default(),
        }
    }
}

fn status(pid: i32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| panic!("ns/{kind} of {pid}: {e}"))
}

fn root_entries(pid: i32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/root"))
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn limit(pid: i32, name: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} limit"));
    line[name.len()..]
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every descriptor's target: none may be a host file or directory.
fn fd_targets(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .collect()
}

#[test]
fn the_sentry_is_confined_on_the_host() {
    let run = Running::start(&["do", "/bin/sh", "-c", "read line"]);
    let sentry = run.processes().sentry.expect("sentry");

    assert_eq!(status(sentry, "Seccomp"), "2", "seccomp filter mode");
    assert_eq!(status(sentry, "NoNewPrivs"), "1");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status(sentry, set), "0000000000000000", "{set}");
    }
    // Root maps to nobody: the sentry owns nothing on the host.
    assert_eq!(status(sentry, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status(sentry, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(status(sentry, "Groups"), "");
    for kind in ["user", "mnt", "pid", "net", "ipc", "uts"] {
        assert_ne!(
            ns(&sentry.to_string(), kind),
            ns("self", kind),
            "the sentry shares the host's {kind} namespace"
        );
    }
    assert!(
        root_entries(sentry).is_empty(),
        "the sentry's root is not empty: {:?}",
        root_entries(sentry)
    );
    assert_eq!(limit(sentry, "Max core file size"), "0 0");
    // Host files only as the gofer donated them: named as in the gofer's
    // root (its trees are /0, /1, ...), never opened by the sentry itself.
    for target in fd_targets(sentry) {
        let donated = target
            .strip_prefix('/')
            .and_then(|t| t.split('/').next())
            .is_some_and(|first| first.parse::<u32>().is_ok());
        assert!(
            donated
                || ["pipe:", "socket:", "anon_inode:", "/memfd:", "/dev/null"]
                    .iter()
                    .any(|p| target.starts_with(p)),
            "the sentry holds a host file it did not get from the gofer: {target}"
        );
    }
}

#[test]
fn the_gofer_is_confined_to_its_trees() {
    let dir = TempDir::new("confine-gofer");
    dir.write("data", b"x", 0o644);
    let volume = format!("{}:/data:ro", path_str(dir.path()));
    let run = Running::start(&["do", "-v", &volume, "/bin/sh", "-c", "read line"]);
    let gofer = run.processes().gofer.expect("gofer");

    assert_eq!(status(gofer, "Seccomp"), "2");
    assert_eq!(status(gofer, "NoNewPrivs"), "1");
    // CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID.
    assert_eq!(status(gofer, "CapEff"), "000000000000001f");
    assert_eq!(status(gofer, "CapBnd"), "000000000000001f");
    for kind in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_ne!(ns(&gofer.to_string(), kind), ns("self", kind), "{kind}");
    }
    // It serves the host's files with the caller's identity.
    assert_eq!(ns(&gofer.to_string(), "user"), ns("self", "user"));
    // Its root: one mount point per tree, and its own descriptors.
    assert_eq!(
        root_entries(gofer),
        ["0", "1", "fd"].map(String::from).into()
    );
    // 65536, unless veil may not raise its own hard limit that far.
    let own = limit(std::process::id() as i32, "Max open files");
    let own_hard: u64 = own
        .split(' ')
        .nth(1)
        .and_then(|h| h.parse().ok())
        .expect("limit");
    let files = limit(gofer, "Max open files");
    assert!(
        files == "65536 65536" || files == format!("{0} {0}", own_hard.min(65536)),
        "gofer RLIMIT_NOFILE {files}"
    );
    assert_eq!(limit(gofer, "Max core file size"), "0 0");
    // The read-only tree is read-only on the host side too.
    let mountinfo = std::fs::read_to_string(format!("/proc/{gofer}/mountinfo")).expect("mountinfo");
    let tree = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/1"))
        .unwrap_or_else(|| panic!("no /1 in {mountinfo}"));
    assert!(tree.contains(" ro,"), "{tree}");
    // Kernel file systems of the host root are not served: the only proc
    // is the gofer's own descriptor directory.
    for line in mountinfo.lines() {
        let point = line.split(' ').nth(4).unwrap_or_default();
        let fstype = line.split(" - ").nth(1).unwrap_or_default();
        if fstype.starts_with("proc ") {
            assert_eq!(point, "/fd", "{line}");
        }
        assert!(!fstype.starts_with("sysfs "), "{line}");
    }
}

#[test]
fn stubs_share_the_sentrys_confinement() {
    let run = Running::start(&["do", "/bin/sh", "-c", "read line"]);
    let procs = run.processes();
    let sentry = procs.sentry.expect("sentry");
    // Those of the start-up that exit meanwhile (exec replaces the
    // first address space) are left out: the ones still there later are
    // the shell's, which waits in read.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let later = run.processes().stubs;
    let stubs: Vec<_> = procs
        .stubs
        .into_iter()
        .filter(|s| later.contains(s))
        .collect();
    assert!(!stubs.is_empty(), "no stubs");
    for stub in stubs {
        for kind in ["user", "mnt", "pid", "net"] {
            assert_eq!(
                ns(&stub.to_string(), kind),
                ns(&sentry.to_string(), kind),
                "stub {stub} {kind}"
            );
        }
        assert_eq!(status(stub, "Name"), "veil-stub");
        assert_eq!(status(stub, "Seccomp"), "2", "stub {stub}");
        assert_eq!(status(stub, "NoNewPrivs"), "1", "stub {stub}");
        assert_eq!(status(stub, "CapEff"), "0000000000000000");
        assert!(root_entries(stub).is_empty());
    }
}

/// A debug build's sentry makes a forbidden host call right after sealing
/// when asked to: its filter must kill it, and veil must say so.
#[cfg(debug_assertions)]
fn forbidden(call: &str) {
    let out = Command::new(veil_bin())
        .args(["do", "/bin/true"])
        .env("VEIL_TEST_SENTRY_FORBIDDEN", call)
        .stdin(Stdio::null())
        .output()
        .expect("running veil");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(128 + 31),
        "veil should exit with 128+SIGSYS: {stderr}"
    );
    assert!(
        stderr.contains("the sentry was killed by its seccomp filter"),
        "{stderr}"
    );
    assert!(!stderr.contains("the forbidden call returned"), "{stderr}");
}

#[cfg(debug_assertions)]
#[test]
fn a_sentry_opening_a_host_file_is_killed() {
    forbidden("open");
}

#[cfg(debug_assertions)]
#[test]
fn a_sentry_making_a_socket_is_killed() {
    forbidden("socket");
}

#[test]
fn host_syscalls_prints_both_allowlists() {
    let out = run_veil_raw(&["debug", "host-syscalls"]);
    out.assert_success();
    let text = out.stdout_str();
    let section = |name: &str| -> String {
        let start = text
            .find(&format!("{name}: "))
            .unwrap_or_else(|| panic!("no {name} section in {text}"));
        let rest = &text[start..];
        let end = rest[1..].find("\n\n").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };
    let sentry = section("sentry");
    let gofer = section("gofer");
    for forbidden in ["  open", "  openat", "  socket", "  execve", "  connect"] {
        assert!(
            !sentry
                .lines()
                .any(|l| l == forbidden || l.starts_with(&format!("{forbidden}:"))),
            "the sentry may call {forbidden}: {sentry}"
        );
    }
    assert!(sentry.contains("  mmap: arg2 & 0x4 == 0x0"), "{sentry}");
    assert!(sentry.contains("  clone: arg0 == 0x3d0f00"), "{sentry}");
    assert!(gofer.contains("  openat\n"), "{gofer}");
    assert!(gofer.contains("  socket: arg0 == 0x1"), "{gofer}");
    // The published numbers are the current ones.
    let count = |s: &str| -> String { s.split(' ').nth(1).expect("count").to_string() };
    let doc = std::fs::read_to_string(repo_root().join("docs/security.md")).expect("security.md");
    for (name, s) in [("sentry", &sentry), ("gofer", &gofer)] {
        let claim = format!("The {name} may make {} host system calls", count(s));
        assert!(doc.contains(&claim), "docs/security.md lacks {claim:?}");
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let claim = format!("allowlist of {} host system calls", count(&sentry));
    assert!(readme.contains(&claim), "README.md lacks {claim:?}");
}

fn signal(pid: i32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// `veil do sh -c script`, once the script has printed "ready".
fn until_ready(script: &str) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut cli = Command::new(veil_bin())
        .args(["do", "/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning veil");
    let mut out = std::io::BufReader::new(cli.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("ready");
    assert_eq!(line, "ready\n");
    (cli, out)
}

/// Signals to veil reach the sandbox's init, which may handle them: the
/// common ones, the rarer ones runc forwards too, and real-time ones.
#[test]
fn signals_to_veil_reach_the_sandbox() {
    let (mut cli, mut out) = until_ready(
        "for s in USR1 ALRM PWR 40 64; do trap \"echo got $s\" $s; done; \
         trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done",
    );
    for sig in ["USR1", "ALRM", "PWR", "40", "64", "TERM"] {
        signal(cli.id() as i32, sig);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("reply");
        assert_eq!(line, format!("got {sig}\n"));
    }
    assert_eq!(cli.wait().expect("wait").code(), Some(3));
}

/// A program that ignores SIGTERM keeps running; killing the CLI still
/// takes the whole sandbox with it, even while its program spins.
#[test]
fn a_spinning_sandbox_dies_with_the_cli() {
    let (mut cli, _out) = until_ready("trap '' TERM; echo ready; while :; do :; done");
    let procs = Processes::of(cli.id() as i32);
    let mut all = vec![procs.sentry.expect("sentry"), procs.gofer.expect("gofer")];
    all.extend(&procs.stubs);
    let alive = || -> Vec<i32> {
        all.iter()
            .copied()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| !s.contains(") Z "))
            })
            .collect()
    };
    signal(cli.id() as i32, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(alive(), all, "the program ignores SIGTERM");
    signal(cli.id() as i32, "KILL");
    let _ = cli.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alive().is_empty() {
        assert!(
            Instant::now() < deadline,
            "still alive after the CLI died: {:?}",
            alive()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program that crashes is reported as a shell would, and veil is fine.
#[test]
fn a_crashing_program_is_reported_not_fatal() {
    let out = run_veil_raw(&["do", "/bin/sh", "-c", "kill -SEGV $$"]);
    assert_eq!(out.code(), 139, "{}", out.describe());
    assert!(!out.stderr_str().contains("sentry"), "{}", out.describe());
    run_veil_raw(&["do", "/bin/true"]).assert_success();
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An unprivileged caller gets the same confinement, mapped to itself: the
/// gofer then serves the host's files with the caller's access only.
#[test]
fn an_unprivileged_caller_runs_confined() {
    const UID: &str = "4242";
    // A copy the unprivileged user may execute wherever the checkout is
    // (it may be under a directory only root may search).
    let dir = Scratch(std::env::temp_dir().join(format!("veil-rootless-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("mkdir");
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let veil = dir.0.join("veil");
    std::fs::copy(veil_bin(), &veil).expect("copying veil");
    let secret = dir.0.join("secret");
    std::fs::write(&secret, b"root only\n").expect("secret");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let script = format!(
        "id -u; cat /etc/hostname > /dev/null && echo host files; cat {} || echo denied",
        path_str(&secret)
    );
    let out = Command::new("setpriv")
        .args(["--reuid", UID, "--regid", UID, "--clear-groups"])
        .arg(&veil)
        .args(["do", "/bin/sh", "-c", &script])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "0\nhost files\ndenied\n", "{stderr}");
    assert!(out.status.success(), "{stderr}");
}
