//! Decoding a VM exit into a typed event for the vendor-neutral core.
//!
//! Field layouts: exit qualifications in SDM Vol. 3C, 29.2.1 (Tables 29-3
//! for control-register accesses, 29-5 for I/O, 29-7 for EPT violations);
//! interruption information in 26.9.2.

use super::exit_reason::reason;
use super::vmcs::{exit, guest};
use crate::rules::io::{io_access_from_vmx, io_from_vmx};
use crate::vmm::exit::{ControlRegisterAccess, Exit, MemoryAccess};

/// The basic exit reason (bits 15:0 of the exit-reason field).
pub fn basic_reason() -> u32 {
    exit::REASON.read() & 0xffff
}

/// Reads the exit information of the current VMCS into the core's terms.
#[inline(always)]
pub fn decode(reason: u32) -> Exit {
    match reason {
        reason::EXCEPTION_OR_NMI => {
            // Interruption information (SDM Vol. 3C, 26.9.2): vector 7:0,
            // type 10:8 (2 = NMI), error code valid 11.
            let info = exit::INTERRUPTION_INFO.read();
            if (info >> 8) & 7 == 2 {
                Exit::Nmi
            } else {
                Exit::Exception {
                    vector: info as u8,
                    error_code: (info & (1 << 11) != 0)
                        .then(|| exit::INTERRUPTION_ERROR_CODE.read()),
                }
            }
        }
        reason::EXTERNAL_INTERRUPT => Exit::ExternalInterrupt,
        reason::TRIPLE_FAULT => Exit::TripleFault,
        reason::INIT => Exit::Init,
        reason::SIPI => Exit::Sipi,
        reason::CPUID => Exit::Cpuid,
        reason::HLT => Exit::Hlt,
        reason::INVD | reason::WBINVD => Exit::CacheInvalidation,
        reason::RDPMC => Exit::Rdpmc,
        reason::VMCALL => Exit::Hypercall,
        reason::VMCLEAR..=reason::VMXON | reason::INVEPT | reason::INVVPID | reason::VMFUNC => {
            Exit::VirtualizationInstruction
        }
        reason::CONTROL_REGISTER => {
            Exit::ControlRegister(control_register_access(exit::QUALIFICATION.read()))
        }
        reason::IO_INSTRUCTION => {
            // The instruction information matters only for INS/OUTS: IN and
            // OUT spare the VMREAD.
            let qualification = exit::QUALIFICATION.read();
            let access = io_access_from_vmx(qualification);
            if access.string() {
                let (access, string) = io_from_vmx(qualification, exit::INSTRUCTION_INFO.read());
                Exit::StringIo(access, string)
            } else {
                Exit::Io(access)
            }
        }
        reason::RDMSR => Exit::Rdmsr,
        reason::WRMSR => Exit::Wrmsr,
        reason::INVALID_GUEST_STATE => Exit::InvalidGuestState {
            detail: exit::QUALIFICATION.read(),
        },
        reason::EPT_VIOLATION => {
            // EPT-violation qualification (SDM Vol. 3C, Table 29-7): bit 1
            // write, bit 2 fetch (bit 7, linear address valid, is read by
            // `fault_linear_address` when a report needs it).
            let q = exit::QUALIFICATION.read();
            Exit::UnmappedMemory {
                address: exit::GUEST_PHYSICAL_ADDRESS.read(),
                access: if q & 2 != 0 {
                    MemoryAccess::Write
                } else if q & 4 != 0 {
                    MemoryAccess::Execute
                } else {
                    MemoryAccess::Read
                },
            }
        }
        reason::EPT_MISCONFIGURATION => Exit::PageTableMisconfiguration {
            address: exit::GUEST_PHYSICAL_ADDRESS.read(),
        },
        reason::PREEMPTION_TIMER => Exit::SliceEnd,
        reason::INTERRUPT_WINDOW => Exit::InterruptWindow,
        reason::NMI_WINDOW => Exit::NmiWindow,
        reason::XSETBV => Exit::Xsetbv,
        reason => Exit::Unsupported { reason },
    }
}

/// Control-register access qualification (SDM Vol. 3C, Table 29-3): CR
/// number 3:0, access type 5:4, register 11:8, LMSW source 31:16.
fn control_register_access(q: u64) -> ControlRegisterAccess {
    let register = (q & 0xf) as u8;
    let gpr = ((q >> 8) & 0xf) as u8;
    match (q >> 4) & 3 {
        0 => ControlRegisterAccess::Write { register, gpr },
        1 => ControlRegisterAccess::Read { register, gpr },
        2 => ControlRegisterAccess::Clts,
        _ => ControlRegisterAccess::Lmsw((q >> 16) as u16),
    }
}

/// Moves the guest past the instruction that caused the exit.
#[inline(always)]
pub fn skip_instruction() {
    skip(exit::INSTRUCTION_LENGTH.read() as u64);
}

/// Moves the guest past an instruction of `length` bytes that tessera
/// decoded itself: EPT violations report no instruction length (the field
/// is defined only for the exits SDM Vol. 3C, 29.2.5 lists).
#[inline(always)]
pub fn skip(length: u64) {
    guest::RIP.write(guest::RIP.read().wrapping_add(length));
    // Stepping over an instruction ends a MOV-SS/STI interrupt shadow
    // (SDM Vol. 3C, 26.4.2: blocking by STI / by MOV SS).
    let interruptibility = guest::INTERRUPTIBILITY.read();
    if interruptibility & 3 != 0 {
        guest::INTERRUPTIBILITY.write(interruptibility & !3);
    }
}
