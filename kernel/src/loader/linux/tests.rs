//! The Linux loader against hand-built bzImages: a boot sector and setup
//! sectors holding a setup header with the fields under test, then a
//! protected-mode "kernel" of recognisable bytes.

use super::super::testing::{BzImage, FakeMemory};
use super::super::tests::{assert_sound, untouched, MIB};
use super::super::{load_with, BootInputs, BootState, DataModule, LoadError, MemoryRegion};
use super::*;
use crate::options::ModuleOptions;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

pub(in super::super) fn boot(
    image: &[u8],
    text: &str,
    inputs: &BootInputs,
    ram: u64,
) -> (Result<BootState, LoadError>, FakeMemory) {
    let mut memory = FakeMemory::new(ram);
    let options = ModuleOptions::parse(text).unwrap();
    let result = load_with(image, &options, inputs, &mut memory);
    match &result {
        Ok(state) => assert_sound(state, &memory),
        Err(_) => assert!(untouched(&memory), "a refused image wrote guest memory"),
    }
    (result, memory)
}

fn booted(image: &[u8], text: &str, inputs: &BootInputs, ram: u64) -> (BootState, FakeMemory) {
    let (result, memory) = boot(image, text, inputs, ram);
    (result.unwrap_or_else(|error| panic!("{}", error)), memory)
}

fn refused(image: &[u8], text: &str, inputs: &BootInputs, ram: u64) -> LinuxError {
    match boot(image, text, inputs, ram).0 {
        Err(LoadError::Linux(error)) => error,
        other => panic!("{:?}", other),
    }
}

fn u32_in(memory: &FakeMemory, gpa: u64) -> u32 {
    u32::from_le_bytes(memory.read(gpa, 4).try_into().unwrap())
}

fn e820(memory: &FakeMemory) -> Vec<MemoryRegion> {
    let count = memory.read(ZERO_PAGE_ADDRESS + 0x1e8, 1)[0] as u64;
    (0..count)
        .map(|n| {
            let at = ZERO_PAGE_ADDRESS + 0x2d0 + 20 * n;
            MemoryRegion {
                start: memory.read_u64(at),
                length: memory.read_u64(at + 8),
                kind: u32_in(memory, at + 16),
            }
        })
        .collect()
}

fn initrd_module(bytes: &[u8]) -> [DataModule<'_>; 1] {
    [DataModule {
        name: "rootfs",
        bytes,
        cmdline: "",
    }]
}

const NONE: BootInputs = BootInputs {
    modules: &[],
    memory_map: None,
    rsdp: None,
    rsdp_address: None,
};

