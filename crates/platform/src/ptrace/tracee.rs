//! One traced stub thread: running application code under PTRACE_SYSEMU and
//! injecting system calls at the stub's known instructions.

use nix::sys::ptrace::{self as ptrace_sys, Options};
use nix::unistd::Pid;

use super::filter::{CLONE_PROCESS_FLAGS, CLONE_THREAD_FLAGS};
use super::stub::StubLayout;
use crate::{host, Event, FaultInfo, PlatformError, Registers};

const SIGTRAP: i32 = nix::libc::SIGTRAP;
const PTRACE_EVENT_STOP: i32 = 128;

/// What `waitpid` reported about a stopped or dead tracee.
enum Stop {
    /// A syscall-enter stop (SIGTRAP | 0x80 thanks to PTRACE_O_TRACESYSGOOD).
    Syscall,
    /// A signal-delivery stop.
    Signal(i32),
    /// A ptrace event stop (PTRACE_INTERRUPT, group stop, ...).
    Event,
}

pub(super) struct Tracee {
    pub tid: Pid,
    layout: StubLayout,
    /// Segment registers and flags of a clean stub thread, the base of every injection.
    template: Registers,
}

impl Tracee {
    /// Waits for the master stub's first stop (its `int3` after initialisation).
    pub fn wait_initial_stop(tid: Pid, layout: &StubLayout) -> Result<Tracee, PlatformError> {
        let stop = wait(tid).map_err(|e| match e {
            PlatformError::StubDied { pid, detail } => PlatformError::StubDied {
                pid,
                detail: format!(
                    "master stub initialisation: {detail} (an exit status is the errno \
                     of its failed prctl or seccomp)"
                ),
            },
            e => e,
        })?;
        match stop {
            Stop::Signal(SIGTRAP) => Tracee::new(tid, layout),
            _ => Err(died(tid, "unexpected first stop of the master stub")),
        }
    }

    /// Attaches to a freshly cloned stub process parked in `pause()`.
    pub fn seize(tid: Pid, layout: &StubLayout) -> Result<Tracee, PlatformError> {
        let options = Options::PTRACE_O_EXITKILL | Options::PTRACE_O_TRACESYSGOOD;
        ptrace_sys::seize(tid, options).map_err(host("PTRACE_SEIZE"))?;
        ptrace_sys::interrupt(tid).map_err(host("PTRACE_INTERRUPT"))?;
        loop {
            match wait(tid)? {
                Stop::Event => return Tracee::new(tid, layout),
                // A signal that raced the interrupt: suppress it and keep waiting.
                Stop::Signal(_) | Stop::Syscall => {
                    ptrace_sys::cont(tid, None).map_err(host("PTRACE_CONT"))?;
                }
            }
        }
    }

    fn new(tid: Pid, layout: &StubLayout) -> Result<Tracee, PlatformError> {
        let regs = get_regs(tid)?;
        let template = Registers {
            cs: regs.cs,
            ss: regs.ss,
            ds: regs.ds,
            es: regs.es,
            eflags: regs.eflags,
            orig_rax: u64::MAX,
            ..Registers::default()
        };
        Ok(Tracee {
            tid,
            layout: *layout,
            template,
        })
    }

    /// Executes one system call in the stub thread and returns its raw result.
    pub fn inject(&self, nr: u64, args: [u64; 6]) -> Result<u64, PlatformError> {
        self.call_at(self.layout.syscall_site, nr, args)
    }

    /// Clones a new stub process from this (master) stub; returns its PID.
    pub fn clone_process(&self) -> Result<i32, PlatformError> {
        let ret = self.call_at(
            self.layout.clone_site,
            nix::libc::SYS_clone as u64,
            [CLONE_PROCESS_FLAGS, 0, 0, 0, 0, 0],
        )?;
        veil_abi::Errno::from_return(ret)
            .map(|pid| pid as i32)
            .map_err(|errno| PlatformError::Stub { op: "clone", errno })
    }

    /// Clones a new thread in this stub's process; it parks in pause().
    pub fn clone_thread(&self) -> Result<i32, PlatformError> {
        let ret = self.call_at(
            self.layout.clone_site,
            nix::libc::SYS_clone as u64,
            [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0],
        )?;
        veil_abi::Errno::from_return(ret)
            .map(|tid| tid as i32)
            .map_err(|errno| PlatformError::Stub {
                op: "clone thread",
                errno,
            })
    }

    /// Ends this stub thread alone, with an injected exit(2).
    pub fn exit_thread(&self) {
        // The thread never comes back from exit: the wait reports its death.
        let _ = self.call_at(self.layout.syscall_site, nix::libc::SYS_exit as u64, [0; 6]);
    }

