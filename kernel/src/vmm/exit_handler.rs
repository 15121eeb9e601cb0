//! What each VM exit does to the VM: a dispatch from the backend's decoded
//! [`Exit`] to the rules that decide the architectural answer.

use super::exit::{ControlRegisterAccess, Exit};
use super::vcpu::Vcpu;
use super::vm::{StopReason, Vm};
use super::{delivery_loop, hypercall_handler, port_io};
use crate::devices::VmRequest;
use crate::rules::bits::{cr4, rflags};
use crate::rules::control_registers::{self as cr, ControlState};
use crate::rules::cpuid::{guest_view, CpuidResult, TimingLeaves};
use crate::rules::msr::{self, MsrGuest};
use crate::rules::xcr0::validate_xsetbv;
use crate::rules::Fault;
use crate::size::Bytes;
use alloc::format;
use alloc::string::String;
use x86::msr::IA32_TIME_STAMP_COUNTER;

/// What the scheduler should do after an exit. `repr(u8)` gives it an
/// explicit tag, so testing for `Continue` on the exit path is one compare
/// instead of decoding a niche in the stop reason's string.
#[derive(Debug)]
#[repr(u8)]
pub enum Outcome {
    /// Re-enter the guest.
    Continue,
    /// The slice is over (yield).
    EndSlice,
    /// The slice timer fired: the slice is over, or a device timer is due.
    Timer,
    /// The vCPU waits for an interrupt.
    Sleep,
    /// The VM is finished.
    Stop(StopReason),
}

/// Delivers the fault a rule decided on.
fn deliver<V: Vcpu>(vcpu: &mut V, fault: Fault) {
    if let Fault::PageFault { address, .. } = fault {
        vcpu.set_cr2(address);
    }
    vcpu.inject_exception(fault.vector(), fault.error_code());
}

/// The MSR rules' view of a vCPU.
struct MsrView<'a, V: Vcpu>(&'a mut V);

impl<V: Vcpu> MsrGuest for MsrView<'_, V> {
    fn tsc(&self) -> u64 {
        crate::arch::tsc::rdtsc().wrapping_add(self.0.tsc_offset())
    }
    fn set_tsc(&mut self, value: u64) {
        self.0
            .set_tsc_offset(value.wrapping_sub(crate::arch::tsc::rdtsc()));
    }
    fn pat(&self) -> u64 {
        self.0.pat()
    }
    fn set_pat(&mut self, value: u64) {
        self.0.set_pat(value)
    }
    fn efer(&self) -> u64 {
        self.0.control_state().efer
    }
    fn set_efer(&mut self, value: u64) {
        self.0.set_efer(value)
    }
    fn debugctl(&self) -> u64 {
        self.0.debugctl()
    }
    fn set_debugctl(&mut self, value: u64) {
        self.0.set_debugctl(value)
    }
    fn control_state(&self) -> ControlState {
        self.0.control_state()
    }
}

