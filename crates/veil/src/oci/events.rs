//! `events`: a container's resource statistics as runc prints them, one
//! JSON object per line, from its host cgroup.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::cli::Events;
use super::state::{Status, Store};

pub fn run(root: &Path, args: &Events) -> anyhow::Result<u8> {
    let interval = parse_duration(&args.interval)?;
    let container = Store::open(root)?.get(&args.container_id)?;
    loop {
        let state = {
            let _lock = container.lock(false)?;
            container.read()?
        };
        if state.status() == Status::Stopped {
            bail!("container with id {} is not running", args.container_id);
        }
        let cg = state
            .cgroup
            .as_ref()
            .context("the container has no cgroup")?;
        let memory = cg.memory_stats()?;
        let pids = cg.pids()?.len();
        let event = serde_json::json!({
            "type": "stats",
            "id": args.container_id,
            "data": {
                "memory": {
                    "usage": {
                        "limit": memory.limit,
                        "usage": memory.usage,
                        "max": memory.max_usage,
                        "failcnt": memory.failcnt,
                    },
                    "oom_kill": memory.oom_kill,
                },
                "pids": { "current": pids },
            },
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{event}")?;
        out.flush()?;
        if args.stats {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

/// A Go duration as runc takes it: a number and a unit (ns, us, ms, s, m,
/// h), possibly several (`1m30s`).
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        bail!("invalid duration {s:?}");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .with_context(|| format!("invalid duration {s:?}: a unit is missing"))?;
        let value: f64 = rest[..digits]
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let scale = match &rest[digits..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => bail!("invalid duration {s:?}: unknown unit {unit:?}"),
        };
        total += Duration::try_from_secs_f64(value * scale)
            .with_context(|| format!("invalid duration {s:?}"))?;
        rest = &rest[unit_end..];
    }
    if total.is_zero() {
        bail!("duration must be greater than 0");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h").ok(), Some(Duration::from_secs(5400)));
        for bad in ["", "5", "s", "5x", "0s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
