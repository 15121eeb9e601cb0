//! COM1's 16550A (National PC16550D datasheet) beyond polled output: its
//! registers, the THRE interrupt and the receive interrupt through
//! loopback, on IRQ 4 through the 8259A.
//!
//! Nothing may be printed while a probe has the UART in another state
//! (loopback swallows what is sent), so each probe returns its line only
//! after [`restore`].

use crate::console::{
    self, COM1, DLL, DLM, FCR, FCR_ENABLE_AND_CLEAR, IER, IIR, LCR, LCR_8N1, LCR_DLAB, LSR,
    LSR_DATA_READY, LSR_TEMT, LSR_THRE, MCR, MCR_DTR_RTS, MSR, RBR, SCR, THR,
};
use crate::interrupts::{self, vector};
use crate::report::Outcome;
use crate::x86::{inb, outb};
use crate::{clock, fail, pic, text, Machine};

/// COM1's line on a PC.
pub const IRQ: u8 = 4;
/// IIR bits 3:0: no interrupt pending, THR empty, received data available.
const IIR_NONE: u8 = 0x01;
const IIR_THR_EMPTY: u8 = 0x02;
pub const IIR_RECEIVED_DATA: u8 = 0x04;
/// IIR bits 7:6 read 11 with the FIFOs enabled (16550A).
const IIR_FIFOS: u8 = 0xc0;
/// IER bits: received data available, THR empty.
const IER_RECEIVED_DATA: u8 = 1 << 0;
const IER_THR_EMPTY: u8 = 1 << 1;
/// MCR bits: OUT2 (gates the IRQ on a PC), loopback.
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOPBACK: u8 = 1 << 4;

fn reg(offset: u16) -> u8 {
    inb(COM1 + offset)
}

fn set(offset: u16, value: u8) {
    outb(COM1 + offset, value);
}

/// Back to the console's settings, anything received dropped.
fn restore() {
    set(IER, 0);
    console::init();
    while reg(LSR) & LSR_DATA_READY != 0 {
        reg(RBR);
    }
}

/// uart-registers: the scratch register and the divisor latch hold what
/// was written, LCR reads back, IIR says "FIFOs enabled, nothing pending"
/// (0xC1) and LSR "transmitter empty" when idle.
pub fn probe_registers(_: &mut Machine) -> Outcome {
    console::drain();
    let mut scratch = [0u8; 2];
    for (read, value) in scratch.iter_mut().zip([0x5a, 0xa5]) {
        set(SCR, value);
        *read = reg(SCR);
    }
    set(LCR, LCR_DLAB | LCR_8N1);
    set(DLL, 0x0c);
    set(DLM, 0x01);
    let divisor = u16::from(reg(DLL)) | u16::from(reg(DLM)) << 8;
    set(LCR, LCR_8N1);
    let lcr = reg(LCR);
    set(FCR, FCR_ENABLE_AND_CLEAR);
    let iir = reg(IIR);
    let lsr = reg(LSR);
    restore();
    let ok = scratch == [0x5a, 0xa5]
        && divisor == 0x010c
        && lcr == LCR_8N1
        && iir == IIR_FIFOS | IIR_NONE
        && lsr & (LSR_THRE | LSR_TEMT | LSR_DATA_READY) == LSR_THRE | LSR_TEMT;
    Outcome::check(
        ok,
        text!(
            "SCR {:#04x}/{:#04x}, divisor {divisor:#06x}, LCR {lcr:#04x}, IIR {iir:#04x}, LSR {lsr:#04x}",
            scratch[0],
            scratch[1]
        ),
    )
}

