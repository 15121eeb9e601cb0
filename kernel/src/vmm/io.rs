//! Port I/O from guests.
//!
//! Every port traps (the I/O bitmaps are all ones) and goes to the VM's
//! port bus (`devices::bus`): IN/OUT directly, INS/OUTS element by element
//! after their memory operand is translated through the guest's paging.

use super::exit::IoAccess;
use super::vcpu::{SegmentRegister, Vcpu};
use super::vm::Vm;
use crate::devices::{AccessSize, DeviceContext};
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

fn write_port<V: Vcpu>(vm: &mut Vm<V>, port: u16, value: u32, size: u8) {
    let Some(size) = AccessSize::from_bytes(size) else {
        return;
    };
    let mut cx = DeviceContext::new(&mut vm.irq, &mut vm.console);
    vm.ports.write(port, size, value, &mut cx);
}

fn read_port<V: Vcpu>(vm: &mut Vm<V>, port: u16, size: u8) -> u32 {
    let Some(size) = AccessSize::from_bytes(size) else {
        return u32::MAX;
    };
    let mut cx = DeviceContext::new(&mut vm.irq, &mut vm.console);
    vm.ports.read(port, size, &mut cx)
}

/// Handles a non-string IN or OUT.
pub fn handle<V: Vcpu>(vm: &mut Vm<V>, access: IoAccess) {
    let mask = match access.size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    };
    if access.input {
        let value = read_port(vm, access.port, access.size) as u64 & mask;
        // IN to AL/AX leaves the rest of RAX; IN to EAX zero-extends.
        let rax = &mut vm.vcpu.registers().rax;
        *rax = if access.size == 4 {
            value
        } else {
            (*rax & !mask) | value
        };
    } else {
        let value = (vm.vcpu.registers().rax & mask) as u32;
        write_port(vm, access.port, value, access.size);
    }
}

/// Why a string I/O instruction could not be emulated.
pub enum StringIoError {
    /// The guest's paging mode is one tessera does not walk (32-bit or PAE).
    UnsupportedPaging,
}

/// What the guest gets when an element's memory operand cannot be reached.
enum OperandFault {
    /// #PF with this error code; CR2 = the linear address.
    PageFault(u64, u32),
    /// #GP(0): a non-canonical address, or one whose tables or data lie
    /// outside guest RAM (where the hardware would find no memory either).
    GeneralProtection,
}

/// Translates the memory operand of one element to a guest-physical
/// address inside guest RAM. An element that crosses a page boundary is
/// translated on both pages, so that a fault on the second page is reported
/// with CR2 there, as the CPU would (SDM Vol. 3A, 4.7).
fn operand<V: Vcpu>(
    vm: &mut Vm<V>,
    linear: u64,
    size: u64,
    write: bool,
) -> Result<Result<u64, OperandFault>, StringIoError> {
    let last = linear.wrapping_add(size - 1);
    let first = translate(vm, linear, write)?;
    if let Ok(gpa) = first {
        if last & !0xfff != linear & !0xfff {
            let second = match translate(vm, last & !0xfff, write)? {
                Ok(second) => second,
                Err(fault) => return Ok(Err(fault)),
            };
            // Both halves must be contiguous in guest-physical memory for
            // the byte copy below; otherwise treat it like hardware that
            // cannot reach it.
            if second != (gpa | 0xfff) + 1 {
                return Ok(Err(OperandFault::GeneralProtection));
            }
        }
        return Ok(crate::vmm::hypercall::guest_range(gpa, size, vm.ram.size())
            .map(|_| gpa)
            .ok_or(OperandFault::GeneralProtection));
    }
    Ok(first)
}

