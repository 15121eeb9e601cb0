//! Tests of `load` as a whole: placement, start state, refusals, and
//! robustness against corrupt images.

use super::testing::{ElfBuilder, ExistingTables, FakeMemory};
use super::*;
use crate::mm::page_tables::{HostPaging, Mapping, PageSize, PageTables};
use crate::mm::phys::PAGE_SIZE;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

pub(super) const KIB: u64 = 1 << 10;
pub(super) const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn options(text: &str) -> ModuleOptions {
    ModuleOptions::parse(text).unwrap()
}

pub(super) fn load_into(
    image: &[u8],
    text: &str,
    ram: u64,
) -> (Result<BootState, LoadError>, FakeMemory) {
    let mut memory = FakeMemory::new(ram);
    let result = load(image, &options(text), &mut memory);
    (result, memory)
}

fn loaded(image: &[u8], text: &str, ram: u64) -> (BootState, FakeMemory) {
    let (result, memory) = load_into(image, text, ram);
    let state = result.unwrap_or_else(|error| panic!("load failed: {}", error));
    assert_sound(&state, &memory);
    (state, memory)
}

fn refusal(image: &[u8], text: &str, ram: u64) -> LoadError {
    let (result, memory) = load_into(image, text, ram);
    assert!(untouched(&memory), "a refused image wrote guest memory");
    result.unwrap_err()
}

pub(super) fn untouched(memory: &FakeMemory) -> bool {
    memory.accesses.is_empty() && memory.tables.is_empty()
}

fn boot_sector() -> Vec<u8> {
    let mut sector = vec![0xf4; 512];
    sector[510..].copy_from_slice(&[0x55, 0xaa]);
    sector
}

fn inside(ranges: &[(u64, u64)], start: u64, length: u64) -> bool {
    ranges
        .iter()
        .any(|&(s, l)| start >= s && start - s <= l && length <= l - (start - s))
}

/// What every successful load promises, whatever the image.
pub(super) fn assert_sound(state: &BootState, memory: &FakeMemory) {
    let ram = memory.size();
    let mut ranges = state.loaded.clone();
    ranges.sort_unstable();
    for &(start, length) in &ranges {
        assert!(length > 0 && start.checked_add(length).is_some_and(|end| end <= ram));
    }
    for pair in ranges.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap {:x?}", pair);
    }
    let entry = state.linear_entry();
    assert!(
        inside(&ranges, entry, 1),
        "entry {:#x} outside {:x?}",
        entry,
        ranges
    );
    let (area, area_length) = state.boot_area;
    match state.mode {
        CpuMode::Real => {
            assert!(entry < MIB && state.entry <= 0xffff);
            assert_eq!((state.cr3, state.gdt_base, state.gdt_limit), (0, 0, 0));
            assert_eq!(state.boot_area, (0, 0));
        }
        CpuMode::Protected | CpuMode::Long => {
            assert_eq!(state.real_mode_cs, 0);
            assert!(area_length > 0 && area + area_length <= ram);
            assert!(ranges
                .iter()
                .chain(&state.modules)
                .all(|&(s, l)| s + l <= area || s >= area + area_length));
            // Below the stack: the boot information of a Multiboot kernel.
            assert!(state.stack >= area + STACK_SIZE && state.stack < area + area_length);
            assert_eq!(state.gdt_base, state.stack);
            assert_eq!(state.gdt_limit, GDT_LIMIT);
            assert_eq!(state.cr3 != 0, state.mode == CpuMode::Long);
            if state.mode == CpuMode::Protected {
                assert!(area + area_length <= 1 << 32 && entry < 1 << 32);
            }
        }
    }
    let multiboot = matches!(
        state.format,
        DetectedFormat::Multiboot | DetectedFormat::Multiboot2
    );
    if state.format == DetectedFormat::Linux {
        assert_eq!(state.mode, CpuMode::Long);
        assert_eq!((state.rax, state.rbx), (0, 0));
        assert_eq!(u64::from(state.rsi), ZERO_PAGE_ADDRESS);
        assert!(inside(&ranges, ZERO_PAGE_ADDRESS, 4096));
        assert!(state.modules.len() <= 1 && state.bios_data.is_empty());
    } else if multiboot {
        assert_eq!(state.mode, CpuMode::Protected);
        assert_eq!(state.rbx, area, "the boot information opens the boot area");
        assert!(state.rax == 0x2bad_b002 || state.rax == 0x36d7_6289);
    } else {
        assert_eq!((state.rax, state.rbx), (0, 0));
        assert!(state.modules.is_empty() && state.bios_data.is_empty());
    }
    let mut allowed = ranges;
    allowed.push(state.boot_area);
    allowed.extend(&state.modules);
    allowed.extend(&state.bios_data);
    let tables = memory.tables.iter().map(|&table| (table, PAGE_SIZE));
    for (start, length) in memory.accesses.iter().copied().chain(tables) {
        assert!(
            inside(&allowed, start, length),
            "wrote {:#x}+{:#x} outside {:x?}",
            start,
            length,
            allowed
        );
    }
}

