//! Controlling terminals and job control: which session a terminal belongs
//! to, its foreground process group, and the SIGTTIN/SIGTTOU that stop a
//! background group touching it. Each terminal has one `TtyControl`: the
//! host terminal handed over as stdio (which only moves bytes and keeps its
//! modes) has the kernel's, each pseudo-terminal of /dev/pts its own.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use linux_raw_sys::ioctl::{
    TCSETS, TCSETSF, TCSETSW, TIOCGPGRP, TIOCGPTPEER, TIOCGSID, TIOCNOTTY, TIOCSCTTY, TIOCSPGRP,
};
use veil_abi::Errno;
use veil_vfs::fs::devfs::{CONSOLE_MINOR, TTY_MINOR};
use veil_vfs::fs::makedev;
use veil_vfs::pty::{SlaveAttr, TtyControl, TtySignals};
use veil_vfs::{FsContext, OpenFile};

use crate::kernel::Kernel;
use crate::signal::{bit, SigInfo, SIGCONT, SIGHUP, SIGTTIN, SIGTTOU};
use crate::task::Task;

/// c_lflag: background writes raise SIGTTOU.
const TOSTOP: u32 = 0o400;
const O_NOCTTY: i32 = 0o400;
const O_CLOEXEC: i32 = 0o2000000;
const O_ACCMODE: i32 = 3;
const O_NONBLOCK: i32 = 0o4000;
const TTYAUX_MAJOR: u64 = 5;

/// The host terminal the sandbox was handed, if any.
#[derive(Default)]
pub struct Terminal {
    control: Arc<TtyControl>,
    /// Its open file (stdin's), which /dev/tty and /dev/console give out.
    file: Mutex<Option<Arc<OpenFile>>>,
}

impl Terminal {
    /// Makes the host terminal `file` the controlling terminal of `sid`,
    /// with `pgid` in the foreground (the init process's, at boot).
    pub fn attach(&self, file: Arc<OpenFile>, sid: i32, pgid: i32) {
        let mut st = self.control.lock();
        st.session = Some(sid);
        st.foreground = pgid;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
    }

