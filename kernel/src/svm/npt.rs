//! Nested page tables for one VM (APM Vol. 2, 15.25 "Nested Paging"):
//! ordinary long-mode page tables, walked with the guest-physical address
//! as input, built by the same code as EPT ([`PageTables`]).
//!
//! A VM's guest-physical space is its RAM, `[0, size)`, and nothing else:
//! any other access — the hypervisor, another VM, device pages — is a
//! nested page fault that the core decodes (MMIO) or reports.
//!
//! **Entries.** The nested walk treats every access as a user access
//! (15.25.5), so every level has U/S set besides P and R/W; executable
//! (no NX). **Memory types** (15.25.8): the nested leaf's type comes from
//! the host PAT entry its PWT/PCD/PAT bits select — entry 0, write-back in
//! the power-on PAT tessera keeps — and combines with the guest's own type
//! from G_PAT and its page tables, the more restrictive winning. RAM is
//! therefore write-back unless the guest itself asks for less, and it can
//! never make the host's view of a frame uncached: the host's accesses use
//! the host's own tables. Unlike EPT there is no "ignore guest PAT" bit.

use crate::mm::page_tables::{MapError, PageTables, TableFormat, TableMemory};

/// Present.
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const WRITABLE: u64 = 1 << 1;
/// User: required on every nested level (15.25.5).
pub const USER: u64 = 1 << 2;

/// The nested paging format for [`PageTables`].
pub enum Npt {}

impl TableFormat for Npt {
    const TABLE_FLAGS: u64 = PRESENT | WRITABLE | USER;
    fn is_present(entry: u64) -> bool {
        entry & PRESENT != 0
    }
}

/// The flags of a RAM leaf: present, writable, user, executable, PAT index
/// 0 (write-back).
pub const RAM_FLAGS: u64 = PRESENT | WRITABLE | USER;

/// Builds the nested page tables of a VM whose `size` bytes of RAM start
/// at host physical `host_base`: guest-physical `[0, size)` maps to
/// `[host_base, ...)`, 2 MiB pages where both sides are aligned.
pub fn build(
    memory: &mut impl TableMemory,
    host_base: u64,
    size: u64,
) -> Result<PageTables<Npt>, MapError> {
    let mut tables = PageTables::<Npt>::new(memory)?;
    tables.map_range(memory, 0, host_base, size, RAM_FLAGS, false)?;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::page_tables::fake::FakeTables;
    use crate::mm::page_tables::{PageSize, LARGE_PAGE};

    #[test]
    fn maps_exactly_the_ram_with_user_writable_entries() {
        let mut memory = FakeTables::new(16);
        let size = (4 << 20) + 0x2000;
        let tables = build(&mut memory, 0x4000_0000, size).unwrap();
        let mut leaves = std::vec::Vec::new();
        tables.walk(&mut memory, |mapping| leaves.push(mapping));
        assert_eq!(leaves.len(), 4, "two 2 MiB pages and two 4 KiB pages");
        let mut next = 0;
        for leaf in &leaves {
            assert_eq!(leaf.input, next);
            assert_eq!(leaf.output, 0x4000_0000 + leaf.input);
            assert_eq!(
                leaf.flags & (PRESENT | WRITABLE | USER),
                PRESENT | WRITABLE | USER
            );
            // PWT (3), PCD (4) and, in a 4 KiB leaf, PAT (7) clear: host
            // PAT entry 0, write-back. No NX.
            assert_eq!(leaf.flags & (1 << 3 | 1 << 4 | 1 << 63), 0);
            if leaf.size == PageSize::Small {
                assert_eq!(leaf.flags & LARGE_PAGE, 0);
            }
            next += leaf.size.bytes();
        }
        assert_eq!(next, size);
        assert_eq!(tables.translate(&mut memory, size), None);
        assert_eq!(tables.translate(&mut memory, 0xfee0_0000), None);
    }

    #[test]
    fn upper_levels_allow_user_writes() {
        let mut memory = FakeTables::new(16);
        let tables = build(&mut memory, 0x20_0000, 2 << 20).unwrap();
        let pml4e = memory.table(tables.root())[0];
        assert_eq!(pml4e & 7, PRESENT | WRITABLE | USER);
    }
}
