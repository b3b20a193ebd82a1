//! Filesystems: each implements [`Inode`](crate::Inode) for its files.

pub mod devfs;
pub mod devpts;
pub mod gofer;
pub mod memfs;
pub mod overlay;

use std::time::{SystemTime, UNIX_EPOCH};

use veil_abi::Timespec;

/// The current time, for timestamps.
pub(crate) fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Linux's encoding of a device number (new_encode_dev).
pub const fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}
