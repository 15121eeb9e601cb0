//! Helpers shared by the emulator tests: building the kernel and the guest
//! images once per test binary, making ISOs, booting them, and checking a
//! serial transcript with every failed check reported at once.
#![allow(dead_code)] // each test binary uses its own part of these

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const TOOL: &str = env!("CARGO_BIN_EXE_tessera");
pub const TAIL_LINES: usize = 80;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("cannot run a command")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The kernel ELF, built once.
pub fn kernel() -> &'static Path {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let output = run(Command::new(TOOL).arg("kernel"));
        assert!(
            output.status.success(),
            "tessera kernel failed:\n{}",
            text(&output.stderr)
        );
        PathBuf::from(text(&output.stdout).trim())
    })
}

/// guest-blobs/build/, built once.
pub fn guest_images() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = root().join("guest-blobs");
    BUILT.get_or_init(|| {
        // Building the kernel through the tool first also installs the
        // bare-metal Rust target the guests need, on a fresh machine.
        kernel();
        let output = run(Command::new("make").arg("-C").arg(&dir));
        assert!(
            output.status.success(),
            "make -C guest-blobs failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    });
    dir.join("build")
}

/// An ISO from a config file of the repository.
pub fn iso_from_config(config: &Path, name: &str) -> PathBuf {
    guest_images();
    let out = scratch(name);
    let output = run(Command::new(TOOL).args([
        "iso".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--kernel".as_ref(),
        kernel().as_os_str(),
    ]));
    assert!(
        output.status.success(),
        "tessera iso failed:\n{}",
        text(&output.stderr)
    );
    out
}

/// The ISO of `config` (a file of guest-blobs/), built once in `cell` so
/// that the tests of several engines share it.
pub fn shared_iso(cell: &'static OnceLock<PathBuf>, config: &str, name: &str) -> &'static Path {
    cell.get_or_init(|| iso_from_config(&root().join("guest-blobs").join(config), name))
}

/// Boots in Bochs; returns the transcript lines, whether the run ended in a
/// clean power-off with every module running (exit status 0), and stderr.
pub fn boot_in_bochs(iso: &Path, name: &str) -> (Vec<String>, bool, String) {
    let (lines, code, stderr) = boot_with(iso, name, "bochs");
    (lines, code == Some(0), stderr)
}

/// Boots with `engine`; returns the transcript lines, the tool's exit
/// status and stderr.
pub fn boot_with(iso: &Path, name: &str, engine: &str) -> (Vec<String>, Option<i32>, String) {
    boot_with_timeout(iso, name, engine, 1200)
}

/// [`boot_with`] with a timeout of `seconds`.
pub fn boot_with_timeout(
    iso: &Path,
    name: &str,
    engine: &str,
    seconds: u32,
) -> (Vec<String>, Option<i32>, String) {
    let timeout = seconds.to_string();
    let log = scratch(&format!("{name}.serial.log"));
    let output = run(Command::new(TOOL)
        .args([
            "boot".as_ref(),
            iso.as_os_str(),
            "--engine".as_ref(),
            engine.as_ref(),
            "--timeout".as_ref(),
            timeout.as_ref(),
            "--log".as_ref(),
            log.as_os_str(),
        ])
        .args(clock_args(engine)));
    let lines = text(&output.stdout).lines().map(str::to_owned).collect();
    (lines, output.status.code(), text(&output.stderr))
}

/// What a guest test adds to `boot` for `engine`: in QEMU, a TSC that counts
/// instructions (`-icount shift=0,sleep=off`), as Bochs' always does. The
/// slices, the virtual PC's timers and the guests' own deadlines all run on
/// the TSC, so that the host's load (CI runs two emulators on two cores)
/// cannot make a probe late or a neighbour starve, in either emulator. It
/// costs QEMU about half its speed (a Linux boot natively: 5.8 s, 10.9 s
/// counting), which leaves it about as fast as Bochs.
fn clock_args(engine: &str) -> &'static [&'static str] {
    match Backend::of(engine) {
        Backend::Svm => &["--count-instructions"],
        Backend::Vmx => &[],
    }
}

/// Collects failed checks and reports them all with the transcript's tail.
pub struct Checks<'a> {
    pub lines: &'a [String],
    pub problems: Vec<String>,
}

impl<'a> Checks<'a> {
    pub fn new(lines: &'a [String]) -> Self {
        Checks {
            lines,
            problems: Vec::new(),
        }
    }

    /// The index of the first line containing every one of `parts`.
    pub fn find(&self, parts: &[&str]) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| parts.iter().all(|part| line.contains(part)))
    }

    pub fn has(&mut self, parts: &[&str]) -> Option<usize> {
        let found = self.find(parts);
        if found.is_none() {
            self.problems.push(format!("no line with {parts:?}"));
        }
        found
    }

    pub fn before(&mut self, first: &[&str], second: &[&str], why: &str) {
        if let (Some(a), Some(b)) = (self.has(first), self.has(second)) {
            if a >= b {
                self.problems.push(format!(
                    "{why}: {first:?} (line {a}) should come before {second:?} (line {b})"
                ));
            }
        }
    }

    pub fn count(&self, parts: &[&str]) -> usize {
        self.lines
            .iter()
            .filter(|line| parts.iter().all(|part| line.contains(part)))
            .count()
    }

    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.problems.push(what.into());
        }
    }

    /// The summary table has a row for `vm` in `state` whose text holds `result`.
    pub fn summary(&mut self, vm: &str, state: &str, result: &str) {
        match summary_row(self.lines, vm) {
            Some(words) => {
                self.check(
                    words.get(1) == Some(&state),
                    format!("{vm} is not `{state}`: {words:?}"),
                );
                self.check(
                    words.join(" ").contains(result),
                    format!("{vm}'s result lacks `{result}`: {words:?}"),
                );
            }
            None => self.check(false, format!("no summary row for {vm}")),
        }
    }

    pub fn finish(self, stderr: &str) {
        if !self.problems.is_empty() {
            let tail = &self.lines[self.lines.len().saturating_sub(TAIL_LINES)..];
            panic!(
                "{} problem(s):\n  {}\n--- last {} transcript lines\n{}\n--- stderr\n{}",
                self.problems.len(),
                self.problems.join("\n  "),
                tail.len(),
                tail.join("\n"),
                stderr
            );
        }
    }
}

