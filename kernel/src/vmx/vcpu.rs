//! One virtual CPU on VMX: its VMCS, its register file and the guest state
//! that VMX does not switch by itself — the implementation of the core's
//! [`Vcpu`] seam for Intel.
//!
//! The VMCS switches the control registers, segment state, RSP/RIP/RFLAGS,
//! DR7 and IA32_DEBUGCTL ("load/save debug controls"), EFER, PAT and the
//! SYSENTER MSRs. Everything else a guest can see — the general registers,
//! CR2, CR8 (the TPR), DR0-3/DR6, the SYSCALL MSRs, KERNEL_GS_BASE, XCR0 and
//! the FPU/SSE/AVX state — tessera saves and restores itself when it switches
//! between VMs ([`Vcpu::unload`], [`Vcpu::load`]).
//!
//! CR0.CD and CR0.NW are owned by tessera (guest/host mask plus read
//! shadow): VM entry and exit never load them (SDM Vol. 3C, 28.3.2.1 and
//! 29.5.1), so a guest that set CD on the real CPU would leave the host and
//! every later VM running uncached. The guest reads back what it wrote; the
//! CPU always runs with both clear.

use super::capabilities::{entry_controls, Capabilities};
use super::entry::{self, EntryResult, GuestRegisters};
use super::exit_reason::ExitCounts;
use super::setup;
use super::vmcs::{control, exit, guest};
use crate::arch::registers::RSP_NUMBER;
use crate::arch::xstate::{self, XsaveArea};
use crate::mm::phys::PhysRange;
use crate::rules::bits::{cr0, cr4, efer, rflags};
use crate::vmm::exit::Exit;
use crate::vmm::guest_memory::OwnedFrames;
use crate::vmm::vcpu::{
    ControlState, EntryFailure, SegmentRegister, SegmentState, StartState, Vcpu,
};
use alloc::vec::Vec;
use x86::msr::{rdmsr, wrmsr};

/// DR6 after reset: the reserved bits read as ones (SDM Vol. 3B, 19.2.3).
const DR6_DEFAULT: u64 = 0xffff_0ff0;
const VECTOR_DB: u8 = 1;
const VECTOR_AC: u8 = 17;
/// Interruptibility state bit 3, blocking by NMI (SDM Vol. 3C, Table 26-3).
const NMI_BLOCKING: u32 = 1 << 3;

/// The SYSCALL-related MSRs that VMX leaves to software.
const SWITCHED_MSRS: [u32; 5] = [
    x86::msr::IA32_STAR,
    x86::msr::IA32_LSTAR,
    x86::msr::IA32_CSTAR,
    x86::msr::IA32_FMASK,
    x86::msr::IA32_KERNEL_GSBASE,
];

/// Where the VM's structures are.
#[derive(Debug, Clone, Copy)]
pub struct VmStructures {
    /// The EPT pointer.
    pub ept_pointer: u64,
    /// The VPID (0 when VPIDs are off).
    pub vpid: u16,
    /// I/O bitmaps A and B, two consecutive pages (shared by every VM).
    pub io_bitmaps: u64,
    /// The MSR bitmap page (shared by every VM).
    pub msr_bitmap: u64,
}

/// Why a vCPU could not be created.
#[derive(Debug, Clone, Copy)]
pub enum VcpuError {
    /// No memory for the VMCS or the XSAVE area.
    OutOfMemory,
    /// VMCLEAR or VMPTRLD failed.
    VmcsInstruction,
}

/// Guest state saved while another VM runs.
#[derive(Default)]
struct SwitchedState {
    cr2: u64,
    cr8: u64,
    /// DR0-DR3, DR6.
    debug: [u64; 5],
    msrs: [u64; SWITCHED_MSRS.len()],
}

/// One virtual CPU on VMX.
pub struct VmxVcpu {
    vmcs: PhysRange,
    launched: bool,
    registers: GuestRegisters,
    xcr0: u64,
    xsave: XsaveArea,
    switched: SwitchedState,
    /// The CPU's capabilities, shared by every vCPU (kept once, not per VM).
    capabilities: &'static Capabilities,
    slice_deadline: u64,
    event_pending: bool,
    exits: ExitCounts,
    /// The EPT's page-table frames, freed with the vCPU.
    _ept: OwnedFrames,
}

