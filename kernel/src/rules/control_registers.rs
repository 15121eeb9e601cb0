//! MOV to CR0/CR3/CR4/CR8, LMSW and CLTS: which writes fault, what the guest
//! sees afterwards, and what the write sets in motion (IA-32e mode switch,
//! PDPTE load, TLB flush).
//!
//! The rules follow SDM Vol. 3A, 2.5 and the MOV (control registers), LMSW
//! and CLTS pages of Vol. 2. They speak of the *visible* registers, the
//! values the guest reads back; what the processor runs with is derived from
//! them by the backend (see [`hardware_cr0`]). Loading the PDPTEs needs guest
//! memory, so the rules only say *when* (and [`pdpte_valid`] says whether one
//! entry is acceptable); the caller reads them and delivers #GP(0) if one is not.

use super::bits::{cr0, cr4, efer};
use super::Fault;

/// The guest's view of its control state, the input of every rule here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControlState {
    /// CR0 as the guest sees it.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4 as the guest sees it.
    pub cr4: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// CS.L, the code segment's 64-bit flag (meaningful only with EFER.LMA).
    pub cs_long: bool,
    /// The current privilege level.
    pub cpl: u8,
}

impl ControlState {
    /// IA-32e mode is active (EFER.LMA).
    pub const fn ia32e_mode(&self) -> bool {
        self.efer & efer::LMA != 0
    }

    /// 64-bit mode: IA-32e mode with a 64-bit code segment (SDM Vol. 3A, 2.2).
    pub const fn in_64bit_mode(&self) -> bool {
        self.ia32e_mode() && self.cs_long
    }

    /// PAE paging is in use: CR0.PG, CR4.PAE and not EFER.LME (SDM Vol. 3A, 5.1.1).
    pub const fn pae_paging(&self) -> bool {
        pae_paging(self.cr0, self.cr4, self.efer)
    }
}

const fn pae_paging(cr0: u64, cr4: u64, efer: u64) -> bool {
    cr0 & cr0::PG != 0 && cr4 & cr4::PAE != 0 && efer & efer::LME == 0
}

/// What a MOV to CR0 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr0Write {
    /// CR0 as the guest will read it.
    pub value: u64,
    /// IA32_EFER afterwards (LMA = CR0.PG and EFER.LME).
    pub efer: u64,
    /// `Some(true)` if IA-32e mode becomes active, `Some(false)` if it ends.
    pub ia32e: Option<bool>,
    /// The PDPTEs must be loaded from CR3 (and checked) before the write completes.
    pub load_pdptes: bool,
    /// Cached translations must be flushed.
    pub flush_tlb: bool,
}

/// What a MOV to CR4 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr4Write {
    /// CR4 as the guest will read it.
    pub value: u64,
    /// The PDPTEs must be loaded from CR3 (and checked) before the write completes.
    pub load_pdptes: bool,
    /// Cached translations must be flushed.
    pub flush_tlb: bool,
}

/// What a MOV to CR3 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr3Write {
    /// CR3 afterwards (bit 63, the PCID no-flush hint, is never stored).
    pub value: u64,
    /// The PDPTEs must be loaded from the new CR3 (and checked).
    pub load_pdptes: bool,
    /// Non-global translations of the current PCID must be flushed.
    pub flush_tlb: bool,
}

/// Outside 64-bit mode MOV to CRn has a 32-bit operand: the register's upper
/// half does not reach the control register (Vol. 2, MOV—Move to/from
/// Control Registers: "operand size ... 32 bits" outside 64-bit mode).
fn operand(state: &ControlState, value: u64) -> u64 {
    if state.in_64bit_mode() {
        value
    } else {
        value & 0xffff_ffff
    }
}

fn privileged(state: &ControlState) -> Result<(), Fault> {
    // MOV to CRn is a CPL-0 instruction (Vol. 2, MOV CR exceptions).
    if state.cpl == 0 {
        Ok(())
    } else {
        Err(Fault::GP0)
    }
}

