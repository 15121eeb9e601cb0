//! One virtual CPU on SVM: its VMCB, its register file and the guest state
//! that VMRUN does not switch — the implementation of the core's [`Vcpu`]
//! seam for AMD.
//!
//! VMRUN and #VMEXIT switch the control registers, EFER, the segment
//! registers CS/DS/ES/SS with the CPL, GDTR/IDTR, RAX/RSP/RIP/RFLAGS,
//! DR6/DR7, CR2 and the guest PAT (APM Vol. 2, 15.5); the entry stub
//! switches FS/GS/TR/LDTR and the SYSCALL/SYSENTER MSRs with VMLOAD/VMSAVE.
//! tessera switches the rest itself when it changes VMs ([`Vcpu::unload`],
//! [`Vcpu::load`]): DR0-DR3, XCR0 and the extended state. The guest's CR8
//! is V_TPR (V_INTR_MASKING), never the CPU's TPR.
//!
//! **Control registers.** Every write to CR0 and CR4 exits, so that the
//! core's rules decide it as on VMX and EFER.LMA follows CR0.PG. Unlike
//! VMX, #VMEXIT reloads the host's whole CR0 (15.5.2), so a guest's CR0.CD
//! or NW cannot leak into the host: the guest runs with its own bits.
//!
//! **NMIs.** SVM without vNMI has no NMI-blocking state to read, so the
//! vCPU tracks it: an injected NMI blocks NMIs until the guest's IRET,
//! which is intercepted. IRET exits *before* it executes (15.9), so the
//! vCPU single-steps it — RFLAGS.TF set at the IRET traps after it
//! completes, whatever flags it pops (SDM Vol. 3B, 19.2.4; APM Vol. 2,
//! 13.1.4) — and the #DB intercept it already has brings it back: NMIs are
//! unblocked once RIP has moved past the IRET.

use super::entry::{self, GuestRegisters};
use super::exit_code::{self, code, DecodeFeatures, ExitCounts};
use super::vmcb::{
    access_rights_from_attributes, attributes_from_access_rights, clean, intercept1, tlb_control,
    virtual_interrupt, Segment, Vmcb,
};
use crate::arch::registers::RSP_NUMBER;
use crate::arch::xstate::{self, XsaveArea};
use crate::mm::phys::PhysRange;
use crate::options::CpuMode;
use crate::rules::bits::{cr0, cr4, efer, rflags};
use crate::vmm::exit::Exit;
use crate::vmm::guest_memory::OwnedFrames;
use crate::vmm::vcpu::{
    ControlState, EntryFailure, SegmentRegister, SegmentState, StartState, Vcpu,
};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// The power-on value of the PAT (APM Vol. 2, 7.8.2; SDM Vol. 3A, 13.12.4).
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
/// DR6 after reset: the reserved bits read as ones.
const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// DR7 after reset: only the always-one bit 10.
const DR7_DEFAULT: u64 = 0x400;
use super::intercepts::{CR_WRITE_INTERCEPTS, INTERCEPTED_EXCEPTIONS, INTERCEPTS1, INTERCEPTS2};

/// RFLAGS.TF, the single-step flag.
const RFLAGS_TF: u64 = 1 << 8;
/// DR6.BS, set by a single-step trap.
const DR6_BS: u64 = 1 << 14;
/// The exit code of an intercepted #DB.
const DEBUG_EXCEPTION: u64 = code::EXCEPTION_BASE + 1;
/// EVENTINJ / EXITINTINFO fields (APM Vol. 2, 15.20).
const EVENT_VALID: u64 = 1 << 31;
const EVENT_ERROR_CODE_VALID: u64 = 1 << 11;
const EVENT_TYPE_NMI: u64 = 2 << 8;
const EVENT_TYPE_EXCEPTION: u64 = 3 << 8;

