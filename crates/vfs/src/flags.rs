//! Linux's flag values, typed as the syscall glue passes them.

use linux_raw_sys::general as g;

pub const O_ACCMODE: i32 = g::O_ACCMODE as i32;
pub const O_RDONLY: i32 = g::O_RDONLY as i32;
pub const O_WRONLY: i32 = g::O_WRONLY as i32;
pub const O_RDWR: i32 = g::O_RDWR as i32;
pub const O_CREAT: i32 = g::O_CREAT as i32;
pub const O_EXCL: i32 = g::O_EXCL as i32;
pub const O_NOCTTY: i32 = g::O_NOCTTY as i32;
pub const O_TRUNC: i32 = g::O_TRUNC as i32;
pub const O_APPEND: i32 = g::O_APPEND as i32;
pub const O_NONBLOCK: i32 = g::O_NONBLOCK as i32;
pub const O_ASYNC: i32 = g::FASYNC as i32;
pub const O_DIRECT: i32 = g::O_DIRECT as i32;
pub const O_LARGEFILE: i32 = g::O_LARGEFILE as i32;
pub const O_DIRECTORY: i32 = g::O_DIRECTORY as i32;
pub const O_NOFOLLOW: i32 = g::O_NOFOLLOW as i32;
pub const O_NOATIME: i32 = g::O_NOATIME as i32;
pub const O_CLOEXEC: i32 = g::O_CLOEXEC as i32;
pub const O_PATH: i32 = g::O_PATH as i32;
pub const O_TMPFILE: i32 = g::O_TMPFILE as i32;

pub use g::{AT_EACCESS, AT_SYMLINK_NOFOLLOW, SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET};

/// Whether open(2) `flags` ask for write access.
pub fn writes(flags: i32) -> bool {
    matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
}
