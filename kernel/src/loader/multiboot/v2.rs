//! Multiboot2 2.0: the header and its tags (3.1), and the boot information
//! tags a kernel finds at EBX (3.6).

use super::super::bytes::{u16_at, u32_at};
use super::super::memory_map::{lower_memory_kib, upper_memory_kib};
use super::{
    aout_piece, c_string, elf_kernel, push_aligned, AoutAddresses, Information, Kernel,
    MultibootError, MultibootVersion, BOOT_LOADER_NAME,
};
use alloc::vec;
use alloc::vec::Vec;

/// The fixed part of the header: magic, architecture, header_length, checksum.
const HEADER_BYTES: u64 = 16;
/// Header tags and boot information tags are 8-byte aligned.
const TAG_ALIGN: u64 = 8;
/// architecture: 32-bit protected mode of i386.
const ARCHITECTURE_I386: u32 = 0;
/// Header tag flags bit 0: the tag is optional.
const TAG_OPTIONAL: u16 = 1;

/// Header tag types (3.1.3 - 3.1.12).
const TAG_END: u16 = 0;
const TAG_INFORMATION_REQUEST: u16 = 1;
const TAG_ADDRESS: u16 = 2;
const TAG_ENTRY_ADDRESS: u16 = 3;
const TAG_CONSOLE_FLAGS: u16 = 4;
const TAG_FRAMEBUFFER: u16 = 5;
const TAG_MODULE_ALIGNMENT: u16 = 6;
const TAG_EFI_BOOT_SERVICES: u16 = 7;
const TAG_EFI_I386_ENTRY: u16 = 8;
const TAG_EFI_AMD64_ENTRY: u16 = 9;
const TAG_RELOCATABLE: u16 = 10;
/// Console flags bit 0: a console is required.
const CONSOLE_REQUIRED: u32 = 1;

/// Boot information tag types (3.6).
const INFO_END: u32 = 0;
const INFO_CMDLINE: u32 = 1;
const INFO_BOOT_LOADER_NAME: u32 = 2;
const INFO_MODULE: u32 = 3;
const INFO_BASIC_MEMORY: u32 = 4;
const INFO_MEMORY_MAP: u32 = 6;
const INFO_ACPI_OLD: u32 = 14;
const INFO_ACPI_NEW: u32 = 15;
/// A memory map entry: base_addr, length, type, reserved (entry_version 0).
const MMAP_ENTRY_BYTES: u32 = 24;
/// The bytes of an ACPI 2.0 RSDP; fewer make an ACPI 1.0 one.
const RSDP_V2_BYTES: usize = 36;

/// Whether tessera can provide the boot information tag `tag`.
fn can_provide(tag: u32, rsdp: bool) -> bool {
    match tag {
        INFO_END
        | INFO_CMDLINE
        | INFO_BOOT_LOADER_NAME
        | INFO_MODULE
        | INFO_BASIC_MEMORY
        | INFO_MEMORY_MAP => true,
        INFO_ACPI_OLD | INFO_ACPI_NEW => rsdp,
        _ => false,
    }
}