use crate::arch::xstate::xsetbv;
pub use crate::arch::xstate::{has_xsave, supported_xcr0};

/// Text for VM-instruction error numbers (SDM Vol. 3C, 32.4).
fn instruction_error_text(error: u32) -> &'static str {
    match error {
        0 => "VMfailInvalid: no current VMCS",
        5 => "VMLAUNCH of a VMCS already launched",
        7 => "invalid control fields",
        8 => "invalid host-state fields",
        9 => "VMRESUME of a VMCS that was never launched",
        26 => "VM entry with events blocked by MOV SS",
        _ => "see the SDM's table of VM-instruction errors",
    }
}

fn vmcs_segment(register: SegmentRegister) -> guest::Segment {
    match register {
        SegmentRegister::Es => guest::ES,
        SegmentRegister::Cs => guest::CS,
        SegmentRegister::Ss => guest::SS,
        SegmentRegister::Ds => guest::DS,
        SegmentRegister::Fs => guest::FS,
        SegmentRegister::Gs => guest::GS,
    }
}

impl VmxVcpu {
    /// A vCPU with a fresh VMCS, made current, programmed with host state,
    /// controls and the start state.
    pub fn new(
        capabilities: &'static Capabilities,
        structures: &VmStructures,
        start: &StartState,
        ept: OwnedFrames,
    ) -> Result<VmxVcpu, VcpuError> {
        let xsave = XsaveArea::new().ok_or(VcpuError::OutOfMemory)?;
        let vmcs = crate::mm::allocate_zeroed(4096, 4096).map_err(|_| VcpuError::OutOfMemory)?;
        // SAFETY: the page is fresh and identity-mapped; it becomes this
        // vCPU's VMCS, initialised by VMCLEAR (SDM Vol. 3C, 26.11.3).
        let cleared = unsafe {
            (vmcs.start as *mut u32).write(capabilities.revision);
            x86::bits64::vmx::vmclear(vmcs.start).is_ok()
        };
        if !cleared {
            crate::mm::free(vmcs);
            return Err(VcpuError::VmcsInstruction);
        }
        let mut vcpu = VmxVcpu {
            vmcs,
            launched: false,
            registers: GuestRegisters::default(),
            xcr0: 1,
            xsave,
            switched: SwitchedState::default(),
            capabilities,
            slice_deadline: 0,
            event_pending: false,
            exits: ExitCounts::default(),
            _ept: ept,
        };
        vcpu.make_current()?;
        setup::write_host_state();
        setup::write_controls(capabilities, structures);
        vcpu.reset(start);
        Ok(vcpu)
    }

    /// Makes this vCPU's VMCS the current one on this CPU.
    fn make_current(&self) -> Result<(), VcpuError> {
        // SAFETY: the VMCS region was initialised by VMCLEAR and stays
        // allocated for the vCPU's life.
        unsafe { x86::bits64::vmx::vmptrld(self.vmcs.start) }
            .map_err(|_| VcpuError::VmcsInstruction)
    }

    /// CR0 as the guest sees it: its own bits from the guest field, the bits
    /// tessera owns from the read shadow (SDM Vol. 3C, 26.6.6).
    fn visible_cr0(&self) -> u64 {
        let mask = control::CR0_MASK.read();
        (guest::CR0.read() & !mask) | (control::CR0_SHADOW.read() & mask)
    }

    /// CR4 as the guest sees it.
    fn visible_cr4(&self) -> u64 {
        let mask = control::CR4_MASK.read();
        (guest::CR4.read() & !mask) | (control::CR4_SHADOW.read() & mask)
    }

    /// The CR0 value the CPU runs with for a guest-visible `value`: the VMX
    /// fixed bits (PE and PG are free under unrestricted guest), and never
    /// CD or NW.
    fn real_cr0(&self, value: u64) -> u64 {
        setup::real_cr0(self.capabilities, value)
    }

