//! What this CPU's VMX implementation allows, read once from the capability
//! MSRs, and the control words tessera derives from them.

use super::VmxError;
use crate::vmx::controls::{reconcile, ControlError, ControlField};
use x86::msr::rdmsr;

use x86::msr::{
    IA32_VMX_BASIC, IA32_VMX_CR0_FIXED0, IA32_VMX_CR0_FIXED1, IA32_VMX_CR4_FIXED0,
    IA32_VMX_CR4_FIXED1, IA32_VMX_ENTRY_CTLS, IA32_VMX_EPT_VPID_CAP, IA32_VMX_EXIT_CTLS,
    IA32_VMX_MISC, IA32_VMX_PINBASED_CTLS, IA32_VMX_PROCBASED_CTLS, IA32_VMX_PROCBASED_CTLS2,
    IA32_VMX_TRUE_ENTRY_CTLS, IA32_VMX_TRUE_EXIT_CTLS, IA32_VMX_TRUE_PINBASED_CTLS,
    IA32_VMX_TRUE_PROCBASED_CTLS,
};

/// Pin-based control bits (SDM Vol. 3C, Table 26-5).
pub mod pin {
    /// External-interrupt exiting.
    pub const EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
    /// NMI exiting.
    pub const NMI_EXITING: u32 = 1 << 3;
    /// Virtual NMIs: the CPU tracks the guest's NMI blocking (set by an
    /// injected NMI, cleared by the guest's IRET).
    pub const VIRTUAL_NMIS: u32 = 1 << 5;
    /// Activate VMX-preemption timer.
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
}

/// Primary processor-based control bits (Table 26-6).
pub mod primary {
    /// Interrupt-window exiting.
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    /// Use TSC offsetting.
    pub const TSC_OFFSETTING: u32 = 1 << 3;
    /// HLT exiting.
    pub const HLT_EXITING: u32 = 1 << 7;
    /// MWAIT exiting.
    pub const MWAIT_EXITING: u32 = 1 << 10;
    /// RDPMC exiting.
    pub const RDPMC_EXITING: u32 = 1 << 11;
    /// Use I/O bitmaps.
    pub const IO_BITMAPS: u32 = 1 << 25;
    /// Use MSR bitmaps.
    pub const MSR_BITMAPS: u32 = 1 << 28;
    /// MONITOR exiting.
    pub const MONITOR_EXITING: u32 = 1 << 29;
    /// NMI-window exiting (needs virtual NMIs).
    pub const NMI_WINDOW_EXITING: u32 = 1 << 22;
    /// Activate secondary controls.
    pub const SECONDARY_CONTROLS: u32 = 1 << 31;
}

/// Secondary processor-based control bits (Table 26-7).
pub mod secondary {
    /// Enable EPT.
    pub const EPT: u32 = 1 << 1;
    /// Enable VPID.
    pub const VPID: u32 = 1 << 5;
    /// Unrestricted guest.
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
}

/// VM-exit control bits (Table 26-14).
pub mod exit_controls {
    /// Save debug controls (DR7, IA32_DEBUGCTL).
    pub const SAVE_DEBUG_CONTROLS: u32 = 1 << 2;
    /// Host address-space size (64-bit host).
    pub const HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
    /// Acknowledge interrupt on exit.
    pub const ACKNOWLEDGE_INTERRUPT: u32 = 1 << 15;
    /// Save IA32_PAT.
    pub const SAVE_PAT: u32 = 1 << 18;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 19;
    /// Save IA32_EFER.
    pub const SAVE_EFER: u32 = 1 << 20;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 21;
}