/// The page tables at `cr3`, leaf by leaf.
fn mappings(memory: &mut FakeMemory, cr3: u64) -> Vec<Mapping> {
    let mut existing = ExistingTables {
        memory,
        root: Some(cr3),
    };
    let tables = PageTables::<HostPaging>::new(&mut existing).unwrap();
    let mut found = Vec::new();
    tables.walk(&mut existing, |mapping| found.push(mapping));
    found
}

fn translate(memory: &mut FakeMemory, cr3: u64, address: u64) -> Option<(u64, u64)> {
    let mut existing = ExistingTables {
        memory,
        root: Some(cr3),
    };
    let tables = PageTables::<HostPaging>::new(&mut existing).unwrap();
    tables.translate(&mut existing, address)
}

/// All of `[0, ram)` and nothing else is identity-mapped, read/write, with
/// 2 MiB pages except for a tail shorter than 2 MiB.
fn assert_identity_map(state: &BootState, memory: &mut FakeMemory) {
    let ram = memory.size();
    let found = mappings(memory, state.cr3);
    let mut next = 0;
    for mapping in &found {
        assert_eq!(mapping.input, next, "gap or disorder at {:#x}", next);
        assert_eq!(mapping.output, mapping.input, "not an identity map");
        assert_eq!(mapping.flags, HostPaging::PRESENT | HostPaging::WRITABLE);
        let expected = if ram - next >= 2 * MIB {
            PageSize::Large
        } else {
            PageSize::Small
        };
        assert_eq!(mapping.size, expected, "at {:#x}", next);
        next += mapping.size.bytes();
    }
    assert_eq!(
        next, ram,
        "the map must end exactly at the end of guest RAM"
    );
    assert_eq!(
        translate(memory, state.cr3, ram - 1).map(|t| t.0),
        Some(ram - 1)
    );
    assert_eq!(translate(memory, state.cr3, ram), None);
    assert_eq!(translate(memory, state.cr3, ram + 2 * MIB), None);
    assert_eq!(translate(memory, state.cr3, 1 << 39), None);
    // Every table is in the boot area, above the stack and the GDT.
    let (area, length) = state.boot_area;
    assert_eq!(state.cr3, state.gdt_base + PAGE_SIZE);
    assert_eq!(area + length, ram & !(PAGE_SIZE - 1));
    assert!(!memory.tables.is_empty());
    for &table in &memory.tables {
        assert!(
            table >= state.cr3 && table < area + length,
            "table {:#x}",
            table
        );
    }
}

fn assert_gdt(state: &BootState, memory: &FakeMemory) {
    let descriptors: Vec<u64> = (0..4)
        .map(|n| memory.read_u64(state.gdt_base + 8 * n))
        .collect();
    assert_eq!(descriptors, GDT);
    assert_eq!(descriptors[1], 0x00cf_9b00_0000_ffff, "32-bit code at 0x08");
    assert_eq!(
        descriptors[2], 0x00af_9b00_0000_ffff,
        "64-bit code at 0x10, Linux's __BOOT_CS"
    );
    assert_eq!(
        descriptors[3], 0x00cf_9300_0000_ffff,
        "flat data at 0x18, Linux's __BOOT_DS"
    );
    assert_eq!(state.gdt_limit, 31);
}

// ---- raw images ----

