//! Unmodified host programs: the same output natively and under `veil do`.

mod common;

use common::{assert_same, path_str, run_veil, Case, Status, TempDir};

#[test]
fn echo_hello() {
    let (_, veil) = assert_same(&["/bin/echo", "hello"]);
    assert_eq!(veil.stdout_str(), "hello\n");
}

#[test]
fn ls_la_etc() {
    let (_, veil) = assert_same(&["/bin/ls", "-la", "/etc"]);
    assert!(
        veil.stdout_str().starts_with("total "),
        "{}",
        veil.describe()
    );
}

#[test]
fn cat_os_release() {
    let (_, veil) = assert_same(&["/bin/cat", "/etc/os-release"]);
    let want = std::fs::read("/etc/os-release").expect("read /etc/os-release");
    assert_eq!(veil.stdout, want, "{}", veil.describe());
}

#[test]
fn cat_reads_stdin() {
    let input = b"line one\nline two\n";
    let (_, veil) = Case::new(&["/bin/cat"]).stdin(input).assert_same();
    assert_eq!(veil.stdout, input);
}

/// The caller's environment is passed through as is: nothing added, nothing
/// dropped.
#[test]
fn env_passthrough() {
    let case = Case::new(&["/usr/bin/env"])
        .env("VEIL_TEST_VAR", "hello world")
        .env("VEIL_TEST_EMPTY", "")
        .env("VEIL_TEST_EQUALS", "a=b=c");
    let (_, veil) = case.assert_same();
    let mut got: Vec<String> = veil.stdout_str().lines().map(str::to_string).collect();
    got.sort();
    let mut want: Vec<String> = common::BASE_ENV
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain([
            "VEIL_TEST_VAR=hello world".to_string(),
            "VEIL_TEST_EMPTY=".to_string(),
            "VEIL_TEST_EQUALS=a=b=c".to_string(),
        ])
        .collect();
    want.sort();
    assert_eq!(got, want, "{}", veil.describe());
}

#[test]
fn python_lists_root() {
    let (_, veil) = Case::new(&[
        "/usr/bin/python3",
        "-c",
        r#"import os, json; print(json.dumps(sorted(os.listdir("/"))))"#,
    ])
    // Never write __pycache__ into the host's /usr natively.
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .assert_same();
    let out = veil.stdout_str();
    assert!(
        out.starts_with('[') && out.contains("\"etc\""),
        "{}",
        veil.describe()
    );
}

/// The application is PID 1 of the sandbox.
#[test]
fn shell_pid_is_1() {
    let veil = run_veil(&["/bin/sh", "-c", "echo $$"], &[]);
    veil.assert_success();
    assert_eq!(veil.stdout_str(), "1\n", "{}", veil.describe());
}

#[test]
fn exit_status_passes_through() {
    for code in [0, 1, 7, 255] {
        let script = format!("exit {code}");
        let (_, veil) = assert_same(&["/bin/sh", "-c", &script]);
        assert_eq!(veil.status, Status::Exited(code), "{}", veil.describe());
    }
}

/// Death by signal N: veil exits with 128+N, as a shell reports it.
#[test]
fn death_by_signal_is_128_plus_n() {
    for (sig, code) in [("SEGV", 139), ("KILL", 137), ("TERM", 143)] {
        let script = format!("kill -{sig} $$");
        let (native, veil) = assert_same(&["/bin/sh", "-c", &script]);
        assert_eq!(native.status.code(), code, "{}", native.describe());
        assert_eq!(veil.status, Status::Exited(code), "{}", veil.describe());
    }
}

#[test]
fn stdout_stderr_and_status_together() {
    let (_, veil) = assert_same(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(veil.stdout_str(), "out\n");
    assert_eq!(veil.stderr_str(), "err\n");
    assert_eq!(veil.status, Status::Exited(3));
}

/// A failing program's error message (strerror text and all) is unchanged.
#[test]
fn error_message_passes_through() {
    let (_, veil) = assert_same(&["/bin/ls", "/nonexistent-veil-test"]);
    assert_eq!(veil.status, Status::Exited(2), "{}", veil.describe());
    assert!(veil.stderr_str().contains("No such file or directory"));
}

/// `#!` scripts: the kernel (here, the sentry) runs the interpreter named on
/// the first line, with its optional argument, then the script path, then
/// the arguments.
#[test]
fn shebang_scripts() {
    let dir = TempDir::new("shebang");
    let sh = dir.write(
        "script.sh",
        b"#!/bin/sh -e\necho \"script=$0 argc=$# first=$1\"\necho \"flags=$-\"\nexit 3\n",
        0o755,
    );
    let (_, veil) = assert_same(&[path_str(&sh), "arg one", "two"]);
    assert_eq!(veil.status, Status::Exited(3), "{}", veil.describe());
    assert!(veil.stdout_str().contains("argc=2 first=arg one"));

    let py = dir.write(
        "script.py",
        b"#!/usr/bin/env python3\nimport sys\nprint(sys.argv[1:])\n",
        0o755,
    );
    let (_, veil) = Case::new(&[path_str(&py), "x", "y"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .assert_same();
    assert_eq!(veil.stdout_str(), "['x', 'y']\n", "{}", veil.describe());
}

/// A command that does not exist: a clear error naming it, a non-zero exit,
/// and no crash or hang.
#[test]
fn missing_command() {
    let missing = "/nonexistent-veil-test/no-such-command";
    let veil = run_veil(&[missing], &[]);
    let stderr = veil.stderr_str();
    assert!(
        matches!(veil.status, Status::Exited(c) if c != 0),
        "veil must exit non-zero (and not crash) for a missing command\n{}",
        veil.describe()
    );
    let lower = stderr.to_lowercase();
    assert!(
        stderr.contains("no-such-command")
            || lower.contains("no such file")
            || lower.contains("not found")
            || lower.contains("enoent"),
        "veil's error should name the missing command or say it was not found\n{}",
        veil.describe()
    );
    assert!(veil.stdout.is_empty(), "{}", veil.describe());
}