/// Decides a MOV to CR0 of `value` (SDM Vol. 3A, 2.5; Vol. 2, MOV CR).
pub fn write_cr0(state: &ControlState, value: u64) -> Result<Cr0Write, Fault> {
    privileged(state)?;
    let value = operand(state, value);
    // Bits 63:32 are reserved and fault; reserved bits in 31:0 are ignored
    // (SDM Vol. 3A, 2.5). ET is hardwired to 1.
    if value >> 32 != 0 {
        return Err(Fault::GP0);
    }
    let value = (value & cr0::DEFINED) | cr0::ET;
    let old = state.cr0;
    let set = |bit: u64| value & bit != 0;
    let was = |bit: u64| old & bit != 0;
    // Invalid combinations: PG without PE, NW without CD (Vol. 2, MOV CR).
    if (set(cr0::PG) && !set(cr0::PE)) || (set(cr0::NW) && !set(cr0::CD)) {
        return Err(Fault::GP0);
    }
    let lme = state.efer & efer::LME != 0;
    if set(cr0::PG) && !was(cr0::PG) && lme {
        // Activating IA-32e mode needs CR4.PAE (SDM Vol. 3A, 10.8.5) and,
        // per the MOV CR page, a code segment without CS.L.
        if state.cr4 & cr4::PAE == 0 || state.cs_long {
            return Err(Fault::GP0);
        }
    }
    if was(cr0::PG) && !set(cr0::PG) {
        // IA-32e mode is left from compatibility mode only (SDM Vol. 3A,
        // 10.8.5.4); in 64-bit mode clearing PG faults. With CR4.PCIDE = 1
        // paging cannot be turned off at all (Vol. 2, MOV CR).
        if state.in_64bit_mode() || state.cr4 & cr4::PCIDE != 0 {
            return Err(Fault::GP0);
        }
    }
    // CR4.CET requires CR0.WP: WP cannot be cleared under CET (SDM Vol. 3A, 2.5).
    if !set(cr0::WP) && state.cr4 & cr4::CET != 0 {
        return Err(Fault::GP0);
    }
    let long = set(cr0::PG) && lme;
    let new_efer = if long {
        state.efer | efer::LMA
    } else {
        state.efer & !efer::LMA
    };
    let ia32e = (long != state.ia32e_mode()).then_some(long);
    let changed = value ^ old;
    // SDM Vol. 3A, 5.4.1: with PAE paging in use after the instruction, a
    // MOV to CR0 that modifies CD, NW or PG loads the PDPTEs.
    let load_pdptes =
        pae_paging(value, state.cr4, state.efer) && changed & (cr0::PG | cr0::CD | cr0::NW) != 0;
    // Clearing PG flushes everything (SDM Vol. 3A, 5.10.4.1). Setting PG and
    // changing WP or CD alter how cached translations may be used; tessera
    // flushes then as well, which is always allowed.
    let flush_tlb = changed & (cr0::PG | cr0::WP | cr0::CD) != 0;
    Ok(Cr0Write {
        value,
        efer: new_efer,
        ia32e,
        load_pdptes,
        flush_tlb,
    })
}

/// The CR0 the processor runs with for a guest whose visible CR0 is
/// `visible`: CD and NW cleared.
///
/// tessera owns CD and NW (guest/host mask and read shadow): the guest reads
/// back what it wrote, but the hardware always caches. Neither VM entry nor
/// VM exit changes the processor's CD/NW (SDM Vol. 3C, 28.3.2.1 and
/// 29.5.1), so a guest's CD = 1 would leave the physical CPU uncached for
/// the host and every other VM sharing it.
pub const fn hardware_cr0(visible: u64) -> u64 {
    visible & !(cr0::CD | cr0::NW)
}

