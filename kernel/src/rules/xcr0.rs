//! XSETBV: whether a value may be loaded into XCR0. tessera executes XSETBV
//! with the guest's value only after [`validate_xsetbv`] accepts it, so every
//! condition under which the processor would fault must be refused here
//! (SDM Vol. 1, 13.3; Vol. 3A, 2.6; Vol. 2, XSETBV).

use super::Fault;

/// XCR0 state-component bits (SDM Vol. 1, 13.1).
pub mod component {
    /// x87 state.
    pub const X87: u64 = 1 << 0;
    /// SSE state (XMM registers, MXCSR).
    pub const SSE: u64 = 1 << 1;
    /// AVX state (upper halves of the YMM registers).
    pub const AVX: u64 = 1 << 2;
    /// MPX bound registers.
    pub const BNDREGS: u64 = 1 << 3;
    /// MPX BNDCFGU and BNDSTATUS.
    pub const BNDCSR: u64 = 1 << 4;
    /// AVX-512 opmask registers.
    pub const OPMASK: u64 = 1 << 5;
    /// AVX-512 upper halves of ZMM0-15.
    pub const ZMM_HI256: u64 = 1 << 6;
    /// AVX-512 ZMM16-31.
    pub const HI16_ZMM: u64 = 1 << 7;
    /// Processor trace (supervisor: IA32_XSS only).
    pub const PT: u64 = 1 << 8;
    /// Protection-key rights register for user pages.
    pub const PKRU: u64 = 1 << 9;
    /// PASID (supervisor).
    pub const PASID: u64 = 1 << 10;
    /// CET user state (supervisor).
    pub const CET_U: u64 = 1 << 11;
    /// CET supervisor state (supervisor).
    pub const CET_S: u64 = 1 << 12;
    /// Hardware duty cycling (supervisor).
    pub const HDC: u64 = 1 << 13;
    /// User interrupts (supervisor).
    pub const UINTR: u64 = 1 << 14;
    /// Architectural LBRs (supervisor).
    pub const LBR: u64 = 1 << 15;
    /// Hardware P-states (supervisor).
    pub const HWP: u64 = 1 << 16;
    /// AMX tile configuration.
    pub const XTILECFG: u64 = 1 << 17;
    /// AMX tile data.
    pub const XTILEDATA: u64 = 1 << 18;
    /// APX extended general-purpose registers.
    pub const APX: u64 = 1 << 19;
    /// Reserved for extending XCR0; never a state component (SDM Vol. 3A, 2.6).
    pub const RESERVED_63: u64 = 1 << 63;
    /// Components managed only through IA32_XSS; never valid in XCR0.
    pub const SUPERVISOR: u64 = PT | PASID | CET_U | CET_S | HDC | UINTR | LBR | HWP;
    /// The three AVX-512 components, enabled together or not at all.
    pub const AVX512: u64 = OPMASK | ZMM_HI256 | HI16_ZMM;
    /// The two MPX components, enabled together or not at all.
    pub const MPX: u64 = BNDREGS | BNDCSR;
    /// The two AMX components, enabled together or not at all.
    pub const AMX: u64 = XTILECFG | XTILEDATA;
}

use component::*;

/// All of `group` or none of it.
const fn all_or_none(value: u64, group: u64) -> bool {
    value & group == 0 || value & group == group
}

