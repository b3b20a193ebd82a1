//! Container lifecycles through the OCI commands, veil against runc on the
//! same busybox bundle: create, state, start, kill, delete and run, their
//! exit codes, statuses and the container's output, the bundle's process
//! settings as the container sees them, and terminals (the console socket).
//!
//! Each lifecycle runs in a helper process that is a child subreaper and
//! reaps between steps, as containerd's shim does: a detached sandbox (or
//! runc's init) is re-parented to it.

#![allow(clippy::unwrap_used)] // A test's failure is a panic.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set for the helper: the runtime to drive.
const RUNTIME: &str = "VEIL_TEST_LIFECYCLE_RUNTIME";
/// Set for the helper: which lifecycle.
const SCRIPT: &str = "VEIL_TEST_LIFECYCLE_SCRIPT";
/// Set for the helper: where its transcript goes.
const TRANSCRIPT: &str = "VEIL_TEST_LIFECYCLE_TRANSCRIPT";

fn veil_exe() -> &'static str {
    env!("CARGO_BIN_EXE_veil")
}

/// runc's path, or None (with a note) when it is not installed outside CI.
fn runc_exe() -> Option<PathBuf> {
    let found = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "runc is required under CI (.ci/run installs it)"
        );
        eprintln!("skipped: runc not installed");
    }
    found
}

/// A bundle of busybox-static's applets, with `config` merged over the
/// default spec's process (and `extra` over the spec itself).
fn bundle(dir: &Path, process: serde_json::Value, extra: serde_json::Value) -> PathBuf {
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "home/user"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    let out = Command::new(veil_exe())
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "veil spec: {out:?}");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    merge(&mut config["process"], process);
    merge(&mut config, extra);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    bundle
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// The helper's side: runs one script against one runtime as a subreaper
/// and prints its transcript.
#[test]
#[ignore = "a helper process of the lifecycle tests, not a test"]
fn helper_lifecycle() {
    let runtime = std::env::var(RUNTIME).expect("run by the lifecycle tests");
    let script = std::env::var(SCRIPT).expect("run by the lifecycle tests");
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Helper {
        runtime: runtime.into(),
        root: tmp.path().join("state"),
        dir: tmp.path().to_path_buf(),
        log: String::new(),
    };
    match script.as_str() {
        "lifecycle" => h.lifecycle(),
        "init-signals" => h.init_signals(),
        "run" => h.run_exit_codes(),
        "config" => h.config(),
        "hooks" => h.hooks(),
        "memory" => h.memory(),
        "cgroups" => h.cgroups(),
        "pause" => h.pause(),
        "events" => h.events(),
        "preserve" => h.preserve(),
        "exec" => h.exec(),
        "tty" => h.tty(),
        "pod" => h.pod(),
        "userns" => h.userns(),
        other => panic!("unknown script {other}"),
    }
    let path = std::env::var(TRANSCRIPT).expect("run by the lifecycle tests");
    std::fs::write(path, &h.log).unwrap();
}

struct Helper {
    runtime: PathBuf,
    root: PathBuf,
    dir: PathBuf,
    log: String,
}

impl Helper {
    /// A bundle of the default spec with init's `args`, by path.
    fn plain_bundle(&self, args: &[&str]) -> String {
        let b = bundle(
            &self.dir,
            serde_json::json!({ "args": args }),
            serde_json::json!({}),
        );
        b.to_str().unwrap().to_string()
    }

    /// A bundle whose init sleeps.
    fn sleeper(&self) -> String {
        self.plain_bundle(&["sleep", "1000"])
    }

    /// `run`s the bundle: its exit code and the container's output.
    fn run_bundle(&mut self, b: &str, id: &str) -> (Option<i32>, String) {
        let out = self.dir.join(format!("{id}.out"));
        let run = self.call_with(&["run", "--bundle", b, id], Some(&out));
        (run.status.code(), std::fs::read_to_string(&out).unwrap())
    }

