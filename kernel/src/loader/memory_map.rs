//! The guest's memory map as boot information reports it: regions of guest
//! physical memory and their kinds, in the numbering Multiboot (0.6.96, 3.3)
//! and Multiboot2 (2.0, 3.6.8) share with the BIOS E820 call.
//!
//! The machine's layout (RAM, holes, ACPI tables) is the caller's to give;
//! when it gives none, [`pc_memory_map`] stands in. The loader only carves
//! out what it uses itself (the boot information and the boot area), which
//! the guest must not reuse.

use alloc::vec::Vec;

/// Available RAM.
pub const MEMORY_AVAILABLE: u32 = 1;
/// Reserved: neither RAM the guest may use nor anything it should touch.
pub const MEMORY_RESERVED: u32 = 2;
/// ACPI tables, reclaimable once the guest has read them.
pub const MEMORY_ACPI_RECLAIMABLE: u32 = 3;
/// ACPI non-volatile storage, preserved across hibernation.
pub const MEMORY_ACPI_NVS: u32 = 4;

/// Where a PC's extended BIOS data area starts, ending conventional memory at
/// 639 KiB (what the BIOS data area word at 0x413 reports).
pub const EBDA_START: u64 = 0x9_fc00;
/// The first byte of extended memory (above the BIOS ROM area).
pub const EXTENDED_MEMORY_START: u64 = 1 << 20;
/// Where conventional memory ends at most (640 KiB).
const CONVENTIONAL_MEMORY_END: u64 = 0xa_0000;

/// One range of guest-physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Its first byte.
    pub start: u64,
    /// Its length in bytes.
    pub length: u64,
    /// What it is: [`MEMORY_AVAILABLE`], [`MEMORY_RESERVED`], ...
    pub kind: u32,
}

impl MemoryRegion {
    /// One past its last byte (saturating: a caller's map is not trusted to be sane).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.length)
    }
}

/// A PC's map of `ram` bytes of guest RAM: available up to the EBDA at
/// 0x9FC00, reserved from there to 1 MiB (EBDA, video memory, BIOS ROM),
/// available from 1 MiB to the end of RAM.
pub fn pc_memory_map(ram: u64) -> Vec<MemoryRegion> {
    let mut map = Vec::with_capacity(3);
    let mut push = |start: u64, end: u64, kind: u32| {
        if end > start {
            map.push(MemoryRegion {
                start,
                length: end - start,
                kind,
            });
        }
    };
    push(0, ram.min(EBDA_START), MEMORY_AVAILABLE);
    if ram > EBDA_START {
        push(EBDA_START, EXTENDED_MEMORY_START, MEMORY_RESERVED);
    }
    push(EXTENDED_MEMORY_START, ram, MEMORY_AVAILABLE);
    map
}

/// `map` with `[start, end)` taken out of every region it overlaps and
/// reported as one reserved region, sorted by start.
pub fn with_reserved(map: &[MemoryRegion], start: u64, end: u64) -> Vec<MemoryRegion> {
    let mut out = Vec::with_capacity(map.len() + 2);
    for region in map {
        let region_end = region.end();
        let mut keep = |from: u64, to: u64| {
            if to > from {
                out.push(MemoryRegion {
                    start: from,
                    length: to - from,
                    kind: region.kind,
                });
            }
        };
        if region_end <= start || region.start >= end {
            keep(region.start, region_end);
        } else {
            keep(region.start, start);
            keep(end, region_end);
        }
    }
    if end > start {
        out.push(MemoryRegion {
            start,
            length: end - start,
            kind: MEMORY_RESERVED,
        });
    }
    out.sort_unstable_by_key(|region| region.start);
    out
}

/// The end of the available memory that runs without a gap from `from`,
/// through adjacent available regions; `from` itself when none holds it.
fn available_run_end(map: &[MemoryRegion], from: u64) -> u64 {
    let mut at = from;
    // Each step moves `at` to a region's end, past where it was: at most one
    // step per region.
    for _ in 0..=map.len() {
        match map
            .iter()
            .find(|r| r.kind == MEMORY_AVAILABLE && r.start <= at && at < r.end())
        {
            Some(region) => at = region.end(),
            None => break,
        }
    }
    at
}

/// Multiboot's `mem_lower`: KiB of available memory from address 0, at most 640.
pub fn lower_memory_kib(map: &[MemoryRegion]) -> u32 {
    (available_run_end(map, 0).min(CONVENTIONAL_MEMORY_END) / 1024) as u32
}

/// Multiboot's `mem_upper`: KiB of available memory from 1 MiB to the first
/// hole, at most what a `u32` holds.
pub fn upper_memory_kib(map: &[MemoryRegion]) -> u32 {
    let end = available_run_end(map, EXTENDED_MEMORY_START);
    ((end - EXTENDED_MEMORY_START) / 1024).min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: u64, end: u64, kind: u32) -> MemoryRegion {
        MemoryRegion {
            start,
            length: end - start,
            kind,
        }
    }

    #[test]
    fn pc_map_of_a_few_sizes() {
        assert_eq!(
            pc_memory_map(4 << 20),
            [
                region(0, EBDA_START, MEMORY_AVAILABLE),
                region(EBDA_START, 1 << 20, MEMORY_RESERVED),
                region(1 << 20, 4 << 20, MEMORY_AVAILABLE),
            ]
        );
        assert_eq!(
            pc_memory_map(512 << 10),
            [region(0, 512 << 10, MEMORY_AVAILABLE)]
        );
        assert_eq!(pc_memory_map(1 << 20).len(), 2);
    }

    #[test]
    fn reserving_splits_trims_and_drops() {
        let map = pc_memory_map(4 << 20);
        let carved = with_reserved(&map, 0x30_0000, 0x40_0000);
        assert_eq!(carved[2], region(1 << 20, 0x30_0000, MEMORY_AVAILABLE));
        assert_eq!(carved[3], region(0x30_0000, 0x40_0000, MEMORY_RESERVED));
        let split = with_reserved(&map, 0x20_0000, 0x30_0000);
        assert_eq!(split.len(), 5);
        assert_eq!(split[4], region(0x30_0000, 4 << 20, MEMORY_AVAILABLE));
        let whole = with_reserved(&[region(0, 0x1000, MEMORY_AVAILABLE)], 0, 0x1000);
        assert_eq!(whole, [region(0, 0x1000, MEMORY_RESERVED)]);
    }

    #[test]
    fn lower_and_upper_memory() {
        let map = with_reserved(&pc_memory_map(4 << 20), 0x3f_0000, 0x40_0000);
        assert_eq!(lower_memory_kib(&map), 639);
        assert_eq!(upper_memory_kib(&map), (0x3f_0000 - (1 << 20)) / 1024);
        // Adjacent available regions count as one run.
        let split = [
            region(0, 0x1000, MEMORY_AVAILABLE),
            region(0x1000, 0xa_0000, MEMORY_AVAILABLE),
            region(1 << 20, 2 << 20, MEMORY_AVAILABLE),
            region(2 << 20, 3 << 20, MEMORY_AVAILABLE),
            region(3 << 20, 4 << 20, MEMORY_ACPI_RECLAIMABLE),
        ];
        assert_eq!(lower_memory_kib(&split), 640);
        assert_eq!(upper_memory_kib(&split), 2048);
        assert_eq!(upper_memory_kib(&pc_memory_map(512 << 10)), 0);
        assert_eq!(lower_memory_kib(&[]), 0);
    }
}
