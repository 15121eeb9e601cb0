//! Walking a guest's own page tables, for the accesses tessera makes on a
//! guest's behalf (the memory operand of emulated INS/OUTS).
//!
//! The walk follows IA-32e 4-level paging (Intel SDM Vol. 3A, 5.5) with the
//! access rights of 5.6: a write needs R/W set at every level when the access
//! is a user one or CR0.WP is set; a user access needs U/S at every level. A
//! failure is the #PF error code the guest would have seen (5.7), so the
//! emulation can deliver the same fault the hardware would. Table entries are
//! read through a closure that returns `None` outside guest RAM: a guest can
//! point its tables anywhere, and that must not take the hypervisor with it.

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

/// #PF error code: the fault was a protection violation (the page was present).
pub const PF_PROTECTION: u32 = 1 << 0;
/// #PF error code: the access was a write.
pub const PF_WRITE: u32 = 1 << 1;
/// #PF error code: the access was a user-mode one.
pub const PF_USER: u32 = 1 << 2;

/// The access being translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// A write (INS writes memory; OUTS reads it).
    pub write: bool,
    /// Made at CPL 3.
    pub user: bool,
}

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// The guest gets #PF with this error code (and CR2 = the linear address).
    PageFault(u32),
    /// The address is not canonical: #GP(0).
    NonCanonical,
    /// A paging structure lies outside guest RAM.
    TableOutsideRam(u64),
}

/// Translates `linear` through the tables at `cr3`. `read` returns the
/// 8-byte entry at a guest-physical address, or `None` outside guest RAM;
/// `write_protect` is the guest's CR0.WP.
pub fn translate(
    read: impl Fn(u64) -> Option<u64>,
    cr3: u64,
    linear: u64,
    access: Access,
    write_protect: bool,
) -> Result<u64, WalkError> {
    // Bits 63:47 must all equal bit 47 (SDM Vol. 1, 3.3.7.1).
    let top = linear >> 47;
    if top != 0 && top != 0x1_ffff {
        return Err(WalkError::NonCanonical);
    }
    let mut error = if access.write { PF_WRITE } else { 0 };
    if access.user {
        error |= PF_USER;
    }
    let mut table = cr3 & ADDRESS;
    let (mut writable, mut user) = (true, true);
    for level in (1..=4u32).rev() {
        let index = (linear >> (12 + 9 * (level - 1))) & 0x1ff;
        let slot = table + index * 8;
        let entry = read(slot).ok_or(WalkError::TableOutsideRam(slot))?;
        if entry & PRESENT == 0 {
            return Err(WalkError::PageFault(error));
        }
        writable &= entry & WRITABLE != 0;
        user &= entry & USER != 0;
        let leaf = level == 1 || (level <= 3 && entry & LARGE != 0);
        if leaf {
            let denied = (access.user && !user)
                || (access.write && !writable && (access.user || write_protect));
            if denied {
                return Err(WalkError::PageFault(error | PF_PROTECTION));
            }
            let size = 1u64 << (12 + 9 * (level - 1));
            return Ok((entry & ADDRESS & !(size - 1)) | (linear & (size - 1)));
        }
        table = entry & ADDRESS;
    }
    unreachable!("level 1 is always a leaf")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KERNEL_READ: Access = Access {
        write: false,
        user: false,
    };
    const KERNEL_WRITE: Access = Access {
        write: true,
        user: false,
    };
    const USER_WRITE: Access = Access {
        write: true,
        user: true,
    };

    /// Tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT):
    /// 0x0-0x1fffff as 4 KiB pages (page 0x5000 read-only), 0x200000 as a
    /// 2 MiB supervisor page.
    fn tables() -> HashMap<u64, u64> {
        let mut m = HashMap::new();
        m.insert(0x1000, 0x2000 | 7);
        m.insert(0x2000, 0x3000 | 7);
        m.insert(0x3000, 0x4000 | 7);
        m.insert(0x3008, 0x200000 | LARGE | 3);
        for page in 0..512u64 {
            let flags = if page == 5 { 5 } else { 7 };
            if page != 9 {
                m.insert(0x4000 + page * 8, (page << 12) | flags);
            }
        }
        m
    }

    fn walk(m: &HashMap<u64, u64>, linear: u64, access: Access) -> Result<u64, WalkError> {
        translate(
            |gpa| m.get(&gpa).copied().or(Some(0)),
            0x1000,
            linear,
            access,
            true,
        )
    }

    #[test]
    fn small_and_large_pages_translate() {
        let m = tables();
        assert_eq!(walk(&m, 0x1234, KERNEL_READ), Ok(0x1234));
        assert_eq!(walk(&m, 0x0023_4567, KERNEL_WRITE), Ok(0x0023_4567));
    }

    #[test]
    fn not_present_gives_a_page_fault_error_code() {
        let m = tables();
        assert_eq!(walk(&m, 0x9000, KERNEL_READ), Err(WalkError::PageFault(0)));
        assert_eq!(
            walk(&m, 0x9000, KERNEL_WRITE),
            Err(WalkError::PageFault(PF_WRITE))
        );
        assert_eq!(
            walk(&m, 0x4000_0000, KERNEL_READ),
            Err(WalkError::PageFault(0)),
            "no PDPT entry for the second GiB"
        );
    }

    #[test]
    fn read_only_pages_refuse_writes_under_cr0_wp() {
        let m = tables();
        assert_eq!(walk(&m, 0x5000, KERNEL_READ), Ok(0x5000));
        assert_eq!(
            walk(&m, 0x5000, KERNEL_WRITE),
            Err(WalkError::PageFault(PF_WRITE | PF_PROTECTION))
        );
        let without_wp = translate(
            |g| m.get(&g).copied().or(Some(0)),
            0x1000,
            0x5000,
            KERNEL_WRITE,
            false,
        );
        assert_eq!(
            without_wp,
            Ok(0x5000),
            "CR0.WP = 0 lets the supervisor write"
        );
    }

    #[test]
    fn supervisor_pages_refuse_user_accesses() {
        let m = tables();
        assert_eq!(walk(&m, 0x1000, USER_WRITE), Ok(0x1000));
        assert_eq!(
            walk(&m, 0x200000, USER_WRITE),
            Err(WalkError::PageFault(PF_USER | PF_WRITE | PF_PROTECTION))
        );
    }

    #[test]
    fn tables_outside_ram_and_non_canonical_addresses() {
        let m = tables();
        let outside = translate(
            |gpa| (gpa < 0x10000).then(|| m.get(&gpa).copied().unwrap_or(0)),
            0x8000_0000,
            0x1000,
            KERNEL_READ,
            true,
        );
        assert_eq!(outside, Err(WalkError::TableOutsideRam(0x8000_0000)));
        assert_eq!(
            walk(&m, 0x0000_8000_0000_0000, KERNEL_READ),
            Err(WalkError::NonCanonical)
        );
        assert_eq!(
            walk(&m, 0xffff_8000_0000_0000, KERNEL_READ),
            Err(WalkError::PageFault(0)),
            "canonical upper half, simply unmapped"
        );
    }
}
