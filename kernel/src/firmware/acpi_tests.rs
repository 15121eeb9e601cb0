//! The ACPI image read back: by hand for the checksums and layout, by the
//! `acpi` crate (the reader tessera itself uses on real firmware) for the
//! meaning, and by tessera's own `\_S5` scan for the sleep type.

use super::*;
use crate::firmware::bytes::sum;
use crate::firmware::layout::MAX_CPUS;
use crate::firmware::testing::FlatMemory;
use crate::loader::GuestMemory;
use crate::power::acpi_sleep::{find_s5, SleepType};
use ::acpi::address::{AccessSize, AddressSpace};
use ::acpi::fadt::Fadt;
use ::acpi::madt::{Madt, MadtEntry};
use ::acpi::AcpiTables;
use std::vec::Vec;

const BASE: u64 = 0xE0000;

/// The image built for `cpus` vCPUs, placed in 1 MiB of RAM.
fn placed(cpus: u32) -> (AcpiImage, FlatMemory) {
    let image = build(&PlatformLayout::DEFAULT, cpus, BASE);
    let mut memory = FlatMemory::new(1 << 20);
    memory.write(image.base, &image.bytes);
    (image, memory)
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

#[test]
fn every_checksum_is_right() {
    for cpus in [1, 2, MAX_CPUS] {
        let (image, memory) = placed(cpus);
        let rsdp = memory.read(image.rsdp, RSDP_LENGTH);
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
        assert_eq!(sum(rsdp), 0, "RSDP extended checksum");
        assert_eq!(image.tables.len(), 5);
        for &(signature, address, length) in &image.tables {
            let table = memory.read(address, length as usize);
            assert_eq!(&table[..4], &signature);
            assert_eq!(u32_at(table, 4), length, "{:?} length", signature);
            assert_eq!(sum(table), 0, "{:?} checksum", signature);
            assert_eq!(&table[10..16], b"TESSRA");
            assert_eq!(&table[16..24], b"TESSERA ");
        }
    }
}

#[test]
fn rsdp_points_at_both_root_tables_and_they_agree() {
    let (image, memory) = placed(2);
    let rsdp = memory.read(image.rsdp, RSDP_LENGTH);
    assert_eq!(image.rsdp % 16, 0);
    assert_eq!(rsdp[15], 2, "revision");
    assert_eq!(&rsdp[9..15], b"TESSRA");
    assert_eq!(u32_at(rsdp, 20), 36, "length");
    let rsdt = u64::from(u32_at(rsdp, 16));
    let xsdt = u64_at(rsdp, 24);
    let find = |s: &[u8; 4]| image.tables.iter().find(|t| &t.0 == s).unwrap().1;
    assert_eq!((xsdt, rsdt), (find(b"XSDT"), find(b"RSDT")));
    let xsdt_entries: Vec<u64> = memory
        .read(xsdt + 36, 16)
        .chunks(8)
        .map(|c| u64_at(c, 0))
        .collect();
    let rsdt_entries: Vec<u64> = memory
        .read(rsdt + 36, 8)
        .chunks(4)
        .map(|c| u64::from(u32_at(c, 0)))
        .collect();
    assert_eq!(xsdt_entries, [find(b"FACP"), find(b"APIC")]);
    assert_eq!(rsdt_entries, xsdt_entries);
}

#[test]
fn facs_is_aligned_in_its_own_page() {
    let (image, memory) = placed(1);
    assert_eq!(image.facs, BASE);
    assert_eq!(image.facs % 64, 0);
    let facs = memory.read(image.facs, 64);
    assert_eq!(&facs[..4], b"FACS");
    assert_eq!(u32_at(facs, 4), 64);
    assert_eq!(facs[32], 2, "version");
    assert!(image
        .tables
        .iter()
        .all(|&(_, address, _)| address >= BASE + TABLES_OFFSET));
}

#[test]
fn the_image_fits_two_pages_at_the_most_cpus() {
    let image = build(&PlatformLayout::DEFAULT, MAX_CPUS, BASE);
    assert!(image.bytes.len() as u64 <= 2 * TABLES_OFFSET);
}

#[test]
fn the_acpi_crate_reads_the_fadt() {
    let (image, memory) = placed(1);
    // SAFETY: the RSDP is at `image.rsdp` inside the handler's RAM.
    let tables = unsafe { AcpiTables::from_rsdp(memory.handler(), image.rsdp as usize) }.unwrap();
    assert_eq!(tables.revision(), 2);
    let fadt = tables.find_table::<Fadt>().unwrap();
    assert_eq!({ fadt.sci_interrupt }, 9);
    assert_eq!({ fadt.smi_cmd_port }, 0);
    assert_eq!((fadt.acpi_enable, fadt.acpi_disable), (0, 0));

    let timer = fadt.pm_timer_block().unwrap().expect("a PM timer");
    assert_eq!(timer.address_space, AddressSpace::SystemIo);
    assert_eq!((timer.address, timer.bit_width), (0x608, 32));
    assert_eq!(timer.access_size, AccessSize::DWordAccess);
    let event = fadt.pm1a_event_block().unwrap();
    assert_eq!(
        (event.address_space, event.address, event.bit_width),
        (AddressSpace::SystemIo, 0x600, 32)
    );
    let control = fadt.pm1a_control_block().unwrap();
    assert_eq!(
        (control.address_space, control.address, control.bit_width),
        (AddressSpace::SystemIo, 0x604, 16)
    );
    assert_eq!(fadt.pm1b_event_block().unwrap(), None);
    assert_eq!(fadt.pm1b_control_block().unwrap(), None);

    let flags = fadt.flags;
    assert!(flags.supports_system_reset_via_fadt());
    assert!(!flags.pm_timer_is_32_bit());
    assert!(!flags.system_is_hw_reduced_acpi());
    let reset = fadt.reset_register().unwrap();
    assert_eq!(
        (reset.address_space, reset.address, reset.bit_width),
        (AddressSpace::SystemIo, 0xCF9, 8)
    );
    assert_eq!(fadt.reset_value, 6);

    let boot_arch = fadt.iapc_boot_arch;
    assert!(boot_arch.legacy_devices_are_accessible());
    assert!(boot_arch.motherboard_implements_8042());
    assert!(boot_arch.dont_probe_vga());
    assert_eq!(fadt.facs_address().unwrap() as u64, image.facs);
    // Both the 32-bit and the 64-bit DSDT pointers are filled, and agree.
    let fadt_bytes = memory.read(image.tables[2].1, FADT_LENGTH);
    assert_eq!(u64::from(u32_at(fadt_bytes, 40)), u64_at(fadt_bytes, 140));
    assert_eq!(u64::from(u32_at(fadt_bytes, 36)), u64_at(fadt_bytes, 132));
    assert_eq!(fadt_bytes[8], 6, "FADT major version");
}

#[test]
fn the_acpi_crate_reads_the_madt() {
    let cpus = 3;
    let (image, memory) = placed(cpus);
    // SAFETY: the RSDP is at `image.rsdp` inside the handler's RAM.
    let tables = unsafe { AcpiTables::from_rsdp(memory.handler(), image.rsdp as usize) }.unwrap();
    let madt = tables.find_table::<Madt>().unwrap();
    assert_eq!({ madt.get().local_apic_address }, 0xFEE0_0000);
    assert!(madt.get().supports_8259());

    let (mut apics, mut ioapics, mut overrides, mut nmis) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(apic) => {
                apics.push((apic.processor_id, apic.apic_id, { apic.flags }))
            }
            MadtEntry::IoApic(ioapic) => {
                ioapics.push((ioapic.io_apic_id, { ioapic.io_apic_address }, {
                    ioapic.global_system_interrupt_base
                }))
            }
            MadtEntry::InterruptSourceOverride(o) => {
                overrides.push((o.bus, o.irq, { o.global_system_interrupt }, { o.flags }))
            }
            MadtEntry::LocalApicNmi(nmi) => {
                nmis.push((nmi.processor_id, { nmi.flags }, nmi.nmi_line))
            }
            other => panic!("unexpected MADT entry {:?}", other),
        }
    }
    assert_eq!(apics, [(0, 0, 1), (1, 1, 1), (2, 2, 1)]);
    assert_eq!(ioapics, [(3, 0xFEC0_0000, 0)]);
    // IRQ 0 -> GSI 2 edge/high (0b0101), IRQ 9 -> GSI 9 level/high (0b1101).
    assert_eq!(overrides, [(0, 0, 2, 0x5), (0, 9, 9, 0xD)]);
    assert_eq!(nmis, [(0xFF, 0x5, 1)]);
}

