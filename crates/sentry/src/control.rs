//! The control socket: how `veil start` and `veil kill` reach a sandbox
//! that `veil create` left waiting. One postcard message per
//! SOCK_SEQPACKET packet, a request and then its reply.
//!
//! The CLI side trusts nothing it reads back either: replies are bounded
//! and only ever shown.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::kernel::{Kernel, INIT_PID};
use crate::signal::{default_action, DefaultAction, SigInfo};

/// The largest request or reply.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Let init run (`veil start`).
    Start,
    /// Send `signo` to init, or with `all` to every process, as from
    /// outside the sandbox's PID namespace.
    Signal { signo: i32, all: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Error(String),
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

/// Accepts connections on `listener` for the life of the sandbox, each
/// served on a thread of its own.
pub fn serve(kernel: Arc<Kernel>, gate: Arc<StartGate>, listener: OwnedFd) {
    loop {
        let conn = match rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC) {
            Ok(conn) => conn,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => continue,
            Err(e) => {
                tracing::error!("control socket: {e}");
                return;
            }
        };
        let (kernel, gate) = (kernel.clone(), gate.clone());
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve_connection(&kernel, &gate, &conn));
        if let Err(e) = spawned {
            tracing::error!("control socket: no thread for a connection: {e}");
        }
    }
}

fn serve_connection(kernel: &Kernel, gate: &StartGate, conn: &OwnedFd) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = match rustix::io::read(conn, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        };
        let reply = match postcard::from_bytes::<Request>(&buf[..n]) {
            Ok(req) => handle(kernel, gate, req),
            Err(e) => Reply::Error(format!("bad request: {e}")),
        };
        let Ok(bytes) = postcard::to_allocvec(&reply) else {
            return;
        };
        if rustix::io::write(conn, &bytes).is_err() {
            return;
        }
    }
}

fn handle(kernel: &Kernel, gate: &StartGate, req: Request) -> Reply {
    match req {
        Request::Start => match gate.set(Gate::Waiting, Gate::Started) {
            Ok(()) => Reply::Ok,
            Err(Gate::Started) => Reply::Error("cannot start an already running container".into()),
            Err(_) => Reply::Error("cannot start a container that has stopped".into()),
        },
        Request::Signal { signo, .. } if !(1..=64).contains(&signo) => {
            Reply::Error(format!("invalid signal {signo}"))
        }
        Request::Signal { signo, all } => {
            if gate.get() == Gate::Waiting {
                // Nothing of the application runs yet: only a signal that
                // would end init matters, and it ends the sandbox.
                let ends = !matches!(
                    default_action(signo),
                    DefaultAction::Ignore | DefaultAction::Stop | DefaultAction::Continue
                );
                if ends {
                    let _ = gate.set(Gate::Waiting, Gate::Killed(signo));
                }
                return Reply::Ok;
            }
            let targets: Vec<_> = kernel
                .processes()
                .iter()
                .filter(|(&pid, _)| all || pid == INIT_PID)
                .map(|(_, tg)| tg.clone())
                .collect();
            for tg in targets {
                kernel.signal_process(&tg, SigInfo::user(signo, 0, 0));
            }
            Reply::Ok
        }
    }
}
