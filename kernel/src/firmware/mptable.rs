//! The guest's Intel MultiProcessor Specification 1.4 table, for kernels
//! that look for it instead of (or before) ACPI: the floating pointer
//! structure and, right after it, the base configuration table.
//!
//! It owns the structures' byte layout; it writes nothing into guest RAM and
//! does not choose the address (the caller puts it in the EBDA, see
//! `firmware::MP_TABLE`). Sections cited are the MultiProcessor
//! Specification, version 1.4, May 1997 ("MP 1.4, 4.3.1").
//!
//! It describes the same wiring as the MADT: one processor entry per vCPU,
//! one ISA bus, the IOAPIC, ISA IRQs 0–15 but the cascade (2) to IOAPIC pins
//! of the same number except IRQ 0 at pin 2, the 8259 to every LINT0 as
//! ExtINT and NMI to every LINT1 (the default configuration's local
//! wiring, MP 1.4, 5.1, Table 5-3). IOAPIC pin 0 is left unassigned: the
//! 8259 reaches the processors through LINT0 only (virtual wire mode).

use super::bytes::Bytes;
use super::layout::{PlatformLayout, LINT_EXTINT, LINT_NMI, TIMER_IRQ};
use alloc::vec::Vec;

/// The floating pointer structure's length: one 16-byte paragraph.
pub const FLOATING_POINTER_LENGTH: usize = 16;
/// The configuration table header's length (MP 1.4, Table 4-2).
pub const HEADER_LENGTH: usize = 44;
/// SPEC_REV for version 1.4.
const SPEC_REVISION: u8 = 0x04;
/// The OEM ID in the configuration table header (8 bytes, space-padded).
const OEM_ID: [u8; 8] = *b"TESSRA  ";
/// The product ID (12 bytes, space-padded).
const PRODUCT_ID: [u8; 12] = *b"TESSERA     ";

/// Entry types (MP 1.4, Table 4-3) and their lengths.
const PROCESSOR: u8 = 0;
const PROCESSOR_LENGTH: usize = 20;
const BUS: u8 = 1;
const IO_APIC: u8 = 2;
const IO_INTERRUPT: u8 = 3;
const LOCAL_INTERRUPT: u8 = 4;
/// Every entry but a processor's is 8 bytes.
const ENTRY_LENGTH: usize = 8;
/// The entries besides the processors': the bus, the IOAPIC, 15 ISA IRQs
/// and the two local interrupts.
const OTHER_ENTRIES: usize = 19;

/// Processor entry CPU flags (MP 1.4, 4.3.1): usable, and the bootstrap
/// processor.
const CPU_ENABLED: u8 = 1 << 0;
const CPU_BOOTSTRAP: u8 = 1 << 1;
/// The processor signature: family 6, model 0, stepping 0 (MP 1.4, Table
/// 4-5). Kernels take the real one from CPUID.
const CPU_SIGNATURE: u32 = 6 << 8;
/// The feature flags (CPUID.01H:EDX): FPU (bit 0) and on-chip APIC (bit 9).
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
/// IOAPIC entry flag: usable (MP 1.4, 4.3.3).
const IO_APIC_ENABLED: u8 = 1;

/// Interrupt types of assignment entries (MP 1.4, Table 4-10).
const INTERRUPT_INT: u8 = 0;
const INTERRUPT_NMI: u8 = 1;
const INTERRUPT_EXTINT: u8 = 3;
/// Assignment entry flags (MP 1.4, Table 4-10): PO in bits 1:0, EL in
/// bits 3:2; 0 conforms to the bus (ISA: edge, active high), 01 is active
/// high and edge, 11 active low and level.
const CONFORMS: u16 = 0;
const ACTIVE_HIGH_LEVEL: u16 = 0b01 | (0b11 << 2);
/// The ISA bus's ID, and the bus the local entries name.
const ISA_BUS_ID: u8 = 0;
/// The destination APIC ID meaning every local APIC (MP 1.4, 4.3.5).
const ALL_LOCAL_APICS: u8 = 0xFF;
/// ISA IRQ 2 is the 8259 cascade: no device, no assignment.
const CASCADE_IRQ: u8 = 2;

/// A built MP table and where its parts are in guest-physical memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpTable {
    /// The floating pointer structure, at the start of `bytes`.
    pub floating_pointer: u64,
    /// The configuration table, right after the floating pointer.
    pub config_table: u64,
    /// Both structures, back to back.
    pub bytes: Vec<u8>,
}

/// The number of bytes [`build`] produces for `cpus` vCPUs.
pub const fn size(cpus: u32) -> usize {
    FLOATING_POINTER_LENGTH
        + HEADER_LENGTH
        + PROCESSOR_LENGTH * cpus as usize
        + ENTRY_LENGTH * OTHER_ENTRIES
}

