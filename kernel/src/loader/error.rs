//! Why a guest image could not be loaded: one variant per reason, each
//! printing a single line that names the addresses involved, so that the
//! console line `module X skipped: <reason>` tells the operator what to fix.

use super::detect::DetectedFormat;
use super::elf::ElfError;
use super::linux::LinuxError;
use super::multiboot::MultibootError;
use crate::mm::page_tables::MapError;
use crate::options::CpuMode;
use crate::size::Bytes;
use alloc::string::String;
use core::fmt;

/// What a range being placed in guest RAM is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// A raw image, placed whole.
    Image,
    /// An ELF PT_LOAD segment.
    Segment,
    /// A data module for a Multiboot kernel.
    Module,
    /// A Linux kernel's zero page (`struct boot_params`).
    ZeroPage,
    /// A Linux kernel's command line.
    CommandLine,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Image => "image",
            Region::Segment => "segment",
            Region::Module => "module",
            Region::ZeroPage => "zero page",
            Region::CommandLine => "command line",
        })
    }
}

/// The name of a mode in messages.
pub(super) const fn mode_name(mode: CpuMode) -> &'static str {
    match mode {
        CpuMode::Real => "real mode",
        CpuMode::Protected => "protected mode",
        CpuMode::Long => "long mode",
    }
}

/// What the boot area holds in a mode, in messages.
const fn boot_area_contents(mode: CpuMode) -> &'static str {
    match mode {
        CpuMode::Long => "page tables, GDT and stack",
        _ => "GDT and stack",
    }
}

/// Why an image could not be loaded into a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The module has no bytes.
    EmptyImage,
    /// Not a loadable x86 ELF executable.
    Elf(ElfError),
    /// A raw image larger than the whole of guest RAM.
    ImageTooLarge {
        /// The image's size.
        size: u64,
        /// Guest RAM.
        ram: u64,
    },
    /// A range to be loaded ends past guest RAM.
    OutsideRam {
        /// What the range is.
        region: Region,
        /// Its first byte.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// Guest RAM.
        ram: u64,
    },
    /// A range to be loaded wraps past the end of the 64-bit address space.
    AddressOverflow {
        /// What the range is.
        region: Region,
        /// Its start.
        start: u64,
        /// Its length.
        size: u64,
    },
    /// Two ELF segments share guest-physical bytes.
    Overlap {
        /// The lower segment, `(start, end)`.
        first: (u64, u64),
        /// The other one.
        second: (u64, u64),
    },
    /// The entry point is past guest RAM.
    EntryOutsideRam {
        /// The entry point.
        entry: u64,
        /// Guest RAM.
        ram: u64,
    },
    /// The entry point is in guest RAM but not in anything loaded.
    EntryOutsideImage {
        /// The entry point.
        entry: u64,
    },
    /// The entry point cannot be reached in the start mode.
    EntryNotReachable {
        /// The entry point.
        entry: u64,
        /// The mode the vCPU starts in.
        mode: CpuMode,
    },
    /// Guest RAM is too small for the boot area of the mode.
    NoRoomForBootArea {
        /// The mode.
        mode: CpuMode,
        /// The boot area's size.
        needed: u64,
        /// Guest RAM.
        ram: u64,
    },
    /// Something loaded sits where the boot area must go.
    BootAreaTaken {
        /// The mode.
        mode: CpuMode,
        /// The boot area, `(start, end)`.
        area: (u64, u64),
        /// The loaded range in it, `(start, end)`.
        taken_by: (u64, u64),
    },
    /// Building the guest's page tables failed (guest RAM beyond 48 bits).
    PageTables(MapError),
    /// A Multiboot or Multiboot2 header that cannot be honoured.
    Multiboot(MultibootError),
    /// `modules=` names a module that is not among the data modules.
    ModuleNotFound {
        /// The name.
        name: String,
    },
    /// `modules=` on an image that is not a Multiboot kernel.
    ModulesNeedMultiboot(DetectedFormat),
    /// An option that has no meaning for a Multiboot kernel, whose start
    /// state the specifications fix.
    OptionNotForMultiboot {
        /// The option, as written (`load=...`, `mode=...`).
        option: &'static str,
    },
    /// A Linux bzImage that cannot be started with the 64-bit boot protocol.
    Linux(LinuxError),
    /// `initrd=` on an image that is not a Linux kernel.
    InitrdNeedsLinux(DetectedFormat),
    /// A data module that would end above 4 GiB, out of a 32-bit `mod_end`.
    ModuleNotReachable {
        /// Where it would start.
        start: u64,
        /// One past its last byte.
        end: u64,
    },
}

