//! The firmware a VM's guest finds as if a PC BIOS had run: ACPI tables, an
//! MP table, the BIOS data area words Multiboot kernels read, and the
//! memory map that says where all of it is.
//!
//! Pure: it builds bytes and writes them through [`GuestMemory`]; it does
//! not allocate guest memory, choose a VM's CPU count, or model the devices
//! the tables describe (those answer at the constants in [`layout`]).
//!
//! Where the firmware goes in guest RAM (all below 1 MiB):
//!
//! | range                | what                                          | map type        |
//! |----------------------|-----------------------------------------------|-----------------|
//! | 0x400–0x500          | BIOS data area: COM1 base, EBDA segment, base memory KiB | usable (as on a PC) |
//! | 0x9FC00–0xA0000      | EBDA: MP floating pointer at 0x9FC00, its configuration table at 0x9FC10 | reserved |
//! | 0xE0000–0xE1000      | the FACS                                      | ACPI NVS        |
//! | 0xE1000–0xE2000      | RSDP at 0xE1000, then XSDT, RSDT, FADT, MADT, DSDT | ACPI reclaimable |
//!
//! The MP floating pointer is in the first KiB of the EBDA, which is also
//! the last KiB of base memory: both places the MP specification (MP 1.4,
//! 4 "MP Configuration Table") has a kernel search first. The RSDP is on a
//! 16-byte boundary in 0xE0000–0xFFFFF, where an IA-PC guest scans for it
//! (ACPI 6.5, 5.2.5.1 "Finding the RSDP on IA-PC Systems").

pub mod acpi;
mod bytes;
pub mod layout;
pub mod memory_map;
pub mod mptable;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use layout::PlatformLayout;
pub use memory_map::{memory_map, MemoryRegion, MemoryType};

use crate::loader::GuestMemory;
use core::fmt;
use layout::MAX_CPUS;

/// Guest RAM the firmware needs: everything it writes is below 1 MiB.
pub const FIRMWARE_MIN_RAM: u64 = 1 << 20;
/// The start of the VGA hole and BIOS area, the end of base memory.
pub const BIOS_AREA_START: u64 = 0xA0000;
/// The end of the BIOS area: 1 MiB.
pub const BIOS_AREA_END: u64 = 0x10_0000;
/// The extended BIOS data area: the last KiB of base memory.
pub const EBDA: MemoryRegion = MemoryRegion {
    start: 0x9FC00,
    length: 0x400,
    kind: MemoryType::Reserved,
};
/// Where the MP floating pointer goes: the first paragraph of the EBDA.
pub const MP_TABLE: u64 = EBDA.start;
/// The page holding the FACS, the start of the ACPI image.
pub const ACPI_NVS: MemoryRegion = MemoryRegion {
    start: 0xE0000,
    length: acpi::TABLES_OFFSET,
    kind: MemoryType::AcpiNvs,
};
/// The page holding the RSDP and the other ACPI tables.
pub const ACPI_TABLES: MemoryRegion = MemoryRegion {
    start: ACPI_NVS.start + acpi::TABLES_OFFSET,
    length: 0x1000,
    kind: MemoryType::AcpiReclaimable,
};

/// BIOS data area word: I/O base of COM1 (IBM PC/AT BIOS data area, 0x400).
pub const BDA_COM1: u64 = 0x400;
/// BIOS data area word: the EBDA's real-mode segment.
pub const BDA_EBDA_SEGMENT: u64 = 0x40E;
/// BIOS data area word: base memory in KiB, up to the EBDA.
pub const BDA_BASE_MEMORY_KIB: u64 = 0x413;

/// What [`install`] put in guest RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareInfo {
    /// The RSDP (for Multiboot2's ACPI tag and Linux's `acpi_rsdp_addr`).
    pub rsdp: u64,
    /// The RSDP's bytes, as written at `rsdp` (Multiboot2's ACPI tag is a
    /// copy of them).
    pub rsdp_bytes: [u8; acpi::RSDP_LENGTH],
    /// The MP floating pointer structure.
    pub mp_floating_pointer: u64,
    /// The MP configuration table.
    pub mp_config_table: u64,
    /// The ranges the firmware occupies, as the memory map types them:
    /// [`EBDA`], [`ACPI_NVS`], [`ACPI_TABLES`].
    pub reserved: [MemoryRegion; 3],
}

