//! A minimal 64-bit IDT for the 20 architectural exception vectors (0-19).
//!
//! Every vector reports the exception and exits with 1, so a fault the
//! hypervisor injects (a #UD for an instruction it failed to virtualize, a #GP
//! for a CR write it refused, a #NM or #XM from a corrupted CR0/MXCSR) is a
//! readable line instead of a triple fault — with one exception: a #GP raised
//! by the XSETBV in [`xsetbv_faults`] is the answer that probe expects. The
//! handler counts it and resumes after the 3-byte instruction.
//!
//! The handlers run on the interrupted stack (CPL 0 to CPL 0, no IST), which
//! is safe because `x86_64-unknown-none` code keeps no red zone.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use guest_rt::{exit, println};

/// Number of vectors in the table: the architectural exceptions 0 to 19.
const VECTORS: usize = 20;

/// How many times the probe's XSETBV raised #GP.
static XSETBV_FAULTS: AtomicU32 = AtomicU32::new(0);

core::arch::global_asm!(
    ".section .text.xstate_idt, \"ax\", @progbits",
    // Stubs: make every frame [vector, error code, RIP, CS, RFLAGS, RSP, SS].
    // The CPU pushes an error code only for 8, 10-14 and 17.
    ".irp vector, 0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19",
    "xstate_exception_\\vector:",
    "    push 0",
    "    push \\vector",
    "    jmp xstate_exception_common",
    ".endr",
    ".irp vector, 8, 10, 11, 12, 13, 14, 17",
    "xstate_exception_\\vector:",
    "    push \\vector",
    "    jmp xstate_exception_common",
    ".endr",
    "",
    "xstate_exception_common:",
    // A #GP at the probe's XSETBV: count it and skip the instruction
    // (0F 01 D1). PUSH, LEA and POP leave the flags of the CMPs alone.
    "    cmp qword ptr [rsp], 13",
    "    jne 2f",
    "    push rax",
    "    lea rax, [rip + xstate_xsetbv_probe_instruction]",
    "    cmp qword ptr [rsp + 24], rax",
    "    pop rax",
    "    jne 2f",
    "    lock inc dword ptr [rip + {faults}]",
    "    add qword ptr [rsp + 16], 3",
    "    add rsp, 16",
    "    iretq",
    // Anything else: report it from Rust, which does not return. RSP is 8
    // mod 16 here (the CPU aligned it before pushing 5 or 6 quadwords, the
    // stub made it 7); realign for the call.
    "2:  mov rdi, rsp",
    "    and rsp, -16",
    "    call {report}",
    "3:  cli",
    "    hlt",
    "    jmp 3b",
    "",
    // The stubs' addresses, by vector, for `install`.
    ".section .rodata.xstate_idt, \"a\", @progbits",
    ".balign 8",
    "xstate_exception_stubs:",
    ".irp vector, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19",
    "    .quad xstate_exception_\\vector",
    ".endr",
    "",
    // xstate_xsetbv_probe(low: u32 /* edi */, high: u32 /* esi */, xcr: u32 /* edx */):
    // XSETBV with ECX = xcr, EDX:EAX = high:low. Returns normally whether or
    // not it faulted; the caller reads the fault counter.
    ".section .text.xstate_xsetbv_probe, \"ax\", @progbits",
    ".global xstate_xsetbv_probe",
    "xstate_xsetbv_probe:",
    "    mov ecx, edx",
    "    mov eax, edi",
    "    mov edx, esi",
    "xstate_xsetbv_probe_instruction:",
    "    xsetbv",
    "    ret",
    faults = sym XSETBV_FAULTS,
    report = sym report,
);

extern "C" {
    /// The table filled by the `.irp` above: `VECTORS` stub addresses.
    static xstate_exception_stubs: [u64; VECTORS];
    /// XSETBV(ECX = `xcr`, EDX:EAX = `high`:`low`), surviving a #GP.
    fn xstate_xsetbv_probe(low: u32, high: u32, xcr: u32);
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

/// Called by the common stub for every exception but the probe's #GP.
extern "C" fn report(frame: &Frame) -> ! {
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("?");
    println!(
        "xstate: unexpected exception {} (vector {}), error code {:#x}, at RIP {:#x} (RSP {:#x}, RFLAGS {:#x})",
        name, frame.vector, frame.error_code, frame.rip, frame.rsp, frame.rflags
    );
    if frame.vector == 14 {
        let cr2: u64;
        // SAFETY: reading CR2 has no side effect.
        unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
        println!("xstate: the #PF was at {cr2:#x}");
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

/// Builds the IDT (interrupt gates in the current code segment) and loads it.
pub fn install() {
    let cs: u16;
    // SAFETY: reading CS has no side effect.
    unsafe {
        core::arch::asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: the table is initialised by the .irp above and never written.
    let stubs = unsafe { &*core::ptr::addr_of!(xstate_exception_stubs) };
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

/// Executes XSETBV(`xcr`, `value`) and tells whether it raised #GP. Needs
/// CR4.OSXSAVE (else XSETBV raises #UD, which [`report`] turns into exit 1).
///
/// # Safety
///
/// If the hypervisor accepts the value, it becomes this VM's XCR*n*: the
/// caller must be ready for that (e.g. set a valid XCR0 again).
pub unsafe fn xsetbv_faults(xcr: u32, value: u64) -> bool {
    let before = XSETBV_FAULTS.load(Ordering::SeqCst);
    // SAFETY: the probe only executes XSETBV; a #GP is handled above, and
    // the caller accepts the effect of a successful one.
    unsafe { xstate_xsetbv_probe(value as u32, (value >> 32) as u32, xcr) };
    XSETBV_FAULTS.load(Ordering::SeqCst) != before
}
