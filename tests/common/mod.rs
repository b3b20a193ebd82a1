//! Differential test harness shared by the integration tests in `tests/`.
//!
//! The model: run a command natively and under `veil do`, with the same argv,
//! the same minimal environment, the same working directory (`/`) and the
//! same stdin, and require identical stdout, stderr and exit status. C test
//! programs live in `tests/c/<subsystem>/<name>.c` and are compiled here with
//! the host gcc (static, static-pie or dynamic); binaries are cached by a hash
//! of their sources and flags under `$CARGO_TARGET_TMPDIR/veil-test-bin/`.
//!
//! Knobs (read by the test process, never passed to the programs):
//! `VEIL_TEST_TIMEOUT_SECS` (default 60) and `VEIL_TEST_BIN` (the veil
//! binary to test instead of the one cargo built).
//!
//! Every run has a timeout; on timeout the whole process group is killed and
//! the test fails with whatever output was produced. Exit statuses are compared shell-style: death by signal N
//! counts as 128+N, which is what `veil do` is specified to exit with.
//!
//! Each test file does `mod common;` and uses a subset of this module.
#![allow(dead_code)]

pub mod oci;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The `veil` binary under test: the one cargo built for these tests, or
/// `$VEIL_TEST_BIN` if set (e.g. to test a release build).
pub fn veil_bin() -> String {
    match std::env::var("VEIL_TEST_BIN") {
        Ok(p) if !p.is_empty() => p,
        _ => env!("CARGO_BIN_EXE_veil").to_string(),
    }
}

/// The environment every run gets, natively and under veil alike (the
/// environment is cleared first). Tests add variables with [`Case::env`].
pub const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/tmp"),
    ("LANG", "C"),
    ("LC_ALL", "C"),
    ("TZ", "UTC"),
    ("TERM", "dumb"),
];

/// Working directory of every run.
pub const CWD: &str = "/";

const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// How long we wait for stdout/stderr to reach EOF once the process exited.
/// Longer means something (a leaked sandbox process?) still holds the pipes.
const PIPE_GRACE: Duration = Duration::from_secs(10);

/// The timeout of one run: `VEIL_TEST_TIMEOUT_SECS` or 60 s.
pub fn run_timeout() -> Duration {
    let secs = std::env::var("VEIL_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// The repository root (`crates/veil/../..`).
pub fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// `tests/c`, where the C test programs live.
pub fn c_dir() -> PathBuf {
    repo_root().join("tests").join("c")
}

/// Cargo's scratch directory for integration tests (`target/tmp`).
pub fn target_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// exit(code)
    Exited(i32),
    /// killed by this signal
    Signaled(i32),
}

impl Status {
    /// Shell-style exit code: the code itself, or 128+N for death by signal N.
    pub fn code(self) -> i32 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(s) => 128 + s,
        }
    }

    fn from_exit_status(s: ExitStatus) -> Status {
        match (s.code(), s.signal()) {
            (Some(c), _) => Status::Exited(c),
            (None, Some(sig)) => Status::Signaled(sig),
            // Stopped/continued cannot be reported by wait() without
            // WUNTRACED; treat anything else as a crash-like status.
            (None, None) => Status::Signaled(0),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exit {c}"),
            Status::Signaled(s) => write!(f, "killed by signal {s} (shell code {})", 128 + s),
        }
    }
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Output {
    /// The command line as run, shell-quoted, with its environment: paste it
    /// into a shell to reproduce.
    pub command: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Status,
    pub elapsed: Duration,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Shell-style exit code (128+N for death by signal N).
    pub fn code(&self) -> i32 {
        self.status.code()
    }

    /// A readable summary for assertion messages: command, status, and the
    /// (possibly truncated) output streams.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {} (after {:.1?})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command,
            self.status,
            self.elapsed,
            truncate_for_display(&self.stdout_str()),
            truncate_for_display(&self.stderr_str()),
        )
    }

    /// Panics with [`Output::describe`] unless the run exited with status 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status == Status::Exited(0),
            "expected exit status 0\n{}",
            self.describe()
        );
        self
    }
}

