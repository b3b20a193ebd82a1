//! Linux's rules for changing a task's identity: the set*id family, the
//! capability adjustments that follow user ID changes (capabilities(7),
//! security/commoncap.c), capset, and the capabilities execve computes.
//! Each rule takes the old credentials and returns the new ones.

use veil_abi::Errno;
use veil_vfs::cap::{self, bit};
use veil_vfs::Creds;

/// "Leave this ID alone" in the set*id calls.
const KEEP: u32 = u32::MAX;
/// Supplementary groups a task may have.
pub const NGROUPS_MAX: usize = linux_raw_sys::general::NGROUPS_MAX as usize;

pub const SECBIT_NOROOT: u32 = 1 << 0;
pub const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;
pub const SECBIT_KEEP_CAPS: u32 = 1 << 4;
pub const SECBIT_KEEP_CAPS_LOCKED: u32 = 1 << 5;
pub const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
/// The flags PR_SET_SECUREBITS accepts, and their lock bits.
const SECURE_ALL_BITS: u32 =
    SECBIT_NOROOT | SECBIT_NO_SETUID_FIXUP | SECBIT_KEEP_CAPS | SECBIT_NO_CAP_AMBIENT_RAISE;
const SECURE_ALL_LOCKS: u32 = SECURE_ALL_BITS << 1;

/// The capabilities that follow the filesystem UID (CAP_FS_SET).
const CAP_FS_SET: u64 = bit(cap::CAP_CHOWN)
    | bit(cap::CAP_MKNOD)
    | bit(cap::CAP_DAC_OVERRIDE)
    | bit(cap::CAP_DAC_READ_SEARCH)
    | bit(cap::CAP_FOWNER)
    | bit(cap::CAP_FSETID)
    | bit(cap::CAP_MAC_OVERRIDE);

/// Which call changed the user IDs, for the capability fix-up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UidChange {
    /// setuid, setreuid, setresuid.
    Ids,
    /// setfsuid.
    Fs,
}

/// Whether an ID argument names a valid ID (-1 never does).
fn valid(id: u32) -> Result<u32, Errno> {
    if id == KEEP {
        Err(Errno::EINVAL)
    } else {
        Ok(id)
    }
}

/// cap_task_fix_setuid: capabilities follow user ID transitions unless
/// SECBIT_NO_SETUID_FIXUP.
fn fix_setuid(new: &mut Creds, old: &Creds, change: UidChange) {
    if old.securebits & SECBIT_NO_SETUID_FIXUP != 0 {
        return;
    }
    match change {
        UidChange::Ids => {
            let was_root = old.uid == 0 || old.euid == 0 || old.suid == 0;
            let is_root = new.uid == 0 || new.euid == 0 || new.suid == 0;
            if was_root && !is_root {
                if old.securebits & SECBIT_KEEP_CAPS == 0 {
                    new.cap_permitted = 0;
                    new.cap_effective = 0;
                }
                new.cap_ambient = 0;
            }
            if old.euid == 0 && new.euid != 0 {
                new.cap_effective = 0;
            }
            if old.euid != 0 && new.euid == 0 {
                new.cap_effective = new.cap_permitted;
            }
        }
        UidChange::Fs => {
            if old.fsuid == 0 && new.fsuid != 0 {
                new.cap_effective &= !CAP_FS_SET;
            }
            if old.fsuid != 0 && new.fsuid == 0 {
                new.cap_effective |= new.cap_permitted & CAP_FS_SET;
            }
        }
    }
}

pub fn setuid(old: &Creds, uid: u32) -> Result<Creds, Errno> {
    let uid = valid(uid)?;
    let mut new = old.clone();
    if old.capable(cap::CAP_SETUID) {
        new.uid = uid;
        new.suid = uid;
    } else if uid != old.uid && uid != old.suid {
        return Err(Errno::EPERM);
    }
    new.euid = uid;
    new.fsuid = uid;
    fix_setuid(&mut new, old, UidChange::Ids);
    Ok(new)
}

pub fn setreuid(old: &Creds, ruid: u32, euid: u32) -> Result<Creds, Errno> {
    let privileged = old.capable(cap::CAP_SETUID);
    let mut new = old.clone();
    if ruid != KEEP {
        if ruid != old.uid && ruid != old.euid && !privileged {
            return Err(Errno::EPERM);
        }
        new.uid = ruid;
    }
    if euid != KEEP {
        if euid != old.uid && euid != old.euid && euid != old.suid && !privileged {
            return Err(Errno::EPERM);
        }
        new.euid = euid;
    }
    if ruid != KEEP || (euid != KEEP && euid != old.uid) {
        new.suid = new.euid;
    }
    new.fsuid = new.euid;
    fix_setuid(&mut new, old, UidChange::Ids);
    Ok(new)
}

