//! The MSR policy: what RDMSR and WRMSR of each virtualized MSR return or
//! do. Any MSR not named here raises #GP(0), as on a processor that lacks it.
//!
//! The set is kept consistent with what `cpuid::guest_view` advertises: an
//! MSR exists here if and only if a feature flag the guest sees promises it
//! (or it is architectural on every processor tessera runs on). State kept
//! per VM is in [`VirtualMsrs`]; state the processor switches with the vCPU
//! (TSC offset, PAT, EFER, DEBUGCTL) is reached through [`MsrGuest`].
//! Pass-through MSRs (segment bases, SYSENTER, SYSCALL) never exit and are
//! not described here.

use super::control_registers::ControlState;
use super::efer::write_efer;
use super::Fault;

// MSR numbers are the `x86` crate's (SDM Vol. 4, Table 2-2).
pub use x86::msr::{
    IA32_APIC_BASE, IA32_BIOS_SIGN_ID, IA32_DEBUGCTL, IA32_EFER, IA32_FEATURE_CONTROL,
    IA32_MISC_ENABLE, IA32_MTRRCAP, IA32_MTRR_DEF_TYPE, IA32_PAT, IA32_PLATFORM_ID,
    IA32_TIME_STAMP_COUNTER,
};

/// MSRs a guest reads and writes directly, without an exit, on either
/// backend: the segment bases, which VM entry and exit switch (the VMCS;
/// the VMCB through VMLOAD/VMSAVE), and the SYSENTER and SYSCALL MSRs and
/// KERNEL_GS_BASE, which the vCPU switches. Every other MSR exits to the
/// policy below.
pub const PASS_THROUGH_MSRS: [u32; 10] = [
    x86::msr::IA32_SYSENTER_CS,
    x86::msr::IA32_SYSENTER_ESP,
    x86::msr::IA32_SYSENTER_EIP,
    x86::msr::IA32_STAR,
    x86::msr::IA32_LSTAR,
    x86::msr::IA32_CSTAR,
    x86::msr::IA32_FMASK,
    x86::msr::IA32_FS_BASE,
    x86::msr::IA32_GS_BASE,
    x86::msr::IA32_KERNEL_GSBASE,
];

/// IA32_APIC_BASE as the guest finds it: the xAPIC page at 0xFEE00000,
/// globally enabled (bit 11), on the bootstrap processor (bit 8) (SDM Vol.
/// 3A, 12.4.4).
pub const APIC_BASE_VALUE: u64 = 0xfee0_0000 | (1 << 11) | (1 << 8);
/// IA32_FEATURE_CONTROL as the guest reads it: locked (bit 0) with VMX
/// disabled inside and outside SMX — CPUID hides VMX and SMX.
pub const FEATURE_CONTROL_VALUE: u64 = 1;
/// The EFER bits offered: SCE, LME, NXE (LMA is read-only, SVME never).
pub const EFER_SUPPORTED: u64 = super::bits::efer::SCE
    | super::bits::efer::LME
    | super::bits::efer::NXE
    | super::bits::efer::LMA;

/// IA32_MISC_ENABLE bits (SDM Vol. 4, Table 2-2).
pub mod misc_enable {
    /// Fast-strings enable (R/W): the only bit a guest may change.
    pub const FAST_STRINGS: u64 = 1 << 0;
    /// Branch trace storage unavailable (RO): CPUID hides DS.
    pub const BTS_UNAVAILABLE: u64 = 1 << 11;
    /// Processor event-based sampling unavailable (RO): CPUID hides DS.
    pub const PEBS_UNAVAILABLE: u64 = 1 << 12;
    /// What the guest finds at reset: fast strings on, as firmware leaves
    /// it; performance monitoring (bit 7), EIST (16), MONITOR (18) and
    /// thermal control (3) off, matching the hidden CPUID features.
    pub const INITIAL: u64 = FAST_STRINGS | BTS_UNAVAILABLE | PEBS_UNAVAILABLE;
}

/// IA32_DEBUGCTL bits (SDM Vol. 3B, 19.4.1; Vol. 4, Table 2-2).
pub mod debugctl {
    /// Last-branch record: not offered (the LBR stack MSRs are model
    /// specific and not virtualized; CPUID hides architectural LBRs and
    /// PDCM), so writing 1 faults.
    pub const LBR: u64 = 1 << 0;
    /// Single-step on branches: offered. The processor loads the guest's
    /// DEBUGCTL on VM entry, so the guest gets real branch stepping.
    pub const BTF: u64 = 1 << 1;
    /// The bits a guest may set.
    pub const SUPPORTED: u64 = BTF;
}

