//! The control socket: how `veil start`, `kill`, `exec` and `ps` reach a
//! sandbox that `veil create` started. One postcard message per
//! SOCK_SEQPACKET packet, a request and then its reply; `Exec` carries the
//! new process's stdin, stdout and stderr with SCM_RIGHTS, or the one host
//! terminal that becomes its console.
//!
//! Every request is validated: a malformed one gets an error reply, never
//! a crash. The CLI side trusts nothing it reads back either: replies are
//! bounded and only ever shown.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::io::Errno as HostErrno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendFlags,
};
use serde::{Deserialize, Serialize};

use veil_vfs::pty::JobState;
use veil_vfs::{FdTable, DEFAULT_NOFILE};

use crate::boot::{fs_context, spawn_process, stdio_table, ProcessSpec, TTY_GID};
use crate::console::Console;
use crate::kernel::{Kernel, INIT_PID};
use crate::signal::{default_action, DefaultAction, SigInfo};
use crate::task::{ExitStatus, ThreadGroup};

/// The largest request or reply.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The descriptors an `Exec` request carries: stdin, stdout, stderr.
pub const EXEC_FDS: usize = 3;
/// The most of a process's command line `Ps` reports, in bytes.
const MAX_CMDLINE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Let init run (`veil start`).
    Start,
    /// Send `signo` to init, to an exec'd process (`pid`), or with `all`
    /// to every process, as from outside the sandbox's PID namespace.
    Signal {
        signo: i32,
        all: bool,
        pid: Option<i32>,
    },
    /// Start another process in the sandbox, with the [`EXEC_FDS`]
    /// descriptors sent along as its stdio, or with `terminal` the one host
    /// terminal sent along as its console (its controlling terminal, in a
    /// session of its own). Replies with its pid.
    Exec {
        process: ProcessSpec,
        terminal: bool,
    },
    /// Wait for an exec'd process to exit; replies with its status, which
    /// is kept until a Wait has returned it.
    Wait { pid: i32 },
    /// List the processes.
    Ps,
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
    gate: Arc<StartGate>,
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
                Ok(req) => handle(control, req, fds),
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
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(EXEC_FDS))];
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
    // Descriptors past the buffer are closed, and Exec then finds too few.
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

