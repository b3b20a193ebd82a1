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

/// Copy-on-write fork: data, brk heap, mmap and stack pages written on both
/// sides, an orphan, a writing thread, kernel writes into shared pages.
#[test]
fn cow_fork_static() {
    assert_program_passes("mm/cow_fork", Link::Static);
}

#[test]
fn cow_fork_static_pie() {
    assert_program_passes("mm/cow_fork", Link::StaticPie);
}

#[test]
fn cow_fork_dynamic() {
    assert_program_passes("mm/cow_fork", Link::Dynamic);
}

/// MAP_SHARED|MAP_ANONYMOUS and /dev/zero shared across fork, and futexes
/// on them between processes.
#[test]
fn shared_anon_static() {
    assert_program_passes("mm/shared_anon", Link::Static);
}

#[test]
fn shared_anon_dynamic() {
    assert_program_passes("mm/shared_anon", Link::Dynamic);
}

/// Shared mappings of in-memory files: shm_open, memfd_create, sem_open,
/// link in /dev/shm, SIGBUS past the end of the file.
#[test]
fn shm_files_static() {
    assert_program_passes("mm/shm_files", Link::Static);
}

#[test]
fn shm_files_dynamic() {
    assert_program_passes("mm/shm_files", Link::Dynamic);
}

/// Python's multiprocessing: a fork pool, and a shared Value guarded by a
/// Lock (sem_open, shared memory in /dev/shm) across processes.
#[test]
fn python_multiprocessing() {
    let (_, veil) = common::assert_same(&[
        "/usr/bin/python3",
        "-c",
        "import multiprocessing as mp\n\
         def sq(x): return x * x\n\
         def inc(v, l):\n    \
             for _ in range(100):\n        \
                 with l: v.value += 1\n\
         with mp.Pool(2) as p: print(p.map(sq, range(10)))\n\
         v, l = mp.Value('i', 0), mp.Lock()\n\
         ps = [mp.Process(target=inc, args=(v, l)) for _ in range(4)]\n\
         [p.start() for p in ps]; [p.join() for p in ps]\n\
         print(v.value)\n",
    ]);
    assert_eq!(
        veil.stdout_str(),
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n400\n"
    );
}
