//! Credentials and Linux's discretionary access rules.

use veil_abi::mode::{S_IFDIR, S_IFMT};
use veil_abi::{Errno, Stat};

/// Capability numbers this crate's access rules consult.
pub mod cap {
    pub use linux_raw_sys::general::{
        CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL,
        CAP_LAST_CAP, CAP_MAC_OVERRIDE, CAP_MKNOD, CAP_SETGID, CAP_SETPCAP, CAP_SETUID,
        CAP_SYS_ADMIN, CAP_SYS_NICE, CAP_SYS_RESOURCE, CAP_WAKE_ALARM,
    };

    /// Every capability this kernel knows.
    pub const ALL: u64 = (1 << (CAP_LAST_CAP + 1)) - 1;

    pub const fn bit(cap: u32) -> u64 {
        1 << cap
    }
}

/// A task's identity: user and group IDs (real, effective, saved and
/// filesystem), supplementary groups and capability sets, as Linux's
/// `struct cred`. File access uses the filesystem IDs and the effective
/// capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    /// Supplementary groups, sorted as Linux keeps them.
    pub groups: Vec<u32>,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_inheritable: u64,
    pub cap_bounding: u64,
    pub cap_ambient: u64,
    /// SECBIT_* flags (prctl PR_SET_SECUREBITS, PR_SET_KEEPCAPS).
    pub securebits: u32,
}

/// Access bits, with the values of access(2)'s R_OK, W_OK and X_OK.
pub const MAY_EXEC: u32 = 1;
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

impl Creds {
    /// A task running as `uid`/`gid`, as a container's first process:
    /// root holds every capability, other users none (the bounding set
    /// stays full either way).
    pub fn new(uid: u32, gid: u32) -> Creds {
        let caps = if uid == 0 { cap::ALL } else { 0 };
        Creds {
            uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups: Vec::new(),
            cap_permitted: caps,
            cap_effective: caps,
            cap_inheritable: 0,
            cap_bounding: cap::ALL,
            cap_ambient: 0,
            securebits: 0,
        }
    }

    /// The identity access(2) checks with: the real IDs as filesystem IDs,
    /// and the capabilities root would have (none for other users).
    pub fn for_access(&self) -> Creds {
        Creds {
            fsuid: self.uid,
            fsgid: self.gid,
            cap_effective: if self.uid == 0 { self.cap_permitted } else { 0 },
            ..self.clone()
        }
    }

    /// Whether the effective set holds `cap`.
    pub fn capable(&self, cap: u32) -> bool {
        self.cap_effective & cap::bit(cap) != 0
    }

    /// Whether `gid` is the filesystem group or a supplementary one.
    pub fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.binary_search(&gid).is_ok()
    }

    /// Checks `want` (MAY_* bits) against a file's owner and mode, as
    /// Linux's generic_permission: the owner, group or other class, then
    /// CAP_DAC_READ_SEARCH (read, and search of directories) and
    /// CAP_DAC_OVERRIDE (anything but executing a file without an x bit).
    pub fn check(&self, st: &Stat, want: u32) -> Result<(), Errno> {
        let want = want & 7;
        let shift = if st.st_uid == self.fsuid {
            6
        } else if self.in_group(st.st_gid) {
            3
        } else {
            0
        };
        if (st.st_mode >> shift) & want == want {
            return Ok(());
        }
        let dir = st.st_mode & S_IFMT == S_IFDIR;
        if dir {
            if want & MAY_WRITE == 0 && self.capable(cap::CAP_DAC_READ_SEARCH) {
                return Ok(());
            }
            if self.capable(cap::CAP_DAC_OVERRIDE) {
                return Ok(());
            }
            return Err(Errno::EACCES);
        }
        if (want & MAY_EXEC == 0 || st.st_mode & 0o111 != 0) && self.capable(cap::CAP_DAC_OVERRIDE)
        {
            return Ok(());
        }
        if want == MAY_READ && self.capable(cap::CAP_DAC_READ_SEARCH) {
            return Ok(());
        }
        Err(Errno::EACCES)
    }

    /// The sticky-directory rule: in a directory with S_ISVTX only the
    /// owner of an entry, the owner of the directory or a holder of
    /// CAP_FOWNER may remove or rename it.
    pub fn check_sticky(&self, dir: &Stat, victim: &Stat) -> Result<(), Errno> {
        if dir.st_mode & 0o1000 == 0
            || self.fsuid == victim.st_uid
            || self.fsuid == dir.st_uid
            || self.capable(cap::CAP_FOWNER)
        {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }
}

/// Files and users for the unit tests of the access and attribute rules.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use veil_abi::mode::S_IFREG;

    /// A regular file's stat with `mode`, owned by `uid`:`gid`.
    pub fn file(mode: u32, uid: u32, gid: u32) -> Stat {
        Stat {
            st_mode: S_IFREG | mode,
            st_uid: uid,
            st_gid: gid,
            ..Stat::default()
        }
    }

    /// Credentials of `uid`:`gid` with supplementary `groups`.
    pub fn user(uid: u32, gid: u32, groups: &[u32]) -> Creds {
        Creds {
            groups: groups.to_vec(),
            ..Creds::new(uid, gid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{file, user};
    use super::*;

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
        let root = Creds::new(0, 0);
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
    fn checks_follow_fsuid_and_capabilities() {
        let secret = file(0o600, 0, 0);
        // Root without CAP_DAC_OVERRIDE reads through CAP_DAC_READ_SEARCH
        // only.
        let mut c = Creds::new(0, 0);
        c.cap_effective &= !cap::bit(cap::CAP_DAC_OVERRIDE);
        assert_eq!(c.check(&file(0o000, 5, 5), MAY_READ), Ok(()));
        assert_eq!(c.check(&file(0o000, 5, 5), MAY_WRITE), Err(Errno::EACCES));
        c.cap_effective = 0;
        assert_eq!(c.check(&file(0o000, 5, 5), MAY_READ), Err(Errno::EACCES));
        // A non-root user with CAP_DAC_OVERRIDE may write anything.
        let mut u = Creds::new(1000, 1000);
        u.cap_effective = cap::bit(cap::CAP_DAC_OVERRIDE);
        assert_eq!(u.check(&secret, MAY_WRITE), Ok(()));
        // The filesystem UID decides ownership, not the effective one.
        let mut f = Creds::new(1000, 1000);
        f.fsuid = 0;
        assert_eq!(f.check(&secret, MAY_READ), Ok(()));
        // access(2) of a non-root real user drops every capability.
        let mut r = Creds::new(0, 0);
        r.uid = 1000;
        assert_eq!(r.for_access().check(&secret, MAY_READ), Err(Errno::EACCES));
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
        assert_eq!(Creds::new(0, 0).check_sticky(&dir, &theirs), Ok(()));
    }
}
