//! Escape attempts from inside the sandbox: each fails with a clean error
//! and the host shows no change. Not differential: natively, as root, many
//! of these attempts succeed. Each program in tests/c/escape/ runs as init
//! of `veil do --root ROOT`, where ROOT holds little more than the program;
//! a secret with a random token lies next to ROOT on the host, and must
//! never show in what the sandbox prints.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::{compile, path_str, run_veil_raw, Link, Output, Status, TempDir};

/// A sandbox root next to `outside/secret`, which holds a fresh token.
struct Escape {
    _tmp: TempDir,
    root: PathBuf,
    outside: PathBuf,
    secret: PathBuf,
    token: String,
}

impl Escape {
    fn new(tag: &str) -> Escape {
        let tmp = TempDir::new(&format!("escape-{tag}"));
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).expect("mkdir root");
        fs::create_dir(&outside).expect("mkdir outside");
        let token = fs::read_to_string("/proc/sys/kernel/random/uuid")
            .expect("random token")
            .trim()
            .to_string();
        let secret = outside.join("secret");
        fs::write(&secret, &token).expect("write secret");
        Escape {
            _tmp: tmp,
            root,
            outside,
            secret,
            token,
        }
    }

    /// Runs tests/c/escape/`prog`.c, installed as /`prog` in the root,
    /// with `veil do --root ROOT <flags> /prog <args>`.
    fn run(&self, prog: &str, flags: &[&str], args: &[&str]) -> Output {
        let bin = compile(&format!("escape/{prog}"), Link::Static);
        fs::copy(&bin, self.root.join(prog)).expect("install the program");
        let exe = format!("/{prog}");
        let mut argv = vec!["do", "--root", path_str(&self.root)];
        argv.extend(flags);
        argv.push(&exe);
        argv.extend(args);
        let before = host_mounts();
        let out = run_veil_raw(&argv);
        assert_eq!(before, host_mounts(), "the host's mounts changed");
        self.assert_host_unchanged(&out);
        out
    }

    /// The secret's path relative to the root's host directory.
    fn relative(&self) -> &'static str {
        "../outside/secret"
    }

    /// No output carries the token; the secret and its directory are as
    /// the test made them.
    fn assert_host_unchanged(&self, out: &Output) {
        let text = format!("{}{}", out.stdout_str(), out.stderr_str());
        assert!(
            !text.contains(&self.token),
            "the host's secret leaked\n{}",
            out.describe()
        );
        assert_eq!(fs::read_to_string(&self.secret).expect("read"), self.token);
        let meta = fs::metadata(&self.secret).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o644, "the secret's mode changed");
        let mut names: Vec<_> = fs::read_dir(&self.outside)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["secret"], "nothing appeared outside the root");
    }
}

/// The test process's mount table: the sandbox must leave it alone.
fn host_mounts() -> String {
    fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo")
}

/// Asserts a clean run (exit 0) printing exactly `expected`.
#[track_caller]
fn assert_prints(out: &Output, expected: &str) {
    assert_eq!(out.status, Status::Exited(0), "{}", out.describe());
    assert_eq!(
        out.stdout_str(),
        expected,
        "{}\n{}",
        common::line_diff(expected, &out.stdout_str()),
        out.describe()
    );
}

/// A `sleep` on the host, killed when dropped.
struct HostProcess(Child);

