//! The ptrace platform runs code in a stub, traps its system calls and faults,
//! and maps the memory file where the sentry asks.

use std::os::fd::AsFd;

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use veil_platform::ptrace::PtracePlatform;
use veil_platform::{Event, Platform, Prot, Registers};

const CODE_AT: u64 = 0x40_0000;

fn platform_with_code(code: &[u8]) -> (PtracePlatform, std::fs::File) {
    let fd = memfd_create(c"veil-test", MemFdCreateFlag::MFD_CLOEXEC).expect("memfd");
    let file = std::fs::File::from(fd);
    file.set_len(1 << 20).expect("truncate");
    std::os::unix::fs::FileExt::write_all_at(&file, code, 0).expect("write code");
    let p = PtracePlatform::new(file.as_fd()).expect("platform");
    (p, file)
}

#[test]
fn syscalls_trap_and_never_reach_the_host() {
    // mov eax, 39 (getpid); syscall; mov rdi, rax; mov eax, 60 (exit); syscall
    let code = [
        0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0x48, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05,
    ];
    let (p, _file) = platform_with_code(&code);
    let space = p.new_address_space().expect("address space");
    space
        .map(CODE_AT, 4096, Prot::READ | Prot::EXEC, 0)
        .expect("map");
    let mut ctx = p.new_context();
    let mut regs = Registers::new_user(CODE_AT, 0);
    assert_eq!(ctx.switch(&*space, &mut regs).expect("run"), Event::Syscall);
    assert_eq!(regs.orig_rax, 39);
    regs.rax = 4242;
    assert_eq!(ctx.switch(&*space, &mut regs).expect("run"), Event::Syscall);
    // exit(getpid()) would have killed the stub on the host; it trapped instead.
    assert_eq!(regs.orig_rax, 60);
    assert_eq!(regs.rdi, 4242);
}

#[test]
fn faults_report_the_address_and_mapping_fixes_them() {
    // mov rax, [0x500000]; mov rdi, rax; mov eax, 60; syscall
    let code = [
        0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00, 0x48, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f,
        0x05,
    ];
    let (p, file) = platform_with_code(&code);
    std::os::unix::fs::FileExt::write_all_at(&file, &77u64.to_le_bytes(), 0x1000).expect("data");
    let space = p.new_address_space().expect("address space");
    space
        .map(CODE_AT, 4096, Prot::READ | Prot::EXEC, 0)
        .expect("map");
    let mut ctx = p.new_context();
    let mut regs = Registers::new_user(CODE_AT, 0);
    match ctx.switch(&*space, &mut regs).expect("run") {
        Event::Fault(f) => {
            assert_eq!(f.signo, 11);
            assert_eq!(f.addr, 0x50_0000);
        }
        e => panic!("expected a fault, got {e:?}"),
    }
    space
        .map(0x50_0000, 4096, Prot::READ, 0x1000)
        .expect("map data");
    assert_eq!(ctx.switch(&*space, &mut regs).expect("run"), Event::Syscall);
    assert_eq!(regs.rdi, 77);
    space.unmap(0x50_0000, 4096).expect("unmap");
}

#[test]
fn many_address_spaces_come_and_go() {
    let (p, _file) = platform_with_code(&[0x0f, 0x05]);
    for _ in 0..20 {
        let space = p.new_address_space().expect("address space");
        space
            .map(CODE_AT, 4096, Prot::READ | Prot::EXEC, 0)
            .expect("map");
        let mut regs = Registers::new_user(CODE_AT, 0);
        assert_eq!(
            p.new_context().switch(&*space, &mut regs).expect("run"),
            Event::Syscall
        );
    }
}

#[test]
fn stubs_hold_nothing_but_the_stub_pages_and_the_memory_file() {
    let (p, _file) = platform_with_code(&[0x0f, 0x05]);
    let space = p.new_address_space().expect("address space");
    space
        .map(CODE_AT, 4096, Prot::READ | Prot::EXEC, 0)
        .expect("map");
    let pid = space
        .as_any()
        .downcast_ref::<veil_platform::ptrace::PtraceAddressSpace>()
        .expect("ptrace address space")
        .stub_pid();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let ranges: Vec<&str> = maps
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        ranges.len(),
        4,
        "the mapped code, the stub's code and data pages and vsyscall only:\n{maps}"
    );
    assert!(maps.contains("00400000-00401000 r-xs"), "{maps}");
    let layout = p.layout();
    let stub_code = format!("{:x}-{:x} r-xp", layout.base, layout.data);
    let stub_data = format!("{:x}-{:x} r--p", layout.data, layout.base + layout.len);
    assert!(maps.contains(&stub_code), "{stub_code} in\n{maps}");
    assert!(maps.contains(&stub_data), "{stub_data} in\n{maps}");
    assert!(maps.contains("[vsyscall]"), "{maps}");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds, ["0"], "only the memory file stays open in a stub");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let tracer = status
        .lines()
        .find(|l| l.starts_with("TracerPid:"))
        .expect("TracerPid");
    assert_ne!(
        tracer.split_whitespace().nth(1),
        Some("0"),
        "the stub is traced"
    );
    for line in ["Name:\tveil-stub", "NoNewPrivs:\t1", "Seccomp:\t2"] {
        assert!(status.lines().any(|l| l == line), "{line} in\n{status}");
    }
}

#[test]
fn vsyscalls_reach_the_sentry_as_system_calls() {
    // movabs rax, 0xffffffffff600400 (vsyscall time); call rax;
    // mov rdi, rax; mov eax, 60; syscall
    let mut code = vec![0x48, 0xb8];
    code.extend_from_slice(&0xffff_ffff_ff60_0400u64.to_le_bytes());
    code.extend_from_slice(&[0xff, 0xd0, 0x48, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05]);
    let (p, _file) = platform_with_code(&code);
    let space = p.new_address_space().expect("address space");
    space
        .map(CODE_AT, 4096, Prot::READ | Prot::EXEC, 0)
        .expect("map code");
    let stack_top = CODE_AT + 0x2000;
    space
        .map(CODE_AT + 0x1000, 4096, Prot::READ | Prot::WRITE, 0x1000)
        .expect("map stack");
    let mut ctx = p.new_context();
    let mut regs = Registers::new_user(CODE_AT, stack_top);
    assert_eq!(ctx.switch(&*space, &mut regs).expect("run"), Event::Syscall);
    assert_eq!(regs.orig_rax, 201, "time(2)");
    // The kernel has already returned from the vsyscall to the caller.
    assert_eq!(regs.rip, CODE_AT + 12);
    assert_eq!(regs.rsp, stack_top);
    regs.rax = 4242;
    assert_eq!(ctx.switch(&*space, &mut regs).expect("run"), Event::Syscall);
    assert_eq!(regs.orig_rax, 60);
    assert_eq!(regs.rdi, 4242);
}
