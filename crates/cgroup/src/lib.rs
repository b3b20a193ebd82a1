//! Host cgroups for OCI containers: where a container's cgroup goes in
//! each mounted hierarchy (cgroup v1, v2 or both, "hybrid"), and creating,
//! configuring, inspecting, freezing and removing it.
//!
//! The container's host processes (sentry, gofer; the stubs inherit) join
//! every leaf through [`Cgroup::procs_files`]. A [`Cgroup`] is serialisable
//! so that it can be stored with the container's state and removed later
//! without the spec.

mod hierarchy;
mod resources;

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use hierarchy::{Hierarchies, Hierarchy, Version, CGROUP_ROOT};
pub use resources::{cpu_weight, ignored_resources, pids_max, settings, swap_v2, Setting};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed {file} line {line:?}")]
    Parse { file: &'static str, line: String },
    #[error("cgroups: {0}")]
    Detect(String),
    #[error("invalid cgroups path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("invalid resources: {0}")]
    Resources(String),
    #[error("the container has no {0} cgroup")]
    NoController(&'static str),
    #[error("{path}: not {want} after {secs} s")]
    Timeout {
        path: PathBuf,
        want: &'static str,
        secs: u64,
    },
}

impl Error {
    /// Whether the cgroup (or one of its files) doesn't exist, as after a
    /// delete.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } | Error::Write { source, .. }
            if source.kind() == ErrorKind::NotFound)
    }
}

/// The container's cgroup in one hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    pub version: Version,
    /// v1: the hierarchy's controllers ("name=systemd" for a named one).
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
    pub dir: PathBuf,
}

/// A container's cgroup: one leaf per hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    leaves: Vec<Leaf>,
}

/// Memory figures for `events --stats`; None where the kernel gives none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    pub usage: Option<u64>,
    /// v1 memory.max_usage_in_bytes, v2 memory.peak (Linux 5.19).
    pub max_usage: Option<u64>,
    /// u64::MAX when unlimited in v2; v1 gives its own huge number.
    pub limit: Option<u64>,
    /// v1 memory.failcnt, v2 memory.events "max".
    pub failcnt: Option<u64>,
    /// v2 memory.events "oom".
    pub oom: Option<u64>,
    /// v1 memory.oom_control (Linux 4.13), v2 memory.events "oom_kill".
    pub oom_kill: Option<u64>,
}

/// The controllers resources are applied to, in order (cpuset first: a v1
/// cpuset needs CPUs before anything can join it).
const CONTROLLERS: [&str; 4] = ["cpuset", "memory", "cpu", "pids"];

/// How long freeze and remove wait for the kernel.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

