//! The guest image loader: puts one guest image (the bytes of a Multiboot2
//! module) into a VM's guest-physical memory and says how its vCPU must start.
//!
//! It owns format detection, ELF parsing, the Multiboot and Multiboot2
//! protocols (headers, boot information, data modules), the Linux boot
//! protocol (setup header, zero page, initrd), where images go, and
//! the boot area (GDT, identity page tables, default stack) that protected
//! and long mode need. It must not touch hardware or allocate guest memory: the
//! memory comes in as a [`GuestMemory`], and the vCPU's initial state goes out
//! as a [`BootState`] for the virtualization backend to apply.
//!
//! Images are untrusted. Every refusal is a [`LoadError`] naming the reason,
//! no input can make the loader panic, and every check is made before the
//! first byte is written, so a refused image leaves guest memory as it was.

mod boot_area;
mod bytes;
mod detect;
mod dry_run;
mod elf;
mod error;
mod linux;
mod memory_map;
mod multiboot;
#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use boot_area::{CODE32_SELECTOR, CODE64_SELECTOR, DATA_SELECTOR, GDT, GDT_LIMIT, STACK_SIZE};
pub use detect::{detect, DetectedFormat, ELF_MAGIC};
pub use dry_run::{dry_run, dry_run_with, DryRunMemory};
pub use elf::{ElfClass, ElfError};
pub use error::{LoadError, Region};
pub use linux::{LinuxError, CMDLINE_ADDRESS, ZERO_PAGE_ADDRESS};
pub use memory_map::{
    pc_memory_map, MemoryRegion, MEMORY_ACPI_NVS, MEMORY_ACPI_RECLAIMABLE, MEMORY_AVAILABLE,
    MEMORY_RESERVED,
};
pub use multiboot::{
    BootInputs, DataModule, MultibootError, MultibootVersion, MULTIBOOT2_BOOTLOADER_MAGIC,
    MULTIBOOT_BOOTLOADER_MAGIC,
};

use crate::options::{CpuMode, ImageFormat, ModuleOptions};
use alloc::vec::Vec;
use boot_area::Plan;
use elf::ElfImage;

/// Where a raw image loads unless `load=` says otherwise: a boot sector's address.
pub const DEFAULT_RAW_LOAD: u64 = 0x7c00;

/// The first address real mode cannot reach (without the A20 wrap-around).
const REAL_MODE_LIMIT: u64 = 1 << 20;
/// The first address flat 32-bit protected mode cannot reach.
const PROTECTED_MODE_LIMIT: u64 = 1 << 32;
/// The first address past the lower canonical half of a 48-bit address space,
/// which is all an identity map can cover (SDM Vol. 3A, 3.3.7.1 "Canonical
/// Addressing").
const LONG_MODE_LIMIT: u64 = 1 << 47;
/// The size of a real-mode segment: SP is 16 bits.
const REAL_MODE_SEGMENT: u64 = 1 << 16;

/// Zeroes for [`GuestMemory::zero`]'s default.
static ZEROS: [u8; 4096] = [0; 4096];

/// Guest-physical memory of one VM: `[0, size)` bytes, zeroed at creation;
/// `size` is a whole number of 4 KiB pages (`mem=` guarantees it).
pub trait GuestMemory {
    /// The size of guest RAM in bytes.
    fn size(&self) -> u64;
    /// Writes `bytes` at guest-physical `gpa`; the loader checks that
    /// `[gpa, gpa + bytes.len())` lies inside guest RAM first.
    fn write(&mut self, gpa: u64, bytes: &[u8]);
    /// Zeroes `[gpa, gpa + length)`, checked like `write`. The default writes
    /// 4 KiB of zeroes at a time; a backend with a faster fill overrides it.
    fn zero(&mut self, gpa: u64, length: u64) {
        let mut at = gpa;
        let mut left = length;
        while left > 0 {
            let chunk = left.min(ZEROS.len() as u64);
            self.write(at, &ZEROS[..chunk as usize]);
            at = at.saturating_add(chunk);
            left -= chunk;
        }
    }
    /// The page-aligned 4 KiB page at `gpa` as a page table, for building
    /// page tables in the guest; the loader checks that it is in guest RAM.
    fn table(&mut self, gpa: u64) -> &mut [u64; 512];
}

