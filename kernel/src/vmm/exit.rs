//! A VM exit as the vendor-neutral core sees it. Each backend decodes its
//! own exit information (VMX exit reason and qualification, SVM EXITCODE
//! and EXITINFO) into this enum; the core decides what happens.
//!
//! The enum is kept to 16 bytes (a test checks): on the exit path it
//! travels from the backend's decoder to the core's dispatch, and small
//! enough it stays in registers. Details only a report needs (the linear
//! address of a fault) are asked of the vCPU afterwards.

/// The kind of access that hit guest-physical memory without a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryAccess {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Execute,
}

impl MemoryAccess {
    /// "read", "write" or "instruction fetch".
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryAccess::Read => "read",
            MemoryAccess::Write => "write",
            MemoryAccess::Execute => "instruction fetch",
        }
    }
}

pub use crate::rules::io::{IoAccess, StringIo};

/// A control-register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRegisterAccess {
    /// MOV to CRn from the register numbered `gpr`.
    Write {
        /// 0, 3, 4 or 8.
        register: u8,
        /// The source register number.
        gpr: u8,
    },
    /// MOV from CRn to the register numbered `gpr`.
    Read {
        /// 3 or 8.
        register: u8,
        /// The destination register number.
        gpr: u8,
    },
    /// CLTS.
    Clts,
    /// LMSW with its 16-bit source.
    Lmsw(u16),
    /// A write to CRn by an instruction the CPU did not decode (SVM without
    /// decode assists): MOV, CLTS or LMSW; the core decodes it.
    Undecoded {
        /// 0 or 4.
        register: u8,
    },
}

/// One decoded VM exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// CPUID (leaf in EAX, subleaf in ECX).
    Cpuid,
    /// HLT.
    Hlt,
    /// IN or OUT.
    Io(IoAccess),
    /// INS or OUTS, with the memory side.
    StringIo(IoAccess, StringIo),
    /// RDMSR (ECX names the MSR).
    Rdmsr,
    /// WRMSR (ECX names the MSR, EDX:EAX the value).
    Wrmsr,
    /// A hypercall: VMCALL on Intel, VMMCALL on AMD.
    Hypercall,
    /// The other vendor's hypercall instruction, or any virtualization
    /// instruction: tessera does not nest, so the guest gets #UD.
    VirtualizationInstruction,
    /// XSETBV (ECX = XCR index, EDX:EAX = value).
    Xsetbv,
    /// A control-register access that tessera intercepts.
    ControlRegister(ControlRegisterAccess),
    /// A guest-physical access that nothing maps (EPT violation, NPF).
    UnmappedMemory {
        /// The guest-physical address.
        address: u64,
        /// The kind of access.
        access: MemoryAccess,
    },
    /// The nested page tables themselves are malformed: a tessera bug.
    PageTableMisconfiguration {
        /// The guest-physical address.
        address: u64,
    },
    /// The guest triple-faulted (shutdown).
    TripleFault,
    /// An INIT signal.
    Init,
    /// A start-up IPI.
    Sipi,
    /// A physical interrupt arrived while the guest ran.
    ExternalInterrupt,
    /// A non-maskable interrupt arrived while the guest ran.
    Nmi,
    /// A guest exception that tessera intercepts (#AC and #DB, whose
    /// delivery could otherwise loop forever inside the CPU).
    Exception {
        /// The vector.
        vector: u8,
        /// The error code, for vectors that have one.
        error_code: Option<u32>,
    },
    /// The time slice is over.
    SliceEnd,
    /// The guest can take an interrupt now (requested with
    /// [`super::vcpu::Vcpu::request_interrupt_window`]).
    InterruptWindow,
    /// The guest can take an NMI now (requested with
    /// [`super::vcpu::Vcpu::request_nmi_window`]).
    NmiWindow,
    /// INVD or WBINVD.
    CacheInvalidation,
    /// RDPMC.
    Rdpmc,
    /// VM entry failed on the guest state (the detail is the backend's).
    InvalidGuestState {
        /// Backend-specific detail (the exit qualification on VMX).
        detail: u64,
    },
    /// VM entry itself failed (VMfailValid on VMX): the backend's error
    /// number, which [`super::vcpu::Vcpu::entry_error`] explains.
    EntryFailed {
        /// The backend's error number (the VM-instruction error on VMX).
        code: u32,
    },
    /// Anything else: the guest gets #UD, as the instruction is not offered.
    Unsupported {
        /// The backend's exit reason number.
        reason: u32,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_exit_fits_in_two_registers() {
        assert!(core::mem::size_of::<super::Exit>() <= 16);
    }
}
