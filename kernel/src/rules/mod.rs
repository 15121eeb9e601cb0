//! The rules that decide a VM exit's outcome, as pure functions: given what
//! the guest sees and what it tried to do, each returns the new state or the
//! fault the guest takes, exactly as a processor would.
//!
//! Vendor-neutral by construction: nothing here knows a VMCS or a VMCB (the
//! one VMX decoder, [`io::io_from_vmx`], is labelled as such and only turns
//! numbers into the neutral types). The backends read guest state, call a
//! rule, and apply its answer; they must not re-decide what a rule decided.
//! Nothing here allocates or touches hardware.

pub mod bits;
pub mod control_register_decode;
pub mod control_registers;
pub mod cpuid;
pub mod efer;
pub mod io;
pub mod mmio;
pub mod msr;
pub mod xcr0;

/// An exception a rule makes the guest take instead of completing the
/// instruction (SDM Vol. 3A, 7.15 lists the vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// #UD, invalid opcode (vector 6, no error code).
    InvalidOpcode,
    /// #SS, stack-segment fault (vector 12) with this error code.
    StackSegment(u32),
    /// #GP, general protection (vector 13) with this error code.
    GeneralProtection(u32),
    /// #PF, page fault (vector 14): CR2 = `address`, with `error_code`.
    PageFault {
        /// The linear address that could not be translated (goes to CR2).
        address: u64,
        /// The #PF error code (SDM Vol. 3A, 5.7).
        error_code: u32,
    },
}

impl Fault {
    /// #GP(0), the commonest answer.
    pub const GP0: Fault = Fault::GeneralProtection(0);

    /// The exception's vector.
    pub const fn vector(self) -> u8 {
        match self {
            Fault::InvalidOpcode => 6,
            Fault::StackSegment(_) => 12,
            Fault::GeneralProtection(_) => 13,
            Fault::PageFault { .. } => 14,
        }
    }

    /// The error code the exception pushes, if it pushes one.
    pub const fn error_code(self) -> Option<u32> {
        match self {
            Fault::InvalidOpcode => None,
            Fault::StackSegment(code) | Fault::GeneralProtection(code) => Some(code),
            Fault::PageFault { error_code, .. } => Some(error_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_error_codes_follow_the_exception_table() {
        assert_eq!(Fault::InvalidOpcode.vector(), 6);
        assert_eq!(
            Fault::InvalidOpcode.error_code(),
            None,
            "#UD pushes no code"
        );
        assert_eq!(Fault::StackSegment(0).vector(), 12);
        assert_eq!(Fault::GP0.vector(), 13);
        assert_eq!(Fault::GeneralProtection(0x18).error_code(), Some(0x18));
        let pf = Fault::PageFault {
            address: 0x1000,
            error_code: 2,
        };
        assert_eq!((pf.vector(), pf.error_code()), (14, Some(2)));
    }
}
