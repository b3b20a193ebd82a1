//! containerd driving the OCI runtime under test through its runc v2 shim
//! (`ctr run --runc-binary`), the path docs/oci.md registers veil on: run
//! with output and exit code, and a detached task with exec, ps, kill and
//! delete. Each test starts a private containerd (own root, state, socket
//! and config; the CRI plugin off) and kills it at the end.
//!
//! The runtime is veil, or `$VEIL_TEST_OCI_RUNTIME` (e.g. /usr/sbin/runc to
//! check the harness). Without containerd, ctr or root the tests are
//! skipped with a note, except under CI.
//!
//! The test process need not be a child subreaper: containerd-shim-runc-v2
//! is the subreaper of everything the runtime starts and reaps the
//! container's processes; the test only waits for ctr.

mod common;

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::oci::{busybox_image, oci_runtime, prerequisites, run, unmount_below, IMAGE};
use common::{path_str, run_timeout, Output, TempDir};

/// The containerd namespace of the tests' containers. The shim keeps the
/// runtime's state in /run/containerd/runc/<namespace>, shared with any
/// other containerd on the host, so container ids are unique as well.
const NAMESPACE: &str = "veil-test";

/// A containerd of our own, killed (with its leftover containers) on drop.
struct Containerd {
    dir: TempDir,
    sock: String,
    daemon: Child,
    containers: Mutex<Vec<String>>,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = TempDir::new("containerd");
        let sock = path_str(&dir.path().join("ctrd.sock")).to_string();
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = path_str(&dir.path().join("root")),
            state = path_str(&dir.path().join("state")),
        );
        let config = dir.write("config.toml", config.as_bytes(), 0o644);
        let log = File::create(dir.path().join("containerd.log")).expect("create containerd.log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut c = Containerd {
            dir,
            sock,
            daemon,
            containers: Mutex::new(Vec::new()),
        };
        c.wait_ready();
        c.ctr(&["image", "import", path_str(&busybox_image())])
            .assert_success();
        c
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + run_timeout();
        loop {
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!(
                    "containerd exited ({status}) before it answered\n{}",
                    self.log()
                );
            }
            if self.ctr(&["version"]).code() == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} in {:?}\n{}",
                self.sock,
                run_timeout(),
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// containerd's warnings and errors, the last 20 (its info lines are
    /// mostly plugin loading).
    fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("level=info") && !l.contains("level=debug"))
            .collect();
        let tail = &notable[notable.len().saturating_sub(20)..];
        format!(
            "--- containerd.log (warnings, errors) ---\n{}",
            tail.join("\n")
        )
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut argv = vec!["-a", &self.sock, "-n", NAMESPACE];
        argv.extend_from_slice(args);
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        run("ctr", &argv, &[])
    }

    /// `ctr run` with the runtime under test in place of runc.
    fn ctr_run(&self, flags: &[&str], id: &str, argv: &[&str]) -> Output {
        let runtime = oci_runtime();
        let mut args = vec!["run", "--runc-binary", path_str(&runtime)];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMAGE, id]);
        args.extend_from_slice(argv);
        self.ctr(&args)
    }

    /// A container id no other test (or test process) uses.
    fn new_id(&self) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "veil-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        id
    }

    fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["task", "ls"]);
        out.stdout_str().lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).unwrap_or(&"").to_string())
        })
    }

    fn container_listed(&self, id: &str) -> bool {
        let out = self.ctr(&["container", "ls", "-q"]);
        out.assert_success();
        out.stdout_str().lines().any(|l| l.trim() == id)
    }

    /// Best effort, never panics (it runs while a failed test unwinds):
    /// every call has its own `timeout`.
    fn quiet(&self, args: &[&str]) {
        let _ = Command::new("timeout")
            .args(["-k", "5", "20", "ctr", "-a", &self.sock, "-n", NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        for id in &ids {
            self.quiet(&["task", "kill", "-s", "SIGKILL", id]);
            self.quiet(&["task", "delete", "--force", id]);
            self.quiet(&["container", "delete", id]);
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.daemon.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::Term);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        unmount_below(self.dir.path());
    }
}

#[test]
fn run_passes_output_and_exit_code() {
    if !prerequisites(&["containerd", "ctr", "timeout"]) {
        return;
    }
    let c = Containerd::start();
    let id = c.new_id();
    let out = c.ctr_run(&["--rm"], &id, &["sh", "-c", "echo ok; exit 5"]);
    assert_eq!(out.code(), 5, "{}\n{}", out.describe(), c.log());
    assert_eq!(out.stdout_str(), "ok\n", "{}", out.describe());
    assert!(!c.container_listed(&id), "--rm left {id} behind");
}

#[test]
fn detached_task_exec_ps_kill_delete() {
    if !prerequisites(&["containerd", "ctr", "timeout"]) {
        return;
    }
    let c = Containerd::start();
    let id = c.new_id();
    // PID 1 ignores a SIGTERM it has no handler for, so the trap must be
    // set before the kill: /tmp/ready says it is.
    let script = "trap 'exit 143' TERM; touch /tmp/ready; while true; do sleep 0.1; done";
    let out = c.ctr_run(&["-d"], &id, &["sh", "-c", script]);
    assert_eq!(out.code(), 0, "{}\n{}", out.describe(), c.log());

    let deadline = Instant::now() + run_timeout();
    for n in 0.. {
        let probe = c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            &format!("ready{n}"),
            &id,
            "test",
            "-e",
            "/tmp/ready",
        ]);
        if probe.code() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "init never got ready\n{}",
            probe.describe()
        );
        thread::sleep(Duration::from_millis(100));
    }

    let exec = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo in-exec; exit 4",
    ]);
    assert_eq!(exec.code(), 4, "{}", exec.describe());
    assert_eq!(exec.stdout_str(), "in-exec\n", "{}", exec.describe());

    // `PID INFO` and a line per process, at least the init.
    let ps = c.ctr(&["task", "ps", &id]);
    ps.assert_success();
    let pids: Vec<u32> = ps
        .stdout_str()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!pids.is_empty(), "no pids\n{}", ps.describe());

    assert_eq!(c.task_status(&id).as_deref(), Some("RUNNING"));
    c.ctr(&["task", "kill", &id]).assert_success();
    let deadline = Instant::now() + run_timeout();
    loop {
        let status = c.task_status(&id);
        if status.as_deref() == Some("STOPPED") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{id} still {status:?} after SIGTERM\n{}",
            c.log()
        );
        thread::sleep(Duration::from_millis(100));
    }

    // ctr reports the exit status only as a warning, and only when non-zero.
    let del = c.ctr(&["task", "delete", &id]);
    del.assert_success();
    assert!(
        del.stderr_str().contains("exit code 143"),
        "{}",
        del.describe()
    );
    assert_eq!(c.task_status(&id), None);
    c.ctr(&["container", "delete", &id]).assert_success();
    assert!(!c.container_listed(&id));
}

/// The image archive is cached under one name by every test process, which
/// is only sound if it is the same bytes every time.
#[test]
fn image_archive_is_reproducible() {
    if !std::path::Path::new("/bin/busybox").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI needs busybox-static");
        eprintln!("skipped: /bin/busybox not installed");
        return;
    }
    let a = common::oci::image_archive(IMAGE).expect("build");
    let b = common::oci::image_archive(IMAGE).expect("build");
    assert!(a == b, "two builds of the image archive differ");
    let mut names = Vec::new();
    for entry in tar::Archive::new(a.as_slice()).entries().expect("tar") {
        let entry = entry.expect("entry");
        names.push(entry.path().expect("path").display().to_string());
    }
    for name in ["oci-layout", "index.json", "manifest.json"] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("blobs/sha256/") && n.len() > 20)
            .count(),
        3
    );
}
