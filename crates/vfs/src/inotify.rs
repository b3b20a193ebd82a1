//! inotify: watches on dentries and the event queues of inotify instances,
//! fed by the VFS operations done inside the sandbox (changes the host
//! makes to the gofer's files are not seen).
//!
//! A watch lives on the dentry it was added to (the dentry cache keeps a
//! watched name cached) and names its instance weakly; an instance names
//! its watches' dentries weakly. Events on a file go to its own watches and,
//! with its name, to its directory's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use linux_raw_sys::general as g;
use veil_abi::Errno;
use zerocopy::IntoBytes;

use crate::file::{FileOps, UserMem};
use crate::vfs::Dentry;
use crate::wait::events::{POLLIN, POLLRDNORM};
use crate::wait::{WaitQueue, Waiter};

pub const IN_ACCESS: u32 = g::IN_ACCESS;
pub const IN_MODIFY: u32 = g::IN_MODIFY;
pub const IN_ATTRIB: u32 = g::IN_ATTRIB;
pub const IN_CLOSE_WRITE: u32 = g::IN_CLOSE_WRITE;
pub const IN_CLOSE_NOWRITE: u32 = g::IN_CLOSE_NOWRITE;
pub const IN_OPEN: u32 = g::IN_OPEN;
pub const IN_MOVED_FROM: u32 = g::IN_MOVED_FROM;
pub const IN_MOVED_TO: u32 = g::IN_MOVED_TO;
pub const IN_CREATE: u32 = g::IN_CREATE;
pub const IN_DELETE: u32 = g::IN_DELETE;
pub const IN_DELETE_SELF: u32 = g::IN_DELETE_SELF;
pub const IN_MOVE_SELF: u32 = g::IN_MOVE_SELF;
pub const IN_ALL_EVENTS: u32 = g::IN_ALL_EVENTS;
pub const IN_ONLYDIR: u32 = g::IN_ONLYDIR;
pub const IN_DONT_FOLLOW: u32 = g::IN_DONT_FOLLOW;
pub const IN_EXCL_UNLINK: u32 = g::IN_EXCL_UNLINK;
pub const IN_MASK_CREATE: u32 = g::IN_MASK_CREATE;
pub const IN_MASK_ADD: u32 = g::IN_MASK_ADD;
pub const IN_ISDIR: u32 = g::IN_ISDIR;
pub const IN_ONESHOT: u32 = g::IN_ONESHOT;
const IN_IGNORED: u32 = g::IN_IGNORED;
const IN_Q_OVERFLOW: u32 = g::IN_Q_OVERFLOW;
/// Events only a directory's watch sees, about its entries.
const DIR_ONLY: u32 = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
/// Events only the file's own watch sees.
const SELF_ONLY: u32 = IN_DELETE_SELF | IN_MOVE_SELF;
/// /proc/sys/fs/inotify/max_queued_events.
const MAX_QUEUED: usize = 16384;
/// sizeof(struct inotify_event).
const HEAD: usize = 16;

/// Live watches in the sandbox: events cost nothing while there are none.
static WATCHES: AtomicUsize = AtomicUsize::new(0);
static NEXT_COOKIE: AtomicU32 = AtomicU32::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The watches on one dentry.
#[derive(Default)]
pub(crate) struct Watches(Mutex<Vec<Watch>>);

impl Watches {
    /// Whether some live instance watches the dentry: it must stay cached
    /// (as Linux pins a watched inode).
    pub(crate) fn watched(&self) -> bool {
        lock(&self.0).iter().any(|w| w.inst.strong_count() > 0)
    }
}

struct Watch {
    inst: Weak<Instance>,
    wd: i32,
    mask: u32,
}

#[derive(Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// The name field's length: NUL-terminated, padded to the header size.
    fn name_len(&self) -> usize {
        match self.name.len() {
            0 => 0,
            n => (n + 1).next_multiple_of(HEAD),
        }
    }

    fn size(&self) -> usize {
        HEAD + self.name_len()
    }
}

