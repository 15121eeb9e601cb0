//! The virtual PC in Bochs: `guest-blobs/pctest` programs the 8259A pair
//! and the 8254 the way a small kernel does and sleeps in HLT between timer
//! interrupts, then checks the PM timer against the 8254's channel 2, the
//! RTC's date and fw_cfg — beside the spinner, which never exits on its own,
//! so timer interrupts must wake it on time while another VM holds the CPU.

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
    c.summary("pctest", "exited", "exit code 0");
    c.summary("spinner", "exited", "exit code 0");
    // Every timer interrupt went through injection, and the summary says so.
    c.has(&["interrupts of pctest:", "injected"]);
    c.finish(&stderr);
}
