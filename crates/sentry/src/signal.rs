//! Signal delivery: pending signals, default actions, and the x86-64
//! `rt_sigframe` a handler runs on (and that rt_sigreturn unwinds).

use veil_abi::{Errno, KernelSigaction, StackT};
use veil_platform::{FpState, Registers};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use std::sync::{Arc, Mutex, PoisonError};

use veil_platform::Interrupt;
use veil_vfs::wait::Waiter;

use veil_vfs::Creds;

use crate::task::{CpuTime, SchedAttr, Task, NSIG};

pub const SIGKILL: i32 = 9;
pub const SIGSEGV: i32 = 11;
pub const SIGSTOP: i32 = 19;
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SA_SIGINFO: u64 = 0x4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
/// Signals that can never be blocked, caught or ignored.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);
/// The red zone below the interrupted stack pointer that a frame must skip.
const RED_ZONE: u64 = 128;
/// uc_flags Linux sets on x86-64: UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS.
const UC_FLAGS: u64 = 0x6;
/// EFLAGS bits user space may change through sigreturn (Linux's FIX_EFLAGS).
const FIX_EFLAGS: u64 = 0x0025_4dd5;
const EFLAGS_TF: u64 = 0x100;
const EFLAGS_DF: u64 = 0x400;

pub const fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// A `siginfo_t`: signo, errno, code, then a union.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    _pad: i32,
    /// `si_addr` for faults; `si_pid` and `si_uid` (two i32) for kill.
    pub fields: [u64; 14],
}

impl SigInfo {
    fn new(signo: i32, code: i32, first: u64, second: u64) -> SigInfo {
        let mut fields = [0; 14];
        fields[0] = first;
        fields[1] = second;
        SigInfo {
            signo,
            errno: 0,
            code,
            _pad: 0,
            fields,
        }
    }

    /// A signal sent by kill(2) from `pid` running as `uid` (SI_USER).
    pub fn user(signo: i32, pid: i32, uid: u32) -> SigInfo {
        SigInfo::new(signo, 0, u64::from(pid as u32) | (u64::from(uid) << 32), 0)
    }

    /// SIGCHLD (or another exit signal) for a child's exit: CLD_EXITED with
    /// its code, or CLD_KILLED/CLD_DUMPED with its signal.
    pub fn child(signo: i32, pid: i32, status: crate::task::ExitStatus) -> SigInfo {
        use crate::task::ExitStatus;
        let (code, value) = match status {
            ExitStatus::Exited(c) => (1, c),
            ExitStatus::Signaled { signo, core } => (if core { 3 } else { 2 }, signo),
        };
        SigInfo::new(signo, code, u64::from(pid as u32), u64::from(value as u32))
    }

    /// A fault at `addr` with the kernel's `code` (SEGV_MAPERR, ...).
    pub fn fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        SigInfo::new(signo, code, addr, 0)
    }
}

/// `struct sigcontext` of x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct Sigcontext {
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rax: u64,
    rcx: u64,
    rsp: u64,
    rip: u64,
    eflags: u64,
    /// cs, gs, fs, ss as four u16.
    segments: u64,
    err: u64,
    trapno: u64,
    oldmask: u64,
    cr2: u64,
    fpstate: u64,
    reserved: [u64; 8],
}

/// `struct ucontext` as the kernel lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct Ucontext {
    flags: u64,
    link: u64,
    stack: StackT,
    mcontext: Sigcontext,
    sigmask: u64,
}

/// `struct rt_sigframe`: the handler's return address, then its context.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct RtSigframe {
    pretcode: u64,
    uc: Ucontext,
    info: SigInfo,
}

const SA_RESTART: u64 = 0x1000_0000;

#[derive(Default)]
struct Pending {
    bits: u64,
    infos: Vec<SigInfo>,
}