/// uart-thre-interrupt: setting IER.ETBEI while the transmitter is empty
/// raises the THRE interrupt at once (IRQ 4, IIR 0x2), and reading IIR
/// retires it (datasheet, Table IV) — the probe Linux's 8250 driver makes.
pub fn probe_thr_empty(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    console::drain();
    set(MCR, MCR_DTR_RTS | MCR_OUT2);
    pic::only(IRQ);
    let com1 = vector::PIC_MASTER_BASE + IRQ;
    crate::x86::sti();
    set(IER, IER_THR_EMPTY);
    clock::poll(tsc.ticks_from_us(2000), true, || {
        interrupts::count(com1) > 0
    });
    let delivered = interrupts::count(com1);
    let (handler_iir, _) = interrupts::uart_seen();
    let iir_after = reg(IIR);
    let seen = interrupts::seen();
    pic::set_masks(pic::ALL_MASKED);
    restore();
    let ok = delivered == 1
        && handler_iir & 0x0f == IIR_THR_EMPTY
        && iir_after & 0x0f == IIR_NONE
        && seen.in_service == 1
        && seen.cleared_by_eoi == 1;
    Outcome::check(
        ok,
        text!(
            "IER.ETBEI with THR empty: {delivered} IRQ 4, IIR {handler_iir:#04x} in the handler, then {iir_after:#04x}; \
             ISR set {}, clear after EOI {}",
            seen.in_service,
            seen.cleared_by_eoi
        ),
    )
}

/// uart-loopback-rx-interrupt: in loopback (MCR bit 4), FIFOs off, a byte
/// written to THR arrives in RBR, with LSR.DR and IIR "received data"
/// (0x04), and the
/// modem inputs read the MCR outputs (MSR 7:4 = OUT2, OUT1, DTR, RTS).
/// With IRQ 4 masked meanwhile, the loop is then opened (OUT2 still set):
/// the pending receive interrupt reaches the CPU on IRQ 4 and its handler
/// reads IIR 0x4 and the byte.
///
/// The interrupt is taken after loopback ends because a PC gates IRQ 4 by
/// the OUT2 pin, which loopback forces inactive (datasheet, MCR bit 4), so
/// whether it shows while looped back differs between implementations.
pub fn probe_loopback(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    const BYTE: u8 = 0xa7;
    machine.quiesce();
    console::drain();
    pic::set_masks(pic::ALL_MASKED);
    // FIFOs off (16450 mode): with them on, a byte left in the FIFO for
    // four character times turns the interrupt into a character timeout
    // (IIR 0xC, datasheet Table IV), which a slow host may well show.
    set(FCR, FCR_ENABLE_AND_CLEAR);
    set(FCR, 0);
    set(MCR, MCR_DTR_RTS | MCR_OUT2 | MCR_LOOPBACK);
    let msr = reg(MSR);
    set(IER, IER_RECEIVED_DATA);
    set(THR, BYTE);
    let (_, arrived) = clock::poll(tsc.ticks_from_us(2000), false, || {
        reg(LSR) & LSR_DATA_READY != 0
    });
    let iir_looped = reg(IIR);
    set(MCR, MCR_DTR_RTS | MCR_OUT2);
    let com1 = vector::PIC_MASTER_BASE + IRQ;
    pic::only(IRQ);
    clock::poll(tsc.ticks_from_us(2000), true, || {
        interrupts::count(com1) > 0
    });
    let delivered = interrupts::count(com1);
    let (handler_iir, handler_byte) = interrupts::uart_seen();
    let lsr_after = reg(LSR);
    let seen = interrupts::seen();
    pic::set_masks(pic::ALL_MASKED);
    restore();
    // Loopback wires RTS->CTS (4), DTR->DSR (5), OUT1->RI (6), OUT2->DCD (7).
    let expected_msr = 0xb0;
    let ok = arrived
        && msr & 0xf0 == expected_msr
        && iir_looped == IIR_RECEIVED_DATA
        && delivered == 1
        && handler_iir == IIR_RECEIVED_DATA
        && handler_byte == Some(BYTE)
        && lsr_after & LSR_DATA_READY == 0
        && seen.in_service == 1
        && seen.cleared_by_eoi == 1;
    Outcome::check(
        ok,
        text!(
            "looped back: MSR {msr:#04x}, byte {}, IIR {iir_looped:#04x}; loop opened: {delivered} IRQ 4 with \
             IIR {handler_iir:#04x}, RBR {}; LSR {lsr_after:#04x}",
            if arrived { "arrived" } else { "never arrived" },
            match handler_byte {
                Some(byte) => text!("{byte:#04x}"),
                None => text!("not read"),
            }
        ),
    )
}