fn truncate_for_display(s: &str) -> String {
    const MAX: usize = 8000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[... {} more bytes]", &s[..cut], s.len() - cut)
}

// ---------------------------------------------------------------------------
// Running processes with a timeout
// ---------------------------------------------------------------------------

// Declared by hand rather than through the libc crate: no new dependencies.
extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
}

#[repr(C)]
struct RLimit {
    cur: u64,
    max: u64,
}

const SIGKILL: i32 = 9;
const RLIMIT_CORE: i32 = 4;

/// SIGKILLs every process in process group `pgid`.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // names the process group we created for this child (process_group(0)).
    unsafe {
        kill(-pgid, SIGKILL);
    }
}

/// Collects everything written to a pipe, on a thread, so that a child that
/// fills one pipe while we wait cannot deadlock, and so that what was
/// written so far can still be shown if the pipe never reaches EOF.
struct Collector {
    data: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collector {
    fn spawn<R: Read + Send + 'static>(mut reader: R) -> Collector {
        let data = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let sink = Arc::clone(&data);
        thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        Collector { data, done }
    }

    /// Waits until EOF or the deadline; returns (data, reached_eof).
    fn finish(self, deadline: Instant) -> (Vec<u8>, bool) {
        let wait = deadline.saturating_duration_since(Instant::now());
        let eof = self.done.recv_timeout(wait).is_ok();
        let data = std::mem::take(&mut *self.data.lock().unwrap_or_else(|e| e.into_inner()));
        (data, eof)
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `program args...` in [`CWD`] with exactly `env`, stdin fed from
/// `stdin` (or /dev/null), in its own process group, with core dumps off.
/// Panics (failing the test) on timeout, on a spawn error, or if the pipes
/// stay open long after the process exited.
pub fn run_command(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Output {
    let mut command_line = format!("cd {CWD} && env -i");
    for (k, v) in env {
        let _ = write!(command_line, " {}", shell_quote(&format!("{k}={v}")));
    }
    let _ = write!(command_line, " {}", shell_quote(program));
    for a in args {
        let _ = write!(command_line, " {}", shell_quote(a));
    }
    if let Some(data) = stdin {
        let _ = write!(
            command_line,
            " < (stdin: {} bytes from the test)",
            data.len()
        );
    } else {
        command_line.push_str(" </dev/null");
    }

    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(CWD)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let no_core = || {
        let lim = RLimit { cur: 0, max: 0 };
        // SAFETY: setrlimit is async-signal-safe and `lim` outlives the call.
        unsafe { setrlimit(RLIMIT_CORE, &lim) };
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only calls
    // setrlimit(2), which is async-signal-safe; it allocates nothing.
    // No core dumps: a native run killed by SIGSEGV must not drop a core
    // file into the working directory (`/`).
    unsafe {
        cmd.pre_exec(no_core);
    }

    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}\ncommand: {command_line}"));
    let pgid = child.id();

    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        // Detached: EPIPE is fine (the program need not read all its input),
        // and the write ends when the process group is killed at the latest.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out = Collector::spawn(child.stdout.take().expect("stdout is piped"));
    let err = Collector::spawn(child.stderr.take().expect("stderr is piped"));

    let deadline = start + timeout;
    let mut timed_out = false;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for {program}: {e}\ncommand: {command_line}"),
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(pgid);
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();

    let grace = Instant::now()
        + if timed_out {
            Duration::from_secs(2)
        } else {
            PIPE_GRACE
        };
    let (stdout, out_eof) = out.finish(grace);
    let (stderr, err_eof) = err.finish(grace);
    // Whatever is left in the group (nothing, normally) goes now.
    kill_group(pgid);

    let output = Output {
        command: command_line,
        stdout,
        stderr,
        status: Status::from_exit_status(exit),
        elapsed,
    };
    if timed_out {
        panic!(
            "TIMEOUT: killed after {:?} (set VEIL_TEST_TIMEOUT_SECS to change)\n{}",
            timeout,
            output.describe()
        );
    }
    if !(out_eof && err_eof) {
        panic!(
            "{program} exited ({}) but its stdout/stderr stayed open for {:?}: \
             a leftover process (leaked sandbox process?) still holds them\n{}",
            output.status,
            PIPE_GRACE,
            output.describe()
        );
    }
    output
}

/// Runs `program args...` with a new pseudo-terminal as its stdin, stdout
/// and stderr (not yet its controlling terminal), as a terminal session
/// would. Returns the exit status and what it printed, with the
/// terminal's CR-LF line ends turned back into LF.
pub fn run_on_terminal(program: &str, args: &[&str], timeout: Duration) -> (Status, String) {
    use std::os::fd::AsFd;
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = || Stdio::from(pty.slave.as_fd().try_clone_to_owned().expect("dup pty"));
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .current_dir(CWD)
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    drop(pty.slave);
    let master = std::fs::File::from(pty.master);
    // Reads until every holder of the slave side has closed it (EIO).
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut master = master;
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let deadline = Instant::now() + timeout;
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.kill();
            panic!("TIMEOUT: {program} {args:?} on a terminal");
        }
        thread::sleep(Duration::from_millis(5));
    };
    kill_group(child.id());
    let out = reader.join().expect("pty reader");
    let text = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    (Status::from_exit_status(exit), text)
}

// ---------------------------------------------------------------------------
// Test cases: native vs veil
// ---------------------------------------------------------------------------

/// One command to run natively and/or under veil.
#[derive(Clone, Debug)]
pub struct Case {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    veil_flags: Vec<String>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Case {
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Case {
        assert!(!argv.is_empty(), "empty argv");
        Case {
            argv: argv.iter().map(|s| s.as_ref().to_string()).collect(),
            env: BASE_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            veil_flags: Vec::new(),
            stdin: None,
            timeout: run_timeout(),
        }
    }

