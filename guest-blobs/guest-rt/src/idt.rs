//! A minimal 64-bit IDT for the 20 architectural exception vectors (0-19),
//! and probes: instructions that are expected to fault.
//!
//! [`install`] loads a table whose every vector reports the exception as a
//! line `<name>: unexpected exception #UD (vector 6), error code …, at RIP …
//! (RSP …, RFLAGS …)` (plus the faulting address for a #PF) and exits with 1,
//! so a fault the hypervisor injects is a readable line instead of a triple
//! fault.
//!
//! [`probe!`](crate::probe) runs a piece of inline assembly with a *resume
//! address* armed: if it raises one of the vectors the probe catches, the
//! handler records the vector, error code and (for a #PF) CR2, disarms, and
//! resumes right after the assembly instead of reporting. The probe
//! evaluates to the [`Fault`], or `None` when nothing was raised. Any other vector, and any
//! exception while no probe is armed, is reported as above.
//!
//! The handlers run on the interrupted stack (CPL 0 to CPL 0, no IST), which
//! is safe because `x86_64-unknown-none` code keeps no red zone. A caught
//! fault resumes with every general register as it was at the faulting
//! instruction (RFLAGS and RSP from the exception frame).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::{exit, println};

/// Number of vectors in the table: the architectural exceptions 0 to 19.
pub const VECTORS: usize = 20;

/// Vector numbers (SDM Vol. 3A, Table 6-1) and the masks [`probe!`](crate::probe) takes.
pub mod vector {
    /// #DE, divide error.
    pub const DE: u8 = 0;
    /// #BP, breakpoint (INT3).
    pub const BP: u8 = 3;
    /// #UD, invalid opcode.
    pub const UD: u8 = 6;
    /// #NM, device not available.
    pub const NM: u8 = 7;
    /// #DF, double fault.
    pub const DF: u8 = 8;
    /// #GP, general protection.
    pub const GP: u8 = 13;
    /// #PF, page fault.
    pub const PF: u8 = 14;
    /// Every vector of the table: a probe that catches whatever is raised.
    pub const ALL: u32 = (1 << super::VECTORS) - 1;
}

/// While a probe is armed: where to resume after a caught fault; else 0.
/// Written by [`probe!`](crate::probe) and the handler only.
#[doc(hidden)]
pub static RESUME: AtomicU64 = AtomicU64::new(0);
/// The vectors the armed probe catches, one bit each.
static CATCH: AtomicU32 = AtomicU32::new(0);
/// The vector the last probe caught, or [`NO_FAULT`].
static CAUGHT_VECTOR: AtomicU32 = AtomicU32::new(NO_FAULT);
/// Its error code (0 for vectors without one).
static CAUGHT_ERROR: AtomicU64 = AtomicU64::new(0);
/// CR2 when it was a #PF, else 0: read in the handler, before anything else
/// can fault.
static CAUGHT_CR2: AtomicU64 = AtomicU64::new(0);
const NO_FAULT: u32 = u32::MAX;

