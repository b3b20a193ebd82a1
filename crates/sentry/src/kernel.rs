//! Sandbox-wide state: the platform, the memory file, the filesystem tree,
//! the PID namespace and facts every task shares.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use veil_platform::Platform;
use veil_vfs::Vfs;

use crate::mm::MemoryFile;

/// The kernel release the sandbox reports from uname(2).
pub const KERNEL_RELEASE: &str = "4.4.0";
/// The kernel version string the sandbox reports.
pub const KERNEL_VERSION: &str = "#1 SMP Sun Jan 10 15:06:54 PST 2016";

pub struct Kernel {
    pub platform: Arc<dyn Platform>,
    pub memfile: Arc<MemoryFile>,
    pub vfs: Arc<Vfs>,
    pub hostname: Vec<u8>,
    /// Print every application syscall (`veil --strace`).
    pub strace: bool,
    pub boot_time: Instant,
    next_tid: AtomicI32,
    /// Unsupported syscalls (and other features) already logged once.
    logged: Mutex<HashSet<String>>,
}

impl Kernel {
    pub fn new(
        platform: Arc<dyn Platform>,
        memfile: Arc<MemoryFile>,
        vfs: Arc<Vfs>,
        strace: bool,
    ) -> Kernel {
        Kernel {
            platform,
            memfile,
            vfs,
            hostname: b"veil".to_vec(),
            strace,
            boot_time: Instant::now(),
            next_tid: AtomicI32::new(1),
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// Allocates a thread ID in the sandbox's PID namespace; init gets 1.
    pub fn alloc_tid(&self) -> i32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// Logs `what` the first time it is seen.
    pub fn log_once(&self, what: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.insert(what.to_string()) {
            tracing::info!("unsupported: {what}");
        }
    }
}
