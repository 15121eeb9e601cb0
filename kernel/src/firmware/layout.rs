//! The virtual PC's fixed platform: where its interrupt controllers and ACPI
//! fixed-hardware registers are, and how the ISA interrupts are wired.
//!
//! These constants are the one set both sides use: the firmware tables
//! (this module's siblings) describe them to the guest, and the device
//! models (`devices/`) answer at them. A device must take its port, address
//! or value from here rather than write the number again, so that a table
//! and the device behind it cannot disagree.
//!
//! What the devices must do to match the tables:
//! - PM1a_CNT reads back with SCI_EN (bit 0) set: the FADT has no SMI
//!   command port, which says the platform is always in ACPI mode (ACPI 6.5,
//!   5.2.9 "SMI_CMD" and 4.8.2.1.1 "SCI_EN").
//! - The PM timer counts at [`PM_TIMER_HZ`] and is 24 bits wide (TMR_VAL_EXT
//!   is clear in the FADT flags).
//! - A write of [`RESET_VALUE`] to [`RESET_PORT`] resets the VM.
//! - SLP_TYP = [`S5_SLEEP_TYPE`] with SLP_EN in PM1a_CNT powers the VM off.
//! - The SCI is ISA IRQ [`SCI_IRQ`], level-triggered and active high, on the
//!   8259 and on the IOAPIC pin of the same number.
//! - The PIT's IRQ 0 arrives at IOAPIC pin [`TIMER_GSI`], edge, active high.
//! - The IOAPIC's ID is the vCPU count ([`PlatformLayout::ioapic_id`]).

/// Guest-physical base of every vCPU's local APIC (xAPIC MMIO page).
pub const LAPIC_BASE: u32 = 0xFEE0_0000;
/// The local APIC version register's low byte: an integrated xAPIC (0x1X,
/// SDM Vol. 3A, 12.4.8 "Local APIC Version Register"), reported in the MP
/// table's processor entries.
pub const LAPIC_VERSION: u8 = 0x14;
/// Guest-physical base of the one IOAPIC's register window.
pub const IOAPIC_BASE: u32 = 0xFEC0_0000;
/// The IOAPIC version register's low byte (the 82093AA's 0x11), reported in
/// the MP table's IOAPIC entry.
pub const IOAPIC_VERSION: u8 = 0x11;
/// Redirection entries (input pins) of the IOAPIC, GSIs 0 to 23.
pub const IOAPIC_PINS: u8 = 24;
/// The first GSI the IOAPIC serves.
pub const IOAPIC_GSI_BASE: u32 = 0;
/// Each of the IOAPIC and LAPIC MMIO windows covers one page.
pub const APIC_WINDOW_SIZE: u64 = 0x1000;

/// The rate the local APIC timer counts at before its divider, the core
/// crystal clock CPUID leaf 0x15 reports (25 MHz, as on Skylake client
/// parts), so that a guest takes it from CPUID instead of calibrating the
/// APIC timer against the PIT.
pub const APIC_TIMER_HZ: u64 = 25_000_000;

/// The ISA IRQ of the PIT's channel 0.
pub const TIMER_IRQ: u8 = 0;
/// The IOAPIC pin (GSI) the PIT's IRQ 0 is wired to: the one ISA IRQ that
/// is not identity-mapped, as on PC chipsets (pin 0 is the 8259's INTR).
pub const TIMER_GSI: u32 = 2;
/// The ISA IRQ (and IOAPIC pin) of the ACPI System Control Interrupt.
pub const SCI_IRQ: u8 = 9;
/// The local APIC input the 8259's INTR reaches (as ExtINT).
pub const LINT_EXTINT: u8 = 0;
/// The local APIC input NMIs arrive on.
pub const LINT_NMI: u8 = 1;

/// I/O port of the PM1a event block (PM1_STS, then PM1_EN).
pub const PM1A_EVENT_BLOCK: u16 = 0x600;
/// Bytes of the PM1a event block: two 16-bit registers.
pub const PM1A_EVENT_LENGTH: u8 = 4;
/// I/O port of the PM1a control block (PM1_CNT).
pub const PM1A_CONTROL_BLOCK: u16 = 0x604;
/// Bytes of the PM1a control block.
pub const PM1A_CONTROL_LENGTH: u8 = 2;
/// I/O port of the ACPI PM timer.
pub const PM_TIMER_BLOCK: u16 = 0x608;
/// Bytes of the PM timer block (always 4; the counter itself is 24 bits).
pub const PM_TIMER_LENGTH: u8 = 4;
/// The PM timer's frequency (ACPI 6.5, 4.8.3.3 "Power Management Timer").
pub const PM_TIMER_HZ: u32 = 3_579_545;
/// The reset register: the PCI reset control port, in system I/O space.
pub const RESET_PORT: u16 = 0xCF9;
/// The value that resets the VM when written to [`RESET_PORT`] (full
/// reset with the reset-CPU bit, as chipsets define 0xCF9).
pub const RESET_VALUE: u8 = 0x06;
/// SLP_TYP for S5 (soft off), the value of the DSDT's `\_S5` package.
pub const S5_SLEEP_TYPE: u8 = 5;

