//! Starting a veil process in fresh namespaces.
//!
//! `std::process::Command` cannot do this: a process in a new user
//! namespace has no identity until its parent writes its ID maps, so the
//! child must wait for the parent between `clone` and `execve`. The child
//! side runs only raw, async-signal-safe system calls on memory prepared
//! before the clone.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::libc;
use nix::sched::CloneFlags;
use rustix::fs::{Mode, OFlags};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::{host, last_errno, path_error, Error};

/// The host identity of a process in a new user namespace when veil runs as
/// root: `nobody`, as runsc's sandbox. Unprivileged users map themselves.
pub const NOBODY: u32 = 65534;

/// The namespaces of the sentry: all of them, with an empty network.
pub const SENTRY_NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWUSER
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWNET);

/// The namespaces of the gofer: it stays in the caller's user namespace,
/// whose files it serves with the caller's identity; an unprivileged
/// caller's gofer gets one of its own, mapping the caller, to be allowed
/// its mount namespace.
pub fn gofer_namespaces() -> CloneFlags {
    match rustix::process::geteuid().is_root() {
        true => GOFER_NAMESPACES,
        false => GOFER_NAMESPACES | CloneFlags::CLONE_NEWUSER,
    }
}

const GOFER_NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWPID
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWNET);

/// A veil process to start.
pub struct Spawn {
    exe: OwnedFd,
    argv: Vec<CString>,
    envp: Vec<CString>,
    fds: Vec<RawFd>,
    namespaces: CloneFlags,
    /// /dev/null, to become stdin and stdout.
    null: Option<OwnedFd>,
    /// Whether /dev/null also becomes stderr.
    null_stderr: bool,
    /// Whether the child outlives us (no parent-death signal).
    detached: bool,
    /// cgroup.procs files to put the child in before it runs.
    cgroup_procs: Vec<PathBuf>,
}

/// A started process, which the caller must `wait` for.
#[derive(Debug)]
pub struct Child {
    pid: i32,
}

/// Where the child failed before it could exec; reported over a pipe.
#[repr(u8)]
#[derive(Clone, Copy)]
enum Stage {
    Identity = 1,
    Fds = 2,
    Exec = 3,
}

impl Spawn {
    /// Runs this very executable again (through `/proc/self/exe`, opened
    /// now, so that a process of another identity can exec it whatever the
    /// permissions of the directories above it).
    pub fn current_exe(namespaces: CloneFlags) -> Result<Spawn, Error> {
        let exe = rustix::fs::open(
            "/proc/self/exe",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(host("opening /proc/self/exe"))?;
        Ok(Spawn::with_exe(exe, c"veil".to_owned(), namespaces))
    }

    /// Runs the executable at `path` (opened now), with `path` as its
    /// argv[0].
    pub fn new(path: &Path, namespaces: CloneFlags) -> Result<Spawn, Error> {
        let exe = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(
            |errno| Error::Path {
                what: "opening the executable",
                path: path.display().to_string(),
                errno,
            },
        )?;
        let argv0 = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::Invalid(format!("{}: a NUL in the path", path.display())))?;
        Ok(Spawn::with_exe(exe, argv0, namespaces))
    }

