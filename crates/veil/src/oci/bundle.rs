//! An OCI bundle's config.json, as veil's sandbox: the gofer's trees, the
//! sentry's mount table, and init.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use oci_spec::runtime::{Capabilities, Hook, Mount, Spec};
use veil_gofer::{IdMap, IdMaps, IdRange};
use veil_sentry::control::ContainerSpec;
use veil_sentry::{CapSets, ProcessSpec, RlimitSpec};
use veil_vfs::fs::memfs::DEFAULT_SIZE_LIMIT;
use veil_vfs::mount::{
    MountConfig, MountEntry, MountKind, TmpfsOptions, MNT_NODEV, MNT_NOEXEC, MNT_NOSUID, MNT_RDONLY,
};

use super::state::LaterHooks;
use crate::boot::SandboxSpec;

/// A bundle read and checked.
#[derive(Debug)]
pub struct Bundle {
    /// Absolute.
    pub dir: PathBuf,
    /// Absolute.
    pub rootfs: PathBuf,
    pub sandbox: SandboxSpec,
    /// What the gofer serves, `PATH[:ro]`: the root first, then the binds.
    pub trees: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub terminal: bool,
    pub hooks: Hooks,
    /// linux.cgroupsPath.
    pub cgroups_path: Option<PathBuf>,
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// The console's rows and columns (`process.consoleSize`).
    pub console_size: Option<(u16, u16)>,
    /// For a pod's container (not its sandbox), the id of the pod's
    /// sandbox container, which it joins.
    pub pod_sandbox: Option<String>,
}

/// The bundle's hooks by when they run.
#[derive(Debug, Default)]
pub struct Hooks {
    /// prestart (deprecated), createRuntime and createContainer: at the
    /// end of `create`.
    pub create: Vec<Hook>,
    pub later: LaterHooks,
}

impl Bundle {
    /// With `overlay`, writes to the root stay in the sandbox (runsc's
    /// default); without, they go through to the host's rootfs (runc's).
    pub fn load(dir: &Path, overlay: bool) -> anyhow::Result<Bundle> {
        let dir = std::path::absolute(dir).context("bundle path")?;
        let config = dir.join("config.json");
        if !config.exists() {
            bail!("JSON specification file config.json not found");
        }
        let spec = Spec::load(&config).context("reading config.json")?;
        let root = spec.root().as_ref().context("config.json has no root")?;
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            bail!("invalid rootfs: {}: not a directory", rootfs.display());
        }
        let rootfs_str = rootfs.to_str().context("the rootfs path is not UTF-8")?;
        let readonly = root.readonly().unwrap_or(false);
        let process = spec
            .process()
            .as_ref()
            .context("config.json has no process")?;
        let console_size = process.console_size().as_ref().map(|b| {
            let clamp = |n: u64| u16::try_from(n).unwrap_or(u16::MAX);
            (clamp(b.height()), clamp(b.width()))
        });
        let (process, terminal) = process_spec(process)?;
        let mut mounts = MountConfig {
            root_overlay: overlay,
            mounts: Vec::new(),
        };
        // An overlaid root, or a read-only one, is never written: its gofer
        // refuses to.
        let mut trees = vec![match overlay || readonly {
            true => format!("{rootfs_str}:ro"),
            false => rootfs_str.to_string(),
        }];
        for m in spec.mounts().iter().flatten() {
            if let Some(entry) = mount_entry(m, &mut trees)? {
                mounts.mounts.push(entry);
            }
        }
        let linux = spec.linux().as_ref();
        let memory_limit = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|&l| l > 0)
            .map(|l| l as u64);
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            if ns.path().is_some() {
                tracing::warn!(
                    "the {:?} namespace's path is ignored: the sandbox has namespaces of its own",
                    ns.typ()
                );
            }
        }
        let annotations: BTreeMap<String, String> = spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let pod_sandbox = pod_sandbox(&annotations)?;
        let ids = IdMaps {
            uid: id_map(linux.and_then(|l| l.uid_mappings().as_ref()))
                .context("linux.uidMappings")?,
            gid: id_map(linux.and_then(|l| l.gid_mappings().as_ref()))
                .context("linux.gidMappings")?,
        };
        Ok(Bundle {
            dir,
            rootfs,
            sandbox: SandboxSpec {
                mounts,
                process,
                hostname: spec.hostname().as_ref().map(|h| h.as_bytes().to_vec()),
                readonly_root: readonly,
                masked_paths: paths(linux.and_then(|l| l.masked_paths().as_ref()))?,
                readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref()))?,
                memory_limit,
                ids,
            },
            trees,
            annotations,
            terminal,
            hooks: spec.hooks().as_ref().map(hooks).unwrap_or_default(),
            cgroups_path: linux.and_then(|l| l.cgroups_path().clone()),
            resources: linux.and_then(|l| l.resources().clone()),
            console_size,
            pod_sandbox,
        })
    }

    /// What the sentry of a pod's sandbox needs to add this bundle as one
    /// of its containers, `gofers` connections sent along.
    pub fn pod_container(&self) -> ContainerSpec {
        let s = &self.sandbox;
        ContainerSpec {
            mounts: s.mounts.clone(),
            process: s.process.clone(),
            readonly_root: s.readonly_root,
            masked_paths: s.masked_paths.clone(),
            readonly_paths: s.readonly_paths.clone(),
            terminal: self.terminal,
            gofers: self.trees.len(),
        }
    }
}

