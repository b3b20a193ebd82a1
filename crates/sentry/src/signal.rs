//! Signal delivery: pending signals, default actions, and the x86-64
//! `rt_sigframe` a handler runs on (and that rt_sigreturn unwinds).

use veil_abi::{Errno, KernelSigaction, StackT, Sysno};
use veil_platform::{xsave_layout, FpState, Registers, FXSAVE_SIZE};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use veil_platform::Interrupt;
use veil_vfs::wait::Waiter;

use veil_vfs::Creds;

use crate::task::{CpuTime, SchedAttr, Task, NSIG};

pub const SIGHUP: i32 = 1;
pub const SIGKILL: i32 = 9;
pub const SIGSEGV: i32 = 11;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTSTP: i32 = 20;
pub const SIGTTIN: i32 = 21;
pub const SIGTTOU: i32 = 22;
/// The first real-time signal; these queue every instance.
pub const SIGRTMIN: i32 = 32;
/// The stop signals, whose sending discards a pending SIGCONT.
pub const STOP_SIGNALS: u64 = bit(SIGSTOP) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU);
/// Signals raised by the faulting instruction itself, dequeued first.
const SYNCHRONOUS: u64 = bit(4) | bit(5) | bit(7) | bit(8) | bit(SIGSEGV) | bit(31);
pub const SIG_DFL: u64 = 0;
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

    /// Whether the kernel sent it, or a process outside the sandbox's PID
    /// namespace (which Linux reports as PID 0).
    pub fn from_outside(&self) -> bool {
        self.code > 0 || self.fields[0] as u32 == 0
    }

    /// SIGCHLD (or another exit signal) for a child's exit: CLD_EXITED with
    /// its code, or CLD_KILLED/CLD_DUMPED with its signal.
    pub fn child(signo: i32, pid: i32, uid: u32, status: crate::task::ExitStatus) -> SigInfo {
        use crate::task::ExitStatus;
        let (code, value) = match status {
            ExitStatus::Exited(c) => (1, c),
            ExitStatus::Signaled { signo, core } => (if core { 3 } else { 2 }, signo),
        };
        let who = u64::from(pid as u32) | (u64::from(uid) << 32);
        SigInfo::new(signo, code, who, u64::from(value as u32))
    }

    /// SIGCHLD for a child that stopped or continued (`code` CLD_STOPPED or
    /// CLD_CONTINUED, `status` the signal).
    pub fn child_report(pid: i32, uid: u32, code: i32, status: i32) -> SigInfo {
        let who = u64::from(pid as u32) | (u64::from(uid) << 32);
        SigInfo::new(SIGCHLD, code, who, u64::from(status as u32))
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

/// Queued signals: standard signals at most once each, real-time signals
/// each with its own siginfo, in order.
#[derive(Default)]
pub struct Pending {
    bits: u64,
    infos: Vec<SigInfo>,
}

/// Queued real-time signals per queue (RLIMIT_SIGPENDING's default).
const MAX_QUEUED: usize = 63_672;

impl Pending {
    /// Queues `info`; false if it was dropped (a standard signal already
    /// pending, or a full queue).
    pub fn push(&mut self, info: SigInfo) -> bool {
        let b = bit(info.signo);
        if (self.bits & b != 0 && info.signo < SIGRTMIN) || self.infos.len() >= MAX_QUEUED {
            return false;
        }
        self.bits |= b;
        self.infos.push(info);
        true
    }

    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Removes the lowest pending signal in `want`; synchronous fault
    /// signals go first, as Linux's next_signal prefers them.
    pub fn take(&mut self, want: u64) -> Option<SigInfo> {
        let ready = self.bits & want;
        if ready == 0 {
            return None;
        }
        let sync = ready & SYNCHRONOUS;
        let pick = if sync != 0 { sync } else { ready };
        let sig = pick.trailing_zeros() as i32 + 1;
        let pos = self.infos.iter().position(|i| i.signo == sig)?;
        let info = self.infos.remove(pos);
        if !self.infos.iter().any(|i| i.signo == sig) {
            self.bits &= !bit(sig);
        }
        Some(info)
    }

    /// Applies `f` to the first queued siginfo `pred` picks.
    pub fn update<R>(
        &mut self,
        pred: impl Fn(&SigInfo) -> bool,
        f: impl FnOnce(&mut SigInfo) -> R,
    ) -> Option<R> {
        self.infos.iter_mut().find(|i| pred(i)).map(f)
    }

    /// Discards the queued signals `pred` picks.
    pub fn remove_where(&mut self, pred: impl Fn(&SigInfo) -> bool) {
        self.infos.retain(|i| !pred(i));
        self.bits = self.infos.iter().fold(0, |b, i| b | bit(i.signo));
    }

    /// Discards every pending signal in `set`.
    pub fn discard(&mut self, set: u64) {
        self.bits &= !set;
        self.infos.retain(|i| bit(i.signo) & set == 0);
    }
}

/// The part of a task other sentry threads reach: its pending signals, its
/// signal mask as last published, the means to wake it wherever it is, and
/// what other tasks may read or change of it (credentials, scheduling, CPU
/// time).
pub struct TaskShared {
    /// The thread group (process) the task belongs to.
    pub tgid: i32,
    pending: Mutex<Pending>,
    /// The task's signal mask, published for senders choosing a thread.
    blocked: AtomicU64,
    /// The mask a task in rt_sigtimedwait had before it unblocked the
    /// signals it waits for (Linux's real_blocked): those stay blocked as
    /// far as dropping ignored signals goes.
    real_blocked: AtomicU64,
    /// What the task waits on while blocked in the sentry.
    pub waiter: Arc<Waiter>,
    /// Stops the task's application thread while it runs.
    interrupter: Mutex<Option<Arc<dyn Interrupt>>>,
    /// A copy of the task's credentials, which only the task changes.
    creds: Mutex<Arc<Creds>>,
    pub sched: Mutex<SchedAttr>,
    pub cpu: CpuTime,
    /// What /proc shows of the task, which only the task changes.
    pub view: Mutex<Option<crate::procfs::TaskView>>,
}

impl TaskShared {
    pub fn new(tgid: i32, creds: Arc<Creds>) -> TaskShared {
        TaskShared {
            tgid,
            pending: Mutex::default(),
            blocked: AtomicU64::new(0),
            real_blocked: AtomicU64::new(0),
            waiter: Waiter::new(),
            interrupter: Mutex::new(None),
            creds: Mutex::new(creds),
            sched: Mutex::default(),
            cpu: CpuTime::default(),
            view: Mutex::new(None),
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

    /// Queues a signal for this thread and makes it notice.
    pub fn send(&self, info: SigInfo) {
        if self.pending().push(info) {
            self.kick();
        }
    }

    /// Makes the task look at its signals: wakes it if it sleeps in the
    /// sentry and stops its application code if that runs.
    pub fn kick(&self) {
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

    pub fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pending_bits(&self) -> u64 {
        self.pending().bits
    }

    pub fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }

    fn publish_blocked(&self, mask: u64) -> u64 {
        self.blocked.swap(mask, Ordering::Relaxed)
    }

    /// The signals a sender must not drop as ignored for this task.
    pub fn blocked_or_awaited(&self) -> u64 {
        self.blocked() | self.real_blocked.load(Ordering::Relaxed)
    }

    pub fn set_real_blocked(&self, mask: u64) {
        self.real_blocked.store(mask, Ordering::Relaxed);
    }
}

/// The task a sentry thread runs: for the files whose behaviour depends on
/// who asks (signalfd), as Linux's `current`.
#[derive(Clone)]
pub struct Current {
    pub task: Arc<TaskShared>,
    pub tg: Arc<crate::task::ThreadGroup>,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Current>> = const { std::cell::RefCell::new(None) };
}

/// Makes `task` the current task of this sentry thread (`None`: no task).
pub fn set_current(task: Option<Current>) {
    CURRENT.with(|c| *c.borrow_mut() = task);
}

/// The task this sentry thread runs, if any.
pub fn current() -> Option<Current> {
    CURRENT.with(|c| c.borrow().clone())
}

/// What a signal does when it is neither caught nor ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Ignore,
    Terminate,
    /// Terminate with a core dump, where RLIMIT_CORE allows.
    Core,
    Stop,
    Continue,
}

pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        SIGCHLD | 23 | 28 => DefaultAction::Ignore, // SIGURG, SIGWINCH
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31 => DefaultAction::Core,
        _ => DefaultAction::Terminate,
    }
}

