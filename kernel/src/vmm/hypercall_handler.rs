//! The VMCALL interface; numbers and layouts are in `crate::vmm::hypercall`.
//!
//! Every guest-supplied address and length is checked against the VM's RAM
//! before a byte is touched.

use super::exits::Outcome;
use super::vcpu::Vcpu;
use super::vm::{StopReason, Vm};
use crate::devices::ConsoleSink;
use crate::vmm::hypercall::*;

/// Carries out the hypercall in the guest's RAX; the result goes to RAX.
pub fn dispatch<V: Vcpu>(vm: &mut Vm<V>) -> Outcome {
    let registers = *vm.vcpu.registers();
    let (call, first, second) = (registers.rax, registers.rdi, registers.rsi);
    let (result, outcome): (i64, Outcome) = match call {
        CONSOLE_WRITE => (console_write(vm, first, second), Outcome::Continue),
        YIELD => (0, Outcome::EndSlice),
        EXIT => (0, Outcome::Stop(StopReason::Exited(first as i64))),
        VM_INFO => (vm_info(vm, first, second), Outcome::Continue),
        BENCH_NOP => (0, Outcome::Continue),
        _ => (ERROR_UNKNOWN_CALL, Outcome::Continue),
    };
    vm.vcpu.registers().rax = result as u64;
    outcome
}

fn console_write<V: Vcpu>(vm: &mut Vm<V>, address: u64, length: u64) -> i64 {
    if length > CONSOLE_WRITE_MAX {
        return ERROR_BAD_ARGUMENT;
    }
    let Some(range) = guest_range(address, length, vm.ram.size()) else {
        return ERROR_BAD_ADDRESS;
    };
    for index in range {
        let byte = vm.ram.slice(index, 1)[0];
        vm.console.transmit(byte);
    }
    length as i64
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
