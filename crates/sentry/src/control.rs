//! The control socket: how `veil start`, `kill`, `exec` and `ps` reach a
//! sandbox that `veil create` started. One postcard message per
//! SOCK_SEQPACKET packet, a request and then its reply; `Exec` carries the
//! new process's stdin, stdout and stderr with SCM_RIGHTS, or the one host
//! terminal that becomes its console.
//!
//! A pod's other containers run in its sandbox, each on a filesystem tree
//! of its own (`CreateContainer` brings the gofer connections for it) and
//! with an init of its own; requests name them by id, and name none for
//! the sandbox's own container.
//!
//! Every request is validated: a malformed one gets an error reply, never
//! a crash. The CLI side trusts nothing it reads back either: replies are
//! bounded and only ever shown.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::io::Errno as HostErrno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendFlags,
};
use serde::{Deserialize, Serialize};

use veil_gofer::GoferClient;
use veil_vfs::mount::MountConfig;
use veil_vfs::{FdTable, PathRef, Vfs};

use crate::boot::{
    exit_within, fs_context, populate_tree, spawn_process, stdio_table, Member, ProcessSpec,
    TreeSpec,
};
use crate::console::Console;
use crate::kernel::{Kernel, INIT_PID};
use crate::signal::{default_action, DefaultAction, SigInfo, SIGKILL};
use crate::task::{ExitStatus, ThreadGroup};

/// The largest request or reply.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The descriptors an `Exec` request carries: stdin, stdout, stderr.
pub const EXEC_FDS: usize = 3;
/// The most descriptors one request carries (`CreateContainer`'s gofer
/// connections, one per bind mount, and stdio).
pub const MAX_FDS: usize = 64;
/// The most of a process's command line `Ps` reports, in bytes.
const MAX_CMDLINE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Let a container's init run (`veil start`).
    Start { container: Option<String> },
    /// Send `signo` to a container's init, to an exec'd process (`pid`),
    /// or with `all` to every process of the container, as from outside
    /// its PID namespace.
    Signal {
        signo: i32,
        all: bool,
        pid: Option<i32>,
        container: Option<String>,
    },
    /// Start another process in a container, with the [`EXEC_FDS`]
    /// descriptors sent along as its stdio, or with `terminal` the one host
    /// terminal sent along as its console (its controlling terminal, in a
    /// session of its own). Replies with its pid.
    Exec {
        process: ProcessSpec,
        terminal: bool,
        container: Option<String>,
    },
    /// Wait for an exec'd process to exit; replies with its status, which
    /// is kept until a Wait has returned it. With `tied`, the caller
    /// stands for the process on the host (`exec --detach`'s waiter): if
    /// it goes first, killed, the process is killed too.
    Wait { pid: i32, tied: bool },
    /// List a container's processes.
    Ps { container: Option<String> },
    /// Add a pod's container `id`: the descriptors sent along are its
    /// gofer connections, then its stdio as for `Exec`. Its init is loaded
    /// and waits for `Start`.
    CreateContainer { id: String, spec: ContainerSpec },
    /// Wait until a pod's container has stopped; replies with its init's
    /// status. The caller stands for the init on the host: if it goes
    /// first, killed, the container is killed too.
    WaitContainer { id: String },
    /// Kill what is left of a pod's container and forget it.
    DestroyContainer { id: String },
}

/// A pod's container as `veil create` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub mounts: MountConfig,
    pub process: ProcessSpec,
    pub readonly_root: bool,
    pub masked_paths: Vec<Vec<u8>>,
    pub readonly_paths: Vec<Vec<u8>>,
    /// Its stdio is one host terminal, as for `Exec`.
    pub terminal: bool,
    /// How many of the descriptors are gofer connections: the root's
    /// first, then those bind mounts name.
    pub gofers: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Error(String),
    /// The sandbox's pid of an exec'd process.
    Pid(i32),
    /// A wait(2) status: the exit code in bits 8-15, or the signal (with
    /// 0x80 for a core dump).
    Exit(i32),
    Processes(Vec<ProcessInfo>),
}

