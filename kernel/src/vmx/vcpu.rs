//! One virtual CPU on VMX: its VMCS, its register file and the guest state
//! that VMX does not switch by itself.
//!
//! The VMCS switches the control registers, segment state, RSP/RIP/RFLAGS,
//! DR7, EFER, PAT and the SYSENTER MSRs. Everything else a guest can see —
//! the general registers, CR2, DR0-3/DR6, the SYSCALL MSRs, KERNEL_GS_BASE,
//! XCR0 and the FPU/SSE/AVX state — tessera saves and restores itself when
//! it switches between VMs ([`Vcpu::switch_out`], [`Vcpu::switch_in`]).

use super::capabilities::{entry_controls, Capabilities};
use super::entry::{self, EntryResult, GuestRegisters};
use super::vmcs::{control, exit, guest, host};
use crate::vmx::controls::apply_fixed_bits;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
// The flat GDT the loader writes into guest RAM defines these selectors.
use crate::loader;
use crate::mm::phys::PhysRange;
use crate::options::CpuMode;
use x86::msr::{rdmsr, wrmsr};

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// The power-on value of IA32_PAT (SDM Vol. 3A, 13.12.4).
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

/// Segment access rights (SDM Vol. 3C, Table 26-2).
mod access {
    /// Real-mode code: present, S, type 11 (execute/read, accessed).
    pub const REAL_CODE: u32 = 0x9b;
    /// Real-mode data: present, S, type 3 (read/write, accessed).
    pub const REAL_DATA: u32 = 0x93;
    /// Flat 32-bit code: G, D/B, present, S, type 11.
    pub const CODE32: u32 = 0xc09b;
    /// 64-bit code: G, L, present, S, type 11.
    pub const CODE64: u32 = 0xa09b;
    /// Flat data: G, D/B, present, S, type 3.
    pub const DATA: u32 = 0xc093;
    /// A busy TSS (type 11), present.
    pub const TSS_BUSY: u32 = 0x8b;
    /// Unusable (bit 16): for the LDTR.
    pub const UNUSABLE: u32 = 1 << 16;
}

/// The SYSCALL-related MSRs that VMX leaves to software.
const SWITCHED_MSRS: [u32; 5] = [
    0xc000_0081, // IA32_STAR
    0xc000_0082, // IA32_LSTAR
    0xc000_0083, // IA32_CSTAR
    0xc000_0084, // IA32_FMASK
    0xc000_0102, // IA32_KERNEL_GS_BASE
];

/// How a vCPU starts: the loader's answer for its image.
#[derive(Debug, Clone, Copy)]
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
}

/// Where the VM's shared structures are.
#[derive(Debug, Clone, Copy)]
pub struct VmStructures {
    /// The EPT pointer.
    pub ept_pointer: u64,
    /// The VPID (0 when VPIDs are off).
    pub vpid: u16,
    /// I/O bitmaps A and B, two consecutive pages.
    pub io_bitmaps: u64,
    /// The MSR bitmap page.
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
    debug: [u64; 5],
    msrs: [u64; SWITCHED_MSRS.len()],
}

/// One virtual CPU.
pub struct Vcpu {
    vmcs: PhysRange,
    launched: bool,
    /// General-purpose registers while the host runs.
    pub registers: GuestRegisters,
    /// The guest's XCR0.
    pub xcr0: u64,
    xsave_area: *mut u8,
    xsave_layout: Layout,
    switched: SwitchedState,
}

/// The size XSAVE needs for every feature this CPU supports (CPUID.0DH.0:ECX).
fn xsave_size() -> usize {
    let result = raw_cpuid::cpuid!(0xd, 0);
    (result.ecx as usize).max(576)
}

/// Whether the CPU has XSAVE (CPUID.1:ECX[26]); asked once, since CPUID
/// itself exits when tessera runs nested.
pub fn has_xsave() -> bool {
    static XSAVE: spin::Once<bool> = spin::Once::new();
    *XSAVE.call_once(|| raw_cpuid::cpuid!(1).ecx & (1 << 26) != 0)
}