pub fn setresuid(old: &Creds, ruid: u32, euid: u32, suid: u32) -> Result<Creds, Errno> {
    // A no-op leaves even the filesystem UID alone.
    if (ruid == KEEP || ruid == old.uid)
        && (euid == KEEP || (euid == old.euid && euid == old.fsuid))
        && (suid == KEEP || suid == old.suid)
    {
        return Ok(old.clone());
    }
    let is_new = |id: u32| id != KEEP && id != old.uid && id != old.euid && id != old.suid;
    if (is_new(ruid) || is_new(euid) || is_new(suid)) && !old.capable(cap::CAP_SETUID) {
        return Err(Errno::EPERM);
    }
    let mut new = old.clone();
    if ruid != KEEP {
        new.uid = ruid;
    }
    if euid != KEEP {
        new.euid = euid;
    }
    if suid != KEEP {
        new.suid = suid;
    }
    new.fsuid = new.euid;
    fix_setuid(&mut new, old, UidChange::Ids);
    Ok(new)
}

/// setfsuid: the new credentials if the change is allowed and does
/// something; the call itself always returns the old filesystem UID.
pub fn setfsuid(old: &Creds, fsuid: u32) -> Option<Creds> {
    let allowed =
        [old.uid, old.euid, old.suid, old.fsuid].contains(&fsuid) || old.capable(cap::CAP_SETUID);
    if fsuid == KEEP || !allowed || fsuid == old.fsuid {
        return None;
    }
    let mut new = old.clone();
    new.fsuid = fsuid;
    fix_setuid(&mut new, old, UidChange::Fs);
    Some(new)
}

pub fn setgid(old: &Creds, gid: u32) -> Result<Creds, Errno> {
    let gid = valid(gid)?;
    let mut new = old.clone();
    if old.capable(cap::CAP_SETGID) {
        new.gid = gid;
        new.sgid = gid;
    } else if gid != old.gid && gid != old.sgid {
        return Err(Errno::EPERM);
    }
    new.egid = gid;
    new.fsgid = gid;
    Ok(new)
}

pub fn setregid(old: &Creds, rgid: u32, egid: u32) -> Result<Creds, Errno> {
    let privileged = old.capable(cap::CAP_SETGID);
    let mut new = old.clone();
    if rgid != KEEP {
        if rgid != old.gid && rgid != old.egid && !privileged {
            return Err(Errno::EPERM);
        }
        new.gid = rgid;
    }
    if egid != KEEP {
        if egid != old.gid && egid != old.egid && egid != old.sgid && !privileged {
            return Err(Errno::EPERM);
        }
        new.egid = egid;
    }
    if rgid != KEEP || (egid != KEEP && egid != old.gid) {
        new.sgid = new.egid;
    }
    new.fsgid = new.egid;
    Ok(new)
}

pub fn setresgid(old: &Creds, rgid: u32, egid: u32, sgid: u32) -> Result<Creds, Errno> {
    if (rgid == KEEP || rgid == old.gid)
        && (egid == KEEP || (egid == old.egid && egid == old.fsgid))
        && (sgid == KEEP || sgid == old.sgid)
    {
        return Ok(old.clone());
    }
    let is_new = |id: u32| id != KEEP && id != old.gid && id != old.egid && id != old.sgid;
    if (is_new(rgid) || is_new(egid) || is_new(sgid)) && !old.capable(cap::CAP_SETGID) {
        return Err(Errno::EPERM);
    }
    let mut new = old.clone();
    if rgid != KEEP {
        new.gid = rgid;
    }
    if egid != KEEP {
        new.egid = egid;
    }
    if sgid != KEEP {
        new.sgid = sgid;
    }
    new.fsgid = new.egid;
    Ok(new)
}

pub fn setfsgid(old: &Creds, fsgid: u32) -> Option<Creds> {
    let allowed =
        [old.gid, old.egid, old.sgid, old.fsgid].contains(&fsgid) || old.capable(cap::CAP_SETGID);
    if fsgid == KEEP || !allowed || fsgid == old.fsgid {
        return None;
    }
    let mut new = old.clone();
    new.fsgid = fsgid;
    Some(new)
}

/// setgroups: needs CAP_SETGID; the list is kept sorted.
pub fn setgroups(old: &Creds, mut groups: Vec<u32>) -> Result<Creds, Errno> {
    if groups.contains(&KEEP) {
        return Err(Errno::EINVAL);
    }
    groups.sort_unstable();
    Ok(Creds {
        groups,
        ..old.clone()
    })
}