/// A process as `veil ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// In the sandbox's PID namespace.
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub comm: String,
    /// Its arguments, cut at [`MAX_CMDLINE`] bytes; empty for a zombie.
    pub cmdline: Vec<String>,
    /// /proc's state letter.
    pub state: char,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// CPU time used, user and system, in nanoseconds.
    pub utime_ns: u64,
    pub stime_ns: u64,
}

impl ProcessInfo {
    pub(crate) fn new(
        kernel: &Kernel,
        tg: &ThreadGroup,
        comm: Vec<u8>,
        cmdline: &[u8],
        uid: u32,
        state: char,
    ) -> Self {
        let started = SystemTime::now()
            .checked_sub(tg.start.elapsed())
            .unwrap_or(UNIX_EPOCH);
        let cpu = tg.cpu(kernel);
        let cmdline = &cmdline[..cmdline.len().min(MAX_CMDLINE)];
        ProcessInfo {
            pid: tg.pid,
            ppid: tg.parent_pid(),
            uid,
            comm: String::from_utf8_lossy(&comm).into_owned(),
            cmdline: cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            state,
            start_ns: started
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos() as u64,
            utime_ns: cpu.user_ns,
            stime_ns: cpu.sys_ns,
        }
    }
}

/// Where init stands before it runs its first instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Waiting,
    Started,
    /// Killed while waiting, by a signal whose default action ends it (as
    /// runc's waiting init is).
    Killed(i32),
}

/// Holds init between `create` and `start`.
#[derive(Debug)]
pub struct StartGate {
    state: Mutex<Gate>,
    changed: Condvar,
}

impl Default for StartGate {
    fn default() -> Self {
        Self {
            state: Mutex::new(Gate::Waiting),
            changed: Condvar::new(),
        }
    }
}

impl StartGate {
    /// Blocks until init is started or killed.
    pub fn wait(&self) -> Gate {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while *state == Gate::Waiting {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *state
    }

    fn set(&self, from: Gate, to: Gate) -> Result<(), Gate> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if *state != from {
            return Err(*state);
        }
        *state = to;
        self.changed.notify_all();
        Ok(())
    }

    fn get(&self) -> Gate {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the control threads share.
struct Control {
    kernel: Arc<Kernel>,
    /// The sandbox's own container's init's gate.
    gate: Arc<StartGate>,
    /// A pod's other containers, by id.
    containers: Mutex<HashMap<String, Arc<PodContainer>>>,
    /// The next pod container's number (0 is the sandbox's own).
    next_container: AtomicU32,
    /// The processes `Exec` started, until a `Wait` collects their status
    /// (the kernel forgets them when they exit: no parent reaps them).
    execs: Mutex<HashMap<i32, Arc<ThreadGroup>>>,
    /// The consoles of exec'd processes, finished when they are waited for.
    consoles: Mutex<HashMap<i32, Arc<Console>>>,
}

/// Accepts connections on `listener` for the life of the sandbox, each
/// served on a thread of its own.
pub fn serve(kernel: Arc<Kernel>, gate: Arc<StartGate>, listener: OwnedFd) {
    let control = Arc::new(Control {
        kernel,
        gate,
        containers: Mutex::default(),
        next_container: AtomicU32::new(1),
        execs: Mutex::default(),
        consoles: Mutex::default(),
    });
    loop {
        let conn = match rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC) {
            Ok(conn) => conn,
            Err(HostErrno::INTR | HostErrno::CONNABORTED) => continue,
            Err(e) => {
                tracing::error!("control socket: {e}");
                return;
            }
        };
        let control = control.clone();
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve_connection(&control, &conn));
        if let Err(e) = spawned {
            tracing::error!("control socket: no thread for a connection: {e}");
        }
    }
}

fn serve_connection(control: &Control, conn: &OwnedFd) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let reply = match recv(conn, &mut buf) {
            Ok(Some((n, fds))) => match postcard::from_bytes::<Request>(&buf[..n]) {
                Ok(req) => handle(control, req, fds, conn),
                Err(e) => Reply::Error(format!("bad request: {e}")),
            },
            Ok(None) => return,
            Err(HostErrno::MSGSIZE) => Reply::Error("the request is too large".into()),
            Err(_) => return,
        };
        let bytes = match postcard::to_allocvec(&reply) {
            Ok(b) if b.len() <= MAX_MESSAGE => b,
            _ => match postcard::to_allocvec(&Reply::Error("the reply is too large".into())) {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        if send(conn, &bytes).is_err() {
            return;
        }
    }
}

