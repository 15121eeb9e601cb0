//! The MP table read back the way a kernel finds it: scan for `_MP_` on
//! 16-byte boundaries, check both checksums, walk the entries.

use super::*;
use crate::firmware::bytes::sum;
use crate::firmware::layout::MAX_CPUS;
use std::vec::Vec;

const ADDRESS: u64 = 0x9FC00;

/// What a configuration table lists, decoded entry by entry.
#[derive(Debug, Default)]
struct Parsed {
    local_apic: u32,
    /// (APIC ID, version, flags)
    processors: Vec<(u8, u8, u8)>,
    /// (bus ID, type string)
    buses: Vec<(u8, [u8; 6])>,
    /// (ID, version, flags, address)
    ioapics: Vec<(u8, u8, u8, u32)>,
    /// (type, flags, bus, bus IRQ, IOAPIC ID, pin)
    io_interrupts: Vec<(u8, u16, u8, u8, u8, u8)>,
    /// (type, flags, bus, bus IRQ, APIC ID, LINT)
    local_interrupts: Vec<(u8, u16, u8, u8, u8, u8)>,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Finds the floating pointer in `region` (which starts at guest-physical
/// `base`) and decodes the configuration table it points to.
fn parse(region: &[u8], base: u64) -> Parsed {
    let pointer_offset = (0..region.len() - 15)
        .step_by(16)
        .find(|&at| &region[at..at + 4] == b"_MP_")
        .expect("no _MP_ signature on a 16-byte boundary");
    let pointer = &region[pointer_offset..pointer_offset + 16];
    assert_eq!(pointer[8], 1, "length in paragraphs");
    assert_eq!(pointer[9], 4, "spec revision 1.4");
    assert_eq!(sum(pointer), 0, "floating pointer checksum");
    assert_eq!(
        pointer[11], 0,
        "a configuration table, not a default configuration"
    );

    let table_offset = (u64::from(u32_at(pointer, 4)) - base) as usize;
    let header = &region[table_offset..table_offset + 44];
    assert_eq!(&header[..4], b"PCMP");
    assert_eq!(header[6], 4, "spec revision 1.4");
    let length = usize::from(u16_at(header, 4));
    let table = &region[table_offset..table_offset + length];
    assert_eq!(sum(table), 0, "configuration table checksum");
    assert_eq!(u16_at(header, 40), 0, "no extended table");

    let mut parsed = Parsed {
        local_apic: u32_at(header, 36),
        ..Parsed::default()
    };
    let mut at = 44;
    let mut last_type = 0;
    for _ in 0..u16_at(header, 34) {
        let entry = &table[at..];
        assert!(entry[0] >= last_type, "entries are in type order");
        last_type = entry[0];
        let eight = |e: &[u8]| (e[1], u16_at(e, 2), e[4], e[5], e[6], e[7]);
        at += match entry[0] {
            0 => {
                parsed.processors.push((entry[1], entry[2], entry[3]));
                20
            }
            1 => {
                parsed
                    .buses
                    .push((entry[1], entry[2..8].try_into().unwrap()));
                8
            }
            2 => {
                parsed
                    .ioapics
                    .push((entry[1], entry[2], entry[3], u32_at(entry, 4)));
                8
            }
            3 => {
                parsed.io_interrupts.push(eight(entry));
                8
            }
            4 => {
                parsed.local_interrupts.push(eight(entry));
                8
            }
            other => panic!("unknown entry type {}", other),
        };
    }
    assert_eq!(at, length, "the entries fill the base table exactly");
    parsed
}

#[test]
fn a_two_cpu_table_reads_back() {
    let table = build(&PlatformLayout::DEFAULT, 2, ADDRESS);
    assert_eq!(table.floating_pointer, ADDRESS);
    assert_eq!(table.config_table, ADDRESS + 16);
    let parsed = parse(&table.bytes, ADDRESS);
    assert_eq!(parsed.local_apic, 0xFEE0_0000);
    // CPU 0 is enabled and the BSP, CPU 1 enabled.
    assert_eq!(parsed.processors, [(0, 0x14, 0b11), (1, 0x14, 0b01)]);
    assert_eq!(parsed.buses, [(0, *b"ISA   ")]);
    assert_eq!(parsed.ioapics, [(2, 0x11, 1, 0xFEC0_0000)]);

    let mut expected = Vec::new();
    for irq in (0..16u8).filter(|&irq| irq != 2) {
        let pin = if irq == 0 { 2 } else { irq };
        let flags = if irq == 9 { 0b1101 } else { 0 };
        expected.push((0, flags, 0, irq, 2, pin));
    }
    assert_eq!(parsed.io_interrupts, expected);
    // Every IOAPIC pin has at most one source.
    let mut pins: Vec<u8> = parsed.io_interrupts.iter().map(|e| e.5).collect();
    pins.sort_unstable();
    pins.dedup();
    assert_eq!(pins.len(), parsed.io_interrupts.len());

    assert_eq!(
        parsed.local_interrupts,
        [(3, 0, 0, 0, 0xFF, 0), (1, 0, 0, 0, 0xFF, 1)],
        "ExtINT on LINT0, NMI on LINT1, every local APIC"
    );
}

#[test]
fn one_processor_entry_per_cpu_and_the_size_is_known() {
    for cpus in [1, 4, MAX_CPUS] {
        let table = build(&PlatformLayout::DEFAULT, cpus, ADDRESS);
        assert_eq!(table.bytes.len(), size(cpus));
        let parsed = parse(&table.bytes, ADDRESS);
        assert_eq!(parsed.processors.len(), cpus as usize);
        let bsps = parsed.processors.iter().filter(|p| p.2 & 2 != 0).count();
        assert_eq!(bsps, 1);
        assert_eq!(
            parsed.ioapics[0].0, cpus as u8,
            "IOAPIC ID after the APIC IDs"
        );
    }
    // Even the largest table fits the EBDA's first KiB.
    assert!(size(MAX_CPUS) <= 1024);
}
