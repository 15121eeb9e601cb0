//! The VMCALL interface; numbers and layouts are in `crate::vmm::hypercall`.
//!
//! Every guest-supplied address and length is checked against the VM's RAM
//! before a byte is touched.

use super::exit_handler::Outcome;
use super::vcpu::Vcpu;
use super::vm::{StopReason, Vm};
use crate::vmm::hypercall::*;

/// Carries out the hypercall in the guest's RAX; the result goes to RAX.
pub fn dispatch<V: Vcpu>(vm: &mut Vm<V>) -> Outcome {
    let registers = *vm.vcpu.registers();
    let (call, first, second) = (registers.rax, registers.rdi, registers.rsi);
    let (result, outcome): (i64, Outcome) = match call {
        CONSOLE_WRITE => console_write(vm, first, second),
        YIELD => (0, Outcome::EndSlice),
        EXIT => (0, Outcome::Stop(StopReason::Exited(first as i64))),
        VM_INFO => (vm_info(vm, first, second), Outcome::Continue),
        BENCH_NOP => (0, Outcome::Continue),
        _ => (ERROR_UNKNOWN_CALL, Outcome::Continue),
    };
    vm.vcpu.registers().rax = result as u64;
    outcome
}

/// Prints guest text. The serial port is slow — a 64-character line takes
/// about 5.6 ms at 115200 baud — and that time is the VM's: once its slice
/// is used up, the call returns the bytes taken so far (at least one line's
/// worth) and the slice ends, so a VM that prints without pause gets its
/// share of the CPU and no more. The guest calls again with the rest.
fn console_write<V: Vcpu>(vm: &mut Vm<V>, address: u64, length: u64) -> (i64, Outcome) {
    if length > CONSOLE_WRITE_MAX {
        return (ERROR_BAD_ARGUMENT, Outcome::Continue);
    }
    let Some(range) = guest_range(address, length, vm.ram.size()) else {
        return (ERROR_BAD_ADDRESS, Outcome::Continue);
    };
    let mut written = 0;
    for index in range {
        let byte = vm.ram.slice(index, 1)[0];
        written += 1;
        if vm.console.push(byte) && crate::arch::tsc::rdtsc() >= vm.slice_deadline {
            return (written, Outcome::EndSlice);
        }
    }
    (written, Outcome::Continue)
}

fn vm_info<V: Vcpu>(vm: &mut Vm<V>, address: u64, length: u64) -> i64 {
    let bytes = VmInfo::new(vm.id, vm.ram.size(), &vm.name).to_bytes();
    if length < bytes.len() as u64 {
        return ERROR_BAD_ARGUMENT;
    }
    if guest_range(address, bytes.len() as u64, vm.ram.size()).is_none() {
        return ERROR_BAD_ADDRESS;
    }
    vm.ram
        .slice_mut(address, bytes.len() as u64)
        .copy_from_slice(&bytes);
    bytes.len() as i64
}
