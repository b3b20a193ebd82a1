//! The state directory: one directory per container under the root, holding
//! veil's record of it (`state.json`) and a lock file, as runc keeps them.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

/// The OCI runtime spec version veil reports, as runc 1.1 does.
pub const OCI_VERSION: &str = "1.0.2-dev";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// runc's wording, which callers match on.
    #[error("container does not exist")]
    NotExist,
    #[error("container with given ID already exists")]
    Exists,
    #[error("invalid container ID format")]
    InvalidId,
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt state file {}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { what, path, source }
}

/// The default state root: runc's layout under `/run` for root,
/// `$XDG_RUNTIME_DIR` for other users (where they can write).
pub fn default_root() -> PathBuf {
    if !rustix::process::geteuid().is_root() {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("veil");
        }
    }
    PathBuf::from("/run/veil")
}

/// runc's `^[\w+\-.]+$` (Go's `\w` is ASCII); also rules out `.` and `..`,
/// which would name the root or its parent.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId)
    }
}

/// A container's status, in the OCI spelling (plus runc's `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// A host process, named by pid and start time (field 22 of
/// `/proc/<pid>/stat`) so that a recycled pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProcess {
    pub pid: i32,
    pub start_ticks: u64,
}

impl HostProcess {
    /// The process with this pid now, if there is one.
    pub fn current(pid: i32) -> Option<Self> {
        let stat = proc_stat(pid)?;
        Some(Self {
            pid,
            start_ticks: stat.start_ticks,
        })
    }

    /// Sends SIGKILL to this very process, if it still runs: through a
    /// pidfd, opened before the start time is checked, so that a recycled
    /// pid is never signalled.
    pub fn kill(&self) {
        let Some(pid) = rustix::process::Pid::from_raw(self.pid) else {
            return;
        };
        let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
            return;
        };
        if self.alive() {
            let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::Kill);
        }
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|s| s.start_ticks == self.start_ticks && s.state != 'Z')
    }
}

struct ProcStat {
    state: char,
    start_ticks: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. Field 3 (state) is then the first, field 22 the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

/// veil's record of a container, `<root>/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Absolute.
    pub bundle: PathBuf,
    /// Absolute, resolved against the bundle.
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// The uid that created the container.
    pub owner: u32,
    /// The status last recorded; see [`State::status`] for the live one.
    pub status: Status,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub sentry: Option<HostProcess>,
    pub gofer: Option<HostProcess>,
    /// The hooks still to run, from the bundle's config.json.
    #[serde(default)]
    pub hooks: LaterHooks,
    /// The host cgroup of the sandbox's processes.
    pub cgroup: Option<veil_cgroup::Cgroup>,
    /// For a pod's container, the id of the container whose sandbox it
    /// runs in; its `sentry` is then the host process that stands for its
    /// init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// The hooks that run after `create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaterHooks {
    pub start_container: Vec<oci_spec::runtime::Hook>,
    pub poststart: Vec<oci_spec::runtime::Hook>,
    pub poststop: Vec<oci_spec::runtime::Hook>,
}

impl State {
    /// The recorded status, corrected to `stopped` once the sentry is gone
    /// (as runc checks its init).
    pub fn status(&self) -> Status {
        match self.status {
            Status::Created | Status::Running | Status::Paused
                if !self.sentry.is_some_and(|s| s.alive()) =>
            {
                Status::Stopped
            }
            s => s,
        }
    }

    /// The container the sentry knows this one by: None for the
    /// sandbox's own.
    pub fn in_sandbox(&self) -> Option<String> {
        self.sandbox.as_ref().map(|_| self.id.clone())
    }

    /// What `veil state` prints, with `owner` as given (runc: "" in
    /// `state`, the user name in `list`).
    pub fn oci(&self, owner: String) -> OciState {
        let status = self.status();
        let pid = match (status, self.sentry) {
            (Status::Stopped, _) | (_, None) => 0,
            (_, Some(s)) => s.pid,
        };
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.id.clone(),
            pid,
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
            owner,
        }
    }
}

/// The OCI state with runc's extra fields, in the order of runc's
/// `containerState` (go-runc parses it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    pub owner: String,
}

/// The state root.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the root, creating it (mode 0700) as runc does, even to list.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_err("creating the state directory", root))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the directory of a new container; its creation is the
    /// uniqueness check.
    pub fn create(&self, id: &str) -> Result<Container, StateError> {
        validate_id(id)?;
        let path = self.root.join(id);
        match DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => Ok(Container { path }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(StateError::Exists),
            Err(e) => Err(io_err("creating", &path)(e)),
        }
    }

    /// An existing container.
    pub fn get(&self, id: &str) -> Result<Container, StateError> {
        validate_id(id)?;
        let path = self.root.join(id);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => Ok(Container { path }),
            Ok(_) => Err(StateError::NotExist),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StateError::NotExist),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// The ids of the containers, sorted (runc lists in directory order;
    /// sorted is deterministic).
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = std::fs::read_dir(&self.root).map_err(io_err("reading", &self.root))?;
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// One container's directory.
#[derive(Debug)]
pub struct Container {
    path: PathBuf,
}

