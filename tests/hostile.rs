//! A hostile root: `veil do --root DIR` over a tree full of symlinks to the
//! host, ".." chains, loops, a device node and a name flipping between a
//! directory and a symlink out. Only clean errors result: a file outside
//! the root is never read, written, or joined by new files, with or without
//! an overlay; and `--overlay=file` keeps the sandbox's changes in a file in
//! the given directory for the run only.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::{path_str, run_veil_raw, Output, Status, TempDir};

const SECRET: &str = "SECRET";
const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "ln", "readlink", "stat", "echo", "mv", "rm", "chmod", "test", "[", "sleep",
    "touch",
];

/// A root directory `root` next to `outside`, which holds the secret.
struct Hostile {
    _tmp: TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Hostile {
    fn new(tag: &str) -> Hostile {
        let tmp = TempDir::new(tag);
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("bin")).expect("mkdir bin");
        fs::create_dir(&outside).expect("mkdir outside");
        fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            symlink("busybox", root.join("bin").join(applet)).expect("applet link");
        }
        fs::write(outside.join("secret"), SECRET).expect("write secret");
        symlink(outside.join("secret"), root.join("shadow")).expect("symlink");
        symlink(&outside, root.join("outdir")).expect("symlink");
        let dotdot = format!(
            "../../../../../../../..{}",
            path_str(&outside.join("secret"))
        );
        symlink(dotdot, root.join("dotdot")).expect("symlink");
        symlink("b", root.join("a")).expect("symlink");
        symlink("a", root.join("b")).expect("symlink");
        fs::write(root.join("host.txt"), "host").expect("write");
        // The test runs as root; without CAP_MKNOD the node is left out.
        let _ = rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        );
        Hostile {
            _tmp: tmp,
            root,
            outside,
        }
    }

    fn run(&self, overlay: &str, script: &str) -> Output {
        let root = path_str(&self.root);
        let overlay = format!("--overlay={overlay}");
        run_veil_raw(&["do", "--root", root, &overlay, "/bin/sh", "-c", script])
    }

    /// The outside is as the test made it.
    fn assert_outside_untouched(&self, out: &Output) {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(SECRET), "{}\n{text}", out.command);
        assert_eq!(
            fs::read_to_string(self.outside.join("secret")).expect("read"),
            SECRET
        );
        assert_eq!(
            fs::metadata(self.outside.join("secret"))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
        let names: Vec<_> = fs::read_dir(&self.outside)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["secret"], "nothing appeared outside the root");
    }
}

/// Reads, writes and renames through every hostile name; each fails
/// cleanly (the script goes on and exits 0).
const ATTACK: &str = "\
for f in /shadow /dotdot /a /null /outdir/secret; do
  cat $f; echo x > $f; echo y >> $f; chmod 777 $f; touch $f
done
readlink /shadow; readlink /dotdot
ln -s /outdir/new /ln; echo z > /ln
mv /host.txt /outdir/moved
ls /outdir/ /a/ /dotdot/
stat -L /shadow
exit 0";