/// How the vCPU must start once the image is loaded.
///
/// Segment registers follow from `mode`: real mode has CS = `real_mode_cs`
/// and every other segment register 0; protected mode has CS =
/// [`CODE32_SELECTOR`], long mode CS = [`CODE64_SELECTOR`], and both have
/// [`DATA_SELECTOR`] in DS, ES, FS, GS and SS, as described by [`GDT`] at
/// `gdt_base`. Long mode also needs CR0.PE/PG, CR4.PAE and EFER.LME/LMA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootState {
    /// What was loaded: `Raw`, `Elf32`, `Elf64`, `Multiboot` or `Multiboot2`.
    pub format: DetectedFormat,
    /// The mode the vCPU starts in.
    pub mode: CpuMode,
    /// RIP. In real mode it is the offset from CS's base (`real_mode_cs << 4`).
    pub entry: u64,
    /// The real-mode CS selector; 0 in the other modes.
    pub real_mode_cs: u16,
    /// The initial RSP, a default that most guests replace. In protected and
    /// long mode it is the top of a [`STACK_SIZE`] stack just below the GDT.
    /// In real mode it is SP with SS = 0: just below the image when that
    /// starts in the first 64 KiB (a boot sector's stack), else the top of
    /// the first 64 KiB, where 0 stands for 0x10000 (the first push wraps).
    pub stack: u64,
    /// Long mode: the guest-physical PML4 of the identity map of guest RAM; else 0.
    pub cr3: u64,
    /// Protected and long mode: the guest-physical address of [`GDT`]; else 0.
    pub gdt_base: u64,
    /// Protected and long mode: [`GDT_LIMIT`]; else 0.
    pub gdt_limit: u16,
    /// The guest-physical ranges the image occupies, `(start, length)`.
    pub loaded: Vec<(u64, u64)>,
    /// The range holding the default stack, GDT and page tables,
    /// `(start, length)` at the top of guest RAM; `(0, 0)` in real mode. The
    /// guest must be told it is in use (a memory map marks it reserved).
    /// For Multiboot kernels it starts with the boot information, at `rbx`.
    pub boot_area: (u64, u64),
    /// EAX at entry: Multiboot's bootloader magic
    /// ([`MULTIBOOT_BOOTLOADER_MAGIC`] or [`MULTIBOOT2_BOOTLOADER_MAGIC`]); else 0.
    pub rax: u32,
    /// RBX at entry: the guest-physical address of the Multiboot boot
    /// information; else 0.
    pub rbx: u64,
    /// RSI at entry: the guest-physical address of a Linux kernel's zero
    /// page (`struct boot_params`, [`ZERO_PAGE_ADDRESS`]); else 0.
    pub rsi: u32,
    /// The data modules placed for a Multiboot kernel, `(start, length)` in
    /// `modules=` order; empty for the other formats.
    pub modules: Vec<(u64, u64)>,
    /// The BIOS data area words written for a Multiboot kernel
    /// (`(start, length)`: COM1's base, the EBDA segment, base memory KiB).
    pub bios_data: Vec<(u64, u64)>,
}

impl BootState {
    /// A `format` image loaded at `loaded`, entering at `entry` in `mode`:
    /// no register values, boot area, modules or BIOS data yet (each
    /// loader and the boot-area plan fill in what its format hands over).
    fn entering(
        format: DetectedFormat,
        mode: CpuMode,
        entry: u64,
        loaded: Vec<(u64, u64)>,
    ) -> Self {
        BootState {
            format,
            mode,
            entry,
            real_mode_cs: 0,
            stack: 0,
            cr3: 0,
            gdt_base: 0,
            gdt_limit: 0,
            loaded,
            boot_area: (0, 0),
            rax: 0,
            rbx: 0,
            rsi: 0,
            modules: Vec::new(),
            bios_data: Vec::new(),
        }
    }
}

impl BootState {
    /// The entry point as a guest-physical address (CS base + RIP in real mode).
    pub fn linear_entry(&self) -> u64 {
        (u64::from(self.real_mode_cs) << 4) + self.entry
    }
}

/// Loads `image` into `memory` as `options` say (`format=`, `load=`,
/// `entry=`, `mode=`) and returns how the vCPU must start; the same as
/// [`load_with`] without data modules, with a PC memory map and no RSDP.
pub fn load(
    image: &[u8],
    options: &ModuleOptions,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    load_with(image, options, &BootInputs::default(), memory)
}

