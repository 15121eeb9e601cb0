//! ELF executables for x86: the ELF header and the PT_LOAD program headers
//! of ELF32 (EM_386) and ELF64 (EM_X86_64) images, as the System V gABI lays
//! them out ("ELF Header", "Program Header").
//!
//! Every field comes from an untrusted module, so each is read through a
//! bounds-checked accessor and each file range is checked against the image
//! before anyone copies from it. Section headers are never looked at: a
//! loader needs only the program headers.

use super::bytes::{u16_at, u32_at, u64_at};
use super::detect::ELF_MAGIC;
use alloc::vec::Vec;
use core::fmt;

/// The two ELF classes tessera loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    /// ELFCLASS32 with EM_386: starts in 32-bit protected mode.
    Elf32,
    /// ELFCLASS64 with EM_X86_64: starts in long mode.
    Elf64,
}

/// Where the fields this loader reads sit in each class's structures.
struct Layout {
    header_size: u64,
    program_header_size: u16,
    machine: u16,
    entry: u64,
    program_header_offset: u64,
    program_header_entry_size: u64,
    program_header_count: u64,
    segment_offset: u64,
    segment_virtual: u64,
    segment_physical: u64,
    segment_file_size: u64,
    segment_memory_size: u64,
}

/// e_machine values (gABI; the processor supplements assign them).
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// e_type of a fixed-address executable.
const ET_EXEC: u16 = 2;
/// p_type of a loadable segment.
const PT_LOAD: u32 = 1;
/// e_phnum escape: the real count is in section header 0 (gABI, "Sections").
const PN_XNUM: u16 = 0xffff;
/// e_ident indexes.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const EI_VERSION: usize = 6;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;

impl ElfClass {
    const fn layout(self) -> Layout {
        match self {
            ElfClass::Elf32 => Layout {
                header_size: 52,
                program_header_size: 32,
                machine: EM_386,
                entry: 24,
                program_header_offset: 28,
                program_header_entry_size: 42,
                program_header_count: 44,
                segment_offset: 4,
                segment_virtual: 8,
                segment_physical: 12,
                segment_file_size: 16,
                segment_memory_size: 20,
            },
            ElfClass::Elf64 => Layout {
                header_size: 64,
                program_header_size: 56,
                machine: EM_X86_64,
                entry: 24,
                program_header_offset: 32,
                program_header_entry_size: 54,
                program_header_count: 56,
                segment_offset: 8,
                segment_virtual: 16,
                segment_physical: 24,
                segment_file_size: 32,
                segment_memory_size: 40,
            },
        }
    }

    /// A class's address-sized field (Elf32_Addr/Off or Elf64_Addr/Off).
    fn word(self, bytes: &[u8], offset: u64) -> Option<u64> {
        match self {
            ElfClass::Elf32 => u32_at(bytes, offset).map(u64::from),
            ElfClass::Elf64 => u64_at(bytes, offset),
        }
    }

    /// "ELF32" or "ELF64".
    pub const fn name(self) -> &'static str {
        match self {
            ElfClass::Elf32 => "ELF32",
            ElfClass::Elf64 => "ELF64",
        }
    }
}

/// One PT_LOAD segment with bytes to place (p_memsz > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// p_paddr: where it goes in guest-physical memory.
    pub physical: u64,
    /// p_vaddr: where the program expects it; used to translate e_entry.
    pub virtual_address: u64,
    /// p_offset: where its file bytes start in the image.
    pub file_offset: u64,
    /// p_filesz: bytes copied from the image (inside the image, checked).
    pub file_size: u64,
    /// p_memsz: bytes it occupies; those past `file_size` are zeroed.
    pub memory_size: u64,
}

/// A parsed ELF executable: its class, entry point and loadable segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfImage {
    /// ELF32 or ELF64.
    pub class: ElfClass,
    /// e_entry, a virtual address.
    pub entry: u64,
    /// The PT_LOAD segments with p_memsz > 0, in program-header order.
    pub segments: Vec<Segment>,
}

