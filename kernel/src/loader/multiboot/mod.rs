//! Multiboot (0.6.96) and Multiboot2 (2.0) kernels: finding the header,
//! loading what it describes (a.out-style addresses or ELF by `p_paddr`),
//! placing the data modules, and writing the boot information.
//!
//! Where things go in guest RAM:
//!
//! ```text
//! 0x400..0x415  BIOS data area words: COM1 base, EBDA segment, base memory KiB
//! image         where its header (a.out addresses) or ELF segments say
//! modules       page-aligned, from the first page after the image (at least 1 MiB)
//! [ boot information ][ stack ][ GDT ]  <- the boot area, top of RAM below 4 GiB
//! ```
//!
//! The boot information sits at the bottom of the boot area, whole pages, so
//! the memory map (which reserves the area) keeps the guest from reusing it
//! unknowingly; EBX points at it. The vCPU starts as both specifications
//! say: flat 32-bit protected mode, paging and interrupts off, EAX = the
//! bootloader magic, EBX = the boot information.

mod error;
mod v1;
mod v2;

#[cfg(test)]
pub(super) mod tests;

pub use error::{MultibootError, MultibootVersion};

use super::boot_area::Plan;
use super::bytes::u32_at;
use super::detect::{
    MULTIBOOT2_MAGIC, MULTIBOOT2_SEARCH_BYTES, MULTIBOOT_MAGIC, MULTIBOOT_SEARCH_BYTES,
};
use super::memory_map::{lower_memory_kib, pc_memory_map, with_reserved, MemoryRegion};
use super::{
    check_entry, check_pieces, elf, write_pieces, BootState, DetectedFormat, GuestMemory,
    LoadError, Piece, Region,
};
use crate::mm::phys::PAGE_SIZE;
use crate::options::{CpuMode, ModuleOptions};
use alloc::vec::Vec;

/// EAX at the entry of a Multiboot kernel (0.6.96, 3.2).
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// EAX at the entry of a Multiboot2 kernel (2.0, 3.3).
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36D7_6289;

/// The boot loader name both protocols pass.
const BOOT_LOADER_NAME: &str = "tessera";
/// Modules go no lower than here, above the PC's EBDA and ROM hole.
const MODULES_FLOOR: u64 = 1 << 20;
/// 32-bit addresses end here.
const FOUR_GIB: u64 = 1 << 32;
/// The BIOS data area words a kernel may read (see the module comment).
const BDA_COM1: u64 = 0x400;
const BDA_EBDA_SEGMENT: u64 = 0x40e;
const BDA_BASE_MEMORY: u64 = 0x413;
/// COM1's I/O port base, where the virtual PC has its 16550.
const COM1_PORT: u16 = 0x3f8;

/// A data module the caller offers a Multiboot kernel (a `role=data` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataModule<'a> {
    /// Its `name=`, as `modules=` names it.
    pub name: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// The string the kernel is given with it (Multiboot's module string).
    pub cmdline: &'a str,
}

/// What the machine gives a Multiboot or Linux kernel besides its image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootInputs<'a> {
    /// The data modules of this boot; `modules=` picks from them by name.
    pub modules: &'a [DataModule<'a>],
    /// The guest's memory map; `None` for a PC's ([`pc_memory_map`]).
    pub memory_map: Option<&'a [MemoryRegion]>,
    /// A copy of the ACPI RSDP for Multiboot2's ACPI tag: 36 bytes or more
    /// give tag 15 (new RSDP), fewer tag 14 (old RSDP).
    pub rsdp: Option<&'a [u8]>,
    /// Where that RSDP is in guest RAM, for Linux's `acpi_rsdp_addr`.
    pub rsdp_address: Option<u64>,
}

/// What a header says to load.
struct Kernel<'i> {
    pieces: Vec<Piece<'i>>,
    entry: u64,
}

/// A module's place in guest RAM.
#[derive(Debug, Clone, Copy)]
struct PlacedModule<'a> {
    start: u64,
    end: u64,
    cmdline: &'a str,
}

