//! The MSRs a guest can reach through RDMSR/WRMSR exits.
//!
//! The MSR bitmap lets the segment-base, SYSENTER and SYSCALL MSRs through;
//! every other access exits here. A small set is virtualized; any other MSR
//! raises #GP, as on a CPU that lacks it.

use super::vcpu::Vcpu;

const IA32_TSC: u32 = 0x10;
const IA32_PLATFORM_ID: u32 = 0x17;
const IA32_APIC_BASE: u32 = 0x1b;
const IA32_FEATURE_CONTROL: u32 = 0x3a;
const IA32_BIOS_SIGN_ID: u32 = 0x8b;
const IA32_MTRRCAP: u32 = 0xfe;
const IA32_MISC_ENABLE: u32 = 0x1a0;
const IA32_DEBUGCTL: u32 = 0x1d9;
const IA32_PAT: u32 = 0x277;
const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
const IA32_EFER: u32 = 0xc000_0080;

/// The xAPIC at its architectural base, enabled, this vCPU the BSP.
const APIC_BASE_VALUE: u64 = 0xfee0_0000 | (1 << 11) | (1 << 8);
/// EFER bits a guest may set: SCE, LME, LMA (read-only), NXE.
const EFER_WRITABLE: u64 = (1 << 0) | (1 << 8) | (1 << 11);
const EFER_LMA: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const CR0_PG: u64 = 1 << 31;
/// MTRR_DEF_TYPE bits: type (7:0), fixed-range enable (10), enable (11).
const MTRR_DEF_TYPE_WRITABLE: u64 = 0xff | (1 << 10) | (1 << 11);
/// DEBUGCTL bits a guest may set: BTF (1), single-step on branches. LBR and
/// the tracing bits need MSRs tessera does not offer (SDM Vol. 3B, 18.4.1).
const DEBUGCTL_WRITABLE: u64 = 1 << 1;

/// Per-VM values of the virtualized MSRs.
#[derive(Debug, Clone, Copy)]
pub struct VirtualMsrs {
    mtrr_def_type: u64,
    misc_enable: u64,
}

impl Default for VirtualMsrs {
    fn default() -> Self {
        VirtualMsrs {
            mtrr_def_type: 0,
            // Fast strings, as firmware leaves it.
            misc_enable: 1,
        }
    }
}

/// UC, WC, WT, WP, WB (SDM Vol. 3A, Table 13-8).
fn valid_memory_type(value: u8) -> bool {
    matches!(value, 0 | 1 | 4 | 5 | 6)
}

fn valid_pat(value: u64) -> bool {
    // Each of the 8 entries is a memory type or 7, UC- (SDM 13.12.2).
    value
        .to_le_bytes()
        .iter()
        .all(|&entry| valid_memory_type(entry) || entry == 7)
}

/// The value of `msr` for the guest, or `None` for #GP.
pub fn read<V: Vcpu>(msrs: &VirtualMsrs, vcpu: &V, msr: u32) -> Option<u64> {
    Some(match msr {
        IA32_TSC => crate::arch::tsc::rdtsc().wrapping_add(vcpu.tsc_offset()),
        IA32_PLATFORM_ID | IA32_BIOS_SIGN_ID | IA32_MTRRCAP => 0,
        IA32_APIC_BASE => APIC_BASE_VALUE,
        // Locked with VMX disabled: the guest sees no VMX to turn on.
        IA32_FEATURE_CONTROL => 1,
        IA32_MISC_ENABLE => msrs.misc_enable,
        IA32_DEBUGCTL => vcpu.debugctl(),
        IA32_PAT => vcpu.pat(),
        IA32_MTRR_DEF_TYPE => msrs.mtrr_def_type,
        IA32_EFER => vcpu.control_state().efer,
        _ => return None,
    })
}

/// Applies a guest write; `false` means #GP.
pub fn write<V: Vcpu>(msrs: &mut VirtualMsrs, vcpu: &mut V, msr: u32, value: u64) -> bool {
    match msr {
        IA32_TSC => {
            let offset = value.wrapping_sub(crate::arch::tsc::rdtsc());
            vcpu.set_tsc_offset(offset);
        }
        // Microcode-update signature: writing 0 before CPUID is the
        // documented way to read it back; accept and ignore.
        IA32_BIOS_SIGN_ID => {}
        IA32_APIC_BASE if value == APIC_BASE_VALUE => {}
        // Only fast strings (bit 0) may change; tessera emulates none of the
        // other controls, so a write that would change them faults.
        IA32_MISC_ENABLE if (value ^ msrs.misc_enable) & !1 == 0 => msrs.misc_enable = value,
        IA32_DEBUGCTL if value & !DEBUGCTL_WRITABLE == 0 => vcpu.set_debugctl(value),
        IA32_PAT if valid_pat(value) => vcpu.set_pat(value),
        IA32_MTRR_DEF_TYPE
            if value & !MTRR_DEF_TYPE_WRITABLE == 0 && valid_memory_type(value as u8) =>
        {
            msrs.mtrr_def_type = value
        }
        IA32_EFER if value & !(EFER_WRITABLE | EFER_LMA) == 0 => {
            let state = vcpu.control_state();
            // LME cannot change while paging is on (SDM Vol. 3A, 10.8.5).
            if (value ^ state.efer) & EFER_LME != 0 && state.cr0 & CR0_PG != 0 {
                return false;
            }
            // LMA follows CR0.PG and LME; the guest cannot set it directly.
            vcpu.set_efer((value & EFER_WRITABLE) | (state.efer & EFER_LMA));
        }
        _ => return false,
    }
    true
}
