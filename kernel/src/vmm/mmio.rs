//! MMIO from guests: an EPT violation on a page a device decodes (the
//! local APIC's and the I/O APIC's) is the guest's access to a device
//! register. The core fetches the instruction at RIP through the guest's
//! segmentation and paging, decodes it (`rules::mmio`), carries out the
//! access on the VM's platform and moves RIP past it.
//!
//! Anything the decoder refuses stops only this VM, with the instruction's
//! bytes in the report: MMIO drivers use plain MOVs (Linux's `readl`/
//! `writel`), and a guest that does otherwise is told so rather than given
//! a wrong answer.

use super::exit::{ControlRegisterAccess, MemoryAccess};
use super::exit_handler::Outcome;
use super::port_io::{paging, translate};
use super::vcpu::{SegmentRegister, Vcpu};
use super::vm::{StopReason, Vm};
use crate::devices::MmioSize;
use crate::guest_walk::{Operation, Request};
use crate::rules::bits::cr0;
use crate::rules::control_register_decode::{
    decode as decode_cr, ControlRegisterInstruction, DecodeError,
};
use crate::rules::mmio::{alu, decode, CodeMode, MmioOperation, Source, MAX_INSTRUCTION_LENGTH};
use alloc::format;

/// The instruction bytes at the guest's RIP (up to 15, fewer at the end of
/// RAM or of a page that is not mapped: the decoder reports a truncated
/// instruction then).
#[inline(always)]
pub(super) fn fetch<V: Vcpu>(vm: &Vm<V>) -> ([u8; MAX_INSTRUCTION_LENGTH], usize) {
    let state = vm.vcpu.control_state();
    let cs = vm.vcpu.segment(SegmentRegister::Cs);
    let mut linear = cs.base.wrapping_add(vm.vcpu.rip());
    if !state.in_64bit_mode() {
        linear &= 0xffff_ffff;
    }
    let paging = paging(&vm.vcpu);
    let request = Request {
        operation: Operation::Fetch,
        user: state.cpl == 3,
    };
    let mut bytes = [0u8; MAX_INSTRUCTION_LENGTH];
    let mut got = 0;
    while got < MAX_INSTRUCTION_LENGTH {
        let at = linear.wrapping_add(got as u64);
        let in_page = (0x1000 - (at & 0xfff)) as usize;
        let piece = in_page.min(MAX_INSTRUCTION_LENGTH - got);
        let Ok(gpa) = translate(&vm.ram, &paging, at, 1, request) else {
            break;
        };
        let available = (vm.ram.size() - gpa).min(piece as u64) as usize;
        bytes[got..got + available].copy_from_slice(vm.ram.slice(gpa, available as u64));
        got += available;
        if available < piece {
            break;
        }
    }
    (bytes, got)
}

/// The decoder's mode for the guest's code segment.
fn code_mode<V: Vcpu>(vcpu: &V) -> CodeMode {
    let state = vcpu.control_state();
    if state.in_64bit_mode() {
        CodeMode::Long64
    } else if state.cr0 & cr0::PE != 0
        && vcpu.segment(SegmentRegister::Cs).access_rights & (1 << 14) != 0
    {
        // CS.D set: 32-bit code (compatibility mode included).
        CodeMode::Protected32
    } else {
        CodeMode::Real16
    }
}

/// Decodes the control-register write at RIP that the CPU reported
/// without its operands (SVM without decode assists): the access, and the
/// instruction's length to skip.
pub fn decode_control_register_write<V: Vcpu>(
    vm: &mut Vm<V>,
) -> Result<(ControlRegisterAccess, Option<u8>), DecodeError> {
    let (bytes, length) = fetch(vm);
    let (instruction, length) = decode_cr(&bytes[..length], code_mode(&vm.vcpu))?;
    let access = match instruction {
        ControlRegisterInstruction::Move { register, gpr } => {
            ControlRegisterAccess::Write { register, gpr }
        }
        ControlRegisterInstruction::Clts => ControlRegisterAccess::Clts,
        ControlRegisterInstruction::LmswRegister { gpr } => {
            ControlRegisterAccess::Lmsw(vm.vcpu.gpr(gpr) as u16)
        }
    };
    Ok((access, Some(length)))
}