#[test]
fn zero_page_from_a_hand_built_header() {
    let bz = BzImage::new();
    let image = bz.build();
    let inputs = BootInputs {
        rsdp_address: Some(0xe1000),
        ..NONE
    };
    let (state, memory) = booted(&image, "mem=64M -- console=ttyS0 quiet", &inputs, 64 * MIB);
    assert_eq!(state.format, DetectedFormat::Linux);
    assert_eq!(state.mode, CpuMode::Long);
    assert_eq!(
        state.entry, 0x100_0200,
        "startup_64 at pref_address + 0x200"
    );
    assert_eq!(u64::from(state.rsi), ZERO_PAGE_ADDRESS);
    assert_eq!((state.rax, state.rbx), (0, 0));
    assert_eq!(state.loaded[0], (0x100_0000, 0x1000));
    assert!(state.modules.is_empty());
    // The protected-mode kernel is the file after 1 + setup_sects sectors.
    assert_eq!(
        memory.read(0x100_0000, 0x1000),
        (0..0x1000).map(BzImage::payload_byte).collect::<Vec<u8>>()
    );

    let page = memory.read(ZERO_PAGE_ADDRESS, 4096);
    let written = [
        (0x1fa, 2), // vid_mode
        (0x210, 1), // type_of_loader
        (0x214, 4), // code32_start
        (0x218, 8), // ramdisk_image, ramdisk_size
        (0x228, 4), // cmd_line_ptr
        (0x23c, 4), // hardware_subarch
        (0x250, 8), // setup_data
    ];
    for offset in 0x1f1..0x26c {
        if !written
            .iter()
            .any(|&(at, len)| (at..at + len).contains(&offset))
        {
            assert_eq!(page[offset], image[offset], "header byte {:#x}", offset);
        }
    }
    assert_eq!(&page[0x202..0x206], b"HdrS");
    assert_eq!(page[0x1ef], 0, "the sentinel stays 0");
    assert!(
        page[0x26c..0x290].iter().all(|&b| b == 0),
        "past the header's end"
    );
    assert_eq!(u16::from_le_bytes([page[0x1fa], page[0x1fb]]), 0xffff);
    assert_eq!(page[0x210], 0xff);
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x214), 0x100_0000);
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x228), 0x8000);
    assert_eq!(
        u32_in(&memory, ZERO_PAGE_ADDRESS + 0x0c8),
        0,
        "ext_cmd_line_ptr"
    );
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x218), 0, "no initrd");
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x21c), 0);
    assert_eq!(
        memory.read_u64(ZERO_PAGE_ADDRESS + 0x070),
        0xe1000,
        "acpi_rsdp_addr"
    );
    // Everything else outside the header and the e820 table stays zero.
    let entries = usize::from(page[0x1e8]);
    for (offset, &byte) in page.iter().enumerate() {
        let known = offset == 0x1e8
            || (0x070..0x078).contains(&offset)
            || (0x1f1..0x290).contains(&offset)
            || (0x2d0..0x2d0 + 20 * entries).contains(&offset);
        assert!(known || byte == 0, "byte {:#x} is {:#x}", offset, byte);
    }
}

#[test]
fn acpi_rsdp_addr_only_for_protocol_2_14() {
    let image = BzImage {
        version: 0x020d,
        ..BzImage::new()
    }
    .build();
    let inputs = BootInputs {
        rsdp_address: Some(0xe1000),
        ..NONE
    };
    let (_, memory) = booted(&image, "mem=64M", &inputs, 64 * MIB);
    assert_eq!(memory.read_u64(ZERO_PAGE_ADDRESS + 0x070), 0);
}

#[test]
fn the_gdt_and_the_identity_map_are_the_protocols() {
    let image = BzImage::new().build();
    let (state, mut memory) = booted(&image, "mem=64M", &NONE, 64 * MIB);
    let gdt: Vec<u64> = (0..4)
        .map(|n| memory.read_u64(state.gdt_base + 8 * n))
        .collect();
    assert_eq!(
        gdt[0x10 / 8],
        0x00af_9b00_0000_ffff,
        "__BOOT_CS: 64-bit code"
    );
    assert_eq!(gdt[0x18 / 8], 0x00cf_9300_0000_ffff, "__BOOT_DS: flat data");
    assert_eq!(super::super::CODE64_SELECTOR, 0x10);
    assert_eq!(super::super::DATA_SELECTOR, 0x18);
    // The kernel's init_size, the zero page and the command line are mapped.
    use crate::mm::page_tables::{HostPaging, PageTables};
    let mut tables = super::super::testing::ExistingTables {
        memory: &mut memory,
        root: Some(state.cr3),
    };
    let walk = PageTables::<HostPaging>::new(&mut tables).unwrap();
    for address in [ZERO_PAGE_ADDRESS, CMDLINE_ADDRESS, 0x100_0200, 0x13f_ffff] {
        assert_eq!(
            walk.translate(&mut tables, address)
                .map(|(physical, _)| physical),
            Some(address),
            "{:#x}",
            address
        );
    }
}