    /// Runs the runtime with `args` and reaps what was re-parented to us.
    /// Its output goes to files, not pipes, as a container it starts
    /// inherits them: to `out` for a container's output, else to scratch
    /// files that are read back.
    fn call_with(&mut self, args: &[&str], out: Option<&Path>) -> Output {
        let (stdout_path, stderr_path) = match out {
            Some(path) => (path.to_path_buf(), path.to_path_buf()),
            None => (self.dir.join("call.out"), self.dir.join("call.err")),
        };
        let stdout = std::fs::File::create(&stdout_path).unwrap();
        let stderr = match out {
            Some(_) => stdout.try_clone().unwrap(),
            None => std::fs::File::create(&stderr_path).unwrap(),
        };
        let status = Command::new("timeout")
            .arg("60")
            .arg(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .unwrap();
        reap();
        match out {
            Some(_) => Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
            None => Output {
                status,
                stdout: std::fs::read(&stdout_path).unwrap(),
                stderr: std::fs::read(&stderr_path).unwrap(),
            },
        }
    }

    fn call(&mut self, args: &[&str]) -> Output {
        self.call_with(args, None)
    }

    /// `create` with a pid file, the container's output going to `out`.
    fn create_with_pid_file(&mut self, b: &str, id: &str, pid_file: &Path, out: &Path) -> Output {
        let pid_file = pid_file.to_str().unwrap();
        self.call_with(
            &["create", "--bundle", b, "--pid-file", pid_file, id],
            Some(out),
        )
    }

    /// Records a step's exit code and, for failures, whether its message
    /// names `expect`.
    fn step(&mut self, name: &str, args: &[&str], expect: Option<&str>) -> Output {
        let out = self.call(args);
        let code = out.status.code().unwrap_or(-1);
        let _ = write!(self.log, "{name}: rc={code}");
        if let Some(expect) = expect {
            let said = String::from_utf8_lossy(&out.stderr).contains(expect);
            let _ = write!(self.log, " says {expect:?}: {said}");
        }
        self.log.push('\n');
        out
    }

    fn state(&mut self, id: &str) -> Option<serde_json::Value> {
        let out = self.call(&["state", id]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn status(&mut self, id: &str) -> String {
        self.state(id)
            .map(|s| s["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "missing".into())
    }

    fn record_status(&mut self, label: &str, id: &str) {
        let status = self.status(id);
        let _ = writeln!(self.log, "{label}: {status}");
    }

    /// Records the ids `list -q` shows.
    fn record_list(&mut self, label: &str) {
        let list = self.call(&["list", "-q"]);
        let _ = writeln!(
            self.log,
            "{label}: {:?}",
            String::from_utf8_lossy(&list.stdout)
        );
    }

    /// Polls until the container is stopped; records how it ended.
    fn await_stopped(&mut self, label: &str, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut status = self.status(id);
        while status != "stopped" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            status = self.status(id);
        }
        let _ = writeln!(self.log, "{label}: {status}");
    }

    fn lifecycle(&mut self) {
        let b = self.plain_bundle(&[
            "sh",
            "-c",
            "trap 'echo got-term; exit 143' TERM; echo hello; while true; do sleep 0.1; done",
        ]);
        let pid_file = self.dir.join("init.pid");
        let out = self.dir.join("container.out");
        let create = self.create_with_pid_file(&b, "lc1", &pid_file, &out);
        let _ = writeln!(self.log, "create: rc={:?}", create.status.code());
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        let _ = writeln!(
            self.log,
            "pid file is a bare number: {}",
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        );
        let state = self.state("lc1").unwrap();
        let keys: Vec<_> = state.as_object().unwrap().keys().cloned().collect();
        let _ = writeln!(self.log, "state keys: {keys:?}");
        let _ = writeln!(
            self.log,
            "created: {}, pid matches the pid file: {}, bundle: {}, rootfs: {}",
            state["status"],
            state["pid"].as_i64().map(|p| p.to_string()).as_deref() == Some(pid.as_str()),
            state["bundle"] == b.as_str(),
            state["rootfs"] == format!("{b}/rootfs").as_str()
        );
        self.step("start", &["start", "lc1"], None);
        self.record_status("after start", "lc1");
        self.step("start again", &["start", "lc1"], Some("already running"));
        self.step("delete running", &["delete", "lc1"], Some("not stopped"));
        // Until the shell has set its trap.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&out).unwrap().contains("hello") {
            assert!(Instant::now() < deadline, "no output");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.step("kill TERM", &["kill", "lc1", "TERM"], None);
        self.await_stopped("after kill", "lc1");
        let state = self.state("lc1").unwrap();
        let _ = writeln!(self.log, "stopped pid: {}", state["pid"]);
        let _ = writeln!(
            self.log,
            "container output: {:?}",
            std::fs::read_to_string(&out).unwrap()
        );
        self.step(
            "kill stopped",
            &["kill", "lc1", "15"],
            Some("container not running"),
        );
        self.step(
            "kill --all stopped",
            &["kill", "--all", "lc1", "KILL"],
            None,
        );
        self.step("start stopped", &["start", "lc1"], Some("has stopped"));
        self.step("delete", &["delete", "lc1"], None);
        self.step(
            "state deleted",
            &["state", "lc1"],
            Some("container does not exist"),
        );
        self.step(
            "delete missing",
            &["delete", "lc1"],
            Some("container does not exist"),
        );
        self.step(
            "delete --force missing",
            &["delete", "--force", "lc1"],
            None,
        );
        self.record_list("list");
        self.step("kill unknown signal", &["kill", "lc1", "BOGUS"], None);
        self.step(
            "create bad id",
            &["create", "--bundle", &b, "bad/id"],
            Some("invalid container ID format"),
        );
        std::fs::remove_file(format!("{b}/config.json")).unwrap();
        self.step(
            "create without config",
            &["create", "--bundle", &b, "x"],
            Some("config.json not found"),
        );
    }

    /// The container's init is a PID namespace's init: without a handler,
    /// TERM is dropped and only KILL ends it; a signal in the created
    /// state ends it before it runs.
    fn init_signals(&mut self) {
        let b = self.sleeper();
        self.step("create", &["create", "--bundle", &b, "s1"], None);
        self.step("start", &["start", "s1"], None);
        self.step("kill TERM", &["kill", "s1", "TERM"], None);
        std::thread::sleep(Duration::from_millis(500));
        self.record_status("after TERM", "s1");
        let pid = self.state("s1").unwrap()["pid"].as_i64().unwrap();
        self.step("kill KILL", &["kill", "s1", "KILL"], None);
        self.await_stopped("after KILL", "s1");
        self.step("delete", &["delete", "s1"], None);
        let _ = writeln!(self.log, "the container's pid is gone: {}", gone(pid));

        self.step("create s2", &["create", "--bundle", &b, "s2"], None);
        self.step("kill created", &["kill", "s2", "SIGTERM"], None);
        self.await_stopped("after kill in created", "s2");
        self.step("delete s2", &["delete", "s2"], None);

        self.step("create s3", &["create", "--bundle", &b, "s3"], None);
        self.step("start s3", &["start", "s3"], None);
        let pid = self.state("s3").unwrap()["pid"].as_i64().unwrap();
        self.step("delete --force running", &["delete", "--force", "s3"], None);
        let _ = writeln!(self.log, "the container's pid is gone: {}", gone(pid));
        self.record_list("list");
        let left: Vec<_> = std::fs::read_dir(&self.root).unwrap().collect();
        let _ = writeln!(self.log, "state root entries: {}", left.len());
    }

    fn run_exit_codes(&mut self) {
        let b = self.plain_bundle(&["sh", "-c", "echo from-run; exit 42"]);
        let (code, output) = self.run_bundle(&b, "r1");
        let _ = writeln!(self.log, "run: rc={:?} output={:?}", code, output);
        self.record_list("list after run");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{b}/config.json")).unwrap()).unwrap();
        // Even SIGKILL from inside is dropped for a namespace's init.
        config["process"]["args"] = serde_json::json!(["sh", "-c", "kill -KILL $$"]);
        std::fs::write(format!("{b}/config.json"), config.to_string()).unwrap();
        let (code, _) = self.run_bundle(&b, "r2");
        let _ = writeln!(self.log, "run killed: rc={code:?}");
        config["process"]["args"] = serde_json::json!(["/bin/no-such-program"]);
        std::fs::write(format!("{b}/config.json"), config.to_string()).unwrap();
        self.step(
            "run missing program",
            &["run", "--bundle", &b, "r3"],
            Some("no-such-program"),
        );
        self.record_list("list after failed run");
    }

    /// How many processes `ps --format json` lists (pids differ: veil's
    /// are the sandbox's); None for `null`.
    fn ps_count(&mut self, id: &str) -> Option<usize> {
        let out = self.call(&["ps", "--format", "json", id]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array().map(Vec::len)
    }

    /// A step whose output is recorded too.
    fn step_out(&mut self, name: &str, args: &[&str]) {
        let out = self.call(args);
        let _ = writeln!(
            self.log,
            "{name}: rc={:?} out={:?}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn exec(&mut self) {
        let b = bundle(
            &self.dir,
            serde_json::json!({"args": ["sh", "-c", "echo hello; sleep 1000 & wait"],
                               "env": ["PATH=/bin", "FOO=from-spec"]}),
            serde_json::json!({}),
        );
        let b = b.to_str().unwrap().to_string();
        let out = self.dir.join("container.out");
        self.call_with(&["create", "--bundle", &b, "x1"], Some(&out));
        self.step_out("exec in created", &["exec", "x1", "echo", "hi"]);
        self.record_status("after exec in created", "x1");
        let n = self.ps_count("x1");
        let _ = writeln!(self.log, "ps in created: {n:?}");
        self.step("start", &["start", "x1"], None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ps_count("x1") != Some(2) {
            assert!(Instant::now() < deadline, "init's sleep did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.step_out(
            "exec exit code",
            &["exec", "x1", "sh", "-c", "echo from-exec; exit 3"],
        );
        self.step_out(
            "exec spec env",
            &["exec", "x1", "sh", "-c", "echo $FOO; pwd; id"],
        );
        self.step_out(
            "exec overrides",
            &[
                "exec",
                "--env",
                "FOO=over",
                "--env",
                "BAR=new",
                "--cwd",
                "/tmp",
                "--user",
                "1000:1000",
                "x1",
                "sh",
                "-c",
                "echo $FOO $BAR; pwd; id",
            ],
        );
        let process = self.dir.join("process.json");
        std::fs::write(
            &process,
            serde_json::json!({
                "args": ["sh", "-c", "echo from-process-json $FOO; pwd; id -u"],
                "env": ["PATH=/bin", "FOO=json"],
                "cwd": "/tmp",
                "user": {"uid": 1234, "gid": 1234},
            })
            .to_string(),
        )
        .unwrap();
        self.step_out("exec -p", &["exec", "-p", process.to_str().unwrap(), "x1"]);
        // runc takes a process without a user as root's.
        std::fs::write(
            &process,
            serde_json::json!({"args": ["id", "-u"], "cwd": "/", "env": ["PATH=/bin"]}).to_string(),
        )
        .unwrap();
        self.step_out(
            "exec -p without a user",
            &["exec", "-p", process.to_str().unwrap(), "x1"],
        );
        self.step(
            "exec missing program",
            &["exec", "x1", "/no-such-program"],
            Some("no-such-program"),
        );
        let pid_file = self.dir.join("exec.pid");
        let exec_d = [
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "x1",
            "sleep",
            "1000",
        ];
        self.step("exec -d", &exec_d, None);
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        let _ = writeln!(
            self.log,
            "exec pid file is a bare number: {}",
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        );
        let n = self.ps_count("x1");
        let _ = writeln!(self.log, "ps with exec'd sleep: {n:?}");
        // What containerd's shim does to an exec'd process: kill(2) and
        // wait(2) on the pid in the file.
        let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = nix::sys::wait::waitpid(pid, None).unwrap();
        let ended = match status {
            nix::sys::wait::WaitStatus::Signaled(_, sig, core) => {
                format!("signal {sig}, core {core}")
            }
            other => format!("{other:?}"),
        };
        let _ = writeln!(self.log, "exec -d pid after TERM: {ended}");
        let n = self.ps_count("x1");
        let _ = writeln!(self.log, "ps after: {n:?}");
        // SIGKILL, which veil's waiter cannot pass on, ends the process
        // all the same.
        self.call(&exec_d);
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let killed = matches!(
            nix::sys::wait::waitpid(pid, None),
            Ok(nix::sys::wait::WaitStatus::Signaled(
                _,
                nix::sys::signal::Signal::SIGKILL,
                _
            ))
        );
        let _ = writeln!(self.log, "exec -d pid killed: {killed}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ps_count("x1") != Some(2) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let n = self.ps_count("x1");
        let _ = writeln!(self.log, "ps after KILL: {n:?}");
        // A signal to the runtime's exec goes to the exec'd process.
        let status = Command::new("timeout")
            .args(["--preserve-status", "-s", "TERM", "1"])
            .arg(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["exec", "x1", "sleep", "1000"])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        reap();
        let _ = writeln!(self.log, "exec killed by TERM: rc={:?}", status.code());
        // An exec'd process's orphan goes to init, as in a PID namespace.
        self.step_out(
            "exec leaving a child",
            &[
                "exec",
                "x1",
                "sh",
                "-c",
                "sleep 1000 </dev/null >/dev/null 2>&1 & echo started",
            ],
        );
        self.step_out(
            "parents of the sleeps",
            &[
                "exec",
                "x1",
                "sh",
                "-c",
                "ps -o ppid,comm | grep sleep | sort",
            ],
        );
        let n = self.ps_count("x1");
        let _ = writeln!(self.log, "ps with the orphan: {n:?}");
        self.step("kill", &["kill", "x1", "KILL"], None);
        self.await_stopped("after kill", "x1");
        self.step(
            "exec stopped",
            &["exec", "x1", "true"],
            Some("cannot exec in a stopped container"),
        );
        self.step_out("ps stopped", &["ps", "--format", "json", "x1"]);
        self.step("delete", &["delete", "x1"], None);
        self.step(
            "exec missing",
            &["exec", "x1", "true"],
            Some("container does not exist"),
        );
    }

    /// What the process sees of its bundle's settings.
    fn config(&mut self) {
        let b = bundle(
            &self.dir,
            serde_json::json!({
                "args": ["sh", "-c", "hostname; id; echo \"FOO=$FOO\"; pwd; ulimit -n; umask; \
                          echo \"masked file: [$(cat /etc/secret)] dir: $(ls /etc/secrets | wc -l)\"; \
                          echo \"bound: $(cat /deep/er/file)\"; \
                          grep ' /proc/sys ' /proc/mounts | cut -d' ' -f1,3,4 | cut -d, -f1; \
                          touch /x 2>/dev/null; echo \"touch root: $?\"; \
                          touch /dev/shm/y 2>/dev/null; echo \"touch shm: $?\""],
                "env": ["PATH=/bin", "FOO=bar baz"],
                "cwd": "/home/user",
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}],
            }),
            serde_json::json!({"hostname": "parity-test"}),
        );
        let rootfs = b.join("rootfs");
        std::fs::write(rootfs.join("etc/secret"), "s3cret").unwrap();
        std::fs::create_dir_all(rootfs.join("etc/secrets")).unwrap();
        std::fs::write(rootfs.join("etc/secrets/key"), "k").unwrap();
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
        let masked = config["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.extend([
            "/etc/secret".into(),
            "/etc/secrets".into(),
            "/no/such/path".into(),
        ]);
        // A file bound where the rootfs has no parent directories yet.
        let shared = self.dir.join("shared.txt");
        std::fs::write(&shared, "shared-content").unwrap();
        config["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/deep/er/file", "type": "bind", "source": shared, "options": ["rbind", "ro"]}
        ));
        std::fs::write(b.join("config.json"), config.to_string()).unwrap();
        let b = b.to_str().unwrap().to_string();
        let (code, output) = self.run_bundle(&b, "cfg");
        let _ = writeln!(self.log, "run: rc={:?}\n{}", code, output);
    }
}

impl Helper {
    /// The spec's memory limit holds: a process allocating past it is
    /// killed (SIGKILL, as by the OOM killer) and the container goes on.
    fn memory(&mut self) {
        let b = bundle(
            &self.dir,
            serde_json::json!({"args": ["sh", "-c",
                "(head -c 200000000 /dev/zero | tail -c 100000000 >/dev/null) 2>/dev/null; \
                 echo \"rc=$?\"; echo alive"]}),
            serde_json::json!({}),
        );
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
        config["linux"]["resources"] = serde_json::json!({"memory": {"limit": 64 << 20}});
        std::fs::write(b.join("config.json"), config.to_string()).unwrap();
        let out = self.dir.join("memory.out");
        let b = b.to_str().unwrap().to_string();
        let run = self.call_with(&["run", "--bundle", &b, "m1"], Some(&out));
        let _ = writeln!(
            self.log,
            "run: rc={:?}\n{}",
            run.status.code(),
            std::fs::read_to_string(&out).unwrap()
        );
    }

    /// The container's processes run in the spec's cgroup, with its
    /// limits (at least: veil leaves room for its own processes), and
    /// delete removes it.
    fn cgroups(&mut self) {
        let path = format!("/veil-test-{}", std::process::id());
        let b = bundle(
            &self.dir,
            serde_json::json!({"args": ["sleep", "1000"]}),
            serde_json::json!({}),
        );
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
        config["linux"]["cgroupsPath"] = path.clone().into();
        config["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 64 << 20}, "pids": {"limit": 100}, "cpu": {"shares": 512}
        });
        std::fs::write(b.join("config.json"), config.to_string()).unwrap();
        let b = b.to_str().unwrap().to_string();
        self.step("create", &["create", "--bundle", &b, "cg1"], None);
        let pid = self.state("cg1").unwrap()["pid"].as_i64().unwrap();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let _ = writeln!(
            self.log,
            "the container's process is in the memory cgroup: {}",
            cgroup
                .lines()
                .any(|l| l.ends_with(&format!(":memory:{path}")))
        );
        let read = |f: &str| -> i64 {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let _ = writeln!(
            self.log,
            "cpu.shares: {}",
            read(&format!("cpu{path}/cpu.shares"))
        );
        let _ = writeln!(
            self.log,
            "memory limit at least the spec's: {}",
            read(&format!("memory{path}/memory.limit_in_bytes")) >= 64 << 20
        );
        let _ = writeln!(
            self.log,
            "pids.max at least the spec's: {}",
            read(&format!("pids{path}/pids.max")) >= 100
        );
        self.step("delete --force", &["delete", "--force", "cg1"], None);
        let left = ["memory", "cpu", "pids", "freezer"]
            .iter()
            .filter(|h| Path::new(&format!("/sys/fs/cgroup/{h}{path}")).exists())
            .count();
        let _ = writeln!(self.log, "cgroup directories left: {left}");
    }

    /// pause freezes the container's processes, resume thaws them, and a
    /// paused container can still be killed and deleted.
    fn pause(&mut self) {
        let b = self.plain_bundle(&["sh", "-c", "while true; do sleep 0.05; done"]);
        self.step("create", &["create", "--bundle", &b, "p1"], None);
        self.step("resume created", &["resume", "p1"], Some("not paused"));
        self.step("start", &["start", "p1"], None);
        self.step("pause", &["pause", "p1"], None);
        self.record_status("after pause", "p1");
        let pid = self.state("p1").unwrap()["pid"].as_i64().unwrap();
        let frozen = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("D (disk sleep)"));
        let _ = writeln!(self.log, "the container's process is frozen: {frozen}");
        self.step("pause again", &["pause", "p1"], Some("not running"));
        let list = self.call(&["list", "-f", "json"]);
        let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let _ = writeln!(self.log, "listed as {}", listed[0]["status"]);
        self.step("resume", &["resume", "p1"], None);
        self.record_status("after resume", "p1");
        self.step("pause before delete", &["pause", "p1"], None);
        self.step("delete --force paused", &["delete", "--force", "p1"], None);
        let _ = writeln!(self.log, "the container's pid is gone: {}", gone(pid));
    }

    /// `--preserve-fds 1`: the caller's descriptor 3 is init's 3.
    fn preserve(&mut self) {
        let b = bundle(
            &self.dir,
            serde_json::json!({"args": ["sh", "-c", "echo to-fd3 >&3; echo rc=$?"]}),
            serde_json::json!({}),
        );
        let target = self.dir.join("fd3.out");
        let out = self.dir.join("preserve.out");
        let status = Command::new("sh")
            .arg("-c")
            .arg("exec 3>\"$0\"; exec timeout 60 \"$@\"")
            .arg(&target)
            .arg(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["run", "--preserve-fds", "1", "--bundle"])
            .arg(&b)
            .arg("pf1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .status()
            .unwrap();
        reap();
        let _ = writeln!(
            self.log,
            "run --preserve-fds 1: rc={:?} out={:?} fd3={:?}",
            status.code(),
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&target).unwrap()
        );
    }

    /// `events --stats`: one line of the cgroup's figures.
    fn events(&mut self) {
        let b = self.sleeper();
        self.step("create", &["create", "--bundle", &b, "e1"], None);
        self.step("start", &["start", "e1"], None);
        let out = self.step("events --stats", &["events", "--stats", "e1"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let _ = writeln!(self.log, "lines: {}", text.lines().count());
        let ev: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let _ = writeln!(self.log, "type: {}, id: {}", ev["type"], ev["id"]);
        let usage = ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        let _ = writeln!(self.log, "memory in use: {}", usage > 0);
        let pids = ev["data"]["pids"]["current"].as_u64().unwrap_or(0);
        let _ = writeln!(self.log, "host processes: {}", pids >= 2);
        self.step("delete --force", &["delete", "--force", "e1"], None);
        self.step(
            "events of a deleted container",
            &["events", "--stats", "e1"],
            Some("does not exist"),
        );
    }

    /// Every hook appends its name and the status it was given to a log.
    /// (startContainer is left out: runc runs it in the container, where
    /// the log's host path is not; veil runs it on the host.)
    fn hooks(&mut self) {
        let log = self.dir.join("hooks.log");
        let hook = |name: &str| {
            serde_json::json!({
                "path": "/bin/sh",
                "args": ["sh", "-c",
                    "s=$(cat); echo \"$1 $(echo \"$s\" | sed -n 's/.*\"status\":\"\\([a-z]*\\)\".*/\\1/p') $FROM_HOOK\" >> \"$2\"",
                    "hook", name, log.to_str().unwrap()],
                "env": ["FROM_HOOK=env-ok", "PATH=/usr/bin:/bin"],
            })
        };
        let hooks = serde_json::json!({
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
        let b = bundle(
            &self.dir,
            serde_json::json!({"args": ["sleep", "1000"]}),
            serde_json::json!({ "hooks": hooks }),
        );
        let b = b.to_str().unwrap().to_string();
        self.step("create", &["create", "--bundle", &b, "h1"], None);
        self.step("start", &["start", "h1"], None);
        self.step("kill", &["kill", "h1", "KILL"], None);
        self.await_stopped("after kill", "h1");
        self.step("delete", &["delete", "h1"], None);
        let _ = writeln!(
            self.log,
            "hooks ran:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // A failing createRuntime hook fails create and leaves nothing.
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{b}/config.json")).unwrap()).unwrap();
        config["hooks"] = serde_json::json!({"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo hook-failed >&2; exit 3"]}
        ]});
        std::fs::write(format!("{b}/config.json"), config.to_string()).unwrap();
        self.step(
            "create with failing hook",
            &["create", "--bundle", &b, "h2"],
            Some("hook-failed"),
        );
        self.record_status("after failed create", "h2");
    }

    /// Runs the runtime with `args` on script(1)'s terminal, after the
    /// shell commands `before`, and records what the terminal showed, the
    /// exit code and whether the terminal's settings were put back.
    fn in_terminal(&mut self, label: &str, before: &str, args: &str) {
        let runtime = self.runtime.to_str().unwrap();
        let root = self.root.to_str().unwrap();
        let cmd = format!(
            "{before}{runtime} --root {root} {args}; \
             echo rc=$?; stty -a | grep -o -- ' -*icanon'"
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        reap();
        let _ = writeln!(
            self.log,
            "{label}: {:?}",
            String::from_utf8_lossy(&out.stdout).trim_start_matches("^@")
        );
    }

    /// A bundle asking for a terminal of 30 rows and 100 columns.
    fn tty_bundle(&self, name: &str, args: &[&str]) -> String {
        let b = bundle(
            &self.dir.join(name),
            serde_json::json!({"args": args, "terminal": true,
                               "consoleSize": {"height": 30, "width": 100}}),
            serde_json::json!({}),
        );
        b.to_str().unwrap().to_string()
    }

    /// create and start with a console socket that `acts`; records the
    /// container's exit status and what the console received.
    fn on_console(&mut self, id: &str, b: &str, acts: ConsoleActs) {
        let sock = self.dir.join(format!("{id}.sock"));
        let console = console_receiver(&sock, acts);
        let out = self.dir.join(format!("{id}.out"));
        let create = self.call_with(
            &[
                "create",
                "--console-socket",
                sock.to_str().unwrap(),
                "--bundle",
                b,
                id,
            ],
            Some(&out),
        );
        let pid = self.state(id).map_or(0, |s| s["pid"].as_i64().unwrap()) as i32;
        let start = self.call(&["start", id]);
        let status = await_reaped(pid);
        let _ = writeln!(
            self.log,
            "{id}: create rc={:?} start rc={:?} exit={status:?} stdio={:?}\n{id} console: {}",
            create.status.code(),
            start.status.code(),
            std::fs::read_to_string(&out).unwrap(),
            console.join().unwrap()
        );
        self.call(&["delete", "--force", id]);
    }

    /// A container on a terminal, through `--console-socket`.
    fn tty(&mut self) {
        let b = self.tty_bundle("tty", &["sh", "-c", "tty; stty size; echo $TERM; exit 7"]);
        self.on_console("t1", &b, ConsoleActs::default());
        self.step(
            "create without a console socket",
            &["create", "--bundle", &b, "t2"],
            Some("cannot allocate tty if"),
        );
        let sock = self.dir.join("unused.sock");
        let sock = sock.to_str().unwrap();
        self.step(
            "run attached with a console socket",
            &["run", "--console-socket", sock, "--bundle", &b, "t3"],
            Some("cannot use console socket if"),
        );
        let plain = bundle(
            &self.dir.join("plain"),
            serde_json::json!({"args": ["true"]}),
            serde_json::json!({}),
        );
        self.step(
            "create without a terminal with a console socket",
            &[
                "create",
                "--console-socket",
                sock,
                "--bundle",
                plain.to_str().unwrap(),
                "t4",
            ],
            Some("cannot use console socket if"),
        );
        self.record_list("list");
        let cases: [(&str, &str, &str, ConsoleActs); 6] = [
            // Typed input goes through the container's line discipline:
            // echoed, CR made NL.
            (
                "t5",
                "read",
                "read x; echo got:$x",
                ConsoleActs {
                    input: b"hello\r",
                    ..ConsoleActs::default()
                },
            ),
            // A resize of the console is the foreground group's SIGWINCH.
            (
                "t6",
                "winch",
                "trap 'stty size; exit 3' WINCH; echo ready; while :; do sleep 0.05; done",
                ConsoleActs {
                    resize: Some((40, 120)),
                    ..ConsoleActs::default()
                },
            ),
            // Closing the console's master hangs the container's terminal
            // up: SIGHUP to the session leader.
            (
                "t7",
                "hup",
                "trap 'exit 5' HUP; echo ready; while :; do sleep 0.05; done",
                ConsoleActs {
                    hang_up: true,
                    ..ConsoleActs::default()
                },
            ),
            // ^C is the foreground group's SIGINT, echoed.
            (
                "t11",
                "intr",
                "trap 'echo int; exit 4' INT; echo ready; while :; do sleep 0.05; done",
                ConsoleActs {
                    when_ready: b"\x03",
                    ..ConsoleActs::default()
                },
            ),
            // The console is also /dev/console (runc binds it there), and
            // /dev/tty while it is the controlling terminal.
            (
                "t8",
                "console",
                "echo con >/dev/console; tty </dev/console; \
                 stat -c '%t %T %a %u %g' /dev/console /dev/pts/0; ls /dev/pts; tty </dev/tty",
                ConsoleActs::default(),
            ),
            // Output far past both ptys' buffers comes through whole,
            // though init exits the moment it has written it.
            (
                "t12",
                "burst",
                "seq 1 30000; exit 6",
                ConsoleActs {
                    summarize: true,
                    ..ConsoleActs::default()
                },
            ),
        ];
        for (label, name, script, acts) in cases {
            let b = self.tty_bundle(name, &["sh", "-c", script]);
            self.on_console(label, &b, acts);
        }
        // run without a console socket lends the container its own
        // terminal (here script(1)'s), and puts its settings back. (Its
        // size is runc's consoleSize or the terminal's, by a race.)
        let b = self.tty_bundle("own", &["sh", "-c", "tty; exit 7"]);
        self.in_terminal(
            "t9",
            "stty rows 33 cols 90; ",
            &format!("run --bundle {b} t9"),
        );
        // Without a controlling terminal, that is an error.
        let out = Command::new("setsid")
            .arg(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["run", "--bundle", &b, "t10"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        reap();
        let _ = writeln!(
            self.log,
            "t10: rc={:?} says \"open /dev/tty\": {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).contains("open /dev/tty")
        );
        self.exec_tty();
    }

    /// `exec -t`: a console for an exec'd process in a running container,
    /// through a console socket (which runc takes only when detached).
    fn exec_tty(&mut self) {
        let b = bundle(
            &self.dir.join("sleeper"),
            serde_json::json!({"args": ["sleep", "1000"]}),
            serde_json::json!({}),
        );
        let b = b.to_str().unwrap();
        let out = self.dir.join("t12.out");
        self.call_with(&["create", "--bundle", b, "t12"], Some(&out));
        self.call(&["start", "t12"]);
        let process = self.dir.join("exec-tty.json");
        std::fs::write(
            &process,
            serde_json::json!({
                "args": ["sh", "-c", "stty size; tty </dev/tty; exit 4"],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "terminal": true,
                "consoleSize": {"height": 30, "width": 100},
            })
            .to_string(),
        )
        .unwrap();
        let process = process.to_str().unwrap();
        let cases: [(&str, &[&str]); 2] = [
            ("e1", &["t12", "sh", "-c", "tty; exit 3"]),
            ("e2", &["-p", process, "t12"]),
        ];
        for (label, command) in cases {
            let sock = self.dir.join(format!("{label}.sock"));
            let console = console_receiver(&sock, ConsoleActs::default());
            let pid_file = self.dir.join(format!("{label}.pid"));
            let mut args = vec![
                "exec",
                "-d",
                "-t",
                "--console-socket",
                sock.to_str().unwrap(),
                "--pid-file",
                pid_file.to_str().unwrap(),
            ];
            args.extend(command);
            let exec = self.call(&args);
            let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let status = pid.parse().ok().and_then(await_reaped);
            let _ = writeln!(
                self.log,
                "{label}: exec rc={:?} exit={status:?}\n{label} console: {}",
                exec.status.code(),
                console.join().unwrap()
            );
        }
        let sock = self.dir.join("unused-exec.sock");
        let sock = sock.to_str().unwrap();
        self.step(
            "exec detached on a terminal without a console socket",
            &["exec", "-d", "-t", "t12", "true"],
            Some("cannot allocate tty if"),
        );
        self.step(
            "exec attached with a console socket",
            &["exec", "-t", "--console-socket", sock, "t12", "true"],
            Some("cannot use console socket if"),
        );
        self.step(
            "exec without a terminal with a console socket",
            &["exec", "-d", "--console-socket", sock, "t12", "true"],
            Some("cannot use console socket if"),
        );
        // Attached, exec -t gives the process a terminal joined to the
        // runtime's own (here script(1)'s), whose settings it puts back.
        self.in_terminal("e3", "", "exec -t t12 sh -c 'tty; exit 6'");
        self.call(&["delete", "--force", "t12"]);
    }
}

impl Helper {
    /// A user namespace: the container's root is host uid and gid 100000,
    /// so that host files show as their mapped owners (nobody when
    /// unmapped), and ids outside the mapping cannot be given.
    fn userns(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        // runc's init runs as the mapped root: it must reach the bundle.
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(&self.dir, open).unwrap();
        let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; \
                      stat -c '%u %g %n' /bin/busybox /home/user; \
                      touch /home/user/new; stat -c '%u %g' /home/user/new; \
                      chown 5:7 /home/user/new; stat -c '%u %g' /home/user/new; \
                      echo $(chown 70000 /home/user/new 2>&1)";
        let b = bundle(
            &self.dir.join("userns"),
            serde_json::json!({ "args": ["sh", "-c", script] }),
            serde_json::json!({}),
        );
        let config = b.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        spec["root"]["readonly"] = false.into();
        let caps = &mut spec["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            caps[set].as_array_mut().unwrap().push("CAP_CHOWN".into());
        }
        let linux = &mut spec["linux"];
        linux["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        linux["uidMappings"] = map.clone();
        linux["gidMappings"] = map;
        std::fs::write(&config, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        let home = b.join("rootfs/home/user");
        std::os::unix::fs::chown(&home, Some(100000), Some(100000)).unwrap();
        let (code, out) = self.run_bundle(b.to_str().unwrap(), "u1");
        let _ = writeln!(self.log, "userns: rc={code:?}\n{out}");
    }
}

impl Helper {
    /// A bundle in `name` of a CRI pod (containerd's annotations) that
    /// runs `args`, with `/marker` saying `name`.
    fn pod_bundle(&self, name: &str, kind: &str, sandbox: &str, args: &[&str]) -> String {
        let b = bundle(
            &self.dir.join(name),
            serde_json::json!({ "args": args }),
            serde_json::json!({"annotations": {
                "io.kubernetes.cri.container-type": kind,
                "io.kubernetes.cri.sandbox-id": sandbox,
            }}),
        );
        std::fs::write(b.join("rootfs/marker"), name).unwrap();
        b.to_str().unwrap().to_string()
    }

    /// The pids `ps --format json` lists.
    fn ps_pids(&mut self, id: &str) -> String {
        let out = self.call(&["ps", "--format", "json", id]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A host pid veil recorded for a container (`sentry` or `gofer`).
    fn recorded_pid(&self, id: &str, which: &str) -> i64 {
        let state = std::fs::read(self.root.join(id).join("state.json")).unwrap();
        let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
        state[which]["pid"].as_i64().unwrap()
    }

    /// A pod: its sandbox container, then containers that join its
    /// sandbox, each on its own root, seeing the pod's processes, with its
    /// own life: start, exec, ps, kill, exit status, delete.
    fn pod(&mut self) {
        let pause = self.pod_bundle("pause", "sandbox", "pod", &["sleep", "1000"]);
        self.step(
            "create the sandbox",
            &["create", "--bundle", &pause, "pod"],
            None,
        );
        self.step("start the sandbox", &["start", "pod"], None);

        let script = "cat /marker; echo; tr '\\0' ' ' </proc/1/cmdline; echo; \
                      trap 'echo got-term; exit 7' TERM; \
                      while :; do sleep 0.05; done";
        let c1 = self.pod_bundle("c1", "container", "pod", &["sh", "-c", script]);
        let out = self.dir.join("c1.out");
        let pid_file = self.dir.join("c1.pid");
        let create = self.create_with_pid_file(&c1, "c1", &pid_file, &out);
        let _ = writeln!(self.log, "create c1: rc={:?}", create.status.code());
        let waiter: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        let state = self.state("c1").unwrap();
        let _ = writeln!(
            self.log,
            "c1: {}, pid is the pid file's: {}",
            state["status"],
            state["pid"] == waiter
        );
        self.step_out("exec c1 before start", &["exec", "c1", "cat", "/marker"]);
        self.step("start c1", &["start", "c1"], None);
        self.record_status("c1 started", "c1");
        self.step_out("exec c1", &["exec", "c1", "cat", "/marker"]);
        self.step_out("exec in the sandbox", &["exec", "pod", "cat", "/marker"]);
        self.step_out(
            "exec c1 exit code",
            &["exec", "c1", "sh", "-c", "test -e /proc/1 && exit 4"],
        );
        let pids = self.ps_pids("pod");
        let _ = writeln!(self.log, "ps pod: {pids}");
        self.step_out("ps -o", &["ps", "pod", "-o", "pid,comm,args"]);
        let c1_pids = self.ps_pids("c1");
        let _ = writeln!(
            self.log,
            "ps c1 lists its own: {}",
            !c1_pids.contains("[1,") && !c1_pids.contains("[1]") && c1_pids != "null"
        );
        // Let the trap be set before it is needed.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&out).unwrap().contains("sleep") {
            assert!(Instant::now() < deadline, "c1 did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.step("kill c1", &["kill", "c1", "TERM"], None);
        let _ = writeln!(self.log, "c1's waiter: {:?}", await_reaped(waiter));
        self.await_stopped("c1 after kill", "c1");
        self.record_status("the sandbox after c1", "pod");
        let _ = writeln!(
            self.log,
            "c1 said: {:?}",
            std::fs::read_to_string(&out).unwrap()
        );
        let gofer = self.recorded_pid("c1", "gofer");
        self.step("delete c1", &["delete", "c1"], None);
        let _ = writeln!(self.log, "c1's gofer gone: {}", gone(gofer));
        let pids = self.ps_pids("pod");
        let _ = writeln!(self.log, "ps pod after c1: {pids}");

        // Killed while created, and deleted while running.
        let idle = self.pod_bundle("c2", "container", "pod", &["sleep", "1000"]);
        self.step("create c2", &["create", "--bundle", &idle, "c2"], None);
        self.step("kill c2 while created", &["kill", "c2", "KILL"], None);
        self.await_stopped("c2 after kill", "c2");
        self.step("delete c2", &["delete", "c2"], None);
        let idle = self.pod_bundle("c3", "container", "pod", &["sleep", "1000"]);
        self.step("create c3", &["create", "--bundle", &idle, "c3"], None);
        self.step("start c3", &["start", "c3"], None);
        self.step("delete c3 running", &["delete", "c3"], Some("not stopped"));
        self.step("delete --force c3", &["delete", "--force", "c3"], None);
        let pids = self.ps_pids("pod");
        let _ = writeln!(self.log, "ps pod after c3: {pids}");

        let lost = self.pod_bundle("c4", "container", "nope", &["true"]);
        self.step(
            "a container of a missing sandbox",
            &["create", "--bundle", &lost, "c4"],
            Some("the pod's sandbox nope"),
        );
        self.step("pause c5", &["pause", "c5"], Some("does not exist"));

        // The sandbox's end is its containers' end.
        let idle = self.pod_bundle("c5", "container", "pod", &["sleep", "1000"]);
        self.step("create c5", &["create", "--bundle", &idle, "c5"], None);
        self.step("start c5", &["start", "c5"], None);
        self.step(
            "pause c5",
            &["pause", "c5"],
            Some("paused with their sandbox"),
        );
        let sentry = self.recorded_pid("pod", "sentry");
        self.step(
            "delete --force the sandbox",
            &["delete", "--force", "pod"],
            None,
        );
        self.await_stopped("c5 after the sandbox", "c5");
        self.step("delete c5", &["delete", "c5"], None);
        let _ = writeln!(self.log, "the sentry gone: {}", gone(sentry));
        self.record_list("list");
    }
}

/// How the child `pid` ended, reaping until it did (None after 20 s).
fn await_reaped(pid: i32) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        reap();
        if let Some(status) = reaped(pid) {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a console receiver does with the console.
#[derive(Default)]
struct ConsoleActs {
    /// Typed at once.
    input: &'static [u8],
    /// Rows and columns to set once the container said "ready".
    resize: Option<(u16, u16)>,
    /// Close the console once the container said "ready".
    hang_up: bool,
    /// Typed once the container said "ready".
    when_ready: &'static [u8],
    /// Record only how many bytes came and the last few.
    summarize: bool,
}

/// A console socket's receiver, as runc's recvtty: accepts one connection,
/// takes the fd sent with SCM_RIGHTS, acts on it and reads it until the
/// other side is gone (EIO) or 20 s pass. Returns what it saw.
fn console_receiver(path: &Path, acts: ConsoleActs) -> std::thread::JoinHandle<String> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return format!("no connection: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut payload = [0u8; 4096];
        let mut space = [0u8; rustix::cmsg_space!(ScmRights(4))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let msg = rustix::net::recvmsg(
            &conn,
            &mut [std::io::IoSliceMut::new(&mut payload)],
            &mut cmsg,
            RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds = Vec::new();
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        let mut out = Vec::new();
        let tty = fds.first().is_some_and(rustix::termios::isatty);
        if let Some(master) = fds.first() {
            rustix::io::write(master, acts.input).unwrap();
            let mut resize = acts.resize;
            let mut buf = [0u8; 4096];
            while Instant::now() < deadline {
                let mut pfd = [rustix::event::PollFd::new(
                    master,
                    rustix::event::PollFlags::IN,
                )];
                if rustix::event::poll(&mut pfd, 100).unwrap_or(0) == 0 {
                    continue;
                }
                match rustix::io::read(master, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
                if let Some((rows, cols)) = resize.filter(|_| out.ends_with(b"ready\r\n")) {
                    let size = rustix::termios::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    rustix::termios::tcsetwinsize(master, size).unwrap();
                    resize = None;
                }
                if acts.hang_up && out.ends_with(b"ready\r\n") {
                    break;
                }
                if !acts.when_ready.is_empty() && out.ends_with(b"ready\r\n") {
                    rustix::io::write(master, acts.when_ready).unwrap();
                }
            }
        }
        let read = if acts.summarize {
            let tail = String::from_utf8_lossy(&out[out.len().saturating_sub(14)..]);
            format!("{} bytes ending {tail:?}", out.len())
        } else {
            format!("{:?}", String::from_utf8_lossy(&out))
        };
        format!(
            "msg={:?} fds={} tty={tty} read={read}",
            String::from_utf8_lossy(&payload[..msg.bytes]),
            fds.len(),
        )
    })
}

/// Whether a host pid has no live process (a zombie counts as gone).
fn gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// How the processes `reap` reaped ended: pid and exit status (or 128
/// plus the signal).
static REAPED: std::sync::Mutex<Vec<(i32, i32)>> = std::sync::Mutex::new(Vec::new());

/// Reaps every exited child: all the helper's own commands have been
/// waited for, so what is left was re-parented to it.
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        let ended = match status {
            WaitStatus::StillAlive => break,
            WaitStatus::Exited(pid, code) => (pid.as_raw(), code),
            WaitStatus::Signaled(pid, sig, _) => (pid.as_raw(), 128 + sig as i32),
            _ => continue,
        };
        REAPED.lock().unwrap().push(ended);
    }
}

/// The exit status of `pid`, once reaped.
fn reaped(pid: i32) -> Option<i32> {
    let reaped = REAPED.lock().unwrap();
    reaped.iter().find(|&&(p, _)| p == pid).map(|&(_, s)| s)
}

/// Runs `script` against `runtime` in a helper process.
fn transcript(runtime: &Path, script: &str) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_lifecycle", "--ignored", "--nocapture"])
        .env(RUNTIME, runtime)
        .env(SCRIPT, script)
        .env(TRANSCRIPT, file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} on {}: {}{}",
        runtime.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(file.path()).unwrap()
}

/// veil's transcript, compared with runc's when runc is installed; `expect`
/// lines must be in veil's either way, so that veil is checked without
/// runc too.
fn compare(script: &str, expect: &[&str]) {
    let ours = transcript(Path::new(veil_exe()), script);
    for line in expect {
        assert!(
            ours.lines().any(|l| l == *line),
            "{script}: veil's transcript lacks {line:?}:\n{ours}"
        );
    }
    if let Some(runc) = runc_exe() {
        let theirs = transcript(&runc, script);
        assert_eq!(
            ours, theirs,
            "{script}: veil (left) and runc (right) differ"
        );
    }
}

#[test]
fn create_start_kill_delete_like_runc() {
    compare(
        "lifecycle",
        &[
            "create: rc=Some(0)",
            "pid file is a bare number: true",
            "state keys: [\"bundle\", \"created\", \"id\", \"ociVersion\", \"owner\", \"pid\", \"rootfs\", \"status\"]",
            "created: \"created\", pid matches the pid file: true, bundle: true, rootfs: true",
            "after start: running",
            "after kill: stopped",
            "stopped pid: 0",
            "container output: \"hello\\ngot-term\\n\"",
            "kill stopped: rc=1 says \"container not running\": true",
            "kill --all stopped: rc=0",
            "delete: rc=0",
            "delete --force missing: rc=0",
            "create without config: rc=1 says \"config.json not found\": true",
        ],
    );
}

#[test]
fn init_ignores_signals_it_has_no_handler_for_like_runc() {
    compare(
        "init-signals",
        &[
            "after TERM: running",
            "after KILL: stopped",
            "after kill in created: stopped",
            "the container's pid is gone: true",
            "state root entries: 0",
        ],
    );
}

#[test]
fn run_returns_the_exit_code_like_runc() {
    compare(
        "run",
        &[
            "run: rc=Some(42) output=\"from-run\\n\"",
            "list after run: \"\"",
            "run killed: rc=Some(0)",
            "run missing program: rc=1 says \"no-such-program\": true",
            "list after failed run: \"\"",
        ],
    );
}

#[test]
fn the_memory_limit_holds_like_runcs() {
    compare("memory", &["run: rc=Some(0)", "rc=137", "alive"]);
}

/// Needs the v1 hierarchies this machine has (as CI's does).
#[test]
fn the_container_runs_in_its_cgroup_like_runcs() {
    if !Path::new("/sys/fs/cgroup/memory").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI machines have cgroup v1"
        );
        eprintln!("skipped: no cgroup v1 memory hierarchy");
        return;
    }
    compare(
        "cgroups",
        &[
            "the container's process is in the memory cgroup: true",
            "cpu.shares: 512",
            "memory limit at least the spec's: true",
            "pids.max at least the spec's: true",
            "cgroup directories left: 0",
        ],
    );
}

#[test]
fn pause_and_resume_like_runc() {
    compare(
        "pause",
        &[
            "resume created: rc=1 says \"not paused\": true",
            "after pause: paused",
            "the container's process is frozen: true",
            "pause again: rc=1 says \"not running\": true",
            "listed as \"paused\"",
            "after resume: running",
            "delete --force paused: rc=0",
            "the container's pid is gone: true",
        ],
    );
}

#[test]
fn preserved_descriptors_reach_init_like_runc() {
    compare(
        "preserve",
        &["run --preserve-fds 1: rc=Some(0) out=\"rc=0\\n\" fd3=\"to-fd3\\n\""],
    );
}

/// runc's statistics have other fields: veil's alone are checked.
#[test]
fn events_report_the_cgroups_figures() {
    let ours = transcript(Path::new(veil_exe()), "events");
    for line in [
        "events --stats: rc=0",
        "lines: 1",
        "type: \"stats\", id: \"e1\"",
        "memory in use: true",
        "host processes: true",
        "events of a deleted container: rc=1 says \"does not exist\": true",
    ] {
        assert!(ours.lines().any(|l| l == line), "lacks {line:?}:\n{ours}");
    }
}

#[test]
fn user_namespace_mappings_like_runc() {
    compare(
        "userns",
        &[
            "userns: rc=Some(0)",
            "         0     100000      65536",
            "0",
            "65534 65534 /bin/busybox",
            "0 0 /home/user",
            "0 0",
            "5 7",
            "chown: /home/user/new: Invalid argument",
        ],
    );
}

/// No runc counterpart: runc runs each of a pod's containers on the host,
/// where they share namespaces by path.
#[test]
fn a_pods_containers_share_its_sandbox_like_runsc() {
    let ours = transcript(Path::new(veil_exe()), "pod");
    let expect = [
        "create the sandbox: rc=0",
        "start the sandbox: rc=0",
        "create c1: rc=Some(0)",
        "c1: \"created\", pid is the pid file's: true",
        "exec c1 before start: rc=Some(0) out=\"c1\"",
        "start c1: rc=0",
        "c1 started: running",
        "exec c1: rc=Some(0) out=\"c1\"",
        "exec in the sandbox: rc=Some(0) out=\"pause\"",
        "exec c1 exit code: rc=Some(4) out=\"\"",
        "ps pod: [1]",
        "ps -o: rc=Some(0) out=\"PID COMMAND COMMAND\\n  1 sleep   sleep 1000\\n\"",
        "ps c1 lists its own: true",
        "kill c1: rc=0",
        "c1's waiter: Some(7)",
        "c1 after kill: stopped",
        "the sandbox after c1: running",
        "c1 said: \"c1\\nsleep 1000 \\ngot-term\\n\"",
        "delete c1: rc=0",
        "c1's gofer gone: true",
        "ps pod after c1: [1]",
        "create c2: rc=0",
        "kill c2 while created: rc=0",
        "c2 after kill: stopped",
        "delete c2: rc=0",
        "create c3: rc=0",
        "start c3: rc=0",
        "delete c3 running: rc=1 says \"not stopped\": true",
        "delete --force c3: rc=0",
        "ps pod after c3: [1]",
        "a container of a missing sandbox: rc=1 says \"the pod's sandbox nope\": true",
        "pause c5: rc=1 says \"does not exist\": true",
        "create c5: rc=0",
        "start c5: rc=0",
        "pause c5: rc=1 says \"paused with their sandbox\": true",
        "delete --force the sandbox: rc=0",
        "c5 after the sandbox: stopped",
        "delete c5: rc=0",
        "the sentry gone: true",
        "list: \"\"",
    ];
    for line in expect {
        assert!(ours.lines().any(|l| l == line), "lacks {line:?}:\n{ours}");
    }
}

#[test]
fn hooks_run_on_the_host_like_runcs() {
    compare(
        "hooks",
        &[
            "poststop stopped env-ok",
            "create with failing hook: rc=1 says \"hook-failed\": true",
            "after failed create: missing",
        ],
    );
}

#[test]
fn the_process_gets_the_bundles_settings_like_runc() {
    compare(
        "config",
        &[
            "parity-test",
            "uid=1000 gid=1000 groups=10,20",
            "FOO=bar baz",
            "/home/user",
            "256",
            "0027",
            "masked file: [] dir: 0",
            "proc proc ro",
            "bound: shared-content",
            "touch root: 1",
            "touch shm: 0",
        ],
    );
}

/// Writes to the root stay in the sandbox by default (runsc's way), and go
/// through to the bundle's rootfs with `--overlay none` (runc's).
#[test]
fn writes_to_the_root_stay_in_the_sandbox_unless_overlay_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(
        tmp.path(),
        serde_json::json!({"args": ["sh", "-c", "echo data > /written && cat /written"]}),
        serde_json::json!({"root": {"path": "rootfs", "readonly": false}}),
    );
    let root = tmp.path().join("state");
    for (overlay, kept_on_host) in [("memory", false), ("none", true)] {
        let out = Command::new(veil_exe())
            .arg("--root")
            .arg(&root)
            .args(["--overlay", overlay, "run", "--bundle"])
            .arg(&b)
            .arg(format!("w-{overlay}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{overlay}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "data\n", "{overlay}");
        assert_eq!(
            b.join("rootfs/written").exists(),
            kept_on_host,
            "--overlay {overlay}"
        );
    }
}

#[test]
fn exec_and_ps_like_runc() {
    compare(
        "exec",
        &[
            "exec in created: rc=Some(0) out=\"hi\\n\"",
            "after exec in created: created",
            "ps in created: Some(1)",
            "exec exit code: rc=Some(3) out=\"from-exec\\n\"",
            "exec -p: rc=Some(0) out=\"from-process-json json\\n/tmp\\n1234\\n\"",
            "exec -p without a user: rc=Some(0) out=\"0\\n\"",
            "exec missing program: rc=255 says \"no-such-program\": true",
            "exec -d: rc=0",
            "exec pid file is a bare number: true",
            "ps with exec'd sleep: Some(3)",
            "exec -d pid after TERM: signal SIGTERM, core false",
            "ps after: Some(2)",
            "exec -d pid killed: true",
            "ps after KILL: Some(2)",
            "exec killed by TERM: rc=Some(143)",
            "ps with the orphan: Some(3)",
            "exec stopped: rc=255 says \"cannot exec in a stopped container\": true",
            "ps stopped: rc=Some(0) out=\"null\\n\"",
            "exec missing: rc=255 says \"container does not exist\": true",
        ],
    );
}

/// The sentry answers malformed control requests with errors and goes on.
#[test]
fn malformed_control_requests_get_error_replies() {
    use nix::sys::socket::{
        connect, recv, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag,
        SockType, UnixAddr,
    };
    use std::os::fd::AsRawFd;
    use veil_sentry::control::{Reply, Request};

    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(
        tmp.path(),
        serde_json::json!({"args": ["sleep", "1000"]}),
        serde_json::json!({}),
    );
    let root = tmp.path().join("state");
    let veil = |args: &[&str]| {
        Command::new(veil_exe())
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    assert!(veil(&["create", "--bundle", b.to_str().unwrap(), "m1"]).success());
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(
        sock.as_raw_fd(),
        &UnixAddr::new(&root.join("m1/sandbox.sock")).unwrap(),
    )
    .unwrap();
    let call = |bytes: &[u8], fds: &[i32]| -> Reply {
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[std::io::IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut buf = vec![0u8; 65536];
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        postcard::from_bytes(&buf[..n]).unwrap()
    };
    let enc = |r: &Request| postcard::to_allocvec(r).unwrap();
    let true_on = |terminal| Request::Exec {
        process: veil_sentry::ProcessSpec {
            argv: vec![b"/bin/true".to_vec()],
            cwd: b"/".to_vec(),
            ..Default::default()
        },
        terminal,
        container: None,
    };
    let (exec, on_terminal) = (true_on(false), true_on(true));
    let pod = |gofers| Request::CreateContainer {
        id: "c9".into(),
        spec: veil_sentry::control::ContainerSpec {
            mounts: veil_vfs::mount::MountConfig::default_tree(),
            process: veil_sentry::ProcessSpec {
                argv: vec![b"/bin/true".to_vec()],
                cwd: b"/".to_vec(),
                ..Default::default()
            },
            readonly_root: false,
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            terminal: false,
            gofers,
        },
    };
    let null = std::fs::File::open("/dev/null").unwrap();
    let null = null.as_raw_fd();
    for (what, bytes, fds) in [
        ("garbage", vec![0xff, 0xff, 0xff], vec![]),
        ("exec without stdio", enc(&exec), vec![]),
        ("exec with too few", enc(&exec), vec![null]),
        (
            "exec on a terminal with stdio",
            enc(&on_terminal),
            vec![null, null, null],
        ),
        (
            "descriptors on a wait",
            enc(&Request::Wait {
                pid: 1,
                tied: false,
            }),
            vec![null],
        ),
        (
            "wait for init",
            enc(&Request::Wait {
                pid: 1,
                tied: false,
            }),
            vec![],
        ),
        (
            "a bad signal",
            enc(&Request::Signal {
                signo: 99,
                all: false,
                pid: None,
                container: None,
            }),
            vec![],
        ),
        (
            "a signal to no process",
            enc(&Request::Signal {
                signo: 9,
                all: false,
                pid: Some(4242),
                container: None,
            }),
            vec![],
        ),
        (
            "exec with no args",
            enc(&Request::Exec {
                process: veil_sentry::ProcessSpec::default(),
                terminal: false,
                container: None,
            }),
            vec![null, null, null],
        ),
        (
            "a pod container with no gofer",
            enc(&pod(0)),
            vec![null, null, null],
        ),
        ("a pod container without stdio", enc(&pod(1)), vec![null]),
        (
            "a pod container on a gofer that is not one",
            enc(&pod(1)),
            vec![null, null, null, null],
        ),
        (
            "start of a container not there",
            enc(&Request::Start {
                container: Some("c9".into()),
            }),
            vec![],
        ),
        (
            "exec in a container not there",
            enc(&Request::Exec {
                process: veil_sentry::ProcessSpec {
                    argv: vec![b"/bin/true".to_vec()],
                    cwd: b"/".to_vec(),
                    ..Default::default()
                },
                terminal: false,
                container: Some("c9".into()),
            }),
            vec![null, null, null],
        ),
        (
            "wait for a container not there",
            enc(&Request::WaitContainer { id: "c9".into() }),
            vec![],
        ),
        (
            "destroy a container not there",
            enc(&Request::DestroyContainer { id: "c9".into() }),
            vec![],
        ),
    ] {
        let reply = call(&bytes, &fds);
        assert!(matches!(reply, Reply::Error(_)), "{what}: {reply:?}");
    }
    // Still serving, and init still waiting for start.
    let reply = call(&enc(&exec), &[null, null, null]);
    let Reply::Pid(pid) = reply else {
        panic!("exec after bad requests: {reply:?}")
    };
    assert_eq!(
        call(&enc(&Request::Wait { pid, tied: false }), &[]),
        Reply::Exit(0),
        "/bin/true's status"
    );
    let out = Command::new(veil_exe())
        .arg("--root")
        .arg(&root)
        .args(["state", "m1"])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["status"], "created");
    assert!(veil(&["delete", "--force", "m1"]).success());
}

#[test]
fn a_terminal_through_the_console_socket_like_runc() {
    compare(
        "tty",
        &[
            "t1: create rc=Some(0) start rc=Some(0) exit=Some(7) stdio=\"\"",
            "t1 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"/dev/pts/0\\r\\n30 100\\r\\nxterm\\r\\n\"",
            "create without a console socket: rc=1 says \"cannot allocate tty if\": true",
            "run attached with a console socket: rc=1 says \"cannot use console socket if\": true",
            "create without a terminal with a console socket: rc=1 says \"cannot use console socket if\": true",
            "list: \"\"",
            "t5: create rc=Some(0) start rc=Some(0) exit=Some(0) stdio=\"\"",
            "t5 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"hello\\r\\ngot:hello\\r\\n\"",
            "t6: create rc=Some(0) start rc=Some(0) exit=Some(3) stdio=\"\"",
            "t6 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"ready\\r\\n40 120\\r\\n\"",
            "t7: create rc=Some(0) start rc=Some(0) exit=Some(5) stdio=\"\"",
            "t7 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"ready\\r\\n\"",
            "t11: create rc=Some(0) start rc=Some(0) exit=Some(4) stdio=\"\"",
            "t11 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"ready\\r\\n^Cint\\r\\n\"",
            "t8 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"con\\r\\n/dev/console\\r\\n\
             88 0 620 0 5\\r\\n88 0 620 0 5\\r\\n0     ptmx\\r\\n/dev/tty\\r\\n\"",
            "t12: create rc=Some(0) start rc=Some(0) exit=Some(6) stdio=\"\"",
            "t12 console: msg=\"/dev/ptmx\" fds=1 tty=true read=198894 bytes ending \"29999\\r\\n30000\\r\\n\"",
            "t9: \"/dev/pts/0\\r\\nrc=7\\r\\n icanon\\r\\n\"",
            "t10: rc=Some(1) says \"open /dev/tty\": true",
            "e1: exec rc=Some(0) exit=Some(3)",
            "e1 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"/dev/pts/0\\r\\n\"",
            "e2: exec rc=Some(0) exit=Some(4)",
            "e2 console: msg=\"/dev/ptmx\" fds=1 tty=true read=\"30 100\\r\\n/dev/tty\\r\\n\"",
            "exec detached on a terminal without a console socket: rc=255 says \"cannot allocate tty if\": true",
            "exec attached with a console socket: rc=255 says \"cannot use console socket if\": true",
            "exec without a terminal with a console socket: rc=255 says \"cannot use console socket if\": true",
            "e3: \"/dev/pts/0\\r\\nrc=6\\r\\n icanon\\r\\n\"",
        ],
    );
}
