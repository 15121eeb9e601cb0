//! Decoding a VM exit into a typed event for the vendor-neutral core.
//!
//! Field layouts: exit qualifications in SDM Vol. 3C, 29.2.1 (Tables 29-3
//! for control-register accesses, 29-5 for I/O, 29-7 for EPT violations);
//! interruption information in 26.9.2.

use super::vmcs::{exit, guest};
use crate::vmx::ept::ViolationAccess;

/// One decoded VM exit.
#[derive(Debug, Clone, Copy)]
pub enum VmExit {
    /// CPUID with the leaf in EAX and subleaf in ECX.
    Cpuid,
    /// HLT.
    Hlt,
    /// An I/O instruction.
    Io(IoAccess),
    /// RDMSR (ECX names the MSR).
    Rdmsr,
    /// WRMSR (ECX names the MSR, EDX:EAX the value).
    Wrmsr,
    /// VMCALL: a hypercall.
    Vmcall,
    /// An access to guest-physical memory outside what the EPT maps.
    EptViolation {
        /// The guest-physical address.
        address: u64,
        /// The kind of access.
        access: ViolationAccess,
        /// The guest linear address, when the qualification says it is valid.
        linear: Option<u64>,
    },
    /// The EPT entry itself is malformed (a hypervisor bug).
    EptMisconfiguration {
        /// The guest-physical address.
        address: u64,
    },
    /// The guest triple-faulted (shutdown).
    TripleFault,
    /// A VMX instruction in the guest (tessera does not nest).
    VmxInstruction,
    /// XSETBV (ECX = XCR index, EDX:EAX = value).
    Xsetbv,
    /// MOV to or from a control register.
    ControlRegister(ControlRegisterAccess),
    /// INIT signal.
    Init,
    /// Start-up IPI.
    Sipi,
    /// An external interrupt arrived (acknowledged on exit).
    ExternalInterrupt {
        /// The vector.
        vector: u8,
    },
    /// An NMI or a guest exception the exception bitmap intercepts.
    ExceptionOrNmi {
        /// The vector.
        vector: u8,
        /// Whether it was an NMI.
        nmi: bool,
    },
    /// The VMX-preemption timer counted down to zero: the slice is over.
    PreemptionTimer,
    /// VM entry failed on guest state (the exit qualification says which check).
    InvalidGuestState {
        /// Qualification.
        qualification: u64,
    },
    /// INVD or WBINVD: guest RAM is ordinary write-back memory with no
    /// device behind it, so there is nothing to write back or discard.
    CacheInvalidation,
    /// RDPMC: no performance counters are offered (CPUID leaf 0xA is 0),
    /// so the guest gets #GP as on a CPU with none.
    Rdpmc,
    /// MWAIT, MONITOR, GETSEC and other exits tessera does not emulate; the
    /// guest gets #UD, as CPUID does not advertise them.
    Unsupported {
        /// The basic exit reason.
        reason: u32,
    },
}

/// An I/O instruction's exit qualification.
#[derive(Debug, Clone, Copy)]
pub struct IoAccess {
    /// The port.
    pub port: u16,
    /// Access width in bytes (1, 2 or 4).
    pub size: u8,
    /// IN (true) or OUT.
    pub input: bool,
    /// INS/OUTS.
    pub string: bool,
    /// REP prefix.
    pub rep: bool,
}

/// A control-register access's exit qualification.
#[derive(Debug, Clone, Copy)]
pub struct ControlRegisterAccess {
    /// 0, 3, 4 or 8.
    pub register: u8,
    /// 0 = MOV to CR, 1 = MOV from CR, 2 = CLTS, 3 = LMSW.
    pub kind: u8,
    /// The general-purpose register operand (0 = RAX ... 15 = R15).
    pub gpr: u8,
    /// The LMSW source data.
    pub lmsw_source: u16,
}

/// The basic exit reason (bits 15:0 of the exit-reason field).
pub fn basic_reason() -> u32 {
    exit::REASON.read() & 0xffff
}

/// Reads the exit information of the current VMCS.
pub fn decode(reason: u32) -> VmExit {
    match reason {
        0 => {
            let info = exit::INTERRUPTION_INFO.read();
            VmExit::ExceptionOrNmi {
                vector: info as u8,
                nmi: (info >> 8) & 7 == 2,
            }
        }
        1 => VmExit::ExternalInterrupt {
            vector: exit::INTERRUPTION_INFO.read() as u8,
        },
        2 => VmExit::TripleFault,
        3 => VmExit::Init,
        4 => VmExit::Sipi,
        10 => VmExit::Cpuid,
        12 => VmExit::Hlt,
        13 | 54 => VmExit::CacheInvalidation,
        15 => VmExit::Rdpmc,
        18 => VmExit::Vmcall,
        19..=27 | 50 | 53 | 59 => VmExit::VmxInstruction,
        28 => {
            let q = exit::QUALIFICATION.read();
            VmExit::ControlRegister(ControlRegisterAccess {
                register: (q & 0xf) as u8,
                kind: ((q >> 4) & 3) as u8,
                gpr: ((q >> 8) & 0xf) as u8,
                lmsw_source: (q >> 16) as u16,
            })
        }
        30 => {
            let q = exit::QUALIFICATION.read();
            VmExit::Io(IoAccess {
                size: (q & 7) as u8 + 1,
                input: q & (1 << 3) != 0,
                string: q & (1 << 4) != 0,
                rep: q & (1 << 5) != 0,
                port: (q >> 16) as u16,
            })
        }
        31 => VmExit::Rdmsr,
        32 => VmExit::Wrmsr,
        33 => VmExit::InvalidGuestState {
            qualification: exit::QUALIFICATION.read(),
        },
        48 => {
            let q = exit::QUALIFICATION.read();
            VmExit::EptViolation {
                address: exit::GUEST_PHYSICAL_ADDRESS.read(),
                access: ViolationAccess::from_qualification(q),
                linear: (q & (1 << 7) != 0).then(|| exit::GUEST_LINEAR_ADDRESS.read()),
            }
        }
        49 => VmExit::EptMisconfiguration {
            address: exit::GUEST_PHYSICAL_ADDRESS.read(),
        },
        52 => VmExit::PreemptionTimer,
        55 => VmExit::Xsetbv,
        reason => VmExit::Unsupported { reason },
    }
}

/// Moves the guest past the instruction that caused the exit.
pub fn skip_instruction() {
    let length = exit::INSTRUCTION_LENGTH.read() as u64;
    guest::RIP.write(guest::RIP.read().wrapping_add(length));
    // Stepping over an instruction ends a MOV-SS/STI interrupt shadow
    // (SDM Vol. 3C, 26.4.2: blocking by STI / by MOV SS).
    let interruptibility = guest::INTERRUPTIBILITY.read();
    if interruptibility & 3 != 0 {
        guest::INTERRUPTIBILITY.write(interruptibility & !3);
    }
}
