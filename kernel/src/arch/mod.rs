//! The boot CPU's own machinery: descriptor tables, exceptions, paging, CPU
//! identification. Nothing here knows about guests.

pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod tsc;

/// Stops this CPU for good, with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: masking interrupts and halting only stops this CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Masks both legacy PICs. tessera takes no interrupts itself, and an
/// unmasked timer IRQ would only turn into useless external-interrupt exits.
pub fn mask_legacy_interrupts() {
    // SAFETY: writing the PICs' interrupt-mask registers only masks IRQs.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}
