//! `tessera bench`'s Linux boot measure: what virtualization costs a Linux
//! boot, in instructions, in an engine whose TSC counts them (Bochs, or
//! QEMU's TCG with `-icount shift=0`).
//!
//! The same kernel and initramfs (guest-blobs/linux, `console=ttyS0 quiet`,
//! 128 MiB) boot twice in the same engine:
//! - **natively** from a GRUB ISO (`linux` and `initrd`), a debugger
//!   stopping once at 0x100000, the protected-mode kernel's first
//!   instruction, to read the tick count there: Bochs' own (`ptime`), or
//!   QEMU's gdbstub (see `gdb`);
//! - **under tessera**, as the only VM, whose TSC starts at 0 when the VM
//!   is made, just before its first instruction (64-bit entry).
//!
//! Both end at the TSC that /init reads right before its marker
//! (`linux-guest: tsc N`, guest-blobs/linux/rdtsc.s). The native count is
//! that minus the tick count at the kernel's entry. The native kernel runs
//! its real-mode setup before the breakpoint, decompresses itself at 1 MiB
//! and relocates; tessera starts it at 64-bit `startup_64` where it asked to
//! be loaded: the first few million instructions differ, out of billions.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;

/// The kernel command line of both runs.
pub const CMDLINE: &str = "console=ttyS0 quiet";
/// The guest's RAM in both runs, in MiB.
pub const MEM_MIB: u32 = 128;
/// The target the issue sets: at most 15% over native.
pub const TARGET_RATIO: f64 = 1.15;

/// Where GRUB starts the native kernel: the 32-bit entry of the Linux boot
/// protocol, at the protected-mode kernel's default load address.
pub const NATIVE_ENTRY: u64 = 0x10_0000;

/// Bochs' debugger commands for the native run: stop at the kernel's entry
/// ([`NATIVE_ENTRY`]), print the tick count, then run to the end without
/// stopping again.
pub const NATIVE_DEBUGGER_COMMANDS: &str = "pb 0x100000\nc\nptime\nd 1\nc\nquit\n";

/// The GRUB menu of the native run.
pub fn native_grub_cfg() -> String {
    format!(
        "set timeout=0\nset timeout_style=hidden\nmenuentry linux {{\n\
         linux /boot/vmlinuz {CMDLINE} mem={MEM_MIB}M\n\
         initrd /boot/initramfs.cpio.gz\nboot\n}}\n"
    )
}

/// The VM config of the run under tessera, for `vmlinuz` and `initramfs`.
pub fn tessera_config(vmlinuz: &str, initramfs: &str) -> String {
    format!(
        "[hypervisor]\ncmdline = \"log=info timeslice=10ms\"\n\n[[vm]]\nname = \"linux\"\n\
         image = {vmlinuz:?}\ninitrd = {initramfs:?}\nmem = \"{MEM_MIB}M\"\n\
         cmdline = \"{CMDLINE}\"\n"
    )
}

/// The TSC /init printed right before its marker (`linux-guest: tsc N`).
pub fn marker_tsc(transcript: &str) -> Option<u64> {
    transcript.lines().find_map(|line| {
        let rest = &line[line.find("linux-guest: tsc ")? + "linux-guest: tsc ".len()..];
        rest.trim().parse().ok()
    })
}

