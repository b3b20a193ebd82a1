//! veil's vDSO, which the sentry maps into every process: `clock_gettime`,
//! `gettimeofday`, `time` and `getcpu` answered in the process itself, from
//! the TSC and a time page of scaling parameters that the sentry keeps
//! current. The image (built from vdso.c by build.rs) goes right after the
//! time page, which its code finds 4 KiB before itself.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The vDSO image, a shared object with no relocations, as Linux's.
pub const IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// The time page's size: the image's code expects it right before itself.
pub const TIME_PAGE_SIZE: u64 = 4096;

/// The time page, as vdso.c's `struct time_page` reads it. Under a
/// sequence lock: `seq` is odd while the sentry changes the rest.
///
/// Time on a clock is `base + ((tsc - base_tsc) * mult >> shift)`, with
/// `base` CLOCK_MONOTONIC's `mono_base_ns`, CLOCK_REALTIME's
/// `real_base_ns`, or CLOCK_BOOTTIME's `mono_base_ns + boot_offset_ns`,
/// for `tsc - base_tsc` from 0 to `max_delta`; past that, or with `mult`
/// 0, the vDSO asks the sentry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TimePage {
    pub seq: u64,
    pub base_tsc: u64,
    pub mono_base_ns: u64,
    pub real_base_ns: u64,
    pub boot_offset_ns: u64,
    pub mult: u64,
    pub shift: u64,
    pub max_delta: u64,
}

/// A clock the time page serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Realtime,
    Monotonic,
    Boottime,
}

impl TimePage {
    /// Nanoseconds on `clock` at TSC value `tsc`, as the vDSO computes
    /// them; None where the vDSO would ask the sentry.
    pub fn ns_at(&self, clock: Clock, tsc: u64) -> Option<u64> {
        let delta = tsc.wrapping_sub(self.base_tsc);
        if self.mult == 0 || (delta as i64) < 0 || delta > self.max_delta {
            return None;
        }
        let base = match clock {
            Clock::Realtime => self.real_base_ns,
            Clock::Monotonic => self.mono_base_ns,
            Clock::Boottime => self.mono_base_ns.wrapping_add(self.boot_offset_ns),
        };
        let scaled = (u128::from(delta) * u128::from(self.mult)) >> self.shift;
        Some(base.wrapping_add(scaled as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_a_one_page_shared_object() {
        assert_eq!(&IMAGE[..4], b"\x7fELF");
        // ET_DYN.
        assert_eq!(u16::from_le_bytes([IMAGE[16], IMAGE[17]]), 3);
        assert!(
            IMAGE.len() as u64 <= TIME_PAGE_SIZE,
            "{} bytes",
            IMAGE.len()
        );
        let has = |s: &[u8]| IMAGE.windows(s.len()).any(|w| w == s);
        for name in [
            &b"__vdso_clock_gettime\0"[..],
            b"__vdso_gettimeofday\0",
            b"__vdso_time\0",
            b"__vdso_getcpu\0",
            b"LINUX_2.6\0",
            b"linux-vdso.so.1\0",
        ] {
            assert!(has(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn time_scales_from_the_base_and_stops_past_the_window() {
        let page = TimePage {
            seq: 2,
            base_tsc: 1_000,
            mono_base_ns: 5_000,
            real_base_ns: 1_700_000_000_000_000_000,
            boot_offset_ns: 7,
            // 0.5 ns per cycle.
            mult: 1 << 31,
            shift: 32,
            max_delta: 1_000_000,
        };
        assert_eq!(page.ns_at(Clock::Monotonic, 1_000), Some(5_000));
        assert_eq!(page.ns_at(Clock::Monotonic, 3_000), Some(6_000));
        assert_eq!(page.ns_at(Clock::Boottime, 3_000), Some(6_007));
        assert_eq!(
            page.ns_at(Clock::Realtime, 3_000),
            Some(1_700_000_000_000_001_000)
        );
        assert_eq!(page.ns_at(Clock::Monotonic, 999), None);
        assert_eq!(page.ns_at(Clock::Monotonic, 1_001_001), None);
        let unset = TimePage::default();
        assert_eq!(unset.ns_at(Clock::Monotonic, 5), None);
    }
}
