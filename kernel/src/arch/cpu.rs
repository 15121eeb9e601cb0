//! CPU identification and the boot report of virtualization features.

use raw_cpuid::CpuId;
use x86::msr::rdmsr;

use crate::svm::features::{SvmDisabled, SvmFeatures, VM_CR};

use x86::msr::{
    IA32_FEATURE_CONTROL, IA32_VMX_BASIC, IA32_VMX_PINBASED_CTLS, IA32_VMX_PROCBASED_CTLS,
    IA32_VMX_PROCBASED_CTLS2, IA32_VMX_TRUE_PINBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS,
};

/// What the CPU offers for virtualization, as reported at boot.
#[derive(Debug, Clone, Copy, Default)]
pub struct Virtualization {
    /// Intel VMX (CPUID.1:ECX.VMX[bit 5]).
    pub vmx: bool,
    /// IA32_FEATURE_CONTROL is locked with VMX outside SMX disabled.
    pub vmx_locked_off: bool,
    /// EPT (secondary processor-based control bit 1).
    pub ept: bool,
    /// Unrestricted guest (secondary control bit 7).
    pub unrestricted_guest: bool,
    /// VPID (secondary control bit 5).
    pub vpid: bool,
    /// VMX-preemption timer (pin-based control bit 6).
    pub preemption_timer: bool,
    /// AMD SVM (CPUID.80000001H:ECX.SVM[bit 2]).
    pub svm: bool,
    /// AMD nested paging (CPUID.8000000AH:EDX.NP[bit 0]).
    pub npt: bool,
    /// SVM's revision, ASIDs and features (CPUID Fn8000_000A), when SVM
    /// is present.
    pub svm_features: Option<SvmFeatures>,
    /// Why SVM, though present, cannot be enabled (VM_CR).
    pub svm_disabled: Option<SvmDisabled>,
    /// x2APIC (CPUID.1:ECX[bit 21]).
    pub x2apic: bool,
    /// Invariant TSC (CPUID.80000007H:EDX[bit 8]).
    pub invariant_tsc: bool,
    /// 1 GiB pages (CPUID.80000001H:EDX[bit 26]).
    pub huge_pages: bool,
    /// Running under another hypervisor (CPUID.1:ECX[bit 31]).
    pub nested: bool,
}

/// Allowed-1 settings of a VMX capability MSR: the high 32 bits
/// (SDM Vol. 3D, A.3 "VM-Execution Controls").
fn allowed_one(msr: u32) -> u32 {
    // SAFETY: only called when CPUID reports VMX, which makes the VMX
    // capability MSRs readable.
    (unsafe { rdmsr(msr) } >> 32) as u32
}

/// Probes the boot CPU.
pub fn probe() -> Virtualization {
    let cpuid = CpuId::new();
    let features = cpuid.get_feature_info();
    let extended = cpuid.get_extended_processor_and_feature_identifiers();
    let mut v = Virtualization {
        vmx: features.as_ref().is_some_and(|f| f.has_vmx()),
        x2apic: features.as_ref().is_some_and(|f| f.has_x2apic()),
        nested: features.as_ref().is_some_and(|f| f.has_hypervisor()),
        svm: extended.as_ref().is_some_and(|e| e.has_svm()),
        huge_pages: extended.as_ref().is_some_and(|e| e.has_1gib_pages()),
        invariant_tsc: cpuid
            .get_advanced_power_mgmt_info()
            .is_some_and(|a| a.has_invariant_tsc()),
        ..Virtualization::default()
    };
    if v.svm {
        v.npt = cpuid.get_svm_info().is_some_and(|s| s.has_nested_paging());
        if raw_cpuid::cpuid!(0x8000_0000).eax >= 0x8000_000a {
            let leaf = raw_cpuid::cpuid!(0x8000_000a);
            v.svm_features = Some(SvmFeatures::from_cpuid(leaf.eax, leaf.ebx, leaf.edx));
        }
        // SAFETY: VM_CR exists on every processor that reports SVM
        // (APM Vol. 2, 15.30.1); reading it changes nothing.
        v.svm_disabled = SvmDisabled::from_vm_cr(unsafe { rdmsr(VM_CR) });
    }
    if v.vmx {
        // SAFETY: IA32_FEATURE_CONTROL and the VMX capability MSRs exist
        // whenever CPUID reports VMX.
        let (control, basic) = unsafe { (rdmsr(IA32_FEATURE_CONTROL), rdmsr(IA32_VMX_BASIC)) };
        v.vmx_locked_off = control & 1 != 0 && control & (1 << 2) == 0;
        // IA32_VMX_BASIC[55]: the TRUE_* MSRs exist (SDM Vol. 3D, A.1).
        let has_true = basic & (1 << 55) != 0;
        let pin = allowed_one(if has_true {
            IA32_VMX_TRUE_PINBASED_CTLS
        } else {
            IA32_VMX_PINBASED_CTLS
        });
        let proc = allowed_one(if has_true {
            IA32_VMX_TRUE_PROCBASED_CTLS
        } else {
            IA32_VMX_PROCBASED_CTLS
        });
        v.preemption_timer = pin & (1 << 6) != 0;
        if proc & (1 << 31) != 0 {
            let proc2 = allowed_one(IA32_VMX_PROCBASED_CTLS2);
            v.ept = proc2 & (1 << 1) != 0;
            v.vpid = proc2 & (1 << 5) != 0;
            v.unrestricted_guest = proc2 & (1 << 7) != 0;
        }
    }
    v
}

