//! Port I/O from guests.
//!
//! Every port traps (the I/O bitmaps are all ones) and goes to the VM's
//! port bus (`devices::bus`): IN/OUT directly, INS/OUTS element by element
//! after their memory operand is translated through the guest's paging.

use super::exit::{IoAccess, StringIo};
use super::guest_memory::GuestRam;
use super::vcpu::{SegmentRegister, Vcpu};
use super::vm::Vm;
use crate::devices::{AccessSize, VmRequest};
use crate::guest_walk::{walk, Operation, Paging, PagingMode, Request, WalkError};
use crate::rules::bits::{cr0, cr4, efer, rflags};
use crate::rules::io::{
    address_mask, advance, count, linear_address, page_pieces, write_register, AddressingMode,
    StringElement,
};
use crate::rules::Fault;
use crate::vmm::hypercall::guest_range;

/// Element count handled per exit for REP string I/O; the instruction is
/// re-executed for the rest, so a huge RCX cannot hold the CPU.
const STRING_BATCH: u64 = 4096;

/// Emits a finished console line of a VM, prefixed with its name.
pub fn emit_line(id: u32, name: &str, line: &[u8]) {
    // LineBuffer passes only printable ASCII and tabs.
    let text = core::str::from_utf8(line).unwrap_or("<non-UTF-8 output>");
    if crate::console::color() {
        crate::println!(
            "{}{:>8} |{} {}",
            crate::console::vm_color(id),
            name,
            crate::console::RESET,
            text
        );
    } else {
        crate::println!("{:>8} | {}", name, text);
    }
}

#[inline(always)]
fn write_port<V: Vcpu>(
    vm: &mut Vm<V>,
    port: u16,
    value: u32,
    size: AccessSize,
) -> Option<VmRequest> {
    vm.platform.write_port(
        port,
        size,
        value,
        &mut vm.console,
        &vm.clock,
        crate::arch::tsc::rdtsc,
    )
}

#[inline(always)]
fn read_port<V: Vcpu>(vm: &mut Vm<V>, port: u16, size: AccessSize) -> (u32, Option<VmRequest>) {
    vm.platform.read_port(
        port,
        size,
        &mut vm.console,
        &vm.clock,
        crate::arch::tsc::rdtsc,
    )
}

/// The access width of an I/O instruction (1, 2 or 4 bytes: the decoders
/// produce nothing else).
#[inline(always)]
fn access_size(access: &IoAccess) -> AccessSize {
    match access.size() {
        1 => AccessSize::Byte,
        2 => AccessSize::Word,
        _ => AccessSize::Dword,
    }
}

/// Emulates a non-string IN or OUT and moves the guest past it; returns
/// what the access asked of the VM (a reset, a power-off, an exit).
#[inline(always)]
pub fn handle<V: Vcpu>(vm: &mut Vm<V>, access: IoAccess) -> Option<VmRequest> {
    let size = access_size(&access);
    let mask = size.mask() as u64;
    let request = if access.input() {
        let (value, request) = read_port(vm, access.port(), size);
        let value = value as u64;
        // IN to AL/AX leaves the rest of RAX; IN to EAX zero-extends.
        let rax = &mut vm.vcpu.registers().rax;
        *rax = if size == AccessSize::Dword {
            value
        } else {
            (*rax & !mask) | value
        };
        request
    } else {
        let value = (vm.vcpu.registers().rax & mask) as u32;
        write_port(vm, access.port(), value, size)
    };
    vm.vcpu.skip_instruction();
    request
}

/// The guest's paging, for translating string-I/O operands (`None`:
/// paging is off and linear addresses are guest-physical).
pub(super) fn paging<V: Vcpu>(vcpu: &V) -> Option<Paging> {
    let state = vcpu.control_state();
    if state.cr0 & cr0::PG == 0 {
        return None;
    }
    let mode = if state.efer & efer::LMA != 0 {
        if state.cr4 & cr4::LA57 != 0 {
            PagingMode::Level5
        } else {
            PagingMode::Level4
        }
    } else if state.cr4 & cr4::PAE != 0 {
        PagingMode::Pae {
            pdptes: vcpu.pdptes(),
        }
    } else {
        PagingMode::Bits32 {
            pse: state.cr4 & cr4::PSE != 0,
        }
    };
    Some(Paging {
        mode,
        cr3: state.cr3,
        write_protect: state.cr0 & cr0::WP != 0,
        no_execute: state.efer & efer::NXE != 0,
        smep: state.cr4 & cr4::SMEP != 0,
        smap: state.cr4 & cr4::SMAP != 0 && vcpu.rflags() & rflags::AC == 0,
    })
}