#[test]
fn raw_image_is_a_boot_sector_by_default() {
    let sector = boot_sector();
    let (state, memory) = loaded(&sector, "name=hello", MIB);
    assert_eq!(state.format, DetectedFormat::Raw);
    assert_eq!(state.mode, CpuMode::Real);
    assert_eq!((state.real_mode_cs, state.entry), (0, 0x7c00));
    assert_eq!(state.stack, 0x7c00, "below the boot sector");
    assert_eq!(state.loaded, [(0x7c00, 512)]);
    assert_eq!(memory.read(0x7c00, 512), sector);
    assert_eq!(memory.read(0x7bff, 1), [0]);
}

#[test]
fn raw_real_mode_above_64_kib_uses_a_segment() {
    let (state, _) = loaded(&[0x90; 64], "load=0x12340 entry=0x12345", MIB);
    assert_eq!((state.real_mode_cs, state.entry), (0x1000, 0x2345));
    assert_eq!(state.linear_entry(), 0x12345);
    assert_eq!(state.stack, 0, "top of the first 64 KiB, SP wraps");
    let (state, _) = loaded(&[0x90; 16], "load=0x9fff0", MIB);
    assert_eq!((state.real_mode_cs, state.entry), (0x9000, 0xfff0));
}

#[test]
fn raw_real_mode_stack_in_small_ram() {
    let (state, _) = loaded(&[0x90; 16], "load=0", 4 * KIB);
    assert_eq!(state.stack, 0x1000, "top of the 4 KiB of RAM");
}

#[test]
fn raw_real_mode_entry_must_be_below_1_mib() {
    let error = refusal(&[0x90; 16], "load=0x100000", 2 * MIB);
    assert_eq!(
        error,
        LoadError::EntryNotReachable {
            entry: 0x10_0000,
            mode: CpuMode::Real
        }
    );
    assert_eq!(
        error.to_string(),
        "entry point 0x100000 cannot be reached in real mode: it must be below 1 MiB"
    );
}

#[test]
fn raw_protected_mode_gets_a_flat_gdt_and_stack() {
    let image = [0xf4; 100];
    let (state, memory) = loaded(&image, "load=0x1000 mode=protected", MIB);
    assert_eq!(state.mode, CpuMode::Protected);
    assert_eq!((state.entry, state.real_mode_cs, state.cr3), (0x1000, 0, 0));
    let area = MIB - STACK_SIZE - PAGE_SIZE;
    assert_eq!(state.boot_area, (area, STACK_SIZE + PAGE_SIZE));
    assert_eq!(state.stack, area + STACK_SIZE);
    assert_gdt(&state, &memory);
    assert_eq!(memory.read(0x1000, 100), image);
}

#[test]
fn raw_long_mode_gets_identity_tables() {
    let (state, mut memory) = loaded(
        &[0xf4; 8],
        "load=0x100000 entry=0x100004 mode=long",
        4 * MIB,
    );
    assert_eq!((state.mode, state.entry), (CpuMode::Long, 0x10_0004));
    assert_identity_map(&state, &mut memory);
    assert_gdt(&state, &memory);
}

#[test]
fn raw_image_errors() {
    assert_eq!(
        refusal(&[1; 8192], "", 4 * KIB),
        LoadError::ImageTooLarge {
            size: 8192,
            ram: 4096
        }
    );
    let error = refusal(&[1; 8192], "load=0xff000", MIB);
    assert_eq!(
        error.to_string(),
        "image 0xff000..0x101000 does not fit in 1 MiB of guest RAM"
    );
    assert_eq!(
        refusal(&[1; 16], "load=0xfffffffffffffff8", MIB),
        LoadError::AddressOverflow {
            region: Region::Image,
            start: u64::MAX - 7,
            size: 16
        }
    );
    assert_eq!(
        refusal(&[1; 16], "load=0x1000 entry=0x200000", MIB),
        LoadError::EntryOutsideRam {
            entry: 0x20_0000,
            ram: MIB
        }
    );
    assert_eq!(
        refusal(&[1; 16], "load=0x1000 entry=0x1010", MIB),
        LoadError::EntryOutsideImage { entry: 0x1010 }
    );
    assert!(matches!(
        refusal(&[1; 16], "load=0xff000 mode=protected", MIB),
        LoadError::BootAreaTaken { .. }
    ));
    assert_eq!(
        refusal(&[1; 16], "load=0 mode=long", 16 * KIB),
        LoadError::NoRoomForBootArea {
            mode: CpuMode::Long,
            needed: STACK_SIZE + 5 * PAGE_SIZE, // GDT, PML4, PDPT, PD, PT
            ram: 16 * KIB
        }
    );
}

