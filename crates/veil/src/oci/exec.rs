//! `exec` and `ps`: more processes in a running (or created) container,
//! and the list of them.
//!
//! An exec'd process is the sentry's: it has no host process of its own.
//! `veil exec` stands for it: it waits for it over the control socket,
//! passes on the signals it receives, and exits with its status. With
//! `--detach`, a waiter forked for the purpose does that (its pid goes to
//! `--pid-file`), as runsc does, because containerd waits for and signals
//! the pid in that file.

use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process, Spec};
use veil_sentry::control::{ProcessInfo, Reply, Request};

use super::console::OwnTerminal;
use super::lifecycle::{stdio_fds, write_pid_file, Conn, CONTROL_TIMEOUT};
use super::state::{Container, Status, Store};
use crate::sandbox::exit_code;
use nix::sched::CloneFlags;
use veil_confine::spawn::{Child, Spawn};

/// `veil exec`'s exit code for its own failures (runc's).
pub const EXEC_FAILED: u8 = 255;

/// `exec`: starts the process and, unless detached, waits for it and
/// returns its exit code.
pub fn exec(root: &Path, args: &liboci_cli::Exec) -> anyhow::Result<u8> {
    if args.preserve_fds != 0 {
        bail!("--preserve-fds: not supported yet");
    }
    if args.cgroup.is_some() {
        bail!("--cgroup: not supported yet");
    }
    let container = Store::open(root)?.get(&args.container_id)?;
    let state = {
        let _lock = container.lock(false)?;
        container.read()?
    };
    match state.status() {
        Status::Created | Status::Running => {}
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Paused => bail!("cannot exec in a paused container"),
        Status::Creating => bail!("cannot exec in a container being created"),
    }
    let process = match &args.process {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let mut json: serde_json::Value = serde_json::from_reader(file)
                .with_context(|| format!("parsing {}", path.display()))?;
            // runc's Go struct makes a missing user root.
            if let Some(p) = json.as_object_mut() {
                p.entry("user")
                    .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
            }
            serde_json::from_value::<Process>(json)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => {
            let spec = Spec::load(state.bundle.join("config.json"))
                .context("reading the container's config.json")?;
            let base = spec
                .process()
                .clone()
                .context("config.json has no process")?;
            with_overrides(base, args)?
        }
    };
    let (mut spec, terminal) = super::bundle::process_spec(&process)?;
    spec.envp = dedup_env(spec.envp);
    // runc's rules: a console socket when detached, else veil's own
    // terminal, lent for as long as the process runs.
    let mut own_terminal = None;
    let console = match (terminal, args.console_socket.as_deref()) {
        (false, None) => None,
        (true, Some(socket)) if args.detach => {
            let size = process.console_size().as_ref().map(|b| {
                let clamp = |n: u64| u16::try_from(n).unwrap_or(u16::MAX);
                (clamp(b.height()), clamp(b.width()))
            });
            Some(super::console::open(socket, size)?)
        }
        (_, Some(_)) => bail!("cannot use console socket if veil will not detach or allocate tty"),
        (true, None) if args.detach => {
            bail!("cannot allocate tty if veil will detach without setting console socket")
        }
        (true, None) => {
            let own = own_terminal.insert(OwnTerminal::open()?);
            Some(own.try_clone()?)
        }
    };

    // Blocked before any thread starts, so that every thread inherits the
    // mask and the signals wait in the signalfd for the pid to send to.
    let signals = (!args.detach)
        .then(crate::signals::block_into_signalfd)
        .transpose()?;
    let conn = Conn::open(&container, Some(CONTROL_TIMEOUT))?;
    let stdio = stdio_fds(console.as_ref());
    let req = Request::Exec {
        process: spec,
        terminal,
        container: state.in_sandbox(),
    };
    let pid = match conn.call(&req, &stdio)? {
        Some(Reply::Pid(pid)) => pid,
        None => bail!("the sandbox closed the connection"),
        Some(other) => bail!("an unexpected reply from the sandbox: {other:?}"),
    };
    // The sandbox holds the console now; its last holder's close is the
    // receiver's hang-up.
    drop(console);
    match signals {
        Some(signals) => {
            // As runc's: killing `veil exec` leaves the process running.
            let waited = Waited::Exec { pid, tied: false };
            if !conn.send(&waited.request(), &[])? {
                bail!("the sandbox closed the connection");
            }
            await_exit(&container, &conn, &waited, signals).map(exit_code)
        }
        None => {
            let waited = Waited::Exec { pid, tied: true };
            let waiter = start_waiter(root, &container, &args.container_id, &waited, false)?;
            if let Some(path) = &args.pid_file {
                write_pid_file(path, waiter.pid())?;
            }
            Ok(0)
        }
    }
}