/// Handles one exit of `vm`, whose vCPU is loaded.
pub fn handle<V: Vcpu>(vm: &mut Vm<V>, exit: Exit) -> Outcome {
    let vcpu = &mut vm.vcpu;
    match exit {
        Exit::Cpuid => {
            cpuid(vcpu, vm.cpuid_timing);
            Outcome::Continue
        }
        Exit::Io(access) => requested(port_io::handle(vm, access)),
        Exit::StringIo(access, string) => requested(port_io::handle_string(vm, access, string)),
        Exit::Rdmsr => {
            rdmsr(vm);
            Outcome::Continue
        }
        Exit::Wrmsr => {
            wrmsr(vm);
            Outcome::Continue
        }
        Exit::Hypercall => hypercall(vm),
        Exit::Xsetbv => {
            xsetbv(vcpu);
            Outcome::Continue
        }
        Exit::ControlRegister(access) => control_register(vm, access),
        Exit::Hlt => hlt(vcpu),
        Exit::Exception { vector, .. } => exception(vm, vector),
        Exit::SliceEnd => Outcome::Timer,
        // The vCPU can take the pending interrupt now: stop asking, and let
        // the core inject it before the next entry.
        Exit::InterruptWindow => {
            vcpu.request_interrupt_window(false);
            vm.platform.notice();
            Outcome::Continue
        }
        // Likewise for a pending NMI: the guest's handler returned.
        Exit::NmiWindow => {
            vcpu.request_nmi_window(false);
            vm.platform.notice();
            Outcome::Continue
        }
        // Guest RAM is ordinary write-back memory with no device behind it:
        // there is nothing to write back or discard.
        Exit::CacheInvalidation => {
            vcpu.skip_instruction();
            Outcome::Continue
        }
        // No performance counters are offered (CPUID leaf 0xA is 0).
        Exit::Rdpmc => {
            deliver(vcpu, Fault::GP0);
            Outcome::Continue
        }
        // tessera does not nest, and offers nothing else that exits.
        Exit::VirtualizationInstruction | Exit::Unsupported { .. } => {
            deliver(vcpu, Fault::InvalidOpcode);
            Outcome::Continue
        }
        // tessera masks every interrupt source and sends no IPIs; a stray
        // one is not the guest's doing.
        Exit::Sipi | Exit::ExternalInterrupt | Exit::Nmi => Outcome::Continue,
        Exit::Init => stop(String::from("received an INIT signal")),
        Exit::TripleFault => triple_fault(vm),
        Exit::UnmappedMemory { address, access } => {
            match super::mmio::handle(vm, address, access) {
                Some(outcome) => outcome,
                None => unmapped(vm, address, access),
            }
        }
        Exit::PageTableMisconfiguration { address } => {
            log::error!(
                "vm {}: {} at {:#x}: a tessera bug",
                vm.name,
                V::PAGE_TABLE_MISCONFIGURATION,
                address
            );
            stop(format!(
                "{} at guest-physical {:#x}",
                V::PAGE_TABLE_MISCONFIGURATION,
                address
            ))
        }
        // `run_slice` reports a failed entry before it gets here.
        Exit::EntryFailed { code } => stop(format!(
            "VM entry failed (error {}: {})",
            code,
            vcpu.entry_error(code)
        )),
        Exit::InvalidGuestState { detail } => stop(format!(
            "VM entry failed: invalid guest state (exit qualification {}), RIP {:#x}",
            detail,
            vcpu.rip()
        )),
    }
}

/// What a device asked of the VM, as the scheduler's outcome.
#[inline(always)]
fn requested(request: Option<VmRequest>) -> Outcome {
    match request {
        None => Outcome::Continue,
        Some(VmRequest::Reset) => Outcome::Stop(StopReason::Reset),
        Some(VmRequest::PowerOff) => Outcome::Stop(StopReason::PoweredOff),
        Some(VmRequest::Exit(code)) => Outcome::Stop(StopReason::Exited(code as i64)),
    }
}

/// A triple fault ends the VM; the report gives its state and the
/// instruction bytes at RIP. Cold and out of line, like every rare exit
/// here, so that the common exits' dispatch stays small.
#[cold]
#[inline(never)]
fn triple_fault<V: Vcpu>(vm: &mut Vm<V>) -> Outcome {
    let (bytes, length) = super::mmio::fetch(vm);
    log::error!(
        "vm {}: triple fault: {}; instruction bytes {:02x?}",
        vm.name,
        vm.vcpu.describe(),
        &bytes[..length]
    );
    stop(format!("triple fault at RIP {:#x}", vm.vcpu.rip()))
}

/// An access to guest-physical memory that is neither RAM nor a device.
#[cold]
#[inline(never)]
fn unmapped<V: Vcpu>(vm: &mut Vm<V>, address: u64, access: super::exit::MemoryAccess) -> Outcome {
    let vcpu = &vm.vcpu;
    stop(format!(
        "{}: {} of guest-physical {:#x}{} outside its {} of RAM, at RIP {:#x}",
        V::UNMAPPED_MEMORY_EXIT,
        access.as_str(),
        address,
        vcpu.fault_linear_address()
            .map_or(String::new(), |linear| format!(" (linear {:#x})", linear)),
        Bytes(vm.ram.size()),
        vcpu.rip()
    ))
}

fn stop(reason: String) -> Outcome {
    Outcome::Stop(StopReason::Fault(reason))
}

/// HLT: with interrupts off nothing can wake the vCPU, so the VM is done;
/// with them on it sleeps until an interrupt.
fn hlt<V: Vcpu>(vcpu: &mut V) -> Outcome {
    vcpu.skip_instruction();
    if vcpu.rflags() & rflags::IF == 0 {
        Outcome::Stop(StopReason::Halted)
    } else {
        Outcome::Sleep
    }
}

/// VM time now, for devices.
fn now_ns<V: Vcpu>(vm: &Vm<V>) -> u64 {
    vm.clock.ns_at(crate::arch::tsc::rdtsc())
}