fn translate<V: Vcpu>(
    vm: &mut Vm<V>,
    linear: u64,
    write: bool,
) -> Result<Result<u64, OperandFault>, StringIoError> {
    use crate::guest_walk::{translate, Access, WalkError};
    let state = vm.vcpu.control_state();
    if state.cr0 & (1 << 31) == 0 {
        return Ok(Ok(linear));
    }
    if state.efer & (1 << 10) == 0 {
        return Err(StringIoError::UnsupportedPaging);
    }
    let access = Access {
        write,
        user: state.cpl == 3,
    };
    let ram = &vm.ram;
    let read = |gpa: u64| {
        guest_range(gpa, 8, ram.size())
            .map(|_| u64::from_le_bytes(ram.slice(gpa, 8).try_into().unwrap_or([0; 8])))
    };
    Ok(
        match translate(read, state.cr3, linear, access, state.cr0 & (1 << 16) != 0) {
            Ok(gpa) => Ok(gpa),
            Err(WalkError::PageFault(code)) => Err(OperandFault::PageFault(linear, code)),
            Err(WalkError::NonCanonical | WalkError::TableOutsideRam(_)) => {
                Err(OperandFault::GeneralProtection)
            }
        },
    )
}

/// Emulates INS/OUTS (with or without REP), in batches. An element whose
/// memory operand faults ends the instruction there, with RSI/RDI and RCX
/// showing the elements done, as on hardware, and the fault delivered.
pub fn handle_string<V: Vcpu>(vm: &mut Vm<V>, access: IoAccess) -> Result<(), StringIoError> {
    let address_mask = match access.address_size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    };
    let size = access.size as u64;
    let backwards = vm.vcpu.rflags() & (1 << 10) != 0;
    let registers = *vm.vcpu.registers();
    let total = if access.rep {
        registers.rcx & address_mask
    } else {
        1
    };
    let batch = total.min(STRING_BATCH);
    let segment = if access.input {
        SegmentRegister::Es
    } else {
        access.segment
    };
    // In 64-bit mode the CPU treats the ES, CS, SS and DS bases as 0 (SDM
    // Vol. 3A, 3.4.4); only FS and GS keep theirs.
    let long = vm.vcpu.control_state().cs_long;
    let base = match segment {
        SegmentRegister::Fs | SegmentRegister::Gs => vm.vcpu.segment(segment).base,
        _ if long => 0,
        _ => vm.vcpu.segment(segment).base,
    };
    let start = if access.input {
        registers.rdi
    } else {
        registers.rsi
    } & address_mask;
    let mut offset = start;
    let mut done = 0;
    let mut fault = None;
    while done < batch {
        let linear = base.wrapping_add(offset);
        let gpa = match operand(vm, linear, size, access.input)? {
            Ok(gpa) => gpa,
            Err(error) => {
                fault = Some(error);
                break;
            }
        };
        if access.input {
            let value = read_port(vm, access.port, access.size).to_le_bytes();
            vm.ram
                .slice_mut(gpa, size)
                .copy_from_slice(&value[..size as usize]);
        } else {
            let mut bytes = [0u8; 4];
            bytes[..size as usize].copy_from_slice(vm.ram.slice(gpa, size));
            write_port(vm, access.port, u32::from_le_bytes(bytes), access.size);
        }
        offset = if backwards {
            offset.wrapping_sub(size)
        } else {
            offset.wrapping_add(size)
        } & address_mask;
        done += 1;
    }
    let registers = vm.vcpu.registers();
    let update = |register: &mut u64| *register = (*register & !address_mask) | offset;
    if access.input {
        update(&mut registers.rdi);
    } else {
        update(&mut registers.rsi);
    }
    if access.rep {
        registers.rcx = (registers.rcx & !address_mask) | (total - done);
    }
    match fault {
        Some(OperandFault::PageFault(linear, code)) => {
            vm.vcpu.set_cr2(linear);
            vm.vcpu.inject_exception(14, Some(code));
        }
        Some(OperandFault::GeneralProtection) => vm.vcpu.inject_exception(13, Some(0)),
        // Leave RIP on the instruction while elements remain: it resumes
        // with the rest, so a huge RCX cannot hold the CPU.
        None if access.rep && total > done => {}
        None => vm.vcpu.skip_instruction(),
    }
    Ok(())
}
