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
//! Shown: CPUID.1:ECX[31] "hypervisor present", leaves 0x4000_0000+, ARAT,
//! and the TSC and crystal frequencies (leaves 0x15, 0x16 and 0x4000_0010).

use crate::firmware::layout::APIC_TIMER_HZ;

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
/// The timing leaf other hypervisors give (VMware's convention, which
/// Linux reads): EAX the TSC and EBX the APIC bus (timer) frequency, in kHz.
pub const TIMING_LEAF: u32 = 0x4000_0010;
/// Leaf 6 EAX[2], ARAT: the APIC timer runs at a constant rate in every
/// C-state — true of the emulated timer, which no power state stops.
const LEAF6_EAX_ARAT: u32 = 1 << 2;
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
    | LEAF1_ECX_PDCM;
/// The leaf-1 ECX features the virtual PC's local APIC offers whatever
/// the host has: the x2APIC MSR interface and the TSC-deadline timer mode.
const LEAF1_ECX_OFFERED: u32 = LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE;
/// The leaf-1 EDX features tessera does not implement.
const LEAF1_EDX_HIDDEN: u32 =
    LEAF1_EDX_MCE | LEAF1_EDX_MCA | LEAF1_EDX_DS | LEAF1_EDX_ACPI | LEAF1_EDX_TM | LEAF1_EDX_PBE;
const LEAF7_EBX_TSC_ADJUST: u32 = 1 << 1;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF7_EBX_INVPCID: u32 = 1 << 10;
const LEAF7_ECX_WAITPKG: u32 = 1 << 5;
/// Five-level paging (CPUID.7.0:ECX[16]): not offered. A VM's RAM is far
/// below what four levels map, the fifth level only lengthens the guest's
/// walks, and tessera's VMs are then the same on every host (Bochs has no
/// LA57; QEMU's "max" CPU has it, and Linux turns it on when offered).
/// CR4.LA57 is refused to match (`Vcpu::supported_cr4` on both backends).
pub const LEAF7_ECX_LA57: u32 = 1 << 16;
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
/// SVM and SKINIT (CPUID Fn8000_0001 ECX[2] and ECX[12], APM Vol. 3,
/// E.4.2): tessera does not nest, and their instructions give #UD.
const EXT1_ECX_SVM: u32 = 1 << 2;
const EXT1_ECX_SKINIT: u32 = 1 << 12;

/// Adjusts the host's answer for `leaf`/`subleaf` into the guest's.
/// `host` must be the host's answer for the same leaf (for hypervisor
/// leaves it is ignored). `vcpu_id` becomes the initial APIC ID; `osxsave`
/// is the guest's own CR4.OSXSAVE, which CPUID.1:ECX[27] mirrors;
/// `timing` holds the answers of the timing leaves for the rate of the
/// TSC the guest sees.
#[inline(always)]
pub fn guest_view(
    leaf: u32,
    subleaf: u32,
    host: CpuidResult,
    vcpu_id: u8,
    osxsave: bool,
    timing: &TimingLeaves,
) -> CpuidResult {
    match leaf {
        0..=0x3fff_ffff => basic_leaf(leaf, subleaf, host, vcpu_id, osxsave, timing),
        0x4000_0000..=0x4fff_ffff => hypervisor_leaf(leaf, timing),
        0x8000_0001 => CpuidResult {
            ecx: host.ecx & !(EXT1_ECX_SVM | EXT1_ECX_SKINIT),
            edx: host.edx & !EXT1_EDX_RDTSCP,
            ..host
        },
        // The SVM leaf, with SVM hidden: all zero.
        0x8000_000a => CpuidResult::default(),
        _ => host,
    }
}

