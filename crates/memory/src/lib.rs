//! The memory file and what lives in it: every page of application memory
//! and of in-memory file data is a range of one sentry-owned memfd.
//!
//! Ranges are reference counted per page (as gVisor's pgalloc): a range can
//! back several address spaces after fork, and a file's pages can be mapped
//! by many processes; it goes back to the host when the last reference goes.

mod data;
mod memfile;

pub use data::{FileData, Piece, WriteBack};
pub use memfile::{take_limit_hit, MemoryFile, MEMFILE_SIZE};