/// The part of a task other sentry threads reach: its pending signals and
/// the means to wake it, wherever it is, and what other tasks may read or
/// change of it (credentials, scheduling, CPU time).
pub struct TaskShared {
    pending: Mutex<Pending>,
    /// What the task waits on while blocked in the sentry.
    pub waiter: Arc<Waiter>,
    /// Stops the task's application thread while it runs.
    interrupter: Mutex<Option<Arc<dyn Interrupt>>>,
    /// A copy of the task's credentials, which only the task changes.
    creds: Mutex<Arc<Creds>>,
    pub sched: Mutex<SchedAttr>,
    pub cpu: CpuTime,
}

impl TaskShared {
    pub fn new(creds: Arc<Creds>) -> TaskShared {
        TaskShared {
            pending: Mutex::default(),
            waiter: Waiter::new(),
            interrupter: Mutex::new(None),
            creds: Mutex::new(creds),
            sched: Mutex::default(),
            cpu: CpuTime::default(),
        }
    }

    pub fn creds(&self) -> Arc<Creds> {
        self.creds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_creds(&self, creds: Arc<Creds>) {
        *self.creds.lock().unwrap_or_else(PoisonError::into_inner) = creds;
    }

    /// Queues a signal (standard signals do not queue twice) and makes the
    /// task notice it.
    pub fn send(&self, info: SigInfo) {
        {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let b = bit(info.signo);
            if p.bits & b != 0 && info.signo < 32 {
                return;
            }
            p.bits |= b;
            p.infos.push(info);
        }
        self.waiter.wake();
        if let Some(i) = self
            .interrupter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            i.interrupt();
        }
    }

    pub fn set_interrupter(&self, i: Option<Arc<dyn Interrupt>>) {
        *self
            .interrupter
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = i;
    }

    pub fn pending_bits(&self) -> u64 {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bits
    }

    /// Removes the lowest pending signal not in `mask`.
    fn take(&self, mask: u64) -> Option<SigInfo> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let ready = p.bits & !(mask & !UNBLOCKABLE);
        if ready == 0 {
            return None;
        }
        let sig = ready.trailing_zeros() as i32 + 1;
        let pos = p.infos.iter().position(|i| i.signo == sig)?;
        let info = p.infos.remove(pos);
        if !p.infos.iter().any(|i| i.signo == sig) {
            p.bits &= !bit(sig);
        }
        Some(info)
    }
}

/// What a signal does when it is not caught.
fn default_is_ignore(sig: i32) -> bool {
    // SIGCHLD, SIGCONT, SIGURG, SIGWINCH; stop signals until job control.
    matches!(sig, 17 | 18 | 23 | 28 | 19..=22)
}

impl Task {
    /// Queues `info` for this task.
    pub fn send_signal(&mut self, info: SigInfo) {
        self.shared.send(info);
    }

    /// Whether a signal the task does not block is pending.
    pub fn signal_pending(&self) -> bool {
        self.shared.pending_bits() & !(self.signal_mask & !UNBLOCKABLE) != 0
    }

    /// Blocks in the sentry until woken (readiness, a child's exit, a
    /// signal) or until `timeout`; returns true if a signal interrupts.
    pub fn block(&self, timeout: Option<std::time::Duration>) -> bool {
        if self.signal_pending() {
            return true;
        }
        // Time asleep is neither user nor system time.
        self.shared.cpu.leave_sys();
        self.shared.waiter.wait(timeout);
        self.shared.cpu.enter_sys();
        self.signal_pending()
    }

    fn action(&self, sig: i32) -> KernelSigaction {
        self.tg.sigactions.lock().unwrap_or_else(|p| p.into_inner())[sig as usize - 1]
    }

    /// Delivers a synchronous fault signal: caught if a handler is set and
    /// the signal is not blocked, otherwise fatal, as Linux's force_sig.
    pub fn force_signal(&mut self, info: SigInfo) {
        let act = self.action(info.signo);
        if act.handler <= SIG_IGN || self.signal_mask & bit(info.signo) != 0 {
            self.deliver_fatal(info.signo);
            return;
        }
        self.handle(info, act);
    }