/// Every XCR0 bit this CPU supports (CPUID.0DH.0:EDX:EAX), asked once.
pub fn supported_xcr0() -> u64 {
    static SUPPORTED: spin::Once<u64> = spin::Once::new();
    *SUPPORTED.call_once(|| {
        let r = raw_cpuid::cpuid!(0xd, 0);
        ((r.edx as u64) << 32) | r.eax as u64
    })
}

/// Writes XCR0.
///
/// # Safety
/// `value` must be a valid XCR0 for this CPU and CR4.OSXSAVE must be set.
unsafe fn xsetbv(value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { x86::controlregs::xcr0_write(x86::controlregs::Xcr0::from_bits_truncate(value)) };
}

/// The guest state that VM-entry checks look at (SDM Vol. 3C, 27.3.1), for
/// the report of a failed entry.
pub fn describe_guest_state() -> alloc::string::String {
    let segment = |name: &str, s: guest::Segment| {
        alloc::format!(
            "{} {:#06x} base {:#x} limit {:#x} rights {:#x}",
            name,
            s.selector.read(),
            s.base.read(),
            s.limit.read(),
            s.access.read()
        )
    };
    alloc::format!(
        "CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x} RIP {:#x} RSP {:#x} RFLAGS {:#x} entry controls {:#x} activity {} interruptibility {:#x}; {}; {}; {}; {}; GDTR {:#x}/{:#x}",
        guest::CR0.read(),
        guest::CR3.read(),
        guest::CR4.read(),
        guest::EFER.read(),
        guest::RIP.read(),
        guest::RSP.read(),
        guest::RFLAGS.read(),
        control::ENTRY.read(),
        guest::ACTIVITY.read(),
        guest::INTERRUPTIBILITY.read(),
        segment("CS", guest::CS),
        segment("SS", guest::SS),
        segment("DS", guest::DS),
        segment("TR", guest::TR),
        guest::GDTR_BASE.read(),
        guest::GDTR_LIMIT.read()
    )
}

impl Vcpu {
    /// A vCPU with a fresh VMCS, made current, programmed with host state,
    /// controls and the start state.
    pub fn new(
        capabilities: &Capabilities,
        structures: &VmStructures,
        start: &StartState,
    ) -> Result<Vcpu, VcpuError> {
        let vmcs = crate::mm::allocate_zeroed(4096, 4096).map_err(|_| VcpuError::OutOfMemory)?;
        let xsave_layout =
            Layout::from_size_align(xsave_size(), 64).map_err(|_| VcpuError::OutOfMemory)?;
        // SAFETY: a non-zero size with a valid alignment.
        let xsave_area = unsafe { alloc_zeroed(xsave_layout) };
        if xsave_area.is_null() {
            crate::mm::free(vmcs);
            return Err(VcpuError::OutOfMemory);
        }
        // SAFETY: the page is fresh and identity-mapped; it becomes this
        // vCPU's VMCS, initialised by VMCLEAR (SDM Vol. 3C, 25.11.3).
        let cleared = unsafe {
            (vmcs.start as *mut u32).write(capabilities.revision);
            x86::bits64::vmx::vmclear(vmcs.start).is_ok()
        };
        if !cleared {
            // SAFETY: allocated above with this layout and not shared.
            unsafe { dealloc(xsave_area, xsave_layout) };
            crate::mm::free(vmcs);
            return Err(VcpuError::VmcsInstruction);
        }
        let mut vcpu = Vcpu {
            vmcs,
            launched: false,
            registers: GuestRegisters::default(),
            xcr0: 1,
            xsave_area,
            xsave_layout,
            switched: SwitchedState::default(),
        };
        vcpu.make_current()
            .map_err(|_| VcpuError::VmcsInstruction)?;
        write_host_state();
        write_controls(capabilities, structures);
        vcpu.reset(capabilities, start);
        Ok(vcpu)
    }

