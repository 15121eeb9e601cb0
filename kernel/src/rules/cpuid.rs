//! What a guest sees of CPUID: the host's answer, minus what tessera does not
//! virtualize, plus the hypervisor leaves. CPUID offers only what tessera
//! implements: a flag is a promise of instructions and MSRs, and the MSR
//! policy (`rules::msr`) keeps that promise and no more.
//!
//! Hidden: VMX (tessera does not nest), SMX, x2APIC, MONITOR/MWAIT, the
//! performance-monitoring leaf, machine-check architecture and the
//! TSC-deadline timer and TSC_ADJUST (whose MSRs tessera does not
//! virtualize yet), and instructions whose VMX enable control
//! tessera leaves off (RDTSCP and RDPID, INVPCID, XSAVES) — executing those
//! in a guest raises #UD, so advertising them would be a lie (SDM Vol. 3C,
//! 26.6.2). Also hidden, because their MSRs are not offered: the debug store
//! (DTES64, DS-CPL, DS), thermal and power management (EST, TM, TM2, ACPI,
//! PBE, and leaf 6 entirely), xTPR update control, PDCM
//! (IA32_PERF_CAPABILITIES), architectural LBRs, CET (shadow stacks and
//! IBT), supervisor protection keys, the speculation-control MSRs
//! (IA32_SPEC_CTRL, IA32_PRED_CMD, IA32_FLUSH_CMD, IA32_ARCH_CAPABILITIES,
//! IA32_CORE_CAPABILITIES) and the supervisor state of XSAVE (IA32_XSS,
//! IA32_XFD).
//! Shown: CPUID.1:ECX[31] "hypervisor present" and leaves 0x4000_0000+.

/// The registers of one CPUID answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// The first hypervisor leaf.
pub const HYPERVISOR_LEAF: u32 = 0x4000_0000;
/// The hypervisor-specific leaf with tessera's interface version.
pub const INTERFACE_LEAF: u32 = 0x4000_0001;
/// tessera's vendor signature in leaf 0x4000_0000 (EBX, ECX, EDX).
pub const SIGNATURE: &[u8; 12] = b"TesseraHV\0\0\0";
/// The hypercall interface version reported in leaf 0x4000_0001 EAX.
pub const INTERFACE_VERSION: u32 = 1;

const LEAF1_ECX_DTES64: u32 = 1 << 2;
const LEAF1_ECX_MONITOR: u32 = 1 << 3;
const LEAF1_ECX_DS_CPL: u32 = 1 << 4;
const LEAF1_ECX_EST: u32 = 1 << 7;
const LEAF1_ECX_TM2: u32 = 1 << 8;
const LEAF1_ECX_XTPR: u32 = 1 << 14;
const LEAF1_ECX_PDCM: u32 = 1 << 15;
const LEAF1_ECX_VMX: u32 = 1 << 5;
const LEAF1_ECX_SMX: u32 = 1 << 6;
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const LEAF1_EDX_MCE: u32 = 1 << 7;
const LEAF1_EDX_MCA: u32 = 1 << 14;
const LEAF1_EDX_DS: u32 = 1 << 21;
const LEAF1_EDX_ACPI: u32 = 1 << 22;
const LEAF1_EDX_TM: u32 = 1 << 29;
const LEAF1_EDX_PBE: u32 = 1 << 31;
/// The leaf-1 ECX features tessera does not implement.
const LEAF1_ECX_HIDDEN: u32 = LEAF1_ECX_DTES64
    | LEAF1_ECX_MONITOR
    | LEAF1_ECX_DS_CPL
    | LEAF1_ECX_VMX
    | LEAF1_ECX_SMX
    | LEAF1_ECX_EST
    | LEAF1_ECX_TM2
    | LEAF1_ECX_XTPR
    | LEAF1_ECX_PDCM
    | LEAF1_ECX_X2APIC
    | LEAF1_ECX_TSC_DEADLINE;
/// The leaf-1 EDX features tessera does not implement.
const LEAF1_EDX_HIDDEN: u32 =
    LEAF1_EDX_MCE | LEAF1_EDX_MCA | LEAF1_EDX_DS | LEAF1_EDX_ACPI | LEAF1_EDX_TM | LEAF1_EDX_PBE;