/// The three sets capset may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// cap_capset: new sets may only shrink the permitted set, keep the
/// effective one inside the new permitted one, and add inheritable
/// capabilities only from the permitted set (with CAP_SETPCAP, from the
/// bounding set).
pub fn capset(old: &Creds, sets: CapSets) -> Result<Creds, Errno> {
    let sets = CapSets {
        effective: sets.effective & cap::ALL,
        permitted: sets.permitted & cap::ALL,
        inheritable: sets.inheritable & cap::ALL,
    };
    let subset = |a: u64, b: u64| a & !b == 0;
    if !old.capable(cap::CAP_SETPCAP)
        && !subset(sets.inheritable, old.cap_inheritable | old.cap_permitted)
    {
        return Err(Errno::EPERM);
    }
    if !subset(sets.inheritable, old.cap_inheritable | old.cap_bounding)
        || !subset(sets.permitted, old.cap_permitted)
        || !subset(sets.effective, sets.permitted)
    {
        return Err(Errno::EPERM);
    }
    let mut new = old.clone();
    new.cap_effective = sets.effective;
    new.cap_permitted = sets.permitted;
    new.cap_inheritable = sets.inheritable;
    new.cap_ambient &= sets.permitted & sets.inheritable;
    Ok(new)
}

/// Whether `c` names a capability (cap_valid).
pub fn cap_valid(c: u64) -> Option<u32> {
    u32::try_from(c).ok().filter(|&c| c <= cap::CAP_LAST_CAP)
}

/// PR_CAPBSET_DROP.
pub fn capbset_drop(old: &Creds, c: u64) -> Result<Creds, Errno> {
    if !old.capable(cap::CAP_SETPCAP) {
        return Err(Errno::EPERM);
    }
    let c = cap_valid(c).ok_or(Errno::EINVAL)?;
    let mut new = old.clone();
    new.cap_bounding &= !bit(c);
    Ok(new)
}

/// PR_CAP_AMBIENT_RAISE or _LOWER: raising needs the capability in both
/// the permitted and the inheritable set.
pub fn ambient(old: &Creds, c: u32, raise: bool) -> Result<Creds, Errno> {
    let mut new = old.clone();
    if raise {
        if old.cap_permitted & old.cap_inheritable & bit(c) == 0
            || old.securebits & SECBIT_NO_CAP_AMBIENT_RAISE != 0
        {
            return Err(Errno::EPERM);
        }
        new.cap_ambient |= bit(c);
    } else {
        new.cap_ambient &= !bit(c);
    }
    Ok(new)
}

/// PR_SET_SECUREBITS: locked bits stay, locks stay, only known bits, and
/// only with CAP_SETPCAP.
pub fn set_securebits(old: &Creds, bits: u64) -> Result<Creds, Errno> {
    let cur = u64::from(old.securebits);
    let locks = u64::from(SECURE_ALL_LOCKS);
    if ((cur & locks) >> 1) & (cur ^ bits) != 0
        || cur & locks & !bits != 0
        || bits & !u64::from(SECURE_ALL_BITS | SECURE_ALL_LOCKS) != 0
        || !old.capable(cap::CAP_SETPCAP)
    {
        return Err(Errno::EPERM);
    }
    Ok(Creds {
        securebits: bits as u32,
        ..old.clone()
    })
}

/// PR_SET_KEEPCAPS.
pub fn set_keepcaps(old: &Creds, on: u64) -> Result<Creds, Errno> {
    if on > 1 {
        return Err(Errno::EINVAL);
    }
    if old.securebits & SECBIT_KEEP_CAPS_LOCKED != 0 {
        return Err(Errno::EPERM);
    }
    let mut new = old.clone();
    if on == 1 {
        new.securebits |= SECBIT_KEEP_CAPS;
    } else {
        new.securebits &= !SECBIT_KEEP_CAPS;
    }
    Ok(new)
}

