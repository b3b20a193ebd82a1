//! File system: tests/c/fs/*.c natively vs under veil, and the overlay
//! contract: the sandbox sees the host's root, its writes land in a memory
//! overlay, and the host is never modified.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_program_passes, path_str, run_veil, Link, Status, TempDir};

fn fs_basic(link: Link) {
    assert_program_passes("fs/fs_basic", link);
}

#[test]
fn fs_basic_static() {
    fs_basic(Link::Static);
}

#[test]
fn fs_basic_dynamic() {
    fs_basic(Link::Dynamic);
}

/// A host path that must not exist, before or after the test. If veil ever
/// leaks a write to the host, the test fails and the file is removed again.
struct HostProbe(PathBuf);

impl HostProbe {
    fn new(dir: &str, tag: &str) -> HostProbe {
        let p = Path::new(dir).join(format!("veil-overlay-probe-{tag}-{}", std::process::id()));
        // A leftover from an earlier, interrupted run.
        let _ = std::fs::remove_file(&p);
        HostProbe(p)
    }

    fn path(&self) -> &str {
        path_str(&self.0)
    }

    fn assert_absent_on_host(&self) {
        let exists = self.0.symlink_metadata().is_ok();
        if exists {
            let _ = std::fs::remove_file(&self.0);
        }
        assert!(
            !exists,
            "{} was created ON THE HOST by a write inside the sandbox: \
             the overlay leaked (removed it again)",
            self.0.display()
        );
    }
}

impl Drop for HostProbe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_then_read_in_sandbox(dir: &str, tag: &str) {
    let probe = HostProbe::new(dir, tag);
    // Shell builtins only: the write and the read back need no other process.
    let script = format!(
        "echo x > {0} && read line < {0} && echo \"$line\"",
        probe.path()
    );
    let veil = run_veil(&["/bin/sh", "-c", &script], &[]);
    probe.assert_absent_on_host();
    veil.assert_success();
    assert_eq!(veil.stdout_str(), "x\n", "{}", veil.describe());
}

#[test]
fn overlay_write_in_tmp_stays_in_sandbox() {
    write_then_read_in_sandbox("/tmp", "tmp");
}

#[test]
fn overlay_write_in_etc_stays_in_sandbox() {
    write_then_read_in_sandbox("/etc", "etc");
}

/// Each `veil do` starts from a fresh overlay: a file written by one run is
/// gone in the next.
#[test]
fn overlay_is_per_run() {
    let probe = HostProbe::new("/tmp", "per-run");
    let first = run_veil(
        &["/bin/sh", "-c", &format!("echo x > {}", probe.path())],
        &[],
    );
    first.assert_success();
    let second = run_veil(&["/bin/cat", probe.path()], &[]);
    probe.assert_absent_on_host();
    assert_eq!(second.status, Status::Exited(1), "{}", second.describe());
    assert!(
        second.stderr_str().contains("No such file or directory"),
        "{}",
        second.describe()
    );
}

/// Changing and deleting existing host files inside the sandbox leaves the
/// host copies untouched (the files are the test's own, in target/tmp).
#[test]
fn overlay_hides_changes_to_host_files() {
    let dir = TempDir::new("overlay");
    let changed = dir.write("changed.txt", b"original\n", 0o644);
    let deleted = dir.write("deleted.txt", b"keep me\n", 0o644);
    let script = format!(
        "import os\n\
         open({c:?}, 'w').write('changed\\n')\n\
         print(open({c:?}).read(), end='')\n\
         os.remove({d:?})\n\
         assert not os.path.exists({d:?})\n\
         print('deleted')\n\
         os.mkdir({dir:?} + '/newdir')\n\
         print('made')\n",
        c = path_str(&changed),
        d = path_str(&deleted),
        dir = path_str(dir.path()),
    );
    let veil = run_veil(&["/usr/bin/python3", "-c", &script], &[]);
    assert_eq!(
        std::fs::read(&changed).ok().as_deref(),
        Some(&b"original\n"[..]),
        "host file was modified by the sandbox\n{}",
        veil.describe()
    );
    assert_eq!(
        std::fs::read(&deleted).ok().as_deref(),
        Some(&b"keep me\n"[..]),
        "host file was deleted by the sandbox\n{}",
        veil.describe()
    );
    assert!(
        !dir.path().join("newdir").exists(),
        "a directory made in the sandbox appeared on the host"
    );
    veil.assert_success();
    assert_eq!(
        veil.stdout_str(),
        "changed\ndeleted\nmade\n",
        "{}",
        veil.describe()
    );
}

