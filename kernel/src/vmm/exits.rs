//! What each VM exit does to the VM: a dispatch from the backend's decoded
//! [`Exit`] to the rules that decide the architectural answer.

use super::exit::{ControlRegisterAccess, Exit};
use super::vcpu::Vcpu;
use super::vm::{StopReason, Vm};
use super::{hypercall_handler, io, msr};
use crate::rules::cpuid::{guest_view, CpuidResult};
use crate::size::Bytes;
use alloc::format;

/// What the scheduler should do after an exit.
#[derive(Debug)]
pub enum Outcome {
    /// Re-enter the guest.
    Continue,
    /// The slice is over (timer, yield).
    EndSlice,
    /// The vCPU waits for an interrupt.
    Sleep,
    /// The VM is finished.
    Stop(StopReason),
}

const VECTOR_UD: u8 = 6;
const VECTOR_GP: u8 = 13;
const RFLAGS_IF: u64 = 1 << 9;
const CR0_PE: u64 = 1 << 0;
const CR0_TS: u64 = 1 << 3;
const CR0_ET: u64 = 1 << 4;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSXSAVE: u64 = 1 << 18;
/// CR0's defined bits: PE MP EM TS ET NE WP AM NW CD PG.
const CR0_DEFINED: u64 = 0x3f | (1 << 16) | (1 << 18) | (7 << 29);
const EFER_LME: u64 = 1 << 8;

/// Handles one exit of `vm`, whose vCPU is loaded.
pub fn handle<V: Vcpu>(vm: &mut Vm<V>, exit: Exit) -> Outcome {
    match exit {
        Exit::Cpuid => {
            cpuid(&mut vm.vcpu);
            Outcome::Continue
        }
        Exit::Hlt => {
            vm.vcpu.skip_instruction();
            if vm.vcpu.rflags() & RFLAGS_IF == 0 {
                Outcome::Stop(StopReason::Halted)
            } else {
                Outcome::Sleep
            }
        }
        Exit::Io(access) if access.string => match io::handle_string(vm, access) {
            Ok(()) => Outcome::Continue,
            Err(io::StringIoError::UnsupportedPaging) => Outcome::Stop(StopReason::Fault(format!(
                "string I/O on port {:#x} under 32-bit or PAE paging, which tessera does not walk (RIP {:#x})",
                access.port,
                vm.vcpu.rip()
            ))),
        },
        Exit::Io(access) => {
            io::handle(vm, access);
            vm.vcpu.skip_instruction();
            Outcome::Continue
        }
        Exit::Rdmsr => {
            let index = vm.vcpu.registers().rcx as u32;
            match msr::read(&vm.msrs, &vm.vcpu, index) {
                Some(value) => {
                    let registers = vm.vcpu.registers();
                    registers.rax = value & 0xffff_ffff;
                    registers.rdx = value >> 32;
                    vm.vcpu.skip_instruction();
                }
                None => vm.vcpu.inject_exception(VECTOR_GP, Some(0)),
            }
            Outcome::Continue
        }
        Exit::Wrmsr => {
            let registers = vm.vcpu.registers();
            let index = registers.rcx as u32;
            let value = (registers.rdx << 32) | (registers.rax & 0xffff_ffff);
            if msr::write(&mut vm.msrs, &mut vm.vcpu, index, value) {
                vm.vcpu.skip_instruction();
            } else {
                vm.vcpu.inject_exception(VECTOR_GP, Some(0));
            }
            Outcome::Continue
        }
        Exit::Hypercall => {
            if vm.vcpu.control_state().cpl != 0 {
                // Only the guest kernel may call the hypervisor.
                vm.vcpu.inject_exception(VECTOR_UD, None);
                return Outcome::Continue;
            }
            let outcome = hypercall_handler::dispatch(vm);
            vm.vcpu.skip_instruction();
            outcome
        }
        Exit::UnmappedMemory {
            address,
            access,
            linear,
        } => Outcome::Stop(StopReason::Fault(format!(
            "EPT violation: {} of guest-physical {:#x}{} outside its {} of RAM, at RIP {:#x}",
            access.as_str(),
            address,
            linear.map_or(alloc::string::String::new(), |l| format!(
                " (linear {:#x})",
                l
            )),
            Bytes(vm.ram.size()),
            vm.vcpu.rip()
        ))),
        Exit::PageTableMisconfiguration { address } => {
            log::error!(
                "vm {}: EPT misconfiguration at {:#x}: a tessera bug",
                vm.name,
                address
            );
            Outcome::Stop(StopReason::Fault(format!(
                "EPT misconfiguration at guest-physical {:#x}",
                address
            )))
        }
        Exit::TripleFault => Outcome::Stop(StopReason::Fault(format!(
            "triple fault at RIP {:#x}",
            vm.vcpu.rip()
        ))),
        Exit::VirtualizationInstruction | Exit::Unsupported { .. } => {
            vm.vcpu.inject_exception(VECTOR_UD, None);
            Outcome::Continue
        }
        Exit::Xsetbv => {
            xsetbv(&mut vm.vcpu);
            Outcome::Continue
        }
        Exit::ControlRegister(access) => {
            control_register(&mut vm.vcpu, access);
            Outcome::Continue
        }
        Exit::Init => Outcome::Stop(StopReason::Fault("received an INIT signal".into())),
        // tessera masks every interrupt source and sends no IPIs; a stray
        // one is not the guest's doing.
        Exit::Sipi | Exit::ExternalInterrupt | Exit::Nmi => Outcome::Continue,
        // The backend reflected the intercepted exception to the guest.
        Exit::Exception { .. } => Outcome::Continue,
        Exit::SliceEnd => Outcome::EndSlice,
        Exit::CacheInvalidation => {
            // Guest RAM is ordinary write-back memory with no device behind
            // it: there is nothing to write back or discard.
            vm.vcpu.skip_instruction();
            Outcome::Continue
        }
        Exit::Rdpmc => {
            // No performance counters are offered (CPUID leaf 0xA is 0).
            vm.vcpu.inject_exception(VECTOR_GP, Some(0));
            Outcome::Continue
        }
        Exit::InvalidGuestState { detail } => Outcome::Stop(StopReason::Fault(format!(
            "VM entry failed: invalid guest state (exit qualification {}), RIP {:#x}",
            detail,
            vm.vcpu.rip()
        ))),
    }
}