core::arch::global_asm!(
    ".section .text.guest_rt_idt, \"ax\", @progbits",
    // Stubs: make every frame [vector, error code, RIP, CS, RFLAGS, RSP, SS].
    // The CPU pushes an error code only for 8, 10-14 and 17.
    ".irp vector, 0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19",
    "guest_rt_exception_\\vector:",
    "    push 0",
    "    push \\vector",
    "    jmp guest_rt_exception_common",
    ".endr",
    ".irp vector, 8, 10, 11, 12, 13, 14, 17",
    "guest_rt_exception_\\vector:",
    "    push \\vector",
    "    jmp guest_rt_exception_common",
    ".endr",
    "",
    "guest_rt_exception_common:",
    "    push rax",
    "    push rcx",
    // [rsp + 16] vector, [rsp + 24] error code, [rsp + 32] RIP.
    // An armed probe that catches this vector: record, disarm, resume.
    "    mov rax, qword ptr [rip + {resume}]",
    "    test rax, rax",
    "    jz 2f",
    "    mov ecx, dword ptr [rsp + 16]",
    "    bt dword ptr [rip + {catch}], ecx",
    "    jnc 2f",
    "    mov qword ptr [rsp + 32], rax",
    "    mov qword ptr [rip + {resume}], 0",
    "    mov dword ptr [rip + {caught_vector}], ecx",
    "    mov rax, qword ptr [rsp + 24]",
    "    mov qword ptr [rip + {caught_error}], rax",
    // The faulting address, for a #PF only (the flags are the frame's on IRETQ).
    "    xor eax, eax",
    "    cmp ecx, 14",
    "    jne 4f",
    "    mov rax, cr2",
    "4:  mov qword ptr [rip + {caught_cr2}], rax",
    "    pop rcx",
    "    pop rax",
    "    add rsp, 16",
    "    iretq",
    // Anything else: report it from Rust, which does not return. RSP is 8
    // mod 16 here (the CPU aligned it before pushing 5 or 6 quadwords, the
    // stub made it 7); realign for the call.
    "2:  pop rcx",
    "    pop rax",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {report}",
    "3:  cli",
    "    hlt",
    "    jmp 3b",
    "",
    // The stubs' addresses, by vector, for `install`.
    ".section .rodata.guest_rt_idt, \"a\", @progbits",
    ".balign 8",
    "guest_rt_exception_stubs:",
    ".irp vector, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19",
    "    .quad guest_rt_exception_\\vector",
    ".endr",
    resume = sym RESUME,
    catch = sym CATCH,
    caught_vector = sym CAUGHT_VECTOR,
    caught_error = sym CAUGHT_ERROR,
    caught_cr2 = sym CAUGHT_CR2,
    report = sym report,
);

extern "C" {
    /// The table filled by the `.irp` above: `VECTORS` stub addresses.
    static guest_rt_exception_stubs: [u64; VECTORS];
}

/// What the common stub leaves on the stack.
#[repr(C)]
struct Frame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The mnemonics of vectors 0-19 (SDM Vol. 3A, Table 6-1).
const NAMES: [&str; VECTORS] = [
    "#DE",
    "#DB",
    "NMI",
    "#BP",
    "#OF",
    "#BR",
    "#UD",
    "#NM",
    "#DF",
    "vector 9",
    "#TS",
    "#NP",
    "#SS",
    "#GP",
    "#PF",
    "vector 15",
    "#MF",
    "#AC",
    "#MC",
    "#XM",
];

/// The mnemonic of `vector` ("#GP"), or "?" beyond the table.
pub fn name(vector: u8) -> &'static str {
    NAMES.get(vector as usize).copied().unwrap_or("?")
}

/// An exception a probe caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The vector.
    pub vector: u8,
    /// The error code the CPU pushed, 0 for vectors without one.
    pub error_code: u64,
    /// CR2, the faulting linear address, for a #PF; 0 for other vectors.
    pub cr2: u64,
}

impl Fault {
    /// The vector's mnemonic, e.g. "#GP".
    pub fn name(&self) -> &'static str {
        name(self.vector)
    }
}

/// The guest's name for report lines, set by [`install`].
struct Name(UnsafeCell<&'static str>);

// SAFETY: one vCPU; only `install` writes it, before any handler can run.
unsafe impl Sync for Name {}

static GUEST_NAME: Name = Name(UnsafeCell::new("guest"));

fn guest_name() -> &'static str {
    // SAFETY: written only by `install`, never concurrently with this read.
    unsafe { *GUEST_NAME.0.get() }
}

/// Called by the common stub for every exception no probe catches.
extern "C" fn report(frame: &Frame) -> ! {
    println!(
        "{}: unexpected exception {} (vector {}), error code {:#x}, at RIP {:#x} (RSP {:#x}, RFLAGS {:#x})",
        guest_name(),
        name(frame.vector as u8),
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.rsp,
        frame.rflags
    );
    if frame.vector == u64::from(vector::PF) {
        let cr2: u64;
        // SAFETY: reading CR2 has no side effect.
        unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
        println!("{}: the #PF was at {cr2:#x}", guest_name());
    }
    exit(1)
}

