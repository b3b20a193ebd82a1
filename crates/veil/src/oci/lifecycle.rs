//! create, start, kill, delete and run: a container's life.
//!
//! No veil process supervises a container. `create` starts the gofer and
//! the sentry detached (re-parented to the caller's subreaper, such as
//! containerd's shim or conmon), waits until init is loaded, records the
//! state and exits. The sentry's host pid is the container's pid, and its
//! exit status is the container's. Later commands reach the sentry through
//! the control socket in the container's directory.

use std::fs::File;
use std::io::IoSlice;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use veil_cgroup::Cgroup;
use veil_confine::spawn::{Child, Spawn, SENTRY_NAMESPACES};
use veil_sentry::control::{Reply, Request, MAX_FDS, MAX_MESSAGE};

use super::bundle::Bundle;
use super::console::OwnTerminal;
use super::hooks;
use super::state::{self, Container, HostProcess, State, StateError, Status, Store};
use crate::cmd_do::Overlay;
use crate::sandbox;

/// How long a command waits for the sentry to answer.
pub(super) const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `delete` waits for killed processes to go.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const SOCKET_NAME: &str = "sandbox.sock";

/// veil's own flags that shape a sandbox.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Where writes to the root go.
    pub overlay: &'a Overlay,
    pub strace: bool,
    pub debug_log: Option<&'a Path>,
}

/// What `create` needs, from `create` or `run`.
pub struct CreateArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: i32,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// `run` without `--detach`: the sandbox dies with us, and we wait.
    pub attached: bool,
}

/// A created sandbox's processes; children of ours only when attached.
pub struct Created {
    pub sentry: Child,
    pub gofer: Child,
    /// Our own terminal, while the container has it as its console.
    pub terminal: Option<OwnTerminal>,
}

pub fn create(root: &Path, args: &CreateArgs, opts: Options) -> anyhow::Result<Created> {
    let store = Store::open(root)?;
    let container = store.create(args.id)?;
    let _lock = container.lock(true)?;
    match start_sandbox(&store, &container, args, opts) {
        Ok(created) => Ok(created),
        Err(e) => {
            let _ = std::fs::remove_dir_all(container.path());
            Err(e)
        }
    }
}

fn start_sandbox(
    store: &Store,
    container: &Container,
    args: &CreateArgs,
    opts: Options,
) -> anyhow::Result<Created> {
    let bundle = Bundle::load(args.bundle, opts.overlay != &Overlay::None)?;
    // With a terminal and no console socket, `run` lends the container its
    // controlling terminal, as runc does.
    let mut terminal = None;
    let console = match (bundle.terminal, args.console_socket) {
        (false, None) => None,
        (true, Some(socket)) if !args.attached => {
            Some(super::console::open(socket, bundle.console_size)?)
        }
        (_, Some(_)) => bail!("cannot use console socket if veil will not detach or allocate tty"),
        (true, None) if !args.attached => {
            bail!("cannot allocate tty if veil will detach without setting console socket")
        }
        (true, None) => {
            let own = terminal.insert(OwnTerminal::open()?);
            Some(own.try_clone()?)
        }
    };

    let (created, cgroup) = match &bundle.pod_sandbox {
        Some(sandbox_id) => {
            let (waiter, gofer) =
                join_pod(store, container, args, opts, &bundle, sandbox_id, console)?;
            (
                Created {
                    sentry: waiter,
                    gofer,
                    terminal,
                },
                CgroupGuard(None),
            )
        }
        None => {
            let (sentry, gofer, cgroup) = boot_sandbox(container, args, opts, &bundle, console)?;
            (
                Created {
                    sentry,
                    gofer,
                    terminal,
                },
                cgroup,
            )
        }
    };

    let state = State {
        id: args.id.to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::rfc3339_nanos(SystemTime::now()),
        owner: rustix::process::geteuid().as_raw(),
        status: Status::Created,
        annotations: bundle.annotations.clone(),
        sentry: HostProcess::current(created.sentry.pid()),
        gofer: HostProcess::current(created.gofer.pid()),
        hooks: bundle.hooks.later.clone(),
        cgroup: cgroup.0.clone(),
        sandbox: bundle.pod_sandbox.clone(),
    };
    let recorded = container
        .write(&state)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            // As the spec says: the container is still being created.
            let mut oci = state.oci(String::new());
            oci.status = Status::Creating;
            hooks::run("create", &bundle.hooks.create, &oci)
        })
        .and_then(|()| {
            // Last: containerd takes the file as the end of create.
            match args.pid_file {
                Some(path) => write_pid_file(path, created.sentry.pid()),
                None => Ok(()),
            }
        });
    if let Err(e) = recorded {
        if bundle.pod_sandbox.is_some() {
            let _ = request(container, &Request::DestroyContainer { id: state.id }, &[]);
        }
        kill_children(&created);
        return Err(e);
    }
    cgroup.keep();
    Ok(created)
}