/// Whether `act` for `sig` discards it: SIG_IGN, or SIG_DFL with an
/// ignoring default (SIGCONT's continuing happens at send time).
pub fn is_ignored(sig: i32, act: &KernelSigaction) -> bool {
    match act.handler {
        SIG_IGN => sig != SIGKILL && sig != SIGSTOP,
        SIG_DFL => matches!(
            default_action(sig),
            DefaultAction::Ignore | DefaultAction::Continue
        ),
        _ => false,
    }
}

impl Task {
    /// Queues `info` for this thread, as tkill(2) to itself does.
    pub fn send_signal(&mut self, info: SigInfo) {
        let kernel = self.kernel.clone();
        kernel.signal_thread(&self.tg, &self.shared, info);
    }

    /// Signals pending for this thread or its process, blocked or not.
    pub fn pending_signals(&self) -> u64 {
        self.shared.pending_bits() | self.tg.signals.pending().bits()
    }

    /// Whether the task must stop what it does in the sentry: an
    /// unblocked signal is pending, or its process is stopping.
    pub fn signal_pending(&self) -> bool {
        self.pending_signals() & !(self.signal_mask & !UNBLOCKABLE) != 0 || self.must_join_stop()
    }

    /// Blocks in the sentry until woken (readiness, a child's exit, a
    /// signal) or until `timeout`; returns true if a signal interrupts.
    pub fn block(&self, timeout: Option<std::time::Duration>) -> bool {
        self.publish_mask();
        if self.signal_pending() {
            return true;
        }
        // Time asleep is neither user nor system time.
        self.shared.cpu.leave_sys();
        self.shared.waiter.wait(timeout);
        self.shared.cpu.enter_sys();
        self.signal_pending()
    }

