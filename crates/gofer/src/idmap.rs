//! A container's user namespace mappings (OCI `uidMappings` and
//! `gidMappings`): the gofer shows host owners as the container's ids and
//! turns the container's ids back into host ones, and the sentry lists the
//! mappings in /proc/PID/uid_map and gid_map.

use serde::{Deserialize, Serialize};

/// `count` ids from `inside` (the container's) are `outside` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// One kind of id's mapping; empty is the identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap(pub Vec<IdRange>);

/// The uid and gid mappings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMaps {
    pub uid: IdMap,
    pub gid: IdMap,
}

/// What an unmapped host id shows as (Linux's overflowuid and overflowgid).
pub const OVERFLOW_ID: u32 = 65534;

impl IdMap {
    pub fn is_identity(&self) -> bool {
        self.0.is_empty()
    }

    /// The container's id for host id `host`, or the overflow id.
    pub fn inside(&self, host: u32) -> u32 {
        if self.is_identity() {
            return host;
        }
        self.0
            .iter()
            .find(|r| host.wrapping_sub(r.outside) < r.count && host >= r.outside)
            .map_or(OVERFLOW_ID, |r| r.inside + (host - r.outside))
    }

    /// The host id for the container's id `id`; None if it has none.
    pub fn outside(&self, id: u32) -> Option<u32> {
        if self.is_identity() {
            return Some(id);
        }
        self.0
            .iter()
            .find(|r| id >= r.inside && id - r.inside < r.count)
            .map(|r| r.outside + (id - r.inside))
    }

    /// `INSIDE:OUTSIDE:COUNT[,...]`, as the gofer's command line takes it.
    pub fn parse(s: &str) -> Result<IdMap, String> {
        let mut ranges = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let nums: Vec<u32> = part
                .split(':')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| format!("bad id mapping {part:?}"))?;
            let [inside, outside, count] = nums[..] else {
                return Err(format!("bad id mapping {part:?}"));
            };
            ranges.push(IdRange {
                inside,
                outside,
                count,
            });
        }
        IdMap::new(ranges)
    }

    /// Checks what Linux checks of a uid_map: no empty or wrapping range,
    /// and no overlap inside or outside.
    pub fn new(ranges: Vec<IdRange>) -> Result<IdMap, String> {
        let end = |start: u32, count: u32| u64::from(start) + u64::from(count);
        for (i, r) in ranges.iter().enumerate() {
            if r.count == 0 || end(r.inside, r.count) > 1 << 32 || end(r.outside, r.count) > 1 << 32
            {
                return Err(format!("bad id mapping {r:?}"));
            }
            for o in &ranges[..i] {
                let overlap = |a: u32, b: u32| {
                    u64::from(a) < end(b, o.count) && u64::from(b) < end(a, r.count)
                };
                if overlap(r.inside, o.inside) || overlap(r.outside, o.outside) {
                    return Err(format!("overlapping id mappings {o:?} and {r:?}"));
                }
            }
        }
        Ok(IdMap(ranges))
    }

    /// The argument [`IdMap::parse`] reads back.
    pub fn to_arg(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| format!("{}:{}:{}", r.inside, r.outside, r.count))
            .collect();
        parts.join(",")
    }

    /// /proc/PID/uid_map's text.
    pub fn proc_text(&self) -> String {
        let line = |a: u32, b: u32, c: u32| format!("{a:>10} {b:>10} {c:>10}\n");
        if self.is_identity() {
            return line(0, 0, u32::MAX);
        }
        self.0
            .iter()
            .map(|r| line(r.inside, r.outside, r.count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways_and_unmapped_ones_overflow() {
        let m = IdMap::parse("0:100000:65536,70000:5000:10").expect("parses");
        assert_eq!(m.inside(100000), 0);
        assert_eq!(m.inside(100005), 5);
        assert_eq!(m.inside(5003), 70003);
        assert_eq!(m.inside(0), OVERFLOW_ID);
        assert_eq!(m.inside(165536), OVERFLOW_ID);
        assert_eq!(m.outside(0), Some(100000));
        assert_eq!(m.outside(65535), Some(165535));
        assert_eq!(m.outside(65536), None);
        assert_eq!(m.outside(70009), Some(5009));
        assert_eq!(IdMap::parse(&m.to_arg()), Ok(m.clone()));
        assert_eq!(
            m.proc_text(),
            "         0     100000      65536\n     70000       5000         10\n"
        );
        let id = IdMap::default();
        assert_eq!((id.inside(7), id.outside(7)), (7, Some(7)));
        assert_eq!(id.proc_text(), "         0          0 4294967295\n");
    }

    #[test]
    fn bad_mappings_are_refused() {
        for bad in [
            "0:1",
            "a:b:c",
            "0:0:0",
            "4294967295:0:2",
            "0:100:10,5:200:10",
            "0:100:10,20:105:10",
        ] {
            assert!(IdMap::parse(bad).is_err(), "{bad}");
        }
    }
}