impl HostProcess {
    fn sleep() -> HostProcess {
        let child = Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .spawn()
            .expect("start sleep");
        HostProcess(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// Still running (asleep, not stopped or dead) and traced by nobody.
    fn assert_unaffected(&mut self) {
        assert!(
            self.0.try_wait().expect("wait").is_none(),
            "the host process died"
        );
        let status = fs::read_to_string(format!("/proc/{}/status", self.0.id())).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        assert!(field("State:").starts_with('S'), "{status}");
        assert_eq!(field("TracerPid:"), "0", "{status}");
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host's first disk, as (name, major, minor) from /proc/partitions
/// (vda 254:0 if there is none).
fn host_disk() -> (String, String, String) {
    let table = fs::read_to_string("/proc/partitions").unwrap_or_default();
    table
        .lines()
        .skip(2)
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [major, minor, _, name] => Some((name.into(), major.into(), minor.into())),
            _ => None,
        })
        .unwrap_or(("vda".into(), "254".into(), "0".into()))
}

/// Where the attempts are made: /proc/self (a child of init) or /proc/1.
fn proc_root(pid: &str) {
    let e = Escape::new(&format!("proc-{pid}-root"));
    let secret = path_str(&e.secret).to_string();
    let out = e.run("proc_root", &[], &[pid, &secret, e.relative()]);
    assert_prints(
        &out,
        "readlink root = ok /
root + host path: open = -1 ENOENT
root/.. chain + host path: open = -1 ENOENT
root + relative path: open = -1 ENOENT
root nested in root: open = -1 ENOENT
open root O_PATH = ok
it is the sandbox root: yes
openat(root, relative): open = -1 ENOENT
openat(root, .. chain): open = -1 ENOENT
openat(root, ..) is the sandbox root: yes
chdir root = 0
cwd after 16 x chdir .. = /
cwd is the sandbox root: yes
cwd + relative path: open = -1 ENOENT
chroot root = 0
after chroot, relative path: open = -1 ENOENT
after chroot, host path: open = -1 ENOENT
child: exited 0
",
    );
}

/// Attempt 1: /proc/self/root leads to the sandbox's root, and no further.
#[test]
fn proc_self_root_stays_in_the_root() {
    proc_root("self");
}

/// Attempt 2: So does another process's root, /proc/1/root.
#[test]
fn proc_1_root_stays_in_the_root() {
    proc_root("1");
}

/// Attempt 3: /proc/self/fd shows only the program's own descriptors, with sandbox
/// paths; no other number opens (the sentry's host descriptors are not the
/// application's), and a donated directory's ".." stays inside.
#[test]
fn proc_self_fd_shows_only_the_programs_descriptors() {
    let e = Escape::new("proc-fd");
    let out = e.run("proc_fd", &[], &[e.relative()]);
    let fds = |dir: &str| {
        format!(
            "{dir} 0 -> host
{dir} 1 -> host
{dir} 2 -> host
{dir} 3 -> /
{dir} 4 -> /proc_fd
{dir} 5 -> /proc/N/fd
"
        )
    };
    assert_prints(
        &out,
        &format!(
            "opened / = 3, /proc_fd = 4
{}{}fd of / + relative path: open = -1 ENOENT
fd of / + .. chain is the sandbox root: yes
openat(fd of /, relative): open = -1 ENOENT
openat(fd of /, ../../..) is the sandbox root: yes
fd of a file + ..: open = -1 ENOTDIR
fds 3..1023 not opened by the program: 0 open, 0 in fdinfo, 0 valid
",
            fds("/proc/self/fd"),
            fds("/proc/1/fd")
        ),
    );
}

/// Attempt 4: ".." chains from / and from a deep directory, and openat2's
/// resolutions, stay in the root, with or without an overlay.
#[test]
fn dotdot_stays_in_the_root() {
    let e = Escape::new("dotdot");
    let secret = path_str(&e.secret).to_string();
    // Without an overlay, writes go through to the host.
    for overlay in ["--overlay=memory", "--overlay=none"] {
        let out = e.run("dotdot", &[overlay], &[&secret, e.relative()]);
        assert_prints(
            &out,
            "/.. is /: yes
/../../.. is /: yes
/ + relative path: open = -1 ENOENT
/.. chain + host path: open = -1 ENOENT
chdir /d1/d2/d3 = 0
deep dir + ../../../relative: open = -1 ENOENT
deep dir + .. chain + host path: open = -1 ENOENT
cwd after 20 x chdir .. = /
BENEATH /d1, ../relative: openat2 = -1 EXDEV
BENEATH /, relative: openat2 = -1 EXDEV
BENEATH /, host path: openat2 = -1 EXDEV
IN_ROOT /d1, ../../relative: openat2 = -1 ENOENT
IN_ROOT /, host path: openat2 = -1 ENOENT
IN_ROOT /, relative: openat2 = -1 ENOENT
no restriction, /, relative: openat2 = -1 ENOENT
NO_MAGICLINKS through /proc/self/root: openat2 = -1 ELOOP
openat2(/, ../../..) is the sandbox root: yes
IN_ROOT openat2(/d1, ../../..) = ok
  it is /d1: yes
",
        );
    }
}

/// Attempt 5: Symlinks in the root pointing out of it resolve in the
/// sandbox, for reading and writing, with or without an overlay.
#[test]
fn symlinks_in_the_root_resolve_inside_it() {
    let e = Escape::new("symlinks");
    let deep = format!("../../../../../../../../..{}", path_str(&e.secret));
    symlink(&e.secret, e.root.join("abs")).expect("symlink");
    symlink(e.relative(), e.root.join("rel")).expect("symlink");
    symlink(deep, e.root.join("deep")).expect("symlink");
    symlink(&e.outside, e.root.join("dir")).expect("symlink");
    symlink("../outside", e.root.join("dirrel")).expect("symlink");
    // Without an overlay, writes go through to the host.
    for overlay in ["--overlay=memory", "--overlay=none"] {
        let out = e.run("symlinks", &[overlay], &[]);
        assert_prints(
            &out,
            "/abs: open = -1 ENOENT
/rel: open = -1 ENOENT
/deep: open = -1 ENOENT
/dir/secret: open = -1 ENOENT
/dirrel/secret: open = -1 ENOENT
symlink /mine -> ../../outside/secret = 0
/mine: open = -1 ENOENT
write /abs: open = -1 ENOENT
write /rel: open = -1 ENOENT
write /dir/new: open = -1 ENOENT
write /dirrel/new: open = -1 ENOENT
mkdir /dir/d = -1 ENOENT
chmod /abs = -1 ENOENT
truncate /rel = -1 ENOENT
rename /rel -> /dir/moved = -1 ENOENT
",
        );
    }
}

/// The compatibility table's row of a syscall: (support, notes).
fn table_row(name: &str) -> (String, String) {
    static TABLE: OnceLock<String> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let out = run_veil_raw(&["debug", "syscalls"]);
        out.assert_success();
        out.stdout_str()
    });
    table
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split(" | ").collect();
            (cols.len() == 4 && cols[1] == name)
                .then(|| (cols[2].to_string(), cols[3].trim_end_matches(" |").into()))
        })
        .unwrap_or_else(|| panic!("{name} is not in the table"))
}

