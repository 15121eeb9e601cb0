//! The scale measure in Bochs, CI-sized: `tessera bench --scale 64` boots
//! 64 copies of the race guest on one CPU (after the exit-path benchmark,
//! which also gives the hypervisor's loaded size), and every copy must
//! report, share the CPU fairly (Jain's index ≥ 0.95) and cost the host at
//! most 24 KiB beyond its RAM. 256 copies are `bench`'s default but take
//! about a minute of Bochs, so they stay out of the test suite.

use std::process::Command;

const TOOL: &str = env!("CARGO_BIN_EXE_tessera");
const COPIES: u32 = 64;
const MIN_JAIN: f64 = 0.95;
const MAX_BYTES_PER_VM: u64 = 24 * 1024;

#[test]
fn sixty_four_vms_share_one_cpu_fairly() {
    let output = Command::new(TOOL)
        .args(["bench", "--no-linux", "--scale", &COPIES.to_string()])
        .output()
        .expect("cannot run tessera bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = || {
        let lines: Vec<&str> = stdout.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- last stdout lines\n{tail}\n--- stderr\n{stderr}")
    };
    assert!(
        output.status.success(),
        "tessera bench failed ({})\n{}",
        output.status,
        context()
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("hypervisor: ") && l.contains(" KiB loaded (")),
        "no hypervisor size line\n{}",
        context()
    );

    // bench fails unless every copy reported, but count them here too: the
    // transcripts stream to stdout before the report.
    let mut reported: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once(" | race: progress "))
        .map(|(name, _)| name.trim())
        .collect();
    reported.sort_unstable();
    reported.dedup();
    let expected: Vec<String> = (1..=COPIES).map(|i| format!("race-{i:03}")).collect();
    assert_eq!(reported, expected, "not every copy reported\n{}", context());

    // The row of the scale table: VMs, min, median, max, Jain, bytes "bytes".
    let row: Vec<&str> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.len() == 7 && words[0] == "64" && words[6] == "bytes")
        .unwrap_or_else(|| panic!("no scale row for {COPIES} VMs\n{}", context()));
    let number = |index: usize| -> f64 {
        row[index]
            .parse()
            .unwrap_or_else(|_| panic!("column {index} of {row:?} is not a number"))
    };
    let (min, max, jain, bytes) = (number(1), number(3), number(4), number(5));
    assert!(min > 0.0, "a copy made no progress: {row:?}");
    assert!(
        jain >= MIN_JAIN,
        "Jain's index {jain} < {MIN_JAIN} (progress {min}..{max}): {row:?}"
    );
    assert!(
        bytes <= MAX_BYTES_PER_VM as f64,
        "{bytes} bytes of host memory per VM > {MAX_BYTES_PER_VM}: {row:?}"
    );
}
