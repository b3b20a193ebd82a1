//! Moving data between files in the sentry: sendfile, splice, tee,
//! vmsplice and copy_file_range.
//!
//! Nothing is moved by reference: data is staged through a bounded buffer.
//! What leaves a pipe is only peeked until the other side has taken it, and
//! a seekable source is read at an explicit offset that advances by what
//! was written, so a short write loses nothing. Only a non-pipe stream
//! source (a host FD) is read for real, as much as a pipe sink has room
//! for.

use veil_abi::mode::{S_IFDIR, S_IFREG};
use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::wait::events::{POLLERR, POLLIN, POLLOUT};
use veil_vfs::OpenFile;

use super::fs::{read_iovecs, sigpipe, wait_host_readable, wait_io, CHUNK, MAX_RW};
use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const SPLICE_F_NONBLOCK: u32 = linux_raw_sys::general::SPLICE_F_NONBLOCK;
const SPLICE_F_ALL: u32 = 0xf;
const O_NONBLOCK: i32 = linux_raw_sys::general::O_NONBLOCK as i32;
const O_APPEND: i32 = linux_raw_sys::general::O_APPEND as i32;
const SEEK_SET: u32 = linux_raw_sys::general::SEEK_SET;
const SEEK_CUR: u32 = linux_raw_sys::general::SEEK_CUR;
/// Largest file offset (MAX_LFS_FILESIZE).
const MAX_OFFSET: u64 = i64::MAX as u64;

pub(super) fn register(t: &mut Table) {
    const HOST_NOTE: &str = "host descriptors (the sandbox's stdio) are plain streams, never pipes: a splice needs a pipe made in the sandbox at one end, and sendfile reads a host pipe instead of failing with EINVAL";
    t.partial(Sysno::sendfile, sendfile, &[Fd, Fd, Hex, UInt], HOST_NOTE);
    t.partial(
        Sysno::splice,
        splice,
        &[Fd, Hex, Fd, Hex, UInt, Hex],
        HOST_NOTE,
    );
    t.full(Sysno::tee, tee, &[Fd, Fd, UInt, Hex]);
    t.partial(
        Sysno::vmsplice,
        vmsplice,
        &[Fd, Hex, UInt, Hex],
        "copies (SPLICE_F_GIFT pages are not donated)",
    );
    t.partial(
        Sysno::copy_file_range,
        copy_file_range,
        &[Fd, Hex, Fd, Hex, UInt, Hex],
        "copies within one mount; EXDEV across mounts",
    );
}

