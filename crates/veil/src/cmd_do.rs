//! `veil do`: start a gofer for the host root (and the bind mounts) and a
//! sentry running the command, then report the command's exit status as a
//! shell would.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use veil_gofer::IdMaps;

use anyhow::Context as _;
use veil_confine::spawn::{Spawn, SENTRY_NAMESPACES};
use veil_vfs::fs::memfs::DEFAULT_SIZE_LIMIT;
use veil_vfs::mount::{MountConfig, MountEntry, MountKind, TmpfsOptions, MNT_NODEV, MNT_NOSUID};

use crate::sandbox;

/// Where the sandbox's changes to its root go (`--overlay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    Memory,
    /// In an unlinked file in this directory.
    File(PathBuf),
    /// Through to the host.
    None,
}

impl Overlay {
    pub fn parse(s: &str) -> Result<Overlay, String> {
        match s.split_once(':') {
            None if s == "memory" => Ok(Overlay::Memory),
            None if s == "none" => Ok(Overlay::None),
            None if s == "file" => Ok(Overlay::File(std::env::temp_dir())),
            Some(("file", dir)) if !dir.is_empty() => Ok(Overlay::File(dir.into())),
            _ => Err("expected memory, file[:DIR] or none".into()),
        }
    }
}

/// What `veil do` runs and how: the sandbox's root and mounts.
pub struct DoOptions<'a> {
    pub command: &'a [OsString],
    /// The host directory served as the sandbox's root.
    pub root: &'a Path,
    pub overlay: &'a Overlay,
    /// Bind mounts, `SRC:DST[:ro]`.
    pub volumes: &'a [String],
    /// tmpfs mounts, `DST[:OPTIONS]`.
    pub tmpfs: &'a [String],
    /// The sandbox's memory limit in bytes, if any.
    pub memory: Option<u64>,
}

/// A `--memory` size: bytes, or a number with a k, m or g suffix (either
/// case) for KiB, MiB or GiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.as_bytes().last().map(u8::to_ascii_lowercase) {
        Some(b'k') => (&s[..s.len() - 1], 10),
        Some(b'm') => (&s[..s.len() - 1], 20),
        Some(b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a size such as 512m or 2g".to_string())?;
    match n.checked_mul(1 << shift) {
        Some(0) => Err("the size must not be 0".into()),
        Some(bytes) => Ok(bytes),
        None => Err("too large".into()),
    }
}

/// Runs the command in a sandbox and returns the exit code to report.
pub fn run(opts: &DoOptions, strace: bool, debug_log: Option<&Path>) -> anyhow::Result<u8> {
    let (mounts, trees) = mount_config(opts)?;
    let (gofer, sentry_ends) =
        sandbox::start_gofer(&trees, &IdMaps::default(), debug_log, |gofer| {
            gofer.null_stdin_stdout()?;
            Ok(())
        })?;

    // The cwd is the host's only for the host's root.
    let cwd = match opts.root == Path::new("/") {
        true => std::env::current_dir().unwrap_or_else(|_| "/".into()),
        false => "/".into(),
    };
    let mut sentry = Spawn::current_exe(SENTRY_NAMESPACES)?;
    let held = sandbox::pass_to_sentry(&mut sentry, &sentry_ends, opts.overlay, debug_log)?;
    sentry
        .arg("--mounts")
        .arg(encode_mounts(&mounts))
        .arg("--cwd")
        .arg(&cwd);
    if strace {
        sentry.arg("--strace");
    }
    if let Some(bytes) = opts.memory {
        sentry.arg("--memory").arg(bytes.to_string());
    }
    sentry.arg("--").args(opts.command);
    let sentry = sentry.spawn().context("starting the sentry")?;
    crate::signals::forward_to(sentry.pid())?;
    drop((sentry_ends, held));

    let status = sentry.wait().context("waiting for the sentry")?;
    // The gofer exits when the sentry's ends of the sockets close.
    if let Some(sig) = gofer.wait().context("waiting for the gofer")?.signal() {
        report_death("gofer", sig);
    }
    if let Some(sig) = status.signal() {
        report_death("sentry", sig);
    }
    Ok(sandbox::exit_code(status.into_raw()))
}

/// Says how one of veil's own processes died: by its seccomp filter
/// (SIGSYS), or another signal.
fn report_death(process: &str, sig: i32) {
    if sig == rustix::process::Signal::Sys as i32 {
        eprintln!(
            "veil: the {process} was killed by its seccomp filter: it made a host system call \
             outside its allowlist (a bug, or a compromised {process}); see `veil debug host-syscalls`"
        );
    } else {
        eprintln!("veil: the {process} crashed (killed by signal {sig})");
    }
}

/// The mount configuration for the command line's root, volumes and tmpfs
/// mounts, and the gofer's trees (`PATH[:ro]`) by connection: the root
/// first.
fn mount_config(opts: &DoOptions) -> anyhow::Result<(MountConfig, Vec<String>)> {
    let mut cfg = MountConfig::default_tree();
    cfg.root_overlay = *opts.overlay != Overlay::None;
    let root = opts.root.to_str().context("--root is not UTF-8")?;
    // An overlaid root is never written: its gofer refuses to.
    let mut trees = vec![match cfg.root_overlay {
        true => format!("{root}:ro"),
        false => root.to_string(),
    }];
    for v in opts.volumes {
        let (spec, readonly) = match v.strip_suffix(":ro") {
            Some(spec) => (spec, true),
            None => (v.strip_suffix(":rw").unwrap_or(v), false),
        };
        let (src, dst) = spec
            .rsplit_once(':')
            .with_context(|| format!("--volume {v}: expected SRC:DST[:ro]"))?;
        anyhow::ensure!(dst.starts_with('/'), "--volume {v}: DST must be absolute");
        let src = std::path::absolute(src).with_context(|| format!("--volume {v}"))?;
        let src = src
            .to_str()
            .context("--volume: SRC is not UTF-8")?
            .to_string();
        // Reported here: the gofer would only fail to serve every tree.
        std::fs::metadata(&src).with_context(|| format!("--volume {v}: {src}"))?;
        cfg.mounts.push(MountEntry {
            destination: dst.as_bytes().to_vec(),
            kind: MountKind::Bind {
                conn: trees.len(),
                source: src.as_bytes().to_vec(),
                readonly,
            },
            flags: 0,
        });
        trees.push(if readonly { format!("{src}:ro") } else { src });
    }
    for t in opts.tmpfs {
        let (dst, options) = t.split_once(':').unwrap_or((t, ""));
        anyhow::ensure!(dst.starts_with('/'), "--tmpfs {t}: DST must be absolute");
        let opts = TmpfsOptions::parse(options.as_bytes(), DEFAULT_SIZE_LIMIT)
            .map_err(|e| anyhow::anyhow!("--tmpfs {t}: bad options ({e})"))?;
        cfg.mounts.push(MountEntry {
            destination: dst.as_bytes().to_vec(),
            kind: MountKind::Tmpfs {
                size: opts.size,
                mode: opts.mode,
            },
            flags: MNT_NOSUID | MNT_NODEV,
        });
    }
    Ok((cfg, trees))
}

/// The mount configuration as `veil boot --mounts` takes it: postcard, in
/// hex.
fn encode_mounts(cfg: &MountConfig) -> String {
    let bytes = postcard::to_allocvec(cfg).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_mounts(hex: &str) -> anyhow::Result<MountConfig> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .context("not hex")
        })
        .collect::<anyhow::Result<Vec<u8>>>()?;
    Ok(postcard::from_bytes(&bytes)?)
}
