//! /sys: the few files programs read to size themselves (CPU topology,
//! NUMA nodes) and the container's own cgroup, read-only, describing the
//! sandbox.

use std::any::Any;
use std::sync::{Arc, Weak};

use veil_abi::mode::{dtype, S_IFDIR, S_IFREG};
use veil_abi::{Errno, Stat};
use veil_vfs::{DirEntry, FileOps, Inode};

use crate::kernel::Kernel;
use crate::procfs::{cpu_list, memory};

/// sysfs's device number on a typical Linux host.
const DEV: u64 = 0x15;

enum Content {
    Dir,
    Text(String),
    Gen(fn(&Kernel) -> String),
}

/// The whole tree: paths below /sys, parents before children.
struct Tree {
    kernel: Weak<Kernel>,
    nodes: Vec<(String, Content)>,
}

/// The /sys root for `kernel`.
pub fn root(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
    let cpus = cpu_list(kernel);
    let mut nodes: Vec<(String, Content)> = Vec::new();
    let mut dir = |p: &str| nodes.push((p.to_string(), Content::Dir));
    for d in [
        "",
        "devices",
        "devices/system",
        "devices/system/cpu",
        "devices/system/node",
        "devices/system/node/node0",
        "fs",
        "fs/cgroup",
        "kernel",
        "kernel/mm",
        "kernel/mm/transparent_hugepage",
        "class",
        "bus",
    ] {
        dir(d);
    }
    for f in ["online", "possible", "present"] {
        nodes.push((
            format!("devices/system/cpu/{f}"),
            Content::Text(cpus.clone()),
        ));
    }
    for cpu in crate::procfs::cpu_ids(kernel) {
        nodes.push((format!("devices/system/cpu/cpu{cpu}"), Content::Dir));
        nodes.push((
            format!("devices/system/cpu/cpu{cpu}/online"),
            Content::Text("1\n".into()),
        ));
    }
    for (p, c) in [
        ("devices/system/node/online", Content::Text("0\n".into())),
        ("devices/system/node/possible", Content::Text("0\n".into())),
        ("devices/system/node/has_cpu", Content::Text("0\n".into())),
        (
            "devices/system/node/has_memory",
            Content::Text("0\n".into()),
        ),
        ("devices/system/node/node0/cpulist", Content::Text(cpus)),
        ("devices/system/node/node0/cpumap", Content::Gen(cpu_map)),
        (
            "devices/system/node/node0/meminfo",
            Content::Gen(node_meminfo),
        ),
        (
            "fs/cgroup/cgroup.controllers",
            Content::Text("cpu memory pids\n".into()),
        ),
        (
            "fs/cgroup/cgroup.subtree_control",
            Content::Text(String::new()),
        ),
        ("fs/cgroup/cgroup.type", Content::Text("domain\n".into())),
        ("fs/cgroup/cgroup.procs", Content::Gen(cgroup_procs)),
        ("fs/cgroup/cpu.max", Content::Text("max 100000\n".into())),
        ("fs/cgroup/cpu.weight", Content::Text("100\n".into())),
        ("fs/cgroup/memory.max", Content::Gen(memory_max)),
        ("fs/cgroup/memory.high", Content::Text("max\n".into())),
        ("fs/cgroup/memory.current", Content::Gen(memory_current)),
        ("fs/cgroup/memory.swap.max", Content::Text("0\n".into())),
        ("fs/cgroup/pids.max", Content::Text("max\n".into())),
        ("fs/cgroup/pids.current", Content::Gen(pids_current)),
        // Application memory is never backed by huge pages.
        (
            "kernel/mm/transparent_hugepage/enabled",
            Content::Text("always madvise [never]\n".into()),
        ),
        (
            "kernel/mm/transparent_hugepage/hpage_pmd_size",
            Content::Text("2097152\n".into()),
        ),
    ] {
        nodes.push((p.to_string(), c));
    }
    Arc::new(SysInode {
        tree: Arc::new(Tree {
            kernel: Arc::downgrade(kernel),
            nodes,
        }),
        idx: 0,
    })
}

/// The sandbox's memory limit (`veil do --memory`), or "max".
fn memory_max(k: &Kernel) -> String {
    k.memfile
        .limit()
        .map_or_else(|| "max\n".into(), |l| format!("{l}\n"))
}

fn node_meminfo(k: &Kernel) -> String {
    let (total, free) = memory(k);
    let kb = |b: u64| b / 1024;
    format!(
        "Node 0 MemTotal:       {:>8} kB\nNode 0 MemFree:        {:>8} kB\nNode 0 MemUsed:        {:>8} kB\n",
        kb(total),
        kb(free),
        kb(total - free)
    )
}