    fn call_at(&self, site: u64, nr: u64, args: [u64; 6]) -> Result<u64, PlatformError> {
        let regs = Registers {
            rip: site,
            rax: nr,
            rdi: args[0],
            rsi: args[1],
            rdx: args[2],
            r10: args[3],
            r8: args[4],
            r9: args[5],
            ..self.template
        };
        set_regs(self.tid, &regs)?;
        ptrace_sys::cont(self.tid, None).map_err(host("PTRACE_CONT"))?;
        loop {
            match wait(self.tid)? {
                Stop::Signal(SIGTRAP) => return Ok(get_regs(self.tid)?.rax),
                // Anything else (a stray signal, a group stop) is suppressed.
                Stop::Signal(_) | Stop::Event | Stop::Syscall => {
                    ptrace_sys::cont(self.tid, None).map_err(host("PTRACE_CONT"))?;
                }
            }
        }
    }

    /// Runs application code with `regs` until the next event.
    pub fn run(&self, regs: &mut Registers) -> Result<Event, PlatformError> {
        // orig_rax = -1 keeps the kernel from "restarting" an interrupted
        // host syscall on our way back into application code.
        regs.orig_rax = u64::MAX;
        set_regs(self.tid, regs)?;
        loop {
            ptrace_sys::sysemu(self.tid, None).map_err(host("PTRACE_SYSEMU"))?;
            let stop = wait(self.tid)?;
            match stop {
                Stop::Event => continue,
                Stop::Syscall => {
                    *regs = get_regs(self.tid)?;
                    return Ok(Event::Syscall);
                }
                Stop::Signal(nix::libc::SIGSYS) => {
                    *regs = get_regs(self.tid)?;
                    return trapped_syscall(self.tid, regs);
                }
                Stop::Signal(signo) => {
                    *regs = get_regs(self.tid)?;
                    return classify_signal(self.tid, signo);
                }
            }
        }
    }

    /// The thread's FP/vector state: the whole XSAVE area where the CPU has
    /// one (PTRACE_GETREGSET NT_X86_XSTATE), the FXSAVE area otherwise.
    pub fn fp_state(&self) -> Result<crate::FpState, PlatformError> {
        match crate::xsave_layout() {
            Some((size, _)) => {
                let mut buf = vec![0u8; size];
                self.regset(nix::libc::PTRACE_GETREGSET, &mut buf, "PTRACE_GETREGSET")?;
                Ok(crate::FpState(buf))
            }
            None => {
                let mut buf = vec![0u8; crate::FXSAVE_SIZE];
                self.fpregs(nix::libc::PTRACE_GETFPREGS, &mut buf, "PTRACE_GETFPREGS")?;
                Ok(crate::FpState(buf))
            }
        }
    }

