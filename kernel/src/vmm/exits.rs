//! What each VM exit does to the VM. The backend decodes; this decides.

use super::vm::{StopReason, Vm};
use super::{hypercalls, io, msr};
use crate::vmx::capabilities::{entry_controls, Capabilities};
use crate::vmx::exit::{skip_instruction, ControlRegisterAccess, VmExit};
use crate::vmx::vcpu::{real_cr0, real_cr4};
use crate::vmx::vmcs::{control, guest};
use alloc::format;
use tessera_kernel::rules::cpuid::{guest_view, CpuidResult};

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
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_VMXE: u64 = 1 << 13;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_SMXE: u64 = 1 << 14;
/// CR0's defined bits: PE MP EM TS ET NE WP AM NW CD PG.
const CR0_DEFINED: u64 = 0x3f | (1 << 16) | (1 << 18) | (7 << 29);
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Queues a hardware exception for the next entry (SDM Vol. 3C, 27.6.1.1).
/// Real-mode guests get no error code: delivering one with CR0.PE = 0 is a
/// VM-entry failure (26.2.1.3).
pub fn inject_exception(vector: u8, error_code: Option<u32>) {
    let protected = control::CR0_SHADOW.read() & CR0_PE != 0;
    let mut info = vector as u32 | (3 << 8) | (1 << 31);
    if let (Some(code), true) = (error_code, protected) {
        info |= 1 << 11;
        control::ENTRY_EXCEPTION_ERROR_CODE.write(code);
    }
    control::ENTRY_INTERRUPTION_INFO.write(info);
}

/// CR0 as the guest sees it: its own bits from the guest field, the bits
/// tessera owns from the read shadow (SDM Vol. 3C, 26.6.6).
pub fn visible_cr0() -> u64 {
    let mask = control::CR0_MASK.read();
    (guest::CR0.read() & !mask) | (control::CR0_SHADOW.read() & mask)
}

/// CR4 as the guest sees it.
pub fn visible_cr4() -> u64 {
    let mask = control::CR4_MASK.read();
    (guest::CR4.read() & !mask) | (control::CR4_SHADOW.read() & mask)
}

/// The guest's current privilege level: SS.DPL (SDM Vol. 3A, 5.5).
pub fn guest_cpl() -> u8 {
    ((guest::SS.access.read() >> 5) & 3) as u8
}

