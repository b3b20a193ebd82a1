//! The cgroup files an OCI `linux.resources` turns into, for v1 and v2.

use oci_spec::runtime::LinuxResources;

use crate::{Error, Version};

/// One value to write into a controller's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
    /// Skipped with a warning when the kernel lacks the file (v1
    /// memory.memsw.* exists only with swap accounting).
    pub optional: bool,
}

/// Period cpu.max gets when only a quota is given (the kernel's default).
const DEFAULT_CFS_PERIOD: u64 = 100_000;

/// Extra pids.max room for the sandbox's own threads: the sentry runs one
/// host thread per application thread, and each application thread lives
/// in a stub thread, so every application task costs two host tasks; the
/// fixed part covers the sentry's and gofer's own threads and the stub
/// factory.
pub fn pids_max(limit: i64) -> i64 {
    limit.saturating_mul(2).saturating_add(32)
}

/// runc's conversion of v1 cpu.shares (2..=262144) to v2 cpu.weight
/// (1..=10000); shares outside that range are clamped as the kernel does.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// runc's conversion of the spec's memory+swap limit to v2 memory.swap.max
/// (swap alone): None leaves it unset, -1 is unlimited.
pub fn swap_v2(swap: i64, limit: i64) -> Result<Option<i64>, Error> {
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some(-1)),
        _ if limit == 0 || limit == -1 => {
            Err(Error::Resources("a swap limit needs a memory limit".into()))
        }
        _ if limit < 0 || swap < limit => Err(Error::Resources(format!(
            "memory+swap limit {swap} is below the memory limit {limit}"
        ))),
        _ => Ok(Some(swap - limit)),
    }
}

/// The resource fields veil doesn't apply: devices (the sandbox holds no
/// host device), block I/O, huge pages, network, RDMA, unified, and the
/// less common memory and CPU knobs.
pub fn ignored_resources(r: &LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |set: bool, name| {
        if set {
            out.push(name);
        }
    };
    note(
        r.devices().as_ref().is_some_and(|d| !d.is_empty()),
        "devices",
    );
    note(r.block_io().is_some(), "blockIO");
    note(
        r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        "hugepageLimits",
    );
    note(r.network().is_some(), "network");
    note(r.rdma().as_ref().is_some_and(|m| !m.is_empty()), "rdma");
    note(
        r.unified().as_ref().is_some_and(|m| !m.is_empty()),
        "unified",
    );
    if let Some(m) = r.memory() {
        note(m.kernel().is_some(), "memory.kernel");
        note(m.kernel_tcp().is_some(), "memory.kernelTCP");
        note(m.swappiness().is_some(), "memory.swappiness");
        note(m.disable_oom_killer().is_some(), "memory.disableOOMKiller");
        note(m.use_hierarchy().is_some(), "memory.useHierarchy");
    }
    if let Some(c) = r.cpu() {
        note(c.realtime_runtime().is_some(), "cpu.realtimeRuntime");
        note(c.realtime_period().is_some(), "cpu.realtimePeriod");
        note(c.idle().is_some(), "cpu.idle");
        note(c.burst().is_some(), "cpu.burst");
    }
    out
}

