//! The vDSO every process gets, and the time page behind it.
//!
//! The image (veil_vdso::IMAGE) and the time page live in the memory file,
//! one copy for the whole sandbox, mapped into each process at exec: the
//! page read-only, the image read and execute. A thread of the sentry keeps
//! the page's TSC scaling in step with the host's CLOCK_MONOTONIC, and the
//! sentry's own clock_gettime reads the same parameters, so that a process
//! mixing the vDSO and system calls never sees time go backwards.
//!
//! Each update keeps time continuous: the new line starts where the old
//! one is at the moment of the update, and its slope differs from the
//! measured TSC rate just enough (at most 1000 ppm) to close any gap to
//! the host's clock over the next second. Only a page the vDSO no longer
//! trusts (the sentry was too late, or the TSC went backwards) is started
//! afresh, from the host's clock or the furthest the old line could have
//! reached, whichever is later.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use veil_abi::Errno;
use veil_memory::{FileData, MemoryFile};
use veil_vdso::{Clock, TimePage, IMAGE, TIME_PAGE_SIZE};
use zerocopy::IntoBytes;

use veil_platform::Prot;

use crate::mm::{Backing, MapName, MemoryManager, MmapRequest, Placement};

/// How often the page is brought in line with the host's clock.
const PERIOD: Duration = Duration::from_secs(1);
/// How long the first measurement of the TSC's rate takes.
const CALIBRATION: Duration = Duration::from_millis(20);
/// The most the slope may differ from the measured rate, in parts per
/// million.
const MAX_SLEW_PPM: i128 = 100;
/// How much longer than asked the sentry waits on the host's clock, in
/// parts per million: the slew, and room for the error of the measured
/// rate, so that a wait measured on the vDSO's clock is never short.
const WAIT_MARGIN_PPM: u32 = 250;
/// How many tries a sample gets to bracket the host's clock tightly.
const SAMPLE_TRIES: usize = 5;
/// How far past its base the vDSO extrapolates, in periods.
const WINDOW_PERIODS: u64 = 4;
const SHIFT: u32 = 32;
const NS_PER_SEC: u64 = 1_000_000_000;

pub struct Vdso {
    image: Arc<FileData>,
    page: Arc<FileData>,
    /// Where the time page's one page is in the memory file.
    page_off: u64,
    memfile: Arc<MemoryFile>,
    /// The page as last published.
    published: RwLock<TimePage>,
    /// The first (TSC, CLOCK_MONOTONIC) sample: the long baseline that
    /// measures the TSC's rate.
    origin: Mutex<Option<(u64, u64)>>,
}