/// The pod sandbox a CRI pod's container joins, from the annotations
/// containerd and CRI-O set (runsc reads the same); None for a pod's
/// sandbox and for a container outside any pod.
fn pod_sandbox(annotations: &BTreeMap<String, String>) -> anyhow::Result<Option<String>> {
    const KEYS: [(&str, &str); 2] = [
        (
            "io.kubernetes.cri.container-type",
            "io.kubernetes.cri.sandbox-id",
        ),
        (
            "io.kubernetes.cri-o.ContainerType",
            "io.kubernetes.cri-o.SandboxID",
        ),
    ];
    for (kind, sandbox) in KEYS {
        match annotations.get(kind).map(String::as_str) {
            None | Some("sandbox") => {}
            Some("container") => {
                let id = annotations
                    .get(sandbox)
                    .filter(|id| !id.is_empty())
                    .with_context(|| format!("a pod's container needs the annotation {sandbox}"))?;
                return Ok(Some(id.clone()));
            }
            Some(other) => bail!("unknown {kind} {other:?}"),
        }
    }
    Ok(None)
}

/// A user namespace's mapping, checked as Linux checks a uid_map.
fn id_map(list: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>) -> anyhow::Result<IdMap> {
    let ranges = list
        .into_iter()
        .flatten()
        .map(|m| IdRange {
            inside: m.container_id(),
            outside: m.host_id(),
            count: m.size(),
        })
        .collect();
    IdMap::new(ranges).map_err(anyhow::Error::msg)
}

fn hooks(h: &oci_spec::runtime::Hooks) -> Hooks {
    let list = |l: &Option<Vec<Hook>>| l.clone().unwrap_or_default();
    Hooks {
        create: [h.prestart(), h.create_runtime(), h.create_container()]
            .into_iter()
            .flat_map(list)
            .collect(),
        later: LaterHooks {
            start_container: list(h.start_container()),
            poststart: list(h.poststart()),
            poststop: list(h.poststop()),
        },
    }
}

fn paths(list: Option<&Vec<String>>) -> anyhow::Result<Vec<Vec<u8>>> {
    list.into_iter()
        .flatten()
        .map(|p| match p.starts_with('/') {
            true => Ok(p.as_bytes().to_vec()),
            false => bail!("masked and read-only paths must be absolute: {p}"),
        })
        .collect()
}

pub(crate) fn process_spec(p: &oci_spec::runtime::Process) -> anyhow::Result<(ProcessSpec, bool)> {
    let args = p.args().as_ref().filter(|a| !a.is_empty());
    let args = args.context("process.args must not be empty")?;
    let cwd = p.cwd();
    if !cwd.is_absolute() {
        bail!("process.cwd must be an absolute path: {}", cwd.display());
    }
    let user = p.user();
    let rlimits = p
        .rlimits()
        .iter()
        .flatten()
        .map(|r| RlimitSpec {
            resource: r.typ() as u32,
            soft: r.soft(),
            hard: r.hard(),
        })
        .collect();
    let spec = ProcessSpec {
        argv: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        envp: p
            .env()
            .iter()
            .flatten()
            .map(|e| e.as_bytes().to_vec())
            .collect(),
        cwd: cwd.to_str().context("process.cwd is not UTF-8")?.into(),
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        caps: p.capabilities().as_ref().map(cap_sets).transpose()?,
        rlimits,
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        umask: user.umask(),
    };
    Ok((spec, p.terminal().unwrap_or(false)))
}

