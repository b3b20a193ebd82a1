//! Sending signals to threads, processes and process groups, with Linux's
//! rules: ignored signals are dropped at once, SIGCONT and the stop signals
//! cancel each other, a process-directed signal wakes a thread that does
//! not block it, and group stops report to the parent's wait.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::kernel::Kernel;
use crate::signal::{
    bit, is_ignored, Pending, SigInfo, TaskShared, SIGCHLD, SIGCONT, SIGKILL, STOP_SIGNALS,
};
use crate::task::{Task, ThreadGroup};

/// si_code values of SIGCHLD for stops and continues.
const CLD_STOPPED: i32 = 5;
const CLD_CONTINUED: i32 = 6;
/// sa_flags bit: no SIGCHLD when children stop or continue.
const SA_NOCLDSTOP: u64 = 1;

/// A change in a child that its parent's wait reports once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReport {
    Stopped(i32),
    Continued,
}

#[derive(Default)]
pub struct StopState {
    /// The signal of a group stop in progress or in effect.
    signo: Option<i32>,
    /// Counts group stops, so that a thread parks once per stop.
    epoch: u64,
    /// Threads yet to park before the stop is complete.
    remaining: usize,
    /// Counts SIGCONTs, so that a stop signal dequeued before a SIGCONT
    /// was sent does not stop the process after it.
    continues: u64,
    /// What the parent's wait has yet to report.
    pub report: Option<WaitReport>,
}

/// A process's signal state beyond dispositions: signals sent to the
/// process as a whole, and job control.
#[derive(Default)]
pub struct GroupSignals {
    pending: Mutex<Pending>,
    stop: Mutex<StopState>,
    /// Woken when a signal becomes pending for the process or any of its
    /// threads: signalfd pollers (Linux's per-sighand signalfd_wqh).
    pub waiters: veil_vfs::wait::WaitQueue,
}

impl GroupSignals {
    pub fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stop(&self) -> MutexGuard<'_, StopState> {
        self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn continues(&self) -> u64 {
        self.stop().continues
    }

    /// Whether the process is stopped or stopping.
    pub fn stopped(&self) -> bool {
        self.stop().signo.is_some()
    }
}

impl Kernel {
    /// Sends `info` to one thread of `tg` (tkill, tgkill, faults, timers
    /// aimed at a thread).
    pub fn signal_thread(&self, tg: &ThreadGroup, task: &TaskShared, info: SigInfo) {
        if !self.prepare_signal(tg, &info, task.blocked_or_awaited()) {
            return;
        }
        task.send(info);
        tg.signals
            .waiters
            .notify_events(veil_vfs::wait::events::POLLIN);
    }

    /// Sends `info` to the process `tg` (kill, SIGCHLD, alarms): any thread
    /// that does not block it may take it.
    pub fn signal_process(&self, tg: &ThreadGroup, info: SigInfo) {
        let threads = self.threads_of(tg);
        let blocked_by_all = threads
            .iter()
            .all(|t| t.blocked_or_awaited() & bit(info.signo) != 0);
        let sig_blocked = if blocked_by_all { bit(info.signo) } else { 0 };
        if !self.prepare_signal(tg, &info, sig_blocked) {
            return;
        }
        if !tg.signals.pending().push(info) {
            return;
        }
        tg.signals
            .waiters
            .notify_events(veil_vfs::wait::events::POLLIN);
        // Prefer the main thread, as Linux's complete_signal does.
        let mask = bit(info.signo) & !crate::signal::UNBLOCKABLE;
        if let Some(t) = threads
            .iter()
            .find(|t| t.tgid == tg.pid && t.blocked() & mask == 0)
            .or_else(|| threads.iter().find(|t| t.blocked() & mask == 0))
        {
            t.kick();
        }
    }

    /// Sends `info` to every process in group `pgid`; false if it has none.
    pub fn signal_pgrp(&self, pgid: i32, info: SigInfo) -> bool {
        let members: Vec<_> = self
            .processes()
            .values()
            .filter(|p| p.pgid() == pgid)
            .cloned()
            .collect();
        for p in &members {
            self.signal_process(p, info);
        }
        !members.is_empty()
    }

    /// Wakes the threads of `tg` that may take the process-directed signals
    /// in `set`, which the thread that would have taken them now blocks.
    pub fn retarget(&self, tg: &ThreadGroup, set: u64) {
        for t in self.threads_of(tg) {
            if set & !t.blocked() != 0 {
                t.kick();
            }
        }
    }

    /// The real UID of process `tg`: its main (or any) live thread's, or
    /// the last one's once it has exited.
    pub fn uid_of(&self, tg: &ThreadGroup) -> u32 {
        self.threads_of(tg)
            .first()
            .map_or_else(|| tg.uid(), |t| t.creds().uid)
    }

    /// The live threads of `tg`.
    pub fn threads_of(&self, tg: &ThreadGroup) -> Vec<std::sync::Arc<TaskShared>> {
        let tids = tg
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tids.into_iter().filter_map(|tid| self.task(tid)).collect()
    }

