//! Generated documentation stays in sync with the code it describes.

use std::process::Command;

/// docs/compatibility.md is `veil debug syscalls`, verbatim.
#[test]
fn compatibility_table_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["debug", "syscalls"])
        .output()
        .expect("run veil debug syscalls");
    assert!(out.status.success(), "veil debug syscalls failed: {out:?}");
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/compatibility.md");
    let committed = std::fs::read_to_string(path).expect("read docs/compatibility.md");
    assert!(
        generated == committed,
        "docs/compatibility.md is stale: run `cargo run -p veil -- debug syscalls > docs/compatibility.md`"
    );
    assert!(
        generated.contains("| 0 | read | full |"),
        "the table lists read as fully supported"
    );
    assert!(
        generated.contains("| kcmp | unimplemented | ENOSYS"),
        "unimplemented calls show their errno"
    );
}
