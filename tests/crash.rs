//! The hypervisor's own crash reports, provoked with `crash-test=` and read
//! back from the serial transcript under QEMU (fast, and the report path does
//! not depend on VMX).

use std::path::{Path, PathBuf};
use std::process::Command;

const TOOL: &str = env!("CARGO_BIN_EXE_tessera");

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Boots a VM-less ISO whose command line asks for `kind`; returns the
/// tool's exit code and the transcript.
fn crash(kind: &str) -> (Option<i32>, String) {
    let config = scratch(&format!("crash-{kind}.toml"));
    std::fs::write(
        &config,
        format!("[hypervisor]\ncmdline = \"log=info crash-test={kind}\"\n"),
    )
    .unwrap();
    let iso = scratch(&format!("crash-{kind}.iso"));
    let output = Command::new(TOOL)
        .args(["iso".as_ref(), "--config".as_ref(), config.as_os_str()])
        .args(["--out".as_ref(), iso.as_os_str()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tessera iso failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(TOOL)
        .args(["boot".as_ref(), iso.as_os_str()])
        .args(["--engine", "qemu", "--timeout", "300"])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn assert_report(transcript: &str, code: Option<i32>, needles: &[&str]) {
    let missing: Vec<&&str> = needles
        .iter()
        .filter(|n| !transcript.contains(**n))
        .collect();
    assert!(
        missing.is_empty() && code == Some(3),
        "exit code {code:?} (want 3, a crash report); missing {missing:?}\n--- transcript\n{transcript}"
    );
}

#[test]
fn a_page_fault_gets_a_full_report() {
    let (code, transcript) = crash("page-fault");
    assert_report(
        &transcript,
        code,
        &[
            "tessera: CRASH: CPU exception 14 (#PF page fault) in the hypervisor",
            "error code 0x0   RIP 0x",
            "CR2 0x0000000000000000",
            "RAX 0x",
            "R15 0x",
            "page fault at 0x0: supervisor read access, page not present",
            "tessera: system halted",
        ],
    );
}

#[test]
fn a_stack_overflow_hits_the_guard_page_and_is_reported() {
    let (code, transcript) = crash("stack-overflow");
    assert_report(
        &transcript,
        code,
        &[
            // The #PF on the guard page cannot push its frame on the same
            // stack; the double fault runs on its own IST stack.
            "tessera: CRASH: CPU exception 8 (#DF double fault) in the hypervisor",
            "CR2 lies in the guard page below the boot stack: a stack overflow",
            "tessera: system halted",
        ],
    );
}

#[test]
fn a_panic_is_reported_with_its_location() {
    let (code, transcript) = crash("panic");
    assert_report(
        &transcript,
        code,
        &[
            "tessera: PANIC at kernel/src/main.rs:",
            "crash-test=panic",
            "tessera: system halted",
        ],
    );
}