/// /dev has the standard links into /proc/self/fd.
#[test]
fn dev_links() {
    let (_, veil) = common::assert_same(&[
        "/usr/bin/readlink",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/fd",
    ]);
    assert_eq!(
        veil.stdout_str(),
        "/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n/proc/self/fd\n",
        "{}",
        veil.describe()
    );
}

fn fattr(link: Link) {
    assert_program_passes("fs/fattr", link);
}

#[test]
fn fattr_static() {
    fattr(Link::Static);
}

#[test]
fn fattr_dynamic() {
    fattr(Link::Dynamic);
}

/// chmod, chown and touch of a host file copy it up: the sandbox sees the
/// change, the host file keeps its mode, owner, times and contents.
#[test]
fn overlay_metadata_changes_stay_in_sandbox() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("overlay-attr");
    let file = dir.write("file.txt", b"data\n", 0o644);
    let before = std::fs::metadata(&file).expect("stat the host file");
    let script = format!(
        "chmod 600 {f} && chown 12:34 {f} && touch -d @1000 {f} && stat -c '%a %u %g %Y' {f} && cat {f}",
        f = path_str(&file)
    );
    let veil = run_veil(&["/bin/sh", "-c", &script], &[]);
    let after = std::fs::metadata(&file).expect("stat the host file");
    assert_eq!(
        (after.mode(), after.uid(), after.gid(), after.mtime()),
        (before.mode(), before.uid(), before.gid(), before.mtime()),
        "the sandbox changed the host file's metadata\n{}",
        veil.describe()
    );
    veil.assert_success();
    assert_eq!(
        veil.stdout_str(),
        "600 12 34 1000\ndata\n",
        "{}",
        veil.describe()
    );
}

fn flock(link: Link) {
    assert_program_passes("fs/flock", link);
}

#[test]
fn flock_static() {
    flock(Link::Static);
}

#[test]
fn flock_dynamic() {
    flock(Link::Dynamic);
}

/// Python's fcntl.flock on a temporary file: a second description of the
/// file conflicts until the first unlocks.
#[test]
fn python_flock() {
    let script = "import fcntl, tempfile\n\
                  f = tempfile.NamedTemporaryFile()\n\
                  fcntl.flock(f, fcntl.LOCK_EX)\n\
                  g = open(f.name)\n\
                  try:\n    fcntl.flock(g, fcntl.LOCK_SH | fcntl.LOCK_NB)\n    print('locked')\n\
                  except BlockingIOError:\n    print('busy')\n\
                  fcntl.flock(f, fcntl.LOCK_UN)\n\
                  fcntl.flock(g, fcntl.LOCK_SH | fcntl.LOCK_NB)\n\
                  print('shared')\n";
    let veil = run_veil(&["/usr/bin/python3", "-c", script], &[]);
    veil.assert_success();
    assert_eq!(veil.stdout_str(), "busy\nshared\n", "{}", veil.describe());
}