/// Where data comes from.
enum Src<'a> {
    /// Peeked, then consumed as far as the sink took it.
    Pipe(&'a OpenFile),
    /// A seekable file, read at the offset.
    At(&'a OpenFile, u64),
    /// A stream that is not a pipe: what is read is gone.
    Stream(&'a OpenFile),
}

/// Where data goes.
enum Dst<'a> {
    Pipe(&'a OpenFile),
    At(&'a OpenFile, u64),
    /// Written at the file's own position (or its end with O_APPEND).
    Write(&'a OpenFile),
}

/// Outcome of one step that found nothing to do yet.
enum Stall {
    /// The source has no data, but writers.
    Input,
    /// The sink pipe is full.
    Output,
}

/// Moves up to `len` bytes, leaving `src` and `dst` at their final
/// offsets. `nonblock` makes a stall EAGAIN instead of a wait. With `keep`
/// (tee) a pipe source is not consumed and one batch is moved.
fn pump(
    t: &Task,
    src: &mut Src,
    dst: &mut Dst,
    len: usize,
    nonblock: bool,
    keep: bool,
) -> SysResult {
    let len = len.min(MAX_RW);
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut done = 0usize;
    while done < len {
        let want = buf.len().min(len - done);
        // A host stream is read once, after waiting for it where a signal
        // can interrupt the wait.
        if let Src::Stream(f) = src {
            if !nonblock && f.flags() & O_NONBLOCK == 0 {
                wait_host_readable(t, f)?;
            }
        }
        match step(src, dst, &mut buf[..want], keep) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if keep || matches!(src, Src::Stream(_)) {
                    break;
                }
            }
            Err(Ok(_)) if done > 0 => break,
            Err(Ok(_)) if nonblock => return Err(Errno::EAGAIN),
            Err(Ok(stall)) => {
                let (file, events) = match (&stall, &*src, &*dst) {
                    (Stall::Input, Src::Pipe(f), _) => (*f, POLLIN),
                    (_, _, Dst::Pipe(f)) => (*f, POLLOUT),
                    _ => return Err(Errno::EAGAIN),
                };
                wait_ready(t, file, events)?;
            }
            Err(Err(e)) => {
                if e == Errno::EPIPE {
                    sigpipe(t);
                }
                if done > 0 {
                    break;
                }
                return Err(e);
            }
        }
    }
    Ok(done as u64)
}

/// Blocks until `file` shows one of `events` (or an error or hangup); a
/// signal ends the wait.
fn wait_ready(t: &Task, file: &OpenFile, events: u32) -> Result<(), Errno> {
    use veil_vfs::wait::events::POLLHUP;
    wait_io(t, file, || {
        if file.poll(None) & (events | POLLERR | POLLHUP) != 0 {
            Ok(0)
        } else {
            Err(Errno::EAGAIN)
        }
    })
    .map(drop)
}

/// One batch: at most `buf.len()` bytes from `src` to `dst`. Ok(0) is the
/// end of the source.
fn step(
    src: &mut Src,
    dst: &mut Dst,
    buf: &mut [u8],
    keep: bool,
) -> Result<usize, Result<Stall, Errno>> {
    let room = match dst {
        Dst::Pipe(p) => {
            if p.poll(None) & POLLERR != 0 {
                return Err(Err(Errno::EPIPE));
            }
            match p.room() {
                0 => return Err(Ok(Stall::Output)),
                r => r,
            }
        }
        _ => buf.len(),
    };
    let cap = room.min(buf.len());
    let buf = &mut buf[..cap];
    let n = match src {
        Src::Pipe(p) => match p.peek(buf) {
            Err(Errno::EAGAIN) => return Err(Ok(Stall::Input)),
            r => r.map_err(Err)?,
        },
        Src::At(f, off) => f.pread(buf, *off).map_err(Err)?,
        Src::Stream(f) => f.read(buf).map_err(Err)?,
    };
    if n == 0 {
        return Ok(0);
    }
    let data = &buf[..n];
    let w = match dst {
        Dst::Pipe(p) => p.write_as(data, true),
        Dst::At(f, off) => f.pwrite(data, *off),
        Dst::Write(f) => f.write(data),
    }
    .map_err(Err)?;
    match src {
        Src::Pipe(p) if !keep => {
            // Consume what the sink took; the peeked bytes are still first.
            let mut sink = vec![0u8; w];
            p.read_as(&mut sink, true).map_err(Err)?;
        }
        Src::At(_, off) => *off += w as u64,
        _ => {}
    }
    if let Dst::At(_, off) = dst {
        *off += w as u64;
    }
    Ok(w)
}

/// Reads a `loff_t` argument: EINVAL if negative.
fn read_off(t: &Task, addr: u64) -> Result<u64, Errno> {
    let off: i64 = t.mm.read_obj(addr)?;
    u64::try_from(off).map_err(|_| Errno::EINVAL)
}

fn write_off(t: &Task, addr: u64, off: u64) -> Result<(), Errno> {
    t.mm.write_obj(addr, &(off as i64))
}

/// A seekable file's current position.
fn position(f: &OpenFile) -> Result<u64, Errno> {
    f.seek(0, SEEK_CUR)
}

/// A source that is not a pipe: a seekable file at `off` or its own
/// position, or a stream.
fn file_src<'a>(f: &'a OpenFile, off: Option<u64>) -> Result<Src<'a>, Errno> {
    match off {
        Some(off) => Ok(Src::At(f, off)),
        // Host FDs; the sandbox's other streams (eventfd and the like)
        // cannot feed a splice, as on Linux.
        None if f.is_stream() && f.needs_repoll() => Ok(Src::Stream(f)),
        None if f.is_stream() => Err(Errno::EINVAL),
        None => Ok(Src::At(f, position(f)?)),
    }
}