fn cpuid<V: Vcpu>(vcpu: &mut V) {
    let registers = vcpu.registers();
    let (leaf, subleaf) = (registers.rax as u32, registers.rcx as u32);
    let host = raw_cpuid::cpuid!(leaf, subleaf);
    // Only leaf 1 reports OSXSAVE; spare the other leaves the CR4 read.
    let osxsave = leaf == 1 && vcpu.control_state().cr4 & CR4_OSXSAVE != 0;
    let view = guest_view(
        leaf,
        subleaf,
        CpuidResult {
            eax: host.eax,
            ebx: host.ebx,
            ecx: host.ecx,
            edx: host.edx,
        },
        0,
        osxsave,
    );
    let registers = vcpu.registers();
    registers.rax = view.eax as u64;
    registers.rbx = view.ebx as u64;
    registers.rcx = view.ecx as u64;
    registers.rdx = view.edx as u64;
    vcpu.skip_instruction();
}

/// XSETBV: only XCR0, only supported bits, and only the combinations the
/// SDM allows (Vol. 1, 13.3).
fn xsetbv<V: Vcpu>(vcpu: &mut V) {
    let registers = vcpu.registers();
    let value = (registers.rdx << 32) | (registers.rax & 0xffff_ffff);
    let index = registers.rcx as u32;
    let cpl = vcpu.control_state().cpl;
    let supported = vcpu.supported_xcr0();
    let valid = index == 0
        && cpl == 0
        && value & !supported == 0
        && value & 1 != 0
        && (value & 4 == 0 || value & 2 != 0)
        && (value & 0xe0 == 0 || (value & 0xe0 == 0xe0 && value & 6 == 6))
        && (value & 0x18 == 0 || value & 0x18 == 0x18)
        && (value & 0x6_0000 == 0 || value & 0x6_0000 == 0x6_0000);
    if !valid {
        vcpu.inject_exception(VECTOR_GP, Some(0));
        return;
    }
    vcpu.set_xcr0(value);
    vcpu.skip_instruction();
}

/// MOV to CR0/CR4, CLTS and LMSW that touch bits tessera owns, and CR3/CR8
/// accesses if the backend intercepts them.
fn control_register<V: Vcpu>(vcpu: &mut V, access: ControlRegisterAccess) {
    let state = vcpu.control_state();
    let (register, value) = match access {
        ControlRegisterAccess::Write { register, gpr } => (register, vcpu.gpr(gpr)),
        ControlRegisterAccess::Read { register, gpr } => {
            let value = match register {
                3 => state.cr3,
                _ => 0,
            };
            vcpu.set_gpr(gpr, value);
            vcpu.skip_instruction();
            return;
        }
        ControlRegisterAccess::Clts => (0, state.cr0 & !CR0_TS),
        // LMSW changes only PE, MP, EM, TS and cannot clear PE.
        ControlRegisterAccess::Lmsw(source) => (
            0,
            (state.cr0 & !0xe) | (source as u64 & 0xf) | (state.cr0 & CR0_PE),
        ),
    };
    match register {
        0 => {
            // SDM Vol. 3A, 2.5: setting reserved bits 31:0 is ignored, bits
            // 63:32 fault, as do PG without PE, NW without CD, PG with LME
            // but no PAE, and clearing PG in 64-bit mode (10.8.5.4).
            let value = (value & (CR0_DEFINED | 0xffff_ffff_0000_0000)) | CR0_ET;
            let invalid = value >> 32 != 0
                || (value & CR0_PG != 0 && value & CR0_PE == 0)
                || (value & CR0_NW != 0 && value & CR0_CD == 0)
                || (value & CR0_PG != 0 && state.efer & EFER_LME != 0 && state.cr4 & CR4_PAE == 0)
                || (value & CR0_PG == 0 && state.cs_long);
            if invalid {
                vcpu.inject_exception(VECTOR_GP, Some(0));
                return;
            }
            vcpu.set_cr0(value);
        }
        3 => vcpu.set_cr3(value),
        4 => {
            // Bits the CPU cannot hold, VMXE (tessera does not nest) and SMXE
            // (SMX is not offered) fault; so does clearing PAE in IA-32e mode.
            let allowed = vcpu.supported_cr4();
            let long = state.efer & (1 << 10) != 0;
            if value & !allowed != 0 || (long && value & CR4_PAE == 0) {
                vcpu.inject_exception(VECTOR_GP, Some(0));
                return;
            }
            vcpu.set_cr4(value);
        }
        _ => {}
    }
    vcpu.skip_instruction();
}
