//! The setup header of a bzImage (Documentation/arch/x86/boot.rst, "The
//! Real-Mode Kernel Header" and "Details of Header Fields"): the fields a
//! 64-bit boot loader reads, each through a bounds-checked accessor, and the
//! checks that decide whether the kernel can be started at its 64-bit entry.

use super::super::bytes::{u16_at, u32_at, u64_at};
use super::LinuxError;

/// Where the setup header starts, in the image and in the zero page alike
/// (`struct boot_params.hdr` is at 0x1F1).
pub(super) const SETUP_HEADER_START: u64 = 0x1f1;
/// Where the setup header's room in `struct boot_params` ends:
/// `edd_mbr_sig_buffer` follows at 0x290 (arch/x86/include/uapi/asm/bootparam.h).
pub(super) const SETUP_HEADER_LIMIT: u64 = 0x290;
/// The byte giving the header's length: "the end of setup header can be
/// calculated as follows: 0x0202 + byte value at offset 0x0201" (boot.rst,
/// "64-bit Boot Protocol"); it is the displacement of the jump at 0x200.
const HEADER_LENGTH: u64 = 0x201;
/// `header`, the "HdrS" signature.
const SIGNATURE: u64 = 0x202;
/// `version`: the boot protocol, major in the high byte.
const VERSION: u64 = 0x206;
/// `setup_sects`: 512-byte sectors of real-mode setup after the boot sector.
const SETUP_SECTS: u64 = 0x1f1;
const LOADFLAGS: u64 = 0x211;
const INITRD_ADDR_MAX: u64 = 0x22c;
const KERNEL_ALIGNMENT: u64 = 0x230;
const RELOCATABLE_KERNEL: u64 = 0x234;
const XLOADFLAGS: u64 = 0x236;
const CMDLINE_SIZE: u64 = 0x238;
const PREF_ADDRESS: u64 = 0x258;
const INIT_SIZE: u64 = 0x260;

/// The oldest protocol with everything a 64-bit loader relies on: the
/// 64-bit entry (2.12 adds `xloadflags`), `pref_address` and `init_size`
/// (2.10), `cmdline_size` (2.06).
pub(super) const MINIMUM_VERSION: u16 = 0x020c;
/// Protocol 2.14 adds `acpi_rsdp_addr` to the zero page.
pub(super) const ACPI_RSDP_VERSION: u16 = 0x020e;
/// The shortest header of a 2.12 kernel reaches past `init_size`, the last
/// field this loader reads.
const MINIMUM_HEADER_END: u64 = INIT_SIZE + 4;
/// "setup_sects: ... If this field is 0, the real value is 4."
const DEFAULT_SETUP_SECTS: u8 = 4;
const SECTOR: u64 = 512;

/// loadflags bit 0, LOADED_HIGH: the protected-mode code is loaded at 1 MiB
/// or above (a bzImage) rather than at 0x10000.
const LOADED_HIGH: u8 = 1 << 0;
/// xloadflags bit 0, XLF_KERNEL_64: "This kernel has the legacy 64-bit
/// entry point at 0x200."
const XLF_KERNEL_64: u16 = 1 << 0;
/// xloadflags bit 1, XLF_CAN_BE_LOADED_ABOVE_4G: "kernel/boot_params/
/// cmdline/ramdisk can be above 4G."
const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;

/// The setup header fields a 64-bit boot loader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SetupHeader {
    /// `version`, at least [`MINIMUM_VERSION`].
    pub version: u16,
    /// One past the header's last byte in the image, in
    /// `MINIMUM_HEADER_END..=SETUP_HEADER_LIMIT` and inside the image.
    pub end: u64,
    /// `setup_sects`, 0 read as 4.
    pub setup_sects: u8,
    /// `initrd_addr_max`: the highest address the initrd may occupy.
    pub initrd_addr_max: u32,
    /// `kernel_alignment`: what a relocated kernel's address must be a multiple of.
    pub kernel_alignment: u32,
    /// `relocatable_kernel`: whether it may be loaded away from `pref_address`.
    pub relocatable: bool,
    /// `xloadflags`.
    pub xloadflags: u16,
    /// `cmdline_size`: the longest command line, without its NUL.
    pub cmdline_size: u32,
    /// `pref_address`: where the kernel wants to be loaded.
    pub pref_address: u64,
    /// `init_size`: the bytes from the load address the kernel needs before
    /// it reads the memory map (boot.rst, "init_size").
    pub init_size: u32,
}

impl SetupHeader {
    /// Reads and checks the header of `image`.
    pub(super) fn parse(image: &[u8]) -> Result<SetupHeader, LinuxError> {
        let length = image.len() as u64;
        let cut_short = |needed: u64| LinuxError::HeaderCutShort { needed, length };
        if image.get(SIGNATURE as usize..SIGNATURE as usize + 4) != Some(b"HdrS".as_slice()) {
            return if length < SIGNATURE + 4 {
                Err(cut_short(SIGNATURE + 4))
            } else {
                Err(LinuxError::NoSetupHeader)
            };
        }
        let version = u16_at(image, VERSION).ok_or(cut_short(VERSION + 2))?;
        if version < MINIMUM_VERSION {
            return Err(LinuxError::TooOld { version });
        }
        // The signature's presence puts byte 0x201 inside the image.
        let end = 0x202 + u64::from(image[HEADER_LENGTH as usize]);
        if !(MINIMUM_HEADER_END..=SETUP_HEADER_LIMIT).contains(&end) {
            return Err(LinuxError::BadHeaderLength { end });
        }
        if end > length {
            return Err(cut_short(end));
        }
        // From here every field read lies before `end`, inside the image.
        let byte = |offset: u64| image[offset as usize];
        let field32 = |offset| u32_at(image, offset).ok_or(cut_short(end));
        let xloadflags = u16_at(image, XLOADFLAGS).ok_or(cut_short(end))?;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(LinuxError::No64BitEntry { version });
        }
        if byte(LOADFLAGS) & LOADED_HIGH == 0 {
            return Err(LinuxError::NotLoadedHigh);
        }
        let setup_sects = match byte(SETUP_SECTS) {
            0 => DEFAULT_SETUP_SECTS,
            sectors => sectors,
        };
        Ok(SetupHeader {
            version,
            end,
            setup_sects,
            initrd_addr_max: field32(INITRD_ADDR_MAX)?,
            kernel_alignment: field32(KERNEL_ALIGNMENT)?,
            relocatable: byte(RELOCATABLE_KERNEL) != 0,
            xloadflags,
            cmdline_size: field32(CMDLINE_SIZE)?,
            pref_address: u64_at(image, PREF_ADDRESS).ok_or(cut_short(end))?,
            init_size: field32(INIT_SIZE)?,
        })
    }

    /// Where the protected-mode kernel starts in the file: after the boot
    /// sector and the setup sectors (boot.rst, "Loading The Rest of The Kernel").
    pub(super) fn kernel_offset(&self) -> u64 {
        (u64::from(self.setup_sects) + 1) * SECTOR
    }

    /// Whether the kernel, zero page, command line and initrd may lie above 4 GiB.
    pub(super) fn can_load_above_4g(&self) -> bool {
        self.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }

    /// The header's bytes in the image, to be copied into the zero page.
    pub(super) fn bytes<'i>(&self, image: &'i [u8]) -> &'i [u8] {
        image
            .get(SETUP_HEADER_START as usize..self.end as usize)
            .unwrap_or(&[])
    }
}
