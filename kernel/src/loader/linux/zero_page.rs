//! The zero page (`struct boot_params`, Documentation/arch/x86/zero-page.rst):
//! zeroes, the image's setup header copied in, then what the boot loader must
//! write (boot.rst, "Details of Header Fields": the fields marked "write
//! (obligatory)") and what a 64-bit loader adds (boot.rst, "64-bit Boot
//! Protocol": the e820 table and the other boot_params fields).

use super::super::memory_map::MemoryRegion;
use super::header::{SetupHeader, ACPI_RSDP_VERSION, SETUP_HEADER_START};
use alloc::vec;
use alloc::vec::Vec;

/// The zero page is one 4 KiB page.
pub(super) const ZERO_PAGE_SIZE: u64 = 4096;
/// The most entries `e820_table` holds (E820_MAX_ENTRIES_ZEROPAGE).
pub(super) const E820_MAX_ENTRIES: usize = 128;

// boot_params fields outside the setup header (zero-page.rst).
const ACPI_RSDP_ADDR: usize = 0x070;
const EXT_RAMDISK_IMAGE: usize = 0x0c0;
const EXT_RAMDISK_SIZE: usize = 0x0c4;
const EXT_CMD_LINE_PTR: usize = 0x0c8;
const E820_ENTRIES: usize = 0x1e8;
const E820_TABLE: usize = 0x2d0;
/// `struct boot_e820_entry`: u64 address, u64 size, u32 type, packed.
const E820_ENTRY_SIZE: usize = 20;

// Setup header fields the loader writes (boot.rst, "The Real-Mode Kernel Header").
const VID_MODE: usize = 0x1fa;
const TYPE_OF_LOADER: usize = 0x210;
const CODE32_START: usize = 0x214;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21c;
const CMD_LINE_PTR: usize = 0x228;
const HARDWARE_SUBARCH: usize = 0x23c;
const SETUP_DATA: usize = 0x250;

/// `vid_mode` 0xFFFF: "normal" (boot.rst, "Special command line options":
/// vga=normal), the text mode the kernel finds; there is no VGA to change.
const VID_MODE_NORMAL: u16 = 0xffff;
/// `type_of_loader` 0xFF: "undefined", what boot.rst asks of a loader
/// without an assigned ID ("Please contact <hpa@zytor.com> if you need a
/// bootloader ID value assigned").
const LOADER_UNDEFINED: u8 = 0xff;
/// `hardware_subarch` 0: X86_SUBARCH_PC, "Normal x86 PC" (boot.rst).
const SUBARCH_PC: u32 = 0;

/// What the zero page describes besides the setup header.
pub(super) struct BootParams<'a> {
    /// The kernel's load address (`code32_start`).
    pub load: u64,
    /// The NUL-terminated command line's address.
    pub cmdline: u64,
    /// The initrd, `(start, size)`; `(0, 0)` for none.
    pub initrd: (u64, u64),
    /// The guest's memory map, at most [`E820_MAX_ENTRIES`] regions.
    pub map: &'a [MemoryRegion],
    /// The ACPI RSDP, for protocol 2.14 and later.
    pub rsdp: Option<u64>,
}

/// Writes `value`'s little-endian bytes at `offset` of the page.
fn put(page: &mut [u8], offset: usize, value: &[u8]) {
    page[offset..offset + value.len()].copy_from_slice(value);
}

/// The low and high 32 bits of an address split across a field and its `ext_` half.
fn halves(value: u64) -> ([u8; 4], [u8; 4]) {
    (
        (value as u32).to_le_bytes(),
        ((value >> 32) as u32).to_le_bytes(),
    )
}

/// The zero page for `header` of `image` with `params`: 4 KiB.
pub(super) fn build(header: &SetupHeader, image: &[u8], params: &BootParams) -> Vec<u8> {
    let mut page = vec![0u8; ZERO_PAGE_SIZE as usize];
    // "The setup header at offset 0x01f1 of kernel image on should be loaded
    // into struct boot_params and examined" (boot.rst, 64-bit Boot
    // Protocol). `header.end` is at most 0x290, inside the page; the rest,
    // the sentinel at 0x1EF included, stays zero.
    let bytes = header.bytes(image);
    put(&mut page, SETUP_HEADER_START as usize, bytes);

    put(&mut page, VID_MODE, &VID_MODE_NORMAL.to_le_bytes());
    page[TYPE_OF_LOADER] = LOADER_UNDEFINED;
    // code32_start is where the protected-mode kernel was loaded; the
    // 64-bit entry does not use it, but a kernel reading it finds the truth.
    put(&mut page, CODE32_START, &(params.load as u32).to_le_bytes());
    let (low, high) = halves(params.initrd.0);
    put(&mut page, RAMDISK_IMAGE, &low);
    put(&mut page, EXT_RAMDISK_IMAGE, &high);
    let (low, high) = halves(params.initrd.1);
    put(&mut page, RAMDISK_SIZE, &low);
    put(&mut page, EXT_RAMDISK_SIZE, &high);
    let (low, high) = halves(params.cmdline);
    put(&mut page, CMD_LINE_PTR, &low);
    put(&mut page, EXT_CMD_LINE_PTR, &high);
    put(&mut page, HARDWARE_SUBARCH, &SUBARCH_PC.to_le_bytes());
    // No setup_data list is passed: a pointer left in the image would send
    // the kernel to read whatever is there.
    put(&mut page, SETUP_DATA, &0u64.to_le_bytes());
    if header.version >= ACPI_RSDP_VERSION {
        if let Some(rsdp) = params.rsdp {
            put(&mut page, ACPI_RSDP_ADDR, &rsdp.to_le_bytes());
        }
    }

    let entries = params.map.len().min(E820_MAX_ENTRIES);
    page[E820_ENTRIES] = entries as u8;
    for (index, region) in params.map[..entries].iter().enumerate() {
        let at = E820_TABLE + index * E820_ENTRY_SIZE;
        put(&mut page, at, &region.start.to_le_bytes());
        put(&mut page, at + 8, &region.length.to_le_bytes());
        put(&mut page, at + 16, &region.kind.to_le_bytes());
    }
    page
}