    fn with_exe(exe: OwnedFd, argv0: CString, namespaces: CloneFlags) -> Spawn {
        Spawn {
            exe,
            argv: vec![argv0],
            envp: std::env::vars_os()
                .filter_map(|(k, v)| {
                    let mut kv = k.as_bytes().to_vec();
                    kv.push(b'=');
                    kv.extend_from_slice(v.as_bytes());
                    CString::new(kv).ok()
                })
                .collect(),
            fds: Vec::new(),
            namespaces,
            null: None,
            null_stderr: false,
            detached: false,
            cgroup_procs: Vec::new(),
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Spawn {
        // An argument with a NUL cannot be passed; it is cut there, as the
        // kernel would read it.
        let bytes = arg.as_ref().as_bytes();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        self.argv
            .push(CString::new(&bytes[..end]).unwrap_or_default());
        self
    }

    pub fn args<S: AsRef<OsStr>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Spawn {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Gives the child /dev/null as stdin and stdout, for a process that
    /// must not hold the caller's terminal.
    pub fn null_stdin_stdout(&mut self) -> Result<&mut Spawn, Error> {
        let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(host("opening /dev/null"))?;
        self.null = Some(null);
        Ok(self)
    }

    /// Gives the child /dev/null as stdin, stdout and stderr, for a
    /// process that outlives the caller and must hold none of its
    /// terminal or pipes.
    pub fn null_stdio(&mut self) -> Result<&mut Spawn, Error> {
        self.null_stdin_stdout()?;
        self.null_stderr = true;
        Ok(self)
    }

    /// Lets the child outlive us: no parent-death signal, so that when we
    /// exit it is re-parented (to our subreaper, or init). By default the
    /// child is killed when the thread that spawned it exits.
    pub fn detached(&mut self) -> &mut Spawn {
        self.detached = true;
        self
    }

    /// Puts the child into the cgroup of each `cgroup.procs` file given
    /// (one per cgroup v1 hierarchy, or the unified one) before it is
    /// released, so that it execs already inside them.
    pub fn cgroup_procs(&mut self, files: impl IntoIterator<Item = PathBuf>) -> &mut Spawn {
        self.cgroup_procs.extend(files);
        self
    }

    /// Passes `fd` to the child, where it becomes the returned number: the
    /// descriptors passed are numbered from 3 in the order given, and no
    /// other descriptor but stdio survives.
    pub fn pass_fd(&mut self, fd: &impl AsRawFd) -> RawFd {
        self.fds.push(fd.as_raw_fd());
        2 + self.fds.len() as RawFd
    }

    /// Starts the child and returns once it has exec'd.
    pub fn spawn(&self) -> Result<Child, Error> {
        let user_ns = self.namespaces.contains(CloneFlags::CLONE_NEWUSER);
        let (sync_r, sync_w) = pipe_with(PipeFlags::CLOEXEC).map_err(host("pipe"))?;
        let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC).map_err(host("pipe"))?;
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut scratch = vec![0 as RawFd; self.fds.len()];
        let prepared = Prepared {
            exe: self.exe.as_raw_fd(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            fds: &self.fds,
            scratch: scratch.as_mut_ptr(),
            sync: sync_r.as_raw_fd(),
            err: err_w.as_raw_fd(),
            null: self.null.as_ref().map(AsRawFd::as_raw_fd),
            null_stderr: self.null_stderr,
            pdeathsig: !self.detached,
            user_ns,
        };
        // SAFETY: a fork-like clone (no CLONE_VM, no new stack): the child
        // gets a copy of this address space and runs only `child_main`,
        // which makes raw system calls on memory prepared above and never
        // returns, so no lock or allocator state of other threads is used.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (self.namespaces.bits() | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid < 0 {
            return Err(last_errno("clone"));
        }
        if pid == 0 {
            child_main(&prepared);
        }
        let child = Child { pid: pid as i32 };
        drop((sync_r, err_w));
        if let Err(e) = self.join_cgroups(child.pid) {
            child.kill_and_reap();
            return Err(e);
        }
        if user_ns {
            if let Err(e) = write_id_maps(child.pid) {
                child.kill_and_reap();
                return Err(e);
            }
        }
        if let Err(errno) = rustix::io::write(&sync_w, &[1]) {
            child.kill_and_reap();
            return Err(host("releasing the child")(errno));
        }
        let mut report = [0u8; 5];
        let n = read_full(&err_r, &mut report);
        if n == 0 {
            return Ok(child);
        }
        child.kill_and_reap();
        let errno = rustix::io::Errno::from_raw_os_error(i32::from_ne_bytes([
            report[1], report[2], report[3], report[4],
        ]));
        Err(Error::Host {
            what: match report[0] {
                x if x == Stage::Identity as u8 => "taking the sandbox identity",
                x if x == Stage::Fds as u8 => "arranging descriptors",
                _ => "exec",
            },
            errno,
        })
    }

    fn join_cgroups(&self, pid: i32) -> Result<(), Error> {
        for file in &self.cgroup_procs {
            std::fs::write(file, format!("{pid}\n")).map_err(|e| Error::Path {
                what: "putting the process into its cgroup",
                path: file.display().to_string(),
                errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
            })?;
        }
        Ok(())
    }
}

impl Child {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the child to exit, retrying on EINTR.
    pub fn wait(&self) -> Result<ExitStatus, Error> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes only `status`, a local.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return Ok(ExitStatus::from_raw(status));
            }
            if nix::errno::Errno::last_raw() != libc::EINTR {
                return Err(last_errno("waitpid"));
            }
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects; the pid is our unreaped child,
        // so it cannot have been reused.
        unsafe { libc::kill(self.pid, signal) };
    }

