//! Turning SVM on for this CPU (APM Vol. 2, 15.4 "Enabling SVM"): CPUID
//! says SVM and nested paging are there, VM_CR says firmware left them on,
//! then EFER.SVME and the host save area VMRUN needs (VM_HSAVE_PA, 15.30.4).

use super::features::{SvmDisabled, SvmFeatures, VM_CR};
use crate::mm::phys::PhysRange;
use crate::rules::bits::efer;
use core::fmt;
use x86::msr::{rdmsr, wrmsr, IA32_EFER};

/// VM_HSAVE_PA (MSRC001_0117): where VMRUN saves the host's state.
pub const VM_HSAVE_PA: u32 = 0xc001_0117;

/// Why SVM could not be turned on.
#[derive(Debug)]
pub enum SvmError {
    /// CPUID Fn8000_0001 ECX[2] is 0.
    NotSupported,
    /// VM_CR.SVMDIS is set.
    Disabled(SvmDisabled),
    /// No nested paging (Fn8000_000A EDX[0]), which tessera requires as it
    /// requires EPT on Intel.
    NoNestedPaging,
    /// Fewer than two ASIDs: nothing is left for guests after the host's 0.
    NoAsids,
    /// No memory for the host save areas.
    OutOfMemory,
}

impl fmt::Display for SvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SvmError::NotSupported => {
                f.write_str("this CPU has neither VMX nor SVM (CPUID Fn8000_0001 ECX.SVM = 0)")
            }
            SvmError::Disabled(why) => why.fmt(f),
            SvmError::NoNestedPaging => {
                f.write_str("this CPU's SVM lacks nested paging (CPUID Fn8000_000A EDX.NP = 0), which tessera requires")
            }
            SvmError::NoAsids => f.write_str("this CPU's SVM has no ASID for guests"),
            SvmError::OutOfMemory => f.write_str("no memory for the SVM host save areas"),
        }
    }
}

/// SVM, on, for this CPU.
pub struct SvmCpu {
    /// What Fn8000_000A reported.
    pub features: SvmFeatures,
    /// The page VMLOAD restores the host's hidden state from after every
    /// exit (FS, GS, TR, LDTR, KERNEL_GS_BASE, the SYSCALL and SYSENTER
    /// MSRs): VMRUN and #VMEXIT do not switch those (15.5.2).
    pub host_vmload_area: u64,
}

/// Turns SVM on for this CPU.
pub fn enable() -> Result<SvmCpu, SvmError> {
    let cpuid = raw_cpuid::CpuId::new();
    let has_svm = cpuid
        .get_extended_processor_and_feature_identifiers()
        .is_some_and(|e| e.has_svm());
    if !has_svm {
        return Err(SvmError::NotSupported);
    }
    let leaf = raw_cpuid::cpuid!(0x8000_000a);
    let features = SvmFeatures::from_cpuid(leaf.eax, leaf.ebx, leaf.edx);
    // SAFETY: VM_CR exists on every CPU that reports SVM (15.30.1).
    if let Some(why) = SvmDisabled::from_vm_cr(unsafe { rdmsr(VM_CR) }) {
        return Err(SvmError::Disabled(why));
    }
    if !features.nested_paging() {
        return Err(SvmError::NoNestedPaging);
    }
    if features.asids < 2 {
        return Err(SvmError::NoAsids);
    }
    let hsave: PhysRange =
        crate::mm::allocate_zeroed(4096, 4096).map_err(|_| SvmError::OutOfMemory)?;
    let vmload: PhysRange =
        crate::mm::allocate_zeroed(4096, 4096).map_err(|_| SvmError::OutOfMemory)?;
    // SAFETY: SVM is present and not disabled (checked above), so EFER.SVME
    // may be set (15.4); the host save area is a fresh page this CPU keeps
    // for the hypervisor's life, 4 KiB aligned as VM_HSAVE_PA requires
    // (15.30.4). VMSAVE then copies the host's current hidden state (its GS
    // base, which points at the per-CPU structure, its TR) into the other
    // fresh page, for the VMLOAD after every exit.
    unsafe {
        // OSXSAVE, so that guests' extended state can be saved and XSETBV
        // works (as the VMX backend enables it with VMXON).
        if raw_cpuid::cpuid!(1).ecx & (1 << 26) != 0 {
            let cr4 = x86::controlregs::cr4().bits() as u64 | crate::rules::bits::cr4::OSXSAVE;
            core::arch::asm!("mov cr4, {}", in(reg) cr4, options(nostack));
        }
        wrmsr(IA32_EFER, rdmsr(IA32_EFER) | efer::SVME);
        wrmsr(VM_HSAVE_PA, hsave.start);
        core::arch::asm!("vmsave rax", in("rax") vmload.start, options(nostack));
    }
    Ok(SvmCpu {
        features,
        host_vmload_area: vmload.start,
    })
}