/// An inotify instance: its queue and its watches.
pub struct Instance {
    state: Mutex<State>,
    pollers: WaitQueue,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    bytes: usize,
    next_wd: i32,
    watches: HashMap<i32, Weak<Dentry>>,
}

impl Instance {
    fn push(&self, ev: Event) {
        let mut st = lock(&self.state);
        // An event like the last one still unread adds nothing.
        if st.queue.back() == Some(&ev) {
            return;
        }
        if st.queue.back().is_some_and(|e| e.mask == IN_Q_OVERFLOW) {
            return;
        }
        let ev = if st.queue.len() >= MAX_QUEUED {
            Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: Vec::new(),
            }
        } else {
            ev
        };
        st.bytes += ev.size();
        st.queue.push_back(ev);
        drop(st);
        self.pollers.notify_events(POLLIN | POLLRDNORM);
    }

    /// Forgets watch `wd`, queueing IN_IGNORED.
    fn drop_watch(&self, wd: i32) {
        let dentry = lock(&self.state).watches.remove(&wd);
        if let Some(d) = dentry.and_then(|d| d.upgrade()) {
            let mut watches = lock(&d.watches.0);
            let before = watches.len();
            watches.retain(|w| !(w.wd == wd && std::ptr::eq(w.inst.as_ptr(), self)));
            WATCHES.fetch_sub(before - watches.len(), Ordering::Relaxed);
        }
        self.push(Event {
            wd,
            mask: IN_IGNORED,
            cookie: 0,
            name: Vec::new(),
        });
    }

    /// inotify_add_watch(2) on `dentry`: the watch descriptor.
    pub fn add_watch(self: &Arc<Self>, dentry: &Arc<Dentry>, mask: u32) -> Result<i32, Errno> {
        let events = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK);
        let mut watches = lock(&dentry.watches.0);
        let mine = watches
            .iter_mut()
            .find(|w| std::ptr::eq(w.inst.as_ptr(), Arc::as_ptr(self)));
        if let Some(w) = mine {
            if mask & IN_MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            w.mask = if mask & IN_MASK_ADD != 0 {
                w.mask | events
            } else {
                events
            };
            return Ok(w.wd);
        }
        let mut st = lock(&self.state);
        st.next_wd += 1;
        let wd = st.next_wd;
        st.watches.insert(wd, Arc::downgrade(dentry));
        watches.push(Watch {
            inst: Arc::downgrade(self),
            wd,
            mask: events,
        });
        WATCHES.fetch_add(1, Ordering::Relaxed);
        Ok(wd)
    }

    /// inotify_rm_watch(2).
    pub fn rm_watch(&self, wd: i32) -> Result<(), Errno> {
        if !lock(&self.state).watches.contains_key(&wd) {
            return Err(Errno::EINVAL);
        }
        self.drop_watch(wd);
        Ok(())
    }
}

/// The file of an inotify instance.
pub struct InotifyFile(pub Arc<Instance>);

/// A new inotify instance.
pub fn new_instance() -> InotifyFile {
    InotifyFile(Arc::new(Instance {
        state: Mutex::new(State::default()),
        pollers: WaitQueue::default(),
    }))
}

impl Drop for InotifyFile {
    fn drop(&mut self) {
        let wds: Vec<i32> = lock(&self.0.state).watches.keys().copied().collect();
        for wd in wds {
            self.0.drop_watch(wd);
        }
    }
}

impl FileOps for InotifyFile {
    fn is_stream(&self) -> bool {
        true
    }

    fn pollable(&self) -> bool {
        true
    }

    fn read(&self, buf: &mut [u8], _flags: i32) -> Result<usize, Errno> {
        let mut st = lock(&self.0.state);
        let Some(first) = st.queue.front() else {
            return Err(Errno::EAGAIN);
        };
        if first.size() > buf.len() {
            return Err(Errno::EINVAL);
        }
        let mut done = 0;
        while let Some(ev) = st.queue.front() {
            let size = ev.size();
            if done + size > buf.len() {
                break;
            }
            let head = [ev.wd as u32, ev.mask, ev.cookie, ev.name_len() as u32];
            buf[done..done + HEAD].copy_from_slice(head.as_bytes());
            let name = &mut buf[done + HEAD..done + size];
            name.fill(0);
            name[..ev.name.len()].copy_from_slice(&ev.name);
            done += size;
            st.bytes -= size;
            st.queue.pop_front();
        }
        Ok(done)
    }

