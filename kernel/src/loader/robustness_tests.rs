//! Robustness of `load` against corrupt images: every prefix of a valid ELF,
//! thousands of deterministic mutations of one, random bytes, and every byte
//! of Multiboot and Multiboot2 headers flipped, with and without a checksum
//! that still adds up, and bzImages cut short, with every setup header byte
//! mutated and with random placement fields. Whatever
//! the outcome, a successful load must keep every promise `assert_sound`
//! checks, and a refusal must leave guest memory untouched.

use super::multiboot::tests::{aout_kernel, elf_with_header, mb1_header, mb2_header};
use super::testing::{ElfBuilder, FakeMemory};
use super::tests::{assert_sound, kernel64, load_into, untouched, KIB, MIB};
use super::*;
use std::vec::Vec;

/// A small xorshift generator: deterministic, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const OPTION_SETS: [&str; 6] = [
    "",
    "format=elf",
    "format=raw",
    "mode=real",
    "mode=protected entry=0x100000",
    "mode=long load=0x1000",
];

fn robust_load(image: &[u8], text: &str, ram: u64) -> Result<BootState, LoadError> {
    let (result, memory) = load_into(image, text, ram);
    match &result {
        Ok(state) => assert_sound(state, &memory),
        Err(_) => assert!(untouched(&memory), "a refused image wrote guest memory"),
    }
    result
}

fn samples() -> [Vec<u8>; 2] {
    [
        kernel64().build(),
        ElfBuilder::elf32(0x10_0000)
            .segment(0x10_0000, &[0x90; 0x40], 0x2000)
            .note()
            .segment(0x8000, &[0x42; 0x10], 0x10)
            .build(),
    ]
}

#[test]
fn every_prefix_of_an_elf_is_refused_without_panic() {
    for image in samples() {
        for length in 0..image.len() {
            let prefix = &image[..length];
            for text in OPTION_SETS {
                let _ = robust_load(prefix, text, 4 * MIB);
            }
            if length > 0 {
                assert!(
                    robust_load(prefix, "format=elf", 4 * MIB).is_err(),
                    "{}",
                    length
                );
            }
        }
        assert!(robust_load(&image, "", 4 * MIB).is_ok());
    }
}

#[test]
fn mutated_elf_images_never_panic() {
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..4000 {
        let mut image = samples()[round % 2].clone();
        // Headers and program headers are where corruption bites: aim there.
        for _ in 0..1 + random.below(4) {
            let span = if random.below(4) == 0 {
                image.len()
            } else {
                200.min(image.len())
            };
            let at = random.below(span as u64) as usize;
            image[at] = match random.below(4) {
                0 => 0,
                1 => 0xff,
                _ => random.next() as u8,
            };
        }
        if random.below(8) == 0 {
            let keep = random.below(image.len() as u64) as usize;
            image.truncate(keep);
        }
        let ram = [16 * KIB, MIB, 4 * MIB][random.below(3) as usize];
        let text = OPTION_SETS[random.below(OPTION_SETS.len() as u64) as usize];
        if robust_load(&image, text, ram).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted > 0, "some mutations must still load");
}

#[test]
fn random_bytes_never_panic() {
    let mut random = XorShift(0x2545_f491_4f6c_dd1d);
    for round in 0..2000 {
        let length = random.below(600) as usize;
        let mut image: Vec<u8> = (0..length).map(|_| random.next() as u8).collect();
        if round % 2 == 0 && length >= 5 {
            image[..4].copy_from_slice(&ELF_MAGIC);
            image[4] = 1 + (round % 4 == 0) as u8;
        }
        let text = OPTION_SETS[round % OPTION_SETS.len()];
        let _ = robust_load(&image, text, MIB);
    }
}

// ---- Multiboot ----

