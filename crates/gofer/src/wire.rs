//! Sending and receiving one message, with at most one FD attached.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::protocol::MAX_MESSAGE;

pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        match sendmsg(
            sock,
            &[IoSlice::new(bytes)],
            &mut ancillary,
            SendFlags::NOSIGNAL,
        ) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receives one message; `None` when the peer has closed the connection.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<Option<Option<OwnedFd>>, Errno> {
    buf.resize(MAX_MESSAGE, 0);
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            sock.as_fd(),
            &mut [IoSliceMut::new(buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            r => break r?,
        }
    };
    let mut fd = None;
    for m in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            // Keep the first; any extra FDs are closed as they drop.
            for f in fds {
                fd.get_or_insert(f);
            }
        }
    }
    if msg.bytes == 0 {
        return Ok(None);
    }
    // A truncated message is not a message we understand.
    if msg.flags.contains(RecvFlags::TRUNC) {
        return Err(Errno::MSGSIZE);
    }
    buf.truncate(msg.bytes);
    Ok(Some(fd))
}