fn sendfile(t: &mut Task, a: &Args) -> SysResult {
    let out = t.fds.get(a.i32(0))?;
    let inp = t.fds.get(a.i32(1))?;
    let off_addr = a.u64(2);
    if !inp.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    if out.flags() & O_APPEND != 0 || inp.is_pipe() || inp.file_type() == S_IFDIR {
        return Err(Errno::EINVAL);
    }
    let off = match off_addr {
        0 => None,
        addr if inp.is_stream() => {
            read_off(t, addr)?;
            return Err(Errno::ESPIPE);
        }
        addr => Some(read_off(t, addr)?),
    };
    let len = a.usize(3);
    if len == 0 {
        return Ok(0);
    }
    let mut src = file_src(&inp, off)?;
    // Linux takes a pipe sink's blocking mode from the source.
    let nonblock = inp.flags() & O_NONBLOCK != 0;
    let r = pump(t, &mut src, &mut sink(&out, None), len, nonblock, false);
    finish_src(t, &src, off_addr)?;
    r
}

/// After a transfer from a non-pipe source: writes its offset back to the
/// caller's `loff_t`, or moves the file's own position.
fn finish_src(t: &Task, src: &Src, off_addr: u64) -> Result<(), Errno> {
    match (src, off_addr) {
        (Src::At(f, end), 0) => {
            f.seek(*end as i64, SEEK_SET)?;
        }
        (Src::At(_, end), addr) => write_off(t, addr, *end)?,
        _ => {}
    }
    Ok(())
}

/// The sink for `f`: a pipe, a seekable file at `off`, or the file's own
/// position.
fn sink(f: &OpenFile, off: Option<u64>) -> Dst<'_> {
    match off {
        _ if f.is_pipe() => Dst::Pipe(f),
        Some(off) => Dst::At(f, off),
        None => Dst::Write(f),
    }
}

