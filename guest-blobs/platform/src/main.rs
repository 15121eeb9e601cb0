//! platform: a conformance test kernel for a PC's devices and firmware
//! tables, written as an unmodified Multiboot1 kernel so that the same file
//! runs on QEMU's `pc` machine (`-kernel platform.elf`) and as a tessera VM,
//! and the two can be compared probe by probe.
//!
//! It checks each device the way a conformance test would — the ACPI and
//! MP tables, fw_cfg and CMOS, the 8259A pair, the 8254, the TSC against
//! PIT channel 2 and the ACPI PM timer, the 16550A's interrupts, the RTC's
//! periodic interrupt and update cycle, the local APIC's timer in its three
//! modes, the I/O APIC, HLT woken by a timer, x2APIC — and prints one line
//! per probe on COM1:
//!
//! ```text
//! platform: PASS <probe>: <what it saw>
//! platform: FAIL <probe>: <what it saw, and what was expected>
//! platform: SKIP <probe>: not offered by CPUID (...)
//! platform: N passed, M failed, K skipped
//! ```
//!
//! then writes 0x10 (all passed) or 0x11 to the isa-debug-exit port 0xF4:
//! exit status 33 or 35. It uses nothing of tessera's (no hypercall).
#![no_std]
#![no_main]

mod acpi;
mod apic;
mod boot;
mod clock;
mod console;
mod fw_cfg;
mod interrupts;
mod ioapic;
mod mptable;
mod multiboot;
mod pic;
mod pit;
mod report;
mod rtc;
mod text;
mod uart;
mod x86;

use report::Outcome;

/// What the probes learn and later probes build on.
pub struct Machine {
    /// EAX at entry: the Multiboot loader's magic.
    pub multiboot_magic: u32,
    /// EBX at entry: the Multiboot information's address.
    pub multiboot_info: u32,
    /// The ACPI tables, if an RSDP was found.
    pub acpi: Option<acpi::Acpi>,
    /// fw_cfg's RAM size.
    pub ram_bytes: Option<u64>,
    /// The TSC rate, from PIT channel 2.
    pub tsc_hz: Option<u64>,
    /// The local APIC timer's rate at divide-by-1.
    pub apic_timer_hz: Option<u64>,
    /// Whether `sti; hlt` was seen to wake on a timer interrupt.
    pub hlt_wakes: bool,
}

impl Machine {
    /// The calibrated TSC.
    pub fn tsc(&self) -> Option<clock::Tsc> {
        self.tsc_hz.map(|hz| clock::Tsc { hz })
    }

    /// The MADT's findings.
    pub fn madt(&self) -> Option<acpi::Madt> {
        self.acpi.as_ref().and_then(|acpi| acpi.madt)
    }

    /// The PM timer's port, from the FADT.
    pub fn pm_timer_port(&self) -> Option<u16> {
        let port = self.acpi.as_ref()?.fadt?.pm_timer_port;
        u16::try_from(port).ok().filter(|&port| port != 0)
    }

    /// Multiboot's mem_lower and mem_upper.
    pub fn multiboot_memory(&self) -> Option<(u32, u32)> {
        multiboot::memory(self.multiboot_magic, self.multiboot_info)
    }

    /// Silences every interrupt source the probes use and takes whatever
    /// they left pending, so that the next probe sees only its own: the
    /// PIT stopped, the 8259As masked, the APIC timer stopped, the I/O
    /// APIC's IRQ 0 pin masked, the RTC's and the UART's interrupts off.
    /// An edge already on its way (the PIT's last) is given 2 ms to land,
    /// then each line is unmasked for a moment to take a latched request.
    pub fn quiesce(&mut self) {
        x86::cli();
        pit::stop();
        pic::set_masks(pic::ALL_MASKED);
        apic::stop_timer();
        if let Some(madt) = self.madt() {
            if let Some(io) = madt.io_apic {
                ioapic::mask(u64::from(io.address), madt.isa_irq0_gsi() - io.gsi_base);
            }
        }
        rtc::quiesce();
        x86::outb(console::COM1 + console::IER, 0);
        if let Some(tsc) = self.tsc() {
            tsc.delay_us(2000);
            for irq in [pit::IRQ, uart::IRQ, rtc::IRQ] {
                pic::only(irq);
                clock::poll(tsc.ticks_from_us(50), true, || false);
            }
            pic::set_masks(pic::ALL_MASKED);
            clock::poll(tsc.ticks_from_us(50), true, || false);
        }
        interrupts::reset();
    }
}