/// [`guest_view`] of the basic leaves (below 0x4000_0000).
#[inline(always)]
fn basic_leaf(
    leaf: u32,
    subleaf: u32,
    host: CpuidResult,
    vcpu_id: u8,
    osxsave: bool,
    timing: &TimingLeaves,
) -> CpuidResult {
    let mut r = host;
    match leaf {
        0x0 => r.eax = r.eax.max(MIN_MAX_BASIC_LEAF),
        // Leaves the host does not have, up to the raised maximum: zero
        // (past its maximum a CPU repeats its highest leaf, or gives zeros).
        _ if leaf > timing.host_max_leaf && !matches!(leaf, 0xb | 0x15 | 0x16) => {
            r = CpuidResult::default()
        }
        0x1 => {
            r.ecx &= !LEAF1_ECX_HIDDEN;
            r.edx &= !LEAF1_EDX_HIDDEN;
            r.ecx |= LEAF1_ECX_HYPERVISOR | LEAF1_ECX_OFFERED;
            r.ecx &= !LEAF1_ECX_OSXSAVE;
            if osxsave {
                r.ecx |= LEAF1_ECX_OSXSAVE;
            }
            // One logical processor per package, APIC ID = the vCPU.
            r.ebx = (r.ebx & 0x0000_ffff) | (1 << 16) | ((vcpu_id as u32) << 24);
            r.edx &= !(1 << 28); // HTT
        }
        // MONITOR/MWAIT, performance monitoring.
        0x5 | 0xa => r = CpuidResult::default(),
        // Thermal and power management (DTS, APERF/MPERF, EPB, HWP) hidden;
        // only ARAT is true of the virtual PC.
        0x6 => {
            r = CpuidResult {
                eax: LEAF6_EAX_ARAT,
                ..CpuidResult::default()
            }
        }
        // Leaves whose answers are tessera's own, out of line.
        0xb | 0x15 | 0x16 | 0x1f => r = synthetic_leaf(leaf, subleaf, vcpu_id, timing),
        0x7 if subleaf == 0 => {
            r.ebx &= !(LEAF7_EBX_INVPCID | LEAF7_EBX_TSC_ADJUST);
            r.ecx &= !(LEAF7_ECX_WAITPKG
                | LEAF7_ECX_CET_SS
                | LEAF7_ECX_RDPID
                | LEAF7_ECX_PKS
                | LEAF7_ECX_LA57);
            r.edx &= !(LEAF7_EDX_ARCH_LBR | LEAF7_EDX_CET_IBT | LEAF7_EDX_SPECULATION_MSRS);
        }
        0xd if subleaf == 1 => {
            r.eax &= !(LEAFD1_EAX_XSAVES | LEAFD1_EAX_XFD);
            // The IA32_XSS bits: no supervisor state without XSAVES.
            r.ecx = 0;
            r.edx = 0;
        }
        _ => {}
    }
    r
}

/// The basic leaves tessera answers itself rather than filtering the
/// host's answer.
fn synthetic_leaf(leaf: u32, subleaf: u32, vcpu_id: u8, timing: &TimingLeaves) -> CpuidResult {
    match leaf {
        // TSC and core crystal clock (SDM Vol. 2A, CPUID leaf 15H): TSC =
        // ECX × EBX / EAX.
        0x15 => timing.tsc_and_crystal,
        // Base, maximum and bus frequencies in MHz.
        0x16 => timing.frequencies,
        // Extended topology (SDM Vol. 2A, CPUID leaves 0BH and 1FH), which
        // an x2APIC guest reads: one thread of one core, x2APIC ID = the
        // vCPU, never the host's.
        _ => topology_leaf(subleaf, vcpu_id),
    }
}

/// Subleaf `subleaf` of the extended topology leaves for a vCPU alone in
/// its core and package: level 0 is the SMT level (type 1), level 1 the
/// core level (type 2), each with one logical processor; higher levels are
/// invalid (type 0). EAX, the x2APIC ID shift to the next level, is 0:
/// nothing to strip. EDX is the x2APIC ID.
fn topology_leaf(subleaf: u32, vcpu_id: u8) -> CpuidResult {
    let level = subleaf & 0xff;
    let valid = u32::from(level < 2);
    CpuidResult {
        eax: 0,
        ebx: valid,
        ecx: (valid * (level + 1)) << 8 | level,
        edx: u32::from(vcpu_id),
    }
}

