//! The boot CPU's own machinery: descriptor tables, exceptions, paging, CPU
//! identification. Nothing here knows about guests.

pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod paging;

/// Stops this CPU for good, with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: masking interrupts and halting only stops this CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}