/// Receives one request and the descriptors sent with it; None once the
/// peer has closed the connection.
fn recv(conn: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, Vec<OwnedFd>)>, HostErrno> {
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            conn,
            &mut [IoSliceMut::new(buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(HostErrno::INTR) => continue,
            r => break r?,
        }
    };
    let fds: Vec<OwnedFd> = ancillary
        .drain()
        .filter_map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => Some(fds),
            _ => None,
        })
        .flatten()
        .collect();
    // SEQPACKET cannot tell an empty message from a close.
    if msg.bytes == 0 {
        return Ok(None);
    }
    // Descriptors past the buffer are closed, and the request then finds
    // too few.
    if msg.flags.contains(RecvFlags::TRUNC) {
        return Err(HostErrno::MSGSIZE);
    }
    Ok(Some((msg.bytes, fds)))
}

fn send(conn: &OwnedFd, bytes: &[u8]) -> Result<(), HostErrno> {
    loop {
        // sendmsg, which the sentry's host filter allows (not sendto);
        // NOSIGNAL: a vanished client is an EPIPE, not a SIGPIPE.
        match rustix::net::sendmsg(
            conn,
            &[IoSlice::new(bytes)],
            &mut SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        ) {
            Err(HostErrno::INTR) => continue,
            r => return r.map(drop),
        }
    }
}

fn handle(control: &Control, req: Request, fds: Vec<OwnedFd>, conn: &OwnedFd) -> Reply {
    let kernel = &control.kernel;
    if let Some(refused) = check_fds(&req, fds.len()) {
        return refused;
    }
    match req {
        Request::Start { container } => {
            let target = match control.target(container.as_deref()) {
                Ok(t) => t,
                Err(e) => return Reply::Error(e),
            };
            match target.gate.set(Gate::Waiting, Gate::Started) {
                Ok(()) => Reply::Ok,
                Err(Gate::Started) => {
                    Reply::Error("cannot start an already running container".into())
                }
                Err(_) => Reply::Error("cannot start a container that has stopped".into()),
            }
        }
        Request::Signal { signo, .. } if !(1..=64).contains(&signo) => {
            Reply::Error(format!("invalid signal {signo}"))
        }
        Request::Signal {
            signo,
            pid: Some(pid),
            ..
        } => {
            let tg = control.exec(pid);
            match tg.filter(|tg| !exited(tg)) {
                Some(tg) => {
                    kernel.signal_process(&tg, SigInfo::user(signo, 0, 0));
                    Reply::Ok
                }
                None => Reply::Error(format!("no process {pid} to signal")),
            }
        }
        Request::Signal {
            signo,
            all,
            pid: None,
            container,
        } => match control.target(container.as_deref()) {
            Ok(target) => {
                target.signal(kernel, signo, all);
                Reply::Ok
            }
            Err(e) => Reply::Error(e),
        },
        Request::Exec {
            process,
            terminal,
            container,
        } => match control
            .target(container.as_deref())
            .and_then(|t| exec(control, &t, process, terminal, fds))
        {
            Ok(pid) => Reply::Pid(pid),
            Err(msg) => Reply::Error(msg),
        },
        Request::Wait { pid, tied } => {
            let Some(tg) = control.exec(pid) else {
                return Reply::Error(format!("no process {pid} to wait for"));
            };
            let waiter = veil_vfs::wait::Waiter::new();
            let status = wait_watching(
                conn,
                |timeout| exit_within(kernel, &tg, &waiter, Some(timeout)),
                || {
                    if tied {
                        kernel.signal_process(&tg, SigInfo::user(SIGKILL, 0, 0));
                    }
                },
            );
            control
                .execs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&pid);
            let console = control
                .consoles
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&pid);
            if let Some(console) = console {
                console.finish();
            }
            Reply::Exit(status.wait_status())
        }
        Request::Ps { container } => {
            let target = match control.target(container.as_deref()) {
                Ok(t) => t,
                Err(e) => return Reply::Error(e),
            };
            let procs: Vec<_> = kernel
                .processes()
                .values()
                .filter(|tg| tg.container == target.index)
                .cloned()
                .collect();
            let mut list: Vec<_> = procs
                .iter()
                .map(|tg| crate::procfs::process_info(kernel, tg))
                .collect();
            list.sort_by_key(|p| p.pid);
            Reply::Processes(list)
        }
        Request::CreateContainer { id, spec } => match create_container(control, id, spec, fds) {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::Error(e),
        },
        Request::WaitContainer { id } => match control.pod_container(&id) {
            Some(c) => {
                let status = wait_watching(
                    conn,
                    |timeout| c.wait_timeout(timeout),
                    || c.target().signal(kernel, SIGKILL, true),
                );
                Reply::Exit(status.wait_status())
            }
            None => Reply::Error(format!("no container {id:?} in the sandbox")),
        },
        Request::DestroyContainer { id } => {
            let removed = control
                .containers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            match removed {
                Some(c) => {
                    c.target().signal(kernel, SIGKILL, true);
                    c.wait();
                    kernel.vfs.drop_tree(&c.root);
                    Reply::Ok
                }
                None => Reply::Error(format!("no container {id:?} in the sandbox")),
            }
        }
    }
}