/// runc's overrides of the container's process for an inline command.
fn with_overrides(mut p: Process, args: &liboci_cli::Exec) -> anyhow::Result<Process> {
    if args.command.is_empty() {
        bail!("exec: no command given (and no --process)");
    }
    p.set_args(Some(args.command.clone()));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(args.env.iter().map(|(k, v)| format!("{k}={v}")));
    p.set_env(Some(env));
    if let Some((uid, gid)) = args.user {
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        let user = p.user_mut();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&args.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut added = Capabilities::new();
        for name in &args.cap {
            let cap: Capability = serde_json::from_value(serde_json::Value::from(name.as_str()))
                .map_err(|_| anyhow::anyhow!("unknown capability {name}"))?;
            added.insert(cap);
        }
        let add = |set: &Option<Capabilities>| {
            let mut set = set.clone().unwrap_or_default();
            set.extend(added.iter().copied());
            Some(set)
        };
        caps = LinuxCapabilities::default()
            .set_bounding(add(caps.bounding()))
            .set_effective(add(caps.effective()))
            .set_permitted(add(caps.permitted()))
            .set_inheritable(add(caps.inheritable()))
            .set_ambient(add(caps.ambient()))
            .clone();
        p.set_capabilities(Some(caps));
    }
    p.set_terminal(Some(args.tty));
    Ok(p)
}

/// One entry per variable, a later one replacing an earlier one in place,
/// as runc's init sets them one after the other.
fn dedup_env(envp: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(envp.len());
    for e in envp {
        let key = |v: &[u8]| v.split(|&b| b == b'=').next().map(<[u8]>::to_vec);
        let k = key(&e);
        match out.iter_mut().find(|o| key(o) == k) {
            Some(slot) => *slot = e,
            None => out.push(e),
        }
    }
    out
}

/// What a waiter stands for.
pub(super) enum Waited {
    /// A process `exec` started, by its pid in the sandbox; with `tied`,
    /// the process is killed if the waiter is.
    Exec { pid: i32, tied: bool },
    /// A pod's container's init.
    Container(String),
}

impl Waited {
    fn request(&self) -> Request {
        match self {
            Waited::Exec { pid, tied } => Request::Wait {
                pid: *pid,
                tied: *tied,
            },
            Waited::Container(id) => Request::WaitContainer { id: id.clone() },
        }
    }
}

/// Starts `veil exec-wait`, the host process that stands for `waited`
/// (the pid the caller's shim waits for and signals), detached unless
/// `attached`, with no stdio of ours (a pipe it held would keep the caller
/// from seeing the end of output). The wait request goes out first on a
/// connection the waiter inherits, so that the sandbox takes the waiter's
/// death, however early, for the connection's hang-up.
pub(super) fn start_waiter(
    root: &Path,
    container: &Container,
    id: &str,
    waited: &Waited,
    attached: bool,
) -> anyhow::Result<Child> {
    let conn = Conn::open(container, None)?;
    if !conn.send(&waited.request(), &[])? {
        bail!("the sandbox closed the connection");
    }
    let mut waiter = Spawn::current_exe(CloneFlags::empty())?;
    waiter.null_stdio()?;
    if !attached {
        waiter.detached();
    }
    let fd = waiter.pass_fd(&conn.as_fd());
    waiter.arg("--root").arg(root).arg("exec-wait").arg(id);
    if let Waited::Exec { pid, .. } = waited {
        waiter.arg(pid.to_string());
    }
    waiter.arg("--conn-fd").arg(fd.to_string());
    Ok(waiter.spawn()?)
}

/// `exec-wait`: the host process that stands for a detached exec'd
/// process (`pid`), or without one for a pod's container's init, until it
/// exits. Its wait request is already out on `conn`.
pub fn exec_wait(root: &Path, id: &str, pid: Option<i32>, conn: OwnedFd) -> anyhow::Result<u8> {
    let signals = crate::signals::block_into_signalfd()?;
    let container = Store::open(root)?.get(id)?;
    let waited = match pid {
        Some(pid) => Waited::Exec { pid, tied: true },
        None => Waited::Container(id.to_string()),
    };
    let status = await_exit(&container, &Conn::from_fd(conn), &waited, signals)?;
    if let Some(signo) = signaled(status) {
        die_of(signo);
    }
    Ok(exit_code(status))
}

