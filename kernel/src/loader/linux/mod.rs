//! Linux bzImages started with the 64-bit boot protocol
//! (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"): the setup
//! header read and checked, the protected-mode kernel placed where it asks
//! (or relocated), the initrd `initrd=` names, the command line, and the zero
//! page (`struct boot_params`) with the e820 map.
//!
//! Where things go in guest RAM:
//!
//! ```text
//! 0x7000           the zero page (4 KiB)
//! 0x8000           the command line, NUL-terminated, at most up to the EBDA (0x9FC00)
//! pref_address     the kernel, [load, load + init_size); else relocated to the
//!                  lowest kernel_alignment multiple from 1 MiB
//! initrd           page-aligned, as high as it may go: below initrd_addr_max
//!                  and the boot area, and outside the kernel's init_size
//! [ stack ][ GDT ][ page tables ]  <- the boot area, top of RAM
//! ```
//!
//! The zero page and the command line sit in the first MiB, between the
//! BIOS data area and the EBDA, where neither the kernel nor the initrd
//! (both at 1 MiB or above) nor the firmware tables can meet them; Linux
//! copies both before it reuses any memory (arch/x86/kernel/head64.c,
//! `copy_bootdata`) and keeps the whole first MiB reserved anyway
//! (arch/x86/kernel/setup.c). Firecracker puts them at the same places.
//! The vCPU starts as the protocol says: long mode on an identity map of all
//! of guest RAM, CS = `__BOOT_CS` (0x10), DS/ES/SS = `__BOOT_DS` (0x18), RIP =
//! the load address + 0x200 (`startup_64`), RSI = the zero page, interrupts off.

mod error;
mod header;
mod zero_page;

#[cfg(test)]
pub(super) mod tests;

pub use error::LinuxError;

use super::boot_area::Plan;
use super::memory_map::{
    pc_memory_map, with_reserved, MemoryRegion, EBDA_START, EXTENDED_MEMORY_START,
};
use super::{
    check_entry, check_pieces, write_pieces, BootInputs, BootState, DetectedFormat, GuestMemory,
    LoadError, Piece, Region,
};
use crate::mm::phys::PAGE_SIZE;
use crate::options::{CpuMode, ModuleOptions};
use alloc::vec::Vec;
use header::SetupHeader;
use zero_page::{BootParams, E820_MAX_ENTRIES, ZERO_PAGE_SIZE};

/// Where the zero page goes (see the module comment).
pub const ZERO_PAGE_ADDRESS: u64 = 0x7000;
// The zero page's address fits RSI's 32 bits in `BootState`.
const _: () = assert!(ZERO_PAGE_ADDRESS <= u32::MAX as u64);
/// Where the command line goes, right after the zero page.
pub const CMDLINE_ADDRESS: u64 = ZERO_PAGE_ADDRESS + ZERO_PAGE_SIZE;
/// The command line must end before the EBDA, where the MP table is.
const CMDLINE_END: u64 = EBDA_START;
/// The kernel and the initrd go no lower: below is the firmware, the zero
/// page and the command line. LOADED_HIGH kernels expect at least this much.
const HIGH_MEMORY: u64 = EXTENDED_MEMORY_START;
/// The 64-bit entry point's offset in the protected-mode kernel (boot.rst:
/// "the 64-bit entry point at 0x200", `startup_64`).
const ENTRY_64_OFFSET: u64 = 0x200;
const FOUR_GIB: u64 = 1 << 32;

