//! The guest's physical memory map: which addresses are RAM it may use and
//! which are firmware, holes or device registers, in the types of the BIOS
//! E820 call that the Multiboot mmap and Linux's e820 table share (ACPI 6.5,
//! 15.1 "INT 15H, E820H - Query System Address Map", Table 15.1).
//!
//! It owns the map's rules only: the addresses come from the firmware
//! layout (`firmware::EBDA`, `ACPI_NVS`, `ACPI_TABLES`, the BIOS area) and
//! the platform's APIC windows, and the loader's boot area arrives as
//! `reserved_top`.

use super::layout::{PlatformLayout, APIC_WINDOW_SIZE};
use super::{ACPI_NVS, ACPI_TABLES, BIOS_AREA_END, BIOS_AREA_START, EBDA, FIRMWARE_MIN_RAM};
use alloc::vec::Vec;

/// An address range type (ACPI 6.5, Table 15.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum MemoryType {
    /// RAM the guest may use (AddressRangeMemory).
    Usable = 1,
    /// In use or reserved: not RAM to the guest (AddressRangeReserved).
    Reserved = 2,
    /// ACPI tables, usable once read (AddressRangeACPI).
    AcpiReclaimable = 3,
    /// ACPI firmware storage to keep, the FACS (AddressRangeNVS).
    AcpiNvs = 4,
}

impl MemoryType {
    /// The number an E820 entry or a Multiboot mmap entry carries.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// Which type wins where two claims overlap: the one that promises the
    /// guest least. Reserved beats reclaimable, so that a range the loader
    /// needs is never handed back after the tables are read.
    const fn strength(self) -> u8 {
        match self {
            MemoryType::Usable => 0,
            MemoryType::AcpiReclaimable => 1,
            MemoryType::Reserved => 2,
            MemoryType::AcpiNvs => 3,
        }
    }
}

/// One range of the memory map, `[start, start + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Its first byte.
    pub start: u64,
    /// Its length in bytes, never 0 in a map.
    pub length: u64,
    /// What it is.
    pub kind: MemoryType,
}

impl MemoryRegion {
    /// One past its last byte.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.length)
    }

    /// Whether it shares a byte with `[start, start + length)`.
    pub const fn overlaps(&self, start: u64, length: u64) -> bool {
        length > 0
            && self.length > 0
            && start < self.end()
            && self.start < start.saturating_add(length)
    }
}

/// The memory map of a VM with `ram_bytes` of RAM at `[0, ram_bytes)` whose
/// top `reserved_top` bytes are taken (the loader's boot area), sorted and
/// non-overlapping, adjacent ranges of one type merged:
///
/// - usable RAM, but for what follows;
/// - reserved: the top `reserved_top` bytes of RAM, the EBDA's last KiB of
///   base memory (where the MP table is), the BIOS area 0xA0000–0x100000
///   (VGA hole and ROM), the IOAPIC's and the local APIC's pages;
/// - with at least 1 MiB of RAM (when `firmware::install` writes tables):
///   the FACS page as ACPI NVS and the tables' page as ACPI reclaimable,
///   inside the BIOS area.
///
/// Where these overlap the stronger type wins (NVS, reserved, reclaimable,
/// usable). Holes and device pages are listed whether or not RAM reaches
/// them; RAM above 4 GiB − 20 MiB would meet the APIC pages, which stay
/// reserved.
pub fn memory_map(layout: &PlatformLayout, ram_bytes: u64, reserved_top: u64) -> Vec<MemoryRegion> {
    let claim = |start: u64, end: u64, kind: MemoryType| MemoryRegion {
        start,
        length: end.saturating_sub(start),
        kind,
    };
    let mut claims = Vec::with_capacity(10);
    claims.push(claim(0, ram_bytes, MemoryType::Usable));
    claims.push(claim(
        ram_bytes.saturating_sub(reserved_top),
        ram_bytes,
        MemoryType::Reserved,
    ));
    claims.push(EBDA);
    if ram_bytes >= FIRMWARE_MIN_RAM {
        claims.push(claim(BIOS_AREA_START, ACPI_NVS.start, MemoryType::Reserved));
        claims.push(ACPI_NVS);
        claims.push(ACPI_TABLES);
        claims.push(claim(
            ACPI_TABLES.end(),
            BIOS_AREA_END,
            MemoryType::Reserved,
        ));
    } else {
        claims.push(claim(BIOS_AREA_START, BIOS_AREA_END, MemoryType::Reserved));
    }
    for base in [layout.ioapic_base, layout.lapic_base] {
        let base = u64::from(base);
        claims.push(claim(base, base + APIC_WINDOW_SIZE, MemoryType::Reserved));
    }
    claims.retain(|claim| claim.length > 0);
    paint(&claims)
}

/// Flattens overlapping claims: each piece between two claim boundaries
/// takes the strongest type covering it; uncovered pieces are left out.
fn paint(claims: &[MemoryRegion]) -> Vec<MemoryRegion> {
    let mut edges: Vec<u64> = claims.iter().flat_map(|c| [c.start, c.end()]).collect();
    edges.sort_unstable();
    edges.dedup();
    let mut map: Vec<MemoryRegion> = Vec::new();
    for piece in edges.windows(2) {
        let (start, end) = (piece[0], piece[1]);
        let Some(kind) = claims
            .iter()
            .filter(|c| c.start <= start && end <= c.end())
            .map(|c| c.kind)
            .max_by_key(|kind| kind.strength())
        else {
            continue;
        };
        match map.last_mut() {
            Some(last) if last.end() == start && last.kind == kind => last.length += end - start,
            _ => map.push(MemoryRegion {
                start,
                length: end - start,
                kind,
            }),
        }
    }
    map
}

#[cfg(test)]
#[path = "memory_map_tests.rs"]
mod tests;