/// Starts the gofer and the sentry of a new sandbox, with its cgroup, and
/// waits until its init is loaded.
fn boot_sandbox(
    container: &Container,
    args: &CreateArgs,
    opts: Options,
    bundle: &Bundle,
    console: Option<OwnedFd>,
) -> anyhow::Result<(Child, Child, CgroupGuard)> {
    let preserved = preserved_fds(args.preserve_fds)?;
    let cgroup = CgroupGuard(host_cgroup(bundle, args)?);
    let procs_files = cgroup
        .0
        .as_ref()
        .map(Cgroup::procs_files)
        .unwrap_or_default();

    let (gofer, sentry_ends) = start_gofer(bundle, args, opts, procs_files.clone())?;

    let dir = open_dir(container.path())?;
    let control = control_socket()?;
    rustix::net::bind_unix(&control, &socket_addr(&dir)?).context("binding the control socket")?;
    rustix::net::listen(&control, 16).context("listening on the control socket")?;
    let (ready_r, ready_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("creating a pipe")?;
    let spec = spec_file(bundle)?;

    let mut sentry = Spawn::current_exe(SENTRY_NAMESPACES)?;
    sentry.null_stdio()?;
    sentry.cgroup_procs(procs_files);
    if !args.attached {
        sentry.detached();
    }
    let held = sandbox::pass_to_sentry(&mut sentry, &sentry_ends, opts.overlay, opts.debug_log)?;
    match &console {
        Some(slave) => {
            let fd = sentry.pass_fd(slave);
            sentry.arg("--console-fd").arg(fd.to_string());
        }
        None => {
            // The container's stdio is ours, as runc's init inherits it.
            let stdio = [
                sentry.pass_fd(&std::io::stdin()),
                sentry.pass_fd(&std::io::stdout()),
                sentry.pass_fd(&std::io::stderr()),
            ];
            for fd in stdio {
                sentry.arg("--stdio-fd").arg(fd.to_string());
            }
        }
    }
    for fd in &preserved {
        let fd = sentry.pass_fd(fd);
        sentry.arg("--preserve-fd").arg(fd.to_string());
    }
    let spec_fd = sentry.pass_fd(&spec);
    let control_fd = sentry.pass_fd(&control);
    let ready_fd = sentry.pass_fd(&ready_w);
    sentry
        .arg("--spec-fd")
        .arg(spec_fd.to_string())
        .arg("--control-fd")
        .arg(control_fd.to_string())
        .arg("--ready-fd")
        .arg(ready_fd.to_string());
    if opts.strace {
        sentry.arg("--strace");
    }
    let sentry = match sentry.spawn() {
        Ok(s) => s,
        Err(e) => {
            gofer.signal(libc_sigkill());
            return Err(e).context("starting the sentry");
        }
    };
    // The console's last host holder is the sentry: its exit is the
    // console's hang-up.
    drop((sentry_ends, ready_w, control, spec, console, held));
    let started = (sentry, gofer, cgroup);
    if let Err(e) = await_ready(ready_r) {
        started.0.signal(libc_sigkill());
        started.1.signal(libc_sigkill());
        return Err(e);
    }
    Ok(started)
}

/// Starts the gofer of a container's trees, in the cgroups of
/// `procs_files`, detached unless `run` waits for it.
fn start_gofer(
    bundle: &Bundle,
    args: &CreateArgs,
    opts: Options,
    procs_files: Vec<std::path::PathBuf>,
) -> anyhow::Result<(Child, Vec<OwnedFd>)> {
    sandbox::start_gofer(
        &bundle.trees,
        &bundle.sandbox.ids,
        opts.debug_log,
        |gofer| {
            gofer.null_stdio()?;
            gofer.cgroup_procs(procs_files);
            if !args.attached {
                gofer.detached();
            }
            Ok(())
        },
    )
}

/// A pod's container joins the sandbox of the pod's sandbox container
/// `sandbox_id`, as under runsc: a gofer of its own serves its trees, the
/// sandbox's sentry adds it with its own root, and a waiter process stands
/// for its init on the host (the pid the caller's shim waits for and
/// reaps). Returns the waiter and the gofer.
fn join_pod(
    store: &Store,
    container: &Container,
    args: &CreateArgs,
    opts: Options,
    bundle: &Bundle,
    sandbox_id: &str,
    console: Option<OwnedFd>,
) -> anyhow::Result<(Child, Child)> {
    if args.preserve_fds != 0 {
        bail!("--preserve-fds: not supported for a pod's container");
    }
    let pod = store
        .get(sandbox_id)
        .with_context(|| format!("the pod's sandbox {sandbox_id}"))?;
    let pod_state = {
        let _lock = pod.lock(false)?;
        pod.read()?
    };
    if pod_state.sandbox.is_some() {
        bail!("{sandbox_id} is a pod's container, not its sandbox");
    }
    if !matches!(pod_state.status(), Status::Created | Status::Running) {
        bail!("the pod's sandbox {sandbox_id} is not running");
    }
    // Every command then reaches the pod's sentry through this
    // container's directory.
    std::os::unix::fs::symlink(
        Path::new("..").join(sandbox_id).join(SOCKET_NAME),
        container.path().join(SOCKET_NAME),
    )
    .context("linking to the pod's control socket")?;
    let (gofer, sentry_ends) = start_gofer(bundle, args, opts, Vec::new())?;
    let mut fds: Vec<BorrowedFd<'_>> = sentry_ends.iter().map(AsFd::as_fd).collect();
    fds.extend(stdio_fds(console.as_ref()));
    let req = Request::CreateContainer {
        id: args.id.to_string(),
        spec: bundle.pod_container(),
    };
    let added = request(container, &req, &fds);
    drop((sentry_ends, console));
    if let Err(e) = added {
        gofer.signal(libc_sigkill());
        return Err(e);
    }
    let waited = super::exec::Waited::Container(args.id.to_string());
    let waiter =
        super::exec::start_waiter(store.root(), container, args.id, &waited, args.attached)
            .context("starting the container's waiter");
    match waiter {
        Ok(waiter) => Ok((waiter, gofer)),
        Err(e) => {
            let _ = request(
                container,
                &Request::DestroyContainer { id: args.id.into() },
                &[],
            );
            gofer.signal(libc_sigkill());
            Err(e)
        }
    }
}

/// The descriptors 3 to 3+n-1 we were given for the container's init, as
/// runc takes them; they must be open.
fn preserved_fds(n: i32) -> anyhow::Result<Vec<std::os::fd::BorrowedFd<'static>>> {
    if n < 0 {
        bail!("--preserve-fds must not be negative");
    }
    (3..3 + n)
        .map(|fd| {
            // SAFETY: borrowed only to check that it is open; nothing here
            // closes it, and it stays open while we run (our caller's).
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            rustix::io::fcntl_getfd(borrowed)
                .map(|_| borrowed)
                .with_context(|| format!("--preserve-fds: descriptor {fd} is not open"))
        })
        .collect()
}

