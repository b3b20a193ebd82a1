//! System information: uname, sysinfo, getrandom, CPUs and scheduling.

use veil_abi::{Errno, SysResult, Sysinfo, Sysno, Utsname};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::kernel::{KERNEL_RELEASE, KERNEL_VERSION};
use crate::task::Task;

const GRND_NONBLOCK: u32 = 1;
const GRND_RANDOM: u32 = 2;
const GRND_INSECURE: u32 = 4;
/// Largest single getrandom request served, as Linux caps it.
const GETRANDOM_MAX: usize = (1 << 25) - 1;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::uname, uname, &[Hex]);
    t.partial(
        Sysno::sysinfo,
        sysinfo,
        &[Hex],
        "memory figures are the host's; load averages are zero",
    );
    t.full(Sysno::getrandom, getrandom, &[OutBuf, UInt, Hex]);
}

fn field(s: &str) -> [u8; 65] {
    let mut f = [0u8; 65];
    let n = s.len().min(64);
    f[..n].copy_from_slice(&s.as_bytes()[..n]);
    f
}

fn uname(t: &mut Task, a: &Args) -> SysResult {
    let mut nodename = [0u8; 65];
    let n = t.kernel.hostname.len().min(64);
    nodename[..n].copy_from_slice(&t.kernel.hostname[..n]);
    let u = Utsname {
        sysname: field("Linux"),
        nodename,
        release: field(KERNEL_RELEASE),
        version: field(KERNEL_VERSION),
        machine: field("x86_64"),
        domainname: field("(none)"),
    };
    t.mm.write_obj(a.u64(0), &u).map(|()| 0)
}

fn sysinfo(t: &mut Task, a: &Args) -> SysResult {
    // The same memory as /proc/meminfo shows, in bytes.
    let (total, free) = crate::procfs::memory(&t.kernel);
    let info = Sysinfo {
        uptime: t.kernel.boot_time.elapsed().as_secs() as i64,
        totalram: total,
        freeram: free,
        sharedram: 0,
        bufferram: 0,
        procs: 1,
        mem_unit: 1,
        ..Sysinfo::default()
    };
    t.mm.write_obj(a.u64(0), &info).map(|()| 0)
}

fn getrandom(t: &mut Task, a: &Args) -> SysResult {
    let flags = a.u32(2);
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & GRND_RANDOM != 0 && flags & GRND_INSECURE != 0
    {
        return Err(Errno::EINVAL);
    }
    let len = a.usize(1).min(GETRANDOM_MAX);
    let mut done = 0;
    let mut buf = vec![0u8; len.min(64 << 10)];
    while done < len {
        let n = buf.len().min(len - done);
        rustix::rand::getrandom(&mut buf[..n], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| Errno::new(e.raw_os_error()))?;
        t.mm.copy_out(a.u64(0) + done as u64, &buf[..n])?;
        done += n;
    }
    Ok(len as u64)
}