/// A held `flock`, released on drop (when the file closes).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Container {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the container's lock: exclusive for changes, shared for reads.
    pub fn lock(&self, exclusive: bool) -> Result<Lock, StateError> {
        let path = self.path.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
            .open(&path)
            .map_err(|e| match e.kind() {
                // Deleted meanwhile.
                ErrorKind::NotFound => StateError::NotExist,
                _ => io_err("opening", &path)(e),
            })?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        flock(&file, op).map_err(|e| io_err("locking", &path)(e.into()))?;
        Ok(Lock { _file: file })
    }

    /// The recorded state; a container without one (being created, or
    /// left half-made) does not exist yet, as for runc.
    pub fn read(&self) -> Result<State, StateError> {
        let path = self.path.join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(StateError::NotExist),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Replaces the state atomically (a temporary file renamed over it).
    pub fn write(&self, state: &State) -> Result<(), StateError> {
        let path = self.path.join("state.json");
        let tmp = self.path.join("state.json.tmp");
        let json = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("writing", &tmp))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_err("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("writing", &path))
    }
}

/// `t` as RFC 3339 in UTC with nanoseconds, like Go's `time.RFC3339Nano`
/// but always with nine digits (what runc's state shows).
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// `t` as RFC 3339 in UTC to the second (runc's log lines).
pub fn rfc3339_secs(t: SystemTime) -> String {
    let full = rfc3339_nanos(t);
    format!("{}Z", &full[..19])
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn sample(id: &str) -> State {
        State {
            id: id.into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-11-29T11:54:30.959934648Z".into(),
            owner: 0,
            status: Status::Created,
            annotations: BTreeMap::new(),
            sentry: None,
            gofer: None,
            hooks: LaterHooks::default(),
            cgroup: None,
            sandbox: None,
        }
    }

    #[test]
    fn ids_follow_runcs_pattern() {
        for ok in ["c3", "a.b", "x_y-z+1", "0123456789abcdef", "..a"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "bad/id", "a b", "é", "a\0b", "a:b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn store_creates_root_and_container_dirs_with_runcs_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("a/root");
        let store = Store::open(&root).expect("open");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o700);
        let c = store.create("c1").expect("create");
        assert_eq!(mode(c.path()), 0o711);
        assert!(matches!(store.create("c1"), Err(StateError::Exists)));
        assert!(matches!(store.create("bad/id"), Err(StateError::InvalidId)));
        assert!(matches!(store.get("nope"), Err(StateError::NotExist)));
        std::fs::write(root.join("stray-file"), b"").expect("write");
        assert_eq!(store.ids().expect("ids"), ["c1"]);
        std::fs::remove_dir(c.path()).expect("rmdir");
        assert!(matches!(c.lock(false), Err(StateError::NotExist)));
    }

    #[test]
    fn state_round_trips_and_is_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("open");
        let c = store.create("c1").expect("create");
        // Made but not yet recorded: not a container yet.
        assert!(matches!(
            store.get("c1").and_then(|c| c.read()),
            Err(StateError::NotExist)
        ));
        let mut state = sample("c1");
        state.annotations.insert("k".into(), "v".into());
        state.sentry = HostProcess::current(std::process::id() as i32);
        c.write(&state).expect("write");
        assert_eq!(store.get("c1").expect("get").read().expect("read"), state);
        let mode = std::fs::metadata(c.path().join("state.json"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(c.path().join("state.json"), b"{").expect("write");
        assert!(matches!(c.read(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn status_is_stopped_once_the_sentry_is_gone() {
        let me = HostProcess::current(std::process::id() as i32).expect("own stat");
        let mut state = sample("c1");
        state.status = Status::Running;
        state.sentry = Some(me);
        assert_eq!(state.status(), Status::Running);
        assert_eq!(state.oci(String::new()).pid, me.pid);
        // The same pid started at another time is another process.
        state.sentry = Some(HostProcess {
            start_ticks: me.start_ticks + 1,
            ..me
        });
        assert_eq!(state.status(), Status::Stopped);
        assert_eq!(state.oci(String::new()).pid, 0);
        state.sentry = None;
        assert_eq!(state.status(), Status::Stopped);
        state.status = Status::Creating;
        assert_eq!(state.status(), Status::Creating);
    }

    #[test]
    fn oci_state_has_runcs_fields_in_runcs_order() {
        let mut state = sample("lc1");
        state.status = Status::Stopped;
        let json = serde_json::to_string_pretty(&state.oci(String::new())).expect("json");
        assert_eq!(
            json,
            r#"{
  "ociVersion": "1.0.2-dev",
  "id": "lc1",
  "pid": 0,
  "status": "stopped",
  "bundle": "/b",
  "rootfs": "/b/rootfs",
  "created": "2026-11-29T11:54:30.959934648Z",
  "owner": ""
}"#
        );
        state
            .annotations
            .insert("org.example.key".into(), "value".into());
        let json = serde_json::to_string(&state.oci("root".into())).expect("json");
        assert!(json.contains(r#""annotations":{"org.example.key":"value"},"owner":"root"}"#));
    }

    #[test]
    fn lock_excludes_writers_and_shares_readers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("open");
        let c = store.create("c1").expect("create");
        let shared = c.lock(false).expect("shared");
        let again = c.lock(false).expect("second shared lock");
        let probe = File::open(c.path().join("lock")).expect("open");
        let try_ex = || flock(&probe, FlockOperation::NonBlockingLockExclusive);
        assert!(try_ex().is_err(), "an exclusive lock while readers hold it");
        drop((shared, again));
        assert!(try_ex().is_ok());
        flock(&probe, FlockOperation::Unlock).expect("unlock");
        let held = c.lock(true).expect("exclusive");
        assert!(flock(&probe, FlockOperation::NonBlockingLockShared).is_err());
        drop(held);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::new(1_795_953_270, 959_934_648);
        assert_eq!(rfc3339_nanos(t), "2026-11-29T11:54:30.959934648Z");
        assert_eq!(rfc3339_secs(t), "2026-11-29T11:54:30Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_secs(leap), "2000-02-29T00:00:00Z");
    }
}