    fn kill_and_reap(&self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait();
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    n
}

/// Maps the child's root to `nobody` when we are root (as runsc's sandbox),
/// or to ourselves otherwise (rootless, where setgroups must be denied).
fn write_id_maps(pid: i32) -> Result<(), Error> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let (uid, gid) = match euid {
        0 => (NOBODY, NOBODY),
        _ => (euid, egid),
    };
    let write = |file: &str, text: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text)
            .map_err(|e| path_error("writing the sandbox's ID map", &path, &e))
    };
    write("uid_map", format!("0 {uid} 1\n"))?;
    if euid != 0 {
        write("setgroups", "deny\n".into())?;
    }
    write("gid_map", format!("0 {gid} 1\n"))
}

/// Everything the child needs, prepared before the clone.
struct Prepared<'a> {
    exe: RawFd,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    fds: &'a [RawFd],
    scratch: *mut RawFd,
    sync: RawFd,
    err: RawFd,
    null: Option<RawFd>,
    null_stderr: bool,
    pdeathsig: bool,
    user_ns: bool,
}

/// The child between clone and exec: only raw system calls, no allocation.
/// One block: every operation in it shares the same invariant.
#[allow(clippy::multiple_unsafe_ops_per_block)]
fn child_main(p: &Prepared) -> ! {
    // SAFETY: every call below is a raw system call on descriptors and
    // memory prepared by the parent before the clone (the argument arrays are
    // NUL-terminated and outlive this function, which never returns); none
    // takes a lock or allocates.
    unsafe {
        let fail = |err: RawFd, stage: Stage| -> ! {
            let errno = nix::errno::Errno::last_raw().to_ne_bytes();
            let report = [stage as u8, errno[0], errno[1], errno[2], errno[3]];
            libc::write(err, report.as_ptr().cast(), report.len());
            libc::_exit(127)
        };
        // Die with veil rather than outlive it unsupervised, unless it is
        // meant to outlive us.
        if p.pdeathsig {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        }
        let mut byte = 0u8;
        if libc::read(p.sync, (&raw mut byte).cast(), 1) != 1 {
            libc::_exit(127);
        }
        if p.user_ns {
            // The namespace's root, which the parent mapped to the host's
            // nobody (or to the unprivileged caller).
            // Raw calls: glibc's wrappers broadcast to the threads it
            // believes this process has (the parent's), and wait for them.
            if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0 {
                fail(p.err, Stage::Identity);
            }
            // Drop the caller's supplementary groups; refused (and
            // meaningless) when setgroups is denied in rootless mode.
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>());
            if libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0 {
                fail(p.err, Stage::Identity);
            }
            // A change of identity clears the parent-death signal.
            if p.pdeathsig {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            }
        }
        // A session of its own: a terminal's signals reach only the
        // caller, which forwards what the sandbox should see.
        libc::setsid();
        // Move every descriptor we still need above the target range, then
        // put the passed ones at 3, 4, ... in order.
        let n = p.fds.len() as RawFd;
        let above = |fd: RawFd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3 + n);
        let err = above(p.err);
        if err < 0 {
            fail(p.err, Stage::Fds);
        }
        let exe = above(p.exe);
        if exe < 0 {
            fail(err, Stage::Fds);
        }
        for (i, &fd) in p.fds.iter().enumerate() {
            let moved = above(fd);
            if moved < 0 {
                fail(err, Stage::Fds);
            }
            *p.scratch.add(i) = moved;
        }
        // Only now, as the caller may pass its own stdio on.
        if let Some(null) = p.null {
            if libc::dup2(null, 0) < 0 || libc::dup2(null, 1) < 0 {
                fail(err, Stage::Fds);
            }
            if p.null_stderr && libc::dup2(null, 2) < 0 {
                fail(err, Stage::Fds);
            }
        }
        for i in 0..p.fds.len() {
            if libc::dup2(*p.scratch.add(i), 3 + i as RawFd) < 0 {
                fail(err, Stage::Fds);
            }
        }
        // Everything else closes at exec; `exe` must stay open until then.
        if libc::syscall(
            libc::SYS_close_range,
            3 + n as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            fail(err, Stage::Fds);
        }
        libc::syscall(
            libc::SYS_execveat,
            exe,
            c"".as_ptr(),
            p.argv,
            p.envp,
            libc::AT_EMPTY_PATH,
        );
        fail(err, Stage::Exec)
    }
}
