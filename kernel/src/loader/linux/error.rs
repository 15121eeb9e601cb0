//! Why a Linux bzImage could not be loaded: one variant per reason, each a
//! single line naming the header field or address involved.

use crate::size::Bytes;
use alloc::string::String;
use core::fmt;

/// Why a bzImage cannot be started with the 64-bit boot protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinuxError {
    /// `format=linux` on an image without "HdrS" at 0x202.
    NoSetupHeader,
    /// The image ends inside its setup header.
    HeaderCutShort {
        /// The bytes the header needs.
        needed: u64,
        /// The image's length.
        length: u64,
    },
    /// A boot protocol older than 2.12.
    TooOld {
        /// `version`.
        version: u16,
    },
    /// The header's length byte (at 0x201) puts its end where no 2.12
    /// header ends.
    BadHeaderLength {
        /// 0x202 + the byte at 0x201.
        end: u64,
    },
    /// XLF_KERNEL_64 is clear in `xloadflags`.
    No64BitEntry {
        /// `version`.
        version: u16,
    },
    /// LOADED_HIGH is clear in `loadflags`: a zImage.
    NotLoadedHigh,
    /// The image ends inside its setup sectors.
    SetupCutShort {
        /// `setup_sects` (0 read as 4).
        setup_sects: u8,
        /// The image's length.
        length: u64,
    },
    /// Nothing after the setup sectors reaches the 64-bit entry at 0x200.
    NoKernel {
        /// The bytes of protected-mode kernel.
        length: u64,
    },
    /// `kernel_alignment` of a relocatable kernel is not a power of two.
    BadAlignment {
        /// `kernel_alignment`.
        alignment: u32,
    },
    /// No address in guest RAM holds the kernel's `init_size`.
    KernelDoesNotFit {
        /// Where it would start (`pref_address`, or the lowest aligned address).
        start: u64,
        /// The bytes it needs there (`init_size`, at least the file's).
        needed: u64,
        /// Where the room for it ends (the boot area, or 4 GiB).
        limit: u64,
        /// Whether it may be loaded elsewhere than `pref_address`.
        relocatable: bool,
    },
    /// `initrd=` names a module that is not among the data modules.
    InitrdNotFound {
        /// The name.
        name: String,
    },
    /// No page-aligned place below the initrd's limit is free of the kernel.
    InitrdDoesNotFit {
        /// The initrd's size.
        size: u64,
        /// The highest end it may have (`initrd_addr_max` + 1, the boot
        /// area, 4 GiB, whichever is lowest).
        limit: u64,
        /// The kernel's `[load, load + init_size)`.
        kernel: (u64, u64),
    },
    /// `load=`, `entry=` or `mode=` on a Linux kernel.
    OptionNotForLinux {
        /// The option's name.
        option: &'static str,
    },
    /// The memory map has more regions than the zero page's e820 table holds.
    TooManyMemoryRegions {
        /// The regions.
        count: usize,
    },
}

/// A protocol version as boot.rst writes it: 2.12.
struct Version(u16);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 >> 8, self.0 & 0xff)
    }
}

impl fmt::Display for LinuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LinuxError::NoSetupHeader => {
                f.write_str("not a Linux bzImage: no \"HdrS\" setup header at 0x202")
            }
            LinuxError::HeaderCutShort { needed, length } => write!(
                f,
                "Linux setup header cut short: it needs {:#x} bytes and the image has {:#x}",
                needed, length
            ),
            LinuxError::TooOld { version } => write!(
                f,
                "protocol {} kernel: too old for 64-bit boot (tessera needs boot protocol 2.12 or later)",
                Version(version)
            ),
            LinuxError::BadHeaderLength { end } => write!(
                f,
                "Linux setup header ends at {:#x} (0x202 + the byte at 0x201), \
                 outside 0x264..=0x290 where a protocol 2.12+ header ends",
                end
            ),
            LinuxError::No64BitEntry { version } => write!(
                f,
                "protocol {} kernel without a 64-bit entry point (XLF_KERNEL_64 is clear \
                 in xloadflags): tessera starts Linux in 64-bit mode only",
                Version(version)
            ),
            LinuxError::NotLoadedHigh => f.write_str(
                "a zImage (LOADED_HIGH is clear in loadflags): only bzImages can be \
                 started with the 64-bit boot protocol",
            ),
            LinuxError::SetupCutShort {
                setup_sects,
                length,
            } => write!(
                f,
                "the image ({:#x} bytes) ends inside its boot sector and {} setup sectors",
                length, setup_sects
            ),
            LinuxError::NoKernel { length } => write!(
                f,
                "the protected-mode kernel after the setup sectors is {:#x} bytes, \
                 too short to hold the 64-bit entry point at 0x200",
                length
            ),
            LinuxError::BadAlignment { alignment } => write!(
                f,
                "kernel_alignment {:#x} is not a power of two",
                alignment
            ),
            LinuxError::KernelDoesNotFit {
                start,
                needed,
                limit,
                relocatable,
            } => write!(
                f,
                "the kernel needs {} (init_size) from {:#x}{}, but guest RAM for it ends at \
                 {:#x} (below the page tables, or 4 GiB): give it more mem=",
                Bytes(needed),
                start,
                if relocatable {
                    ", the lowest address it may be relocated to"
                } else {
                    " (pref_address; it is not relocatable)"
                },
                limit
            ),
            LinuxError::InitrdNotFound { ref name } => write!(
                f,
                "initrd= names `{}`, which is not a data module (role=data) of this boot",
                name
            ),
            LinuxError::InitrdDoesNotFit { size, limit, kernel } => write!(
                f,
                "the initrd ({}) does not fit page-aligned between 1 MiB and {:#x} \
                 (initrd_addr_max, the page tables or 4 GiB) outside the kernel's \
                 {:#x}..{:#x} (init_size): give it more mem=",
                Bytes(size),
                limit,
                kernel.0,
                kernel.1
            ),
            LinuxError::OptionNotForLinux { option } => write!(
                f,
                "{}= does not apply to a Linux kernel: its setup header and the boot \
                 protocol say where it loads and how it starts",
                option
            ),
            LinuxError::TooManyMemoryRegions { count } => write!(
                f,
                "the memory map has {} regions, more than the 128 of the zero page's e820 table",
                count
            ),
        }
    }
}
