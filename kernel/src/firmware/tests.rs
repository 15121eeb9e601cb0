//! `install` as a whole: what lands in guest RAM, found the way a guest
//! finds it, and what is refused.

use super::testing::FlatMemory;
use super::*;
use crate::power::acpi_sleep::{find_s5, SleepType};
use ::acpi::fadt::Fadt;
use ::acpi::AcpiTables;
use std::vec::Vec;

const MIB: u64 = 1 << 20;

#[test]
fn install_fills_the_bios_data_area() {
    let mut memory = FlatMemory::new(2 * MIB);
    install(&mut memory, &PlatformLayout::DEFAULT, 1).unwrap();
    assert_eq!(memory.read_u16(0x400), 0x3F8, "COM1");
    assert_eq!(memory.read_u16(0x40E), 0x9FC0, "EBDA segment");
    assert_eq!(memory.read_u16(0x413), 639, "base memory KiB");
}

#[test]
fn a_guest_finds_the_rsdp_by_the_bios_scan() {
    // 2 MiB: the acpi crate's scan maps a few bytes past 0xFFFFF.
    let mut memory = FlatMemory::new(2 * MIB);
    let info = install(&mut memory, &PlatformLayout::DEFAULT, 2).unwrap();
    assert_eq!(info.rsdp, 0xE1000);
    // The acpi crate's BIOS search reads the EBDA segment at 0x40E, then
    // scans the EBDA and 0xE0000-0xFFFFF, as a guest kernel does.
    // SAFETY: the handler serves all of guest RAM, which covers the areas.
    let tables = unsafe { AcpiTables::search_for_rsdp_bios(memory.handler()) }.unwrap();
    let fadt = tables.find_table::<Fadt>().unwrap();
    assert_eq!({ fadt.sci_interrupt }, 9);
    let dsdt = tables.dsdt().unwrap();
    let aml = memory.read(dsdt.address as u64, dsdt.length as usize);
    assert_eq!(find_s5(aml), Some(SleepType { a: 5, b: 5 }));
}

#[test]
fn the_mp_floating_pointer_is_in_the_first_kib_of_the_ebda() {
    let mut memory = FlatMemory::new(MIB);
    let info = install(&mut memory, &PlatformLayout::DEFAULT, 1).unwrap();
    let ebda = u64::from(memory.read_u16(0x40E)) << 4;
    assert_eq!(info.mp_floating_pointer, ebda);
    assert_eq!(info.mp_floating_pointer % 16, 0);
    assert_eq!(memory.read(ebda, 4), b"_MP_");
    assert_eq!(info.mp_config_table, ebda + 16);
    assert_eq!(memory.read(info.mp_config_table, 4), b"PCMP");
}

#[test]
fn writes_stay_in_the_reserved_ranges_and_the_bios_data_area() {
    let mut memory = FlatMemory::new(4 * MIB);
    memory.bytes[0x9FFFF] = 0xAA; // dirt in the EBDA, which install clears
    let info = install(&mut memory, &PlatformLayout::DEFAULT, 4).unwrap();
    assert_eq!(memory.bytes[0x9FFFF], 0);
    for &(start, length) in &memory.writes {
        let in_bda = start >= 0x400 && start + length <= 0x500;
        let in_reserved = info
            .reserved
            .iter()
            .any(|r| start >= r.start && start + length <= r.end())
            || (start == ACPI_NVS.start && start + length <= ACPI_TABLES.end());
        assert!(in_bda || in_reserved, "write {:#x}+{:#x}", start, length);
    }
}

#[test]
fn the_memory_map_types_what_install_reserved() {
    let mut memory = FlatMemory::new(2 * MIB);
    let info = install(&mut memory, &PlatformLayout::DEFAULT, 1).unwrap();
    let map = memory_map(&PlatformLayout::DEFAULT, 2 * MIB, 0);
    for reserved in info.reserved {
        let covering: Vec<&MemoryRegion> = map
            .iter()
            .filter(|r| r.start <= reserved.start && reserved.end() <= r.end())
            .collect();
        assert_eq!(covering.len(), 1, "{:x?}", reserved);
        assert_eq!(covering[0].kind, reserved.kind, "{:x?}", reserved);
    }
    // The tables themselves lie in their typed ranges.
    assert!(info.rsdp >= ACPI_TABLES.start && info.rsdp < ACPI_TABLES.end());
    assert!(info.mp_floating_pointer >= EBDA.start && info.mp_config_table < EBDA.end());
}

#[test]
fn conflicts_with_a_boot_area_are_reported() {
    let mut memory = FlatMemory::new(MIB);
    let info = install(&mut memory, &PlatformLayout::DEFAULT, 1).unwrap();
    // A loader's boot area in the top 0x24000 bytes of 1 MiB.
    assert_eq!(info.conflict(MIB - 0x24000, 0x24000), Some(ACPI_NVS));
    assert_eq!(info.conflict(MIB - 0x1F000, 0x1F000), Some(ACPI_TABLES));
    assert_eq!(info.conflict(0x10_0000, 0x1000), None);
    assert_eq!(info.conflict(0x7C00, 0x200), None);
    assert_eq!(info.conflict(0x9FBFF, 2), Some(EBDA));
}

#[test]
fn less_than_one_mib_is_refused_untouched() {
    let mut memory = FlatMemory::new(MIB - 0x1000);
    let error = install(&mut memory, &PlatformLayout::DEFAULT, 1).unwrap_err();
    assert_eq!(
        error,
        FirmwareError::RamTooSmall {
            ram: MIB - 0x1000,
            needed: MIB
        }
    );
    assert!(memory.writes.is_empty());
    let message = std::format!("{}", error);
    assert!(
        message.starts_with("firmware: guest RAM of 0xff000 bytes"),
        "{}",
        message
    );
}

#[test]
fn cpu_counts_outside_the_tables_reach_are_refused() {
    let mut memory = FlatMemory::new(MIB);
    for cpus in [0, layout::MAX_CPUS + 1, u32::MAX] {
        let error = install(&mut memory, &PlatformLayout::DEFAULT, cpus).unwrap_err();
        assert_eq!(error, FirmwareError::CpuCount { cpus });
    }
    assert!(memory.writes.is_empty());
    assert!(install(&mut memory, &PlatformLayout::DEFAULT, layout::MAX_CPUS).is_ok());
}