/// COM1's I/O base, which the BIOS data area announces.
pub const COM1_BASE: u16 = 0x3F8;
/// Whether ports 0x60/0x64 answer as an 8042 keyboard controller: the
/// FADT's IAPC_BOOT_ARCH "8042" flag. The virtual PC's i8042 stub answers
/// them (status reads, and the 0xFE command pulses reset, see
/// `devices::VmRequest::Reset`), so the flag is set; a guest that probes for
/// a keyboard behind it finds none. If the stub is left out of a VM, this
/// must become `false`.
pub const I8042_PRESENT: bool = true;

/// The most vCPUs a VM can have: the IOAPIC's ID is the vCPU count, and the
/// IOAPIC ID register has 4 bits (82093AA datasheet, 3.2.1 "IOAPICID").
pub const MAX_CPUS: u32 = 15;

/// The virtual PC's fixed platform, as one value the firmware builders take.
/// [`PlatformLayout::DEFAULT`] holds the constants above; devices use the
/// constants themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformLayout {
    /// [`LAPIC_BASE`].
    pub lapic_base: u32,
    /// [`LAPIC_VERSION`].
    pub lapic_version: u8,
    /// [`IOAPIC_BASE`].
    pub ioapic_base: u32,
    /// [`IOAPIC_VERSION`].
    pub ioapic_version: u8,
    /// [`IOAPIC_PINS`].
    pub ioapic_pins: u8,
    /// [`IOAPIC_GSI_BASE`].
    pub ioapic_gsi_base: u32,
    /// [`TIMER_GSI`].
    pub timer_gsi: u32,
    /// [`SCI_IRQ`].
    pub sci_irq: u8,
    /// [`PM1A_EVENT_BLOCK`].
    pub pm1a_event_block: u16,
    /// [`PM1A_EVENT_LENGTH`].
    pub pm1a_event_length: u8,
    /// [`PM1A_CONTROL_BLOCK`].
    pub pm1a_control_block: u16,
    /// [`PM1A_CONTROL_LENGTH`].
    pub pm1a_control_length: u8,
    /// [`PM_TIMER_BLOCK`].
    pub pm_timer_block: u16,
    /// [`PM_TIMER_LENGTH`].
    pub pm_timer_length: u8,
    /// [`RESET_PORT`].
    pub reset_port: u16,
    /// [`RESET_VALUE`].
    pub reset_value: u8,
    /// [`S5_SLEEP_TYPE`].
    pub s5_sleep_type: u8,
    /// [`COM1_BASE`].
    pub com1_base: u16,
    /// [`I8042_PRESENT`].
    pub i8042_present: bool,
}

impl PlatformLayout {
    /// The virtual PC every VM gets.
    pub const DEFAULT: PlatformLayout = PlatformLayout {
        lapic_base: LAPIC_BASE,
        lapic_version: LAPIC_VERSION,
        ioapic_base: IOAPIC_BASE,
        ioapic_version: IOAPIC_VERSION,
        ioapic_pins: IOAPIC_PINS,
        ioapic_gsi_base: IOAPIC_GSI_BASE,
        timer_gsi: TIMER_GSI,
        sci_irq: SCI_IRQ,
        pm1a_event_block: PM1A_EVENT_BLOCK,
        pm1a_event_length: PM1A_EVENT_LENGTH,
        pm1a_control_block: PM1A_CONTROL_BLOCK,
        pm1a_control_length: PM1A_CONTROL_LENGTH,
        pm_timer_block: PM_TIMER_BLOCK,
        pm_timer_length: PM_TIMER_LENGTH,
        reset_port: RESET_PORT,
        reset_value: RESET_VALUE,
        s5_sleep_type: S5_SLEEP_TYPE,
        com1_base: COM1_BASE,
        i8042_present: I8042_PRESENT,
    };

    /// The IOAPIC's ID in a VM of `cpus` vCPUs: the first ID after the local
    /// APICs' (which are the vCPU indices 0 to `cpus` − 1).
    pub const fn ioapic_id(cpus: u32) -> u8 {
        cpus as u8
    }

    /// The GSI ISA IRQ `irq` arrives at: its own number, but for the timer.
    pub const fn isa_irq_gsi(&self, irq: u8) -> u32 {
        if irq == TIMER_IRQ {
            self.timer_gsi
        } else {
            irq as u32
        }
    }
}

impl Default for PlatformLayout {
    fn default() -> Self {
        PlatformLayout::DEFAULT
    }
}