/// Everything the boot information describes.
struct Information<'a> {
    /// Its guest-physical address, for the pointers inside it.
    base: u64,
    cmdline: &'a str,
    modules: &'a [PlacedModule<'a>],
    map: &'a [MemoryRegion],
    rsdp: Option<&'a [u8]>,
}

impl Information<'_> {
    /// The boot information of `version`.
    fn build(&self, version: MultibootVersion) -> Vec<u8> {
        match version {
            MultibootVersion::One => v1::information(self),
            MultibootVersion::Two => v2::information(self),
        }
    }
}

/// The a.out-style addresses of Multiboot's flag 16 and Multiboot2's address tag.
#[derive(Debug, Clone, Copy)]
struct AoutAddresses {
    header_addr: u32,
    load_addr: u32,
    load_end_addr: u32,
    bss_end_addr: u32,
}

/// Finds the header: the first valid Multiboot2 one, else the first valid
/// Multiboot one; a magic whose checksum is wrong is the error when no
/// header is valid.
fn locate(image: &[u8]) -> Result<(MultibootVersion, u64), MultibootError> {
    let mut first_error = None;
    for version in [MultibootVersion::Two, MultibootVersion::One] {
        let (magic, search, align, fields) = match version {
            MultibootVersion::Two => (MULTIBOOT2_MAGIC, MULTIBOOT2_SEARCH_BYTES, 8, 4),
            MultibootVersion::One => (MULTIBOOT_MAGIC, MULTIBOOT_SEARCH_BYTES, 4, 3),
        };
        let end = search.min(image.len() as u64);
        for offset in (0..end).step_by(align) {
            if u32_at(image, offset) != Some(magic) {
                continue;
            }
            let field = |n: u64| u32_at(image, offset + 4 * n);
            let values: Option<Vec<u32>> = (1..fields).map(field).collect();
            let Some(values) = values else {
                first_error.get_or_insert(MultibootError::HeaderCutShort {
                    version,
                    offset,
                    needed: 4 * fields,
                });
                continue;
            };
            let (checksum, others) = values.split_last().unwrap_or((&0, &[]));
            let expected = others.iter().fold(0u32.wrapping_sub(magic), |sum, &value| {
                sum.wrapping_sub(value)
            });
            if *checksum == expected {
                return Ok((version, offset));
            }
            first_error.get_or_insert(MultibootError::BadChecksum {
                version,
                offset,
                checksum: *checksum,
                expected,
            });
        }
    }
    Err(first_error.unwrap_or(MultibootError::NoHeader))
}

/// The bytes an a.out-style header loads (shared by both versions).
fn aout_piece(
    image: &[u8],
    offset: u64,
    addresses: AoutAddresses,
    header_bytes: u64,
) -> Result<Piece<'_>, MultibootError> {
    let AoutAddresses {
        header_addr,
        load_addr,
        load_end_addr,
        bss_end_addr,
    } = addresses;
    let before_header =
        header_addr
            .checked_sub(load_addr)
            .ok_or(MultibootError::LoadAddressAboveHeader {
                load_addr,
                header_addr,
            })?;
    let file_offset = offset.checked_sub(u64::from(before_header)).ok_or(
        MultibootError::LoadAddressBeforeFile {
            load_addr,
            header_addr,
            offset,
        },
    )?;
    // `offset` is inside the image, so `file_offset` is too.
    let file_end = u64::from(load_addr) + (image.len() as u64 - file_offset);
    let load_end = match load_end_addr {
        0 => file_end,
        end if end < load_addr => {
            return Err(MultibootError::LoadEndBelowLoad {
                load_end_addr,
                load_addr,
            })
        }
        end if u64::from(end) > file_end => {
            return Err(MultibootError::LoadEndPastFile {
                load_end_addr,
                file_end,
            })
        }
        end => u64::from(end),
    };
    if u64::from(header_addr) + header_bytes > load_end {
        return Err(MultibootError::HeaderNotLoaded {
            header_addr,
            load_addr,
            load_end,
        });
    }
    let bss_end = match bss_end_addr {
        0 => load_end,
        end if u64::from(end) < load_end => {
            return Err(MultibootError::BssEndBelowLoadEnd {
                bss_end_addr,
                load_end,
            })
        }
        end => u64::from(end),
    };
    let length = load_end - u64::from(load_addr);
    // Both ends were checked against the image above.
    let bytes = image
        .get(file_offset as usize..(file_offset + length) as usize)
        .unwrap_or(&[]);
    Ok(Piece {
        region: Region::Image,
        start: u64::from(load_addr),
        bytes,
        size: bss_end - u64::from(load_addr),
    })
}