fn rdmsr<V: Vcpu>(vm: &mut Vm<V>) {
    let index = vm.vcpu.registers().rcx as u32;
    // The APIC's MSRs are the local APIC's registers (SDM Vol. 3A, 12.4.4,
    // 12.12); the rest follow the MSR policy.
    let now = now_ns(vm);
    let result = match vm.platform.read_apic_msr(index, now) {
        Some(result) => result.map_err(|error| error.fault()),
        None => msr::read(&vm.msrs, &MsrView(&mut vm.vcpu), index),
    };
    match result {
        Ok(value) => {
            let registers = vm.vcpu.registers();
            registers.rax = value & 0xffff_ffff;
            registers.rdx = value >> 32;
            vm.vcpu.skip_instruction();
        }
        Err(fault) => deliver(&mut vm.vcpu, fault),
    }
}

fn wrmsr<V: Vcpu>(vm: &mut Vm<V>) {
    let registers = vm.vcpu.registers();
    let index = registers.rcx as u32;
    let value = (registers.rdx << 32) | (registers.rax & 0xffff_ffff);
    let now = now_ns(vm);
    let result = match vm
        .platform
        .write_apic_msr(index, value, now, &mut vm.console)
    {
        Some(result) => result.map_err(|error| error.fault()),
        None => msr::write(&mut vm.msrs, &mut MsrView(&mut vm.vcpu), index, value).inspect(|()| {
            if index == IA32_TIME_STAMP_COUNTER {
                vm.platform.guest_tsc_written(value, now);
            }
        }),
    };
    match result {
        Ok(()) => vm.vcpu.skip_instruction(),
        Err(fault) => deliver(&mut vm.vcpu, fault),
    }
}

/// VMCALL (VMMCALL on AMD): only the guest kernel may call the hypervisor.
fn hypercall<V: Vcpu>(vm: &mut Vm<V>) -> Outcome {
    if vm.vcpu.cpl() != 0 {
        deliver(&mut vm.vcpu, Fault::InvalidOpcode);
        return Outcome::Continue;
    }
    let outcome = hypercall_handler::dispatch(vm);
    vm.vcpu.skip_instruction();
    outcome
}

/// An intercepted #AC or #DB, which the backend reflected to the guest; a
/// delivery that keeps raising it ends the VM (see `delivery_loop`).
fn exception<V: Vcpu>(vm: &mut Vm<V>, vector: u8) -> Outcome {
    let rip = vm.vcpu.rip();
    let rsp = vm.vcpu.gpr(crate::arch::registers::RSP_NUMBER);
    let exit = vm.vcpu.exit_count();
    if vm.exception_streak.observe(vector, rip, rsp, exit) < delivery_loop::LIMIT {
        return Outcome::Continue;
    }
    let name = match vector {
        1 => "#DB",
        17 => "#AC",
        _ => "an exception",
    };
    stop(format!(
        "delivery loop of {} at RIP {:#x} ({} exits in a row)",
        name,
        rip,
        delivery_loop::LIMIT
    ))
}

/// CPUID: the host's answer through the guest-view policy.
#[inline(never)]
fn cpuid<V: Vcpu>(vcpu: &mut V, timing: &TimingLeaves) {
    let registers = vcpu.registers();
    let (leaf, subleaf) = (registers.rax as u32, registers.rcx as u32);
    let host = raw_cpuid::cpuid!(leaf, subleaf);
    // Only leaf 1 reports OSXSAVE; spare the other leaves the CR4 read.
    let osxsave = leaf == 1 && vcpu.control_state().cr4 & cr4::OSXSAVE != 0;
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
        timing,
    );
    let registers = vcpu.registers();
    registers.rax = view.eax as u64;
    registers.rbx = view.ebx as u64;
    registers.rcx = view.ecx as u64;
    registers.rdx = view.edx as u64;
    vcpu.skip_instruction();
}

/// XSETBV, after every architectural check (SDM Vol. 1, 13.3), so that
/// tessera's own XSETBV of the value can never fault.
fn xsetbv<V: Vcpu>(vcpu: &mut V) {
    let registers = vcpu.registers();
    let value = (registers.rdx << 32) | (registers.rax & 0xffff_ffff);
    let index = registers.rcx as u32;
    let state = vcpu.control_state();
    match validate_xsetbv(
        index,
        value,
        vcpu.supported_xcr0(),
        state.cpl,
        state.cr4 & cr4::OSXSAVE != 0,
    ) {
        Ok(()) => {
            vcpu.set_xcr0(value);
            vcpu.skip_instruction();
        }
        Err(fault) => deliver(vcpu, fault),
    }
}

