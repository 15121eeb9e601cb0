//! Unmodified Linux guests in Bochs (VMX) and, in the `_in_qemu` tests, in
//! QEMU's TCG (SVM): the Debian 12 cloud kernel with a busybox initramfs
//! (guest-blobs/linux), started through the Linux boot protocol straight
//! from GRUB modules, with no BIOS. Each boots once per test, the tests
//! side by side.

mod common;

use common::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What guest-blobs/linux/init's workload prints: constants for the
/// busybox of Debian 12 (`seq 1 200000`, gzip at its default level).
const WORKLOAD: &str = "workload seq 1 200000 | gzip: 1288895 bytes -> 428472 bytes, \
     round trip sha256 5af7b95208fdcff454bab3f5eddf567a688a3796c703d4fef91072e38645c062";

/// The checks every boot of the test guest must pass, for `vm`'s lines.
fn linux_booted(c: &mut Checks, vm: &str) {
    let prefix = format!("{vm} | linux-guest: ");
    c.has(&[&prefix, "uname 6.1.0-"]);
    c.has(&[&prefix, "clocksource tsc"]);
    c.has(&[&prefix, WORKLOAD]);
    // 128 MiB of RAM: the kernel keeps its image, the initramfs and its own
    // tables, and reports the rest (94,900 kB here).
    let mem_total = c.lines.iter().find_map(|line| {
        line.split_once(&format!("{prefix}MemTotal: "))?
            .1
            .strip_suffix(" kB")?
            .trim()
            .parse::<u64>()
            .ok()
    });
    c.check(
        mem_total.is_some_and(|kib| (80_000..131_072).contains(&kib)),
        format!("{vm}: MemTotal {mem_total:?} kB is not what 128 MiB leaves"),
    );
}

#[test]
fn two_linux_guests_boot_beside_the_counter_and_the_spinner() {
    two_linux_guests_boot("bochs");
}

#[test]
fn two_linux_guests_boot_beside_the_counter_and_the_spinner_in_qemu() {
    two_linux_guests_boot("qemu");
}

fn two_linux_guests_boot(engine: &str) {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    linux_guest();
    let iso = shared_iso(&ISO, "linux.toml", "linux.iso");
    let (lines, clean, stderr) =
        boot_with_memory(iso, &format!("linux-{engine}"), engine, 512, 900);
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");
    c.has(&["[INFO ] vm linux-a: Linux bzImage image"]);
    for vm in ["linux-a", "linux-b"] {
        linux_booted(&mut c, vm);
        c.has(&[&format!("{vm} | linux-guest: done (poweroff)")]);
        c.has(&[&format!("[INFO ] vm {vm}: powered off")]);
        c.summary(vm, "off", "powered off");
        // Its timer and serial interrupts went through injection.
        c.has(&[&format!("interrupts of {vm}:"), "injected"]);
    }
    c.has(&[" counter | counter: done: 664579 primes below 10000000, as expected"]);
    c.summary("counter", "exited", "exit code 0");
    c.summary("spinner", "exited", "exit code 0");
    c.check(
        !lines.iter().any(|l| l.starts_with("[ERROR]")),
        "the hypervisor reported an error",
    );
    c.finish(&stderr);
}

/// `reboot -f` resets the VM (the guest's reset, through the keyboard
/// controller or 0xCF9), tessera starts it again from its image, and the
/// CMOS RAM where /init counted the boot survives: the second boot powers
/// off.
#[test]
fn a_linux_guest_reboots_once() {
    linux_guest_reboots_once("bochs");
}

#[test]
fn a_linux_guest_reboots_once_in_qemu() {
    linux_guest_reboots_once("qemu");
}

fn linux_guest_reboots_once(engine: &str) {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    linux_guest();
    let iso = shared_iso(&ISO, "linux-reboot.toml", "linux-reboot.iso");
    let (lines, clean, stderr) =
        boot_with_memory(iso, &format!("linux-reboot-{engine}"), engine, 512, 900);
    let mut c = Checks::new(&lines);
    c.check(clean, "the run did not end in a clean power-off");
    linux_booted(&mut c, "  linux");
    c.before(
        &["linux | linux-guest: reboot-once: first boot"],
        &["[INFO ] vm linux: reset"],
        "the first boot ends in a reset",
    );
    c.before(
        &["[INFO ] vm linux: restarting (1 of at most 3)"],
        &["linux | linux-guest: reboot-once: second boot (CMOS byte 0x5e was 0xa5)"],
        "the second boot finds the first one's mark",
    );
    c.has(&["linux | linux-guest: done (poweroff)"]);
    c.check(
        c.count(&["linux | linux-guest: uname "]) == 2,
        "Linux did not boot exactly twice",
    );
    c.summary("linux", "off", "powered off");
    c.check(
        summary_row(&lines, "linux").is_some_and(|row| row.get(3) == Some(&"1")),
        "the restart count is not 1",
    );
    c.finish(&stderr);
}