/// What every vCPU on this CPU shares: the SVM features, the intercept
/// maps, the host's VMLOAD area.
pub struct SvmShared {
    /// Decode assists and friends, for the exit decoder.
    pub decode: DecodeFeatures,
    /// NRIP save: the VMCB holds the next RIP after an intercepted
    /// instruction.
    pub next_rip_save: bool,
    /// Flush-by-ASID: TLB_CONTROL 3 is allowed.
    pub flush_by_asid: bool,
    /// The page VMLOAD restores the host's hidden state from.
    pub host_vmload_area: u64,
    /// The IOPM (every VM's).
    pub iopm: u64,
    /// The MSRPM (every VM's).
    pub msrpm: u64,
    /// The CR4 bits a guest may set on this CPU.
    pub supported_cr4: u64,
}

/// Which VMCB last ran with each ASID on this CPU: a vCPU whose ASID last
/// ran for another VM (more VMs than ASIDs, or a VM created after another
/// was destroyed) flushes that ASID's translations before it runs.
static ASID_OWNER: [AtomicU64; MAX_ASIDS] = [const { AtomicU64::new(0) }; MAX_ASIDS];
/// ASIDs tessera hands out: 1..MAX_ASIDS (0 is the host's).
pub const MAX_ASIDS: usize = 256;

/// One virtual CPU on SVM.
pub struct SvmVcpu {
    vmcb: PhysRange,
    registers: GuestRegisters,
    xcr0: u64,
    xsave: XsaveArea,
    /// DR0-DR3 while another vCPU runs.
    debug: [u64; 4],
    shared: &'static SvmShared,
    /// Guest RAM: where the PAE PDPTEs are read from.
    ram: PhysRange,
    asid: u32,
    slice_deadline: u64,
    event_pending: bool,
    /// Where the intercepted instruction ends (IOIO gives it, NRIP save
    /// gives it, otherwise its fixed length does).
    next_rip: u64,
    /// An NMI tessera injected is in service (until the guest's IRET).
    nmi_blocked: bool,
    /// The RIP of the intercepted IRET that ends the NMI handler, until it
    /// has run.
    iret_rip: Option<u64>,
    /// That IRET is being single-stepped: the next #DB is tessera's,
    /// unless the guest had TF set itself (`iret_guest_tf`).
    stepping_iret: bool,
    iret_guest_tf: bool,
    /// The core wants to hear when an NMI can be injected.
    nmi_window_wanted: bool,
    /// The NMI window opened at an exit the core was told about otherwise:
    /// the next `run` reports it without entering the guest.
    nmi_window_ready: bool,
    exits: ExitCounts,
    /// The nested page tables' frames, freed with the vCPU.
    _npt: OwnedFrames,
}

fn segment_of(start_selector: u16, base: u64, limit: u32, rights: u32) -> Segment {
    Segment {
        selector: start_selector,
        attributes: attributes_from_access_rights(rights),
        limit,
        base,
    }
}

/// The fixed length of an intercepted instruction, for CPUs without NRIP
/// save: the opcode tessera expects, without prefixes (a guest that adds
/// redundant prefixes to these only misleads itself).
const fn fixed_length(exit_code: u64) -> u64 {
    match exit_code {
        code::HLT => 1,
        code::CPUID | code::MSR | code::RDPMC | code::INVD | code::WBINVD => 2,
        code::VMMCALL | code::XSETBV => 3,
        _ => 0,
    }
}