/// Builds the MP table of a VM with `cpus` vCPUs on `layout`'s platform,
/// with the floating pointer at guest-physical `address` (16-byte aligned,
/// below 4 GiB) and the configuration table after it.
pub fn build(layout: &PlatformLayout, cpus: u32, address: u64) -> MpTable {
    let config_table = address + FLOATING_POINTER_LENGTH as u64;
    let (config, entries) = config_table_bytes(layout, cpus);
    let mut bytes = floating_pointer(config_table);
    bytes.bytes(&config.0);
    debug_assert_eq!(entries, cpus as usize + OTHER_ENTRIES);
    debug_assert_eq!(bytes.len(), size(cpus));
    MpTable {
        floating_pointer: address,
        config_table,
        bytes: bytes.0,
    }
}

/// The floating pointer structure (MP 1.4, 4.1, Table 4-1).
fn floating_pointer(config_table: u64) -> Bytes {
    let mut pointer = Bytes::new();
    pointer
        .bytes(b"_MP_")
        .u32(config_table as u32) // PHYSICAL ADDRESS POINTER
        .u8(1) // LENGTH in paragraphs
        .u8(SPEC_REVISION)
        .u8(0) // CHECKSUM
        .u8(0) // FEATURE 1: 0 = a configuration table is present
        .u8(0) // FEATURE 2: IMCRP clear, no IMCR: virtual wire mode
        .zeros(3);
    pointer.set_checksum(0, FLOATING_POINTER_LENGTH, 10);
    pointer
}

/// The configuration table (MP 1.4, 4.2 and 4.3) and its entry count.
fn config_table_bytes(layout: &PlatformLayout, cpus: u32) -> (Bytes, usize) {
    let mut table = Bytes::new();
    table
        .bytes(b"PCMP")
        .u16(0) // BASE TABLE LENGTH, set below
        .u8(SPEC_REVISION)
        .u8(0) // CHECKSUM
        .bytes(&OEM_ID)
        .bytes(&PRODUCT_ID)
        .u32(0) // OEM TABLE POINTER
        .u16(0) // OEM TABLE SIZE
        .u16(0) // ENTRY COUNT, set below
        .u32(layout.lapic_base)
        .u16(0) // EXTENDED TABLE LENGTH
        .u8(0) // EXTENDED TABLE CHECKSUM
        .u8(0);
    debug_assert_eq!(table.len(), HEADER_LENGTH);
    let mut entries = 0;

    // Processors (4.3.1), the BSP first. Entries are in type order (4.3).
    for cpu in 0..cpus {
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTSTRAP } else { 0 };
        table
            .u8(PROCESSOR)
            .u8(cpu as u8) // local APIC ID
            .u8(layout.lapic_version)
            .u8(flags)
            .u32(CPU_SIGNATURE)
            .u32(CPU_FEATURES)
            .zeros(8);
        entries += 1;
    }
    // The ISA bus (4.3.2, Table 4-8's bus type string).
    table.u8(BUS).u8(ISA_BUS_ID).bytes(b"ISA   ");
    entries += 1;
    // The IOAPIC (4.3.3).
    let ioapic_id = PlatformLayout::ioapic_id(cpus);
    table
        .u8(IO_APIC)
        .u8(ioapic_id)
        .u8(layout.ioapic_version)
        .u8(IO_APIC_ENABLED)
        .u32(layout.ioapic_base);
    entries += 1;
    // ISA IRQs to IOAPIC pins (4.3.4). The SCI is level, active high, as
    // the MADT's override says; the rest conform to ISA (edge, high).
    for irq in (0..16u8).filter(|&irq| irq != CASCADE_IRQ) {
        let flags = if irq == layout.sci_irq {
            ACTIVE_HIGH_LEVEL
        } else {
            CONFORMS
        };
        let pin = layout.isa_irq_gsi(irq) - layout.ioapic_gsi_base;
        debug_assert!(irq != TIMER_IRQ || pin == layout.timer_gsi);
        table
            .u8(IO_INTERRUPT)
            .u8(INTERRUPT_INT)
            .u16(flags)
            .u8(ISA_BUS_ID)
            .u8(irq)
            .u8(ioapic_id)
            .u8(pin as u8);
        entries += 1;
    }
    // Local interrupts (4.3.5): the 8259's INTR on LINT0, NMI on LINT1,
    // both to every local APIC.
    for (kind, lint) in [(INTERRUPT_EXTINT, LINT_EXTINT), (INTERRUPT_NMI, LINT_NMI)] {
        table
            .u8(LOCAL_INTERRUPT)
            .u8(kind)
            .u16(CONFORMS)
            .u8(ISA_BUS_ID)
            .u8(0) // source bus IRQ
            .u8(ALL_LOCAL_APICS)
            .u8(lint);
        entries += 1;
    }

    let length = table.len();
    table.set_u16(4, length as u16);
    table.set_u16(34, entries as u16);
    table.set_checksum(0, length, 7);
    (table, entries)
}

#[cfg(test)]
#[path = "mptable_tests.rs"]
mod tests;