/// Decides a MOV to CR4 of `value`; `supported` holds the CR4 bits tessera
/// offers this guest (VMXE and SMXE are refused regardless: tessera does not
/// nest, and SMX is not offered).
pub fn write_cr4(state: &ControlState, value: u64, supported: u64) -> Result<Cr4Write, Fault> {
    privileged(state)?;
    let value = operand(state, value);
    let offered = supported & cr4::ARCHITECTURAL & !(cr4::VMXE | cr4::SMXE);
    // Reserved or unsupported bits fault (SDM Vol. 3A, 2.5.1; Vol. 2, MOV CR).
    if value & !offered != 0 {
        return Err(Fault::GP0);
    }
    let old = state.cr4;
    let changed = value ^ old;
    let ia32e = state.ia32e_mode();
    // PAE cannot be cleared while IA-32e mode is active (SDM Vol. 3A, 5.1.2).
    if ia32e && value & cr4::PAE == 0 {
        return Err(Fault::GP0);
    }
    // PCIDE can be set only in IA-32e mode and only with CR3[11:0] = 0
    // (SDM Vol. 3A, 2.5 and 5.10.1).
    if value & cr4::PCIDE != 0 && old & cr4::PCIDE == 0 && (!ia32e || state.cr3 & 0xfff != 0) {
        return Err(Fault::GP0);
    }
    // LA57 cannot be modified in IA-32e mode (SDM Vol. 3A, 2.5).
    if ia32e && changed & cr4::LA57 != 0 {
        return Err(Fault::GP0);
    }
    // CET cannot be set while CR0.WP = 0 (SDM Vol. 3A, 2.5).
    if value & cr4::CET != 0 && state.cr0 & cr0::WP == 0 {
        return Err(Fault::GP0);
    }
    // SDM Vol. 3A, 5.4.1: with PAE paging in use after the instruction, a
    // MOV to CR4 that modifies PAE, PGE, PSE or SMEP loads the PDPTEs.
    let load_pdptes = pae_paging(state.cr0, value, state.efer)
        && changed & (cr4::PAE | cr4::PGE | cr4::PSE | cr4::SMEP) != 0;
    // SDM Vol. 3A, 5.10.4.1 names PGE, PCIDE 1 -> 0, PAE and SMEP 0 -> 1;
    // tessera flushes on any change of a paging-mode modifier (5.1.3) or of
    // the paging mode, which is a superset and always allowed.
    let flush_tlb = changed
        & (cr4::PGE
            | cr4::PAE
            | cr4::PSE
            | cr4::PCIDE
            | cr4::SMEP
            | cr4::SMAP
            | cr4::PKE
            | cr4::PKS
            | cr4::LA57)
        != 0;
    Ok(Cr4Write {
        value,
        load_pdptes,
        flush_tlb,
    })
}

/// CR3 bit 63 under CR4.PCIDE: do not flush the new PCID's translations.
pub const CR3_NO_FLUSH: u64 = 1 << 63;

/// Bits `phys_bits` and up of a 64-bit physical-address field.
const fn above_physical(phys_bits: u8) -> u64 {
    if phys_bits >= 64 {
        0
    } else {
        u64::MAX << phys_bits
    }
}

/// Decides a MOV to CR3 of `value`; `phys_bits` is the guest's MAXPHYADDR.
pub fn write_cr3(state: &ControlState, value: u64, phys_bits: u8) -> Result<Cr3Write, Fault> {
    privileged(state)?;
    let mut value = operand(state, value);
    let mut flush_tlb = true;
    if state.ia32e_mode() {
        // With PCIDE, bit 63 asks for no flush and is not stored
        // (SDM Vol. 3A, 5.10.4.1); otherwise it is reserved like the other
        // bits at and above MAXPHYADDR (SDM Vol. 3A, 5.5, Table 5-12).
        if state.cr4 & cr4::PCIDE != 0 && value & CR3_NO_FLUSH != 0 {
            value &= !CR3_NO_FLUSH;
            flush_tlb = false;
        }
        if value & above_physical(phys_bits) != 0 {
            return Err(Fault::GP0);
        }
    }
    // Outside IA-32e mode CR3 is 32 bits and has no reserved bits: 32-bit
    // and PAE paging ignore its low bits (SDM Vol. 3A, 5.3 and 5.4.1).
    Ok(Cr3Write {
        value,
        // SDM Vol. 3A, 5.4.1: MOV to CR3 under PAE paging loads the PDPTEs.
        load_pdptes: state.pae_paging(),
        flush_tlb,
    })
}