#[test]
fn e820_is_the_firmware_map_with_the_boot_area_reserved() {
    let ram = 64 * MIB;
    let firmware: Vec<MemoryRegion> =
        crate::firmware::memory_map(&crate::firmware::PlatformLayout::DEFAULT, ram, 0)
            .iter()
            .map(|region| MemoryRegion {
                start: region.start,
                length: region.length,
                kind: region.kind.code(),
            })
            .collect();
    let inputs = BootInputs {
        memory_map: Some(&firmware),
        ..NONE
    };
    let (state, memory) = booted(&BzImage::new().build(), "mem=64M", &inputs, ram);
    let (area, area_length) = state.boot_area;
    assert_eq!(area + area_length, ram);
    let map = e820(&memory);
    assert_eq!(map, with_reserved(&firmware, area, ram));
    let find = |start: u64| map.iter().find(|r| r.start == start).copied().unwrap();
    assert_eq!(find(0).kind, 1);
    assert_eq!(find(0).length, 0x9_fc00);
    assert_eq!(find(0x9_fc00).kind, 2, "the EBDA and MP table");
    assert_eq!(find(0xe_0000).kind, 4, "the FACS, ACPI NVS");
    assert_eq!(find(0xe_1000).kind, 3, "the ACPI tables, reclaimable");
    assert_eq!(
        find(MIB),
        MemoryRegion {
            start: MIB,
            length: area - MIB,
            kind: 1
        }
    );
    assert_eq!(
        find(area),
        MemoryRegion {
            start: area,
            length: area_length,
            kind: 2
        }
    );
    assert_eq!(find(0xfec0_0000).kind, 2, "the IOAPIC page");
    assert_eq!(find(0xfee0_0000).kind, 2, "the local APIC page");
}

#[test]
fn without_a_map_e820_is_a_pcs() {
    let (state, memory) = booted(&BzImage::new().build(), "mem=32M", &NONE, 32 * MIB);
    let (area, _) = state.boot_area;
    assert_eq!(
        e820(&memory),
        [
            MemoryRegion {
                start: 0,
                length: 0x9_fc00,
                kind: 1
            },
            MemoryRegion {
                start: 0x9_fc00,
                length: MIB - 0x9_fc00,
                kind: 2
            },
            MemoryRegion {
                start: MIB,
                length: area - MIB,
                kind: 1
            },
            MemoryRegion {
                start: area,
                length: 32 * MIB - area,
                kind: 2
            },
        ]
    );
}

#[test]
fn too_many_map_regions_are_refused() {
    let map: Vec<MemoryRegion> = (0..200)
        .map(|n| MemoryRegion {
            start: n * 0x1000,
            length: 0x1000,
            kind: 1,
        })
        .collect();
    let inputs = BootInputs {
        memory_map: Some(&map),
        ..NONE
    };
    assert_eq!(
        refused(&BzImage::new().build(), "mem=64M", &inputs, 64 * MIB),
        LinuxError::TooManyMemoryRegions { count: 201 }
    );
}

#[test]
fn command_line_is_placed_and_cut_to_cmdline_size() {
    let image = BzImage::new().build();
    let (_, memory) = booted(&image, "mem=64M -- console=ttyS0 -- x", &NONE, 64 * MIB);
    assert_eq!(
        memory.read(CMDLINE_ADDRESS, 22),
        b"console=ttyS0 -- x\0\0\0\0"
    );

    let short = BzImage {
        cmdline_size: 7,
        ..BzImage::new()
    }
    .build();
    let (state, memory) = booted(&short, "mem=64M -- console=ttyS0", &NONE, 64 * MIB);
    assert_eq!(memory.read(CMDLINE_ADDRESS, 9), b"console\0\0");
    assert!(state.loaded.contains(&(CMDLINE_ADDRESS, 8)));

    let (state, memory) = booted(&image, "mem=64M", &NONE, 64 * MIB);
    assert_eq!(
        memory.read(CMDLINE_ADDRESS, 1),
        [0],
        "an empty line is a NUL"
    );
    assert!(state.loaded.contains(&(CMDLINE_ADDRESS, 1)));

    // However large cmdline_size claims to be, the line stops before the EBDA.
    let long: std::string::String = "x".repeat(0x10_0000);
    assert_eq!(
        command_line(&long, u32::MAX).len() as u64,
        CMDLINE_END - CMDLINE_ADDRESS
    );
}

