//! Isolation: wild pointers are caught by the sentry, the application lives
//! in its own PID namespace, and no application syscall reaches the host.

mod common;

use common::{assert_same_program, compile, path_str, run_veil, Case, Link, Status};

fn efault(link: Link) {
    let (_, veil) = assert_same_program("isolation/efault", link);
    let out = veil.stdout_str();
    assert_eq!(out.lines().last(), Some("survived"), "{}", veil.describe());
    assert!(out.contains("\nall ok\n"), "{}", veil.describe());
}

#[test]
fn efault_static() {
    efault(Link::Static);
}

#[test]
fn efault_dynamic() {
    efault(Link::Dynamic);
}

/// getpid() is 1 and getppid() 0 inside the sandbox, as for the init process
/// of a PID namespace; the raw syscalls agree with libc.
#[test]
fn getpid_is_1() {
    for link in [Link::Static, Link::Dynamic] {
        let bin = compile("isolation/getpid", link);
        let veil = run_veil(&[path_str(&bin)], &[]);
        veil.assert_success();
        assert_eq!(
            veil.stdout_str(),
            "getpid 1\ngetppid 0\nsys_getpid 1\nsys_gettid 1\n",
            "{}",
            veil.describe()
        );
    }
}

#[test]
fn python_getpid_is_1() {
    let veil = Case::new(&["/usr/bin/python3", "-c", "import os; print(os.getpid())"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .veil();
    veil.assert_success();
    assert_eq!(veil.stdout_str(), "1\n", "{}", veil.describe());
}

/// No application syscall runs on the host kernel.
///
/// tests/c/isolation/unimplemented.c calls kcmp(2) on its own descriptor 0,
/// which natively only reads and returns 0. The sentry does not implement
/// kcmp, so under veil it must return ENOSYS: had the stub passed the call
/// through to the host kernel, the result would be 0.
#[test]
fn unimplemented_syscall_never_reaches_host() {
    let bin = compile("isolation/unimplemented", Link::Static);
    let case = Case::new(&[path_str(&bin)]);

    let native = case.native();
    native.assert_success();
    let native_out = native.stdout_str();
    assert!(
        native_out == "kcmp = 0\n",
        "precondition: natively kcmp must succeed, or this test proves nothing\n{}",
        native.describe()
    );

    let veil = case.veil();
    assert_eq!(
        veil.stdout_str(),
        "kcmp = -1 ENOSYS\n",
        "under veil kcmp must fail with ENOSYS (the sentry's answer), not the host's 0\n{}",
        veil.describe()
    );
    assert_eq!(veil.status, Status::Exited(0), "{}", veil.describe());
}

/// i386 system calls through `int 0x80` are refused, not misread as x86-64
/// ones: natively the call is getpid, under veil it fails with ENOSYS.
#[test]
fn int80_syscalls_are_refused() {
    let bin = compile("isolation/int80", Link::Static);
    let case = Case::new(&[path_str(&bin)]);
    let native = case.native();
    assert_eq!(
        native.stdout_str(),
        "int80 = pid\n",
        "{}",
        native.describe()
    );
    let veil = case.veil();
    assert_eq!(
        veil.stdout_str(),
        "int80 = -1 ENOSYS\n",
        "{}",
        veil.describe()
    );
}

/// Every syscall number with hostile arguments: the sentry answers them all
/// and the program reaches its end. Runs under veil only (natively it would
/// touch the host).
#[test]
fn hostile_arguments_never_hurt_the_sentry() {
    let bin = compile("isolation/hostile_args", Link::Static);
    let veil = Case::new(&[path_str(&bin)]).veil();
    assert!(!veil.stderr_str().contains("sentry"), "{}", veil.describe());
    assert!(
        veil.stdout_str().ends_with("calls 1\nsurvived\n"),
        "{}",
        veil.describe()
    );
    assert_eq!(veil.status, Status::Exited(0), "{}", veil.describe());
}