    /// Delivers the lowest pending, unblocked signal, if any, before the
    /// task goes back to application code, and settles an interrupted
    /// system call: restarted, or failed with EINTR for a handler.
    pub fn deliver_pending(&mut self) {
        let restart = self.restart.take();
        while self.exit.is_none() {
            let Some(info) = self.shared.take(self.signal_mask) else {
                break;
            };
            let sig = info.signo;
            let act = self.action(sig);
            match act.handler {
                SIG_IGN if sig != SIGKILL && sig != SIGSTOP => {}
                SIG_DFL | SIG_IGN if default_is_ignore(sig) => {}
                SIG_DFL | SIG_IGN => self.deliver_fatal(sig),
                _ => {
                    self.settle_restart(restart, Some(&act));
                    self.handle(info, act);
                    return;
                }
            }
        }
        if self.exit.is_none() {
            self.settle_restart(restart, None);
            if let Some(mask) = self.saved_mask.take() {
                self.signal_mask = mask;
            }
        }
    }

    /// An interrupted syscall restarts unless a handler runs that asks for
    /// EINTR, as Linux's ERESTART* codes decide.
    fn settle_restart(&mut self, restart: Option<(u64, Errno)>, handler: Option<&KernelSigaction>) {
        let Some((nr, errno)) = restart else { return };
        let again = match handler {
            None => true,
            Some(act) => {
                errno == Errno::ERESTARTNOINTR
                    || (errno == Errno::ERESTARTSYS && act.flags & SA_RESTART != 0)
            }
        };
        if again {
            self.regs.rax = nr;
            self.regs.rip = self.regs.rip.wrapping_sub(2);
        } else {
            self.regs.rax = Errno::EINTR.as_return();
        }
    }

    /// Runs the handler of `act` for `info`: builds the frame and points the
    /// registers at the handler.
    fn handle(&mut self, info: SigInfo, act: KernelSigaction) {
        let sig = info.signo;
        if self.setup_frame(&info, &act).is_err() {
            // No room for a frame: Linux kills with SIGSEGV.
            self.deliver_fatal(SIGSEGV);
            return;
        }
        if act.flags & SA_RESETHAND != 0 {
            self.tg.sigactions.lock().unwrap_or_else(|p| p.into_inner())[sig as usize - 1] =
                KernelSigaction::default();
        }
        let mut block = act.mask;
        if act.flags & SA_NODEFER == 0 {
            block |= bit(sig);
        }
        self.signal_mask = (self.signal_mask | block) & !UNBLOCKABLE;
    }

    fn on_altstack(&self, sp: u64) -> bool {
        let s = &self.altstack;
        s.ss_flags & SS_DISABLE == 0 && sp > s.ss_sp && sp - s.ss_sp <= s.ss_size
    }