fn cap_sets(c: &oci_spec::runtime::LinuxCapabilities) -> anyhow::Result<CapSets> {
    let bits = |set: &Option<Capabilities>| -> anyhow::Result<u64> {
        let mut bits = 0;
        for cap in set.iter().flatten() {
            let name = serde_json::to_value(cap)?;
            let name = name.as_str().unwrap_or_default();
            let n = super::CAPABILITIES
                .iter()
                .position(|&c| c == name)
                .with_context(|| format!("unknown capability {name}"))?;
            bits |= 1 << n;
        }
        Ok(bits)
    };
    Ok(CapSets {
        bounding: bits(c.bounding())?,
        effective: bits(c.effective())?,
        permitted: bits(c.permitted())?,
        inheritable: bits(c.inheritable())?,
        ambient: bits(c.ambient())?,
    })
}

/// One spec mount as the sentry's, adding a gofer tree for a bind; None
/// for those veil serves otherwise.
fn mount_entry(m: &Mount, trees: &mut Vec<String>) -> anyhow::Result<Option<MountEntry>> {
    let dst = m.destination();
    let dst_str = dst.to_str().context("a mount destination is not UTF-8")?;
    if !dst.is_absolute() {
        bail!("mount destination {dst_str} is not absolute");
    }
    let options = m.options().clone().unwrap_or_default();
    let has = |o: &str| options.iter().any(|x| x == o);
    let mut flags = 0;
    for (name, flag) in [
        ("ro", MNT_RDONLY),
        ("nosuid", MNT_NOSUID),
        ("nodev", MNT_NODEV),
        ("noexec", MNT_NOEXEC),
    ] {
        if has(name) {
            flags |= flag;
        }
    }
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = has("bind") || has("rbind") || typ == "bind";
    let kind = match typ {
        _ if bind => {
            let src = m
                .source()
                .as_ref()
                .with_context(|| format!("bind mount {dst_str} has no source"))?;
            let src = std::path::absolute(src)?;
            let src = src
                .to_str()
                .context("a bind source is not UTF-8")?
                .to_string();
            std::fs::metadata(&src).with_context(|| format!("bind mount source {src}"))?;
            let readonly = has("ro");
            let conn = trees.len();
            trees.push(if readonly {
                format!("{src}:ro")
            } else {
                src.clone()
            });
            MountKind::Bind {
                conn,
                source: src.into_bytes(),
                readonly,
            }
        }
        "proc" => MountKind::Proc,
        "sysfs" => MountKind::Sysfs,
        "devpts" => MountKind::Devpts,
        // veil's own devices, as runsc does.
        "tmpfs" if dst == Path::new("/dev") => MountKind::Devtmpfs,
        "tmpfs" => {
            let data: Vec<&str> = options
                .iter()
                .map(String::as_str)
                .filter(|o| o.starts_with("size=") || o.starts_with("mode="))
                .collect();
            let opts = TmpfsOptions::parse(data.join(",").as_bytes(), DEFAULT_SIZE_LIMIT)
                .map_err(|e| anyhow::anyhow!("tmpfs mount {dst_str}: bad options ({e})"))?;
            MountKind::Tmpfs {
                size: opts.size,
                mode: opts.mode,
            }
        }
        // sysfs serves /sys/fs/cgroup; there is no POSIX message queue
        // file system: both are in every runtime's default mounts.
        "cgroup" | "cgroup2" | "mqueue" => {
            tracing::debug!("{typ} mount at {dst_str}: not mounted");
            return Ok(None);
        }
        other => bail!("unsupported mount type {other:?} at {dst_str}"),
    };
    Ok(Some(MountEntry {
        destination: dst_str.as_bytes().to_vec(),
        kind,
        flags,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pod_containers_name_their_sandbox_in_containerds_or_cri_os_words() {
        let joins = |pairs: &[(&str, &str)]| pod_sandbox(&annotations(pairs)).ok().flatten();
        assert_eq!(joins(&[]), None);
        assert_eq!(
            joins(&[
                ("io.kubernetes.cri.container-type", "sandbox"),
                ("io.kubernetes.cri.sandbox-id", "p1"),
            ]),
            None
        );
        assert_eq!(
            joins(&[
                ("io.kubernetes.cri.container-type", "container"),
                ("io.kubernetes.cri.sandbox-id", "p1"),
            ]),
            Some("p1".into())
        );
        assert_eq!(
            joins(&[
                ("io.kubernetes.cri-o.ContainerType", "container"),
                ("io.kubernetes.cri-o.SandboxID", "p2"),
            ]),
            Some("p2".into())
        );
        for bad in [
            &[("io.kubernetes.cri.container-type", "container")][..],
            &[
                ("io.kubernetes.cri.container-type", "container"),
                ("io.kubernetes.cri.sandbox-id", ""),
            ],
            &[("io.kubernetes.cri-o.ContainerType", "podlet")],
        ] {
            assert!(pod_sandbox(&annotations(bad)).is_err(), "{bad:?}");
        }
    }
}
