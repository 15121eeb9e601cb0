//! A VM's RAM as its first instruction finds it: the firmware a PC's BIOS
//! would have left (ACPI and MP tables, the BIOS data area), then the guest
//! image loaded with that firmware's memory map and RSDP. Pure, so that the
//! host tool refuses exactly the images the kernel refuses — including one
//! that would overwrite the tables — through [`dry_run`].

use crate::firmware::{self, layout::PlatformLayout};
use crate::loader::{
    self, BootInputs, BootState, DataModule, DryRunMemory, GuestMemory, LoadError,
};
use crate::options::ModuleOptions;
use alloc::vec::Vec;
use core::fmt;

/// Why a VM's RAM could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootError {
    /// The loader refused the image.
    Load(LoadError),
    /// A loaded range would overwrite the firmware tables.
    FirmwareOverlap {
        /// The loaded range's first byte.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The firmware range it hits.
        firmware: firmware::MemoryRegion,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Load(error) => error.fmt(f),
            BootError::FirmwareOverlap {
                start,
                end,
                firmware,
            } => write!(
                f,
                "segment {:#x}..{:#x} overlaps the firmware tables at {:#x}..{:#x}",
                start,
                end,
                firmware.start,
                firmware.start + firmware.length
            ),
        }
    }
}

