//! VMX control reconciliation: turns what tessera needs and what it would
//! like into the exact control words a CPU accepts, from its capability MSRs.
//!
//! Each VMX control field has a capability MSR whose low 32 bits are the
//! allowed 0-settings (a 1 there means the bit must be 1) and whose high 32
//! bits are the allowed 1-settings (a 0 there means the bit must be 0) — Intel
//! SDM Vol. 3D, A.3.1–A.5. When IA32_VMX_BASIC[55] is set the TRUE_* MSRs
//! replace the pin-based, primary processor-based, exit and entry MSRs
//! (A.2). Getting this wrong shows up only as a VM-entry failure much later,
//! so every field goes through [`reconcile`] and a missing required control is
//! an error that names it.

use core::fmt;

/// A VMX control field and the meaning of its bits, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlField {
    /// Pin-based VM-execution controls.
    PinBased,
    /// Primary processor-based VM-execution controls.
    PrimaryProcessorBased,
    /// Secondary processor-based VM-execution controls.
    SecondaryProcessorBased,
    /// Primary VM-exit controls.
    Exit,
    /// VM-entry controls.
    Entry,
}

impl ControlField {
    /// The name of bit `bit` of this field (SDM Vol. 3C, 26.6 and 26.7-26.8).
    pub fn bit_name(self, bit: u32) -> &'static str {
        use ControlField::*;
        match (self, bit) {
            (PinBased, 0) => "external-interrupt exiting",
            (PinBased, 3) => "NMI exiting",
            (PinBased, 5) => "virtual NMIs",
            (PinBased, 6) => "activate VMX-preemption timer",
            (PinBased, 7) => "process posted interrupts",
            (PrimaryProcessorBased, 2) => "interrupt-window exiting",
            (PrimaryProcessorBased, 3) => "use TSC offsetting",
            (PrimaryProcessorBased, 7) => "HLT exiting",
            (PrimaryProcessorBased, 9) => "INVLPG exiting",
            (PrimaryProcessorBased, 10) => "MWAIT exiting",
            (PrimaryProcessorBased, 11) => "RDPMC exiting",
            (PrimaryProcessorBased, 12) => "RDTSC exiting",
            (PrimaryProcessorBased, 15) => "CR3-load exiting",
            (PrimaryProcessorBased, 16) => "CR3-store exiting",
            (PrimaryProcessorBased, 19) => "CR8-load exiting",
            (PrimaryProcessorBased, 20) => "CR8-store exiting",
            (PrimaryProcessorBased, 21) => "use TPR shadow",
            (PrimaryProcessorBased, 22) => "NMI-window exiting",
            (PrimaryProcessorBased, 23) => "MOV-DR exiting",
            (PrimaryProcessorBased, 24) => "unconditional I/O exiting",
            (PrimaryProcessorBased, 25) => "use I/O bitmaps",
            (PrimaryProcessorBased, 27) => "monitor trap flag",
            (PrimaryProcessorBased, 28) => "use MSR bitmaps",
            (PrimaryProcessorBased, 29) => "MONITOR exiting",
            (PrimaryProcessorBased, 30) => "PAUSE exiting",
            (PrimaryProcessorBased, 31) => "activate secondary controls",
            (SecondaryProcessorBased, 0) => "virtualize APIC accesses",
            (SecondaryProcessorBased, 1) => "enable EPT",
            (SecondaryProcessorBased, 2) => "descriptor-table exiting",
            (SecondaryProcessorBased, 3) => "enable RDTSCP",
            (SecondaryProcessorBased, 5) => "enable VPID",
            (SecondaryProcessorBased, 6) => "WBINVD exiting",
            (SecondaryProcessorBased, 7) => "unrestricted guest",
            (SecondaryProcessorBased, 12) => "enable INVPCID",
            (SecondaryProcessorBased, 20) => "enable XSAVES/XRSTORS",
            (Exit, 2) => "save debug controls",
            (Exit, 9) => "host address-space size",
            (Exit, 12) => "load IA32_PERF_GLOBAL_CTRL",
            (Exit, 15) => "acknowledge interrupt on exit",
            (Exit, 18) => "save IA32_PAT",
            (Exit, 19) => "load IA32_PAT",
            (Exit, 20) => "save IA32_EFER",
            (Exit, 21) => "load IA32_EFER",
            (Exit, 22) => "save VMX-preemption timer value",
            (Entry, 2) => "load debug controls",
            (Entry, 9) => "IA-32e mode guest",
            (Entry, 14) => "load IA32_PAT",
            (Entry, 15) => "load IA32_EFER",
            _ => "reserved control",
        }
    }
}

