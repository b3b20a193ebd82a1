use linux_raw_sys::ptrace::sock_fprog;

use super::*;

/// Runs a classic-BPF program over `seccomp_data` the way the kernel does,
/// for the instructions `Bpf` emits.
fn run(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let code = u32::from(i.code);
        pc += 1;
        if code == BPF_LD | BPF_W | BPF_ABS {
            let k = i.k as usize;
            acc = u32::from_le_bytes(data[k..k + 4].try_into().expect("4 bytes"));
        } else if code == BPF_RET | BPF_K {
            return i.k;
        } else if code == BPF_JMP | BPF_JA {
            pc += i.k as usize;
        } else if code == BPF_JMP | BPF_JEQ | BPF_K || code == BPF_JMP | BPF_JSET | BPF_K {
            let taken = if code & BPF_JSET != 0 {
                acc & i.k != 0
            } else {
                acc == i.k
            };
            pc += usize::from(if taken { i.jt } else { i.jf });
        } else {
            panic!("unexpected instruction {code:#x} at {}", pc - 1);
        }
    }
}

fn data(arch: u32, nr: u32, ip: u64, args: [u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&nr.to_le_bytes());
    d[4..8].copy_from_slice(&arch.to_le_bytes());
    d[8..16].copy_from_slice(&ip.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    d
}

/// A layout whose sites differ in the high word of their address from the
/// addresses the tests forge, so both halves of each comparison matter.
const LAYOUT: StubLayout = StubLayout {
    base: 0x7fff_ffe0_0000,
    len: 0x2000,
    init: 0x7fff_ffe0_0000,
    syscall_site: 0x7fff_ffe0_0100,
    clone_site: 0x7fff_ffe0_0110,
    pause_site: 0x7fff_ffe0_0120,
    data: 0x7fff_ffe0_1000,
};

fn verdict(nr: Sysno, site: u64, args: [u64; 6]) -> u32 {
    let prog = stub_filter(&LAYOUT).expect("filter");
    run(
        &prog,
        &data(AUDIT_ARCH_X86_64, nr.id() as u32, site + 2, args),
    )
}

const ALLOW: u32 = SECCOMP_RET_ALLOW;
const KILL: u32 = SECCOMP_RET_KILL_PROCESS;

#[test]
fn the_injected_calls_pass_from_their_sites() {
    let s = LAYOUT.syscall_site;
    let mmap = [0x40_0000, 0x1000, 5, MMAP_FLAGS, 0, 0x3000];
    assert_eq!(verdict(Sysno::mmap, s, mmap), ALLOW);
    assert_eq!(
        verdict(Sysno::munmap, s, [0x40_0000, 0x1000, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        verdict(Sysno::mprotect, s, [0x40_0000, 0x1000, 7, 0, 0, 0]),
        ALLOW
    );
    let [o, sig] = PDEATHSIG_ARGS;
    assert_eq!(verdict(Sysno::prctl, s, [o, sig, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(Sysno::exit, s, [0; 6]), ALLOW);
    let c = LAYOUT.clone_site;
    for flags in [CLONE_PROCESS_FLAGS, CLONE_THREAD_FLAGS] {
        assert_eq!(verdict(Sysno::clone, c, [flags, 0, 0, 0, 0, 0]), ALLOW);
    }
    assert_eq!(verdict(Sysno::pause, LAYOUT.pause_site, [0; 6]), ALLOW);
}

#[test]
fn calls_from_elsewhere_or_of_other_kinds_kill() {
    let s = LAYOUT.syscall_site;
    // Another system call at the injection site.
    assert_eq!(verdict(Sysno::getpid, s, [0; 6]), KILL);
    assert_eq!(verdict(Sysno::execve, s, [0; 6]), KILL);
    // An injected call at the wrong site, or just before or after one.
    assert_eq!(verdict(Sysno::munmap, LAYOUT.clone_site, [0; 6]), KILL);
    assert_eq!(
        verdict(Sysno::clone, s, [CLONE_PROCESS_FLAGS, 0, 0, 0, 0, 0]),
        KILL
    );
    assert_eq!(verdict(Sysno::munmap, s + 1, [0; 6]), KILL);
    assert_eq!(verdict(Sysno::munmap, s - 2, [0; 6]), KILL);
    // The right low word of the address with another high word.
    assert_eq!(verdict(Sysno::munmap, s & 0xffff_ffff, [0; 6]), KILL);
    assert_eq!(verdict(Sysno::munmap, s ^ (1 << 40), [0; 6]), KILL);
    // x32 and i386 numbering.
    let prog = stub_filter(&LAYOUT).expect("filter");
    let munmap = Sysno::munmap.id() as u32;
    let x32 = data(AUDIT_ARCH_X86_64, munmap | X32_SYSCALL_BIT, s + 2, [0; 6]);
    assert_eq!(run(&prog, &x32), KILL);
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    assert_eq!(
        run(&prog, &data(AUDIT_ARCH_I386, munmap, s + 2, [0; 6])),
        KILL
    );
}

#[test]
fn arguments_outside_the_rules_kill() {
    let s = LAYOUT.syscall_site;
    let ok = [0x40_0000, 0x1000, 5, MMAP_FLAGS, 0, 0];
    let with = |i: usize, v: u64| {
        let mut a = ok;
        a[i] = v;
        a
    };
    assert_eq!(verdict(Sysno::mmap, s, with(2, 8)), KILL, "PROT_SEM");
    assert_eq!(
        verdict(Sysno::mmap, s, with(2, 1 << 33)),
        KILL,
        "high prot bit"
    );
    assert_eq!(
        verdict(Sysno::mmap, s, with(3, 0x22)),
        KILL,
        "private anonymous"
    );
    assert_eq!(verdict(Sysno::mmap, s, with(3, MMAP_FLAGS | 1 << 32)), KILL);
    assert_eq!(verdict(Sysno::mmap, s, with(4, 3)), KILL, "another fd");
    assert_eq!(
        verdict(Sysno::mprotect, s, [0, 0x1000, 0x100_0000, 0, 0, 0]),
        KILL
    );
    let [o, sig] = PDEATHSIG_ARGS;
    assert_eq!(verdict(Sysno::prctl, s, [o, 10, 0, 0, 0, 0]), KILL);
    assert_eq!(
        verdict(Sysno::prctl, s, [22, sig, 0, 0, 0, 0]),
        KILL,
        "PR_SET_SECCOMP"
    );
    let c = LAYOUT.clone_site;
    let newns = CLONE_PROCESS_FLAGS | nix::libc::CLONE_NEWUSER as u64;
    assert_eq!(verdict(Sysno::clone, c, [newns, 0, 0, 0, 0, 0]), KILL);
    assert_eq!(verdict(Sysno::clone, c, [0, 0, 0, 0, 0, 0]), KILL);
    assert_eq!(
        verdict(
            Sysno::clone,
            c,
            [CLONE_THREAD_FLAGS | 1 << 32, 0, 0, 0, 0, 0]
        ),
        KILL
    );
}

#[test]
fn vsyscalls_are_trapped_for_the_sentry() {
    let prog = stub_filter(&LAYOUT).expect("filter");
    let at = |nr: Sysno, ip: u64| run(&prog, &data(AUDIT_ARCH_X86_64, nr.id() as u32, ip, [0; 6]));
    let page = VSYSCALL_GETTIMEOFDAY;
    assert_eq!(at(Sysno::gettimeofday, page), SECCOMP_RET_TRAP);
    assert_eq!(at(Sysno::time, page + 0x400), SECCOMP_RET_TRAP);
    assert_eq!(at(Sysno::getcpu, page + 0x800), SECCOMP_RET_TRAP);
    assert_eq!(trapped_call(page + 0x400), Some(Sysno::time));
    // Nothing else of the page, nor those offsets elsewhere.
    assert_eq!(at(Sysno::time, page), KILL);
    assert_eq!(at(Sysno::time, page + 0x402), KILL);
    assert_eq!(at(Sysno::time, page & 0xffff_ffff | 0x400), KILL);
    assert_eq!(trapped_call(page + 0x402), None);
}

#[test]
fn builder_resolves_labels_forwards() {
    let mut b = Bpf::default();
    let end = b.label();
    let mid = b.label();
    b.load(NR);
    b.jeq(7, Target::To(end), Target::To(mid));
    b.ret(1);
    b.bind(mid).expect("bind");
    b.jump(end);
    b.ret(2);
    b.bind(end).expect("bind");
    b.ret(3);
    let p = b.finish().expect("finish");
    assert_eq!((p[1].jt, p[1].jf), (3, 1));
    assert_eq!(p[3].k, 1);
    assert_eq!(run(&p, &data(0, 7, 0, [0; 6])), 3);
    assert_eq!(run(&p, &data(0, 8, 0, [0; 6])), 3);
}

#[test]
fn builder_rejects_bad_labels() {
    let mut b = Bpf::default();
    let l = b.label();
    b.jump(l);
    assert_eq!(b.finish().expect_err("bad program"), BpfError::Unbound(0));

    let mut b = Bpf::default();
    let l = b.label();
    b.bind(l).expect("bind");
    assert_eq!(b.bind(l), Err(BpfError::Rebound(0)));

    let mut b = Bpf::default();
    let l = b.label();
    b.bind(l).expect("bind");
    b.jump(l);
    assert_eq!(
        b.finish().expect_err("bad program"),
        BpfError::BadJump { from: 0, to: 0 }
    );

    // A label at the very end points at no instruction.
    let mut b = Bpf::default();
    let l = b.label();
    b.jump(l);
    b.bind(l).expect("bind");
    assert_eq!(
        b.finish().expect_err("bad program"),
        BpfError::BadJump { from: 0, to: 1 }
    );

    // Conditional jumps reach 255 instructions at most.
    let mut b = Bpf::default();
    let l = b.label();
    b.jeq(0, Target::To(l), Target::Next);
    for _ in 0..256 {
        b.ret(0);
    }
    b.bind(l).expect("bind");
    b.ret(1);
    assert_eq!(
        b.finish().expect_err("bad program"),
        BpfError::BadJump { from: 0, to: 257 }
    );
}

#[test]
fn rules_describe_themselves() {
    let lines: Vec<String> = stub_filter_rules().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        lines[0],
        "mmap from syscall_site: prot & 0xfffffffffffffff8 == 0, flags == 0x11, fd == 0"
    );
    assert_eq!(lines[5], "clone from clone_site: flags in {0x11, 0x50f00}");
    assert_eq!(
        lines[8],
        "time from vsyscall 0xffffffffff600400 (trapped and served by the sentry)"
    );
    assert_eq!(lines.len(), 10);
}

std::arch::global_asm!(
    ".pushsection .text.veil_filter_test,\"ax\",@progbits",
    // A system call (nr, a0, a1, a2) made from one known instruction.
    "veil_filter_test_syscall:",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rsi, rdx",
    "mov rdx, rcx",
    "veil_filter_test_site:",
    "syscall",
    "ret",
    ".popsection",
);

extern "C" {
    fn veil_filter_test_syscall(nr: i64, a0: u64, a1: u64, a2: u64) -> i64;
    static veil_filter_test_site: u8;
}

fn at_site(nr: Sysno, a0: u64, a1: u64, a2: u64) -> i64 {
    // SAFETY: the function makes one system call with these registers and
    // returns; the tests only pass calls that leave memory alone.
    unsafe { veil_filter_test_syscall(nr.id().into(), a0, a1, a2) }
}

/// Forks a child that installs the stub filter with the test's own
/// `syscall` instruction as the injection site, then runs `case`; returns
/// the raw wait status.
fn in_filtered_child(case: fn()) -> i32 {
    let site = &raw const veil_filter_test_site as u64;
    let layout = StubLayout {
        base: 0,
        len: 0,
        init: 0,
        syscall_site: site,
        clone_site: site + 0x1000,
        pause_site: site + 0x2000,
        data: 0,
    };
    let mut prog = stub_filter(&layout).expect("filter");
    let fprog = sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: the child only makes raw system calls (no allocation, no locks
    // another thread may hold) and ends with exit or a kill.
    let pid = unsafe { nix::libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: prctl reads only its integer arguments.
        let nodump = unsafe { nix::libc::prctl(nix::libc::PR_SET_DUMPABLE, 0) };
        // SAFETY: as above.
        let nnp = unsafe { nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        // SAFETY: seccomp reads `fprog` and the program it points to, which
        // live until the child ends.
        let filter =
            unsafe { nix::libc::syscall(nix::libc::SYS_seccomp, 1, 0, std::ptr::from_ref(&fprog)) };
        let installed = nodump == 0 && nnp == 0 && filter == 0;
        if !installed {
            // SAFETY: ends the child at once.
            unsafe { nix::libc::_exit(99) };
        }
        case();
        at_site(Sysno::exit, 0, 0, 0);
    }
    let mut status = 0;
    // SAFETY: waitpid only writes the status integer.
    let r = unsafe { nix::libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid");
    status
}

fn assert_exit(status: i32, code: i32) {
    assert!(
        nix::libc::WIFEXITED(status) && nix::libc::WEXITSTATUS(status) == code,
        "expected exit {code}, got status {status:#x}"
    );
}

fn assert_killed(status: i32) {
    assert!(
        nix::libc::WIFSIGNALED(status) && nix::libc::WTERMSIG(status) == nix::libc::SIGSYS,
        "expected death by SIGSYS, got status {status:#x}"
    );
}

#[test]
fn kernel_allows_the_rules_at_the_site() {
    assert_exit(in_filtered_child(|| {}), 0);
    let status = in_filtered_child(|| {
        // munmap(0, 0) reaches the kernel, which refuses it.
        let r = at_site(Sysno::munmap, 0, 0, 0);
        let code = if r == -i64::from(nix::libc::EINVAL) {
            42
        } else {
            1
        };
        at_site(Sysno::exit, code, 0, 0);
    });
    assert_exit(status, 42);
}

#[test]
fn kernel_kills_calls_outside_the_rules() {
    // An allowed call made from another instruction.
    assert_killed(in_filtered_child(|| {
        // SAFETY: munmap of nothing changes no memory.
        unsafe { nix::libc::syscall(nix::libc::SYS_munmap, 0, 0) };
    }));
    // Another call at the site.
    assert_killed(in_filtered_child(|| {
        at_site(Sysno::getpid, 0, 0, 0);
    }));
    // An allowed call with an argument outside its rule.
    assert_killed(in_filtered_child(|| {
        at_site(Sysno::mprotect, 0, 0, 8);
    }));
}
