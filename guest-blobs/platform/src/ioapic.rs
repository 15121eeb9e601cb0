//! The I/O APIC (Intel 82093AA datasheet): IOREGSEL at +0x00, IOWIN at
//! +0x10; its registers and the PIT routed through it to the local APIC.

use crate::interrupts::vector;
use crate::report::Outcome;
use crate::x86::{mmio_read, mmio_write};
use crate::{apic, clock, fail, pic, pit, text, Machine};

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// Register indices (datasheet, 3.2).
const ID: u32 = 0x00;
const VERSION: u32 = 0x01;
const REDIRECTION_BASE: u32 = 0x10;
/// Redirection entry bits: mask (16), trigger mode level (15), polarity
/// active low (13); delivery status (12) and remote IRR (14) are read-only.
const MASKED: u32 = 1 << 16;
const LEVEL: u32 = 1 << 15;
const ACTIVE_LOW: u32 = 1 << 13;
const READ_ONLY: u32 = (1 << 12) | (1 << 14);

fn read(base: u64, index: u32) -> u32 {
    mmio_write(base + IOREGSEL, index);
    mmio_read(base + IOWIN)
}

fn write(base: u64, index: u32, value: u32) {
    mmio_write(base + IOREGSEL, index);
    mmio_write(base + IOWIN, value);
}

/// Programs pin `gsi - gsi_base` with `low` to the APIC `destination`.
fn route(base: u64, pin: u32, low: u32, destination: u32) {
    write(base, REDIRECTION_BASE + 2 * pin + 1, destination << 24);
    write(base, REDIRECTION_BASE + 2 * pin, low);
}

/// Masks pin `pin`.
pub fn mask(base: u64, pin: u32) {
    let low = read(base, REDIRECTION_BASE + 2 * pin);
    write(base, REDIRECTION_BASE + 2 * pin, low | MASKED);
}

/// The redirection entry's polarity and trigger bits for MADT interrupt
/// source override flags (ACPI 6.5, Table 5.50: 00 = conforms to the bus,
/// which for ISA is active high and edge triggered).
fn polarity_and_trigger(flags: u16) -> u32 {
    let low = if flags & 0b11 == 0b11 { ACTIVE_LOW } else { 0 };
    let level = if (flags >> 2) & 0b11 == 0b11 {
        LEVEL
    } else {
        0
    };
    low | level
}

/// ioapic-registers: at the MADT's address, the ID register holds the
/// MADT's I/O APIC ID, the version register an I/O APIC (0x1X or 0x2X)
/// with a pin for every ISA IRQ's GSI, and a redirection entry reads back
/// what was written (read-only bits aside).
pub fn probe_registers(machine: &mut Machine) -> Outcome {
    let Some(madt) = machine.madt() else {
        return fail!("no MADT, no I/O APIC to probe");
    };
    let Some(io) = madt.io_apic else {
        return fail!("the MADT lists no I/O APIC");
    };
    let base = u64::from(io.address);
    let id = (read(base, ID) >> 24) & 0xf;
    let version = read(base, VERSION);
    let pins = ((version >> 16) & 0xff) + 1;
    let gsi = madt.isa_irq0_gsi();
    let pin = gsi - io.gsi_base;
    let written = MASKED | ACTIVE_LOW | LEVEL | u32::from(vector::IOAPIC_PIT);
    route(base, pin, written, 0xa5);
    let low = read(base, REDIRECTION_BASE + 2 * pin);
    let high = read(base, REDIRECTION_BASE + 2 * pin + 1);
    route(base, pin, MASKED | u32::from(vector::IOAPIC_PIT), 0);
    let ok = id == u32::from(io.id) & 0xf
        && matches!(version & 0xf0, 0x10 | 0x20)
        && pins >= 16
        && low & !READ_ONLY == written
        && high >> 24 == 0xa5;
    Outcome::check(
        ok,
        text!(
            "at {base:#x}: ID {id} (MADT {}), version {version:#x} ({pins} pins); pin {pin} wrote {written:#x} \
             / dest 0xa5, read {low:#x} / {:#x}",
            io.id,
            high >> 24
        ),
    )
}

/// pit-ioapic-gsi2: with both 8259As masked, the PIT (ISA IRQ 0) reaches
/// the local APIC through the I/O APIC pin the MADT's override names
/// (GSI 2 on a PC), edge triggered, 1 kHz, each tick in service in its
/// handler and retired by the local APIC's EOI.
pub fn probe_pit(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    let Some(madt) = machine.madt() else {
        return fail!("no MADT, no I/O APIC to route through");
    };
    let Some(io) = madt.io_apic else {
        return fail!("the MADT lists no I/O APIC");
    };
    machine.quiesce();
    let base = u64::from(io.address);
    let gsi = madt.isa_irq0_gsi();
    let pin = gsi - io.gsi_base;
    let flags = madt.isa_irq0_flags();
    let destination = apic::read(apic::register::ID) >> 24;
    pic::set_masks(pic::ALL_MASKED);
    route(
        base,
        pin,
        polarity_and_trigger(flags) | u32::from(vector::IOAPIC_PIT),
        destination,
    );
    pit::periodic(pit::COUNT_1MS);
    let capture = clock::capture_periodic(tsc, 5000, pit::PERIOD_1MS_NS);
    pit::stop();
    mask(base, pin);
    clock::periodic_outcome(
        capture,
        pit::PERIOD_1MS_NS,
        5000,
        format_args!(
            "GSI {gsi} (flags {flags:#x}) to vector {:#x}",
            vector::IOAPIC_PIT
        ),
    )
}
