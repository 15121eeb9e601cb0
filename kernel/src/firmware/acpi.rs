//! The guest's ACPI tables: RSDP, XSDT, RSDT, FADT, FACS, MADT and a DSDT
//! holding `\_S5`, built as one image for a guest-physical base address.
//!
//! It owns the tables' byte layout and what they say about the platform in
//! [`PlatformLayout`]; it writes nothing into guest RAM (the caller places
//! the image) and does not decide where the image goes.
//!
//! Sections cited are the ACPI Specification 6.5 ("ACPI 6.5, 5.2.9").
//!
//! The image, from `base`:
//!
//! ```text
//! base + 0       FACS (64 bytes, 64-byte aligned)      the NVS page
//! base + 0x1000  RSDP, XSDT, RSDT, FADT, MADT, DSDT    the reclaimable page(s)
//! ```
//!
//! The FACS is kept apart because the firmware must report it as ACPI NVS
//! memory (ACPI 6.5, 5.2.10 and 15.1 "AddressRangeNVS"), while the other
//! tables may be ACPI reclaimable.

use super::bytes::Bytes;
use super::layout::{PlatformLayout, LINT_NMI, TIMER_IRQ};
use alloc::vec::Vec;

/// The OEM ID in every table and in the RSDP.
pub const OEM_ID: [u8; 6] = *b"TESSRA";
/// The OEM table ID in every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"TESSERA ";
/// The OEM revision of every table.
pub const OEM_REVISION: u32 = 1;
/// The creator ID: the "ASL compiler" that made the tables, tessera itself.
pub const CREATOR_ID: [u8; 4] = *b"TSRA";
/// The creator revision.
pub const CREATOR_REVISION: u32 = 1;

/// Where the FACS sits in the image.
pub const FACS_OFFSET: u64 = 0;
/// Where the RSDP and the tables after it start in the image: the page
/// after the FACS's.
pub const TABLES_OFFSET: u64 = 0x1000;

/// The RSDP's length in ACPI 2.0 and later (ACPI 6.5, Table 5.3).
pub const RSDP_LENGTH: usize = 36;
/// The checksum of the first 20 bytes covers the ACPI 1.0 RSDP.
const RSDP_V1_LENGTH: usize = 20;
/// Every system description table starts with this 36-byte header (ACPI
/// 6.5, 5.2.6 "System Description Table Header").
const HEADER_LENGTH: usize = 36;
/// The FADT of major version 6 ends with the hypervisor vendor identity
/// (ACPI 6.5, Table 5.9): 276 bytes.
pub const FADT_LENGTH: usize = 276;
/// FADT major version (the header's revision) and minor version: 6.5.
const FADT_REVISION: u8 = 6;
const FADT_MINOR_VERSION: u8 = 5;
/// The FACS is 64 bytes (ACPI 6.5, Table 5.14).
const FACS_LENGTH: usize = 64;

/// GAS address space IDs (ACPI 6.5, Table 5.1 "Generic Address Structure").
const SYSTEM_IO: u8 = 1;
/// GAS access sizes.
const BYTE_ACCESS: u8 = 1;
const WORD_ACCESS: u8 = 2;
const DWORD_ACCESS: u8 = 3;

/// FADT Flags (ACPI 6.5, Table 5.10).
mod fadt_flags {
    /// The processor's WBINVD works (a vCPU executes it).
    pub const WBINVD: u32 = 1 << 0;
    /// C1 (HLT) works on all processors.
    pub const PROC_C1: u32 = 1 << 2;
    /// No fixed-feature power button.
    pub const PWR_BUTTON: u32 = 1 << 4;
    /// No fixed-feature sleep button.
    pub const SLP_BUTTON: u32 = 1 << 5;
    /// No RTC wake status in the fixed register space.
    pub const FIX_RTC: u32 = 1 << 6;
    /// The PM timer is 32 bits wide (left clear: it is 24 bits).
    pub const TMR_VAL_EXT: u32 = 1 << 8;
    /// The reset register is supported.
    pub const RESET_REG_SUP: u32 = 1 << 10;
    /// Hardware-reduced ACPI (left clear: the fixed hardware exists).
    pub const HW_REDUCED_ACPI: u32 = 1 << 20;
}

