//! ELF64 headers, parsed from untrusted bytes.

use veil_abi::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Ehdr {
    pub e_ident: [u8; 16],
    pub e_type: u16,
    pub e_machine: u16,
    pub e_version: u32,
    pub e_entry: u64,
    pub e_phoff: u64,
    pub e_shoff: u64,
    pub e_flags: u32,
    pub e_ehsize: u16,
    pub e_phentsize: u16,
    pub e_phnum: u16,
    pub e_shentsize: u16,
    pub e_shnum: u16,
    pub e_shstrndx: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

/// Largest program header table we accept (Linux allows 64 KiB).
const MAX_PHDRS_SIZE: usize = 64 << 10;

impl Ehdr {
    /// Parses and validates an x86-64 ELF header; ENOEXEC if it is not one.
    pub fn parse(head: &[u8]) -> Result<Ehdr, Errno> {
        let (eh, _) = Ehdr::read_from_prefix(head).map_err(|_| Errno::ENOEXEC)?;
        let ok = eh.e_ident[..4] == *b"\x7fELF"
            && eh.e_ident[4] == 2
            && eh.e_ident[5] == 1
            && eh.e_machine == EM_X86_64
            && matches!(eh.e_type, ET_EXEC | ET_DYN)
            && usize::from(eh.e_phentsize) == size_of::<Phdr>()
            && eh.e_phnum > 0
            && usize::from(eh.e_phnum) * size_of::<Phdr>() <= MAX_PHDRS_SIZE;
        if ok {
            Ok(eh)
        } else {
            Err(Errno::ENOEXEC)
        }
    }

    pub fn phdrs_len(&self) -> usize {
        usize::from(self.e_phnum) * size_of::<Phdr>()
    }
}

pub fn parse_phdrs(bytes: &[u8]) -> Vec<Phdr> {
    bytes
        .chunks_exact(size_of::<Phdr>())
        .filter_map(|c| Phdr::read_from_bytes(c).ok())
        .collect()
}