/// The physical address of the PAE page-directory-pointer table in `cr3`
/// (bits 31:5, SDM Vol. 3A, 5.4.1).
pub const fn pdpt_address(cr3: u64) -> u64 {
    cr3 & 0xffff_ffe0
}

/// Whether a PAE PDPTE may be loaded: not present, or present with its
/// reserved bits (2:1, 8:5 and 63:MAXPHYADDR) clear (SDM Vol. 3A, 5.4.1).
/// A MOV to CR0/CR3/CR4 that loads an invalid PDPTE raises #GP(0).
pub const fn pdpte_valid(entry: u64, phys_bits: u8) -> bool {
    const PRESENT: u64 = 1 << 0;
    const RESERVED_LOW: u64 = 0b1_1110_0110;
    entry & PRESENT == 0 || entry & (RESERVED_LOW | above_physical(phys_bits)) == 0
}

/// LMSW with `source`: loads PE, MP, EM and TS, but cannot clear PE
/// (Vol. 2, LMSW).
pub const fn lmsw(cr0: u64, source: u16) -> u64 {
    let low = cr0::PE | cr0::MP | cr0::EM | cr0::TS;
    (cr0 & !low) | (source as u64 & low) | (cr0 & cr0::PE)
}

/// CLTS: clears CR0.TS (Vol. 2, CLTS).
pub const fn clts(cr0: u64) -> u64 {
    cr0 & !cr0::TS
}

