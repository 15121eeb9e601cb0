//! COM1, polled: the output of every probe. Each byte waits for LSR.THRE
//! (transmit holding register empty) first, and [`drain`] waits for
//! LSR.TEMT (transmitter empty), so that no byte is lost however fast the
//! UART drains — Bochs' UART drops bytes written while THR is busy.

use core::fmt::{self, Write};

use crate::x86::{inb, outb};

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// Register offsets (PC16550D datasheet, Table II).
pub const THR: u16 = 0;
pub const RBR: u16 = 0;
pub const DLL: u16 = 0;
pub const IER: u16 = 1;
pub const DLM: u16 = 1;
pub const IIR: u16 = 2;
pub const FCR: u16 = 2;
pub const LCR: u16 = 3;
pub const MCR: u16 = 4;
pub const LSR: u16 = 5;
pub const MSR: u16 = 6;
pub const SCR: u16 = 7;
/// LSR bits.
pub const LSR_DATA_READY: u8 = 1 << 0;
pub const LSR_THRE: u8 = 1 << 5;
pub const LSR_TEMT: u8 = 1 << 6;
/// LCR: 8 data bits, no parity, 1 stop bit; bit 7 selects the divisor latch.
pub const LCR_8N1: u8 = 0x03;
pub const LCR_DLAB: u8 = 0x80;
/// FCR: FIFOs on, both cleared, receive trigger at 1 byte.
pub const FCR_ENABLE_AND_CLEAR: u8 = 0x07;
/// MCR: DTR and RTS, the way firmware leaves a console port.
pub const MCR_DTR_RTS: u8 = 0x03;

/// Puts COM1 in the state the probes assume and restore: 115200 8N1,
/// FIFOs on, no interrupts, DTR and RTS.
pub fn init() {
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, LCR_DLAB);
    outb(COM1 + DLL, 1);
    outb(COM1 + DLM, 0);
    outb(COM1 + LCR, LCR_8N1);
    outb(COM1 + FCR, FCR_ENABLE_AND_CLEAR);
    outb(COM1 + MCR, MCR_DTR_RTS);
}

/// Sends one byte once the transmit holding register is empty.
pub fn put_byte(byte: u8) {
    while inb(COM1 + LSR) & LSR_THRE == 0 {
        crate::x86::pause();
    }
    outb(COM1 + THR, byte);
}

/// Waits until every byte has left the transmitter.
pub fn drain() {
    while inb(COM1 + LSR) & LSR_TEMT == 0 {
        crate::x86::pause();
    }
}

/// `core::fmt` onto COM1.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        text.bytes().for_each(put_byte);
        Ok(())
    }
}

/// Prints a formatted line on COM1.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}
