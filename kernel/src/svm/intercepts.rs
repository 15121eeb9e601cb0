//! What tessera intercepts on SVM (APM Vol. 2, 15.9-15.13), the
//! counterpart of the VMX execution controls: pure constants, so that host
//! tests can check the set against the rules that force parts of it.

use super::vmcb::{intercept1, intercept2};

/// #DB and #AC, intercepted for the reason VMX intercepts them: their
/// delivery can raise them again and loop forever inside the CPU
/// (CVE-2015-8104, CVE-2015-5307).
pub const INTERCEPTED_EXCEPTIONS: u32 = (1 << 1) | (1 << 17);
/// CR0, CR4 and CR8 writes (bits 16 + n of the CR intercept word). CR8
/// writes exit so that the core's rule refuses reserved bits: with
/// V_INTR_MASKING they would otherwise only reach V_TPR, and QEMU's TCG
/// does not check them there.
pub const CR_WRITE_INTERCEPTS: u32 = (1 << 16) | (1 << 20) | (1 << 24);
/// Everything tessera intercepts in the first vector. SMIs are left to
/// the platform's SMM; IRET is added while an injected NMI is in service.
pub const INTERCEPTS1: u32 = intercept1::INTR
    | intercept1::NMI
    | intercept1::INIT
    | intercept1::RDPMC
    | intercept1::CPUID
    | intercept1::INVD
    | intercept1::HLT
    | intercept1::INVLPGA
    | intercept1::IOIO_PROT
    | intercept1::MSR_PROT
    | intercept1::SHUTDOWN;
/// Every SVM instruction (tessera does not nest; VMRUN must be intercepted
/// anyway, 15.5.1), MONITOR/MWAIT (not offered: an MWAIT could stop the
/// physical CPU), WBINVD and XSETBV.
pub const INTERCEPTS2: u32 = intercept2::VMRUN
    | intercept2::VMMCALL
    | intercept2::VMLOAD
    | intercept2::VMSAVE
    | intercept2::STGI
    | intercept2::CLGI
    | intercept2::SKINIT
    | intercept2::WBINVD
    | intercept2::MONITOR
    | intercept2::MWAIT
    | intercept2::MWAIT_ARMED
    | intercept2::XSETBV;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrun_and_every_svm_instruction_exit() {
        // VMRUN must be intercepted or VMRUN itself fails (15.5.1); the rest
        // would let a guest run its own guests or clear GIF.
        for bit in [
            intercept2::VMRUN,
            intercept2::VMMCALL,
            intercept2::VMLOAD,
            intercept2::VMSAVE,
            intercept2::STGI,
            intercept2::CLGI,
            intercept2::SKINIT,
        ] {
            assert_ne!(INTERCEPTS2 & bit, 0, "{bit:#x}");
        }
        assert_ne!(INTERCEPTS1 & intercept1::INVLPGA, 0);
    }

    #[test]
    fn the_host_keeps_the_cpu() {
        // Physical interrupts and NMIs end the guest (the slice timer among
        // them), a triple fault and INIT stop it, and every port and MSR
        // goes through the permission maps; MWAIT could halt the CPU.
        for bit in [
            intercept1::INTR,
            intercept1::NMI,
            intercept1::INIT,
            intercept1::SHUTDOWN,
            intercept1::IOIO_PROT,
            intercept1::MSR_PROT,
            intercept1::CPUID,
            intercept1::HLT,
        ] {
            assert_ne!(INTERCEPTS1 & bit, 0, "{bit:#x}");
        }
        assert_ne!(INTERCEPTS2 & intercept2::MWAIT, 0);
        assert_ne!(INTERCEPTS2 & intercept2::MWAIT_ARMED, 0);
        assert_ne!(INTERCEPTS2 & intercept2::XSETBV, 0);
        // SMIs belong to the platform's SMM; IRET and VINTR are switched on
        // only while an NMI or an interrupt window is awaited.
        assert_eq!(
            INTERCEPTS1 & (intercept1::SMI | intercept1::IRET | intercept1::VINTR),
            0
        );
    }

    #[test]
    fn control_register_and_exception_intercepts() {
        // Writes of CR0, CR4 and CR8 (bits 16 + n); no reads.
        assert_eq!(CR_WRITE_INTERCEPTS, (1 << 16) | (1 << 20) | (1 << 24));
        // #DB and #AC, whose delivery can loop inside the CPU.
        assert_eq!(INTERCEPTED_EXCEPTIONS, (1 << 1) | (1 << 17));
    }
}
