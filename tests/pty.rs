//! Pseudo-terminals: devpts, the line discipline and job control,
//! natively vs under veil.

mod common;

use common::{assert_program_passes, assert_same, run_veil, Link};

#[test]
fn pty_static() {
    assert_program_passes("pty/pty", Link::Static);
}

#[test]
fn pty_dynamic() {
    assert_program_passes("pty/pty", Link::Dynamic);
}

/// script(1) runs its command on a new pty: openpty, fork, setsid,
/// TIOCSCTTY, poll and signalfd. The host's pty numbers depend on who
/// else holds one, hence the digits go; the sandbox's first pty is 0.
#[test]
fn script_runs_tty() {
    let (native, _) = assert_same(&[
        "/bin/sh",
        "-c",
        "/usr/bin/script -qc tty /dev/null | tr 0-9 N",
    ]);
    assert_eq!(native.stdout_str(), "/dev/pts/N\r\n");
    let veil = run_veil(&["/usr/bin/script", "-qc", "tty", "/dev/null"], &[]);
    assert_eq!(veil.stdout_str(), "/dev/pts/0\r\n");
}

/// Python's pty.fork: the child's output comes through the line
/// discipline (ONLCR), and tty names its slave.
#[test]
fn python_pty_fork() {
    let (native, _) = assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import pty, os, re\n\
         pid, fd = pty.fork()\n\
         if pid == 0:\n    os.execlp('sh', 'sh', '-c', 'echo hi; tty')\n\
         out = b''\n\
         while True:\n    try:\n        d = os.read(fd, 1024)\n    except OSError:\n        break\n    if not d:\n        break\n    out += d\n\
         print(re.sub(rb'[0-9]+', b'N', out)); print(os.waitpid(pid, 0)[1])\n",
    ]);
    assert!(native.stdout_str().contains(r"hi\r\n/dev/pts/N\r\n"));
}

/// A new pty's slave belongs to whoever opened the master, and ttyname
/// finds it under /dev/pts.
#[test]
fn slave_owner_is_the_opener() {
    let (native, _) = assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import os\n\
         os.setgid(1000); os.setuid(1000)\n\
         m, s = os.openpty()\n\
         st = os.fstat(s); print(oct(st.st_mode), st.st_uid, st.st_gid, os.ttyname(s)[:9])\n",
    ]);
    assert!(native.stdout_str().contains("1000 1000 /dev/pts/"));
}

/// /dev/tty opens the controlling terminal but keeps its own name, which
/// ttyname reports.
#[test]
fn dev_tty_keeps_its_name() {
    let (native, _) = assert_same(&["/usr/bin/script", "-qc", "tty </dev/tty", "/dev/null"]);
    assert_eq!(native.stdout_str(), "/dev/tty\r\n");
}
