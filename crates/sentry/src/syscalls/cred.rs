//! Credentials: user and group IDs, supplementary groups, capabilities.
//! Each thread has its own, as in Linux; glibc makes set*id calls
//! process-wide by running them in every thread (SIGSETXID).

use std::sync::Arc;

use linux_raw_sys::general::{
    _LINUX_CAPABILITY_U32S_1, _LINUX_CAPABILITY_U32S_3, _LINUX_CAPABILITY_VERSION_1,
    _LINUX_CAPABILITY_VERSION_2, _LINUX_CAPABILITY_VERSION_3,
};
use veil_abi::{Errno, SysResult, Sysno};
use veil_vfs::{cap, Creds};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::cred::{self, CapSets, NGROUPS_MAX};
use crate::task::Task;

pub(super) fn register(t: &mut Table) {
    t.full(Sysno::getuid, getuid, &[]);
    t.full(Sysno::geteuid, geteuid, &[]);
    t.full(Sysno::getgid, getgid, &[]);
    t.full(Sysno::getegid, getegid, &[]);
    t.full(Sysno::getresuid, getresuid, &[Hex, Hex, Hex]);
    t.full(Sysno::getresgid, getresgid, &[Hex, Hex, Hex]);
    t.full(Sysno::getgroups, getgroups, &[Int, Hex]);
    const NPROC: &str = "RLIMIT_NPROC is not checked on a new real UID";
    t.partial(Sysno::setuid, setuid, &[UInt], NPROC);
    t.full(Sysno::setgid, setgid, &[UInt]);
    t.partial(Sysno::setreuid, setreuid, &[Int, Int], NPROC);
    t.full(Sysno::setregid, setregid, &[Int, Int]);
    t.partial(Sysno::setresuid, setresuid, &[Int, Int, Int], NPROC);
    t.full(Sysno::setresgid, setresgid, &[Int, Int, Int]);
    t.full(Sysno::setfsuid, setfsuid, &[UInt]);
    t.full(Sysno::setfsgid, setfsgid, &[UInt]);
    t.full(Sysno::setgroups, setgroups, &[Int, Hex]);
    t.full(Sysno::capget, capget, &[Hex, Hex]);
    t.full(Sysno::capset, capset, &[Hex, Hex]);
}

fn getuid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.uid))
}

fn geteuid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.euid))
}

fn getgid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.gid))
}

fn getegid(t: &mut Task, _a: &Args) -> SysResult {
    Ok(u64::from(t.creds.egid))
}

fn write_three(t: &Task, a: &Args, ids: [u32; 3]) -> SysResult {
    for (i, id) in ids.iter().enumerate() {
        t.mm.write_obj(a.u64(i), id)?;
    }
    Ok(0)
}

fn getresuid(t: &mut Task, a: &Args) -> SysResult {
    let c = t.creds.clone();
    write_three(t, a, [c.uid, c.euid, c.suid])
}

fn getresgid(t: &mut Task, a: &Args) -> SysResult {
    let c = t.creds.clone();
    write_three(t, a, [c.gid, c.egid, c.sgid])
}

fn getgroups(t: &mut Task, a: &Args) -> SysResult {
    let size = a.i32(0);
    let groups = &t.creds.groups;
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    t.mm.copy_out(a.u64(1), groups.as_bytes())?;
    Ok(groups.len() as u64)
}

/// Applies a credential change computed from the current credentials.
fn change(t: &mut Task, f: impl FnOnce(&Creds) -> Result<Creds, Errno>) -> SysResult {
    let new = f(&t.creds)?;
    t.set_creds(new);
    Ok(0)
}

fn setuid(t: &mut Task, a: &Args) -> SysResult {
    change(t, |c| cred::setuid(c, a.u32(0)))
}

fn setgid(t: &mut Task, a: &Args) -> SysResult {
    change(t, |c| cred::setgid(c, a.u32(0)))
}

fn setreuid(t: &mut Task, a: &Args) -> SysResult {
    change(t, |c| cred::setreuid(c, a.u32(0), a.u32(1)))
}

fn setregid(t: &mut Task, a: &Args) -> SysResult {
    change(t, |c| cred::setregid(c, a.u32(0), a.u32(1)))
}