/// The first tick count Bochs' debugger printed (`ptime: N`).
pub fn ptime(terminal: &str) -> Option<u64> {
    terminal.lines().find_map(|line| {
        let rest = &line[line.find("ptime: ")? + "ptime: ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A VM's exits by reason, from the summary's `exits of <vm>:` line.
pub fn exits(transcript: &str, vm: &str) -> Vec<(String, u64)> {
    let prefix = format!("exits of {vm}:");
    transcript
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
        .map(|rest| {
            rest.split(',')
                .filter_map(|item| {
                    let (reason, count) = item.trim().rsplit_once(' ')?;
                    Some((reason.to_owned(), count.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The TSC rate, from the scheduler's line: `<us> us slices (<ticks> TSC
/// ticks of wall-clock time each)`.
pub fn tsc_hz(transcript: &str) -> Option<u64> {
    transcript.lines().find_map(|line| {
        let rest = &line[line.find("round robin, ")? + "round robin, ".len()..];
        let (us, rest) = rest.split_once(" us slices (")?;
        let (ticks, _) = rest.split_once(" TSC ticks")?;
        let (us, ticks): (u64, u64) = (us.parse().ok()?, ticks.parse().ok()?);
        (us > 0).then(|| ticks * 1_000_000 / us)
    })
}

/// The measure's two counts and what the boot under tessera exited for.
#[derive(Debug, Clone, PartialEq)]
pub struct LinuxBoot {
    /// Kernel entry to the marker, natively.
    pub native: u64,
    /// VM start to the marker, under tessera.
    pub tessera: u64,
    /// Exits by reason during the boot under tessera.
    pub exits: Vec<(String, u64)>,
    /// The TSC's rate, to turn the guest's TSC into seconds.
    pub tsc_hz: u64,
}

/// The tick count at the kernel's entry that Bochs' debugger printed on its
/// terminal in the native run.
pub fn bochs_entry(native_terminal: &str) -> Result<u64> {
    match ptime(native_terminal) {
        Some(entry) => Ok(entry),
        None => {
            bail!("the native run's debugger printed no tick count at the kernel's entry (ptime)")
        }
    }
}

/// Gathers the measure from the native run (the tick count at the kernel's
/// entry and its serial transcript) and the tessera run's transcript.
pub fn evaluate(entry: u64, native_serial: &str, transcript: &str) -> Result<LinuxBoot> {
    let Some(native_marker) = marker_tsc(native_serial) else {
        bail!("the native Linux printed no `linux-guest: tsc N` line");
    };
    let Some(tessera) = marker_tsc(transcript) else {
        bail!("the Linux VM under tessera printed no `linux-guest: tsc N` line");
    };
    let Some(native) = native_marker.checked_sub(entry) else {
        bail!("the native marker's TSC ({native_marker}) is below the kernel entry's ({entry})");
    };
    let Some(tsc_hz) = tsc_hz(transcript) else {
        bail!("the kernel printed no scheduler line with the TSC's rate");
    };
    Ok(LinuxBoot {
        native,
        tessera,
        exits: exits(transcript, "linux"),
        tsc_hz,
    })
}

/// The report's lines.
pub fn report(boot: &LinuxBoot, engine: &str) -> String {
    let ratio = boot.tessera as f64 / boot.native.max(1) as f64;
    let mut text = format!(
        "tessera Linux boot benchmark on {engine}: the Debian 12 cloud kernel with busybox \
         ({CMDLINE}, {MEM_MIB} MiB), from the kernel's first instruction to /init's marker, in \
         instructions\n"
    );
    let _ = writeln!(text, "  natively (GRUB linux/initrd)  {:>14}", boot.native);
    let _ = writeln!(text, "  under tessera                 {:>14}", boot.tessera);
    let _ = writeln!(
        text,
        "  ratio                         {ratio:>14.3}   (target <= {TARGET_RATIO})"
    );
    let seconds = boot.tessera as f64 / boot.tsc_hz.max(1) as f64;
    let mut exits = boot.exits.clone();
    exits.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let rates: Vec<String> = exits
        .iter()
        .map(|(reason, count)| format!("{reason} {:.0}", *count as f64 / seconds))
        .collect();
    let _ = writeln!(
        text,
        "  exits per second of guest time ({seconds:.2} s): {}",
        rates.join(", ")
    );
    text
}

/// Checks that the native run's serial log is Linux's, for a clear error.
pub fn check_native(serial: &str) -> Result<()> {
    if !serial.contains("linux-guest: done") {
        bail!("the native Linux boot did not reach /init's marker");
    }
    Ok(())
}

/// Reads a file the native run wrote.
pub fn read(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSCRIPT: &str = "\
[INFO ] scheduler: 1 VMs, round robin, 10000 us slices (2000000 TSC ticks of wall-clock time each)
   linux | linux-guest: init-tsc 1437839509
   linux | linux-guest: tsc 2580860406
   linux | linux-guest: done (poweroff)
  exits of linux: EPT violation 400, VMX-preemption timer 300, WRMSR 200, I/O instruction 100
";

    #[test]
    fn the_counts_and_the_exit_rates() {
        let native_terminal = "(0) Breakpoint 1, 0x0000000000100000 in ?? ()\nptime: 630752339\n";
        let native_serial = "linux-guest: init-tsc 2488201793\nlinux-guest: tsc 3626087498\n\
                             linux-guest: done (poweroff)\n";
        check_native(native_serial).unwrap();
        let entry = bochs_entry(native_terminal).unwrap();
        let boot = evaluate(entry, native_serial, TRANSCRIPT).unwrap();
        assert_eq!(boot.native, 3_626_087_498 - 630_752_339);
        assert_eq!(boot.tessera, 2_580_860_406);
        assert_eq!(boot.tsc_hz, 200_000_000);
        assert_eq!(boot.exits[0], ("EPT violation".to_owned(), 400));
        assert_eq!(boot.exits.len(), 4);
        let text = report(&boot, "bochs");
        assert!(
            text.contains("natively (GRUB linux/initrd)      2995335159"),
            "{text}"
        );
        assert!(
            text.contains("ratio                                  0.862"),
            "{text}"
        );
        // 2.58 G ticks at 200 MHz: 12.9 s; 400 exits in it, 31 a second.
        assert!(
            text.contains("(12.90 s): EPT violation 31, VMX-preemption timer 23"),
            "{text}"
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let error = bochs_entry("").unwrap_err();
        assert!(error.to_string().contains("ptime"), "{error}");
        let error = evaluate(10, "linux-guest: tsc 5\n", TRANSCRIPT).unwrap_err();
        assert!(
            error.to_string().contains("below the kernel entry"),
            "{error}"
        );
        let error = evaluate(1, "linux-guest: tsc 5\n", "").unwrap_err();
        assert!(error.to_string().contains("under tessera"), "{error}");
        assert!(check_native("Kernel panic").is_err());
    }

    #[test]
    fn the_configs_name_the_same_kernel_line() {
        assert!(native_grub_cfg().contains("linux /boot/vmlinuz console=ttyS0 quiet mem=128M\n"));
        let config = tessera_config("/t/vmlinuz", "/t/initramfs.cpio.gz");
        assert!(config.contains("image = \"/t/vmlinuz\"\ninitrd = \"/t/initramfs.cpio.gz\""));
        assert!(config.contains("mem = \"128M\"\ncmdline = \"console=ttyS0 quiet\""));
    }
}