/// Installs the PC's firmware into `ram`, then loads `image` with the
/// firmware's memory map and RSDP (what Multiboot kernels are handed, and
/// Linux's e820 table and `acpi_rsdp_addr`) and the data modules `options`
/// names (`modules=`, `initrd=`). A VM with less than 1 MiB of RAM has
/// no room for the tables and gets none (its image is loaded as before).
pub fn boot<M: GuestMemory>(
    image: &[u8],
    options: &ModuleOptions,
    data_modules: &[DataModule<'_>],
    ram: &mut M,
) -> Result<BootState, BootError> {
    let layout = PlatformLayout::DEFAULT;
    let installed = firmware::install(ram, &layout, 1).ok();
    let map: Vec<loader::MemoryRegion> = firmware::memory_map(&layout, ram.size(), 0)
        .iter()
        .map(|region| loader::MemoryRegion {
            start: region.start,
            length: region.length,
            kind: region.kind.code(),
        })
        .collect();
    let inputs = BootInputs {
        modules: data_modules,
        memory_map: installed.as_ref().map(|_| &map[..]),
        rsdp: installed.as_ref().map(|info| &info.rsdp_bytes[..]),
        rsdp_address: installed.as_ref().map(|info| info.rsdp),
    };
    let boot = loader::load_with(image, options, &inputs, ram).map_err(BootError::Load)?;
    if let Some(info) = &installed {
        for &(start, length) in &boot.loaded {
            if let Some(region) = info.conflict(start, length) {
                return Err(BootError::FirmwareOverlap {
                    start,
                    end: start + length,
                    firmware: region,
                });
            }
        }
    }
    Ok(boot)
}

/// [`boot`] into `ram_bytes` of RAM that keeps nothing but the loader's
/// page tables: what the kernel would answer, for tools.
pub fn dry_run(
    image: &[u8],
    options: &ModuleOptions,
    data_modules: &[DataModule<'_>],
    ram_bytes: u64,
) -> Result<BootState, BootError> {
    boot(
        image,
        options,
        data_modules,
        &mut DryRunMemory::new(ram_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::testing::FlatMemory;
    use crate::loader::testing::ElfBuilder;
    use std::string::ToString;

    // ELF32 images: they start in protected mode without page tables,
    // which FlatMemory (byte-addressed) does not build.
    fn options(text: &str) -> ModuleOptions {
        ModuleOptions::parse(text).unwrap()
    }

    #[test]
    fn an_image_over_the_acpi_tables_is_refused_by_the_dry_run_too() {
        // A segment at 0xE0000 (the BIOS area, where the RSDP lives).
        let image = ElfBuilder::elf32(0xe_0000)
            .segment(0xe_0000, &[0x90; 64], 0x2000)
            .build();
        let opts = options("mem=2M");
        let error = dry_run(&image, &opts, &[], 2 << 20).unwrap_err();
        assert!(
            matches!(
                error,
                BootError::FirmwareOverlap {
                    start: 0xe_0000,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("segment 0xe0000..0xe2000 overlaps the firmware tables at 0xe"),
            "{error}"
        );
        let mut ram = FlatMemory::new(2 << 20);
        assert_eq!(boot(&image, &opts, &[], &mut ram).unwrap_err(), error);
    }

    #[test]
    fn the_dry_run_agrees_with_a_real_boot() {
        let image = ElfBuilder::elf32(0x10_0000)
            .segment(0x10_0000, &[0x90; 64], 64)
            .build();
        let opts = options("mem=2M");
        let mut ram = FlatMemory::new(2 << 20);
        assert_eq!(
            dry_run(&image, &opts, &[], 2 << 20),
            boot(&image, &opts, &[], &mut ram)
        );
        // Loader refusals come through unchanged.
        assert_eq!(
            dry_run(&[], &opts, &[], 2 << 20),
            Err(BootError::Load(LoadError::EmptyImage))
        );
    }

    /// A Linux kernel gets the firmware's map as its e820 table, the RSDP's
    /// address and its initrd; the dry run agrees, and names a missing initrd.
    #[test]
    fn a_linux_kernel_gets_the_firmware_and_its_initrd() {
        use crate::loader::testing::{BzImage, FakeMemory};
        use crate::loader::ZERO_PAGE_ADDRESS;
        let image = BzImage::new().build();
        let initrd = [0x33u8; 3000];
        let modules = [DataModule {
            name: "rootfs",
            bytes: &initrd,
            cmdline: "",
        }];
        let opts = options("mem=64M initrd=rootfs -- console=ttyS0");
        let mut ram = FakeMemory::new(64 << 20);
        let state = boot(&image, &opts, &modules, &mut ram).unwrap();
        assert_eq!(
            dry_run(&image, &opts, &modules, 64 << 20),
            Ok(state.clone())
        );
        let info =
            firmware::install(&mut FakeMemory::new(2 << 20), &PlatformLayout::DEFAULT, 1).unwrap();
        assert_eq!(ram.read_u64(ZERO_PAGE_ADDRESS + 0x070), info.rsdp);
        let [(initrd_start, 3000)] = state.modules[..] else {
            panic!("{:x?}", state.modules)
        };
        assert_eq!(ram.read(initrd_start, 3000), initrd);
        // The e820 table: the ACPI tables' page is type 3, reclaimable.
        let entries = u64::from(ram.read(ZERO_PAGE_ADDRESS + 0x1e8, 1)[0]);
        let acpi = (0..entries)
            .map(|n| ZERO_PAGE_ADDRESS + 0x2d0 + 20 * n)
            .find(|&at| ram.read_u64(at) == firmware::ACPI_TABLES.start);
        let acpi = acpi.expect("the ACPI tables are in the e820 table");
        assert_eq!(ram.read(acpi + 16, 4), [3, 0, 0, 0]);

        let error = dry_run(
            &image,
            &options("mem=64M initrd=initfs"),
            &modules,
            64 << 20,
        );
        assert_eq!(
            error.unwrap_err().to_string(),
            "initrd= names `initfs`, which is not a data module (role=data) of this boot"
        );
    }

    /// The RSDP a Multiboot2 kernel is given is the one in its RAM.
    #[test]
    fn the_rsdp_copy_is_the_installed_one() {
        let mut ram = FlatMemory::new(2 << 20);
        let info = firmware::install(&mut ram, &PlatformLayout::DEFAULT, 1).unwrap();
        assert_eq!(&info.rsdp_bytes[..8], b"RSD PTR ");
        assert_eq!(
            ram.read(info.rsdp, firmware::acpi::RSDP_LENGTH),
            &info.rsdp_bytes[..]
        );
    }
}
