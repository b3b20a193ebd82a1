//! `veil boot`: the sentry process. It confines itself, then boots the
//! sandbox that `veil do` or `veil create` described.

use std::ffi::OsString;
use std::io::Read as _;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use veil_gofer::IdMaps;

use anyhow::Context as _;
use rustix::thread::CapabilityFlags;
use serde::{Deserialize, Serialize};
use veil_confine::policy;
use veil_sentry::ProcessSpec;
use veil_vfs::mount::MountConfig;

use crate::{cmd_do, inherited_fd, seccomp_mode, signals};

/// Test hook, in debug builds only: the sentry makes a forbidden host
/// system call right after sealing, which its filter must kill it for.
const FORBIDDEN_HOOK: &str = "VEIL_TEST_SENTRY_FORBIDDEN";

#[cfg(debug_assertions)]
fn forbidden_syscall_hook(what: Option<String>) {
    let result = match what.as_deref() {
        None => return,
        Some("open") => rustix::fs::open(
            "/etc/shadow",
            rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        )
        .map(drop),
        Some("socket") => rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )
        .map(drop),
        Some(other) => {
            eprintln!("veil: {FORBIDDEN_HOOK}: unknown call {other}");
            return;
        }
    };
    eprintln!("veil: the forbidden call returned {result:?}");
}

/// `veil boot`: the sentry, started by `veil do` or `veil create`.
#[derive(clap::Args)]
pub struct BootArgs {
    /// Gofer connections: the root's first, then the binds'.
    #[arg(long, required = true)]
    gofer_fd: Vec<RawFd>,
    /// What to run (`veil create`): a postcard [`SandboxSpec`] to read
    /// from this descriptor, instead of --mounts, --cwd and the command.
    #[arg(long, conflicts_with_all = ["mounts", "cwd", "command"])]
    spec_fd: Option<RawFd>,
    /// The mount configuration, hex-encoded postcard.
    #[arg(long, required_unless_present = "spec_fd")]
    mounts: Option<String>,
    /// An unlinked host file to hold the memory file (`--overlay=file`).
    #[arg(long)]
    overlay_fd: Option<RawFd>,
    /// The memory limit in bytes.
    #[arg(long)]
    memory: Option<u64>,
    /// The sandbox's stdin, stdout and stderr, in that order, instead
    /// of the sentry's own: three times, or not at all.
    #[arg(long, value_name = "FD", value_parser = clap::value_parser!(RawFd).range(3..))]
    stdio_fd: Vec<RawFd>,
    /// Descriptors init gets as 3, 4, ... in order (`--preserve-fds`).
    #[arg(long, value_name = "FD", value_parser = clap::value_parser!(RawFd).range(3..))]
    preserve_fd: Vec<RawFd>,
    /// A host terminal for the sandbox's console, instead of stdio: init
    /// gets a pty of the sandbox's own, joined to this one.
    #[arg(long, conflicts_with = "stdio_fd")]
    console_fd: Option<RawFd>,
    /// A listening control socket: init waits for `veil start`.
    #[arg(long, requires = "ready_fd")]
    control_fd: Option<RawFd>,
    /// Where to say that init is loaded (`ok`), or why it is not.
    #[arg(long, requires = "control_fd")]
    ready_fd: Option<RawFd>,
    #[arg(long, required_unless_present = "spec_fd")]
    cwd: Option<OsString>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

/// A container's sandbox as `veil create` describes it to `veil boot`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub mounts: MountConfig,
    pub process: ProcessSpec,
    pub hostname: Option<Vec<u8>>,
    pub readonly_root: bool,
    pub masked_paths: Vec<Vec<u8>>,
    pub readonly_paths: Vec<Vec<u8>>,
    pub memory_limit: Option<u64>,
    /// The container's user namespace mappings.
    #[serde(default)]
    pub ids: IdMaps,
}

/// The largest spec `veil boot` reads.
const MAX_SPEC: u64 = 16 << 20;

fn read_spec(fd: OwnedFd) -> anyhow::Result<SandboxSpec> {
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_SPEC)
        .read_to_end(&mut bytes)
        .context("reading the sandbox spec")?;
    postcard::from_bytes(&bytes).context("decoding the sandbox spec")
}

/// The process `veil do` runs: the command line's, with veil's own
/// environment and identity.
fn do_process(command: Vec<OsString>, cwd: OsString) -> ProcessSpec {
    ProcessSpec {
        argv: command.into_iter().map(OsStringExt::into_vec).collect(),
        envp: std::env::vars_os()
            .filter(|(k, _)| k != FORBIDDEN_HOOK)
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                kv
            })
            .collect(),
        cwd: cwd.into_vec(),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        ..ProcessSpec::default()
    }
}