/// Reads the four PAE PDPTEs that CR3 points at and checks them (SDM Vol.
/// 3A, 4.4.1): an entry outside guest RAM or with reserved bits set makes
/// the MOV fault.
fn read_pdptes<V: Vcpu>(vm: &Vm<V>, cr3: u64) -> Result<[u64; 4], Fault> {
    let table = cr::pdpt_address(cr3);
    let phys_bits = crate::arch::cpu::physical_address_bits();
    let mut pdptes = [0u64; 4];
    for (index, entry) in pdptes.iter_mut().enumerate() {
        let address = table + index as u64 * 8;
        if crate::vmm::hypercall::guest_range(address, 8, vm.ram.size()).is_none() {
            return Err(Fault::GP0);
        }
        *entry = u64::from_le_bytes(vm.ram.read_array(address));
        if !cr::pdpte_valid(*entry, phys_bits) {
            return Err(Fault::GP0);
        }
    }
    Ok(pdptes)
}

/// MOV to CR0/CR3/CR4, CLTS and LMSW that exit (they touch bits tessera
/// owns), decided by `rules::control_registers`.
#[inline(never)]
fn control_register<V: Vcpu>(vm: &mut Vm<V>, access: ControlRegisterAccess) -> Outcome {
    // An undecoded write is decoded here, and skipped by the length the
    // decoder found.
    let (access, length) = match access {
        ControlRegisterAccess::Undecoded { register } => {
            match super::mmio::decode_control_register_write(vm) {
                Ok(decoded) => decoded,
                Err(error) => {
                    return stop(format!(
                        "write to CR{} at RIP {:#x}: {}",
                        register,
                        vm.vcpu.rip(),
                        error
                    ))
                }
            }
        }
        access => (access, None),
    };
    let state = vm.vcpu.control_state();
    let result = match access {
        ControlRegisterAccess::Write { register, gpr } => {
            let value = vm.vcpu.gpr(gpr);
            write_control_register(vm, &state, register, value)
        }
        ControlRegisterAccess::Clts => write_control_register(vm, &state, 0, cr::clts(state.cr0)),
        ControlRegisterAccess::Lmsw(source) => {
            write_control_register(vm, &state, 0, cr::lmsw(state.cr0, source))
        }
        // Decoded above.
        ControlRegisterAccess::Undecoded { .. } => Ok(()),
        ControlRegisterAccess::Read { register, gpr } => {
            // CR3 and CR8 reads exit only when the CPU forces those exiting
            // controls on.
            let value = if register == 3 {
                state.cr3
            } else {
                vm.vcpu.cr8()
            };
            vm.vcpu.set_gpr(gpr, value);
            Ok(())
        }
    };
    match (result, length) {
        (Ok(()), None) => vm.vcpu.skip_instruction(),
        (Ok(()), Some(length)) => vm.vcpu.skip_emulated(u64::from(length)),
        (Err(fault), _) => deliver(&mut vm.vcpu, fault),
    }
    Outcome::Continue
}

fn write_control_register<V: Vcpu>(
    vm: &mut Vm<V>,
    state: &ControlState,
    register: u8,
    value: u64,
) -> Result<(), Fault> {
    // Each rule says what the write sets in motion: the PDPTEs to load (from
    // the CR3 in force after the write) and whether to flush the TLB.
    let (value, load_pdptes, flush_tlb, pdpt_cr3) = match register {
        0 => {
            let write = cr::write_cr0(state, value)?;
            (write.value, write.load_pdptes, write.flush_tlb, state.cr3)
        }
        3 => {
            let write = cr::write_cr3(state, value, crate::arch::cpu::physical_address_bits())?;
            (write.value, write.load_pdptes, write.flush_tlb, write.value)
        }
        4 => {
            let write = cr::write_cr4(state, value, vm.vcpu.supported_cr4())?;
            (write.value, write.load_pdptes, write.flush_tlb, state.cr3)
        }
        8 => {
            let tpr = cr::write_cr8(value)?;
            vm.vcpu.set_cr8(tpr);
            return Ok(());
        }
        _ => return Ok(()),
    };
    // The PDPTEs are checked before anything changes: a bad one makes the
    // whole MOV fault (SDM Vol. 3A, 5.4.1).
    if load_pdptes {
        let pdptes = read_pdptes(vm, pdpt_cr3)?;
        vm.vcpu.set_pdptes(pdptes);
    }
    match register {
        0 => vm.vcpu.set_cr0(value),
        3 => vm.vcpu.set_cr3(value),
        _ => vm.vcpu.set_cr4(value),
    }
    if flush_tlb {
        vm.vcpu.flush_tlb();
    }
    Ok(())
}