/// The errno the table gives for an unimplemented syscall.
fn table_errno(name: &str) -> String {
    let (support, notes) = table_row(name);
    assert_eq!(support, "unimplemented", "{name}: {notes}");
    notes.split(':').next().unwrap_or_default().to_string()
}

/// Attempt 6: File handles: nothing is encoded, and a forged handle of a host
/// filesystem's root (the "shocker" escape) opens nothing.
#[test]
fn file_handles_open_nothing() {
    let e = Escape::new("handles");
    let out = e.run("handles", &[], &[]);
    let stale = table_errno("open_by_handle_at");
    let none = table_errno("name_to_handle_at");
    assert_eq!((stale.as_str(), none.as_str()), ("ESTALE", "EOPNOTSUPP"));
    assert!(table_row("open_by_handle_at")
        .1
        .contains("EPERM without CAP_DAC_READ_SEARCH"));
    assert_prints(
        &out,
        "root: name_to_handle_at / = -1 EOPNOTSUPP
root: name_to_handle_at /missing = -1 ENOENT
root: name_to_handle_at bad flags = -1 EINVAL
root: open_by_handle_at inode 2 = -1 ESTALE
root: open_by_handle_at empty handle = -1 EINVAL
root: open_by_handle_at bad mount fd = -1 EBADF
root: open_by_handle_at bad pointer = -1 EFAULT
nobody: name_to_handle_at / = -1 EOPNOTSUPP
nobody: name_to_handle_at /missing = -1 ENOENT
nobody: name_to_handle_at bad flags = -1 EINVAL
nobody: open_by_handle_at inode 2 = -1 EPERM
nobody: open_by_handle_at empty handle = -1 EINVAL
nobody: open_by_handle_at bad mount fd = -1 EBADF
nobody: open_by_handle_at bad pointer = -1 EFAULT
",
    );
}

