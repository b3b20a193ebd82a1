//! What the end-to-end OCI tests share: the runtime under test, a busybox
//! image archive that `ctr image import` and `podman load` accept without a
//! registry, and runs of the managers' command lines with a timeout.
//!
//! The runtime is veil by default; `VEIL_TEST_OCI_RUNTIME=/usr/sbin/runc`
//! runs the same tests against runc, which checks the harness itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::{run_command, run_timeout, target_tmp, veil_bin, Output, BASE_ENV};

/// The name the image archive gives its one image.
pub const IMAGE: &str = "localhost/veil-busybox:latest";

const BUSYBOX: &str = "/bin/busybox";

/// The OCI runtime the managers drive: `$VEIL_TEST_OCI_RUNTIME` (an
/// absolute path, because containerd's shim and conmon resolve it in their
/// own working directories) or the veil binary under test.
pub fn oci_runtime() -> PathBuf {
    match std::env::var_os("VEIL_TEST_OCI_RUNTIME") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.is_absolute(),
                "VEIL_TEST_OCI_RUNTIME must be an absolute path, not {}",
                p.display()
            );
            p
        }
        _ => PathBuf::from(veil_bin()),
    }
}

/// Whether the runtime under test is runc (only for runc's known quirks on
/// this kind of machine, never to relax what the tests check).
pub fn runtime_is_runc() -> bool {
    oci_runtime().file_name().is_some_and(|n| n == "runc")
}

/// Whether `name` is an executable in `$PATH` (or, with a slash, at that path).
fn installed(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return is_exe(Path::new(name));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_exe(&dir.join(name))))
}

/// True when the tools, root, and the runtime under test are all there.
/// Otherwise prints `skipped: ...` and returns false, or fails under `CI`,
/// where .ci/run installs them and runs as root.
pub fn prerequisites(tools: &[&str]) -> bool {
    let runtime = oci_runtime();
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| !installed(t))
        .map(|t| format!("{t} not installed"))
        .collect();
    if !installed(&runtime.to_string_lossy()) {
        missing.push(format!("{} not installed", runtime.display()));
    }
    if !rustix::process::geteuid().is_root() {
        missing.push("not running as root".to_string());
    }
    if !Path::new(BUSYBOX).exists() {
        missing.push(format!("{BUSYBOX} not installed (busybox-static)"));
    }
    if missing.is_empty() {
        return true;
    }
    let why = missing.join(", ");
    assert!(
        std::env::var_os("CI").is_none(),
        "these tests cannot run under CI: {why} (.ci/run installs the tools and runs as root)"
    );
    eprintln!("skipped: {why}");
    false
}

/// Runs `program args...` with the tests' base environment plus `env`,
/// stdin from /dev/null and the usual timeout; a hang fails the test.
pub fn run(program: &str, args: &[String], env: &[(&str, &str)]) -> Output {
    let env: Vec<(String, String)> = BASE_ENV
        .iter()
        .chain(env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_command(program, args, &env, None, run_timeout())
}

/// `$CARGO_TARGET_TMPDIR/veil-busybox.tar`, built once per test process.
/// Its content depends only on /bin/busybox, so concurrent test processes
/// write the same bytes and the rename makes whichever lands complete.
pub fn busybox_image() -> PathBuf {
    static IMAGE_TAR: OnceLock<PathBuf> = OnceLock::new();
    IMAGE_TAR
        .get_or_init(|| {
            let path = target_tmp().join("veil-busybox.tar");
            let tmp = target_tmp().join(format!("veil-busybox.tar.{}", std::process::id()));
            let archive = image_archive(IMAGE).expect("build the busybox image archive");
            let mut f = std::fs::File::create(&tmp)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
            f.write_all(&archive).expect("write the image archive");
            std::fs::rename(&tmp, &path).expect("rename the image archive into place");
            path
        })
        .clone()
}

fn sha256_digest(data: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for b in Sha256::digest(data) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A ustar header owned by root with mtime 0, so archives are reproducible.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn add_file(
    t: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    t.append_data(&mut h, path, data)
}

fn add_dir(t: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    t.append_data(&mut h, path, std::io::empty())
}

/// The image's one layer: /bin/busybox, a symlink per applet, the usual
/// top-level directories, and a passwd/group that name root and nobody.
fn busybox_layer() -> std::io::Result<Vec<u8>> {
    let list = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    if !list.status.success() {
        return Err(std::io::Error::other(format!("{BUSYBOX} --list: {list:?}")));
    }
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();
    let busybox = std::fs::read(BUSYBOX)?;

    let mut t = tar::Builder::new(Vec::new());
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "var"] {
        add_dir(
            &mut t,
            &format!("{d}/"),
            if d == "tmp" { 0o1777 } else { 0o755 },
        )?;
    }
    add_file(&mut t, "bin/busybox", &busybox, 0o755)?;
    for applet in applets.split_whitespace().filter(|a| *a != "busybox") {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        t.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    add_file(
        &mut t,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        0o644,
    )?;
    add_file(&mut t, "etc/group", b"root:x:0:\nnobody:x:65534:\n", 0o644)?;
    t.into_inner()
}

/// An OCI image layout archive holding one image named `reference`, with a
/// docker-style manifest.json as well: containerd reads the layout (the
/// name from the `io.containerd.image.name` annotation), podman either.
pub fn image_archive(reference: &str) -> std::io::Result<Vec<u8>> {
    use serde_json::json;
    let (_, tag) = reference
        .rsplit_once(':')
        .ok_or_else(|| std::io::Error::other(format!("{reference}: no tag")))?;
    let to_vec = |v: &serde_json::Value| serde_json::to_vec(v).map_err(std::io::Error::other);

    let layer = busybox_layer()?;
    let layer_digest = sha256_digest(&layer);
    let config = to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "veil tests"}],
    }))?;
    let config_digest = sha256_digest(&config);
    let manifest = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = sha256_digest(&manifest);
    let index = to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;
    let blob = |digest: &str| format!("blobs/sha256/{}", &digest["sha256:".len()..]);
    let docker_manifest = to_vec(&json!([{
        "Config": blob(&config_digest),
        "RepoTags": [reference],
        "Layers": [blob(&layer_digest)],
    }]))?;

    let mut t = tar::Builder::new(Vec::new());
    add_dir(&mut t, "blobs/", 0o755)?;
    add_dir(&mut t, "blobs/sha256/", 0o755)?;
    for (digest, data) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        add_file(&mut t, &blob(digest), data, 0o644)?;
    }
    add_file(
        &mut t,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    add_file(&mut t, "index.json", &index, 0o644)?;
    add_file(&mut t, "manifest.json", &docker_manifest, 0o644)?;
    t.into_inner()
}

/// Unmounts (lazily) everything mounted at or below `dir`, deepest first,
/// so that a failed test's leftover rootfs mounts don't keep its scratch
/// directory from being removed. (Mount points with characters that
/// mountinfo escapes don't match: scratch paths have none.)
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
    }
}