impl FirmwareInfo {
    /// The firmware range `[start, start + length)` would overwrite, if any:
    /// a VM checks its loaded image and boot area against it.
    pub fn conflict(&self, start: u64, length: u64) -> Option<MemoryRegion> {
        self.reserved
            .iter()
            .copied()
            .find(|region| region.overlaps(start, length))
    }
}

/// Why the firmware could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareError {
    /// Guest RAM does not reach 1 MiB, where the BIOS area ends.
    RamTooSmall {
        /// Guest RAM.
        ram: u64,
        /// What the firmware needs.
        needed: u64,
    },
    /// A VM must have 1 to [`MAX_CPUS`] vCPUs.
    CpuCount {
        /// The count asked for.
        cpus: u32,
    },
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FirmwareError::RamTooSmall { ram, needed } => write!(
                f,
                "firmware: guest RAM of {:#x} bytes ends below {:#x}, where the BIOS area and its tables are",
                ram, needed
            ),
            FirmwareError::CpuCount { cpus } => write!(
                f,
                "firmware: {} vCPUs; the tables describe 1 to {} (the IOAPIC ID is the vCPU count, 4 bits)",
                cpus, MAX_CPUS
            ),
        }
    }
}

/// Writes the firmware of a VM with `cpus` vCPUs on `layout`'s platform into
/// its guest RAM: the MP table in the EBDA, the ACPI tables in the BIOS
/// area and the BIOS data area words, each range zeroed first. Everything
/// is checked before the first write, so a refusal leaves RAM as it was.
///
/// It overwrites whatever is in those ranges, and the loader writes wherever
/// an image asks and its boot area at the top of RAM (inside the BIOS area
/// when RAM is barely above 1 MiB): a VM checks the loaded ranges and the
/// boot area against [`FirmwareInfo::conflict`] and refuses to start on a
/// conflict, and gives the boot area to [`memory_map()`] as `reserved_top`.
pub fn install(
    memory: &mut impl GuestMemory,
    layout: &PlatformLayout,
    cpus: u32,
) -> Result<FirmwareInfo, FirmwareError> {
    if !(1..=MAX_CPUS).contains(&cpus) {
        return Err(FirmwareError::CpuCount { cpus });
    }
    let ram = memory.size();
    if ram < FIRMWARE_MIN_RAM {
        return Err(FirmwareError::RamTooSmall {
            ram,
            needed: FIRMWARE_MIN_RAM,
        });
    }
    let mp = mptable::build(layout, cpus, MP_TABLE);
    let acpi = acpi::build(layout, cpus, ACPI_NVS.start);
    // With at most MAX_CPUS vCPUs both fit their ranges (tests check it).
    debug_assert!(mp.bytes.len() as u64 <= EBDA.length);
    debug_assert!(acpi.bytes.len() as u64 <= ACPI_TABLES.end() - ACPI_NVS.start);

    memory.zero(EBDA.start, EBDA.length);
    memory.write(mp.floating_pointer, &mp.bytes);
    memory.zero(ACPI_NVS.start, ACPI_TABLES.end() - ACPI_NVS.start);
    memory.write(acpi.base, &acpi.bytes);

    // The BIOS data area (IBM PC/AT Technical Reference; the words the
    // guest platform notes list). Base memory ends where the EBDA starts.
    memory.write(BDA_COM1, &layout.com1_base.to_le_bytes());
    memory.write(BDA_EBDA_SEGMENT, &((EBDA.start >> 4) as u16).to_le_bytes());
    memory.write(
        BDA_BASE_MEMORY_KIB,
        &((EBDA.start >> 10) as u16).to_le_bytes(),
    );

    let rsdp_offset = (acpi.rsdp - acpi.base) as usize;
    let mut rsdp_bytes = [0; acpi::RSDP_LENGTH];
    rsdp_bytes.copy_from_slice(&acpi.bytes[rsdp_offset..rsdp_offset + acpi::RSDP_LENGTH]);
    Ok(FirmwareInfo {
        rsdp: acpi.rsdp,
        rsdp_bytes,
        mp_floating_pointer: mp.floating_pointer,
        mp_config_table: mp.config_table,
        reserved: [EBDA, ACPI_NVS, ACPI_TABLES],
    })
}