/// Handles one exit of `vm`, whose VMCS is current.
pub fn handle(vm: &mut Vm, exit: VmExit, capabilities: &Capabilities) -> Outcome {
    match exit {
        VmExit::Cpuid => {
            let registers = &mut vm.vcpu.registers;
            let (leaf, subleaf) = (registers.rax as u32, registers.rcx as u32);
            let host = raw_cpuid::cpuid!(leaf, subleaf);
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
                // Only leaf 1 reports OSXSAVE; spare the VMREADs otherwise.
                leaf == 1 && visible_cr4() & CR4_OSXSAVE != 0,
            );
            registers.rax = view.eax as u64;
            registers.rbx = view.ebx as u64;
            registers.rcx = view.ecx as u64;
            registers.rdx = view.edx as u64;
            skip_instruction();
            Outcome::Continue
        }
        VmExit::Hlt => {
            skip_instruction();
            if guest::RFLAGS.read() & RFLAGS_IF == 0 {
                Outcome::Stop(StopReason::Halted)
            } else {
                Outcome::Sleep
            }
        }
        VmExit::Io(access) if access.string => match io::handle_string(vm, access) {
            Ok(()) => Outcome::Continue,
            Err(io::StringIoError::UnsupportedPaging) => Outcome::Stop(StopReason::Fault(format!(
                "string I/O on port {:#x} under 32-bit or PAE paging, which tessera does not walk (RIP {:#x})",
                access.port,
                guest::RIP.read()
            ))),
        },
        VmExit::Io(access) => {
            io::handle(vm, access);
            skip_instruction();
            Outcome::Continue
        }
        VmExit::Rdmsr => {
            let index = vm.vcpu.registers.rcx as u32;
            match msr::read(&vm.msrs, index) {
                Some(value) => {
                    vm.vcpu.registers.rax = value & 0xffff_ffff;
                    vm.vcpu.registers.rdx = value >> 32;
                    skip_instruction();
                }
                None => {
                    log::debug!("vm {}: RDMSR {:#x} -> #GP", vm.name, index);
                    inject_exception(VECTOR_GP, Some(0));
                }
            }
            Outcome::Continue
        }
        VmExit::Wrmsr => {
            let registers = &vm.vcpu.registers;
            let index = registers.rcx as u32;
            let value = (registers.rdx << 32) | (registers.rax & 0xffff_ffff);
            if msr::write(&mut vm.msrs, index, value) {
                skip_instruction();
            } else {
                log::debug!("vm {}: WRMSR {:#x} = {:#x} -> #GP", vm.name, index, value);
                inject_exception(VECTOR_GP, Some(0));
            }
            Outcome::Continue
        }
        VmExit::Vmcall => {
            if guest_cpl() != 0 {
                // Only the guest kernel may call the hypervisor.
                inject_exception(VECTOR_UD, None);
                return Outcome::Continue;
            }
            let outcome = hypercalls::dispatch(vm);
            skip_instruction();
            outcome
        }
        VmExit::EptViolation {
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
            tessera_kernel::size::Bytes(vm.ram.size()),
            guest::RIP.read()
        ))),
        VmExit::EptMisconfiguration { address } => {
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
        VmExit::TripleFault => Outcome::Stop(StopReason::Fault(format!(
            "triple fault at RIP {:#x}",
            guest::RIP.read()
        ))),
        VmExit::VmxInstruction => {
            inject_exception(VECTOR_UD, None);
            Outcome::Continue
        }
        VmExit::Xsetbv => {
            handle_xsetbv(vm);
            Outcome::Continue
        }
        VmExit::ControlRegister(access) => {
            handle_control_register(vm, access, capabilities);
            Outcome::Continue
        }
        VmExit::Init => Outcome::Stop(StopReason::Fault("received an INIT signal".into())),
        VmExit::Sipi => Outcome::Continue,
        VmExit::ExternalInterrupt { vector } => {
            // tessera masks every interrupt source at boot; one arriving is
            // worth a line, not a stop.
            log::debug!(
                "vm {}: external interrupt {:#x} while running",
                vm.name,
                vector
            );
            Outcome::Continue
        }
        VmExit::ExceptionOrNmi { vector, nmi } => {
            log::debug!(
                "vm {}: exception/NMI exit, vector {} (nmi {})",
                vm.name,
                vector,
                nmi
            );
            Outcome::Continue
        }
        VmExit::PreemptionTimer => Outcome::EndSlice,
        VmExit::CacheInvalidation => {
            skip_instruction();
            Outcome::Continue
        }
        VmExit::Rdpmc => {
            inject_exception(VECTOR_GP, Some(0));
            Outcome::Continue
        }
        VmExit::InvalidGuestState { qualification } => Outcome::Stop(StopReason::Fault(format!(
            "VM entry failed: invalid guest state (exit qualification {}), RIP {:#x}",
            qualification,
            guest::RIP.read()
        ))),
        VmExit::Unsupported { reason } => {
            log::debug!(
                "vm {}: {} exit -> #UD",
                vm.name,
                tessera_kernel::exit_reason::name(reason)
            );
            inject_exception(VECTOR_UD, None);
            Outcome::Continue
        }
    }
}

/// XSETBV: only XCR0, only supported bits, and only the combinations the
/// SDM allows (Vol. 1, 13.3): x87 always, AVX needs SSE, AVX-512's three
/// components together and with AVX, MPX's two together.
fn handle_xsetbv(vm: &mut Vm) {
    let registers = &vm.vcpu.registers;
    let value = (registers.rdx << 32) | (registers.rax & 0xffff_ffff);
    let valid = registers.rcx as u32 == 0
        && guest_cpl() == 0
        && value & !crate::vmx::vcpu::supported_xcr0() == 0
        && value & 1 != 0
        && (value & 4 == 0 || value & 2 != 0)
        && (value & 0xe0 == 0 || (value & 0xe0 == 0xe0 && value & 6 == 6))
        && (value & 0x18 == 0 || value & 0x18 == 0x18);
    if !valid {
        inject_exception(VECTOR_GP, Some(0));
        return;
    }
    vm.vcpu.xcr0 = value;
    // SAFETY: the value passed every architectural check above, so XSETBV
    // cannot fault; XCR0 is this VM's while it runs.
    unsafe { x86::controlregs::xcr0_write(x86::controlregs::Xcr0::from_bits_truncate(value)) };
    skip_instruction();
}