impl fmt::Display for ControlField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControlField::PinBased => "pin-based VM-execution controls",
            ControlField::PrimaryProcessorBased => "primary processor-based VM-execution controls",
            ControlField::SecondaryProcessorBased => {
                "secondary processor-based VM-execution controls"
            }
            ControlField::Exit => "VM-exit controls",
            ControlField::Entry => "VM-entry controls",
        })
    }
}

/// A control tessera cannot work without is not allowed by this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlError {
    /// The field.
    pub field: ControlField,
    /// The lowest required bit that must be 0 on this CPU.
    pub bit: u32,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this CPU does not allow \"{}\" (bit {} of the {}), which tessera requires",
            self.field.bit_name(self.bit),
            self.bit,
            self.field
        )
    }
}

/// Computes a control word from its capability MSR: the bits the CPU forces
/// to 1, plus `required` (an error if any is not allowed), plus whichever of
/// `optional` the CPU allows. Every other bit is 0.
pub fn reconcile(
    field: ControlField,
    capability: u64,
    required: u32,
    optional: u32,
) -> Result<u32, ControlError> {
    let must_be_one = capability as u32;
    let may_be_one = (capability >> 32) as u32;
    let missing = required & !may_be_one;
    if missing != 0 {
        return Err(ControlError {
            field,
            bit: missing.trailing_zeros(),
        });
    }
    Ok(must_be_one | required | (optional & may_be_one))
}

