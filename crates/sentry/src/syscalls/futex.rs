//! futex(2) for single-threaded processes; waiting on other tasks arrives
//! with threads.

use std::time::Duration;

use veil_abi::{Errno, SysResult, Sysno, Timespec};

use super::strace::Arg::*;
use super::{Args, Table};
use crate::task::Task;

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

pub(super) fn register(t: &mut Table) {
    t.partial(
        Sysno::futex,
        futex,
        &[Hex, Int, Int, Hex, Hex, Int],
        "WAIT, WAIT_BITSET, WAKE and WAKE_BITSET for a single thread; other operations ENOSYS",
    );
}

fn futex(t: &mut Task, a: &Args) -> SysResult {
    let addr = a.u64(0);
    let op = a.i32(1) & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    match op {
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            // Validate the address like Linux; there is nobody to wake.
            t.mm.read_obj::<u32>(addr)?;
            Ok(0)
        }
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let val: u32 = t.mm.read_obj(addr)?;
            if val != a.u32(2) {
                return Err(Errno::EAGAIN);
            }
            // No other task can wake us: sleep out the timeout, as Linux would.
            match a.u64(3) {
                0 => {
                    t.kernel
                        .log_once("futex wait with no other thread and no timeout");
                    Err(Errno::EDEADLK)
                }
                ts_addr => {
                    let ts: Timespec = t.mm.read_obj(ts_addr)?;
                    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
                        return Err(Errno::EINVAL);
                    }
                    if op == FUTEX_WAIT {
                        std::thread::sleep(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                    }
                    Err(Errno::ETIMEDOUT)
                }
            }
        }
        _ => {
            t.kernel.log_once(&format!("futex op {op}"));
            Err(Errno::ENOSYS)
        }
    }
}