/// Translates one piece (inside one page) of an element's memory operand.
/// A paging structure or a page outside guest RAM is memory the hardware
/// would not find either: the guest gets #GP(0).
pub(super) fn translate(
    ram: &GuestRam,
    paging: &Option<Paging>,
    linear: u64,
    size: u64,
    request: Request,
) -> Result<u64, Fault> {
    let gpa = match paging {
        None => linear,
        Some(paging) => {
            let read = |gpa: u64| {
                guest_range(gpa, 8, ram.size()).map(|_| u64::from_le_bytes(ram.read_array(gpa)))
            };
            match walk(read, paging, linear, request) {
                Ok(gpa) => gpa,
                Err(WalkError::PageFault(error_code)) => {
                    return Err(Fault::PageFault {
                        address: linear,
                        error_code,
                    })
                }
                Err(WalkError::NonCanonical | WalkError::TableOutsideRam(_)) => {
                    return Err(Fault::GP0)
                }
            }
        }
    };
    guest_range(gpa, size, ram.size())
        .map(|_| gpa)
        .ok_or(Fault::GP0)
}

/// Emulates INS/OUTS (with or without REP), in batches. Each element's
/// linear address follows the segmentation rules of the guest's mode, and
/// an element that straddles two pages is translated page by page, so a
/// fault on the second page reports CR2 there. An element that faults ends
/// the instruction with RSI/RDI and RCX showing the elements done, as on
/// hardware, and the fault is delivered.
pub fn handle_string<V: Vcpu>(
    vm: &mut Vm<V>,
    access: IoAccess,
    string: StringIo,
) -> Option<VmRequest> {
    let state = vm.vcpu.control_state();
    let mode = if state.cr0 & cr0::PE == 0 {
        AddressingMode::Real
    } else if state.in_64bit_mode() {
        AddressingMode::Long64
    } else if state.ia32e_mode() {
        AddressingMode::Compatibility
    } else {
        AddressingMode::Protected
    };
    let la57 = state.cr4 & cr4::LA57 != 0;
    let paging = paging(&vm.vcpu);
    let size = access.size() as u64;
    let backwards = vm.vcpu.rflags() & rflags::DF != 0;
    // INS writes ES:[RDI] (no override); OUTS reads seg:[RSI].
    let register = if access.input() {
        SegmentRegister::Es
    } else if string.segment_from_prefixes {
        let (bytes, length) = super::mmio::fetch(vm);
        crate::rules::io::segment_override(&bytes[..length], state.in_64bit_mode())
            .unwrap_or(string.segment)
    } else {
        string.segment
    };
    let segment = vm.vcpu.segment(register);
    let registers = *vm.vcpu.registers();
    let total = if access.rep() {
        count(registers.rcx, string.address_size)
    } else {
        1
    };
    let batch = total.min(STRING_BATCH);
    let mut pointer = if access.input() {
        registers.rdi
    } else {
        registers.rsi
    };
    let request = Request {
        operation: if access.input() {
            Operation::Write
        } else {
            Operation::Read
        },
        user: state.cpl == 3,
    };
    let mut done = 0;
    let mut fault = None;
    let mut asked = None;
    while done < batch && asked.is_none() {
        let element = StringElement {
            register,
            offset: pointer & address_mask(string.address_size),
            size: access.size(),
            write: access.input(),
        };
        let pieces = linear_address(mode, la57, &segment, element).and_then(|linear| {
            let (first, second) = page_pieces(linear, size);
            let first_gpa = translate(&vm.ram, &paging, first.linear, first.size, request)?;
            let second = match second {
                Some(piece) => Some((
                    translate(&vm.ram, &paging, piece.linear, piece.size, request)?,
                    piece.size,
                )),
                None => None,
            };
            Ok(((first_gpa, first.size), second))
        });
        let ((first_gpa, first_size), second) = match pieces {
            Ok(pieces) => pieces,
            Err(error) => {
                fault = Some(error);
                break;
            }
        };
        let mut bytes = [0u8; 4];
        let (head, tail) = bytes[..size as usize].split_at_mut(first_size as usize);
        if access.input() {
            let (value, request) = read_port(vm, access.port(), access_size(&access));
            asked = request;
            let value = value.to_le_bytes();
            head.copy_from_slice(&value[..first_size as usize]);
            tail.copy_from_slice(&value[first_size as usize..size as usize]);
            vm.ram.write_bytes(first_gpa, head);
            if let Some((gpa, _)) = second {
                vm.ram.write_bytes(gpa, tail);
            }
        } else {
            head.copy_from_slice(vm.ram.slice(first_gpa, first_size));
            if let Some((gpa, length)) = second {
                tail.copy_from_slice(vm.ram.slice(gpa, length));
            }
            write_port(
                vm,
                access.port(),
                u32::from_le_bytes(bytes),
                access_size(&access),
            );
        }
        pointer = advance(pointer, access.size(), string.address_size, backwards);
        done += 1;
    }
    let registers = vm.vcpu.registers();
    if access.input() {
        registers.rdi = pointer;
    } else {
        registers.rsi = pointer;
    }
    if access.rep() {
        registers.rcx = write_register(registers.rcx, total - done, string.address_size);
    }
    match fault {
        Some(fault) => {
            if let Fault::PageFault { address, .. } = fault {
                vm.vcpu.set_cr2(address);
            }
            vm.vcpu.inject_exception(fault.vector(), fault.error_code());
        }
        // Leave RIP on the instruction while elements remain: it resumes
        // with the rest, so a huge RCX cannot hold the CPU.
        None if access.rep() && total > done => {}
        None => vm.vcpu.skip_instruction(),
    }
    asked
}
