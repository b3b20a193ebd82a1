//! Builds the vDSO image with the C compiler ($CC, else cc): a freestanding
//! shared object laid out by vdso.lds, which lib.rs embeds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let so = out.join("vdso.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-O2",
            "-fPIC",
            "-shared",
            "-nostdlib",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-builtin",
            "-mno-red-zone",
            "-Wall",
            "-Werror",
            "-Wl,-T,src/vdso.lds",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--hash-style=both",
            "-Wl,--no-undefined",
            "-Wl,-z,max-page-size=4096",
            "-Wl,-z,noexecstack",
            "-Wl,--eh-frame-hdr",
            "-Wl,-Bsymbolic",
            "src/vdso.c",
            "-o",
        ])
        .arg(&so)
        .status()
        .unwrap_or_else(|e| panic!("running {cc} to build the vDSO: {e}"));
    assert!(status.success(), "{cc} failed to build the vDSO");
    println!("cargo:rerun-if-changed=src/vdso.c");
    println!("cargo:rerun-if-changed=src/vdso.lds");
    println!("cargo:rerun-if-env-changed=CC");
}