/// Decides a MOV to CR8 (64-bit mode only): the new task-priority class,
/// or #GP(0) if bits 63:4 are set (SDM Vol. 3A, 2.5).
pub fn write_cr8(value: u64) -> Result<u8, Fault> {
    if value >> 4 != 0 {
        return Err(Fault::GP0);
    }
    Ok(value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit kernel: protected mode, paging, PAE, long mode, CPL 0.
    const LONG: ControlState = ControlState {
        cr0: cr0::PE | cr0::ET | cr0::NE | cr0::WP | cr0::PG,
        cr3: 0x1000,
        cr4: cr4::PAE | cr4::PGE,
        efer: efer::SCE | efer::LME | efer::LMA | efer::NXE,
        cs_long: true,
        cpl: 0,
    };
    /// Just after reset: real mode.
    const REAL: ControlState = ControlState {
        cr0: cr0::ET | cr0::CD | cr0::NW,
        cr3: 0,
        cr4: 0,
        efer: 0,
        cs_long: false,
        cpl: 0,
    };
    /// Compatibility mode: IA-32e active, CS.L = 0.
    const COMPAT: ControlState = ControlState {
        cs_long: false,
        ..LONG
    };
    /// A 32-bit kernel with PAE paging.
    const PAE: ControlState = ControlState {
        cr0: cr0::PE | cr0::ET | cr0::PG,
        cr3: 0x2000,
        cr4: cr4::PAE,
        efer: 0,
        cs_long: false,
        cpl: 0,
    };
    const ALL_CR4: u64 = cr4::ARCHITECTURAL;

    #[test]
    fn cr0_upper_half_faults_in_64bit_mode() {
        // SDM Vol. 3A, 2.5: bits 63:32 are reserved; writing 1 is #GP(0).
        assert_eq!(write_cr0(&LONG, LONG.cr0 | 1 << 32), Err(Fault::GP0));
    }

    #[test]
    fn cr0_operand_is_32_bits_outside_64bit_mode() {
        // MOV CR outside 64-bit mode takes EAX, not RAX.
        let w = write_cr0(&REAL, (1 << 40) | cr0::PE).unwrap();
        assert_eq!(w.value, cr0::PE | cr0::ET);
    }

    #[test]
    fn cr0_reserved_low_bits_are_dropped_and_et_reads_one() {
        // SDM Vol. 3A, 2.5: reserved bits 31:0 are ignored; ET is 1.
        let w = write_cr0(&REAL, cr0::PE | (1 << 6) | (1 << 17) | (1 << 28)).unwrap();
        assert_eq!(w.value, cr0::PE | cr0::ET);
        assert_eq!(write_cr0(&REAL, 0).unwrap().value, cr0::ET);
    }

    #[test]
    fn cr0_pg_without_pe_faults() {
        assert_eq!(write_cr0(&REAL, cr0::PG), Err(Fault::GP0));
    }

    #[test]
    fn cr0_clearing_pe_while_pg_stays_set_faults() {
        assert_eq!(write_cr0(&PAE, PAE.cr0 & !cr0::PE), Err(Fault::GP0));
    }

    #[test]
    fn cr0_nw_without_cd_faults() {
        assert_eq!(write_cr0(&REAL, cr0::NW), Err(Fault::GP0));
        assert!(write_cr0(&REAL, cr0::NW | cr0::CD).is_ok());
    }

    #[test]
    fn cr0_pg_with_lme_needs_pae() {
        // SDM Vol. 3A, 10.8.5: IA-32e mode needs CR4.PAE before CR0.PG.
        let state = ControlState {
            cr0: cr0::PE | cr0::ET,
            efer: efer::LME,
            ..REAL
        };
        assert_eq!(write_cr0(&state, state.cr0 | cr0::PG), Err(Fault::GP0));
    }

    #[test]
    fn cr0_pg_with_lme_and_cs_l_faults() {
        // MOV CR page: activating IA-32e mode with CS.L = 1 is #GP(0).
        let state = ControlState {
            cr0: cr0::PE | cr0::ET,
            cr4: cr4::PAE,
            efer: efer::LME,
            cs_long: true,
            ..REAL
        };
        assert_eq!(write_cr0(&state, state.cr0 | cr0::PG), Err(Fault::GP0));
    }

    #[test]
    fn cr0_pg_with_lme_and_pae_activates_ia32e_mode() {
        // SDM Vol. 3A, 10.8.5: LMA = LME and PG.
        let state = ControlState {
            cr0: cr0::PE | cr0::ET,
            cr4: cr4::PAE,
            efer: efer::LME,
            ..REAL
        };
        let w = write_cr0(&state, state.cr0 | cr0::PG).unwrap();
        assert_eq!(w.ia32e, Some(true));
        assert_eq!(w.efer, efer::LME | efer::LMA);
        assert!(!w.load_pdptes, "IA-32e paging has no PDPTE registers");
        assert!(w.flush_tlb);
    }

    #[test]
    fn cr0_clearing_pg_in_64bit_mode_faults() {
        // SDM Vol. 3A, 10.8.5.4: leave IA-32e mode from compatibility mode.
        assert_eq!(write_cr0(&LONG, LONG.cr0 & !cr0::PG), Err(Fault::GP0));
    }

    #[test]
    fn cr0_clearing_pg_in_compatibility_mode_leaves_ia32e_mode() {
        let w = write_cr0(&COMPAT, COMPAT.cr0 & !cr0::PG).unwrap();
        assert_eq!(w.ia32e, Some(false));
        assert_eq!(w.efer & efer::LMA, 0);
        assert_ne!(w.efer & efer::LME, 0, "LME stays set");
        assert!(w.flush_tlb);
    }

    #[test]
    fn cr0_clearing_pg_with_pcide_faults() {
        let state = ControlState {
            cr4: COMPAT.cr4 | cr4::PCIDE,
            ..COMPAT
        };
        assert_eq!(write_cr0(&state, state.cr0 & !cr0::PG), Err(Fault::GP0));
    }

    #[test]
    fn cr0_clearing_wp_under_cet_faults() {
        let state = ControlState {
            cr4: LONG.cr4 | cr4::CET,
            ..LONG
        };
        assert_eq!(write_cr0(&state, state.cr0 & !cr0::WP), Err(Fault::GP0));
        assert!(write_cr0(&LONG, LONG.cr0 & !cr0::WP).unwrap().flush_tlb);
    }

    #[test]
    fn cr0_at_cpl3_faults() {
        let state = ControlState { cpl: 3, ..LONG };
        assert_eq!(write_cr0(&state, LONG.cr0), Err(Fault::GP0));
    }

    #[test]
    fn cr0_pdptes_load_when_pg_cd_or_nw_change_under_pae_paging() {
        // SDM Vol. 3A, 5.4.1.
        let off = ControlState {
            cr0: cr0::PE | cr0::ET,
            ..PAE
        };
        assert!(write_cr0(&off, PAE.cr0).unwrap().load_pdptes, "PG set");
        assert!(
            write_cr0(&PAE, PAE.cr0 | cr0::CD).unwrap().load_pdptes,
            "CD changed"
        );
        let w = write_cr0(&PAE, PAE.cr0 | cr0::TS).unwrap();
        assert!(!w.load_pdptes && !w.flush_tlb, "TS alone changes neither");
        assert!(
            !write_cr0(&PAE, PAE.cr0 & !cr0::PG).unwrap().load_pdptes,
            "no PAE paging after the write"
        );
    }

    #[test]
    fn hardware_cr0_never_disables_caches() {
        let visible = cr0::PE | cr0::PG | cr0::CD | cr0::NW;
        assert_eq!(hardware_cr0(visible), cr0::PE | cr0::PG);
    }

    #[test]
    fn cr4_unsupported_bits_fault() {
        assert_eq!(
            write_cr4(&LONG, LONG.cr4 | cr4::SMEP, LONG.cr4),
            Err(Fault::GP0)
        );
        assert_eq!(
            write_cr4(&LONG, LONG.cr4 | 1 << 15, u64::MAX),
            Err(Fault::GP0)
        );
        assert_eq!(
            write_cr4(&LONG, LONG.cr4 | cr4::VMXE, ALL_CR4),
            Err(Fault::GP0),
            "tessera does not nest"
        );
        assert_eq!(
            write_cr4(&LONG, LONG.cr4 | cr4::SMXE, ALL_CR4),
            Err(Fault::GP0)
        );
    }

    #[test]
    fn cr4_clearing_pae_in_ia32e_mode_faults() {
        // SDM Vol. 3A, 5.1.2.
        assert_eq!(write_cr4(&LONG, cr4::PGE, ALL_CR4), Err(Fault::GP0));
        assert_eq!(write_cr4(&COMPAT, cr4::PGE, ALL_CR4), Err(Fault::GP0));
        assert!(write_cr4(&PAE, 0, ALL_CR4).is_ok(), "PAE to 32-bit paging");
    }

    #[test]
    fn cr4_pcide_needs_ia32e_mode_and_pcid_zero() {
        // SDM Vol. 3A, 2.5 and 5.10.1.
        assert!(write_cr4(&LONG, LONG.cr4 | cr4::PCIDE, ALL_CR4).is_ok());
        assert_eq!(
            write_cr4(&PAE, PAE.cr4 | cr4::PCIDE, ALL_CR4),
            Err(Fault::GP0)
        );
        let pcid = ControlState {
            cr3: 0x1005,
            ..LONG
        };
        assert_eq!(
            write_cr4(&pcid, LONG.cr4 | cr4::PCIDE, ALL_CR4),
            Err(Fault::GP0)
        );
    }

    #[test]
    fn cr4_la57_cannot_change_in_ia32e_mode() {
        assert_eq!(
            write_cr4(&LONG, LONG.cr4 | cr4::LA57, ALL_CR4),
            Err(Fault::GP0)
        );
        assert!(write_cr4(&REAL, cr4::LA57, ALL_CR4).is_ok());
    }

    #[test]
    fn cr4_cet_needs_wp() {
        assert!(write_cr4(&LONG, LONG.cr4 | cr4::CET, ALL_CR4).is_ok());
        let no_wp = ControlState {
            cr0: LONG.cr0 & !cr0::WP,
            ..LONG
        };
        assert_eq!(
            write_cr4(&no_wp, LONG.cr4 | cr4::CET, ALL_CR4),
            Err(Fault::GP0)
        );
    }

    #[test]
    fn cr4_pdptes_and_tlb() {
        // SDM Vol. 3A, 5.4.1: PAE, PGE, PSE, SMEP changes under PAE paging.
        let w = write_cr4(&PAE, PAE.cr4 | cr4::PGE, ALL_CR4).unwrap();
        assert!(w.load_pdptes && w.flush_tlb);
        let w = write_cr4(&PAE, PAE.cr4 | cr4::OSFXSR, ALL_CR4).unwrap();
        assert!(!w.load_pdptes && !w.flush_tlb);
        let w = write_cr4(&LONG, LONG.cr4 & !cr4::PGE, ALL_CR4).unwrap();
        assert!(!w.load_pdptes && w.flush_tlb, "no PDPTEs in IA-32e paging");
        let thirty_two = ControlState { cr4: 0, ..PAE };
        let w = write_cr4(&thirty_two, cr4::PAE, ALL_CR4).unwrap();
        assert!(w.load_pdptes, "entering PAE paging");
    }

    #[test]
    fn cr3_bits_above_maxphyaddr_fault_in_ia32e_mode() {
        assert_eq!(write_cr3(&LONG, 1 << 40, 39), Err(Fault::GP0));
        assert_eq!(write_cr3(&LONG, 1 << 38, 39).unwrap().value, 1 << 38);
        assert_eq!(
            write_cr3(&LONG, CR3_NO_FLUSH | 0x1000, 52),
            Err(Fault::GP0),
            "bit 63 is reserved without PCIDE"
        );
    }

    #[test]
    fn cr3_bit_63_with_pcide_skips_the_flush_and_is_not_stored() {
        let state = ControlState {
            cr4: LONG.cr4 | cr4::PCIDE,
            ..LONG
        };
        let w = write_cr3(&state, CR3_NO_FLUSH | 0x3005, 46).unwrap();
        assert_eq!(w.value, 0x3005);
        assert!(!w.flush_tlb);
        assert!(write_cr3(&state, 0x3005, 46).unwrap().flush_tlb);
    }

    #[test]
    fn cr3_under_pae_paging_loads_pdptes_and_is_32_bits() {
        let w = write_cr3(&PAE, 0xdead_0000_1234_5000, 36).unwrap();
        assert_eq!(w.value, 0x1234_5000);
        assert!(w.load_pdptes && w.flush_tlb);
        assert!(!write_cr3(&LONG, 0x5000, 36).unwrap().load_pdptes);
    }

    #[test]
    fn pdptes_reserved_bits() {
        // SDM Vol. 3A, 5.4.1: bits 2:1, 8:5 and 63:MAXPHYADDR.
        assert!(pdpte_valid(0x1000 | 1, 36));
        assert!(pdpte_valid(0xffff_ffff_ffff_fffe, 36), "not present");
        assert!(!pdpte_valid(0x1000 | 1 | 1 << 1, 36));
        assert!(!pdpte_valid(0x1000 | 1 | 1 << 7, 36));
        assert!(!pdpte_valid(1 | 1 << 36, 36));
        assert!(!pdpte_valid(1 | 1 << 63, 52), "no XD bit in a PDPTE");
        assert!(
            pdpte_valid(1 | 1 << 3 | 1 << 4 | 1 << 9, 36),
            "PWT PCD ignored"
        );
        assert_eq!(pdpt_address(0x1234_5678), 0x1234_5660);
    }

    #[test]
    fn lmsw_loads_the_low_four_bits_but_never_clears_pe() {
        let cr0 = cr0::PE | cr0::TS | cr0::PG;
        assert_eq!(lmsw(cr0, 0), cr0::PE | cr0::PG);
        assert_eq!(lmsw(0, 0xffff), cr0::PE | cr0::MP | cr0::EM | cr0::TS);
        assert_eq!(clts(cr0), cr0::PE | cr0::PG);
    }

    #[test]
    fn cr8_reserved_bits() {
        assert_eq!(write_cr8(15), Ok(15));
        assert_eq!(write_cr8(16), Err(Fault::GP0));
    }
}
