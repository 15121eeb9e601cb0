//! SVM's identification: CPUID Fn8000_000A (APM Vol. 3, appendix E.4.9,
//! "Function 8000_000Ah — SVM Revision and Feature Identification") and
//! the VM_CR MSR's lock and disable bits (APM Vol. 2, 15.30.1).

use core::fmt;

/// VM_CR (MSRC001_0114).
pub const VM_CR: u32 = 0xc001_0114;
/// VM_CR bit 3, LOCK: SVMDIS is read-only until the next reset.
const VM_CR_LOCK: u64 = 1 << 3;
/// VM_CR bit 4, SVMDIS: EFER.SVME cannot be set.
const VM_CR_SVMDIS: u64 = 1 << 4;

/// The features of Fn8000_000A EDX that the backend uses or the report
/// names, with their bits.
const NAMED: [(u32, &str); 11] = [
    (0, "NPT"),
    (1, "LBR-virtualization"),
    (3, "NRIP-save"),
    (4, "TSC-rate"),
    (5, "VMCB-clean-bits"),
    (6, "flush-by-ASID"),
    (7, "decode-assists"),
    (10, "pause-filter"),
    (12, "pause-filter-threshold"),
    (13, "AVIC"),
    (16, "vGIF"),
];

/// What Fn8000_000A reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SvmFeatures {
    /// EAX[7:0]: the SVM revision.
    pub revision: u8,
    /// EBX: how many ASIDs there are (ASID 0 is the host's).
    pub asids: u32,
    /// EDX: the feature bits.
    pub edx: u32,
}

impl SvmFeatures {
    /// The features from the leaf's registers.
    pub const fn from_cpuid(eax: u32, ebx: u32, edx: u32) -> SvmFeatures {
        SvmFeatures {
            revision: eax as u8,
            asids: ebx,
            edx,
        }
    }

    fn has(&self, bit: u32) -> bool {
        self.edx & (1 << bit) != 0
    }

    /// Nested paging (EDX bit 0), which the backend needs as VMX needs EPT.
    pub fn nested_paging(&self) -> bool {
        self.has(0)
    }

    /// Next-RIP save (EDX bit 3): the VMCB holds the next instruction's
    /// address after an intercepted instruction, as VMX's instruction
    /// length does.
    pub fn next_rip_save(&self) -> bool {
        self.has(3)
    }

    /// Decode assists (EDX bit 7): intercepts of MOV CRx and #NPF come
    /// with the operands and the instruction bytes.
    pub fn decode_assists(&self) -> bool {
        self.has(7)
    }

    /// The names of the features present, in bit order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        NAMED
            .iter()
            .filter(|&&(bit, _)| self.has(bit))
            .map(|&(_, name)| name)
    }
}

/// The report's line: the named features, the ASID count, the revision.
impl fmt::Display for SvmFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for name in self.names() {
            if any {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
            any = true;
        }
        if !any {
            f.write_str("none of note")?;
        }
        write!(f, "; {} ASIDs, revision {}", self.asids, self.revision)
    }
}

/// Why SVM, though the CPU has it, cannot be turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvmDisabled {
    /// VM_CR.SVMDIS with LOCK: firmware turned SVM off until the next
    /// reset (APM Vol. 2, 15.30.1); only its setup can turn it on.
    LockedByFirmware,
    /// VM_CR.SVMDIS without LOCK: software may clear it, but something
    /// before tessera chose to set it.
    DisabledUnlocked,
}

impl SvmDisabled {
    /// What VM_CR's `value` says about enabling SVM.
    pub const fn from_vm_cr(value: u64) -> Option<SvmDisabled> {
        match (value & VM_CR_SVMDIS != 0, value & VM_CR_LOCK != 0) {
            (false, _) => None,
            (true, true) => Some(SvmDisabled::LockedByFirmware),
            (true, false) => Some(SvmDisabled::DisabledUnlocked),
        }
    }
}

impl fmt::Display for SvmDisabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SvmDisabled::LockedByFirmware => {
                "SVM is present but the firmware locked it off (VM_CR.SVMDIS with VM_CR.LOCK); \
                 enable SVM mode (virtualization) in the firmware setup"
            }
            SvmDisabled::DisabledUnlocked => {
                "SVM is present but disabled (VM_CR.SVMDIS, not locked): something before \
                 tessera turned it off"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::vec::Vec;

    #[test]
    fn features_are_named_in_bit_order() {
        // A Zen 2's Fn8000_000A: revision 1, 32768 ASIDs, EDX 0x0001_bcff.
        let zen = SvmFeatures::from_cpuid(1, 0x8000, 0x0001_bcff);
        assert!(zen.nested_paging() && zen.next_rip_save() && zen.decode_assists());
        assert_eq!(
            zen.names().collect::<Vec<_>>(),
            [
                "NPT",
                "LBR-virtualization",
                "NRIP-save",
                "TSC-rate",
                "VMCB-clean-bits",
                "flush-by-ASID",
                "decode-assists",
                "pause-filter",
                "pause-filter-threshold",
                "AVIC",
                "vGIF"
            ]
        );
        assert!(format!("{zen}").ends_with("; 32768 ASIDs, revision 1"));
    }

    #[test]
    fn a_bare_svm_says_so() {
        let bare = SvmFeatures::from_cpuid(1, 16, 0);
        assert!(!bare.nested_paging());
        assert_eq!(format!("{bare}"), "none of note; 16 ASIDs, revision 1");
        // QEMU 7.2's TCG: NPT among bits the report does not name.
        let tcg = SvmFeatures::from_cpuid(1, 16, 1 | 1 << 28);
        assert_eq!(format!("{tcg}"), "NPT; 16 ASIDs, revision 1");
    }

    #[test]
    fn vm_cr_locks_and_disables() {
        assert_eq!(SvmDisabled::from_vm_cr(0), None);
        assert_eq!(SvmDisabled::from_vm_cr(VM_CR_LOCK), None, "locked on");
        assert_eq!(
            SvmDisabled::from_vm_cr(VM_CR_LOCK | VM_CR_SVMDIS),
            Some(SvmDisabled::LockedByFirmware)
        );
        assert_eq!(
            SvmDisabled::from_vm_cr(VM_CR_SVMDIS),
            Some(SvmDisabled::DisabledUnlocked)
        );
        assert!(format!("{}", SvmDisabled::LockedByFirmware).contains("firmware setup"));
    }
}