    fn poll(&self, waiter: Option<&Arc<Waiter>>) -> u32 {
        if let Some(w) = waiter {
            self.0.pollers.register(w);
        }
        match lock(&self.0.state).queue.is_empty() {
            true => 0,
            false => POLLIN | POLLRDNORM,
        }
    }

    fn ioctl(&self, cmd: u32, arg: u64, mem: &dyn UserMem) -> Result<u64, Errno> {
        if cmd != linux_raw_sys::ioctl::FIONREAD {
            return Err(Errno::ENOTTY);
        }
        let n = lock(&self.0.state).bytes as i32;
        mem.copy_out(arg, n.as_bytes())?;
        Ok(0)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Queues `mask` for the watches of `dentry` that want it, naming the
/// file `name` (empty for the watched file itself).
fn deliver(dentry: &Dentry, mask: u32, cookie: u32, name: &[u8]) {
    let mut oneshots = Vec::new();
    for w in lock(&dentry.watches.0).iter() {
        if w.mask & mask & IN_ALL_EVENTS == 0 {
            continue;
        }
        let Some(inst) = w.inst.upgrade() else {
            continue;
        };
        inst.push(Event {
            wd: w.wd,
            mask: mask & (w.mask | IN_ISDIR),
            cookie,
            name: name.to_vec(),
        });
        if w.mask & IN_ONESHOT != 0 {
            oneshots.push((inst, w.wd));
        }
    }
    for (inst, wd) in oneshots {
        inst.drop_watch(wd);
    }
}

/// An event on the file at `dentry`: to its own watches and its
/// directory's.
pub(crate) fn notify(dentry: &Dentry, mask: u32) {
    if WATCHES.load(Ordering::Relaxed) == 0 {
        return;
    }
    let dir = dentry.inode().stat().is_ok_and(|st| st.is_dir());
    let mask = if dir { mask | IN_ISDIR } else { mask };
    // The directory hears first, as on Linux.
    if mask & SELF_ONLY == 0 {
        if let Some(parent) = dentry.parent() {
            deliver(&parent, mask, 0, &dentry.name());
        }
    }
    if mask & DIR_ONLY == 0 {
        deliver(dentry, mask, 0, b"");
    }
}

/// An event only the file's own watches see (a link count change).
pub(crate) fn notify_self(dentry: &Dentry, mask: u32) {
    if WATCHES.load(Ordering::Relaxed) == 0 {
        return;
    }
    deliver(dentry, mask, 0, b"");
}

/// An event about the entry `name` of directory `dir`.
pub(crate) fn notify_entry(dir: &Dentry, mask: u32, name: &[u8], cookie: u32) {
    if WATCHES.load(Ordering::Relaxed) == 0 {
        return;
    }
    deliver(dir, mask, cookie, name);
}

/// The file at `dentry` is gone: its watches see IN_DELETE_SELF and end.
pub(crate) fn notify_gone(dentry: &Dentry) {
    if WATCHES.load(Ordering::Relaxed) == 0 {
        return;
    }
    deliver(dentry, IN_DELETE_SELF, 0, b"");
    let watches: Vec<(Arc<Instance>, i32)> = lock(&dentry.watches.0)
        .iter()
        .filter_map(|w| Some((w.inst.upgrade()?, w.wd)))
        .collect();
    for (inst, wd) in watches {
        inst.drop_watch(wd);
    }
}

/// A cookie tying a rename's IN_MOVED_FROM to its IN_MOVED_TO.
pub(crate) fn cookie() -> u32 {
    NEXT_COOKIE.fetch_add(1, Ordering::Relaxed)
}
