//! End-to-end tests of guests under tessera: in Bochs (VMX, the only
//! engine here that emulates it) the demo's guests run side by side, under
//! BIOS and under UEFI (OVMF), the crasher is contained, the spinner is
//! preempted, extended state survives VM switches, bad modules are refused
//! one by one while the rest run, the bench guest reports, a hostile
//! guest's misuse and triple fault are contained, and a freestanding C
//! guest built as docs/c-guest.md says runs. The demo, the bad modules and
//! the hostile guest also run in QEMU's TCG (SVM: the `_in_qemu` tests),
//! with the same checks.
//!
//! Each test boots a real ISO with the real kernel and asserts on the serial
//! transcript; a failure prints the transcript's tail.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The demo ISO, built once for every engine's test.
fn demo_iso() -> &'static Path {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    shared_iso(&ISO, "demo.toml", "vmx-demo.iso")
}

#[test]
fn demo_guests_run_side_by_side() {
    demo_runs("bochs");
}

/// The same demo under UEFI (Bochs with OVMF): GRUB's EFI build hands over,
/// and the VMX guests run exactly as under BIOS.
#[test]
fn demo_guests_run_under_uefi() {
    demo_runs_under_uefi("bochs-uefi");
}

#[test]
fn demo_guests_run_side_by_side_in_qemu() {
    demo_runs("qemu");
}

#[test]
fn demo_guests_run_under_uefi_in_qemu() {
    demo_runs_under_uefi("qemu-uefi");
}

/// The demo booted with `engine`, checked.
fn demo_runs(engine: &str) {
    let (lines, clean, stderr) = boot_cleanly(demo_iso(), &format!("demo-{engine}"), engine);
    check_demo(&lines, clean, &stderr, Backend::of(engine));
}

/// The demo booted with `engine`, a UEFI one: GRUB's EFI build hands over
/// and the guests run exactly as under BIOS.
fn demo_runs_under_uefi(engine: &str) {
    let (lines, clean, stderr) = boot_cleanly(demo_iso(), &format!("demo-{engine}"), engine);
    let mut c = Checks::new(&lines);
    c.has(&["boot: GRUB", "on UEFI"]);
    // OVMF mirrors GRUB's console to COM1; the tool shows each line once.
    c.check(
        c.count(&["Booting `tessera'"]) <= 1 && c.find(&["Booting `tessera'Booting"]).is_none(),
        "GRUB's mirrored lines are shown twice",
    );
    c.finish(&stderr);
    check_demo(&lines, clean, &stderr, Backend::of(engine));
}

