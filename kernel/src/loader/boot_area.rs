//! The boot area: what the loader puts at the top of guest RAM so that a
//! vCPU can start in protected or long mode without any firmware — a flat
//! GDT, identity page tables (long mode only) and a default stack beneath
//! them. Real mode needs none of it.
//!
//! Layout, from low to high addresses, ending at the top of guest RAM (or at
//! 4 GiB in protected mode, where the GDT base and ESP are 32-bit):
//!
//! ```text
//! [ boot information ][ stack, STACK_SIZE ][ GDT page ][ PML4 ][ PDPTs ][ PDs ][ PT ]  <- top
//!                                         ^ initial RSP (grows down)
//! ```
//!
//! The boot information (Multiboot's information structure, whole pages) is
//! there only for Multiboot kernels; it is part of the area, so the memory
//! map that reserves the area reserves it too.

use super::{GuestMemory, LoadError};
use crate::mm::page_tables::{HostPaging, PageTables, TableMemory};
use crate::mm::phys::PAGE_SIZE;
use crate::options::CpuMode;

/// GDT selector of the flat 32-bit code segment (protected-mode CS).
pub const CODE32_SELECTOR: u16 = 0x08;
/// GDT selector of the 64-bit code segment (long-mode CS). It is the Linux
/// boot protocol's `__BOOT_CS` (Documentation/arch/x86/boot.rst, "64-bit Boot
/// Protocol": "a GDT must be loaded with the descriptors for selectors
/// __BOOT_CS(0x10) and __BOOT_DS(0x18)"), so that one GDT serves every format.
pub const CODE64_SELECTOR: u16 = 0x10;
/// GDT selector of the flat data segment (DS, ES, FS, GS, SS): Linux's
/// `__BOOT_DS`.
pub const DATA_SELECTOR: u16 = 0x18;

/// The GDT written into guest RAM, indexed by selector / 8 (Intel SDM Vol. 3A,
/// 3.4.5 "Segment Descriptors"): base 0, limit 0xFFFFF in 4 KiB units (G = 1),
/// present, DPL 0. The accessed bit of each type is preset, so that the CPU
/// never needs to write the GDT when a selector is loaded and the descriptors
/// match the access rights VM entry demands of usable segments (SDM Vol. 3C,
/// "Checks on Guest Segment Registers": the type must be accessed).
pub const GDT: [u64; 4] = [
    // The null descriptor.
    0,
    // Code, execute/read, accessed (type 0xB); D = 1 for 32-bit operands.
    0x00cf_9b00_0000_ffff,
    // Code, execute/read, accessed (type 0xB); L = 1 and D = 0, since "if the
    // L-bit is set, then the D-bit must be cleared" (SDM Vol. 3A, 3.4.5).
    0x00af_9b00_0000_ffff,
    // Data, read/write, accessed (type 0x3); B = 1 for a 32-bit stack.
    0x00cf_9300_0000_ffff,
];

/// GDTR.limit of [`GDT`]: its size in bytes minus one (SDM Vol. 3A, 3.5.1).
pub const GDT_LIMIT: u16 = (GDT.len() * 8 - 1) as u16;

/// Bytes of the default stack reserved below the GDT.
pub const STACK_SIZE: u64 = 16 * 1024;

/// The flags of each identity-map leaf: present and writable, supervisor only.
const LEAF_FLAGS: u64 = HostPaging::PRESENT | HostPaging::WRITABLE;

const TWO_MIB: u64 = 1 << 21;
const ONE_GIB: u64 = 1 << 30;
const PDPT_REACH: u64 = 1 << 39;
const FOUR_GIB: u64 = 1 << 32;

/// Where a boot area goes; made before anything is written, so that a
/// refusal leaves guest memory untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    mode: CpuMode,
    /// The first byte of the area: the boot information, else the stack.
    start: u64,
    /// Bytes of boot information below the stack, whole pages.
    information: u64,
    /// One past the last byte of the area.
    end: u64,
    /// Guest RAM in whole pages: what long mode identity-maps.
    mapped: u64,
}

