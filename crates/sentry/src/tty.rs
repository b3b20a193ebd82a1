//! Controlling terminals and job control: which session a terminal belongs
//! to, its foreground process group, and the SIGTTIN/SIGTTOU that stop a
//! background group touching it. This state lives in the sentry; the host
//! terminal only moves bytes and keeps its modes. The sandbox reaches one
//! terminal, the one its caller handed over as stdio.

use std::sync::{Mutex, MutexGuard, PoisonError};

use veil_abi::Errno;
use veil_vfs::OpenFile;

use crate::signal::{bit, SigInfo, SIGCONT, SIGHUP, SIGTTIN, SIGTTOU};
use crate::task::Task;

const TIOCSCTTY: u32 = 0x540e;
const TIOCGPGRP: u32 = 0x540f;
const TIOCSPGRP: u32 = 0x5410;
const TIOCNOTTY: u32 = 0x5422;
const TIOCGSID: u32 = 0x5429;
const TCSETS: u32 = 0x5402;
const TCSETSW: u32 = 0x5403;
const TCSETSF: u32 = 0x5404;
/// c_lflag: background writes raise SIGTTOU.
const TOSTOP: u32 = 0o400;

#[derive(Default)]
struct State {
    /// The session the terminal controls, if any.
    session: Option<i32>,
    /// Its foreground process group.
    foreground: i32,
}

#[derive(Default)]
pub struct Terminal {
    state: Mutex<State>,
}

impl Terminal {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the terminal the controlling terminal of `sid`, with `pgid`
    /// in the foreground (the init process's, at boot).
    pub fn attach(&self, sid: i32, pgid: i32) {
        let mut st = self.state();
        st.session = Some(sid);
        st.foreground = pgid;
    }

    /// The foreground process group, if the terminal controls `sid`.
    pub fn foreground_of(&self, sid: i32) -> Option<i32> {
        let st = self.state();
        (st.session == Some(sid)).then_some(st.foreground)
    }
}

/// Whether `ioctl` is one the sentry answers for terminals.
pub fn handles(cmd: u32) -> bool {
    matches!(
        cmd,
        TIOCSCTTY | TIOCGPGRP | TIOCSPGRP | TIOCNOTTY | TIOCGSID
    )
}

/// The job-control ioctls of a terminal.
pub fn ioctl(t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
    let tty = &t.kernel.terminal;
    let sid = t.tg.sid();
    let is_ctty = tty.state().session == Some(sid);
    match cmd {
        TIOCGPGRP => {
            if !is_ctty {
                return Err(Errno::ENOTTY);
            }
            let fg = tty.state().foreground;
            t.mm.write_obj(arg, &fg).map(|()| 0)
        }
        TIOCGSID => {
            if !is_ctty {
                return Err(Errno::ENOTTY);
            }
            t.mm.write_obj(arg, &sid).map(|()| 0)
        }
        TIOCSPGRP => {
            if !is_ctty {
                return Err(Errno::ENOTTY);
            }
            check_change(t)?;
            let pgrp: i32 = t.mm.read_obj(arg)?;
            if pgrp < 0 {
                return Err(Errno::EINVAL);
            }
            let members: Vec<i32> = t
                .kernel
                .processes()
                .values()
                .filter(|p| p.pgid() == pgrp)
                .map(|p| p.sid())
                .collect();
            if members.is_empty() {
                return Err(Errno::ESRCH);
            }
            if members.iter().any(|&s| s != sid) {
                return Err(Errno::EPERM);
            }
            tty.state().foreground = pgrp;
            Ok(0)
        }
        TIOCSCTTY => {
            let leader = sid == t.tg.pid;
            let mut st = tty.state();
            if leader && st.session == Some(sid) {
                return Ok(0);
            }
            // A session leader without a controlling terminal; one that
            // belongs to another session only with arg 1 and privilege.
            if !leader || st.session == Some(sid) {
                return Err(Errno::EPERM);
            }
            if st.session.is_some() && !(arg == 1 && t.creds.euid == 0) {
                return Err(Errno::EPERM);
            }
            st.session = Some(sid);
            st.foreground = t.tg.pgid();
            Ok(0)
        }
        TIOCNOTTY => {
            if !is_ctty {
                return Err(Errno::ENOTTY);
            }
            // The session leader gives the terminal up for its whole
            // session, which hears of it as a hang-up.
            if sid == t.tg.pid {
                let fg = {
                    let mut st = tty.state();
                    st.session = None;
                    st.foreground
                };
                t.kernel.signal_pgrp(fg, SigInfo::user(SIGHUP, 0, 0));
                t.kernel.signal_pgrp(fg, SigInfo::user(SIGCONT, 0, 0));
            }
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// Whether the task may change the terminal's settings (tcsetpgrp,
/// tcsetattr) or, with TOSTOP, write to it: only from the foreground. A
/// background group gets SIGTTOU and the call restarts once it is resumed,
/// unless SIGTTOU is ignored or blocked (then the call goes ahead) or the
/// group is orphaned (EIO).
fn check_change(t: &Task) -> Result<(), Errno> {
    if !in_background(t) || ignored_or_blocked(t, SIGTTOU) {
        return Ok(());
    }
    let pgid = t.tg.pgid();
    if t.kernel.pgrp_orphaned(pgid) {
        return Err(Errno::EIO);
    }
    t.kernel.signal_pgrp(pgid, SigInfo::user(SIGTTOU, 0, 0));
    Err(Errno::ERESTARTSYS)
}

/// Whether the task's session controls the terminal and the task is not in
/// its foreground group.
fn in_background(t: &Task) -> bool {
    let st = t.kernel.terminal.state();
    st.session == Some(t.tg.sid()) && st.foreground != t.tg.pgid()
}

fn ignored_or_blocked(t: &Task, sig: i32) -> bool {
    t.signal_mask & bit(sig) != 0 || t.tg.sigactions.get(sig).handler == 1
}

/// Job control on a read or write of a terminal file: a background read
/// raises SIGTTIN (EIO if that cannot stop the group), and a background
/// write with TOSTOP set is a change as `check_change` judges it.
pub fn check_io(t: &Task, file: &OpenFile, write: bool) -> Result<(), Errno> {
    if !file.is_terminal() || !in_background(t) {
        return Ok(());
    }
    if write {
        if file.terminal_lflag().is_ok_and(|l| l & TOSTOP != 0) {
            return check_change(t);
        }
        return Ok(());
    }
    let pgid = t.tg.pgid();
    if ignored_or_blocked(t, SIGTTIN) || t.kernel.pgrp_orphaned(pgid) {
        return Err(Errno::EIO);
    }
    t.kernel.signal_pgrp(pgid, SigInfo::user(SIGTTIN, 0, 0));
    Err(Errno::ERESTARTSYS)
}

/// The ioctls that change a terminal's settings, which a background
/// group may not issue unchallenged.
pub fn is_change(cmd: u32) -> bool {
    matches!(cmd, TCSETS | TCSETSW | TCSETSF)
}

/// `check_change` for a settings ioctl on a terminal file.
pub fn check_settings_change(t: &Task, file: &OpenFile) -> Result<(), Errno> {
    if file.is_terminal() {
        check_change(t)
    } else {
        Ok(())
    }
}
