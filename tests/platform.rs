//! The virtual PC in Bochs. `guest-blobs/pctest` programs the 8259A pair
//! and the 8254 the way a small kernel does and sleeps in HLT between timer
//! interrupts, then checks the PM timer against the 8254's channel 2, the
//! RTC's date and fw_cfg, and stops through isa-debug-exit — beside the spinner, which never exits on its own,
//! so timer interrupts must wake it on time while another VM holds the CPU.
//! `guest-blobs/mbtest` is a Multiboot1 kernel that checks what the loader
//! hands it and powers off through ACPI; `guest-blobs/mb2test`, in the same
//! boot, is a Multiboot2 kernel that checks its tags and a data module;
//! `guest-blobs/apictest`, beside them, drives the local APIC timer and the
//! I/O APIC through their MMIO registers (each access an EPT violation that
//! tessera decodes and emulates) and MSRs.

mod common;

use common::*;

#[test]
fn a_small_kernel_gets_timer_interrupts_beside_a_busy_vm() {
    let iso = iso_from_config(&root().join("guest-blobs/pctest.toml"), "pctest.iso");
    let (lines, clean, stderr) = boot_in_bochs(&iso, "pctest");
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");
    for probe in [
        "pic-imr-reads-back",
        "pit-interrupts-wake-hlt",
        "pm-timer-against-pit-channel-2",
        "rtc-date",
        "fw-cfg",
    ] {
        c.has(&[&format!("pctest: PASS {probe}:")]);
    }
    c.has(&["pctest: 5 probes, 0 failed"]);
    c.check(
        !lines.iter().any(|l| l.contains("pctest: FAIL")),
        "a probe failed",
    );
    c.has(&["tessera: all VMs have stopped"]);
    // pctest's last word is a write of 0x10 to its debug-exit port:
    // (0x10 << 1) | 1. Without the device it would exit with 0 instead.
    c.summary("pctest", "exited", "exit code 33");
    c.summary("spinner", "exited", "exit code 0");
    // Every timer interrupt went through injection, and the summary says so.
    c.has(&["interrupts of pctest:", "injected"]);
    c.finish(&stderr);
}

/// A Multiboot1 kernel that knows nothing of tessera: the loader's hand-over
/// (EAX magic, the information structure's memory, command line and memory
/// map) checked from the inside, and an ACPI power-off (PM1a control,
/// SLP_TYP 5 with SLP_EN) that the summary reports as "powered off".
#[test]
fn multiboot_kernels_boot_with_their_information_and_modules() {
    let iso = iso_from_config(&root().join("guest-blobs/mbtest.toml"), "mbtest.iso");
    let (lines, clean, stderr) = boot_in_bochs(&iso, "mbtest");
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");
    c.has(&["[INFO ] vm mbtest: Multiboot kernel image"]);
    for probe in [
        "multiboot-magic-in-eax",
        "info-flags-mem-cmdline-mmap",
        "mem-lower-639",
        "cmdline-after-dashes",
        "boot-loader-name",
        "entry-state",
        "a20-on",
    ] {
        c.has(&[&format!("mbtest: PASS {probe}")]);
    }
    c.has(&["mbtest: all passed; powering off"]);
    c.has(&["[INFO ] vm mbtest: powered off"]);
    c.summary("mbtest", "off", "powered off");
    // mb2test, in the same boot: a Multiboot2 kernel with a data module.
    c.has(&["[INFO ] vm mb2test: Multiboot2 kernel image"]);
    for probe in [
        "multiboot2-magic-in-eax",
        "cmdline-tag",
        "basic-meminfo-tag-639",
        "mmap-tag-ram-at-1m",
        "acpi-rsdp-tag",
        "module-tag-bytes",
    ] {
        c.has(&[&format!("mb2test: PASS {probe}")]);
    }
    c.check(
        !lines
            .iter()
            .any(|l| l.contains("mbtest: FAIL") || l.contains("mb2test: FAIL")),
        "a Multiboot probe failed",
    );
    c.has(&["mb2test: all passed; exiting through debug-exit"]);
    // 0x10 written to the debug-exit port: (0x10 << 1) | 1.
    c.summary("mb2test", "exited", "exit code 33");
    // apictest, in the same boot: the APICs through MMIO and MSRs.
    for probe in [
        "lapic-version",
        "apic-base-msr",
        "lapic-timer-periodic",
        "ioapic-version",
        "ioapic-pit-on-pin-2",
        "cpuid-tsc-frequency",
        "lapic-tsc-deadline",
        "self-nmi",
        "x2apic",
    ] {
        c.has(&[&format!("apictest: PASS {probe}")]);
    }
    c.check(
        !lines.iter().any(|l| l.contains("apictest: FAIL")),
        "an APIC probe failed",
    );
    c.summary("apictest", "exited", "exit code 33");
    // Its timer interrupts came from the local APIC: 20 + 20 at least;
    // and its two self-NMIs were injected as NMIs.
    c.has(&["interrupts of apictest:", "injected, 2 NMIs"]);
    // With no busy VM beside them, the CPU waited for apictest's timers in
    // HLT (Bochs' CPU has the TSC-deadline mode): dozens of times.
    let waits = lines.iter().find_map(|l| {
        l.trim()
            .strip_prefix("idle: the CPU waited for guest timers ")?
            .strip_suffix(" times, in HLT, woken by the local APIC's TSC-deadline timer")?
            .parse::<u64>()
            .ok()
    });
    c.check(
        waits.is_some_and(|n| n >= 20),
        format!("the idle CPU waited {waits:?} times in HLT, not 20 or more"),
    );
    c.finish(&stderr);
}
