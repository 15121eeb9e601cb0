//! Extended page tables for one VM (SDM Vol. 3C, 30.3 "The Extended Page
//! Table Mechanism").
//!
//! A VM's guest-physical space is its RAM, `[0, size)`, backed by one
//! contiguous host range; nothing else is mapped, so any guest access outside
//! its RAM — to the hypervisor, to another VM, to MMIO — is an EPT violation
//! that stops the guest.
//!
//! **Memory types.** Guest RAM is ordinary host RAM, which the hypervisor
//! maps write-back. Every RAM leaf says write-back (bits 5:3) *and* ignores
//! the guest's PAT (bit 6, IPAT; SDM Vol. 3C, 30.3.7.2): otherwise a guest
//! PAT entry of UC or WC would combine with the EPT type into an uncached
//! alias of frames the host (loading, clearing, copying for string I/O)
//! accesses write-back, and mixed-type aliases of one frame are undefined
//! (SDM Vol. 3A, 13.12.4). A guest may still *ask* for UC through its PAT or
//! CR0.CD — it reads back what it wrote — but its RAM stays coherent and
//! fast. Nothing that is not RAM is mapped into a guest today; when device
//! memory is (passed-through MMIO), its leaves must take their type from the
//! host MTRRs for that range, never write-back.

use crate::mm::page_tables::{MapError, PageTables, TableFormat, TableMemory};

/// EPT entry: read access.
pub const READ: u64 = 1 << 0;
/// EPT entry: write access.
pub const WRITE: u64 = 1 << 1;
/// EPT entry: instruction fetch.
pub const EXECUTE: u64 = 1 << 2;
/// EPT leaf memory type, write-back (type 6 in bits 5:3).
pub const MEMORY_TYPE_WRITE_BACK: u64 = 6 << 3;
/// EPT leaf: ignore the guest's PAT, so the EPT type rules.
pub const IGNORE_PAT: u64 = 1 << 6;

/// The EPT format for [`PageTables`].
pub enum Ept {}

impl TableFormat for Ept {
    const TABLE_FLAGS: u64 = READ | WRITE | EXECUTE;
    fn is_present(entry: u64) -> bool {
        // An entry is present when any of bits 2:0 is set (SDM Vol. 3C, 30.3.2).
        entry & (READ | WRITE | EXECUTE) != 0
    }
}

/// The flags of a RAM leaf: all access, write-back, the guest's PAT ignored
/// (see the module documentation).
pub const RAM_FLAGS: u64 = READ | WRITE | EXECUTE | MEMORY_TYPE_WRITE_BACK | IGNORE_PAT;

/// Builds the EPT of a VM whose `size` bytes of RAM start at host physical
/// `host_base`: guest-physical `[0, size)` maps to `[host_base, ...)`, 2 MiB
/// pages where both sides are aligned, 4 KiB at the edges.
pub fn build(
    memory: &mut impl TableMemory,
    host_base: u64,
    size: u64,
) -> Result<PageTables<Ept>, MapError> {
    let mut tables = PageTables::<Ept>::new(memory)?;
    tables.map_range(memory, 0, host_base, size, RAM_FLAGS, false)?;
    Ok(tables)
}

/// The EPT pointer for VMCS field 0x201A (SDM Vol. 3C, 26.6.11): write-back paging
/// structures, a 4-level walk (value 3 in bits 5:3), the PML4 address.
pub const fn pointer(root: u64) -> u64 {
    6 | (3 << 3) | root
}

/// The access that caused an EPT violation, from its exit qualification
/// (SDM Vol. 3C, Table 29-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationAccess {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Execute,
}

impl ViolationAccess {
    /// Decodes bits 2:0 of the qualification.
    pub fn from_qualification(qualification: u64) -> ViolationAccess {
        if qualification & 2 != 0 {
            ViolationAccess::Write
        } else if qualification & 4 != 0 {
            ViolationAccess::Execute
        } else {
            ViolationAccess::Read
        }
    }

    /// A word for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationAccess::Read => "read",
            ViolationAccess::Write => "write",
            ViolationAccess::Execute => "instruction fetch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::page_tables::fake::FakeTables;
    use crate::mm::page_tables::{Mapping, PageSize};
    use std::vec::Vec;

