//! Pseudo-terminals: a master and a slave joined by a line discipline in
//! the manner of Linux's n_tty. Bytes the master writes are the slave's
//! input (canonical editing, echo, signal characters); bytes the slave
//! writes are output processing's and reach the master. One termios and
//! one window size serve both ends, as Linux's master ioctls act on the
//! slave. Job control (session, foreground group) is in `TtyControl`,
//! which the sentry owns the rules for.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use linux_raw_sys::general::{
    B38400, CREAD, CS8, ECHO, ECHOCTL, ECHOE, ECHOK, ECHOKE, ECHONL, ICANON, ICRNL, IEXTEN, IGNCR,
    INLCR, ISIG, ISTRIP, IXON, NOFLSH, OCRNL, ONLCR, OPOST, VEOF, VEOL, VEOL2, VERASE, VINTR,
    VKILL, VMIN, VQUIT, VSUSP, VTIME, VWERASE,
};
use linux_raw_sys::ioctl::{
    FIONREAD, TCFLSH, TCGETS, TCSBRK, TCSETS, TCSETSF, TCSETSW, TCXONC, TIOCGPTLCK, TIOCGPTN,
    TIOCGWINSZ, TIOCOUTQ, TIOCSPTLCK, TIOCSWINSZ,
};
use veil_abi::{Errno, Termios, Winsize};
use zerocopy::{FromBytes, IntoBytes};

use crate::file::{FileOps, UserMem};
use crate::flags::O_NONBLOCK;
use crate::wait::events::*;
use crate::wait::{WaitQueue, Waiter};

/// Most bytes queued as input for the slave (Linux's N_TTY_BUF_SIZE).
const INPUT_MAX: usize = 4096;
/// Most bytes of slave output waiting for the master.
const OUTPUT_MAX: usize = 65536;
const SIGINT: i32 = 2;
const SIGQUIT: i32 = 3;
const SIGTSTP: i32 = 20;
const SIGWINCH: i32 = 28;

/// The session a terminal controls and its foreground process group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobState {
    pub session: Option<i32>,
    /// Meaningful only while `session` is set.
    pub foreground: i32,
}

/// A terminal's job-control state: one per terminal, shared by all its
/// open files (both ends of a pty).
#[derive(Default)]
pub struct TtyControl {
    state: Mutex<JobState>,
}

impl TtyControl {
    pub fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn foreground(&self) -> Option<i32> {
        let st = self.lock();
        st.session.map(|_| st.foreground)
    }
}

/// What an open terminal file is, for the sentry's job control.
pub struct TtyLink {
    pub control: Arc<TtyControl>,
    /// A pty master, where job control does not apply to reads and writes.
    pub master: bool,
    /// The pty's number.
    pub index: u32,
}

/// How the line discipline reaches processes: implemented by the sentry.
pub trait TtySignals: Send + Sync {
    fn signal_pgrp(&self, pgid: i32, sig: i32);
    /// The terminal controlling session `sid` hung up: SIGHUP and SIGCONT
    /// to its leader.
    fn hangup(&self, sid: i32);
}

/// The ptys of one devpts instance.
#[derive(Default)]
pub struct Registry {
    /// The numbers in use, with the ptys whose master is still open (those
    /// show in the directory).
    ptys: Mutex<BTreeMap<u32, Weak<Pty>>>,
    visible: Mutex<BTreeMap<u32, Weak<Pty>>>,
    signals: OnceLock<Arc<dyn TtySignals>>,
}

impl Registry {
    /// Sets how signals are sent; once, at boot.
    pub fn set_signals(&self, s: Arc<dyn TtySignals>) {
        let _ = self.signals.set(s);
    }

    /// A new pty and its master, at the lowest free number.
    pub fn new_master(self: &Arc<Self>) -> Result<Box<dyn FileOps>, Errno> {
        let mut ptys = lock(&self.ptys);
        let index = (0u32..)
            .find(|i| !ptys.contains_key(i))
            .ok_or(Errno::ENOSPC)?;
        let pty = Arc::new(Pty {
            index,
            registry: self.clone(),
            control: Arc::default(),
            state: Mutex::new(State::new()),
            queue: WaitQueue::default(),
        });
        ptys.insert(index, Arc::downgrade(&pty));
        lock(&self.visible).insert(index, Arc::downgrade(&pty));
        Ok(Box::new(Master(pty)))
    }