/// What [`build`] put in guest RAM, for the vCPU's initial state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Built {
    pub stack: u64,
    pub gdt_base: u64,
    pub cr3: u64,
    pub area: (u64, u64),
}

/// The page tables an identity map of `[0, mapped)` needs with 2 MiB pages
/// and 4 KiB ones for a tail that is not a whole 2 MiB: one PML4, a PDPT per
/// 512 GiB, a PD per 1 GiB and one PT for the tail. 1 GiB pages would need
/// fewer, but a guest CPU need not have them (CPUID.80000001H:EDX[26]).
fn tables_needed(mapped: u64) -> u64 {
    let tail = u64::from(!mapped.is_multiple_of(TWO_MIB));
    1 + mapped.div_ceil(PDPT_REACH) + mapped.div_ceil(ONE_GIB) + tail
}

impl Plan {
    /// Plans the boot area for `mode` in `ram` bytes of guest RAM, away from
    /// the `loaded` ranges (`(start, length)`); `None` for real mode.
    pub(super) fn new(
        mode: CpuMode,
        ram: u64,
        loaded: &[(u64, u64)],
    ) -> Result<Option<Plan>, LoadError> {
        match mode {
            CpuMode::Real => Ok(None),
            _ => Plan::above(mode, ram, 0, loaded).map(Some),
        }
    }

    /// The plan for a protected-mode Multiboot kernel: like [`Plan::new`],
    /// with `information` bytes (rounded up to whole pages) for the boot
    /// information below the stack.
    pub(super) fn with_information(
        ram: u64,
        information: u64,
        loaded: &[(u64, u64)],
    ) -> Result<Plan, LoadError> {
        Plan::above(CpuMode::Protected, ram, information, loaded)
    }

    /// The plan for a long-mode kernel that needs no boot information in
    /// the area (a Linux kernel, whose zero page lives elsewhere).
    pub(super) fn long(ram: u64, loaded: &[(u64, u64)]) -> Result<Plan, LoadError> {
        Plan::above(CpuMode::Long, ram, 0, loaded)
    }

    fn above(
        mode: CpuMode,
        ram: u64,
        information: u64,
        loaded: &[(u64, u64)],
    ) -> Result<Plan, LoadError> {
        let information = information.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
        let mapped = ram & !(PAGE_SIZE - 1);
        let (top, tables) = match mode {
            CpuMode::Real | CpuMode::Protected => (mapped.min(FOUR_GIB), 0),
            CpuMode::Long => (mapped, tables_needed(mapped)),
        };
        // At most a few thousand pages even for 1 TiB of RAM: no overflow.
        let needed = (STACK_SIZE + PAGE_SIZE * (1 + tables)).saturating_add(information);
        let start = top
            .checked_sub(needed)
            .ok_or(LoadError::NoRoomForBootArea { mode, needed, ram })?;
        let overlapping = loaded
            .iter()
            .map(|&(loaded_start, length)| (loaded_start, loaded_start.saturating_add(length)))
            .find(|&(loaded_start, loaded_end)| loaded_start < top && loaded_end > start);
        if let Some(taken_by) = overlapping {
            return Err(LoadError::BootAreaTaken {
                mode,
                area: (start, top),
                taken_by,
            });
        }
        Ok(Plan {
            mode,
            start,
            information,
            end: top,
            mapped,
        })
    }

    /// Where the boot information goes: the first byte of the area.
    pub(super) fn information_start(&self) -> u64 {
        self.start
    }

    /// The bytes reserved for boot information, whole pages.
    pub(super) fn information_bytes(&self) -> u64 {
        self.information
    }

    /// One past the last byte of the area.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// Writes the GDT and, for long mode, the identity page tables.
    pub(super) fn build(self, memory: &mut impl GuestMemory) -> Result<Built, LoadError> {
        let stack = self.start + self.information + STACK_SIZE;
        let gdt_base = stack;
        let mut gdt = [0u8; GDT.len() * 8];
        let (chunks, _) = gdt.as_chunks_mut::<8>();
        for (bytes, descriptor) in chunks.iter_mut().zip(GDT) {
            *bytes = descriptor.to_le_bytes();
        }
        memory.write(gdt_base, &gdt);
        let cr3 = if self.mode == CpuMode::Long {
            let mut area = TableArea {
                memory,
                next: gdt_base + PAGE_SIZE,
                end: self.end,
            };
            let mut tables =
                PageTables::<HostPaging>::new(&mut area).map_err(LoadError::PageTables)?;
            tables
                .map_range(&mut area, 0, 0, self.mapped, LEAF_FLAGS, false)
                .map_err(LoadError::PageTables)?;
            tables.root()
        } else {
            0
        };
        Ok(Built {
            stack,
            gdt_base,
            cr3,
            area: (self.start, self.end - self.start),
        })
    }
}

