//! Four-level page-table construction over an abstract table memory.
//!
//! The same radix tree serves two formats: the CPU's own IA-32e paging
//! (Intel SDM Vol. 3A, 5.5 "4-Level Paging") for tessera's identity map, and
//! EPT (SDM Vol. 3C, 30.3.2 "EPT Translation Mechanism") for each VM. They
//! differ only in what marks an entry present and what a non-leaf entry
//! carries, which [`TableFormat`] captures. Tables are reached through
//! [`TableMemory`], so that host tests build them in ordinary memory and walk
//! them back.

use core::fmt;

/// Bits 12..=51 of an entry: the physical address it points to.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Bit 7 of a PDPTE/PDE: the entry maps a 1 GiB / 2 MiB page (both formats).
pub const LARGE_PAGE: u64 = 1 << 7;

/// Where page tables live. Addresses are physical.
pub trait TableMemory {
    /// A new, zeroed, 4 KiB-aligned table.
    fn allocate_table(&mut self) -> Option<u64>;
    /// The table at `address`, which `allocate_table` returned. The method
    /// is safe, so implementations must refuse (panic on) any address they
    /// did not hand out.
    fn table(&mut self, address: u64) -> &mut [u64; 512];
}

/// What distinguishes one page-table format from another.
pub trait TableFormat {
    /// The flags of an entry that points to a next-level table.
    const TABLE_FLAGS: u64;
    /// Whether an entry maps or points to anything.
    fn is_present(entry: u64) -> bool;
}

/// IA-32e paging for the hypervisor itself.
pub enum HostPaging {}

impl HostPaging {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// No-execute (needs IA32_EFER.NXE).
    pub const NO_EXECUTE: u64 = 1 << 63;
}

impl TableFormat for HostPaging {
    // Permissions are decided at the leaf; upper levels allow everything.
    const TABLE_FLAGS: u64 = HostPaging::PRESENT | HostPaging::WRITABLE;
    fn is_present(entry: u64) -> bool {
        entry & HostPaging::PRESENT != 0
    }
}

/// The size of a leaf mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, a PTE.
    Small,
    /// 2 MiB, a PDE with bit 7.
    Large,
    /// 1 GiB, a PDPTE with bit 7.
    Huge,
}

impl PageSize {
    /// Bytes covered.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Small => 1 << 12,
            PageSize::Large => 1 << 21,
            PageSize::Huge => 1 << 30,
        }
    }

    /// The level whose entry maps it (1 = PT, 2 = PD, 3 = PDPT).
    const fn level(self) -> usize {
        match self {
            PageSize::Small => 1,
            PageSize::Large => 2,
            PageSize::Huge => 3,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No memory left for a page table.
    OutOfTables,
    /// Some part of the range is mapped already.
    AlreadyMapped(u64),
    /// An address is not aligned to the page size, or beyond 48 bits.
    Misaligned(u64),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::OutOfTables => f.write_str("out of memory for page tables"),
            MapError::AlreadyMapped(a) => write!(f, "{:#x} is mapped already", a),
            MapError::Misaligned(a) => write!(f, "{:#x} is not aligned to its page size", a),
        }
    }
}

/// One leaf mapping found by [`PageTables::walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The translated (virtual or guest-physical) address.
    pub input: u64,
    /// The physical address it maps to.
    pub output: u64,
    /// The page size.
    pub size: PageSize,
    /// The entry's flag bits (everything outside the address).
    pub flags: u64,
}

/// A four-level table rooted at one PML4.
pub struct PageTables<F: TableFormat> {
    root: u64,
    format: core::marker::PhantomData<F>,
}

