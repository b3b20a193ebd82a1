//! Which cgroup hierarchies are mounted, where our own cgroup is in each,
//! and where a container's cgroup goes.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Cgroup, Error, Leaf};

/// Where cgroup filesystems are mounted on a systemd-style host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup version of a hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub version: Version,
    /// v1: the controllers as /proc/self/cgroup names them ("cpu",
    /// "cpuacct", "name=systemd"); v2: empty.
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
    /// The directory of our own cgroup in this hierarchy.
    pub own: PathBuf,
}

/// The hierarchies a container's cgroup is made in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchies {
    list: Vec<Hierarchy>,
}

impl Hierarchies {
    /// The host's hierarchies: pure v2 when /sys/fs/cgroup is a cgroup2
    /// filesystem, otherwise every v1 hierarchy and the unified one (hybrid).
    pub fn detect() -> Result<Hierarchies, Error> {
        let fs = rustix::fs::statfs(CGROUP_ROOT).map_err(|e| Error::Io {
            what: "statfs",
            path: CGROUP_ROOT.into(),
            source: e.into(),
        })?;
        let unified_only = u64::try_from(fs.f_type).ok()
            == Some(linux_raw_sys::general::CGROUP2_SUPER_MAGIC.into());
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|source| Error::Io {
                what: "reading",
                path: path.into(),
                source,
            })
        };
        Hierarchies::parse(
            &read("/proc/self/mountinfo")?,
            &read("/proc/self/cgroup")?,
            unified_only,
        )
    }

    /// The hierarchies from the text of /proc/self/mountinfo and
    /// /proc/self/cgroup. `unified_only` ignores v1 mounts (pure v2 host).
    pub fn parse(
        mountinfo: &str,
        self_cgroup: &str,
        unified_only: bool,
    ) -> Result<Hierarchies, Error> {
        let own = parse_self_cgroup(self_cgroup)?;
        let mut list: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines().filter(|l| !l.is_empty()) {
            let bad = || Error::Parse {
                file: "mountinfo",
                line: line.to_string(),
            };
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|&f| f == "-").ok_or_else(bad)?;
            if sep < 6 || fields.len() < sep + 4 {
                return Err(bad());
            }
            let version = match fields[sep + 1] {
                "cgroup" if !unified_only => Version::V1,
                "cgroup2" => Version::V2,
                _ => continue,
            };
            let mount_root = unescape(fields[3]);
            let mountpoint = PathBuf::from(unescape(fields[4]));
            let options: Vec<&str> = fields[sep + 3].split(',').collect();
            // The /proc/self/cgroup entry of this hierarchy: v2's is the one
            // without controllers, a v1 one names controllers all present in
            // the mount's super options.
            let Some(entry) = own.iter().find(|e| match version {
                Version::V2 => e.controllers.is_empty(),
                Version::V1 => {
                    !e.controllers.is_empty()
                        && e.controllers.iter().all(|c| options.contains(&c.as_str()))
                }
            }) else {
                tracing::debug!(?mountpoint, "cgroup mount not in /proc/self/cgroup");
                continue;
            };
            // Bind mounts of a hierarchy already seen.
            if list
                .iter()
                .any(|h| h.version == version && h.controllers == entry.controllers)
            {
                continue;
            }
            let inside = Path::new(&entry.path)
                .strip_prefix(&mount_root)
                .map_err(|_| {
                    Error::Detect(format!(
                        "our cgroup {} is outside the part {mount_root} of the hierarchy mounted at {}",
                        entry.path,
                        mountpoint.display()
                    ))
                })?;
            list.push(Hierarchy {
                version,
                controllers: entry.controllers.clone(),
                // Joining "" would add a trailing '/'.
                own: if inside.as_os_str().is_empty() {
                    mountpoint.clone()
                } else {
                    mountpoint.join(inside)
                },
                mountpoint,
            });
        }
        if list.is_empty() {
            return Err(Error::Detect("no cgroup hierarchy is mounted".into()));
        }
        Ok(Hierarchies { list })
    }

    pub fn list(&self) -> &[Hierarchy] {
        &self.list
    }

    /// Where the cgroup of container `id` goes (see [`Cgroup::plan`]).
    pub fn plan(
        &self,
        cgroups_path: Option<&Path>,
        id: &str,
        systemd: bool,
    ) -> Result<Cgroup, Error> {
        let cgroups_path = cgroups_path.filter(|p| !p.as_os_str().is_empty());
        let (relative, absolute) = if systemd {
            let default = format!(":runc:{id}");
            let spec = match cgroups_path {
                Some(p) => p.to_str().ok_or_else(|| Error::Path {
                    path: p.display().to_string(),
                    reason: "not UTF-8",
                })?,
                None => &default,
            };
            (systemd_path(spec)?, true)
        } else {
            match cgroups_path {
                Some(p) => (clean(p)?, p.is_absolute()),
                None => (clean(Path::new(id))?, false),
            }
        };
        let leaves = self
            .list
            .iter()
            .map(|h| Leaf {
                version: h.version,
                controllers: h.controllers.clone(),
                dir: if absolute {
                    h.mountpoint.join(&relative)
                } else {
                    h.own.join(&relative)
                },
                mountpoint: h.mountpoint.clone(),
            })
            .collect();
        Ok(Cgroup { leaves })
    }
}