/// VM-entry control bits (Table 26-16).
pub mod entry_controls {
    /// Load debug controls (DR7, IA32_DEBUGCTL).
    pub const LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
    /// IA-32e mode guest.
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 14;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// The CPU's VMX capabilities and tessera's control words for it.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// VMCS revision identifier.
    pub revision: u32,
    /// Pin-based controls to use.
    pub pin: u32,
    /// Primary processor-based controls to use.
    pub primary: u32,
    /// Primary processor-based controls this CPU allows to be 1 (for the
    /// ones tessera switches at run time, like interrupt-window exiting).
    pub primary_allowed: u32,
    /// Secondary processor-based controls to use.
    pub secondary: u32,
    /// VM-exit controls to use.
    pub exit: u32,
    /// VM-entry controls to use (without IA-32e mode guest).
    pub entry: u32,
    /// The preemption timer counts down every 2^rate TSC ticks (IA32_VMX_MISC[4:0]).
    pub preemption_timer_rate: u32,
    /// IA32_VMX_EPT_VPID_CAP.
    pub ept_vpid: u64,
    /// CR0 bits that must be 1 in VMX operation.
    pub cr0_fixed0: u64,
    /// CR0 bits that may be 1.
    pub cr0_fixed1: u64,
    /// CR4 bits that must be 1.
    pub cr4_fixed0: u64,
    /// CR4 bits that may be 1.
    pub cr4_fixed1: u64,
}

/// EPT/VPID capability: 4-level page walk.
const EPT_WALK_4: u64 = 1 << 6;
/// EPT/VPID capability: write-back EPT paging structures.
const EPT_WRITE_BACK: u64 = 1 << 14;
/// EPT/VPID capability: 2 MiB EPT pages.
const EPT_2M_PAGES: u64 = 1 << 16;
/// EPT/VPID capability: INVEPT.
const EPT_INVEPT: u64 = 1 << 20;
/// EPT/VPID capability: all-context INVEPT.
const EPT_INVEPT_ALL: u64 = 1 << 26;
/// EPT/VPID capability: INVVPID.
const VPID_INVVPID: u64 = 1 << 32;
/// EPT/VPID capability: all-context INVVPID.
const VPID_INVVPID_ALL: u64 = 1 << 42;

impl Capabilities {
    /// Reads the capability MSRs and reconciles every control field.
    pub fn read() -> Result<Capabilities, ControlError> {
        // SAFETY: only called after CPUID reported VMX, which makes all the
        // MSRs below readable; IA32_VMX_PROCBASED_CTLS2 and EPT_VPID_CAP are
        // read only when their presence bits say they exist (SDM A.3.3, A.10).
        unsafe {
            let basic = rdmsr(IA32_VMX_BASIC);
            let has_true = basic & (1 << 55) != 0;
            let pick = |true_msr, msr| if has_true { true_msr } else { msr };
            let pin = reconcile(
                ControlField::PinBased,
                rdmsr(pick(IA32_VMX_TRUE_PINBASED_CTLS, IA32_VMX_PINBASED_CTLS)),
                pin::EXTERNAL_INTERRUPT_EXITING | pin::NMI_EXITING | pin::PREEMPTION_TIMER,
                // Without virtual NMIs the guest's NMI blocking is the real
                // one, which an NMI window cannot be asked for (SDM Vol. 3C,
                // 25.3 and 26.6.2): NMIs then wait for the next exit.
                pin::VIRTUAL_NMIS,
            )?;
            let primary_capability =
                rdmsr(pick(IA32_VMX_TRUE_PROCBASED_CTLS, IA32_VMX_PROCBASED_CTLS));
            let primary = reconcile(
                ControlField::PrimaryProcessorBased,
                primary_capability,
                primary::HLT_EXITING
                    | primary::IO_BITMAPS
                    | primary::MSR_BITMAPS
                    | primary::SECONDARY_CONTROLS
                    | primary::TSC_OFFSETTING,
                primary::MWAIT_EXITING | primary::MONITOR_EXITING | primary::RDPMC_EXITING,
            )?;
            let secondary = reconcile(
                ControlField::SecondaryProcessorBased,
                rdmsr(IA32_VMX_PROCBASED_CTLS2),
                secondary::EPT | secondary::UNRESTRICTED_GUEST,
                secondary::VPID,
            )?;
            let exit = reconcile(
                ControlField::Exit,
                rdmsr(pick(IA32_VMX_TRUE_EXIT_CTLS, IA32_VMX_EXIT_CTLS)),
                // Without "save debug controls" a guest's DR7 and DEBUGCTL
                // would be lost at every exit (SDM Vol. 3C, 29.3.1).
                exit_controls::HOST_ADDRESS_SPACE_SIZE
                    | exit_controls::SAVE_DEBUG_CONTROLS
                    | exit_controls::ACKNOWLEDGE_INTERRUPT
                    | exit_controls::SAVE_PAT
                    | exit_controls::LOAD_PAT
                    | exit_controls::SAVE_EFER
                    | exit_controls::LOAD_EFER,
                // The timer is written before every entry from the slice's
                // wall-clock deadline, so its saved value is never needed.
                0,
            )?;
            let entry = reconcile(
                ControlField::Entry,
                rdmsr(pick(IA32_VMX_TRUE_ENTRY_CTLS, IA32_VMX_ENTRY_CTLS)),
                entry_controls::LOAD_DEBUG_CONTROLS
                    | entry_controls::LOAD_PAT
                    | entry_controls::LOAD_EFER,
                0,
            )?;
            let ept_vpid = rdmsr(IA32_VMX_EPT_VPID_CAP);
            log::debug!(
                "vmx: basic {:#x} pin {:#x} primary {:#x} secondary {:#x} exit {:#x} entry {:#x} ept/vpid {:#x} cr0 fixed {:#x}/{:#x} cr4 fixed {:#x}/{:#x}",
                basic, pin, primary, secondary, exit, entry, ept_vpid,
                rdmsr(IA32_VMX_CR0_FIXED0), rdmsr(IA32_VMX_CR0_FIXED1),
                rdmsr(IA32_VMX_CR4_FIXED0), rdmsr(IA32_VMX_CR4_FIXED1)
            );
            Ok(Capabilities {
                revision: (basic & 0x7fff_ffff) as u32,
                pin,
                primary,
                primary_allowed: (primary_capability >> 32) as u32,
                secondary,
                exit,
                entry,
                preemption_timer_rate: (rdmsr(IA32_VMX_MISC) & 0x1f) as u32,
                ept_vpid,
                cr0_fixed0: rdmsr(IA32_VMX_CR0_FIXED0),
                cr0_fixed1: rdmsr(IA32_VMX_CR0_FIXED1),
                cr4_fixed0: rdmsr(IA32_VMX_CR4_FIXED0),
                cr4_fixed1: rdmsr(IA32_VMX_CR4_FIXED1),
            })
        }
    }

