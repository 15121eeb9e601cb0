//! The virtual machine control block (APM Vol. 2, Appendix B "Layout of
//! VMCB"): a 4 KiB page, the control area at 000h and the state-save area
//! at 400h. Unlike a VMCS it is ordinary memory that software reads and
//! writes directly; the processor caches parts of it between VMRUNs unless
//! the matching clean bit is clear (15.15 "VMCB State Caching").
//!
//! The layout is plain data and host-tested: every offset the backend uses
//! is pinned against the APM's table by a test below.

/// A segment register in the state-save area (APM Vol. 2, B.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Segment {
    /// The selector.
    pub selector: u16,
    /// The attributes in SVM's packed form: descriptor bits 47:40 in 7:0,
    /// bits 55:52 (AVL, L, D/B, G) in 11:8.
    pub attributes: u16,
    /// The limit, in bytes (already scaled by G).
    pub limit: u32,
    /// The base.
    pub base: u64,
}

/// The control area (APM Vol. 2, Table B-1).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Control {
    /// 000h: CR0-15 read intercepts (15:0), write intercepts (31:16).
    pub cr_intercepts: u32,
    /// 004h: DR0-15 read intercepts (15:0), write intercepts (31:16).
    pub dr_intercepts: u32,
    /// 008h: one bit per exception vector.
    pub exception_intercepts: u32,
    /// 00Ch: INTR, NMI, ... SHUTDOWN (see [`intercept1`]).
    pub intercepts1: u32,
    /// 010h: VMRUN, VMMCALL, ... (see [`intercept2`]).
    pub intercepts2: u32,
    /// 014h: INVLPGB, INVPCID, ... (none used).
    pub intercepts3: u32,
    _reserved1: [u8; 0x3c - 0x18],
    /// 03Ch: PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// 03Eh: PAUSE filter count.
    pub pause_filter_count: u16,
    /// 040h: the IOPM's physical address.
    pub iopm_base: u64,
    /// 048h: the MSRPM's physical address.
    pub msrpm_base: u64,
    /// 050h: added to the host TSC to give the guest's.
    pub tsc_offset: u64,
    /// 058h: the guest's ASID (31:0); TLB_CONTROL (39:32).
    pub asid: u32,
    /// 05Ch: TLB_CONTROL.
    pub tlb_control: u8,
    _reserved2: [u8; 3],
    /// 060h: V_TPR 7:0, V_IRQ 8, V_GIF 9, V_INTR_PRIO 19:16, V_IGN_TPR 20,
    /// V_INTR_MASKING 24, V_GIF enable 25, AVIC enable 31, V_INTR_VECTOR
    /// 39:32 (see [`virtual_interrupt`]).
    pub virtual_interrupt: u64,
    /// 068h: bit 0, the guest is in an interrupt shadow (STI or MOV SS).
    pub interrupt_shadow: u64,
    /// 070h: EXITCODE.
    pub exit_code: u64,
    /// 078h: EXITINFO1.
    pub exit_info1: u64,
    /// 080h: EXITINFO2.
    pub exit_info2: u64,
    /// 088h: EXITINTINFO, the event whose delivery the exit interrupted.
    pub exit_int_info: u64,
    /// 090h: bit 0 enables nested paging.
    pub nested_control: u64,
    /// 098h: AVIC APIC_BAR.
    pub avic_apic_bar: u64,
    /// 0A0h: the GHCB's address (SEV-ES).
    pub ghcb: u64,
    /// 0A8h: EVENTINJ, the event VMRUN delivers.
    pub event_injection: u64,
    /// 0B0h: N_CR3, the nested page tables' root.
    pub nested_cr3: u64,
    /// 0B8h: LBR virtualization (bit 0), virtualized VMSAVE/VMLOAD (bit 1).
    pub virtualization_extensions: u64,
    /// 0C0h: the VMCB clean bits (see [`clean`]).
    pub clean_bits: u32,
    _reserved3: u32,
    /// 0C8h: with NRIP save, the address of the instruction after the one
    /// that was intercepted.
    pub next_rip: u64,
    /// 0D0h: with decode assists, how many instruction bytes follow.
    pub instruction_length: u8,
    /// 0D1h: the guest instruction bytes (decode assists, #NPF).
    pub instruction_bytes: [u8; 15],
    _reserved4: [u8; 0x400 - 0xe0],
}

