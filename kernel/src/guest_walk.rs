//! Walking a guest's own page tables, for the accesses tessera makes on a
//! guest's behalf (the memory operand of emulated INS/OUTS).
//!
//! Three paging modes are walked: 32-bit paging with 4-MiB pages under
//! CR4.PSE (Intel SDM Vol. 3A, 5.3), PAE paging from the four PDPTE registers
//! (5.4) and 4- or 5-level paging (5.5). Access rights follow 5.6: a write
//! needs R/W set at every level when the access is a user one or CR0.WP is
//! set; a user access needs U/S at every level; with EFER.NXE an instruction
//! fetch needs XD clear at every level; SMEP and SMAP keep the supervisor
//! from executing or (without RFLAGS.AC) touching user pages. A failure is
//! the #PF error code the guest would have seen (5.7), so the emulation can
//! deliver the same fault the hardware would. Reserved bits are checked only
//! where a walk would otherwise misread an entry (XD without NXE, PS where no
//! large page exists, bit 21 of a 4-MiB PDE), not against MAXPHYADDR.
//! Table entries are read through a closure that returns `None` outside
//! guest RAM: a guest can point its tables anywhere, and that must not take
//! the hypervisor with it.

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;
const EXECUTE_DISABLE: u64 = 1 << 63;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
/// The page-frame bits of a 32-bit paging entry.
const ADDRESS_32: u64 = 0xffff_f000;

/// #PF error code: the fault was a protection violation (the page was present).
pub const PF_PROTECTION: u32 = 1 << 0;
/// #PF error code: the access was a write.
pub const PF_WRITE: u32 = 1 << 1;
/// #PF error code: the access was a user-mode one.
pub const PF_USER: u32 = 1 << 2;
/// #PF error code: a reserved bit was set in a paging-structure entry.
pub const PF_RESERVED: u32 = 1 << 3;
/// #PF error code: the access was an instruction fetch (reported only with
/// SMEP, or NXE under PAE or 4-/5-level paging).
pub const PF_FETCH: u32 = 1 << 4;

/// The access being translated (a data access; see [`Request`] for fetches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// A write (INS writes memory; OUTS reads it).
    pub write: bool,
    /// Made at CPL 3.
    pub user: bool,
}

/// What an access does to the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Fetch,
}

/// An access of any kind, for [`walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Read, write or fetch.
    pub operation: Operation,
    /// Made at CPL 3 (a user-mode access, SDM Vol. 3A, 5.6).
    pub user: bool,
}

impl From<Access> for Request {
    fn from(access: Access) -> Self {
        Request {
            operation: if access.write {
                Operation::Write
            } else {
                Operation::Read
            },
            user: access.user,
        }
    }
}

/// The guest's paging mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// 32-bit paging (CR4.PAE = 0); `pse` is CR4.PSE, which allows 4-MiB pages.
    Bits32 {
        /// CR4.PSE.
        pse: bool,
    },
    /// PAE paging, translated through the PDPTE registers loaded at the
    /// last MOV to CR0/CR3/CR4 (SDM Vol. 3A, 5.4.1), not re-read from memory.
    Pae {
        /// PDPTE0 to PDPTE3.
        pdptes: [u64; 4],
    },
    /// 4-level paging (IA-32e mode, CR4.LA57 = 0).
    Level4,
    /// 5-level paging (IA-32e mode, CR4.LA57 = 1).
    Level5,
}

/// The paging state a walk obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// The mode.
    pub mode: PagingMode,
    /// CR3 (ignored under PAE paging, whose PDPTEs are in the mode).
    pub cr3: u64,
    /// CR0.WP.
    pub write_protect: bool,
    /// EFER.NXE (meaningless under 32-bit paging).
    pub no_execute: bool,
    /// CR4.SMEP.
    pub smep: bool,
    /// CR4.SMAP with RFLAGS.AC = 0: supervisor data accesses to user pages fault.
    pub smap: bool,
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

/// Translates `linear` through 4-level tables at `cr3`. `read` returns the
/// 8-byte entry at a guest-physical address, or `None` outside guest RAM;
/// `write_protect` is the guest's CR0.WP. XD bits are accepted as if
/// EFER.NXE were set, and SMEP/SMAP are not applied; [`walk`] takes them all.
pub fn translate(
    read: impl Fn(u64) -> Option<u64>,
    cr3: u64,
    linear: u64,
    access: Access,
    write_protect: bool,
) -> Result<u64, WalkError> {
    let paging = Paging {
        mode: PagingMode::Level4,
        cr3,
        write_protect,
        no_execute: true,
        smep: false,
        smap: false,
    };
    walk(read, &paging, linear, access.into())
}

