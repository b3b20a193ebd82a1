//! Linux x86-64 ABI types shared by every part of veil: errno values, syscall
//! numbers and the structures that cross the application boundary.

pub mod errno;
pub mod types;

pub use errno::{Errno, SysResult};
pub use syscalls::Sysno;
pub use types::*;

/// Size of a page on x86-64.
pub const PAGE_SIZE: u64 = 4096;

/// Rounds `v` down to a page boundary.
pub const fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

/// Rounds `v` up to a page boundary, or `None` on overflow.
pub const fn page_up(v: u64) -> Option<u64> {
    match v.checked_add(PAGE_SIZE - 1) {
        Some(x) => Some(x & !(PAGE_SIZE - 1)),
        None => None,
    }
}
