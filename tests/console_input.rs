//! `boot --input` end to end, without the kernel: GRUB alone reads the
//! serial port (`terminal_input serial` and its `read` command), so these
//! show that the scripted bytes reach the emulated UART of each engine,
//! in order and complete, and that `@wait`, `@quit` and a stalled wait end
//! the run as documented.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::{run, scratch, text, TOOL};

/// GRUB prints a prompt, echoes one line it reads from COM1, then reads
/// again forever.
const GRUB_CFG: &str = "\
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
echo \"probe: ready\"
read answer
echo \"probe: got [$answer]\"
read never
";

fn probe_iso() -> &'static PathBuf {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    ISO.get_or_init(|| {
        let tree = scratch("console-input-tree");
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(tree.join("boot/grub")).unwrap();
        std::fs::write(tree.join("boot/grub/grub.cfg"), GRUB_CFG).unwrap();
        let iso = scratch("console-input.iso");
        let output = run(Command::new("grub-mkrescue").arg("-o").arg(&iso).arg(&tree));
        assert!(output.status.success(), "{}", text(&output.stderr));
        iso
    })
}

/// Boots the probe with `script`; returns stdout, the exit status, stderr.
fn boot(engine: &str, name: &str, script: &str) -> (String, Option<i32>, String) {
    let path = scratch(&format!("{name}.script"));
    std::fs::write(&path, script).unwrap();
    let output = run(Command::new(TOOL)
        .args(["boot".as_ref(), probe_iso().as_os_str()])
        .args(["--engine", engine, "--timeout", "300", "--input"])
        .arg(&path));
    (
        text(&output.stdout),
        output.status.code(),
        text(&output.stderr),
    )
}

fn typed_line_arrives(engine: &str) {
    // Longer than the UART's 16-byte FIFO: nothing may be dropped.
    let line = "typed into COM1: 0123456789 abcdefghijklmnopqrstuvwxyz";
    let script = format!("@timeout 240\n@wait probe: ready\n{line}\n@wait probe: got\n@quit\n");
    let (stdout, code, stderr) = boot(engine, &format!("console-input-{engine}"), &script);
    // GRUB wraps at 80 columns, at a space or not: compare without any.
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    assert!(
        squeeze(&stdout).contains(&squeeze(&format!("probe: got [{line}]"))),
        "{engine}: the line did not come back whole:\n{stdout}\n{stderr}"
    );
    assert_eq!(code, Some(0), "{engine}: {stderr}");
    assert!(
        stderr.contains("the emulator was ended (`@quit` at "),
        "{stderr}"
    );
}

#[test]
fn a_typed_line_reaches_grub_in_qemu() {
    typed_line_arrives("qemu");
}

#[test]
fn a_typed_line_reaches_grub_in_bochs() {
    typed_line_arrives("bochs");
}

#[test]
fn a_wait_that_never_ends_fails_with_its_place() {
    let (_, code, stderr) = boot(
        "qemu",
        "console-input-stall",
        "@wait probe: ready\n@timeout 2\n@wait never printed\n",
    );
    assert_eq!(code, Some(9), "{stderr}");
    assert!(
        stderr.contains("console-input-stall.script:3 for a line containing \"never printed\""),
        "{stderr}"
    );
}

#[test]
fn a_bad_script_is_refused_before_booting() {
    let (_, code, stderr) = boot("qemu", "console-input-bad", "ok\n@wiat x\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("console-input-bad.script:2: unknown directive `@wiat`"),
        "{stderr}"
    );
    assert!(!stderr.contains("booting"), "{stderr}");
}