/// The signal a wait(2) status says killed the process.
fn signaled(status: i32) -> Option<i32> {
    Some(status & 0x7f).filter(|&s| s != 0)
}

/// Ends this process by `signo`, without a core dump; returns if the
/// signal does not end it.
fn die_of(signo: i32) {
    let Ok(sig) = nix::sys::signal::Signal::try_from(signo) else {
        return;
    };
    let no_core = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, no_core);
    // SAFETY: restores the default disposition; no handler is installed.
    let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(sig);
    let _ = set.thread_unblock();
    let _ = nix::sys::signal::raise(sig);
}

/// Waits for the reply to the wait request for `waited` sent on `conn`,
/// passing on the signals read from `signals`; returns its wait(2) status.
fn await_exit(
    container: &Container,
    conn: &Conn,
    waited: &Waited,
    signals: OwnedFd,
) -> anyhow::Result<i32> {
    let forward = Conn::open(container, Some(CONTROL_TIMEOUT))?;
    let (pid, in_pod) = match waited {
        Waited::Exec { pid, .. } => (Some(*pid), None),
        Waited::Container(id) => (None, Some(id.clone())),
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || forward_signals(&forward, signals.as_fd(), pid, in_pod))
        .context("starting the signal thread")?;
    let status = match conn.reply()? {
        Some(Reply::Exit(status)) => status,
        // The sandbox is gone, and with it every process in it, killed as
        // a PID namespace's processes are when its init exits.
        None => nix::libc::SIGKILL,
        Some(other) => bail!("an unexpected reply from the sandbox: {other:?}"),
    };
    Ok(status)
}

/// Sends each signal read from the signalfd `fd` to the exec'd process
/// `pid`, or without one to the init of pod container `container`.
fn forward_signals(conn: &Conn, fd: BorrowedFd<'_>, pid: Option<i32>, container: Option<String>) {
    while let Some(signo) = veil_sentry::boot::next_host_signal(fd) {
        let req = Request::Signal {
            signo,
            all: false,
            pid,
            container: container.clone(),
        };
        if let Err(e) = conn.call(&req, &[]) {
            tracing::debug!("forwarding signal {signo}: {e:#}");
        }
    }
}

/// `ps`: the container's processes, by their pids in the sandbox (runc
/// shows host pids; an exec'd process has none).
pub fn ps(root: &Path, args: &liboci_cli::Ps) -> anyhow::Result<u8> {
    let columns = ps_columns(&args.ps_options)?;
    let json = match args.format.as_str() {
        "json" => true,
        "table" => false,
        other => bail!("invalid format option {other:?}"),
    };
    let container = Store::open(root)?.get(&args.container_id)?;
    let state = {
        let _lock = container.lock(false)?;
        container.read()?
    };
    let procs = match state.status() {
        Status::Stopped => Vec::new(),
        _ => match Conn::open(&container, Some(CONTROL_TIMEOUT))?.call(
            &Request::Ps {
                container: state.in_sandbox(),
            },
            &[],
        )? {
            Some(Reply::Processes(list)) => list,
            // Gone since: stopped.
            None => Vec::new(),
            Some(other) => bail!("an unexpected reply from the sandbox: {other:?}"),
        },
    };
    let out = match (json, columns) {
        (true, _) => ps_json(&procs),
        (false, None) => ps_table(&procs, SystemTime::now()),
        (false, Some(columns)) => ps_custom(&procs, &columns, SystemTime::now()),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(0)
}

/// runc's `ps --format json`: the pids as a JSON array, `null` for none.
fn ps_json(procs: &[ProcessInfo]) -> String {
    if procs.is_empty() {
        return "null\n".into();
    }
    let pids: Vec<String> = procs.iter().map(|p| p.pid.to_string()).collect();
    format!("[{}]\n", pids.join(","))
}

/// A table in `ps -ef`'s columns: numeric UID, start time (HH:MM, UTC) and
/// no terminal (the sandbox names none yet).
fn ps_table(procs: &[ProcessInfo], now: SystemTime) -> String {
    let now_ns = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64;
    let mut out = format!(
        "{:<8} {:>7} {:>7} {:>2} {:<5} {:<8} {:>8} CMD\n",
        "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME"
    );
    for p in procs {
        let cpu_ns = p.utime_ns.saturating_add(p.stime_ns);
        let elapsed = now_ns.saturating_sub(p.start_ns).max(1);
        let c = (u128::from(cpu_ns) * 100 / u128::from(elapsed)).min(99);
        let start_secs = p.start_ns / 1_000_000_000;
        let stime = format!("{:02}:{:02}", start_secs / 3600 % 24, start_secs / 60 % 60);
        let cpu_secs = cpu_ns / 1_000_000_000;
        let time = format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            cpu_secs / 60 % 60,
            cpu_secs % 60
        );
        let cmd = if p.cmdline.is_empty() {
            format!("[{}]", p.comm)
        } else {
            p.cmdline.join(" ")
        };
        out.push_str(&format!(
            "{:<8} {:>7} {:>7} {:>2} {:<5} {:<8} {:>8} {}\n",
            p.uid, p.pid, p.ppid, c, stime, "?", time, cmd
        ));
    }
    out
}