/// What the demo config promises, under any firmware and either backend.
fn check_demo(lines: &[String], clean: bool, stderr: &str, backend: Backend) {
    let mut c = Checks::new(lines);
    c.check(clean, "the run did not end in a clean power-off");

    // Every guest's output, prefixed with its name.
    c.has(&["   hello | Hello from a real-mode guest!"]);
    c.has(&["   hello | hello: entered at CS:IP 0000:7C00"]);
    c.has(&[" counter | counter: I am VM 2 \"counter\" with 8192 KiB of RAM"]);
    c.has(&[" counter | counter: done: 664579 primes below 10000000, as expected"]);
    c.has(&[" spinner | spinner: done (state 0x4fef12838dabb2a0, as expected)"]);
    c.has(&["    xs-a | xstate: all checks passed"]);
    c.has(&["    xs-b | xstate: all checks passed"]);
    c.check(
        c.find(&["MISMATCH"]).is_none(),
        "an xstate guest saw another VM's register values",
    );

    // Interleaved: each long-running guest prints while the others are
    // still in the middle of their work.
    c.before(
        &["spinner | spinner: spinning"],
        &["counter | counter: done"],
        "counter and spinner do not interleave",
    );
    c.before(
        &["counter | counter: 25%"],
        &["spinner | spinner: done"],
        "the spinner starved the counter",
    );
    c.before(
        &["xs-b | xstate: phase 1"],
        &["xs-a | xstate: all checks passed"],
        "the xstate guests do not interleave",
    );

    // The crasher is stopped with a report, restarted per restart=on-crash,
    // and the others go on to completion afterwards. VMX names the fault
    // an EPT violation; under SVM it is a nested page fault, whatever the
    // report calls it, with the same address, access and RIP.
    let crash: &[&str] = match backend {
        Backend::Vmx => &[
            "[ERROR] vm crasher: stopped: EPT violation: write of guest-physical 0x40000000",
            "outside its 2 MiB of RAM, at RIP 0x",
        ],
        Backend::Svm => &[
            "[ERROR] vm crasher: stopped: ",
            "write of guest-physical 0x40000000",
            "outside its 2 MiB of RAM, at RIP 0x",
        ],
    };
    c.has(crash);
    c.check(
        c.count(crash) == 4,
        format!(
            "the crasher should stop 4 times (first run + 3 restarts), stopped {} times",
            c.count(crash)
        ),
    );
    c.has(&["vm crasher: restarting (3 of at most 3)"]);
    c.before(
        crash,
        &["counter | counter: done"],
        "the counter did not outlive the crasher",
    );

    // The summary table.
    c.has(&["tessera: all VMs have stopped"]);
    let crashed = match backend {
        Backend::Vmx => "EPT violation: write of guest-physical 0x40000000",
        Backend::Svm => "write of guest-physical 0x40000000",
    };
    for (vm, state, result) in [
        ("hello", "halted", "HLT"),
        ("counter", "exited", "exit code 0"),
        ("spinner", "exited", "exit code 0"),
        ("crasher", "crashed", crashed),
        ("xs-a", "exited", "exit code 0"),
        ("xs-b", "exited", "exit code 0"),
    ] {
        c.summary(vm, state, result);
    }
    // The spinner makes no exits of its own beyond 4 hypercalls and a
    // CPUID: everything else it got is the slice timer taking the CPU back.
    let spinner = exits_total(lines, "spinner").unwrap_or(0);
    c.check(
        spinner >= 5 + 10,
        format!("the spinner made {spinner} exits: preempted fewer than 10 times"),
    );
    if backend == Backend::Vmx {
        let preemptions = exit_count(lines, "spinner", "VMX-preemption timer");
        c.check(
            preemptions >= 10,
            format!("the spinner was preempted only {preemptions} times"),
        );
    }
    // hello's two lines go out through COM1 one character at a time, a
    // status read and a write each: 128 port exits, and its HLT.
    let hello = exits_total(lines, "hello").unwrap_or(0);
    c.check(
        hello > 128,
        format!("hello made {hello} exits: its port I/O was not counted"),
    );
    if backend == Backend::Vmx {
        c.check(
            exit_count(lines, "hello", "I/O instruction") >= 128,
            "hello's port I/O exits were not counted as such",
        );
    }
    c.has(&["tessera: powering off"]);
    c.finish(stderr);
}

/// A hand-written grub.cfg, so that the kernel — not the host tool, which
/// refuses such configs — meets each malformed module.
#[test]
fn bad_modules_are_refused_and_the_rest_run() {
    bad_modules_are_refused("bochs");
}

#[test]
fn bad_modules_are_refused_and_the_rest_run_in_qemu() {
    bad_modules_are_refused("qemu");
}

/// The ISO of malformed modules between good ones, built once.
fn bad_modules_iso() -> &'static Path {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    ISO.get_or_init(build_bad_modules_iso)
}

