//! `veil do`: start a gofer for the host root and a sentry running the
//! command, then report the command's exit status as a shell would.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use rustix::io::FdFlags;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

/// Runs `command` in a sandbox and returns the exit code to report.
pub fn run(command: &[OsString], strace: bool, debug_log: Option<&Path>) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("locating the veil binary")?;
    let (sentry_end, gofer_end) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("creating the gofer socket")?;

    let mut gofer = spawn_with_fd(&exe, &gofer_end, debug_log, |cmd, fd| {
        cmd.args(["gofer", "--root", "/", "--sock-fd", &fd.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
    })
    .context("starting the gofer")?;
    drop(gofer_end);

    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let mut sentry = spawn_with_fd(&exe, &sentry_end, debug_log, |cmd, fd| {
        cmd.arg("boot")
            .arg("--gofer-fd")
            .arg(fd.to_string())
            .arg("--cwd")
            .arg(&cwd);
        if strace {
            cmd.arg("--strace");
        }
        cmd.arg("--").args(command);
    })
    .context("starting the sentry")?;
    drop(sentry_end);

    let status = sentry.wait().context("waiting for the sentry")?;
    // The gofer exits when the sentry's end of the socket closes.
    let _ = gofer.wait();
    if let Some(sig) = status.signal() {
        eprintln!("veil: the sentry crashed (killed by signal {sig})");
        return Ok(128u8.wrapping_add(sig as u8));
    }
    Ok(status.code().unwrap_or(1) as u8)
}

/// Spawns `exe` with `fd` inherited (its close-on-exec flag cleared for the
/// duration of the spawn) and passed by number.
fn spawn_with_fd(
    exe: &Path,
    fd: &OwnedFd,
    debug_log: Option<&Path>,
    configure: impl FnOnce(&mut Command, i32),
) -> anyhow::Result<std::process::Child> {
    let mut cmd = Command::new(exe);
    if let Some(dir) = debug_log {
        cmd.arg("--debug-log").arg(dir);
    }
    configure(&mut cmd, fd.as_raw_fd());
    rustix::io::fcntl_setfd(fd.as_fd(), FdFlags::empty())?;
    let child = cmd.spawn();
    rustix::io::fcntl_setfd(fd.as_fd(), FdFlags::CLOEXEC)?;
    Ok(child?)
}