fn gpr(vm: &mut Vm, index: u8) -> &mut u64 {
    let r = &mut vm.vcpu.registers;
    match index {
        0 => &mut r.rax,
        1 => &mut r.rcx,
        2 => &mut r.rdx,
        3 => &mut r.rbx,
        // RSP lives in the VMCS; handled by the caller.
        5 => &mut r.rbp,
        6 => &mut r.rsi,
        7 => &mut r.rdi,
        8 => &mut r.r8,
        9 => &mut r.r9,
        10 => &mut r.r10,
        11 => &mut r.r11,
        12 => &mut r.r12,
        13 => &mut r.r13,
        14 => &mut r.r14,
        _ => &mut r.r15,
    }
}

fn read_gpr(vm: &mut Vm, index: u8) -> u64 {
    if index == 4 {
        guest::RSP.read()
    } else {
        *gpr(vm, index)
    }
}

/// MOV to CR0/CR4 and LMSW that touch bits tessera owns (the fixed bits in
/// the guest/host masks). The guest's view goes to the read shadow, the
/// value the CPU needs to the guest field.
fn handle_control_register(
    vm: &mut Vm,
    access: ControlRegisterAccess,
    capabilities: &Capabilities,
) {
    let value = match access.kind {
        0 => read_gpr(vm, access.gpr),
        // LMSW changes only PE, MP, EM, TS and cannot clear PE.
        3 => {
            let old = visible_cr0();
            let source = access.lmsw_source as u64 & 0xf;
            (old & !0xe) | source | (old & CR0_PE)
        }
        _ => {
            // MOV from CR and CLTS do not exit with tessera's controls.
            log::debug!(
                "vm {}: unexpected control-register exit {:?}",
                vm.name,
                access
            );
            skip_instruction();
            return;
        }
    };
    match access.register {
        0 => {
            let efer = guest::EFER.read();
            // SDM Vol. 3A, 2.5: setting reserved bits 31:0 is ignored, bits
            // 63:32 fault, as do PG without PE and NW without CD.
            let value = value & (CR0_DEFINED | 0xffff_ffff_0000_0000);
            let invalid = value >> 32 != 0
                || (value & CR0_PG != 0 && value & CR0_PE == 0)
                || (value & CR0_NW != 0 && value & CR0_CD == 0)
                || (value & CR0_PG != 0 && efer & EFER_LME != 0 && visible_cr4() & CR4_PAE == 0);
            if invalid {
                inject_exception(VECTOR_GP, Some(0));
                return;
            }
            // Entering or leaving IA-32e mode (SDM Vol. 3A, 10.8.5).
            let long = value & CR0_PG != 0 && efer & EFER_LME != 0;
            let entry = control::ENTRY.read();
            if long {
                guest::EFER.write(efer | EFER_LMA);
                control::ENTRY.write(entry | entry_controls::IA32E_MODE_GUEST);
            } else {
                guest::EFER.write(efer & !EFER_LMA);
                control::ENTRY.write(entry & !entry_controls::IA32E_MODE_GUEST);
            }
            control::CR0_SHADOW.write(value);
            guest::CR0.write(real_cr0(capabilities, value));
        }
        4 => {
            // Bits the CPU cannot hold (outside IA32_VMX_CR4_FIXED1), VMXE
            // (tessera does not nest) and SMXE (SMX is not offered) fault.
            let allowed = capabilities.cr4_fixed1 & 0xffff_ffff & !(CR4_VMXE | CR4_SMXE);
            if value & !allowed != 0 {
                inject_exception(VECTOR_GP, Some(0));
                return;
            }
            control::CR4_SHADOW.write(value);
            guest::CR4.write(real_cr4(capabilities, value));
        }
        _ => {}
    }
    skip_instruction();
}