/// The ELF image a header without a.out addresses stands on, loaded by
/// `p_paddr` and entered at its (physical) entry point, whatever its class.
fn elf_kernel(image: &[u8]) -> Result<Kernel<'_>, MultibootError> {
    let elf = elf::parse(image).map_err(MultibootError::NotElf)?;
    let pieces = elf
        .segments
        .iter()
        .map(|segment| Piece {
            region: Region::Segment,
            start: segment.physical,
            bytes: segment.file_bytes(image),
            size: segment.memory_size,
        })
        .collect();
    Ok(Kernel {
        pieces,
        entry: elf.physical_entry(),
    })
}

/// Loads a Multiboot or Multiboot2 kernel (see the module comment).
pub(super) fn load(
    image: &[u8],
    options: &ModuleOptions,
    inputs: &BootInputs,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    if options.load.is_some() {
        return Err(LoadError::OptionNotForMultiboot { option: "load" });
    }
    if options.mode.is_some_and(|mode| mode != CpuMode::Protected) {
        return Err(LoadError::OptionNotForMultiboot { option: "mode" });
    }
    let (version, offset) = locate(image)?;
    let kernel = match version {
        MultibootVersion::One => v1::kernel(image, offset)?,
        MultibootVersion::Two => v2::kernel(image, offset, inputs.rsdp.is_some())?,
    };
    let ram = memory.size();
    let loaded = check_pieces(&kernel.pieces, ram)?;
    let entry = options.entry.unwrap_or(kernel.entry);
    check_entry(entry, CpuMode::Protected, &loaded, ram)?;

    let modules = place_modules(options, inputs, &loaded, ram)?;
    let mut occupied = loaded.clone();
    occupied.extend(
        modules
            .iter()
            .filter(|(module, _)| module.end > module.start)
            .map(|(module, _)| (module.start, module.end - module.start)),
    );
    let placed: Vec<PlacedModule> = modules.iter().map(|&(module, _)| module).collect();

    // The size of the information does not depend on where it goes, except
    // through the memory map, where reserving the area adds at most two
    // regions (a split and the reserved one).
    let map = match inputs.memory_map {
        Some(map) => map.to_vec(),
        None => pc_memory_map(ram),
    };
    let mut padded = map.clone();
    let spare = MemoryRegion {
        start: 0,
        length: 0,
        kind: 0,
    };
    padded.extend([spare, spare]);
    let mut information = Information {
        base: 0,
        cmdline: &options.guest_cmdline,
        modules: &placed,
        map: &padded,
        rsdp: inputs.rsdp,
    };
    let bound = information.build(version).len() as u64;
    let plan = Plan::with_information(ram, bound, &occupied)?;
    let base = plan.information_start();
    let final_map = with_reserved(&map, base, plan.end());
    information.base = base;
    information.map = &final_map;
    let info = information.build(version);
    let bios_data = bios_data_words(&final_map, ram, &occupied, base);

    // Everything is checked: write.
    write_pieces(&kernel.pieces, memory);
    for (module, bytes) in &modules {
        memory.write(module.start, bytes);
    }
    memory.zero(base, plan.information_bytes());
    memory.write(
        base,
        &info[..info.len().min(plan.information_bytes() as usize)],
    );
    for (address, value) in &bios_data {
        memory.write(*address, &value.to_le_bytes());
    }
    let format = match version {
        MultibootVersion::One => DetectedFormat::Multiboot,
        MultibootVersion::Two => DetectedFormat::Multiboot2,
    };
    let mut state = BootState {
        rax: match version {
            MultibootVersion::One => MULTIBOOT_BOOTLOADER_MAGIC,
            MultibootVersion::Two => MULTIBOOT2_BOOTLOADER_MAGIC,
        },
        rbx: base,
        modules: placed.iter().map(|m| (m.start, m.end - m.start)).collect(),
        bios_data: bios_data.iter().map(|&(address, _)| (address, 2)).collect(),
        ..BootState::entering(format, CpuMode::Protected, entry, loaded)
    };
    state.set_boot_area(plan.build(memory)?);
    Ok(state)
}