/// Extra room in the host cgroup's memory limit over the spec's, which
/// the sentry enforces itself: the sandbox's own kill comes first, the
/// cgroup's is a backstop (measured: the sentry, gofer and stubs of a
/// shell take about 5 MiB).
const MEMORY_HEADROOM: u64 = 64 << 20;

/// Removes a cgroup made for a container that failed to start.
struct CgroupGuard(Option<Cgroup>);

impl CgroupGuard {
    /// The container started: its cgroup stays until `delete`.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = &self.0 {
            if let Err(e) = cg.remove() {
                tracing::warn!("removing the cgroup: {e}");
            }
        }
    }
}

/// The container's host cgroup, made and configured. Without root there
/// may be no cgroup to write to: the sandbox then runs without one, as
/// rootless runc does, and the sentry still enforces the memory limit.
fn host_cgroup(bundle: &Bundle, args: &CreateArgs) -> anyhow::Result<Option<Cgroup>> {
    let made =
        Cgroup::plan(bundle.cgroups_path.as_deref(), args.id, args.systemd_cgroup).and_then(|cg| {
            cg.create(bundle.resources.as_ref(), MEMORY_HEADROOM)
                .map(|()| cg)
        });
    match made {
        Ok(cg) => Ok(Some(cg)),
        Err(e) if !rustix::process::geteuid().is_root() => {
            tracing::warn!("running without a host cgroup: {e}");
            Ok(None)
        }
        Err(e) => Err(e).context("setting up the container's cgroup"),
    }
}

