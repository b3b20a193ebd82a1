//! The filesystem a confined process sees: nothing but what it serves.
//!
//! Both functions need CAP_SYS_ADMIN over the process's own, unshared mount
//! namespace, and leave the old root detached so that no path reaches it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::libc;
use rustix::fs::{Mode, CWD};
use rustix::mount::{
    mount, mount_change, mount_remount, move_mount, open_tree, unmount, MountFlags,
    MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

use crate::{host, last_errno, path_error, Error};

/// Where the new root is assembled. Every host has it, and hiding it in
/// our own mount namespace costs nothing: /proc is read only before.
const STAGING: &str = "/proc";

/// File systems of kernel state (never file data), which a gofer tree must
/// not expose even if the host has them mounted beneath it.
const KERNEL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "configfs",
    "pstore",
    "efivarfs",
    "fusectl",
    "binfmt_misc",
    "hugetlbfs",
    "mqueue",
    "devpts",
    "devtmpfs",
];

/// Makes every mount private to this namespace, so that nothing we do here
/// propagates back to the host (and nothing of the host's reaches us).
fn make_private() -> Result<(), Error> {
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(host("making mounts private"))
}

/// Mounts the tmpfs that becomes the root, nosuid, nodev and noexec.
fn mount_staging() -> Result<(), Error> {
    mount(
        "none",
        STAGING,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "size=16k,nr_inodes=64,mode=0555",
    )
    .map_err(host("mounting the new root"))
}