/// FADT IAPC_BOOT_ARCH flags (ACPI 6.5, Table 5.11).
mod boot_arch {
    /// Legacy devices (COM1, PIT, RTC, 8259) are on an ISA/LPC-like bus.
    pub const LEGACY_DEVICES: u16 = 1 << 0;
    /// Ports 0x60/0x64 are an 8042.
    pub const I8042: u16 = 1 << 1;
    /// No VGA: the OS must not probe for one.
    pub const VGA_NOT_PRESENT: u16 = 1 << 2;
}

/// MADT flag: the system also has a dual 8259 (ACPI 6.5, Table 5.20).
const PCAT_COMPAT: u32 = 1;
/// MADT interrupt controller structure types (ACPI 6.5, Table 5.21).
const MADT_LOCAL_APIC: u8 = 0;
const MADT_IO_APIC: u8 = 1;
const MADT_INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
const MADT_LOCAL_APIC_NMI: u8 = 4;
/// Processor Local APIC flag: usable (ACPI 6.5, Table 5.23).
const LOCAL_APIC_ENABLED: u32 = 1;
/// The ACPI processor UID meaning "all processors" in a Local APIC NMI
/// structure (ACPI 6.5, 5.2.12.7).
const ALL_PROCESSORS: u8 = 0xFF;
/// MPS INTI flags (ACPI 6.5, Table 5.26): polarity in bits 1:0 and trigger
/// mode in bits 3:2, where 01 means active high and edge respectively, and
/// 11 active low and level.
pub const INTI_ACTIVE_HIGH: u16 = 0b01;
/// See [`INTI_ACTIVE_HIGH`].
pub const INTI_EDGE: u16 = 0b01 << 2;
/// See [`INTI_ACTIVE_HIGH`].
pub const INTI_LEVEL: u16 = 0b11 << 2;
/// The ISA bus in an interrupt source override.
const ISA_BUS: u8 = 0;

/// AML opcodes for `Name (_S5, Package () { ... })` (ACPI 6.5, 20.2.5
/// "Term Objects Encoding" and 20.2.3 "Data Objects Encoding").
const AML_NAME_OP: u8 = 0x08;
const AML_PACKAGE_OP: u8 = 0x12;
const AML_ZERO_OP: u8 = 0x00;
const AML_ONE_OP: u8 = 0x01;
const AML_BYTE_PREFIX: u8 = 0x0A;
/// DSDT revision 2: AML integers are 64 bits (ACPI 6.5, 5.2.11.1).
const DSDT_REVISION: u8 = 2;

/// A built ACPI image and where its parts are in guest-physical memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiImage {
    /// The guest-physical address of `bytes[0]`.
    pub base: u64,
    /// The image: FACS page, then the tables (see the module's layout).
    pub bytes: Vec<u8>,
    /// The RSDP: 16-byte aligned, for the guest's scan of 0xE0000–0xFFFFF.
    pub rsdp: u64,
    /// The FACS.
    pub facs: u64,
    /// Each table's guest-physical address and length, in the image's order.
    pub tables: Vec<([u8; 4], u64, u32)>,
}

/// Builds the ACPI tables of a VM with `cpus` vCPUs on `layout`'s platform,
/// for an image starting at guest-physical `base` (page-aligned, below
/// 4 GiB, so that the 32-bit pointers can hold every address).
pub fn build(layout: &PlatformLayout, cpus: u32, base: u64) -> AcpiImage {
    let facs = base + FACS_OFFSET;
    let rsdp = base + TABLES_OFFSET;
    let madt = madt(layout, cpus);
    let dsdt = dsdt(layout);

    // Addresses first: RSDP, then each table 8-byte aligned after it.
    let lengths = [
        (*b"XSDT", HEADER_LENGTH + 8 * 2),
        (*b"RSDT", HEADER_LENGTH + 4 * 2),
        (*b"FACP", FADT_LENGTH),
        (*b"APIC", madt.len()),
        (*b"DSDT", dsdt.len()),
    ];
    let mut tables = Vec::new();
    let mut at = rsdp + RSDP_LENGTH as u64;
    for (signature, length) in lengths {
        at = at.next_multiple_of(8);
        tables.push((signature, at, length as u32));
        at += length as u64;
    }
    let address = |signature: &[u8; 4]| {
        tables
            .iter()
            .find(|(s, _, _)| s == signature)
            .map_or(0, |&(_, address, _)| address)
    };
    let (xsdt_at, rsdt_at) = (address(b"XSDT"), address(b"RSDT"));
    let (fadt_at, madt_at, dsdt_at) = (address(b"FACP"), address(b"APIC"), address(b"DSDT"));

    let mut image = Bytes::new();
    image.zeros(FACS_OFFSET as usize).bytes(&facs_table().0);
    image.zeros((TABLES_OFFSET as usize).saturating_sub(image.len()));
    image.bytes(&rsdp_structure(xsdt_at, rsdt_at).0);
    let parts = [
        xsdt(&[fadt_at, madt_at]),
        rsdt(&[fadt_at, madt_at]),
        fadt(layout, facs, dsdt_at),
        madt,
        dsdt,
    ];
    for (part, &(_, address, length)) in parts.iter().zip(&tables) {
        image.zeros((address - base) as usize - image.len());
        debug_assert_eq!(part.len(), length as usize);
        image.bytes(&part.0);
    }
    AcpiImage {
        base,
        bytes: image.0,
        rsdp,
        facs,
        tables,
    }
}