/// The rights accumulated along a walk (SDM Vol. 3A, 5.6).
struct Rights {
    writable: bool,
    user: bool,
    executable: bool,
}

impl Rights {
    /// Whether `request` may use a page reached with these rights.
    fn allow(&self, paging: &Paging, request: Request) -> bool {
        let supervisor_on_user_data = !request.user && self.user && paging.smap;
        match request.operation {
            Operation::Read => {
                if request.user {
                    self.user
                } else {
                    !supervisor_on_user_data
                }
            }
            Operation::Write => {
                if request.user {
                    self.user && self.writable
                } else {
                    !supervisor_on_user_data && (self.writable || !paging.write_protect)
                }
            }
            Operation::Fetch => {
                self.executable
                    && if request.user {
                        self.user
                    } else {
                        !(self.user && paging.smep)
                    }
            }
        }
    }
}

/// Translates `linear` for `request` under `paging`. `read` returns the
/// 8 bytes at a guest-physical address, or `None` outside guest RAM (32-bit
/// paging uses the low 4 of them).
pub fn walk(
    read: impl Fn(u64) -> Option<u64>,
    paging: &Paging,
    linear: u64,
    request: Request,
) -> Result<u64, WalkError> {
    let wide = !matches!(paging.mode, PagingMode::Bits32 { .. });
    // SDM Vol. 3A, 5.7: the error code's W, U and I flags.
    let mut error = 0;
    if request.operation == Operation::Write {
        error |= PF_WRITE;
    }
    if request.user {
        error |= PF_USER;
    }
    if request.operation == Operation::Fetch && (paging.smep || (wide && paging.no_execute)) {
        error |= PF_FETCH;
    }
    let not_present = Err(WalkError::PageFault(error));
    let reserved = Err(WalkError::PageFault(error | PF_PROTECTION | PF_RESERVED));
    let (linear, mut table, mut level) = match paging.mode {
        PagingMode::Bits32 { .. } => (linear & 0xffff_ffff, paging.cr3 & ADDRESS_32, 2),
        PagingMode::Pae { pdptes } => {
            let linear = linear & 0xffff_ffff;
            let pdpte = pdptes[(linear >> 30) as usize];
            if pdpte & PRESENT == 0 {
                return not_present;
            }
            (linear, pdpte & ADDRESS, 2)
        }
        PagingMode::Level4 | PagingMode::Level5 => {
            let levels = if paging.mode == PagingMode::Level5 {
                5
            } else {
                4
            };
            // Bits 63 down to the top translated bit must be equal
            // (SDM Vol. 1, 3.3.7.1).
            let top = (linear as i64) >> (12 + 9 * levels - 1);
            if top != 0 && top != -1 {
                return Err(WalkError::NonCanonical);
            }
            (linear, paging.cr3 & ADDRESS, levels)
        }
    };
    let mut rights = Rights {
        writable: true,
        user: true,
        executable: true,
    };
    loop {
        let (shift, slot) = if wide {
            let shift = 12 + 9 * (level - 1);
            (shift, table + ((linear >> shift) & 0x1ff) * 8)
        } else {
            let shift = 12 + 10 * (level - 1);
            (shift, table + ((linear >> shift) & 0x3ff) * 4)
        };
        let mut entry = read(slot).ok_or(WalkError::TableOutsideRam(slot))?;
        if !wide {
            entry &= 0xffff_ffff;
        }
        if entry & PRESENT == 0 {
            return not_present;
        }
        if wide && entry & EXECUTE_DISABLE != 0 && !paging.no_execute {
            // XD is reserved without EFER.NXE (SDM Vol. 3A, 5.4.2, 5.5.2).
            return reserved;
        }
        let large = entry & LARGE != 0;
        let leaf = match paging.mode {
            _ if level == 1 => true,
            PagingMode::Bits32 { pse } => large && pse,
            PagingMode::Pae { .. } => large,
            // PS is reserved in PML4Es and PML5Es.
            _ if large && level > 3 => return reserved,
            _ => large,
        };
        rights.writable &= entry & WRITABLE != 0;
        rights.user &= entry & USER != 0;
        rights.executable &= !(wide && paging.no_execute && entry & EXECUTE_DISABLE != 0);
        if leaf {
            let frame = if wide {
                let size = 1u64 << shift;
                entry & ADDRESS & !(size - 1)
            } else if level == 2 {
                // A 4-MiB page: bits 31:22 and, with PSE-36, bits 39:32
                // from PDE bits 20:13; bit 21 is reserved (SDM Vol. 3A, 5.3).
                if entry & (1 << 21) != 0 {
                    return reserved;
                }
                (entry & 0xffc0_0000) | (((entry >> 13) & 0xff) << 32)
            } else {
                entry & ADDRESS_32
            };
            if !rights.allow(paging, request) {
                return Err(WalkError::PageFault(error | PF_PROTECTION));
            }
            return Ok(frame | (linear & ((1u64 << shift) - 1)));
        }
        table = if wide {
            entry & ADDRESS
        } else {
            entry & ADDRESS_32
        };
        level -= 1;
    }
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

    fn walk4(m: &HashMap<u64, u64>, linear: u64, access: Access) -> Result<u64, WalkError> {
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
        assert_eq!(walk4(&m, 0x1234, KERNEL_READ), Ok(0x1234));
        assert_eq!(walk4(&m, 0x0023_4567, KERNEL_WRITE), Ok(0x0023_4567));
    }

    #[test]
    fn not_present_gives_a_page_fault_error_code() {
        let m = tables();
        assert_eq!(walk4(&m, 0x9000, KERNEL_READ), Err(WalkError::PageFault(0)));
        assert_eq!(
            walk4(&m, 0x9000, KERNEL_WRITE),
            Err(WalkError::PageFault(PF_WRITE))
        );
        assert_eq!(
            walk4(&m, 0x4000_0000, KERNEL_READ),
            Err(WalkError::PageFault(0)),
            "no PDPT entry for the second GiB"
        );
    }

    #[test]
    fn read_only_pages_refuse_writes_under_cr0_wp() {
        let m = tables();
        assert_eq!(walk4(&m, 0x5000, KERNEL_READ), Ok(0x5000));
        assert_eq!(
            walk4(&m, 0x5000, KERNEL_WRITE),
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
        assert_eq!(walk4(&m, 0x1000, USER_WRITE), Ok(0x1000));
        assert_eq!(
            walk4(&m, 0x200000, USER_WRITE),
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
            walk4(&m, 0x0000_8000_0000_0000, KERNEL_READ),
            Err(WalkError::NonCanonical)
        );
        assert_eq!(
            walk4(&m, 0xffff_8000_0000_0000, KERNEL_READ),
            Err(WalkError::PageFault(0)),
            "canonical upper half, simply unmapped"
        );
    }

    /// Guest RAM of 64 KiB, byte-addressed, for tables with 4-byte entries.
    struct Memory(std::vec::Vec<u8>);

    impl Memory {
        fn new() -> Self {
            Memory(std::vec![0; 0x10000])
        }
        fn put32(&mut self, gpa: u64, value: u32) {
            let at = gpa as usize;
            self.0[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        fn put64(&mut self, gpa: u64, value: u64) {
            let at = gpa as usize;
            self.0[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        fn read(&self) -> impl Fn(u64) -> Option<u64> + '_ {
            |gpa| {
                let at = gpa as usize;
                let bytes = self.0.get(at..at + 8)?;
                Some(u64::from_le_bytes(bytes.try_into().unwrap()))
            }
        }
    }

    const fn paging(mode: PagingMode, cr3: u64) -> Paging {
        Paging {
            mode,
            cr3,
            write_protect: true,
            no_execute: true,
            smep: false,
            smap: false,
        }
    }

    const READ: Request = Request {
        operation: Operation::Read,
        user: false,
    };
    const WRITE: Request = Request {
        operation: Operation::Write,
        user: false,
    };
    const FETCH: Request = Request {
        operation: Operation::Fetch,
        user: false,
    };
    const USER_READ: Request = Request {
        operation: Operation::Read,
        user: true,
    };
    const USER_FETCH: Request = Request {
        operation: Operation::Fetch,
        user: true,
    };

    /// 32-bit paging: page directory at 0x1000, page table at 0x2000.
    /// 0x0040_0000 is a 4-MiB PDE (frame 0x0080_0000, user, writable);
    /// 0x3000 -> 0x9000 read-only user; 0x4000 -> 0xa000 supervisor.
    fn thirty_two_bit() -> Memory {
        let mut m = Memory::new();
        m.put32(0x1000, 0x2000 | 7);
        m.put32(0x1004, 0x0080_0000 | 0x80 | 7);
        m.put32(0x2000 + 3 * 4, 0x9000 | 5);
        m.put32(0x2000 + 4 * 4, 0xa000 | 3);
        m
    }

    #[test]
    fn bits32_translates_4k_pages_through_4_byte_entries() {
        // SDM Vol. 3A, 5.3: PDE index 31:22, PTE index 21:12.
        let m = thirty_two_bit();
        let p = paging(PagingMode::Bits32 { pse: false }, 0x1000);
        assert_eq!(walk(m.read(), &p, 0x3123, READ), Ok(0x9123));
        assert_eq!(
            walk(m.read(), &p, 0xffff_ffff_0000_3123, READ),
            Ok(0x9123),
            "32-bit linear addresses"
        );
        assert_eq!(
            walk(m.read(), &p, 0x5000, READ),
            Err(WalkError::PageFault(0))
        );
    }

    #[test]
    fn bits32_4mib_pages_need_cr4_pse() {
        // SDM Vol. 3A, 5.3: PDE.PS maps 4 MiB only with CR4.PSE.
        let m = thirty_two_bit();
        let pse = paging(PagingMode::Bits32 { pse: true }, 0x1000);
        assert_eq!(walk(m.read(), &pse, 0x0041_2345, READ), Ok(0x0081_2345));
        let no_pse = paging(PagingMode::Bits32 { pse: false }, 0x1000);
        assert_eq!(
            walk(m.read(), &no_pse, 0x0041_2345, READ),
            Err(WalkError::TableOutsideRam(0x0080_0000 + 0x12 * 4)),
            "without PSE the PDE points to a page table"
        );
    }

    #[test]
    fn bits32_4mib_pse36_and_reserved_bit_21() {
        // SDM Vol. 3A, 5.3: PDE bits 20:13 are physical bits 39:32.
        let mut m = thirty_two_bit();
        m.put32(0x1008, 0x00c0_0000 | (0x3 << 13) | 0x80 | 3);
        m.put32(0x100c, 0x00c0_0000 | (1 << 21) | 0x80 | 3);
        let p = paging(PagingMode::Bits32 { pse: true }, 0x1000);
        assert_eq!(walk(m.read(), &p, 0x0080_0010, READ), Ok(0x3_00c0_0010));
        assert_eq!(
            walk(m.read(), &p, 0x00c0_0010, READ),
            Err(WalkError::PageFault(PF_PROTECTION | PF_RESERVED))
        );
    }

    #[test]
    fn bits32_access_rights() {
        // SDM Vol. 3A, 5.6: read-only under WP, supervisor-only pages.
        let m = thirty_two_bit();
        let mut p = paging(PagingMode::Bits32 { pse: false }, 0x1000);
        assert_eq!(
            walk(m.read(), &p, 0x3000, WRITE),
            Err(WalkError::PageFault(PF_PROTECTION | PF_WRITE))
        );
        assert_eq!(
            walk(m.read(), &p, 0x4000, USER_READ),
            Err(WalkError::PageFault(PF_PROTECTION | PF_USER))
        );
        p.write_protect = false;
        assert_eq!(walk(m.read(), &p, 0x3000, WRITE), Ok(0x9000));
        assert_eq!(
            walk(m.read(), &p, 0x3000, FETCH),
            Ok(0x9000),
            "no execute-disable under 32-bit paging"
        );
    }

    /// PAE paging: PDPTE0 -> page directory 0x3000, PDPTE3 not present.
    /// 0x0000_0000-0x001f_ffff through page table 0x4000 (0x5000 execute-
    /// disabled, user); 0x0020_0000 a 2-MiB supervisor page at 0x0060_0000.
    fn pae() -> (Memory, Paging) {
        let mut m = Memory::new();
        m.put64(0x3000, 0x4000 | 7);
        m.put64(0x3008, 0x0060_0000 | 0x80 | 3);
        m.put64(0x4000 + 5 * 8, 0xb000 | EXECUTE_DISABLE | 7);
        m.put64(0x4000 + 6 * 8, 0xc000 | 7);
        let pdptes = [0x3000 | 1, 0x3000 | 1, 0x3000 | 1, 0];
        (m, paging(PagingMode::Pae { pdptes }, 0xdead_0000))
    }

    #[test]
    fn pae_translates_through_the_pdpte_registers() {
        // SDM Vol. 3A, 5.4.2: PDPTE by bits 31:30, then 9-bit indices.
        let (m, p) = pae();
        assert_eq!(walk(m.read(), &p, 0x6abc, READ), Ok(0xcabc));
        assert_eq!(walk(m.read(), &p, 0x0021_2345, WRITE), Ok(0x0061_2345));
        assert_eq!(
            walk(m.read(), &p, 0x4000_6abc, READ),
            Ok(0xcabc),
            "PDPTE1 aliases the same directory"
        );
        assert_eq!(
            walk(m.read(), &p, 0xc000_0000, WRITE),
            Err(WalkError::PageFault(PF_WRITE)),
            "not-present PDPTE"
        );
    }

    #[test]
    fn pae_execute_disable_and_the_fetch_flag() {
        // SDM Vol. 3A, 5.6 and 5.7: XD under NXE; I/D reported with NXE.
        let (m, mut p) = pae();
        assert_eq!(walk(m.read(), &p, 0x5000, READ), Ok(0xb000));
        assert_eq!(
            walk(m.read(), &p, 0x5000, USER_FETCH),
            Err(WalkError::PageFault(PF_PROTECTION | PF_USER | PF_FETCH))
        );
        assert_eq!(walk(m.read(), &p, 0x6000, USER_FETCH), Ok(0xc000));
        p.no_execute = false;
        assert_eq!(
            walk(m.read(), &p, 0x5000, READ),
            Err(WalkError::PageFault(PF_PROTECTION | PF_RESERVED)),
            "XD is a reserved bit without NXE"
        );
        assert_eq!(
            walk(m.read(), &p, 0x7000, FETCH),
            Err(WalkError::PageFault(0)),
            "no I/D flag without NXE or SMEP"
        );
    }

    #[test]
    fn smep_and_smap_keep_the_supervisor_off_user_pages() {
        // SDM Vol. 3A, 5.6.
        let (m, mut p) = pae();
        assert_eq!(walk(m.read(), &p, 0x6000, FETCH), Ok(0xc000));
        p.smep = true;
        assert_eq!(
            walk(m.read(), &p, 0x6000, FETCH),
            Err(WalkError::PageFault(PF_PROTECTION | PF_FETCH))
        );
        assert_eq!(walk(m.read(), &p, 0x6000, WRITE), Ok(0xc000));
        p.smap = true;
        assert_eq!(
            walk(m.read(), &p, 0x6000, WRITE),
            Err(WalkError::PageFault(PF_PROTECTION | PF_WRITE))
        );
        assert_eq!(
            walk(m.read(), &p, 0x0020_0000, WRITE),
            Ok(0x0060_0000),
            "supervisor pages are unaffected"
        );
    }

    #[test]
    fn four_level_ps_in_a_pml4e_is_reserved_and_nx_applies() {
        let mut m = Memory::new();
        m.put64(0x1000, 0x2000 | 0x80 | 7);
        m.put64(0x1008, 0x3000 | EXECUTE_DISABLE | 7);
        m.put64(0x3000, 0x4000_0000 | 0x80 | 7);
        let p = paging(PagingMode::Level4, 0x1000);
        assert_eq!(
            walk(m.read(), &p, 0x10, READ),
            Err(WalkError::PageFault(PF_PROTECTION | PF_RESERVED))
        );
        let gib = 0x0080_0000_0000u64;
        assert_eq!(
            walk(m.read(), &p, gib + 0x1234, READ),
            Ok(0x4000_1234),
            "1-GiB page"
        );
        assert_eq!(
            walk(m.read(), &p, gib, FETCH),
            Err(WalkError::PageFault(PF_PROTECTION | PF_FETCH)),
            "XD in the PML4E covers the whole walk"
        );
    }

    #[test]
    fn five_level_paging_widens_the_canonical_range() {
        // SDM Vol. 1, 3.3.7.1: 57-bit canonical addresses under LA57.
        let m = Memory::new();
        let p = paging(PagingMode::Level5, 0x1000);
        assert_eq!(
            walk(m.read(), &p, 0x0000_8000_0000_0000, READ),
            Err(WalkError::PageFault(0)),
            "canonical with 5 levels, just unmapped"
        );
        assert_eq!(
            walk(m.read(), &p, 0x0100_0000_0000_0000, READ),
            Err(WalkError::NonCanonical)
        );
    }
}