    /// Makes this vCPU's VMCS the current one on this CPU.
    pub fn make_current(&self) -> Result<(), ()> {
        // SAFETY: the VMCS region was initialised by VMCLEAR and stays
        // allocated for the vCPU's life.
        unsafe { x86::bits64::vmx::vmptrld(self.vmcs.start).map_err(|_| ()) }
    }

    /// Puts the vCPU back into its start state (first boot and restarts).
    /// The VMCS must be current.
    pub fn reset(&mut self, capabilities: &Capabilities, start: &StartState) {
        self.registers = GuestRegisters::default();
        self.switched = SwitchedState::default();
        self.xcr0 = 1;
        // SAFETY: the area is this vCPU's, of `xsave_layout` size; a zeroed
        // XSAVE header makes XRSTOR load the initial state.
        unsafe { core::ptr::write_bytes(self.xsave_area, 0, self.xsave_layout.size()) };
        write_guest_state(capabilities, start);
    }

    /// Runs the guest until its next exit.
    pub fn run(&mut self) -> EntryResult {
        // SAFETY: this VMCS is current (the scheduler calls `switch_in`
        // first) with complete host, control and guest state.
        let result = unsafe { entry::enter(&mut self.registers, self.launched) };
        if result == EntryResult::Exited {
            self.launched = true;
        }
        result
    }

    /// Loads this vCPU's software-switched state into the CPU.
    pub fn switch_in(&self) {
        let state = &self.switched;
        // SAFETY: restoring guest values into registers the host does not
        // use (CR2, debug registers, SYSCALL MSRs, extended state); XCR0 was
        // validated when the guest set it.
        unsafe {
            core::arch::asm!("mov cr2, {}", in(reg) state.cr2, options(nostack));
            core::arch::asm!(
                "mov dr0, {}", "mov dr1, {}", "mov dr2, {}", "mov dr3, {}", "mov dr6, {}",
                in(reg) state.debug[0], in(reg) state.debug[1], in(reg) state.debug[2],
                in(reg) state.debug[3], in(reg) state.debug[4] | 0xffff_0ff0,
                options(nostack)
            );
            for (msr, value) in SWITCHED_MSRS.iter().zip(state.msrs) {
                wrmsr(*msr, value);
            }
            if has_xsave() {
                // XRSTOR only touches components enabled in XCR0 (SDM Vol. 1,
                // 13.8), so restore under the full mask: a guest still at
                // XCR0 = x87 uses SSE registers too. Then its own XCR0.
                let all = supported_xcr0();
                xsetbv(all);
                core::arch::asm!(
                    "xrstor64 [{}]", in(reg) self.xsave_area,
                    in("eax") all as u32, in("edx") (all >> 32) as u32,
                    options(nostack)
                );
                xsetbv(self.xcr0);
            }
        }
    }

    /// Saves this vCPU's software-switched state from the CPU.
    pub fn switch_out(&mut self) {
        let state = &mut self.switched;
        // SAFETY: reading registers and MSRs; XSAVE writes only into this
        // vCPU's own 64-byte-aligned area of the size CPUID reported.
        unsafe {
            core::arch::asm!("mov {}, cr2", out(reg) state.cr2, options(nostack));
            core::arch::asm!(
                "mov {}, dr0", "mov {}, dr1", "mov {}, dr2", "mov {}, dr3", "mov {}, dr6",
                out(reg) state.debug[0], out(reg) state.debug[1], out(reg) state.debug[2],
                out(reg) state.debug[3], out(reg) state.debug[4],
                options(nostack)
            );
            for (slot, msr) in state.msrs.iter_mut().zip(SWITCHED_MSRS) {
                *slot = rdmsr(msr);
            }
            if has_xsave() {
                // Save under the full mask, for the reason given in `switch_in`.
                let all = supported_xcr0();
                xsetbv(all);
                core::arch::asm!(
                    "xsave64 [{}]", in(reg) self.xsave_area,
                    in("eax") all as u32, in("edx") (all >> 32) as u32,
                    options(nostack)
                );
            }
        }
    }