fn splice(t: &mut Task, a: &Args) -> SysResult {
    let (off_in, off_out) = (a.u64(1), a.u64(3));
    let (len, flags) = (a.usize(4), a.u32(5));
    if len == 0 {
        return Ok(0);
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = t.fds.get(a.i32(0))?;
    let out = t.fds.get(a.i32(2))?;
    if !inp.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    let nonblock = |p: &OpenFile| flags & SPLICE_F_NONBLOCK != 0 || p.flags() & O_NONBLOCK != 0;
    match (inp.is_pipe(), out.is_pipe()) {
        (true, true) => {
            if off_in != 0 || off_out != 0 {
                return Err(Errno::ESPIPE);
            }
            if same_file(&inp, &out) {
                return Err(Errno::EINVAL);
            }
            let nb = nonblock(&inp) || nonblock(&out);
            pump(
                t,
                &mut Src::Pipe(&inp),
                &mut Dst::Pipe(&out),
                len,
                nb,
                false,
            )
        }
        (true, false) => {
            if off_in != 0 {
                return Err(Errno::ESPIPE);
            }
            if out.flags() & O_APPEND != 0 {
                return Err(Errno::EINVAL);
            }
            let off = match off_out {
                0 => None,
                _ if out.is_stream() => return Err(Errno::ESPIPE),
                addr => Some(read_off(t, addr)?),
            };
            let mut dst = sink(&out, off);
            let r = pump(
                t,
                &mut Src::Pipe(&inp),
                &mut dst,
                len,
                nonblock(&inp),
                false,
            );
            if let (Dst::At(_, end), true) = (&dst, off_out != 0) {
                write_off(t, off_out, *end)?;
            }
            r
        }
        (false, true) => {
            if off_out != 0 {
                return Err(Errno::ESPIPE);
            }
            let off = match off_in {
                0 => None,
                _ if inp.is_stream() => return Err(Errno::ESPIPE),
                addr => Some(read_off(t, addr)?),
            };
            if inp.file_type() == S_IFDIR {
                return Err(Errno::EISDIR);
            }
            let mut src = file_src(&inp, off)?;
            let r = pump(
                t,
                &mut src,
                &mut Dst::Pipe(&out),
                len,
                nonblock(&out),
                false,
            );
            finish_src(t, &src, off_in)?;
            r
        }
        (false, false) => Err(Errno::EINVAL),
    }
}

/// Whether two descriptions are of one file (both ends of a pipe).
fn same_file(a: &OpenFile, b: &OpenFile) -> bool {
    std::ptr::addr_eq(
        std::sync::Arc::as_ptr(a.path().inode()),
        std::sync::Arc::as_ptr(b.path().inode()),
    )
}

fn tee(t: &mut Task, a: &Args) -> SysResult {
    let (len, flags) = (a.usize(2), a.u32(3));
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let inp = t.fds.get(a.i32(0))?;
    let out = t.fds.get(a.i32(1))?;
    if !inp.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    if !inp.is_pipe() || !out.is_pipe() || same_file(&inp, &out) {
        return Err(Errno::EINVAL);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    pump(
        t,
        &mut Src::Pipe(&inp),
        &mut Dst::Pipe(&out),
        len,
        nonblock,
        true,
    )
}

/// vmsplice(2): writes the buffers into a pipe's write end, or reads its
/// read end into them.
fn vmsplice(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(3);
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let file = t.fds.get(a.i32(0))?;
    if !file.is_pipe() {
        return Err(Errno::EBADF);
    }
    let iovs = read_iovecs(t, a.u64(1), a.i32(2))?;
    let write = file.writable();
    if !write && !file.readable() {
        return Err(Errno::EBADF);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || file.flags() & O_NONBLOCK != 0;
    let mut done = 0usize;
    let mut buf = Vec::new();
    'outer: for iov in iovs.iter().filter(|v| v.iov_len > 0) {
        let len = (iov.iov_len as usize).min(MAX_RW - done);
        let mut at = 0;
        while at < len {
            let want = (len - at).min(CHUNK);
            buf.resize(want, 0);
            let addr = iov.iov_base + at as u64;
            let io = |buf: &mut [u8]| match (write, nonblock) {
                (true, true) => file.write_as(buf, true),
                (true, false) => wait_io(t, &file, || file.write_as(buf, true)),
                (false, true) => file.read_as(buf, true),
                (false, false) => wait_io(t, &file, || file.read_as(buf, true)),
            };
            let r = match write {
                true => t.mm.copy_in(addr, &mut buf).and_then(|()| io(&mut buf)),
                false => io(&mut buf).and_then(|n| t.mm.copy_out(addr, &buf[..n]).map(|()| n)),
            };
            let n = match r {
                Ok(n) => n,
                Err(e) => {
                    if e == Errno::EPIPE {
                        sigpipe(t);
                    }
                    if done > 0 {
                        break 'outer;
                    }
                    return Err(e);
                }
            };
            done += n;
            at += n;
            // A read takes what is there; a write stops when the pipe fills.
            if n < want || (!write && n > 0 && at < len && file.poll(None) & POLLIN == 0) {
                break 'outer;
            }
        }
        if done >= MAX_RW {
            break;
        }
    }
    Ok(done as u64)
}

/// copy_file_range(2): between regular files of one mount.
fn copy_file_range(t: &mut Task, a: &Args) -> SysResult {
    let (off_in, off_out) = (a.u64(1), a.u64(3));
    let (len, flags) = (a.usize(4), a.u32(5));
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = t.fds.get(a.i32(0))?;
    let out = t.fds.get(a.i32(2))?;
    if !inp.readable() || !out.writable() || out.flags() & O_APPEND != 0 {
        return Err(Errno::EBADF);
    }
    if inp.file_type() == S_IFDIR || out.file_type() == S_IFDIR {
        return Err(Errno::EISDIR);
    }
    if inp.file_type() != S_IFREG || out.file_type() != S_IFREG {
        return Err(Errno::EINVAL);
    }
    let pos_in = match off_in {
        0 => position(&inp)?,
        addr => read_off(t, addr)?,
    };
    let pos_out = match off_out {
        0 => position(&out)?,
        addr => read_off(t, addr)?,
    };
    let len = len.min(MAX_RW);
    let n = len as u64;
    if pos_in.checked_add(n).is_none_or(|e| e > MAX_OFFSET)
        || pos_out.checked_add(n).is_none_or(|e| e > MAX_OFFSET)
    {
        return Err(Errno::EOVERFLOW);
    }
    if !std::sync::Arc::ptr_eq(&inp.path().mount, &out.path().mount) {
        return Err(Errno::EXDEV);
    }
    if same_file(&inp, &out) && pos_in < pos_out + n && pos_out < pos_in + n {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let mut src = Src::At(&inp, pos_in);
    let mut dst = Dst::At(&out, pos_out);
    let r = pump(t, &mut src, &mut dst, len, false, false)?;
    finish_src(t, &src, off_in)?;
    match (dst, off_out) {
        (Dst::At(f, end), 0) => {
            f.seek(end as i64, SEEK_SET)?;
        }
        (Dst::At(_, end), addr) => write_off(t, addr, end)?,
        _ => {}
    }
    Ok(r)
}