/// How often a waiting request looks for its caller's hang-up.
const HANG_UP_POLL: Duration = Duration::from_millis(100);

/// Waits until `exited` (which blocks up to the time it is given) returns
/// a status. Should the peer of `conn` hang up first, `on_hang_up` runs,
/// once, and the wait goes on.
fn wait_watching(
    conn: &OwnedFd,
    mut exited: impl FnMut(Duration) -> Option<ExitStatus>,
    on_hang_up: impl FnOnce(),
) -> ExitStatus {
    let mut on_hang_up = Some(on_hang_up);
    loop {
        if let Some(status) = exited(HANG_UP_POLL) {
            return status;
        }
        if let Some(f) = on_hang_up.take_if(|_| hung_up(conn)) {
            f();
        }
    }
}

/// Whether the peer of `conn` has closed its end.
fn hung_up(conn: &OwnedFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut pfd = [PollFd::new(conn, PollFlags::empty())];
    poll(&mut pfd, 0).is_ok_and(|n| n > 0)
        && pfd[0].revents().intersects(PollFlags::HUP | PollFlags::ERR)
}

/// The error for descriptors a request should not carry, or too few.
fn check_fds(req: &Request, n: usize) -> Option<Reply> {
    match req {
        Request::Exec { terminal, .. } if n != exec_fds(*terminal) => Some(Reply::Error(format!(
            "exec needs {} descriptors, got {n}",
            exec_fds(*terminal)
        ))),
        Request::CreateContainer { spec, .. }
            if spec.gofers == 0 || n != spec.gofers.saturating_add(exec_fds(spec.terminal)) =>
        {
            Some(Reply::Error(format!(
                "a container needs at least one gofer connection and its stdio, got {n} descriptors"
            )))
        }
        Request::Exec { .. } | Request::CreateContainer { .. } => None,
        _ if n != 0 => Some(Reply::Error("unexpected descriptors".into())),
        _ => None,
    }
}

/// A pod's container other than the sandbox's own.
struct PodContainer {
    /// Its processes' `ThreadGroup::container`.
    index: u32,
    /// The root of its filesystem tree.
    root: PathRef,
    gate: Arc<StartGate>,
    init: Arc<ThreadGroup>,
    /// Its init's status, once it and with it the container has stopped.
    exit: Mutex<Option<ExitStatus>>,
    stopped: Condvar,
}