fn handle(control: &Control, req: Request, fds: Vec<OwnedFd>) -> Reply {
    let (kernel, gate) = (&control.kernel, &control.gate);
    match req {
        Request::Exec { terminal, .. } if fds.len() != exec_fds(terminal) => Reply::Error(format!(
            "exec needs {} descriptors, got {}",
            exec_fds(terminal),
            fds.len()
        )),
        _ if !fds.is_empty() && !matches!(req, Request::Exec { .. }) => {
            Reply::Error("unexpected descriptors".into())
        }
        Request::Start => match gate.set(Gate::Waiting, Gate::Started) {
            Ok(()) => Reply::Ok,
            Err(Gate::Started) => Reply::Error("cannot start an already running container".into()),
            Err(_) => Reply::Error("cannot start a container that has stopped".into()),
        },
        Request::Signal { signo, .. } if !(1..=64).contains(&signo) => {
            Reply::Error(format!("invalid signal {signo}"))
        }
        Request::Signal {
            signo,
            pid: Some(pid),
            ..
        } => {
            let tg = control.exec(pid);
            match tg.filter(|tg| {
                tg.exit
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
            }) {
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
        } => {
            let waiting = gate.get() == Gate::Waiting;
            if waiting {
                // Nothing of init runs yet: only a signal that would end
                // it matters, and it ends the sandbox.
                let ends = !matches!(
                    default_action(signo),
                    DefaultAction::Ignore | DefaultAction::Stop | DefaultAction::Continue
                );
                if ends {
                    let _ = gate.set(Gate::Waiting, Gate::Killed(signo));
                }
            }
            let targets: Vec<_> = kernel
                .processes()
                .iter()
                .filter(|(&pid, _)| if pid == INIT_PID { !waiting } else { all })
                .map(|(_, tg)| tg.clone())
                .collect();
            for tg in targets {
                kernel.signal_process(&tg, SigInfo::user(signo, 0, 0));
            }
            Reply::Ok
        }
        Request::Exec { process, terminal } => match exec(control, process, terminal, fds) {
            Ok(pid) => Reply::Pid(pid),
            Err(msg) => Reply::Error(msg),
        },
        Request::Wait { pid } => {
            let Some(tg) = control.exec(pid) else {
                return Reply::Error(format!("no process {pid} to wait for"));
            };
            let status = crate::boot::wait_for_exit(kernel, &tg);
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
        Request::Ps => {
            let procs: Vec<_> = kernel.processes().values().cloned().collect();
            let mut list: Vec<_> = procs
                .iter()
                .map(|tg| crate::procfs::process_info(kernel, tg))
                .collect();
            list.sort_by_key(|p| p.pid);
            Reply::Processes(list)
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
}

/// How many descriptors an `Exec` request carries.
fn exec_fds(terminal: bool) -> usize {
    if terminal {
        1
    } else {
        EXEC_FDS
    }
}

/// Starts an exec'd process: loaded before the reply, so that a missing
/// program is the request's error, as runc's exec reports it.
fn exec(
    control: &Control,
    process: ProcessSpec,
    terminal: bool,
    mut fds: Vec<OwnedFd>,
) -> Result<i32, String> {
    if process.argv.is_empty() {
        return Err("args must not be empty".into());
    }
    let kernel = &control.kernel;
    let errno_text = |e: veil_abi::Errno| std::io::Error::from_raw_os_error(e.raw()).to_string();
    let fs = fs_context(&kernel.vfs, &process).map_err(|e| {
        format!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            String::from_utf8_lossy(&process.cwd),
            errno_text(e)
        )
    })?;
    let (table, console) = if terminal {
        let host = fds.pop().ok_or("bad descriptors")?;
        let (console, slave) = Console::open(&kernel.vfs, host, (process.uid, TTY_GID))
            .map_err(|e| format!("console: {}", errno_text(e)))?;
        let table = Arc::new(FdTable::new());
        for fd in 0..3 {
            table
                .insert_at(fd, slave.clone(), false, DEFAULT_NOFILE as usize)
                .map_err(|e| format!("console: {}", errno_text(e)))?;
        }
        (table, Some(console))
    } else {
        let stdio: [OwnedFd; EXEC_FDS] =
            fds.try_into().map_err(|_| "bad descriptors".to_string())?;
        let table = stdio_table(stdio).map_err(|e| format!("stdio: {}", errno_text(e)))?;
        (table, None)
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // The process runs only once its console is its session's: its pid
    // is known only after the spawn.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (tg, _detached) = spawn_process(kernel, process, table, fs, move |loaded| {
        let _ = tx.send(loaded.map_err(|(path, errno)| {
            format!("{}: {}", String::from_utf8_lossy(path), errno_text(errno))
        }));
        go_rx.recv().map_err(|_| ExitStatus::Exited(127))
    })
    .map_err(|e| e.to_string())?;
    let loaded = match rx.recv() {
        Ok(r) => r,
        Err(_) => Err("the process could not start (see --debug-log)".into()),
    };
    loaded?;
    if let Some(console) = console {
        // A session of its own (a new process's sid is its pid), with the
        // console as its controlling terminal.
        *console.pty().control().lock() = JobState {
            session: Some(tg.pid),
            foreground: tg.pid,
        };
        console
            .start()
            .map_err(|e| format!("console threads: {e}"))?;
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
        };
        for req in [
            exec,
            Request::Wait { pid: 7 },
            Request::Ps,
            Request::Signal {
                signo: 15,
                all: false,
                pid: Some(7),
            },
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
        let bytes = postcard::to_allocvec(&Request::Wait { pid: 7 }).expect("encodes");
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