/// A probe: its name on the report line, and the check.
type Probe = (&'static str, fn(&mut Machine) -> Outcome);

/// In order: the firmware tables need nothing; the 8254 calibrates the TSC,
/// which times everything after it; the 8259A, UART and RTC probes use the
/// 8259A only; the APIC timer's rate is measured before the timer probes
/// and the HLT probe (whose watchdog it is); the RTC's update cycle sleeps
/// in HLT for half a second; x2APIC is last, since the APIC stays in it.
const PROBES: [Probe; 29] = [
    ("multiboot-handover", multiboot::probe),
    ("acpi-rsdp", acpi::probe_rsdp),
    ("acpi-tables", acpi::probe_tables),
    ("acpi-madt", acpi::probe_madt),
    ("acpi-fadt", acpi::probe_fadt),
    ("mp-table", mptable::probe),
    ("fw-cfg", fw_cfg::probe),
    ("cmos-memory", rtc::probe_memory),
    ("pic-imr", pic::probe_masks),
    ("pit-channel2-tsc-calibration", clock::probe_calibrate),
    ("pit-readback", pit::probe_read_back),
    ("pm-timer-rate", clock::probe_pm_timer),
    ("pic-irr-while-masked", pic::probe_masked_request),
    ("pit-pic-irq0", pit::probe_through_pic),
    ("uart-registers", uart::probe_registers),
    ("uart-thre-interrupt", uart::probe_thr_empty),
    ("uart-loopback-rx-interrupt", uart::probe_loopback),
    ("rtc-periodic-irq8", rtc::probe_periodic),
    ("rtc-irq8-needs-register-c", rtc::probe_acknowledge),
    ("lapic-registers", apic::probe_registers),
    ("lapic-timer-counts-down", apic::probe_counts_down),
    ("lapic-timer-one-shot", apic::probe_one_shot),
    ("lapic-timer-periodic", apic::probe_periodic),
    ("lapic-timer-tsc-deadline", apic::probe_tsc_deadline),
    ("ioapic-registers", ioapic::probe_registers),
    ("pit-ioapic-gsi2", ioapic::probe_pit),
    ("hlt-timer-wake", pit::probe_hlt),
    ("rtc-update-uip", rtc::probe_update),
    ("cpuid-crystal-clock", apic::probe_crystal),
];

/// Probes after which the machine is no longer in xAPIC mode.
const LAST_PROBES: [Probe; 1] = [("x2apic", apic::probe_x2apic)];

/// Called by the 64-bit entry (`boot`) with EAX and EBX from the loader.
pub extern "C" fn platform_main(multiboot_magic: u32, multiboot_info: u32) -> ! {
    console::init();
    interrupts::install();
    pic::init();
    let vendor = x86::cpuid(0, 0);
    let features = x86::cpuid(1, 0);
    let name: [u8; 12] = core::array::from_fn(|i| {
        let word = [vendor.ebx, vendor.edx, vendor.ecx][i / 4];
        (word >> (8 * (i % 4))) as u8
    });
    println!(
        "platform: PC conformance probes; CPU {} (max basic leaf {:#x}), CPUID.1: EAX {:#x} ECX {:#010x} EDX {:#010x}",
        core::str::from_utf8(&name).unwrap_or("?"),
        vendor.eax,
        features.eax,
        features.ecx,
        features.edx
    );
    let mut machine = Machine {
        multiboot_magic,
        multiboot_info,
        acpi: acpi::discover(),
        ram_bytes: None,
        tsc_hz: None,
        apic_timer_hz: None,
        hlt_wakes: false,
    };
    for (name, probe) in PROBES.iter().chain(LAST_PROBES.iter()) {
        let outcome = probe(&mut machine);
        report::record(name, &outcome);
    }
    report::finish()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    report::record("no-panic", &fail!("{info}"));
    report::finish()
}
