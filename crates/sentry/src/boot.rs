//! Starting a sandbox: the memory file, the platform, the root filesystem
//! served by the gofer, and the init task.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use veil_abi::Errno;
use veil_gofer::GoferClient;
use veil_platform::ptrace::PtracePlatform;
use veil_platform::{Platform, Registers};
use veil_vfs::mount::{MountConfig, MountEntry, MountKind, TmpfsOptions, MNT_RDONLY};
use veil_vfs::{Creds, FdTable, FsContext, OpenFile, PathRef, Vfs};

use crate::console::Console;
use crate::control::{Gate, StartGate};
use crate::kernel::Kernel;
use crate::mm::{Layout, MemoryFile, MemoryManager};
use crate::syscalls;
use crate::task::{ExitStatus, Task, ThreadGroup};

/// Everything the sentry needs from whoever started it.
pub struct BootConfig {
    /// Connections to the gofer: the root filesystem's first, then those
    /// the bind mounts of `mounts` name by index.
    pub gofers: Vec<OwnedFd>,
    pub mounts: MountConfig,
    /// A host file to hold the memory file instead of a memfd (`veil do
    /// --overlay=file`): the overlay's file data, and with it application
    /// memory, then live on the host's disk.
    pub memory_file: Option<OwnedFd>,
    /// Bytes of memory the sandbox may hold at once (application memory
    /// and in-memory file data; `veil do --memory`); None for no limit.
    pub memory_limit: Option<u64>,
    /// The application's stdin, stdout and stderr.
    pub stdio: Stdio,
    /// Descriptors init gets as 3, 4, ... (runc's `--preserve-fds`).
    pub preserved: Vec<OwnedFd>,
    /// The init process.
    pub process: ProcessSpec,
    /// The sandbox's hostname; "veil" if unset.
    pub hostname: Option<Vec<u8>>,
    /// Mount the root read-only (after the mounts, whose mount points an
    /// overlaid root can still gain).
    pub readonly_root: bool,
    /// Paths hidden from the application (OCI `maskedPaths`): an empty
    /// read-only directory over a directory, /dev/null over anything else.
    pub masked_paths: Vec<Vec<u8>>,
    /// Paths made read-only by a bind of each onto itself (OCI
    /// `readonlyPaths`).
    pub readonly_paths: Vec<Vec<u8>>,
    /// The user namespace's mappings, which /proc/PID/uid_map and gid_map
    /// show (the gofer applies them to owners).
    pub ids: veil_gofer::IdMaps,
    /// Init is a PID namespace's init, as in a container: signals it has no
    /// handler for are dropped, except SIGKILL and SIGSTOP from outside.
    /// `veil do` leaves it unset, so that its programs behave as when run
    /// from a shell.
    pub init_protected: bool,
    /// A listening socket for `veil start` and `veil kill` (see
    /// [`crate::control`]); with it, init waits for Start before it runs.
    pub control: Option<OwnedFd>,
    /// Told `ok` once init is loaded and waiting, or why it could not be.
    pub ready: Option<OwnedFd>,
    pub strace: bool,
    /// A signalfd of the host signals veil forwards (SIGTERM, SIGINT, ...),
    /// blocked in every sentry thread: each is delivered to the sandbox's
    /// init as a kill(2) from outside the sandbox.
    pub host_signals: Option<OwnedFd>,
    /// Run once the sentry holds everything it needs from the host and
    /// before any application code runs: installs the host system call
    /// filter, which also binds the platform's threads.
    pub seal: Option<Box<dyn FnOnce() -> Result<(), String> + Send>>,
}

/// Where init's stdin, stdout and stderr go.
pub enum Stdio {
    /// Host descriptors, passed through as they are; a terminal among
    /// them (stdin) becomes init's controlling terminal.
    Host([OwnedFd; 3]),
    /// A host terminal to join to a pty of the sandbox (a container's
    /// console), whose slave is init's stdio and controlling terminal.
    Console(OwnedFd),
}

