//! A host terminal as a sandbox process's terminal (a container's
//! console): the process gets the slave of a pty of the sandbox's own, and
//! two threads copy bytes between its master and the host terminal, which
//! is raw, so that the sandbox's line discipline does all the cooking (echo,
//! editing, ^C). Window size changes on the host side reach the sandbox's
//! pty, and with them SIGWINCH.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use veil_abi::{Errno, Winsize};
use veil_vfs::pty::{JobState, Master, Pty, SlaveAttr};
use veil_vfs::wait::Waiter;
use veil_vfs::{Creds, FdTable, FileOps, FsContext, OpenFile, PathRef, Vfs, DEFAULT_NOFILE};

use crate::boot::TTY_GID;

const O_RDWR: i32 = linux_raw_sys::general::O_RDWR as i32;
const O_NOCTTY: i32 = linux_raw_sys::general::O_NOCTTY as i32;

/// How often the host terminal's size is looked at when nothing moves.
const WINSIZE_POLL: Duration = Duration::from_millis(100);
/// How long the sentry waits, once the sandbox is done, for the host
/// side to take the last output.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A sandbox pty joined to a host terminal.
pub struct Console {
    host: OwnedFd,
    /// Dropped when the host side hangs up, which hangs the sandbox's
    /// side up in turn.
    master: Mutex<Option<Box<dyn FileOps>>>,
    pty: Arc<Pty>,
    /// Wakes the output thread.
    waiter: Arc<Waiter>,
    done: AtomicBool,
    /// The host terminal's size as last seen.
    host_size: Mutex<Winsize>,
    drained: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Console {
    /// A new pty of `vfs` joined to the host terminal `host`, with the
    /// host's window size; its slave, as /dev/pts/N when the tree of `root`
    /// has devpts there, belongs to `owner` (uid, gid) with mode 0620.
    /// The copying starts with [`Console::start`].
    fn open(
        vfs: &Vfs,
        root: &PathRef,
        host: OwnedFd,
        owner: (u32, u32),
    ) -> Result<(Arc<Console>, Arc<OpenFile>), Errno> {
        let master = vfs.ptys().new_master()?;
        let pty = master
            .as_any()
            .and_then(|a| a.downcast_ref::<Master>())
            .map(|m| m.pty().clone())
            .ok_or(Errno::EIO)?;
        pty.unlock();
        pty.set_attr(SlaveAttr {
            mode: 0o620,
            uid: owner.0,
            gid: owner.1,
        });
        let size = host_winsize(&host).unwrap_or_default();
        pty.set_winsize(size);
        let slave = open_slave(vfs, root, &pty)?;
        let console = Arc::new(Console {
            host,
            master: Mutex::new(Some(master)),
            pty,
            waiter: Waiter::new(),
            done: AtomicBool::new(false),
            host_size: Mutex::new(size),
            drained: Mutex::new(None),
        });
        Ok((console, slave))
    }

    /// A new process's stdio on a new console joined to the host terminal
    /// `host`: a descriptor table with the slave (see [`Console::open`],
    /// owned by `uid` and, as devpts mounted with gid=5 makes it, the tty
    /// group) as 0, 1 and 2. With `dev_console`, the slave is also bound
    /// over /dev/console, as runc does with a container's console.
    pub fn stdio(
        vfs: &Vfs,
        root: &PathRef,
        host: OwnedFd,
        uid: u32,
        dev_console: bool,
    ) -> Result<(Arc<Console>, Arc<FdTable>), Errno> {
        let (console, slave) = Console::open(vfs, root, host, (uid, TTY_GID))?;
        let table = Arc::new(FdTable::new());
        for fd in 0..3 {
            table.insert_at(fd, slave.clone(), false, DEFAULT_NOFILE as usize)?;
        }
        if dev_console {
            bind_dev_console(vfs, root, &slave);
        }
        Ok((console, table))
    }

    /// Makes the console the controlling terminal of the session `sid`
    /// leads, with that session's leader in the foreground.
    pub fn lead(&self, sid: i32) {
        *self.pty.control().lock() = JobState {
            session: Some(sid),
            foreground: sid,
        };
    }

    /// Starts the copying threads; both end after [`Console::finish`] (the
    /// input thread within a poll interval).
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        *lock(&self.drained) = Some(rx);
        let c = self.clone();
        std::thread::Builder::new()
            .name("console-out".into())
            .spawn(move || c.pump_output(&tx))?;
        let c = self.clone();
        std::thread::Builder::new()
            .name("console-in".into())
            .spawn(move || c.pump_input())?;
        Ok(())
    }