const fn index(address: u64, level: usize) -> usize {
    ((address >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

impl<F: TableFormat> PageTables<F> {
    /// A new, empty hierarchy.
    pub fn new(memory: &mut impl TableMemory) -> Result<Self, MapError> {
        let root = memory.allocate_table().ok_or(MapError::OutOfTables)?;
        Ok(PageTables {
            root,
            format: core::marker::PhantomData,
        })
    }

    /// The physical address of the PML4 (for CR3 or the EPT pointer).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps one page of `size` at `input` to `output` with the leaf `flags`
    /// (the large-page bit is added for 2 MiB and 1 GiB pages).
    pub fn map(
        &mut self,
        memory: &mut impl TableMemory,
        input: u64,
        output: u64,
        size: PageSize,
        flags: u64,
    ) -> Result<(), MapError> {
        let bytes = size.bytes();
        if !input.is_multiple_of(bytes) || !output.is_multiple_of(bytes) || input >= 1 << 48 {
            return Err(MapError::Misaligned(input));
        }
        let mut table = self.root;
        for level in (size.level() + 1..=4).rev() {
            let slot = index(input, level);
            let entry = memory.table(table)[slot];
            if !F::is_present(entry) {
                let next = memory.allocate_table().ok_or(MapError::OutOfTables)?;
                memory.table(table)[slot] = next | F::TABLE_FLAGS;
                table = next;
            } else if entry & LARGE_PAGE != 0 {
                return Err(MapError::AlreadyMapped(input));
            } else {
                table = entry & ADDRESS_MASK;
            }
        }
        let slot = index(input, size.level());
        let leaf = &mut memory.table(table)[slot];
        if F::is_present(*leaf) {
            return Err(MapError::AlreadyMapped(input));
        }
        let large = if size == PageSize::Small {
            0
        } else {
            LARGE_PAGE
        };
        *leaf = output | flags | large;
        Ok(())
    }

    /// Maps `[input, input + length)` to `[output, ...)` with the largest pages
    /// that alignment allows: 2 MiB where both sides are 2 MiB aligned and the
    /// rest of the range is long enough, 4 KiB at the edges. `huge` allows
    /// 1 GiB pages too.
    pub fn map_range(
        &mut self,
        memory: &mut impl TableMemory,
        input: u64,
        output: u64,
        length: u64,
        flags: u64,
        huge: bool,
    ) -> Result<(), MapError> {
        if !input.is_multiple_of(4096)
            || !output.is_multiple_of(4096)
            || !length.is_multiple_of(4096)
        {
            return Err(MapError::Misaligned(input));
        }
        let mut offset = 0;
        while offset < length {
            let (i, o, left) = (input + offset, output + offset, length - offset);
            let size = [PageSize::Huge, PageSize::Large]
                .into_iter()
                .filter(|&s| huge || s != PageSize::Huge)
                .find(|s| {
                    i.is_multiple_of(s.bytes()) && o.is_multiple_of(s.bytes()) && left >= s.bytes()
                })
                .unwrap_or(PageSize::Small);
            self.map(memory, i, o, size, flags)?;
            offset += size.bytes();
        }
        Ok(())
    }

    /// Calls `visit` for every leaf mapping, in ascending input order.
    pub fn walk(&self, memory: &mut impl TableMemory, mut visit: impl FnMut(Mapping)) {
        self.walk_table(memory, self.root, 4, 0, &mut visit);
    }

    fn walk_table(
        &self,
        memory: &mut impl TableMemory,
        table: u64,
        level: usize,
        base: u64,
        visit: &mut impl FnMut(Mapping),
    ) {
        for slot in 0..512 {
            let entry = memory.table(table)[slot];
            if !F::is_present(entry) {
                continue;
            }
            let input = base | ((slot as u64) << (12 + 9 * (level - 1)));
            let leaf_size = match level {
                1 => Some(PageSize::Small),
                2 if entry & LARGE_PAGE != 0 => Some(PageSize::Large),
                3 if entry & LARGE_PAGE != 0 => Some(PageSize::Huge),
                _ => None,
            };
            match leaf_size {
                Some(size) => visit(Mapping {
                    input,
                    output: entry & ADDRESS_MASK & !(size.bytes() - 1),
                    size,
                    flags: entry & !ADDRESS_MASK & !LARGE_PAGE,
                }),
                None => self.walk_table(memory, entry & ADDRESS_MASK, level - 1, input, visit),
            }
        }
    }

    /// Translates one address, if mapped: the output address and the leaf's flags.
    pub fn translate(&self, memory: &mut impl TableMemory, input: u64) -> Option<(u64, u64)> {
        let mut table = self.root;
        for level in (1..=4).rev() {
            let entry = memory.table(table)[index(input, level)];
            if !F::is_present(entry) {
                return None;
            }
            if level == 1 || entry & LARGE_PAGE != 0 {
                let size = 1u64 << (12 + 9 * (level - 1));
                let base = entry & ADDRESS_MASK & !(size - 1);
                let flags = entry & !ADDRESS_MASK & !LARGE_PAGE;
                return Some((base + (input & (size - 1)), flags));
            }
            table = entry & ADDRESS_MASK;
        }
        None
    }
}

/// A [`TableMemory`] in ordinary heap memory, for host tests.
#[cfg(test)]
pub mod fake {
    use super::TableMemory;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Tables at fake physical addresses `0x1000 * (n + 1)`, with an optional limit.
    pub struct FakeTables {
        /// Every table handed out.
        pub tables: Vec<Box<[u64; 512]>>,
        /// How many tables may still be allocated.
        pub budget: usize,
    }

    impl FakeTables {
        /// A memory that hands out at most `budget` tables.
        pub fn new(budget: usize) -> Self {
            FakeTables {
                tables: Vec::new(),
                budget,
            }
        }
    }

    impl TableMemory for FakeTables {
        fn allocate_table(&mut self) -> Option<u64> {
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            self.tables.push(Box::new([0; 512]));
            Some(0x1000 * self.tables.len() as u64)
        }

        fn table(&mut self, address: u64) -> &mut [u64; 512] {
            &mut self.tables[(address / 0x1000 - 1) as usize]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeTables;
    use super::*;
    use std::vec::Vec;

    const RW: u64 = HostPaging::PRESENT | HostPaging::WRITABLE;

    fn mappings(tables: &PageTables<HostPaging>, memory: &mut FakeTables) -> Vec<Mapping> {
        let mut found = Vec::new();
        tables.walk(memory, |m| found.push(m));
        found
    }

    #[test]
    fn range_uses_large_pages_where_aligned() {
        let mut memory = FakeTables::new(64);
        let mut tables = PageTables::<HostPaging>::new(&mut memory).unwrap();
        // 0x1ff000..0x601000: one 4K page, two 2M pages, one 4K page.
        tables
            .map_range(&mut memory, 0x1ff000, 0x1ff000, 0x402000, RW, false)
            .unwrap();
        let found = mappings(&tables, &mut memory);
        let sizes: Vec<(u64, PageSize)> = found.iter().map(|m| (m.input, m.size)).collect();
        assert_eq!(
            sizes,
            [
                (0x1ff000, PageSize::Small),
                (0x200000, PageSize::Large),
                (0x400000, PageSize::Large),
                (0x600000, PageSize::Small)
            ]
        );
        assert!(found.iter().all(|m| m.input == m.output && m.flags == RW));
        assert_eq!(
            tables.translate(&mut memory, 0x3fffff),
            Some((0x3fffff, RW))
        );
        assert_eq!(tables.translate(&mut memory, 0x601000), None);
        assert_eq!(tables.translate(&mut memory, 0x1fe000), None);
    }

    #[test]
    fn huge_pages_when_allowed() {
        let mut memory = FakeTables::new(16);
        let mut tables = PageTables::<HostPaging>::new(&mut memory).unwrap();
        tables
            .map_range(&mut memory, 0, 0, 2 << 30, RW, true)
            .unwrap();
        let found = mappings(&tables, &mut memory);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|m| m.size == PageSize::Huge));
        assert_eq!(memory.tables.len(), 2, "PML4 and one PDPT");
    }

    #[test]
    fn offset_mapping_translates() {
        let mut memory = FakeTables::new(16);
        let mut tables = PageTables::<HostPaging>::new(&mut memory).unwrap();
        tables
            .map_range(&mut memory, 0, 0x4000_0000, 0x20_0000, RW, false)
            .unwrap();
        assert_eq!(
            tables.translate(&mut memory, 0x1234),
            Some((0x4000_1234, RW))
        );
    }

    #[test]
    fn double_mapping_is_refused() {
        let mut memory = FakeTables::new(16);
        let mut tables = PageTables::<HostPaging>::new(&mut memory).unwrap();
        tables
            .map(&mut memory, 0x200000, 0x200000, PageSize::Large, RW)
            .unwrap();
        assert_eq!(
            tables.map(&mut memory, 0x201000, 0x201000, PageSize::Small, RW),
            Err(MapError::AlreadyMapped(0x201000))
        );
        assert_eq!(
            tables.map(&mut memory, 0x200000, 0x200000, PageSize::Large, RW),
            Err(MapError::AlreadyMapped(0x200000))
        );
        assert_eq!(
            tables.map(&mut memory, 0x1000, 0x1800, PageSize::Small, RW),
            Err(MapError::Misaligned(0x1000))
        );
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mut memory = FakeTables::new(3);
        let mut tables = PageTables::<HostPaging>::new(&mut memory).unwrap();
        assert_eq!(
            tables.map(&mut memory, 0, 0, PageSize::Small, RW),
            Err(MapError::OutOfTables)
        );
    }
}