impl PodContainer {
    /// Blocks until the container has stopped; returns its init's status.
    fn wait(&self) -> ExitStatus {
        let mut exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(status) = *exit {
                return status;
            }
            exit = self
                .stopped
                .wait(exit)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Its init's status once the container has stopped, waiting up to
    /// `timeout` for that.
    fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        let (exit, _) = self
            .stopped
            .wait_timeout_while(exit, timeout, |e| e.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *exit
    }

    fn target(&self) -> Target {
        Target {
            index: self.index,
            root: self.root.clone(),
            gate: self.gate.clone(),
            init_pid: self.init.pid,
        }
    }
}

/// The container a request is for.
struct Target {
    index: u32,
    root: PathRef,
    gate: Arc<StartGate>,
    init_pid: i32,
}

impl Target {
    /// `signo` to the container's init, or with `all` to each of its
    /// processes, from outside; one that would end an init still waiting
    /// for Start ends it unrun.
    fn signal(&self, kernel: &Kernel, signo: i32, all: bool) {
        let waiting = self.gate.get() == Gate::Waiting;
        if waiting {
            // Nothing of init runs yet: only a signal that would end
            // it matters, and it ends the container.
            let ends = !matches!(
                default_action(signo),
                DefaultAction::Ignore | DefaultAction::Stop | DefaultAction::Continue
            );
            if ends {
                let _ = self.gate.set(Gate::Waiting, Gate::Killed(signo));
            }
        }
        let targets: Vec<_> = kernel
            .processes()
            .iter()
            .filter(|(_, tg)| tg.container == self.index)
            .filter(
                |(&pid, _)| {
                    if pid == self.init_pid {
                        !waiting
                    } else {
                        all
                    }
                },
            )
            .map(|(_, tg)| tg.clone())
            .collect();
        for tg in targets {
            kernel.signal_process(&tg, SigInfo::user(signo, 0, 0));
        }
    }
}

impl Control {
    fn exec(&self, pid: i32) -> Option<Arc<ThreadGroup>> {
        self.execs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&pid)
            .cloned()
    }

    fn pod_container(&self, id: &str) -> Option<Arc<PodContainer>> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The container `id` names; None names the sandbox's own.
    fn target(&self, id: Option<&str>) -> Result<Target, String> {
        match id {
            None => Ok(Target {
                index: 0,
                root: self.kernel.vfs.root(),
                gate: self.gate.clone(),
                init_pid: INIT_PID,
            }),
            Some(id) => self
                .pod_container(id)
                .map(|c| c.target())
                .ok_or_else(|| format!("no container {id:?} in the sandbox")),
        }
    }
}

fn exited(tg: &ThreadGroup) -> bool {
    tg.exit
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
}

/// How many descriptors an `Exec` request carries.
fn exec_fds(terminal: bool) -> usize {
    if terminal {
        1
    } else {
        EXEC_FDS
    }
}

fn errno_text(e: veil_abi::Errno) -> String {
    std::io::Error::from_raw_os_error(e.raw()).to_string()
}

/// A new process's descriptors, from `fds`: its stdio, or with `terminal`
/// the host terminal that becomes its console on the tree of `root` (also
/// bound over /dev/console with `dev_console`).
fn process_stdio(
    vfs: &Vfs,
    root: &PathRef,
    process: &ProcessSpec,
    terminal: bool,
    dev_console: bool,
    mut fds: Vec<OwnedFd>,
) -> Result<(Arc<FdTable>, Option<Arc<Console>>), String> {
    if terminal {
        let host = fds.pop().ok_or("bad descriptors")?;
        let (console, table) = Console::stdio(vfs, root, host, process.uid, dev_console)
            .map_err(|e| format!("console: {}", errno_text(e)))?;
        Ok((table, Some(console)))
    } else {
        let stdio: [OwnedFd; EXEC_FDS] =
            fds.try_into().map_err(|_| "bad descriptors".to_string())?;
        let table = stdio_table(stdio).map_err(|e| format!("stdio: {}", errno_text(e)))?;
        Ok((table, None))
    }
}

/// A process's working directory, as runc words its absence.
fn process_fs(
    vfs: &Vfs,
    root: &PathRef,
    process: &ProcessSpec,
) -> Result<veil_vfs::FsContext, String> {
    fs_context(vfs, root, process).map_err(|e| {
        format!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            String::from_utf8_lossy(&process.cwd),
            errno_text(e)
        )
    })
}

/// Makes `console` the terminal of the session `pid` leads (a new
/// process's sid is its pid) and starts it.
fn start_console(console: &Arc<Console>, pid: i32) -> Result<(), String> {
    console.lead(pid);
    console.start().map_err(|e| format!("console threads: {e}"))
}