    /// The VM-instruction error after a failed entry.
    pub fn instruction_error(&self) -> u32 {
        exit::INSTRUCTION_ERROR.read()
    }
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        // SAFETY: VMCLEAR flushes the VMCS out of the CPU before its page is
        // reused (SDM Vol. 3C, 25.11.1); the XSAVE area came from
        // `alloc_zeroed` with this layout.
        unsafe {
            let _ = x86::bits64::vmx::vmclear(self.vmcs.start);
            dealloc(self.xsave_area, self.xsave_layout);
        }
        crate::mm::free(self.vmcs);
    }
}

fn write_host_state() {
    let (tss_base, gdt_base) = crate::arch::gdt::bases();
    let mut idtr = x86::dtables::DescriptorTablePointer::<u64>::default();
    // SAFETY: reading control registers, descriptor-table registers and
    // MSRs has no side effects.
    unsafe {
        x86::dtables::sidt(&mut idtr);
        host::CR0.write(x86::controlregs::cr0().bits() as u64);
        host::CR3.write(x86::controlregs::cr3());
        host::CR4.write(x86::controlregs::cr4().bits() as u64);
        host::PAT.write(rdmsr(x86::msr::IA32_PAT));
        host::EFER.write(rdmsr(x86::msr::IA32_EFER));
    }
    use crate::arch::gdt::{KERNEL_CODE, KERNEL_DATA, TSS_SELECTOR};
    host::CS.write(KERNEL_CODE);
    for selector in [host::SS, host::DS, host::ES] {
        selector.write(KERNEL_DATA);
    }
    host::FS.write(0);
    host::GS.write(0);
    host::TR.write(TSS_SELECTOR);
    host::FS_BASE.write(0);
    host::GS_BASE.write(0);
    host::TR_BASE.write(tss_base);
    host::GDTR_BASE.write(gdt_base);
    host::IDTR_BASE.write(idtr.base as u64);
    host::SYSENTER_CS.write(0);
    host::SYSENTER_ESP.write(0);
    host::SYSENTER_EIP.write(0);
    host::RIP.write(entry::exit_address());
}

fn write_controls(capabilities: &Capabilities, structures: &VmStructures) {
    control::PIN_BASED.write(capabilities.pin);
    control::PRIMARY_PROCESSOR_BASED.write(capabilities.primary);
    control::SECONDARY_PROCESSOR_BASED.write(capabilities.secondary);
    control::EXIT.write(capabilities.exit);
    control::ENTRY.write(capabilities.entry);
    // Guest exceptions are the guest's business; tessera intercepts none.
    control::EXCEPTION_BITMAP.write(0);
    control::CR3_TARGET_COUNT.write(0);
    control::EXIT_MSR_STORE_COUNT.write(0);
    control::EXIT_MSR_LOAD_COUNT.write(0);
    control::ENTRY_MSR_LOAD_COUNT.write(0);
    control::ENTRY_INTERRUPTION_INFO.write(0);
    control::IO_BITMAP_A.write(structures.io_bitmaps);
    control::IO_BITMAP_B.write(structures.io_bitmaps + 4096);
    control::MSR_BITMAPS.write(structures.msr_bitmap);
    control::EPT_POINTER.write(structures.ept_pointer);
    if capabilities.vpid() {
        control::VPID.write(structures.vpid);
    }
    control::TSC_OFFSET.write(0);
}

/// The CR0 bits VMX forces (besides PE and PG, which unrestricted guest
/// frees) are owned by tessera: the guest sees its own value through the read
/// shadow, and a write that changes them exits.
pub fn cr0_mask(capabilities: &Capabilities) -> u64 {
    (capabilities.cr0_fixed0 & !(CR0_PE | CR0_PG)) | (!capabilities.cr0_fixed1 & 0xffff_ffff)
}

/// The CR4 bits tessera owns: VMXE and the other fixed bits.
pub fn cr4_mask(capabilities: &Capabilities) -> u64 {
    capabilities.cr4_fixed0 | (!capabilities.cr4_fixed1 & 0xffff_ffff)
}

/// The CR0 value the CPU runs with for a guest-visible `value`.
pub fn real_cr0(capabilities: &Capabilities, value: u64) -> u64 {
    apply_fixed_bits(
        value,
        capabilities.cr0_fixed0,
        capabilities.cr0_fixed1,
        CR0_PE | CR0_PG,
    )
}