/// A CPU mask as Linux's "%*pb": 32-bit hex words, high first, comma
/// separated, the first as wide as the CPU count needs.
fn cpu_map(k: &Kernel) -> String {
    let ids = crate::procfs::cpu_ids(k);
    let bits = ids.last().map_or(1, |&c| c + 1);
    let mut words = vec![0u32; bits.div_ceil(32)];
    for c in ids {
        words[c / 32] |= 1 << (c % 32);
    }
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate().rev() {
        let width = if i == words.len() - 1 {
            (bits - 32 * i).div_ceil(4)
        } else {
            8
        };
        out.push(format!("{w:0width$x}"));
    }
    format!("{}\n", out.join(","))
}

fn cgroup_procs(k: &Kernel) -> String {
    let mut pids: Vec<i32> = k
        .processes()
        .iter()
        .filter(|(_, tg)| tg.exit.lock().is_ok_and(|e| e.is_none()))
        .map(|(&p, _)| p)
        .collect();
    pids.sort_unstable();
    pids.iter().map(|p| format!("{p}\n")).collect()
}

fn memory_current(k: &Kernel) -> String {
    format!("{}\n", k.memfile.allocated())
}

fn pids_current(k: &Kernel) -> String {
    let n: usize = k
        .processes()
        .values()
        .map(|tg| tg.threads.lock().map_or(0, |t| t.len()))
        .sum();
    format!("{n}\n")
}

struct SysInode {
    tree: Arc<Tree>,
    idx: usize,
}

impl SysInode {
    fn path(&self) -> &str {
        &self.tree.nodes[self.idx].0
    }

    fn is_dir(&self) -> bool {
        matches!(self.tree.nodes[self.idx].1, Content::Dir)
    }

    fn mode(idx: &Content) -> u32 {
        match idx {
            Content::Dir => S_IFDIR | 0o755,
            _ => S_IFREG | 0o444,
        }
    }

    /// The children of this directory: (name, index).
    fn children(&self) -> Vec<(&str, usize)> {
        let dir = self.path();
        self.tree
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, (p, _))| {
                let name = if dir.is_empty() {
                    p.as_str()
                } else {
                    p.strip_prefix(dir)?.strip_prefix('/')?
                };
                (!name.is_empty() && !name.contains('/')).then_some((name, i))
            })
            .collect()
    }
}

impl Inode for SysInode {
    fn stat(&self) -> Result<Stat, Errno> {
        let mode = Self::mode(&self.tree.nodes[self.idx].1);
        Ok(Stat {
            st_dev: DEV,
            st_ino: self.idx as u64 + 1,
            st_nlink: if self.is_dir() { 2 } else { 1 },
            st_mode: mode,
            st_size: if self.is_dir() { 0 } else { 4096 },
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    fn open(self: Arc<Self>, flags: i32) -> Result<Box<dyn FileOps>, Errno> {
        if self.is_dir() {
            return Ok(Box::new(veil_vfs::NoOps));
        }
        // Files without a store method refuse writers, as kernfs does.
        if flags & linux_raw_sys::general::O_ACCMODE as i32 != 0 {
            return Err(Errno::EACCES);
        }
        let text = match &self.tree.nodes[self.idx].1 {
            Content::Text(t) => t.clone(),
            Content::Gen(g) => {
                let k = self.tree.kernel.upgrade().ok_or(Errno::ENOENT)?;
                g(&k)
            }
            Content::Dir => String::new(),
        };
        Ok(Box::new(Text(text.into_bytes())))
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.children()
            .into_iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, idx)| {
                Arc::new(SysInode {
                    tree: self.tree.clone(),
                    idx,
                }) as Arc<dyn Inode>
            })
            .ok_or(Errno::ENOENT)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(self
            .children()
            .into_iter()
            .map(|(name, idx)| DirEntry {
                name: name.as_bytes().to_vec(),
                ino: idx as u64 + 1,
                dtype: dtype(Self::mode(&self.tree.nodes[idx].1)),
            })
            .collect())
    }

    fn create(&self, _: &[u8], _: u32, _: &veil_vfs::Creds) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EROFS)
    }

    fn mkdir(&self, _: &[u8], _: u32, _: &veil_vfs::Creds) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A file's contents as of open.
struct Text(Vec<u8>);

impl FileOps for Text {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let Ok(off) = usize::try_from(off) else {
            return Ok(0);
        };
        let rest = self.0.get(off..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn write_at(&self, _buf: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EBADF)
    }
}
