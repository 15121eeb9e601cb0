//! tessera's own address space: an identity map of all physical memory.
//!
//! 2 MiB (or 1 GiB) pages everywhere, except around the kernel image, which
//! gets 4 KiB pages so that each section has its own permissions: text
//! read-only and executable, rodata read-only, data and stacks writable and
//! no-execute, stack guard pages and page 0 not present (so that a stack
//! overflow or a null dereference faults at once). CR0.WP is set so the
//! read-only bits bind ring 0 too (Intel SDM Vol. 3A, 2.5 "Control Registers").

use crate::mm::page_tables::{HostPaging, MapError, PageSize, PageTables};
use crate::mm::phys::align_up;
use crate::mm::FrameTables;
use core::ptr::addr_of;

extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
    static __boot_stack_guard: u8;
    static __df_stack_guard: u8;
    static __nmi_stack_guard: u8;
    static __mc_stack_guard: u8;
}

/// The kernel image's section boundaries.
pub struct KernelLayout {
    /// Start of the image (text).
    pub start: u64,
    /// End of text.
    pub text_end: u64,
    /// End of rodata.
    pub rodata_end: u64,
    /// End of the image (data, bss, stacks).
    pub end: u64,
    /// Guard pages under the stacks.
    pub guards: [u64; 4],
}

/// The linker's layout of the running kernel.
pub fn kernel_layout() -> KernelLayout {
    KernelLayout {
        start: addr_of!(__kernel_start) as u64,
        text_end: addr_of!(__text_end) as u64,
        rodata_end: addr_of!(__rodata_end) as u64,
        end: addr_of!(__kernel_end) as u64,
        guards: [
            addr_of!(__boot_stack_guard) as u64,
            addr_of!(__df_stack_guard) as u64,
            addr_of!(__nmi_stack_guard) as u64,
            addr_of!(__mc_stack_guard) as u64,
        ],
    }
}

/// Whether the CPU honours the NX bit (IA32_EFER.NXE, set at entry when
/// CPUID.80000001H:EDX.NX says so). Setting bit 63 without it is a reserved-
/// bit fault.
fn nx_enabled() -> bool {
    // SAFETY: reading IA32_EFER is always allowed in long mode.
    unsafe { x86::msr::rdmsr(x86::msr::IA32_EFER) & (1 << 11) != 0 }
}

/// Builds the identity map of `[0, top)` and switches to it.
pub fn init(top: u64, huge_pages: bool) -> Result<(), MapError> {
    let layout = kernel_layout();
    let nx = if nx_enabled() {
        HostPaging::NO_EXECUTE
    } else {
        0
    };
    let present = HostPaging::PRESENT;
    let data = present | HostPaging::WRITABLE | nx;
    // The boot tables map 4 GiB; page tables must lie inside that until the
    // switch.
    let mut memory = FrameTables::below(1 << 32);
    let mut tables = PageTables::<HostPaging>::new(&mut memory)?;

    let kernel_low = layout.start & !(PageSize::Large.bytes() - 1);
    let kernel_high = align_up(layout.end, PageSize::Large.bytes());
    let top = align_up(top, PageSize::Large.bytes()).max(kernel_high);

    // The first 2 MiB in small pages, page 0 left out.
    tables.map_range(&mut memory, 0x1000, 0x1000, 0x1f_f000, data, false)?;
    // The 2 MiB blocks around the image, page by page.
    let mut page = kernel_low.max(0x20_0000);
    while page < kernel_high {
        let flags = if layout.guards.contains(&page) {
            None
        } else if page >= layout.start && page < layout.text_end {
            Some(present)
        } else if page >= layout.text_end && page < layout.rodata_end {
            Some(present | nx)
        } else {
            Some(data)
        };
        if let Some(flags) = flags {
            tables.map(&mut memory, page, page, PageSize::Small, flags)?;
        }
        page += 4096;
    }
    // Everything else with large pages.
    let low_end = kernel_low.max(0x20_0000);
    tables.map_range(
        &mut memory,
        0x20_0000,
        0x20_0000,
        low_end - 0x20_0000,
        data,
        false,
    )?;
    tables.map_range(
        &mut memory,
        kernel_high,
        kernel_high,
        top - kernel_high,
        data,
        huge_pages,
    )?;

    // SAFETY: the new tables map every address the kernel uses (its image,
    // its stacks, all RAM, the low MMIO hole) with the same identity
    // translation as the boot tables, so execution continues seamlessly.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) tables.root(), options(nostack));
    }
    Ok(())
}