impl ElfImage {
    /// The guest-physical address of `e_entry`: translated through the
    /// segment whose virtual range holds it (as GRUB does for Multiboot ELF
    /// kernels, whose e_entry is virtual but which start with paging off),
    /// else e_entry unchanged.
    pub fn physical_entry(&self) -> u64 {
        self.segments
            .iter()
            .find_map(|segment| {
                let offset = self.entry.checked_sub(segment.virtual_address)?;
                if offset < segment.memory_size {
                    segment.physical.checked_add(offset)
                } else {
                    None
                }
            })
            .unwrap_or(self.entry)
    }
}

/// Why an image is not a loadable x86 ELF executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// The image does not start with `\x7fELF`.
    NoMagic,
    /// The image ends inside the ELF header.
    TruncatedHeader {
        /// The image's length.
        length: usize,
    },
    /// EI_CLASS is neither ELFCLASS32 nor ELFCLASS64.
    BadClass(u8),
    /// EI_DATA is not ELFDATA2LSB; x86 is little-endian.
    NotLittleEndian(u8),
    /// EI_VERSION is not EV_CURRENT.
    BadVersion(u8),
    /// e_type is not ET_EXEC (a relocatable object, shared object or core file).
    NotExecutable(u16),
    /// e_machine does not match the class (EM_386 for ELF32, EM_X86_64 for ELF64).
    WrongMachine {
        /// The class.
        class: ElfClass,
        /// e_machine.
        machine: u16,
    },
    /// e_phnum is PN_XNUM: the count lives in a section header.
    ExtendedProgramHeaderCount,
    /// e_phentsize is smaller than a program header of the class.
    ProgramHeaderTooSmall {
        /// The class.
        class: ElfClass,
        /// e_phentsize.
        size: u16,
    },
    /// The program-header table reaches past the image.
    ProgramHeadersOutsideImage {
        /// e_phoff.
        offset: u64,
        /// e_phnum.
        count: u16,
        /// e_phentsize.
        entry_size: u16,
    },
    /// A PT_LOAD segment's file bytes reach past the image.
    SegmentOutsideImage {
        /// The program-header index.
        index: u16,
        /// p_offset.
        offset: u64,
        /// p_filesz.
        file_size: u64,
    },
    /// A PT_LOAD segment has p_filesz > p_memsz, which the gABI forbids.
    FileSizeAboveMemorySize {
        /// The program-header index.
        index: u16,
        /// p_filesz.
        file_size: u64,
        /// p_memsz.
        memory_size: u64,
    },
    /// No PT_LOAD segment occupies any memory.
    NoLoadableSegment,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::NoMagic => f.write_str("not an ELF file (no \\x7fELF magic)"),
            ElfError::TruncatedHeader { length } => {
                write!(
                    f,
                    "ELF header cut short: the image has only {} bytes",
                    length
                )
            }
            ElfError::BadClass(class) => write!(
                f,
                "ELF class {} is neither 1 (32-bit) nor 2 (64-bit)",
                class
            ),
            ElfError::NotLittleEndian(data) => {
                write!(f, "ELF data encoding {} is not 1 (little-endian)", data)
            }
            ElfError::BadVersion(version) => write!(f, "ELF version {} is not 1", version),
            ElfError::NotExecutable(kind) => write!(
                f,
                "ELF type {} is not 2 (ET_EXEC): only fixed-address executables can be loaded",
                kind
            ),
            ElfError::WrongMachine { class, machine } => {
                let (expected, number) = match class {
                    ElfClass::Elf32 => ("EM_386", EM_386),
                    ElfClass::Elf64 => ("EM_X86_64", EM_X86_64),
                };
                write!(
                    f,
                    "{} machine {} is not {} ({})",
                    class.name(),
                    machine,
                    number,
                    expected
                )
            }
            ElfError::ExtendedProgramHeaderCount => {
                f.write_str("more than 65534 program headers (PN_XNUM) are not supported")
            }
            ElfError::ProgramHeaderTooSmall { class, size } => write!(
                f,
                "program header size {} is smaller than the {} bytes of an {} program header",
                size,
                class.layout().program_header_size,
                class.name()
            ),
            ElfError::ProgramHeadersOutsideImage {
                offset,
                count,
                entry_size,
            } => write!(
                f,
                "{} program headers of {} bytes at offset {:#x} reach past the end of the image",
                count, entry_size, offset
            ),
            ElfError::SegmentOutsideImage {
                index,
                offset,
                file_size,
            } => write!(
                f,
                "segment {}: its {:#x} file bytes at offset {:#x} reach past the end of the image",
                index, file_size, offset
            ),
            ElfError::FileSizeAboveMemorySize {
                index,
                file_size,
                memory_size,
            } => write!(
                f,
                "segment {}: file size {:#x} is larger than its memory size {:#x}",
                index, file_size, memory_size
            ),
            ElfError::NoLoadableSegment => f.write_str("no PT_LOAD segment to load"),
        }
    }
}

