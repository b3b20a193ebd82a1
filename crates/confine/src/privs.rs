//! Privileges: capabilities, no_new_privs and resource limits.
//!
//! Capabilities are per thread: `drop_privileges` must run before the
//! process starts any thread, which then inherit the reduced sets.

use nix::libc;
use rustix::process::{setrlimit, Resource, Rlimit};
use rustix::thread::{set_capabilities, CapabilityFlags, CapabilitySets};

use crate::{host, last_errno, Error};

/// The capabilities the gofer keeps: enough to serve the host's files with
/// the caller's (root's) access and to set owners and modes of the files
/// it creates, and nothing else (no CAP_SYS_ADMIN, CAP_MKNOD, CAP_NET_*,
/// CAP_SYS_PTRACE ...).
pub const GOFER_CAPS: CapabilityFlags = CapabilityFlags::CHOWN
    .union(CapabilityFlags::DAC_OVERRIDE)
    .union(CapabilityFlags::DAC_READ_SEARCH)
    .union(CapabilityFlags::FOWNER)
    .union(CapabilityFlags::FSETID);

/// Reduces the calling thread to `keep` (empty for the sentry):
/// bounding, ambient and inheritable sets emptied, effective and permitted
/// set to `keep`, no_new_privs set, and no core dumps (which would write the
/// sandbox's memory to the host).
pub fn drop_privileges(keep: CapabilityFlags) -> Result<(), Error> {
    // SAFETY: prctl with integer arguments has no memory effects.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(last_errno("clearing ambient capabilities"));
    }
    for cap in 0..64 {
        if keep.bits() & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: as above.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r != 0 {
            match nix::errno::Errno::last() {
                // Past the kernel's last capability.
                nix::errno::Errno::EINVAL => break,
                _ => return Err(last_errno("dropping the bounding set")),
            }
        }
    }
    set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilityFlags::empty(),
        },
    )
    .map_err(host("capset"))?;
    rustix::thread::set_no_new_privs(true).map_err(host("no_new_privs"))?;
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, none).map_err(host("RLIMIT_CORE"))
}

/// Caps the process's descriptors at `limit` (soft and hard), or at its
/// hard limit if that is lower and it may not raise it; returns the cap.
pub fn limit_files(limit: u64) -> Result<u64, Error> {
    let set = |n: u64| {
        let lim = Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        setrlimit(Resource::Nofile, lim).map(|()| n)
    };
    set(limit).or_else(|_| {
        let hard = rustix::process::getrlimit(Resource::Nofile).maximum;
        set(hard.map_or(limit, |h| h.min(limit))).map_err(host("RLIMIT_NOFILE"))
    })
}
