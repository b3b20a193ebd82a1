//! The sentry: veil's user-space kernel. It serves every system call of the
//! sandboxed application itself; none of them reaches the host kernel.

pub mod boot;
pub mod console;
pub mod control;
mod cred;
pub mod kernel;
pub mod loader;
pub mod mm;
mod pidfd;
pub mod posix_timer;
mod procfs;
pub mod signal;
mod signalfd;
pub mod sigsend;
pub mod syscalls;
mod sysfs;
pub mod task;
mod timer;
mod timerfd;
pub mod tty;
pub mod vdso;
mod vfsglue;

pub use boot::{boot, BootConfig, BootError, CapSets, ProcessSpec, RlimitSpec, Stdio};
pub use procfs::read_host_facts;
pub use task::ExitStatus;