fn libc_sigkill() -> i32 {
    rustix::process::Signal::Kill as i32
}

fn kill_children(c: &Created) {
    c.sentry.signal(libc_sigkill());
    c.gofer.signal(libc_sigkill());
}

/// The sandbox spec in an unlinked file the sentry reads.
fn spec_file(bundle: &Bundle) -> anyhow::Result<File> {
    let bytes = postcard::to_allocvec(&bundle.sandbox).context("encoding the sandbox spec")?;
    let mut file = tempfile::tempfile().context("creating the sandbox spec")?;
    file.write_all(&bytes)
        .and_then(|()| std::io::Seek::rewind(&mut file))
        .context("writing the sandbox spec")?;
    Ok(file)
}

/// Waits for the sentry's word on init: `ok`, or why it could not load.
fn await_ready(ready: OwnedFd) -> anyhow::Result<()> {
    let mut msg = Vec::new();
    File::from(ready)
        .take(4096)
        .read_to_end(&mut msg)
        .context("waiting for the sandbox")?;
    match msg.as_slice() {
        b"ok" => Ok(()),
        b"" => bail!("the sandbox failed to start (see --debug-log)"),
        text => bail!(
            "starting the container process: {}",
            String::from_utf8_lossy(text)
        ),
    }
}

/// The pid file: the number alone, without a newline, put in place at
/// once, as runc writes it.
pub(super) fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    let path = std::path::absolute(path)?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(pid.to_string().as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

fn open_dir(path: &Path) -> anyhow::Result<OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))
}

/// A socket of the control socket's kind, either end.
fn control_socket() -> anyhow::Result<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("creating a control socket")
}

/// The control socket's address through a descriptor of its directory,
/// so that a state root of any length fits in `sun_path`.
fn socket_addr(dir: &impl AsFd) -> anyhow::Result<SocketAddrUnix> {
    let path = format!("/proc/self/fd/{}/{SOCKET_NAME}", dir.as_fd().as_raw_fd());
    SocketAddrUnix::new(path.as_str()).context("the control socket's address")
}

/// A connection to a container's sentry.
pub(super) struct Conn(OwnedFd);

impl Conn {
    /// Connects; with a `timeout`, a reply that takes longer is an error.
    pub(super) fn open(container: &Container, timeout: Option<Duration>) -> anyhow::Result<Conn> {
        let dir = open_dir(container.path())?;
        let sock = control_socket()?;
        rustix::net::connect_unix(&sock, &socket_addr(&dir)?)
            .context("connecting to the sandbox")?;
        rustix::net::sockopt::set_socket_timeout(
            &sock,
            rustix::net::sockopt::Timeout::Recv,
            timeout,
        )
        .context("setting a timeout")?;
        Ok(Conn(sock))
    }

    /// A connection made by another veil process.
    pub(super) fn from_fd(fd: OwnedFd) -> Conn {
        Conn(fd)
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Sends `req` with `fds` attached and returns the reply; an error
    /// reply becomes an error, and None means the sandbox has gone.
    pub(super) fn call(
        &self,
        req: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> anyhow::Result<Option<Reply>> {
        if !self.send(req, fds)? {
            return Ok(None);
        }
        self.reply()
    }

    /// Sends `req` with `fds` attached; false if the sandbox has gone.
    pub(super) fn send(&self, req: &Request, fds: &[BorrowedFd<'_>]) -> anyhow::Result<bool> {
        let bytes = postcard::to_allocvec(req).context("encoding a request")?;
        let mut space = [0u8; rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
            bail!("too many descriptors for one request");
        }
        loop {
            match rustix::net::sendmsg(
                &self.0,
                &[IoSlice::new(&bytes)],
                &mut ancillary,
                SendFlags::NOSIGNAL,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::PIPE) => return Ok(false),
                r => {
                    r.context("sending to the sandbox")?;
                    return Ok(true);
                }
            }
        }
    }

    /// The reply to the request sent last; an error reply becomes an
    /// error, and None means the sandbox has gone.
    pub(super) fn reply(&self) -> anyhow::Result<Option<Reply>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match rustix::io::read(&self.0, &mut buf) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::CONNRESET) => return Ok(None),
                r => break r.context("reading the sandbox's reply")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        match postcard::from_bytes::<Reply>(&buf[..n]) {
            Ok(Reply::Error(msg)) => bail!("{}", msg.chars().take(4096).collect::<String>()),
            Ok(reply) => Ok(Some(reply)),
            Err(e) => bail!("a bad reply from the sandbox: {e}"),
        }
    }
}