    /// The CR4 value the CPU runs with for a guest-visible `value`.
    fn real_cr4(&self, value: u64) -> u64 {
        setup::real_cr4(self.capabilities, value)
    }

    /// Keeps EFER.LMA and the "IA-32e mode guest" entry control in step with
    /// CR0.PG and EFER.LME (SDM Vol. 3A, 10.8.5; Vol. 3C, 27.3.1.1).
    fn update_long_mode(&self) {
        let efer = guest::EFER.read();
        let long = guest::CR0.read() & cr0::PG != 0 && efer & efer::LME != 0;
        let entry = control::ENTRY.read();
        if long {
            guest::EFER.write(efer | efer::LMA);
            control::ENTRY.write(entry | entry_controls::IA32E_MODE_GUEST);
        } else {
            guest::EFER.write(efer & !efer::LMA);
            control::ENTRY.write(entry & !entry_controls::IA32E_MODE_GUEST);
        }
    }

    /// VM exit clears the valid bit of the entry interruption field (SDM
    /// Vol. 3C, 26.8.3), delivered or not. When the exit interrupted the
    /// delivery of the event tessera injected, the IDT-vectoring information
    /// holds it: inject it again, with its error code and, for software
    /// events, its instruction length, or it would be lost (SDM Vol. 3C,
    /// 29.2.4 and 28.6.1.1). Only after an injection: the guest's own events
    /// (an INT n whose delivery exits) are delivered again by the guest
    /// re-executing the instruction.
    fn reinject_undelivered(&mut self) {
        const VALID: u32 = 1 << 31;
        const ERROR_CODE_VALID: u32 = 1 << 11;
        let info = exit::IDT_VECTORING_INFO.read();
        if info & VALID == 0 {
            return;
        }
        if info & ERROR_CODE_VALID != 0 {
            control::ENTRY_EXCEPTION_ERROR_CODE.write(exit::IDT_VECTORING_ERROR_CODE.read());
        }
        // Types 4-6: software interrupt, privileged software exception,
        // software exception.
        if matches!((info >> 8) & 7, 4..=6) {
            control::ENTRY_INSTRUCTION_LENGTH.write(exit::INSTRUCTION_LENGTH.read());
        }
        // An NMI whose delivery exited is injected again; the entry requires
        // that virtual-NMI blocking be clear for that (SDM Vol. 3C,
        // 27.3.1.5), as the NMI was never taken.
        if (info >> 8) & 7 == 2 {
            guest::INTERRUPTIBILITY.write(guest::INTERRUPTIBILITY.read() & !NMI_BLOCKING);
        }
        // Bit 12 (NMI unblocking due to IRET) is reserved in the entry field.
        control::ENTRY_INTERRUPTION_INFO.write(info & !(1 << 12));
        self.event_pending = true;
    }

    /// Reflects an intercepted #DB or #AC back to the guest, as the CPU
    /// would have delivered it. A #DB exit leaves DR6 alone and reports the
    /// bits the CPU would have set in the exit qualification (SDM Vol. 3C,
    /// 29.2.1, Table 29-1): they are ORed into the guest's DR6 — the CPU
    /// never clears DR6 bits itself (SDM Vol. 3B, 19.2.3) — except RTM
    /// (bit 16), which is active-low. A general-detect #DB (BD) also clears
    /// DR7.GD, as delivery would (SDM Vol. 3B, 19.2.4).
    fn reflect_exception(&mut self, vector: u8, error_code: Option<u32>) {
        // A fault in an IRET that had unblocked NMIs: the IRET did not
        // complete, so the guest is still in its NMI handler (SDM Vol. 3C,
        // 28.2.3, "NMI unblocking due to IRET", with virtual NMIs; the
        // exception is #DF, which never comes here).
        if exit::INTERRUPTION_INFO.read() & (1 << 12) != 0 {
            guest::INTERRUPTIBILITY.write(guest::INTERRUPTIBILITY.read() | NMI_BLOCKING);
        }
        if vector == VECTOR_DB {
            const DR6_RTM: u64 = 1 << 16;
            const DR6_BD: u64 = 1 << 13;
            const DR7_GD: u64 = 1 << 13;
            let qualification = exit::QUALIFICATION.read();
            let old: u64;
            // SAFETY: DR6 holds this guest's value while its vCPU is loaded;
            // reading it has no side effects.
            unsafe { core::arch::asm!("mov {}, dr6", out(reg) old, options(nostack)) };
            let mut dr6 = old | DR6_DEFAULT | (qualification & 0x600f);
            if qualification & DR6_RTM != 0 {
                dr6 &= !DR6_RTM;
            }
            // SAFETY: as above; the guest sees this value at its handler.
            unsafe { core::arch::asm!("mov dr6, {}", in(reg) dr6, options(nostack)) };
            if qualification & DR6_BD != 0 {
                guest::DR7.write(guest::DR7.read() & !DR7_GD);
            }
        }
        self.inject_exception(vector, error_code);
    }
}