fn build_bad_modules_iso() -> PathBuf {
    let images = guest_images();
    let tree = scratch("bad-modules");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("boot/grub")).unwrap();
    std::fs::create_dir_all(tree.join("guests")).unwrap();
    std::fs::copy(kernel(), tree.join("boot/tessera.elf")).unwrap();
    std::fs::copy(images.join("hello.bin"), tree.join("guests/hello.bin")).unwrap();
    std::fs::copy(images.join("counter.elf"), tree.join("guests/counter.elf")).unwrap();
    let counter = std::fs::read(images.join("counter.elf")).unwrap();
    std::fs::write(tree.join("guests/truncated.elf"), &counter[..300]).unwrap();
    std::fs::write(tree.join("guests/empty.bin"), b"").unwrap();
    // Multiboot kernels a loader must refuse: mbtest wanting a video mode
    // (header flag 2, checksum kept right), and mbtest with a checksum
    // that does not add up.
    let mbtest = std::fs::read(images.join("mbtest.elf")).unwrap();
    let header = mbtest[..mbtest.len().min(8192)]
        .chunks_exact(4)
        .position(|word| word == 0x1BAD_B002u32.to_le_bytes())
        .expect("mbtest has a Multiboot header")
        * 4;
    let word = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut video = mbtest.clone();
    let flags = word(&video, header + 4) | 1 << 2;
    let checksum = 0u32.wrapping_sub(0x1BAD_B002).wrapping_sub(flags);
    video[header + 4..header + 8].copy_from_slice(&flags.to_le_bytes());
    video[header + 8..header + 12].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(tree.join("guests/video.elf"), &video).unwrap();
    let mut unsummed = mbtest.clone();
    unsummed[header + 8] ^= 1;
    std::fs::write(tree.join("guests/unsummed.elf"), &unsummed).unwrap();
    std::fs::copy(images.join("mbtest.elf"), tree.join("guests/mbtest.elf")).unwrap();
    // Bytes, not a str: module 9's line is deliberately not UTF-8 (0xE9 is
    // Latin-1 "é"); GRUB passes it on as it is.
    std::fs::write(
        tree.join("boot/grub/grub.cfg"),
        b"set timeout=0\nset timeout_style=hidden\nmenuentry tessera {\n\
         multiboot2 /boot/tessera.elf log=info\n\
         module2 /guests/hello.bin name=hello mem=1M\n\
         module2 /guests/truncated.elf name=truncated mem=2M\n\
         module2 /guests/empty.bin name=empty mem=1M\n\
         module2 /guests/counter.elf name=toolarge mem=64K\n\
         module2 /guests/hello.bin name=hello mem=1M\n\
         module2 /guests/hello.bin name=greedy mem=64G\n\
         module2 /guests/hello.bin name=odd mem=1M colour=blue\n\
         module2 /guests/counter.elf name=counter mem=4M\n\
         module2 /guests/hello.bin name=pinned mem=1M cpu=1\n\
         module2 /guests/hello.bin name=caf\xe9 mem=1M\n\
         module2 /guests/video.elf name=video mem=2M\n\
         module2 /guests/unsummed.elf name=unsummed mem=2M\n\
         module2 /guests/mbtest.elf name=orphan mem=2M modules=nothere\n\
         boot\n}\n",
    )
    .unwrap();
    let iso = scratch("bad-modules.iso");
    let output = run(Command::new("grub-mkrescue").arg("-o").arg(&iso).arg(&tree));
    assert!(
        output.status.success(),
        "grub-mkrescue failed:\n{}",
        text(&output.stderr)
    );
    iso
}

/// Every malformed module is refused with its reason, by the kernel, and
/// the good ones before and after them run.
fn bad_modules_are_refused(engine: &str) {
    let (lines, code, stderr) =
        boot_with(bad_modules_iso(), &format!("bad-modules-{engine}"), engine);
    let mut c = Checks::new(&lines);
    // A clean power-off, but the tool says modules were refused.
    c.check(
        code == Some(7),
        format!("`tessera boot` exited with {code:?}, not 7 (modules refused)"),
    );
    c.check(
        stderr.contains("refused 11 modules"),
        "stderr does not count the 11 refused modules",
    );
    c.has(&[
        "[ERROR] vm truncated: bad ELF:",
        "reach past the end of the image; VM not created",
    ]);
    c.has(&["[ERROR] vm empty: the image is empty; VM not created"]);
    c.has(&[
        "[ERROR] vm toolarge: segment 0x100000..",
        "does not fit in 64 KiB of guest RAM; VM not created",
    ]);
    c.has(&["[ERROR] vm hello: module 4 uses the name `hello` that another module already has"]);
    c.has(&[
        "[ERROR] vm greedy: mem=64 GiB is more than the",
        "still free; VM not created",
    ]);
    c.has(&["[ERROR] module 6 (\"name=odd mem=1M colour=blue\"): unknown option `colour`"]);
    c.has(&[
        "[ERROR] module 8 (\"name=pinned mem=1M cpu=1\"): cpu= is not supported yet: ",
        "; VM not created",
    ]);
    // Not silently run as `module9` with 16 MiB: refused, the bad byte shown.
    c.has(&[
        "[ERROR] module 9 (\"name=caf\u{FFFD} mem=1M\"): \
         the module's command line is not valid UTF-8",
        "; VM not created",
    ]);
    // Multiboot kernels: each refusal names the reason.
    c.has(&[
        "[ERROR] vm video: Multiboot header flag 2 requires a video mode, \
         and tessera has no display; VM not created",
    ]);
    c.has(&[
        "[ERROR] vm unsummed: Multiboot header at offset 0x",
        ": checksum 0x",
        "; VM not created",
    ]);
    c.has(&[
        "[ERROR] vm orphan: modules= names `nothere`, which is not a data module \
         (role=data) of this boot; VM not created",
    ]);
    // The good modules, before and after the bad ones, still run.
    c.has(&["   hello | Hello from a real-mode guest!"]);
    c.has(&[" counter | counter: done: 664579 primes"]);
    c.check(
        c.count(&["   hello | Hello from a real-mode guest!"]) == 1,
        "the duplicate `hello` ran anyway",
    );
    c.has(&["tessera: all VMs have stopped"]);
    // Every refused module is a row of the summary, with its reason; one
    // whose options could not be read is named by its position.
    for (vm, reason) in [
        ("truncated", "not created: bad ELF"),
        ("empty", "not created: the image is empty"),
        ("toolarge", "not created: segment 0x100000"),
        ("greedy", "not created: mem=64 GiB"),
        ("module-6", "not created: unknown option `colour`"),
        ("module-8", "not created: cpu= is not supported yet"),
        (
            "module-9",
            "not created: the module's command line is not valid UTF-8",
        ),
        (
            "video",
            "not created: Multiboot header flag 2 requires a video mode",
        ),
        ("unsummed", "not created: Multiboot header at offset"),
        ("orphan", "not created: modules= names `nothere`"),
    ] {
        c.summary(vm, "refused", reason);
    }
    // The duplicate `hello` has a refused row after the real one's.
    c.summary("hello", "halted", "HLT");
    c.check(
        lines.iter().any(|l| {
            l.trim_start().starts_with("hello ")
                && l.contains("not created: module 4 repeats the name")
        }),
        "no refused row for the duplicate hello",
    );
    c.finish(&stderr);
}