    fn setup_frame(&mut self, info: &SigInfo, act: &KernelSigaction) -> Result<(), Errno> {
        let fp = self.fp_state()?;
        let regs = self.regs;
        let use_altstack = act.flags & SA_ONSTACK != 0
            && self.altstack.ss_flags & SS_DISABLE == 0
            && !self.on_altstack(regs.rsp);
        let mut sp = if use_altstack {
            self.altstack
                .ss_sp
                .checked_add(self.altstack.ss_size)
                .ok_or(Errno::EFAULT)?
        } else {
            regs.rsp.checked_sub(RED_ZONE).ok_or(Errno::EFAULT)?
        };
        sp = sp
            .checked_sub(size_of::<FpState>() as u64)
            .ok_or(Errno::EFAULT)?
            & !63;
        let fp_addr = sp;
        sp = (sp
            .checked_sub(size_of::<RtSigframe>() as u64)
            .ok_or(Errno::EFAULT)?
            & !15)
            - 8;
        let stack = StackT {
            ss_flags: if self.on_altstack(regs.rsp) || use_altstack {
                SS_ONSTACK
            } else {
                self.altstack.ss_flags
            },
            ..self.altstack
        };
        let frame = RtSigframe {
            pretcode: act.restorer,
            uc: Ucontext {
                flags: UC_FLAGS,
                link: 0,
                stack,
                mcontext: Sigcontext {
                    r8: regs.r8,
                    r9: regs.r9,
                    r10: regs.r10,
                    r11: regs.r11,
                    r12: regs.r12,
                    r13: regs.r13,
                    r14: regs.r14,
                    r15: regs.r15,
                    rdi: regs.rdi,
                    rsi: regs.rsi,
                    rbp: regs.rbp,
                    rbx: regs.rbx,
                    rdx: regs.rdx,
                    rax: regs.rax,
                    rcx: regs.rcx,
                    rsp: regs.rsp,
                    rip: regs.rip,
                    eflags: regs.eflags,
                    segments: (regs.cs & 0xffff) | ((regs.ss & 0xffff) << 48),
                    cr2: if info.signo == SIGSEGV {
                        info.fields[0]
                    } else {
                        0
                    },
                    fpstate: fp_addr,
                    ..Sigcontext::default()
                },
                sigmask: self.saved_mask.take().unwrap_or(self.signal_mask),
            },
            info: *info,
        };
        self.mm.copy_out(fp_addr, fp.as_bytes())?;
        self.mm.copy_out(sp, frame.as_bytes())?;
        if use_altstack {
            // SS_AUTODISARM: the stack is disarmed while the handler runs.
            if self.altstack.ss_flags & (1 << 31) != 0 {
                self.altstack = StackT {
                    ss_flags: SS_DISABLE,
                    ..StackT::default()
                };
            }
        }
        let uc_addr = sp + 8;
        let info_addr = uc_addr + size_of::<Ucontext>() as u64;
        self.regs = Registers {
            rip: act.handler,
            rsp: sp,
            rdi: info.signo as u64,
            rsi: if act.flags & SA_SIGINFO != 0 {
                info_addr
            } else {
                0
            },
            rdx: if act.flags & SA_SIGINFO != 0 {
                uc_addr
            } else {
                0
            },
            rax: 0,
            eflags: regs.eflags & !(EFLAGS_TF | EFLAGS_DF),
            ..regs
        };
        Ok(())
    }

    /// rt_sigreturn: restores the context saved by `setup_frame`, which the
    /// handler's `ret` has left at the stack pointer.
    pub fn sigreturn(&mut self) -> Result<(), Errno> {
        let uc: Ucontext = self.mm.read_obj(self.regs.rsp)?;
        let m = uc.mcontext;
        if m.fpstate != 0 {
            let fp: FpState = self.mm.read_obj(m.fpstate)?;
            self.set_fp_state(&fp)?;
        }
        self.regs = Registers {
            r8: m.r8,
            r9: m.r9,
            r10: m.r10,
            r11: m.r11,
            r12: m.r12,
            r13: m.r13,
            r14: m.r14,
            r15: m.r15,
            rdi: m.rdi,
            rsi: m.rsi,
            rbp: m.rbp,
            rbx: m.rbx,
            rdx: m.rdx,
            rax: m.rax,
            rcx: m.rcx,
            rsp: m.rsp,
            rip: m.rip,
            eflags: (self.regs.eflags & !FIX_EFLAGS) | (m.eflags & FIX_EFLAGS),
            orig_rax: u64::MAX,
            ..self.regs
        };
        self.signal_mask = uc.sigmask & !UNBLOCKABLE;
        // Restoring the alternate stack fails quietly, as on Linux.
        if uc.stack.ss_flags & !(SS_DISABLE | (1 << 31)) == 0 && !self.on_altstack(self.regs.rsp) {
            self.altstack = uc.stack;
        }
        Ok(())
    }
}

/// Checks a signal number from the application (1..=64).
pub fn check_signal(sig: i32) -> Result<usize, Errno> {
    match usize::try_from(sig) {
        Ok(s) if (1..=NSIG).contains(&s) => Ok(s),
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_linux() {
        assert_eq!(size_of::<SigInfo>(), 128);
        assert_eq!(size_of::<Sigcontext>(), 256);
        assert_eq!(size_of::<Ucontext>(), 304);
        assert_eq!(size_of::<RtSigframe>(), 440);
    }
}
