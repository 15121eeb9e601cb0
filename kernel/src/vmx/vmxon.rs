//! The Intel VMX backend: turning VMX on, the VMCS, entry and exit.
//!
//! This module owns everything that executes VMX instructions. The
//! vendor-neutral core (`vmm`) sees a [`vcpu::Vcpu`] that runs a guest until
//! it exits and a decoded [`exit::VmExit`].

use super::capabilities::Capabilities;
pub use super::capabilities::{invept_all, invvpid_all};
use crate::rules::bits::cr4;
use crate::vmx::controls::{apply_fixed_bits, ControlError};
use core::fmt;
use x86::msr::IA32_FEATURE_CONTROL;
use x86::msr::{rdmsr, wrmsr};

const FEATURE_CONTROL_LOCKED: u64 = 1 << 0;
const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;

/// Why VMX could not be turned on.
#[derive(Debug)]
pub enum VmxError {
    /// CPUID.1:ECX.VMX is 0.
    NotSupported,
    /// The firmware locked IA32_FEATURE_CONTROL with VMX disabled.
    LockedOff,
    /// A required control or capability is missing.
    Control(ControlError),
    /// A required capability other than a control is missing.
    Missing(&'static str),
    /// No memory for the VMXON region.
    OutOfMemory,
    /// VMXON itself failed.
    VmxonFailed,
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmxError::NotSupported => f.write_str("this CPU has no VMX (CPUID.1:ECX.VMX = 0)"),
            VmxError::LockedOff => f.write_str(
                "the firmware locked VMX off (IA32_FEATURE_CONTROL); enable Intel VT-x in its setup",
            ),
            VmxError::Control(error) => error.fmt(f),
            VmxError::Missing(what) => write!(f, "this CPU lacks {}, which tessera requires", what),
            VmxError::OutOfMemory => f.write_str("no memory for the VMXON region"),
            VmxError::VmxonFailed => f.write_str("VMXON failed"),
        }
    }
}

/// Turns VMX operation on for this CPU and returns its capabilities.
///
/// Follows SDM Vol. 3C, 25.7 "Enabling and Entering VMX Operation":
/// IA32_FEATURE_CONTROL, the CR0/CR4 fixed bits (A.7, A.8), then VMXON with
/// the VMCS revision identifier in a 4 KiB region.
pub fn enable() -> Result<Capabilities, VmxError> {
    let cpuid = raw_cpuid::CpuId::new();
    let features = cpuid.get_feature_info().ok_or(VmxError::NotSupported)?;
    if !features.has_vmx() {
        return Err(VmxError::NotSupported);
    }
    // SAFETY: IA32_FEATURE_CONTROL exists whenever CPUID reports VMX; the
    // write only happens while it is unlocked, as the SDM prescribes.
    unsafe {
        let control = rdmsr(IA32_FEATURE_CONTROL);
        if control & FEATURE_CONTROL_LOCKED == 0 {
            wrmsr(
                IA32_FEATURE_CONTROL,
                control | FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMX_OUTSIDE_SMX,
            );
        } else if control & FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
            return Err(VmxError::LockedOff);
        }
    }
    let capabilities = Capabilities::read().map_err(VmxError::Control)?;
    capabilities.check()?;

    // SAFETY: adjusting CR0/CR4 to the VMX fixed bits keeps every bit the
    // kernel relies on (PE, PG, WP, PAE) — they are in FIXED0 or allowed by
    // FIXED1. OSXSAVE is enabled so that guest extended state can be saved.
    unsafe {
        let cr0 = x86::controlregs::cr0().bits() as u64;
        let cr0 = apply_fixed_bits(cr0, capabilities.cr0_fixed0, capabilities.cr0_fixed1, 0);
        core::arch::asm!("mov cr0, {}", in(reg) cr0, options(nostack));
        let mut cr4 = x86::controlregs::cr4().bits() as u64 | cr4::VMXE;
        if features.has_xsave() {
            cr4 |= cr4::OSXSAVE;
        }
        let cr4 = apply_fixed_bits(cr4, capabilities.cr4_fixed0, capabilities.cr4_fixed1, 0);
        core::arch::asm!("mov cr4, {}", in(reg) cr4, options(nostack));
    }

    let region = crate::mm::allocate_zeroed(4096, 4096).map_err(|_| VmxError::OutOfMemory)?;
    // SAFETY: the region is a fresh identity-mapped page owned by VMX from
    // now on; the first 4 bytes carry the revision identifier (SDM Vol. 3C, 26.11.5).
    unsafe {
        (region.start as *mut u32).write(capabilities.revision);
        x86::bits64::vmx::vmxon(region.start).map_err(|_| VmxError::VmxonFailed)?;
    }
    crate::arch::percpu::this_cpu().set_vmxon_region(region.start);
    Ok(capabilities)
}