    /// The sandbox is done: passes its last output on, waiting a while for
    /// a host side that does not read.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.waiter.wake();
        if let Some(rx) = lock(&self.drained).take() {
            let _ = rx.recv_timeout(DRAIN_TIMEOUT);
        }
    }

    /// Runs `f` on the master, unless hung up.
    fn with_master<R>(&self, f: impl FnOnce(&dyn FileOps) -> R) -> Option<R> {
        lock(&self.master).as_deref().map(f)
    }

    /// Host terminal to master: the sandbox's input. When the host side
    /// hangs up (its master closed), so does the sandbox's pty: its session
    /// leader gets SIGHUP, as on Linux.
    fn pump_input(&self) {
        self.copy_input();
        let master = lock(&self.master).take();
        drop(master);
    }

    fn copy_input(&self) {
        let mut buf = [0u8; 4096];
        let waiter = Waiter::new();
        loop {
            // Polled, not blocked in read(2): an exec'd process's console
            // ends with the process, not with the sentry.
            if self.done.load(Ordering::Acquire) {
                return;
            }
            let mut pfd = [rustix::event::PollFd::new(
                &self.host,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut pfd, WINSIZE_POLL.as_millis() as i32) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {
                    self.sync_winsize();
                    continue;
                }
                Ok(_) => {}
                Err(_) => return,
            }
            let n = match rustix::io::read(&self.host, &mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                // EIO: the host side hung up.
                Err(_) => return,
            };
            let mut data = &buf[..n];
            while !data.is_empty() {
                let written = self.with_master(|m| {
                    m.poll(Some(&waiter));
                    m.write(data, 0)
                });
                match written {
                    Some(Ok(k)) => data = &data[k..],
                    Some(Err(Errno::EAGAIN)) => waiter.wait(Some(WINSIZE_POLL)),
                    _ => return,
                }
                if self.done.load(Ordering::Acquire) {
                    return;
                }
            }
            self.sync_winsize();
        }
    }

    /// Master to host terminal: the sandbox's output. Also carries the host
    /// terminal's size changes over.
    fn pump_output(&self, drained: &mpsc::Sender<()>) {
        let mut buf = [0u8; 4096];
        loop {
            let finishing = self.done.load(Ordering::Acquire);
            // EAGAIN once empty; EIO once every slave is closed.
            while let Some(Ok(n)) = self.with_master(|m| {
                m.poll(Some(&self.waiter));
                m.read(&mut buf, 0)
            }) {
                // A host side gone takes no more output; the sandbox's
                // writes still go through.
                let _ = write_all(&self.host, &buf[..n]);
            }
            if finishing {
                let _ = drained.send(());
                return;
            }
            self.sync_winsize();
            self.waiter.wait(Some(WINSIZE_POLL));
        }
    }

    /// Gives the sandbox's pty the host terminal's size when that changed.
    fn sync_winsize(&self) {
        let Some(size) = host_winsize(&self.host) else {
            return;
        };
        let mut last = lock(&self.host_size);
        if *last != size {
            *last = size;
            drop(last);
            self.pty.set_winsize(size);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn host_winsize(host: &OwnedFd) -> Option<Winsize> {
    let w = rustix::termios::tcgetwinsize(host).ok()?;
    Some(Winsize {
        ws_row: w.ws_row,
        ws_col: w.ws_col,
        ws_xpixel: w.ws_xpixel,
        ws_ypixel: w.ws_ypixel,
    })
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The slave of `pty` as the tree of `root` names it, /dev/pts/N (what
/// tty(1) prints); a nameless one if there is no devpts there.
fn open_slave(vfs: &Vfs, root: &PathRef, pty: &Arc<Pty>) -> Result<Arc<OpenFile>, Errno> {
    let ctx = FsContext::new(root.clone());
    let path = format!("/dev/pts/{}", pty.index());
    let named = vfs
        .open(
            &ctx,
            root,
            path.as_bytes(),
            O_RDWR | O_NOCTTY,
            0,
            &Creds::new(0, 0),
        )
        .ok()
        .filter(|f| f.tty().is_some_and(|l| !l.master && l.index == pty.index()));
    match named {
        Some(f) => Ok(f),
        None => Ok(OpenFile::anonymous("console", O_RDWR, pty.open_slave()?)),
    }
}

/// Binds the slave `slave` over /dev/console of the tree of `root`, as runc
/// does with a container's console; nothing if either is missing.
fn bind_dev_console(vfs: &Vfs, root: &PathRef, slave: &OpenFile) {
    if slave.path().anonymous_name().is_some() {
        return;
    }
    let ctx = FsContext::new(root.clone());
    if let Ok(console) = vfs.lookup(&ctx, root, b"/dev/console", true) {
        if let Err(e) = vfs.bind(slave.path(), &console, false) {
            tracing::warn!("binding the console over /dev/console: {e}");
        }
    }
}
