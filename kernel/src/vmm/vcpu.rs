//! The seam between the vendor-neutral core and a virtualization backend
//! (Intel VMX today, AMD SVM next): what the core may ask of a virtual CPU.
//!
//! The core never names a VMCS or VMCB field. It runs a vCPU until it exits,
//! gets a decoded [`Exit`], reads and changes the guest's registers *as the
//! guest sees them*, and queues events. Dispatch is static — the core is
//! generic over [`Vcpu`] — so the hot path costs no indirect calls.

use super::exit::Exit;
use crate::arch::registers::GeneralRegisters;
use crate::options::CpuMode;

/// How a vCPU starts: the loader's answer for its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartState {
    /// Processor mode.
    pub mode: CpuMode,
    /// RIP (an offset from CS base in real mode).
    pub rip: u64,
    /// Real-mode CS selector.
    pub real_mode_cs: u16,
    /// RSP.
    pub rsp: u64,
    /// CR3 for long mode.
    pub cr3: u64,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// EAX at entry (the Multiboot magic; 0 for other formats). 32 bits,
    /// as the magic is, so that the `Vm` holding this stays within 2 KiB.
    pub rax: u32,
    /// RBX at entry (the Multiboot information address; 0 otherwise).
    pub rbx: u64,
    /// RSI at entry (the Linux zero page's address, in the first MiB; 0
    /// otherwise). 32 bits for the same reason as `rax`.
    pub rsi: u32,
    /// Added to the host's TSC to give the guest's: minus the host TSC at
    /// the VM's start, so the guest's TSC counts from 0 with the VM's clock
    /// (the local APIC's TSC-deadline timer compares against that TSC).
    pub tsc_offset: u64,
}

pub use crate::rules::control_registers::ControlState;
pub use crate::rules::io::{SegmentRegister, SegmentState};

/// Why a VM entry failed: the backend's words for it, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFailure {
    /// Backend-specific error number (the VM-instruction error on VMX).
    pub code: u32,
    /// What it means.
    pub meaning: &'static str,
}

/// One virtual CPU, as the core sees it.
///
/// Every method acts on this vCPU only. The backend keeps whatever the
/// hardware needs (fixed CR0/CR4 bits, owned bits and their shadows, the
/// IA-32e entry control, PDPTEs) consistent with the guest-visible values
/// the core sets.
pub trait Vcpu {
    /// What the backend calls a guest-physical access its nested page
    /// tables do not map ("EPT violation", "nested page fault"), for
    /// reports in the hardware's own words.
    const UNMAPPED_MEMORY_EXIT: &'static str;
    /// What it calls malformed nested page tables.
    const PAGE_TABLE_MISCONFIGURATION: &'static str;

    /// Runs the guest until its next exit. The slice deadline (see
    /// [`Vcpu::set_slice_deadline`]) bounds how long it may run; a failed
    /// entry is [`Exit::EntryFailed`].
    fn run(&mut self) -> Exit;
    /// What a failed entry's error number means (cold path).
    fn entry_error(&self, code: u32) -> &'static str;
    /// The guest linear address of the last [`Exit::UnmappedMemory`], when
    /// the hardware reported one (cold path).
    fn fault_linear_address(&self) -> Option<u64>;

    /// The general-purpose registers except RSP.
    fn registers(&mut self) -> &mut GeneralRegisters;
    /// The register numbered as instructions encode it, RSP included.
    fn gpr(&mut self, number: u8) -> u64;
    /// Sets the register numbered as instructions encode it, RSP included.
    fn set_gpr(&mut self, number: u8, value: u64);
    /// RIP.
    fn rip(&self) -> u64;
    /// RFLAGS.
    fn rflags(&self) -> u64;
    /// Sets RFLAGS.
    fn set_rflags(&mut self, value: u64);
    /// Moves RIP past the instruction that exited and ends any STI/MOV-SS
    /// interrupt shadow, as completing it would (SDM Vol. 3C, 26.4.2).
    fn skip_instruction(&mut self);
    /// Moves RIP past an instruction of `length` bytes that the core
    /// emulated after decoding it itself (an MMIO access), ending any
    /// interrupt shadow like [`Vcpu::skip_instruction`].
    fn skip_emulated(&mut self, length: u64);