fn attack(overlay: &str) {
    let h = Hostile::new(&format!("hostile-{overlay}"));
    fs::set_permissions(h.outside.join("secret"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = h.run(overlay, ATTACK);
    assert_eq!(out.status, Status::Exited(0), "{}", out.command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // readlink shows the text of the links, never what they point at.
    assert!(
        stdout.contains(path_str(&h.outside.join("secret"))),
        "{stdout}"
    );
    h.assert_outside_untouched(&out);
}

#[test]
fn hostile_links_fail_cleanly_under_the_memory_overlay() {
    attack("memory");
}

#[test]
fn hostile_links_fail_cleanly_without_an_overlay() {
    attack("none");
}

/// The same attack through a writable bind mount of the hostile tree on
/// /mnt: its links resolve in the sandbox, whose root is the hostile tree
/// too (under the memory overlay), never on the host.
#[test]
fn hostile_links_in_a_writable_bind_fail_cleanly() {
    let h = Hostile::new("hostile-bind");
    fs::set_permissions(h.outside.join("secret"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let root = path_str(&h.root);
    let bind = format!("{root}:/mnt");
    // Every path of the attack is one word after a space.
    let script = format!(
        "echo bound > /mnt/written\n{}",
        ATTACK.replace(" /", " /mnt/")
    );
    let out = run_veil_raw(&["do", "--root", root, "-v", &bind, "/bin/sh", "-c", &script]);
    assert_eq!(out.status, Status::Exited(0), "{}", out.command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(path_str(&h.outside.join("secret"))),
        "{stdout}"
    );
    h.assert_outside_untouched(&out);
    assert_eq!(
        fs::read_to_string(h.root.join("written")).expect("the bind is writable"),
        "bound\n"
    );
}

#[test]
fn the_memory_overlay_never_changes_the_host() {
    let h = Hostile::new("hostile-nochange");
    let out = h.run(
        "memory",
        "echo changed > /host.txt; chmod 600 /host.txt; mv /host.txt /moved; \
         rm /moved; echo new > /created; mkdir /d; cat /host.txt; exit 0",
    );
    assert_eq!(out.status, Status::Exited(0), "{}", out.command);
    assert_eq!(
        fs::read_to_string(h.root.join("host.txt")).expect("read"),
        "host"
    );
    assert!(!h.root.join("created").exists() && !h.root.join("d").exists());
    assert!(!h.root.join("moved").exists());
}

#[test]
fn without_an_overlay_writes_reach_the_host_inside_the_root() {
    let h = Hostile::new("hostile-writes");
    let out = h.run(
        "none",
        "echo changed > /host.txt; echo new > /created; mv /created /moved; \
         chmod 600 /moved; ln /moved /hard; ln -s moved /sl; mkdir /dd; mkdir /dd/sub; \
         rmdir /dd/sub; cat /sl /hard; echo trunc > /hard; cat /moved; sync /moved; sync -d /moved; rm /hard",
    );
    assert_eq!(out.status, Status::Exited(0), "{}", out.command);
    assert_eq!(out.stdout, b"new\nnew\ntrunc\n");
    assert_eq!(
        fs::read_to_string(h.root.join("host.txt")).expect("read"),
        "changed\n"
    );
    let moved = fs::metadata(h.root.join("moved")).expect("moved exists");
    assert_eq!(moved.permissions().mode() & 0o777, 0o600);
    assert_eq!(moved.nlink(), 1, "the hard link was made and removed");
    assert_eq!(
        fs::read_to_string(h.root.join("moved")).expect("read"),
        "trunc\n"
    );
    assert_eq!(
        fs::read_link(h.root.join("sl")).expect("readlink"),
        Path::new("moved")
    );
    assert!(h.root.join("dd").is_dir() && !h.root.join("dd/sub").exists());
    assert!(!h.root.join("created").exists() && !h.root.join("hard").exists());
}

/// Flips `root/flip` between a directory holding `f` ("inside") and a
/// symlink to the outside, while the sandbox reads and writes `/flip/f`
/// many times. Flipping starts once the sandbox has read `f` through the
/// directory, as an overlay may keep what it first found.
fn swap_race(overlay: &str) {
    let h = Hostile::new(&format!("hostile-race-{overlay}"));
    let flip = h.root.join("flip");
    fs::create_dir(&flip).expect("mkdir");
    fs::write(flip.join("f"), "inside\n").expect("write");
    let link = h.root.join("flip.link");
    symlink(&h.outside, &link).expect("symlink");
    let mut child = Command::new(common::veil_bin())
        .args(["do", "--root", path_str(&h.root)])
        .arg(format!("--overlay={overlay}"))
        .args(["/bin/sh", "-c"])
        .arg(
            "cat /flip/f; i=0; while [ $i -lt 100 ]; do cat /flip/f; echo w >> /flip/f; \
             i=$((i+1)); done 2>/dev/null; exit 0",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn veil");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read");
    assert_eq!(first, "inside\n");
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Swap the names atomically: "flip" is always one of them.
                let _ = rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &flip,
                    rustix::fs::CWD,
                    &link,
                    rustix::fs::RenameFlags::EXCHANGE,
                );
                thread::yield_now();
            }
        })
    };
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("read");
    let status = child.wait().expect("wait");
    stop.store(true, Ordering::Relaxed);
    flipper.join().expect("flipper");
    assert!(status.success(), "{status:?}");
    let out = Output {
        command: format!("veil do --root ... --overlay={overlay} (swap race)"),
        stdout: rest,
        stderr: Vec::new(),
        status: Status::Exited(0),
        elapsed: std::time::Duration::ZERO,
    };
    h.assert_outside_untouched(&out);
}

#[test]
fn a_name_flipping_to_a_symlink_never_leads_out_under_the_memory_overlay() {
    swap_race("memory");
}

#[test]
fn a_name_flipping_to_a_symlink_never_leads_out_without_an_overlay() {
    swap_race("none");
}

/// Whether some process holds open a file in `dir`.
fn held_open_in(dir: &Path) -> bool {
    let Ok(procs) = fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(dir)))
        })
    })
}

#[test]
fn the_file_overlay_keeps_changes_for_the_run_in_the_given_directory() {
    let h = Hostile::new("hostile-file");
    let upper = TempDir::new("hostile-upper");
    let veil = common::veil_bin();
    let root = path_str(&h.root);
    let overlay = format!("--overlay=file:{}", path_str(upper.path()));
    let child = Command::new(&veil)
        .args(["do", "--root", root, &overlay, "/bin/sh", "-c"])
        .arg("echo persisted > /data; echo more >> /host.txt; sleep 2; cat /data /host.txt")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn veil");
    let mut seen = false;
    for _ in 0..100 {
        if held_open_in(upper.path()) {
            seen = true;
            break;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"persisted\nhostmore\n");
    assert!(seen, "the upper file lives in {}", upper.path().display());
    // The platform's stub processes hold the memory file too, and die
    // shortly after the sentry.
    let gone = (0..250).any(|_| {
        thread::sleep(std::time::Duration::from_millis(20));
        !held_open_in(upper.path())
    });
    assert!(gone, "and is gone afterwards");
    assert_eq!(fs::read_dir(upper.path()).expect("readdir").count(), 0);
    assert_eq!(
        fs::read_to_string(h.root.join("host.txt")).expect("read"),
        "host"
    );
    assert!(!h.root.join("data").exists());
}