/// What a Multiboot2 header at `offset` says to load; `rsdp` says whether an
/// RSDP can be passed.
pub(super) fn kernel(image: &[u8], offset: u64, rsdp: bool) -> Result<Kernel<'_>, MultibootError> {
    let cut_short = MultibootError::HeaderCutShort {
        version: MultibootVersion::Two,
        offset,
        needed: HEADER_BYTES,
    };
    let architecture = u32_at(image, offset + 4).ok_or(cut_short)?;
    if architecture != ARCHITECTURE_I386 {
        return Err(MultibootError::WrongArchitecture(architecture));
    }
    let length = u32_at(image, offset + 8).ok_or(cut_short)?;
    let end = offset + u64::from(length);
    if u64::from(length) < HEADER_BYTES || end > image.len() as u64 {
        return Err(MultibootError::BadHeaderLength { length, offset });
    }

    let mut addresses = None;
    let mut entry = None;
    let mut at = offset + HEADER_BYTES;
    loop {
        // `at` + 8 <= `end` <= the image's length: the reads below succeed.
        if at + 8 > end {
            return Err(MultibootError::NoEndTag);
        }
        let tag = u16_at(image, at).unwrap_or(TAG_END);
        let optional = u16_at(image, at + 2).unwrap_or(0) & TAG_OPTIONAL != 0;
        let size = u32_at(image, at + 4).unwrap_or(0);
        let minimum = match tag {
            TAG_ADDRESS => 24,
            TAG_ENTRY_ADDRESS | TAG_CONSOLE_FLAGS => 12,
            _ => 8,
        };
        if size < minimum || at + u64::from(size) > end {
            return Err(MultibootError::BadTag {
                tag,
                offset: at,
                size,
            });
        }
        let word = |index: u64| u32_at(image, at + 8 + 4 * index).unwrap_or(0);
        match tag {
            TAG_END => break,
            TAG_INFORMATION_REQUEST => {
                let requests = (u64::from(size) - 8) / 4;
                if let Some(missing) = (0..requests)
                    .map(word)
                    .find(|&request| !can_provide(request, rsdp))
                {
                    if !optional {
                        return Err(MultibootError::InformationUnavailable(missing));
                    }
                }
            }
            TAG_ADDRESS => {
                addresses = Some(AoutAddresses {
                    header_addr: word(0),
                    load_addr: word(1),
                    load_end_addr: word(2),
                    bss_end_addr: word(3),
                })
            }
            TAG_ENTRY_ADDRESS => entry = Some(word(0)),
            TAG_CONSOLE_FLAGS => {
                if word(0) & CONSOLE_REQUIRED != 0 && !optional {
                    return Err(MultibootError::ConsoleRequired);
                }
            }
            // Modules are always page-aligned. Without EFI boot services
            // there is nothing to keep and the EFI entry points do not apply;
            // a relocatable image may also load where it was linked.
            TAG_MODULE_ALIGNMENT
            | TAG_EFI_BOOT_SERVICES
            | TAG_EFI_I386_ENTRY
            | TAG_EFI_AMD64_ENTRY
            | TAG_RELOCATABLE => {}
            // tessera has no framebuffer.
            TAG_FRAMEBUFFER if !optional => {
                return Err(MultibootError::UnsupportedTag(TAG_FRAMEBUFFER))
            }
            // A tag this specification version lacks.
            other => {
                if !optional {
                    return Err(MultibootError::UnsupportedTag(other));
                }
            }
        }
        at = (at + u64::from(size)).next_multiple_of(TAG_ALIGN);
    }

    match addresses {
        Some(mut addresses) => {
            let entry = entry.ok_or(MultibootError::NoEntryAddress)?;
            if addresses.load_addr == u32::MAX {
                // -1: the file loads from its first byte.
                addresses.load_addr = u64::from(addresses.header_addr)
                    .checked_sub(offset)
                    .map(|load| load as u32)
                    .ok_or(MultibootError::LoadAddressBeforeFile {
                        load_addr: u32::MAX,
                        header_addr: addresses.header_addr,
                        offset,
                    })?;
            }
            let piece = aout_piece(image, offset, addresses, HEADER_BYTES)?;
            Ok(Kernel {
                pieces: vec![piece],
                entry: u64::from(entry),
            })
        }
        None => {
            let mut kernel = elf_kernel(image)?;
            if let Some(entry) = entry {
                kernel.entry = u64::from(entry);
            }
            Ok(kernel)
        }
    }
}

/// Appends one boot information tag: type, size, `body`, padding.
fn tag(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
    push_aligned(out, body, TAG_ALIGN as usize);
}

/// The boot information: total_size, reserved, then the tags.
pub(super) fn information(info: &Information) -> Vec<u8> {
    let mut out = vec![0u8; 8];
    tag(
        &mut out,
        INFO_CMDLINE,
        &c_string(info.cmdline).collect::<Vec<u8>>(),
    );
    let name: Vec<u8> = c_string(BOOT_LOADER_NAME).collect();
    tag(&mut out, INFO_BOOT_LOADER_NAME, &name);
    for module in info.modules {
        // Modules end below 4 GiB: checked when they were placed.
        let mut body = Vec::new();
        body.extend_from_slice(&(module.start as u32).to_le_bytes());
        body.extend_from_slice(&(module.end as u32).to_le_bytes());
        body.extend(c_string(module.cmdline));
        tag(&mut out, INFO_MODULE, &body);
    }
    let mut memory = Vec::with_capacity(8);
    memory.extend_from_slice(&lower_memory_kib(info.map).to_le_bytes());
    memory.extend_from_slice(&upper_memory_kib(info.map).to_le_bytes());
    tag(&mut out, INFO_BASIC_MEMORY, &memory);
    let mut map = Vec::with_capacity(8 + info.map.len() * MMAP_ENTRY_BYTES as usize);
    map.extend_from_slice(&MMAP_ENTRY_BYTES.to_le_bytes());
    map.extend_from_slice(&0u32.to_le_bytes()); // entry_version
    for region in info.map {
        map.extend_from_slice(&region.start.to_le_bytes());
        map.extend_from_slice(&region.length.to_le_bytes());
        map.extend_from_slice(&region.kind.to_le_bytes());
        map.extend_from_slice(&0u32.to_le_bytes());
    }
    tag(&mut out, INFO_MEMORY_MAP, &map);
    if let Some(rsdp) = info.rsdp {
        let kind = if rsdp.len() >= RSDP_V2_BYTES {
            INFO_ACPI_NEW
        } else {
            INFO_ACPI_OLD
        };
        tag(&mut out, kind, rsdp);
    }
    tag(&mut out, INFO_END, &[]);
    let total = out.len() as u32;
    out[..4].copy_from_slice(&total.to_le_bytes());
    out
}