    /// Adds (or replaces) an environment variable, for both runs.
    pub fn env(mut self, key: &str, value: &str) -> Case {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a flag to veil's command line, before `do` (e.g. `--strace`).
    pub fn veil_flag(mut self, flag: &str) -> Case {
        self.veil_flags.push(flag.to_string());
        self
    }

    /// Feeds these bytes to stdin (default: /dev/null), for both runs.
    pub fn stdin(mut self, data: &[u8]) -> Case {
        self.stdin = Some(data.to_vec());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Case {
        self.timeout = t;
        self
    }

    /// Runs the command directly on the host.
    pub fn native(&self) -> Output {
        run_command(
            &self.argv[0],
            &self.argv[1..],
            &self.env,
            self.stdin.as_deref(),
            self.timeout,
        )
    }

    /// Runs `veil <veil_flags...> do <argv...>`.
    pub fn veil(&self) -> Output {
        let mut args = self.veil_flags.clone();
        args.push("do".to_string());
        args.extend(self.argv.iter().cloned());
        run_command(
            &veil_bin(),
            &args,
            &self.env,
            self.stdin.as_deref(),
            self.timeout,
        )
    }

    /// Runs natively and under veil; panics with a readable diff unless
    /// stdout, stderr and the (shell-style) exit code are identical.
    /// Returns (native, veil).
    #[track_caller]
    pub fn assert_same(&self) -> (Output, Output) {
        let native = self.native();
        let veil = self.veil();
        assert_outputs_match(&native, &veil);
        (native, veil)
    }
}

/// Panics with a readable report unless the two runs are equivalent.
///
/// `veil do` must *exit* with 128+N when the application dies by signal N;
/// veil itself dying by a signal is a veil crash and always fails.
#[track_caller]
pub fn assert_outputs_match(native: &Output, veil: &Output) {
    let mut problems = Vec::new();
    if let Status::Signaled(sig) = veil.status {
        problems.push(format!(
            "veil itself was killed by signal {sig}: a crash (veil must exit with 128+N \
             when the application dies by signal N)"
        ));
    }
    if native.status.code() != veil.status.code() {
        problems.push(format!(
            "exit status differs: native {}, veil {}",
            native.status, veil.status
        ));
    }
    let stdout_same = native.stdout == veil.stdout;
    let stderr_same = native.stderr == veil.stderr;
    if !stdout_same {
        problems.push("stdout differs".to_string());
    }
    if !stderr_same {
        problems.push("stderr differs".to_string());
    }
    if problems.is_empty() {
        return;
    }

    let mut msg = String::new();
    let _ = writeln!(msg, "native and veil runs differ:");
    for p in &problems {
        let _ = writeln!(msg, "  * {p}");
    }
    let _ = writeln!(msg, "native: {}", native.command);
    let _ = writeln!(msg, "veil:   {}", veil.command);
    let _ = writeln!(
        msg,
        "status: native {}, veil {}",
        native.status, veil.status
    );
    for (name, a, b, same) in [
        ("stdout", &native.stdout, &veil.stdout, stdout_same),
        ("stderr", &native.stderr, &veil.stderr, stderr_same),
    ] {
        if same {
            let _ = writeln!(msg, "=== {name}: identical ({} bytes)", a.len());
        } else {
            let _ = writeln!(msg, "=== {name} (- native, + veil):");
            msg.push_str(&line_diff(
                &String::from_utf8_lossy(a),
                &String::from_utf8_lossy(b),
            ));
        }
    }
    panic!("{msg}");
}

/// Runs `argv` natively with [`BASE_ENV`] plus `env`.
pub fn run_native(argv: &[&str], env: &[(&str, &str)]) -> Output {
    let mut case = Case::new(argv);
    for (k, v) in env {
        case = case.env(k, v);
    }
    case.native()
}

/// Runs `veil <extra_veil_flags...> do <argv...>` with [`BASE_ENV`].
pub fn run_veil(argv: &[&str], extra_veil_flags: &[&str]) -> Output {
    let mut case = Case::new(argv);
    for f in extra_veil_flags {
        case = case.veil_flag(f);
    }
    case.veil()
}

/// Runs `veil <args...>` verbatim (for CLI forms like `veil do --strace ...`).
pub fn run_veil_raw(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = BASE_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_command(&veil_bin(), &args, &env, None, run_timeout())
}

/// Runs `argv` natively and under veil; panics with a diff unless stdout,
/// stderr and exit status are identical. Returns (native, veil).
#[track_caller]
pub fn assert_same(argv: &[&str]) -> (Output, Output) {
    Case::new(argv).assert_same()
}

// ---------------------------------------------------------------------------
// Compiling the C test programs
// ---------------------------------------------------------------------------

/// How a C test program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `-static`: no dynamic loader, fixed addresses.
    Static,
    /// `-static-pie`: static, but relocates itself at a random address.
    StaticPie,
    /// The distribution default: dynamic, PIE, via ld-linux.so.
    Dynamic,
}

impl Link {
    pub const ALL: [Link; 3] = [Link::Static, Link::StaticPie, Link::Dynamic];