/// The credentials after execve of a file without file capabilities;
/// set-user-ID and set-group-ID bits are not honoured (as on a nosuid
/// mount), so the IDs stay and only the capabilities are recomputed:
/// root (real or effective) gets its bounding and inheritable sets as
/// permitted, an effective root has them effective too, and ambient
/// capabilities carry over.
pub fn exec(old: &Creds) -> Creds {
    let mut new = old.clone();
    new.cap_permitted = 0;
    let mut effective = false;
    if old.securebits & SECBIT_NOROOT == 0 {
        if old.euid == 0 || old.uid == 0 {
            new.cap_permitted = old.cap_bounding | old.cap_inheritable;
        }
        effective = old.euid == 0;
    }
    new.suid = new.euid;
    new.fsuid = new.euid;
    new.sgid = new.egid;
    new.fsgid = new.egid;
    new.cap_permitted |= new.cap_ambient;
    new.cap_effective = if effective {
        new.cap_permitted
    } else {
        new.cap_ambient
    };
    new.securebits &= !SECBIT_KEEP_CAPS;
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Creds {
        Creds::new(0, 0)
    }

    #[test]
    fn dropping_root_clears_capabilities_unless_keepcaps() {
        let c = setresuid(&root(), 1000, 1000, 1000).expect("allowed");
        assert_eq!((c.cap_permitted, c.cap_effective), (0, 0));
        let keep = set_keepcaps(&root(), 1).expect("allowed");
        let c = setresuid(&keep, 1000, 1000, 1000).expect("allowed");
        assert_eq!((c.cap_permitted, c.cap_effective), (cap::ALL, 0));
        // A saved root keeps the permitted set; the effective one follows
        // the effective UID back and forth.
        let c = setresuid(&root(), 1000, 1000, 0).expect("allowed");
        assert_eq!((c.cap_permitted, c.cap_effective), (cap::ALL, 0));
        let back = setresuid(&c, KEEP, 0, KEEP).expect("allowed");
        assert_eq!(back.cap_effective, cap::ALL);
    }

    #[test]
    fn unprivileged_users_may_only_shuffle_their_ids() {
        let user = setresuid(&root(), 1, 2, 3).expect("allowed");
        assert_eq!(setresuid(&user, 3, 1, 2).map(|c| c.uid), Ok(3));
        assert_eq!(setresuid(&user, 4, KEEP, KEEP), Err(Errno::EPERM));
        assert_eq!(setuid(&user, 3).map(|c| (c.uid, c.euid)), Ok((1, 3)));
        assert_eq!(setuid(&user, 2), Err(Errno::EPERM));
        assert_eq!(setuid(&user, KEEP), Err(Errno::EINVAL));
        // setreuid sets the saved UID when the real one is given.
        let c = setreuid(&user, 2, KEEP).expect("allowed");
        assert_eq!((c.uid, c.euid, c.suid), (2, 2, 2));
    }

    #[test]
    fn fsuid_moves_filesystem_capabilities() {
        let c = setfsuid(&root(), 1000).expect("allowed");
        assert_eq!(c.cap_effective, cap::ALL & !CAP_FS_SET);
        let back = setfsuid(&c, 0).expect("allowed");
        assert_eq!(back.cap_effective, cap::ALL);
        let user = setresuid(&root(), 5, 5, 5).expect("allowed");
        assert!(setfsuid(&user, 6).is_none());
    }

    #[test]
    fn capset_only_shrinks() {
        let all = cap::ALL;
        let sets = |e, p, i| CapSets {
            effective: e,
            permitted: p,
            inheritable: i,
        };
        let c = capset(&root(), sets(1, 3, 3)).expect("allowed");
        assert_eq!(capset(&c, sets(1, 7, 0)), Err(Errno::EPERM));
        assert_eq!(capset(&c, sets(4, 3, 0)), Err(Errno::EPERM));
        // Without CAP_SETPCAP, inheritable only from permitted.
        assert_eq!(capset(&c, sets(1, 3, 7)), Err(Errno::EPERM));
        assert!(capset(&root(), sets(all, all, all)).is_ok());
    }

    #[test]
    fn exec_recomputes_capabilities() {
        let mut c = root();
        c.cap_permitted = 1;
        c.cap_effective = 0;
        let e = exec(&c);
        assert_eq!((e.cap_permitted, e.cap_effective), (cap::ALL, cap::ALL));
        let user = setresuid(&root(), 1000, 1000, 1000).expect("allowed");
        assert_eq!(exec(&user).cap_permitted, 0);
        // Ambient capabilities survive exec as a non-root user.
        let mut a = set_keepcaps(&root(), 1).expect("allowed");
        a.cap_inheritable = bit(cap::CAP_KILL);
        let a = setresuid(&a, 1000, 1000, 1000).expect("allowed");
        let a = ambient(&a, cap::CAP_KILL, true).expect("allowed");
        let e = exec(&a);
        assert_eq!(
            (e.cap_permitted, e.cap_effective),
            (bit(cap::CAP_KILL), bit(cap::CAP_KILL))
        );
        assert_eq!(e.securebits & SECBIT_KEEP_CAPS, 0);
    }
}