/// A column of `ps -o`, which veil fills from the sandbox's view of its
/// processes (runc runs the host's ps, which cannot see into a sandbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PsColumn {
    Pid,
    Ppid,
    Uid,
    Comm,
    Args,
    Stat,
    Time,
    Etime,
}

impl PsColumn {
    fn parse(name: &str) -> Option<(PsColumn, &'static str)> {
        Some(match name {
            "pid" => (PsColumn::Pid, "PID"),
            "ppid" => (PsColumn::Ppid, "PPID"),
            "uid" | "euid" => (PsColumn::Uid, "UID"),
            "user" | "euser" => (PsColumn::Uid, "USER"),
            "comm" | "ucomm" => (PsColumn::Comm, "COMMAND"),
            "args" | "command" => (PsColumn::Args, "COMMAND"),
            "cmd" => (PsColumn::Args, "CMD"),
            "stat" => (PsColumn::Stat, "STAT"),
            "s" | "state" => (PsColumn::Stat, "S"),
            "time" | "cputime" => (PsColumn::Time, "TIME"),
            "etime" => (PsColumn::Etime, "ELAPSED"),
            _ => return None,
        })
    }

    fn numeric(self) -> bool {
        matches!(self, PsColumn::Pid | PsColumn::Ppid | PsColumn::Uid)
    }
}

/// The columns ps options ask for: None for `ps -ef`'s table (no options,
/// `-e`, `-f`, `-ef`, `-A`); `-o LIST` (also `-oLIST`, `-eo LIST`) names
/// columns with optional `=HEADER`s.
fn ps_columns(options: &[String]) -> anyhow::Result<Option<Vec<(PsColumn, String)>>> {
    let mut columns: Option<Vec<(PsColumn, String)>> = None;
    let mut args = options.iter();
    while let Some(arg) = args.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            bail!("ps option {arg:?} is not supported");
        };
        let (plain, list) = match flags.split_once('o') {
            Some((plain, "")) => {
                let list = args.next().context("ps -o needs a list of columns")?;
                (plain, Some(list.as_str()))
            }
            Some((plain, list)) => (plain, Some(list)),
            None => (flags, None),
        };
        if let Some(bad) = plain.chars().find(|c| !matches!(c, 'e' | 'f' | 'A')) {
            bail!("ps option -{bad} is not supported");
        }
        for item in list.into_iter().flat_map(|l| l.split([',', ' '])) {
            if item.is_empty() {
                continue;
            }
            let (name, header) = match item.split_once('=') {
                Some((name, header)) => (name, Some(header)),
                None => (item, None),
            };
            let (column, default) = PsColumn::parse(name)
                .with_context(|| format!("ps column {name:?} is not supported"))?;
            let header = header.unwrap_or(default).to_string();
            columns.get_or_insert_with(Vec::new).push((column, header));
        }
    }
    Ok(columns)
}

