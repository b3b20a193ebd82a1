//! Program loading: ELF executables (static, static-pie, dynamic with their
//! PT_INTERP), `#!` scripts, and the initial stack with argv, envp and auxv.

mod elf;

use std::sync::Arc;

use veil_abi::{page_down, page_up, Errno, PAGE_SIZE};
use veil_platform::Prot;

use crate::mm::{
    ArgRegions, Backing, MapName, MappableFile, MemoryManager, MmapRequest, Placement, STACK_SIZE,
};
use elf::{Ehdr, Phdr, ET_DYN, PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR};

/// Where Linux puts a PIE executable when randomization is off.
const ELF_ET_DYN_BASE: u64 = 0x5555_5555_4000;
/// Linux's limits on exec arguments.
const MAX_ARG_STRLEN: usize = 32 * PAGE_SIZE as usize;
const MAX_ARGS_TOTAL: usize = (STACK_SIZE / 4) as usize;
/// How much stack a new program gets beyond its arguments (stack_expand).
const STACK_EXPAND: u64 = 128 << 10;
/// Room for what the initial stack holds besides the strings: the
/// pointer arrays' terminators, auxv, the random bytes and alignment.
const STACK_SLACK: u64 = 16 << 10;
/// Nested `#!` interpreters allowed (Linux allows 4 levels of binfmt recursion).
const MAX_SCRIPT_DEPTH: usize = 4;

/// An executable the loader can read and map.
pub struct ExecFile {
    pub file: Arc<dyn MappableFile>,
    /// The path as resolved, for AT_EXECFN and /proc/self/exe.
    pub path: Vec<u8>,
    /// What its mappings show in /proc/PID/maps.
    pub name: Arc<MapName>,
}

/// Opens files for the loader: the sentry resolves them through its VFS,
/// checking that they are regular and executable.
pub trait ExecOpener {
    fn open_exec(&self, path: &[u8]) -> Result<ExecFile, Errno>;
}

/// Credentials and hardware facts the auxiliary vector reports.
#[derive(Clone, Default)]
pub struct AuxInfo {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub hwcap: u64,
    pub hwcap2: u64,
    pub random: [u8; 16],
    /// The vDSO to map (AT_SYSINFO_EHDR), if any.
    pub vdso: Option<Arc<crate::vdso::Vdso>>,
}

/// The result of loading: where the new image starts running.
#[derive(Clone, Debug)]
pub struct LoadedProgram {
    pub entry: u64,
    pub stack_pointer: u64,
    /// The executable actually loaded (after `#!` resolution).
    pub exe_path: Vec<u8>,
    /// argv[0]'s base name, for the task's comm.
    pub comm: Vec<u8>,
}

/// Where exec put the dynamic linker (0 without one) and the vDSO.
#[derive(Clone, Copy)]
struct Placed {
    interp: u64,
    vdso: Option<u64>,
}

struct Image {
    bias: u64,
    entry: u64,
    phdr_addr: u64,
    phnum: u64,
    end: u64,
    interp: Option<Vec<u8>>,
}