impl Vcpu for VmxVcpu {
    const UNMAPPED_MEMORY_EXIT: &'static str = "EPT violation";
    const PAGE_TABLE_MISCONFIGURATION: &'static str = "EPT misconfiguration";

    #[inline(always)]
    fn run(&mut self) -> Exit {
        // Slices are charged in wall-clock time: the time tessera spends on
        // the guest's exits comes out of the guest's slice too, so an exit
        // flood cannot hold the CPU (the preemption timer alone counts only
        // guest time).
        let now = crate::arch::tsc::rdtsc();
        if now >= self.slice_deadline {
            return Exit::SliceEnd;
        }
        // `set_slice_deadline` keeps the deadline within the timer's reach.
        // A timer of 0 exits before the guest runs an instruction (SDM Vol.
        // 3C, 27.5.1), which is right for a slice that is as good as over.
        let ticks = (self.slice_deadline - now) >> self.capabilities.preemption_timer_rate;
        guest::PREEMPTION_TIMER.write(ticks as u32);
        // SAFETY: this VMCS is current (the scheduler calls `load` first)
        // with complete host, control and guest state.
        let result = unsafe { entry::enter(&mut self.registers, self.launched) };
        if result != EntryResult::Exited {
            // VMfailInvalid (no current VMCS) has no error number: 0.
            let code = match result {
                EntryResult::FailValid => exit::INSTRUCTION_ERROR.read(),
                _ => 0,
            };
            return Exit::EntryFailed { code };
        }
        self.launched = true;
        if self.event_pending {
            self.event_pending = false;
            self.reinject_undelivered();
        }
        let reason = super::decode::basic_reason();
        self.exits.record(reason);
        let decoded = super::decode::decode(reason);
        match decoded {
            Exit::Exception { vector, error_code }
                if vector == VECTOR_DB || vector == VECTOR_AC =>
            {
                // Delivered through the core so that the slice deadline and
                // the exit count see every round of a delivery loop.
                self.reflect_exception(vector, error_code);
                decoded
            }
            _ => decoded,
        }
    }