/// Loads `image` into `memory` as `options` say, with what the machine
/// offers a Multiboot or Linux kernel in `inputs` (the data modules
/// `modules=` and `initrd=` name, the memory map, the ACPI RSDP), and
/// returns how the vCPU must start.
///
/// `format=auto` detects the format: a Linux setup header, then a Multiboot2
/// header, then a Multiboot header (a Multiboot header wins over plain ELF,
/// as with GRUB and QEMU's `-kernel`), then ELF. ELF32 and ELF64 executables
/// load their PT_LOAD segments at their physical addresses and start in
/// protected and long mode; anything else without a known signature is a
/// raw image, loaded at `load=` (default [`DEFAULT_RAW_LOAD`]) and started
/// in real mode at `entry=` (default: the load address). `mode=` overrides
/// the start mode of raw and ELF images, and `entry=` (a guest-physical
/// address) overrides e_entry. Multiboot kernels load and start as their
/// specifications say (see the `multiboot` module), get the data modules
/// `modules=` names from `inputs`, and refuse `load=` and `mode=`;
/// `format=multiboot` takes either header. Linux bzImages start at their
/// 64-bit entry with the initrd `initrd=` names (see the `linux` module).
pub fn load_with(
    image: &[u8],
    options: &ModuleOptions,
    inputs: &BootInputs,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    if image.is_empty() {
        return Err(LoadError::EmptyImage);
    }
    let format = match options.format {
        ImageFormat::Auto => detect(image),
        ImageFormat::Raw => DetectedFormat::Raw,
        ImageFormat::Elf => DetectedFormat::Elf64,
        ImageFormat::Multiboot => DetectedFormat::Multiboot,
        ImageFormat::Linux => DetectedFormat::Linux,
    };
    let multiboot = matches!(
        format,
        DetectedFormat::Multiboot | DetectedFormat::Multiboot2
    );
    if !multiboot && !options.modules.is_empty() {
        let format = match format {
            DetectedFormat::Elf32 | DetectedFormat::Elf64 => elf::parse(image)
                .map(|elf| match elf.class {
                    ElfClass::Elf32 => DetectedFormat::Elf32,
                    ElfClass::Elf64 => DetectedFormat::Elf64,
                })
                .unwrap_or(format),
            other => other,
        };
        return Err(LoadError::ModulesNeedMultiboot(format));
    }
    if format != DetectedFormat::Linux && options.initrd.is_some() {
        return Err(LoadError::InitrdNeedsLinux(format));
    }
    match format {
        DetectedFormat::Raw
            if options.format == ImageFormat::Auto && image.starts_with(&ELF_MAGIC) =>
        {
            // An ELF magic with an unknown class: a corrupt ELF, not a raw image.
            Err(LoadError::Elf(
                elf::parse(image).err().unwrap_or(ElfError::NoMagic),
            ))
        }
        DetectedFormat::Raw => load_raw(image, options, memory),
        DetectedFormat::Elf32 | DetectedFormat::Elf64 => {
            load_elf(image, &elf::parse(image)?, options, memory)
        }
        DetectedFormat::Multiboot | DetectedFormat::Multiboot2 => {
            multiboot::load(image, options, inputs, memory)
        }
        DetectedFormat::Linux => linux::load(image, options, inputs, memory),
    }
}

/// One range to place: file bytes followed by zeroes up to `size`.
struct Piece<'i> {
    region: Region,
    start: u64,
    bytes: &'i [u8],
    size: u64,
}

fn load_raw(
    image: &[u8],
    options: &ModuleOptions,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    let ram = memory.size();
    let size = image.len() as u64;
    if size > ram {
        return Err(LoadError::ImageTooLarge { size, ram });
    }
    let start = options.load.unwrap_or(DEFAULT_RAW_LOAD);
    let piece = Piece {
        region: Region::Image,
        start,
        bytes: image,
        size,
    };
    let entry = options.entry.unwrap_or(start);
    let mode = options.mode.unwrap_or(CpuMode::Real);
    place(DetectedFormat::Raw, &[piece], entry, mode, memory)
}

fn load_elf(
    image: &[u8],
    elf: &ElfImage,
    options: &ModuleOptions,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    let pieces: Vec<Piece> = elf
        .segments
        .iter()
        .map(|segment| Piece {
            region: Region::Segment,
            start: segment.physical,
            bytes: segment.file_bytes(image),
            size: segment.memory_size,
        })
        .collect();
    let (format, mode) = match elf.class {
        ElfClass::Elf32 => (DetectedFormat::Elf32, CpuMode::Protected),
        ElfClass::Elf64 => (DetectedFormat::Elf64, CpuMode::Long),
    };
    let entry = options.entry.unwrap_or_else(|| elf.physical_entry());
    place(format, &pieces, entry, options.mode.unwrap_or(mode), memory)
}

