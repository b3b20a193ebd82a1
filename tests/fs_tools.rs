//! Real programs over the file system, natively and under veil: archives,
//! tree walks, large files, and Python's file-system modules.

mod common;

use std::time::Duration;

use common::{
    assert_outputs_match, compile, path_str, repo_root, run_command, run_veil_raw, Case, Link,
    TempDir,
};

/// tar archives a tree and extracts it elsewhere; the copy is identical.
#[test]
fn tar_create_and_extract() {
    let dir = TempDir::new("tar");
    let script = format!(
        "set -e; cd {d}; rm -rf src out a.tgz; mkdir -p src/sub/deeper out\n\
         printf 'one\\n' > src/a; printf 'two\\n' > src/sub/b; ln -s ../a src/sub/link\n\
         chmod 640 src/sub/b; touch -d @1000000000 src/a src/sub/b\n\
         tar czf a.tgz src\n\
         tar xzf a.tgz -C out\n\
         diff -r src out/src && echo identical\n\
         tar tzf a.tgz | sort\n\
         stat -c '%n %a %s %Y' out/src/a out/src/sub/b\n\
         readlink out/src/sub/link",
        d = path_str(dir.path())
    );
    let (_, veil) = Case::new(&["/bin/sh", "-c", &script]).assert_same();
    assert!(
        veil.stdout_str().starts_with("identical\n"),
        "{}",
        veil.describe()
    );
}

/// A walk of the whole root: more files than the gofer may hold open at
/// once, so it passes only if unused dentries (and their gofer files) are
/// released along the way.
#[test]
fn find_whole_root() {
    let (_, veil) = Case::new(&["/usr/bin/find", "/", "-xdev", "-name", "passwd"])
        .timeout(Duration::from_secs(300))
        .assert_same();
    assert!(
        veil.stdout_str().contains("/etc/passwd\n"),
        "{}",
        veil.describe()
    );
}

/// stat(1) of host files and directories prints what it does natively,
/// birth time included (the access time is left out: reads change it).
#[test]
fn stat_of_host_files() {
    Case::new(&[
        "/usr/bin/stat",
        "-c",
        "%n %F %a %u %g %s %h %i %b %B %Y %Z %W %w",
        "/etc/passwd",
        "/usr/bin",
        "/etc/hostname",
    ])
    .assert_same();
}

/// A file made in the sandbox has a birth time, as on the host's
/// filesystems.
#[test]
fn new_files_have_a_birth_time() {
    let dir = TempDir::new("btime");
    let script = format!(
        "f={d}/born; echo x > $f; b=$(stat -c %W $f); m=$(stat -c %Y $f); \
         [ \"$b\" -gt 0 ] && [ \"$b\" -le \"$m\" ] && echo born; rm $f",
        d = path_str(dir.path())
    );
    let (_, veil) = Case::new(&["/bin/sh", "-c", &script]).assert_same();
    assert_eq!(veil.stdout_str(), "born\n", "{}", veil.describe());
}

/// A 100 MiB file written and read back inside the sandbox hashes as the
/// same bytes do natively.
#[test]
fn sha256_of_a_100_mib_file() {
    let dir = TempDir::new("sha");
    let script = format!(
        "set -e; f={d}/big; head -c 104857600 /dev/zero | tr '\\0' 'v' > $f\n\
         printf tail >> $f; sha256sum < $f; wc -c < $f; rm $f",
        d = path_str(dir.path())
    );
    let (_, veil) = Case::new(&["/bin/sh", "-c", &script])
        .timeout(Duration::from_secs(300))
        .assert_same();
    assert!(
        veil.stdout_str().contains("104857604\n"),
        "{}",
        veil.describe()
    );
}

/// os.walk, shutil.copytree/rmtree, tempfile, fcntl.flock, mmap of a file
/// and an sqlite3 database, all on the overlay.
#[test]
fn python_file_system_modules() {
    let script = repo_root().join("tests/py/fs_tools.py");
    let (_, veil) = Case::new(&["/usr/bin/python3", path_str(&script)]).assert_same();
    assert!(
        veil.stdout_str().contains("(1000, 499500)"),
        "{}",
        veil.describe()
    );
}

/// A shared mapping of a file in a writable bind mount is coherent with
/// read(2) and write(2), and its stores reach the host file, with msync and
/// without; natively the program runs on the same directory.
#[test]
fn shared_mappings_of_bound_host_files() {
    let bin = compile("fs/mmap_shared", Link::Static);
    let bin = path_str(&bin);
    let dir = TempDir::new("mmap-shared");
    let d = path_str(dir.path());
    let native = run_command(bin, &[d.to_string()], &[], None, common::run_timeout());
    let bind = format!("{d}:{d}");
    let veil = run_veil_raw(&["do", "-v", &bind, bin, d]);
    assert_outputs_match(&native, &veil);
    assert!(
        veil.stdout_str().ends_with("all ok\n"),
        "{}",
        veil.describe()
    );
    let host = std::fs::read(dir.path().join("shared.dat")).expect("the host file");
    assert_eq!(&host[..12], b"LASTMMAPWRIT", "{}", veil.describe());
    assert_eq!(&host[4096..4107], b"second page");
}
