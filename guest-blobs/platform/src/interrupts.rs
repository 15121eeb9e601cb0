//! The IDT, and what the handler records for the probes.
//!
//! Every vector has a gate. Exceptions (0-31) end the run with a FAIL line.
//! The other vectors each have one fixed meaning ([`vector`]), so the
//! handler knows which controller to question and acknowledge:
//! - 0x20-0x2F come from the 8259A pair: the handler reads the ISR (OCW3),
//!   lets the device drop its request (UART: IIR and RBR; RTC: register C),
//!   sends the EOI and reads the ISR again. An IRQ whose ISR bit is clear
//!   is the 8259A's spurious IRQ 7/15 (8259A datasheet, "Interrupt
//!   Sequence") and gets no EOI to its own controller.
//! - Vectors from 0x30 on come through the local APIC: the handler checks
//!   that the vector's ISR bit is set, writes EOI and checks that it is
//!   clear (SDM Vol. 3A, 12.8.4-12.8.5). 0xFF is the APIC's spurious vector,
//!   which takes no EOI (SDM Vol. 3A, 12.9).
//!
//! A probe masks every source but its own, calls [`reset`], lets its
//! interrupts come, and reads the counts and timestamps back.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::x86::{inb, rdtsc};
use crate::{apic, pic};

/// The vectors and what raises them.
pub mod vector {
    /// 8259A master: IRQ 0-7 at 0x20-0x27.
    pub const PIC_MASTER_BASE: u8 = 0x20;
    /// 8259A slave: IRQ 8-15 at 0x28-0x2F.
    pub const PIC_SLAVE_BASE: u8 = 0x28;
    /// The PIT through the I/O APIC (ISA IRQ 0's GSI).
    pub const IOAPIC_PIT: u8 = 0x30;
    /// The local APIC timer, whatever its mode.
    pub const APIC_TIMER: u8 = 0x40;
    /// A self-IPI through the x2APIC SELF IPI register.
    pub const SELF_IPI: u8 = 0x41;
    /// A self-IPI through the ICR.
    pub const ICR_IPI: u8 = 0x42;
    /// The APIC timer as a watchdog while the PIT is expected to wake a HLT.
    pub const WATCHDOG: u8 = 0x4e;
    /// The local APIC's spurious-interrupt vector (SVR).
    pub const APIC_SPURIOUS: u8 = 0xff;
}

/// The 256 gates, 16 bytes each.
#[repr(C, align(16))]
struct Idt([AtomicU64; 512]);

static IDT: Idt = Idt([const { AtomicU64::new(0) }; 512]);

/// Handler runs per vector.
static COUNTS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
/// Runs that found their ISR bit set on entry, and clear after the EOI.
static IN_SERVICE: AtomicU32 = AtomicU32::new(0);
static CLEARED_BY_EOI: AtomicU32 = AtomicU32::new(0);
/// TSC at each non-spurious interrupt, in order.
const STAMP_CAPACITY: usize = 64;
static STAMPS: [AtomicU64; STAMP_CAPACITY] = [const { AtomicU64::new(0) }; STAMP_CAPACITY];
static STAMP_COUNT: AtomicUsize = AtomicUsize::new(0);
/// What the UART interrupt found: IIR, and RBR | 0x100 if it read one.
static UART_IIR: AtomicU8 = AtomicU8::new(0);
static UART_RBR: AtomicU32 = AtomicU32::new(0);
/// Whether the RTC interrupt reads register C (which acknowledges it), and
/// the AND of the values it read.
static RTC_ACKNOWLEDGE: AtomicBool = AtomicBool::new(true);
static RTC_C_SEEN: AtomicU8 = AtomicU8::new(0xff);