/// Starts an exec'd process: loaded before the reply, so that a missing
/// program is the request's error, as runc's exec reports it.
fn exec(
    control: &Control,
    target: &Target,
    process: ProcessSpec,
    terminal: bool,
    fds: Vec<OwnedFd>,
) -> Result<i32, String> {
    if process.argv.is_empty() {
        return Err("args must not be empty".into());
    }
    let kernel = &control.kernel;
    let fs = process_fs(&kernel.vfs, &target.root, &process)?;
    let (table, console) =
        process_stdio(&kernel.vfs, &target.root, &process, terminal, false, fds)?;
    let (tx, rx) = std::sync::mpsc::channel();
    // The process runs only once its console is its session's: its pid
    // is known only after the spawn.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let member = Member {
        container: target.index,
        init: false,
    };
    let (tg, _detached) = spawn_process(kernel, process, table, fs, member, move |loaded| {
        let _ = tx.send(loaded.map_err(|(path, errno)| {
            format!("{}: {}", String::from_utf8_lossy(path), errno_text(errno))
        }));
        go_rx.recv().map_err(|_| ExitStatus::Exited(127))
    })
    .map_err(|e| e.to_string())?;
    match rx.recv() {
        Ok(r) => r?,
        Err(_) => return Err("the process could not start (see --debug-log)".into()),
    }
    if let Some(console) = console {
        start_console(&console, tg.pid)?;
        control
            .consoles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tg.pid, console);
    }
    control
        .execs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(tg.pid, tg.clone());
    let _ = go_tx.send(());
    Ok(tg.pid)
}