/// The CR4 value the CPU runs with for a guest-visible `value`.
pub fn real_cr4(capabilities: &Capabilities, value: u64) -> u64 {
    apply_fixed_bits(value, capabilities.cr4_fixed0, capabilities.cr4_fixed1, 0)
}

fn write_segment(segment: guest::Segment, selector: u16, base: u64, limit: u32, rights: u32) {
    segment.selector.write(selector);
    segment.base.write(base);
    segment.limit.write(limit);
    segment.access.write(rights);
}

fn write_guest_state(capabilities: &Capabilities, start: &StartState) {
    let (cr0, cr4, efer) = match start.mode {
        CpuMode::Real => (CR0_ET, 0, 0),
        CpuMode::Protected => (CR0_ET | CR0_PE, 0, 0),
        CpuMode::Long => (CR0_ET | CR0_PE | CR0_PG, CR4_PAE, EFER_LME | EFER_LMA),
    };
    control::CR0_MASK.write(cr0_mask(capabilities));
    control::CR4_MASK.write(cr4_mask(capabilities));
    control::CR0_SHADOW.write(cr0);
    control::CR4_SHADOW.write(cr4);
    guest::CR0.write(real_cr0(capabilities, cr0));
    guest::CR4.write(real_cr4(capabilities, cr4));
    guest::CR3.write(if start.mode == CpuMode::Long {
        start.cr3
    } else {
        0
    });
    guest::EFER.write(efer);
    let entry = if start.mode == CpuMode::Long {
        capabilities.entry | entry_controls::IA32E_MODE_GUEST
    } else {
        capabilities.entry
    };
    control::ENTRY.write(entry);

    match start.mode {
        CpuMode::Real => {
            let cs = start.real_mode_cs;
            write_segment(guest::CS, cs, (cs as u64) << 4, 0xffff, access::REAL_CODE);
            for segment in [guest::DS, guest::ES, guest::SS, guest::FS, guest::GS] {
                write_segment(segment, 0, 0, 0xffff, access::REAL_DATA);
            }
            guest::IDTR_BASE.write(0);
            guest::IDTR_LIMIT.write(0x3ff);
        }
        CpuMode::Protected | CpuMode::Long => {
            let (selector, rights) = if start.mode == CpuMode::Long {
                (loader::CODE64_SELECTOR, access::CODE64)
            } else {
                (loader::CODE32_SELECTOR, access::CODE32)
            };
            write_segment(guest::CS, selector, 0, 0xffff_ffff, rights);
            for segment in [guest::DS, guest::ES, guest::SS, guest::FS, guest::GS] {
                write_segment(segment, loader::DATA_SELECTOR, 0, 0xffff_ffff, access::DATA);
            }
            guest::IDTR_BASE.write(0);
            guest::IDTR_LIMIT.write(0);
        }
    }
    write_segment(guest::LDTR, 0, 0, 0, access::UNUSABLE);
    write_segment(guest::TR, 0, 0, 0xff, access::TSS_BUSY);
    guest::GDTR_BASE.write(start.gdt_base);
    guest::GDTR_LIMIT.write(start.gdt_limit as u32);

    guest::DR7.write(0x400);
    guest::RSP.write(start.rsp);
    guest::RIP.write(start.rip);
    guest::RFLAGS.write(0x2);
    guest::PENDING_DEBUG_EXCEPTIONS.write(0);
    guest::SYSENTER_CS.write(0);
    guest::SYSENTER_ESP.write(0);
    guest::SYSENTER_EIP.write(0);
    guest::LINK_POINTER.write(u64::MAX);
    guest::DEBUGCTL.write(0);
    guest::PAT.write(PAT_DEFAULT);
    guest::INTERRUPTIBILITY.write(0);
    guest::ACTIVITY.write(0);
    guest::PREEMPTION_TIMER.write(u32::MAX);
    control::TSC_OFFSET.write(0);
}