    /// The control registers and EFER as the guest sees them.
    fn control_state(&self) -> ControlState;
    /// The current privilege level (cheaper than the whole control state).
    fn cpl(&self) -> u8;
    /// Sets the guest's CR0; the backend derives what the CPU runs with,
    /// IA-32e mode (EFER.LMA) and, under PAE paging, the PDPTEs.
    fn set_cr0(&mut self, value: u64);
    /// Sets the guest's CR3.
    fn set_cr3(&mut self, value: u64);
    /// Sets the guest's CR4.
    fn set_cr4(&mut self, value: u64);
    /// Gives the CPU the four PAE PDPTEs the core read from guest memory
    /// for a MOV to CR0/CR3/CR4 that exited under PAE paging.
    fn set_pdptes(&mut self, pdptes: [u64; 4]);
    /// The PAE PDPTEs the guest runs with.
    fn pdptes(&self) -> [u64; 4];
    /// Drops this guest's cached translations: an intercepted MOV to a
    /// control register did not execute, so its flush did not happen.
    fn flush_tlb(&mut self);
    /// CR8, the task-priority register.
    fn cr8(&self) -> u64;
    /// Sets CR8.
    fn set_cr8(&mut self, value: u8);
    /// Sets the guest's EFER (LMA is the backend's to keep consistent).
    fn set_efer(&mut self, value: u64);
    /// The CR4 bits a guest may set on this CPU: what the hardware allows
    /// minus what tessera does not offer (VMXE, SMXE).
    fn supported_cr4(&self) -> u64;
    /// The XCR0 bits this CPU supports.
    fn supported_xcr0(&self) -> u64;
    /// A segment register's hidden part.
    fn segment(&self, register: SegmentRegister) -> SegmentState;

    /// IA32_PAT.
    fn pat(&self) -> u64;
    /// Sets IA32_PAT.
    fn set_pat(&mut self, value: u64);
    /// IA32_DEBUGCTL.
    fn debugctl(&self) -> u64;
    /// Sets IA32_DEBUGCTL.
    fn set_debugctl(&mut self, value: u64);
    /// The guest's TSC offset (guest TSC = host TSC + offset).
    fn tsc_offset(&self) -> u64;
    /// Sets the TSC offset.
    fn set_tsc_offset(&mut self, offset: u64);
    /// XCR0 as the guest set it.
    fn xcr0(&self) -> u64;
    /// Sets XCR0; the value must have passed the XSETBV rules.
    fn set_xcr0(&mut self, value: u64);
    /// Sets the guest's CR2 (for a page fault tessera delivers).
    fn set_cr2(&mut self, value: u64);

    /// Queues a hardware exception for the next entry. Whether an error code
    /// is delivered follows the guest's real CR0.PE, not any shadow.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
    /// Queues an external interrupt with `vector` for the next entry; the
    /// caller checked [`Vcpu::interruptible`].
    fn inject_interrupt(&mut self, vector: u8);
    /// Whether an event is queued for the next entry.
    fn event_pending(&self) -> bool;
    /// Whether the guest can take an external interrupt now: RFLAGS.IF set
    /// and no STI or MOV-SS interrupt shadow.
    fn interruptible(&self) -> bool;
    /// Asks for an [`Exit::InterruptWindow`] as soon as the guest becomes
    /// interruptible (`true`), or stops asking (`false`). Returns `false`
    /// when the hardware cannot do it.
    fn request_interrupt_window(&mut self, on: bool) -> bool;
    /// Queues an NMI for the next entry; the caller checked
    /// [`Vcpu::nmi_allowed`].
    fn inject_nmi(&mut self);
    /// Whether the guest can take an NMI now: not inside its NMI handler
    /// (NMI blocking, until its IRET) and no STI or MOV-SS shadow.
    fn nmi_allowed(&self) -> bool;
    /// Asks for an [`Exit::NmiWindow`] as soon as the guest can take an
    /// NMI (`true`), or stops asking (`false`). Returns `false` when the
    /// hardware cannot do it.
    fn request_nmi_window(&mut self, on: bool) -> bool;

    /// The TSC value at which the current slice ends: the backend stops the
    /// guest by then (VMX-preemption timer, or a host timer on SVM).
    fn set_slice_deadline(&mut self, tsc: u64);

    /// Puts the vCPU back to its power-on state for `start`, with no event
    /// pending, no extended state and no stale exit information.
    fn reset(&mut self, start: &StartState);
    /// Makes this vCPU the one loaded on this CPU and loads the guest state
    /// that the hardware does not switch.
    fn load(&mut self) -> Result<(), EntryFailure>;
    /// Saves the guest state that the hardware does not switch; another vCPU
    /// is about to be loaded.
    fn unload(&mut self);

    /// A one-line description of the guest state, for the report of a
    /// failed entry (cold path).
    fn describe(&self) -> alloc::string::String;
    /// This vCPU's exits by the backend's reason names, most frequent first.
    fn exit_statistics(&self) -> alloc::vec::Vec<(&'static str, u64)>;
    /// How many exits this vCPU has had.
    fn exit_count(&self) -> u64;
}
