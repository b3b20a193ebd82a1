//! veil as an OCI runtime: runc's command line over veil's sandbox.

mod bundle;
pub mod cli;
mod console;
mod events;
mod exec;
mod hooks;
pub mod lifecycle;
pub mod state;

use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use oci_spec::runtime::{
    ApparmorBuilder, CgroupBuilder, FeaturesBuilder, LinuxFeatureBuilder, LinuxNamespaceType,
    SeccompBuilder, SelinuxBuilder,
};

use cli::OciCommand;
use state::{StateError, Store};

/// `veil spec`'s config.json: runc's default, with veil's hostname.
const SPEC_TEMPLATE: &str = include_str!("spec_template.json");

/// Runs an OCI command; errors are reported as runc does (stderr, and the
/// `--log` file in `--log-format`). Exit codes are runc's: 1 for errors.
pub fn run(cmd: OciCommand, opts: &liboci_cli::GlobalOpts, veil: lifecycle::Options) -> u8 {
    let name = cmd.name();
    let format = match opts.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            eprintln!("veil: invalid log-format: {other}");
            return 1;
        }
    };
    let root = opts.root.clone().unwrap_or_else(state::default_root);
    // runc's exec fails with 255, its code as a process cannot be.
    let (prefix, failed) = match cmd {
        OciCommand::Exec(_) => ("exec failed: ", exec::EXEC_FAILED),
        _ => ("", 1),
    };
    match dispatch(cmd, &root, opts.systemd_cgroup, veil) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{prefix}{e:#}");
            eprintln!("veil: {msg}");
            if let Some(log) = &opts.log {
                if let Err(le) = append_log(log, format, &msg) {
                    eprintln!("veil: {name}: writing the log {}: {le}", log.display());
                }
            }
            failed
        }
    }
}

#[derive(Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

