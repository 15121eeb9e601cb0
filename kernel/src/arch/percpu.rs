//! Per-CPU state: everything one physical CPU owns — its GDT and TSS (with
//! the IST stacks they point at), its VMXON region, the vCPU loaded on it and
//! its scheduler.
//!
//! Each CPU finds its own structure through its GS base (IA32_GS_BASE points
//! at the structure, whose first word is its own address: `mov rax, gs:[0]`),
//! which VM exits restore from the VMCS host-state area. Today only the boot
//! CPU has one ([`init_boot_cpu`]); application processors will build theirs
//! the same way from frames of their own when they are brought up.

use super::gdt::{self, Gdt, TaskStateSegment};
use crate::vmm::sched::RoundRobin;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::{Mutex, Once};

/// The stack tops of the exception handlers that need stacks of their own.
#[derive(Debug, Clone, Copy)]
pub struct InterruptStacks {
    /// Double fault (IST 1).
    pub double_fault: u64,
    /// NMI (IST 2).
    pub nmi: u64,
    /// Machine check (IST 3).
    pub machine_check: u64,
}

/// No vCPU is loaded on this CPU.
const NO_VCPU: usize = usize::MAX;

/// One CPU's own state. `repr(C)` keeps `this` first, at GS:[0].
#[repr(C)]
pub struct PerCpu {
    /// The structure's own address, read through GS.
    this: u64,
    /// The CPU's index (0 for the boot CPU).
    pub index: u32,
    tss: TaskStateSegment,
    gdt: Gdt,
    stacks: InterruptStacks,
    /// Physical address of the VMXON region once VMX is on (0 before).
    vmxon_region: AtomicU64,
    /// The index of the VM whose vCPU is loaded here, or [`NO_VCPU`].
    current_vcpu: AtomicUsize,
    /// The round-robin state of the VMs this CPU runs. Taken at slice
    /// boundaries only, never on the exit path.
    pub scheduler: Mutex<RoundRobin>,
}

extern "C" {
    static __df_stack_top: u8;
    static __nmi_stack_top: u8;
    static __mc_stack_top: u8;
}

static BOOT_CPU: Once<PerCpu> = Once::new();

/// Builds the boot CPU's structure around the IST stacks the boot code
/// reserved (each with a guard page below it), loads its GDT and TSS and
/// points GS at it.
pub fn init_boot_cpu() -> &'static PerCpu {
    let stacks = InterruptStacks {
        double_fault: addr_of!(__df_stack_top) as u64,
        nmi: addr_of!(__nmi_stack_top) as u64,
        machine_check: addr_of!(__mc_stack_top) as u64,
    };
    let cpu = BOOT_CPU.call_once(|| PerCpu {
        this: 0,
        index: 0,
        tss: TaskStateSegment::new(stacks.double_fault, stacks.nmi, stacks.machine_check),
        gdt: [0; 5],
        stacks,
        vmxon_region: AtomicU64::new(0),
        current_vcpu: AtomicUsize::new(NO_VCPU),
        scheduler: Mutex::new(RoundRobin::default()),
    });
    // The structure is in its final place now: point the GDT's TSS
    // descriptor and the self pointer at it.
    let address = cpu as *const PerCpu as u64;
    let gdt = gdt::build(&cpu.tss);
    // SAFETY: `cpu` lives in a static that is never moved or freed; the GDT
    // and the self pointer are written once, before anything reads them
    // (GS and GDTR still point elsewhere), by the only CPU running.
    unsafe {
        let cpu = cpu as *const PerCpu as *mut PerCpu;
        core::ptr::addr_of_mut!((*cpu).gdt).write(gdt);
        core::ptr::addr_of_mut!((*cpu).this).write(address);
    }
    // SAFETY: the GDT and TSS live in the static per-CPU structure, built by
    // `gdt::build` for that TSS.
    unsafe { gdt::load(&cpu.gdt) };
    // SAFETY: IA32_GS_BASE only changes what GS-relative accesses reach;
    // tessera uses GS for nothing but this structure.
    unsafe { x86::msr::wrmsr(x86::msr::IA32_GS_BASE, address) };
    cpu
}

/// This CPU's structure.
pub fn this_cpu() -> &'static PerCpu {
    let address: u64;
    // SAFETY: GS:[0] holds the structure's own address on every CPU that
    // ran its `init_*` (the boot CPU does so first thing in kernel_main);
    // the structure is 'static.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) address, options(nostack, readonly, preserves_flags));
        &*(address as *const PerCpu)
    }
}

impl PerCpu {
    /// The address of this structure, for the VMCS host GS base.
    pub fn address(&self) -> u64 {
        self.this
    }

    /// The TSS base and GDT base, which the VMCS host-state area needs.
    pub fn descriptor_bases(&self) -> (u64, u64) {
        (addr_of!(self.tss) as u64, self.gdt.as_ptr() as u64)
    }

    /// The IST stack tops.
    pub fn stacks(&self) -> InterruptStacks {
        self.stacks
    }

    /// Records the VMXON region once VMX is on.
    pub fn set_vmxon_region(&self, physical: u64) {
        self.vmxon_region.store(physical, Ordering::Relaxed);
    }

    /// The VMXON region, if VMX is on.
    pub fn vmxon_region(&self) -> Option<u64> {
        match self.vmxon_region.load(Ordering::Relaxed) {
            0 => None,
            region => Some(region),
        }
    }

    /// The index of the VM whose vCPU is loaded on this CPU.
    pub fn current_vcpu(&self) -> Option<usize> {
        match self.current_vcpu.load(Ordering::Relaxed) {
            NO_VCPU => None,
            index => Some(index),
        }
    }

    /// Records which VM's vCPU is loaded here (`None`: none).
    pub fn set_current_vcpu(&self, index: Option<usize>) {
        self.current_vcpu
            .store(index.unwrap_or(NO_VCPU), Ordering::Relaxed);
    }
}
