//! Why a Multiboot or Multiboot2 header cannot be honoured: one variant per
//! reason, each naming the header field and its value.

use super::super::elf::ElfError;
use core::fmt;

/// Which of the two specifications a header follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultibootVersion {
    /// Multiboot 0.6.96.
    One,
    /// Multiboot2 2.0.
    Two,
}

impl fmt::Display for MultibootVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultibootVersion::One => "Multiboot",
            MultibootVersion::Two => "Multiboot2",
        })
    }
}

/// What is wrong with a Multiboot kernel's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultibootError {
    /// No magic at an aligned offset in the searched bytes.
    NoHeader,
    /// The magic is there but the fields do not add up to zero.
    BadChecksum {
        /// Multiboot or Multiboot2.
        version: MultibootVersion,
        /// The header's offset in the image.
        offset: u64,
        /// The checksum field.
        checksum: u32,
        /// The checksum that would make the sum zero.
        expected: u32,
    },
    /// The image ends inside the header (or inside its a.out fields).
    HeaderCutShort {
        /// Multiboot or Multiboot2.
        version: MultibootVersion,
        /// The header's offset in the image.
        offset: u64,
        /// The bytes the header needs from there.
        needed: u64,
    },
    /// Flag 2 asks for a graphics mode, which tessera cannot set.
    VideoModeRequired,
    /// Required flags (bits 0-15) that the specification does not define.
    UnknownRequiredFlags {
        /// The unknown bits.
        flags: u32,
    },
    /// `load_addr` is above `header_addr`.
    LoadAddressAboveHeader {
        /// load_addr.
        load_addr: u32,
        /// header_addr.
        header_addr: u32,
    },
    /// `header_addr - load_addr` is more than the header's offset in the file.
    LoadAddressBeforeFile {
        /// load_addr.
        load_addr: u32,
        /// header_addr.
        header_addr: u32,
        /// The header's offset in the image.
        offset: u64,
    },
    /// `load_end_addr` is below `load_addr`.
    LoadEndBelowLoad {
        /// load_end_addr.
        load_end_addr: u32,
        /// load_addr.
        load_addr: u32,
    },
    /// `load_end_addr` asks for more bytes than the file holds.
    LoadEndPastFile {
        /// load_end_addr.
        load_end_addr: u32,
        /// Where the file's last byte would land, plus one.
        file_end: u64,
    },
    /// The header itself is not inside `[load_addr, load_end_addr)`.
    HeaderNotLoaded {
        /// header_addr.
        header_addr: u32,
        /// load_addr.
        load_addr: u32,
        /// The end of the loaded bytes.
        load_end: u64,
    },
    /// `bss_end_addr` is below the end of the loaded bytes.
    BssEndBelowLoadEnd {
        /// bss_end_addr.
        bss_end_addr: u32,
        /// The end of the loaded bytes.
        load_end: u64,
    },
    /// No a.out kludge (flag 16 / address tag) and no usable ELF either.
    NotElf(ElfError),
    /// A Multiboot2 header for another architecture.
    WrongArchitecture(u32),
    /// A Multiboot2 header_length that cannot hold the header or its tags.
    BadHeaderLength {
        /// header_length.
        length: u32,
        /// The header's offset in the image.
        offset: u64,
    },
    /// A Multiboot2 tag with a size that is too small or runs past the header.
    BadTag {
        /// The tag's type.
        tag: u16,
        /// Its offset in the image.
        offset: u64,
        /// Its size field.
        size: u32,
    },
    /// The Multiboot2 tags do not end with an end tag.
    NoEndTag,
    /// A required information request for a tag tessera cannot provide.
    InformationUnavailable(u32),
    /// A required header tag tessera cannot honour.
    UnsupportedTag(u16),
    /// The console flags tag requires a console tessera does not provide.
    ConsoleRequired,
    /// An address tag without an entry address tag.
    NoEntryAddress,
}

/// The names of Multiboot2 boot information tag types (2.0, 3.6).
fn information_name(tag: u32) -> &'static str {
    match tag {
        1 => "command line",
        2 => "boot loader name",
        3 => "modules",
        4 => "basic memory information",
        5 => "BIOS boot device",
        6 => "memory map",
        7 => "VBE information",
        8 => "framebuffer information",
        9 => "ELF symbols",
        10 => "APM table",
        11 => "EFI 32-bit system table",
        12 => "EFI 64-bit system table",
        13 => "SMBIOS tables",
        14 => "ACPI old RSDP",
        15 => "ACPI new RSDP",
        16 => "networking information",
        17 => "EFI memory map",
        18 => "EFI boot services not terminated",
        19 => "EFI 32-bit image handle",
        20 => "EFI 64-bit image handle",
        21 => "image load base address",
        _ => "unknown",
    }
}

