//! veil's OCI command line against runc's: `spec`, `features`, `list` and
//! `state` on a container that is not there. Comparisons need runc; without
//! it they are skipped with a note, except under CI, which installs it.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn veil(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run veil")
}

/// runc, or None (with a note) when it is not installed outside CI.
fn runc(dir: &Path, args: &[&str]) -> Option<Output> {
    match Command::new("runc").args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("runc is required under CI (.ci/run installs it): {e}")
        }
        Err(_) => {
            eprintln!("skipped: runc not installed");
            None
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every key path of a JSON document, array indices included, so that two
/// documents compare by structure without their values.
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = format!("{prefix}.{k}");
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                key_paths(v, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn spec_writes_a_config_like_runcs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = veil(tmp.path(), &["spec"]);
    assert!(out.status.success(), "veil spec: {out:?}");
    let config = tmp.path().join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config).expect("oci-spec loads config.json");
    assert_eq!(spec.hostname().as_deref(), Some("veil"));
    assert_eq!(
        spec.root().as_ref().map(|r| r.path().clone()),
        Some("rootfs".into())
    );
    let ours = std::fs::read_to_string(&config).expect("read");

    // runc refuses to replace a config, and so does veil.
    let again = veil(tmp.path(), &["spec"]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(stderr(&again).contains("File config.json exists. Remove it first"));
    assert_eq!(std::fs::read_to_string(&config).expect("read"), ours);

    // --bundle names the directory.
    let bundle = tmp.path().join("b");
    std::fs::create_dir(&bundle).expect("mkdir");
    let out = veil(tmp.path(), &["spec", "--bundle", "b"]);
    assert!(out.status.success(), "veil spec --bundle: {out:?}");
    assert_eq!(
        std::fs::read_to_string(bundle.join("config.json")).expect("read"),
        ours
    );
    let missing = veil(tmp.path(), &["spec", "-b", "nonexistent"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");

    let runc_dir = tmp.path().join("runc");
    std::fs::create_dir(&runc_dir).expect("mkdir");
    let Some(out) = runc(&runc_dir, &["spec"]) else {
        return;
    };
    assert!(out.status.success(), "runc spec: {out:?}");
    let theirs = std::fs::read_to_string(runc_dir.join("config.json")).expect("read");
    let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&parse(&ours), "", &mut a);
    key_paths(&parse(&theirs), "", &mut b);
    assert_eq!(a, b, "config.json keys differ from runc's");
    // Apart from the hostname, the very same config.
    assert_eq!(ours.replace("\"veil\"", "\"runc\""), theirs);
}

#[test]
fn list_on_an_empty_root_matches_runc() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("veil-root");
    let root_arg = root.to_str().expect("utf-8");
    let table = veil(tmp.path(), &["--root", root_arg, "list"]);
    assert!(table.status.success(), "{table:?}");
    assert_eq!(
        stdout(&table),
        "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
    );
    let mode = std::fs::metadata(&root)
        .expect("root made")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let json = veil(
        tmp.path(),
        &["--root", root_arg, "list", "--format", "json"],
    );
    assert!(json.status.success(), "{json:?}");
    assert_eq!(stdout(&json), "null\n");
    let quiet = veil(tmp.path(), &["--root", root_arg, "list", "-q"]);
    assert!(quiet.status.success(), "{quiet:?}");
    assert_eq!(stdout(&quiet), "");

    let runc_root = tmp.path().join("runc-root");
    let runc_root = runc_root.to_str().expect("utf-8");
    for args in [
        &["list"][..],
        &["list", "--format", "json"],
        &["list", "-q"],
    ] {
        let Some(theirs) = runc(tmp.path(), &[&["--root", runc_root][..], args].concat()) else {
            return;
        };
        let ours = veil(tmp.path(), &[&["--root", root_arg][..], args].concat());
        assert_eq!(stdout(&ours), stdout(&theirs), "{args:?}");
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
    }
}

#[test]
fn features_lists_what_veil_supports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = veil(tmp.path(), &["features"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let _: oci_spec::runtime::Features =
        serde_json::from_str(&text).expect("oci-spec reads the features");
    let v = parse(&text);
    for key in [
        "/ociVersionMin",
        "/ociVersionMax",
        "/hooks",
        "/mountOptions",
        "/linux/namespaces",
        "/linux/capabilities",
        "/linux/cgroup/v1",
        "/linux/cgroup/v2",
        "/annotations/dev.veil.version",
    ] {
        assert!(v.pointer(key).is_some(), "{key} missing: {text}");
    }
    // The OCI seccomp profile, AppArmor and SELinux are not applied.
    for key in [
        "/linux/seccomp/enabled",
        "/linux/apparmor/enabled",
        "/linux/selinux/enabled",
    ] {
        assert_eq!(
            v.pointer(key),
            Some(&serde_json::Value::Bool(false)),
            "{key}"
        );
    }
    assert!(!text.contains("null"), "unset fields are left out: {text}");
    let namespaces = v.pointer("/linux/namespaces").expect("namespaces");
    assert!(namespaces
        .as_array()
        .expect("array")
        .contains(&"pid".into()));

    let Some(theirs) = runc(tmp.path(), &["features"]) else {
        return;
    };
    let theirs = parse(&stdout(&theirs));
    let top = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    assert_eq!(top(&v), top(&theirs), "top-level keys differ from runc's");
}

#[test]
fn state_of_a_missing_container_fails_as_in_runc() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let log = tmp.path().join("log.json");
    let args = [
        "--root",
        root.to_str().expect("utf-8"),
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "state",
        "nope",
    ];
    let out = veil(tmp.path(), &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("container does not exist"), "{out:?}");
    // containerd decodes every line of the log and shows the last error.
    let line = parse(
        std::fs::read_to_string(&log)
            .expect("log written")
            .trim_end(),
    );
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container does not exist");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    let bad = veil(tmp.path(), &["--root", args[1], "state", "bad/id"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(stderr(&bad).contains("invalid container ID format"));

    let Some(theirs) = runc(tmp.path(), &["--root", args[1], "state", "nope"]) else {
        return;
    };
    assert_eq!(theirs.status.code(), Some(1));
    assert!(stderr(&theirs).contains("container does not exist"));
}

/// A recorded container whose sentry is gone shows as stopped, pid 0, in
/// `state` and `list` (the record is written by hand).
#[test]
fn a_container_without_its_sentry_is_stopped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let dir = root.join("c1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("state.json"),
        r#"{"id":"c1","bundle":"/b","rootfs":"/b/rootfs","created":"2026-11-29T11:54:30.959934648Z","owner":0,"status":"running","annotations":{"k":"v"},"sentry":{"pid":1,"start_ticks":18446744073709551615},"gofer":null}"#,
    )
    .expect("write");
    let root = root.to_str().expect("utf-8");
    let state = veil(tmp.path(), &["--root", root, "state", "c1"]);
    assert!(state.status.success(), "{state:?}");
    assert_eq!(
        stdout(&state),
        r#"{
  "ociVersion": "1.0.2-dev",
  "id": "c1",
  "pid": 0,
  "status": "stopped",
  "bundle": "/b",
  "rootfs": "/b/rootfs",
  "created": "2026-11-29T11:54:30.959934648Z",
  "annotations": {
    "k": "v"
  },
  "owner": ""
}"#
    );
    let list = veil(tmp.path(), &["--root", root, "list"]);
    assert!(list.status.success(), "{list:?}");
    assert_eq!(
        stdout(&list),
        "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n\
         c1          0           stopped     /b          2026-11-29T11:54:30.959934648Z   root\n"
    );
    let json = veil(tmp.path(), &["--root", root, "list", "-f", "json"]);
    let all = parse(&stdout(&json));
    assert_eq!(all[0]["id"], "c1");
    assert_eq!(all[0]["owner"], "root");
    assert_eq!(all[0]["status"], "stopped");
    let quiet = veil(tmp.path(), &["--root", root, "list", "-q"]);
    assert_eq!(stdout(&quiet), "c1\n");
}