/// Checks everything, then writes the pieces and the boot area.
fn place(
    format: DetectedFormat,
    pieces: &[Piece],
    entry: u64,
    mode: CpuMode,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    let ram = memory.size();
    let loaded = check_pieces(pieces, ram)?;
    check_entry(entry, mode, &loaded, ram)?;
    let plan = Plan::new(mode, ram, &loaded)?;

    write_pieces(pieces, memory);
    let mut state = BootState::entering(format, mode, entry, loaded);
    match plan {
        None => {
            // Real mode: pick CS so that IP fits in 16 bits; CS = 0 below
            // 64 KiB, so a boot sector starts at 0000:7C00 as the BIOS does.
            state.real_mode_cs = ((entry >> 16) << 12) as u16;
            state.entry = entry & 0xffff;
            state.stack = real_mode_stack(ram, &state.loaded);
        }
        Some(plan) => state.set_boot_area(plan.build(memory)?),
    }
    Ok(state)
}

impl BootState {
    /// Takes the stack, GDT and page tables from a built boot area.
    fn set_boot_area(&mut self, built: boot_area::Built) {
        self.stack = built.stack;
        self.cr3 = built.cr3;
        self.gdt_base = built.gdt_base;
        self.gdt_limit = GDT_LIMIT;
        self.boot_area = built.area;
    }
}

/// The `(start, length)` of each piece, once each is checked to lie in
/// `ram` bytes of guest RAM and to share no byte with another.
fn check_pieces(pieces: &[Piece], ram: u64) -> Result<Vec<(u64, u64)>, LoadError> {
    let mut loaded = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let (region, start, size) = (piece.region, piece.start, piece.size);
        let end = start.checked_add(size).ok_or(LoadError::AddressOverflow {
            region,
            start,
            size,
        })?;
        if end > ram {
            return Err(LoadError::OutsideRam {
                region,
                start,
                end,
                ram,
            });
        }
        loaded.push((start, size));
    }
    check_overlaps(&loaded)?;
    Ok(loaded)
}

/// Copies each piece's bytes and zeroes the rest of it.
fn write_pieces(pieces: &[Piece], memory: &mut impl GuestMemory) {
    for piece in pieces {
        // `bytes` is never longer than `size`: p_filesz <= p_memsz was checked.
        let copied = piece.bytes.len() as u64;
        memory.write(piece.start, piece.bytes);
        memory.zero(piece.start + copied, piece.size.saturating_sub(copied));
    }
}

/// Refuses two loaded ranges that share a byte.
fn check_overlaps(loaded: &[(u64, u64)]) -> Result<(), LoadError> {
    let mut sorted: Vec<(u64, u64)> = loaded
        .iter()
        .map(|&(start, size)| (start, start + size))
        .collect();
    sorted.sort_unstable();
    match sorted.windows(2).find(|pair| pair[1].0 < pair[0].1) {
        Some(pair) => Err(LoadError::Overlap {
            first: pair[0],
            second: pair[1],
        }),
        None => Ok(()),
    }
}

/// The entry point must be in guest RAM, inside something loaded (else the
/// vCPU would execute zeroes), and reachable in the start mode.
fn check_entry(
    entry: u64,
    mode: CpuMode,
    loaded: &[(u64, u64)],
    ram: u64,
) -> Result<(), LoadError> {
    if entry >= ram {
        return Err(LoadError::EntryOutsideRam { entry, ram });
    }
    if !loaded
        .iter()
        .any(|&(start, size)| entry >= start && entry - start < size)
    {
        return Err(LoadError::EntryOutsideImage { entry });
    }
    let limit = match mode {
        CpuMode::Real => REAL_MODE_LIMIT,
        CpuMode::Protected => PROTECTED_MODE_LIMIT,
        CpuMode::Long => LONG_MODE_LIMIT,
    };
    if entry >= limit {
        return Err(LoadError::EntryNotReachable { entry, mode });
    }
    Ok(())
}

/// SP for real mode with SS = 0 (see [`BootState::stack`]).
fn real_mode_stack(ram: u64, loaded: &[(u64, u64)]) -> u64 {
    let limit = ram.min(REAL_MODE_SEGMENT);
    let lowest = loaded.iter().map(|&(start, _)| start).min().unwrap_or(0);
    let top = if lowest > 0 && lowest <= limit {
        lowest
    } else {
        limit
    };
    // Word-aligned, and 0x10000 becomes 0: SP is 16 bits.
    (top & !1) % REAL_MODE_SEGMENT
}