impl SvmVcpu {
    /// A vCPU with a fresh VMCB programmed with the intercepts and the start
    /// state, its nested page tables rooted at `nested_cr3`.
    pub fn new(
        shared: &'static SvmShared,
        asid: u32,
        nested_cr3: u64,
        ram: PhysRange,
        start: &StartState,
        npt: OwnedFrames,
    ) -> Option<SvmVcpu> {
        let xsave = XsaveArea::new()?;
        let vmcb = crate::mm::allocate_zeroed(4096, 4096).ok()?;
        let mut vcpu = SvmVcpu {
            vmcb,
            registers: GuestRegisters::default(),
            xcr0: 1,
            xsave,
            debug: [0; 4],
            shared,
            ram,
            asid,
            slice_deadline: 0,
            event_pending: false,
            next_rip: 0,
            nmi_blocked: false,
            iret_rip: None,
            stepping_iret: false,
            iret_guest_tf: false,
            nmi_window_wanted: false,
            nmi_window_ready: false,
            exits: ExitCounts::default(),
            _npt: npt,
        };
        let control = &mut vcpu.vmcb_mut().control;
        control.nested_cr3 = nested_cr3;
        vcpu.reset(start);
        Some(vcpu)
    }

    fn vmcb(&self) -> &Vmcb {
        // SAFETY: the page is this vCPU's VMCB, allocated for its life and
        // identity-mapped; the processor writes it only inside VMRUN, which
        // `run` calls with `&mut self`.
        unsafe { &*(self.vmcb.start as *const Vmcb) }
    }

    fn vmcb_mut(&mut self) -> &mut Vmcb {
        // SAFETY: as in `vmcb`; `&mut self` makes the borrow exclusive.
        unsafe { &mut *(self.vmcb.start as *mut Vmcb) }
    }

    /// Marks VMCB fields as changed since the last VMRUN (15.15.3).
    fn dirty(&mut self, bits: u32) {
        self.vmcb_mut().control.clean_bits &= !bits;
    }

    /// Keeps EFER.LMA in step with CR0.PG and EFER.LME: VMRUN checks the
    /// combination and takes LMA as given (APM Vol. 2, 15.5.1; 14.6).
    fn update_long_mode(&mut self) {
        let save = &mut self.vmcb_mut().save;
        if save.cr0 & cr0::PG != 0 && save.efer & efer::LME != 0 {
            save.efer |= efer::LMA;
        } else {
            save.efer &= !efer::LMA;
        }
        self.dirty(clean::CRX);
    }

    fn set_intercept1(&mut self, bit: u32, on: bool) {
        let control = &mut self.vmcb_mut().control;
        if on {
            control.intercepts1 |= bit;
        } else {
            control.intercepts1 &= !bit;
        }
        self.dirty(clean::INTERCEPTS);
    }

    /// After an exit: injects again the event tessera injected if the exit
    /// interrupted its delivery (EXITINTINFO, 15.7.2), or it would be lost.
    fn reinject_undelivered(&mut self) {
        let control = &mut self.vmcb_mut().control;
        let info = control.exit_int_info;
        control.event_injection = 0;
        if info & EVENT_VALID == 0 {
            return;
        }
        control.event_injection = info;
        if info & (7 << 8) == EVENT_TYPE_NMI {
            // Not taken yet: blocked again only once it is.
            self.nmi_blocked = false;
        }
        self.event_pending = true;
    }

    /// Where the intercepted instruction ends, for `skip_instruction`.
    fn record_next_rip(&mut self, exit_code: u64) {
        let vmcb = self.vmcb();
        self.next_rip = if exit_code == code::IOIO {
            // IOIO always reports it in EXITINFO2 (15.10.2).
            vmcb.control.exit_info2
        } else if self.shared.next_rip_save {
            vmcb.control.next_rip
        } else {
            vmcb.save.rip.wrapping_add(fixed_length(exit_code))
        };
    }

    /// NMI bookkeeping after an exit; returns whether the NMI window the
    /// core asked for opened: the IRET ending the NMI handler has run, or
    /// (when only a shadow or a queued event held the NMI off) the guest
    /// has been entered since the request.
    fn track_nmi_blocking(&mut self) -> bool {
        if let Some(iret) = self.iret_rip {
            if self.vmcb().save.rip != iret {
                self.iret_rip = None;
                self.nmi_blocked = false;
            }
        }
        if self.nmi_window_wanted && !self.nmi_blocked {
            self.nmi_window_wanted = false;
            return true;
        }
        false
    }
}