/// `ps -o`'s table: columns as wide as their widest cell, numbers to the
/// right, the last column unpadded.
fn ps_custom(procs: &[ProcessInfo], columns: &[(PsColumn, String)], now: SystemTime) -> String {
    let now_ns = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64;
    let clock = |secs: u64| format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let cell = |p: &ProcessInfo, c: PsColumn| match c {
        PsColumn::Pid => p.pid.to_string(),
        PsColumn::Ppid => p.ppid.to_string(),
        PsColumn::Uid => p.uid.to_string(),
        PsColumn::Comm => p.comm.clone(),
        PsColumn::Args if p.cmdline.is_empty() => format!("[{}]", p.comm),
        PsColumn::Args => p.cmdline.join(" "),
        PsColumn::Stat => p.state.to_string(),
        PsColumn::Time => clock(p.utime_ns.saturating_add(p.stime_ns) / 1_000_000_000),
        PsColumn::Etime => {
            let secs = now_ns.saturating_sub(p.start_ns) / 1_000_000_000;
            match secs / 86400 {
                0 if secs < 3600 => format!("{:02}:{:02}", secs / 60, secs % 60),
                0 => clock(secs),
                days => format!("{days}-{}", clock(secs % 86400)),
            }
        }
    };
    let rows: Vec<Vec<String>> = std::iter::once(columns.iter().map(|(_, h)| h.clone()).collect())
        .chain(
            procs
                .iter()
                .map(|p| columns.iter().map(|&(c, _)| cell(p, c)).collect()),
        )
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let last = i + 1 == row.len();
            match (columns[i].0.numeric(), last) {
                (true, _) => line.push_str(&format!("{text:>w$}", w = widths[i])),
                (false, true) => line.push_str(text),
                (false, false) => line.push_str(&format!("{text:<w$}", w = widths[i])),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_options_choose_columns() {
        let opts = |o: &[&str]| ps_columns(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(opts(&[]).expect("parses").is_none());
        assert!(opts(&["-ef"]).expect("parses").is_none());
        let cols = opts(&["-eo", "pid,comm=NAME", "-o", "args"])
            .expect("parses")
            .expect("parses");
        assert_eq!(
            cols,
            [
                (PsColumn::Pid, "PID".to_string()),
                (PsColumn::Comm, "NAME".to_string()),
                (PsColumn::Args, "COMMAND".to_string())
            ]
        );
        assert_eq!(opts(&["-opid"]).expect("parses").expect("columns").len(), 1);
        for bad in [&["aux"][..], &["-x"], &["-o"], &["-o", "wchan"]] {
            assert!(opts(bad).is_err(), "{bad:?}");
        }
        let now = UNIX_EPOCH + Duration::from_secs(37_200 + 8);
        let procs = [info(1, 0, &["sh", "-c", "x"]), info(12, 1, &[])];
        let cols = opts(&["-o", "pid,ppid,comm,etime,args"])
            .expect("parses")
            .expect("columns");
        assert_eq!(
            ps_custom(&procs, &cols, now),
            "PID PPID COMMAND ELAPSED COMMAND\n  \
               1    0 sh      00:08   sh -c x\n \
              12    1 sh      00:08   [sh]\n"
        );
    }

    fn info(pid: i32, ppid: i32, cmdline: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            uid: 0,
            comm: "sh".into(),
            cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
            state: 'S',
            // 1970-01-01 10:20:00 UTC.
            start_ns: 37_200 * 1_000_000_000,
            utime_ns: 3_000_000_000,
            stime_ns: 1_000_000_000,
        }
    }

    #[test]
    fn ps_json_lists_pids_or_null() {
        assert_eq!(ps_json(&[]), "null\n");
        assert_eq!(
            ps_json(&[info(1, 0, &["sh"]), info(7, 0, &["sleep", "5"])]),
            "[1,7]\n"
        );
    }

    #[test]
    fn ps_table_has_ps_ef_columns() {
        let now = UNIX_EPOCH + Duration::from_secs(37_200 + 8);
        let table = ps_table(&[info(1, 0, &["sh", "-c", "x"]), info(9, 1, &[])], now);
        assert_eq!(
            table,
            "UID          PID    PPID  C STIME TTY          TIME CMD\n\
             0              1       0 50 10:20 ?        00:00:04 sh -c x\n\
             0              9       1 50 10:20 ?        00:00:04 [sh]\n"
        );
    }

    #[test]
    fn exit_codes_from_wait_statuses() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(15), 143);
        assert_eq!(exit_code(9 | 0x80), 137);
    }

    #[test]
    fn later_variables_replace_earlier_ones_in_place() {
        let env = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            dedup_env(env(&["PATH=/bin", "A=1", "B=2", "A=3", "C"])),
            env(&["PATH=/bin", "A=3", "B=2", "C"])
        );
    }
}
