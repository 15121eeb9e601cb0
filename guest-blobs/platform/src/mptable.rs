//! The MP table (Intel MultiProcessor Specification 1.4, chapter 4), for
//! kernels that read it instead of the MADT.

use crate::acpi::{ebda, scan, sums_to_zero};
use crate::report::Outcome;
use crate::x86::physical;
use crate::{fail, skip, text, Machine};

/// The BIOS data area's word with the base memory size in KiB.
const BASE_MEMORY_KIB: u64 = 0x413;
/// Entry types and lengths (MP 1.4, Table 4-3).
const PROCESSOR: u8 = 0;
const IO_APIC: u8 = 2;

/// mp-table: the "_MP_" floating pointer (MP 1.4, 4.1) in the EBDA's first
/// KiB, the last KiB of base memory or 0xF0000-0xFFFFF, with its checksum;
/// its "PCMP" configuration table with its checksum, as many enabled
/// processors as the MADT (one the BSP) and the MADT's I/O APIC. Skipped
/// when the firmware has none or uses a default configuration.
pub fn probe(machine: &mut Machine) -> Outcome {
    let base_kib = u64::from(u16::from_le_bytes([
        physical(BASE_MEMORY_KIB, 2)[0],
        physical(BASE_MEMORY_KIB, 2)[1],
    ]));
    let top = base_kib.clamp(512, 640) * 1024;
    let found = ebda()
        .and_then(|(start, end)| scan(start, end, b"_MP_"))
        .or_else(|| scan(top - 1024, top, b"_MP_"))
        .or_else(|| scan(0xf0000, 0x100000, b"_MP_"));
    let Some(pointer) = found else {
        return skip!("no MP floating pointer structure (the MP table is optional beside ACPI)");
    };
    let floating = physical(pointer, 16);
    let floating_ok = floating[8] == 1 && sums_to_zero(floating) && matches!(floating[9], 1 | 4);
    let table = u64::from(u32::from_le_bytes([
        floating[4],
        floating[5],
        floating[6],
        floating[7],
    ]));
    if floating[11] != 0 {
        return skip!(
            "default configuration {} (no table), floating pointer at {pointer:#x}",
            floating[11]
        );
    }
    if !floating_ok || table == 0 || table >= 1 << 32 {
        return fail!("floating pointer at {pointer:#x}: bad length, revision or checksum, or table {table:#x}");
    }
    let header = physical(table, 44);
    let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
    if &header[..4] != b"PCMP" || length < 44 {
        return fail!("no \"PCMP\" configuration table at {table:#x}");
    }
    let bytes = physical(table, length);
    let entries = u16::from_le_bytes([bytes[34], bytes[35]]);
    let (mut cpus, mut bsps, mut io_apic) = (0u32, 0u32, None);
    let mut at = 44;
    for _ in 0..entries {
        let Some(&kind) = bytes.get(at) else { break };
        match kind {
            PROCESSOR if at + 20 <= length => {
                // CPU flags: bit 0 enabled, bit 1 bootstrap processor.
                if bytes[at + 3] & 1 != 0 {
                    cpus += 1;
                    bsps += u32::from(bytes[at + 3] & 2 != 0);
                }
                at += 20;
            }
            IO_APIC if at + 8 <= length => {
                io_apic.get_or_insert(u32::from_le_bytes([
                    bytes[at + 4],
                    bytes[at + 5],
                    bytes[at + 6],
                    bytes[at + 7],
                ]));
                at += 8;
            }
            1..=4 => at += 8,
            _ => break,
        }
    }
    let madt = machine.madt();
    let ok = sums_to_zero(bytes)
        && madt.is_some_and(|madt| madt.enabled_cpus == cpus)
        && bsps == 1
        && io_apic.is_some()
        && io_apic == madt.and_then(|madt| madt.io_apic.map(|io| io.address));
    Outcome::check(
        ok,
        text!(
            "floating pointer at {pointer:#x} (MP 1.{}), table at {table:#x}: {} entries, checksum {}, {cpus} \
             enabled CPU(s) ({bsps} BSP), I/O APIC at {:#x}",
            floating[9],
            entries,
            if sums_to_zero(bytes) { "good" } else { "BAD" },
            io_apic.unwrap_or(0)
        ),
    )
}