    fn file(&self) -> Option<Arc<OpenFile>> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The foreground process group of session `sid`'s controlling terminal.
pub fn foreground_of(k: &Kernel, sid: i32) -> Option<i32> {
    let host = *k.terminal.control.lock();
    if host.session == Some(sid) {
        return Some(host.foreground);
    }
    let index = k.vfs.ptys().find_session(sid)?;
    let pty = k.vfs.ptys().get(index)?;
    let st = *pty.control().lock();
    (st.session == Some(sid)).then_some(st.foreground)
}

/// The job-control state of a terminal file.
fn control_of(t: &Task, file: &OpenFile) -> Option<Arc<TtyControl>> {
    match file.tty() {
        Some(link) => Some(link.control),
        None => file
            .is_terminal()
            .then(|| t.kernel.terminal.control.clone()),
    }
}

/// Whether the session has a controlling terminal.
fn has_ctty(k: &Kernel, sid: i32) -> bool {
    k.terminal.control.lock().session == Some(sid) || k.vfs.ptys().find_session(sid).is_some()
}

/// Whether `ioctl` is one the sentry answers for terminals.
pub fn handles(cmd: u32) -> bool {
    matches!(
        cmd,
        TIOCSCTTY | TIOCGPGRP | TIOCSPGRP | TIOCNOTTY | TIOCGSID | TIOCGPTPEER
    )
}

/// The job-control ioctls of a terminal, and TIOCGPTPEER of a pty master.
pub fn ioctl(t: &Task, file: &OpenFile, cmd: u32, arg: u64) -> Result<u64, Errno> {
    let tty = control_of(t, file).ok_or(Errno::ENOTTY)?;
    let sid = t.tg.sid();
    let is_ctty = tty.lock().session == Some(sid);
    match cmd {
        TIOCGPTPEER => {
            let link = file.tty().filter(|l| l.master).ok_or(Errno::ENOTTY)?;
            // Only the flags an open of the slave could sensibly take.
            let flags = (arg as i32) & (O_ACCMODE | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
            let peer = on_open(t, open_pty_slave(t, link.index, flags)?, flags)?;
            let fd = t.fds.insert(peer, flags & O_CLOEXEC != 0, 0, t.nofile())?;
            Ok(fd as u64)
        }
        TIOCGPGRP => {
            if !is_ctty {
                return Err(Errno::ENOTTY);
            }
            let fg = tty.lock().foreground;
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
            check_change(t, &tty)?;
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
            tty.lock().foreground = pgrp;
            Ok(0)
        }
        TIOCSCTTY => {
            let leader = sid == t.tg.pid;
            if leader && is_ctty {
                return Ok(0);
            }
            // A session leader without a controlling terminal; one that
            // belongs to another session only with arg 1 and privilege.
            if !leader || has_ctty(&t.kernel, sid) {
                return Err(Errno::EPERM);
            }
            let mut st = tty.lock();
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
                    let mut st = tty.lock();
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

/// Opens /dev/pts/`index` as the sandbox's root sees it.
fn open_pty_slave(t: &Task, index: u32, flags: i32) -> Result<Arc<OpenFile>, Errno> {
    let vfs = &t.kernel.vfs;
    let root = vfs.root();
    let ctx = FsContext::new(root.clone());
    let path = format!("/dev/pts/{index}");
    vfs.open(
        &ctx,
        &root,
        path.as_bytes(),
        flags & !O_CLOEXEC,
        0,
        &t.creds,
    )
}

/// What an open(2) returns for `file`: /dev/tty becomes the caller's
/// controlling terminal (ENXIO without one), /dev/console the host
/// terminal (ENXIO without one). A pty slave opened without O_NOCTTY by a
/// session leader without a controlling terminal becomes its controlling
/// terminal, if no other session has it. A new master gives its slave
/// the opener's ownership.
pub fn on_open(t: &Task, file: Arc<OpenFile>, flags: i32) -> Result<Arc<OpenFile>, Errno> {
    if !file.is_terminal() {
        let st = file.stat()?;
        if st.st_mode & veil_abi::mode::S_IFMT != veil_abi::mode::S_IFCHR {
            return Ok(file);
        }
        let sid = t.tg.sid();
        if st.st_rdev == makedev(TTYAUX_MAJOR, TTY_MINOR) {
            if t.kernel.terminal.control.lock().session == Some(sid) {
                return t.kernel.terminal.file().ok_or(Errno::ENXIO);
            }
            let index = t.kernel.vfs.ptys().find_session(sid).ok_or(Errno::ENXIO)?;
            let pty = t.kernel.vfs.ptys().get(index).ok_or(Errno::ENXIO)?;
            // Still named /dev/tty, as Linux's (ttyname says so).
            return OpenFile::new(file.path().clone(), flags, pty.open_slave()?);
        }
        if st.st_rdev == makedev(TTYAUX_MAJOR, CONSOLE_MINOR) {
            return t.kernel.terminal.file().ok_or(Errno::ENXIO);
        }
        return Ok(file);
    }
    let Some(link) = file.tty() else {
        return Ok(file);
    };
    // A new pty's slave belongs to whoever opened the master, as devpts
    // makes it.
    if link.master {
        if let Some(pty) = t.kernel.vfs.ptys().get(link.index) {
            pty.set_attr(SlaveAttr {
                mode: 0o600,
                uid: t.creds.fsuid,
                gid: t.creds.fsgid,
            });
        }
        return Ok(file);
    }
    let sid = t.tg.sid();
    if flags & O_NOCTTY != 0 || sid != t.tg.pid || has_ctty(&t.kernel, sid) {
        return Ok(file);
    }
    let mut st = link.control.lock();
    if st.session.is_none() {
        st.session = Some(sid);
        st.foreground = t.tg.pgid();
    }
    drop(st);
    Ok(file)
}

/// Whether the task may change the terminal's settings (tcsetpgrp,
/// tcsetattr) or, with TOSTOP, write to it: only from the foreground. A
/// background group gets SIGTTOU and the call restarts once it is resumed,
/// unless SIGTTOU is ignored or blocked (then the call goes ahead) or the
/// group is orphaned (EIO).
fn check_change(t: &Task, tty: &TtyControl) -> Result<(), Errno> {
    if !in_background(t, tty) || ignored_or_blocked(t, SIGTTOU) {
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
fn in_background(t: &Task, tty: &TtyControl) -> bool {
    let st = tty.lock();
    st.session == Some(t.tg.sid()) && st.foreground != t.tg.pgid()
}

fn ignored_or_blocked(t: &Task, sig: i32) -> bool {
    t.signal_mask & bit(sig) != 0 || t.tg.sigactions.get(sig).handler == 1
}

/// The terminal of a file job control applies to: not a pty master's.
fn job_controlled(t: &Task, file: &OpenFile) -> Option<Arc<TtyControl>> {
    if file.tty().is_some_and(|l| l.master) {
        return None;
    }
    control_of(t, file)
}

/// Job control on a read or write of a terminal file: a background read
/// raises SIGTTIN (EIO if that cannot stop the group), and a background
/// write with TOSTOP set is a change as `check_change` judges it.
pub fn check_io(t: &Task, file: &OpenFile, write: bool) -> Result<(), Errno> {
    let Some(tty) = job_controlled(t, file) else {
        return Ok(());
    };
    if !in_background(t, &tty) {
        return Ok(());
    }
    if write {
        if file.terminal_lflag().is_ok_and(|l| l & TOSTOP != 0) {
            return check_change(t, &tty);
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
    match job_controlled(t, file) {
        Some(tty) => check_change(t, &tty),
        None => Ok(()),
    }
}

/// How the ptys' line discipline signals processes.
pub struct KernelSignals(pub Weak<Kernel>);

impl TtySignals for KernelSignals {
    fn signal_pgrp(&self, pgid: i32, sig: i32) {
        if let Some(k) = self.0.upgrade() {
            k.signal_pgrp(pgid, SigInfo::user(sig, 0, 0));
        }
    }

    fn hangup(&self, sid: i32) {
        let Some(k) = self.0.upgrade() else {
            return;
        };
        let leader = k.processes().get(&sid).cloned();
        if let Some(tg) = leader {
            k.signal_process(&tg, SigInfo::user(SIGHUP, 0, 0));
            k.signal_process(&tg, SigInfo::user(SIGCONT, 0, 0));
        }
    }
}
