//! Memory management: tests/c/mm/*.c, natively vs under veil, in every
//! linking flavour (the dynamic loader and static-pie self-relocation
//! exercise mmap/mprotect differently from a static binary).

mod common;

use common::{assert_program_passes, Link};

fn mm_basic(link: Link) {
    assert_program_passes("mm/mm_basic", link);
}

#[test]
fn mm_basic_static() {
    mm_basic(Link::Static);
}

#[test]
fn mm_basic_static_pie() {
    mm_basic(Link::StaticPie);
}

#[test]
fn mm_basic_dynamic() {
    mm_basic(Link::Dynamic);
}
