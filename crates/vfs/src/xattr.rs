//! Extended attributes with Linux's permission rules (xattr_permission,
//! vfs_getxattr and friends); filesystems store them behind the `Inode`
//! xattr methods.

use veil_abi::mode::{S_IFDIR, S_IFMT, S_IFREG};
use veil_abi::{Errno, Stat};

use crate::creds::{cap, Creds, MAY_READ, MAY_WRITE};
use crate::vfs::{PathRef, Vfs};

/// Longest name (Linux XATTR_NAME_MAX).
pub const XATTR_NAME_MAX: usize = 255;
/// Largest value (Linux XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Largest list of names listxattr returns (Linux XATTR_LIST_MAX).
pub const XATTR_LIST_MAX: usize = 65536;

const USER: &[u8] = b"user.";
const TRUSTED: &[u8] = b"trusted.";
const SECURITY: &[u8] = b"security.";
const SYSTEM: &[u8] = b"system.";

/// Whether the caller may read (`MAY_READ`) or change (`MAY_WRITE`) the
/// attribute `name` of a file with `st`, as Linux's xattr_permission.
fn check(st: &Stat, name: &[u8], want: u32, creds: &Creds) -> Result<(), Errno> {
    let write = want & MAY_WRITE != 0;
    // Security modules and ACL handlers decide for these namespaces.
    if name.starts_with(SECURITY) || name.starts_with(SYSTEM) {
        return Ok(());
    }
    if name.starts_with(TRUSTED) {
        if !creds.capable(cap::CAP_SYS_ADMIN) {
            return Err(if write { Errno::EPERM } else { Errno::ENODATA });
        }
        return Ok(());
    }
    if name.starts_with(USER) {
        let kind = st.st_mode & S_IFMT;
        if kind != S_IFREG && kind != S_IFDIR {
            return Err(if write { Errno::EPERM } else { Errno::ENODATA });
        }
        if kind == S_IFDIR && st.st_mode & 0o1000 != 0 && write && !creds.owner_or_fowner(st) {
            return Err(Errno::EPERM);
        }
    }
    creds.check(st, want)
}

/// A name that is only a namespace prefix names nothing (EINVAL); one of
/// no known namespace is EOPNOTSUPP, as Linux's xattr_resolve_name.
fn check_name(name: &[u8]) -> Result<(), Errno> {
    match [USER, TRUSTED, SECURITY, SYSTEM]
        .iter()
        .find(|p| name.starts_with(p))
    {
        Some(p) if name.len() == p.len() => Err(Errno::EINVAL),
        Some(_) => Ok(()),
        None => Err(Errno::EOPNOTSUPP),
    }
}

impl Vfs {
    /// getxattr(2): the value of `name` of the file at `p`.
    pub fn getxattr(&self, p: &PathRef, name: &[u8], creds: &Creds) -> Result<Vec<u8>, Errno> {
        check(&p.stat()?, name, MAY_READ, creds)?;
        check_name(name)?;
        p.inode().getxattr(name)
    }

    /// listxattr(2): the names the caller may see (trusted.* needs
    /// CAP_SYS_ADMIN).
    pub fn listxattr(&self, p: &PathRef, creds: &Creds) -> Result<Vec<Vec<u8>>, Errno> {
        let mut names = p.inode().listxattr()?;
        if !creds.capable(cap::CAP_SYS_ADMIN) {
            names.retain(|n| !n.starts_with(TRUSTED));
        }
        Ok(names)
    }

    /// setxattr(2); `flags` are XATTR_CREATE or XATTR_REPLACE, checked by
    /// the caller.
    pub fn setxattr(
        &self,
        p: &PathRef,
        name: &[u8],
        value: &[u8],
        flags: u32,
        creds: &Creds,
    ) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        p.mount.check_writable()?;
        check(&p.stat()?, name, MAY_WRITE, creds)?;
        check_name(name)?;
        p.inode().setxattr(name, value, flags)?;
        crate::inotify::notify(&p.dentry, crate::inotify::IN_ATTRIB);
        Ok(())
    }

    /// removexattr(2).
    pub fn removexattr(&self, p: &PathRef, name: &[u8], creds: &Creds) -> Result<(), Errno> {
        let _changing = self.lock_changes();
        p.mount.check_writable()?;
        check(&p.stat()?, name, MAY_WRITE, creds)?;
        check_name(name)?;
        p.inode().removexattr(name)?;
        crate::inotify::notify(&p.dentry, crate::inotify::IN_ATTRIB);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::test_support::user;

    fn file(uid: u32, gid: u32, mode: u32) -> Stat {
        Stat {
            st_mode: mode,
            st_uid: uid,
            st_gid: gid,
            ..Stat::default()
        }
    }

    #[test]
    fn user_namespace_rules() {
        let mine = file(7, 8, S_IFREG | 0o644);
        let me = user(7, 8, &[]);
        let other = user(9, 9, &[]);
        assert_eq!(check(&mine, b"user.a", MAY_WRITE, &me), Ok(()));
        assert_eq!(check(&mine, b"user.a", MAY_READ, &other), Ok(()));
        assert_eq!(
            check(&mine, b"user.a", MAY_WRITE, &other),
            Err(Errno::EACCES)
        );
        let link = file(7, 8, veil_abi::mode::S_IFLNK | 0o777);
        assert_eq!(check(&link, b"user.a", MAY_WRITE, &me), Err(Errno::EPERM));
        assert_eq!(check(&link, b"user.a", MAY_READ, &me), Err(Errno::ENODATA));
        let sticky = file(9, 9, S_IFDIR | 0o1777);
        assert_eq!(check(&sticky, b"user.a", MAY_WRITE, &me), Err(Errno::EPERM));
        assert_eq!(check(&sticky, b"user.a", MAY_READ, &me), Ok(()));
    }

    #[test]
    fn trusted_needs_sys_admin() {
        let f = file(7, 8, S_IFREG | 0o666);
        let me = user(7, 8, &[]);
        assert_eq!(check(&f, b"trusted.a", MAY_WRITE, &me), Err(Errno::EPERM));
        assert_eq!(check(&f, b"trusted.a", MAY_READ, &me), Err(Errno::ENODATA));
        let admin = Creds {
            cap_effective: cap::bit(cap::CAP_SYS_ADMIN),
            ..me
        };
        assert_eq!(check(&f, b"trusted.a", MAY_WRITE, &admin), Ok(()));
    }

    #[test]
    fn names() {
        assert_eq!(check_name(b"user.x"), Ok(()));
        assert_eq!(check_name(b"user."), Err(Errno::EINVAL));
        assert_eq!(check_name(b"foo.x"), Err(Errno::EOPNOTSUPP));
    }
}