impl Cgroup {
    /// Where the container's cgroup goes on this host. `cgroups_path`
    /// (linux.cgroupsPath): absolute is under each hierarchy's root,
    /// relative is under our own cgroup in that hierarchy (from
    /// /proc/self/cgroup), None is "<id>" relative to our own, as runc does.
    /// `systemd` (--systemd-cgroup) reads it as "slice:prefix:name"
    /// (default "system.slice:runc:<id>") and makes the cgroupfs path
    /// systemd would, "/<slice path>/<prefix>-<name>.scope", without asking
    /// systemd: best effort, no unit is registered.
    pub fn plan(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Cgroup, Error> {
        Hierarchies::detect()?.plan(cgroups_path, id, systemd)
    }

    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The v1 leaf holding `controller`.
    fn v1(&self, controller: &str) -> Option<&Leaf> {
        self.leaves
            .iter()
            .find(|l| l.version == Version::V1 && l.controllers.iter().any(|c| c == controller))
    }

    fn unified(&self) -> Option<&Leaf> {
        self.leaves.iter().find(|l| l.version == Version::V2)
    }

    /// Makes every leaf (and missing parents), then applies `resources`,
    /// each controller in its v1 hierarchy, or else in the unified one if
    /// it offers it. `memory_headroom` bytes are added to the memory limit
    /// (see [`settings`]), and pids.max leaves room for the sandbox's own
    /// threads (see [`pids_max`]). Controllers the host lacks are skipped with a
    /// warning, as runc does; unsupported fields are logged at debug level.
    pub fn create(
        &self,
        resources: Option<&LinuxResources>,
        memory_headroom: u64,
    ) -> Result<(), Error> {
        for leaf in &self.leaves {
            std::fs::create_dir_all(&leaf.dir).map_err(|source| Error::Io {
                what: "creating",
                path: leaf.dir.clone(),
                source,
            })?;
        }
        if let Some(leaf) = self.v1("cpuset") {
            fill_cpuset(leaf)?;
        }
        let Some(r) = resources else {
            return Ok(());
        };
        let ignored = ignored_resources(r);
        if !ignored.is_empty() {
            tracing::debug!(?ignored, "resources not applied to the host cgroup");
        }
        let v1 = settings(r, memory_headroom, Version::V1)?;
        let mut targets = Vec::new();
        for controller in CONTROLLERS {
            if !v1.iter().any(|s| s.controller == controller) {
                continue;
            }
            if let Some(leaf) = self.v1(controller) {
                targets.push((controller, leaf));
            } else if let Some(leaf) = self.unified().filter(|u| offers(u, controller)) {
                targets.push((controller, leaf));
            } else {
                tracing::warn!(
                    controller,
                    "no such cgroup controller: its limits are not applied"
                );
            }
        }
        let in_v2: Vec<&str> = targets
            .iter()
            .filter(|(_, leaf)| leaf.version == Version::V2)
            .map(|&(c, _)| c)
            .collect();
        let v2 = match self.unified() {
            Some(unified) if !in_v2.is_empty() => {
                enable(unified, &in_v2)?;
                settings(r, memory_headroom, Version::V2)?
            }
            _ => Vec::new(),
        };
        for (controller, leaf) in targets {
            let list = match leaf.version {
                Version::V1 => &v1,
                Version::V2 => &v2,
            };
            for s in list.iter().filter(|s| s.controller == controller) {
                match write(&leaf.dir.join(s.file), &s.value) {
                    Err(e) if s.optional && e.is_not_found() => {
                        tracing::warn!(file = s.file, "not supported by the kernel: not applied");
                    }
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// The cgroup.procs files a process writes its pid to to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.leaves
            .iter()
            .map(|l| l.dir.join("cgroup.procs"))
            .collect()
    }

    /// The pids in the container's cgroup, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let leaf = self
            .v1("pids")
            .or_else(|| self.v1("memory"))
            .or_else(|| self.unified())
            .or_else(|| self.leaves.first())
            .ok_or(Error::NoController("pids"))?;
        let path = leaf.dir.join("cgroup.procs");
        let text = read(&path)?;
        let mut pids = text
            .lines()
            .map(|l| {
                l.trim().parse().map_err(|_| Error::Parse {
                    file: "cgroup.procs",
                    line: l.to_string(),
                })
            })
            .collect::<Result<Vec<i32>, Error>>()?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Memory usage, peak, limit and failure counts from the memory
    /// controller, whichever version has it.
    pub fn memory_stats(&self) -> Result<MemoryStats, Error> {
        if let Some(leaf) = self.v1("memory") {
            let dir = &leaf.dir;
            let oom_kill = read_optional(&dir.join("memory.oom_control"))?
                .and_then(|text| keyed(&text, "oom_kill"));
            return Ok(MemoryStats {
                usage: Some(number(&dir.join("memory.usage_in_bytes"))?),
                max_usage: number_optional(&dir.join("memory.max_usage_in_bytes"))?,
                limit: number_optional(&dir.join("memory.limit_in_bytes"))?,
                failcnt: number_optional(&dir.join("memory.failcnt"))?,
                oom: None,
                oom_kill,
            });
        }
        let leaf = self
            .unified()
            .filter(|u| u.dir.join("memory.current").exists())
            .ok_or(Error::NoController("memory"))?;
        let dir = &leaf.dir;
        let events = read_optional(&dir.join("memory.events"))?.unwrap_or_default();
        Ok(MemoryStats {
            usage: Some(number(&dir.join("memory.current"))?),
            max_usage: number_optional(&dir.join("memory.peak"))?,
            limit: number_optional(&dir.join("memory.max"))?,
            failcnt: keyed(&events, "max"),
            oom: keyed(&events, "oom"),
            oom_kill: keyed(&events, "oom_kill"),
        })
    }

    /// Freezes or thaws every process of the container and waits until the
    /// kernel reports it done: the v1 freezer if mounted, else v2's
    /// cgroup.freeze.
    pub fn freeze(&self, frozen: bool) -> Result<(), Error> {
        if let Some(leaf) = self.v1("freezer") {
            let path = leaf.dir.join("freezer.state");
            let want = if frozen { "FROZEN" } else { "THAWED" };
            // Rewritten while FREEZING, so that tasks forked meanwhile are
            // caught too (as runc does).
            return wait_for(&path, want, || {
                write(&path, want)?;
                Ok(read(&path)?.trim() == want)
            });
        }
        let leaf = self.unified().ok_or(Error::NoController("freezer"))?;
        write(
            &leaf.dir.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )?;
        let events = leaf.dir.join("cgroup.events");
        let want = if frozen { "frozen" } else { "thawed" };
        wait_for(&events, want, || {
            Ok(keyed(&read(&events)?, "frozen") == Some(u64::from(frozen)))
        })
    }

    /// Removes every leaf, waiting up to about 2 s for each while it is
    /// busy (processes take a moment to leave). A missing leaf is fine.
    /// Parents made by [`Cgroup::create`] are left, as runc leaves them.
    pub fn remove(&self) -> Result<(), Error> {
        let mut first_error = None;
        for leaf in &self.leaves {
            let start = Instant::now();
            let result = loop {
                match std::fs::remove_dir(&leaf.dir) {
                    Ok(()) => break Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => break Ok(()),
                    Err(e)
                        if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error())
                            && start.elapsed() < REMOVE_TIMEOUT =>
                    {
                        sleep(POLL)
                    }
                    Err(source) => {
                        break Err(Error::Io {
                            what: "removing",
                            path: leaf.dir.clone(),
                            source,
                        })
                    }
                }
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A new v1 cpuset has no CPUs and memory nodes, and nothing can join it
/// then: each level from the root down gets its parent's when empty.
fn fill_cpuset(leaf: &Leaf) -> Result<(), Error> {
    let Ok(below) = leaf.dir.strip_prefix(&leaf.mountpoint) else {
        return Ok(());
    };
    let mut dir = leaf.mountpoint.clone();
    for part in below {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read(&dir.join(file))?.trim().is_empty() {
                write(&dir.join(file), read(&parent.join(file))?.trim())?;
            }
        }
    }
    Ok(())
}

/// Whether the unified hierarchy offers `controller`.
fn offers(leaf: &Leaf, controller: &str) -> bool {
    read(&leaf.mountpoint.join("cgroup.controllers"))
        .is_ok_and(|text| text.split_whitespace().any(|c| c == controller))
}

/// Enables `controllers` for the children of each cgroup from the root
/// down to the leaf's parent, in one write per level.
fn enable(leaf: &Leaf, controllers: &[&str]) -> Result<(), Error> {
    let Some(parent) = leaf.dir.parent() else {
        return Ok(());
    };
    let below = parent
        .strip_prefix(&leaf.mountpoint)
        .unwrap_or(Path::new(""));
    let mut dir = leaf.mountpoint.clone();
    for part in std::iter::once(None).chain(below.iter().map(Some)) {
        if let Some(part) = part {
            dir.push(part);
        }
        let control = dir.join("cgroup.subtree_control");
        let enabled = read(&control)?;
        let missing: Vec<String> = controllers
            .iter()
            .filter(|&&c| !enabled.split_whitespace().any(|e| e == c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            write(&control, &missing.join(" "))?;
        }
    }
    Ok(())
}

/// Polls `check` until it holds, for up to [`FREEZE_TIMEOUT`].
fn wait_for(
    path: &Path,
    want: &'static str,
    mut check: impl FnMut() -> Result<bool, Error>,
) -> Result<(), Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while !check()? {
        if start.elapsed() > FREEZE_TIMEOUT {
            return Err(Error::Timeout {
                path: path.to_path_buf(),
                want,
                secs: FREEZE_TIMEOUT.as_secs(),
            });
        }
        sleep(pause);
        pause = (pause * 2).min(POLL);
    }
    Ok(())
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    // Never created: a missing control file is an error, not a new file.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        })
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match read(path) {
        Err(e) if e.is_not_found() => Ok(None),
        other => other.map(Some),
    }
}

/// A number file's value; "max" is u64::MAX.
fn parse_number(path: &Path, text: &str) -> Result<u64, Error> {
    let text = text.trim();
    if text == "max" {
        return Ok(u64::MAX);
    }
    text.parse().map_err(|_| Error::Parse {
        file: "cgroup number file",
        line: format!("{}: {text}", path.display()),
    })
}

fn number(path: &Path) -> Result<u64, Error> {
    parse_number(path, &read(path)?)
}

fn number_optional(path: &Path) -> Result<Option<u64>, Error> {
    read_optional(path)?
        .map(|text| parse_number(path, &text))
        .transpose()
}

/// The value of "key N" in a flat-keyed file (memory.events, cgroup.events).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n";
        assert_eq!(keyed(events, "max"), Some(12));
        assert_eq!(keyed(events, "oom"), Some(3));
        assert_eq!(keyed(events, "oom_kill"), Some(2));
        assert_eq!(keyed(events, "oom_group_kill"), None);
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "oom_kill"),
            Some(1)
        );
        assert_eq!(keyed("populated 1\nfrozen x\n", "frozen"), None);
    }

    #[test]
    fn numbers() {
        let p = Path::new("memory.max");
        assert_eq!(parse_number(p, "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_number(p, "67108864\n").unwrap(), 67_108_864);
        assert!(matches!(parse_number(p, "-1"), Err(Error::Parse { .. })));
    }

    /// A directory tree standing in for cgroupfs: `files` are made with
    /// their contents (the kernel makes a cgroup's files with it).
    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    fn leaf(root: &Path, version: Version, controllers: &[&str], dir: &str) -> Leaf {
        Leaf {
            version,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            mountpoint: root.to_path_buf(),
            dir: root.join(dir),
        }
    }

    fn text(root: &Path, path: &str) -> String {
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn v2_enables_controllers_from_the_root_down() {
        let root = fake(&[
            ("cgroup.controllers", "cpuset cpu memory\n"),
            ("cgroup.subtree_control", "cpu memory\n"),
            ("a/cgroup.subtree_control", ""),
            ("a/b/cgroup.subtree_control", "memory\n"),
            ("a/b/c/memory.max", "max\n"),
            ("a/b/c/memory.swap.max", "max\n"),
            ("a/b/c/memory.low", "0\n"),
            ("a/b/c/cpu.weight", "100\n"),
            ("a/b/c/cpu.max", "max 100000\n"),
            ("a/b/c/pids.max", "max\n"),
        ]);
        let r = root.path();
        let cgroup = Cgroup {
            leaves: vec![leaf(r, Version::V2, &[], "a/b/c")],
        };
        let memory = oci_spec::runtime::LinuxMemoryBuilder::default()
            .limit(64 << 20)
            .swap(96 << 20)
            .reservation(1 << 20)
            .build()
            .unwrap();
        let resources = oci_spec::runtime::LinuxResourcesBuilder::default()
            .memory(memory)
            .cpu(
                oci_spec::runtime::LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(20_000)
                    .build()
                    .unwrap(),
            )
            .pids(
                oci_spec::runtime::LinuxPidsBuilder::default()
                    .limit(10)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        cgroup.create(Some(&resources), 4 << 20).unwrap();
        // memory and cpu are enabled where missing, never in the leaf.
        assert_eq!(text(r, "cgroup.subtree_control"), "cpu memory\n");
        assert_eq!(text(r, "a/cgroup.subtree_control"), "+memory +cpu");
        assert_eq!(text(r, "a/b/cgroup.subtree_control"), "+cpu");
        assert!(!r.join("a/b/c/cgroup.subtree_control").exists());
        assert_eq!(text(r, "a/b/c/memory.max"), "71303168");
        assert_eq!(text(r, "a/b/c/memory.swap.max"), "33554432");
        assert_eq!(text(r, "a/b/c/memory.low"), "1048576");
        assert_eq!(text(r, "a/b/c/cpu.weight"), "39");
        assert_eq!(text(r, "a/b/c/cpu.max"), "20000 100000");
        // The host offers no pids controller: not applied.
        assert_eq!(text(r, "a/b/c/pids.max"), "max\n");
    }

    #[test]
    fn v1_cpuset_is_filled_from_the_parents() {
        let root = fake(&[
            ("cpuset.cpus", "0-3\n"),
            ("cpuset.mems", "0\n"),
            ("a/cpuset.cpus", "\n"),
            ("a/cpuset.mems", "0\n"),
            ("a/b/cpuset.cpus", ""),
            ("a/b/cpuset.mems", ""),
        ]);
        let r = root.path();
        let cgroup = Cgroup {
            leaves: vec![leaf(r, Version::V1, &["cpuset"], "a/b")],
        };
        cgroup.create(None, 0).unwrap();
        assert_eq!(text(r, "a/cpuset.cpus"), "0-3");
        assert_eq!(text(r, "a/cpuset.mems"), "0\n");
        assert_eq!(text(r, "a/b/cpuset.cpus"), "0-3");
        assert_eq!(text(r, "a/b/cpuset.mems"), "0");
    }

    #[test]
    fn v2_stats_pids_and_freeze() {
        let root = fake(&[
            ("c/memory.current", "4096\n"),
            ("c/memory.max", "max\n"),
            (
                "c/memory.events",
                "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n",
            ),
            ("c/cgroup.procs", "12\n5\n12\n"),
            ("c/cgroup.freeze", "0\n"),
            ("c/cgroup.events", "populated 1\nfrozen 1\n"),
        ]);
        let r = root.path();
        let cgroup = Cgroup {
            leaves: vec![leaf(r, Version::V2, &[], "c")],
        };
        assert_eq!(
            cgroup.memory_stats().unwrap(),
            MemoryStats {
                usage: Some(4096),
                max_usage: None,
                limit: Some(u64::MAX),
                failcnt: Some(5),
                oom: Some(2),
                oom_kill: Some(1),
            }
        );
        assert_eq!(cgroup.pids().unwrap(), [5, 12]);
        cgroup.freeze(true).unwrap();
        assert_eq!(text(r, "c/cgroup.freeze"), "1");
        std::fs::write(r.join("c/cgroup.procs"), "12\nx\n").unwrap();
        assert!(matches!(cgroup.pids(), Err(Error::Parse { .. })));
        // No memory controller in the cgroup.
        std::fs::remove_file(r.join("c/memory.current")).unwrap();
        assert!(matches!(
            cgroup.memory_stats(),
            Err(Error::NoController("memory"))
        ));
    }

    #[test]
    fn not_found_errors() {
        let e = read(Path::new("/nonexistent-veil-cgroup/cgroup.procs")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(!Error::NoController("memory").is_not_found());
    }
}