/// Runs a Python snippet natively with `arg` as sys.argv[1].
fn python_native(script: &str, arg: &str) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script, arg])
        .output()
        .expect("run python3 natively");
    assert!(out.status.success(), "native python3: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python's os.setxattr/getxattr/listxattr/removexattr round trip on a
/// sandbox file; a host file's user.* attributes show through the overlay
/// and survive its copy-up, while the host file keeps only its own.
#[test]
fn python_xattrs() {
    let dir = TempDir::new("overlay-xattr");
    let host = dir.write("host.txt", b"data\n", 0o644);
    let host = path_str(&host);
    python_native(
        "import os, sys; os.setxattr(sys.argv[1], 'user.host', b'kept')",
        host,
    );
    let script = "import os, sys, tempfile\n\
                  t = tempfile.NamedTemporaryFile()\n\
                  os.setxattr(t.name, 'user.x', b'1')\n\
                  os.setxattr(t.name, 'user.y', b'22')\n\
                  print(sorted(os.listxattr(t.name)), os.getxattr(t.name, 'user.y'))\n\
                  os.removexattr(t.name, 'user.x')\n\
                  print(os.listxattr(t.name))\n\
                  h = sys.argv[1]\n\
                  print(os.listxattr(h), os.getxattr(h, 'user.host'))\n\
                  os.setxattr(h, 'user.new', b'n')\n\
                  print(sorted(os.listxattr(h)), os.getxattr(h, 'user.host'))\n";
    let veil = run_veil(&["/usr/bin/python3", "-c", script, host], &[]);
    let on_host = python_native("import os, sys; print(os.listxattr(sys.argv[1]))", host);
    assert_eq!(
        on_host,
        "['user.host']\n",
        "the sandbox changed the host file's xattrs\n{}",
        veil.describe()
    );
    veil.assert_success();
    assert_eq!(
        veil.stdout_str(),
        "['user.x', 'user.y'] b'22'\n['user.y']\n['user.host'] b'kept'\n['user.host', 'user.new'] b'kept'\n",
        "{}",
        veil.describe()
    );
}

fn reclock(link: Link) {
    assert_program_passes("fs/reclock", link);
}

#[test]
fn reclock_static() {
    reclock(Link::Static);
}

#[test]
fn reclock_dynamic() {
    reclock(Link::Dynamic);
}

/// /dev/stdout and friends reopen the file behind the descriptor through
/// procfs's magic links: pipes get a new end, host descriptors a new one.
#[test]
fn dev_std_links_reopen_their_files() {
    let (_, veil) = common::assert_same(&[
        "/bin/sh",
        "-c",
        "echo p | cat /dev/stdin; (echo viafd > /dev/stdout) | cat; echo out > /dev/stdout; \
         echo err > /dev/stderr; cd /etc && cat /proc/self/cwd/hostname > /dev/null && echo cwd",
    ]);
    assert_eq!(
        veil.stdout_str(),
        "p\nviafd\nout\ncwd\n",
        "{}",
        veil.describe()
    );
    assert_eq!(veil.stderr_str(), "err\n", "{}", veil.describe());
}

fn splice(link: Link) {
    assert_program_passes("fs/splice", link);
}

#[test]
fn splice_static() {
    splice(Link::Static);
}

#[test]
fn splice_dynamic() {
    splice(Link::Dynamic);
}

fn rename(link: Link) {
    assert_program_passes("fs/rename", link);
}

#[test]
fn rename_static() {
    rename(Link::Static);
}

#[test]
fn rename_dynamic() {
    rename(Link::Dynamic);
}

fn openat2(link: Link) {
    assert_program_passes("fs/openat2", link);
}

#[test]
fn openat2_static() {
    openat2(Link::Static);
}

#[test]
fn openat2_dynamic() {
    openat2(Link::Dynamic);
}

fn mknod(link: Link) {
    assert_program_passes("fs/mknod", link);
}

#[test]
fn mknod_static() {
    mknod(Link::Static);
}

#[test]
fn mknod_dynamic() {
    mknod(Link::Dynamic);
}

fn xattr(link: Link) {
    assert_program_passes("fs/xattr", link);
}

#[test]
fn xattr_static() {
    xattr(Link::Static);
}

#[test]
fn xattr_dynamic() {
    xattr(Link::Dynamic);
}

fn tmpfile(link: Link) {
    assert_program_passes("fs/tmpfile", link);
}

#[test]
fn tmpfile_static() {
    tmpfile(Link::Static);
}

#[test]
fn tmpfile_dynamic() {
    tmpfile(Link::Dynamic);
}

fn oflags(link: Link) {
    assert_program_passes("fs/oflags", link);
}

#[test]
fn oflags_static() {
    oflags(Link::Static);
}

#[test]
fn oflags_dynamic() {
    oflags(Link::Dynamic);
}

fn inotify(link: Link) {
    assert_program_passes("fs/inotify", link);
}

#[test]
fn inotify_static() {
    inotify(Link::Static);
}

#[test]
fn inotify_dynamic() {
    inotify(Link::Dynamic);
}
