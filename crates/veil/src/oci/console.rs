//! The container's console (`process.terminal`): a host pty whose master
//! goes to whoever listens on `--console-socket`, as runc sends it, and
//! whose slave the sentry joins to a pty of the sandbox's own.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::Context as _;
use rustix::fs::{Mode, OFlags};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// What runc sends with the master, and its receivers may check.
const PAYLOAD: &[u8] = b"/dev/ptmx";

/// Opens a host pty of `size` (rows, columns), sends its master to the
/// socket at `socket` and returns the slave, raw: the sandbox's own line
/// discipline does the cooking.
pub fn open(socket: &Path, size: Option<(u16, u16)>) -> anyhow::Result<OwnedFd> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .context("opening a pty master")?;
    rustix::pty::grantpt(&master).context("grantpt")?;
    rustix::pty::unlockpt(&master).context("unlockpt")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).context("ptsname")?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("opening the pty's slave")?;
    if let Some((rows, cols)) = size {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&slave, ws).context("setting the console's size")?;
    }
    make_raw(&slave)?;
    send_master(socket, &master)
        .with_context(|| format!("sending the console to {}", socket.display()))?;
    Ok(slave)
}

/// cfmakeraw on a terminal.
fn make_raw(tty: &impl AsFd) -> anyhow::Result<()> {
    let mut t = rustix::termios::tcgetattr(tty).context("reading terminal settings")?;
    t.make_raw();
    rustix::termios::tcsetattr(tty, rustix::termios::OptionalActions::Now, &t)
        .context("setting terminal settings")
}

fn send_master(socket: &Path, master: &OwnedFd) -> anyhow::Result<()> {
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect_unix(&sock, &SocketAddrUnix::new(socket)?)?;
    let fds = [master.as_fd()];
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    cmsg.push(SendAncillaryMessage::ScmRights(&fds));
    let iov = [std::io::IoSlice::new(PAYLOAD)];
    let n = rustix::net::sendmsg(&sock, &iov, &mut cmsg, SendFlags::empty())?;
    anyhow::ensure!(n == PAYLOAD.len(), "a short write");
    Ok(())
}

/// veil's controlling terminal as the console of a container that `run`
/// waits for: raw while the container has it, as runc makes it, and put
/// back as it was when dropped.
pub struct OwnTerminal {
    tty: OwnedFd,
    saved: rustix::termios::Termios,
}

impl OwnTerminal {
    pub fn open() -> anyhow::Result<OwnTerminal> {
        let tty = rustix::fs::open("/dev/tty", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(std::io::Error::from)
            .context("open /dev/tty")?;
        let saved = rustix::termios::tcgetattr(&tty).context("reading terminal settings")?;
        make_raw(&tty)?;
        Ok(OwnTerminal { tty, saved })
    }

    pub fn try_clone(&self) -> anyhow::Result<OwnedFd> {
        self.tty.try_clone().context("duplicating the terminal")
    }
}

impl Drop for OwnTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            &self.tty,
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