    fn walk(tables: &PageTables<Ept>, memory: &mut FakeTables) -> Vec<Mapping> {
        let mut found = Vec::new();
        tables.walk(memory, |m| found.push(m));
        found
    }

    /// Checks that the mappings cover exactly [0, size) contiguously onto
    /// [base, base + size), all RAM_FLAGS.
    fn assert_exact(found: &[Mapping], base: u64, size: u64) {
        let mut next = 0;
        for m in found {
            assert_eq!(m.input, next, "gap or overlap at {:#x}", next);
            assert_eq!(m.output, base + m.input);
            assert_eq!(m.flags, RAM_FLAGS);
            assert_eq!(m.input % m.size.bytes(), 0);
            next = m.input + m.size.bytes();
        }
        assert_eq!(next, size, "mapped exactly the guest's RAM");
    }

    #[test]
    fn one_mebibyte_guest_is_small_pages() {
        let mut memory = FakeTables::new(16);
        let tables = build(&mut memory, 0x4000_0000, 1 << 20).unwrap();
        let found = walk(&tables, &mut memory);
        assert_eq!(found.len(), 256);
        assert!(found.iter().all(|m| m.size == PageSize::Small));
        assert_exact(&found, 0x4000_0000, 1 << 20);
    }

    #[test]
    fn aligned_guest_uses_large_pages_and_small_at_the_edge() {
        let mut memory = FakeTables::new(16);
        // 8 MiB + 12 KiB, host base 2 MiB aligned.
        let size = (8 << 20) + 0x3000;
        let tables = build(&mut memory, 0x1_0000_0000, size).unwrap();
        let found = walk(&tables, &mut memory);
        assert_eq!(
            found.iter().filter(|m| m.size == PageSize::Large).count(),
            4
        );
        assert_eq!(
            found.iter().filter(|m| m.size == PageSize::Small).count(),
            3
        );
        assert_exact(&found, 0x1_0000_0000, size);
        // Nothing past the end.
        assert_eq!(tables.translate(&mut memory, size), None);
        assert_eq!(tables.translate(&mut memory, 0xfee0_0000), None);
        assert_eq!(
            tables.translate(&mut memory, size - 1),
            Some((0x1_0000_0000 + size - 1, RAM_FLAGS))
        );
    }

    #[test]
    fn misaligned_host_base_falls_back_to_small_pages() {
        let mut memory = FakeTables::new(64);
        let tables = build(&mut memory, 0x20_1000, 4 << 20).unwrap();
        let found = walk(&tables, &mut memory);
        assert!(found.iter().all(|m| m.size == PageSize::Small));
        assert_exact(&found, 0x20_1000, 4 << 20);
    }

    #[test]
    fn ram_leaves_are_write_back_and_ignore_the_guest_pat() {
        // Both leaf sizes: a 2 MiB page and the 4 KiB pages after it.
        let mut memory = FakeTables::new(16);
        let tables = build(&mut memory, 0x20_0000, (2 << 20) + 0x2000).unwrap();
        let mut leaves = std::vec::Vec::new();
        tables.walk(&mut memory, |mapping| leaves.push(mapping.flags));
        assert_eq!(leaves.len(), 3);
        for flags in leaves {
            assert_eq!((flags >> 3) & 7, 6, "write-back");
            assert_ne!(
                flags & IGNORE_PAT,
                0,
                "the guest PAT cannot make RAM uncached"
            );
        }
    }

    #[test]
    fn table_flags_and_pointer() {
        let mut memory = FakeTables::new(16);
        let tables = build(&mut memory, 0x20_0000, 2 << 20).unwrap();
        let root = tables.root();
        let pml4e = memory.table(root)[0];
        assert_eq!(pml4e & 7, 7, "non-leaf entries allow everything");
        assert_eq!(pointer(root) & 0xfff, 0x1e);
        assert_eq!(pointer(root) & !0xfff, root);
    }

    #[test]
    fn violation_access_kinds() {
        assert_eq!(
            ViolationAccess::from_qualification(0x181),
            ViolationAccess::Read
        );
        assert_eq!(
            ViolationAccess::from_qualification(0x182),
            ViolationAccess::Write
        );
        assert_eq!(
            ViolationAccess::from_qualification(0x184),
            ViolationAccess::Execute
        );
    }
}