/// Pivots into the staging tmpfs, detaches the old root and makes the new
/// one read-only.
fn pivot_and_seal() -> Result<(), Error> {
    rustix::process::chdir(STAGING).map_err(host("entering the new root"))?;
    // pivot_root(".", ".") stacks the old root on the new one, which the
    // lazy unmount then takes away: no directory for it is needed.
    rustix::process::pivot_root(".", ".").map_err(host("pivot_root"))?;
    unmount(".", UnmountFlags::DETACH).map_err(host("detaching the old root"))?;
    rustix::process::chdir("/").map_err(host("entering the new root"))?;
    mount_remount(
        "/",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
    .map_err(host("making the new root read-only"))
}

/// The sentry's root: an empty, read-only tmpfs. The sentry needs no host
/// path after start: it works only on the descriptors it was given.
pub fn enter_empty_root() -> Result<(), Error> {
    make_private()?;
    mount_staging()?;
    pivot_and_seal()
}

/// One tree the gofer serves.
#[derive(Clone, Debug)]
pub struct Tree {
    pub path: PathBuf,
    pub readonly: bool,
}

/// The gofer's root after `enter_tree_root`: its trees, by index, and the
/// directory of its own descriptors (for reopening and connecting by fid).
#[derive(Debug)]
pub struct TreeRoot {
    pub trees: Vec<PathBuf>,
    pub fd_dir: PathBuf,
}

/// The gofer's root: a read-only tmpfs holding each tree (bind-mounted with
/// its submounts, read-only ones recursively so, all nosuid and nodev, and
/// without kernel-state file systems) and a bind of the process's
/// `/proc/PID/fd`. Nothing else of the host is reachable.
pub fn enter_tree_root(trees: &[Tree]) -> Result<TreeRoot, Error> {
    make_private()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| path_error("reading", "/proc/self/mountinfo", &e))?;
    // Detached copies, taken while every source is still reachable. Our
    // PID here may be of a new PID namespace, unlike /proc's: "self" names
    // us in any.
    let fd_dir = clone_tree("/proc/self/fd", false)?;
    let mut clones = Vec::new();
    for tree in trees {
        let path = tree
            .path
            .to_str()
            .ok_or_else(|| Error::Invalid(format!("{}: not UTF-8", tree.path.display())))?;
        let clone = clone_tree(path, true)?;
        let mut attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if tree.readonly {
            attr |= MOUNT_ATTR_RDONLY;
        }
        set_attr_recursive(&clone, attr)?;
        let is_dir = rustix::fs::fstat(&clone)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(host("stat of a tree"))?;
        clones.push((path.to_string(), clone, is_dir));
    }
    mount_staging()?;
    let attach = |name: &str, clone: &OwnedFd, is_dir: bool| -> Result<(), Error> {
        let at = format!("{STAGING}/{name}");
        let made = match is_dir {
            true => rustix::fs::mkdir(&at, Mode::from_raw_mode(0o555)),
            false => rustix::fs::open(
                &at,
                rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC,
                Mode::from_raw_mode(0o444),
            )
            .map(drop),
        };
        made.map_err(host("making a mount point"))?;
        move_mount(
            clone.as_fd(),
            "",
            CWD,
            at.as_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(host("attaching a tree"))
    };
    attach("fd", &fd_dir, true)?;
    for (i, (source, clone, is_dir)) in clones.iter().enumerate() {
        attach(&i.to_string(), clone, *is_dir)?;
        for sub in kernel_submounts(&mountinfo, source) {
            let at = format!("{STAGING}/{i}{sub}");
            // Already gone if an outer one was detached first; harmless.
            let _ = unmount(at.as_str(), UnmountFlags::DETACH);
        }
    }
    pivot_and_seal()?;
    Ok(TreeRoot {
        trees: (0..trees.len())
            .map(|i| PathBuf::from(format!("/{i}")))
            .collect(),
        fd_dir: PathBuf::from("/fd"),
    })
}

fn clone_tree(path: &str, recursive: bool) -> Result<OwnedFd, Error> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(CWD, path, flags).map_err(|errno| Error::Path {
        what: "cloning a mount",
        path: path.into(),
        errno,
    })
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr)`, which
/// rustix does not wrap.
fn set_attr_recursive(tree: &OwnedFd, set: u64) -> Result<(), Error> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the kernel reads `size_of::<MountAttr>()` bytes from `attr`,
    // a live local of exactly that size, and the empty path is a static C
    // string; the descriptor is borrowed from `tree` for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(tree),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(last_errno("mount_setattr"));
    }
    Ok(())
}

/// Mount points beneath `source` (relative, with a leading '/') that hold
/// kernel-state file systems, outermost first.
fn kernel_submounts(mountinfo: &str, source: &str) -> Vec<String> {
    let base = source.trim_end_matches('/');
    let mut found: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE ...
            let mut fields = line.split(' ');
            let point = unescape(fields.nth(4)?);
            let fstype = line.split(" - ").nth(1)?.split(' ').next()?;
            let rel = point.strip_prefix(base)?;
            (rel.starts_with('/') && KERNEL_FS.contains(&fstype)).then(|| rel.to_string())
        })
        .collect();
    found.sort_by_key(|p| p.matches('/').count());
    found.dedup();
    found
}

/// Undoes mountinfo's octal escapes of space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
24 22 0:6 / /sys rw - sysfs sysfs rw
25 24 0:7 / /sys/fs/cgroup rw - cgroup2 cgroup rw
26 22 0:8 / /dev rw - devtmpfs udev rw
27 22 0:9 / /tmp rw - tmpfs tmpfs rw
28 27 0:10 / /tmp/my\\040dir/proc rw - proc proc rw
";

    #[test]
    fn kernel_submounts_of_the_root_are_outermost_first() {
        assert_eq!(
            kernel_submounts(MOUNTINFO, "/"),
            [
                "/proc",
                "/sys",
                "/dev",
                "/sys/fs/cgroup",
                "/tmp/my dir/proc"
            ]
        );
    }

    #[test]
    fn kernel_submounts_are_relative_to_the_tree() {
        assert_eq!(kernel_submounts(MOUNTINFO, "/tmp"), ["/my dir/proc"]);
        assert!(kernel_submounts(MOUNTINFO, "/tmp/my").is_empty());
        assert!(kernel_submounts(MOUNTINFO, "/home").is_empty());
    }
}