/// Decides XSETBV of `value` to XCR `index` at `cpl`; `supported` holds the
/// XCR0 bits tessera offers (a subset of the host's
/// CPUID.(EAX=0DH,ECX=0):EDX:EAX), `cr4_osxsave` is the guest's CR4.OSXSAVE.
pub fn validate_xsetbv(
    index: u32,
    value: u64,
    supported: u64,
    cpl: u8,
    cr4_osxsave: bool,
) -> Result<(), Fault> {
    // XSETBV is #UD without CR4.OSXSAVE (Vol. 2, XSETBV); the #UD is an
    // instruction-decode check and comes before the privilege check.
    if !cr4_osxsave {
        return Err(Fault::InvalidOpcode);
    }
    // CPL 0 only; XCR0 is the only writable XCR (Vol. 2, XSETBV).
    if cpl != 0 || index != 0 {
        return Err(Fault::GP0);
    }
    let valid = value & (SUPERVISOR | RESERVED_63) == 0
        && value & !supported == 0
        // SDM Vol. 1, 13.3: x87 can never be disabled,
        && value & X87 != 0
        // AVX needs SSE,
        && (value & AVX == 0 || value & SSE != 0)
        // AVX-512's three components together, and only with AVX,
        && all_or_none(value, AVX512)
        && (value & AVX512 == 0 || value & AVX != 0)
        // MPX's two together,
        && all_or_none(value, MPX)
        // AMX's two together (Vol. 2, XSETBV: XCR0[18:17] 00b or 11b).
        && all_or_none(value, AMX)
        // APX state occupies the XSAVE area MPX used; no processor offers
        // both, and a value with both is refused rather than tried.
        && (value & APX == 0 || value & MPX == 0);
    if valid {
        Ok(())
    } else {
        Err(Fault::GP0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server part: x87 SSE AVX AVX-512 PKRU AMX.
    const SERVER: u64 = X87 | SSE | AVX | AVX512 | PKRU | AMX;
    /// An old part with MPX.
    const OLD: u64 = X87 | SSE | AVX | MPX;

    fn check(value: u64, supported: u64) -> Result<(), Fault> {
        validate_xsetbv(0, value, supported, 0, true)
    }

    #[test]
    fn osxsave_off_is_invalid_opcode() {
        assert_eq!(
            validate_xsetbv(0, X87, SERVER, 3, false),
            Err(Fault::InvalidOpcode),
            "#UD before the CPL check"
        );
    }

    #[test]
    fn cpl_and_index() {
        assert_eq!(validate_xsetbv(0, X87, SERVER, 3, true), Err(Fault::GP0));
        assert_eq!(validate_xsetbv(1, X87, SERVER, 0, true), Err(Fault::GP0));
        assert_eq!(validate_xsetbv(0, X87, SERVER, 0, true), Ok(()));
    }

    #[test]
    fn x87_is_mandatory() {
        assert_eq!(check(SSE, SERVER), Err(Fault::GP0));
    }

    #[test]
    fn unsupported_bits_fault() {
        assert_eq!(check(X87 | MPX, SERVER), Err(Fault::GP0));
        assert_eq!(check(SERVER | APX, SERVER), Err(Fault::GP0));
        assert_eq!(check(X87 | RESERVED_63, u64::MAX), Err(Fault::GP0));
    }

    #[test]
    fn avx_needs_sse() {
        assert_eq!(check(X87 | AVX, SERVER), Err(Fault::GP0));
        assert_eq!(check(X87 | SSE | AVX, SERVER), Ok(()));
    }

    #[test]
    fn avx512_components_all_or_none_and_with_avx() {
        assert_eq!(check(X87 | SSE | AVX | OPMASK, SERVER), Err(Fault::GP0));
        assert_eq!(
            check(X87 | SSE | AVX | OPMASK | ZMM_HI256, SERVER),
            Err(Fault::GP0)
        );
        assert_eq!(check(X87 | SSE | AVX512, SERVER), Err(Fault::GP0));
        assert_eq!(check(X87 | SSE | AVX | AVX512, SERVER), Ok(()));
    }

    #[test]
    fn mpx_components_together() {
        assert_eq!(check(X87 | BNDREGS, OLD), Err(Fault::GP0));
        assert_eq!(check(X87 | BNDCSR, OLD), Err(Fault::GP0));
        assert_eq!(check(X87 | MPX, OLD), Ok(()));
    }

    #[test]
    fn amx_components_together() {
        assert_eq!(check(X87 | SSE | XTILECFG, SERVER), Err(Fault::GP0));
        assert_eq!(check(X87 | SSE | XTILEDATA, SERVER), Err(Fault::GP0));
        assert_eq!(check(X87 | SSE | AMX, SERVER), Ok(()));
        assert_eq!(check(SERVER, SERVER), Ok(()));
    }

    #[test]
    fn apx_excludes_mpx() {
        let both = X87 | SSE | AVX | APX | MPX;
        assert_eq!(check(both, !SUPERVISOR), Err(Fault::GP0));
        assert_eq!(check(X87 | APX, X87 | APX), Ok(()));
    }

    #[test]
    fn supervisor_components_never_in_xcr0() {
        for bit in [PT, PASID, CET_U, CET_S, HDC, UINTR, LBR, HWP] {
            assert_eq!(check(X87 | bit, u64::MAX), Err(Fault::GP0), "{bit:#x}");
        }
    }

    #[test]
    fn pkru_alone_is_fine() {
        assert_eq!(check(X87 | PKRU, SERVER), Ok(()));
    }
}