/// The RSDP (ACPI 6.5, 5.2.5.3, Table 5.3), revision 2: both checksums.
fn rsdp_structure(xsdt: u64, rsdt: u64) -> Bytes {
    let mut rsdp = Bytes::new();
    rsdp.bytes(b"RSD PTR ")
        .u8(0) // checksum of the first 20 bytes
        .bytes(&OEM_ID)
        .u8(2) // revision: ACPI 2.0 and later
        .u32(rsdt as u32)
        .u32(RSDP_LENGTH as u32)
        .u64(xsdt)
        .u8(0) // extended checksum of all 36 bytes
        .zeros(3);
    rsdp.set_checksum(0, RSDP_V1_LENGTH, 8);
    rsdp.set_checksum(0, RSDP_LENGTH, 32);
    rsdp
}

/// A table's header with its length and checksum still zero.
fn header(signature: &[u8; 4], revision: u8) -> Bytes {
    let mut table = Bytes::new();
    table
        .bytes(signature)
        .u32(0) // length, set by `finish`
        .u8(revision)
        .u8(0) // checksum, set by `finish`
        .bytes(&OEM_ID)
        .bytes(&OEM_TABLE_ID)
        .u32(OEM_REVISION)
        .bytes(&CREATOR_ID)
        .u32(CREATOR_REVISION);
    table
}

/// Sets the header's length and checksum once the table is complete.
fn finish(mut table: Bytes) -> Bytes {
    let length = table.len();
    table.set_u32(4, length as u32);
    table.set_checksum(0, length, 9);
    table
}

/// The XSDT (ACPI 6.5, 5.2.8): 64-bit pointers to the tables.
fn xsdt(entries: &[u64]) -> Bytes {
    let mut table = header(b"XSDT", 1);
    for &entry in entries {
        table.u64(entry);
    }
    finish(table)
}

/// The RSDT (ACPI 6.5, 5.2.7): the same pointers in 32 bits, for ACPI 1.0
/// readers.
fn rsdt(entries: &[u64]) -> Bytes {
    let mut table = header(b"RSDT", 1);
    for &entry in entries {
        table.u32(entry as u32);
    }
    finish(table)
}

/// A Generic Address Structure in system I/O space (ACPI 6.5, 5.2.3.2).
fn io_register(table: &mut Bytes, port: u16, length_bytes: u8, access: u8) {
    table
        .u8(SYSTEM_IO)
        .u8(length_bytes * 8)
        .u8(0) // bit offset
        .u8(access)
        .u64(u64::from(port));
}

/// An all-zero GAS: the register does not exist.
fn no_register(table: &mut Bytes) {
    table.zeros(12);
}