/// One error line in runc's log formats; containerd decodes the JSON one
/// (`time` must be RFC 3339) and shows the last error's `msg`.
fn append_log(path: &Path, format: LogFormat, msg: &str) -> std::io::Result<()> {
    let time = state::rfc3339_secs(SystemTime::now());
    let line = match format {
        LogFormat::Json => {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time={time:?} level=error msg={msg:?}"),
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

/// `create`'s arguments from `create`'s or `run`'s flags, which share
/// their names.
macro_rules! create_args {
    ($args:expr, $systemd_cgroup:expr, $attached:expr) => {
        lifecycle::CreateArgs {
            id: &$args.container_id,
            bundle: &$args.bundle,
            pid_file: $args.pid_file.as_deref(),
            console_socket: $args.console_socket.as_deref(),
            preserve_fds: $args.preserve_fds,
            systemd_cgroup: $systemd_cgroup,
            attached: $attached,
        }
    };
}

fn dispatch(
    cmd: OciCommand,
    root: &Path,
    systemd_cgroup: bool,
    veil: lifecycle::Options,
) -> anyhow::Result<u8> {
    match cmd {
        OciCommand::Create(args) => {
            lifecycle::create(root, &create_args!(args, systemd_cgroup, false), veil).map(|_| 0)
        }
        OciCommand::Start(args) => lifecycle::start(root, &args.container_id),
        OciCommand::Run(args) => lifecycle::run(
            root,
            &create_args!(args, systemd_cgroup, !args.detach),
            args.keep,
            veil,
        ),
        OciCommand::Kill(args) => lifecycle::kill(root, &args.container_id, &args.signal, args.all),
        OciCommand::Delete(args) => lifecycle::delete(root, &args.container_id, args.force),
        OciCommand::Pause(args) => lifecycle::pause(root, &args.container_id, true),
        OciCommand::Resume(args) => lifecycle::pause(root, &args.container_id, false),
        OciCommand::Events(args) => events::run(root, &args),
        OciCommand::Spec(args) => spec(args.bundle.as_deref(), args.rootless),
        OciCommand::Features(_) => features(),
        OciCommand::List(args) => list(root, &args),
        OciCommand::State(args) => container_state(root, &args.container_id),
        OciCommand::Exec(args) => exec::exec(root, &args),
        OciCommand::ExecWait(args) => crate::inherited_fd(args.conn_fd)
            .and_then(|conn| exec::exec_wait(root, &args.container_id, args.pid, conn)),
        OciCommand::Ps(args) => exec::ps(root, &args),
    }
}

/// Writes config.json into the bundle (default: the current directory),
/// refusing to replace one, as runc does.
fn spec(bundle: Option<&Path>, rootless: bool) -> anyhow::Result<u8> {
    if rootless {
        bail!("spec: --rootless: not supported yet");
    }
    let dir = bundle.unwrap_or(Path::new("."));
    let meta = std::fs::metadata(dir).with_context(|| format!("bundle {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("bundle {}: not a directory", dir.display());
    }
    let path = dir.join("config.json");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    match file {
        Ok(mut f) => f
            .write_all(SPEC_TEMPLATE.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("File config.json exists. Remove it first")
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    Ok(0)
}

/// What veil recognises in a spec. Hooks run on the host; and the OCI seccomp profile, AppArmor and SELinux are not applied
/// (the sentry is the boundary: no application call reaches the host).
fn features() -> anyhow::Result<u8> {
    let linux = LinuxFeatureBuilder::default()
        .namespaces(vec![
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Uts,
        ])
        .capabilities(
            CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>(),
        )
        .cgroup(
            CgroupBuilder::default()
                .v1(true)
                .v2(true)
                .systemd(false)
                .systemd_user(false)
                .build()?,
        )
        .seccomp(SeccompBuilder::default().enabled(false).build()?)
        .apparmor(ApparmorBuilder::default().enabled(false).build()?)
        .selinux(SelinuxBuilder::default().enabled(false).build()?)
        .build()?;
    let features = FeaturesBuilder::default()
        .oci_version_min("1.0.0")
        .oci_version_max(state::OCI_VERSION)
        .hooks(
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            ]
            .map(String::from)
            .to_vec(),
        )
        .mount_options(
            MOUNT_OPTIONS
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>(),
        )
        .linux(linux)
        .annotations(
            [
                ("dev.veil.version", env!("CARGO_PKG_VERSION")),
                ("dev.veil.platform", "ptrace"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()?;
    // oci-spec serialises unset fields as null; runc leaves them out.
    let mut json = serde_json::to_value(&features)?;
    drop_nulls(&mut json);
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(0)
}

fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The mount options veil's mount table honours: binds, read-only, and
/// propagation (accepted, with nothing to propagate).
const MOUNT_OPTIONS: &[&str] = &[
    "bind",
    "private",
    "rbind",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "unbindable",
];

/// The capabilities the sentry models, in number order (runc's list).
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `list`: runc's table (Go tabwriter: minimum width 12, padding 3), JSON
/// (`null` when there are none) or just the ids.
fn list(root: &Path, args: &cli::List) -> anyhow::Result<u8> {
    let store = Store::open(root)?;
    let mut states = Vec::new();
    for id in store.ids()? {
        let read = store.get(&id).and_then(|c| {
            let _lock = c.lock(false)?;
            c.read()
        });
        match read {
            Ok(s) => states.push(s),
            // Being created or deleted right now.
            Err(StateError::NotExist) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = String::new();
    if args.quiet {
        for s in &states {
            out.push_str(&s.id);
            out.push('\n');
        }
    } else if args.format == "json" {
        let all: Vec<_> = states.iter().map(|s| s.oci(user_name(s.owner))).collect();
        let json = if all.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(&all)?
        };
        out = json + "\n";
    } else {
        let mut rows =
            vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
        for s in &states {
            let oci = s.oci(user_name(s.owner));
            let status = serde_json::to_value(oci.status)?;
            rows.push([
                oci.id,
                oci.pid.to_string(),
                status.as_str().unwrap_or_default().to_string(),
                oci.bundle.display().to_string(),
                oci.created,
                oci.owner,
            ]);
        }
        out = tabulate(&rows);
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(0)
}

/// Go's `tabwriter.NewWriter(w, 12, 1, 3, ' ', 0)` over tab-separated
/// cells: every column but the last is padded to its widest cell + 3, at
/// least 12.
fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// The user name of a uid, as runc's `list` shows it (the number when
/// /etc/passwd has none).
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse() == Ok(uid)).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `state`: the OCI state as pretty JSON without a trailing newline (runc).
fn container_state(root: &Path, id: &str) -> anyhow::Result<u8> {
    let store = Store::open(root)?;
    let container = store.get(id)?;
    let state = {
        let _lock = container.lock(false)?;
        container.read()?
    };
    let json = serde_json::to_string_pretty(&state.oci(String::new()))?;
    std::io::stdout().write_all(json.as_bytes())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabulate_pads_like_gos_tabwriter() {
        let rows = vec![
            ["ID", "PID", "BUNDLE", "OWNER"].map(String::from),
            ["lc1", "4704", "/tmp/ocitest/bundle", "root"].map(String::from),
        ];
        assert_eq!(
            tabulate(&rows),
            "ID          PID         BUNDLE                OWNER\n\
             lc1         4704        /tmp/ocitest/bundle   root\n"
        );
    }

    #[test]
    fn the_spec_template_is_a_valid_spec() {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_str(SPEC_TEMPLATE).expect("template parses");
        assert_eq!(spec.hostname().as_deref(), Some("veil"));
    }

    #[test]
    fn user_names_come_from_passwd() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "4000000000");
    }
}