    /// Checks the EPT features tessera's EPT builder relies on.
    pub fn check(&self) -> Result<(), VmxError> {
        for (bit, what) in [
            (EPT_WALK_4, "a 4-level EPT page walk"),
            (EPT_WRITE_BACK, "write-back EPT paging structures"),
            (EPT_2M_PAGES, "2 MiB EPT pages"),
            (EPT_INVEPT, "INVEPT"),
            (EPT_INVEPT_ALL, "all-context INVEPT"),
        ] {
            if self.ept_vpid & bit == 0 {
                return Err(VmxError::Missing(what));
            }
        }
        Ok(())
    }

    /// Whether VPIDs are in use (and INVVPID can flush them).
    pub fn vpid(&self) -> bool {
        self.secondary & secondary::VPID != 0
            && self.ept_vpid & VPID_INVVPID != 0
            && self.ept_vpid & VPID_INVVPID_ALL != 0
    }
}

/// Flushes every EPT-derived translation (INVEPT type 2, SDM Vol. 3C, 32.3).
pub fn invept_all() {
    let descriptor = [0u64; 2];
    // SAFETY: all-context INVEPT only drops cached translations; the
    // capability was checked in `Capabilities::check`.
    unsafe {
        core::arch::asm!("invept {}, [{}]", in(reg) 2u64, in(reg) &descriptor, options(nostack));
    }
}

/// Flushes every VPID-tagged translation (INVVPID type 2).
pub fn invvpid_all() {
    let descriptor = [0u64; 2];
    // SAFETY: all-context INVVPID only drops cached translations; only
    // called when `Capabilities::vpid` is true.
    unsafe {
        core::arch::asm!("invvpid {}, [{}]", in(reg) 2u64, in(reg) &descriptor, options(nostack));
    }
}