    /// Applies what sending `sig` does at once: SIGCONT resumes a stopped
    /// process and discards pending stop signals, a stop signal discards a
    /// pending SIGCONT. Returns whether the signal is to be queued: not for
    /// a process that has exited, nor when it is ignored and `blocked`
    /// (the target's mask for it) does not keep it for later.
    fn prepare_signal(&self, tg: &ThreadGroup, info: &SigInfo, blocked: u64) -> bool {
        let sig = info.signo;
        if tg
            .exit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return false;
        }
        if bit(sig) & STOP_SIGNALS != 0 {
            self.discard_pending(tg, bit(SIGCONT));
        } else if sig == SIGCONT {
            self.discard_pending(tg, STOP_SIGNALS);
            self.resume(tg);
        }
        let act = tg.sigactions.get(sig);
        // Linux's SIGNAL_UNKILLABLE: a namespace's init only takes the
        // signals it has handlers for, and SIGKILL and SIGSTOP from outside.
        if self.init_protected
            && (tg.pid == crate::kernel::INIT_PID || tg.container_init)
            && act.handler == crate::signal::SIG_DFL
            && !(info.from_outside() && bit(sig) & crate::signal::UNBLOCKABLE != 0)
        {
            return false;
        }
        !is_ignored(sig, &act) || blocked & bit(sig) != 0
    }

    /// Drops the signals in `set` pending for the process or its threads.
    pub fn discard_pending(&self, tg: &ThreadGroup, set: u64) {
        tg.signals.pending().discard(set);
        for t in self.threads_of(tg) {
            t.pending().discard(set);
        }
    }

    /// SIGCONT: ends a group stop and tells the parent if it had taken
    /// effect.
    fn resume(&self, tg: &ThreadGroup) {
        let was_stopped = {
            let mut st = tg.signals.stop();
            st.continues += 1;
            let Some(_) = st.signo.take() else {
                return;
            };
            let complete = st.remaining == 0;
            st.remaining = 0;
            if complete {
                st.report = Some(WaitReport::Continued);
            }
            complete
        };
        for t in self.threads_of(tg) {
            t.kick();
        }
        if was_stopped {
            self.notify_parent_stop(tg, CLD_CONTINUED, SIGCONT);
        }
    }

    /// Tells the parent of `tg` that it stopped or continued: SIGCHLD unless
    /// the parent asked for none (SA_NOCLDSTOP), and a wake-up for wait.
    fn notify_parent_stop(&self, tg: &ThreadGroup, code: i32, status: i32) {
        let parent = self.processes().get(&tg.parent_pid()).cloned();
        if let Some(parent) = parent {
            let act = parent.sigactions.get(SIGCHLD);
            if act.flags & SA_NOCLDSTOP == 0 {
                let uid = self.uid_of(tg);
                self.signal_process(&parent, SigInfo::child_report(tg.pid, uid, code, status));
            }
        }
        self.child_events.notify();
    }

    /// Whether a process group is orphaned: no member has a parent in
    /// another group of the same session, so no shell can resume it.
    pub fn pgrp_orphaned(&self, pgid: i32) -> bool {
        let procs = self.processes();
        !procs.values().any(|p| {
            p.pgid() == pgid
                && p.exit
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
                && procs
                    .get(&p.parent_pid())
                    .is_some_and(|parent| parent.pgid() != pgid && parent.sid() == p.sid())
        })
    }
}

impl Task {
    /// Whether the process is stopping and this thread has yet to park.
    pub(crate) fn must_join_stop(&self) -> bool {
        let st = self.tg.signals.stop();
        st.signo.is_some() && self.stop_epoch != st.epoch
    }

    /// Starts a group stop for `sig` (dequeued after `conts` SIGCONTs had
    /// been sent), then parks this thread.
    pub(crate) fn start_group_stop(&mut self, sig: i32, conts: u64) {
        {
            let mut st = self.tg.signals.stop();
            if st.continues != conts || st.signo.is_some() {
                return;
            }
            st.signo = Some(sig);
            st.epoch += 1;
            st.remaining = self
                .tg
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len();
        }
        for t in self.kernel.threads_of(&self.tg) {
            if !std::sync::Arc::ptr_eq(&t, &self.shared) {
                t.kick();
            }
        }
        self.join_stop();
    }

    /// Parks this thread for the group stop in progress until SIGCONT,
    /// SIGKILL or the process's exit; the last thread to park completes
    /// the stop and tells the parent.
    pub(crate) fn join_stop(&mut self) {
        if !self.count_parked() {
            return;
        }
        self.publish_mask();
        loop {
            let killed = self.pending_signals() & bit(SIGKILL) != 0
                || self
                    .tg
                    .group_exit
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some();
            if killed || !self.tg.signals.stopped() {
                return;
            }
            self.shared.waiter.wait(None);
        }
    }

    /// A thread leaving during a group stop counts as parked.
    pub(crate) fn leave_stop(&mut self) {
        if self.must_join_stop() {
            self.count_parked();
        }
    }

    /// Counts this thread as parked for the stop in progress; the last one
    /// completes the stop and tells the parent. False if no stop is on.
    fn count_parked(&mut self) -> bool {
        let completed = {
            let mut st = self.tg.signals.stop();
            let Some(sig) = st.signo else { return false };
            self.stop_epoch = st.epoch;
            st.remaining = st.remaining.saturating_sub(1);
            (st.remaining == 0).then(|| {
                st.report = Some(WaitReport::Stopped(sig));
                sig
            })
        };
        if let Some(sig) = completed {
            self.kernel.notify_parent_stop(&self.tg, CLD_STOPPED, sig);
        }
        true
    }
}
