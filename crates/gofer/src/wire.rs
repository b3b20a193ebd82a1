//! Sending and receiving one SOCK_SEQPACKET message with at most one FD.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        // NOSIGNAL: a vanished peer is an EPIPE to handle, not a SIGPIPE.
        match sendmsg(
            sock,
            &[IoSlice::new(bytes)],
            &mut ancillary,
            SendFlags::NOSIGNAL,
        ) {
            Err(Errno::INTR) => continue,
            r => return r.map(drop),
        }
    }
}

/// Receives one message into `buf`: its length and the first FD attached
/// (any others are closed), or `None` when the peer has closed the
/// connection. A message longer than `buf` is an EMSGSIZE error.
pub fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<Option<(usize, Option<OwnedFd>)>, Errno> {
    let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            r => break r?,
        }
    };
    let fd = ancillary
        .drain()
        .filter_map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => Some(fds),
            _ => None,
        })
        .flatten()
        .reduce(|first, _extra| first);
    // SEQPACKET cannot tell an empty message from a close: both end the
    // connection.
    if msg.bytes == 0 {
        return Ok(None);
    }
    if msg.flags.contains(RecvFlags::TRUNC) {
        return Err(Errno::MSGSIZE);
    }
    Ok(Some((msg.bytes, fd)))
}
