//! What a VMCS holds before its vCPU first runs: the host state every exit
//! returns to, the execution controls, and the guest's start state — the
//! values a reset writes, so that nothing of a previous run survives it.

use super::capabilities::{entry_controls, Capabilities};
use super::entry;
use super::vcpu::VmStructures;
use super::vmcs::{control, guest, host};
use crate::loader;
use crate::options::CpuMode;
use crate::rules::bits::{cr0, cr4, efer};
use crate::vmm::vcpu::StartState;
use crate::vmx::controls::apply_fixed_bits;
use x86::msr::rdmsr;

/// The power-on value of IA32_PAT (SDM Vol. 3A, 13.12.4).
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
/// DR7 after reset: only the always-one bit 10 (SDM Vol. 3B, 19.2.4).
const DR7_DEFAULT: u64 = 0x400;
/// #DB and #AC: intercepted, because their delivery can raise the same
/// exception again and loop forever inside the CPU, where no VM exit or
/// interrupt can end it (CVE-2015-8104, CVE-2015-5307; SDM Vol. 3C, 27.2).
const INTERCEPTED_EXCEPTIONS: u32 = (1 << 1) | (1 << 17);

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

/// The CR0 value the CPU runs with for a guest-visible `value`: the VMX
/// fixed bits (PE and PG are free under unrestricted guest), and never CD or
/// NW, which tessera keeps off the real CPU.
pub fn real_cr0(capabilities: &Capabilities, value: u64) -> u64 {
    apply_fixed_bits(
        crate::rules::control_registers::hardware_cr0(value),
        capabilities.cr0_fixed0,
        capabilities.cr0_fixed1,
        cr0::PE | cr0::PG,
    )
}

/// The CR4 value the CPU runs with for a guest-visible `value`.
pub fn real_cr4(capabilities: &Capabilities, value: u64) -> u64 {
    apply_fixed_bits(value, capabilities.cr4_fixed0, capabilities.cr4_fixed1, 0)
}

/// The guest state that VM-entry checks look at (SDM Vol. 3C, 28.3.1), for
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
        "CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x} RIP {:#x} RSP {:#x} RFLAGS {:#x} entry controls {:#x} entry event {:#x} activity {} interruptibility {:#x}; {}; {}; {}; {}; GDTR {:#x}/{:#x}",
        guest::CR0.read(),
        guest::CR3.read(),
        guest::CR4.read(),
        guest::EFER.read(),
        guest::RIP.read(),
        guest::RSP.read(),
        guest::RFLAGS.read(),
        control::ENTRY.read(),
        control::ENTRY_INTERRUPTION_INFO.read(),
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

pub fn write_host_state() {
    let cpu = crate::arch::percpu::this_cpu();
    let (tss_base, gdt_base) = cpu.descriptor_bases();
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
    // GS points at the CPU's own structure; every exit restores it.
    host::GS_BASE.write(cpu.address());
    host::TR_BASE.write(tss_base);
    host::GDTR_BASE.write(gdt_base);
    host::IDTR_BASE.write(idtr.base as u64);
    host::SYSENTER_CS.write(0);
    host::SYSENTER_ESP.write(0);
    host::SYSENTER_EIP.write(0);
    host::RIP.write(entry::exit_address());
}

pub fn write_controls(capabilities: &Capabilities, structures: &VmStructures) {
    control::PIN_BASED.write(capabilities.pin);
    control::PRIMARY_PROCESSOR_BASED.write(capabilities.primary);
    control::SECONDARY_PROCESSOR_BASED.write(capabilities.secondary);
    control::EXIT.write(capabilities.exit);
    control::ENTRY.write(capabilities.entry);
    control::EXCEPTION_BITMAP.write(INTERCEPTED_EXCEPTIONS);
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

/// The CR0 bits tessera owns: the bits VMX forces (besides PE and PG, which
/// unrestricted guest frees), and CD/NW, which tessera keeps off the CPU.
/// The guest sees its own value through the read shadow, and a write that
/// changes an owned bit exits.
fn cr0_mask(capabilities: &Capabilities) -> u64 {
    (capabilities.cr0_fixed0 & !(cr0::PE | cr0::PG))
        | (!capabilities.cr0_fixed1 & 0xffff_ffff)
        | cr0::CD
        | cr0::NW
}

/// The CR4 bits tessera owns: VMXE and the other fixed bits.
fn cr4_mask(capabilities: &Capabilities) -> u64 {
    capabilities.cr4_fixed0 | (!capabilities.cr4_fixed1 & 0xffff_ffff)
}

fn write_segment(segment: guest::Segment, selector: u16, base: u64, limit: u32, rights: u32) {
    segment.selector.write(selector);
    segment.base.write(base);
    segment.limit.write(limit);
    segment.access.write(rights);
}

/// Writes the whole start state, including every event and exit-related
/// field, so that nothing of a previous run (a pending injection, an
/// interrupt shadow, a debug exception) survives a restart.
pub fn write_guest_state(capabilities: &Capabilities, start: &StartState) {
    let (cr0, cr4, efer) = match start.mode {
        CpuMode::Real => (cr0::ET, 0, 0),
        CpuMode::Protected => (cr0::ET | cr0::PE, 0, 0),
        CpuMode::Long => (cr0::ET | cr0::PE | cr0::PG, cr4::PAE, efer::LME | efer::LMA),
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
    control::ENTRY_INTERRUPTION_INFO.write(0);
    control::ENTRY_EXCEPTION_ERROR_CODE.write(0);
    // No interrupt-window request survives a restart.
    control::PRIMARY_PROCESSOR_BASED.write(capabilities.primary);

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

    guest::DR7.write(DR7_DEFAULT);
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
    for field in guest::PDPTES {
        field.write(0);
    }
    // The guest TSC starts at 0 with the VM (SDM Vol. 3C, 25.3: RDTSC
    // returns the host TSC plus this offset with "use TSC offsetting").
    control::TSC_OFFSET.write(start.tsc_offset);
}