    /// Loads FP/vector state: a full XSAVE area, or an FXSAVE area alone
    /// (the extended components then keep their values).
    pub fn set_fp_state(&self, fp: &crate::FpState) -> Result<(), PlatformError> {
        let mut copy = fp.0.clone();
        if copy.len() < crate::FXSAVE_SIZE {
            return Err(PlatformError::BadState("FP state shorter than FXSAVE"));
        }
        // The kernel rejects reserved MXCSR bits; clear them rather than fail.
        let mxcsr = u32::from_le_bytes([copy[24], copy[25], copy[26], copy[27]]) & 0xffff;
        copy[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        match crate::xsave_layout() {
            Some((size, _)) if copy.len() == size => {
                self.regset(nix::libc::PTRACE_SETREGSET, &mut copy, "PTRACE_SETREGSET")
            }
            _ => {
                copy.truncate(crate::FXSAVE_SIZE);
                self.fpregs(nix::libc::PTRACE_SETFPREGS, &mut copy, "PTRACE_SETFPREGS")
            }
        }
    }

    /// PTRACE_GETFPREGS or PTRACE_SETFPREGS on a 512-byte FXSAVE buffer.
    fn fpregs(
        &self,
        request: nix::libc::c_uint,
        buf: &mut [u8],
        op: &'static str,
    ) -> Result<(), PlatformError> {
        if buf.len() != crate::FXSAVE_SIZE {
            return Err(PlatformError::BadState("FXSAVE area of the wrong size"));
        }
        // SAFETY: both requests access exactly one 512-byte
        // `user_fpregs_struct` at the pointer, and `buf` is that long and
        // exclusively borrowed for the call.
        let r = unsafe { nix::libc::ptrace(request, self.tid.as_raw(), 0, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(host(op)(nix::errno::Errno::last()));
        }
        Ok(())
    }

    /// PTRACE_GETREGSET or PTRACE_SETREGSET of NT_X86_XSTATE over `buf`.
    fn regset(
        &self,
        request: nix::libc::c_uint,
        buf: &mut [u8],
        op: &'static str,
    ) -> Result<(), PlatformError> {
        const NT_X86_XSTATE: usize = 0x202;
        let mut iov = nix::libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: the kernel reads or writes at most `iov_len` bytes at
        // `iov_base`, which is `buf`, exclusively borrowed for the call;
        // `iov` itself lives across it.
        let r = unsafe {
            nix::libc::ptrace(
                request,
                self.tid.as_raw(),
                NT_X86_XSTATE,
                std::ptr::from_mut(&mut iov),
            )
        };
        if r < 0 {
            return Err(host(op)(nix::errno::Errno::last()));
        }
        Ok(())
    }

    /// Collects the exit of a killed stub thread.
    pub fn reap(&self) {
        let mut status = 0;
        // SAFETY: waitpid only writes the status integer we pass.
        unsafe { nix::libc::waitpid(self.tid.as_raw(), &mut status, nix::libc::__WALL) };
    }
}

/// A SIGSYS from the stub's seccomp filter is a vsyscall, which the kernel
/// has already returned from: the sentry serves it as a system call made
/// at the caller.
fn trapped_syscall(tid: Pid, regs: &mut Registers) -> Result<Event, PlatformError> {
    const SYS_SECCOMP: i32 = 1;
    let info = ptrace_sys::getsiginfo(tid).map_err(host("PTRACE_GETSIGINFO"))?;
    if info.si_code != SYS_SECCOMP {
        return Ok(Event::Signal(nix::libc::SIGSYS));
    }
    // SAFETY: for SYS_SECCOMP the kernel fills the _sigsys member, whose
    // call address sits where si_addr does.
    let call_addr = unsafe { info.si_addr() } as u64;
    match super::filter::trapped_call(call_addr) {
        Some(sysno) => {
            regs.orig_rax = sysno.id() as u64;
            Ok(Event::Syscall)
        }
        None => Ok(Event::Signal(nix::libc::SIGSYS)),
    }
}

fn classify_signal(tid: Pid, signo: i32) -> Result<Event, PlatformError> {
    use nix::libc::{SIGBUS, SIGFPE, SIGILL, SIGSEGV};
    if !matches!(signo, SIGSEGV | SIGBUS | SIGFPE | SIGILL | SIGTRAP) {
        return Ok(Event::Signal(signo));
    }
    let info = ptrace_sys::getsiginfo(tid).map_err(host("PTRACE_GETSIGINFO"))?;
    // si_code <= 0 means another process sent it; only kernel-generated
    // signals are faults of the application's own making.
    if info.si_code <= 0 {
        return Ok(Event::Signal(signo));
    }
    // SAFETY: for kernel-generated SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP the
    // kernel fills the si_addr member of the union.
    let addr = unsafe { info.si_addr() } as u64;
    Ok(Event::Fault(FaultInfo {
        signo,
        code: info.si_code,
        addr,
    }))
}

fn wait(tid: Pid) -> Result<Stop, PlatformError> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid only writes the status integer we pass.
        let r = unsafe { nix::libc::waitpid(tid.as_raw(), &mut status, nix::libc::__WALL) };
        if r >= 0 {
            break;
        }
        let e = nix::errno::Errno::last();
        if e != nix::errno::Errno::EINTR {
            return Err(host("waitpid stub")(e));
        }
    }
    if nix::libc::WIFEXITED(status) {
        return Err(died(
            tid,
            &format!("exited with status {}", nix::libc::WEXITSTATUS(status)),
        ));
    }
    if nix::libc::WIFSIGNALED(status) {
        return Err(died(
            tid,
            &format!("killed by signal {}", nix::libc::WTERMSIG(status)),
        ));
    }
    let sig = nix::libc::WSTOPSIG(status);
    if status >> 16 == PTRACE_EVENT_STOP || status >> 16 != 0 {
        return Ok(Stop::Event);
    }
    if sig == SIGTRAP | 0x80 {
        return Ok(Stop::Syscall);
    }
    Ok(Stop::Signal(sig))
}

fn died(tid: Pid, detail: &str) -> PlatformError {
    PlatformError::StubDied {
        pid: tid.as_raw(),
        detail: detail.to_string(),
    }
}

/// Copies between `Registers` and the identical `user_regs_struct`.
macro_rules! convert_regs {
    ($src:expr, $dst:ident) => {{
        let s = $src;
        $dst {
            r15: s.r15,
            r14: s.r14,
            r13: s.r13,
            r12: s.r12,
            rbp: s.rbp,
            rbx: s.rbx,
            r11: s.r11,
            r10: s.r10,
            r9: s.r9,
            r8: s.r8,
            rax: s.rax,
            rcx: s.rcx,
            rdx: s.rdx,
            rsi: s.rsi,
            rdi: s.rdi,
            orig_rax: s.orig_rax,
            rip: s.rip,
            cs: s.cs,
            eflags: s.eflags,
            rsp: s.rsp,
            ss: s.ss,
            fs_base: s.fs_base,
            gs_base: s.gs_base,
            ds: s.ds,
            es: s.es,
            fs: s.fs,
            gs: s.gs,
        }
    }};
}

fn get_regs(tid: Pid) -> Result<Registers, PlatformError> {
    let r = ptrace_sys::getregs(tid).map_err(host("PTRACE_GETREGS"))?;
    Ok(convert_regs!(r, Registers))
}

fn set_regs(tid: Pid, regs: &Registers) -> Result<(), PlatformError> {
    use nix::libc::user_regs_struct;
    ptrace_sys::setregs(tid, convert_regs!(regs, user_regs_struct)).map_err(host("PTRACE_SETREGS"))
}
