//! Credentials and Linux's file permission rules.

use veil_abi::{Errno, Stat};

/// The identity a task acts with on files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub groups: Vec<u32>,
}

pub const MAY_EXEC: u32 = 1;
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

impl Creds {
    /// Checks `want` (MAY_* bits) against a file's mode and owner, with
    /// root's override: read and write always, execute if any x bit is set
    /// or the file is a directory.
    pub fn check(&self, st: &Stat, want: u32, effective: bool) -> Result<(), Errno> {
        let (uid, gid) = if effective {
            (self.euid, self.egid)
        } else {
            (self.uid, self.gid)
        };
        if uid == 0 {
            if want & MAY_EXEC == 0 || st.is_dir() || st.st_mode & 0o111 != 0 {
                return Ok(());
            }
            return Err(Errno::EACCES);
        }
        let mode = st.st_mode;
        let bits = if st.st_uid == uid {
            mode >> 6
        } else if st.st_gid == gid || self.groups.contains(&st.st_gid) {
            mode >> 3
        } else {
            mode
        } & 7;
        if bits & want == want {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }
}