/// A TSC reading, ordered after earlier loads.
fn rdtsc() -> u64 {
    // SAFETY: lfence only orders loads; every x86-64 CPU has it.
    unsafe { std::arch::x86_64::_mm_lfence() };
    // SAFETY: rdtsc only reads the time-stamp counter, which every x86-64
    // CPU has; it touches no memory.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// When a wait of `d` from now ends, on the host's clock: a little later
/// than `d` (see [`WAIT_MARGIN_PPM`]), as Linux's timer slack also makes
/// waits a little longer.
pub fn host_deadline(d: Duration) -> Instant {
    Instant::now() + d + wait_margin(d)
}

/// How much longer than `d` a wait on the host's clock lasts.
pub fn wait_margin(d: Duration) -> Duration {
    d / 1_000_000 * WAIT_MARGIN_PPM
}

/// The host's clocks at one TSC value: (tsc, monotonic, realtime,
/// boottime). The TSC is read on both sides of CLOCK_MONOTONIC, the
/// tightest bracket of a few tries kept, so that preemption between the
/// two reads does not skew the pair.
fn sample() -> (u64, u64, u64, u64) {
    // (width of the bracket, TSC at its middle, CLOCK_MONOTONIC)
    let bracket = || {
        let before = rdtsc();
        let mono = host_ns(rustix::time::ClockId::Monotonic);
        let width = rdtsc().wrapping_sub(before);
        (width, before.wrapping_add(width / 2), mono)
    };
    let first = bracket();
    let (_, tsc, mono) =
        (1..SAMPLE_TRIES)
            .map(|_| bracket())
            .fold(first, |best, b| if b.0 < best.0 { b } else { best });
    let real = host_ns(rustix::time::ClockId::Realtime);
    let boot = host_ns(rustix::time::ClockId::Boottime);
    let mono_again = host_ns(rustix::time::ClockId::Monotonic);
    // Realtime and boottime as offsets from monotonic, read between its
    // two reads.
    let mid = mono_again.saturating_sub(mono) / 2;
    (
        tsc,
        mono,
        real.saturating_sub(mid),
        boot.saturating_sub(mid),
    )
}

fn host_ns(clock: rustix::time::ClockId) -> u64 {
    let ts = rustix::time::clock_gettime(clock);
    (ts.tv_sec as u64)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(ts.tv_nsec as u64)
}

impl Vdso {
    /// The image and an empty time page (which sends every vDSO call to
    /// the sentry until [`Vdso::start`] has measured the TSC).
    pub fn new(memfile: Arc<MemoryFile>) -> Result<Vdso, Errno> {
        let image = FileData::new(memfile.clone());
        image.write_at(IMAGE, 0, |_, _| Ok(()))?;
        let page = FileData::new(memfile.clone());
        page.write_at(&[0u8; TIME_PAGE_SIZE as usize], 0, |_, _| Ok(()))?;
        let page_off = page
            .translate(0, TIME_PAGE_SIZE)?
            .first()
            .map(|p| p.off)
            .ok_or(Errno::EFAULT)?;
        Ok(Vdso {
            image: Arc::new(image),
            page: Arc::new(page),
            page_off,
            memfile,
            published: RwLock::new(TimePage::default()),
            origin: Mutex::new(None),
        })
    }

    /// Measures the TSC and keeps the page current, on a thread of its own.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let vdso = self.clone();
        std::thread::Builder::new()
            .name("vdso-clock".into())
            .spawn(move || {
                let (tsc, mono, _, _) = sample();
                *lock(&vdso.origin) = Some((tsc, mono));
                std::thread::sleep(CALIBRATION);
                loop {
                    if let Err(e) = vdso.update() {
                        tracing::warn!("the vDSO's time page: {e}");
                    }
                    std::thread::sleep(PERIOD);
                }
            })
            .map(drop)
    }

    /// Maps the time page and the image into `mm`, anywhere; returns the
    /// image's address (AT_SYSINFO_EHDR).
    pub fn map(&self, mm: &MemoryManager) -> Result<u64, Errno> {
        let image_len = (IMAGE.len() as u64).next_multiple_of(TIME_PAGE_SIZE);
        let total = TIME_PAGE_SIZE + image_len;
        let name = |label: &str| Some(Arc::new(MapName::special(label)));
        // Placed as one range, so that the image follows its page.
        let base = mm.reserve(0, total)?;
        let shared = |data: &Arc<FileData>| Backing::Shared {
            data: data.clone(),
            offset: 0,
            may_write: false,
        };
        mm.mmap(MmapRequest {
            addr: base,
            len: TIME_PAGE_SIZE,
            prot: Prot::READ,
            placement: Placement::Fixed,
            growsdown: false,
            backing: shared(&self.page),
            name: name("[vvar]"),
        })?;
        mm.mmap(MmapRequest {
            addr: base + TIME_PAGE_SIZE,
            len: image_len,
            prot: Prot::READ | Prot::EXEC,
            placement: Placement::Fixed,
            growsdown: false,
            backing: shared(&self.image),
            name: name("[vdso]"),
        })?;
        Ok(base + TIME_PAGE_SIZE)
    }

    /// Nanoseconds on `clock` as the vDSO reads it; None until the TSC has
    /// been measured (the host's clock is then the answer).
    pub fn now_ns(&self, clock: Clock) -> Option<u64> {
        let read = || {
            let page = *self
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            (page.mult != 0).then(|| page.ns_at(clock, rdtsc()))
        };
        match read()? {
            Some(ns) => Some(ns),
            // Too long since the last update: bring the page up to date.
            None => {
                if let Err(e) = self.update() {
                    tracing::warn!("the vDSO's time page: {e}");
                }
                read().flatten()
            }
        }
    }

    /// Publishes new parameters: continuous with the old line, slewed
    /// towards the host's clock.
    fn update(&self) -> Result<(), Errno> {
        let Some((tsc0, mono0)) = *lock(&self.origin) else {
            return Ok(());
        };
        let mut published = self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let old = *published;
        let mut page = TimePage {
            seq: old.seq | 1,
            ..old
        };
        // Odd before the TSC is read: a reader that saw the old page read
        // the TSC before this update's base.
        self.memfile.store_u64(self.page_off, page.seq)?;
        let (tsc, mono, real, boot) = sample();
        let cycles = tsc.saturating_sub(tsc0).max(1);
        let rate = ((u128::from(mono.saturating_sub(mono0)) << SHIFT) / u128::from(cycles)).max(1);
        let base = match old.ns_at(Clock::Monotonic, tsc) {
            Some(on_line) => on_line,
            None if old.mult == 0 => mono,
            // The furthest the vDSO could have gone on the old line.
            None => mono.max(
                old.ns_at(Clock::Monotonic, old.base_tsc + old.max_delta)
                    .unwrap_or(0),
            ),
        };
        let period = PERIOD.as_nanos() as i128;
        let limit = period * MAX_SLEW_PPM / 1_000_000;
        let gap = (i128::from(mono) - i128::from(base)).clamp(-limit, limit);
        let mult = (rate as i128 * (period + gap) / period).max(1) as u128;
        let window = u128::from(WINDOW_PERIODS) * PERIOD.as_nanos();
        page.base_tsc = tsc;
        page.mono_base_ns = base;
        page.real_base_ns = base.wrapping_add(real.wrapping_sub(mono));
        page.boot_offset_ns = boot.saturating_sub(mono);
        page.mult = mult.min(u128::from(u64::MAX)) as u64;
        page.shift = u64::from(SHIFT);
        page.max_delta = ((window << SHIFT) / mult).min(u128::from(u64::MAX >> 1)) as u64;
        page.seq = page.seq.wrapping_add(1);
        // The fields, then the even sequence number that validates them.
        let words = page.as_bytes().chunks_exact(8).enumerate().skip(1);
        for (i, word) in words {
            let v = u64::from_le_bytes(word.try_into().map_err(|_| Errno::EINVAL)?);
            self.memfile.store_u64(self.page_off + 8 * i as u64, v)?;
        }
        self.memfile.store_u64(self.page_off, page.seq)?;
        *published = page;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
