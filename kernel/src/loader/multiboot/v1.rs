//! Multiboot 0.6.96: the header's flags and a.out addresses (3.1), and the
//! information structure a kernel finds at EBX (3.3).

use super::super::bytes::u32_at;
use super::super::memory_map::{lower_memory_kib, upper_memory_kib};
use super::{
    aout_piece, c_string, elf_kernel, push_aligned, AoutAddresses, Information, Kernel,
    MultibootError, MultibootVersion, BOOT_LOADER_NAME,
};
use alloc::vec;
use alloc::vec::Vec;

/// Header flag 0: modules page-aligned. tessera always aligns them.
const FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag 1: memory information wanted. tessera always gives it.
const FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Header flag 2: a video mode wanted, which tessera cannot set.
const FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Header flags 0-15 are requirements: a loader must refuse those it does not know.
const REQUIRED_FLAGS: u32 = 0xffff;
/// Header flag 16: the a.out kludge, the address fields are valid.
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;

/// The header up to and including entry_addr.
const AOUT_HEADER_BYTES: u64 = 32;
/// The header without the address fields.
const HEADER_BYTES: u64 = 12;

/// Information flags (3.3) for the fields tessera fills.
const INFO_MEMORY: u32 = 1 << 0;
const INFO_CMDLINE: u32 = 1 << 2;
const INFO_MODULES: u32 = 1 << 3;
const INFO_MEMORY_MAP: u32 = 1 << 6;
const INFO_BOOT_LOADER_NAME: u32 = 1 << 9;

/// The information structure's size: up to the end of the framebuffer
/// fields, rounded to 8 bytes.
const INFO_BYTES: usize = 120;
/// Offsets of the fields tessera fills.
const INFO_FLAGS: usize = 0;
const INFO_MEM_LOWER: usize = 4;
const INFO_MEM_UPPER: usize = 8;
const INFO_CMDLINE_ADDR: usize = 16;
const INFO_MODS_COUNT: usize = 20;
const INFO_MODS_ADDR: usize = 24;
const INFO_MMAP_LENGTH: usize = 44;
const INFO_MMAP_ADDR: usize = 48;
const INFO_BOOT_LOADER_NAME_ADDR: usize = 64;
/// A module structure: mod_start, mod_end, string, reserved.
const MODULE_BYTES: usize = 16;
/// A memory map entry: size (of the rest: 20), base_addr, length, type.
const MMAP_ENTRY_BYTES: usize = 24;

/// What a Multiboot header at `offset` says to load.
pub(super) fn kernel(image: &[u8], offset: u64) -> Result<Kernel<'_>, MultibootError> {
    let field = |index: u64| u32_at(image, offset + 4 * index);
    let cut_short = |needed| MultibootError::HeaderCutShort {
        version: MultibootVersion::One,
        offset,
        needed,
    };
    let flags = field(1).ok_or(cut_short(HEADER_BYTES))?;
    if flags & FLAG_VIDEO_MODE != 0 {
        return Err(MultibootError::VideoModeRequired);
    }
    let unknown = flags & REQUIRED_FLAGS & !(FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE);
    if unknown != 0 {
        return Err(MultibootError::UnknownRequiredFlags { flags: unknown });
    }
    if flags & FLAG_AOUT_KLUDGE == 0 {
        return elf_kernel(image);
    }
    let address = |index| field(index).ok_or(cut_short(AOUT_HEADER_BYTES));
    let addresses = AoutAddresses {
        header_addr: address(3)?,
        load_addr: address(4)?,
        load_end_addr: address(5)?,
        bss_end_addr: address(6)?,
    };
    let entry = address(7)?;
    let piece = aout_piece(image, offset, addresses, AOUT_HEADER_BYTES)?;
    Ok(Kernel {
        pieces: vec![piece],
        entry: u64::from(entry),
    })
}

fn put(out: &mut [u8], offset: usize, value: u32) {
    out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

/// The information structure for `info.base`, followed by what it points
/// to: the memory map, the module structures, then the strings.
pub(super) fn information(info: &Information) -> Vec<u8> {
    // Every address is below 4 GiB: the boot area ends there at most.
    let address = |offset: usize| (info.base + offset as u64) as u32;
    let mut out = vec![0u8; INFO_BYTES];
    let flags = INFO_MEMORY | INFO_CMDLINE | INFO_MODULES | INFO_MEMORY_MAP | INFO_BOOT_LOADER_NAME;
    put(&mut out, INFO_FLAGS, flags);
    put(&mut out, INFO_MEM_LOWER, lower_memory_kib(info.map));
    put(&mut out, INFO_MEM_UPPER, upper_memory_kib(info.map));

    let map_start = out.len();
    for region in info.map {
        out.extend_from_slice(&((MMAP_ENTRY_BYTES - 4) as u32).to_le_bytes());
        out.extend_from_slice(&region.start.to_le_bytes());
        out.extend_from_slice(&region.length.to_le_bytes());
        out.extend_from_slice(&region.kind.to_le_bytes());
    }
    let map_length = (out.len() - map_start) as u32;
    put(&mut out, INFO_MMAP_LENGTH, map_length);
    put(&mut out, INFO_MMAP_ADDR, address(map_start));

    let modules_start = out.len();
    out.resize(modules_start + MODULE_BYTES * info.modules.len(), 0);
    put(&mut out, INFO_MODS_COUNT, info.modules.len() as u32);
    put(&mut out, INFO_MODS_ADDR, address(modules_start));

    let cmdline = out.len();
    out.extend(c_string(info.cmdline));
    put(&mut out, INFO_CMDLINE_ADDR, address(cmdline));
    let name = out.len();
    out.extend(c_string(BOOT_LOADER_NAME));
    put(&mut out, INFO_BOOT_LOADER_NAME_ADDR, address(name));
    for (index, module) in info.modules.iter().enumerate() {
        let string = out.len();
        out.extend(c_string(module.cmdline));
        let structure = modules_start + MODULE_BYTES * index;
        // Modules end below 4 GiB: checked when they were placed.
        put(&mut out, structure, module.start as u32);
        put(&mut out, structure + 4, module.end as u32);
        put(&mut out, structure + 8, address(string));
    }
    push_aligned(&mut out, &[], 8);
    out
}
