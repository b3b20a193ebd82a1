//! veil: a sandboxed container runtime. `veil do CMD` runs a command over the
//! host's root, read-only, on veil's user-space kernel; the OCI commands
//! (`create`, `start`, ...) take runc's command line.

mod boot;
mod cmd_do;
mod oci;
mod sandbox;
mod signals;

use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use veil_gofer::{IdMap, IdMaps};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use veil_confine::policy;
use veil_confine::root::Tree;
use veil_confine::seccomp::Mode;

#[derive(Parser)]
#[command(
    name = "veil",
    version,
    about = "A sandboxed container runtime with a user-space kernel",
    mut_arg("log", |a| a.help("Append error messages to this file (runc's --log)")),
    mut_arg("log_format", |a| a.help("The --log file's format: text (default) or json")),
    mut_arg("debug", |a| a.help("Log at debug level")),
    mut_arg("root", |a| a.help("The container state directory [default: /run/veil, or $XDG_RUNTIME_DIR/veil when not root]")),
    mut_arg("systemd_cgroup", |a| a.help("Accepted for runc compatibility (veil uses cgroupfs)")),
)]
struct Cli {
    /// runc's global flags.
    #[command(flatten)]
    oci: liboci_cli::GlobalOpts,
    /// Print every application system call with decoded arguments.
    #[arg(long, global = true)]
    strace: bool,
    /// The platform that runs application code.
    #[arg(long, global = true, default_value = "ptrace", value_parser = ["ptrace"])]
    platform: String,
    /// Where the sandbox's changes to its root go: `memory` (an in-memory
    /// overlay, the default), `file[:DIR]` (an overlay whose memory lives
    /// in an unlinked file in DIR, default $TMPDIR or /tmp) or `none` (no
    /// overlay: writes go through to the host's files, as with runc;
    /// dangerous for untrusted code).
    #[arg(long, global = true, value_name = "MEDIUM", default_value = "memory", value_parser = cmd_do::Overlay::parse)]
    overlay: cmd_do::Overlay,
    /// The sandbox's network: `none` (a loopback-less empty namespace, the
    /// only kind so far; a bundle's network namespace is not joined).
    #[arg(long, global = true, default_value = "none", value_parser = ["none"])]
    network: String,
    /// Write debug logs of every veil process into this directory.
    #[arg(long, global = true, value_name = "DIR")]
    debug_log: Option<PathBuf>,
    /// (internal) Log at debug level to this inherited descriptor.
    #[arg(long, global = true, hide = true)]
    log_fd: Option<RawFd>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Oci(oci::cli::OciCommand),
    /// Run a command in a sandbox over the host's root filesystem (read-only,
    /// with writes kept in memory).
    Do {
        /// The directory to serve as the sandbox's root.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Bind-mount a host file or directory: SRC:DST or SRC:DST:ro
        /// (repeatable).
        #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
        volumes: Vec<String>,
        /// Mount a tmpfs: DST or DST:size=64m,mode=1777 (repeatable).
        #[arg(long = "tmpfs", value_name = "DST[:OPTIONS]")]
        tmpfs: Vec<String>,
        /// The most memory the sandbox may hold (application memory and
        /// in-memory files), e.g. 512m or 2g; past it the process asking
        /// for more is killed (SIGKILL). Default: no limit.
        #[arg(long, value_name = "SIZE", value_parser = cmd_do::parse_size)]
        memory: Option<u64>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Inspect veil itself.
    Debug {
        #[command(subcommand)]
        what: DebugCommand,
    },
    /// (internal) The sentry process.
    #[command(hide = true)]
    Boot(boot::BootArgs),
    /// (internal) The gofer process.
    #[command(hide = true)]
    Gofer {
        /// A tree to serve, PATH or PATH:ro, each paired in order with a
        /// --sock-fd.
        #[arg(long = "mount", required = true)]
        mounts: Vec<String>,
        #[arg(long)]
        sock_fd: Vec<RawFd>,
        /// The container's uid mapping, INSIDE:OUTSIDE:COUNT[,...].
        #[arg(long, value_parser = parse_id_map, default_value = "")]
        uid_map: IdMap,
        /// The container's gid mapping, as --uid-map.
        #[arg(long, value_parser = parse_id_map, default_value = "")]
        gid_map: IdMap,
    },
}

fn parse_id_map(s: &str) -> Result<IdMap, String> {
    IdMap::parse(s)
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Print the system call compatibility table (Markdown).
    Syscalls,
    /// Print the host system calls the sentry, the gofer and the stubs may
    /// make (their seccomp allowlists), with their argument rules.
    HostSyscalls,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match cli.command {
        Command::Do {
            root,
            volumes,
            tmpfs,
            memory,
            command,
        } => cmd_do::run(
            &cmd_do::DoOptions {
                command: &command,
                root: &root,
                overlay: &cli.overlay,
                volumes: &volumes,
                tmpfs: &tmpfs,
                memory,
            },
            cli.strace,
            cli.debug_log.as_deref(),
        ),
        Command::Debug {
            what: DebugCommand::Syscalls,
        } => {
            print!("{}", veil_sentry::syscalls::compatibility_markdown());
            Ok(0)
        }
        Command::Debug {
            what: DebugCommand::HostSyscalls,
        } => {
            print!("{}\n{}\n", policy::sentry(), policy::gofer());
            let rules = veil_platform::ptrace::stub_filter_rules();
            println!(
                "stubs: only from the stub's own code, {} rules, everything else kills the stub",
                rules.len()
            );
            for rule in rules {
                println!("  {rule}");
            }
            Ok(0)
        }
        Command::Boot(args) => boot::boot(args, cli.strace),
        Command::Gofer {
            mounts,
            sock_fd,
            uid_map,
            gid_map,
        } => gofer(
            &mounts,
            &sock_fd,
            IdMaps {
                uid: uid_map,
                gid: gid_map,
            },
        ),
        Command::Oci(cmd) => Ok(oci::run(
            cmd,
            &cli.oci,
            oci::lifecycle::Options {
                overlay: &cli.overlay,
                strace: cli.strace,
                debug_log: cli.debug_log.as_deref(),
            },
        )),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("veil: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VEIL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            if cli.debug_log.is_some() || cli.log_fd.is_some() || cli.oci.debug {
                "debug"
            } else {
                "warn"
            },
        )
    });
    let role = match cli.command {
        Command::Boot(_) => "sentry",
        Command::Gofer { .. } => "gofer",
        _ => "veil",
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if let Some(file) = cli.log_fd.and_then(|fd| inherited_fd(fd).ok()) {
        builder
            .with_writer(std::sync::Mutex::new(std::fs::File::from(file)))
            .with_ansi(false)
            .init();
        return;
    }
    if let Some(dir) = &cli.debug_log {
        let path = dir.join(format!("{role}-{}.log", std::process::id()));
        if let Ok(file) = std::fs::File::create(&path) {
            builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
            return;
        }
    }
    builder.with_writer(std::io::stderr).init();
}