    fn flags(self) -> &'static [&'static str] {
        match self {
            Link::Static => &["-static"],
            Link::StaticPie => &["-static-pie", "-fPIE"],
            Link::Dynamic => &[],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Link::Static => "static",
            Link::StaticPie => "static-pie",
            Link::Dynamic => "dynamic",
        }
    }
}

const CFLAGS: &[&str] = &["-O1", "-Wall", "-Werror", "-std=gnu11", "-g", "-pthread"];

/// `gcc -dumpfullversion`, or a clear failure if gcc is missing.
fn gcc_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new("gcc")
            .arg("-dumpfullversion")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run gcc ({e}). The differential tests compile the C programs in \
                     tests/c with the host gcc: install gcc and libc6-dev \
                     (apt-get install gcc libc6-dev; .ci/run does this)."
                )
            });
        assert!(
            out.status.success(),
            "gcc -dumpfullversion failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// FNV-1a, 64 bit: a stable content hash (std's hasher is not guaranteed
/// stable across Rust versions).
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Compiles `tests/c/<name>.c` (e.g. `name = "mm/mm_basic"`) with the host
/// gcc and returns the binary's path. Cached by a hash of the source, the
/// shared headers in `tests/c/*.h`, the flags and the gcc version.
pub fn compile(name: &str, link: Link) -> PathBuf {
    let cdir = c_dir();
    let src = cdir.join(format!("{name}.c"));
    let source = std::fs::read(&src)
        .unwrap_or_else(|e| panic!("cannot read C test program {}: {e}", src.display()));

    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    h = fnv1a(h, &source);
    let mut headers: Vec<PathBuf> = std::fs::read_dir(&cdir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", cdir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .collect();
    headers.sort();
    for hdr in &headers {
        h = fnv1a(h, hdr.to_string_lossy().as_bytes());
        h = fnv1a(h, &std::fs::read(hdr).unwrap_or_default());
    }
    for f in CFLAGS.iter().chain(link.flags()) {
        h = fnv1a(h, f.as_bytes());
        h = fnv1a(h, b"\0");
    }
    h = fnv1a(h, gcc_version().as_bytes());

    let bin_dir = target_tmp().join("veil-test-bin");
    std::fs::create_dir_all(&bin_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", bin_dir.display()));
    let out = bin_dir.join(format!(
        "{}-{}-{h:016x}",
        name.replace('/', "-"),
        link.name()
    ));
    if out.is_file() {
        return out;
    }

    // Build under a unique name, then rename: tests run in parallel and may
    // compile the same program at the same time.
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tmp = bin_dir.join(format!(
        ".{}.{}.{}.tmp",
        out.file_name().and_then(|s| s.to_str()).unwrap_or("bin"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = Command::new("gcc")
        .args(CFLAGS)
        .args(link.flags())
        .arg("-I")
        .arg(&cdir)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc: {e} (install gcc and libc6-dev)"));
    if !result.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "gcc failed to build {} ({}):\n{}\n(static variants need libc6-dev's libc.a)",
            src.display(),
            link.name(),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    std::fs::rename(&tmp, &out)
        .unwrap_or_else(|e| panic!("cannot move {} into place: {e}", tmp.display()));
    out
}

/// Compiles a C test program, checks that it passes its own checks natively
/// (exit 0: otherwise the test itself is wrong on this host), and asserts
/// that veil produces identical output. Returns (native, veil).
#[track_caller]
pub fn assert_same_program(name: &str, link: Link) -> (Output, Output) {
    let bin = compile(name, link);
    let bin = bin.to_str().expect("UTF-8 path").to_string();
    let case = Case::new(&[bin.as_str()]);
    let native = case.native();
    assert!(
        native.status == Status::Exited(0),
        "{name} ({}) fails natively: the test program is wrong for this host, not veil\n{}",
        link.name(),
        native.describe()
    );
    let veil = case.veil();
    assert_outputs_match(&native, &veil);
    (native, veil)
}

/// `assert_same_program`, plus the program's own verdict: its last line
/// under veil is "all ok".
#[track_caller]
pub fn assert_program_passes(name: &str, link: Link) -> Output {
    let (_, veil) = assert_same_program(name, link);
    assert!(
        veil.stdout_str().ends_with("all ok\n"),
        "{}",
        veil.describe()
    );
    veil
}

// ---------------------------------------------------------------------------
// Scratch directories and files
// ---------------------------------------------------------------------------

/// A fresh directory under `target/tmp`, removed on drop. It is visible at
/// the same path inside the sandbox (the sandbox's root is the host's root).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = target_tmp().join(format!(
            "{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in this directory with the given mode; returns its path.
    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A path as &str (test paths are always UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------------------
// --strace output
// ---------------------------------------------------------------------------

/// One line of `veil --strace` output: `[   1] getpid() = 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StraceLine {
    pub tid: u32,
    /// Everything after `] `: `getpid() = 1`.
    pub text: String,
}

/// Parses the strace lines out of stderr; other lines are ignored.
pub fn strace_lines(stderr: &str) -> Vec<StraceLine> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('[')?;
            let (tid, text) = rest.split_once(']')?;
            let tid = tid.trim().parse().ok()?;
            Some(StraceLine {
                tid,
                text: text.strip_prefix(' ').unwrap_or(text).to_string(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Line diff for failure messages
// ---------------------------------------------------------------------------

enum Op {
    Same(usize),
    Del(usize),
    Ins(usize),
}

fn show_line(line: &str) -> String {
    let (body, nl) = match line.strip_suffix('\n') {
        Some(b) => (b, ""),
        None => (line, " [no newline at end]"),
    };
    if body.chars().any(|c| c.is_control() && c != '\t') {
        format!("{body:?}{nl}")
    } else {
        format!("{body}{nl}")
    }
}

/// A unified-style line diff of `a` (-) and `b` (+) with 3 lines of context.
pub fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    let b: Vec<&str> = b.split_inclusive('\n').collect();
    let (n, m) = (a.len(), b.len());

    let ops: Vec<Op> = if n.saturating_mul(m) <= 16_000_000 {
        // Longest common subsequence, then walk it.
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        let idx = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[idx(i, j)] = if a[i] == b[j] {
                    lcs[idx(i + 1, j + 1)] + 1
                } else {
                    lcs[idx(i + 1, j)].max(lcs[idx(i, j + 1)])
                };
            }
        }
        let (mut i, mut j, mut ops) = (0, 0, Vec::new());
        while i < n || j < m {
            if i < n && j < m && a[i] == b[j] {
                ops.push(Op::Same(i));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[idx(i + 1, j)] >= lcs[idx(i, j + 1)]) {
                ops.push(Op::Del(i));
                i += 1;
            } else {
                ops.push(Op::Ins(j));
                j += 1;
            }
        }
        ops
    } else {
        // Too big for the quadratic table: common prefix, then the rest.
        let p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        (0..p)
            .map(Op::Same)
            .chain((p..n).map(Op::Del))
            .chain((p..m).map(Op::Ins))
            .collect()
    };

    const CONTEXT: usize = 3;
    const MAX_LINES: usize = 400;
    let changed: Vec<bool> = ops.iter().map(|o| !matches!(o, Op::Same(_))).collect();
    let near_change = |k: usize| {
        let lo = k.saturating_sub(CONTEXT);
        let hi = (k + CONTEXT + 1).min(ops.len());
        changed[lo..hi].iter().any(|&c| c)
    };
    let mut out = String::new();
    let mut printed = 0;
    let mut skipping = false;
    for (k, op) in ops.iter().enumerate() {
        if !near_change(k) {
            if !skipping {
                out.push_str("  ...\n");
                skipping = true;
            }
            continue;
        }
        skipping = false;
        if printed == MAX_LINES {
            out.push_str("  [diff truncated]\n");
            break;
        }
        printed += 1;
        let _ = match op {
            Op::Same(i) => writeln!(out, "  {}", show_line(a[*i])),
            Op::Del(i) => writeln!(out, "- {}", show_line(a[*i])),
            Op::Ins(j) => writeln!(out, "+ {}", show_line(b[*j])),
        };
    }
    out
}