pub fn boot(args: BootArgs, strace: bool) -> anyhow::Result<u8> {
    // Taken first, so that no descriptor is left to the application by
    // mistake.
    let gofers = args
        .gofer_fd
        .iter()
        .map(|&fd| inherited_fd(fd))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let memory_file = args.overlay_fd.map(inherited_fd).transpose()?;
    let control = args.control_fd.map(inherited_fd).transpose()?;
    let ready = args.ready_fd.map(inherited_fd).transpose()?;
    let stdio = match args.console_fd {
        Some(fd) => veil_sentry::Stdio::Console(inherited_fd(fd)?),
        None => veil_sentry::Stdio::Host(sandbox_stdio(&args.stdio_fd)?),
    };
    let preserved = args
        .preserve_fd
        .iter()
        .map(|&fd| inherited_fd(fd))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spec = match args.spec_fd {
        Some(fd) => read_spec(inherited_fd(fd)?)?,
        None => SandboxSpec {
            mounts: cmd_do::decode_mounts(args.mounts.as_deref().unwrap_or_default())
                .context("decoding --mounts")?,
            process: do_process(args.command, args.cwd.unwrap_or_else(|| "/".into())),
            hostname: None,
            readonly_root: false,
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            memory_limit: args.memory,
            ids: IdMaps::default(),
        },
    };
    // Confined before anything else runs and before any thread starts
    // (capabilities are per thread); the filter follows once the platform
    // is up, as it forks the stubs.
    let _ = rustix::thread::set_name(c"veil-sentry");
    veil_confine::seccomp::prepare_libc();
    let host_signals = signals::block_into_signalfd()?;
    veil_sentry::read_host_facts();
    veil_confine::root::enter_empty_root().context("confining the sentry")?;
    veil_confine::privs::drop_privileges(CapabilityFlags::empty())
        .context("confining the sentry")?;
    #[cfg(debug_assertions)]
    let hook = std::env::var(FORBIDDEN_HOOK).ok();
    let seal = move || -> Result<(), String> {
        policy::sentry()
            .install(seccomp_mode())
            .map_err(|e| e.to_string())?;
        #[cfg(debug_assertions)]
        forbidden_syscall_hook(hook);
        Ok(())
    };
    let cfg = veil_sentry::BootConfig {
        gofers,
        mounts: spec.mounts,
        memory_file,
        memory_limit: spec.memory_limit,
        stdio,
        preserved,
        process: spec.process,
        hostname: spec.hostname,
        readonly_root: spec.readonly_root,
        masked_paths: spec.masked_paths,
        readonly_paths: spec.readonly_paths,
        ids: spec.ids,
        init_protected: control.is_some(),
        control,
        ready,
        strace,
        host_signals: Some(host_signals),
        seal: Some(Box::new(seal)),
    };
    match veil_sentry::boot(cfg) {
        Ok(status) => Ok(status.shell_code() as u8),
        Err(veil_sentry::BootError::Exec { path, errno }) => {
            eprintln!(
                "veil: {}: {}",
                String::from_utf8_lossy(&path),
                std::io::Error::from_raw_os_error(errno.raw())
            );
            Ok(if errno == veil_abi::Errno::ENOENT {
                127
            } else {
                126
            })
        }
        Err(e) => Err(e).context("sentry failed"),
    }
}

/// The sandbox's stdin, stdout and stderr: the descriptors passed with
/// `--stdio-fd` (one may be passed for several), or copies of the sentry's
/// own.
pub fn sandbox_stdio(passed: &[RawFd]) -> anyhow::Result<[OwnedFd; 3]> {
    if passed.is_empty() {
        let dup = |fd: RawFd| -> anyhow::Result<OwnedFd> {
            // SAFETY: stdio descriptors are open for the life of the
            // process; we only borrow them to duplicate.
            let borrowed = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
            rustix::io::fcntl_dupfd_cloexec(borrowed, 3)
                .with_context(|| format!("duplicating stdio {fd}"))
        };
        return Ok([dup(0)?, dup(1)?, dup(2)?]);
    }
    anyhow::ensure!(
        passed.len() == 3,
        "--stdio-fd must be given three times (stdin, stdout, stderr) or not at all"
    );
    let mut stdio: Vec<OwnedFd> = Vec::with_capacity(3);
    for (i, &fd) in passed.iter().enumerate() {
        let owned = match passed[..i].iter().position(|&earlier| earlier == fd) {
            Some(j) => stdio[j]
                .try_clone()
                .with_context(|| format!("duplicating descriptor {fd}"))?,
            None => inherited_fd(fd)?,
        };
        stdio.push(owned);
    }
    <[OwnedFd; 3]>::try_from(stdio).map_err(|_| anyhow::anyhow!("three stdio descriptors"))
}