/// IA32_MTRR_DEF_TYPE bits (SDM Vol. 3A, 13.11.2.1).
pub mod mtrr_def_type {
    /// The default memory type.
    pub const TYPE: u64 = 0xff;
    /// Fixed-range MTRRs enable.
    pub const FIXED_ENABLE: u64 = 1 << 10;
    /// MTRRs enable.
    pub const ENABLE: u64 = 1 << 11;
    /// The bits a guest may write.
    pub const WRITABLE: u64 = TYPE | FIXED_ENABLE | ENABLE;
}

/// The per-VM values of the virtualized MSRs that live nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualMsrs {
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
    /// IA32_MTRR_DEF_TYPE.
    pub mtrr_def_type: u64,
}

impl Default for VirtualMsrs {
    fn default() -> Self {
        VirtualMsrs {
            misc_enable: misc_enable::INITIAL,
            mtrr_def_type: 0,
        }
    }
}

/// The MSR-backed state that the processor switches with the vCPU, reached
/// through the backend (VMCS fields, VMCB fields, the TSC offset).
pub trait MsrGuest {
    /// The guest's time-stamp counter now.
    fn tsc(&self) -> u64;
    /// Makes the guest's time-stamp counter read `value` now.
    fn set_tsc(&mut self, value: u64);
    /// The guest's IA32_PAT.
    fn pat(&self) -> u64;
    /// Sets the guest's IA32_PAT.
    fn set_pat(&mut self, value: u64);
    /// The guest's IA32_EFER.
    fn efer(&self) -> u64;
    /// Sets the guest's IA32_EFER.
    fn set_efer(&mut self, value: u64);
    /// The guest's IA32_DEBUGCTL.
    fn debugctl(&self) -> u64;
    /// Sets the guest's IA32_DEBUGCTL.
    fn set_debugctl(&mut self, value: u64);
    /// The guest's control registers, EFER, CS.L and CPL.
    fn control_state(&self) -> ControlState;
}

/// UC, WC, WT, WP, WB: the memory types an MTRR may hold (SDM Vol. 3A,
/// Table 13-8).
const fn valid_memory_type(value: u8) -> bool {
    matches!(value, 0 | 1 | 4 | 5 | 6)
}

/// Whether `value` is a valid IA32_PAT: each of the eight entries a memory
/// type or 7, UC- (SDM Vol. 3A, 13.12.2).
pub fn valid_pat(value: u64) -> bool {
    value
        .to_le_bytes()
        .iter()
        .all(|&entry| valid_memory_type(entry) || entry == 7)
}

/// RDMSR and WRMSR are CPL-0 instructions (Vol. 2, RDMSR and WRMSR).
fn privileged(guest: &impl MsrGuest) -> Result<(), Fault> {
    if guest.control_state().cpl == 0 {
        Ok(())
    } else {
        Err(Fault::GP0)
    }
}

/// RDMSR `index`: the value the guest reads, or the fault it takes.
pub fn read(msrs: &VirtualMsrs, guest: &impl MsrGuest, index: u32) -> Result<u64, Fault> {
    privileged(guest)?;
    Ok(match index {
        IA32_TIME_STAMP_COUNTER => guest.tsc(),
        // No platform ID, no microcode revision, no MTRRs to enumerate
        // (MTRRCAP = 0: no variable ranges, no fixed ranges, no WC).
        IA32_PLATFORM_ID | IA32_BIOS_SIGN_ID | IA32_MTRRCAP => 0,
        IA32_APIC_BASE => APIC_BASE_VALUE,
        IA32_FEATURE_CONTROL => FEATURE_CONTROL_VALUE,
        IA32_MISC_ENABLE => msrs.misc_enable,
        IA32_DEBUGCTL => guest.debugctl(),
        IA32_PAT => guest.pat(),
        IA32_MTRR_DEF_TYPE => msrs.mtrr_def_type,
        IA32_EFER => guest.efer(),
        _ => return Err(Fault::GP0),
    })
}

