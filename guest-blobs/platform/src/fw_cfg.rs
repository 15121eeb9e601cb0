//! QEMU's fw_cfg interface (docs/specs/fw_cfg.rst): a 16-bit selector at
//! port 0x510, data bytes at 0x511.

use crate::report::Outcome;
use crate::x86::{inb, outw};
use crate::{fail, text, Machine};

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
/// Item keys.
const SIGNATURE: u16 = 0x00;
const ID: u16 = 0x01;
const RAM_SIZE: u16 = 0x03;
const NB_CPUS: u16 = 0x05;

/// The first `N` bytes of item `key`.
fn item<const N: usize>(key: u16) -> [u8; N] {
    outw(SELECTOR, key);
    let mut bytes = [0; N];
    bytes.iter_mut().for_each(|byte| *byte = inb(DATA));
    bytes
}

/// fw-cfg: the "QEMU" signature, the ID's traditional-interface bit, the
/// CPU count equal to the MADT's enabled processors, and a RAM size (kept
/// for cmos-memory).
pub fn probe(machine: &mut Machine) -> Outcome {
    let signature = item::<4>(SIGNATURE);
    let id = u32::from_le_bytes(item::<4>(ID));
    let cpus = u16::from_le_bytes(item::<2>(NB_CPUS));
    let ram = u64::from_le_bytes(item::<8>(RAM_SIZE));
    if &signature != b"QEMU" {
        return fail!("signature {signature:02x?}, not \"QEMU\"");
    }
    let madt_cpus = machine.madt().map(|madt| madt.enabled_cpus);
    if ram != 0 {
        machine.ram_bytes = Some(ram);
    }
    Outcome::check(
        id & 1 != 0 && cpus >= 1 && Some(u32::from(cpus)) == madt_cpus && ram >= 1 << 20,
        text!(
            "signature \"QEMU\", ID {id:#x}, {cpus} CPU(s) (the MADT: {}), RAM {} KiB",
            madt_cpus.unwrap_or(0),
            ram / 1024
        ),
    )
}