/// Takes ownership of a descriptor inherited from the parent veil process.
pub(crate) fn inherited_fd(fd: RawFd) -> anyhow::Result<OwnedFd> {
    rustix::io::fcntl_getfd(
        // SAFETY: only borrowed for the duration of this validity check.
        unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) },
    )
    .with_context(|| format!("descriptor {fd} was not inherited"))?;
    // SAFETY: the parent veil process passed this descriptor to us for our
    // exclusive use, and it is open (checked above); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The sentry's filter: enforcing unless `VEIL_SECCOMP=log` asks the
/// kernel to log violations instead (for finding what a new code path
/// needs; never for production).
fn seccomp_mode() -> Mode {
    match std::env::var("VEIL_SECCOMP").as_deref() {
        Ok("log") => Mode::Log,
        _ => Mode::Enforce,
    }
}

/// Serves each `PATH[:ro]` on its socket, each on a thread of its own,
/// confined to a root holding only those trees.
fn gofer(mounts: &[String], sock_fds: &[RawFd], ids: IdMaps) -> anyhow::Result<u8> {
    anyhow::ensure!(
        mounts.len() == sock_fds.len(),
        "every --mount needs a --sock-fd"
    );
    let trees: Vec<Tree> = mounts
        .iter()
        .map(|spec| match spec.strip_suffix(":ro") {
            Some(path) => Tree {
                path: path.into(),
                readonly: true,
            },
            None => Tree {
                path: spec.into(),
                readonly: false,
            },
        })
        .collect();
    let socks = sock_fds
        .iter()
        .map(|&fd| inherited_fd(fd))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let _ = rustix::thread::set_name(c"veil-gofer");
    veil_confine::seccomp::prepare_libc();
    let confined = veil_confine::root::enter_tree_root(&trees).context("confining the gofer")?;
    // Each fid is an FD: this bounds what a sentry can make the gofer hold.
    veil_confine::privs::limit_files(GOFER_MAX_FILES).context("confining the gofer")?;
    veil_confine::privs::drop_privileges(veil_confine::privs::GOFER_CAPS)
        .context("confining the gofer")?;
    let mut served = Vec::new();
    for ((tree, path), sock) in trees.iter().zip(&confined.trees).zip(socks) {
        let root = veil_gofer::open_root(path)
            .with_context(|| format!("opening {}", tree.path.display()))?;
        served.push((root, sock, tree.readonly));
    }
    policy::gofer()
        .install(seccomp_mode())
        .context("confining the gofer")?;
    let fd_dir = confined.fd_dir;
    let threads: Vec<_> = served
        .into_iter()
        .map(|(root, sock, readonly)| {
            let (fd_dir, ids) = (fd_dir.clone(), ids.clone());
            std::thread::spawn(move || veil_gofer::serve_mapped(root, sock, readonly, &fd_dir, ids))
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a gofer thread panicked"))?
            .context("gofer failed")?;
    }
    Ok(0)
}

/// The gofer's RLIMIT_NOFILE.
const GOFER_MAX_FILES: u64 = 65536;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::IntoRawFd;

    use super::*;
    use oci::cli::OciCommand;
    use std::path::Path;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("veil").chain(line.split_whitespace()))
    }

    fn oci(line: &str) -> (liboci_cli::GlobalOpts, OciCommand) {
        match parse(line) {
            Ok(Cli {
                oci,
                command: Command::Oci(cmd),
                ..
            }) => (oci, cmd),
            Ok(_) => panic!("{line}: not an OCI command"),
            Err(e) => panic!("{line}: {e}"),
        }
    }

    #[test]
    fn parses_what_containerds_runc_shim_sends() {
        let (g, cmd) = oci("--root /run/containerd/runc/default --log /x/log.json --log-format json create --bundle /b --pid-file /b/init.pid c3");
        assert_eq!(
            g.root.as_deref(),
            Some(Path::new("/run/containerd/runc/default"))
        );
        assert_eq!(g.log.as_deref(), Some(Path::new("/x/log.json")));
        assert_eq!(g.log_format.as_deref(), Some("json"));
        let OciCommand::Create(c) = cmd else {
            panic!("not create")
        };
        assert_eq!(
            (
                c.bundle.as_path(),
                c.pid_file.as_deref(),
                c.container_id.as_str()
            ),
            (Path::new("/b"), Some(Path::new("/b/init.pid")), "c3")
        );
        let (_, cmd) = oci("--root /r --log /l --log-format json exec --process /tmp/runc-process1 --detach --pid-file /p c3");
        let OciCommand::Exec(e) = cmd else {
            panic!("not exec")
        };
        assert!(e.detach);
        assert_eq!(e.process.as_deref(), Some(Path::new("/tmp/runc-process1")));
        assert_eq!(e.container_id, "c3");
        let (_, cmd) = oci("--root /r kill c3 15");
        let OciCommand::Kill(k) = cmd else {
            panic!("not kill")
        };
        assert_eq!(
            (k.container_id.as_str(), k.signal.as_str(), k.all),
            ("c3", "15", false)
        );
        for line in [
            "--root /r start c2",
            "--root /r delete c2",
            "--root /r delete --force c2",
            "--root /r ps --format json c3",
        ] {
            oci(line);
        }
    }

    #[test]
    fn parses_what_podmans_conmon_sends() {
        let (g, cmd) = oci("create --bundle /var/lib/containers/storage/overlay-containers/abc/userdata --pid-file /run/containers/storage/overlay-containers/abc/userdata/pidfile abc");
        assert!(g.root.is_none() && g.log.is_none());
        assert!(matches!(cmd, OciCommand::Create(c) if c.container_id == "abc"));
        oci("create --console-socket /tmp/conmon-term.XYZ --bundle /b --pid-file /p abc");
        oci("start abc");
        oci("delete --force abc");
    }

    #[test]
    fn parses_runcs_command_line() {
        let (_, cmd) = oci("kill c3");
        assert!(matches!(cmd, OciCommand::Kill(k) if k.signal == "SIGTERM" && !k.all));
        let (_, cmd) = oci("kill --all c3 KILL");
        assert!(matches!(cmd, OciCommand::Kill(k) if k.signal == "KILL" && k.all));
        let (_, cmd) = oci("list -f json");
        assert!(matches!(cmd, OciCommand::List(l) if l.format == "json"));
        let (_, cmd) = oci("events --interval 5s c3");
        assert!(matches!(cmd, OciCommand::Events(e) if e.interval == "5s"));
        let (_, cmd) = oci("exec c3 -- ls -l");
        assert!(matches!(cmd, OciCommand::Exec(e) if e.command == ["ls", "-l"]));
        let (_, cmd) = oci("ps c3 -o pid,comm");
        assert!(matches!(cmd, OciCommand::Ps(p) if p.ps_options == ["-o", "pid,comm"]));
        let (g, _) = oci("--systemd-cgroup --debug create id");
        assert!(g.systemd_cgroup && g.debug);
        for line in [
            "run -d --bundle . x",
            "spec --rootless",
            "spec -b /b",
            "features",
            "state c3",
            "pause c3",
            "resume c3",
            "events --stats c3",
            "list -q",
            "create --console-socket /s --no-pivot --preserve-fds 2 id",
            "exec -t -e A=1 -u 1000:1000 --cwd /tmp c3 ls -l",
        ] {
            oci(line);
        }
        assert!(parse("list -f yaml").is_err());
        assert!(parse("state").is_err());
    }

    #[test]
    fn veils_own_commands_keep_their_flags() {
        let cli = parse("--root /state --strace do --root /srv ls -l").expect("parses");
        assert_eq!(cli.oci.root.as_deref(), Some(Path::new("/state")));
        assert!(cli.strace);
        let Command::Do { root, command, .. } = cli.command else {
            panic!("not do")
        };
        assert_eq!(root, Path::new("/srv"));
        assert_eq!(command, ["ls", "-l"]);
        let cli = parse("do --debug-log /d ls").expect("parses");
        assert!(cli.oci.root.is_none());
        assert_eq!(cli.debug_log.as_deref(), Some(Path::new("/d")));
        assert!(matches!(cli.command, Command::Do { root, .. } if root == Path::new("/")));
        assert!(parse("debug syscalls").is_ok());
        assert!(parse("boot --gofer-fd 3 --mounts 00 --cwd / true").is_ok());
        assert!(parse("boot --gofer-fd 3 --spec-fd 4 --control-fd 5 --ready-fd 6").is_ok());
        assert!(parse("gofer --mount /:ro --sock-fd 3").is_ok());
    }

    #[test]
    fn passed_stdio_becomes_the_sandboxs_and_nothing_else_holds_it() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let w = w.into_raw_fd();
        let stdio = boot::sandbox_stdio(&[w, w, w]).unwrap();
        for (i, fd) in stdio.into_iter().enumerate() {
            std::fs::File::from(fd)
                .write_all(&[b'0' + i as u8])
                .unwrap();
        }
        // Every write end is closed now, or the read would not end.
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "012");
    }

    #[test]
    fn stdio_fds_come_in_threes() {
        let (_r, w) = rustix::pipe::pipe().unwrap();
        let w = w.into_raw_fd();
        let err = boot::sandbox_stdio(&[w, w]).unwrap_err().to_string();
        assert!(err.contains("three times"), "{err}");
        assert!(inherited_fd(w).is_ok(), "not taken on error");
    }

    #[test]
    fn stdio_fds_must_be_open_and_above_stdio() {
        let (_r, w) = rustix::pipe::pipe().unwrap();
        let w = w.into_raw_fd();
        let closed = w + 100;
        let err = boot::sandbox_stdio(&[w, closed, w])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("descriptor {closed} was not inherited")),
            "{err}"
        );
        let boot = |fd: &str| {
            Cli::try_parse_from([
                "veil",
                "boot",
                "--gofer-fd",
                "3",
                "--mounts",
                "",
                "--cwd",
                "/",
                "--stdio-fd",
                fd,
                "--stdio-fd",
                "4",
                "--stdio-fd",
                "5",
                "--",
                "true",
            ])
            .is_ok()
        };
        assert!(boot("3"));
        assert!(!boot("2"));
    }
}