#[test]
fn bench_guest_reports_exit_round_trips() {
    let iso = iso_from_config(&root().join("guest-blobs/bench.toml"), "vmx-bench.iso");
    let (lines, clean, stderr) = boot_in_bochs(&iso, "vmx-bench");
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");
    for operation in [
        "cpuid",
        "vmcall",
        "port-in",
        "mmio-read",
        "lapic-timer-irq",
        "pit-write",
        "baseline",
    ] {
        let prefix = format!("bench: {operation} ");
        let figure = lines.iter().find_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            rest.split_whitespace().next()?.parse::<u64>().ok()
        });
        c.check(
            figure.is_some_and(|f| f > 0),
            format!("no figure for {operation}"),
        );
    }
    // Each timed operation really exited: 10000 samples plus warm-ups. The
    // port reads and the PIT writes are I/O exits; the APIC version reads,
    // the timer's arming writes and the EOIs are EPT violations; each timer
    // interrupt comes with a preemption-timer exit at its deadline.
    for (reason, at_least) in [
        ("CPUID", 10_000),
        ("VMCALL", 10_000),
        ("I/O instruction", 20_000),
        ("EPT violation", 30_000),
        ("VMX-preemption timer", 10_000),
    ] {
        let count = exit_count(&lines, "bench", reason);
        c.check(
            count >= at_least,
            format!("only {count} {reason} exits for the bench guest"),
        );
    }
    let injected = lines.iter().find_map(|l| {
        l.trim()
            .strip_prefix("interrupts of bench: ")?
            .split_once(" injected")?
            .0
            .parse::<u64>()
            .ok()
    });
    c.check(
        injected.is_some_and(|n| n >= 10_000),
        format!("{injected:?} interrupts injected into the bench guest, not 10000 or more"),
    );
    c.finish(&stderr);
}

/// An adversarial guest next to a well-behaved one: every misuse gets the
/// architectural answer, the deliberate triple fault stops that VM alone, and
/// the counter finishes its work as if nothing happened.
#[test]
fn a_hostile_guest_is_contained() {
    hostile_guest_is_contained("bochs");
}

#[test]
fn a_hostile_guest_is_contained_in_qemu() {
    hostile_guest_is_contained("qemu");
}