/// A process to start in the sandbox: what it runs and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// The initial working directory inside the sandbox.
    pub cwd: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The capability sets; None gives root all of them and others none.
    pub caps: Option<CapSets>,
    /// Resource limits to set, over the defaults.
    pub rlimits: Vec<RlimitSpec>,
    pub no_new_privs: bool,
    pub umask: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSpec {
    /// RLIMIT_*.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

impl ProcessSpec {
    pub fn creds(&self) -> Creds {
        let mut creds = Creds::new(self.uid, self.gid);
        let mut groups = self.groups.clone();
        groups.sort_unstable();
        groups.dedup();
        creds.groups = groups;
        if let Some(c) = self.caps {
            creds.cap_bounding = c.bounding;
            creds.cap_effective = c.effective;
            creds.cap_permitted = c.permitted;
            creds.cap_inheritable = c.inheritable;
            creds.cap_ambient = c.ambient;
        }
        creds
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("platform: {0}")]
    Platform(#[from] veil_platform::PlatformError),
    #[error("{what}: {errno}")]
    Setup { what: &'static str, errno: Errno },
    /// The command could not be started (like a shell's 126/127).
    #[error("{}: {errno}", String::from_utf8_lossy(.path))]
    Exec { path: Vec<u8>, errno: Errno },
    #[error("the init task's thread panicked")]
    TaskPanicked,
    #[error("confining the sentry: {0}")]
    Seal(String),
}

fn setup(what: &'static str) -> impl FnOnce(Errno) -> BootError {
    move |errno| BootError::Setup { what, errno }
}

/// The tty group.
pub(crate) const TTY_GID: u32 = 5;

/// Boots the sandbox and runs its init process to completion.
pub fn boot(cfg: BootConfig) -> Result<ExitStatus, BootError> {
    // Every file the application opens holds a donated host FD here; best
    // effort, as without it the sentry only meets EMFILE sooner.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: nofile.maximum,
        ..nofile
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised);
    let memfile = match cfg.memory_file {
        Some(fd) => MemoryFile::with_file(fd),
        None => MemoryFile::new(),
    };
    let memfile = Arc::new(memfile.map_err(setup("memory file"))?);
    memfile.set_limit(cfg.memory_limit);
    let platform: Arc<dyn Platform> = Arc::new(PtracePlatform::new(memfile.fd())?);
    let clients: Vec<_> = cfg
        .gofers
        .into_iter()
        .map(|fd| Arc::new(GoferClient::new(fd)))
        .collect();
    let root_client = clients.first().cloned().ok_or(BootError::Setup {
        what: "root filesystem",
        errno: Errno::EINVAL,
    })?;
    let vfs = Vfs::with_gofer_root(root_client, cfg.mounts.root_overlay, memfile.clone())
        .map_err(setup("root filesystem"))?;
    let vfs = Arc::new(vfs);
    let mut kernel = Kernel::new(platform.clone(), memfile.clone(), vfs.clone(), cfg.strace);
    if let Some(hostname) = cfg.hostname {
        kernel.hostname = hostname;
    }
    kernel.init_protected = cfg.init_protected;
    kernel.ids = cfg.ids;
    let kernel = Arc::new(kernel);
    if let Some(vdso) = &kernel.vdso {
        vdso.start().map_err(|_| BootError::Setup {
            what: "vDSO clock thread",
            errno: Errno::EAGAIN,
        })?;
    }
    let tree = TreeSpec {
        mounts: &cfg.mounts.mounts,
        clients: &clients,
        masked_paths: &cfg.masked_paths,
        readonly_paths: &cfg.readonly_paths,
        readonly_root: cfg.readonly_root,
    };
    populate_tree(&kernel, &vfs.root(), &tree)?;
    vfs.ptys()
        .set_signals(Arc::new(crate::tty::KernelSignals(Arc::downgrade(&kernel))));

    let process = cfg.process;
    let mut console = None;
    let fds = match cfg.stdio {
        Stdio::Host(stdio) => {
            let fds = stdio_table(stdio).map_err(setup("stdio"))?;
            // A terminal handed over as stdin becomes init's controlling
            // terminal, as a container's console does.
            if let Some(stdin) = fds.get(0).ok().filter(|f| f.is_terminal()) {
                kernel
                    .terminal
                    .attach(stdin, crate::kernel::INIT_PID, crate::kernel::INIT_PID);
            }
            fds
        }
        Stdio::Console(host) => {
            let (c, fds) = Console::stdio(&vfs, &vfs.root(), host, process.uid, true)
                .map_err(setup("console"))?;
            c.lead(crate::kernel::INIT_PID);
            console = Some(c);
            fds
        }
    };
    for (i, host) in cfg.preserved.into_iter().enumerate() {
        let flags = rustix::fs::fcntl_getfl(&host).map_or(2, |f| f.bits() as i32);
        let limit = veil_vfs::DEFAULT_NOFILE as usize;
        fds.insert_at(
            3 + i as i32,
            OpenFile::from_host_fd(host, flags),
            false,
            limit,
        )
        .map_err(setup("preserved descriptors"))?;
    }
    // A cwd missing inside the sandbox leaves init at the root (`veil do`
    // names the host's).
    let fs = fs_context(&vfs, &vfs.root(), &process).or_else(|_| {
        let at_root = ProcessSpec {
            cwd: b"/".to_vec(),
            umask: process.umask,
            ..ProcessSpec::default()
        };
        fs_context(&vfs, &vfs.root(), &at_root)
    });
    let fs = fs.map_err(setup("root directory"))?;
    if let Some(fd) = cfg.host_signals {
        let kernel = kernel.clone();
        std::thread::Builder::new()
            .name("host-signals".into())
            .spawn(move || forward_host_signals(&kernel, &fd))
            .map_err(|_| BootError::Setup {
                what: "host signal thread",
                errno: Errno::EAGAIN,
            })?;
    }
    if let Some(seal) = cfg.seal {
        seal().map_err(BootError::Seal)?;
    }
    if let Some(c) = &console {
        c.start().map_err(|_| BootError::Setup {
            what: "console threads",
            errno: Errno::EAGAIN,
        })?;
    }
    let gate = cfg.control.map(|listener| {
        let gate = Arc::new(StartGate::default());
        let (kernel, g) = (kernel.clone(), gate.clone());
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || crate::control::serve(kernel, g, listener))
            .map(|_| gate)
    });
    let gate = gate.transpose().map_err(|_| BootError::Setup {
        what: "control thread",
        errno: Errno::EAGAIN,
    })?;
    let ready = cfg.ready;

    // Init waits, once loaded, for `veil start` if there is a control
    // socket; its exit ends the sandbox.
    let on_loaded = move |loaded: Result<(), (&[u8], Errno)>| {
        if let Some(ready) = ready {
            let msg = match loaded {
                Ok(()) => "ok".to_string(),
                Err((path, errno)) => format!(
                    "{}: {}",
                    String::from_utf8_lossy(path),
                    std::io::Error::from_raw_os_error(errno.raw())
                ),
            };
            let _ = rustix::io::write(&ready, msg.as_bytes());
        }
        match (loaded, &gate) {
            (Ok(()), Some(gate)) => match gate.wait() {
                Gate::Killed(signo) => Err(ExitStatus::Signaled { signo, core: false }),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    };
    let (_, thread) = spawn_process(&kernel, process, fds, fs, Member::default(), on_loaded)?;
    let status = thread.join().map_err(|_| BootError::TaskPanicked)?;
    // Init's last output may still be in the console's pty.
    if let Some(c) = &console {
        c.finish();
    }
    status
}

/// The pod container a new process belongs to, and whether it is that
/// container's init.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Member {
    pub container: u32,
    pub init: bool,
}

/// The thread of a process [`spawn_process`] started; it returns the
/// process's exit status.
pub(crate) type ProcessThread = JoinHandle<Result<ExitStatus, BootError>>;

/// The root (`root`), working directory and umask of a new process.
pub(crate) fn fs_context(
    vfs: &Vfs,
    root: &PathRef,
    process: &ProcessSpec,
) -> Result<FsContext, Errno> {
    let mut ctx = FsContext::new(root.clone());
    ctx.cwd = vfs.lookup(&ctx, root, &process.cwd, true)?;
    if let Some(umask) = process.umask {
        ctx.umask = umask & 0o777;
    }
    Ok(ctx)
}

/// Starts `process` as a new process whose parent is outside the sandbox
/// (ppid 0): init, or one `veil exec` adds. It runs on a thread of its
/// own, which becomes the tracer of its stub. Once the program is loaded,
/// or failed to load, `on_loaded` decides on that thread whether it runs
/// (Ok) or ends unrun with the given status. The thread returns the
/// process's exit status; a process other than init is then reaped at
/// once, as no parent in the sandbox waits for it.
pub(crate) fn spawn_process(
    kernel: &Arc<Kernel>,
    process: ProcessSpec,
    fds: Arc<FdTable>,
    fs: FsContext,
    member: Member,
    on_loaded: impl FnOnce(Result<(), (&[u8], Errno)>) -> Result<(), ExitStatus> + Send + 'static,
) -> Result<(Arc<ThreadGroup>, ProcessThread), BootError> {
    let tid = kernel.alloc_tid();
    let tg = Arc::new(ThreadGroup {
        container: member.container,
        container_init: member.init,
        ..ThreadGroup::new(tid, 0)
    });
    set_rlimits(&tg, &process.rlimits);
    // What `ps` shows of a process not yet running (init before start).
    tg.exit_uid
        .store(process.uid, std::sync::atomic::Ordering::Relaxed);
    kernel.add_process(tg.clone());
    let process_tg = tg.clone();
    let task_kernel = kernel.clone();
    let thread = std::thread::Builder::new()
        .name(format!("task-{tid}"))
        .spawn(move || -> Result<ExitStatus, BootError> {
            let kernel = task_kernel;
            let init = tid == crate::kernel::INIT_PID;
            let space = match kernel.platform.new_address_space() {
                Ok(space) => space,
                Err(e) => {
                    if !init {
                        kernel.exit_process(&tg, ExitStatus::Exited(127));
                    }
                    return Err(e.into());
                }
            };
            let layout = Layout::new(kernel.platform.max_user_address(), crate::mm::STACK_SIZE);
            let mm = Arc::new(MemoryManager::new(space, kernel.memfile.clone(), layout));
            let mut task = Task::new(
                kernel.clone(),
                tg.clone(),
                tid,
                mm,
                fds,
                Arc::new(Mutex::new(fs)),
                Arc::new(process.creds()),
                Registers::default(),
            );
            task.no_new_privs = process.no_new_privs;
            let path = find_command(&task, &process.argv, &process.envp);
            let loaded = syscalls::exec_init(&mut task, &path, process.argv, &process.envp);
            let go = on_loaded(loaded.map_err(|errno| (path.as_slice(), errno)));
            let outcome = match (loaded, go) {
                (Err(errno), _) => Err(BootError::Exec { path, errno }),
                (Ok(()), Err(status)) => Ok(Some(status)),
                (Ok(()), Ok(())) => Ok(task.run()),
            };
            // Files close before the exit is reported, as on Linux.
            drop(task);
            match outcome {
                Ok(Some(status)) => {
                    if !init {
                        kernel.exit_process(&tg, status);
                    }
                    Ok(status)
                }
                // The main thread left while others run on: the last of
                // them reports the process's exit.
                Ok(None) => Ok(wait_for_exit(&kernel, &tg)),
                Err(e) => {
                    if !init {
                        kernel.exit_process(&tg, ExitStatus::Exited(127));
                    }
                    Err(e)
                }
            }
        })
        .map_err(|_| BootError::Setup {
            what: "task thread",
            errno: Errno::EAGAIN,
        });
    match thread {
        Ok(thread) => Ok((process_tg, thread)),
        Err(e) => {
            kernel.exit_process(&process_tg, ExitStatus::Exited(127));
            Err(e)
        }
    }
}

/// What goes on a container's root: the configured mounts, masked and
/// read-only paths, and the root made read-only.
pub(crate) struct TreeSpec<'a> {
    pub mounts: &'a [MountEntry],
    /// The gofer connections bind mounts name by index.
    pub clients: &'a [Arc<GoferClient>],
    pub masked_paths: &'a [Vec<u8>],
    pub readonly_paths: &'a [Vec<u8>],
    pub readonly_root: bool,
}

/// Builds `tree` on the tree whose root is `root`.
pub(crate) fn populate_tree(
    kernel: &Arc<Kernel>,
    root: &PathRef,
    tree: &TreeSpec<'_>,
) -> Result<(), BootError> {
    let vfs = &kernel.vfs;
    for entry in tree.mounts {
        let fs = syscalls::new_fs(kernel, &entry.kind, tree.clients).map_err(setup("mounts"))?;
        let mut flags = entry.flags;
        if matches!(entry.kind, MountKind::Bind { readonly: true, .. }) {
            flags |= MNT_RDONLY;
        }
        vfs.mount_entry(root, &entry.destination, flags, fs)
            .map_err(|errno| {
                tracing::error!(
                    "mounting {}: {errno}",
                    String::from_utf8_lossy(&entry.destination)
                );
                BootError::Setup {
                    what: "mounts",
                    errno,
                }
            })?;
    }
    protect_paths(
        vfs,
        root,
        &kernel.memfile,
        tree.masked_paths,
        tree.readonly_paths,
    )?;
    if tree.readonly_root {
        vfs.remount(root, MNT_RDONLY, true)
            .map_err(setup("read-only root"))?;
    }
    Ok(())
}

/// A new process's descriptor table: `stdio` as 0, 1 and 2.
pub(crate) fn stdio_table(stdio: [OwnedFd; 3]) -> Result<Arc<FdTable>, Errno> {
    let fds = Arc::new(FdTable::new());
    for (fd, host) in stdio.into_iter().enumerate() {
        let flags = rustix::fs::fcntl_getfl(&host).map_or(2, |f| f.bits() as i32);
        let limit = veil_vfs::DEFAULT_NOFILE as usize;
        fds.insert_at(fd as i32, OpenFile::from_host_fd(host, flags), false, limit)?;
    }
    Ok(fds)
}

/// Masks and write-protects paths as runc does, skipping those that do not
/// exist.
fn protect_paths(
    vfs: &Vfs,
    root: &PathRef,
    memfile: &Arc<MemoryFile>,
    masked: &[Vec<u8>],
    readonly: &[Vec<u8>],
) -> Result<(), BootError> {
    let ctx = FsContext::new(root.clone());
    let lookup = |path: &[u8]| match vfs.lookup(&ctx, &ctx.root, path, true) {
        Ok(p) => Ok(Some(p)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(errno) => Err(BootError::Setup {
            what: "masked and read-only paths",
            errno,
        }),
    };
    for path in masked {
        let Some(at) = lookup(path)? else { continue };
        if vfs.stat(&at).map_err(setup("masked paths"))?.is_dir() {
            let opts =
                TmpfsOptions::parse(b"size=4k,mode=755", 4096).map_err(setup("masked paths"))?;
            let (root, sb) = Vfs::tmpfs(&opts, memfile);
            vfs.mount_new(&at, root, sb, MNT_RDONLY)
                .map_err(setup("masked paths"))?;
        } else {
            let null = lookup(b"/dev/null")?.ok_or(BootError::Setup {
                what: "masked paths: no /dev/null",
                errno: Errno::ENOENT,
            })?;
            vfs.bind(&null, &at, false).map_err(setup("masked paths"))?;
        }
    }
    for path in readonly {
        let Some(at) = lookup(path)? else { continue };
        vfs.bind(&at, &at, true).map_err(setup("read-only paths"))?;
        if let Some(top) = lookup(path)? {
            let flags = top.mount.flags() | MNT_RDONLY;
            vfs.remount(&top, flags, true)
                .map_err(setup("read-only paths"))?;
        }
    }
    Ok(())
}

/// Sets the limits of a process not yet running.
fn set_rlimits(tg: &ThreadGroup, limits: &[RlimitSpec]) {
    let mut table = tg.rlimits.lock().unwrap_or_else(|p| p.into_inner());
    for l in limits {
        if let Some(slot) = table.get_mut(l.resource as usize) {
            slot.rlim_cur = l.soft;
            slot.rlim_max = l.hard;
        }
    }
}

/// Delivers each host signal read from the signalfd `fd` to the sandbox's
/// init, as Linux delivers a signal from an ancestor PID namespace: SI_USER
/// from PID 0.
fn forward_host_signals(kernel: &Kernel, fd: &OwnedFd) {
    while let Some(signo) = next_host_signal(fd.as_fd()) {
        let init = kernel.processes().get(&crate::kernel::INIT_PID).cloned();
        if let Some(init) = init {
            kernel.signal_process(&init, crate::signal::SigInfo::user(signo, 0, 0));
        }
    }
}

/// The next signal read from a host signalfd; None once it fails.
pub fn next_host_signal(fd: std::os::fd::BorrowedFd<'_>) -> Option<i32> {
    // struct signalfd_siginfo: 128 bytes, ssi_signo first.
    let mut info = [0u8; 128];
    loop {
        match rustix::io::read(fd, &mut info) {
            Ok(128) => return Some(i32::from_ne_bytes([info[0], info[1], info[2], info[3]])),
            Err(rustix::io::Errno::INTR) => continue,
            _ => return None,
        }
    }
}

/// Resolves a command without a slash through $PATH inside the sandbox, as
/// execvp does.
fn find_command(t: &Task, argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Vec<u8> {
    let Some(cmd) = argv.first() else {
        return Vec::new();
    };
    if cmd.contains(&b'/') {
        return cmd.clone();
    }
    let path = envp
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
    let ctx = t.fs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for dir in path.split(|&b| b == b':').filter(|d| !d.is_empty()) {
        let mut candidate = dir.to_vec();
        candidate.push(b'/');
        candidate.extend_from_slice(cmd);
        let start = if candidate.first() == Some(&b'/') {
            ctx.root.clone()
        } else {
            ctx.cwd.clone()
        };
        if t.kernel
            .vfs
            .access(&ctx, &start, &candidate, 1, 0, &t.creds)
            .is_ok()
            && t.kernel
                .vfs
                .lookup(&ctx, &start, &candidate, true)
                .is_ok_and(|p| t.kernel.vfs.stat(&p).is_ok_and(|s| s.is_reg()))
        {
            return candidate;
        }
    }
    cmd.clone()
}

pub(crate) fn wait_for_exit(kernel: &Kernel, tg: &ThreadGroup) -> ExitStatus {
    let waiter = veil_vfs::wait::Waiter::new();
    loop {
        if let Some(status) = exit_within(kernel, tg, &waiter, None) {
            return status;
        }
    }
}

/// `tg`'s exit status, or None after waiting on `waiter` for an exit in
/// the sandbox (up to `timeout`) without seeing `tg`'s.
pub(crate) fn exit_within(
    kernel: &Kernel,
    tg: &ThreadGroup,
    waiter: &Arc<veil_vfs::wait::Waiter>,
    timeout: Option<std::time::Duration>,
) -> Option<ExitStatus> {
    kernel.child_events.register(waiter);
    let status = *tg.exit.lock().unwrap_or_else(|p| p.into_inner());
    if status.is_none() {
        waiter.wait(timeout);
    }
    status
}