    /// The pty numbered `index`, while its master is open.
    pub fn get(&self, index: u32) -> Option<Arc<Pty>> {
        lock(&self.visible).get(&index).and_then(Weak::upgrade)
    }

    /// The numbers shown in the directory.
    pub fn indices(&self) -> Vec<u32> {
        lock(&self.visible).keys().copied().collect()
    }

    /// The number of the pty whose slave controls session `sid`.
    pub fn find_session(&self, sid: i32) -> Option<u32> {
        let ptys: Vec<Arc<Pty>> = lock(&self.ptys)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        ptys.iter()
            .find(|p| p.control.lock().session == Some(sid))
            .map(|p| p.index)
    }

    fn signal(&self, pgid: Option<i32>, sig: i32) {
        if let (Some(pgid), Some(s)) = (pgid, self.signals.get()) {
            s.signal_pgrp(pgid, sig);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One pseudo-terminal.
pub struct Pty {
    index: u32,
    registry: Arc<Registry>,
    control: Arc<TtyControl>,
    state: Mutex<State>,
    /// Pollers of both ends.
    queue: WaitQueue,
}

/// The slave device node's metadata (grantpt may chown and chmod it).
#[derive(Clone, Copy)]
pub struct SlaveAttr {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

struct State {
    termios: Termios,
    winsize: Winsize,
    locked: bool,
    /// The canonical line being edited.
    line: Vec<u8>,
    /// Complete canonical lines; an empty one is an end of file.
    lines: VecDeque<Vec<u8>>,
    /// Non-canonical input.
    raw: VecDeque<u8>,
    /// Output (and echoes) for the master.
    out: VecDeque<u8>,
    slaves: usize,
    master_open: bool,
    /// The last slave file closed (the master then reads EIO once empty).
    slave_closed: bool,
    attr: SlaveAttr,
}

/// Linux's tty_std_termios with a pty slave's 38400 baud, CS8, CREAD.
fn default_termios() -> Termios {
    let mut cc = [0u8; 19];
    cc[..17]
        .copy_from_slice(b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00");
    Termios {
        c_iflag: ICRNL | IXON,
        c_oflag: OPOST | ONLCR,
        c_cflag: B38400 | CS8 | CREAD,
        c_lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
        c_line: 0,
        c_cc: cc,
    }
}

impl State {
    fn new() -> State {
        State {
            termios: default_termios(),
            winsize: Winsize::default(),
            locked: true,
            line: Vec::new(),
            lines: VecDeque::new(),
            raw: VecDeque::new(),
            out: VecDeque::new(),
            slaves: 0,
            master_open: true,
            slave_closed: false,
            attr: SlaveAttr {
                mode: 0o600,
                uid: 0,
                gid: 0,
            },
        }
    }

    fn lflag(&self, f: u32) -> bool {
        self.termios.c_lflag & f != 0
    }

    fn iflag(&self, f: u32) -> bool {
        self.termios.c_iflag & f != 0
    }

    /// Whether `c` is the enabled control character `idx`.
    fn is_cc(&self, c: u8, idx: u32) -> bool {
        let v = self.termios.c_cc[idx as usize];
        v != 0 && v == c
    }

    fn input_len(&self) -> usize {
        self.line.len() + self.lines.iter().map(Vec::len).sum::<usize>() + self.raw.len()
    }

    /// Queues output for the master, through OPOST processing.
    fn output(&mut self, c: u8) {
        let o = self.termios.c_oflag;
        if o & OPOST != 0 {
            if c == b'\n' && o & ONLCR != 0 {
                self.out.extend(b"\r\n");
                return;
            }
            if c == b'\r' && o & OCRNL != 0 {
                self.out.push_back(b'\n');
                return;
            }
        }
        self.out.push_back(c);
    }

    /// Echoes `c`, control characters as ^X with ECHOCTL.
    fn echo(&mut self, c: u8) {
        if self.lflag(ECHOCTL) && is_ctrl(c) && c != b'\t' && c != b'\n' {
            self.out.push_back(b'^');
            self.out.push_back(c ^ 0o100);
        } else {
            self.output(c);
        }
    }

    /// Erases the last character of the line, visibly with ECHOE.
    fn erase_one(&mut self, echo_visual: bool) -> bool {
        let Some(c) = self.line.pop() else {
            return false;
        };
        if echo_visual && self.lflag(ECHO) {
            let width = if self.lflag(ECHOCTL) && is_ctrl(c) && c != b'\t' {
                2
            } else {
                1
            };
            for _ in 0..width {
                self.out.extend(b"\x08 \x08");
            }
        }
        true
    }

    /// One byte of input from the master; returns a signal for the
    /// foreground group.
    fn receive(&mut self, mut c: u8) -> Option<i32> {
        if self.iflag(ISTRIP) {
            c &= 0x7f;
        }
        if self.lflag(ISIG) {
            let sig = [(VINTR, SIGINT), (VQUIT, SIGQUIT), (VSUSP, SIGTSTP)]
                .into_iter()
                .find(|&(idx, _)| self.is_cc(c, idx))
                .map(|(_, s)| s);
            if let Some(sig) = sig {
                if !self.lflag(NOFLSH) {
                    self.line.clear();
                    self.lines.clear();
                    self.raw.clear();
                }
                if self.lflag(ECHO) {
                    self.echo(c);
                }
                return Some(sig);
            }
        }
        if c == b'\r' {
            if self.iflag(IGNCR) {
                return None;
            }
            if self.iflag(ICRNL) {
                c = b'\n';
            }
        } else if c == b'\n' && self.iflag(INLCR) {
            c = b'\r';
        }
        if !self.lflag(ICANON) {
            if self.lflag(ECHO) {
                self.echo(c);
            }
            self.raw.push_back(c);
            return None;
        }
        let echo = self.lflag(ECHO);
        if self.is_cc(c, VERASE) {
            let visual = self.lflag(ECHOE);
            if self.erase_one(visual) && echo && !visual {
                self.echo(c);
            }
        } else if self.is_cc(c, VKILL) {
            if self.lflag(ECHOKE) && self.lflag(ECHOE) {
                while self.erase_one(true) {}
            } else {
                self.line.clear();
                if echo {
                    self.echo(c);
                    if self.lflag(ECHOK) {
                        self.output(b'\n');
                    }
                }
            }
        } else if self.lflag(IEXTEN) && self.is_cc(c, VWERASE) {
            let visual = self.lflag(ECHOE);
            while self.line.last().is_some_and(|b| b.is_ascii_whitespace()) {
                self.erase_one(visual);
            }
            while self.line.last().is_some_and(|b| !b.is_ascii_whitespace()) {
                self.erase_one(visual);
            }
        } else if self.is_cc(c, VEOF) {
            let line = std::mem::take(&mut self.line);
            self.lines.push_back(line);
        } else if c == b'\n' || self.is_cc(c, VEOL) || self.is_cc(c, VEOL2) {
            if echo || (c == b'\n' && self.lflag(ECHONL)) {
                self.echo(c);
            }
            self.line.push(c);
            let line = std::mem::take(&mut self.line);
            self.lines.push_back(line);
        } else if self.line.len() < INPUT_MAX - 1 {
            // A full line takes only its terminator, as Linux's.
            if echo {
                self.echo(c);
            }
            self.line.push(c);
        }
        None
    }

    /// Whether the slave has something to read (for poll, VMIN counts).
    fn readable(&self) -> bool {
        if self.lflag(ICANON) {
            return !self.lines.is_empty();
        }
        let cc = &self.termios.c_cc;
        let min = if cc[VTIME as usize] == 0 {
            usize::from(cc[VMIN as usize]).max(1)
        } else {
            1
        };
        self.raw.len() >= min
    }

    /// Applies new settings; switching canonical mode moves pending input.
    fn set_termios(&mut self, new: Termios) {
        let was = self.lflag(ICANON);
        self.termios = new;
        match (was, self.lflag(ICANON)) {
            (true, false) => {
                let lines: Vec<u8> = self.lines.drain(..).flatten().collect();
                self.raw.extend(lines);
                let line = std::mem::take(&mut self.line);
                self.raw.extend(line);
            }
            (false, true) => {
                let raw: Vec<u8> = self.raw.drain(..).collect();
                self.line.extend(raw);
            }
            _ => {}
        }
    }

    fn flush_input(&mut self) {
        self.line.clear();
        self.lines.clear();
        self.raw.clear();
    }
}

fn is_ctrl(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

impl Pty {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn control(&self) -> Arc<TtyControl> {
        self.control.clone()
    }

    pub fn attr(&self) -> SlaveAttr {
        self.lock().attr
    }

    pub fn set_attr(&self, attr: SlaveAttr) {
        self.lock().attr = attr;
    }

    /// unlockpt, for a pty the sentry opens for itself.
    pub fn unlock(&self) {
        self.lock().locked = false;
    }

    pub fn winsize(&self) -> Winsize {
        self.lock().winsize
    }

    /// TIOCSWINSZ: a change raises SIGWINCH in the foreground group.
    pub fn set_winsize(&self, w: Winsize) {
        let changed = std::mem::replace(&mut self.lock().winsize, w) != w;
        if changed {
            self.signal(SIGWINCH);
        }
    }

    /// Opens the slave: EIO while locked (unlockpt) or after a hang-up.
    pub fn open_slave(self: &Arc<Self>) -> Result<Box<dyn FileOps>, Errno> {
        let mut st = self.lock();
        if st.locked || !st.master_open {
            return Err(Errno::EIO);
        }
        st.slaves += 1;
        st.slave_closed = false;
        drop(st);
        Ok(Box::new(Slave(self.clone())))
    }

    fn link(&self, master: bool) -> TtyLink {
        TtyLink {
            control: self.control.clone(),
            master,
            index: self.index,
        }
    }

    fn signal(&self, sig: i32) {
        self.registry.signal(self.control.foreground(), sig);
    }

    /// The ioctls both ends answer (the master's act on the slave's
    /// settings, as Linux's).
    fn common_ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        match cmd {
            TCGETS => {
                let t = self.lock().termios;
                mem.copy_out(arg, t.as_bytes()).map(|()| 0)
            }
            TCSETS | TCSETSW | TCSETSF => {
                let mut t = Termios::default();
                mem.copy_in(arg, t.as_mut_bytes())?;
                let mut st = self.lock();
                if cmd == TCSETSF {
                    st.flush_input();
                }
                st.set_termios(t);
                drop(st);
                self.queue.notify();
                Ok(0)
            }
            TIOCGWINSZ => {
                let w = self.lock().winsize;
                mem.copy_out(arg, w.as_bytes()).map(|()| 0)
            }
            TIOCSWINSZ => {
                let mut buf = [0u8; 8];
                mem.copy_in(arg, &mut buf)?;
                let w = Winsize::read_from_bytes(&buf).map_err(|_| Errno::EFAULT)?;
                self.set_winsize(w);
                Ok(0)
            }
            // tcdrain and tcflow: output is never held back.
            TCSBRK | TCXONC => Ok(0),
            _ => Err(Errno::ENOTTY),
        }
    }
}

/// A pty's master end.
pub struct Master(Arc<Pty>);

impl Master {
    pub fn pty(&self) -> &Arc<Pty> {
        &self.0
    }
}

impl Drop for Master {
    /// Hangs the slave up: its readers see end of file, its writers EIO,
    /// its session's leader SIGHUP; the number leaves the directory.
    fn drop(&mut self) {
        let pty = &self.0;
        pty.lock().master_open = false;
        lock(&pty.registry.visible).remove(&pty.index);
        let sid = std::mem::take(&mut *pty.control.lock()).session;
        if let (Some(sid), Some(s)) = (sid, pty.registry.signals.get()) {
            s.hangup(sid);
        }
        pty.queue.notify();
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        lock(&self.registry.ptys).remove(&self.index);
    }
}

impl FileOps for Master {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    fn is_terminal(&self) -> bool {
        true
    }

    fn terminal_lflag(&self) -> Result<u32, Errno> {
        Ok(self.0.lock().termios.c_lflag)
    }

    fn tty(&self) -> Option<TtyLink> {
        Some(self.0.link(true))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.0.lock();
        if st.out.is_empty() {
            return Err(if st.slave_closed {
                Errno::EIO
            } else {
                Errno::EAGAIN
            });
        }
        let n = buf.len().min(st.out.len());
        for (b, c) in buf.iter_mut().zip(st.out.drain(..n)) {
            *b = c;
        }
        drop(st);
        self.0.queue.notify_events(POLLOUT | POLLWRNORM);
        Ok(n)
    }

    fn write(&self, buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        let mut st = self.0.lock();
        let mut done = 0;
        let mut signals = Vec::new();
        for &c in buf {
            if st.input_len() >= INPUT_MAX {
                break;
            }
            signals.extend(st.receive(c));
            done += 1;
        }
        drop(st);
        for sig in signals {
            self.0.signal(sig);
        }
        if done == 0 && !buf.is_empty() {
            return Err(Errno::EAGAIN);
        }
        self.0.queue.notify();
        Ok(done)
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.0.queue.register(w);
        }
        let st = self.0.lock();
        let mut ev = 0;
        if !st.out.is_empty() {
            ev |= POLLIN | POLLRDNORM;
        }
        if st.input_len() < INPUT_MAX {
            ev |= POLLOUT | POLLWRNORM;
        }
        if st.slave_closed {
            ev |= POLLHUP;
        }
        ev
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        let pty = &self.0;
        match cmd {
            TIOCGPTN => mem.copy_out(arg, pty.index.as_bytes()).map(|()| 0),
            TIOCSPTLCK => {
                let mut v = 0i32;
                mem.copy_in(arg, v.as_mut_bytes())?;
                pty.lock().locked = v != 0;
                Ok(0)
            }
            TIOCGPTLCK => {
                let v = i32::from(pty.lock().locked);
                mem.copy_out(arg, v.as_bytes()).map(|()| 0)
            }
            FIONREAD => {
                let n = pty.lock().out.len() as i32;
                mem.copy_out(arg, n.as_bytes()).map(|()| 0)
            }
            TCFLSH => flush(pty, arg, true),
            _ => pty.common_ioctl(cmd, arg, mem),
        }
    }
}

/// TCFLSH from either end: TCIFLUSH flushes what that end reads.
fn flush(pty: &Pty, arg: u64, master: bool) -> Result<u64, Errno> {
    let (input, output) = match arg {
        0 => (true, false),
        1 => (false, true),
        2 => (true, true),
        _ => return Err(Errno::EINVAL),
    };
    let mut st = pty.lock();
    let (slave_in, out) = if master {
        (output, input)
    } else {
        (input, output)
    };
    if slave_in {
        st.flush_input();
    }
    if out {
        st.out.clear();
    }
    drop(st);
    pty.queue.notify();
    Ok(0)
}

/// An open slave.
pub struct Slave(Arc<Pty>);

impl Drop for Slave {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.slaves -= 1;
        if st.slaves == 0 {
            st.slave_closed = true;
        }
        drop(st);
        self.0.queue.notify();
    }
}

impl FileOps for Slave {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    fn is_terminal(&self) -> bool {
        true
    }

    fn terminal_lflag(&self) -> Result<u32, Errno> {
        Ok(self.0.lock().termios.c_lflag)
    }

    fn tty(&self) -> Option<TtyLink> {
        Some(self.0.link(false))
    }

    fn read(&self, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
        let mut st = self.0.lock();
        // A hung-up terminal reads as end of file.
        if !st.master_open || buf.is_empty() {
            return Ok(0);
        }
        let n = if st.lflag(ICANON) {
            let Some(line) = st.lines.front_mut() else {
                return Err(Errno::EAGAIN);
            };
            let n = line.len().min(buf.len());
            buf[..n].copy_from_slice(&line[..n]);
            line.drain(..n);
            if line.is_empty() {
                st.lines.pop_front();
            }
            n
        } else {
            let cc = st.termios.c_cc;
            let (vmin, vtime) = (usize::from(cc[VMIN as usize]), cc[VTIME as usize]);
            if st.raw.is_empty() {
                if vmin == 0 && vtime == 0 {
                    return Ok(0);
                }
                return Err(Errno::EAGAIN);
            }
            // Short of VMIN bytes a blocking read waits on.
            if st.raw.len() < vmin.min(buf.len()) && flags & O_NONBLOCK != 0 && vtime == 0 {
                return Err(Errno::EAGAIN);
            }
            let n = buf.len().min(st.raw.len());
            for (b, c) in buf.iter_mut().zip(st.raw.drain(..n)) {
                *b = c;
            }
            n
        };
        drop(st);
        self.0.queue.notify_events(POLLOUT | POLLWRNORM);
        Ok(n)
    }

    fn write(&self, buf: &[u8], _flags: i32) -> Result<usize, Errno> {
        let mut st = self.0.lock();
        if !st.master_open {
            return Err(Errno::EIO);
        }
        let mut done = 0;
        for &c in buf {
            if st.out.len() >= OUTPUT_MAX {
                break;
            }
            st.output(c);
            done += 1;
        }
        drop(st);
        if done == 0 && !buf.is_empty() {
            return Err(Errno::EAGAIN);
        }
        self.0.queue.notify();
        Ok(done)
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.0.queue.register(w);
        }
        let st = self.0.lock();
        if !st.master_open {
            return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLERR | POLLHUP;
        }
        let mut ev = 0;
        if st.readable() {
            ev |= POLLIN | POLLRDNORM;
        }
        if st.out.len() < OUTPUT_MAX {
            ev |= POLLOUT | POLLWRNORM;
        }
        ev
    }

    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        let pty = &self.0;
        if !pty.lock().master_open {
            return Err(Errno::EIO);
        }
        match cmd {
            FIONREAD => {
                let st = pty.lock();
                let n = if st.lflag(ICANON) {
                    st.lines.iter().map(Vec::len).sum()
                } else {
                    st.raw.len()
                } as i32;
                drop(st);
                mem.copy_out(arg, n.as_bytes()).map(|()| 0)
            }
            TIOCOUTQ => {
                let n = pty.lock().out.len() as i32;
                mem.copy_out(arg, n.as_bytes()).map(|()| 0)
            }
            TCFLSH => flush(pty, arg, false),
            _ => pty.common_ioctl(cmd, arg, mem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(st: &mut State, input: &[u8]) -> Vec<i32> {
        input.iter().filter_map(|&c| st.receive(c)).collect()
    }

    fn out(st: &mut State) -> Vec<u8> {
        st.out.drain(..).collect()
    }

    #[test]
    fn canonical_editing_and_echo() {
        let mut st = State::new();
        assert!(feed(&mut st, b"ab\x7fc\r").is_empty());
        assert_eq!(st.lines.pop_front().as_deref(), Some(&b"ac\n"[..]));
        assert_eq!(out(&mut st), b"ab\x08 \x08c\r\n");
        feed(&mut st, b"xyz\x15q\x04");
        assert_eq!(st.lines.pop_front().as_deref(), Some(&b"q"[..]));
        assert_eq!(out(&mut st), b"xyz\x08 \x08\x08 \x08\x08 \x08q");
        feed(&mut st, b"\x04");
        assert_eq!(st.lines.pop_front().as_deref(), Some(&b""[..]));
    }

    #[test]
    fn signal_characters_flush_and_echo() {
        let mut st = State::new();
        assert_eq!(feed(&mut st, b"pending\x03"), [SIGINT]);
        assert_eq!(st.input_len(), 0);
        assert!(out(&mut st).ends_with(b"^C"));
        assert_eq!(feed(&mut st, b"\x1c\x1a"), [SIGQUIT, SIGTSTP]);
        st.termios.c_lflag &= !ISIG;
        assert!(feed(&mut st, b"\x03").is_empty());
    }

    #[test]
    fn raw_mode_and_output_processing() {
        let mut st = State::new();
        feed(&mut st, b"partial");
        assert_eq!(out(&mut st), b"partial");
        let mut t = st.termios;
        t.c_lflag &= !(ICANON | ECHO);
        st.set_termios(t);
        assert_eq!(st.raw.len(), 7);
        assert!(st.readable());
        feed(&mut st, b"\r");
        assert_eq!(st.raw.back(), Some(&b'\n'));
        assert!(st.out.is_empty());
        st.output(b'\n');
        assert_eq!(out(&mut st), b"\r\n");
        st.termios.c_oflag &= !OPOST;
        st.output(b'\n');
        assert_eq!(out(&mut st), b"\n");
    }
}
