//! The gofer: the only process that touches the container's filesystem on
//! the host. It serves an FD-based file protocol to the sentry over a
//! SOCK_SEQPACKET socket and donates host FDs, resolving everything beneath
//! its root one component at a time without following symlinks.

mod client;
pub mod idmap;
pub mod protocol;
mod server;
mod wire;

pub use client::{DirEntry, Fid, GoferClient, HostStat, HostStatfs, SetStat};
pub use idmap::{IdMap, IdMaps, IdRange};
pub use server::{open_root, serve, serve_mapped, serve_with_fd_dir, GoferError};
