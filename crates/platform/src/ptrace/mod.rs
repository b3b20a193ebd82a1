//! The ptrace platform: every application thread is a stub thread traced by
//! the sentry thread that runs it, with PTRACE_SYSEMU so that no application
//! system call ever executes on the host.
//!
//! ptrace binds a tracee to one tracer *thread*, so each stub thread belongs
//! to exactly one sentry thread, and only that thread may run it or inject
//! system calls into it. New stub processes are cloned from the clean master
//! stub by a dedicated factory thread; the requesting sentry thread then
//! seizes the new process and owns it.

mod filter;
mod stub;
mod tracee;

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{mpsc, Arc, Mutex};

use nix::sys::ptrace::{self as ptrace_sys, Options};
use nix::unistd::{gettid, Pid};
use veil_abi::Errno;

use crate::{host, AddressSpace, Context, Event, Platform, PlatformError, Prot, Registers};
pub use filter::{stub_filter_rules, ArgCheck, BpfError, StubRule, StubSite, Verdict};
pub use stub::{StubLayout, STUB_MEMFD, TASK_SIZE};
use tracee::Tracee;

type NewStubReply = mpsc::Sender<Result<i32, PlatformError>>;

/// The ptrace platform.
pub struct PtracePlatform {
    layout: StubLayout,
    factory: Mutex<mpsc::Sender<NewStubReply>>,
}

impl PtracePlatform {
    /// Installs the stub and starts the factory thread and its master stub.
    /// `memfd` is the memory file every stub maps application memory from.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<PtracePlatform, PlatformError> {
        let layout = stub::install()?;
        let memfd = memfd.as_raw_fd();
        let (tx, rx) = mpsc::channel::<NewStubReply>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("stub-factory".into())
            .spawn(move || {
                let master = stub::unregister_rseq()
                    .and_then(|()| stub::fork_master(&layout, memfd))
                    .and_then(|pid| {
                        let t = Tracee::wait_initial_stop(Pid::from_raw(pid), &layout)?;
                        ptrace_sys::setoptions(t.tid, Options::PTRACE_O_EXITKILL)
                            .map_err(host("setoptions master"))?;
                        Ok(t)
                    });
                let master = match master {
                    Ok(m) => {
                        let _ = ready_tx.send(Ok(()));
                        m
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for reply in rx {
                    let _ = reply.send(master.clone_process());
                }
            })
            .map_err(|_| PlatformError::Host {
                op: "spawn stub factory",
                errno: nix::errno::Errno::EAGAIN,
            })?;
        ready_rx.recv().map_err(|_| PlatformError::StubDied {
            pid: 0,
            detail: "stub factory exited".into(),
        })??;
        Ok(PtracePlatform {
            layout,
            factory: Mutex::new(tx),
        })
    }

    /// Where the stub pages are (for tests and diagnostics).
    pub fn layout(&self) -> StubLayout {
        self.layout
    }

    fn new_stub_process(&self) -> Result<i32, PlatformError> {
        let (tx, rx) = mpsc::channel();
        let died = || PlatformError::StubDied {
            pid: 0,
            detail: "stub factory is gone".into(),
        };
        self.factory
            .lock()
            .map_err(|_| died())?
            .send(tx)
            .map_err(|_| died())?;
        rx.recv().map_err(|_| died())?
    }
}

impl Platform for PtracePlatform {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn max_user_address(&self) -> u64 {
        self.layout.base
    }

    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>, PlatformError> {
        let pid = self.new_stub_process()?;
        let t = Tracee::seize(Pid::from_raw(pid), &self.layout)?;
        // The child was cloned without a parent-death signal; give it one now
        // so that it dies with the master even if this thread is stuck.
        let [option, signal] = filter::PDEATHSIG_ARGS;
        t.inject(nix::libc::SYS_prctl as u64, [option, signal, 0, 0, 0, 0])?;
        let mut threads = HashMap::new();
        threads.insert(gettid().as_raw(), Arc::new(t));
        Ok(Arc::new(PtraceAddressSpace {
            pid,
            layout: self.layout,
            threads: Mutex::new(threads),
        }))
    }

    fn new_context(&self) -> Box<dyn Context> {
        Box::new(PtraceContext)
    }
}

/// A stub process, and the stub threads in it keyed by their tracer.
pub struct PtraceAddressSpace {
    pid: i32,
    layout: StubLayout,
    /// Shared out of the map so that one thread running application code
    /// never holds up another.
    threads: Mutex<HashMap<i32, Arc<Tracee>>>,
}

impl PtraceAddressSpace {
    /// Runs `f` on the calling sentry thread's stub thread.
    fn with_thread<R>(
        &self,
        f: impl FnOnce(&Tracee) -> Result<R, PlatformError>,
    ) -> Result<R, PlatformError> {
        let me = gettid().as_raw();
        let t = self
            .threads
            .lock()
            .map_err(|_| PlatformError::NotOwner(me))?
            .get(&me)
            .cloned()
            .ok_or(PlatformError::NotOwner(me))?;
        f(&t)
    }

