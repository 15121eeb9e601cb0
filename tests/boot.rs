//! End-to-end tests of the host tool: build an ISO with the real kernel from
//! tests/fixtures/boot-test.toml and boot it in Bochs, QEMU (SeaBIOS) and QEMU
//! (OVMF), checking the serial transcript against the kernel's contract; plus
//! the tool's own failure paths (GRUB giving up, a timeout, a bad config),
//! which need no kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TOOL: &str = env!("CARGO_BIN_EXE_tessera");

/// Lines of transcript shown when a boot test fails.
const TAIL_LINES: usize = 60;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn tool(args: &[&str]) -> Output {
    Command::new(TOOL)
        .args(args)
        .output()
        .expect("cannot run the tessera binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The work directory that a failed `tessera boot` kept and named on stderr.
fn work_directory(stderr: &str) -> PathBuf {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("tessera: kept the work directory "))
        .and_then(|rest| rest.split(" (").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no work directory in stderr:\n{stderr}"))
}

/// Builds an ISO from the fixture config; `kernel` overrides the kernel build.
fn build_iso(out: &Path, kernel: Option<&Path>) -> Result<PathBuf, String> {
    let config = fixture("boot-test.toml");
    let mut args = vec![
        "iso",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(kernel) = kernel {
        args.extend(["--kernel", kernel.to_str().unwrap()]);
    }
    let output = tool(&args);
    if output.status.success() {
        Ok(out.to_owned())
    } else {
        Err(format!(
            "tessera iso failed ({}):\n{}",
            output.status,
            text(&output.stderr)
        ))
    }
}

/// The ISO with the real kernel, built once and shared by the boot tests.
fn kernel_iso() -> &'static Path {
    static ISO: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match ISO.get_or_init(|| build_iso(&scratch("boot-test.iso"), None)) {
        Ok(path) => path,
        Err(error) => panic!("building the test ISO failed:\n{error}"),
    }
}

/// The same config with a text file for a kernel: GRUB refuses to boot it.
fn unbootable_iso() -> &'static Path {
    static ISO: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built =
        ISO.get_or_init(|| build_iso(&scratch("unbootable.iso"), Some(&fixture("gamma.txt"))));
    match built {
        Ok(path) => path,
        Err(error) => panic!("building the unbootable ISO failed:\n{error}"),
    }
}

/// One transcript requirement: a description and a test on a single line.
struct Expect {
    what: String,
    matches: Box<dyn Fn(&str) -> bool>,
}

fn expect(what: impl Into<String>, matches: impl Fn(&str) -> bool + 'static) -> Expect {
    Expect {
        what: what.into(),
        matches: Box::new(matches),
    }
}

/// What the kernel's transcript contract promises for the fixture config.
fn expectations() -> Vec<Expect> {
    let size = |name: &str| std::fs::metadata(fixture(name)).unwrap().len();
    let mut list = vec![
        expect("the banner `tessera v0.1.0`", |l| {
            l.contains("tessera v0.1.0")
        }),
        expect("the hypervisor command line", |l| {
            l.starts_with("boot: command line \"log=debug timeslice=10ms frobnicate=1\"")
        }),
        expect("the memory summary", |l| {
            l.starts_with("memory: ") && l.contains("MiB usable")
        }),
        expect("the CPU vendor", |l| {
            l.strip_prefix("cpu: vendor ")
                .is_some_and(|vendor| !vendor.trim().is_empty())
        }),
        expect("a warning naming `frobnicate`", |l| {
            l.contains("frobnicate")
                && l.to_lowercase().contains("warn")
                && !l.starts_with("boot: command line")
        }),
        expect("`tessera: powering off`", |l| {
            l.contains("tessera: powering off")
        }),
    ];
    let modules = [
        ("alpha.bin", "name=alpha mem=1M"),
        ("beta.bin", "name=beta mem=2M -- guest args here"),
        ("gamma.txt", "name=gamma role=data"),
    ];
    for (index, (file, cmdline)) in modules.into_iter().enumerate() {
        let prefix = format!("module {index}: 0x");
        let bytes = format!(" ({} bytes) ", size(file));
        let suffix = format!("\"{cmdline}\"");
        list.push(expect(
            format!("module line `{prefix}…{bytes}{suffix}`"),
            move |l| {
                l.starts_with(&prefix) && l.contains(&bytes) && l.trim_end().ends_with(&suffix)
            },
        ));
    }
    list
}

/// Boots the fixture ISO with `engine` and checks the transcript; `status` is
/// the exit status expected: 0, or 8 where the kernel boots but has no
/// backend yet for the engine's virtualization (QEMU's TCG offers SVM only).
fn boot_and_check(engine: &str, status: i32) {
    let iso = kernel_iso();
    let log = scratch(&format!("boot-{engine}.serial.log"));
    let output = tool(&[
        "boot",
        iso.to_str().unwrap(),
        "--engine",
        engine,
        "--timeout",
        "600",
        "--log",
        log.to_str().unwrap(),
    ]);
    let transcript = text(&output.stdout);
    let lines: Vec<&str> = transcript.lines().collect();
    let mut problems: Vec<String> = expectations()
        .iter()
        .filter(|e| !lines.iter().any(|l| (e.matches)(l)))
        .map(|e| format!("missing {}", e.what))
        .collect();
    let stderr = text(&output.stderr);
    if output.status.code() != Some(status) {
        problems.insert(
            0,
            format!("`tessera boot` exited with {}, not {status}", output.status),
        );
    }
    // QEMU's TCG emulates SVM with nested paging: the CPU report names its
    // features from CPUID Fn8000_000A, and that firmware left it usable.
    if engine.starts_with("qemu") {
        if !lines
            .iter()
            .any(|l| l.starts_with("cpu: SVM features: NPT") && l.contains(" ASIDs, revision "))
        {
            problems.push("no `cpu: SVM features: NPT …; N ASIDs, revision R` line".into());
        }
        if lines.iter().any(|l| l.contains("VM_CR.SVMDIS")) {
            problems.push("SVM reported as disabled by VM_CR".into());
        }
    }
    // The tool names the backend the engine exercises before it boots.
    let backend = if engine.starts_with("qemu") {
        "SVM under TCG"
    } else {
        "VMX"
    };
    let booting = format!(
        "tessera: booting {} with {engine}, {backend} (",
        iso.display()
    );
    if !stderr.contains(&booting) {
        problems.push(format!("stderr lacks `{booting}`"));
    }
    // The kernel says which backend runs the guests: SVM where QEMU's TCG
    // emulates it, VMX in Bochs.
    if status == 0 {
        let backend = if engine.starts_with("qemu") {
            "backend: AMD SVM with nested paging"
        } else {
            "backend: Intel VMX with EPT"
        };
        if !lines.iter().any(|l| l.starts_with(backend)) {
            problems.push(format!("no `{backend}` line"));
        }
    }
    if status == 8 && !stderr.contains("cannot run guests") {
        problems.push("stderr lacks `cannot run guests`".into());
    }
    if !problems.is_empty() {
        let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        panic!(
            "boot with {engine} failed:\n  {}\n--- last {} transcript lines (raw log: {})\n{}\n\
             --- stderr\n{}",
            problems.join("\n  "),
            tail.len(),
            log.display(),
            tail.join("\n"),
            stderr
        );
    }
    assert!(
        !stderr.contains("kept the work directory"),
        "a clean power-off kept its work directory:\n{stderr}"
    );
}

#[test]
fn boots_in_bochs() {
    boot_and_check("bochs", 0);
}

/// QEMU's TCG emulates SVM with nested paging, which tessera's SVM backend
/// runs the guests with: the boot ends in a clean power-off, as in Bochs.
const QEMU_STATUS: i32 = 0;

#[test]
fn boots_in_qemu_with_seabios() {
    boot_and_check("qemu", QEMU_STATUS);
}

#[test]
fn boots_in_qemu_with_ovmf() {
    boot_and_check("qemu-uefi", QEMU_STATUS);
}

#[test]
fn the_iso_has_the_documented_tree() {
    let iso = unbootable_iso();
    let output = Command::new("xorriso")
        .args(["-indev", iso.to_str().unwrap(), "-find", "/", "-type", "f"])
        .output()
        .expect("cannot run xorriso");
    let listing = text(&output.stdout);
    for path in [
        "/boot/tessera.elf",
        "/boot/grub/grub.cfg",
        "/guests/alpha.bin",
        "/guests/beta.bin",
        "/guests/gamma.txt",
        "/efi.img",
    ] {
        assert!(
            listing.lines().any(|l| l.trim_matches('\'') == path),
            "{path} missing from the ISO:\n{listing}"
        );
    }
}

#[test]
fn grub_failing_to_load_the_kernel_is_reported_at_once() {
    let iso = unbootable_iso();
    let output = tool(&[
        "boot",
        iso.to_str().unwrap(),
        "--engine",
        "qemu",
        "--timeout",
        "120",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "stderr:\n{stderr}");
    assert!(
        stderr.contains("no multiboot header found"),
        "stderr:\n{stderr}"
    );
    // GRUB's messages reach the console, cleaned of its escape sequences.
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("error: no multiboot header found."),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "escape sequences in {stdout:?}");
    // Kept by the tool for inspection after a failure; this one was expected.
    let _ = std::fs::remove_dir_all(work_directory(&stderr));
}

#[test]
fn a_timeout_fails_and_leaves_no_emulator_behind() {
    // Bochs needs seconds to reach GRUB, so a one-second limit always strikes first.
    let iso = unbootable_iso();
    let output = tool(&[
        "boot",
        iso.to_str().unwrap(),
        "--engine",
        "bochs",
        "--timeout",
        "1",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "stderr:\n{stderr}");
    assert!(stderr.contains("timed out"), "stderr:\n{stderr}");

    let workdir = work_directory(&stderr);
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&workdir))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        survivors.is_empty(),
        "processes still running in {}: {survivors:?}",
        workdir.display()
    );
    let _ = std::fs::remove_dir_all(&workdir);
}

#[test]
fn a_bad_config_is_rejected_before_any_build() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[vm]]\nname = \"a\"\nimage = \"a.bin\"\nmem = \"1M\"\nmemroy = \"2M\"\n",
    )
    .unwrap();
    let out = dir.path().join("bad.iso");
    let output = tool(&[
        "iso",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("memroy"), "stderr:\n{stderr}");
    assert!(
        !stderr.contains("building"),
        "built before checking:\n{stderr}"
    );
    assert!(!out.exists());
}