#[test]
fn tesseras_own_parser_finds_s5_in_the_dsdt() {
    let (image, memory) = placed(1);
    // SAFETY: the RSDP is at `image.rsdp` inside the handler's RAM.
    let tables = unsafe { AcpiTables::from_rsdp(memory.handler(), image.rsdp as usize) }.unwrap();
    let dsdt = tables.dsdt().unwrap();
    let aml = memory.read(dsdt.address as u64, dsdt.length as usize);
    assert_eq!(find_s5(aml), Some(SleepType { a: 5, b: 5 }));
    // The whole package, as an AML reader decodes it: Name(_S5_, Package(4){5, 5, 0, 0}).
    assert_eq!(
        aml,
        [0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0x00, 0x00]
    );
}

#[test]
fn small_sleep_types_use_the_one_byte_opcodes() {
    let layout = PlatformLayout {
        s5_sleep_type: 1,
        ..PlatformLayout::DEFAULT
    };
    let dsdt = dsdt(&layout);
    assert_eq!(sum(&dsdt.0), 0);
    assert_eq!(find_s5(&dsdt.0[36..]), Some(SleepType { a: 1, b: 1 }));
}

#[test]
fn no_8042_is_reported_when_the_layout_has_none() {
    let layout = PlatformLayout {
        i8042_present: false,
        ..PlatformLayout::DEFAULT
    };
    let image = build(&layout, 1, BASE);
    let mut memory = FlatMemory::new(1 << 20);
    memory.write(image.base, &image.bytes);
    // SAFETY: the RSDP is at `image.rsdp` inside the handler's RAM.
    let tables = unsafe { AcpiTables::from_rsdp(memory.handler(), image.rsdp as usize) }.unwrap();
    let fadt = tables.find_table::<Fadt>().unwrap();
    let boot_arch = fadt.iapc_boot_arch;
    assert!(!boot_arch.motherboard_implements_8042());
    assert!(boot_arch.legacy_devices_are_accessible());
}
