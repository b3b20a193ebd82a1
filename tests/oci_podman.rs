//! podman (through conmon) driving the OCI runtime under test, selected by
//! path with `podman --runtime`: output, identity and hostname of a plain
//! run, and `run -t`, where conmon hands `create` a --console-socket and the
//! container's terminal must come out as /dev/pts/0. Each test has its own
//! storage, run and tmp directories and config files, so it touches neither
//! the host's images nor its containers.conf.
//!
//! The runtime is veil, or `$VEIL_TEST_OCI_RUNTIME` (e.g. /usr/sbin/runc to
//! check the harness). Without podman or root the tests are skipped with a
//! note, except under CI.
//!
//! The test process need not be a child subreaper: conmon is the subreaper
//! of everything the runtime starts; the test only waits for podman.

mod common;

use std::process::{Command, Stdio};

use common::oci::{
    busybox_image, oci_runtime, prerequisites, run, runtime_is_runc, unmount_below, IMAGE,
};
use common::{path_str, Output, TempDir};

/// podman with private storage, state and configuration, cleaned up on drop.
struct Podman {
    dir: TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = TempDir::new("podman");
        let p = |name: &str| path_str(&dir.path().join(name)).to_string();
        dir.write(
            "containers.conf",
            b"[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
            0o644,
        );
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            p("storage"),
            p("run")
        );
        dir.write("storage.conf", storage.as_bytes(), 0o644);
        std::fs::create_dir(dir.path().join("net")).expect("mkdir net");
        let podman = Podman { dir };
        let load = podman.podman(&["load", "-i", path_str(&busybox_image())]);
        load.assert_success();
        assert!(
            load.stdout_str().contains(IMAGE),
            "podman load: {}",
            load.describe()
        );
        podman
    }

    fn global_args(&self) -> Vec<String> {
        let p = |name: &str| path_str(&self.dir.path().join(name)).to_string();
        vec![
            "--root".into(),
            p("storage"),
            "--runroot".into(),
            p("run"),
            "--tmpdir".into(),
            p("tmp"),
            "--network-config-dir".into(),
            p("net"),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
        ]
    }

    fn env(&self) -> [(String, String); 2] {
        let p = |name: &str| path_str(&self.dir.path().join(name)).to_string();
        [
            ("CONTAINERS_CONF".into(), p("containers.conf")),
            ("CONTAINERS_STORAGE_CONF".into(), p("storage.conf")),
        ]
    }

    fn podman(&self, args: &[&str]) -> Output {
        let mut argv = self.global_args();
        argv.extend(args.iter().map(|s| s.to_string()));
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run("podman", &argv, &env)
    }

    /// `podman --runtime RUNTIME run --rm` of the busybox image, no network.
    fn run_container(&self, flags: &[&str], argv: &[&str]) -> Output {
        let runtime = oci_runtime();
        let mut args = vec![
            "--runtime",
            path_str(&runtime),
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
        ];
        // runc applies podman's large default NOFILE/NPROC limits with
        // setrlimit, which root without CAP_SYS_RESOURCE (as on some CI
        // machines) may not do. veil emulates rlimits in the sentry, so it
        // must take podman's defaults as they are.
        if runtime_is_runc() {
            args.extend_from_slice(&[
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ]);
        }
        args.extend_from_slice(flags);
        args.push(IMAGE);
        args.extend_from_slice(argv);
        self.podman(&args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Best effort, never panics (it runs while a failed test unwinds):
        // frees the lock slots podman shares in /dev/shm of any container
        // a failed run left, then whatever is still mounted.
        let _ = Command::new("timeout")
            .args(["-k", "5", "30", "podman"])
            .args(self.global_args())
            .args(["rm", "--all", "--force"])
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        unmount_below(self.dir.path());
    }
}

#[test]
fn run_prints_output_identity_and_hostname() {
    if !prerequisites(&["podman", "conmon", "timeout"]) {
        return;
    }
    let podman = Podman::new();
    let out = podman.run_container(&[], &["sh", "-c", "echo ok; id; hostname"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    let stdout = out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.describe());
    assert_eq!(lines[0], "ok");
    assert!(
        lines[1].starts_with("uid=0(root) gid=0(root)"),
        "{}",
        out.describe()
    );
    // podman names the host after the container id.
    assert!(
        lines[2].len() >= 12 && lines[2].bytes().all(|b| b.is_ascii_hexdigit()),
        "{}",
        out.describe()
    );
}

#[test]
fn run_with_terminal_gets_dev_pts_0() {
    if !prerequisites(&["podman", "conmon", "timeout"]) {
        return;
    }
    let podman = Podman::new();
    // stdin is /dev/null: podman -t needs no terminal of its own; conmon
    // makes the pty through the runtime's --console-socket.
    let out = podman.run_container(&["-t"], &["sh", "-c", "tty; exit 2"]);
    assert_eq!(out.code(), 2, "{}", out.describe());
    assert_eq!(out.stdout_str(), "/dev/pts/0\r\n", "{}", out.describe());
}