// ---- ELF images ----

pub(super) fn kernel64() -> ElfBuilder {
    ElfBuilder::elf64(0x10_0000)
        .segment(0x10_0000, &[0xf4; 0x300], 0x1000)
        .segment(0x20_0000, &[0x11; 0x20], 0x3000)
}

#[test]
fn elf64_starts_in_long_mode_on_identity_tables() {
    let (state, mut memory) = loaded(&kernel64().build(), "mem=4M", 4 * MIB);
    assert_eq!(state.format, DetectedFormat::Elf64);
    assert_eq!((state.mode, state.entry), (CpuMode::Long, 0x10_0000));
    assert_eq!(state.loaded, [(0x10_0000, 0x1000), (0x20_0000, 0x3000)]);
    assert_eq!(memory.read(0x10_0000, 0x300), vec![0xf4; 0x300]);
    assert_identity_map(&state, &mut memory);
    assert_gdt(&state, &memory);
}

#[test]
fn elf64_identity_map_covers_odd_and_large_ram() {
    for ram in [
        3 * MIB + 4 * KIB,
        2 * MIB,
        GIB + 2 * MIB,
        2 * GIB + 6 * MIB + 8 * KIB,
    ] {
        let image = ElfBuilder::elf64(0x1000).segment(0x1000, &[0xf4; 16], 16);
        let (state, mut memory) = loaded(&image.build(), "", ram);
        assert_identity_map(&state, &mut memory);
    }
}

#[test]
fn elf_bss_is_zeroed_even_in_dirty_memory() {
    let image = kernel64().build();
    let mut memory = FakeMemory::new(4 * MIB);
    memory.fill(0x10_0000, 0x1000, 0xaa);
    memory.fill(0x20_0000, 0x4000, 0xbb);
    let state = load(&image, &options(""), &mut memory).unwrap();
    assert_sound(&state, &memory);
    assert_eq!(memory.read(0x10_0300, 0xd00), vec![0; 0xd00]);
    assert_eq!(memory.read(0x20_0000, 0x20), vec![0x11; 0x20]);
    assert_eq!(memory.read(0x20_0020, 0x2fe0), vec![0; 0x2fe0]);
    assert_eq!(
        memory.read(0x20_3000, 1),
        [0xbb],
        "past p_memsz is left alone"
    );
}

#[test]
fn elf32_starts_in_flat_protected_mode() {
    let image = ElfBuilder::elf32(0x10_0020)
        .segment(0x10_0000, &[0x90; 0x40], 0x2000)
        .build();
    let (state, memory) = loaded(&image, "", 2 * MIB);
    assert_eq!(state.format, DetectedFormat::Elf32);
    assert_eq!(
        (state.mode, state.entry, state.cr3),
        (CpuMode::Protected, 0x10_0020, 0)
    );
    assert_eq!(state.stack, 2 * MIB - PAGE_SIZE);
    assert_gdt(&state, &memory);
}

#[test]
fn higher_half_entry_is_translated_to_its_physical_address() {
    let image = ElfBuilder::elf64(0xffff_ffff_8010_0010)
        .segment_at(0x10_0000, 0xffff_ffff_8010_0000, &[0x90; 0x20], 0x20)
        .build();
    let (state, _) = loaded(&image, "", 4 * MIB);
    assert_eq!(state.entry, 0x10_0010);
}

#[test]
fn options_override_entry_and_mode() {
    let image = kernel64().build();
    let (state, _) = loaded(&image, "entry=0x200010", 4 * MIB);
    assert_eq!(state.entry, 0x20_0010);
    // Many 64-bit Multiboot kernels begin with 32-bit code.
    let (state, memory) = loaded(&image, "mode=protected", 4 * MIB);
    assert_eq!((state.mode, state.cr3), (CpuMode::Protected, 0));
    assert_gdt(&state, &memory);
    assert_eq!(
        refusal(&image, "mode=real", 4 * MIB),
        LoadError::EntryNotReachable {
            entry: 0x10_0000,
            mode: CpuMode::Real
        }
    );
}