/// [`guest_view`] of the hypervisor range (0x4000_0000–0x4fff_ffff): the
/// host's answers, if any, are not the guest's business.
fn hypervisor_leaf(leaf: u32, timing: &TimingLeaves) -> CpuidResult {
    match leaf {
        HYPERVISOR_LEAF => {
            let word = |i: usize| {
                u32::from_le_bytes([
                    SIGNATURE[i],
                    SIGNATURE[i + 1],
                    SIGNATURE[i + 2],
                    SIGNATURE[i + 3],
                ])
            };
            CpuidResult {
                eax: TIMING_LEAF,
                ebx: word(0),
                ecx: word(4),
                edx: word(8),
            }
        }
        INTERFACE_LEAF => CpuidResult {
            eax: INTERFACE_VERSION,
            ..CpuidResult::default()
        },
        TIMING_LEAF => timing.hypervisor,
        _ => CpuidResult::default(),
    }
}

/// The answers of the leaves that report frequencies, for the rate of the
/// TSC a guest sees: computed once, so that the CPUID exit only copies
/// them (SDM Vol. 3C, 26.1.2: every CPUID exits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimingLeaves {
    /// Leaf 0x15: TSC = ECX × EBX / EAX, the crystal in ECX.
    pub tsc_and_crystal: CpuidResult,
    /// Leaf 0x16: base, maximum and bus frequencies in MHz.
    pub frequencies: CpuidResult,
    /// [`TIMING_LEAF`]: the TSC and the APIC timer's rates in kHz.
    pub hypervisor: CpuidResult,
    /// The host's highest basic leaf: the leaves above it up to
    /// [`MIN_MAX_BASIC_LEAF`] that tessera does not answer itself are zero.
    pub host_max_leaf: u32,
}

/// The highest basic leaf a guest is told of, at least: leaves 0x15 and
/// 0x16 carry the TSC and crystal rates tessera gives on every host (QEMU's
/// TCG stops at 0xD).
pub const MIN_MAX_BASIC_LEAF: u32 = 0x16;

impl TimingLeaves {
    /// The answers for a TSC at `tsc_hz` and the APIC timer's crystal.
    pub fn new(tsc_hz: u64) -> Self {
        let mhz = (tsc_hz / 1_000_000).min(0xffff) as u32;
        TimingLeaves {
            tsc_and_crystal: tsc_leaf(tsc_hz),
            frequencies: CpuidResult {
                eax: mhz,
                ebx: mhz,
                ecx: (APIC_TIMER_HZ / 1_000_000) as u32,
                edx: 0,
            },
            hypervisor: CpuidResult {
                eax: (tsc_hz / 1000).min(u64::from(u32::MAX)) as u32,
                ebx: (APIC_TIMER_HZ / 1000) as u32,
                ..CpuidResult::default()
            },
            host_max_leaf: u32::MAX,
        }
    }

    /// The same, on a host whose highest basic leaf is `max` (CPUID.0:EAX).
    pub fn with_host_max_leaf(self, max: u32) -> Self {
        TimingLeaves {
            host_max_leaf: max,
            ..self
        }
    }
}

/// The largest leaf-0x15 numerator (EBX) for which Linux's TSC rate,
/// `crystal_khz * ebx / eax` computed in 32-bit arithmetic
/// (`native_calibrate_tsc`, arch/x86/kernel/tsc.c), cannot overflow: an
/// exact ratio in lowest terms like 199_999_481 / 25_000_000 made Linux
/// 6.1 see a 28 MHz TSC.
const MAX_TSC_NUMERATOR: u64 = u32::MAX as u64 / (APIC_TIMER_HZ / 1000);

