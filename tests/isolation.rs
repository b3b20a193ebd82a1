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

/// The legacy vsyscall page works as natively: the host kernel emulates it
/// without ptrace, so the stubs' seccomp filter traps it for the sentry.
#[test]
fn vsyscalls_are_served() {
    for link in [Link::Static, Link::Dynamic] {
        let (_, veil) = assert_same_program("isolation/vsyscall", link);
        assert!(
            veil.stdout_str().ends_with("all ok\n"),
            "{}",
            veil.describe()
        );
    }
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

/// The host PIDs of the `veil-stub` processes descended from `root`.
fn stubs_under(root: u32) -> Vec<u32> {
    let field = |pid: u32, key: &str| -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        Some(line[key.len()..].trim().to_string())
    };
    let descends = |mut pid: u32| loop {
        match field(pid, "PPid:").and_then(|p| p.parse::<u32>().ok()) {
            Some(p) if p == root => return true,
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    };
    let mut stubs: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| field(pid, "Name:").as_deref() == Some("veil-stub") && descends(pid))
        .collect();
    stubs.sort_unstable();
    stubs
}

/// Seen from the host, every stub runs under its seccomp filter with
/// no_new_privs, holds only the memory file, and maps only the stub's own
/// pages and the memory file: nothing of the sentry's binary or libc.
#[test]
fn host_sees_stubs_confined_and_empty() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    let mut veil = Command::new(common::veil_bin())
        .args(["do", "/bin/cat"])
        .env_clear()
        .envs(common::BASE_ENV.iter().copied())
        .current_dir(common::CWD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn veil");
    let mut stdin = veil.stdin.take().expect("stdin");
    let stdout = veil.stdout.take().expect("stdout");
    // Once cat echoes a line it is up and blocked reading the next one.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    stdin.write_all(b"ready\n").expect("write to cat");
    let echoed = rx.recv_timeout(common::run_timeout());
    let stubs = stubs_under(veil.id());
    let report = stubs
        .iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.filter_map(|e| {
                        let e = e.ok()?;
                        let target = std::fs::read_link(e.path()).ok()?;
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            target.to_string_lossy().into_owned(),
                        ))
                    })
                    .collect()
                })
                .unwrap_or_default();
            (*pid, status, maps, fds)
        })
        .collect::<Vec<_>>();
    drop(stdin);
    if echoed.as_deref() != Ok("ready\n") {
        common::kill_group(veil.id());
    }
    let exit = veil.wait().expect("wait veil");
    assert_eq!(echoed.as_deref(), Ok("ready\n"), "cat did not echo");
    assert!(exit.success(), "veil: {exit:?}");

    // The master stub and cat's.
    assert!(stubs.len() >= 2, "stubs under veil: {stubs:?}");
    const MEMORY_FILE: &str = "/memfd:veil-memory";
    let mut app_stubs = 0;
    for (pid, status, maps, fds) in &report {
        for line in ["Seccomp:\t2", "NoNewPrivs:\t1"] {
            assert!(
                status.lines().any(|l| l == line),
                "stub {pid}: {line:?} in\n{status}"
            );
        }
        let mut anonymous = Vec::new();
        for l in maps.lines() {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.get(5..).map(|p| p.join(" ")).unwrap_or_default();
            match path.as_str() {
                "" => anonymous.push(fields[1]),
                "[vsyscall]" => {}
                p if p.starts_with(MEMORY_FILE) => {}
                _ => panic!("stub {pid} maps {path}:\n{maps}"),
            }
        }
        assert_eq!(
            anonymous,
            ["r-xp", "r--p"],
            "stub {pid}: the stub's code and data pages alone are anonymous:\n{maps}"
        );
        if maps.contains(MEMORY_FILE) {
            app_stubs += 1;
        }
        assert_eq!(fds.len(), 1, "stub {pid} holds {fds:?}");
        assert_eq!(fds[0].0, "0", "stub {pid} holds {fds:?}");
        assert!(
            fds[0].1.starts_with(MEMORY_FILE),
            "stub {pid} holds {fds:?}"
        );
    }
    assert!(app_stubs >= 1, "no stub maps application memory: {stubs:?}");
}