/// WRMSR `value` to `index`: applies it, or says which fault the guest takes.
pub fn write(
    msrs: &mut VirtualMsrs,
    guest: &mut impl MsrGuest,
    index: u32,
    value: u64,
) -> Result<(), Fault> {
    privileged(guest)?;
    match index {
        IA32_TIME_STAMP_COUNTER => guest.set_tsc(value),
        // Writing 0 before CPUID is the documented way to read the
        // microcode signature back (SDM Vol. 3A, 10.11.7); accepted,
        // ignored.
        IA32_BIOS_SIGN_ID => {}
        // The APIC cannot move or be disabled.
        IA32_APIC_BASE if value == APIC_BASE_VALUE => {}
        // Only fast strings may change; tessera emulates none of the other
        // controls, and the read-only bits must be written as read.
        IA32_MISC_ENABLE if (value ^ msrs.misc_enable) & !misc_enable::FAST_STRINGS == 0 => {
            msrs.misc_enable = value
        }
        IA32_DEBUGCTL if value & !debugctl::SUPPORTED == 0 => guest.set_debugctl(value),
        IA32_PAT if valid_pat(value) => guest.set_pat(value),
        IA32_MTRR_DEF_TYPE
            if value & !mtrr_def_type::WRITABLE == 0 && valid_memory_type(value as u8) =>
        {
            msrs.mtrr_def_type = value
        }
        IA32_EFER => {
            let efer = write_efer(&guest.control_state(), value, EFER_SUPPORTED)?;
            guest.set_efer(efer);
        }
        _ => return Err(Fault::GP0),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::bits::{cr0, efer};
    use super::*;

    /// A vCPU in 64-bit mode at CPL 0 with a power-on PAT.
    struct Vcpu {
        tsc: u64,
        pat: u64,
        efer: u64,
        debugctl: u64,
        cr0: u64,
        cpl: u8,
    }

    impl Default for Vcpu {
        fn default() -> Self {
            Vcpu {
                tsc: 1000,
                pat: 0x0007_0406_0007_0406,
                efer: efer::LME | efer::LMA,
                debugctl: 0,
                cr0: cr0::PE | cr0::PG,
                cpl: 0,
            }
        }
    }

    impl MsrGuest for Vcpu {
        fn tsc(&self) -> u64 {
            self.tsc
        }
        fn set_tsc(&mut self, value: u64) {
            self.tsc = value
        }
        fn pat(&self) -> u64 {
            self.pat
        }
        fn set_pat(&mut self, value: u64) {
            self.pat = value
        }
        fn efer(&self) -> u64 {
            self.efer
        }
        fn set_efer(&mut self, value: u64) {
            self.efer = value
        }
        fn debugctl(&self) -> u64 {
            self.debugctl
        }
        fn set_debugctl(&mut self, value: u64) {
            self.debugctl = value
        }
        fn control_state(&self) -> ControlState {
            ControlState {
                cr0: self.cr0,
                cr3: 0,
                cr4: 1 << 5,
                efer: self.efer,
                cs_long: true,
                cpl: self.cpl,
            }
        }
    }

    #[test]
    fn unknown_msrs_fault() {
        let (msrs, vcpu) = (VirtualMsrs::default(), Vcpu::default());
        // IA32_SPEC_CTRL, IA32_PERF_CAPABILITIES, IA32_TSC_ADJUST.
        for index in [0x48, 0x345, 0x3b] {
            assert_eq!(read(&msrs, &vcpu, index), Err(Fault::GP0), "{index:#x}");
        }
    }

    #[test]
    fn user_mode_faults() {
        // RDMSR/WRMSR: #GP(0) at CPL > 0.
        let mut vcpu = Vcpu {
            cpl: 3,
            ..Vcpu::default()
        };
        let mut msrs = VirtualMsrs::default();
        assert_eq!(read(&msrs, &vcpu, IA32_PAT), Err(Fault::GP0));
        assert_eq!(write(&mut msrs, &mut vcpu, IA32_PAT, 0), Err(Fault::GP0));
    }

    #[test]
    fn tsc_reads_and_writes_the_guest_counter() {
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        assert_eq!(read(&msrs, &vcpu, IA32_TIME_STAMP_COUNTER), Ok(1000));
        write(&mut msrs, &mut vcpu, IA32_TIME_STAMP_COUNTER, 5).unwrap();
        assert_eq!(vcpu.tsc, 5);
    }

    #[test]
    fn identification_msrs() {
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        assert_eq!(read(&msrs, &vcpu, IA32_APIC_BASE), Ok(APIC_BASE_VALUE));
        assert_eq!(read(&msrs, &vcpu, IA32_FEATURE_CONTROL), Ok(1), "locked");
        assert_eq!(read(&msrs, &vcpu, IA32_MTRRCAP), Ok(0));
        assert_eq!(read(&msrs, &vcpu, IA32_PLATFORM_ID), Ok(0));
        assert_eq!(write(&mut msrs, &mut vcpu, IA32_BIOS_SIGN_ID, 0), Ok(()));
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_APIC_BASE, APIC_BASE_VALUE),
            Ok(())
        );
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_APIC_BASE, 0xfec0_0900),
            Err(Fault::GP0),
            "the APIC does not move"
        );
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_FEATURE_CONTROL, 5),
            Err(Fault::GP0),
            "locked: writes fault (SDM Vol. 4, Table 2-2)"
        );
    }

    #[test]
    fn misc_enable_changes_only_fast_strings() {
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        let initial = read(&msrs, &vcpu, IA32_MISC_ENABLE).unwrap();
        assert_eq!(initial, misc_enable::INITIAL);
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_MISC_ENABLE, u64::MAX),
            Err(Fault::GP0)
        );
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_MISC_ENABLE, initial & !1),
            Ok(())
        );
        assert_eq!(read(&msrs, &vcpu, IA32_MISC_ENABLE), Ok(initial & !1));
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_MISC_ENABLE, 1),
            Err(Fault::GP0),
            "read-only BTS/PEBS-unavailable bits cannot be cleared"
        );
    }

    #[test]
    fn debugctl_offers_btf_only() {
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        assert_eq!(read(&msrs, &vcpu, IA32_DEBUGCTL), Ok(0));
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_DEBUGCTL, debugctl::BTF),
            Ok(())
        );
        assert_eq!(read(&msrs, &vcpu, IA32_DEBUGCTL), Ok(debugctl::BTF));
        assert_eq!(write(&mut msrs, &mut vcpu, IA32_DEBUGCTL, 0), Ok(()));
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_DEBUGCTL, debugctl::LBR),
            Err(Fault::GP0)
        );
        // BTS (bit 7) needs DS, hidden by CPUID.
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_DEBUGCTL, 1 << 7),
            Err(Fault::GP0)
        );
        assert_eq!(vcpu.debugctl, 0, "a refused write changes nothing");
    }

    #[test]
    fn pat_entries_must_be_memory_types() {
        // SDM Vol. 3A, 13.12.2: 2 and 3 are reserved encodings.
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_PAT, 0x0007_0406_0007_0402),
            Err(Fault::GP0)
        );
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_PAT, 0x0001_0506_0007_0406),
            Ok(())
        );
        assert_eq!(read(&msrs, &vcpu, IA32_PAT), Ok(0x0001_0506_0007_0406));
    }

    #[test]
    fn mtrr_def_type_validity() {
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        let enabled_wb = mtrr_def_type::ENABLE | 6;
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_MTRR_DEF_TYPE, enabled_wb),
            Ok(())
        );
        assert_eq!(read(&msrs, &vcpu, IA32_MTRR_DEF_TYPE), Ok(enabled_wb));
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_MTRR_DEF_TYPE, 2),
            Err(Fault::GP0),
            "type 2 is reserved"
        );
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_MTRR_DEF_TYPE, 1 << 12),
            Err(Fault::GP0),
            "reserved bit"
        );
    }

    #[test]
    fn efer_goes_through_the_efer_rule() {
        let (mut msrs, mut vcpu) = (VirtualMsrs::default(), Vcpu::default());
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_EFER, efer::LMA),
            Err(Fault::GP0),
            "clearing LME under paging"
        );
        let value = efer::LME | efer::NXE | efer::SCE;
        assert_eq!(write(&mut msrs, &mut vcpu, IA32_EFER, value), Ok(()));
        assert_eq!(read(&msrs, &vcpu, IA32_EFER), Ok(value | efer::LMA));
        assert_eq!(
            write(&mut msrs, &mut vcpu, IA32_EFER, value | efer::SVME),
            Err(Fault::GP0)
        );
    }
}