/// Leaf 0x15 for a TSC at `tsc_hz` and the APIC timer's crystal (SDM Vol.
/// 2A, CPUID leaf 15H: TSC = ECX × EBX / EAX): the ratio in lowest terms
/// when its numerator is at most [`MAX_TSC_NUMERATOR`], else the best
/// rational approximation whose numerator stays there (a few hertz off at
/// gigahertz rates), so that the rate it implies agrees with leaf
/// 0x4000_0010's kilohertz.
fn tsc_leaf(tsc_hz: u64) -> CpuidResult {
    let (numerator, denominator) = best_ratio(tsc_hz.max(1), APIC_TIMER_HZ, MAX_TSC_NUMERATOR);
    CpuidResult {
        eax: denominator as u32,
        ebx: numerator as u32,
        ecx: APIC_TIMER_HZ as u32,
        edx: 0,
    }
}

/// The fraction p/q nearest to `num`/`den` with p at most `max_numerator`
/// (and at least 1): the last continued-fraction convergent within the
/// bound, or the semiconvergent past it when that is nearer (the best
/// rational approximations are among these; Khinchin, "Continued
/// Fractions", §6). An exact fraction in lowest terms comes out whole.
fn best_ratio(num: u64, den: u64, max_numerator: u64) -> (u64, u64) {
    let (num, den, max) = (u128::from(num), u128::from(den), u128::from(max_numerator));
    // Convergents h/k, starting from h(-2)/k(-2) = 0/1 and h(-1)/k(-1) = 1/0.
    let (mut h0, mut h1, mut k0, mut k1) = (0u128, 1u128, 1u128, 0u128);
    let (mut n, mut d) = (num, den);
    while d != 0 {
        let a = n / d;
        let (h2, k2) = (a * h1 + h0, a * k1 + k0);
        if h2 > max {
            // The largest t with t·h1 + h0 within the bound.
            let t = (max - h0) / h1;
            let (hs, ks) = (t * h1 + h0, t * k1 + k0);
            if ks == 0 || k1 == 0 {
                break;
            }
            // |hs/ks - x| < |h1/k1 - x|, cross-multiplied.
            let error = |h: u128, k: u128| (h * den).abs_diff(k * num);
            if t > 0 && error(hs, ks) * k1 < error(h1, k1) * ks {
                return (hs as u64, ks as u64);
            }
            break;
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        (n, d) = (d, n - a * d);
    }
    if h1 == 0 || k1 == 0 {
        return (max_numerator.min(num as u64).max(1), 1);
    }
    (h1 as u64, k1 as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSC rate like Bochs' (not a multiple of the crystal's).
    const TSC_HZ: u64 = 199_999_481;

    static TIMING: std::sync::LazyLock<TimingLeaves> =
        std::sync::LazyLock::new(|| TimingLeaves::new(TSC_HZ));

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
            &TIMING,
        );
        assert_eq!(r.ecx & LEAF1_ECX_VMX, 0);
        assert_ne!(r.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(r.ebx >> 24, 3);
        let r = guest_view(1, 0, ALL, 0, false, &TIMING);
        assert_eq!(r.ecx & (LEAF1_ECX_MONITOR | LEAF1_ECX_SMX), 0);
        assert_eq!(r.edx & (LEAF1_EDX_MCE | LEAF1_EDX_MCA), 0);
        assert_eq!(
            r.ecx & LEAF1_ECX_OSXSAVE,
            0,
            "mirrors the guest's CR4, not the host's"
        );
        let r = guest_view(1, 0, CpuidResult::default(), 0, true, &TIMING);
        assert_ne!(r.ecx & LEAF1_ECX_OSXSAVE, 0);
    }

    #[test]
    fn x2apic_and_tsc_deadline_are_offered_whatever_the_host_has() {
        let r = guest_view(1, 0, CpuidResult::default(), 0, false, &TIMING);
        assert_eq!(
            r.ecx & (LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE),
            LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE
        );
    }

    #[test]
    fn topology_is_one_thread_of_one_core_with_the_vcpus_id() {
        for leaf in [0xb, 0x1f] {
            let smt = guest_view(leaf, 0, ALL, 5, false, &TIMING);
            assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 5));
            let core = guest_view(leaf, 1, ALL, 5, false, &TIMING);
            assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (0, 1, 0x201, 5));
            let beyond = guest_view(leaf, 2, ALL, 5, false, &TIMING);
            assert_eq!((beyond.ebx, beyond.ecx & 0xff00, beyond.edx), (0, 0, 5));
            assert_eq!(beyond.ecx & 0xff, 2, "ECX[7:0] echoes the level");
        }
    }

    #[test]
    fn signature_leaf() {
        let r = guest_view(HYPERVISOR_LEAF, 0, ALL, 0, false, &TIMING);
        assert_eq!(r.eax, TIMING_LEAF);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&r.ebx.to_le_bytes());
        bytes[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        bytes[8..].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&bytes, SIGNATURE);
        assert_eq!(
            guest_view(INTERFACE_LEAF, 0, ALL, 0, false, &TIMING).eax,
            INTERFACE_VERSION
        );
        assert_eq!(
            guest_view(0x4000_0005, 0, ALL, 0, false, &TIMING),
            CpuidResult::default()
        );
    }

    #[test]
    fn disabled_instructions_are_not_advertised() {
        assert_eq!(
            guest_view(7, 0, ALL, 0, false, &TIMING).ebx
                & (LEAF7_EBX_INVPCID | LEAF7_EBX_TSC_ADJUST),
            0
        );
        assert_eq!(
            guest_view(7, 1, ALL, 0, false, &TIMING),
            ALL,
            "only subleaf 0 is filtered"
        );
        assert_eq!(
            guest_view(0xd, 1, ALL, 0, false, &TIMING).eax & LEAFD1_EAX_XSAVES,
            0
        );
        assert_eq!(
            guest_view(0x8000_0001, 0, ALL, 0, false, &TIMING).edx & EXT1_EDX_RDTSCP,
            0
        );
        assert_eq!(
            guest_view(0xa, 0, ALL, 0, false, &TIMING),
            CpuidResult::default()
        );
    }

    #[test]
    fn leaf1_hides_debug_store_thermal_and_power_features() {
        let r = guest_view(1, 0, ALL, 0, false, &TIMING);
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
    fn thermal_and_power_leaf_offers_only_arat() {
        assert_eq!(
            guest_view(6, 0, ALL, 0, false, &TIMING),
            CpuidResult {
                eax: LEAF6_EAX_ARAT,
                ..CpuidResult::default()
            }
        );
    }

    #[test]
    fn leaf7_hides_features_whose_msrs_are_not_offered() {
        let r = guest_view(7, 0, ALL, 0, false, &TIMING);
        assert_eq!(r.ecx & (LEAF7_ECX_CET_SS | LEAF7_ECX_PKS), 0);
        assert_eq!(r.ecx & LEAF7_ECX_RDPID, 0, "RDPID needs enable-RDTSCP");
        assert_eq!(
            r.ecx & LEAF7_ECX_LA57,
            0,
            "five-level paging is not offered"
        );
        assert_eq!(
            r.edx & (LEAF7_EDX_ARCH_LBR | LEAF7_EDX_CET_IBT | LEAF7_EDX_SPECULATION_MSRS),
            0
        );
        assert_ne!(r.ebx & 1, 0, "FSGSBASE still shown");
    }

    #[test]
    fn xsave_supervisor_state_is_not_offered() {
        let r = guest_view(0xd, 1, ALL, 0, false, &TIMING);
        assert_eq!(r.eax & (LEAFD1_EAX_XSAVES | LEAFD1_EAX_XFD), 0);
        assert_ne!(r.eax & 1, 0, "XSAVEOPT still shown");
        assert_eq!((r.ecx, r.edx), (0, 0));
        assert_eq!(
            guest_view(0xd, 0, ALL, 0, false, &TIMING),
            ALL,
            "XCR0 bits pass"
        );
    }

    #[test]
    fn other_leaves_pass_through() {
        assert_eq!(guest_view(0, 0, ALL, 0, false, &TIMING), ALL);
        assert_eq!(guest_view(0x8000_0008, 0, ALL, 0, false, &TIMING), ALL);
    }

    #[test]
    fn timing_leaves_report_the_tsc_and_the_apic_crystal() {
        // Leaf 0x15: TSC = ECX * EBX / EAX, the crystal in ECX.
        let r = guest_view(0x15, 0, ALL, 0, false, &TIMING);
        assert_eq!(r.ecx as u64, APIC_TIMER_HZ);
        let r = guest_view(0x15, 0, ALL, 0, false, &TimingLeaves::new(3_000_000_000));
        assert_eq!((r.eax, r.ebx), (1, 120), "exact, in lowest terms");
        // Rates whose exact ratio has a large numerator: close, and inside
        // Linux's 32-bit arithmetic (crystal in kHz times EBX).
        for tsc_hz in [
            TSC_HZ,
            199_988_200,
            199_882_000,
            2_112_345_678,
            2_608_123_457,
            2_615_123_456,
            3_999_999_999,
            5_000_000_001,
        ] {
            let r = guest_view(0x15, 0, ALL, 0, false, &TimingLeaves::new(tsc_hz));
            // The rate leaf 0x15 implies agrees with leaf 0x4000_0010's
            // kilohertz to within one (apictest's check).
            let implied = u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax);
            assert!(
                implied.abs_diff(tsc_hz) <= 1000,
                "{tsc_hz} Hz given as {implied} Hz ({}/{})",
                r.ebx,
                r.eax
            );
            let linux_khz = (r.ecx / 1000)
                .checked_mul(r.ebx)
                .expect("crystal_khz * ebx overflows 32 bits")
                / r.eax;
            let error = (u64::from(linux_khz) * 1000).abs_diff(tsc_hz);
            assert!(
                error * 100_000 <= tsc_hz,
                "{tsc_hz} Hz read as {linux_khz} kHz ({}/{})",
                r.ebx,
                r.eax
            );
        }
        // Leaf 0x16 in MHz; the hypervisor timing leaf in kHz.
        let r = guest_view(0x16, 0, ALL, 0, false, &TIMING);
        assert_eq!((r.eax, r.ebx, r.ecx), (199, 199, 25));
        let r = guest_view(TIMING_LEAF, 0, ALL, 0, false, &TIMING);
        assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (199_999, 25_000, 0, 0));
    }

    #[test]
    fn svm_and_skinit_are_hidden_with_their_leaf() {
        let view = guest_view(0x8000_0001, 0, ALL, 0, false, &TIMING);
        assert_eq!(view.ecx & (EXT1_ECX_SVM | EXT1_ECX_SKINIT), 0);
        assert_eq!(view.ecx | EXT1_ECX_SVM | EXT1_ECX_SKINIT, ALL.ecx);
        assert_eq!(
            guest_view(0x8000_000a, 0, ALL, 0, false, &TIMING),
            CpuidResult::default()
        );
    }

    #[test]
    fn the_maximum_basic_leaf_covers_the_timing_leaves_on_any_host() {
        // A host like QEMU's TCG: basic leaves up to 0xD, repeating 0xD past it.
        let timing = TimingLeaves::new(TSC_HZ).with_host_max_leaf(0xd);
        let leaf0 = CpuidResult { eax: 0xd, ..ALL };
        assert_eq!(guest_view(0, 0, leaf0, 0, false, &timing).eax, 0x16);
        assert_eq!(guest_view(0, 0, ALL, 0, false, &timing).eax, u32::MAX);
        for leaf in 0xe..=0x14 {
            assert_eq!(
                guest_view(leaf, 0, ALL, 0, false, &timing),
                CpuidResult::default(),
                "leaf {leaf:#x}"
            );
        }
        assert_eq!(
            guest_view(0x15, 0, ALL, 0, false, &timing),
            timing.tsc_and_crystal
        );
        assert_eq!(guest_view(0x16, 0, ALL, 0, false, &timing).ecx, 25);
        // Leaves the host has pass through as before.
        assert_eq!(guest_view(0xd, 0, ALL, 0, false, &timing), ALL);
    }
}