/// One 16-byte interrupt gate (SDM Vol. 3A, 6.14.1).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Gate([u64; 2]);

/// The IDT; written once by [`install`] before LIDT.
struct Table(UnsafeCell<[Gate; VECTORS]>);

// SAFETY: one vCPU, and only `install` writes the table, before the CPU uses it.
unsafe impl Sync for Table {}

static IDT: Table = Table(UnsafeCell::new([Gate([0; 2]); VECTORS]));

/// The operand of LIDT.
#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Builds the IDT (interrupt gates in the current code segment) and loads
/// it; `guest` starts the report lines. Call it once, before any probe.
pub fn install(guest: &'static str) {
    // SAFETY: the CPU does not use the IDT yet, so no handler reads the name.
    unsafe { *GUEST_NAME.0.get() = guest };
    let cs: u16;
    // SAFETY: reading CS has no side effect.
    unsafe {
        core::arch::asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: the table is initialised by the .irp above and never written.
    let stubs = unsafe { &*core::ptr::addr_of!(guest_rt_exception_stubs) };
    // SAFETY: nothing else references IDT, and the CPU does not use it yet.
    let table = unsafe { &mut *IDT.0.get() };
    for (gate, &handler) in table.iter_mut().zip(stubs) {
        // Offset 15:0, selector, IST 0, type 0xE (64-bit interrupt gate),
        // DPL 0, present, offset 31:16; then offset 63:32.
        gate.0[0] = (handler & 0xffff)
            | (u64::from(cs) << 16)
            | (0x8e << 40)
            | ((handler >> 16) & 0xffff) << 48;
        gate.0[1] = handler >> 32;
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<[Gate; VECTORS]>() - 1) as u16,
        base: table.as_ptr() as u64,
    };
    // SAFETY: the table is static, complete, and its gates point at the stubs
    // above, which handle every vector it covers.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags))
    };
}

/// Arms the next probe to catch the vectors in `catch`; part of [`probe!`](crate::probe).
#[doc(hidden)]
pub fn arm(catch: u32) {
    CATCH.store(catch, Ordering::SeqCst);
    CAUGHT_VECTOR.store(NO_FAULT, Ordering::SeqCst);
}

/// What the probe just run caught; part of [`probe!`](crate::probe).
#[doc(hidden)]
pub fn caught() -> Option<Fault> {
    CATCH.store(0, Ordering::SeqCst);
    match CAUGHT_VECTOR.swap(NO_FAULT, Ordering::SeqCst) {
        NO_FAULT => None,
        vector => Some(Fault {
            vector: vector as u8,
            error_code: CAUGHT_ERROR.load(Ordering::SeqCst),
            cr2: CAUGHT_CR2.load(Ordering::SeqCst),
        }),
    }
}

/// Runs inline assembly that may fault, after [`install`]; evaluates to
/// `Option<Fault>`: the exception caught (with CR2 for a #PF), or `None`.
///
/// `probe!(catch, ["template", …], operands…)`: `catch` is a mask of the
/// vectors to catch (`1 << vector::GP`, or `vector::ALL`); the templates and
/// operands are those of `asm!`, except that operands must be named or
/// explicit registers (no positional `{}`), and the local label `7373` is
/// taken. On a caught fault execution resumes after the last template line,
/// with the registers as they were at the fault, so outputs are then only
/// meaningful for what the faulting instruction does not write. Must be used
/// in an `unsafe` block: the assembly is the caller's to vouch for.
#[macro_export]
macro_rules! probe {
    ($catch:expr, [$($template:literal),+ $(,)?] $(, $($operands:tt)*)?) => {{
        $crate::idt::arm($catch);
        core::arch::asm!(
            "lea {guest_rt_resume}, [rip + 7373f]",
            "mov qword ptr [rip + {guest_rt_slot}], {guest_rt_resume}",
            $($template,)+
            "7373:",
            "mov qword ptr [rip + {guest_rt_slot}], 0",
            guest_rt_resume = out(reg) _,
            guest_rt_slot = sym $crate::idt::RESUME,
            $($($operands)*)?
        );
        $crate::idt::caught()
    }};
}
