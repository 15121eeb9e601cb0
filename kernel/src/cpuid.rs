//! What a guest sees of CPUID: the host's answer, minus what tessera does not
//! virtualize, plus the hypervisor leaves.
//!
//! Hidden: VMX (tessera does not nest), SMX, x2APIC, MONITOR/MWAIT, the
//! performance-monitoring leaf, machine-check architecture and the
//! TSC-deadline timer and TSC_ADJUST (whose MSRs tessera does not
//! virtualize yet), and instructions whose VMX enable control
//! tessera leaves off (RDTSCP, INVPCID, XSAVES) — executing those in a guest
//! raises #UD, so advertising them would be a lie (SDM Vol. 3C, 26.6.2).
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

const LEAF1_ECX_MONITOR: u32 = 1 << 3;
const LEAF1_ECX_VMX: u32 = 1 << 5;
const LEAF1_ECX_SMX: u32 = 1 << 6;
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const LEAF1_EDX_MCE: u32 = 1 << 7;
const LEAF1_EDX_MCA: u32 = 1 << 14;
const LEAF7_EBX_TSC_ADJUST: u32 = 1 << 1;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF7_EBX_INVPCID: u32 = 1 << 10;
const LEAF7_ECX_WAITPKG: u32 = 1 << 5;
const LEAFD1_EAX_XSAVES: u32 = 1 << 3;
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
            r.ecx &= !(LEAF1_ECX_VMX
                | LEAF1_ECX_SMX
                | LEAF1_ECX_X2APIC
                | LEAF1_ECX_MONITOR
                | LEAF1_ECX_TSC_DEADLINE);
            r.edx &= !(LEAF1_EDX_MCE | LEAF1_EDX_MCA);
            r.ecx |= LEAF1_ECX_HYPERVISOR;
            r.ecx &= !LEAF1_ECX_OSXSAVE;
            if osxsave {
                r.ecx |= LEAF1_ECX_OSXSAVE;
            }
            // One logical processor per package, APIC ID = the vCPU.
            r.ebx = (r.ebx & 0x0000_ffff) | (1 << 16) | ((vcpu_id as u32) << 24);
            r.edx &= !(1 << 28); // HTT
        }
        0x5 | 0xa => r = CpuidResult::default(),
        0x7 if subleaf == 0 => {
            r.ebx &= !(LEAF7_EBX_INVPCID | LEAF7_EBX_TSC_ADJUST);
            r.ecx &= !LEAF7_ECX_WAITPKG;
        }
        0xd if subleaf == 1 => r.eax &= !LEAFD1_EAX_XSAVES,
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
    fn other_leaves_pass_through() {
        assert_eq!(guest_view(0, 0, ALL, 0, false), ALL);
        assert_eq!(guest_view(0x8000_0008, 0, ALL, 0, false), ALL);
    }
}