    fn entry_error(&self, code: u32) -> &'static str {
        instruction_error_text(code)
    }

    fn fault_linear_address(&self) -> Option<u64> {
        // Bit 7 of the EPT-violation qualification: the linear-address
        // field is valid (SDM Vol. 3C, Table 29-7).
        (exit::QUALIFICATION.read() & (1 << 7) != 0).then(|| exit::GUEST_LINEAR_ADDRESS.read())
    }

    fn registers(&mut self) -> &mut GuestRegisters {
        &mut self.registers
    }

    fn gpr(&mut self, number: u8) -> u64 {
        if number & 15 == RSP_NUMBER {
            guest::RSP.read()
        } else {
            self.registers.get(number)
        }
    }

    fn set_gpr(&mut self, number: u8, value: u64) {
        if number & 15 == RSP_NUMBER {
            guest::RSP.write(value)
        } else {
            self.registers.set(number, value)
        }
    }

    fn rip(&self) -> u64 {
        guest::RIP.read()
    }

    fn rflags(&self) -> u64 {
        guest::RFLAGS.read()
    }

    fn set_rflags(&mut self, value: u64) {
        guest::RFLAGS.write(value)
    }

    #[inline(always)]
    fn skip_instruction(&mut self) {
        super::decode::skip_instruction();
    }

    fn skip_emulated(&mut self, length: u64) {
        super::decode::skip(length);
    }

    fn control_state(&self) -> ControlState {
        ControlState {
            cr0: self.visible_cr0(),
            cr3: guest::CR3.read(),
            cr4: self.visible_cr4(),
            efer: guest::EFER.read(),
            cs_long: guest::CS.access.read() & (1 << 13) != 0,
            cpl: self.cpl(),
        }
    }

    #[inline(always)]
    fn cpl(&self) -> u8 {
        // CPL is SS.DPL (SDM Vol. 3A, 5.5).
        ((guest::SS.access.read() >> 5) & 3) as u8
    }

    fn set_cr0(&mut self, value: u64) {
        control::CR0_SHADOW.write(value);
        guest::CR0.write(self.real_cr0(value));
        self.update_long_mode();
    }

    fn set_cr3(&mut self, value: u64) {
        guest::CR3.write(value);
    }

    fn set_cr4(&mut self, value: u64) {
        control::CR4_SHADOW.write(value);
        guest::CR4.write(self.real_cr4(value));
    }

    fn set_pdptes(&mut self, pdptes: [u64; 4]) {
        // Under PAE paging VM entry takes the PDPTEs from these fields, not
        // from memory (SDM Vol. 3C, 28.3.2.4).
        for (field, entry) in guest::PDPTES.iter().zip(pdptes) {
            field.write(entry);
        }
    }

    fn pdptes(&self) -> [u64; 4] {
        // With EPT, VM exit saves the PDPTEs the guest runs with (SDM Vol.
        // 3C, 29.3.4).
        guest::PDPTES.map(|field| field.read())
    }

    fn flush_tlb(&mut self) {
        if self.capabilities.vpid() {
            super::invvpid_all();
        }
        // Without VPIDs every VM entry and exit flushes the guest's
        // linear translations already (SDM Vol. 3C, 30.4.3.3).
    }

    fn cr8(&self) -> u64 {
        let value: u64;
        // SAFETY: reading CR8 has no side effects; the CPU's TPR is this
        // guest's while its vCPU is loaded.
        unsafe { core::arch::asm!("mov {}, cr8", out(reg) value, options(nostack)) };
        value
    }

    fn set_cr8(&mut self, value: u8) {
        // SAFETY: the TPR is this guest's while its vCPU is loaded; `unload`
        // saves it and clears it for the host.
        unsafe { core::arch::asm!("mov cr8, {}", in(reg) value as u64 & 0xf, options(nostack)) };
    }

    fn set_efer(&mut self, value: u64) {
        guest::EFER.write(value);
        self.update_long_mode();
    }

    fn supported_cr4(&self) -> u64 {
        // LA57 as CPUID leaf 7 hides it (`rules::cpuid::LEAF7_ECX_LA57`).
        self.capabilities.cr4_fixed1 & 0xffff_ffff & !(cr4::VMXE | cr4::SMXE | cr4::LA57)
    }

    fn supported_xcr0(&self) -> u64 {
        supported_xcr0()
    }

    fn segment(&self, register: SegmentRegister) -> SegmentState {
        let segment = vmcs_segment(register);
        SegmentState {
            base: segment.base.read(),
            limit: segment.limit.read(),
            access_rights: segment.access.read(),
        }
    }

    fn pat(&self) -> u64 {
        guest::PAT.read()
    }

    fn set_pat(&mut self, value: u64) {
        guest::PAT.write(value)
    }

    fn debugctl(&self) -> u64 {
        guest::DEBUGCTL.read()
    }

    fn set_debugctl(&mut self, value: u64) {
        guest::DEBUGCTL.write(value)
    }

    fn tsc_offset(&self) -> u64 {
        control::TSC_OFFSET.read()
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        control::TSC_OFFSET.write(offset)
    }

    fn xcr0(&self) -> u64 {
        self.xcr0
    }

    fn set_xcr0(&mut self, value: u64) {
        self.xcr0 = value;
        // SAFETY: the core validated `value` against every architectural
        // rule before calling; XCR0 is this VM's while it is loaded.
        unsafe { xsetbv(value) };
    }

    fn set_cr2(&mut self, value: u64) {
        // VMX leaves CR2 alone, so the CPU's CR2 is the guest's while its
        // vCPU is loaded (see `load`).
        // SAFETY: CR2 is not used by the hypervisor itself.
        unsafe { core::arch::asm!("mov cr2, {}", in(reg) value, options(nostack)) };
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        // Hardware exception, valid (SDM Vol. 3C, 26.8.3). An error code is
        // delivered only in protected mode: in real mode the entry would
        // fail (28.2.1.3). The guest's *real* CR0.PE decides — with
        // unrestricted guest it is the guest's own bit — never the read
        // shadow, which tessera does not keep for PE.
        let protected = guest::CR0.read() & cr0::PE != 0;
        let mut info = vector as u32 | (3 << 8) | (1 << 31);
        if let (Some(code), true) = (error_code, protected) {
            info |= 1 << 11;
            control::ENTRY_EXCEPTION_ERROR_CODE.write(code);
        }
        control::ENTRY_INTERRUPTION_INFO.write(info);
        self.event_pending = true;
    }

    fn inject_interrupt(&mut self, vector: u8) {
        // External interrupt (type 0), valid (SDM Vol. 3C, 26.8.3).
        control::ENTRY_INTERRUPTION_INFO.write(vector as u32 | (1 << 31));
        self.event_pending = true;
    }

    fn event_pending(&self) -> bool {
        self.event_pending
    }

    fn interruptible(&self) -> bool {
        // Blocking by STI (bit 0) or MOV SS (bit 1) holds interrupts off for
        // one instruction (SDM Vol. 3C, 26.4.2, Table 26-3).
        guest::RFLAGS.read() & rflags::IF != 0 && guest::INTERRUPTIBILITY.read() & 3 == 0
    }

    fn request_interrupt_window(&mut self, on: bool) -> bool {
        let bit = super::capabilities::primary::INTERRUPT_WINDOW_EXITING;
        if self.capabilities.primary_allowed & bit == 0 {
            return false;
        }
        let controls = control::PRIMARY_PROCESSOR_BASED.read();
        control::PRIMARY_PROCESSOR_BASED.write(if on { controls | bit } else { controls & !bit });
        true
    }

    fn inject_nmi(&mut self) {
        // NMI (type 2), vector 2, valid (SDM Vol. 3C, 26.8.3). With virtual
        // NMIs the entry sets virtual-NMI blocking, which the guest's IRET
        // clears (26.8.1.2, 25.3).
        control::ENTRY_INTERRUPTION_INFO.write(2 | (2 << 8) | (1 << 31));
        self.event_pending = true;
    }

    fn nmi_allowed(&self) -> bool {
        // Blocking by STI (bit 0), by MOV SS (bit 1) and by NMI (bit 3)
        // (SDM Vol. 3C, Table 26-3). An NMI may not be injected under MOV-SS
        // blocking (27.3.1.5); STI blocking is honoured too, as processors
        // may hold NMIs off under it (25.3, "NMI-window exiting").
        guest::INTERRUPTIBILITY.read() & 0b1011 == 0
    }

    fn request_nmi_window(&mut self, on: bool) -> bool {
        // NMI-window exiting needs virtual NMIs (SDM Vol. 3C, 27.2.1.1).
        let bit = super::capabilities::primary::NMI_WINDOW_EXITING;
        if self.capabilities.primary_allowed & bit == 0
            || self.capabilities.pin & super::capabilities::pin::VIRTUAL_NMIS == 0
        {
            return false;
        }
        let controls = control::PRIMARY_PROCESSOR_BASED.read();
        control::PRIMARY_PROCESSOR_BASED.write(if on { controls | bit } else { controls & !bit });
        true
    }

    fn set_slice_deadline(&mut self, tsc: u64) {
        // The 32-bit timer counts TSC/2^rate: no deadline beyond its reach,
        // so that `run` converts without clamping.
        let reach = (u32::MAX as u64) << self.capabilities.preemption_timer_rate;
        self.slice_deadline = tsc.min(crate::arch::tsc::rdtsc().saturating_add(reach));
    }

    fn reset(&mut self, start: &StartState) {
        self.registers = GuestRegisters {
            rax: u64::from(start.rax),
            rbx: start.rbx,
            rsi: u64::from(start.rsi),
            ..GuestRegisters::default()
        };
        self.switched = SwitchedState::default();
        self.xcr0 = 1;
        self.xsave.clear();
        self.event_pending = false;
        setup::write_guest_state(self.capabilities, start);
        if self.capabilities.vpid() {
            // The restarted guest must not see the crashed run's TLB.
            super::invvpid_all();
        }
    }

    fn load(&mut self) -> Result<(), EntryFailure> {
        self.make_current().map_err(|_| EntryFailure {
            code: 0,
            meaning: "VMPTRLD of its VMCS failed",
        })?;
        let state = &self.switched;
        // SAFETY: restoring guest values into registers the host does not
        // use (CR2, CR8, debug registers, SYSCALL MSRs, extended state); XCR0
        // was validated when the guest set it.
        unsafe {
            core::arch::asm!("mov cr2, {}", in(reg) state.cr2, options(nostack));
            core::arch::asm!("mov cr8, {}", in(reg) state.cr8, options(nostack));
            core::arch::asm!(
                "mov dr0, {}", "mov dr1, {}", "mov dr2, {}", "mov dr3, {}", "mov dr6, {}",
                in(reg) state.debug[0], in(reg) state.debug[1], in(reg) state.debug[2],
                in(reg) state.debug[3], in(reg) state.debug[4] | DR6_DEFAULT,
                options(nostack)
            );
            for (msr, value) in SWITCHED_MSRS.iter().zip(state.msrs) {
                wrmsr(*msr, value);
            }
        }
        xstate::restore(&mut self.xsave, self.xcr0);
        Ok(())
    }

    fn unload(&mut self) {
        let state = &mut self.switched;
        // SAFETY: reading registers and MSRs has no side effects. CR8 then
        // goes back to 0 so that a guest's TPR never reaches the host or the
        // next VM.
        unsafe {
            core::arch::asm!("mov {}, cr2", out(reg) state.cr2, options(nostack));
            core::arch::asm!("mov {}, cr8", out(reg) state.cr8, options(nostack));
            core::arch::asm!("mov cr8, {}", in(reg) 0u64, options(nostack));
            core::arch::asm!(
                "mov {}, dr0", "mov {}, dr1", "mov {}, dr2", "mov {}, dr3", "mov {}, dr6",
                out(reg) state.debug[0], out(reg) state.debug[1], out(reg) state.debug[2],
                out(reg) state.debug[3], out(reg) state.debug[4],
                options(nostack)
            );
            for (slot, msr) in state.msrs.iter_mut().zip(SWITCHED_MSRS) {
                *slot = rdmsr(msr);
            }
        }
        xstate::save(&mut self.xsave);
    }

    fn describe(&self) -> alloc::string::String {
        setup::describe_guest_state()
    }

    fn exit_statistics(&self) -> Vec<(&'static str, u64)> {
        self.exits
            .ranked()
            .map(|(reason, count)| (super::exit_reason::name(reason), count))
            .collect()
    }

    fn exit_count(&self) -> u64 {
        self.exits.total()
    }
}

impl Drop for VmxVcpu {
    fn drop(&mut self) {
        // SAFETY: VMCLEAR flushes the VMCS out of the CPU before its page is
        // reused (SDM Vol. 3C, 26.11.1).
        unsafe {
            let _ = x86::bits64::vmx::vmclear(self.vmcs.start);
        }
        crate::mm::free(self.vmcs);
    }
}