    /// Makes the signal mask visible to senders choosing a thread for a
    /// process-directed signal. Signals this thread newly blocks that are
    /// pending for the process go to the other threads, as Linux's
    /// retarget_shared_pending does.
    pub fn publish_mask(&self) {
        self.publish_blocked(self.signal_mask);
    }

    /// `publish_mask` with an explicit mask (rt_sigtimedwait unblocks the
    /// signals it waits for while it sleeps).
    pub fn publish_blocked(&self, mask: u64) {
        let newly = mask & !self.shared.publish_blocked(mask);
        if newly == 0 {
            return;
        }
        let pending = newly & self.tg.signals.pending().bits();
        if pending != 0 {
            self.kernel.retarget(&self.tg, pending);
        }
    }

    /// Runs a wait with `mask` (if given) as the signal mask, as ppoll,
    /// pselect6 and epoll_pwait do: the old mask comes back on return, or,
    /// if a signal interrupts, once its handler has run.
    pub fn with_sigmask<T>(
        &mut self,
        mask: Option<u64>,
        wait: impl FnOnce(&Task) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let Some(mask) = mask else {
            return wait(self);
        };
        let old = self.signal_mask;
        self.signal_mask = mask & !UNBLOCKABLE;
        let r = wait(self);
        match &r {
            Err(e) if *e == Errno::EINTR || e.raw() >= 512 => {
                self.saved_mask.get_or_insert(old);
            }
            _ => self.signal_mask = old,
        }
        r
    }

    /// Takes the lowest pending signal in `want`, the thread's own first.
    pub fn dequeue_signal(&self, want: u64) -> Option<SigInfo> {
        let taken = self.shared.pending().take(want);
        taken.or_else(|| self.tg.signals.pending().take(want))
    }