#[test]
fn format_option_overrides_detection() {
    let image = kernel64().build();
    let (state, memory) = loaded(&image, "format=raw", 4 * MIB);
    assert_eq!(
        (state.format, state.mode),
        (DetectedFormat::Raw, CpuMode::Real)
    );
    assert_eq!(memory.read(0x7c00, 4), b"\x7fELF");
    assert_eq!(
        refusal(&boot_sector(), "format=elf", MIB),
        LoadError::Elf(ElfError::NoMagic)
    );
    assert_eq!(
        refusal(&image, "format=multiboot", 4 * MIB),
        LoadError::Multiboot(MultibootError::NoHeader)
    );
    assert_eq!(
        refusal(&image, "format=linux", 4 * MIB),
        LoadError::Linux(LinuxError::NoSetupHeader)
    );
}

#[test]
fn linux_images_with_a_bad_header_are_refused_by_name() {
    use super::detect::tests::{linux_image, multiboot_image};
    // "HdrS" and 0x90s: the length byte at 0x201 puts the header's end at 0x292.
    assert_eq!(
        refusal(&linux_image(8192), "format=auto", 4 * MIB),
        LoadError::Linux(LinuxError::BadHeaderLength { end: 0x292 })
    );
    // Bytes with a Multiboot header load anyway when the operator says they are raw.
    assert!(load_into(&multiboot_image(4096, 16), "format=raw", 4 * MIB)
        .0
        .is_ok());
}

#[test]
fn elf_with_a_multiboot_header_loads_as_multiboot_unless_format_says_elf() {
    let mut image = kernel64().build();
    let header = super::detect::tests::multiboot2_image(24, 0);
    let at = image.len() - 0x300 + 8; // inside the first segment's bytes, 8-aligned
    assert_eq!(at % 8, 0);
    image[at..at + 24].copy_from_slice(&header);
    // An end tag after the fixed part of the header.
    image[at + 16..at + 24].copy_from_slice(&[0, 0, 0, 0, 8, 0, 0, 0]);
    assert_eq!(detect(&image), DetectedFormat::Multiboot2);
    let (state, _) = loaded(&image, "", 4 * MIB);
    assert_eq!(
        (state.format, state.mode),
        (DetectedFormat::Multiboot2, CpuMode::Protected)
    );
    let (state, _) = loaded(&image, "format=elf", 4 * MIB);
    assert_eq!(state.format, DetectedFormat::Elf64);
    image[18] = 0x28; // e_machine: ARM
    assert!(matches!(
        refusal(&image, "", 4 * MIB),
        LoadError::Multiboot(MultibootError::NotElf(ElfError::WrongMachine { .. }))
    ));
    assert!(matches!(
        refusal(&image, "format=elf", 4 * MIB),
        LoadError::Elf(ElfError::WrongMachine { .. })
    ));
}

#[test]
fn broken_elf_is_not_run_raw() {
    let mut image = kernel64().build();
    image[4] = 9;
    assert_eq!(detect(&image), DetectedFormat::Raw);
    assert_eq!(
        refusal(&image, "", 4 * MIB),
        LoadError::Elf(ElfError::BadClass(9))
    );
    let error = refusal(&image[..40], "", 4 * MIB);
    assert_eq!(
        error.to_string(),
        "bad ELF: ELF class 9 is neither 1 (32-bit) nor 2 (64-bit)"
    );
}

#[test]
fn empty_images_are_refused_in_every_format() {
    for format in ["auto", "raw", "elf", "multiboot", "linux"] {
        let text = std::format!("format={}", format);
        assert_eq!(refusal(&[], &text, MIB), LoadError::EmptyImage);
    }
    assert_eq!(LoadError::EmptyImage.to_string(), "the image is empty");
}