/// One line of /proc/self/cgroup.
struct Entry {
    controllers: Vec<String>,
    path: String,
}

fn parse_self_cgroup(text: &str) -> Result<Vec<Entry>, Error> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(controllers), Some(path))
                    if id.parse::<u32>().is_ok() && path.starts_with('/') =>
                {
                    Ok(Entry {
                        controllers: controllers
                            .split(',')
                            .filter(|c| !c.is_empty())
                            .map(str::to_string)
                            .collect(),
                        path: path.to_string(),
                    })
                }
                _ => Err(Error::Parse {
                    file: "/proc/self/cgroup",
                    line: line.to_string(),
                }),
            }
        })
        .collect()
}

/// Undoes mountinfo's octal escapes of space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` as a relative path resolved as if rooted, so `..` cannot climb
/// above the hierarchy root (absolute) or our own cgroup (relative), as
/// runc's CleanPath does. It must name a cgroup below that.
fn clean(path: &Path) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::Path {
            path: path.display().to_string(),
            reason: "names no cgroup below its root",
        });
    }
    Ok(out)
}

/// The cgroupfs path systemd gives "slice:prefix:name" (runc's
/// --systemd-cgroup form): the slice's nested path, then
/// "<prefix>-<name>.scope", or the name itself when it is a slice. The
/// default slice is system.slice. Best effort: no unit is registered with
/// systemd, the directories are made directly.
fn systemd_path(spec: &str) -> Result<PathBuf, Error> {
    let bad = |reason| Error::Path {
        path: spec.to_string(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(bad("expected \"slice:prefix:name\" for systemd cgroups"));
    };
    if name.is_empty() || name.contains('/') {
        return Err(bad("the unit name is empty or has a '/'"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice).ok_or_else(|| bad("invalid systemd slice"))?;
    if name.ends_with(".slice") {
        path.push(name);
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// "a-b-c.slice" is nested as "a.slice/a-b.slice/a-b-c.slice"; "-.slice"
/// is the root.
fn expand_slice(slice: &str) -> Option<PathBuf> {
    let base = slice.strip_suffix(".slice")?;
    if slice.contains('/') {
        return None;
    }
    let mut path = PathBuf::new();
    if base == "-" {
        return Some(path);
    }
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Some(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use super::*;

    /// This machine: hybrid, v1 hierarchies plus an unified one.
    const HYBRID_MOUNTINFO: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/0932
2:cpuacct:/
1:cpu:/
0::/
";

    /// A v1-only host with combined cpu,cpuacct and a second, bind mount.
    const V1_MOUNTINFO: &str = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 20 0:23 /docker /mnt/mem\\040copy rw - cgroup cgroup rw,memory
";
    const V1_CGROUP: &str = "3:cpu,cpuacct:/user/a\n2:memory:/docker/x\n";

    const V2_MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 23 0:33 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
    const V2_CGROUP: &str = "1:name=systemd:/\n0::/user.slice/session-2.scope\n";

    fn dirs(c: &Cgroup) -> Vec<String> {
        c.leaves()
            .iter()
            .map(|l| l.dir.display().to_string())
            .collect()
    }

    #[test]
    fn hybrid_hierarchies_and_own_cgroups() {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, false).unwrap();
        let got: Vec<(Version, String, String)> = h
            .list()
            .iter()
            .map(|h| {
                (
                    h.version,
                    h.controllers.join(","),
                    h.own.display().to_string(),
                )
            })
            .collect();
        let want = [
            (Version::V1, "cpu", "/sys/fs/cgroup/cpu"),
            (Version::V1, "cpuacct", "/sys/fs/cgroup/cpuacct"),
            (
                Version::V1,
                "memory",
                "/sys/fs/cgroup/memory/process_api/0932",
            ),
            (Version::V1, "pids", "/sys/fs/cgroup/pids"),
            (Version::V1, "name=systemd", "/sys/fs/cgroup/systemd"),
            (Version::V2, "", "/sys/fs/cgroup/unified"),
        ]
        .map(|(v, c, o)| (v, c.to_string(), o.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn hybrid_paths() {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, false).unwrap();
        let abs = h.plan(Some(Path::new("/default/c3")), "c3", false).unwrap();
        assert_eq!(
            dirs(&abs),
            [
                "/sys/fs/cgroup/cpu/default/c3",
                "/sys/fs/cgroup/cpuacct/default/c3",
                "/sys/fs/cgroup/memory/default/c3",
                "/sys/fs/cgroup/pids/default/c3",
                "/sys/fs/cgroup/systemd/default/c3",
                "/sys/fs/cgroup/unified/default/c3",
            ]
        );
        let rel = h.plan(Some(Path::new("pod/c3")), "c3", false).unwrap();
        assert_eq!(
            dirs(&rel)[2],
            "/sys/fs/cgroup/memory/process_api/0932/pod/c3"
        );
        assert_eq!(dirs(&rel)[0], "/sys/fs/cgroup/cpu/pod/c3");
        // No cgroupsPath: /<id> relative to our own, as runc does.
        let none = h.plan(None, "t1", false).unwrap();
        assert_eq!(dirs(&none)[2], "/sys/fs/cgroup/memory/process_api/0932/t1");
        assert_eq!(dirs(&none)[5], "/sys/fs/cgroup/unified/t1");
        assert_eq!(
            none.procs_files()[5],
            Path::new("/sys/fs/cgroup/unified/t1/cgroup.procs")
        );
    }

    #[test]
    fn dot_dot_stays_inside() {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, false).unwrap();
        let c = h.plan(Some(Path::new("../../x/./y")), "c", false).unwrap();
        assert_eq!(dirs(&c)[2], "/sys/fs/cgroup/memory/process_api/0932/x/y");
        let c = h.plan(Some(Path::new("/a/../../etc")), "c", false).unwrap();
        assert_eq!(dirs(&c)[0], "/sys/fs/cgroup/cpu/etc");
        for bad in ["/", "..", "a/.."] {
            let e = h.plan(Some(Path::new(bad)), "c", false).unwrap_err();
            assert!(matches!(e, Error::Path { .. }), "{bad}: {e}");
        }
        assert!(h.plan(None, "..", false).is_err());
        // An empty cgroupsPath is no cgroupsPath.
        assert_eq!(
            dirs(&h.plan(Some(Path::new("")), "t", false).unwrap())[0],
            "/sys/fs/cgroup/cpu/t"
        );
    }

    #[test]
    fn v1_combined_controllers_bind_mounts_and_escapes() {
        let h = Hierarchies::parse(V1_MOUNTINFO, V1_CGROUP, false).unwrap();
        assert_eq!(h.list().len(), 2);
        assert_eq!(h.list()[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(
            h.list()[0].own,
            Path::new("/sys/fs/cgroup/cpu,cpuacct/user/a")
        );
        let c = h.plan(None, "t", false).unwrap();
        assert_eq!(
            dirs(&c),
            [
                "/sys/fs/cgroup/cpu,cpuacct/user/a/t",
                "/sys/fs/cgroup/memory/docker/x/t"
            ]
        );
        // Only the bind mount, of the subtree /docker: our path is relative
        // to it; its mount point has an escaped space.
        let only_bind = V1_MOUNTINFO.lines().nth(2).unwrap();
        let h = Hierarchies::parse(only_bind, V1_CGROUP, false).unwrap();
        assert_eq!(h.list()[0].own, Path::new("/mnt/mem copy/x"));
        // Our cgroup outside the mounted subtree.
        let e = Hierarchies::parse(only_bind, "2:memory:/user/x\n", false).unwrap_err();
        assert!(matches!(e, Error::Detect(_)), "{e}");
    }

    #[test]
    fn pure_v2_ignores_v1_mounts() {
        let h = Hierarchies::parse(V2_MOUNTINFO, V2_CGROUP, true).unwrap();
        assert_eq!(h.list().len(), 1);
        let c = h.plan(None, "t1", false).unwrap();
        assert_eq!(dirs(&c), ["/sys/fs/cgroup/user.slice/session-2.scope/t1"]);
        assert_eq!(c.leaves()[0].version, Version::V2);
        let c = h
            .plan(Some(Path::new("/kubepods/pod1/c")), "c", false)
            .unwrap();
        assert_eq!(dirs(&c), ["/sys/fs/cgroup/kubepods/pod1/c"]);
        // Read as a hybrid host, the named v1 hierarchy counts too.
        let h = Hierarchies::parse(V2_MOUNTINFO, V2_CGROUP, false).unwrap();
        assert_eq!(h.list().len(), 2);
    }

    #[test]
    fn systemd_paths() {
        let h = Hierarchies::parse(V2_MOUNTINFO, V2_CGROUP, true).unwrap();
        let plan = |p: Option<&str>| {
            h.plan(p.map(Path::new), "c1", true)
                .map(|c| dirs(&c)[0].clone())
        };
        assert_eq!(
            plan(Some("machine-pod1.slice:crio:abc")).unwrap(),
            "/sys/fs/cgroup/machine.slice/machine-pod1.slice/crio-abc.scope"
        );
        assert_eq!(
            plan(Some("kubepods-burstable.slice:cri:x")).unwrap(),
            "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/cri-x.scope"
        );
        assert_eq!(
            plan(Some("-.slice:p:n")).unwrap(),
            "/sys/fs/cgroup/p-n.scope"
        );
        assert_eq!(
            plan(None).unwrap(),
            "/sys/fs/cgroup/system.slice/runc-c1.scope"
        );
        assert_eq!(
            plan(Some(":docker:c2")).unwrap(),
            "/sys/fs/cgroup/system.slice/docker-c2.scope"
        );
        assert_eq!(
            plan(Some("user.slice::sub.slice")).unwrap(),
            "/sys/fs/cgroup/user.slice/sub.slice"
        );
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "notaslice:p:n",
            "a--b.slice:p:n",
            "x.slice:p:",
            "x.slice:p:../n",
            "a/b.slice:p:n",
        ] {
            let e = plan(Some(bad)).unwrap_err();
            assert!(matches!(e, Error::Path { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn parse_errors() {
        for (mountinfo, cgroup, file) in [
            (
                "31 23 0:28 / /sys/fs/cgroup rw - tmpfs\n",
                HYBRID_CGROUP,
                "mountinfo",
            ),
            (
                "32 31 0:29 / /sys/fs/cgroup/cpu rw cgroup cgroup rw,cpu\n",
                HYBRID_CGROUP,
                "mountinfo",
            ),
            ("- cgroup cgroup rw,cpu\n", HYBRID_CGROUP, "mountinfo"),
            (HYBRID_MOUNTINFO, "1:cpu\n", "/proc/self/cgroup"),
            (HYBRID_MOUNTINFO, "x:cpu:/\n", "/proc/self/cgroup"),
            (HYBRID_MOUNTINFO, "1:cpu:relative\n", "/proc/self/cgroup"),
        ] {
            match Hierarchies::parse(mountinfo, cgroup, false) {
                Err(Error::Parse { file: f, .. }) => assert_eq!(f, file),
                other => panic!("{mountinfo:?} {cgroup:?}: {other:?}"),
            }
        }
        // No cgroup mounted at all, or only v1 ones on a pure v2 host.
        let tmpfs = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n";
        assert!(matches!(
            Hierarchies::parse(tmpfs, HYBRID_CGROUP, false),
            Err(Error::Detect(_))
        ));
        let v1 = V1_MOUNTINFO.lines().next().unwrap();
        assert!(matches!(
            Hierarchies::parse(v1, V1_CGROUP, true),
            Err(Error::Detect(_))
        ));
    }

    #[test]
    fn serde_round_trip() {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, false).unwrap();
        let c = h.plan(Some(Path::new("/default/c3")), "c3", false).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"version\":\"v2\""), "{json}");
        assert_eq!(serde_json::from_str::<Cgroup>(&json).unwrap(), c);
    }
}