/// Attempt 7: ptrace of init, of a host process, of the program's own child, and
/// PTRACE_TRACEME: the table's errno every time; the host process runs on,
/// untraced.
#[test]
fn ptrace_reaches_no_process() {
    let e = Escape::new("ptrace");
    let mut host = HostProcess::sleep();
    let out = e.run("ptrace", &[], &[&host.pid()]);
    let errno = table_errno("ptrace");
    assert_prints(
        &out,
        &format!(
            "attach init = -1 {errno}
seize init = -1 {errno}
attach host pid = -1 {errno}
seize host pid = -1 {errno}
interrupt host pid = -1 {errno}
peek host pid = -1 {errno}
attach child = -1 {errno}
seize child = -1 {errno}
traceme = -1 {errno}
traceme child: exited 0
paused child: signaled 9 core=0
"
        ),
    );
    host.assert_unaffected();
}

/// Attempt 8: The host's disk mounts as no filesystem, by its host path or through
/// a device node with its numbers, and a new devtmpfs does not have it;
/// without CAP_SYS_ADMIN nothing mounts.
#[test]
fn mounting_the_host_disk_fails() {
    let e = Escape::new("mount");
    let (disk, major, minor) = host_disk();
    let device = format!("/dev/{disk}");
    let out = e.run("mount_dev", &[], &[&device, &major, &minor]);
    let types = [
        "ext4",
        "ext2",
        "xfs",
        "btrfs",
        "vfat",
        "iso9660",
        "squashfs",
        "9p",
        "fuse",
        "overlay",
        "nfs",
        "cgroup2",
        "bpf",
        "debugfs",
        "securityfs",
    ];
    let mut expected = String::new();
    for t in types {
        expected += &format!("mount host device as {t} = -1 ENODEV\n");
    }
    expected += "mknod /disk = 0\n";
    for t in types {
        expected += &format!("mount /disk as {t} = -1 ENODEV\n");
    }
    expected += "bind /disk on /mnt = -1 ENOTDIR
read /disk: open = -1 ENXIO
read host device path: open = -1 ENOENT
mount devtmpfs = 0
the host device's name in it: open = -1 ENOENT
umount devtmpfs = 0
nobody: mount host device as ext4 = -1 EPERM
nobody: mount /disk as ext4 = -1 EPERM
";
    assert_prints(&out, &expected);
}

