//! What `veil do` and the OCI commands share in starting a sandbox's host
//! processes: the gofer and its sockets, the sentry's log and overlay
//! files, and the exit code a sandbox's status becomes.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use veil_gofer::IdMaps;

use anyhow::Context as _;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use veil_confine::spawn::{gofer_namespaces, Child, Spawn};

use crate::cmd_do::Overlay;

/// Starts the gofer serving `trees` (`PATH[:ro]`), after `setup` has
/// added what differs (stdio, detaching, cgroups), and returns it with
/// the sentry's ends of its sockets, one per tree.
pub fn start_gofer(
    trees: &[String],
    ids: &IdMaps,
    debug_log: Option<&Path>,
    setup: impl FnOnce(&mut Spawn) -> anyhow::Result<()>,
) -> anyhow::Result<(Child, Vec<OwnedFd>)> {
    let mut gofer = Spawn::current_exe(gofer_namespaces())?;
    setup(&mut gofer)?;
    let log = log_file(debug_log, "gofer")?;
    pass_log(&mut gofer, log.as_ref());
    gofer.arg("gofer");
    if !ids.uid.is_identity() {
        gofer.arg("--uid-map").arg(ids.uid.to_arg());
    }
    if !ids.gid.is_identity() {
        gofer.arg("--gid-map").arg(ids.gid.to_arg());
    }
    let mut sentry_ends = Vec::new();
    let mut gofer_ends = Vec::new();
    for tree in trees {
        let (sentry_end, gofer_end) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .context("creating a gofer socket")?;
        let fd = gofer.pass_fd(&gofer_end);
        gofer
            .arg("--mount")
            .arg(tree)
            .arg("--sock-fd")
            .arg(fd.to_string());
        sentry_ends.push(sentry_end);
        gofer_ends.push(gofer_end);
    }
    let gofer = gofer.spawn().context("starting the gofer")?;
    Ok((gofer, sentry_ends))
}

/// Passes the sentry the gofer sockets, its log file and the overlay
/// file; the caller holds the returned files until the sentry has
/// started.
pub fn pass_to_sentry(
    sentry: &mut Spawn,
    gofer_ends: &[OwnedFd],
    overlay: &Overlay,
    debug_log: Option<&Path>,
) -> anyhow::Result<Vec<File>> {
    let mut held = Vec::new();
    if let Some(log) = log_file(debug_log, "sentry")? {
        pass_log(sentry, Some(&log));
        held.push(log);
    }
    sentry.arg("boot");
    for end in gofer_ends {
        let fd = sentry.pass_fd(end);
        sentry.arg("--gofer-fd").arg(fd.to_string());
    }
    // The file lives only as long as some process holds it open.
    if let Overlay::File(dir) = overlay {
        let upper = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating the overlay file in {}", dir.display()))?;
        let fd = sentry.pass_fd(&upper);
        sentry.arg("--overlay-fd").arg(fd.to_string());
        held.push(upper);
    }
    Ok(held)
}

/// The log file of a child veil process, opened here: the sentry runs as
/// another user in an empty root, where it could not create one.
fn log_file(dir: Option<&Path>, role: &str) -> anyhow::Result<Option<File>> {
    dir.map(|dir| {
        let path = dir.join(format!("{role}-{}.log", std::process::id()));
        File::create(&path).with_context(|| format!("creating {}", path.display()))
    })
    .transpose()
}

fn pass_log(child: &mut Spawn, log: Option<&File>) {
    if let Some(log) = log {
        let fd = child.pass_fd(log);
        child.arg("--log-fd").arg(fd.to_string());
    }
}

/// The shell's exit code of a wait(2) status: the code, or 128 + signal.
pub fn exit_code(status: i32) -> u8 {
    match status & 0x7f {
        0 => ((status >> 8) & 0xff) as u8,
        signo => 128u8.wrapping_add(signo as u8),
    }
}
