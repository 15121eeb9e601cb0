//! The CPU's own machinery: descriptor tables, exceptions, the host page
//! tables, CPU identification, the TSC. Nothing here knows about guests.
//! Pure: the general-register file. Machine: everything else.

pub mod registers;

#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod gdt;
#[cfg(target_os = "none")]
pub mod identity_map;
#[cfg(target_os = "none")]
pub mod idle;
#[cfg(target_os = "none")]
pub mod idt;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub mod rtc;
#[cfg(target_os = "none")]
pub mod tsc;
#[cfg(target_os = "none")]
pub mod xstate;

#[cfg(target_os = "none")]
/// Stops this CPU for good, with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: masking interrupts and halting only stops this CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

#[cfg(target_os = "none")]
/// Masks both legacy PICs. tessera takes no interrupts itself, and an
/// unmasked timer IRQ would only turn into useless external-interrupt exits.
pub fn mask_legacy_interrupts() {
    // SAFETY: writing the PICs' interrupt-mask registers only masks IRQs.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}
