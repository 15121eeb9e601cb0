//! What the Multiboot loader handed over (Multiboot 0.6.96, 3.2-3.3).

use crate::report::Outcome;
use crate::x86::physical;
use crate::{fail, text, Machine};

/// EAX at entry from a Multiboot1 loader.
pub const LOADER_MAGIC: u32 = 0x2bad_b002;
/// Information flags: bit 0 mem_lower/mem_upper, bit 6 the memory map.
const INFO_MEMORY: u32 = 1 << 0;
const INFO_MEMORY_MAP: u32 = 1 << 6;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
}

/// mem_lower and mem_upper (KiB) if the information has them.
pub fn memory(magic: u32, info: u32) -> Option<(u32, u32)> {
    if magic != LOADER_MAGIC || info == 0 {
        return None;
    }
    let bytes = physical(u64::from(info), 52);
    (u32_at(bytes, 0) & INFO_MEMORY != 0).then(|| (u32_at(bytes, 4), u32_at(bytes, 8)))
}

/// multiboot-handover: EAX held 0x2BADB002, the information has the
/// memory fields the header asked for (flag 1) and a memory map whose RAM
/// (type 1) covers this image at 1 MiB.
pub fn probe(machine: &mut Machine) -> Outcome {
    let (magic, info) = (machine.multiboot_magic, machine.multiboot_info);
    if magic != LOADER_MAGIC {
        return fail!("EAX was {magic:#x} at entry, not {LOADER_MAGIC:#x}");
    }
    let bytes = physical(u64::from(info), 52);
    let flags = u32_at(bytes, 0);
    let (map_length, map) = (u32_at(bytes, 44), u32_at(bytes, 48));
    let mut regions = 0;
    let mut covers_image = false;
    if flags & INFO_MEMORY_MAP != 0 && map_length <= 4096 {
        let entries = physical(u64::from(map), map_length as usize);
        let mut at = 0;
        while at + 24 <= entries.len() {
            let size = u32_at(entries, at) as usize;
            let base =
                u64::from(u32_at(entries, at + 4)) | u64::from(u32_at(entries, at + 8)) << 32;
            let length =
                u64::from(u32_at(entries, at + 12)) | u64::from(u32_at(entries, at + 16)) << 32;
            if u32_at(entries, at + 20) == 1
                && base <= 0x100000
                && base + length >= 0x100000 + 0x10000
            {
                covers_image = true;
            }
            regions += 1;
            at += size + 4;
        }
    }
    let memory = memory(magic, info);
    Outcome::check(
        flags & (INFO_MEMORY | INFO_MEMORY_MAP) == INFO_MEMORY | INFO_MEMORY_MAP && memory.is_some() && covers_image,
        text!(
            "EAX {magic:#x}, information at {info:#x} with flags {flags:#x}, mem_lower/upper {}/{} KiB, \
             {regions} map regions{}",
            memory.map_or(0, |(lower, _)| lower),
            memory.map_or(0, |(_, upper)| upper),
            if covers_image { ", RAM at 1 MiB" } else { ", none of them RAM at 1 MiB" }
        ),
    )
}