/// The descriptors a new process in the sandbox gets as its stdio: the
/// console's host side, or else our own stdin, stdout and stderr.
pub(super) fn stdio_fds(console: Option<&OwnedFd>) -> Vec<BorrowedFd<'_>> {
    match console {
        Some(tty) => vec![tty.as_fd()],
        None => vec![
            rustix::stdio::stdin(),
            rustix::stdio::stdout(),
            rustix::stdio::stderr(),
        ],
    }
}

/// Sends one request, with `fds` attached, to a container's sentry and
/// expects `Ok`.
fn request(container: &Container, req: &Request, fds: &[BorrowedFd<'_>]) -> anyhow::Result<()> {
    match Conn::open(container, Some(CONTROL_TIMEOUT))?.call(req, fds)? {
        Some(Reply::Ok) => Ok(()),
        None => bail!("the sandbox closed the connection"),
        Some(other) => bail!("an unexpected reply from the sandbox: {other:?}"),
    }
}

pub fn start(root: &Path, id: &str) -> anyhow::Result<u8> {
    let container = Store::open(root)?.get(id)?;
    let _lock = container.lock(true)?;
    let mut state = container.read()?;
    match state.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Paused => bail!("cannot start a paused container"),
        Status::Running | Status::Creating => bail!("cannot start an already running container"),
    }
    if let Err(e) = hooks::run(
        "startContainer",
        &state.hooks.start_container,
        &state.oci(String::new()),
    ) {
        let _ = destroy(&container, &state);
        return Err(e);
    }
    request(
        &container,
        &Request::Start {
            container: state.in_sandbox(),
        },
        &[],
    )?;
    // With the state as it was before, as runc gives it.
    let before = state.oci(String::new());
    state.status = Status::Running;
    container.write(&state)?;
    if let Err(e) = hooks::run("poststart", &state.hooks.poststart, &before) {
        eprintln!("veil: warning: {e:#}");
    }
    Ok(0)
}

pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> anyhow::Result<u8> {
    let signo = parse_signal(signal)?;
    let container = Store::open(root)?.get(id)?;
    let _lock = container.lock(true)?;
    let state = container.read()?;
    match state.status() {
        // containerd takes this wording for "already finished".
        Status::Stopped if all => return Ok(0),
        Status::Stopped => bail!("container not running"),
        // The sentry is frozen too: SIGKILL ends the whole sandbox from
        // outside; anything else waits for resume.
        Status::Paused if signo == rustix::process::Signal::Kill as i32 => {
            destroy(&container, &state)?;
            return Ok(0);
        }
        Status::Paused => bail!("container is paused: resume it to deliver signal {signal}"),
        _ => {}
    }
    request(
        &container,
        &Request::Signal {
            signo,
            all,
            pid: None,
            container: state.in_sandbox(),
        },
        &[],
    )?;
    Ok(0)
}

/// `pause` (`freeze`) and `resume`: the cgroup freezer holds every process
/// of the sandbox, the sentry and gofer included.
pub fn pause(root: &Path, id: &str, freeze: bool) -> anyhow::Result<u8> {
    let container = Store::open(root)?.get(id)?;
    let _lock = container.lock(true)?;
    let mut state = container.read()?;
    if let Some(pod) = &state.sandbox {
        bail!("a pod's containers are paused with their sandbox, {pod}");
    }
    match (state.status(), freeze) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (_, true) => bail!("container not running"),
        (_, false) => bail!("container not paused"),
    }
    let cg = state
        .cgroup
        .as_ref()
        .context("the container has no cgroup to freeze")?;
    cg.freeze(freeze)?;
    state.status = if freeze {
        Status::Paused
    } else {
        Status::Running
    };
    container.write(&state)?;
    Ok(0)
}