/// The summary-table row of a VM, split into words.
pub fn summary_row<'l>(lines: &'l [String], vm: &str) -> Option<Vec<&'l str>> {
    let table = lines
        .iter()
        .position(|l| l.contains("tessera: all VMs have stopped"))?;
    lines[table..]
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.first() == Some(&vm))
}

/// The count of one exit reason in a VM's `exits of` line.
pub fn exit_count(lines: &[String], vm: &str, reason: &str) -> u64 {
    let prefix = format!("exits of {vm}:");
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
        .and_then(|rest| {
            rest.split(',').find_map(|item| {
                let item = item.trim();
                item.strip_prefix(reason)?.trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// Boots with `engine` within `seconds`; returns the transcript lines,
/// whether the run ended in a clean power-off with every module running
/// (exit status 0), and stderr.
pub fn boot_within(
    iso: &Path,
    name: &str,
    engine: &str,
    seconds: u32,
) -> (Vec<String>, bool, String) {
    let (lines, code, stderr) = boot_with_timeout(iso, name, engine, seconds);
    (lines, code == Some(0), stderr)
}

/// [`boot_with`] reduced to whether the run ended cleanly, as
/// [`boot_in_bochs`] for any engine.
pub fn boot_cleanly(iso: &Path, name: &str, engine: &str) -> (Vec<String>, bool, String) {
    let (lines, code, stderr) = boot_with(iso, name, engine);
    (lines, code == Some(0), stderr)
}

/// The kernel backend an engine exercises, for the few checks that depend
/// on it: the names of exit reasons in the summary are the backend's own
/// (VMX's "VMX-preemption timer", "EPT violation", "VMCALL", "exception or
/// NMI"); SVM has other exits, named by its backend. Every other check is
/// the same for both. (Also how a test boots: see `clock_args`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Intel VMX: Bochs, BIOS or UEFI.
    Vmx,
    /// AMD SVM: QEMU's TCG, SeaBIOS or OVMF.
    Svm,
}

impl Backend {
    pub fn of(engine: &str) -> Backend {
        match engine {
            "bochs" | "bochs-uefi" => Backend::Vmx,
            "qemu" | "qemu-uefi" => Backend::Svm,
            // KVM's depends on the host, and no test boots it.
            other => panic!("no test knows which backend {other} exercises"),
        }
    }
}

/// The EXITS column of a VM's summary row: every exit of the VM, whatever
/// the backend calls them.
pub fn exits_total(lines: &[String], vm: &str) -> Option<u64> {
    summary_row(lines, vm)?.get(2)?.parse().ok()
}

/// The Linux test guest (target/linux/vmlinuz and initramfs.cpio.gz), built
/// once by guest-blobs/linux/fetch-and-build.sh: the first run on a machine
/// downloads the Debian kernel package and busybox-static with apt-get.
pub fn linux_guest() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let output =
            run(Command::new("bash").arg(root().join("guest-blobs/linux/fetch-and-build.sh")));
        assert!(
            output.status.success(),
            "guest-blobs/linux/fetch-and-build.sh failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    });
    root().join("target/linux")
}

/// Boots `iso` with `engine` and `mem_mib` of emulated memory; returns the
/// transcript lines, whether the run ended in a clean power-off with every
/// module running, and stderr.
pub fn boot_with_memory(
    iso: &Path,
    name: &str,
    engine: &str,
    mem_mib: u32,
    seconds: u32,
) -> (Vec<String>, bool, String) {
    let log = scratch(&format!("{name}.serial.log"));
    let output = run(Command::new(TOOL)
        .args([
            "boot".as_ref(),
            iso.as_os_str(),
            "--engine".as_ref(),
            engine.as_ref(),
            "--timeout".as_ref(),
            seconds.to_string().as_ref(),
            "--mem".as_ref(),
            mem_mib.to_string().as_ref(),
            "--log".as_ref(),
            log.as_os_str(),
        ])
        .args(clock_args(engine)));
    let lines = text(&output.stdout).lines().map(str::to_owned).collect();
    (lines, output.status.code() == Some(0), text(&output.stderr))
}