/// Loads `path` into the (empty) `mm` and builds its initial stack.
pub fn load(
    opener: &dyn ExecOpener,
    mm: &MemoryManager,
    path: &[u8],
    mut argv: Vec<Vec<u8>>,
    envp: &[Vec<u8>],
    aux: &AuxInfo,
) -> Result<LoadedProgram, Errno> {
    let execfn = path.to_vec();
    let mut exec = opener.open_exec(path)?;
    for depth in 0..=MAX_SCRIPT_DEPTH {
        let mut head = vec![0u8; 256];
        let n = read_full(&*exec.file, &mut head, 0)?;
        head.truncate(n);
        if !head.starts_with(b"#!") {
            break;
        }
        if depth == MAX_SCRIPT_DEPTH {
            return Err(Errno::ELOOP);
        }
        let (interp, arg) = parse_shebang(&head)?;
        // argv[0] is replaced by the interpreter, its optional argument and
        // the script's path, as binfmt_script does.
        let mut new_argv = vec![interp.clone()];
        new_argv.extend(arg);
        new_argv.push(exec.path.clone());
        new_argv.extend(argv.into_iter().skip(1));
        argv = new_argv;
        exec = opener.open_exec(&interp)?;
    }
    let main = load_elf(&exec, mm, false)?;
    let (entry, base) = match &main.interp {
        Some(interp_path) => {
            let interp = opener.open_exec(interp_path)?;
            let img = load_elf(&interp, mm, true)?;
            if img.interp.is_some() {
                return Err(Errno::ELIBBAD);
            }
            (img.entry, img.bias)
        }
        None => (main.entry, 0),
    };
    mm.set_brk_start(page_up(main.end).ok_or(Errno::ENOMEM)?);
    let vdso = aux.vdso.as_ref().map(|v| v.map(mm)).transpose()?;
    let placed = Placed { interp: base, vdso };
    let stack_pointer = build_stack(mm, &argv, envp, &execfn, aux, &main, placed)?;
    let comm = argv
        .first()
        .map(|a| {
            a.rsplit(|&b| b == b'/')
                .next()
                .unwrap_or(a)
                .iter()
                .take(15)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    Ok(LoadedProgram {
        entry,
        stack_pointer,
        exe_path: exec.path,
        comm,
    })
}

/// Splits a `#!` line into the interpreter and its one optional argument.
fn parse_shebang(head: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>), Errno> {
    let line = &head[2..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(nl) => &line[..nl],
        None if head.len() < 256 => line,
        // Linux accepts a truncated line only if the interpreter name fits.
        None => line,
    };
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let trimmed: &[u8] = {
        let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
        let end = line
            .iter()
            .rposition(|b| !is_space(b))
            .map_or(start, |e| e + 1);
        &line[start..end.max(start)]
    };
    if trimmed.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let split = trimmed.iter().position(is_space).unwrap_or(trimmed.len());
    let interp = trimmed[..split].to_vec();
    let rest = &trimmed[split..];
    let arg_start = rest.iter().position(|b| !is_space(b));
    let arg = arg_start.map(|s| rest[s..].to_vec());
    Ok((interp, arg))
}

fn read_full(file: &dyn MappableFile, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], off + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Maps an ELF image. `is_interp` is set for the dynamic linker, which goes
/// wherever there is room instead of at the PIE base.
fn load_elf(exec: &ExecFile, mm: &MemoryManager, is_interp: bool) -> Result<Image, Errno> {
    let file = &exec.file;
    let mut head = vec![0u8; size_of::<Ehdr>()];
    if read_full(&**file, &mut head, 0)? < head.len() {
        return Err(Errno::ENOEXEC);
    }
    let eh = Ehdr::parse(&head)?;
    let mut raw = vec![0u8; eh.phdrs_len()];
    if read_full(&**file, &mut raw, eh.e_phoff)? < raw.len() {
        return Err(Errno::ENOEXEC);
    }
    let phdrs = elf::parse_phdrs(&raw);
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    if loads.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let lo = page_down(loads.iter().map(|p| p.p_vaddr).min().unwrap_or(0));
    let hi = loads
        .iter()
        .map(|p| p.p_vaddr.checked_add(p.p_memsz))
        .try_fold(0u64, |m, e| e.map(|e| m.max(e)))
        .ok_or(Errno::ENOEXEC)?;
    let span = page_up(hi.checked_sub(lo).ok_or(Errno::ENOEXEC)?).ok_or(Errno::ENOEXEC)?;
    let bias = if eh.e_type == ET_DYN {
        // Reserve the whole span so that the segments land together.
        let hint = if is_interp { 0 } else { ELF_ET_DYN_BASE };
        let at = mm.reserve(hint, span)?;
        at - lo
    } else {
        0
    };
    let mut end = 0;
    for p in &loads {
        if p.p_offset % PAGE_SIZE != p.p_vaddr % PAGE_SIZE || p.p_filesz > p.p_memsz {
            return Err(Errno::EINVAL);
        }
        let prot = segment_prot(p.p_flags);
        let start = bias.checked_add(p.p_vaddr).ok_or(Errno::ENOEXEC)?;
        let map_start = page_down(start);
        let seg_end = |len: u64| {
            start
                .checked_add(len)
                .and_then(page_up)
                .ok_or(Errno::ENOEXEC)
        };
        let file_end = seg_end(p.p_filesz)?;
        let mem_end = seg_end(p.p_memsz)?;
        if p.p_filesz > 0 {
            mm.mmap(MmapRequest {
                addr: map_start,
                len: file_end - map_start,
                prot,
                placement: Placement::Fixed,
                growsdown: false,
                backing: Backing::File {
                    file: file.clone(),
                    offset: page_down(p.p_offset),
                },
                name: Some(exec.name.clone()),
            })?;
            if p.p_memsz > p.p_filesz {
                // The rest of the last file page belongs to .bss: zero it.
                let zero_from = start + p.p_filesz;
                let zeros = vec![0u8; (file_end - zero_from) as usize];
                mm.copy_out_force(zero_from, &zeros)?;
            }
        }
        let anon_start = if p.p_filesz > 0 { file_end } else { map_start };
        if mem_end > anon_start {
            mm.mmap(MmapRequest {
                addr: anon_start,
                len: mem_end - anon_start,
                prot,
                placement: Placement::Fixed,
                growsdown: false,
                backing: Backing::Anon,
                name: None,
            })?;
        }
        end = end.max(mem_end);
    }
    let phdr_addr = phdrs
        .iter()
        .find(|p| p.p_type == PT_PHDR)
        .map(|p| bias.wrapping_add(p.p_vaddr))
        .or_else(|| {
            loads
                .iter()
                .find(|p| p.p_offset <= eh.e_phoff && eh.e_phoff - p.p_offset < p.p_filesz)
                .map(|p| {
                    bias.wrapping_add(p.p_vaddr)
                        .wrapping_add(eh.e_phoff - p.p_offset)
                })
        })
        .unwrap_or(0);
    let interp_path = match phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        Some(p) if p.p_filesz > 1 && p.p_filesz <= PAGE_SIZE => {
            let mut path = vec![0u8; p.p_filesz as usize];
            if read_full(&**file, &mut path, p.p_offset)? < path.len() || path.pop() != Some(0) {
                return Err(Errno::ENOEXEC);
            }
            Some(path)
        }
        Some(_) => return Err(Errno::ENOEXEC),
        None => None,
    };
    Ok(Image {
        bias,
        entry: bias.wrapping_add(eh.e_entry),
        phdr_addr,
        phnum: u64::from(eh.e_phnum),
        end,
        interp: interp_path,
    })
}

fn segment_prot(flags: u32) -> Prot {
    let mut prot = Prot::NONE;
    if flags & PF_R != 0 {
        prot = prot | Prot::READ;
    }
    if flags & PF_W != 0 {
        prot = prot | Prot::WRITE;
    }
    if flags & PF_X != 0 {
        prot = prot | Prot::EXEC;
    }
    prot
}

mod auxv {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_PLATFORM: u64 = 15;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_HWCAP2: u64 = 26;
    pub const AT_EXECFN: u64 = 31;
    pub const AT_SYSINFO_EHDR: u64 = 33;
}

/// Maps the stack and lays out strings, argv, envp and auxv as Linux does.
fn build_stack(
    mm: &MemoryManager,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    aux: &AuxInfo,
    main: &Image,
    placed: Placed,
) -> Result<u64, Errno> {
    let total: usize = argv.iter().chain(envp).map(|s| s.len() + 1 + 8).sum();
    if total > MAX_ARGS_TOTAL || argv.iter().chain(envp).any(|s| s.len() > MAX_ARG_STRLEN) {
        return Err(Errno::E2BIG);
    }
    let layout = mm.layout();
    let top = layout.stack_top;
    // As Linux's setup_arg_pages: room for the arguments and 128 KiB more,
    // within RLIMIT_STACK; the rest grows on demand up to the limit.
    let needed = total as u64 + STACK_SLACK;
    let len = (needed + STACK_EXPAND).min(layout.stack_limit.max(needed));
    let len = (len + 4095) & !4095;
    mm.mmap(MmapRequest {
        addr: top - len,
        len,
        prot: Prot::READ | Prot::WRITE,
        placement: Placement::Fixed,
        growsdown: true,
        backing: Backing::Anon,
        name: None,
    })?;
    // Strings in Linux's order, upwards: argv, envp, the exec'd path,
    // then 8 zero bytes at the top.
    let mut strings: Vec<u8> = Vec::with_capacity(total + execfn.len() + 1);
    let mut offsets = Vec::with_capacity(argv.len() + envp.len() + 1);
    for s in argv.iter().chain(envp).map(Vec::as_slice).chain([execfn]) {
        offsets.push(strings.len() as u64);
        strings.extend_from_slice(s);
        strings.push(0);
    }
    let base_addr = top - 8 - strings.len() as u64;
    mm.copy_out_force(base_addr, &strings)?;
    let addrs: Vec<u64> = offsets.iter().map(|o| base_addr + o).collect();
    let (arg_addrs, rest) = addrs.split_at(argv.len());
    let (env_addrs, execfn_addr) = rest.split_at(envp.len());
    let execfn_addr = execfn_addr[0];
    let env_start = env_addrs.first().copied().unwrap_or(execfn_addr);
    mm.set_arg_regions(ArgRegions {
        arg_start: base_addr,
        arg_end: env_start,
        env_start,
        env_end: execfn_addr,
        start_stack: 0,
    });
    let mut sp = base_addr;
    let mut push_str = |s: &[u8]| -> Result<u64, Errno> {
        sp -= s.len() as u64 + 1;
        let mut bytes = s.to_vec();
        bytes.push(0);
        mm.copy_out_force(sp, &bytes)?;
        Ok(sp)
    };
    let platform_addr = push_str(b"x86_64")?;
    sp &= !15;
    sp -= 16;
    let random_addr = sp;
    mm.copy_out_force(random_addr, &aux.random)?;
    use auxv::*;
    // AT_SYSINFO_EHDR first, as Linux's x86-64 puts it.
    let mut auxv: Vec<(u64, u64)> = placed
        .vdso
        .map(|at| (AT_SYSINFO_EHDR, at))
        .into_iter()
        .collect();
    auxv.extend([
        (AT_HWCAP, aux.hwcap),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_CLKTCK, 100),
        (AT_PHDR, main.phdr_addr),
        (AT_PHENT, size_of::<Phdr>() as u64),
        (AT_PHNUM, main.phnum),
        (AT_BASE, placed.interp),
        (AT_FLAGS, 0),
        (AT_ENTRY, main.entry),
        (AT_UID, u64::from(aux.uid)),
        (AT_EUID, u64::from(aux.euid)),
        (AT_GID, u64::from(aux.gid)),
        (AT_EGID, u64::from(aux.egid)),
        (AT_SECURE, 0),
        (AT_RANDOM, random_addr),
        (AT_HWCAP2, aux.hwcap2),
        (AT_EXECFN, execfn_addr),
        (AT_PLATFORM, platform_addr),
        (AT_NULL, 0),
    ]);
    let mut words: Vec<u64> = Vec::with_capacity(3 + argv.len() + envp.len() + 2 * auxv.len());
    words.push(argv.len() as u64);
    words.extend(arg_addrs);
    words.push(0);
    words.extend(env_addrs);
    words.push(0);
    for (k, v) in auxv {
        words.push(k);
        words.push(v);
    }
    sp -= 8 * words.len() as u64;
    sp &= !15;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    mm.copy_out_force(sp, &bytes)?;
    let regions = mm.arg_regions();
    mm.set_arg_regions(ArgRegions {
        start_stack: sp,
        ..regions
    });
    Ok(sp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        assert_eq!(
            parse_shebang(b"#!/bin/sh\n").expect("ok"),
            (b"/bin/sh".to_vec(), None)
        );
        assert_eq!(
            parse_shebang(b"#! /usr/bin/env  python3 -u \nprint()").expect("ok"),
            (b"/usr/bin/env".to_vec(), Some(b"python3 -u".to_vec()))
        );
        assert_eq!(parse_shebang(b"#!   \n"), Err(Errno::ENOEXEC));
    }
}