    fn inject_checked(
        &self,
        op: &'static str,
        nr: i64,
        args: [u64; 6],
    ) -> Result<(), PlatformError> {
        let ret = self.with_thread(|t| t.inject(nr as u64, args))?;
        Errno::from_return(ret)
            .map(drop)
            .map_err(|errno| PlatformError::Stub { op, errno })
    }

    /// The host PID of the stub process (for tests and diagnostics).
    pub fn stub_pid(&self) -> i32 {
        self.pid
    }
}

impl AddressSpace for PtraceAddressSpace {
    fn map(&self, addr: u64, len: u64, prot: Prot, offset: u64) -> Result<(), PlatformError> {
        let args = [
            addr,
            len,
            prot.0 as u64,
            filter::MMAP_FLAGS,
            STUB_MEMFD as u64,
            offset,
        ];
        let ret = self.with_thread(|t| t.inject(nix::libc::SYS_mmap as u64, args))?;
        match Errno::from_return(ret) {
            Ok(a) if a == addr => Ok(()),
            Ok(_) => Err(PlatformError::Stub {
                op: "mmap",
                errno: Errno::EFAULT,
            }),
            Err(errno) => Err(PlatformError::Stub { op: "mmap", errno }),
        }
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<(), PlatformError> {
        self.inject_checked("munmap", nix::libc::SYS_munmap, [addr, len, 0, 0, 0, 0])
    }

    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<(), PlatformError> {
        self.inject_checked(
            "mprotect",
            nix::libc::SYS_mprotect,
            [addr, len, prot.0 as u64, 0, 0, 0],
        )
    }

    fn spawn_thread(&self) -> Result<u64, PlatformError> {
        let tid = self.with_thread(Tracee::clone_thread)?;
        Ok(tid as u64)
    }

    fn adopt_thread(&self, token: u64) -> Result<(), PlatformError> {
        let t = Tracee::seize(Pid::from_raw(token as i32), &self.layout)?;
        let me = gettid().as_raw();
        self.threads
            .lock()
            .map_err(|_| PlatformError::NotOwner(me))?
            .insert(me, Arc::new(t));
        Ok(())
    }

    fn exit_thread(&self) {
        let me = gettid().as_raw();
        let t = self.threads.lock().ok().and_then(|mut th| th.remove(&me));
        if let Some(t) = t {
            t.exit_thread();
        }
    }

    fn interrupter(&self) -> Option<Arc<dyn crate::Interrupt>> {
        let me = gettid().as_raw();
        let threads = self.threads.lock().ok()?;
        let t = threads.get(&me)?;
        Some(Arc::new(StubKick {
            pid: self.pid,
            tid: t.tid.as_raw(),
        }))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Interrupts a stub thread with a host signal: it stops for its tracer,
/// which suppresses the signal and looks for sandbox signals to deliver.
struct StubKick {
    pid: i32,
    tid: i32,
}

impl crate::Interrupt for StubKick {
    fn interrupt(&self) {
        // SAFETY: tgkill only sends a signal; a stale pair fails with ESRCH.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_tgkill,
                self.pid,
                self.tid,
                nix::libc::SIGCHLD,
            );
        }
    }
}

impl Drop for PtraceAddressSpace {
    fn drop(&mut self) {
        // Killing the process ends every stub thread in it; the owning
        // tracer reaps what it can, the master's SIG_IGN reaps the rest.
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
        if let Ok(threads) = self.threads.get_mut() {
            if let Some(t) = threads.get(&gettid().as_raw()) {
                t.reap();
            }
        }
    }
}

/// Per-thread state of the ptrace platform: the stub thread itself holds the
/// registers between switches, so there is nothing to keep here yet.
pub struct PtraceContext;

impl Context for PtraceContext {
    fn switch(
        &mut self,
        space: &dyn AddressSpace,
        regs: &mut Registers,
    ) -> Result<Event, PlatformError> {
        ptrace_space(space)?.with_thread(|t| t.run(regs))
    }

    fn fp_state(&mut self, space: &dyn AddressSpace) -> Result<crate::FpState, PlatformError> {
        ptrace_space(space)?.with_thread(Tracee::fp_state)
    }

    fn set_fp_state(
        &mut self,
        space: &dyn AddressSpace,
        fp: &crate::FpState,
    ) -> Result<(), PlatformError> {
        ptrace_space(space)?.with_thread(|t| t.set_fp_state(fp))
    }
}

fn ptrace_space(space: &dyn AddressSpace) -> Result<&PtraceAddressSpace, PlatformError> {
    space
        .as_any()
        .downcast_ref::<PtraceAddressSpace>()
        .ok_or(PlatformError::NotOwner(gettid().as_raw()))
}
