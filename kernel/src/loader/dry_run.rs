//! Loading without guest memory: the loader's own checks, for tools that
//! must refuse exactly what the kernel would refuse (the host tool checks
//! every VM of a config this way before it builds an ISO).

use super::{load, load_with, BootInputs, BootState, GuestMemory, LoadError};
use crate::options::ModuleOptions;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;

/// Guest RAM of `size` bytes that keeps only the page tables the loader
/// builds (it reads them back while building) and forgets every other byte,
/// so that checking a VM of many GiB costs no more than its tables.
pub struct DryRunMemory {
    size: u64,
    tables: BTreeMap<u64, Box<[u64; 512]>>,
}

impl DryRunMemory {
    /// `size` bytes of guest RAM, as `mem=` gives it.
    pub fn new(size: u64) -> Self {
        DryRunMemory {
            size,
            tables: BTreeMap::new(),
        }
    }
}

impl GuestMemory for DryRunMemory {
    fn size(&self) -> u64 {
        self.size
    }

    fn write(&mut self, _gpa: u64, _bytes: &[u8]) {}

    fn zero(&mut self, _gpa: u64, _length: u64) {}

    fn table(&mut self, gpa: u64) -> &mut [u64; 512] {
        self.tables
            .entry(gpa & !0xfff)
            .or_insert_with(|| Box::new([0; 512]))
    }
}

/// Runs [`load`] for `image` with `options` into `ram` bytes of guest RAM
/// and returns what the kernel would: how the vCPU would start, or why the
/// image is refused, in the kernel's words.
pub fn dry_run(image: &[u8], options: &ModuleOptions, ram: u64) -> Result<BootState, LoadError> {
    load(image, options, &mut DryRunMemory::new(ram))
}

/// [`dry_run`] with the data modules, memory map and RSDP a Multiboot
/// kernel would get (see [`load_with`]).
pub fn dry_run_with(
    image: &[u8],
    options: &ModuleOptions,
    inputs: &BootInputs,
    ram: u64,
) -> Result<BootState, LoadError> {
    load_with(image, options, inputs, &mut DryRunMemory::new(ram))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::testing::{ElfBuilder, FakeMemory};
    use std::string::ToString;

    fn options(text: &str) -> ModuleOptions {
        ModuleOptions::parse(text).unwrap()
    }

    #[test]
    fn agrees_with_a_real_load() {
        let image = ElfBuilder::elf64(0x10_0000)
            .segment(0x10_0000, &[0x90; 64], 64)
            .build();
        let opts = options("mem=2M");
        let mut real = FakeMemory::new(2 << 20);
        assert_eq!(
            dry_run(&image, &opts, 2 << 20),
            load(&image, &opts, &mut real)
        );
        let raw = [0xf4u8; 512];
        let opts = options("mem=1M");
        let mut real = FakeMemory::new(1 << 20);
        assert_eq!(dry_run(&raw, &opts, 1 << 20), load(&raw, &opts, &mut real));
    }

    #[test]
    fn refuses_in_the_kernels_words() {
        // A segment past mem=, like gcc's .note.gnu.build-id at 4 MiB.
        let image = ElfBuilder::elf64(0x10_0000)
            .segment(0x10_0000, &[0x90; 64], 64)
            .segment(0x40_0000, &[0; 36], 36)
            .build();
        let error = dry_run(&image, &options("mem=2M"), 2 << 20).unwrap_err();
        assert_eq!(
            error.to_string(),
            "segment 0x400000..0x400024 does not fit in 2 MiB of guest RAM"
        );
        assert_eq!(
            dry_run(&[], &options("mem=1M"), 1 << 20),
            Err(LoadError::EmptyImage)
        );
    }

    #[test]
    fn multiboot_kernels_with_modules() {
        use crate::loader::multiboot::tests::aout_kernel;
        use crate::loader::DataModule;
        let image = aout_kernel(0b11, 0x10_0000, 0x1000, 0, 0x10_0080);
        let opts = options("mem=4M modules=rootfs");
        let modules = [DataModule {
            name: "rootfs",
            bytes: &[1; 100],
            cmdline: "rootfs",
        }];
        let inputs = BootInputs {
            modules: &modules,
            ..BootInputs::default()
        };
        let mut real = FakeMemory::new(4 << 20);
        let state = dry_run_with(&image, &opts, &inputs, 4 << 20);
        assert_eq!(state, load_with(&image, &opts, &inputs, &mut real));
        assert_eq!(state.unwrap().modules, [(0x10_1000, 100)]);
        assert!(matches!(
            dry_run(&image, &opts, 4 << 20),
            Err(LoadError::ModuleNotFound { .. })
        ));
    }

    #[test]
    fn large_guests_cost_only_their_tables() {
        let image = ElfBuilder::elf64(0x10_0000)
            .segment(0x10_0000, &[0x90; 64], 64)
            .build();
        assert!(dry_run(&image, &options("mem=64G"), 64 << 30).is_ok());
    }
}
