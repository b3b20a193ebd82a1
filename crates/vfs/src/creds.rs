//! Credentials and Linux's discretionary access rules.

use veil_abi::mode::S_IFDIR;
use veil_abi::{Errno, Stat};

/// The identity a task acts with on files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Access bits, with the values of access(2)'s R_OK, W_OK and X_OK.
pub const MAY_EXEC: u32 = 1;
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

impl Creds {
    /// The same identity acting with its real IDs, as access(2) checks.
    pub fn real(&self) -> Creds {
        Creds {
            euid: self.uid,
            egid: self.gid,
            ..self.clone()
        }
    }

    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    fn in_group(&self, gid: u32) -> bool {
        self.egid == gid || self.groups.contains(&gid)
    }

    /// Checks `want` (MAY_* bits) against a file's owner and mode with the
    /// effective IDs. Root may read and write anything, and execute what
    /// has an x bit or is a directory (CAP_DAC_OVERRIDE).
    pub fn check(&self, st: &Stat, want: u32) -> Result<(), Errno> {
        if self.is_root() {
            let dir = st.st_mode & veil_abi::mode::S_IFMT == S_IFDIR;
            if want & MAY_EXEC == 0 || dir || st.st_mode & 0o111 != 0 {
                return Ok(());
            }
            return Err(Errno::EACCES);
        }
        let shift = if st.st_uid == self.euid {
            6
        } else if self.in_group(st.st_gid) {
            3
        } else {
            0
        };
        if (st.st_mode >> shift) & want & 7 == want & 7 {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    /// The sticky-directory rule: in a directory with S_ISVTX only the
    /// owner of an entry, the owner of the directory or root may remove or
    /// rename it.
    pub fn check_sticky(&self, dir: &Stat, victim: &Stat) -> Result<(), Errno> {
        if dir.st_mode & 0o1000 == 0
            || self.is_root()
            || self.euid == victim.st_uid
            || self.euid == dir.st_uid
        {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_abi::mode::S_IFREG;

    fn file(mode: u32, uid: u32, gid: u32) -> Stat {
        Stat {
            st_mode: S_IFREG | mode,
            st_uid: uid,
            st_gid: gid,
            ..Stat::default()
        }
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Creds {
        Creds {
            uid,
            gid,
            euid: uid,
            egid: gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn owner_group_other() {
        let st = file(0o640, 100, 200);
        assert_eq!(user(100, 1, &[]).check(&st, MAY_READ | MAY_WRITE), Ok(()));
        assert_eq!(user(100, 1, &[]).check(&st, MAY_EXEC), Err(Errno::EACCES));
        assert_eq!(user(101, 200, &[]).check(&st, MAY_READ), Ok(()));
        assert_eq!(user(101, 1, &[200]).check(&st, MAY_READ), Ok(()));
        assert_eq!(
            user(101, 1, &[200]).check(&st, MAY_WRITE),
            Err(Errno::EACCES)
        );
        assert_eq!(user(101, 1, &[]).check(&st, MAY_READ), Err(Errno::EACCES));
        // The owner class applies even when it grants less than others.
        assert_eq!(
            user(100, 1, &[]).check(&file(0o044, 100, 1), MAY_READ),
            Err(Errno::EACCES)
        );
    }

    #[test]
    fn root_overrides_but_needs_an_x_bit_to_execute() {
        let root = Creds::default();
        assert_eq!(root.check(&file(0o000, 5, 5), MAY_READ | MAY_WRITE), Ok(()));
        assert_eq!(root.check(&file(0o600, 5, 5), MAY_EXEC), Err(Errno::EACCES));
        assert_eq!(root.check(&file(0o001, 5, 5), MAY_EXEC), Ok(()));
        let dir = Stat {
            st_mode: S_IFDIR,
            ..Stat::default()
        };
        assert_eq!(root.check(&dir, MAY_EXEC), Ok(()));
    }

    #[test]
    fn sticky() {
        let dir = Stat {
            st_mode: S_IFDIR | 0o1777,
            ..Stat::default()
        };
        let theirs = file(0o666, 7, 7);
        assert_eq!(
            user(8, 8, &[]).check_sticky(&dir, &theirs),
            Err(Errno::EPERM)
        );
        assert_eq!(user(7, 8, &[]).check_sticky(&dir, &theirs), Ok(()));
    }
}
