//! futex(2): wait queues keyed by address. A private futex, or one in
//! private memory, is keyed by its address space and address; one in a
//! shared mapping (without FUTEX_PRIVATE_FLAG) by its memory-file offset,
//! which every process mapping the page agrees on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use veil_abi::{Errno, SysResult, Sysno, Timespec};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::signal::TaskShared;
use crate::task::Task;

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;
const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::futex,
        futex,
        &[Hex, Int, Int, Hex, Hex, Int],
        "WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP and the BITSET forms, private and shared; robust lists; PI futexes ENOSYS",
    );
}

/// A futex's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Key {
    /// The address space it lives in and its address.
    Private(usize, u64),
    /// Its offset in the memory file.
    Shared(u64),
}

struct Waiter {
    task: Arc<TaskShared>,
    bitset: u32,
    woken: AtomicBool,
}

/// The kernel's futex wait queues.
#[derive(Default)]
pub struct Futexes {
    queues: Mutex<HashMap<Key, Vec<Arc<Waiter>>>>,
}

/// The key of the futex at `addr`; `private`: FUTEX_PRIVATE_FLAG was given.
fn key(t: &Task, addr: u64, private: bool) -> Result<Key, Errno> {
    let mm = Arc::as_ptr(&t.mm) as usize;
    if private {
        return Ok(Key::Private(mm, addr));
    }
    Ok(match t.mm.shared_offset(addr)? {
        Some(off) => Key::Shared(off),
        None => Key::Private(mm, addr),
    })
}

impl Futexes {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Vec<Arc<Waiter>>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, key: Key, n: usize, bitset: u32) -> usize {
        let mut queues = self.lock();
        let Some(q) = queues.get_mut(&key) else {
            return 0;
        };
        let mut woken = 0;
        q.retain(|w| {
            if woken < n && w.bitset & bitset != 0 {
                w.woken.store(true, Ordering::Release);
                w.task.waiter.wake();
                woken += 1;
                false
            } else {
                true
            }
        });
        if q.is_empty() {
            queues.remove(&key);
        }
        woken
    }

    /// Wakes up to `n` waiters of `from` and moves up to `m` more to `to`.
    fn requeue(&self, from: Key, to: Key, n: usize, m: usize) -> usize {
        let mut queues = self.lock();
        let Some(mut q) = queues.remove(&from) else {
            return 0;
        };
        let mut done = 0;
        let mut moved = Vec::new();
        q.retain(|w| {
            if done < n {
                w.woken.store(true, Ordering::Release);
                w.task.waiter.wake();
                done += 1;
                false
            } else if moved.len() < m {
                moved.push(w.clone());
                false
            } else {
                true
            }
        });
        let requeued = moved.len();
        if !q.is_empty() {
            queues.insert(from, q);
        }
        if !moved.is_empty() {
            queues.entry(to).or_default().extend(moved);
        }
        done + requeued
    }
}

/// Wakes `n` waiters on the futex at `addr` (CLONE_CHILD_CLEARTID on thread
/// exit, which Linux treats as a shared futex).
pub fn futex_wake(t: &Task, addr: u64, n: usize) -> usize {
    wake(t, addr, false, n)
}

/// Futex word bits of robust (and PI) mutexes.
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Most robust-list entries Linux walks, against cyclic lists.
const ROBUST_LIST_LIMIT: usize = 2048;

/// What a dying (or exec'ing) thread does with its robust list: every
/// futex it still holds gets FUTEX_OWNER_DIED, and one waiter is woken to
/// recover it. A corrupt list ends the walk quietly, as on Linux.
pub fn exit_robust_list(t: &Task) {
    let (head, len) = t.robust_list;
    if head == 0 || len != 24 {
        return;
    }
    let read = |addr: u64| t.mm.read_obj::<u64>(addr).ok();
    let (Some(mut entry), Some(offset), Some(pending)) =
        (read(head), read(head + 8), read(head + 16))
    else {
        return;
    };
    let futex_of = |entry: u64| (entry & !1).wrapping_add(offset);
    for _ in 0..ROBUST_LIST_LIMIT {
        if entry == head {
            break;
        }
        let Some(next) = read(entry & !1) else { break };
        if entry != pending {
            futex_death(t, futex_of(entry));
        }
        entry = next;
    }
    if pending != 0 {
        futex_death(t, futex_of(pending));
    }
}