/// Parses the ELF header and program headers of an x86 executable.
pub fn parse(image: &[u8]) -> Result<ElfImage, ElfError> {
    if !image.starts_with(&ELF_MAGIC) {
        return Err(ElfError::NoMagic);
    }
    let truncated = ElfError::TruncatedHeader {
        length: image.len(),
    };
    let class = match image.get(EI_CLASS) {
        Some(1) => ElfClass::Elf32,
        Some(2) => ElfClass::Elf64,
        Some(&other) => return Err(ElfError::BadClass(other)),
        None => return Err(truncated),
    };
    let layout = class.layout();
    if (image.len() as u64) < layout.header_size {
        return Err(truncated);
    }
    // The header is all there from here on; `?` on `truncated` is only a
    // belt to the braces of the length check above.
    if image[EI_DATA] != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian(image[EI_DATA]));
    }
    if image[EI_VERSION] != EV_CURRENT {
        return Err(ElfError::BadVersion(image[EI_VERSION]));
    }
    let kind = u16_at(image, 16).ok_or(truncated)?;
    if kind != ET_EXEC {
        return Err(ElfError::NotExecutable(kind));
    }
    let machine = u16_at(image, 18).ok_or(truncated)?;
    if machine != layout.machine {
        return Err(ElfError::WrongMachine { class, machine });
    }
    let entry = class.word(image, layout.entry).ok_or(truncated)?;
    let table = class
        .word(image, layout.program_header_offset)
        .ok_or(truncated)?;
    let entry_size = u16_at(image, layout.program_header_entry_size).ok_or(truncated)?;
    let count = u16_at(image, layout.program_header_count).ok_or(truncated)?;
    if count == 0 {
        return Err(ElfError::NoLoadableSegment);
    }
    if count == PN_XNUM {
        return Err(ElfError::ExtendedProgramHeaderCount);
    }
    if entry_size < layout.program_header_size {
        return Err(ElfError::ProgramHeaderTooSmall {
            class,
            size: entry_size,
        });
    }
    let outside = ElfError::ProgramHeadersOutsideImage {
        offset: table,
        count,
        entry_size,
    };
    // At most 65534 * 65535 bytes: the product cannot overflow.
    let table_end = table
        .checked_add(u64::from(count) * u64::from(entry_size))
        .ok_or(outside)?;
    if table_end > image.len() as u64 {
        return Err(outside);
    }

    let mut segments = Vec::new();
    for index in 0..count {
        let header = table + u64::from(index) * u64::from(entry_size);
        let field = |offset: u64| class.word(image, header + offset).ok_or(outside);
        if u32_at(image, header).ok_or(outside)? != PT_LOAD {
            continue;
        }
        let segment = Segment {
            physical: field(layout.segment_physical)?,
            virtual_address: field(layout.segment_virtual)?,
            file_offset: field(layout.segment_offset)?,
            file_size: field(layout.segment_file_size)?,
            memory_size: field(layout.segment_memory_size)?,
        };
        if segment.file_size > segment.memory_size {
            return Err(ElfError::FileSizeAboveMemorySize {
                index,
                file_size: segment.file_size,
                memory_size: segment.memory_size,
            });
        }
        // A segment without file bytes may point anywhere: nothing is read.
        let file_end = segment.file_offset.checked_add(segment.file_size);
        if segment.file_size > 0 && file_end.is_none_or(|end| end > image.len() as u64) {
            return Err(ElfError::SegmentOutsideImage {
                index,
                offset: segment.file_offset,
                file_size: segment.file_size,
            });
        }
        if segment.memory_size > 0 {
            segments.push(segment);
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    Ok(ElfImage {
        class,
        entry,
        segments,
    })
}

impl Segment {
    /// The segment's file bytes. `parse` checked that they lie inside `image`;
    /// an image other than the parsed one gets an empty slice, never a panic.
    pub fn file_bytes<'i>(&self, image: &'i [u8]) -> &'i [u8] {
        if self.file_size == 0 {
            return &[];
        }
        let start = usize::try_from(self.file_offset).ok();
        let size = usize::try_from(self.file_size).ok();
        start
            .zip(size)
            .and_then(|(start, size)| image.get(start..start.checked_add(size)?))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::ElfBuilder;
    use super::*;
    use std::string::ToString;

    #[test]
    fn parses_elf64_segments_and_skips_others() {
        let image = ElfBuilder::elf64(0x10_0010)
            .segment(0x10_0000, &[1, 2, 3, 4], 0x2000)
            .note()
            .segment(0x20_0000, &[5; 16], 16)
            .segment(0x30_0000, &[], 0)
            .build();
        let elf = parse(&image).unwrap();
        assert_eq!(elf.class, ElfClass::Elf64);
        assert_eq!(elf.entry, 0x10_0010);
        assert_eq!(
            elf.segments.len(),
            2,
            "the note and the empty segment are dropped"
        );
        assert_eq!(elf.segments[0].physical, 0x10_0000);
        assert_eq!(elf.segments[0].file_bytes(&image), &[1, 2, 3, 4]);
        assert_eq!(elf.segments[0].memory_size, 0x2000);
        assert_eq!(elf.segments[1].file_bytes(&image), &[5; 16]);
    }

    #[test]
    fn parses_elf32() {
        let image = ElfBuilder::elf32(0x10_0000)
            .segment(0x10_0000, &[0xf4], 0x1000)
            .build();
        let elf = parse(&image).unwrap();
        assert_eq!(elf.class, ElfClass::Elf32);
        assert_eq!(elf.segments[0].file_size, 1);
    }

    #[test]
    fn entry_is_translated_through_the_segment_holding_it() {
        let image = ElfBuilder::elf64(0xffff_ffff_8010_0040)
            .segment_at(0x10_0000, 0xffff_ffff_8010_0000, &[0x90; 0x100], 0x100)
            .build();
        assert_eq!(parse(&image).unwrap().physical_entry(), 0x10_0040);
        let image = ElfBuilder::elf64(0x40_0000)
            .segment(0x10_0000, &[0x90; 0x100], 0x100)
            .build();
        assert_eq!(parse(&image).unwrap().physical_entry(), 0x40_0000);
    }

    #[test]
    fn header_errors() {
        assert_eq!(parse(b"MZ\x90\x00"), Err(ElfError::NoMagic));
        assert_eq!(
            parse(b"\x7fELF"),
            Err(ElfError::TruncatedHeader { length: 4 })
        );
        let good = ElfBuilder::elf64(0x1000).segment(0x1000, &[1], 1).build();
        assert_eq!(
            parse(&good[..63]),
            Err(ElfError::TruncatedHeader { length: 63 })
        );
        let with = |offset: usize, bytes: &[u8]| {
            let mut image = good.clone();
            image[offset..offset + bytes.len()].copy_from_slice(bytes);
            parse(&image)
        };
        assert_eq!(with(4, &[3]), Err(ElfError::BadClass(3)));
        assert_eq!(with(5, &[2]), Err(ElfError::NotLittleEndian(2)));
        assert_eq!(with(6, &[0]), Err(ElfError::BadVersion(0)));
        assert_eq!(with(16, &[3, 0]), Err(ElfError::NotExecutable(3)));
        assert_eq!(
            with(18, &[3, 0]),
            Err(ElfError::WrongMachine {
                class: ElfClass::Elf64,
                machine: 3
            })
        );
        assert_eq!(with(56, &[0, 0]), Err(ElfError::NoLoadableSegment));
        assert_eq!(
            with(56, &[0xff, 0xff]),
            Err(ElfError::ExtendedProgramHeaderCount)
        );
        assert_eq!(
            with(54, &[55, 0]),
            Err(ElfError::ProgramHeaderTooSmall {
                class: ElfClass::Elf64,
                size: 55
            })
        );
        assert!(matches!(
            with(32, &u64::MAX.to_le_bytes()),
            Err(ElfError::ProgramHeadersOutsideImage { .. })
        ));
        assert!(matches!(
            with(32, &(good.len() as u64 - 55).to_le_bytes()),
            Err(ElfError::ProgramHeadersOutsideImage { .. })
        ));
    }

    #[test]
    fn elf32_for_x86_64_is_refused() {
        let image = ElfBuilder::elf32(0x1000)
            .machine(EM_X86_64)
            .segment(0x1000, &[1], 1)
            .build();
        let error = parse(&image).unwrap_err();
        assert_eq!(error.to_string(), "ELF32 machine 62 is not 3 (EM_386)");
    }

    #[test]
    fn shared_objects_are_refused() {
        let image = ElfBuilder::elf64(0x1000)
            .kind(3)
            .segment(0x1000, &[1], 1)
            .build();
        assert_eq!(parse(&image), Err(ElfError::NotExecutable(3)));
    }

    #[test]
    fn segment_errors() {
        let image = ElfBuilder::elf64(0x1000)
            .segment(0x1000, &[1; 32], 32)
            .build();
        let (table, _) = ElfBuilder::program_header_fields(ElfClass::Elf64);
        let with = |field: u64, value: u64| {
            let mut image = image.clone();
            let at = (table + field) as usize;
            image[at..at + 8].copy_from_slice(&value.to_le_bytes());
            parse(&image)
        };
        let layout = ElfClass::Elf64.layout();
        assert_eq!(
            with(layout.segment_file_size, 33),
            Err(ElfError::FileSizeAboveMemorySize {
                index: 0,
                file_size: 33,
                memory_size: 32
            })
        );
        assert_eq!(
            with(layout.segment_offset, image.len() as u64 - 31),
            Err(ElfError::SegmentOutsideImage {
                index: 0,
                offset: image.len() as u64 - 31,
                file_size: 32
            })
        );
        assert!(matches!(
            with(layout.segment_offset, u64::MAX - 8),
            Err(ElfError::SegmentOutsideImage { .. })
        ));
        assert_eq!(
            with(layout.segment_memory_size, 0).unwrap_err(),
            ElfError::FileSizeAboveMemorySize {
                index: 0,
                file_size: 32,
                memory_size: 0
            }
        );
        let only_notes = ElfBuilder::elf64(0x1000).note().build();
        assert_eq!(parse(&only_notes), Err(ElfError::NoLoadableSegment));
    }

    #[test]
    fn bss_only_segment_may_point_past_the_file() {
        let image = ElfBuilder::elf64(0x1000)
            .segment(0x1000, &[1], 1)
            .segment(0x2000, &[], 0x1000)
            .build();
        let (table, size) = ElfBuilder::program_header_fields(ElfClass::Elf64);
        let mut image = image;
        let at = (table + size + ElfClass::Elf64.layout().segment_offset) as usize;
        image[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let elf = parse(&image).unwrap();
        assert_eq!(elf.segments[1].file_bytes(&image), &[] as &[u8]);
    }

    #[test]
    fn messages() {
        assert_eq!(
            ElfError::FileSizeAboveMemorySize {
                index: 2,
                file_size: 0x20,
                memory_size: 0x10
            }
            .to_string(),
            "segment 2: file size 0x20 is larger than its memory size 0x10"
        );
        assert_eq!(
            ElfError::NotExecutable(3).to_string(),
            "ELF type 3 is not 2 (ET_EXEC): only fixed-address executables can be loaded"
        );
    }
}
