//! `--strace`: every application syscall, decoded, one line each on stderr,
//! in the form `[ tid] name(args) = result`.

mod common;

use common::{compile, path_str, run_veil, run_veil_raw, strace_lines, StraceLine};

fn find<'a>(lines: &'a [StraceLine], prefix: &str) -> Option<&'a StraceLine> {
    lines.iter().find(|l| l.text.starts_with(prefix))
}

#[test]
fn strace_true_shows_startup_syscalls() {
    let veil = run_veil(&["/bin/true"], &["--strace"]);
    veil.assert_success();
    assert!(veil.stdout.is_empty(), "{}", veil.describe());
    let stderr = veil.stderr_str();
    let lines = strace_lines(&stderr);
    assert!(
        !lines.is_empty(),
        "no `[ tid] call(...) = result` lines on stderr\n{}",
        veil.describe()
    );

    // The dynamic loader's first steps, each with its result.
    for call in ["brk(", "arch_prctl("] {
        let line =
            find(&lines, call).unwrap_or_else(|| panic!("no {call}...) line\n{}", veil.describe()));
        assert!(
            line.text.contains(" = "),
            "{call}...) has no ` = result`: {line:?}\n{}",
            veil.describe()
        );
        assert_eq!(line.tid, 1, "single-threaded app is tid 1: {line:?}");
    }
    // exit_group does not return: only its argument is checked.
    assert!(
        find(&lines, "exit_group(0)").is_some(),
        "no exit_group(0) line\n{}",
        veil.describe()
    );
}

/// `--strace` is also accepted after `do`; openat's path and dirfd decoded.
#[test]
fn strace_after_do_decodes_openat() {
    let veil = run_veil_raw(&["do", "--strace", "/bin/cat", "/etc/hostname"]);
    veil.assert_success();
    let want = std::fs::read("/etc/hostname").expect("read /etc/hostname");
    assert_eq!(veil.stdout, want, "{}", veil.describe());
    let stderr = veil.stderr_str();
    assert!(
        strace_lines(&stderr)
            .iter()
            .any(|l| l.text.starts_with("openat(AT_FDCWD, \"/etc/hostname\"")
                && l.text.contains(" = ")),
        "no `openat(AT_FDCWD, \"/etc/hostname\", ...) = N` line\n{}",
        veil.describe()
    );
}

/// An unimplemented syscall shows up by name (loose check: the name appears).
#[test]
fn strace_names_unimplemented_syscall() {
    let bin = compile("isolation/unimplemented", common::Link::Static);
    let veil = run_veil(&[path_str(&bin)], &["--strace"]);
    veil.assert_success();
    assert!(
        veil.stderr_str().contains("kcmp"),
        "stderr does not mention kcmp\n{}",
        veil.describe()
    );
}

/// Without --strace, veil adds nothing to the application's stderr.
#[test]
fn quiet_without_strace() {
    let veil = run_veil(&["/bin/true"], &[]);
    veil.assert_success();
    assert!(veil.stderr.is_empty(), "{}", veil.describe());
}