/// Applies the CR0/CR4 fixed bits for VMX operation (SDM Vol. 3D, A.7-A.8):
/// bits set in `fixed0` must be 1, bits clear in `fixed1` must be 0. `relax`
/// names bits exempt from `fixed0` (PE and PG under unrestricted guest).
pub const fn apply_fixed_bits(value: u64, fixed0: u64, fixed1: u64, relax: u64) -> u64 {
    (value | (fixed0 & !relax)) & fixed1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    // Capability MSR values read from real CPUs.
    /// IA32_VMX_TRUE_PINBASED_CTLS of a Skylake-X (and of Bochs' model).
    const SKYLAKE_TRUE_PIN: u64 = 0x0000_007f_0000_0016;
    /// IA32_VMX_TRUE_PROCBASED_CTLS of a Skylake-X.
    const SKYLAKE_TRUE_PROC: u64 = 0xfff9_fffe_0400_6172;
    /// IA32_VMX_PROCBASED_CTLS2 of a Skylake-X.
    const SKYLAKE_PROC2: u64 = 0x0053_7fff_0000_0000;
    /// IA32_VMX_TRUE_EXIT_CTLS of a Skylake-X.
    const SKYLAKE_TRUE_EXIT: u64 = 0x01ff_ffff_0003_6dfb;
    /// IA32_VMX_TRUE_ENTRY_CTLS of a Skylake-X.
    const SKYLAKE_TRUE_ENTRY: u64 = 0x0003_ffff_0000_11fb;
    /// IA32_VMX_PROCBASED_CTLS2 of a Core 2 (Penryn): no EPT, no unrestricted guest.
    const PENRYN_PROC2: u64 = 0x0000_0041_0000_0000;
    /// IA32_VMX_PINBASED_CTLS of a Core 2 (Merom): no preemption timer.
    const MEROM_PIN: u64 = 0x0000_003f_0000_0016;

    #[test]
    fn forced_bits_survive_and_optional_bits_are_filtered() {
        let pin = reconcile(
            ControlField::PinBased,
            SKYLAKE_TRUE_PIN,
            1 | 1 << 3,
            1 << 6 | 1 << 7,
        )
        .unwrap();
        assert_eq!(pin & 0x16, 0x16, "default-1 bits kept");
        assert_eq!(pin & (1 | 1 << 3 | 1 << 6), 1 | 1 << 3 | 1 << 6);
        assert_eq!(pin & 1 << 7, 0, "posted interrupts not offered: dropped");

        let proc = reconcile(
            ControlField::PrimaryProcessorBased,
            SKYLAKE_TRUE_PROC,
            1 << 7 | 1 << 25 | 1 << 28 | 1 << 31,
            0,
        )
        .unwrap();
        // The TRUE MSR lets CR3 load/store exiting (bits 15, 16) be 0.
        assert_eq!(proc & (1 << 15 | 1 << 16), 0);
        assert_eq!(proc & 0x0400_6172, 0x0400_6172);
    }

    #[test]
    fn skylake_allows_everything_tessera_needs() {
        let proc2 = reconcile(
            ControlField::SecondaryProcessorBased,
            SKYLAKE_PROC2,
            1 << 1 | 1 << 7,
            1 << 5,
        )
        .unwrap();
        assert_eq!(proc2, 1 << 1 | 1 << 5 | 1 << 7);
        let exit = reconcile(
            ControlField::Exit,
            SKYLAKE_TRUE_EXIT,
            1 << 9 | 1 << 15 | 1 << 20 | 1 << 21,
            1 << 22,
        )
        .unwrap();
        assert_ne!(exit & 1 << 22, 0);
        let entry = reconcile(ControlField::Entry, SKYLAKE_TRUE_ENTRY, 1 << 15, 1 << 14).unwrap();
        assert_eq!(entry & (1 << 14 | 1 << 15), 1 << 14 | 1 << 15);
    }

    #[test]
    fn missing_required_control_names_it() {
        let error = reconcile(
            ControlField::SecondaryProcessorBased,
            PENRYN_PROC2,
            1 << 1 | 1 << 7,
            0,
        )
        .unwrap_err();
        assert_eq!(error.bit, 1);
        assert_eq!(
            error.to_string(),
            "this CPU does not allow \"enable EPT\" (bit 1 of the secondary processor-based VM-execution controls), which tessera requires"
        );
        let error = reconcile(ControlField::PinBased, MEROM_PIN, 1 << 6, 0).unwrap_err();
        assert_eq!(
            error.field.bit_name(error.bit),
            "activate VMX-preemption timer"
        );
    }

    #[test]
    fn optional_controls_are_dropped_quietly() {
        let pin = reconcile(ControlField::PinBased, MEROM_PIN, 1, 1 << 6 | 1 << 7).unwrap();
        assert_eq!(pin & (1 << 6 | 1 << 7), 0);
    }

    #[test]
    fn fixed_bits() {
        // CR0 fixed0 = PE|NE|PG, fixed1 = all ones (typical).
        let fixed0 = 0x8000_0021;
        let fixed1 = 0xffff_ffff;
        assert_eq!(apply_fixed_bits(0x10, fixed0, fixed1, 0), 0x8000_0031);
        // Unrestricted guest relaxes PE and PG but NE stays forced.
        assert_eq!(apply_fixed_bits(0x10, fixed0, fixed1, 0x8000_0001), 0x30);
        // CR4: VMXE forced, bits outside fixed1 cleared.
        assert_eq!(apply_fixed_bits(1 << 23, 1 << 13, 0x0037_27ff, 0), 1 << 13);
    }
}