impl Vcpu for SvmVcpu {
    const UNMAPPED_MEMORY_EXIT: &'static str = "nested page fault";
    const PAGE_TABLE_MISCONFIGURATION: &'static str = "nested page table with a reserved bit set";

    #[inline(always)]
    fn run(&mut self) -> Exit {
        if core::mem::take(&mut self.nmi_window_ready) {
            return Exit::NmiWindow;
        }
        loop {
            // Slices are charged in wall-clock time, as on VMX.
            let now = crate::arch::tsc::rdtsc();
            if now >= self.slice_deadline {
                return Exit::SliceEnd;
            }
            crate::arch::idle::arm(self.slice_deadline);
            self.vmcb_mut().save.rax = self.registers.rax;
            let (vmcb, host) = (self.vmcb.start, self.shared.host_vmload_area);
            // SAFETY: the VMCB is complete (`reset`), SVM is on with a host
            // save area, and the host's VMLOAD area holds its state (both
            // from `enable`).
            unsafe { entry::enter(&mut self.registers, vmcb, host) };
            let control = &mut self.vmcb_mut().control;
            control.clean_bits = clean::ALL;
            control.tlb_control = tlb_control::NOTHING;
            let (exit_code, info1, info2) =
                (control.exit_code, control.exit_info1, control.exit_info2);
            self.registers.rax = self.vmcb().save.rax;
            self.exits.record(exit_code, info1);
            if self.event_pending {
                self.event_pending = false;
                self.reinject_undelivered();
            }
            if exit_code == code::INTR {
                crate::arch::idle::take_pending_interrupt();
            }
            let window = self.track_nmi_blocking();
            if exit_code == code::IRET {
                // The IRET has not run yet: single-step it.
                let save = &mut self.vmcb_mut().save;
                let (rip, guest_tf) = (save.rip, save.rflags & RFLAGS_TF != 0);
                save.rflags |= RFLAGS_TF;
                self.iret_rip = Some(rip);
                self.iret_guest_tf = guest_tf;
                self.stepping_iret = true;
                self.set_intercept1(intercept1::IRET, false);
                continue;
            }
            // tessera's own single step: the guest never sees it (when the
            // guest had TF set itself, the #DB is its own too).
            if exit_code == DEBUG_EXCEPTION
                && core::mem::take(&mut self.stepping_iret)
                && !self.iret_guest_tf
            {
                self.vmcb_mut().save.dr6 &= !DR6_BS;
                self.dirty(clean::DRX);
                if window {
                    return Exit::NmiWindow;
                }
                continue;
            }
            self.record_next_rip(exit_code);
            let decoded = exit_code::decode(exit_code, info1, info2, self.shared.decode);
            if window {
                if decoded == Exit::ExternalInterrupt {
                    return Exit::NmiWindow;
                }
                self.nmi_window_ready = true;
            }
            if let Exit::Exception { vector, error_code } = decoded {
                // Reflected at once, delivered through the core so that the
                // delivery-loop guard sees every round (as on VMX).
                self.inject_exception(vector, error_code);
            }
            return decoded;
        }
    }

