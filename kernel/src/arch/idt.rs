//! The IDT and the crash report.
//!
//! tessera runs with interrupts masked on its own side (guests take their
//! interrupts through VM exits), so every vector that reaches this IDT is a
//! hypervisor bug or a hardware error: the handler prints everything needed to
//! find it and halts the machine. A silent triple fault is never acceptable.
//! The exceptions are the idle timer's wake-up and the APIC's spurious
//! vector (see `idle.rs`), whose gates only return: taking the interrupt
//! is all that waking from HLT needs.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};
use core::arch::{asm, global_asm};
use core::mem::size_of;
use spin::Once;

/// What the stubs push, lowest address first: the general registers, the
/// vector, the error code (0 when the CPU pushes none), then the CPU's frame.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// General-purpose registers, RAX first (the stub pushes R15 first).
    pub registers: super::registers::GeneralRegisters,
    /// Vector number.
    pub vector: u64,
    /// Error code, or 0.
    pub error_code: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// Interrupted CS.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

macro_rules! exception_stubs {
    ($($vector:literal $kind:ident),* $(,)?) => {
        $(exception_stubs!(@one $vector $kind);)*
        /// Stub addresses for vectors 0..=31.
        fn exception_stub_addresses() -> [u64; 32] {
            [$(stub_address!($vector)),*]
        }
    };
    (@one $vector:literal plain) => {
        global_asm!(concat!(
            ".section .text\n.global exception_stub_", $vector, "\nexception_stub_", $vector, ":\n",
            "push 0\npush ", $vector, "\njmp exception_common\n"
        ));
    };
    // The CPU pushed an error code already (SDM Vol. 3A, 7.13 "Error Code").
    (@one $vector:literal error) => {
        global_asm!(concat!(
            ".section .text\n.global exception_stub_", $vector, "\nexception_stub_", $vector, ":\n",
            "push ", $vector, "\njmp exception_common\n"
        ));
    };
}

/// The address of `exception_stub_<vector>`: symbol names cannot be built from
/// a literal in Rust without a proc macro, but they can in the assembler.
macro_rules! stub_address {
    ($vector:literal) => {{
        let address: u64;
        // SAFETY: only computes the address of a stub symbol defined above.
        unsafe {
            asm!(concat!("lea {0}, [rip + exception_stub_", $vector, "]"), out(reg) address,
                 options(nomem, nostack, pure));
        }
        address
    }};
}

exception_stubs!(
    0 plain, 1 plain, 2 plain, 3 plain, 4 plain, 5 plain, 6 plain, 7 plain,
    8 error, 9 plain, 10 error, 11 error, 12 error, 13 error, 14 error, 15 plain,
    16 plain, 17 error, 18 plain, 19 plain, 20 plain, 21 error, 22 plain, 23 plain,
    24 plain, 25 plain, 26 plain, 27 plain, 28 plain, 29 error, 30 error, 31 plain,
);

global_asm!(
    r#"
    .section .text
    .global idle_wake_stub
idle_wake_stub:
    iretq

    .global unexpected_interrupt_stub
unexpected_interrupt_stub:
    push 0
    push 0xffff
    jmp exception_common

exception_common:
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
    mov rdi, rsp
    cld
    call exception_report
1:  cli
    hlt
    jmp 1b
"#
);

extern "C" {
    fn unexpected_interrupt_stub();
    fn idle_wake_stub();
}

/// One 16-byte interrupt gate (SDM Vol. 3A, Figure 7-8).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist,
            attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static IDT: Once<[Gate; 256]> = Once::new();

/// Loads the IDT on this CPU.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut gates = [Gate::interrupt(unexpected_interrupt_stub as *const () as u64, 0); 256];
        for (vector, address) in exception_stub_addresses().into_iter().enumerate() {
            let ist = match vector {
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MACHINE_CHECK,
                _ => 0,
            };
            gates[vector] = Gate::interrupt(address, ist);
        }
        for vector in [super::idle::WAKE_VECTOR, super::idle::SPURIOUS_VECTOR] {
            gates[usize::from(vector)] = Gate::interrupt(idle_wake_stub as *const () as u64, 0);
        }
        gates
    });
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is 'static and every gate points at a stub above.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(nostack)) };
}

/// The architectural name of an exception vector (SDM Vol. 3A, Table 7-1).
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point",
        20 => "#VE virtualization exception",
        21 => "#CP control protection",
        0xffff => "unexpected interrupt (vector not an exception)",
        _ => "reserved vector",
    }
}

/// Reads the control registers for the report.
fn control_registers() -> [u64; 4] {
    let (cr0, cr2, cr3, cr4): (u64, u64, u64, u64);
    // SAFETY: reading control registers has no side effects at CPL 0.
    unsafe {
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack));
        asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
    }
    [cr0, cr2, cr3, cr4]
}

#[no_mangle]
extern "C" fn exception_report(frame: &ExceptionFrame) -> ! {
    // SAFETY: this path never returns to whatever held the console.
    unsafe { crate::console::force_unlock() };
    let [cr0, cr2, cr3, cr4] = control_registers();
    crate::println!();
    crate::println!(
        "tessera: CRASH: CPU exception {} ({}) in the hypervisor",
        frame.vector,
        exception_name(frame.vector)
    );
    crate::println!(
        "  error code {:#x}   RIP {:#018x}   CS {:#06x}   RFLAGS {:#010x}",
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags
    );
    crate::println!("  RSP {:#018x}   SS {:#06x}", frame.rsp, frame.ss);
    crate::println!(
        "  CR0 {:#018x}   CR2 {:#018x}   CR3 {:#018x}   CR4 {:#018x}",
        cr0,
        cr2,
        cr3,
        cr4
    );
    crate::println!(
        "  RAX {:#018x}   RBX {:#018x}   RCX {:#018x}   RDX {:#018x}",
        frame.registers.rax,
        frame.registers.rbx,
        frame.registers.rcx,
        frame.registers.rdx
    );
    crate::println!(
        "  RSI {:#018x}   RDI {:#018x}   RBP {:#018x}   R8  {:#018x}",
        frame.registers.rsi,
        frame.registers.rdi,
        frame.registers.rbp,
        frame.registers.r8
    );
    crate::println!(
        "  R9  {:#018x}   R10 {:#018x}   R11 {:#018x}   R12 {:#018x}",
        frame.registers.r9,
        frame.registers.r10,
        frame.registers.r11,
        frame.registers.r12
    );
    crate::println!(
        "  R13 {:#018x}   R14 {:#018x}   R15 {:#018x}",
        frame.registers.r13,
        frame.registers.r14,
        frame.registers.r15
    );
    if frame.vector == 14 {
        crate::println!(
            "  page fault at {:#x}: {} {} access, {}",
            cr2,
            if frame.error_code & 4 != 0 {
                "user"
            } else {
                "supervisor"
            },
            if frame.error_code & 16 != 0 {
                "instruction fetch"
            } else if frame.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if frame.error_code & 1 != 0 {
                "protection violation"
            } else {
                "page not present (a stack guard page, if just below a stack)"
            }
        );
    }
    let guards = super::identity_map::kernel_layout().guards;
    let names = ["boot", "double-fault", "NMI", "machine-check"];
    for (guard, name) in guards.iter().zip(names) {
        if (*guard..*guard + 4096).contains(&cr2) && matches!(frame.vector, 8 | 14) {
            crate::println!(
                "  CR2 lies in the guard page below the {} stack: a stack overflow",
                name
            );
        }
    }
    crate::println!("tessera: system halted");
    crate::console::drain();
    super::halt_forever()
}
