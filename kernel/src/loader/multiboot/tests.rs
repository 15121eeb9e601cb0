//! Multiboot and Multiboot2 kernels end to end: hand-built a.out-kludge and
//! ELF images, the boot information read back from guest RAM field by
//! field, and one test per refusal.

use super::super::testing::{ElfBuilder, FakeMemory};
use super::super::tests::{assert_sound, untouched, MIB};
use super::super::*;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

const MB1_MAGIC: u32 = 0x1bad_b002;
const MB2_MAGIC: u32 = 0xe852_50d6;
const AOUT: u32 = 1 << 16;

fn words(values: &[u32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// A Multiboot header: magic, flags, checksum, then `rest` (a.out fields).
pub(crate) fn mb1_header(flags: u32, rest: &[u32]) -> Vec<u8> {
    let checksum = 0u32.wrapping_sub(MB1_MAGIC).wrapping_sub(flags);
    let mut header = words(&[MB1_MAGIC, flags, checksum]);
    header.extend(words(rest));
    header
}

/// A Multiboot2 header with `tags` (type, flags, body) and an end tag.
pub(crate) fn mb2_header(architecture: u32, tags: &[(u16, u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, flags, tag_body) in tags
        .iter()
        .chain(core::iter::once(&(0u16, 0u16, Vec::new())))
    {
        body.extend_from_slice(&kind.to_le_bytes());
        body.extend_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&(8 + tag_body.len() as u32).to_le_bytes());
        body.extend_from_slice(tag_body);
        body.resize(body.len().next_multiple_of(8), 0);
    }
    let length = 16 + body.len() as u32;
    let checksum = 0u32
        .wrapping_sub(MB2_MAGIC)
        .wrapping_sub(architecture)
        .wrapping_sub(length);
    let mut header = words(&[MB2_MAGIC, architecture, length, checksum]);
    header.extend(body);
    header
}

/// An a.out-kludge kernel: 0x40 bytes of code, the header at file offset
/// 0x40 (so header_addr = load_addr + 0x40), then code up to `size` bytes.
pub(crate) fn aout_kernel(flags: u32, load: u32, size: usize, bss_end: u32, entry: u32) -> Vec<u8> {
    let mut image = vec![0xf4; size];
    let header = mb1_header(flags | AOUT, &[load + 0x40, load, 0, bss_end, entry]);
    image[0x40..0x40 + header.len()].copy_from_slice(&header);
    image
}

/// An ELF executable with `header` inside its one segment at 0x100000, at
/// an 8-aligned file offset.
pub(crate) fn elf_with_header(elf: ElfBuilder, header: &[u8]) -> Vec<u8> {
    let mut image = elf.segment(0x10_0000, &[0x90; 0x400], 0x2000).build();
    let data = image.len() - 0x400;
    let at = data.next_multiple_of(8);
    image[at..at + header.len()].copy_from_slice(header);
    image
}

fn options(text: &str) -> ModuleOptions {
    ModuleOptions::parse(text).unwrap()
}

fn load_mb(
    image: &[u8],
    text: &str,
    inputs: &BootInputs,
    ram: u64,
) -> (Result<BootState, LoadError>, FakeMemory) {
    let mut memory = FakeMemory::new(ram);
    let result = load_with(image, &options(text), inputs, &mut memory);
    match &result {
        Ok(state) => assert_sound(state, &memory),
        Err(_) => assert!(untouched(&memory), "a refused image wrote guest memory"),
    }
    (result, memory)
}

fn loaded(image: &[u8], text: &str, inputs: &BootInputs, ram: u64) -> (BootState, FakeMemory) {
    let (result, memory) = load_mb(image, text, inputs, ram);
    (
        result.unwrap_or_else(|error| panic!("load failed: {}", error)),
        memory,
    )
}

fn refusal(image: &[u8], text: &str, ram: u64) -> LoadError {
    load_mb(image, text, &BootInputs::default(), ram)
        .0
        .unwrap_err()
}

fn read_u32(memory: &FakeMemory, at: u64) -> u32 {
    u32::from_le_bytes(memory.read(at, 4).try_into().unwrap())
}

fn read_u64(memory: &FakeMemory, at: u64) -> u64 {
    memory.read_u64(at)
}

fn read_string(memory: &FakeMemory, at: u64) -> String {
    let mut bytes = Vec::new();
    let mut address = at;
    loop {
        let byte = memory.read(address, 1)[0];
        if byte == 0 {
            break;
        }
        bytes.push(byte);
        address += 1;
    }
    String::from_utf8(bytes).unwrap()
}

fn data_modules() -> [DataModule<'static>; 2] {
    [
        DataModule {
            name: "rootfs",
            bytes: &[0xab; 5000],
            cmdline: "rootfs ro",
        },
        DataModule {
            name: "config",
            bytes: b"answer=42\n",
            cmdline: "config",
        },
    ]
}

// ---- Multiboot (1) ----

#[test]
fn aout_kernel_loads_zeroes_its_bss_and_gets_the_information() {
    let image = aout_kernel(0b11, 0x10_0000, 0x1000, 0x10_3000, 0x10_0080);
    let mut memory = FakeMemory::new(8 * MIB);
    memory.fill(0x10_1000, 0x2000, 0xee);
    let state = load_with(
        &image,
        &options("name=k mem=8M -- console=ttyS0 verbose"),
        &BootInputs::default(),
        &mut memory,
    )
    .unwrap();
    assert_sound(&state, &memory);
    assert_eq!(state.format, DetectedFormat::Multiboot);
    assert_eq!(state.mode, CpuMode::Protected);
    assert_eq!(state.entry, 0x10_0080);
    assert_eq!(state.loaded, [(0x10_0000, 0x3000)]);
    assert_eq!(memory.read(0x10_0000, 0x1000), image);
    assert!(
        memory.read(0x10_1000, 0x2000).iter().all(|&b| b == 0),
        "bss"
    );
    assert_eq!(state.rax, 0x2bad_b002);
    let info = state.rbx;
    assert_eq!(info, state.boot_area.0);
    assert!(info + 0x1000 <= state.stack - STACK_SIZE + 0x1000);

    let flags = read_u32(&memory, info);
    assert_eq!(flags, 1 | 1 << 2 | 1 << 3 | 1 << 6 | 1 << 9);
    assert_eq!(read_u32(&memory, info + 4), 639, "mem_lower");
    let upper = (info - MIB) / 1024;
    assert_eq!(u64::from(read_u32(&memory, info + 8)), upper, "mem_upper");
    assert_eq!(
        read_string(&memory, read_u32(&memory, info + 16).into()),
        "console=ttyS0 verbose"
    );
    assert_eq!(read_u32(&memory, info + 20), 0, "mods_count");
    assert_eq!(
        read_string(&memory, read_u32(&memory, info + 64).into()),
        "tessera"
    );
    // The memory map: 24-byte entries with the size field first.
    let length = read_u32(&memory, info + 44);
    let map = u64::from(read_u32(&memory, info + 48));
    let entries: Vec<(u32, u64, u64, u32)> = (0..u64::from(length) / 24)
        .map(|n| {
            let at = map + 24 * n;
            (
                read_u32(&memory, at),
                read_u64(&memory, at + 4),
                read_u64(&memory, at + 12),
                read_u32(&memory, at + 20),
            )
        })
        .collect();
    let (area, area_length) = state.boot_area;
    assert_eq!(
        entries,
        [
            (20, 0, 0x9_fc00, 1),
            (20, 0x9_fc00, 0x6_0400, 2),
            (20, MIB, area - MIB, 1),
            (20, area, area_length, 2),
        ]
    );
    assert_eq!(area + area_length, 8 * MIB);
    // The BIOS data area, as a PC BIOS leaves it.
    assert_eq!(memory.read(0x400, 2), [0xf8, 0x03], "COM1");
    assert_eq!(
        memory.read(0x40e, 2),
        0x9fc0u16.to_le_bytes(),
        "EBDA segment"
    );
    assert_eq!(memory.read(0x413, 2), 639u16.to_le_bytes(), "base memory");
    assert_eq!(state.bios_data, [(0x400, 2), (0x40e, 2), (0x413, 2)]);
}

#[test]
fn elf_kernels_load_by_physical_address_and_start_in_protected_mode() {
    for elf in [ElfBuilder::elf32(0x10_0000), ElfBuilder::elf64(0x10_0000)] {
        let image = elf_with_header(elf, &mb1_header(0b11, &[]));
        let (state, memory) = loaded(&image, "", &BootInputs::default(), 4 * MIB);
        assert_eq!(state.format, DetectedFormat::Multiboot);
        assert_eq!(state.mode, CpuMode::Protected, "even for ELF64");
        assert_eq!(state.cr3, 0, "paging off");
        assert_eq!(state.loaded, [(0x10_0000, 0x2000)]);
        assert_eq!(memory.read(0x10_0020, 1), [0x90]);
    }
    // A higher-half ELF64 kernel enters at the physical address of e_entry.
    let header = mb1_header(0, &[]);
    let mut image = ElfBuilder::elf64(0xffff_ffff_8010_0010)
        .segment_at(0x10_0000, 0xffff_ffff_8010_0000, &[0x90; 0x100], 0x100)
        .build();
    let at = (image.len() - 0x100).next_multiple_of(4);
    image[at..at + 12].copy_from_slice(&header);
    let (state, _) = loaded(&image, "", &BootInputs::default(), 4 * MIB);
    assert_eq!(state.entry, 0x10_0010);
}

#[test]
fn elf64_entry_above_4_gib_is_refused() {
    let image = elf_with_header(ElfBuilder::elf64(0x1_0000_0000), &mb1_header(0, &[]));
    let mut image = image;
    // Move the segment to 4 GiB.
    let (table, _) = ElfBuilder::program_header_fields(ElfClass::Elf64);
    let at = (table + 24) as usize; // p_paddr
    image[at..at + 8].copy_from_slice(&0x1_0000_0000u64.to_le_bytes());
    assert_eq!(
        refusal(&image, "", 5 << 30),
        LoadError::EntryNotReachable {
            entry: 0x1_0000_0000,
            mode: CpuMode::Protected
        }
    );
}

#[test]
fn modules_are_page_aligned_after_the_image_and_described() {
    let image = aout_kernel(0b01, 0x10_0000, 0x1000, 0x10_3800, 0x10_0080);
    let modules = data_modules();
    let inputs = BootInputs {
        modules: &modules,
        ..BootInputs::default()
    };
    let (state, memory) = loaded(&image, "modules=config,rootfs", &inputs, 8 * MIB);
    assert_eq!(state.modules, [(0x10_4000, 10), (0x10_5000, 5000)]);
    assert_eq!(memory.read(0x10_4000, 10), b"answer=42\n");
    assert_eq!(memory.read(0x10_5000, 5000), [0xab; 5000]);
    let info = state.rbx;
    assert_eq!(read_u32(&memory, info + 20), 2, "mods_count");
    let mods = u64::from(read_u32(&memory, info + 24));
    assert_eq!(read_u32(&memory, mods), 0x10_4000);
    assert_eq!(
        read_u32(&memory, mods + 4),
        0x10_400a,
        "mod_end is exclusive"
    );
    assert_eq!(
        read_string(&memory, read_u32(&memory, mods + 8).into()),
        "config"
    );
    assert_eq!(read_u32(&memory, mods + 16), 0x10_5000);
    assert_eq!(read_u32(&memory, mods + 20), 0x10_5000 + 5000);
    assert_eq!(
        read_string(&memory, read_u32(&memory, mods + 24).into()),
        "rootfs ro"
    );
}

#[test]
fn a_module_not_offered_is_refused_by_name() {
    let image = aout_kernel(0, 0x10_0000, 0x1000, 0, 0x10_0080);
    let error = refusal(&image, "modules=rootfs,missing", 8 * MIB);
    assert_eq!(
        error,
        LoadError::ModuleNotFound {
            name: "rootfs".to_string()
        }
    );
    let modules = data_modules();
    let inputs = BootInputs {
        modules: &modules,
        ..BootInputs::default()
    };
    let error = load_mb(&image, "modules=rootfs,missing", &inputs, 8 * MIB)
        .0
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "modules= names `missing`, which is not a data module (role=data) of this boot"
    );
    // A module that does not fit in guest RAM.
    let big = [DataModule {
        name: "big",
        bytes: &[0; 0x20_0000],
        cmdline: "",
    }];
    let inputs = BootInputs {
        modules: &big,
        ..BootInputs::default()
    };
    assert_eq!(
        load_mb(&image, "modules=big", &inputs, 2 * MIB)
            .0
            .unwrap_err(),
        LoadError::OutsideRam {
            region: Region::Module,
            start: 0x10_1000,
            end: 0x30_1000,
            ram: 2 * MIB
        }
    );
}

#[test]
fn modules_are_only_for_multiboot_kernels() {
    let elf = ElfBuilder::elf64(0x10_0000)
        .segment(0x10_0000, &[0x90; 16], 16)
        .build();
    let error = refusal(&elf, "modules=rootfs", 4 * MIB);
    assert_eq!(
        error,
        LoadError::ModulesNeedMultiboot(DetectedFormat::Elf64)
    );
    assert_eq!(
        error.to_string(),
        "modules= is for Multiboot kernels, and this is a ELF64"
    );
    assert_eq!(
        refusal(&[0xf4; 512], "modules=a", MIB),
        LoadError::ModulesNeedMultiboot(DetectedFormat::Raw)
    );
}

#[test]
fn load_and_mode_options_do_not_apply() {
    let image = aout_kernel(0, 0x10_0000, 0x1000, 0, 0x10_0080);
    assert_eq!(
        refusal(&image, "load=0x1000", 4 * MIB).to_string(),
        "load= does not apply to a Multiboot kernel: its header and the specification \
         say where it loads and how it starts"
    );
    assert_eq!(
        refusal(&image, "mode=long", 4 * MIB),
        LoadError::OptionNotForMultiboot { option: "mode" }
    );
    let (state, _) = loaded(
        &image,
        "mode=protected entry=0x100100",
        &BootInputs::default(),
        4 * MIB,
    );
    assert_eq!(state.entry, 0x10_0100);
}

#[test]
fn header_flag_errors() {
    let image = aout_kernel(1 << 2, 0x10_0000, 0x1000, 0, 0x10_0080);
    let error = refusal(&image, "", 4 * MIB);
    assert_eq!(
        error,
        LoadError::Multiboot(MultibootError::VideoModeRequired)
    );
    assert_eq!(
        error.to_string(),
        "Multiboot header flag 2 requires a video mode, and tessera has no display"
    );
    let image = aout_kernel(1 << 5 | 1 << 15, 0x10_0000, 0x1000, 0, 0x10_0080);
    assert_eq!(
        refusal(&image, "", 4 * MIB).to_string(),
        "Multiboot header flags 0x8020 are required but unknown (bits 3-15 are undefined)"
    );
    // Optional bits above 16 are ignored.
    let image = aout_kernel(1 << 20, 0x10_0000, 0x1000, 0, 0x10_0080);
    loaded(&image, "", &BootInputs::default(), 4 * MIB);
}

#[test]
fn checksum_errors_name_the_values() {
    let mut image = aout_kernel(0, 0x10_0000, 0x1000, 0, 0x10_0080);
    image[0x48] ^= 1;
    assert_eq!(detect(&image), DetectedFormat::Multiboot);
    // Refused as it is detected, not run as a flat binary.
    let error = refusal(&image, "", 4 * MIB);
    assert!(matches!(
        error,
        LoadError::Multiboot(MultibootError::BadChecksum { offset: 0x40, .. })
    ));
    assert!(error
        .to_string()
        .starts_with("Multiboot header at offset 0x40: checksum 0x"));
    assert_eq!(
        refusal(&[0x90; 4096], "format=multiboot", 4 * MIB).to_string(),
        "no Multiboot header: no magic 0xe85250d6 (Multiboot2, first 32 KiB, 8-byte aligned) \
         or 0x1badb002 (Multiboot, first 8 KiB, 4-byte aligned)"
    );
    let cut = &mb1_header(0, &[])[..8];
    assert_eq!(
        refusal(cut, "format=multiboot", 4 * MIB),
        LoadError::Multiboot(MultibootError::HeaderCutShort {
            version: MultibootVersion::One,
            offset: 0,
            needed: 12
        })
    );
}

/// An a.out kernel whose header sits at file offset 0x40 with these fields.
fn aout_with(fields: [u32; 5]) -> Vec<u8> {
    let mut image = vec![0xf4; 0x1000];
    let header = mb1_header(AOUT, &fields);
    image[0x40..0x40 + header.len()].copy_from_slice(&header);
    image
}

#[test]
fn inconsistent_aout_addresses_are_refused() {
    let cases: [([u32; 5], MultibootError, &str); 5] = [
        (
            [0x10_0040, 0x10_0080, 0, 0, 0x10_0080],
            MultibootError::LoadAddressAboveHeader {
                load_addr: 0x10_0080,
                header_addr: 0x10_0040,
            },
            "load_addr 0x100080 is above header_addr 0x100040",
        ),
        (
            [0x10_0040, 0xf_0000, 0, 0, 0x10_0000],
            MultibootError::LoadAddressBeforeFile {
                load_addr: 0xf_0000,
                header_addr: 0x10_0040,
                offset: 0x40,
            },
            "load_addr 0xf0000 is 0x10040 bytes below header_addr 0x100040, but the header \
             is only 0x40 bytes into the file",
        ),
        (
            [0x10_0040, 0x10_0000, 0xf_0000, 0, 0x10_0000],
            MultibootError::LoadEndBelowLoad {
                load_end_addr: 0xf_0000,
                load_addr: 0x10_0000,
            },
            "load_end_addr 0xf0000 is below load_addr 0x100000",
        ),
        (
            [0x10_0040, 0x10_0000, 0x10_2000, 0, 0x10_0000],
            MultibootError::LoadEndPastFile {
                load_end_addr: 0x10_2000,
                file_end: 0x10_1000,
            },
            "load_end_addr 0x102000 is past the end of the file, which ends at 0x101000",
        ),
        (
            [0x10_0040, 0x10_0000, 0x10_0800, 0x10_0400, 0x10_0000],
            MultibootError::BssEndBelowLoadEnd {
                bss_end_addr: 0x10_0400,
                load_end: 0x10_0800,
            },
            "bss_end_addr 0x100400 is below the end of the loaded bytes 0x100800",
        ),
    ];
    for (fields, expected, text) in cases {
        let error = refusal(&aout_with(fields), "", 4 * MIB);
        assert_eq!(error, LoadError::Multiboot(expected));
        assert_eq!(error.to_string(), text);
    }
    assert_eq!(
        refusal(
            &aout_with([0x10_0040, 0x10_0000, 0x10_0020, 0, 0x10_0000]),
            "",
            4 * MIB
        )
        .to_string(),
        "header_addr 0x100040 is outside the loaded bytes 0x100000..0x100020"
    );
}

#[test]
fn aout_addresses_outside_ram_are_refused() {
    let image = aout_with([0x40_0040, 0x40_0000, 0, 0, 0x40_0000]);
    assert_eq!(
        refusal(&image, "", 4 * MIB).to_string(),
        "image 0x400000..0x401000 does not fit in 4 MiB of guest RAM"
    );
    let image = aout_with([0x10_0040, 0x10_0000, 0, 0x50_0000, 0x10_0000]);
    assert!(matches!(
        refusal(&image, "", 4 * MIB),
        LoadError::OutsideRam { end: 0x50_0000, .. }
    ));
    let image = aout_with([0x10_0040, 0x10_0000, 0, 0, 0x50_0000]);
    assert_eq!(
        refusal(&image, "", 4 * MIB).to_string(),
        "entry point 0x500000 is outside the 4 MiB of guest RAM"
    );
    let image = aout_with([0x10_0040, 0x10_0000, 0, 0, 0x20_0000]);
    assert_eq!(
        refusal(&image, "", 4 * MIB),
        LoadError::EntryOutsideImage { entry: 0x20_0000 }
    );
    // Loaded where the boot information must go.
    let image = aout_with([0x3f_e040, 0x3f_e000, 0, 0, 0x3f_e000]);
    assert!(matches!(
        refusal(&image, "", 4 * MIB),
        LoadError::BootAreaTaken { .. }
    ));
}

#[test]
fn neither_aout_nor_elf_is_refused() {
    let mut image = vec![0xf4; 0x100];
    image[..12].copy_from_slice(&mb1_header(0, &[]));
    assert_eq!(
        refusal(&image, "", 4 * MIB).to_string(),
        "no a.out addresses in the Multiboot header, and not a usable ELF: \
         not an ELF file (no \\x7fELF magic)"
    );
}

#[test]
fn a_low_kernel_keeps_the_bios_data_area_it_covers() {
    let image = aout_with([0x40, 0, 0, 0, 0x80]);
    let (state, memory) = loaded(&image, "", &BootInputs::default(), 4 * MIB);
    assert!(state.bios_data.is_empty());
    assert_eq!(memory.read(0x40e, 2), [0xf4, 0xf4]);
}

#[test]
fn a_callers_memory_map_is_reported_with_the_boot_area_reserved() {
    let image = aout_kernel(0, 0x10_0000, 0x1000, 0, 0x10_0080);
    let map = [
        MemoryRegion {
            start: 0,
            length: 0x8_0000,
            kind: MEMORY_AVAILABLE,
        },
        MemoryRegion {
            start: MIB,
            length: 2 * MIB,
            kind: MEMORY_AVAILABLE,
        },
        MemoryRegion {
            start: 3 * MIB,
            length: MIB,
            kind: MEMORY_ACPI_RECLAIMABLE,
        },
    ];
    let inputs = BootInputs {
        memory_map: Some(&map),
        ..BootInputs::default()
    };
    let (state, memory) = loaded(&image, "", &inputs, 4 * MIB);
    let info = state.rbx;
    assert_eq!(read_u32(&memory, info + 4), 512, "mem_lower");
    assert_eq!(read_u32(&memory, info + 8), 2048, "mem_upper");
    assert_eq!(read_u32(&memory, info + 44), 4 * 24, "ACPI range split");
    assert_eq!(memory.read(0x413, 2), 512u16.to_le_bytes());
}

// ---- Multiboot2 ----

fn info_tags(memory: &FakeMemory, info: u64) -> Vec<(u32, u64, u32)> {
    let total = read_u32(memory, info);
    let mut tags = Vec::new();
    let mut at = info + 8;
    loop {
        let (kind, size) = (read_u32(memory, at), read_u32(memory, at + 4));
        tags.push((kind, at, size));
        if kind == 0 {
            assert_eq!(size, 8);
            break;
        }
        at = (at + u64::from(size)).next_multiple_of(8);
    }
    assert_eq!(u64::from(total), at + 8 - info, "total_size");
    tags
}

fn request(types: &[u32]) -> Vec<u8> {
    words(types)
}

#[test]
fn multiboot2_elf_kernel_gets_its_tags() {
    let header = mb2_header(
        0,
        &[
            (1, 0, request(&[1, 2, 3, 4, 6, 15])),
            (6, 0, Vec::new()),
            (5, 1, words(&[1024, 768, 32])),
        ],
    );
    let image = elf_with_header(ElfBuilder::elf32(0x10_0000), &header);
    let modules = data_modules();
    let rsdp: Vec<u8> = (0..36).collect();
    let inputs = BootInputs {
        modules: &modules[..1],
        rsdp: Some(&rsdp),
        ..BootInputs::default()
    };
    let (state, memory) = loaded(&image, "modules=rootfs -- quiet", &inputs, 8 * MIB);
    assert_eq!(state.format, DetectedFormat::Multiboot2);
    assert_eq!(state.rax, 0x36d7_6289);
    assert_eq!(state.rbx % 8, 0);
    let tags = info_tags(&memory, state.rbx);
    let kinds: Vec<u32> = tags.iter().map(|t| t.0).collect();
    assert_eq!(kinds, [1, 2, 3, 4, 6, 15, 0]);
    let tag = |kind: u32| tags.iter().find(|t| t.0 == kind).unwrap().1;
    assert_eq!(read_string(&memory, tag(1) + 8), "quiet");
    assert_eq!(read_string(&memory, tag(2) + 8), "tessera");
    let module = tag(3);
    assert_eq!(read_u32(&memory, module + 8), 0x10_2000);
    assert_eq!(read_u32(&memory, module + 12), 0x10_2000 + 5000);
    assert_eq!(read_string(&memory, module + 16), "rootfs ro");
    assert_eq!(read_u32(&memory, tag(4) + 8), 639);
    let map = tag(6);
    assert_eq!(read_u32(&memory, map + 8), 24, "entry_size");
    assert_eq!(read_u32(&memory, map + 12), 0, "entry_version");
    let entries = (read_u32(&memory, map + 4) - 16) / 24;
    assert_eq!(entries, 4);
    assert_eq!(read_u64(&memory, map + 16 + 24 * 2), MIB);
    assert_eq!(
        read_u32(&memory, map + 16 + 24 * 3 + 16),
        2,
        "boot area reserved"
    );
    assert_eq!(memory.read(tag(15) + 8, 36), rsdp);
}

#[test]
fn multiboot2_address_and_entry_tags() {
    // The header at file offset 0x40, loaded from the file's start (-1).
    let header = mb2_header(
        0,
        &[
            (2, 0, words(&[0x10_0040, u32::MAX, 0, 0x10_4000])),
            (3, 0, words(&[0x10_0100])),
        ],
    );
    let mut image = vec![0xf4; 0x1000];
    image[0x40..0x40 + header.len()].copy_from_slice(&header);
    let (state, memory) = loaded(&image, "", &BootInputs::default(), 4 * MIB);
    assert_eq!(state.loaded, [(0x10_0000, 0x4000)]);
    assert_eq!(state.entry, 0x10_0100);
    assert_eq!(memory.read(0x10_0000, 0x1000), image);
    let tags = info_tags(&memory, state.rbx);
    assert!(
        !tags.iter().any(|t| t.0 == 14 || t.0 == 15),
        "no RSDP given"
    );

    let without_entry = mb2_header(0, &[(2, 0, words(&[0x10_0040, u32::MAX, 0, 0]))]);
    image[0x40..0x40 + without_entry.len()].copy_from_slice(&without_entry);
    assert_eq!(
        refusal(&image, "", 4 * MIB).to_string(),
        "Multiboot2 address tag without an entry address tag: no entry point"
    );
}

fn mb2_refusal(tags: &[(u16, u16, Vec<u8>)]) -> LoadError {
    let image = elf_with_header(ElfBuilder::elf32(0x10_0000), &mb2_header(0, tags));
    refusal(&image, "", 4 * MIB)
}

fn mb2_loads(tags: &[(u16, u16, Vec<u8>)]) {
    let image = elf_with_header(ElfBuilder::elf32(0x10_0000), &mb2_header(0, tags));
    loaded(&image, "", &BootInputs::default(), 4 * MIB);
}

#[test]
fn multiboot2_requests_tessera_cannot_meet() {
    assert_eq!(
        mb2_refusal(&[(1, 0, request(&[1, 8]))]).to_string(),
        "Multiboot2 information request requires tag 8 (framebuffer information), which \
         tessera cannot provide"
    );
    assert_eq!(
        mb2_refusal(&[(1, 0, request(&[15]))]),
        LoadError::Multiboot(MultibootError::InformationUnavailable(15)),
        "no RSDP given"
    );
    mb2_loads(&[(1, 1, request(&[8, 15]))]);
    assert_eq!(
        mb2_refusal(&[(5, 0, words(&[1024, 768, 32]))]).to_string(),
        "Multiboot2 header tag 5 (framebuffer) is required, and tessera cannot honour it"
    );
    assert_eq!(
        mb2_refusal(&[(4, 0, words(&[3]))]),
        LoadError::Multiboot(MultibootError::ConsoleRequired)
    );
    mb2_loads(&[(4, 0, words(&[2])), (4, 1, words(&[3]))]);
    assert_eq!(
        mb2_refusal(&[(42, 0, Vec::new())]),
        LoadError::Multiboot(MultibootError::UnsupportedTag(42))
    );
    mb2_loads(&[
        (42, 1, Vec::new()),
        (7, 0, Vec::new()),
        (10, 0, words(&[0; 4])),
    ]);
}

#[test]
fn multiboot2_header_errors() {
    let elf = || ElfBuilder::elf32(0x10_0000);
    let image = elf_with_header(elf(), &mb2_header(4, &[]));
    assert_eq!(
        refusal(&image, "", 4 * MIB).to_string(),
        "Multiboot2 architecture 4 is not 0 (i386)"
    );
    // A tag whose size runs past header_length.
    let mut header = mb2_header(0, &[(3, 0, words(&[0x10_0000]))]);
    header[20..24].copy_from_slice(&0x100u32.to_le_bytes());
    let image = elf_with_header(elf(), &header);
    assert!(matches!(
        refusal(&image, "", 4 * MIB),
        LoadError::Multiboot(MultibootError::BadTag {
            tag: 3,
            size: 0x100,
            ..
        })
    ));
    // header_length that leaves out the end tag.
    let mut header = mb2_header(0, &[]);
    let length = 16u32;
    header[8..12].copy_from_slice(&length.to_le_bytes());
    let checksum = 0u32.wrapping_sub(MB2_MAGIC).wrapping_sub(length);
    header[12..16].copy_from_slice(&checksum.to_le_bytes());
    let image = elf_with_header(elf(), &header);
    assert_eq!(
        refusal(&image, "", 4 * MIB),
        LoadError::Multiboot(MultibootError::NoEndTag)
    );
    // A bad checksum is reported when no header is valid.
    let mut header = mb2_header(0, &[]);
    header[12] ^= 0x10;
    let image = elf_with_header(elf(), &header);
    assert_eq!(detect(&image), DetectedFormat::Multiboot2);
    assert!(matches!(
        refusal(&image, "", 4 * MIB),
        LoadError::Multiboot(MultibootError::BadChecksum {
            version: MultibootVersion::Two,
            ..
        })
    ));
}