/// The state-save area (APM Vol. 2, Table B-2), at 400h.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct SaveArea {
    /// 400h.
    pub es: Segment,
    /// 410h.
    pub cs: Segment,
    /// 420h.
    pub ss: Segment,
    /// 430h.
    pub ds: Segment,
    /// 440h.
    pub fs: Segment,
    /// 450h.
    pub gs: Segment,
    /// 460h: only the limit and base are used.
    pub gdtr: Segment,
    /// 470h.
    pub ldtr: Segment,
    /// 480h: only the limit and base are used.
    pub idtr: Segment,
    /// 490h.
    pub tr: Segment,
    _reserved1: [u8; 0x4cb - 0x4a0],
    /// 4CBh: the CPL. VMRUN takes it from here, not from SS (15.5.1).
    pub cpl: u8,
    _reserved2: u32,
    /// 4D0h.
    pub efer: u64,
    _reserved3: [u8; 0x548 - 0x4d8],
    /// 548h.
    pub cr4: u64,
    /// 550h.
    pub cr3: u64,
    /// 558h.
    pub cr0: u64,
    /// 560h.
    pub dr7: u64,
    /// 568h.
    pub dr6: u64,
    /// 570h.
    pub rflags: u64,
    /// 578h.
    pub rip: u64,
    _reserved4: [u8; 0x5d8 - 0x580],
    /// 5D8h.
    pub rsp: u64,
    /// 5E0h: S_CET.
    pub s_cet: u64,
    /// 5E8h: SSP.
    pub ssp: u64,
    /// 5F0h: ISST_ADDR.
    pub isst_addr: u64,
    /// 5F8h: RAX, which VMRUN loads and #VMEXIT saves.
    pub rax: u64,
    /// 600h: STAR (VMLOAD/VMSAVE).
    pub star: u64,
    /// 608h: LSTAR.
    pub lstar: u64,
    /// 610h: CSTAR.
    pub cstar: u64,
    /// 618h: SFMASK.
    pub sfmask: u64,
    /// 620h: KernelGSBase.
    pub kernel_gs_base: u64,
    /// 628h: SYSENTER_CS.
    pub sysenter_cs: u64,
    /// 630h: SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// 638h: SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// 640h: CR2.
    pub cr2: u64,
    _reserved5: [u8; 0x668 - 0x648],
    /// 668h: the guest's PAT under nested paging.
    pub g_pat: u64,
    /// 670h: DBGCTL.
    pub debugctl: u64,
    /// 678h-690h: the last-branch records (LBR virtualization).
    pub last_branches: [u64; 4],
    _reserved6: [u8; 0x1000 - 0x698],
}

/// A whole VMCB page.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(4096))]
pub struct Vmcb {
    /// 000h-3FFh.
    pub control: Control,
    /// 400h-FFFh.
    pub save: SaveArea,
}

impl Vmcb {
    /// An all-zero VMCB: no intercepts, every field zero.
    pub const fn zeroed() -> Vmcb {
        // SAFETY: every field is an integer or an array of integers, for
        // which all-zero bytes are a valid value.
        unsafe { core::mem::zeroed() }
    }
}

