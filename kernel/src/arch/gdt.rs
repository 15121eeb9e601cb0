//! The GDT and the 64-bit TSS with its interrupt stack table: how they are
//! built and loaded. Each CPU's own copies live in its per-CPU structure
//! (`arch::percpu`).
//!
//! Double fault, NMI and machine check each run on their own IST stack
//! (Intel SDM Vol. 3A, 7.14.5 "Interrupt Stack Table"), so that a kernel stack
//! overflow — which faults on the guard page — still gets a crash report
//! instead of escalating to a triple fault.

use core::arch::asm;
use core::mem::size_of;

/// Kernel code selector.
pub const KERNEL_CODE: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DATA: u16 = 0x10;
/// TSS selector (a 16-byte system descriptor).
pub const TSS_SELECTOR: u16 = 0x18;

/// IST slot of the double-fault handler (1-based, as in the IDT gate).
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot of the NMI handler.
pub const IST_NMI: u8 = 2;
/// IST slot of the machine-check handler.
pub const IST_MACHINE_CHECK: u8 = 3;

/// The 64-bit task-state segment (SDM Vol. 3A, Figure 9-11).
#[repr(C, packed(4))]
pub struct TaskStateSegment {
    reserved0: u32,
    privilege_stacks: [u64; 3],
    reserved1: u64,
    interrupt_stacks: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    io_map_base: u16,
}

/// Descriptor of a 64-bit code segment: present, DPL 0, L=1 (SDM Vol. 3A, 3.4.5).
const CODE64: u64 = 0x00af_9a00_0000_ffff;
/// Descriptor of a data segment: present, writable, DPL 0.
const DATA: u64 = 0x00cf_9200_0000_ffff;

/// A CPU's descriptor table: null, code, data, and the 16-byte TSS
/// descriptor at [`TSS_SELECTOR`].
pub type Gdt = [u64; 5];

fn tss_descriptor(base: u64, limit: u64) -> [u64; 2] {
    // Available 64-bit TSS, type 0x9, present (SDM Vol. 3A, 9.2.3).
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

impl TaskStateSegment {
    /// A TSS whose interrupt stack table holds the given stack tops for the
    /// double-fault, NMI and machine-check handlers.
    pub fn new(double_fault: u64, nmi: u64, machine_check: u64) -> TaskStateSegment {
        let mut interrupt_stacks = [0u64; 7];
        interrupt_stacks[(IST_DOUBLE_FAULT - 1) as usize] = double_fault;
        interrupt_stacks[(IST_NMI - 1) as usize] = nmi;
        interrupt_stacks[(IST_MACHINE_CHECK - 1) as usize] = machine_check;
        TaskStateSegment {
            reserved0: 0,
            privilege_stacks: [0; 3],
            reserved1: 0,
            interrupt_stacks,
            reserved2: 0,
            reserved3: 0,
            // No I/O permission bitmap: the base lies past the limit.
            io_map_base: size_of::<TaskStateSegment>() as u16,
        }
    }
}

/// The GDT for a CPU whose TSS lives at `tss`.
pub fn build(tss: &TaskStateSegment) -> Gdt {
    let base = tss as *const TaskStateSegment as u64;
    let [low, high] = tss_descriptor(base, size_of::<TaskStateSegment>() as u64 - 1);
    [0, CODE64, DATA, low, high]
}

/// Loads `gdt` on this CPU and reloads every segment register and TR.
///
/// # Safety
/// `gdt` must have been built by [`build`] for a TSS that, like the GDT
/// itself, stays in place for as long as this CPU runs.
pub unsafe fn load(gdt: &Gdt) {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (size_of::<Gdt>() - 1) as u16,
        base: gdt.as_ptr() as u64,
    };
    // SAFETY: the GDT holds valid code/data descriptors at the selectors
    // reloaded here and an available TSS at TSS_SELECTOR (caller's promise
    // that both outlive their use); the far return reloads CS.
    unsafe {
        asm!(
            "lgdt [{pointer}]",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "ltr {tss:x}",
            pointer = in(reg) &pointer,
            data = in(reg) KERNEL_DATA as u64,
            code = const KERNEL_CODE as u64,
            tss = in(reg) TSS_SELECTOR as u64,
            tmp = lateout(reg) _,
        );
    }
}