/// The modules `modules=` names, each with its bytes, page-aligned one
/// after the other from the first page above the image (and 1 MiB).
fn place_modules<'a>(
    options: &ModuleOptions,
    inputs: &BootInputs<'a>,
    loaded: &[(u64, u64)],
    ram: u64,
) -> Result<Vec<(PlacedModule<'a>, &'a [u8])>, LoadError> {
    let image_end = loaded
        .iter()
        .map(|&(start, length)| start + length)
        .max()
        .unwrap_or(0);
    let mut next = align_up(image_end).max(MODULES_FLOOR);
    let mut placed = Vec::with_capacity(options.modules.len());
    for name in &options.modules {
        let module = inputs
            .modules
            .iter()
            .find(|module| module.name == name.as_str())
            .ok_or_else(|| LoadError::ModuleNotFound { name: name.clone() })?;
        let start = next;
        let size = module.bytes.len() as u64;
        let end = start.checked_add(size).ok_or(LoadError::AddressOverflow {
            region: Region::Module,
            start,
            size,
        })?;
        if end > ram {
            return Err(LoadError::OutsideRam {
                region: Region::Module,
                start,
                end,
                ram,
            });
        }
        if end > FOUR_GIB {
            return Err(LoadError::ModuleNotReachable { start, end });
        }
        next = align_up(end);
        placed.push((
            PlacedModule {
                start,
                end,
                cmdline: module.cmdline,
            },
            module.bytes,
        ));
    }
    Ok(placed)
}

/// The next page boundary at or above `address` (saturating).
fn align_up(address: u64) -> u64 {
    address.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// The BIOS data area words a Multiboot kernel may read, as a PC's BIOS
/// leaves them: COM1's port at 0x400, the EBDA's segment at 0x40E and the KiB
/// of base memory at 0x413 (both from the memory map's lower memory). Only
/// the words that lie in RAM and clear of everything loaded are written.
fn bios_data_words(
    map: &[MemoryRegion],
    ram: u64,
    occupied: &[(u64, u64)],
    information: u64,
) -> Vec<(u64, u16)> {
    let base_kib = lower_memory_kib(map).min(640) as u16;
    let words = [
        (BDA_COM1, COM1_PORT),
        (BDA_EBDA_SEGMENT, base_kib * 64),
        (BDA_BASE_MEMORY, base_kib),
    ];
    words
        .into_iter()
        .filter(|&(address, _)| {
            let end = address + 2;
            end <= ram
                && end <= information
                && occupied
                    .iter()
                    .all(|&(start, length)| end <= start || address >= start + length)
        })
        .collect()
}

/// Appends `bytes` and then zeroes up to the next multiple of `align`.
fn push_aligned(out: &mut Vec<u8>, bytes: &[u8], align: usize) {
    out.extend_from_slice(bytes);
    out.resize(out.len().next_multiple_of(align), 0);
}

/// A string as the boot information holds it: its bytes and a NUL.
fn c_string(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.bytes().chain(core::iter::once(0))
}