/// The bits of `intercepts1` (APM Vol. 2, Table B-1, offset 00Ch).
pub mod intercept1 {
    /// Physical maskable interrupts.
    pub const INTR: u32 = 1 << 0;
    /// Physical NMIs.
    pub const NMI: u32 = 1 << 1;
    /// SMIs.
    pub const SMI: u32 = 1 << 2;
    /// INIT.
    pub const INIT: u32 = 1 << 3;
    /// Virtual interrupts: the guest became able to take V_IRQ.
    pub const VINTR: u32 = 1 << 4;
    /// RDPMC.
    pub const RDPMC: u32 = 1 << 15;
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// RSM.
    pub const RSM: u32 = 1 << 19;
    /// IRET: the NMI window (the guest's NMI handler returned).
    pub const IRET: u32 = 1 << 20;
    /// INVD.
    pub const INVD: u32 = 1 << 22;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// INVLPGA.
    pub const INVLPGA: u32 = 1 << 26;
    /// IN/OUT/INS/OUTS, through the IOPM.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// RDMSR/WRMSR, through the MSRPM.
    pub const MSR_PROT: u32 = 1 << 28;
    /// FERR_FREEZE.
    pub const FERR_FREEZE: u32 = 1 << 30;
    /// Shutdown (a triple fault).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// The bits of `intercepts2` (APM Vol. 2, Table B-1, offset 010h).
pub mod intercept2 {
    /// VMRUN: must be intercepted, or VMRUN fails (15.5.1).
    pub const VMRUN: u32 = 1 << 0;
    /// VMMCALL.
    pub const VMMCALL: u32 = 1 << 1;
    /// VMLOAD.
    pub const VMLOAD: u32 = 1 << 2;
    /// VMSAVE.
    pub const VMSAVE: u32 = 1 << 3;
    /// STGI.
    pub const STGI: u32 = 1 << 4;
    /// CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// SKINIT.
    pub const SKINIT: u32 = 1 << 6;
    /// ICEBP.
    pub const ICEBP: u32 = 1 << 8;
    /// WBINVD.
    pub const WBINVD: u32 = 1 << 9;
    /// MONITOR.
    pub const MONITOR: u32 = 1 << 10;
    /// MWAIT.
    pub const MWAIT: u32 = 1 << 11;
    /// MWAIT when armed.
    pub const MWAIT_ARMED: u32 = 1 << 12;
    /// XSETBV.
    pub const XSETBV: u32 = 1 << 13;
    /// RDPRU.
    pub const RDPRU: u32 = 1 << 14;
}

/// The fields of `virtual_interrupt` (APM Vol. 2, Table B-1, offset 060h).
pub mod virtual_interrupt {
    /// V_TPR, the guest's task priority (CR8).
    pub const TPR: u64 = 0xf;
    /// V_IRQ: a virtual interrupt is pending.
    pub const IRQ: u64 = 1 << 8;
    /// V_INTR_PRIO, the pending virtual interrupt's priority (19:16).
    pub const PRIORITY_SHIFT: u32 = 16;
    /// V_IGN_TPR: the virtual interrupt ignores V_TPR.
    pub const IGNORE_TPR: u64 = 1 << 20;
    /// V_INTR_MASKING: the guest's RFLAGS.IF and CR8 act on virtual
    /// interrupts only; the host's RFLAGS.IF (at VMRUN) masks physical
    /// ones (15.21.1).
    pub const MASKING: u64 = 1 << 24;
}

/// The VMCB clean bits (APM Vol. 2, Table 15-10): a set bit tells the
/// processor that the fields it names did not change since the last VMRUN
/// of this VMCB on this CPU.
pub mod clean {
    /// Intercept vectors, TSC offset, PAUSE filter.
    pub const INTERCEPTS: u32 = 1 << 0;
    /// IOPM and MSRPM bases.
    pub const IOPM: u32 = 1 << 1;
    /// ASID.
    pub const ASID: u32 = 1 << 2;
    /// V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
    pub const TPR: u32 = 1 << 3;
    /// Nested paging: NP_ENABLE, N_CR3, G_PAT.
    pub const NP: u32 = 1 << 4;
    /// CR0, CR3, CR4, EFER.
    pub const CRX: u32 = 1 << 5;
    /// DR6, DR7.
    pub const DRX: u32 = 1 << 6;
    /// GDT, IDT.
    pub const DT: u32 = 1 << 7;
    /// CS, DS, SS, ES, CPL.
    pub const SEG: u32 = 1 << 8;
    /// CR2.
    pub const CR2: u32 = 1 << 9;
    /// DbgCtlMsr and the LBR records.
    pub const LBR: u32 = 1 << 10;
    /// Every bit tessera uses (AVIC, bit 11, is not).
    pub const ALL: u32 = 0x7ff;
}

/// TLB_CONTROL values (APM Vol. 2, 15.16.2).
pub mod tlb_control {
    /// Flush nothing.
    pub const NOTHING: u8 = 0;
    /// Flush the whole TLB, every ASID.
    pub const ALL: u8 = 1;
    /// Flush this guest's ASID (needs flush-by-ASID).
    pub const THIS_ASID: u8 = 3;
}

/// Converts VMX-style access rights (the core's format: descriptor bits
/// 47:40 in 7:0, 55:52 in 15:12, bit 16 "unusable") to SVM's packed
/// attributes. An unusable segment becomes one that is not present.
pub const fn attributes_from_access_rights(rights: u32) -> u16 {
    if rights & (1 << 16) != 0 {
        return 0;
    }
    ((rights & 0xff) | ((rights >> 4) & 0xf00)) as u16
}

/// Converts SVM's packed attributes back to the core's access rights; a
/// segment that is not present (P, bit 7) reads as unusable, as VMX
/// reports a null selector's segment.
pub const fn access_rights_from_attributes(attributes: u16) -> u32 {
    let attributes = attributes as u32;
    let rights = (attributes & 0xff) | ((attributes & 0xf00) << 4);
    if attributes & 0x80 == 0 {
        rights | (1 << 16)
    } else {
        rights
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn the_vmcb_is_one_page() {
        assert_eq!(size_of::<Control>(), 0x400);
        assert_eq!(size_of::<SaveArea>(), 0xc00);
        assert_eq!(size_of::<Vmcb>(), 0x1000);
        assert_eq!(core::mem::align_of::<Vmcb>(), 0x1000);
    }

    #[test]
    fn control_area_offsets_match_the_apm() {
        assert_eq!(offset_of!(Control, exception_intercepts), 0x008);
        assert_eq!(offset_of!(Control, intercepts1), 0x00c);
        assert_eq!(offset_of!(Control, intercepts2), 0x010);
        assert_eq!(offset_of!(Control, pause_filter_threshold), 0x03c);
        assert_eq!(offset_of!(Control, pause_filter_count), 0x03e);
        assert_eq!(offset_of!(Control, iopm_base), 0x040);
        assert_eq!(offset_of!(Control, msrpm_base), 0x048);
        assert_eq!(offset_of!(Control, tsc_offset), 0x050);
        assert_eq!(offset_of!(Control, asid), 0x058);
        assert_eq!(offset_of!(Control, tlb_control), 0x05c);
        assert_eq!(offset_of!(Control, virtual_interrupt), 0x060);
        assert_eq!(offset_of!(Control, interrupt_shadow), 0x068);
        assert_eq!(offset_of!(Control, exit_code), 0x070);
        assert_eq!(offset_of!(Control, exit_info1), 0x078);
        assert_eq!(offset_of!(Control, exit_info2), 0x080);
        assert_eq!(offset_of!(Control, exit_int_info), 0x088);
        assert_eq!(offset_of!(Control, nested_control), 0x090);
        assert_eq!(offset_of!(Control, event_injection), 0x0a8);
        assert_eq!(offset_of!(Control, nested_cr3), 0x0b0);
        assert_eq!(offset_of!(Control, clean_bits), 0x0c0);
        assert_eq!(offset_of!(Control, next_rip), 0x0c8);
        assert_eq!(offset_of!(Control, instruction_length), 0x0d0);
        assert_eq!(offset_of!(Control, instruction_bytes), 0x0d1);
    }

    #[test]
    fn save_area_offsets_match_the_apm() {
        let at = |offset: usize| 0x400 + offset;
        assert_eq!(at(offset_of!(SaveArea, es)), 0x400);
        assert_eq!(at(offset_of!(SaveArea, cs)), 0x410);
        assert_eq!(at(offset_of!(SaveArea, gdtr)), 0x460);
        assert_eq!(at(offset_of!(SaveArea, tr)), 0x490);
        assert_eq!(at(offset_of!(SaveArea, cpl)), 0x4cb);
        assert_eq!(at(offset_of!(SaveArea, efer)), 0x4d0);
        assert_eq!(at(offset_of!(SaveArea, cr4)), 0x548);
        assert_eq!(at(offset_of!(SaveArea, cr3)), 0x550);
        assert_eq!(at(offset_of!(SaveArea, cr0)), 0x558);
        assert_eq!(at(offset_of!(SaveArea, dr7)), 0x560);
        assert_eq!(at(offset_of!(SaveArea, dr6)), 0x568);
        assert_eq!(at(offset_of!(SaveArea, rflags)), 0x570);
        assert_eq!(at(offset_of!(SaveArea, rip)), 0x578);
        assert_eq!(at(offset_of!(SaveArea, rsp)), 0x5d8);
        assert_eq!(at(offset_of!(SaveArea, rax)), 0x5f8);
        assert_eq!(at(offset_of!(SaveArea, star)), 0x600);
        assert_eq!(at(offset_of!(SaveArea, kernel_gs_base)), 0x620);
        assert_eq!(at(offset_of!(SaveArea, sysenter_eip)), 0x638);
        assert_eq!(at(offset_of!(SaveArea, cr2)), 0x640);
        assert_eq!(at(offset_of!(SaveArea, g_pat)), 0x668);
        assert_eq!(at(offset_of!(SaveArea, debugctl)), 0x670);
    }

    #[test]
    fn attributes_round_trip_through_access_rights() {
        // 64-bit code: G, L, P, S, type 11 (VMX 0xa09b) is SVM 0xa9b.
        assert_eq!(attributes_from_access_rights(0xa09b), 0xa9b);
        assert_eq!(access_rights_from_attributes(0xa9b), 0xa09b);
        // Flat data and a busy TSS.
        for rights in [0xc093, 0x8b, 0x93, 0xc09b] {
            assert_eq!(
                access_rights_from_attributes(attributes_from_access_rights(rights)),
                rights
            );
        }
        // Unusable goes to not-present, which comes back unusable.
        assert_eq!(attributes_from_access_rights(1 << 16), 0);
        assert_ne!(access_rights_from_attributes(0) & (1 << 16), 0);
    }
}