    fn entry_error(&self, _code: u32) -> &'static str {
        "VMRUN failed"
    }

    fn fault_linear_address(&self) -> Option<u64> {
        // #NPF reports only the guest-physical address (15.25.6).
        None
    }

    fn registers(&mut self) -> &mut GuestRegisters {
        &mut self.registers
    }

    fn gpr(&mut self, number: u8) -> u64 {
        if number & 15 == RSP_NUMBER {
            self.vmcb().save.rsp
        } else {
            self.registers.get(number)
        }
    }

    fn set_gpr(&mut self, number: u8, value: u64) {
        if number & 15 == RSP_NUMBER {
            self.vmcb_mut().save.rsp = value;
        } else {
            self.registers.set(number, value)
        }
    }

    fn rip(&self) -> u64 {
        self.vmcb().save.rip
    }

    fn rflags(&self) -> u64 {
        self.vmcb().save.rflags
    }

    fn set_rflags(&mut self, value: u64) {
        self.vmcb_mut().save.rflags = value;
    }

    #[inline(always)]
    fn skip_instruction(&mut self) {
        let next = self.next_rip;
        let vmcb = self.vmcb_mut();
        vmcb.save.rip = next;
        // Completing the instruction ends an STI/MOV-SS shadow.
        vmcb.control.interrupt_shadow = 0;
    }

    fn skip_emulated(&mut self, length: u64) {
        let vmcb = self.vmcb_mut();
        vmcb.save.rip = vmcb.save.rip.wrapping_add(length);
        vmcb.control.interrupt_shadow = 0;
    }

    fn control_state(&self) -> ControlState {
        let save = &self.vmcb().save;
        ControlState {
            cr0: save.cr0,
            cr3: save.cr3,
            cr4: save.cr4,
            // SVME is tessera's, never the guest's.
            efer: save.efer & !efer::SVME,
            // CS.L is attribute bit 9 (descriptor bit 53).
            cs_long: save.cs.attributes & (1 << 9) != 0,
            cpl: save.cpl & 3,
        }
    }

    #[inline(always)]
    fn cpl(&self) -> u8 {
        self.vmcb().save.cpl & 3
    }

    fn set_cr0(&mut self, value: u64) {
        self.vmcb_mut().save.cr0 = value;
        self.update_long_mode();
    }

    fn set_cr3(&mut self, value: u64) {
        self.vmcb_mut().save.cr3 = value;
        self.dirty(clean::CRX);
    }

    fn set_cr4(&mut self, value: u64) {
        self.vmcb_mut().save.cr4 = value;
        self.dirty(clean::CRX);
    }

    fn set_pdptes(&mut self, _pdptes: [u64; 4]) {
        // With nested paging the processor reads the PAE PDPTEs from guest
        // memory itself (15.25.10): nothing to load.
    }

    fn pdptes(&self) -> [u64; 4] {
        // What the processor uses: the four entries CR3 points at, read
        // from guest RAM (zero, not present, outside it).
        let table = self.vmcb().save.cr3 & 0xffff_ffe0;
        let mut entries = [0u64; 4];
        for (index, entry) in entries.iter_mut().enumerate() {
            let address = table + index as u64 * 8;
            if address + 8 <= self.ram.len() {
                // SAFETY: inside this VM's RAM, identity-mapped; an 8-byte
                // read of guest memory the guest may be changing.
                *entry =
                    unsafe { core::ptr::read_volatile((self.ram.start + address) as *const u64) };
            }
        }
        entries
    }

    fn flush_tlb(&mut self) {
        self.vmcb_mut().control.tlb_control = if self.shared.flush_by_asid {
            tlb_control::THIS_ASID
        } else {
            tlb_control::ALL
        };
    }

    fn cr8(&self) -> u64 {
        self.vmcb().control.virtual_interrupt & virtual_interrupt::TPR
    }

    fn set_cr8(&mut self, value: u8) {
        let control = &mut self.vmcb_mut().control;
        control.virtual_interrupt = (control.virtual_interrupt & !virtual_interrupt::TPR)
            | (u64::from(value) & virtual_interrupt::TPR);
        self.dirty(clean::TPR);
    }

    fn set_efer(&mut self, value: u64) {
        // VMRUN refuses a guest EFER without SVME (15.5.1); the guest never
        // sees it (`control_state`) nor sets it (the EFER rules).
        self.vmcb_mut().save.efer = value | efer::SVME;
        self.update_long_mode();
    }

    fn supported_cr4(&self) -> u64 {
        self.shared.supported_cr4
    }

    fn supported_xcr0(&self) -> u64 {
        xstate::supported_xcr0()
    }

    fn segment(&self, register: SegmentRegister) -> SegmentState {
        let save = &self.vmcb().save;
        let segment = match register {
            SegmentRegister::Es => save.es,
            SegmentRegister::Cs => save.cs,
            SegmentRegister::Ss => save.ss,
            SegmentRegister::Ds => save.ds,
            SegmentRegister::Fs => save.fs,
            SegmentRegister::Gs => save.gs,
        };
        SegmentState {
            base: segment.base,
            limit: segment.limit,
            access_rights: access_rights_from_attributes(segment.attributes),
        }
    }

    fn pat(&self) -> u64 {
        self.vmcb().save.g_pat
    }

    fn set_pat(&mut self, value: u64) {
        self.vmcb_mut().save.g_pat = value;
        self.dirty(clean::NP);
    }

    fn debugctl(&self) -> u64 {
        self.vmcb().save.debugctl
    }

    fn set_debugctl(&mut self, value: u64) {
        // Kept for the guest to read back; without LBR virtualization the
        // processor does not load it (15.23).
        self.vmcb_mut().save.debugctl = value;
        self.dirty(clean::LBR);
    }

    fn tsc_offset(&self) -> u64 {
        self.vmcb().control.tsc_offset
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        self.vmcb_mut().control.tsc_offset = offset;
        self.dirty(clean::INTERCEPTS);
    }

    fn xcr0(&self) -> u64 {
        self.xcr0
    }

    fn set_xcr0(&mut self, value: u64) {
        self.xcr0 = value;
        // SAFETY: the core validated `value` against every architectural
        // rule before calling; XCR0 is this VM's while it is loaded (VMRUN
        // does not switch it).
        unsafe { xstate::xsetbv(value) };
    }

    fn set_cr2(&mut self, value: u64) {
        self.vmcb_mut().save.cr2 = value;
        self.dirty(clean::CR2);
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        // An error code only in protected mode, as the processor delivers
        // one (and as the VMX backend decides).
        let protected = self.vmcb().save.cr0 & cr0::PE != 0;
        let mut event = u64::from(vector) | EVENT_TYPE_EXCEPTION | EVENT_VALID;
        if let (Some(code), true) = (error_code, protected) {
            event |= EVENT_ERROR_CODE_VALID | (u64::from(code) << 32);
        }
        self.vmcb_mut().control.event_injection = event;
        self.event_pending = true;
    }

    fn inject_interrupt(&mut self, vector: u8) {
        // Type 0, external interrupt (15.20).
        self.vmcb_mut().control.event_injection = u64::from(vector) | EVENT_VALID;
        self.event_pending = true;
    }

    fn event_pending(&self) -> bool {
        self.event_pending
    }

    fn interruptible(&self) -> bool {
        let vmcb = self.vmcb();
        vmcb.save.rflags & rflags::IF != 0 && vmcb.control.interrupt_shadow & 1 == 0
    }

    fn request_interrupt_window(&mut self, on: bool) -> bool {
        // A virtual interrupt that ignores the TPR, with the VINTR
        // intercept: the guest exits as soon as it could take it (15.21.4).
        let control = &mut self.vmcb_mut().control;
        let bits = virtual_interrupt::IRQ
            | virtual_interrupt::IGNORE_TPR
            | (0xf << virtual_interrupt::PRIORITY_SHIFT);
        if on {
            control.virtual_interrupt |= bits;
        } else {
            control.virtual_interrupt &= !bits;
        }
        self.dirty(clean::TPR);
        self.set_intercept1(intercept1::VINTR, on);
        true
    }

    fn inject_nmi(&mut self) {
        self.vmcb_mut().control.event_injection = 2 | EVENT_TYPE_NMI | EVENT_VALID;
        self.event_pending = true;
        self.nmi_blocked = true;
        self.iret_rip = None;
        // The handler's IRET ends the blocking.
        self.set_intercept1(intercept1::IRET, true);
    }

    fn nmi_allowed(&self) -> bool {
        !self.nmi_blocked && self.vmcb().control.interrupt_shadow & 1 == 0
    }

    fn request_nmi_window(&mut self, on: bool) -> bool {
        // Reported after the next entry once nothing blocks NMIs any more
        // (`track_nmi_blocking`); an IRET intercept is already set while an
        // injected NMI is in service.
        self.nmi_window_wanted = on;
        true
    }

    fn set_slice_deadline(&mut self, tsc: u64) {
        self.slice_deadline = tsc;
    }

    fn reset(&mut self, start: &StartState) {
        self.registers = GuestRegisters {
            rax: u64::from(start.rax),
            rbx: start.rbx,
            rsi: u64::from(start.rsi),
            ..GuestRegisters::default()
        };
        self.xcr0 = 1;
        self.xsave.clear();
        self.debug = [0; 4];
        self.event_pending = false;
        self.nmi_blocked = false;
        self.iret_rip = None;
        self.stepping_iret = false;
        self.nmi_window_wanted = false;
        self.nmi_window_ready = false;
        let shared = self.shared;
        let asid = self.asid;
        let vmcb = self.vmcb_mut();
        let nested_cr3 = vmcb.control.nested_cr3;
        *vmcb = Vmcb::zeroed();

        let control = &mut vmcb.control;
        control.cr_intercepts = CR_WRITE_INTERCEPTS;
        control.exception_intercepts = INTERCEPTED_EXCEPTIONS;
        control.intercepts1 = INTERCEPTS1;
        control.intercepts2 = INTERCEPTS2;
        control.iopm_base = shared.iopm;
        control.msrpm_base = shared.msrpm;
        control.tsc_offset = start.tsc_offset;
        control.asid = asid;
        // The restarted guest must not see the crashed run's TLB.
        control.tlb_control = if shared.flush_by_asid {
            tlb_control::THIS_ASID
        } else {
            tlb_control::ALL
        };
        control.virtual_interrupt = virtual_interrupt::MASKING;
        control.nested_control = 1;
        control.nested_cr3 = nested_cr3;
        control.clean_bits = 0;

        let save = &mut vmcb.save;
        let (cr0, cr4, efer) = match start.mode {
            CpuMode::Real => (cr0::ET, 0, 0),
            CpuMode::Protected => (cr0::ET | cr0::PE, 0, 0),
            CpuMode::Long => (cr0::ET | cr0::PE | cr0::PG, cr4::PAE, efer::LME | efer::LMA),
        };
        save.cr0 = cr0;
        save.cr4 = cr4;
        save.efer = efer | efer::SVME;
        save.cr3 = if start.mode == CpuMode::Long {
            start.cr3
        } else {
            0
        };
        match start.mode {
            CpuMode::Real => {
                let cs = start.real_mode_cs;
                save.cs = segment_of(cs, u64::from(cs) << 4, 0xffff, 0x9b);
                let data = segment_of(0, 0, 0xffff, 0x93);
                (save.ds, save.es, save.ss, save.fs, save.gs) = (data, data, data, data, data);
                save.idtr.limit = 0x3ff;
            }
            CpuMode::Protected | CpuMode::Long => {
                let (selector, rights) = if start.mode == CpuMode::Long {
                    (crate::loader::CODE64_SELECTOR, 0xa09b)
                } else {
                    (crate::loader::CODE32_SELECTOR, 0xc09b)
                };
                save.cs = segment_of(selector, 0, 0xffff_ffff, rights);
                let data = segment_of(crate::loader::DATA_SELECTOR, 0, 0xffff_ffff, 0xc093);
                (save.ds, save.es, save.ss, save.fs, save.gs) = (data, data, data, data, data);
            }
        }
        // A busy 32/64-bit TSS, as on VMX; no LDT.
        save.tr = segment_of(0, 0, 0xff, 0x8b);
        save.gdtr.base = start.gdt_base;
        save.gdtr.limit = u32::from(start.gdt_limit);
        save.cpl = 0;
        save.dr6 = DR6_DEFAULT;
        save.dr7 = DR7_DEFAULT;
        save.rflags = 0x2;
        save.rip = start.rip;
        save.rsp = start.rsp;
        save.g_pat = PAT_DEFAULT;
        // Another VM may have run with this ASID since.
        ASID_OWNER[asid as usize].store(0, Ordering::Relaxed);
    }

    fn load(&mut self) -> Result<(), EntryFailure> {
        // Another VMCB ran on this CPU since: nothing cached is this one's
        // (15.15.3, the processor also checks, but the cost is small).
        self.dirty(u32::MAX);
        let token = self.vmcb.start;
        if ASID_OWNER[self.asid as usize].swap(token, Ordering::Relaxed) != token {
            self.flush_tlb();
        }
        let debug = self.debug;
        // SAFETY: restoring guest values into debug registers the host does
        // not use.
        unsafe {
            core::arch::asm!(
                "mov dr0, {}", "mov dr1, {}", "mov dr2, {}", "mov dr3, {}",
                in(reg) debug[0], in(reg) debug[1], in(reg) debug[2], in(reg) debug[3],
                options(nostack)
            );
        }
        xstate::restore(&mut self.xsave, self.xcr0);
        Ok(())
    }

    fn unload(&mut self) {
        // The XCR0 the guest runs with is the CPU's. Read it back rather
        // than trust the copy: QEMU's TCG (7.2) does not implement the
        // XSETBV intercept, so there a guest's XSETBV changes it without an
        // exit (its own checks still apply, as the CPU's would).
        if xstate::has_xsave() {
            // SAFETY: CR4.OSXSAVE is set whenever XSAVE exists (`enable`),
            // so XGETBV of XCR0 cannot fault.
            self.xcr0 = unsafe { x86::controlregs::xcr0().bits() };
        }
        let debug = &mut self.debug;
        // SAFETY: reading debug registers has no side effects.
        unsafe {
            core::arch::asm!(
                "mov {}, dr0", "mov {}, dr1", "mov {}, dr2", "mov {}, dr3",
                out(reg) debug[0], out(reg) debug[1], out(reg) debug[2], out(reg) debug[3],
                options(nostack)
            );
        }
        xstate::save(&mut self.xsave);
    }

    fn describe(&self) -> alloc::string::String {
        let vmcb = self.vmcb();
        let save = &vmcb.save;
        let segment = |name: &str, s: &Segment| {
            alloc::format!(
                "{} {:#06x} base {:#x} limit {:#x} attributes {:#x}",
                name,
                s.selector,
                s.base,
                s.limit,
                s.attributes
            )
        };
        alloc::format!(
            "CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x} RIP {:#x} RSP {:#x} RFLAGS {:#x} CPL {} EVENTINJ {:#x} ASID {} N_CR3 {:#x}; {}; {}; {}; {}; GDTR {:#x}/{:#x}",
            save.cr0,
            save.cr3,
            save.cr4,
            save.efer,
            save.rip,
            save.rsp,
            save.rflags,
            save.cpl,
            vmcb.control.event_injection,
            vmcb.control.asid,
            vmcb.control.nested_cr3,
            segment("CS", &save.cs),
            segment("SS", &save.ss),
            segment("DS", &save.ds),
            segment("TR", &save.tr),
            save.gdtr.base,
            save.gdtr.limit,
        )
    }

    fn exit_statistics(&self) -> Vec<(&'static str, u64)> {
        self.exits.ranked()
    }

    fn exit_count(&self) -> u64 {
        self.exits.total()
    }
}

impl Drop for SvmVcpu {
    fn drop(&mut self) {
        crate::mm::free(self.vmcb);
    }
}