/// Adds a pod's container: its tree on its own gofer connections, and its
/// init, loaded and waiting for Start. Once that init exits, what is left
/// of the container is killed, as a PID namespace's processes are.
fn create_container(
    control: &Control,
    id: String,
    spec: ContainerSpec,
    mut fds: Vec<OwnedFd>,
) -> Result<(), String> {
    if id.is_empty() || control.pod_container(&id).is_some() {
        return Err(format!("container {id:?} exists already"));
    }
    if spec.process.argv.is_empty() {
        return Err("args must not be empty".into());
    }
    let kernel = &control.kernel;
    let vfs = &kernel.vfs;
    let stdio = fds.split_off(spec.gofers);
    let clients: Vec<_> = fds
        .into_iter()
        .map(|fd| Arc::new(GoferClient::new(fd)))
        .collect();
    let root_fs = Vfs::gofer_root_fs(
        clients[0].clone(),
        spec.mounts.root_overlay,
        kernel.memfile.clone(),
    )
    .map_err(|e| format!("the container's root: {}", errno_text(e)))?;
    let root = vfs.new_tree(root_fs);
    let built = (|| {
        let tree = TreeSpec {
            mounts: &spec.mounts.mounts,
            clients: &clients,
            masked_paths: &spec.masked_paths,
            readonly_paths: &spec.readonly_paths,
            readonly_root: spec.readonly_root,
        };
        populate_tree(kernel, &root, &tree).map_err(|e| e.to_string())?;
        let fs = process_fs(vfs, &root, &spec.process)?;
        let (table, console) =
            process_stdio(vfs, &root, &spec.process, spec.terminal, true, stdio)?;
        Ok::<_, String>((fs, table, console))
    })();
    let (fs, table, console) = match built {
        Ok(b) => b,
        Err(e) => {
            vfs.drop_tree(&root);
            return Err(e);
        }
    };
    let gate = Arc::new(StartGate::default());
    let index = control.next_container.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::channel();
    let init_gate = gate.clone();
    let member = Member {
        container: index,
        init: true,
    };
    let spawned = spawn_process(kernel, spec.process, table, fs, member, move |loaded| {
        let ok = loaded.is_ok();
        let _ = tx.send(loaded.map_err(|(path, errno)| {
            format!("{}: {}", String::from_utf8_lossy(path), errno_text(errno))
        }));
        match init_gate.wait() {
            Gate::Killed(signo) if ok => Err(ExitStatus::Signaled { signo, core: false }),
            _ => Ok(()),
        }
    });
    let (init, thread) = match spawned {
        Ok(s) => s,
        Err(e) => {
            vfs.drop_tree(&root);
            return Err(e.to_string());
        }
    };
    let loaded = rx
        .recv()
        .unwrap_or_else(|_| Err("the container's init could not start".into()));
    if let Err(e) = loaded {
        let _ = gate.set(Gate::Waiting, Gate::Killed(SIGKILL));
        let _ = thread.join();
        vfs.drop_tree(&root);
        return Err(e);
    }
    if let Some(console) = &console {
        start_console(console, init.pid)?;
    }
    let container = Arc::new(PodContainer {
        index,
        root,
        gate,
        init,
        exit: Mutex::new(None),
        stopped: Condvar::new(),
    });
    let watched = container.clone();
    let watcher_kernel = kernel.clone();
    let watching = std::thread::Builder::new()
        .name("container".into())
        .spawn(move || {
            let status = thread
                .join()
                .ok()
                .and_then(Result::ok)
                .unwrap_or(ExitStatus::Exited(127));
            watched.target().signal(&watcher_kernel, SIGKILL, true);
            if let Some(console) = console {
                console.finish();
            }
            *watched.exit.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
            watched.stopped.notify_all();
        });
    if let Err(e) = watching {
        let _ = container.gate.set(Gate::Waiting, Gate::Killed(SIGKILL));
        container.target().signal(kernel, SIGKILL, true);
        vfs.drop_tree(&container.root);
        return Err(format!("no thread for the container: {e}"));
    }
    control
        .containers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, container);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_survive_encoding() {
        let exec = Request::Exec {
            process: ProcessSpec {
                argv: vec![b"sh".to_vec(), b"-c".to_vec(), b"exit 3".to_vec()],
                envp: vec![b"PATH=/bin".to_vec()],
                cwd: b"/tmp".to_vec(),
                uid: 1000,
                gid: 1000,
                groups: vec![10],
                ..ProcessSpec::default()
            },
            terminal: true,
            container: Some("c1".into()),
        };
        let create = Request::CreateContainer {
            id: "c1".into(),
            spec: ContainerSpec {
                mounts: MountConfig::default_tree(),
                process: ProcessSpec::default(),
                readonly_root: true,
                masked_paths: vec![b"/proc/kcore".to_vec()],
                readonly_paths: vec![b"/proc/sys".to_vec()],
                terminal: false,
                gofers: 2,
            },
        };
        for req in [
            exec,
            create,
            Request::Wait { pid: 7, tied: true },
            Request::Ps { container: None },
            Request::Signal {
                signo: 15,
                all: false,
                pid: Some(7),
                container: None,
            },
            Request::WaitContainer { id: "c1".into() },
            Request::DestroyContainer { id: "c1".into() },
        ] {
            let bytes = postcard::to_allocvec(&req).expect("encodes");
            assert_eq!(postcard::from_bytes::<Request>(&bytes).ok(), Some(req));
        }
        let reply = Reply::Processes(vec![ProcessInfo {
            pid: 1,
            ppid: 0,
            uid: 0,
            comm: "sh".into(),
            cmdline: vec!["sh".into()],
            state: 'S',
            start_ns: 1,
            utime_ns: 2,
            stime_ns: 3,
        }]);
        let bytes = postcard::to_allocvec(&reply).expect("encodes");
        assert_eq!(postcard::from_bytes::<Reply>(&bytes).ok(), Some(reply));
    }

    #[test]
    fn malformed_requests_do_not_decode() {
        let bytes = postcard::to_allocvec(&Request::Wait {
            pid: 7,
            tied: false,
        })
        .expect("encodes");
        assert!(postcard::from_bytes::<Request>(&bytes[..1]).is_err());
        assert!(postcard::from_bytes::<Request>(&[0xff, 0xff]).is_err());
        assert!(postcard::from_bytes::<Request>(&[]).is_err());
    }

    #[test]
    fn wait_statuses_as_linux_encodes_them() {
        assert_eq!(ExitStatus::Exited(3).wait_status(), 3 << 8);
        assert_eq!(ExitStatus::Exited(256 + 4).wait_status(), 4 << 8);
        assert_eq!(
            ExitStatus::Signaled {
                signo: 9,
                core: false
            }
            .wait_status(),
            9
        );
        assert_eq!(
            ExitStatus::Signaled {
                signo: 11,
                core: true
            }
            .wait_status(),
            11 | 0x80
        );
    }
}