/// Marks a robust futex the dying thread owns as owner-died and wakes a
/// waiter. Atomic with respect to other futex calls.
fn futex_death(t: &Task, addr: u64) {
    if !addr.is_multiple_of(4) {
        return;
    }
    let wake = {
        let _queues = t.kernel.futexes.lock();
        let Ok(word) = t.mm.read_obj::<u32>(addr) else {
            return;
        };
        if word & FUTEX_TID_MASK != t.tid as u32 {
            return;
        }
        let new = (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        if t.mm.write_obj(addr, &new).is_err() {
            return;
        }
        word & FUTEX_WAITERS != 0
    };
    if wake {
        futex_wake(t, addr, 1);
    }
}

fn wake(t: &Task, addr: u64, private: bool, n: usize) -> usize {
    match key(t, addr, private) {
        Ok(k) => t.kernel.futexes.wake(k, n, FUTEX_BITSET_MATCH_ANY),
        Err(_) => 0,
    }
}

fn wait(
    t: &Task,
    k: Key,
    addr: u64,
    val: u32,
    deadline: Option<Instant>,
    bitset: u32,
) -> SysResult {
    let me = Arc::new(Waiter {
        task: t.shared.clone(),
        bitset,
        woken: AtomicBool::new(false),
    });
    {
        // The value check and the enqueue are atomic with respect to wakers.
        let mut queues = t.kernel.futexes.lock();
        let cur: u32 = t.mm.read_obj(addr)?;
        if cur != val {
            return Err(Errno::EAGAIN);
        }
        queues.entry(k).or_default().push(me.clone());
    }
    let result = loop {
        if me.woken.load(Ordering::Acquire) {
            break Ok(0);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            break Err(Errno::ETIMEDOUT);
        }
        if t.signal_pending() {
            break Err(Errno::ERESTARTSYS);
        }
        t.block(left);
    };
    if result.is_err() {
        // Leave the queue unless a waker took us out meanwhile.
        let mut queues = t.kernel.futexes.lock();
        if me.woken.load(Ordering::Acquire) {
            return Ok(0);
        }
        for q in queues.values_mut() {
            q.retain(|w| !Arc::ptr_eq(w, &me));
        }
        queues.retain(|_, q| !q.is_empty());
    }
    result
}

/// The absolute deadline of a futex wait: FUTEX_WAIT takes a relative
/// timeout, FUTEX_WAIT_BITSET an absolute one on the chosen clock.
fn deadline(t: &Task, addr: u64, absolute: bool, realtime: bool) -> Result<Option<Instant>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    let d = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    if !absolute {
        return Ok(Some(crate::vdso::host_deadline(d)));
    }
    let clock = if realtime {
        rustix::time::ClockId::Realtime
    } else {
        rustix::time::ClockId::Monotonic
    };
    let now = super::time::clock_now(t, clock as i32)?;
    Ok(Some(crate::vdso::host_deadline(d.saturating_sub(now))))
}

/// FUTEX_WAKE_OP: an atomic operation on a second futex word, then wakes.
fn wake_op(t: &Task, a: &Args, private: bool) -> SysResult {
    let (uaddr, n, n2, uaddr2, encoded) = (
        a.u64(0),
        a.u32(2) as usize,
        a.u64(3) as usize,
        a.u64(4),
        a.u32(5),
    );
    let op = (encoded >> 28) & 0xf;
    let cmp = (encoded >> 24) & 0xf;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    if op & 8 != 0 {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let old: u32 = {
        let _queues = t.kernel.futexes.lock();
        let old: u32 = t.mm.read_obj(uaddr2)?;
        let new = match op & 7 {
            0 => oparg,
            1 => old.wrapping_add(oparg),
            2 => old | oparg,
            3 => old & !oparg,
            4 => old ^ oparg,
            _ => return Err(Errno::ENOSYS),
        };
        t.mm.write_obj(uaddr2, &new)?;
        old
    };
    let hit = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => old < cmparg,
        3 => old <= cmparg,
        4 => old > cmparg,
        5 => old >= cmparg,
        _ => return Err(Errno::ENOSYS),
    };
    let mut woken = wake(t, uaddr, private, n);
    if hit {
        woken += wake(t, uaddr2, private, n2);
    }
    Ok(woken as u64)
}

fn futex(t: &mut Task, a: &Args) -> SysResult {
    let addr = a.u64(0);
    let cmd = a.i32(1) & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let realtime = a.i32(1) & FUTEX_CLOCK_REALTIME != 0;
    let private = a.i32(1) & FUTEX_PRIVATE_FLAG != 0;
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    match cmd {
        FUTEX_WAIT => {
            let d = deadline(t, a.u64(3), false, realtime)?;
            let k = key(t, addr, private)?;
            wait(t, k, addr, a.u32(2), d, FUTEX_BITSET_MATCH_ANY)
        }
        FUTEX_WAIT_BITSET => {
            if a.u32(5) == 0 {
                return Err(Errno::EINVAL);
            }
            let d = deadline(t, a.u64(3), true, realtime)?;
            let k = key(t, addr, private)?;
            wait(t, k, addr, a.u32(2), d, a.u32(5))
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE {
                FUTEX_BITSET_MATCH_ANY
            } else {
                a.u32(5)
            };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            t.mm.read_obj::<u32>(addr)?;
            let k = key(t, addr, private)?;
            Ok(t.kernel.futexes.wake(k, a.u32(2) as usize, bitset) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if cmd == FUTEX_CMP_REQUEUE && t.mm.read_obj::<u32>(addr)? != a.u32(5) {
                return Err(Errno::EAGAIN);
            }
            let (n, m) = (a.u32(2) as usize, a.u64(3) as usize);
            let (from, to) = (key(t, addr, private)?, key(t, a.u64(4), private)?);
            Ok(t.kernel.futexes.requeue(from, to, n, m) as u64)
        }
        FUTEX_WAKE_OP => wake_op(t, a, private),
        _ => {
            t.kernel.log_once(&format!("futex command {cmd}"));
            Err(Errno::ENOSYS)
        }
    }
}
