//! The memory map's shape for the sizes VMs get and the edge cases around
//! 1 MiB and the reserved top.

use super::*;
use std::vec::Vec;

const MIB: u64 = 1 << 20;

fn map(ram: u64, reserved_top: u64) -> Vec<(u64, u64, u32)> {
    let map = memory_map(&PlatformLayout::DEFAULT, ram, reserved_top);
    assert_sane(&map);
    map.iter()
        .map(|r| (r.start, r.end(), r.kind.code()))
        .collect()
}

/// Sorted, non-overlapping, no empty entries, neighbours of one type merged.
fn assert_sane(map: &[MemoryRegion]) {
    assert!(map.iter().all(|r| r.length > 0), "{:x?}", map);
    for pair in map.windows(2) {
        assert!(
            pair[0].end() <= pair[1].start,
            "overlap or disorder: {:x?}",
            pair
        );
        assert!(
            pair[0].end() < pair[1].start || pair[0].kind != pair[1].kind,
            "unmerged neighbours: {:x?}",
            pair
        );
    }
}

/// The entries every map ends with: the IOAPIC's and the local APIC's pages.
const APIC_PAGES: [(u64, u64, u32); 2] =
    [(0xFEC0_0000, 0xFEC0_1000, 2), (0xFEE0_0000, 0xFEE0_1000, 2)];

fn with_apic_pages(low: &[(u64, u64, u32)]) -> Vec<(u64, u64, u32)> {
    low.iter().chain(APIC_PAGES.iter()).copied().collect()
}

#[test]
fn exactly_one_mib() {
    assert_eq!(
        map(MIB, 0),
        with_apic_pages(&[
            (0, 0x9FC00, 1),
            (0x9FC00, 0xE0000, 2),
            (0xE0000, 0xE1000, 4),
            (0xE1000, 0xE2000, 3),
            (0xE2000, 0x10_0000, 2),
        ])
    );
}

#[test]
fn two_mib_with_a_boot_area() {
    assert_eq!(
        map(2 * MIB, 0x6000),
        with_apic_pages(&[
            (0, 0x9FC00, 1),
            (0x9FC00, 0xE0000, 2),
            (0xE0000, 0xE1000, 4),
            (0xE1000, 0xE2000, 3),
            (0xE2000, 0x10_0000, 2),
            (0x10_0000, 0x1F_A000, 1),
            (0x1F_A000, 0x20_0000, 2),
        ])
    );
}

#[test]
fn one_hundred_twenty_eight_mib() {
    let map = map(128 * MIB, 0x1_6000);
    assert_eq!(map[5], (0x10_0000, 128 * MIB - 0x1_6000, 1));
    assert_eq!(map[6], (128 * MIB - 0x1_6000, 128 * MIB, 2));
    assert_eq!(&map[7..], APIC_PAGES);
    let usable: u64 = map.iter().filter(|e| e.2 == 1).map(|e| e.1 - e.0).sum();
    assert_eq!(usable, 0x9FC00 + 127 * MIB - 0x1_6000);
}

#[test]
fn a_reserved_top_reaching_into_the_bios_area() {
    // 1 MiB with a 192 KiB boot area: it covers the tables' page, which
    // becomes reserved; the FACS stays NVS; low memory stays usable.
    assert_eq!(
        map(MIB, 0x3_0000),
        with_apic_pages(&[
            (0, 0x9FC00, 1),
            (0x9FC00, 0xE0000, 2),
            (0xE0000, 0xE1000, 4),
            (0xE1000, 0x10_0000, 2),
        ])
    );
}

#[test]
fn a_reserved_top_reaching_below_the_ebda() {
    assert_eq!(
        map(2 * MIB, 0x18_0000),
        with_apic_pages(&[
            (0, 0x8_0000, 1),
            (0x8_0000, 0xE0000, 2),
            (0xE0000, 0xE1000, 4),
            (0xE1000, 0x20_0000, 2),
        ])
    );
}

#[test]
fn a_reserved_top_larger_than_ram_leaves_nothing_usable() {
    let map = map(2 * MIB, 4 * MIB);
    assert!(map.iter().all(|e| e.2 != 1), "{:x?}", map);
}

#[test]
fn less_than_one_mib_has_no_acpi_ranges() {
    assert_eq!(
        map(512 * 1024, 0x1000),
        with_apic_pages(&[
            (0, 0x7_F000, 1),
            (0x7_F000, 0x8_0000, 2),
            (0x9FC00, 0x10_0000, 2)
        ])
    );
    // RAM ending inside the EBDA: the EBDA is reserved, not usable.
    assert_eq!(
        map(0x9FE00, 0),
        with_apic_pages(&[(0, 0x9FC00, 1), (0x9FC00, 0x10_0000, 2)])
    );
    assert_eq!(map(0, 0), with_apic_pages(&[(0x9FC00, 0x10_0000, 2)]));
}

#[test]
fn ram_reaching_the_apic_pages_stays_reserved_there() {
    let ram = 5 << 30;
    let map = map(ram, 0);
    assert!(map.contains(&APIC_PAGES[0]) && map.contains(&APIC_PAGES[1]));
    assert_eq!(map.last(), Some(&(0xFEE0_1000, ram, 1)));
}

#[test]
fn types_carry_the_e820_numbers() {
    assert_eq!(MemoryType::Usable.code(), 1);
    assert_eq!(MemoryType::Reserved.code(), 2);
    assert_eq!(MemoryType::AcpiReclaimable.code(), 3);
    assert_eq!(MemoryType::AcpiNvs.code(), 4);
}