/// A signal by number, or by name with or without `SIG`.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => match name.strip_prefix("RTMIN") {
            Some("") => 34,
            Some(off) => off
                .strip_prefix('+')
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| 34 + n)
                .filter(|n| (34..=64).contains(n))
                .with_context(|| format!("unknown signal {s:?}"))?,
            None => bail!("unknown signal {s:?}"),
        },
    };
    Ok(n)
}

pub fn delete(root: &Path, id: &str, force: bool) -> anyhow::Result<u8> {
    let store = Store::open(root)?;
    let container = match store.get(id) {
        Err(StateError::NotExist) if force => return Ok(0),
        other => other?,
    };
    let _lock = container.lock(true)?;
    let state = match container.read() {
        Ok(state) => {
            let status = state.status();
            if status != Status::Stopped && !force {
                let status = serde_json::to_value(status)?;
                bail!(
                    "cannot delete container {id} that is not stopped: {}",
                    status.as_str().unwrap_or_default()
                );
            }
            destroy(&container, &state)?;
            if let Some(cg) = &state.cgroup {
                cg.remove().context("removing the container's cgroup")?;
            }
            Some(state)
        }
        // Left half-made by a create that died.
        Err(StateError::NotExist) if force => None,
        Err(e) => return Err(e.into()),
    };
    std::fs::remove_dir_all(container.path())
        .with_context(|| format!("removing {}", container.path().display()))?;
    if let Some(state) = state {
        let mut oci = state.oci(String::new());
        oci.status = Status::Stopped;
        if let Err(e) = hooks::run("poststop", &state.hooks.poststop, &oci) {
            eprintln!("veil: warning: {e:#}");
        }
    }
    Ok(0)
}

/// Kills what is left of a sandbox, or of a pod's container in its
/// pod's sandbox, and waits until it is gone.
fn destroy(container: &Container, state: &State) -> anyhow::Result<()> {
    if state.sandbox.is_some() {
        // The pod's sandbox may have gone already, and this container with
        // it.
        let req = Request::DestroyContainer {
            id: state.id.clone(),
        };
        if let Err(e) = request(container, &req, &[]) {
            tracing::debug!("removing {} from its pod's sandbox: {e:#}", state.id);
        }
    }
    let procs: Vec<_> = [state.sentry, state.gofer].into_iter().flatten().collect();
    for p in &procs {
        p.kill();
    }
    // A frozen process dies of SIGKILL only once thawed.
    if let Some(cg) = &state.cgroup {
        let _ = cg.freeze(false);
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    while procs.iter().any(HostProcess::alive) {
        if Instant::now() > deadline {
            bail!("the sandbox's processes did not exit after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `run`: create and start; unless detached, wait for the container's
/// exit, delete it (unless `--keep`) and exit with its status.
pub fn run(root: &Path, args: &CreateArgs, keep: bool, opts: Options) -> anyhow::Result<u8> {
    let created = create(root, args, opts)?;
    if let Err(e) = start(root, args.id) {
        let _ = delete(root, args.id, true);
        return Err(e);
    }
    if !args.attached {
        return Ok(0);
    }
    crate::signals::forward_to(created.sentry.pid())?;
    let status = created.sentry.wait().context("waiting for the sandbox")?;
    let _ = created.gofer.wait();
    drop(created.terminal);
    if !keep {
        delete(root, args.id, true)?;
    }
    Ok(sandbox::exit_code(status.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_and_name() {
        for (s, n) in [
            ("15", 15),
            ("TERM", 15),
            ("SIGTERM", 15),
            ("sigkill", 9),
            ("KILL", 9),
            ("SIGRTMIN", 34),
            ("RTMIN+3", 37),
            ("64", 64),
        ] {
            assert_eq!(parse_signal(s).ok(), Some(n), "{s}");
        }
        for s in ["0", "65", "BOGUS", "RTMIN+31", "-1", ""] {
            assert!(parse_signal(s).is_err(), "{s}");
        }
    }

    #[test]
    fn deleting_a_missing_container() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = delete(root.path(), "nope", false).expect_err("fails");
        assert_eq!(err.to_string(), "container does not exist");
        assert_eq!(delete(root.path(), "nope", true).ok(), Some(0));
        assert!(!root.path().join("nope").exists());
    }
}