/// The files to write for `r` in a hierarchy of `version`, in order. The
/// memory limit gets `headroom` more bytes: the sentry enforces the exact
/// limit itself, the cgroup's is a backstop for the sandbox as a whole.
pub fn settings(
    r: &LinuxResources,
    headroom: u64,
    version: Version,
) -> Result<Vec<Setting>, Error> {
    let mut out = Vec::new();
    let mut set = |controller, file, value: String| {
        out.push(Setting {
            controller,
            file,
            value,
            optional: file == "memory.memsw.limit_in_bytes",
        })
    };
    // v2 spells "no limit" as "max", v1 as -1.
    let limit_text = |n: i64| match version {
        Version::V2 if n < 0 => "max".to_string(),
        _ => n.max(-1).to_string(),
    };
    let headroom = i64::try_from(headroom).unwrap_or(i64::MAX);
    let with_headroom = |n: i64| if n > 0 { n.saturating_add(headroom) } else { n };

    if let Some(cpu) = r.cpu() {
        if let Some(cpus) = cpu.cpus().as_ref().filter(|s| !s.is_empty()) {
            set("cpuset", "cpuset.cpus", cpus.clone());
        }
        if let Some(mems) = cpu.mems().as_ref().filter(|s| !s.is_empty()) {
            set("cpuset", "cpuset.mems", mems.clone());
        }
    }
    if let Some(m) = r.memory() {
        let limit = m.limit().unwrap_or(0);
        let swap = m.swap().unwrap_or(0);
        match version {
            Version::V1 => {
                if limit != 0 {
                    set(
                        "memory",
                        "memory.limit_in_bytes",
                        limit_text(with_headroom(limit)),
                    );
                }
                if swap != 0 {
                    set(
                        "memory",
                        "memory.memsw.limit_in_bytes",
                        limit_text(with_headroom(swap)),
                    );
                }
                if let Some(low) = m.reservation().filter(|&n| n != 0) {
                    set("memory", "memory.soft_limit_in_bytes", limit_text(low));
                }
            }
            Version::V2 => {
                let swap = swap_v2(swap, limit)?;
                if limit != 0 {
                    set("memory", "memory.max", limit_text(with_headroom(limit)));
                }
                if let Some(swap) = swap {
                    set("memory", "memory.swap.max", limit_text(swap));
                }
                if let Some(low) = m.reservation().filter(|&n| n != 0) {
                    set("memory", "memory.low", limit_text(low));
                }
            }
        }
    }
    if let Some(cpu) = r.cpu() {
        let shares = cpu.shares().filter(|&s| s != 0);
        let quota = cpu.quota().filter(|&q| q != 0);
        let period = cpu.period().filter(|&p| p != 0);
        match version {
            Version::V1 => {
                if let Some(shares) = shares {
                    set("cpu", "cpu.shares", shares.to_string());
                }
                // The period first: the kernel checks the quota against it.
                if let Some(period) = period {
                    set("cpu", "cpu.cfs_period_us", period.to_string());
                }
                if let Some(quota) = quota {
                    set("cpu", "cpu.cfs_quota_us", quota.max(-1).to_string());
                }
            }
            Version::V2 => {
                if let Some(shares) = shares {
                    set("cpu", "cpu.weight", cpu_weight(shares).to_string());
                }
                if quota.is_some() || period.is_some() {
                    let quota = quota
                        .filter(|&q| q > 0)
                        .map_or("max".into(), |q| q.to_string());
                    let period = period.unwrap_or(DEFAULT_CFS_PERIOD);
                    set("cpu", "cpu.max", format!("{quota} {period}"));
                }
            }
        }
    }
    if let Some(pids) = r.pids().filter(|p| p.limit() != 0) {
        // Both versions spell "no limit" as "max" here.
        let max = match pids.limit() {
            n if n < 0 => "max".to_string(),
            n => pids_max(n).to_string(),
        };
        set("pids", "pids.max", max);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test's failure is a panic.
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    #[test]
    fn cpu_weight_matches_runc() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(512), 20);
        assert_eq!(cpu_weight(262_144), 10_000);
        // Clamped, not wrapped, outside the kernel's range.
        assert_eq!(cpu_weight(1), 1);
        assert_eq!(cpu_weight(1 << 40), 10_000);
    }

    #[test]
    fn swap_conversion_matches_runc() {
        assert_eq!(swap_v2(0, 100).unwrap(), None);
        assert_eq!(swap_v2(-1, 100).unwrap(), Some(-1));
        assert_eq!(swap_v2(0, -1).unwrap(), Some(-1));
        assert_eq!(swap_v2(300, 100).unwrap(), Some(200));
        assert_eq!(swap_v2(100, 100).unwrap(), Some(0));
        assert!(swap_v2(50, 100).is_err());
        assert!(swap_v2(300, 0).is_err());
        assert!(swap_v2(300, -1).is_err());
    }

    fn files(s: &[Setting]) -> Vec<(&str, &str)> {
        s.iter().map(|s| (s.file, s.value.as_str())).collect()
    }

    #[test]
    fn full_resources_v1_and_v2() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(128 << 20)
                    .reservation(32 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(50_000)
                    .period(200_000u64)
                    .cpus("0")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(100).build().unwrap())
            .build()
            .unwrap();
        let v1 = settings(&r, 1 << 20, Version::V1).unwrap();
        assert_eq!(
            files(&v1),
            [
                ("cpuset.cpus", "0"),
                ("cpuset.mems", "0"),
                ("memory.limit_in_bytes", "68157440"),
                ("memory.memsw.limit_in_bytes", "135266304"),
                ("memory.soft_limit_in_bytes", "33554432"),
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "200000"),
                ("cpu.cfs_quota_us", "50000"),
                ("pids.max", "232"),
            ]
        );
        assert!(v1
            .iter()
            .all(|s| s.optional == (s.file == "memory.memsw.limit_in_bytes")));
        let v2 = settings(&r, 1 << 20, Version::V2).unwrap();
        assert_eq!(
            files(&v2),
            [
                ("cpuset.cpus", "0"),
                ("cpuset.mems", "0"),
                ("memory.max", "68157440"),
                ("memory.swap.max", "67108864"),
                ("memory.low", "33554432"),
                ("cpu.weight", "20"),
                ("cpu.max", "50000 200000"),
                ("pids.max", "232"),
            ]
        );
        assert!(ignored_resources(&r).is_empty());
    }

    #[test]
    fn unlimited_and_unset_values() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-1).build().unwrap())
            .cpu(LinuxCpuBuilder::default().quota(-1).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            files(&settings(&r, 1 << 20, Version::V1).unwrap()),
            [
                ("memory.limit_in_bytes", "-1"),
                ("cpu.cfs_quota_us", "-1"),
                ("pids.max", "max")
            ]
        );
        assert_eq!(
            files(&settings(&r, 1 << 20, Version::V2).unwrap()),
            [
                ("memory.max", "max"),
                ("memory.swap.max", "max"),
                ("cpu.max", "max 100000"),
                ("pids.max", "max")
            ]
        );
        // Zero means unset everywhere.
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(0).build().unwrap())
            .cpu(LinuxCpuBuilder::default().shares(0u64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(0).build().unwrap())
            .build()
            .unwrap();
        assert!(settings(&r, 0, Version::V1).unwrap().is_empty());
        assert!(settings(&r, 0, Version::V2).unwrap().is_empty());
    }

    #[test]
    fn bad_swap_fails_v2_only() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(100)
                    .swap(50)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert!(settings(&r, 0, Version::V1).is_ok());
        assert!(matches!(
            settings(&r, 0, Version::V2),
            Err(Error::Resources(_))
        ));
    }

    #[test]
    fn ignored_fields_are_listed() {
        let r = LinuxResourcesBuilder::default()
            .devices(vec![LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .build()
                .unwrap()])
            .memory(
                LinuxMemoryBuilder::default()
                    .swappiness(10u64)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .realtime_runtime(5)
                    .build()
                    .unwrap(),
            )
            .unified(std::collections::HashMap::from([(
                "io.max".to_string(),
                "x".to_string(),
            )]))
            .build()
            .unwrap();
        assert_eq!(
            ignored_resources(&r),
            [
                "devices",
                "unified",
                "memory.swappiness",
                "cpu.realtimeRuntime"
            ]
        );
    }
}