/// The FADT (ACPI 6.5, 5.2.9, Table 5.9), major version 6.
fn fadt(layout: &PlatformLayout, facs: u64, dsdt: u64) -> Bytes {
    let flags = fadt_flags::WBINVD
        | fadt_flags::PROC_C1
        | fadt_flags::PWR_BUTTON
        | fadt_flags::SLP_BUTTON
        | fadt_flags::FIX_RTC
        | fadt_flags::RESET_REG_SUP;
    debug_assert_eq!(
        flags & (fadt_flags::TMR_VAL_EXT | fadt_flags::HW_REDUCED_ACPI),
        0
    );
    let mut boot_arch = boot_arch::LEGACY_DEVICES | boot_arch::VGA_NOT_PRESENT;
    if layout.i8042_present {
        boot_arch |= boot_arch::I8042;
    }

    let mut table = header(b"FACP", FADT_REVISION);
    table
        .u32(facs as u32) // FIRMWARE_CTRL
        .u32(dsdt as u32) // DSDT
        .u8(0) // reserved (ACPI 1.0 INT_MODEL)
        .u8(0) // Preferred_PM_Profile: unspecified
        .u16(u16::from(layout.sci_irq)) // SCI_INT
        // SMI_CMD 0: no SMM, so the platform is always in ACPI mode and
        // ACPI_ENABLE/ACPI_DISABLE/S4BIOS_REQ/PSTATE_CNT are 0 (5.2.9).
        .u32(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u32(u32::from(layout.pm1a_event_block)) // PM1a_EVT_BLK
        .u32(0) // PM1b_EVT_BLK
        .u32(u32::from(layout.pm1a_control_block)) // PM1a_CNT_BLK
        .u32(0) // PM1b_CNT_BLK
        .u32(0) // PM2_CNT_BLK
        .u32(u32::from(layout.pm_timer_block)) // PM_TMR_BLK
        .u32(0) // GPE0_BLK
        .u32(0) // GPE1_BLK
        .u8(layout.pm1a_event_length) // PM1_EVT_LEN
        .u8(layout.pm1a_control_length) // PM1_CNT_LEN
        .u8(0) // PM2_CNT_LEN
        .u8(layout.pm_timer_length) // PM_TMR_LEN
        .u8(0) // GPE0_BLK_LEN
        .u8(0) // GPE1_BLK_LEN
        .u8(0) // GPE1_BASE
        .u8(0) // CST_CNT
        .u16(101) // P_LVL2_LAT > 100: no C2
        .u16(1001) // P_LVL3_LAT > 1000: no C3
        .u16(0) // FLUSH_SIZE
        .u16(0) // FLUSH_STRIDE
        .u8(0) // DUTY_OFFSET
        .u8(0) // DUTY_WIDTH
        .u8(0) // DAY_ALRM
        .u8(0) // MON_ALRM
        .u8(0) // CENTURY: no century register in CMOS is promised
        .u16(boot_arch) // IAPC_BOOT_ARCH
        .u8(0) // reserved
        .u32(flags);
    io_register(&mut table, layout.reset_port, 1, BYTE_ACCESS); // RESET_REG
    table
        .u8(layout.reset_value) // RESET_VALUE
        .u16(0) // ARM_BOOT_ARCH
        .u8(FADT_MINOR_VERSION)
        .u64(facs) // X_FIRMWARE_CTRL
        .u64(dsdt); // X_DSDT
    io_register(
        &mut table,
        layout.pm1a_event_block,
        layout.pm1a_event_length,
        WORD_ACCESS,
    ); // X_PM1a_EVT_BLK
    no_register(&mut table); // X_PM1b_EVT_BLK
    io_register(
        &mut table,
        layout.pm1a_control_block,
        layout.pm1a_control_length,
        WORD_ACCESS,
    ); // X_PM1a_CNT_BLK
    no_register(&mut table); // X_PM1b_CNT_BLK
    no_register(&mut table); // X_PM2_CNT_BLK
    io_register(
        &mut table,
        layout.pm_timer_block,
        layout.pm_timer_length,
        DWORD_ACCESS,
    ); // X_PM_TMR_BLK
    no_register(&mut table); // X_GPE0_BLK
    no_register(&mut table); // X_GPE1_BLK
    no_register(&mut table); // SLEEP_CONTROL_REG: hardware-reduced only
    no_register(&mut table); // SLEEP_STATUS_REG: hardware-reduced only
    table.bytes(b"TESSERA\0"); // Hypervisor Vendor Identity
    debug_assert_eq!(table.len(), FADT_LENGTH);
    finish(table)
}

/// The FACS (ACPI 6.5, 5.2.10, Table 5.14), version 2: no waking vector
/// (no S3), the global lock free. It has no checksum.
fn facs_table() -> Bytes {
    let mut facs = Bytes::new();
    facs.bytes(b"FACS")
        .u32(FACS_LENGTH as u32)
        .u32(0) // hardware signature
        .u32(0) // firmware waking vector
        .u32(0) // global lock
        .u32(0) // flags: no S4BIOS, no 64-bit wake
        .u64(0) // X_Firmware_Waking_Vector
        .u8(2) // version
        .zeros(3)
        .u32(0) // OSPM flags
        .zeros(24);
    debug_assert_eq!(facs.len(), FACS_LENGTH);
    facs
}

/// The MADT (ACPI 6.5, 5.2.12): the local APICs, the IOAPIC, how ISA
/// IRQs 0 and the SCI differ from identity wiring, and where NMIs arrive.
fn madt(layout: &PlatformLayout, cpus: u32) -> Bytes {
    let mut table = header(b"APIC", 5);
    table.u32(layout.lapic_base).u32(PCAT_COMPAT);
    for cpu in 0..cpus {
        // Processor Local APIC (5.2.12.2): UID and APIC ID are the index.
        table
            .u8(MADT_LOCAL_APIC)
            .u8(8)
            .u8(cpu as u8)
            .u8(cpu as u8)
            .u32(LOCAL_APIC_ENABLED);
    }
    // I/O APIC (5.2.12.3).
    table
        .u8(MADT_IO_APIC)
        .u8(12)
        .u8(PlatformLayout::ioapic_id(cpus))
        .u8(0)
        .u32(layout.ioapic_base)
        .u32(layout.ioapic_gsi_base);
    // Interrupt Source Overrides (5.2.12.5): the PIT's IRQ 0 at GSI 2, and
    // the SCI level-triggered and active high (the SCI's default would be
    // active low, 5.2.9 "SCI_INT").
    let overrides = [
        (TIMER_IRQ, INTI_ACTIVE_HIGH | INTI_EDGE),
        (layout.sci_irq, INTI_ACTIVE_HIGH | INTI_LEVEL),
    ];
    for (irq, flags) in overrides {
        table
            .u8(MADT_INTERRUPT_SOURCE_OVERRIDE)
            .u8(10)
            .u8(ISA_BUS)
            .u8(irq)
            .u32(layout.isa_irq_gsi(irq))
            .u16(flags);
    }
    // Local APIC NMI (5.2.12.7): LINT1 of every processor.
    table
        .u8(MADT_LOCAL_APIC_NMI)
        .u8(6)
        .u8(ALL_PROCESSORS)
        .u16(INTI_ACTIVE_HIGH | INTI_EDGE)
        .u8(LINT_NMI);
    finish(table)
}

/// One AML integer the way `find_s5` and every AML reader decode it.
fn aml_integer(aml: &mut Bytes, value: u8) {
    match value {
        0 => aml.u8(AML_ZERO_OP),
        1 => aml.u8(AML_ONE_OP),
        _ => aml.u8(AML_BYTE_PREFIX).u8(value),
    };
}

/// The DSDT (ACPI 6.5, 5.2.11.1): `Name (_S5, Package () { t, t, 0, 0 })`
/// with t = the S5 sleep type, SLP_TYPa and SLP_TYPb first (ACPI 6.5,
/// 7.4.2.6 "\_S5 (S5 System State)"). No devices: the legacy ones are
/// found by their fixed ports, and the interrupt model by the MADT.
fn dsdt(layout: &PlatformLayout) -> Bytes {
    let mut elements = Bytes::new();
    elements.u8(4); // NumElements
    for value in [layout.s5_sleep_type, layout.s5_sleep_type, 0, 0] {
        aml_integer(&mut elements, value);
    }
    // PkgLength (20.2.4) counts itself: one byte while the total is < 64.
    let package_length = elements.len() + 1;
    debug_assert!(package_length < 64);
    let mut table = header(b"DSDT", DSDT_REVISION);
    table
        .u8(AML_NAME_OP)
        .bytes(b"_S5_")
        .u8(AML_PACKAGE_OP)
        .u8(package_length as u8)
        .bytes(&elements.0);
    finish(table)
}

#[cfg(test)]
#[path = "acpi_tests.rs"]
mod tests;