    fn action(&self, sig: i32) -> KernelSigaction {
        self.tg.sigactions.get(sig)
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
    /// system call: restarted, or failed with EINTR for a handler. Stop
    /// signals stop the whole process here until SIGCONT or SIGKILL.
    pub fn deliver_pending(&mut self) {
        let mut restart = self.restart.take();
        let mut handled = false;
        while self.exit.is_none() {
            if self.must_join_stop() {
                self.join_stop();
                continue;
            }
            let conts = self.tg.signals.continues();
            let Some(info) = self.dequeue_signal(!(self.signal_mask & !UNBLOCKABLE)) else {
                break;
            };
            let sig = info.signo;
            let act = self.action(sig);
            match act.handler {
                SIG_IGN if sig != SIGKILL && sig != SIGSTOP => {}
                SIG_DFL | SIG_IGN => match default_action(sig) {
                    DefaultAction::Ignore | DefaultAction::Continue => {}
                    DefaultAction::Stop => {
                        // The terminal stop signals are discarded in an
                        // orphaned process group, which nobody could resume.
                        if sig == SIGSTOP || !self.kernel.pgrp_orphaned(self.tg.pgid()) {
                            self.start_group_stop(sig, conts);
                        }
                    }
                    DefaultAction::Terminate | DefaultAction::Core => self.deliver_fatal(sig),
                },
                // Every deliverable signal gets its frame now, each on top
                // of the last, so the last one's handler runs first, as
                // when Linux returns to user space.
                _ => {
                    self.settle_restart(restart.take(), Some(&act));
                    self.handle(info, act);
                    handled = true;
                }
            }
        }
        if self.exit.is_none() && !handled {
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
            // ERESTART_RESTARTBLOCK continues through restart_syscall.
            self.regs.rax = if errno == Errno::ERESTART_RESTARTBLOCK {
                Sysno::restart_syscall.id() as u64
            } else {
                nr
            };
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
            self.tg
                .sigactions
                .update(|t| t[sig as usize - 1] = KernelSigaction::default());
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
        let fp = sigframe_fpstate(self.fp_state()?);
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
        sp = sp.checked_sub(fp.len() as u64).ok_or(Errno::EFAULT)? & !63;
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
                flags: if fp.len() > FXSAVE_SIZE {
                    UC_FLAGS | UC_FP_XSTATE
                } else {
                    UC_FLAGS
                },
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
        self.mm.copy_out(fp_addr, &fp)?;
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
            let fp = self.read_sigframe_fpstate(m.fpstate)?;
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

/// The `fx_sw_bytes` Linux keeps in the FXSAVE area's software-reserved
/// bytes of a signal frame, saying that an XSAVE area follows.
const SW_BYTES: usize = 464;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// uc_flags: the frame's FP state is an XSAVE area.
const UC_FP_XSTATE: u64 = 0x1;

/// The FP state as a signal frame carries it: an FXSAVE area alone, or an
/// XSAVE area whose software-reserved bytes describe it, then MAGIC2.
fn sigframe_fpstate(fp: FpState) -> Vec<u8> {
    let mut bytes = fp.0;
    if bytes.len() <= FXSAVE_SIZE {
        return bytes;
    }
    let size = bytes.len() as u32;
    let xfeatures = xsave_layout().map_or(0, |(_, xcr0)| xcr0);
    let mut sw = [0u8; FXSAVE_SIZE - SW_BYTES];
    sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_ne_bytes());
    sw[4..8].copy_from_slice(&(size + 4).to_ne_bytes());
    sw[8..16].copy_from_slice(&xfeatures.to_ne_bytes());
    sw[16..20].copy_from_slice(&size.to_ne_bytes());
    bytes[SW_BYTES..FXSAVE_SIZE].copy_from_slice(&sw);
    bytes.extend_from_slice(&FP_XSTATE_MAGIC2.to_ne_bytes());
    bytes
}

impl Task {
    /// Reads the FP state of a signal frame at `addr`: the XSAVE area if
    /// the frame's software bytes and MAGIC2 vouch for one of this CPU's
    /// size, the FXSAVE area alone otherwise (as Linux falls back).
    fn read_sigframe_fpstate(&self, addr: u64) -> Result<FpState, Errno> {
        let mut fx = vec![0u8; FXSAVE_SIZE];
        self.mm.copy_in(addr, &mut fx)?;
        let word =
            |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let Some((size, _)) = xsave_layout() else {
            return Ok(FpState(fx));
        };
        let vouched = word(&fx, SW_BYTES) == FP_XSTATE_MAGIC1
            && word(&fx, SW_BYTES + 4) as usize == size + 4
            && word(&fx, SW_BYTES + 16) as usize == size
            && self
                .mm
                .read_obj::<u32>(addr + size as u64)
                .is_ok_and(|m| m == FP_XSTATE_MAGIC2);
        if !vouched {
            return Ok(FpState(fx));
        }
        let mut all = vec![0u8; size];
        self.mm.copy_in(addr, &mut all)?;
        Ok(FpState(all))
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