/// Page tables allocated upwards from `next` to `end` in guest RAM.
struct TableArea<'m, M: GuestMemory> {
    memory: &'m mut M,
    next: u64,
    end: u64,
}

impl<M: GuestMemory> TableMemory for TableArea<'_, M> {
    fn allocate_table(&mut self) -> Option<u64> {
        let table = self.next;
        if self.end.checked_sub(table)? < PAGE_SIZE {
            return None;
        }
        self.next += PAGE_SIZE;
        // Guest RAM starts zeroed, but a restarted VM's may not be.
        self.memory.table(table).fill(0);
        Some(table)
    }

    fn table(&mut self, address: u64) -> &mut [u64; 512] {
        self.memory.table(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_counts() {
        assert_eq!(tables_needed(4 << 20), 3, "PML4, PDPT, PD");
        assert_eq!(tables_needed((4 << 20) + 4096), 4, "and a PT for the tail");
        assert_eq!(tables_needed(ONE_GIB), 3);
        assert_eq!(tables_needed(ONE_GIB + TWO_MIB), 4, "a second PD");
        assert_eq!(tables_needed(PDPT_REACH + ONE_GIB), 1 + 2 + 513);
    }

    #[test]
    fn gdt_descriptors_decode() {
        // Access byte (bits 47:40) and flags (bits 55:52) of each descriptor.
        let access = |d: u64| (d >> 40) & 0xff;
        let flags = |d: u64| (d >> 52) & 0xf;
        let code64 = GDT[usize::from(CODE64_SELECTOR / 8)];
        let data = GDT[usize::from(DATA_SELECTOR / 8)];
        let code32 = GDT[usize::from(CODE32_SELECTOR / 8)];
        assert_eq!((access(code64), flags(code64)), (0x9b, 0b1010), "G, L");
        assert_eq!((access(data), flags(data)), (0x93, 0b1100), "G, B");
        assert_eq!((access(code32), flags(code32)), (0x9b, 0b1100), "G, D");
        for descriptor in &GDT[1..] {
            assert_eq!(descriptor & 0xffff, 0xffff, "limit 15:0");
            assert_eq!((descriptor >> 48) & 0xf, 0xf, "limit 19:16");
            assert_eq!(descriptor & 0xff00_00ff_ffff_0000, 0, "base 0");
        }
        assert_eq!(GDT_LIMIT, 31);
    }

    #[test]
    fn real_mode_needs_no_area() {
        assert_eq!(Plan::new(CpuMode::Real, 4096, &[(0, 4096)]), Ok(None));
    }

    #[test]
    fn protected_area_stays_below_4_gib() {
        let plan = Plan::new(CpuMode::Protected, 8 << 30, &[])
            .unwrap()
            .unwrap();
        assert_eq!(plan.end, FOUR_GIB);
        assert_eq!(plan.start, FOUR_GIB - STACK_SIZE - PAGE_SIZE);
    }

    #[test]
    fn overlap_with_the_area_is_found() {
        let ram = 1 << 20;
        let start = ram - STACK_SIZE - PAGE_SIZE;
        assert!(Plan::new(CpuMode::Protected, ram, &[(0, start)]).is_ok());
        assert_eq!(
            Plan::new(CpuMode::Protected, ram, &[(0, start + 1)]),
            Err(LoadError::BootAreaTaken {
                mode: CpuMode::Protected,
                area: (start, ram),
                taken_by: (0, start + 1)
            })
        );
        assert!(Plan::new(CpuMode::Protected, ram, &[(ram - 1, 1)]).is_err());
    }
}