/// The names of Multiboot2 header tag types (2.0, 3.1.3).
fn header_tag_name(tag: u16) -> &'static str {
    match tag {
        1 => "information request",
        2 => "address",
        3 => "entry address",
        4 => "console flags",
        5 => "framebuffer",
        6 => "module alignment",
        7 => "EFI boot services",
        8 => "EFI i386 entry address",
        9 => "EFI amd64 entry address",
        10 => "relocatable header",
        _ => "unknown",
    }
}

impl fmt::Display for MultibootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MultibootError::NoHeader => f.write_str(
                "no Multiboot header: no magic 0xe85250d6 (Multiboot2, first 32 KiB, \
                 8-byte aligned) or 0x1badb002 (Multiboot, first 8 KiB, 4-byte aligned)",
            ),
            MultibootError::BadChecksum {
                version,
                offset,
                checksum,
                expected,
            } => write!(
                f,
                "{} header at offset {:#x}: checksum {:#x} is wrong, it should be {:#x}",
                version, offset, checksum, expected
            ),
            MultibootError::HeaderCutShort {
                version,
                offset,
                needed,
            } => write!(
                f,
                "{} header at offset {:#x} needs {} bytes but the image ends first",
                version, offset, needed
            ),
            MultibootError::VideoModeRequired => f.write_str(
                "Multiboot header flag 2 requires a video mode, and tessera has no display",
            ),
            MultibootError::UnknownRequiredFlags { flags } => write!(
                f,
                "Multiboot header flags {:#x} are required but unknown (bits 3-15 are undefined)",
                flags
            ),
            MultibootError::LoadAddressAboveHeader {
                load_addr,
                header_addr,
            } => write!(
                f,
                "load_addr {:#x} is above header_addr {:#x}",
                load_addr, header_addr
            ),
            MultibootError::LoadAddressBeforeFile {
                load_addr,
                header_addr,
                offset,
            } => write!(
                f,
                "load_addr {:#x} is {:#x} bytes below header_addr {:#x}, but the header \
                 is only {:#x} bytes into the file",
                load_addr,
                header_addr.wrapping_sub(load_addr),
                header_addr,
                offset
            ),
            MultibootError::LoadEndBelowLoad {
                load_end_addr,
                load_addr,
            } => write!(
                f,
                "load_end_addr {:#x} is below load_addr {:#x}",
                load_end_addr, load_addr
            ),
            MultibootError::LoadEndPastFile {
                load_end_addr,
                file_end,
            } => write!(
                f,
                "load_end_addr {:#x} is past the end of the file, which ends at {:#x}",
                load_end_addr, file_end
            ),
            MultibootError::HeaderNotLoaded {
                header_addr,
                load_addr,
                load_end,
            } => write!(
                f,
                "header_addr {:#x} is outside the loaded bytes {:#x}..{:#x}",
                header_addr, load_addr, load_end
            ),
            MultibootError::BssEndBelowLoadEnd {
                bss_end_addr,
                load_end,
            } => write!(
                f,
                "bss_end_addr {:#x} is below the end of the loaded bytes {:#x}",
                bss_end_addr, load_end
            ),
            MultibootError::NotElf(error) => write!(
                f,
                "no a.out addresses in the Multiboot header, and not a usable ELF: {}",
                error
            ),
            MultibootError::WrongArchitecture(architecture) => write!(
                f,
                "Multiboot2 architecture {} is not 0 (i386)",
                architecture
            ),
            MultibootError::BadHeaderLength { length, offset } => write!(
                f,
                "Multiboot2 header at offset {:#x}: header_length {:#x} is too small \
                 or runs past the image",
                offset, length
            ),
            MultibootError::BadTag { tag, offset, size } => write!(
                f,
                "Multiboot2 header tag {} ({}) at offset {:#x}: size {:#x} is too small \
                 or runs past header_length",
                tag,
                header_tag_name(tag),
                offset,
                size
            ),
            MultibootError::NoEndTag => {
                f.write_str("Multiboot2 header tags do not end with an end tag (type 0)")
            }
            MultibootError::InformationUnavailable(tag) => write!(
                f,
                "Multiboot2 information request requires tag {} ({}), which tessera \
                 cannot provide",
                tag,
                information_name(tag)
            ),
            MultibootError::UnsupportedTag(tag) => write!(
                f,
                "Multiboot2 header tag {} ({}) is required, and tessera cannot honour it",
                tag,
                header_tag_name(tag)
            ),
            MultibootError::ConsoleRequired => f.write_str(
                "Multiboot2 console flags require an EGA text console; tessera's console \
                 is the serial port",
            ),
            MultibootError::NoEntryAddress => {
                f.write_str("Multiboot2 address tag without an entry address tag: no entry point")
            }
        }
    }
}