/// Loads a bzImage (see the module comment).
pub(super) fn load(
    image: &[u8],
    options: &ModuleOptions,
    inputs: &BootInputs,
    memory: &mut impl GuestMemory,
) -> Result<BootState, LoadError> {
    let given = [
        ("load", options.load.is_some()),
        ("entry", options.entry.is_some()),
        ("mode", options.mode.is_some()),
    ];
    if let Some(&(option, _)) = given.iter().find(|(_, given)| *given) {
        return Err(LinuxError::OptionNotForLinux { option }.into());
    }
    let header = SetupHeader::parse(image)?;
    let kernel = kernel_bytes(&header, image)?;
    let ram = memory.size();
    // The boot area's place depends on RAM alone: the kernel and the initrd
    // go below it.
    let area = Plan::long(ram, &[])?;
    let below_area = area.information_start();
    let needed = u64::from(header.init_size).max(kernel.len() as u64);
    let load = place_kernel(&header, needed, below_area)?;
    let claimed = (load, load + needed);

    let initrd: &[u8] = match &options.initrd {
        None => &[],
        Some(name) => {
            inputs
                .modules
                .iter()
                .find(|module| module.name == name.as_str())
                .ok_or_else(|| LinuxError::InitrdNotFound { name: name.clone() })?
                .bytes
        }
    };
    let initrd_size = initrd.len() as u64;
    // An empty initrd is none: the kernel ignores ramdisk_image when
    // ramdisk_size is 0.
    let initrd_start = match initrd_size {
        0 => 0,
        size => place_initrd(&header, size, claimed, below_area)?,
    };

    let cmdline = command_line(&options.guest_cmdline, header.cmdline_size);
    let map = match inputs.memory_map {
        Some(map) => map.to_vec(),
        None => pc_memory_map(ram),
    };
    // The boot area is reserved, as for Multiboot kernels: the page tables
    // are abandoned early (arch/x86/boot/compressed/ident_map_64.c builds its
    // own), but a guest is never told that memory it runs on is free.
    let map: Vec<MemoryRegion> = with_reserved(&map, below_area, area.end());
    if map.len() > E820_MAX_ENTRIES {
        return Err(LinuxError::TooManyMemoryRegions { count: map.len() }.into());
    }
    let params = BootParams {
        load,
        cmdline: CMDLINE_ADDRESS,
        initrd: (initrd_start, initrd_size),
        map: &map,
        rsdp: inputs.rsdp_address,
    };
    let zero_page = zero_page::build(&header, image, &params);

    let pieces = [
        Piece {
            region: Region::Image,
            start: load,
            bytes: kernel,
            size: kernel.len() as u64,
        },
        Piece {
            region: Region::ZeroPage,
            start: ZERO_PAGE_ADDRESS,
            bytes: &zero_page,
            size: ZERO_PAGE_SIZE,
        },
        Piece {
            region: Region::CommandLine,
            start: CMDLINE_ADDRESS,
            bytes: &cmdline,
            size: cmdline.len() as u64,
        },
    ];
    let loaded = check_pieces(&pieces, ram)?;
    let entry = load + ENTRY_64_OFFSET;
    check_entry(entry, CpuMode::Long, &loaded, ram)?;
    let mut occupied = loaded.clone();
    occupied.push((load, needed));
    let modules: Vec<(u64, u64)> = if initrd_size > 0 {
        occupied.push((initrd_start, initrd_size));
        Vec::from([(initrd_start, initrd_size)])
    } else {
        Vec::new()
    };
    // Everything was placed below the area; this only confirms it.
    let plan = Plan::long(ram, &occupied)?;

    // Everything is checked: write. The rest of init_size is not zeroed:
    // the decompressor and the kernel clear their own BSS.
    write_pieces(&pieces, memory);
    if initrd_size > 0 {
        memory.write(initrd_start, initrd);
    }
    let mut state = BootState {
        rsi: ZERO_PAGE_ADDRESS as u32,
        modules,
        ..BootState::entering(DetectedFormat::Linux, CpuMode::Long, entry, loaded)
    };
    state.set_boot_area(plan.build(memory)?);
    Ok(state)
}

impl From<LinuxError> for LoadError {
    fn from(error: LinuxError) -> Self {
        LoadError::Linux(error)
    }
}