#[test]
fn kernel_goes_to_pref_address_or_is_relocated() {
    // 4 MiB at 16 MiB fits 32 MiB of RAM.
    let (state, _) = booted(&BzImage::new().build(), "mem=32M", &NONE, 32 * MIB);
    assert_eq!(state.loaded[0].0, 0x100_0000);
    // In 16 MiB it does not: relocated to the first 2 MiB multiple from 1 MiB.
    let (state, _) = booted(&BzImage::new().build(), "mem=16M", &NONE, 16 * MIB);
    assert_eq!(state.loaded[0].0, 0x20_0000);
    assert_eq!(state.entry, 0x20_0200);
    // An alignment of 1 MiB lets it start at 1 MiB.
    let image = BzImage {
        kernel_alignment: 0x10_0000,
        pref_address: 0x4000_0000,
        ..BzImage::new()
    }
    .build();
    let (state, _) = booted(&image, "mem=16M", &NONE, 16 * MIB);
    assert_eq!(state.loaded[0].0, MIB);
}

#[test]
fn a_kernel_that_does_not_fit_is_refused() {
    let fixed = BzImage {
        relocatable: 0,
        ..BzImage::new()
    }
    .build();
    let error = refused(&fixed, "mem=16M", &NONE, 16 * MIB);
    let LinuxError::KernelDoesNotFit {
        start: 0x100_0000,
        needed: 0x40_0000,
        relocatable: false,
        limit,
    } = error
    else {
        panic!("{:?}", error)
    };
    assert!(limit < 16 * MIB);
    assert!(error.to_string().starts_with(
        "the kernel needs 4 MiB (init_size) from 0x1000000 (pref_address; it is not relocatable)"
    ));
    // init_size larger than RAM.
    let huge = BzImage {
        init_size: 0x800_0000,
        ..BzImage::new()
    }
    .build();
    assert!(matches!(
        refused(&huge, "mem=64M", &NONE, 64 * MIB),
        LinuxError::KernelDoesNotFit {
            start: 0x20_0000,
            relocatable: true,
            ..
        }
    ));
    // A file larger than init_size claims needs its own size.
    let big = BzImage {
        init_size: 0x1000,
        payload: 0x30_0000,
        ..BzImage::new()
    }
    .build();
    assert!(matches!(
        refused(&big, "mem=4M", &NONE, 4 * MIB),
        LinuxError::KernelDoesNotFit {
            needed: 0x30_0000,
            ..
        }
    ));
    let odd = BzImage {
        kernel_alignment: 0x30_0000,
        ..BzImage::new()
    }
    .build();
    assert_eq!(
        refused(&odd, "mem=16M", &NONE, 16 * MIB),
        LinuxError::BadAlignment {
            alignment: 0x30_0000
        }
    );
}

#[test]
fn a_kernel_stays_below_4_gib_unless_it_may_go_above() {
    let high = BzImage {
        pref_address: 0x1_0000_0000,
        ..BzImage::new()
    };
    let (state, _) = booted(&high.build(), "mem=8G", &NONE, 8 << 30);
    assert_eq!(state.loaded[0].0, 0x20_0000, "relocated below 4 GiB");
    let above = BzImage {
        xloadflags: 0x03,
        ..high
    };
    let (state, _) = booted(&above.build(), "mem=8G", &NONE, 8 << 30);
    assert_eq!(state.loaded[0].0, 0x1_0000_0000);
}

#[test]
fn initrd_goes_as_high_as_it_may() {
    let initrd = vec![0x5a; 0x1234];
    let modules = initrd_module(&initrd);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    let image = BzImage::new().build();
    let (state, memory) = booted(&image, "mem=64M initrd=rootfs", &inputs, 64 * MIB);
    let (area, _) = state.boot_area;
    // Page-aligned, ending at most at the boot area.
    let start = (area - 0x1234) & !0xfff;
    assert_eq!(state.modules, [(start, 0x1234)]);
    assert_eq!(memory.read(start, 0x1234), initrd);
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x218), start as u32);
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x21c), 0x1234);
    assert_eq!(
        u32_in(&memory, ZERO_PAGE_ADDRESS + 0x0c0),
        0,
        "ext_ramdisk_image"
    );
    assert_eq!(
        u32_in(&memory, ZERO_PAGE_ADDRESS + 0x0c4),
        0,
        "ext_ramdisk_size"
    );

    // initrd_addr_max below the top of RAM: the initrd's last byte is at most it.
    let capped = BzImage {
        initrd_addr_max: 0x200_0fff,
        ..BzImage::new()
    }
    .build();
    let (state, _) = booted(&capped, "mem=64M initrd=rootfs", &inputs, 64 * MIB);
    let [(start, size)] = state.modules[..] else {
        panic!("{:x?}", state.modules)
    };
    assert_eq!(start, 0x1ff_f000);
    assert!(
        start + size - 1 <= 0x200_0fff,
        "the last byte is at most initrd_addr_max"
    );
}

