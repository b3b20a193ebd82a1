//! Mounts: mount(2), umount2, statfs, binds, remounts, chroot and
//! pivot_root natively vs under veil, and `veil do`'s -v and --tmpfs.

mod common;

use common::{assert_outputs_match, compile, run_native, run_veil_raw, Case, Link, TempDir};

/// The C program mounts as root: natively it runs in a private mount
/// namespace of its own (`unshare -m`), so the host's tree is untouched;
/// under veil it runs as is.
fn mount_syscalls(link: Link) {
    let bin = compile("mount/mount", link);
    let bin = bin.to_str().expect("UTF-8 path");
    let native = Case::new(&["unshare", "-m", "--propagation", "private", bin]).native();
    assert_eq!(native.code(), 0, "natively: {}", native.describe());
    let veil = Case::new(&[bin]).veil();
    assert_outputs_match(&native, &veil);
    assert!(
        veil.stdout_str().ends_with("all ok\n"),
        "{}",
        veil.describe()
    );
}

#[test]
fn mount_syscalls_static() {
    mount_syscalls(Link::Static);
}

#[test]
fn mount_syscalls_static_pie() {
    mount_syscalls(Link::StaticPie);
}

#[test]
fn mount_syscalls_dynamic() {
    mount_syscalls(Link::Dynamic);
}

/// util-linux's mount lists the sandbox's table.
#[test]
fn mount_lists_the_table() {
    let out = run_veil_raw(&["do", "mount"]);
    out.assert_success();
    let text = out.stdout_str();
    for line in [
        "overlay on / type overlay (rw,relatime",
        "none on /dev type devtmpfs (rw,nosuid,relatime",
        "tmpfs on /dev/shm type tmpfs (rw,nosuid,nodev,relatime,size=2097152k,mode=1777)",
        "proc on /proc type proc (rw,nosuid,nodev,noexec,relatime)",
        "sysfs on /sys type sysfs (rw,nosuid,nodev,noexec,relatime)",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}

/// coreutils' df reads the table and statfs of every mount.
#[test]
fn df_shows_root_and_dev_shm() {
    let native = run_native(&["df", "-h"], &[]);
    let out = run_veil_raw(&["do", "df", "-h"]);
    out.assert_success();
    let text = out.stdout_str();
    // Columns are as wide as the longest source name: compare the words.
    let header = |s: &str| {
        let line = s.lines().next().unwrap_or("").to_string();
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(header(&text), header(&native.stdout_str()));
    let mounted_on = |dir: &str| text.lines().any(|l| l.ends_with(&format!("% {dir}")));
    assert!(mounted_on("/"), "{text}");
    assert!(mounted_on("/dev/shm"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("overlay ")), "{text}");
}

#[test]
fn read_only_volume() {
    let dir = TempDir::new("volume");
    dir.write("file", b"on the host\n", 0o644);
    let spec = format!("{}:/mnt/data:ro", dir.path().display());
    let out = run_veil_raw(&[
        "do",
        "-v",
        &spec,
        "sh",
        "-c",
        "cat /mnt/data/file; echo x > /mnt/data/new; mkdir /mnt/data/d; \
         grep -c ' /mnt/data .* ro,' /proc/mounts",
    ]);
    assert_eq!(out.stdout_str(), "on the host\n1\n", "{}", out.describe());
    let err = out.stderr_str();
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    assert!(!dir.path().join("new").exists());
}

#[test]
fn volume_of_a_single_file() {
    let dir = TempDir::new("volume-file");
    let file = dir.write("conf", b"setting=1\n", 0o644);
    let spec = format!("{}:/etc/veil-test.conf", file.display());
    let out = run_veil_raw(&["do", "--volume", &spec, "cat", "/etc/veil-test.conf"]);
    assert_eq!(out.stdout_str(), "setting=1\n", "{}", out.describe());
}

#[test]
fn tmpfs_option_limits_size() {
    let out = run_veil_raw(&[
        "do",
        "--tmpfs",
        "/scratch:size=1m,mode=0700",
        "sh",
        "-c",
        "stat -c %a /scratch; dd if=/dev/zero of=/scratch/big bs=64k count=32 2>&1 | head -1; \
         stat -f -c %t /scratch",
    ]);
    assert_eq!(
        out.stdout_str(),
        "700\ndd: error writing '/scratch/big': No space left on device\n1021994\n",
        "{}",
        out.describe()
    );
}

/// mountinfo in Linux's format: IDs, parent IDs, device, root within the
/// filesystem, mount point, options, separator, type, source, and the
/// filesystem's options. Compared with expectations, as the host's table
/// differs.
#[test]
fn mountinfo_format() {
    let out = run_veil_raw(&["do", "cat", "/proc/self/mountinfo"]);
    out.assert_success();
    let text = out.stdout_str();
    let mut ids = std::collections::HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 10, "{line}");
        assert_eq!(f[6], "-", "{line}");
        assert!(f[2].starts_with("0:"), "{line}");
        ids.insert(
            f[4].to_string(),
            (f[0].to_string(), f[1].to_string(), f[7].to_string()),
        );
    }
    let (root_id, _, root_type) = &ids["/"];
    assert_eq!(root_type, "overlay");
    let (dev_id, dev_parent, _) = &ids["/dev"];
    assert_eq!(dev_parent, root_id);
    let (_, shm_parent, shm_type) = &ids["/dev/shm"];
    assert_eq!((shm_parent, shm_type.as_str()), (dev_id, "tmpfs"));
    assert!(
        text.contains(" / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"),
        "{text}"
    );
}