/// The protected-mode kernel: the file after the boot sector and the setup
/// sectors, which must reach past the 64-bit entry point.
fn kernel_bytes<'i>(header: &SetupHeader, image: &'i [u8]) -> Result<&'i [u8], LinuxError> {
    let offset = header.kernel_offset();
    let length = image.len() as u64;
    let kernel = image
        .get(offset as usize..)
        .ok_or(LinuxError::SetupCutShort {
            setup_sects: header.setup_sects,
            length,
        })?;
    if (kernel.len() as u64) <= ENTRY_64_OFFSET {
        return Err(LinuxError::NoKernel {
            length: kernel.len() as u64,
        });
    }
    Ok(kernel)
}

/// Where the kernel goes, given that it needs `needed` bytes from its load
/// address and that the room above 1 MiB ends at `below_area`: its
/// `pref_address` if that fits ("a relocating bootloader should attempt to
/// load at this address if possible", boot.rst, "pref_address"), else, if it
/// is relocatable, the lowest multiple of `kernel_alignment` from 1 MiB.
/// Below 4 GiB unless XLF_CAN_BE_LOADED_ABOVE_4G.
fn place_kernel(header: &SetupHeader, needed: u64, below_area: u64) -> Result<u64, LinuxError> {
    let limit = if header.can_load_above_4g() {
        below_area
    } else {
        below_area.min(FOUR_GIB)
    };
    let fits = |start: u64| {
        start >= HIGH_MEMORY && start.checked_add(needed).is_some_and(|end| end <= limit)
    };
    let preferred = header.pref_address;
    if fits(preferred) {
        return Ok(preferred);
    }
    if !header.relocatable {
        return Err(LinuxError::KernelDoesNotFit {
            start: preferred,
            needed,
            limit,
            relocatable: false,
        });
    }
    let alignment = u64::from(header.kernel_alignment);
    if !alignment.is_power_of_two() {
        return Err(LinuxError::BadAlignment {
            alignment: header.kernel_alignment,
        });
    }
    // At most 2^31, the largest power of two a u32 holds: no overflow.
    let lowest = HIGH_MEMORY.next_multiple_of(alignment);
    if fits(lowest) {
        Ok(lowest)
    } else {
        Err(LinuxError::KernelDoesNotFit {
            start: lowest,
            needed,
            limit,
            relocatable: true,
        })
    }
}

/// Where an initrd of `size` bytes goes: page-aligned, as high as it may
/// (as GRUB and QEMU place it), ending at most at `initrd_addr_max` + 1
/// ("the maximum address that may be occupied by the initial ramdisk
/// contents", boot.rst) and at the boot area, at or above 1 MiB, and outside
/// the kernel's `[load, load + init_size)`, which the kernel overwrites
/// while it decompresses itself.
fn place_initrd(
    header: &SetupHeader,
    size: u64,
    kernel: (u64, u64),
    below_area: u64,
) -> Result<u64, LinuxError> {
    // initrd_addr_max is 32 bits: the limit is below 4 GiB whatever
    // XLF_CAN_BE_LOADED_ABOVE_4G says.
    let limit = below_area.min(u64::from(header.initrd_addr_max) + 1);
    let refused = LinuxError::InitrdDoesNotFit {
        size,
        limit,
        kernel,
    };
    let mut end = limit;
    // Below the limit, or else below the kernel: two tries.
    for _ in 0..2 {
        let start = end.checked_sub(size).ok_or(refused.clone())? & !(PAGE_SIZE - 1);
        if start < HIGH_MEMORY {
            break;
        }
        if start < kernel.1 && kernel.0 < start + size {
            end = kernel.0;
            continue;
        }
        return Ok(start);
    }
    Err(refused)
}

/// The command line as the kernel reads it: the guest's text after `--`,
/// cut to `cmdline_size` bytes ("the maximum size of the command line
/// without the terminating zero", boot.rst) and to the room before the
/// EBDA, then a NUL.
fn command_line(text: &str, cmdline_size: u32) -> Vec<u8> {
    let room = CMDLINE_END - CMDLINE_ADDRESS - 1;
    let length = (text.len() as u64).min(u64::from(cmdline_size)).min(room) as usize;
    let mut bytes = Vec::with_capacity(length + 1);
    bytes.extend_from_slice(&text.as_bytes()[..length]);
    bytes.push(0);
    bytes
}
