//! Metadata changes (chmod, chown, utimes) with Linux's permission rules
//! (setattr_prepare, chown_common, vfs_utimes).

use veil_abi::{Errno, Stat, Timespec};

use crate::creds::{cap, Creds, MAY_WRITE};
use crate::fs::now;
use crate::inode::SetAttr;
use crate::vfs::{PathRef, Vfs};

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o010;

/// One timestamp of utimensat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    Now,
    Omit,
    Set(Timespec),
}

impl Creds {
    pub(crate) fn owner_or_fowner(&self, st: &Stat) -> bool {
        self.fsuid == st.st_uid || self.capable(cap::CAP_FOWNER)
    }

    fn in_group_or_fsetid(&self, gid: u32) -> bool {
        self.in_group(gid) || self.capable(cap::CAP_FSETID)
    }

    /// The change chmod makes: the owner or CAP_FOWNER only, and S_ISGID
    /// dropped unless the caller is in the file's group or has CAP_FSETID.
    pub fn chmod_attr(&self, st: &Stat, mode: u32) -> Result<SetAttr, Errno> {
        if !self.owner_or_fowner(st) {
            return Err(Errno::EPERM);
        }
        let mut mode = mode & 0o7777;
        if !self.in_group_or_fsetid(st.st_gid) {
            mode &= !S_ISGID;
        }
        Ok(SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        })
    }

    /// The change chown makes. CAP_CHOWN may give the file to anyone; its
    /// owner may only change its group, to one of the owner's groups.
    /// Changing a non-directory's ownership drops S_ISUID, and S_ISGID when
    /// it marks a group-executable file.
    pub fn chown_attr(
        &self,
        st: &Stat,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<SetAttr, Errno> {
        let chown = self.capable(cap::CAP_CHOWN);
        let owner = self.fsuid == st.st_uid;
        let uid_ok = |u| chown || (owner && u == st.st_uid);
        let gid_ok = |g| chown || (owner && (g == st.st_gid || self.in_group(g)));
        if !uid.is_none_or(uid_ok) || !gid.is_none_or(gid_ok) {
            return Err(Errno::EPERM);
        }
        let mut attr = SetAttr {
            uid,
            gid,
            ..SetAttr::default()
        };
        if !st.is_dir() {
            let mut mode = st.st_mode & 0o7777 & !S_ISUID;
            let gid = gid.unwrap_or(st.st_gid);
            if st.st_mode & S_IXGRP != 0 || !self.in_group_or_fsetid(gid) {
                mode &= !S_ISGID;
            }
            if mode != st.st_mode & 0o7777 {
                attr.mode = Some(mode);
            }
        }
        Ok(attr)
    }

    /// The change utimensat makes (`None`: both now). Explicit times need
    /// the owner or CAP_FOWNER (EPERM); the current time, write access too
    /// (EACCES).
    pub fn utimes_attr(&self, st: &Stat, times: Option<[TimeSpec; 2]>) -> Result<SetAttr, Errno> {
        let [atime, mtime] = times.unwrap_or([TimeSpec::Now; 2]);
        let explicit = [atime, mtime].iter().any(|t| matches!(t, TimeSpec::Set(_)));
        if !self.owner_or_fowner(st) {
            if explicit {
                return Err(Errno::EPERM);
            }
            self.check(st, MAY_WRITE)?;
        }
        let t = now();
        let pick = |ts| match ts {
            TimeSpec::Now => Some(t),
            TimeSpec::Omit => None,
            TimeSpec::Set(v) => Some(v),
        };
        Ok(SetAttr {
            atime: pick(atime),
            mtime: pick(mtime),
            ..SetAttr::default()
        })
    }
}