/// Attempt 9: Symlinks in a writable bind mount that point out of it on the host
/// resolve in the sandbox: writes through them never reach the host's
/// target, though a plain write to the bind does reach the host.
#[test]
fn writes_through_a_bind_mounts_symlinks_stay_in_the_sandbox() {
    let e = Escape::new("bind");
    let vol = e.root.parent().expect("parent").join("vol");
    fs::create_dir(&vol).expect("mkdir vol");
    symlink(&e.secret, vol.join("abs")).expect("symlink");
    symlink(e.relative(), vol.join("rel")).expect("symlink");
    symlink(&e.outside, vol.join("dir")).expect("symlink");
    symlink("../outside", vol.join("dirrel")).expect("symlink");
    let bind = format!("{}:/vol", path_str(&vol));
    let out = e.run("bind_symlink", &["-v", &bind], &[]);
    assert_prints(
        &out,
        "write /vol/plain: open ok, write = 8
write /vol/abs: open = -1 ENOENT
write /vol/dir/new: open = -1 ENOENT
mkdir /vol/dir/d = -1 ENOENT
chmod /vol/abs = -1 ENOENT
truncate /vol/abs = -1 ENOENT
rename /vol/plain -> /vol/dir/moved = -1 ENOENT
link /vol/plain -> /vol/dir/hard = -1 ENOENT
symlink /vol/dir/sl = -1 ENOENT
mkdir /outside = 0
write /vol/rel: open ok, write = 8
write /vol/dirrel/new: open ok, write = 8
chmod /vol/rel = 0
read /outside/secret: open ok, read 8 bytes: escaped

read /outside/new: open ok, read 8 bytes: escaped

",
    );
    assert_eq!(
        fs::read_to_string(vol.join("plain")).expect("the bind is writable"),
        "escaped\n"
    );
    assert!(
        !e.root.join("outside").exists(),
        "/outside stayed in the overlay"
    );
}

/// Attempt 10: Signals and other calls naming a host PID find no such process; the
/// host process runs on.
#[test]
fn killing_a_host_pid_finds_no_process() {
    let e = Escape::new("kill");
    let mut host = HostProcess::sleep();
    let out = e.run("kill", &[], &[&host.pid()]);
    assert_prints(
        &out,
        "kill 0 = -1 ESRCH
kill SIGKILL = -1 ESRCH
kill SIGSTOP = -1 ESRCH
kill group SIGKILL = -1 ESRCH
tkill = -1 ESRCH
tgkill = -1 ESRCH
rt_sigqueueinfo = -1 ESRCH
pidfd_open = -1 ESRCH
getpgid = -1 ESRCH
setpgid = -1 ESRCH
setpriority = -1 ESRCH
prlimit = -1 ESRCH
kill -1 SIGKILL = -1 ESRCH
",
    );
    host.assert_unaffected();
}

/// Attempt 11: A host abstract Unix socket is out of reach: AF_UNIX sockets fail
/// with the table's errno (a connect, once they exist, must be refused),
/// and the host's listener sees no connection.
#[test]
fn a_host_abstract_socket_is_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let e = Escape::new("unix");
    let name = format!("veil-escape-{}", e.token);
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let listener = UnixListener::bind_addr(&addr).expect("bind the host socket");
    listener.set_nonblocking(true).expect("nonblocking");
    let out = e.run("abstract_unix", &[], &[&name]);
    let errno = table_errno("socket");
    assert_eq!(out.status, Status::Exited(0), "{}", out.describe());
    let lines: Vec<String> = out.stdout_str().lines().map(String::from).collect();
    assert_eq!(lines.len(), 4, "{}", out.describe());
    for (line, kind) in lines.iter().zip(["stream", "dgram", "seqpacket"]) {
        let refused = format!("{kind}: connect = -1 ECONNREFUSED");
        let no_socket = format!("{kind}: socket = -1 {errno}");
        assert!(*line == refused || *line == no_socket, "{line}");
    }
    assert_eq!(
        lines[3],
        format!("socketpair = -1 {}", table_errno("socketpair"))
    );
    let accepted = listener.accept().map(|_| ());
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the host listener saw a connection: {accepted:?}"
    );
}