fn setresuid(t: &mut Task, a: &Args) -> SysResult {
    change(t, |c| cred::setresuid(c, a.u32(0), a.u32(1), a.u32(2)))
}

fn setresgid(t: &mut Task, a: &Args) -> SysResult {
    change(t, |c| cred::setresgid(c, a.u32(0), a.u32(1), a.u32(2)))
}

/// setfsuid and setfsgid never fail: they return the old ID either way.
fn setfsuid(t: &mut Task, a: &Args) -> SysResult {
    let old = t.creds.fsuid;
    if let Some(new) = cred::setfsuid(&t.creds, a.u32(0)) {
        t.set_creds(new);
    }
    Ok(u64::from(old))
}

fn setfsgid(t: &mut Task, a: &Args) -> SysResult {
    let old = t.creds.fsgid;
    if let Some(new) = cred::setfsgid(&t.creds, a.u32(0)) {
        t.set_creds(new);
    }
    Ok(u64::from(old))
}

fn setgroups(t: &mut Task, a: &Args) -> SysResult {
    if !t.creds.capable(cap::CAP_SETGID) {
        return Err(Errno::EPERM);
    }
    let n = usize::try_from(a.i32(0))
        .ok()
        .filter(|&n| n <= NGROUPS_MAX)
        .ok_or(Errno::EINVAL)?;
    let mut groups = vec![0u32; n];
    t.mm.copy_in(a.u64(1), groups.as_mut_bytes())?;
    change(t, |c| cred::setgroups(c, groups))
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`: one 32-bit slice of each set.
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// How many 32-bit slices a header's version transfers. An unknown
/// version gets the preferred one written back and fails with EINVAL.
fn cap_version(t: &Task, header: u64) -> Result<usize, Errno> {
    let version: u32 = t.mm.read_obj(header)?;
    match version {
        _LINUX_CAPABILITY_VERSION_1 => Ok(_LINUX_CAPABILITY_U32S_1 as usize),
        _LINUX_CAPABILITY_VERSION_2 | _LINUX_CAPABILITY_VERSION_3 => {
            Ok(_LINUX_CAPABILITY_U32S_3 as usize)
        }
        _ => {
            t.mm.write_obj(header, &_LINUX_CAPABILITY_VERSION_3)?;
            Err(Errno::EINVAL)
        }
    }
}

fn capget(t: &mut Task, a: &Args) -> SysResult {
    let (header, data) = (a.u64(0), a.u64(1));
    let words = match cap_version(t, header) {
        // A NULL data pointer asks for the preferred version only.
        Err(Errno::EINVAL) if data == 0 => return Ok(0),
        Err(e) => return Err(e),
        Ok(_) if data == 0 => return Ok(0),
        Ok(n) => n,
    };
    let h: CapHeader = t.mm.read_obj(header)?;
    if h.pid < 0 {
        return Err(Errno::EINVAL);
    }
    let creds = creds_of(t, h.pid)?;
    let slice = |i: usize| CapData {
        effective: (creds.cap_effective >> (32 * i)) as u32,
        permitted: (creds.cap_permitted >> (32 * i)) as u32,
        inheritable: (creds.cap_inheritable >> (32 * i)) as u32,
    };
    let out: Vec<CapData> = (0..words).map(slice).collect();
    t.mm.copy_out(data, out.as_slice().as_bytes())?;
    Ok(0)
}

fn capset(t: &mut Task, a: &Args) -> SysResult {
    let words = cap_version(t, a.u64(0))?;
    let h: CapHeader = t.mm.read_obj(a.u64(0))?;
    // Only the calling thread's sets may change.
    if h.pid != 0 && h.pid != t.tid {
        return Err(Errno::EPERM);
    }
    let mut data = [CapData::default(); 2];
    t.mm.copy_in(a.u64(1), data[..words].as_mut_bytes())?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    let sets = CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    };
    change(t, |c| cred::capset(c, sets))
}

/// The credentials of the task with thread ID `tid` (0 for the caller).
pub fn creds_of(t: &Task, tid: i32) -> Result<Arc<Creds>, Errno> {
    if tid == 0 || tid == t.tid {
        Ok(t.creds.clone())
    } else {
        Ok(t.kernel.task(tid).ok_or(Errno::ESRCH)?.creds())
    }
}