const LEAF7_EBX_TSC_ADJUST: u32 = 1 << 1;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF7_EBX_INVPCID: u32 = 1 << 10;
const LEAF7_ECX_WAITPKG: u32 = 1 << 5;
const LEAF7_ECX_CET_SS: u32 = 1 << 7;
const LEAF7_ECX_RDPID: u32 = 1 << 22;
const LEAF7_ECX_PKS: u32 = 1 << 31;
const LEAF7_EDX_ARCH_LBR: u32 = 1 << 19;
const LEAF7_EDX_CET_IBT: u32 = 1 << 20;
/// IBRS/IBPB, STIBP, L1D_FLUSH, ARCH_CAPABILITIES, CORE_CAPABILITIES, SSBD.
const LEAF7_EDX_SPECULATION_MSRS: u32 = 0b11_1111 << 26;
const LEAFD1_EAX_XSAVES: u32 = 1 << 3;
const LEAFD1_EAX_XFD: u32 = 1 << 4;
const EXT1_EDX_RDTSCP: u32 = 1 << 27;

/// Adjusts the host's answer for `leaf`/`subleaf` into the guest's.
/// `host` must be the host's answer for the same leaf (for hypervisor
/// leaves it is ignored). `vcpu_id` becomes the initial APIC ID; `osxsave`
/// is the guest's own CR4.OSXSAVE, which CPUID.1:ECX[27] mirrors.
pub fn guest_view(
    leaf: u32,
    subleaf: u32,
    host: CpuidResult,
    vcpu_id: u8,
    osxsave: bool,
) -> CpuidResult {
    let mut r = host;
    match leaf {
        0x1 => {
            r.ecx &= !LEAF1_ECX_HIDDEN;
            r.edx &= !LEAF1_EDX_HIDDEN;
            r.ecx |= LEAF1_ECX_HYPERVISOR;
            r.ecx &= !LEAF1_ECX_OSXSAVE;
            if osxsave {
                r.ecx |= LEAF1_ECX_OSXSAVE;
            }
            // One logical processor per package, APIC ID = the vCPU.
            r.ebx = (r.ebx & 0x0000_ffff) | (1 << 16) | ((vcpu_id as u32) << 24);
            r.edx &= !(1 << 28); // HTT
        }
        // MONITOR/MWAIT, thermal and power management (DTS, APERF/MPERF,
        // EPB, HWP), performance monitoring.
        0x5 | 0x6 | 0xa => r = CpuidResult::default(),
        0x7 if subleaf == 0 => {
            r.ebx &= !(LEAF7_EBX_INVPCID | LEAF7_EBX_TSC_ADJUST);
            r.ecx &= !(LEAF7_ECX_WAITPKG | LEAF7_ECX_CET_SS | LEAF7_ECX_RDPID | LEAF7_ECX_PKS);
            r.edx &= !(LEAF7_EDX_ARCH_LBR | LEAF7_EDX_CET_IBT | LEAF7_EDX_SPECULATION_MSRS);
        }
        0xd if subleaf == 1 => {
            r.eax &= !(LEAFD1_EAX_XSAVES | LEAFD1_EAX_XFD);
            // The IA32_XSS bits: no supervisor state without XSAVES.
            r.ecx = 0;
            r.edx = 0;
        }
        HYPERVISOR_LEAF => {
            let word = |i: usize| {
                u32::from_le_bytes([
                    SIGNATURE[i],
                    SIGNATURE[i + 1],
                    SIGNATURE[i + 2],
                    SIGNATURE[i + 3],
                ])
            };
            r = CpuidResult {
                eax: INTERFACE_LEAF,
                ebx: word(0),
                ecx: word(4),
                edx: word(8),
            };
        }
        INTERFACE_LEAF => {
            r = CpuidResult {
                eax: INTERFACE_VERSION,
                ..CpuidResult::default()
            }
        }
        0x4000_0002..=0x4fff_ffff => r = CpuidResult::default(),
        0x8000_0001 => r.edx &= !EXT1_EDX_RDTSCP,
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: CpuidResult = CpuidResult {
        eax: u32::MAX,
        ebx: u32::MAX,
        ecx: u32::MAX,
        edx: u32::MAX,
    };

    #[test]
    fn leaf1_hides_vmx_and_shows_the_hypervisor() {
        let r = guest_view(
            1,
            0,
            CpuidResult {
                ecx: LEAF1_ECX_VMX,
                ..Default::default()
            },
            3,
            false,
        );
        assert_eq!(r.ecx & LEAF1_ECX_VMX, 0);
        assert_ne!(r.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(r.ebx >> 24, 3);
        let r = guest_view(1, 0, ALL, 0, false);
        assert_eq!(r.ecx & (LEAF1_ECX_X2APIC | LEAF1_ECX_MONITOR), 0);
        assert_eq!(r.ecx & (LEAF1_ECX_SMX | LEAF1_ECX_TSC_DEADLINE), 0);
        assert_eq!(r.edx & (LEAF1_EDX_MCE | LEAF1_EDX_MCA), 0);
        assert_eq!(
            r.ecx & LEAF1_ECX_OSXSAVE,
            0,
            "mirrors the guest's CR4, not the host's"
        );
        let r = guest_view(1, 0, CpuidResult::default(), 0, true);
        assert_ne!(r.ecx & LEAF1_ECX_OSXSAVE, 0);
    }

    #[test]
    fn signature_leaf() {
        let r = guest_view(HYPERVISOR_LEAF, 0, ALL, 0, false);
        assert_eq!(r.eax, INTERFACE_LEAF);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&r.ebx.to_le_bytes());
        bytes[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        bytes[8..].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&bytes, SIGNATURE);
        assert_eq!(
            guest_view(INTERFACE_LEAF, 0, ALL, 0, false).eax,
            INTERFACE_VERSION
        );
        assert_eq!(
            guest_view(0x4000_0005, 0, ALL, 0, false),
            CpuidResult::default()
        );
    }

    #[test]
    fn disabled_instructions_are_not_advertised() {
        assert_eq!(
            guest_view(7, 0, ALL, 0, false).ebx & (LEAF7_EBX_INVPCID | LEAF7_EBX_TSC_ADJUST),
            0
        );
        assert_eq!(
            guest_view(7, 1, ALL, 0, false),
            ALL,
            "only subleaf 0 is filtered"
        );
        assert_eq!(guest_view(0xd, 1, ALL, 0, false).eax & LEAFD1_EAX_XSAVES, 0);
        assert_eq!(
            guest_view(0x8000_0001, 0, ALL, 0, false).edx & EXT1_EDX_RDTSCP,
            0
        );
        assert_eq!(guest_view(0xa, 0, ALL, 0, false), CpuidResult::default());
    }

    #[test]
    fn leaf1_hides_debug_store_thermal_and_power_features() {
        let r = guest_view(1, 0, ALL, 0, false);
        for (bit, name) in [
            (LEAF1_ECX_DTES64, "DTES64"),
            (LEAF1_ECX_DS_CPL, "DS-CPL"),
            (LEAF1_ECX_EST, "EST"),
            (LEAF1_ECX_TM2, "TM2"),
            (LEAF1_ECX_XTPR, "xTPR"),
            (LEAF1_ECX_PDCM, "PDCM"),
        ] {
            assert_eq!(r.ecx & bit, 0, "ECX {name}");
        }
        for (bit, name) in [
            (LEAF1_EDX_DS, "DS"),
            (LEAF1_EDX_ACPI, "ACPI"),
            (LEAF1_EDX_TM, "TM"),
            (LEAF1_EDX_PBE, "PBE"),
        ] {
            assert_eq!(r.edx & bit, 0, "EDX {name}");
        }
        assert_ne!(r.edx & 1, 0, "x87 FPU still shown");
        assert_ne!(r.ecx & (1 << 26), 0, "XSAVE still shown");
    }

    #[test]
    fn thermal_and_power_leaf_is_empty() {
        assert_eq!(guest_view(6, 0, ALL, 0, false), CpuidResult::default());
    }

    #[test]
    fn leaf7_hides_features_whose_msrs_are_not_offered() {
        let r = guest_view(7, 0, ALL, 0, false);
        assert_eq!(r.ecx & (LEAF7_ECX_CET_SS | LEAF7_ECX_PKS), 0);
        assert_eq!(r.ecx & LEAF7_ECX_RDPID, 0, "RDPID needs enable-RDTSCP");
        assert_eq!(
            r.edx & (LEAF7_EDX_ARCH_LBR | LEAF7_EDX_CET_IBT | LEAF7_EDX_SPECULATION_MSRS),
            0
        );
        assert_ne!(r.ebx & 1, 0, "FSGSBASE still shown");
    }

    #[test]
    fn xsave_supervisor_state_is_not_offered() {
        let r = guest_view(0xd, 1, ALL, 0, false);
        assert_eq!(r.eax & (LEAFD1_EAX_XSAVES | LEAFD1_EAX_XFD), 0);
        assert_ne!(r.eax & 1, 0, "XSAVEOPT still shown");
        assert_eq!((r.ecx, r.edx), (0, 0));
        assert_eq!(guest_view(0xd, 0, ALL, 0, false), ALL, "XCR0 bits pass");
    }

    #[test]
    fn other_leaves_pass_through() {
        assert_eq!(guest_view(0, 0, ALL, 0, false), ALL);
        assert_eq!(guest_view(0x8000_0008, 0, ALL, 0, false), ALL);
    }
}
