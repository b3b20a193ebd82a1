//! Kernel facilities the sandbox does not have: loadable modules, BPF,
//! kernel keyrings, performance counters, io_uring and ptrace. They fail as
//! on a kernel built without them (ENOSYS); where Linux checks a capability
//! before anything else, a caller without it gets that check's EPERM first,
//! as gVisor does.

use linux_raw_sys::general::{CAP_BPF, CAP_SYS_ADMIN, CAP_SYS_MODULE};
use veil_abi::{Errno, SysResult, Sysno};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

pub(super) fn register(t: &mut Table) {
    const MODULES: &str = "no loadable modules; EPERM without CAP_SYS_MODULE";
    t.unimplemented_checked(
        Sysno::init_module,
        Errno::ENOSYS,
        modules,
        &[Hex, UInt, Path],
        MODULES,
    );
    t.unimplemented_checked(
        Sysno::finit_module,
        Errno::ENOSYS,
        modules,
        &[Fd, Path, Hex],
        MODULES,
    );
    t.unimplemented_checked(
        Sysno::delete_module,
        Errno::ENOSYS,
        modules,
        &[Path, Hex],
        MODULES,
    );
    t.unimplemented_checked(
        Sysno::bpf,
        Errno::ENOSYS,
        bpf,
        &[Int, Hex, UInt],
        "no BPF; EPERM without CAP_BPF or CAP_SYS_ADMIN (as with unprivileged BPF disabled)",
    );
    const KEYS: &str = "no kernel keyrings";
    t.unimplemented(
        Sysno::add_key,
        Errno::ENOSYS,
        &[Path, Path, Hex, UInt, Int],
        KEYS,
    );
    t.unimplemented(
        Sysno::request_key,
        Errno::ENOSYS,
        &[Path, Path, Hex, Int],
        KEYS,
    );
    t.unimplemented(
        Sysno::keyctl,
        Errno::ENOSYS,
        &[Int, Hex, Hex, Hex, Hex],
        KEYS,
    );
    t.unimplemented(
        Sysno::perf_event_open,
        Errno::ENOSYS,
        &[Hex, Int, Int, Int, Hex],
        "no performance counters",
    );
    const URING: &str = "no io_uring; programs fall back to ordinary system calls";
    t.unimplemented(Sysno::io_uring_setup, Errno::ENOSYS, &[UInt, Hex], URING);
    t.unimplemented(
        Sysno::io_uring_enter,
        Errno::ENOSYS,
        &[Fd, UInt, UInt, Hex, Hex, UInt],
        URING,
    );
    t.unimplemented(
        Sysno::io_uring_register,
        Errno::ENOSYS,
        &[Fd, UInt, Hex, UInt],
        URING,
    );
    t.unimplemented(
        Sysno::ptrace,
        Errno::ENOSYS,
        &[Int, Int, Hex, Hex],
        "tracing is not implemented; no process can be traced, inside the sandbox or out",
    );
}

/// init_module, finit_module, delete_module: may_init_module's check.
fn modules(t: &mut Task, _a: &Args) -> SysResult {
    if !t.creds.capable(CAP_SYS_MODULE) {
        return Err(Errno::EPERM);
    }
    t.kernel.log_once("loadable kernel modules");
    Err(Errno::ENOSYS)
}

fn bpf(t: &mut Task, _a: &Args) -> SysResult {
    if !t.creds.capable(CAP_BPF) && !t.creds.capable(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    t.kernel.log_once("bpf");
    Err(Errno::ENOSYS)
}