/// Emulates the access to `gpa` that exited, if a device decodes it;
/// `None` when none does (the caller reports the EPT violation as before).
pub fn handle<V: Vcpu>(vm: &mut Vm<V>, gpa: u64, access: MemoryAccess) -> Option<Outcome> {
    if !vm.platform.decodes_mmio(gpa) {
        return None;
    }
    if access == MemoryAccess::Execute {
        return Some(stop(format!(
            "instruction fetch from device memory at guest-physical {:#x}",
            gpa
        )));
    }
    let (bytes, length) = fetch(vm);
    let decoded = match decode(&bytes[..length], code_mode(&vm.vcpu)) {
        Ok(decoded) => decoded,
        Err(error) => {
            return Some(stop(format!(
                "MMIO at guest-physical {:#x}, RIP {:#x}: {}",
                gpa,
                vm.vcpu.rip(),
                error
            )))
        }
    };
    let now_ns = vm.clock.ns_at(crate::arch::tsc::rdtsc());
    let size_of = |bytes: u8| MmioSize::from_bytes(bytes).unwrap_or(MmioSize::Dword);
    // The platform decodes the page (checked above), so its reads and
    // writes answer; `unwrap_or` keeps a floating-bus value if not.
    let read = |vm: &mut Vm<V>, size: u8| {
        vm.platform
            .mmio_read(gpa, size_of(size), now_ns, &mut vm.console)
            .unwrap_or(u64::MAX >> (64 - 8 * u32::from(size)))
    };
    let write = |vm: &mut Vm<V>, size: u8, value: u64| {
        vm.platform
            .mmio_write(gpa, size_of(size), value, now_ns, &mut vm.console);
    };
    match decoded.operation {
        MmioOperation::Load(load) => {
            let value = read(vm, load.size);
            let number = load.register.number;
            let old = vm.vcpu.gpr(number);
            vm.vcpu.set_gpr(number, load.register_value(old, value));
        }
        MmioOperation::Store { register, size } => {
            let value = register.read(vm.vcpu.gpr(register.number), size);
            write(vm, size, value);
        }
        MmioOperation::StoreImmediate { value, size } => write(vm, size, value),
        MmioOperation::ReadModifyWrite { op, size, source } => {
            let source = match source {
                Source::Register(register) => register.read(vm.vcpu.gpr(register.number), size),
                Source::Immediate(value) => value,
            };
            let memory = read(vm, size);
            let (result, flags) = alu(op, size, memory, source);
            if op.writes_memory() {
                write(vm, size, result);
            }
            let rflags = vm.vcpu.rflags();
            vm.vcpu.set_rflags((rflags & !op.flags_written()) | flags);
        }
        MmioOperation::CompareRegister { register, size } => {
            let memory = read(vm, size);
            let value = register.read(vm.vcpu.gpr(register.number), size);
            let op = crate::rules::mmio::AluOp::Cmp;
            let (_, flags) = alu(op, size, value, memory);
            let rflags = vm.vcpu.rflags();
            vm.vcpu.set_rflags((rflags & !op.flags_written()) | flags);
        }
        MmioOperation::Exchange { register, size } => {
            let memory = read(vm, size);
            let number = register.number;
            let old = vm.vcpu.gpr(number);
            write(vm, size, register.read(old, size));
            vm.vcpu.set_gpr(number, register.write(old, memory, size));
        }
    }
    vm.vcpu.skip_emulated(u64::from(decoded.length));
    Some(Outcome::Continue)
}

fn stop(reason: alloc::string::String) -> Outcome {
    Outcome::Stop(StopReason::Fault(reason))
}
