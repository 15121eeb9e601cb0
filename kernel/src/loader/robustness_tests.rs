//! Robustness of `load` against corrupt images: every prefix of a valid ELF,
//! thousands of deterministic mutations of one, and random bytes. Whatever
//! the outcome, a successful load must keep every promise `assert_sound`
//! checks, and a refusal must leave guest memory untouched.

use super::testing::ElfBuilder;
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