#[test]
fn segment_beyond_guest_ram() {
    let image = ElfBuilder::elf64(0x10_0000)
        .segment(0x10_0000, &[0x90; 16], 0x80_0000)
        .build();
    let error = refusal(&image, "", 4 * MIB);
    assert_eq!(
        error,
        LoadError::OutsideRam {
            region: Region::Segment,
            start: 0x10_0000,
            end: 0x90_0000,
            ram: 4 * MIB
        }
    );
    assert_eq!(
        error.to_string(),
        "segment 0x100000..0x900000 does not fit in 4 MiB of guest RAM"
    );
}

#[test]
fn segment_address_overflow() {
    let image = ElfBuilder::elf64(0x1000)
        .segment(0x1000, &[0x90; 16], 16)
        .segment(u64::MAX - 0xf, &[], 0x100)
        .build();
    let error = refusal(&image, "", 4 * MIB);
    assert_eq!(
        error,
        LoadError::AddressOverflow {
            region: Region::Segment,
            start: u64::MAX - 0xf,
            size: 0x100
        }
    );
    assert_eq!(
        error.to_string(),
        "segment at 0xfffffffffffffff0 of 0x100 bytes runs past the end of the address space"
    );
}

#[test]
fn overlapping_segments() {
    let image = ElfBuilder::elf32(0x10_0000)
        .segment(0x10_1000, &[1; 16], 0x2000)
        .segment(0x10_0000, &[2; 16], 0x1001)
        .build();
    let error = refusal(&image, "", 4 * MIB);
    assert_eq!(
        error,
        LoadError::Overlap {
            first: (0x10_0000, 0x10_1001),
            second: (0x10_1000, 0x10_3000)
        }
    );
    assert_eq!(
        error.to_string(),
        "segments 0x100000..0x101001 and 0x101000..0x103000 overlap"
    );
    let touching = ElfBuilder::elf32(0x10_0000)
        .segment(0x10_1000, &[1; 16], 0x2000)
        .segment(0x10_0000, &[2; 16], 0x1000)
        .build();
    loaded(&touching, "", 4 * MIB);
}

#[test]
fn elf_entry_errors() {
    let outside_ram = ElfBuilder::elf64(0x50_0000)
        .segment(0x10_0000, &[1; 16], 16)
        .build();
    let error = refusal(&outside_ram, "", 4 * MIB);
    assert_eq!(
        error.to_string(),
        "entry point 0x500000 is outside the 4 MiB of guest RAM"
    );
    let outside_image = ElfBuilder::elf64(0x10_0010)
        .segment(0x10_0000, &[1; 16], 16)
        .build();
    assert_eq!(
        refusal(&outside_image, "", 4 * MIB),
        LoadError::EntryOutsideImage { entry: 0x10_0010 }
    );
    assert_eq!(
        refusal(&outside_image, "entry=0x0", 4 * MIB).to_string(),
        "entry point 0x0 is not inside the loaded image"
    );
}

#[test]
fn no_room_for_long_mode_tables() {
    let crowded = ElfBuilder::elf64(0x10_0000)
        .segment(0x10_0000, &[1; 16], 0x2f_9000)
        .build();
    let error = refusal(&crowded, "", 4 * MIB);
    assert_eq!(
        error,
        LoadError::BootAreaTaken {
            mode: CpuMode::Long,
            area: (4 * MIB - STACK_SIZE - 4 * PAGE_SIZE, 4 * MIB),
            taken_by: (0x10_0000, 0x3f_9000)
        }
    );
    assert_eq!(
        error.to_string(),
        "no room for the long mode page tables, GDT and stack at the top of guest RAM \
         (0x3f8000..0x400000): 0x100000..0x3f9000 is loaded there"
    );
    let tiny = ElfBuilder::elf64(0).segment(0, &[1; 16], 16).build();
    assert_eq!(
        refusal(&tiny, "", 16 * KIB).to_string(),
        "no room for the long mode page tables, GDT and stack (36 KiB) in 16 KiB of guest RAM"
    );
}

#[test]
fn remaining_messages() {
    assert_eq!(
        LoadError::ImageTooLarge {
            size: 2 * MIB,
            ram: MIB
        }
        .to_string(),
        "the image (2 MiB) is larger than the 1 MiB of guest RAM"
    );
    assert_eq!(
        LoadError::PageTables(crate::mm::page_tables::MapError::OutOfTables).to_string(),
        "cannot build the guest's page tables: out of memory for page tables"
    );
}