/// Attempt 12: Device nodes made in the sandbox open the sentry's memory devices or
/// nothing (never the host's disk); a device node on the host in the root
/// is never opened; without CAP_MKNOD nothing is made.
#[test]
fn device_nodes_never_reach_host_devices() {
    let e = Escape::new("devices");
    let (_, major, minor) = host_disk();
    // The test runs as root; without CAP_MKNOD on the host the node is
    // left out, and its open is ENOENT instead.
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        e.root.join("hostdisk"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(major.parse().expect("major"), minor.parse().expect("minor")),
    )
    .is_ok();
    let out = e.run("devices", &[], &[&major, &minor]);
    let mut expected = String::new();
    let nodes = [
        "null", "zero", "mem", "kmem", "port", "kmsg", "tty1", "tun", "fuse", "kvm", "loop0",
        "hostdisk",
    ];
    for who in ["root", "nobody"] {
        for node in nodes {
            if who == "nobody" {
                expected += &format!(
                    "nobody: mknod {node} = -1 EPERM
{node}: open = -1 ENOENT
nobody: open {node} for writing = -1 ENOENT
"
                );
                continue;
            }
            expected += &format!("root: mknod {node} = 0\n");
            expected += &match node {
                "null" => "null: open ok, read 0 bytes: \nroot: open null for writing = 0\n  write = 1\n".to_string(),
                // /dev/zero reads NULs, which end the printed string.
                "zero" => "zero: open ok, read 255 bytes: \nroot: open zero for writing = 0\n  write = 1\n".to_string(),
                _ => format!("{node}: open = -1 ENXIO\nroot: open {node} for writing = -1 ENXIO\n"),
            };
        }
        if who == "root" {
            expected += match made {
                true => "/hostdisk made by the host: open = -1 EACCES\n",
                false => "/hostdisk made by the host: open = -1 ENOENT\n",
            };
        }
    }
    assert_prints(&out, &expected);
}

/// Runs tests/c/escape/privileged.c for one family as root and as nobody,
/// and checks each syscall's errno against the compatibility table: root
/// (every capability) gets the table's errno, nobody gets EPERM where the
/// table says so, and the table's errno otherwise.
fn privileged(family: &str, calls: &[(&str, &str)]) {
    let e = Escape::new(&format!("privileged-{family}"));
    let out = e.run("privileged", &[], &[family]);
    let mut expected = String::new();
    for who in ["root", "nobody"] {
        for (label, name) in calls {
            let errno = table_errno(name);
            let errno = match who == "nobody" && table_row(name).1.contains("EPERM without") {
                true => "EPERM".to_string(),
                false => errno,
            };
            expected += &format!("{who}: {label} = -1 {errno}\n");
        }
    }
    assert_prints(&out, &expected);
}

/// Attempt 13: Kernel modules: nothing loads or unloads.
#[test]
fn kernel_modules_cannot_be_loaded() {
    privileged(
        "modules",
        &[
            ("init_module", "init_module"),
            ("finit_module", "finit_module"),
            ("delete_module", "delete_module"),
        ],
    );
    assert_eq!(table_errno("init_module"), "ENOSYS");
    assert!(table_row("init_module")
        .1
        .contains("EPERM without CAP_SYS_MODULE"));
}

/// Attempt 14: Kernel keyrings do not exist.
#[test]
fn keyrings_are_absent() {
    privileged(
        "keys",
        &[
            ("add_key", "add_key"),
            ("request_key", "request_key"),
            ("keyctl", "keyctl"),
        ],
    );
}

/// Attempt 15: BPF: no map, no program.
#[test]
fn bpf_is_absent() {
    privileged(
        "bpf",
        &[("bpf map create", "bpf"), ("bpf prog load", "bpf")],
    );
    assert!(table_row("bpf").1.contains("EPERM without"));
}

/// Attempt 16: Performance counters do not exist.
#[test]
fn perf_events_are_absent() {
    privileged(
        "perf",
        &[
            ("perf_event_open self", "perf_event_open"),
            ("perf_event_open all", "perf_event_open"),
        ],
    );
}

/// Attempt 17: io_uring does not exist.
#[test]
fn io_uring_is_absent() {
    privileged(
        "io_uring",
        &[
            ("io_uring_setup", "io_uring_setup"),
            ("io_uring_enter", "io_uring_enter"),
            ("io_uring_register", "io_uring_register"),
        ],
    );
}