fn hostile_guest_is_contained(engine: &str) {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    let iso = shared_iso(&ISO, "hostile.toml", "vmx-hostile.iso");
    let (lines, clean, stderr) = boot_cleanly(iso, &format!("hostile-{engine}"), engine);
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");

    // One line per probe: `hostile: <probe>: <outcome> (expected <what>) ok|FAIL`.
    let probes: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" hostile | hostile: ") && l.contains(" (expected "))
        .collect();
    c.check(!probes.is_empty(), "no probe lines from hostile");
    for line in &probes {
        c.check(
            line.ends_with(" ok") && !line.contains("FAIL"),
            format!("a probe failed: {line}"),
        );
    }
    let summary = format!("hostile: {} probes, 0 failed", probes.len());
    c.has(&[" hostile | ", &summary]);
    // REP OUTSB to COM1 arrives as a console line with the VM's prefix.
    c.has(&[" hostile | hostile: sent to COM1 with REP OUTSB 40"]);
    // A REP OUTSB whose source runs into a page hostile left unmapped sends
    // the 16 bytes before it (a whole line, nothing after it) and only then
    // raises the #PF, with RSI and RCX showing that progress.
    c.check(
        lines
            .iter()
            .any(|l| l.ends_with(" hostile | hostile: 16 out")),
        "the first 16 bytes of the REP OUTSB into an unmapped page are not a line of their own",
    );
    c.before(
        &[" hostile | hostile: 16 out"],
        &[
            " hostile | hostile: REP OUTSB of 32 bytes at ",
            "index +16, RCX 16 (expected",
        ],
        "the partial REP OUTSB line did not come before its probe's result",
    );
    // The page-walk probes ran (they are not skipped on any CPU).
    for probe in [
        "OUTSB from linear 0x800005a5 (not mapped in my own page tables): ",
        "INSB to linear 0x800005a5 (not mapped in my own page tables): ",
        "INSB to 0x40002010 (read-only page, CR0.WP = 1): ",
    ] {
        c.has(&[" hostile | hostile: ", probe]);
    }
    hostile_svm_probes(&mut c);
    // The deliberate triple fault stops hostile with a report, after its
    // summary; the counter goes on to the end.
    let triple_fault = ["[ERROR] vm hostile: stopped: triple fault at RIP 0x"];
    c.before(
        &[&summary],
        &triple_fault,
        "hostile triple-faulted before finishing its probes",
    );
    // hostile yields first, so the counter is mid-count throughout.
    c.before(
        &[" counter | counter: counting the primes"],
        &triple_fault,
        "the counter did not start before hostile's triple fault",
    );
    c.before(
        &triple_fault,
        &[" counter | counter: done: 664579 primes"],
        "the counter did not outlive hostile",
    );

    c.has(&["tessera: all VMs have stopped"]);
    for (vm, state, result) in [
        ("hostile", "crashed", "triple fault"),
        ("counter", "exited", "exit code 0"),
    ] {
        c.summary(vm, state, result);
    }
    c.finish(&stderr);
}

/// What the end of a probe line of hostile says when the probe raised #UD,
/// as expected.
const UD: &str = ": #UD (expected #UD) ok";
/// ... when it raised #GP(0), as expected.
const GP0: &str = ": #GP, error code 0x0 (expected #GP, error code 0x0) ok";

/// hostile's probes of SVM, which hold on either vendor's CPU: SVM's
/// instructions are #UD, EFER.SVME can be neither set nor seen, SVM's MSRs
/// do not exist and CPUID offers neither SVM nor SKINIT. Each is the start
/// of the probe's line after `hostile: ` and how the line ends.
const HOSTILE_SVM_PROBES: &[(&str, &str)] = &[
    ("VMRUN", UD),
    ("VMLOAD", UD),
    ("VMSAVE", UD),
    ("CLGI", UD),
    ("STGI", UD),
    ("SKINIT", UD),
    ("INVLPGA (ASID 1)", UD),
    (
        "WRMSR IA32_EFER = 0x",
        " (SVME, bit 12, set): #GP, error code 0x0 (expected #GP, error code 0x0) ok",
    ),
    ("IA32_EFER after it (unchanged, SVME clear): 0x", " ok"),
    ("RDMSR VM_CR (0xc0010114)", GP0),
    ("WRMSR VM_CR (0xc0010114) = 0, SVMDIS clear", GP0),
    ("RDMSR VM_HSAVE_PA (0xc0010117)", GP0),
    ("WRMSR VM_HSAVE_PA (0xc0010117) = a page of my RAM (0x", GP0),
    (
        "CPUID.0x80000001:ECX bit 2 (SVM)",
        ": clear (expected clear) ok",
    ),
    (
        "CPUID.0x80000001:ECX bit 12 (SKINIT)",
        ": clear (expected clear) ok",
    ),
];