/// A 64-bit interrupt gate: present, DPL 0, type 0xE, IST 0, selector 0x08.
fn gate(handler: u64) -> (u64, u64) {
    let low =
        (handler & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | (((handler >> 16) & 0xffff) << 48);
    (low, handler >> 32)
}

extern "C" {
    /// 256 stubs, 16 bytes apart: `push $vector; jmp common`.
    fn platform_vector_stubs();
}

core::arch::global_asm!(
    r#"
    .pushsection .text.platform_vectors, "ax", @progbits
    .balign 16
    .global platform_vector_stubs
platform_vector_stubs:
    .set platform_vector, 0
    .rept 256
    .balign 16
    pushq $platform_vector
    jmp platform_interrupt_common
    .set platform_vector, platform_vector + 1
    .endr

    /* The vector is at 80(%rsp) after the ten pushes, what the CPU pushed
     * above it. The caller-saved registers are kept (the Rust code uses no
     * SSE: x86_64-unknown-none is soft-float); the stack is aligned for
     * the call whatever it was (an error code shifts it by 8). */
platform_interrupt_common:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbp
    mov %rsp, %rbp
    mov 80(%rsp), %rdi
    lea 88(%rsp), %rsi
    and $-16, %rsp
    cld
    call {dispatch}
    mov %rbp, %rsp
    pop %rbp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $8, %rsp
    iretq
    .popsection
"#,
    dispatch = sym dispatch,
    options(att_syntax)
);

/// Fills the IDT and loads it.
pub fn install() {
    let stubs = platform_vector_stubs as *const () as u64;
    for vector in 0..256 {
        let (low, high) = gate(stubs + 16 * vector as u64);
        IDT.0[2 * vector].store(low, Ordering::Relaxed);
        IDT.0[2 * vector + 1].store(high, Ordering::Relaxed);
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: &IDT as *const Idt as u64,
    };
    // SAFETY: the IDT is static and every gate points at a stub above.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack)) };
}

/// Vectors whose exceptions push an error code (SDM Vol. 3A, Table 7-1).
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Called by the common stub with the vector and a pointer to what the
/// CPU pushed (error code if any, RIP, CS, RFLAGS, RSP, SS).
extern "C" fn dispatch(vector: u64, frame: *const u64) {
    let vector = vector as u8;
    if vector < 32 {
        exception(vector, frame);
    }
    let stamp = rdtsc();
    COUNTS[usize::from(vector)].fetch_add(1, Ordering::Relaxed);
    match vector {
        vector::PIC_MASTER_BASE..=0x2f => pic_interrupt(vector - vector::PIC_MASTER_BASE, stamp),
        vector::APIC_SPURIOUS => {}
        vector::WATCHDOG => apic::eoi(),
        _ => apic_interrupt(vector, stamp),
    }
}

fn exception(vector: u8, frame: *const u64) -> ! {
    let rip_slot = usize::from(has_error_code(vector));
    // SAFETY: the CPU pushed at least RIP, CS, RFLAGS, RSP and SS (and an
    // error code first for these vectors) at `frame`.
    let (error_code, rip) = unsafe {
        (
            if has_error_code(vector) {
                frame.read()
            } else {
                0
            },
            frame.add(rip_slot).read(),
        )
    };
    crate::report::record(
        "no-unexpected-exception",
        &crate::fail!("vector {vector}, error code {error_code:#x}, at RIP {rip:#x}"),
    );
    crate::report::finish()
}

fn stamp(at: u64) {
    let index = STAMP_COUNT.fetch_add(1, Ordering::Relaxed);
    if index < STAMP_CAPACITY {
        STAMPS[index].store(at, Ordering::Relaxed);
    }
}

fn pic_interrupt(irq: u8, at: u64) {
    let bit = 1u16 << irq;
    if pic::in_service() & bit == 0 {
        // Spurious: the request went away before the acknowledge. It is
        // counted (as a run of its vector) but not stamped; IRQ 15's
        // still needs the master's EOI for the cascade (IRQ 2).
        if irq >= 8 {
            pic::eoi(2);
        }
        return;
    }
    IN_SERVICE.fetch_add(1, Ordering::Relaxed);
    match irq {
        crate::uart::IRQ => {
            let iir = inb(crate::console::COM1 + crate::console::IIR);
            UART_IIR.store(iir, Ordering::Relaxed);
            if iir & 0x0f == crate::uart::IIR_RECEIVED_DATA {
                let byte = inb(crate::console::COM1 + crate::console::RBR);
                UART_RBR.store(0x100 | u32::from(byte), Ordering::Relaxed);
            }
        }
        crate::rtc::IRQ if RTC_ACKNOWLEDGE.load(Ordering::Relaxed) => {
            let c = crate::rtc::read_in_handler(crate::rtc::REGISTER_C);
            RTC_C_SEEN.fetch_and(c, Ordering::Relaxed);
        }
        _ => {}
    }
    pic::eoi(irq);
    if pic::in_service() & bit == 0 {
        CLEARED_BY_EOI.fetch_add(1, Ordering::Relaxed);
    }
    stamp(at);
}

fn apic_interrupt(vector: u8, at: u64) {
    if apic::in_service(vector) {
        IN_SERVICE.fetch_add(1, Ordering::Relaxed);
    }
    apic::eoi();
    if !apic::in_service(vector) {
        CLEARED_BY_EOI.fetch_add(1, Ordering::Relaxed);
    }
    stamp(at);
}

/// Forgets everything recorded so far.
pub fn reset() {
    COUNTS
        .iter()
        .for_each(|count| count.store(0, Ordering::Relaxed));
    IN_SERVICE.store(0, Ordering::Relaxed);
    CLEARED_BY_EOI.store(0, Ordering::Relaxed);
    STAMP_COUNT.store(0, Ordering::Relaxed);
    UART_IIR.store(0, Ordering::Relaxed);
    UART_RBR.store(0, Ordering::Relaxed);
    RTC_C_SEEN.store(0xff, Ordering::Relaxed);
    RTC_ACKNOWLEDGE.store(true, Ordering::Relaxed);
}

/// Handler runs for `vector` since the last [`reset`].
pub fn count(vector: u8) -> u32 {
    COUNTS[usize::from(vector)].load(Ordering::Relaxed)
}

/// What the handler saw since the last [`reset`].
#[derive(Clone, Copy)]
pub struct Seen {
    /// Runs with the ISR bit set on entry.
    pub in_service: u32,
    /// Runs with the ISR bit clear after the EOI.
    pub cleared_by_eoi: u32,
    /// The TSC at each interrupt (up to the capacity).
    pub stamps: [u64; STAMP_CAPACITY],
    /// How many interrupts were stamped (may exceed the capacity).
    pub stamped: usize,
}

impl Seen {
    /// The stamps that were kept.
    pub fn stamps(&self) -> &[u64] {
        &self.stamps[..self.stamped.min(STAMP_CAPACITY)]
    }
}

/// A snapshot of the records.
pub fn seen() -> Seen {
    let mut stamps = [0; STAMP_CAPACITY];
    for (to, from) in stamps.iter_mut().zip(STAMPS.iter()) {
        *to = from.load(Ordering::Relaxed);
    }
    Seen {
        in_service: IN_SERVICE.load(Ordering::Relaxed),
        cleared_by_eoi: CLEARED_BY_EOI.load(Ordering::Relaxed),
        stamps,
        stamped: STAMP_COUNT.load(Ordering::Relaxed),
    }
}

/// The UART interrupt's IIR, and the byte it read from RBR if any.
pub fn uart_seen() -> (u8, Option<u8>) {
    let rbr = UART_RBR.load(Ordering::Relaxed);
    (
        UART_IIR.load(Ordering::Relaxed),
        (rbr & 0x100 != 0).then_some(rbr as u8),
    )
}

/// Whether the RTC interrupt acknowledges (reads register C).
pub fn set_rtc_acknowledge(acknowledge: bool) {
    RTC_ACKNOWLEDGE.store(acknowledge, Ordering::Relaxed);
}

/// The AND of every register C value the RTC interrupt read (0xFF if none).
pub fn rtc_c_seen() -> u8 {
    RTC_C_SEEN.load(Ordering::Relaxed)
}