/// Multiboot kernels, each with the offset and length of its header.
fn multiboot_samples() -> Vec<(Vec<u8>, usize, usize)> {
    let words =
        |values: &[u32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let mb2_aout = {
        let header = mb2_header(
            0,
            &[
                (1, 0, words(&[1, 3, 6, 15])),
                (2, 0, words(&[0x10_0040, u32::MAX, 0, 0x10_4000])),
                (3, 0, words(&[0x10_0100])),
                (6, 0, Vec::new()),
            ],
        );
        let mut image = std::vec![0xf4; 0x1000];
        image[0x40..0x40 + header.len()].copy_from_slice(&header);
        (image, 0x40, header.len())
    };
    let mb2_elf = {
        let header = mb2_header(0, &[(1, 1, words(&[8])), (5, 1, words(&[0, 0, 0]))]);
        let image = elf_with_header(ElfBuilder::elf64(0x10_0000), &header);
        let at = (image.len() - 0x400).next_multiple_of(8);
        (image, at, header.len())
    };
    let mb1_elf = {
        let header = mb1_header(0b11, &[]);
        let image = elf_with_header(ElfBuilder::elf32(0x10_0000), &header);
        let at = (image.len() - 0x400).next_multiple_of(8);
        (image, at, 12)
    };
    std::vec![
        (
            aout_kernel(0b11, 0x10_0000, 0x1000, 0x10_3000, 0x10_0080),
            0x40,
            32
        ),
        mb1_elf,
        mb2_aout,
        mb2_elf,
    ]
}

/// Rewrites the checksum of the header at `at` so the fields add up again.
fn fix_checksum(image: &mut [u8], at: usize) {
    let word = |image: &[u8], n: usize| {
        u32::from_le_bytes(image[at + 4 * n..at + 4 * n + 4].try_into().unwrap())
    };
    let fields = if word(image, 0) == 0xe852_50d6 { 3 } else { 2 };
    let sum = (0..fields).fold(0u32, |sum, n| sum.wrapping_add(word(image, n)));
    image[at + 4 * fields..at + 4 * fields + 4].copy_from_slice(&sum.wrapping_neg().to_le_bytes());
}

fn robust_multiboot_load(image: &[u8], text: &str, ram: u64) -> Result<BootState, LoadError> {
    let modules = [DataModule {
        name: "rootfs",
        bytes: &[0x5a; 3000],
        cmdline: "rootfs",
    }];
    let rsdp = [0x52u8; 36];
    let inputs = BootInputs {
        modules: &modules,
        memory_map: None,
        rsdp: Some(&rsdp),
        rsdp_address: None,
    };
    let mut memory = FakeMemory::new(ram);
    let result = load_with(
        image,
        &ModuleOptions::parse(text).unwrap(),
        &inputs,
        &mut memory,
    );
    match &result {
        Ok(state) => assert_sound(state, &memory),
        Err(_) => assert!(untouched(&memory), "a refused image wrote guest memory"),
    }
    result
}

const MULTIBOOT_OPTION_SETS: [&str; 3] = ["", "format=multiboot", "modules=rootfs -- a b"];

#[test]
fn every_byte_of_a_multiboot_header_flipped_never_panics() {
    let mut accepted = 0;
    for (image, at, length) in multiboot_samples() {
        assert!(robust_multiboot_load(&image, "", 4 * MIB).is_ok());
        for offset in at..at + length {
            for flip in [0xffu8, 0x01, 0x80] {
                for fix in [false, true] {
                    let mut mutated = image.clone();
                    mutated[offset] ^= flip;
                    if fix {
                        fix_checksum(&mut mutated, at);
                    }
                    for text in MULTIBOOT_OPTION_SETS {
                        for ram in [2 * MIB, 4 * MIB] {
                            if robust_multiboot_load(&mutated, text, ram).is_ok() {
                                accepted += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(accepted > 0, "some mutations must still load");
}

#[test]
fn truncated_multiboot_kernels_never_panic() {
    for (image, at, length) in multiboot_samples() {
        let lengths = (0..(at + length + 16).min(image.len())).chain((0..image.len()).step_by(97));
        for keep in lengths {
            for text in MULTIBOOT_OPTION_SETS {
                let _ = robust_multiboot_load(&image[..keep], text, 4 * MIB);
            }
            if keep > 0 && keep < at + length {
                assert!(
                    robust_multiboot_load(&image[..keep], "format=multiboot", 4 * MIB).is_err()
                );
            }
        }
    }
}

#[test]
fn random_multiboot_mutations_never_panic() {
    let mut random = XorShift(0x5851_f42d_4c95_7f2d);
    let samples = multiboot_samples();
    for round in 0..3000 {
        let (image, at, length) = &samples[round % samples.len()];
        let mut image = image.clone();
        for _ in 0..1 + random.below(4) {
            let offset = at + random.below(*length as u64) as usize;
            image[offset] = random.next() as u8;
        }
        if random.below(2) == 0 {
            fix_checksum(&mut image, *at);
        }
        let text = MULTIBOOT_OPTION_SETS[random.below(3) as usize];
        let ram = [64 * KIB, MIB, 4 * MIB][random.below(3) as usize];
        let _ = robust_multiboot_load(&image, text, ram);
    }
}

/// A bzImage and a data module for `initrd=`, as the Linux tests build them.
fn linux_sample() -> Vec<u8> {
    super::testing::BzImage::new().build()
}

fn robust_linux(image: &[u8], text: &str, ram: u64) -> Result<BootState, LoadError> {
    let initrd = [0x11u8; 5000];
    let modules = [DataModule {
        name: "rootfs",
        bytes: &initrd,
        cmdline: "",
    }];
    let inputs = BootInputs {
        modules: &modules,
        ..BootInputs::default()
    };
    // Checks soundness or, on refusal, that nothing was written.
    super::linux::tests::boot(image, text, &inputs, ram).0
}

const LINUX_OPTION_SETS: [&str; 3] = [
    "mem=64M -- console=ttyS0",
    "mem=64M initrd=rootfs -- console=ttyS0",
    "format=linux mem=8G initrd=rootfs",
];

fn linux_ram(text: &str) -> u64 {
    if text.contains("8G") {
        8 << 30
    } else {
        64 * MIB
    }
}

#[test]
fn every_prefix_of_a_bzimage_is_handled_without_panic() {
    let image = linux_sample();
    for length in (0..0x300).chain((0x300..image.len()).step_by(61)) {
        for text in LINUX_OPTION_SETS {
            let _ = robust_linux(&image[..length], text, linux_ram(text));
        }
    }
    for text in LINUX_OPTION_SETS {
        assert!(
            robust_linux(&image, text, linux_ram(text)).is_ok(),
            "{text}"
        );
    }
}

#[test]
fn every_setup_header_byte_mutated_never_panics() {
    let image = linux_sample();
    let mut random = XorShift(0x1f1_0202);
    for offset in 0x1f1..0x290 {
        let original = image[offset];
        let values = [
            0,
            0xff,
            0x80,
            0x7f,
            original ^ 1,
            original ^ 0x40,
            random.below(256) as u8,
            random.below(256) as u8,
        ];
        for value in values {
            let mut mutated = image.clone();
            mutated[offset] = value;
            for text in LINUX_OPTION_SETS {
                let _ = robust_linux(&mutated, text, linux_ram(text));
            }
        }
    }
}

#[test]
fn random_placement_fields_never_panic() {
    let image = linux_sample();
    let mut random = XorShift(0x2d0_0c0c);
    // pref_address, init_size, kernel_alignment, initrd_addr_max, cmdline_size.
    let fields: [(usize, usize); 5] = [(0x258, 8), (0x260, 4), (0x230, 4), (0x22c, 4), (0x238, 4)];
    for _ in 0..3000 {
        let mut mutated = image.clone();
        for &(offset, width) in &fields {
            if random.below(2) == 0 {
                let value = match random.below(4) {
                    0 => random.next(),
                    1 => random.next() & 0xffff_f000,
                    2 => 1 << random.below(64),
                    _ => (random.next() & 0x3ff_ffff) | 0x10_0000,
                };
                mutated[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
        }
        mutated[0x234] = random.below(2) as u8;
        mutated[0x236] = random.below(4) as u8;
        for text in LINUX_OPTION_SETS {
            let _ = robust_linux(&mutated, text, linux_ram(text));
        }
    }
}