#[test]
fn initrd_stays_below_4_gib_with_lots_of_ram() {
    let initrd = vec![1; 0x2000];
    let modules = initrd_module(&initrd);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    let image = BzImage {
        initrd_addr_max: u32::MAX,
        xloadflags: 0x03,
        ..BzImage::new()
    }
    .build();
    let (state, memory) = booted(&image, "mem=8G initrd=rootfs", &inputs, 8 << 30);
    assert_eq!(state.modules, [((1 << 32) - 0x2000, 0x2000)]);
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x0c0), 0);
}

#[test]
fn initrd_moves_below_the_kernels_init_size_or_is_refused() {
    let initrd = vec![2; 0x10_0000];
    let modules = initrd_module(&initrd);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    // initrd_addr_max ends inside [16 MiB, 20 MiB): below the kernel it goes.
    let image = BzImage {
        initrd_addr_max: 0x120_0000,
        ..BzImage::new()
    }
    .build();
    let (state, _) = booted(&image, "mem=64M initrd=rootfs", &inputs, 64 * MIB);
    assert_eq!(state.modules, [(0xf0_0000, 0x10_0000)]);
    // With the kernel relocated to 2 MiB, 1 MiB just fits below it...
    let low = BzImage {
        initrd_addr_max: 0x30_0000,
        ..BzImage::new()
    }
    .build();
    let (state, _) = booted(&low, "mem=16M initrd=rootfs", &inputs, 16 * MIB);
    assert_eq!(state.loaded[0].0, 0x20_0000);
    assert_eq!(state.modules, [(MIB, MIB)]);
    // ...and a byte more does not.
    let initrd = vec![2; 0x10_0001];
    let modules = initrd_module(&initrd);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    let error = refused(&low, "mem=16M initrd=rootfs", &inputs, 16 * MIB);
    assert_eq!(
        error,
        LinuxError::InitrdDoesNotFit {
            size: 0x10_0001,
            limit: 0x30_0001,
            kernel: (0x20_0000, 0x60_0000)
        }
    );
    assert_eq!(
        error.to_string(),
        "the initrd (1048577 bytes) does not fit page-aligned between 1 MiB and 0x300001 \
         (initrd_addr_max, the page tables or 4 GiB) outside the kernel's 0x200000..0x600000 \
         (init_size): give it more mem="
    );
    // Larger than RAM.
    let huge = vec![0; 0x100_0000];
    let modules = initrd_module(&huge);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    assert!(matches!(
        refused(
            &BzImage::new().build(),
            "mem=16M initrd=rootfs",
            &inputs,
            16 * MIB
        ),
        LinuxError::InitrdDoesNotFit { .. }
    ));
}

#[test]
fn initrd_must_name_a_data_module() {
    let initrd = [1u8; 16];
    let modules = initrd_module(&initrd);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    let error = refused(
        &BzImage::new().build(),
        "mem=64M initrd=other",
        &inputs,
        64 * MIB,
    );
    assert_eq!(
        error.to_string(),
        "initrd= names `other`, which is not a data module (role=data) of this boot"
    );
    // An empty data module is no initrd.
    let modules = initrd_module(&[]);
    let inputs = BootInputs {
        modules: &modules,
        ..NONE
    };
    let (state, memory) = booted(
        &BzImage::new().build(),
        "mem=64M initrd=rootfs",
        &inputs,
        64 * MIB,
    );
    assert!(state.modules.is_empty());
    assert_eq!(u32_in(&memory, ZERO_PAGE_ADDRESS + 0x218), 0);
}