/// Requires hostile's SVM probe lines, and the probe of the other vendor's
/// hypercall instruction for the CPU the kernel reports (VMMCALL on Intel,
/// VMCALL on AMD and Hygon): #UD.
fn hostile_svm_probes(c: &mut Checks) {
    let amd = c.find(&["cpu: vendor AuthenticAMD"]).is_some()
        || c.find(&["cpu: vendor HygonGenuine"]).is_some();
    let other_hypercall = if amd {
        "VMCALL (Intel's hypercall; this CPU's is VMMCALL)"
    } else {
        "VMMCALL (AMD's hypercall; this CPU's is VMCALL)"
    };
    for &(start, end) in HOSTILE_SVM_PROBES.iter().chain(&[(other_hypercall, UD)]) {
        let start = format!(" hostile | hostile: {start}");
        let found = c
            .lines
            .iter()
            .any(|line| line.contains(&start) && line.ends_with(end));
        c.check(found, format!("no line with `{start}` ending in `{end}`"));
    }
}

/// The gcc command line of docs/c-guest.md: the recipe is tested as written.
fn c_guest_recipe() -> String {
    let doc = std::fs::read_to_string(root().join("docs/c-guest.md")).unwrap();
    let lines: Vec<&str> = doc.lines().filter(|l| l.starts_with("gcc ")).collect();
    assert_eq!(lines.len(), 1, "docs/c-guest.md should hold one gcc line");
    lines[0].to_owned()
}

/// Builds tests/fixtures/c-guest/hello.c in `dir` with `command` (a gcc line
/// writing hello.elf); `None` when there is no gcc.
fn build_c_guest(dir: &Path, command: &str) -> Option<PathBuf> {
    if Command::new("gcc").arg("--version").output().is_err() {
        eprintln!("skipped: no gcc on this machine");
        return None;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/c-guest/hello.c"),
        dir.join("hello.c"),
    )
    .unwrap();
    let output = run(Command::new("sh").arg("-c").arg(command).current_dir(dir));
    assert!(
        output.status.success(),
        "`{command}` failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    std::fs::write(
        dir.join("vms.toml"),
        "[hypervisor]\ncmdline = \"log=info\"\n\n\
         [[vm]]\nname = \"c-hello\"\nimage = \"hello.elf\"\nmem = \"2M\"\n",
    )
    .unwrap();
    Some(dir.join("vms.toml"))
}

/// Without `--build-id=none`, GNU ld's build-id note lands at 4 MiB, outside
/// the guest's 2 MiB: `tessera iso` refuses it with the kernel's reason, before
/// building anything.
#[test]
fn a_c_guest_that_does_not_fit_is_refused_by_iso() {
    let typical = c_guest_recipe().replace(" -Wl,--build-id=none", "");
    let Some(config) = build_c_guest(&scratch("c-guest-build-id"), &typical) else {
        return;
    };
    let out = scratch("c-guest-build-id.iso");
    let _ = std::fs::remove_file(&out);
    let output = run(Command::new(TOOL).args([
        "iso".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]));
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "accepted:\n{stderr}");
    assert!(
        stderr.contains("vm \"c-hello\": segment 0x400")
            && stderr.contains("does not fit in 2 MiB of guest RAM"),
        "{stderr}"
    );
    assert!(!stderr.contains("building"), "built first:\n{stderr}");
    assert!(!out.exists());
}

/// docs/c-guest.md, followed to the letter: the C guest prints through COM1
/// and the console_write hypercall and exits with code 0.
#[test]
fn a_freestanding_c_guest_runs() {
    let Some(config) = build_c_guest(&scratch("c-guest"), &c_guest_recipe()) else {
        return;
    };
    let iso = iso_from_config(&config, "c-guest.iso");
    let (lines, clean, stderr) = boot_in_bochs(&iso, "c-guest");
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");
    c.has(&[" c-hello | hello from C through COM1"]);
    c.has(&[" c-hello | hello from C through the console_write hypercall"]);
    c.has(&["[INFO ] vm c-hello: exited with code 0"]);
    c.summary("c-hello", "exited", "exit code 0");
    c.finish(&stderr);
}