fn yes(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// Prints the CPU report.
pub fn report(v: &Virtualization) {
    let cpuid = CpuId::new();
    let vendor = cpuid.get_vendor_info();
    crate::println!(
        "cpu: vendor {}",
        vendor.as_ref().map_or("unknown", |v| v.as_str())
    );
    if let Some(f) = cpuid.get_feature_info() {
        crate::println!(
            "cpu: family {:#x} model {:#x} stepping {}",
            f.family_id(),
            f.model_id(),
            f.stepping_id()
        );
    }
    if let Some(brand) = cpuid.get_processor_brand_string() {
        crate::println!("cpu: {}", brand.as_str().trim());
    }
    crate::println!(
        "cpu: VMX {}  EPT {}  unrestricted-guest {}  VPID {}  preemption-timer {}",
        yes(v.vmx),
        yes(v.ept),
        yes(v.unrestricted_guest),
        yes(v.vpid),
        yes(v.preemption_timer)
    );
    crate::println!(
        "cpu: SVM {}  NPT {}  x2APIC {}  invariant-TSC {}  1G-pages {}{}",
        yes(v.svm),
        yes(v.npt),
        yes(v.x2apic),
        yes(v.invariant_tsc),
        yes(v.huge_pages),
        if v.nested {
            "  (running under a hypervisor)"
        } else {
            ""
        }
    );
    if let Some(features) = v.svm_features {
        crate::println!("cpu: SVM features: {}", features);
    }
    if let Some(disabled) = v.svm_disabled {
        crate::println!("cpu: {}", disabled);
    }
    if v.vmx_locked_off {
        crate::println!("cpu: VMX is present but the firmware locked it off (IA32_FEATURE_CONTROL); enable virtualization in the firmware setup");
    }
    if !v.vmx && !v.svm {
        crate::println!("cpu: this CPU offers no hardware virtualization: neither VMX nor SVM");
    } else if v.vmx && !v.vmx_locked_off {
        crate::println!("cpu: hardware virtualization: Intel VMX");
    } else if v.svm && v.svm_disabled.is_none() {
        crate::println!("cpu: hardware virtualization: AMD SVM");
    }
}

/// MAXPHYADDR: the physical-address width (CPUID.80000008H:EAX[7:0], 36 when
/// the leaf is absent; SDM Vol. 3A, 5.1.4), asked once.
pub fn physical_address_bits() -> u8 {
    static BITS: spin::Once<u8> = spin::Once::new();
    *BITS.call_once(|| {
        let highest = raw_cpuid::cpuid!(0x8000_0000).eax;
        if highest >= 0x8000_0008 {
            raw_cpuid::cpuid!(0x8000_0008).eax as u8
        } else {
            36
        }
    })
}