#[test]
fn initrd_and_modules_are_for_their_own_formats() {
    let elf = super::super::tests::kernel64().build();
    let (result, _) = boot(&elf, "mem=4M initrd=rootfs", &NONE, 4 * MIB);
    assert_eq!(
        result.unwrap_err().to_string(),
        "initrd= is for Linux kernels, and this is a ELF64"
    );
    let (result, _) = boot(
        &BzImage::new().build(),
        "mem=64M modules=a",
        &NONE,
        64 * MIB,
    );
    assert_eq!(
        result.unwrap_err(),
        LoadError::ModulesNeedMultiboot(DetectedFormat::Linux)
    );
    for option in ["load=0x100000", "entry=0x100000", "mode=long"] {
        let text = std::format!("mem=64M {}", option);
        let error = refused(&BzImage::new().build(), &text, &NONE, 64 * MIB);
        assert!(
            matches!(error, LinuxError::OptionNotForLinux { .. }),
            "{option}"
        );
    }
}

#[test]
fn header_refusals_name_the_reason() {
    let check = |bz: BzImage, expected: LinuxError, message: &str| {
        let error = refused(&bz.build(), "mem=64M", &NONE, 64 * MIB);
        assert_eq!(error, expected);
        assert!(error.to_string().starts_with(message), "{}", error);
    };
    check(
        BzImage {
            version: 0x0202,
            ..BzImage::new()
        },
        LinuxError::TooOld { version: 0x0202 },
        "protocol 2.02 kernel: too old for 64-bit boot",
    );
    check(
        BzImage {
            version: 0x020b,
            ..BzImage::new()
        },
        LinuxError::TooOld { version: 0x020b },
        "protocol 2.11 kernel: too old",
    );
    check(
        BzImage {
            xloadflags: 0,
            ..BzImage::new()
        },
        LinuxError::No64BitEntry { version: 0x020f },
        "protocol 2.15 kernel without a 64-bit entry point (XLF_KERNEL_64",
    );
    check(
        BzImage {
            loadflags: 0,
            ..BzImage::new()
        },
        LinuxError::NotLoadedHigh,
        "a zImage",
    );
    check(
        BzImage {
            header_end: 0x260,
            ..BzImage::new()
        },
        LinuxError::BadHeaderLength { end: 0x260 },
        "Linux setup header ends at 0x260",
    );
    check(
        BzImage {
            payload: 0x200,
            ..BzImage::new()
        },
        LinuxError::NoKernel { length: 0x200 },
        "the protected-mode kernel after the setup sectors is 0x200 bytes",
    );
    // Cut inside the header, and inside the setup sectors.
    let image = BzImage::new().build();
    assert_eq!(
        refused(&image[..0x250], "mem=64M", &NONE, 64 * MIB),
        LinuxError::HeaderCutShort {
            needed: 0x26c,
            length: 0x250
        }
    );
    assert_eq!(
        refused(&image[..0x600], "mem=64M", &NONE, 64 * MIB),
        LinuxError::SetupCutShort {
            setup_sects: 3,
            length: 0x600
        }
    );
    assert_eq!(
        refused(&image[..0x204], "format=linux mem=64M", &NONE, 64 * MIB),
        LinuxError::HeaderCutShort {
            needed: 0x206,
            length: 0x204
        }
    );
}

#[test]
fn setup_sects_zero_means_four() {
    let image = BzImage {
        setup_sects: 0,
        ..BzImage::new()
    }
    .build();
    assert_eq!(image.len(), 5 * 512 + 0x1000);
    let (_, memory) = booted(&image, "mem=64M", &NONE, 64 * MIB);
    assert_eq!(memory.read(0x100_0000, 1), [BzImage::payload_byte(0)]);
}

#[test]
fn version_names() {
    assert_eq!(
        LinuxError::TooOld { version: 0x020c }.to_string(),
        "protocol 2.12 kernel: too old for 64-bit boot (tessera needs boot protocol 2.12 or later)"
    );
}