impl From<MultibootError> for LoadError {
    fn from(error: MultibootError) -> Self {
        LoadError::Multiboot(error)
    }
}

impl From<ElfError> for LoadError {
    fn from(error: ElfError) -> Self {
        LoadError::Elf(error)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LoadError::EmptyImage => f.write_str("the image is empty"),
            LoadError::Elf(error) => write!(f, "bad ELF: {}", error),
            LoadError::ImageTooLarge { size, ram } => write!(
                f,
                "the image ({}) is larger than the {} of guest RAM",
                Bytes(size),
                Bytes(ram)
            ),
            LoadError::OutsideRam {
                region,
                start,
                end,
                ram,
            } => write!(
                f,
                "{} {:#x}..{:#x} does not fit in {} of guest RAM",
                region,
                start,
                end,
                Bytes(ram)
            ),
            LoadError::AddressOverflow {
                region,
                start,
                size,
            } => write!(
                f,
                "{} at {:#x} of {:#x} bytes runs past the end of the address space",
                region, start, size
            ),
            LoadError::Overlap { first, second } => write!(
                f,
                "segments {:#x}..{:#x} and {:#x}..{:#x} overlap",
                first.0, first.1, second.0, second.1
            ),
            LoadError::EntryOutsideRam { entry, ram } => write!(
                f,
                "entry point {:#x} is outside the {} of guest RAM",
                entry,
                Bytes(ram)
            ),
            LoadError::EntryOutsideImage { entry } => {
                write!(f, "entry point {:#x} is not inside the loaded image", entry)
            }
            LoadError::EntryNotReachable { entry, mode } => {
                let limit = match mode {
                    CpuMode::Real => "1 MiB",
                    CpuMode::Protected => "4 GiB",
                    CpuMode::Long => "128 TiB",
                };
                write!(
                    f,
                    "entry point {:#x} cannot be reached in {}: it must be below {}",
                    entry,
                    mode_name(mode),
                    limit
                )
            }
            LoadError::NoRoomForBootArea { mode, needed, ram } => write!(
                f,
                "no room for the {} {} ({}) in {} of guest RAM",
                mode_name(mode),
                boot_area_contents(mode),
                Bytes(needed),
                Bytes(ram)
            ),
            LoadError::BootAreaTaken {
                mode,
                area,
                taken_by,
            } => write!(
                f,
                "no room for the {} {} at the top of guest RAM ({:#x}..{:#x}): \
                 {:#x}..{:#x} is loaded there",
                mode_name(mode),
                boot_area_contents(mode),
                area.0,
                area.1,
                taken_by.0,
                taken_by.1
            ),
            LoadError::PageTables(error) => {
                write!(f, "cannot build the guest's page tables: {}", error)
            }
            LoadError::Multiboot(error) => error.fmt(f),
            LoadError::Linux(ref error) => error.fmt(f),
            LoadError::InitrdNeedsLinux(format) => {
                write!(f, "initrd= is for Linux kernels, and this is a {}", format)
            }
            LoadError::ModuleNotFound { ref name } => write!(
                f,
                "modules= names `{}`, which is not a data module (role=data) of this boot",
                name
            ),
            LoadError::ModulesNeedMultiboot(format) => write!(
                f,
                "modules= is for Multiboot kernels, and this is a {}",
                format
            ),
            LoadError::OptionNotForMultiboot { option } => write!(
                f,
                "{}= does not apply to a Multiboot kernel: its header and the \
                 specification say where it loads and how it starts",
                option
            ),
            LoadError::ModuleNotReachable { start, end } => write!(
                f,
                "module {:#x}..{:#x} would end above 4 GiB, out of reach of Multiboot's \
                 32-bit module addresses",
                start, end
            ),
        }
    }
}