impl Vfs {
    /// chmod(2) of the file at `p`; a symlink's own mode cannot change.
    pub fn chmod(&self, p: &PathRef, mode: u32, creds: &Creds) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        p.mount.check_writable()?;
        let st = p.stat()?;
        if st.is_symlink() {
            return Err(Errno::EOPNOTSUPP);
        }
        p.inode().setattr(&creds.chmod_attr(&st, mode)?)?;
        crate::inotify::notify(&p.dentry, crate::inotify::IN_ATTRIB);
        Ok(())
    }

    /// chown(2); `None` leaves an ID as it is.
    pub fn chown(
        &self,
        p: &PathRef,
        uid: Option<u32>,
        gid: Option<u32>,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        p.mount.check_writable()?;
        let st = p.stat()?;
        p.inode().setattr(&creds.chown_attr(&st, uid, gid)?)?;
        crate::inotify::notify(&p.dentry, crate::inotify::IN_ATTRIB);
        Ok(())
    }

    /// utimensat(2): `None` sets both times to now.
    pub fn utimes(
        &self,
        p: &PathRef,
        times: Option<[TimeSpec; 2]>,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        p.mount.check_writable()?;
        let st = p.stat()?;
        p.inode().setattr(&creds.utimes_attr(&st, times)?)?;
        crate::inotify::notify(&p.dentry, crate::inotify::IN_ATTRIB);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::test_support::{file, user};
    use veil_abi::mode::S_IFDIR;

    #[test]
    fn chmod_needs_owner_and_drops_setgid_outside_the_group() {
        let st = file(0o644, 100, 200);
        assert_eq!(
            user(101, 200, &[]).chmod_attr(&st, 0o600),
            Err(Errno::EPERM)
        );
        let a = user(100, 1, &[]).chmod_attr(&st, 0o12755).expect("allowed");
        assert_eq!(a.mode, Some(0o2755 & !S_ISGID));
        let a = user(100, 1, &[200])
            .chmod_attr(&st, 0o2755)
            .expect("allowed");
        assert_eq!(a.mode, Some(0o2755));
        assert_eq!(
            Creds::new(0, 0)
                .chmod_attr(&st, 0o6777)
                .expect("allowed")
                .mode,
            Some(0o6777)
        );
    }

    #[test]
    fn chown_rules() {
        let st = file(0o6755, 100, 200);
        let owner = user(100, 1, &[300]);
        assert_eq!(owner.chown_attr(&st, Some(101), None), Err(Errno::EPERM));
        assert_eq!(owner.chown_attr(&st, None, Some(400)), Err(Errno::EPERM));
        let a = owner
            .chown_attr(&st, Some(100), Some(300))
            .expect("allowed");
        assert_eq!((a.uid, a.gid, a.mode), (Some(100), Some(300), Some(0o755)));
        let other = user(101, 200, &[]);
        assert_eq!(other.chown_attr(&st, None, Some(200)), Err(Errno::EPERM));
        let a = Creds::new(0, 0)
            .chown_attr(&st, Some(5), None)
            .expect("allowed");
        assert_eq!(a.mode, Some(0o755));
        // S_ISGID without group execute marks mandatory locking and stays.
        let a = Creds::new(0, 0)
            .chown_attr(&file(0o2644, 1, 1), Some(5), None)
            .expect("allowed");
        assert_eq!(a.mode, None);
        let dir = Stat {
            st_mode: S_IFDIR | 0o6755,
            ..Stat::default()
        };
        assert_eq!(
            Creds::new(0, 0)
                .chown_attr(&dir, Some(5), None)
                .expect("allowed")
                .mode,
            None
        );
    }

    #[test]
    fn utimes_rules() {
        let st = file(0o666, 100, 200);
        let set = TimeSpec::Set(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let other = user(101, 1, &[]);
        assert!(other.utimes_attr(&st, None).is_ok());
        assert_eq!(
            other.utimes_attr(&st, Some([set, TimeSpec::Omit])),
            Err(Errno::EPERM)
        );
        assert_eq!(
            other.utimes_attr(&file(0o644, 100, 200), None),
            Err(Errno::EACCES)
        );
        let a = user(100, 1, &[])
            .utimes_attr(&st, Some([TimeSpec::Omit, set]))
            .expect("allowed");
        assert_eq!((a.atime, a.mtime.map(|t| t.tv_sec)), (None, Some(1)));
    }
}
