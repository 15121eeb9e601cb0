//! A 16550A UART, register by register, as the National Semiconductor
//! PC16550D datasheet (June 1995 edition; TI's PC16550D is the same part)
//! describes it: what Linux's 8250 driver and polling kernels program.
//!
//! This module owns one UART's registers, its receive FIFO and the level of
//! its interrupt output. It must not know where its bytes go (they leave
//! through [`ConsoleSink`]), which controller its IRQ reaches, or where its
//! input comes from (the console layer calls [`Serial16550::receive`]).
//!
//! Modelling choices:
//! - **Transmission is instantaneous.** A THR write hands the byte to the
//!   console at once, so THR and the transmitter are always empty (LSR.THRE
//!   and LSR.TEMT always read 1) and the THRE interrupt re-arms right after
//!   each write.
//! - **Receiving.** The FIFO holds 16 bytes (1 in 16450 mode, FCR bit 0
//!   clear). Behind it sits a backlog of [`BACKLOG_CAPACITY`] bytes fed by
//!   [`Serial16550::receive`]: it stands for bytes still on the wire, so a
//!   pasted line longer than the FIFO reaches a guest that drains the FIFO
//!   in time, as it would at a real baud rate. Bytes beyond the backlog are
//!   dropped, counted, and reported to the guest as an overrun (LSR.OE).
//!   Looped-back bytes skip the backlog (the wire is internal) and overrun
//!   exactly as the datasheet says.
//! - **Character timeout** (IIR = 0xC) is reported at once when the FIFO
//!   holds fewer bytes than the trigger level: with no time in the model,
//!   the "four character times" have always passed. Drivers treat it like
//!   received-data-available.
//! - **Access widths.** The part is 8 bits wide. A 2- or 4-byte access is
//!   split into byte accesses at consecutive offsets, low byte first — what
//!   a PC's ISA bridge does with a 16-bit cycle to an 8-bit device. Bytes
//!   past the eight registers read as 0xFF (nothing drives the bus) and
//!   their writes are dropped.
//! - **Not modelled:** parity, framing and break errors (the wire is
//!   perfect), the break-control bit's loopback effect, DMA mode signals,
//!   and the baud rate's timing (the divisor latch is kept and reported).

use super::irq::IrqLine;
use super::{AccessSize, ConsoleSink, DeviceContext, PortDevice};

/// COM1's base port on a PC.
pub const COM1_BASE: u16 = 0x3f8;
/// COM1's ISA interrupt line on a PC.
pub const COM1_IRQ: IrqLine = match IrqLine::new(4) {
    Some(line) => line,
    None => unreachable!(),
};
/// How many ports a 16550 decodes.
pub const PORT_COUNT: u16 = 8;
/// Bytes in the receive FIFO (datasheet 1.0: "16 bytes").
pub const FIFO_CAPACITY: usize = 16;
/// Bytes waiting behind a full FIFO before input is dropped.
pub const BACKLOG_CAPACITY: usize = 64;

// Register offsets (datasheet Table II).
/// RBR (read) / THR (write); DLL when LCR.DLAB is set.
const DATA: u16 = 0;
/// IER; DLM when LCR.DLAB is set.
const INTERRUPT_ENABLE: u16 = 1;
/// IIR (read) / FCR (write).
const INTERRUPT_ID: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
const MODEM_STATUS: u16 = 6;
const SCRATCH: u16 = 7;

// IER bits; 7:4 always read 0 (datasheet 8.5).
const IER_RECEIVED_DATA: u8 = 1 << 0;
const IER_THR_EMPTY: u8 = 1 << 1;
const IER_LINE_STATUS: u8 = 1 << 2;
const IER_MODEM_STATUS: u8 = 1 << 3;
const IER_MASK: u8 = 0x0f;

// IIR values (datasheet Table IV), and bits 7:6 set while FIFOs are enabled.
const IIR_NONE: u8 = 0x01;
const IIR_LINE_STATUS: u8 = 0x06;
const IIR_RECEIVED_DATA: u8 = 0x04;
const IIR_CHARACTER_TIMEOUT: u8 = 0x0c;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_FIFOS_ENABLED: u8 = 0xc0;

// FCR bits (datasheet 8.4).
const FCR_ENABLE: u8 = 1 << 0;
const FCR_RESET_RECEIVER: u8 = 1 << 1;
const FCR_TRIGGER_SHIFT: u8 = 6;
/// Receive trigger levels for FCR bits 7:6.
const TRIGGER_LEVELS: [usize; 4] = [1, 4, 8, 14];

const LCR_DLAB: u8 = 1 << 7;

// MCR bits; 7:5 always read 0 (datasheet 8.7).
const MCR_DTR: u8 = 1 << 0;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT1: u8 = 1 << 2;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOPBACK: u8 = 1 << 4;
const MCR_MASK: u8 = 0x1f;

// LSR bits (datasheet 8.6).
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_OVERRUN: u8 = 1 << 1;
/// OE, PE, FE, BI: cleared by reading LSR; any of them is a line-status
/// interrupt. Only OE is ever produced here.
const LSR_ERRORS: u8 = 0x1e;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;

// MSR bits (datasheet 8.8): deltas in 3:0, input levels in 7:4.
const MSR_DELTA_CTS: u8 = 1 << 0;
const MSR_DELTA_DSR: u8 = 1 << 1;
const MSR_TRAILING_EDGE_RI: u8 = 1 << 2;
const MSR_DELTA_DCD: u8 = 1 << 3;
const MSR_CTS: u8 = 1 << 4;
const MSR_DSR: u8 = 1 << 5;
const MSR_RI: u8 = 1 << 6;
const MSR_DCD: u8 = 1 << 7;
/// What the modem inputs read outside loopback: a null-modem cable to a
/// ready terminal (CTS, DSR and DCD asserted, no ring).
const MSR_CONNECTED: u8 = MSR_CTS | MSR_DSR | MSR_DCD;

/// The divisor the latch holds at power-on: 9600 baud from the PC's
/// 1.8432 MHz clock. The datasheet leaves the latch undefined after reset.
const RESET_DIVISOR: u16 = 12;

/// A fixed-capacity FIFO of bytes.
#[derive(Debug, Clone)]
struct ByteQueue<const N: usize> {
    bytes: [u8; N],
    head: usize,
    length: usize,
}

impl<const N: usize> ByteQueue<N> {
    const fn new() -> Self {
        ByteQueue {
            bytes: [0; N],
            head: 0,
            length: 0,
        }
    }

    fn len(&self) -> usize {
        self.length
    }

    fn is_empty(&self) -> bool {
        self.length == 0
    }

    fn push(&mut self, byte: u8) {
        debug_assert!(self.length < N);
        self.bytes[(self.head + self.length) % N] = byte;
        self.length += 1;
    }

    fn pop(&mut self) -> Option<u8> {
        if self.length == 0 {
            return None;
        }
        let byte = self.bytes[self.head];
        self.head = (self.head + 1) % N;
        self.length -= 1;
        Some(byte)
    }

    fn clear(&mut self) {
        self.head = 0;
        self.length = 0;
    }
}

/// What the UART reports in IIR, highest priority first (datasheet
/// Table IV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    LineStatus,
    ReceivedData,
    CharacterTimeout,
    ThrEmpty,
    ModemStatus,
}

/// One 16550A UART.
#[derive(Debug, Clone)]
pub struct Serial16550 {
    irq: IrqLine,
    /// Whether this UART currently drives its line high.
    irq_asserted: bool,
    interrupt_enable: u8,
    line_control: u8,
    modem_control: u8,
    scratch: u8,
    divisor: u16,
    /// LSR error bits (OE) not yet read.
    line_errors: u8,
    /// MSR delta bits not yet read.
    modem_deltas: u8,
    fifos_enabled: bool,
    trigger_level: usize,
    /// The THRE interrupt latch: set when THR becomes empty, cleared by an
    /// IIR read that reports it (datasheet Table IV, "reset control").
    thr_empty_pending: bool,
    receive_fifo: ByteQueue<FIFO_CAPACITY>,
    backlog: ByteQueue<BACKLOG_CAPACITY>,
    /// RBR keeps its last byte; reading an empty FIFO returns it again.
    last_received: u8,
    transmitted: u64,
    dropped: u64,
}

impl Serial16550 {
    /// A UART in its reset state, whose interrupt output drives `irq`.
    pub const fn new(irq: IrqLine) -> Serial16550 {
        Serial16550 {
            irq,
            irq_asserted: false,
            interrupt_enable: 0,
            line_control: 0,
            modem_control: 0,
            scratch: 0,
            divisor: RESET_DIVISOR,
            line_errors: 0,
            modem_deltas: 0,
            fifos_enabled: false,
            trigger_level: 1,
            thr_empty_pending: false,
            receive_fifo: ByteQueue::new(),
            backlog: ByteQueue::new(),
            last_received: 0,
            transmitted: 0,
            dropped: 0,
        }
    }

    /// COM1: the UART a PC has at port 0x3F8 on IRQ 4.
    pub const fn com1() -> Serial16550 {
        Serial16550::new(COM1_IRQ)
    }

    /// The interrupt line this UART drives.
    pub fn irq_line(&self) -> IrqLine {
        self.irq
    }

    /// Whether the UART drives its interrupt line high now.
    pub fn irq_asserted(&self) -> bool {
        self.irq_asserted
    }

    /// The divisor latch (DLM:DLL); the baud rate is 115200 / divisor.
    pub fn divisor(&self) -> u16 {
        self.divisor
    }

    /// Bytes handed to the console (looped-back bytes excluded).
    pub fn transmitted_bytes(&self) -> u64 {
        self.transmitted
    }

    /// Input bytes dropped because the FIFO and the backlog were full, or
    /// overrun in loopback.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped
    }

    /// How many more input bytes would be accepted now.
    pub fn receive_room(&self) -> usize {
        let fifo = self.receive_capacity() - self.receive_fifo.len();
        if self.backlog.is_empty() && fifo > 0 {
            fifo + BACKLOG_CAPACITY
        } else {
            BACKLOG_CAPACITY - self.backlog.len()
        }
    }

    /// Master reset (the MR pin): every register to its datasheet reset
    /// value (Table V); the divisor latch and the counts are kept, and the
    /// interrupt line goes low.
    pub fn reset(&mut self, cx: &mut DeviceContext) {
        *self = Serial16550 {
            divisor: self.divisor,
            transmitted: self.transmitted,
            dropped: self.dropped,
            irq_asserted: self.irq_asserted,
            ..Serial16550::new(self.irq)
        };
        self.update_irq(cx);
    }

    /// A byte arriving on the receive line from outside (the console).
    /// Returns false when it was dropped because the FIFO and the backlog
    /// are full; the guest then sees an overrun.
    pub fn receive(&mut self, byte: u8, cx: &mut DeviceContext) -> bool {
        let accepted = self.accept(byte);
        self.update_irq(cx);
        accepted
    }

    /// Several bytes arriving in order; returns how many were accepted
    /// (the rest were dropped).
    pub fn receive_bytes(&mut self, bytes: &[u8], cx: &mut DeviceContext) -> usize {
        let accepted = bytes.iter().filter(|&&byte| self.accept(byte)).count();
        self.update_irq(cx);
        accepted
    }

    fn accept(&mut self, byte: u8) -> bool {
        if self.backlog.is_empty() && self.receive_fifo.len() < self.receive_capacity() {
            self.receive_fifo.push(byte);
            true
        } else if self.backlog.len() < BACKLOG_CAPACITY {
            self.backlog.push(byte);
            true
        } else {
            self.dropped += 1;
            self.line_errors |= LSR_OVERRUN;
            false
        }
    }

    /// A byte the transmitter looped back into the receiver (MCR.LOOP).
    /// Overruns as the datasheet says (8.6, LSR bit 1): in FIFO mode the
    /// new byte is lost and the FIFO kept; in 16450 mode it overwrites RBR.
    fn loop_back(&mut self, byte: u8) {
        if self.receive_fifo.len() < self.receive_capacity() {
            self.receive_fifo.push(byte);
            return;
        }
        self.line_errors |= LSR_OVERRUN;
        self.dropped += 1;
        if !self.fifos_enabled {
            self.receive_fifo.clear();
            self.receive_fifo.push(byte);
        }
    }

    fn receive_capacity(&self) -> usize {
        if self.fifos_enabled {
            FIFO_CAPACITY
        } else {
            1
        }
    }

    /// Moves backlog bytes into the FIFO as it drains.
    fn refill(&mut self) {
        while self.receive_fifo.len() < self.receive_capacity() {
            match self.backlog.pop() {
                Some(byte) => self.receive_fifo.push(byte),
                None => break,
            }
        }
    }

    fn loopback(&self) -> bool {
        self.modem_control & MCR_LOOPBACK != 0
    }

    fn dlab(&self) -> bool {
        self.line_control & LCR_DLAB != 0
    }

    /// MSR bits 7:4. In loopback the inputs are wired to the outputs
    /// (datasheet 8.7, MCR bit 4): CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2.
    fn modem_inputs(&self) -> u8 {
        if !self.loopback() {
            return MSR_CONNECTED;
        }
        let mcr = self.modem_control;
        let wired = [
            (MCR_RTS, MSR_CTS),
            (MCR_DTR, MSR_DSR),
            (MCR_OUT1, MSR_RI),
            (MCR_OUT2, MSR_DCD),
        ];
        wired
            .iter()
            .filter(|(output, _)| mcr & output != 0)
            .fold(0, |inputs, (_, input)| inputs | input)
    }

    fn line_status(&self) -> u8 {
        let ready = if self.receive_fifo.is_empty() {
            0
        } else {
            LSR_DATA_READY
        };
        ready | self.line_errors | LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY
    }

    /// The highest-priority interrupt pending and enabled, if any.
    fn pending(&self) -> Option<Source> {
        let enabled = |bit: u8| self.interrupt_enable & bit != 0;
        let received = self.receive_fifo.len();
        if enabled(IER_LINE_STATUS) && self.line_errors & LSR_ERRORS != 0 {
            Some(Source::LineStatus)
        } else if enabled(IER_RECEIVED_DATA) && received >= self.trigger_level() {
            Some(Source::ReceivedData)
        } else if enabled(IER_RECEIVED_DATA) && received > 0 {
            Some(Source::CharacterTimeout)
        } else if enabled(IER_THR_EMPTY) && self.thr_empty_pending {
            Some(Source::ThrEmpty)
        } else if enabled(IER_MODEM_STATUS) && self.modem_deltas != 0 {
            Some(Source::ModemStatus)
        } else {
            None
        }
    }

    /// The trigger level in effect: 1 byte (the RBR) in 16450 mode.
    fn trigger_level(&self) -> usize {
        if self.fifos_enabled {
            self.trigger_level
        } else {
            1
        }
    }

    /// Drives the line to match the interrupt state. On a PC the INTR pin
    /// reaches the interrupt controller through a buffer enabled by OUT2,
    /// and in loopback the OUT2 pin is forced inactive (datasheet 8.7), so
    /// the line is high only with OUT2 set, outside loopback.
    fn update_irq(&mut self, cx: &mut DeviceContext) {
        let gate = self.modem_control & (MCR_OUT2 | MCR_LOOPBACK) == MCR_OUT2;
        let assert = gate && self.pending().is_some();
        if assert != self.irq_asserted {
            self.irq_asserted = assert;
            cx.irq.set(self.irq, assert);
        }
    }

    fn read_register(&mut self, offset: u16) -> u8 {
        match offset {
            DATA if self.dlab() => self.divisor as u8,
            DATA => {
                if let Some(byte) = self.receive_fifo.pop() {
                    self.last_received = byte;
                    self.refill();
                }
                self.last_received
            }
            INTERRUPT_ENABLE if self.dlab() => (self.divisor >> 8) as u8,
            INTERRUPT_ENABLE => self.interrupt_enable,
            INTERRUPT_ID => {
                let source = self.pending();
                // Reading IIR while it reports THRE clears that interrupt
                // (datasheet Table IV); other sources clear on their own
                // registers.
                if source == Some(Source::ThrEmpty) {
                    self.thr_empty_pending = false;
                }
                let id = match source {
                    None => IIR_NONE,
                    Some(Source::LineStatus) => IIR_LINE_STATUS,
                    Some(Source::ReceivedData) => IIR_RECEIVED_DATA,
                    Some(Source::CharacterTimeout) => IIR_CHARACTER_TIMEOUT,
                    Some(Source::ThrEmpty) => IIR_THR_EMPTY,
                    Some(Source::ModemStatus) => IIR_MODEM_STATUS,
                };
                if self.fifos_enabled {
                    id | IIR_FIFOS_ENABLED
                } else {
                    id
                }
            }
            LINE_CONTROL => self.line_control,
            MODEM_CONTROL => self.modem_control,
            LINE_STATUS => {
                let status = self.line_status();
                self.line_errors = 0;
                status
            }
            MODEM_STATUS => {
                let status = self.modem_deltas | self.modem_inputs();
                self.modem_deltas = 0;
                status
            }
            SCRATCH => self.scratch,
            // Past the eight registers: nothing drives the bus.
            _ => 0xff,
        }
    }

    fn write_register(&mut self, offset: u16, value: u8, console: &mut dyn ConsoleSink) {
        match offset {
            DATA if self.dlab() => self.divisor = (self.divisor & 0xff00) | u16::from(value),
            DATA => {
                if self.loopback() {
                    self.loop_back(value);
                } else {
                    console.transmit(value);
                    self.transmitted += 1;
                }
                // The byte left at once: THR is empty again.
                self.thr_empty_pending = true;
            }
            INTERRUPT_ENABLE if self.dlab() => {
                self.divisor = (self.divisor & 0x00ff) | (u16::from(value) << 8);
            }
            INTERRUPT_ENABLE => {
                let enabled = value & IER_MASK;
                // Setting ETBEI while THR is empty (always, here) raises the
                // THRE interrupt at once; Linux's 8250 driver probes this.
                if enabled & IER_THR_EMPTY != 0 && self.interrupt_enable & IER_THR_EMPTY == 0 {
                    self.thr_empty_pending = true;
                }
                self.interrupt_enable = enabled;
            }
            INTERRUPT_ID => self.write_fifo_control(value),
            LINE_CONTROL => self.line_control = value,
            MODEM_CONTROL => {
                let before = self.modem_inputs();
                self.modem_control = value & MCR_MASK;
                let after = self.modem_inputs();
                let changed = before ^ after;
                let deltas = [
                    (MSR_CTS, MSR_DELTA_CTS),
                    (MSR_DSR, MSR_DELTA_DSR),
                    (MSR_DCD, MSR_DELTA_DCD),
                ];
                for (input, delta) in deltas {
                    if changed & input != 0 {
                        self.modem_deltas |= delta;
                    }
                }
                // TERI marks only RI going from on to off (datasheet 8.8).
                if before & MSR_RI != 0 && after & MSR_RI == 0 {
                    self.modem_deltas |= MSR_TRAILING_EDGE_RI;
                }
            }
            SCRATCH => self.scratch = value,
            // LSR and MSR are for reading (writes are factory test
            // features, datasheet 8.6); offsets past 7 decode nothing.
            _ => {}
        }
    }

    /// FCR (datasheet 8.4). Changing bit 0 clears both FIFOs; the other bits
    /// are programmed only when bit 0 is written as 1.
    fn write_fifo_control(&mut self, value: u8) {
        let enable = value & FCR_ENABLE != 0;
        if enable != self.fifos_enabled {
            self.fifos_enabled = enable;
            self.clear_receiver();
        }
        if !enable {
            return;
        }
        if value & FCR_RESET_RECEIVER != 0 {
            self.clear_receiver();
        }
        // Resetting the transmit FIFO (bit 2) has nothing to clear: the
        // transmitter is always empty. Bit 3 (DMA mode) only changes the
        // RXRDY/TXRDY pins, which a VM does not have.
        self.trigger_level = TRIGGER_LEVELS[usize::from(value >> FCR_TRIGGER_SHIFT)];
    }

    /// Empties the receive FIFO and the backlog behind it: a guest that
    /// resets its receiver wants no stale input.
    fn clear_receiver(&mut self) {
        self.receive_fifo.clear();
        self.backlog.clear();
    }
}

impl PortDevice for Serial16550 {
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        let mut value = 0;
        for index in 0..size.bytes() {
            let byte = self.read_register(offset.saturating_add(index.into()));
            value |= u32::from(byte) << (8 * index);
            self.update_irq(cx);
        }
        value
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        for (index, byte) in value.to_le_bytes()[..size.bytes().into()]
            .iter()
            .enumerate()
        {
            self.write_register(offset.saturating_add(index as u16), *byte, cx.console);
            self.update_irq(cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;
    use std::vec::Vec;

    /// A COM1 UART with a recording console and interrupt lines.
    struct Rig {
        uart: Serial16550,
        rec: Recorder,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                uart: Serial16550::com1(),
                rec: Recorder::default(),
            }
        }

        fn read(&mut self, offset: u16) -> u8 {
            self.uart.read(offset, AccessSize::Byte, &mut self.rec.cx()) as u8
        }

        fn write(&mut self, offset: u16, value: u8) {
            self.uart
                .write(offset, AccessSize::Byte, value.into(), &mut self.rec.cx());
        }

        fn receive(&mut self, bytes: &[u8]) -> usize {
            self.uart.receive_bytes(bytes, &mut self.rec.cx())
        }

        /// The level of IRQ 4 as the interrupt controller sees it.
        fn line(&self) -> bool {
            self.rec.lines.level(COM1_IRQ)
        }

        fn iir(&mut self) -> u8 {
            self.read(INTERRUPT_ID)
        }

        fn drain(&mut self) -> Vec<u8> {
            let mut bytes = Vec::new();
            while self.read(LINE_STATUS) & LSR_DATA_READY != 0 {
                bytes.push(self.read(DATA));
            }
            bytes
        }
    }

    #[test]
    fn every_register_has_its_reset_value() {
        let mut rig = Rig::new();
        assert_eq!(rig.read(INTERRUPT_ENABLE), 0x00);
        assert_eq!(rig.read(INTERRUPT_ID), 0x01, "no interrupt, FIFOs off");
        assert_eq!(rig.read(LINE_CONTROL), 0x00);
        assert_eq!(rig.read(MODEM_CONTROL), 0x00);
        assert_eq!(rig.read(LINE_STATUS), 0x60, "THRE and TEMT");
        assert_eq!(rig.read(MODEM_STATUS), 0xb0, "CTS, DSR, DCD, no deltas");
        assert_eq!(rig.read(SCRATCH), 0x00);
        assert_eq!(rig.read(DATA), 0x00, "empty RBR");
        rig.write(LINE_CONTROL, LCR_DLAB);
        assert_eq!(rig.read(DATA), 12, "DLL: 9600 baud");
        assert_eq!(rig.read(INTERRUPT_ENABLE), 0, "DLM");
        assert_eq!(rig.uart.divisor(), 12);
        assert!(!rig.line());
        assert_eq!(rig.rec.lines.take_edges(), 0);
    }

    #[test]
    fn reset_restores_registers_and_keeps_the_divisor() {
        let mut rig = Rig::new();
        rig.write(LINE_CONTROL, LCR_DLAB);
        rig.write(DATA, 1);
        rig.write(LINE_CONTROL, 0x03);
        rig.write(MODEM_CONTROL, MCR_OUT2);
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        rig.write(SCRATCH, 0x5a);
        rig.receive(b"xy");
        assert!(rig.line());
        rig.uart.reset(&mut rig.rec.cx());
        assert!(!rig.line(), "reset lowers the interrupt");
        assert_eq!(rig.read(INTERRUPT_ID), 0x01);
        assert_eq!(rig.read(LINE_STATUS), 0x60, "receiver emptied");
        assert_eq!(rig.read(MODEM_CONTROL), 0);
        assert_eq!(rig.read(SCRATCH), 0);
        assert_eq!(rig.uart.divisor(), 1);
    }

    #[test]
    fn dlab_switches_offsets_0_and_1_to_the_divisor_latch() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        rig.write(LINE_CONTROL, LCR_DLAB | 0x03);
        rig.write(DATA, 0x01);
        rig.write(INTERRUPT_ENABLE, 0x02);
        assert_eq!(rig.read(DATA), 0x01);
        assert_eq!(rig.read(INTERRUPT_ENABLE), 0x02);
        assert_eq!(rig.uart.divisor(), 0x0201);
        assert!(rig.rec.console.is_empty(), "DLL writes transmit nothing");
        assert_eq!(rig.read(LINE_CONTROL), LCR_DLAB | 0x03);
        rig.write(LINE_CONTROL, 0x03);
        assert_eq!(rig.read(INTERRUPT_ENABLE), IER_RECEIVED_DATA, "IER kept");
        rig.write(DATA, b'A');
        assert_eq!(rig.rec.console, b"A");
        assert_eq!(rig.uart.divisor(), 0x0201);
    }

    #[test]
    fn transmitted_bytes_reach_the_console_at_once() {
        let mut rig = Rig::new();
        for &byte in b"hi\n" {
            rig.write(DATA, byte);
            assert_eq!(rig.read(LINE_STATUS) & 0x60, 0x60, "transmitter empty");
        }
        assert_eq!(rig.rec.console, b"hi\n");
        assert_eq!(rig.uart.transmitted_bytes(), 3);
    }

    #[test]
    fn received_bytes_come_out_of_rbr_in_order() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        assert_eq!(rig.receive(b"abc"), 3);
        assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(rig.drain(), b"abc");
        assert_eq!(rig.read(LINE_STATUS), 0x60);
        assert_eq!(rig.read(DATA), b'c', "RBR keeps its last byte");
    }

    #[test]
    fn input_beyond_fifo_and_backlog_is_dropped_as_an_overrun() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        let input: Vec<u8> = (0..=255u8)
            .cycle()
            .take(FIFO_CAPACITY + BACKLOG_CAPACITY + 5)
            .collect();
        assert_eq!(rig.uart.receive_room(), FIFO_CAPACITY + BACKLOG_CAPACITY);
        assert_eq!(rig.receive(&input), FIFO_CAPACITY + BACKLOG_CAPACITY);
        assert_eq!(rig.uart.dropped_bytes(), 5);
        assert_eq!(rig.uart.receive_room(), 0);
        assert_eq!(rig.read(LINE_STATUS), 0x60 | LSR_OVERRUN | LSR_DATA_READY);
        assert_eq!(
            rig.read(LINE_STATUS),
            0x60 | LSR_DATA_READY,
            "OE cleared by reading"
        );
        assert_eq!(rig.drain(), input[..FIFO_CAPACITY + BACKLOG_CAPACITY]);
        assert_eq!(rig.uart.receive_room(), FIFO_CAPACITY + BACKLOG_CAPACITY);
    }

    #[test]
    fn the_backlog_waits_behind_a_one_byte_receiver_in_16450_mode() {
        let mut rig = Rig::new();
        assert_eq!(rig.receive(b"xyz"), 3);
        assert_eq!(rig.uart.receive_room(), BACKLOG_CAPACITY - 2);
        assert_eq!(rig.drain(), b"xyz");
        assert_eq!(rig.read(LINE_STATUS) & LSR_OVERRUN, 0);
    }

    #[test]
    fn loopback_overrun_keeps_the_fifo_and_loses_the_new_byte() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        rig.write(MODEM_CONTROL, MCR_LOOPBACK);
        for byte in 0..=FIFO_CAPACITY as u8 {
            rig.write(DATA, byte);
        }
        assert_eq!(rig.read(LINE_STATUS) & LSR_OVERRUN, LSR_OVERRUN);
        let expected: Vec<u8> = (0..FIFO_CAPACITY as u8).collect();
        assert_eq!(rig.drain(), expected);
        assert!(rig.rec.console.is_empty());
    }

    #[test]
    fn loopback_overrun_in_16450_mode_overwrites_rbr() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_LOOPBACK);
        rig.write(DATA, 1);
        rig.write(DATA, 2);
        assert_eq!(rig.read(LINE_STATUS), 0x60 | LSR_OVERRUN | LSR_DATA_READY);
        assert_eq!(rig.drain(), [2]);
        assert_eq!(rig.uart.dropped_bytes(), 1);
    }

    #[test]
    fn fifo_control_enables_resets_and_shows_in_iir() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        assert_eq!(rig.iir(), 0xc1);
        rig.receive(b"abcd");
        // Reset the receiver; FIFOs stay enabled.
        rig.write(INTERRUPT_ID, FCR_ENABLE | FCR_RESET_RECEIVER);
        assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, 0);
        assert_eq!(rig.iir(), 0xc1);
        // Disabling the FIFOs clears them too.
        rig.receive(b"ef");
        rig.write(INTERRUPT_ID, 0);
        assert_eq!(rig.iir(), 0x01);
        assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, 0);
        // With bit 0 clear, the other bits are not programmed (datasheet 8.4).
        rig.write(INTERRUPT_ID, 0xc0);
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        rig.receive(b"g");
        assert_eq!(rig.iir(), 0xc4, "trigger level 1 was kept");
    }

    #[test]
    fn below_the_trigger_level_data_is_a_character_timeout() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE | (2 << FCR_TRIGGER_SHIFT)); // 8 bytes
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        rig.write(MODEM_CONTROL, MCR_OUT2);
        assert!(!rig.line());
        rig.receive(b"1234567");
        assert_eq!(rig.iir(), 0xcc);
        assert!(rig.line());
        rig.receive(b"8");
        assert_eq!(rig.iir(), 0xc4);
        rig.read(DATA);
        assert_eq!(rig.iir(), 0xcc);
        rig.drain();
        assert_eq!(rig.iir(), 0xc1);
        assert!(!rig.line());
    }

    #[test]
    fn trigger_levels_follow_fcr_bits_7_6() {
        for (bits, level) in [(0u8, 1usize), (1, 4), (2, 8), (3, 14)] {
            let mut rig = Rig::new();
            rig.write(INTERRUPT_ID, FCR_ENABLE | (bits << FCR_TRIGGER_SHIFT));
            rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
            rig.receive(&[0; 16][..level - 1]);
            assert_ne!(rig.iir(), 0xc4, "level {level}");
            rig.receive(b"x");
            assert_eq!(rig.iir(), 0xc4, "level {level}");
        }
    }

    #[test]
    fn iir_reports_sources_in_priority_order() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        rig.write(MODEM_CONTROL, MCR_OUT2);
        // A modem-status change: loopback on and off changes the inputs.
        rig.write(MODEM_CONTROL, MCR_OUT2 | MCR_LOOPBACK);
        rig.write(MODEM_CONTROL, MCR_OUT2);
        // Received data and an overrun, from a full FIFO and backlog.
        rig.receive(&[b'r'; FIFO_CAPACITY + BACKLOG_CAPACITY + 1]);
        rig.write(INTERRUPT_ENABLE, IER_MASK);
        assert!(rig.line());
        assert_eq!(rig.iir(), 0xc6, "receiver line status first");
        assert_eq!(rig.iir(), 0xc6, "reading IIR does not clear it");
        rig.read(LINE_STATUS);
        assert_eq!(rig.iir(), 0xc4, "then received data");
        rig.drain();
        assert_eq!(rig.iir(), 0xc2, "then THR empty");
        assert_eq!(
            rig.iir(),
            0xc0,
            "then modem status, THRE cleared by the read"
        );
        assert!(rig.line());
        // Loopback with only OUT2 set dropped CTS and DSR (DCD mirrored
        // OUT2 and stayed on), and leaving it raised them again.
        assert_eq!(rig.read(MODEM_STATUS) & 0x0f, MSR_DELTA_CTS | MSR_DELTA_DSR);
        assert_eq!(rig.iir(), 0xc1, "nothing left");
        assert!(!rig.line());
    }

    #[test]
    fn disabled_sources_are_not_reported() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_OUT2);
        rig.receive(b"a");
        rig.write(DATA, b'b');
        assert_eq!(rig.iir(), 0x01);
        assert!(!rig.line());
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        assert_eq!(rig.iir(), 0x04);
    }

    #[test]
    fn setting_etbei_raises_thre_at_once() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_OUT2);
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
        assert!(rig.line(), "raised by the IER write itself");
        assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
        assert_eq!(rig.iir(), 0x02);
    }

    #[test]
    fn reading_iir_clears_thre_until_a_thr_write_or_re_enable() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_OUT2);
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
        assert_eq!(rig.iir(), 0x02);
        assert!(!rig.line(), "cleared by the IIR read");
        assert_eq!(rig.iir(), 0x01);
        // Writing IER again with ETBEI already set does not re-arm it.
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
        assert_eq!(rig.iir(), 0x01);
        // A THR write does: the byte leaves and THR is empty again.
        rig.write(DATA, b'x');
        assert!(rig.line());
        assert_eq!(rig.iir(), 0x02);
        // So does clearing and setting ETBEI (Linux's UART_BUG_THRE probe).
        rig.write(INTERRUPT_ENABLE, 0);
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
        assert_eq!(rig.iir(), 0x02);
        assert_eq!(rig.iir(), 0x01);
    }

    #[test]
    fn a_higher_source_hides_thre_and_an_iir_read_then_keeps_it() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY | IER_RECEIVED_DATA);
        rig.receive(b"z");
        assert_eq!(rig.iir(), 0x04);
        rig.read(DATA);
        assert_eq!(rig.iir(), 0x02, "THRE was not cleared by the earlier read");
    }

    #[test]
    fn linux_tx_probe_sees_thre_with_temt() {
        // serial8250_do_startup: IER=THRI, read LSR and IIR, IER=0; a UART
        // whose IIR says "no interrupt" here is flagged UART_BUG_TXEN.
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE | FCR_RESET_RECEIVER | 0x04);
        rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
        let lsr = rig.read(LINE_STATUS);
        let iir = rig.iir();
        rig.write(INTERRUPT_ENABLE, 0);
        assert_eq!(lsr & LSR_TRANSMITTER_EMPTY, LSR_TRANSMITTER_EMPTY);
        assert_eq!(iir & 0x0f, 0x02);
    }

    #[test]
    fn loopback_echoes_and_msr_mirrors_mcr() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        // Linux's autoconfig: MCR = LOOP | OUT2 | RTS must read CTS | DCD.
        rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_OUT2 | MCR_RTS);
        assert_eq!(rig.read(MODEM_STATUS) & 0xf0, MSR_CTS | MSR_DCD);
        rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_DTR | MCR_OUT1);
        assert_eq!(rig.read(MODEM_STATUS) & 0xf0, MSR_DSR | MSR_RI);
        rig.write(DATA, 0x55);
        rig.write(DATA, 0xaa);
        assert!(rig.rec.console.is_empty(), "nothing leaves in loopback");
        assert_eq!(rig.uart.transmitted_bytes(), 0);
        assert_eq!(rig.drain(), [0x55, 0xaa]);
        rig.write(MODEM_CONTROL, 0);
        assert_eq!(rig.read(MODEM_STATUS) & 0xf0, MSR_CONNECTED);
        rig.write(DATA, b'!');
        assert_eq!(rig.rec.console, b"!");
        assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, 0);
    }

    #[test]
    fn modem_status_deltas_latch_until_msr_is_read() {
        let mut rig = Rig::new();
        rig.write(
            MODEM_CONTROL,
            MCR_LOOPBACK | MCR_RTS | MCR_DTR | MCR_OUT1 | MCR_OUT2,
        );
        // CTS, DSR and DCD stayed on; RI came on: no deltas, no TERI yet.
        assert_eq!(rig.read(MODEM_STATUS), 0xf0);
        rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_DTR);
        assert_eq!(
            rig.read(MODEM_STATUS),
            MSR_DSR | MSR_DELTA_CTS | MSR_TRAILING_EDGE_RI | MSR_DELTA_DCD
        );
        assert_eq!(
            rig.read(MODEM_STATUS),
            MSR_DSR,
            "deltas cleared by the read"
        );
        // RI rising is not a trailing edge.
        rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_DTR | MCR_OUT1);
        assert_eq!(rig.read(MODEM_STATUS), MSR_DSR | MSR_RI);
    }

    #[test]
    fn modem_status_interrupt_needs_edssi() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_LOOPBACK);
        assert_eq!(rig.iir(), 0x01);
        rig.write(INTERRUPT_ENABLE, IER_MODEM_STATUS);
        assert_eq!(rig.iir(), 0x00);
        rig.read(MODEM_STATUS);
        assert_eq!(rig.iir(), 0x01);
    }

    #[test]
    fn out2_gates_the_interrupt_line() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        rig.receive(b"k");
        assert_eq!(rig.iir(), 0x04, "pending inside the UART");
        assert!(!rig.line(), "but OUT2 is off");
        rig.write(MODEM_CONTROL, MCR_OUT2);
        assert!(rig.line());
        rig.write(MODEM_CONTROL, 0);
        assert!(!rig.line());
        rig.write(MODEM_CONTROL, MCR_OUT2);
        assert!(rig.uart.irq_asserted());
        // Loopback forces the OUT2 pin inactive.
        rig.write(MODEM_CONTROL, MCR_OUT2 | MCR_LOOPBACK);
        assert!(!rig.line());
        rig.write(MODEM_CONTROL, MCR_OUT2);
        rig.read(DATA);
        assert!(!rig.line(), "lowered when the condition clears");
        assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
    }

    #[test]
    fn the_line_is_level_and_rises_again_for_new_data() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_OUT2);
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        rig.receive(b"a");
        assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
        rig.receive(b"b");
        assert_eq!(rig.rec.lines.take_edges(), 0, "already high");
        rig.drain();
        assert!(!rig.line());
        rig.receive(b"c");
        assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
    }

    #[test]
    fn an_overrun_is_a_line_status_interrupt_cleared_by_reading_lsr() {
        let mut rig = Rig::new();
        rig.write(MODEM_CONTROL, MCR_OUT2 | MCR_LOOPBACK);
        rig.write(INTERRUPT_ENABLE, IER_LINE_STATUS);
        rig.write(DATA, 1);
        rig.write(DATA, 2);
        assert_eq!(rig.iir(), 0x06);
        rig.write(MODEM_CONTROL, MCR_OUT2);
        assert!(rig.line());
        rig.read(LINE_STATUS);
        assert_eq!(rig.iir(), 0x01);
        assert!(!rig.line());
    }

    #[test]
    fn scratch_register_keeps_any_byte() {
        let mut rig = Rig::new();
        for value in [0x00, 0x55, 0xaa, 0xff] {
            rig.write(SCRATCH, value);
            assert_eq!(rig.read(SCRATCH), value);
        }
    }

    #[test]
    fn reserved_bits_of_ier_and_mcr_read_zero_and_lsr_msr_ignore_writes() {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ENABLE, 0xf0);
        assert_eq!(rig.read(INTERRUPT_ENABLE), 0);
        rig.write(MODEM_CONTROL, 0xe0);
        assert_eq!(rig.read(MODEM_CONTROL), 0);
        rig.write(LINE_STATUS, 0xff);
        rig.write(MODEM_STATUS, 0xff);
        assert_eq!(rig.read(LINE_STATUS), 0x60);
        assert_eq!(rig.read(MODEM_STATUS), 0xb0);
    }

    #[test]
    fn wide_accesses_split_into_byte_accesses_low_byte_first() {
        let mut rig = Rig::new();
        rig.write(SCRATCH, 0x5a);
        rig.write(INTERRUPT_ID, FCR_ENABLE);
        rig.receive(b"AB");
        let mut cx = rig.rec.cx();
        // IN AX at RBR: RBR (pops 'A'), then IER.
        assert_eq!(rig.uart.read(DATA, AccessSize::Word, &mut cx), 0x0041);
        // IN EAX at MSR: MSR, SCR, then two bytes past the device.
        assert_eq!(
            rig.uart.read(MODEM_STATUS, AccessSize::Dword, &mut cx),
            0xffff_5ab0
        );
        // OUT AX at LCR writes LCR and MCR.
        rig.uart
            .write(LINE_CONTROL, AccessSize::Word, 0x1003, &mut cx);
        // OUT EAX at THR: THR (looped back), IER, FCR (unchanged), LCR.
        rig.uart
            .write(DATA, AccessSize::Dword, 0x0301_0242, &mut cx);
        // OUT AX at SCR: SCR, and a byte past the device that is dropped.
        rig.uart.write(SCRATCH, AccessSize::Word, 0xee77, &mut cx);
        assert_eq!(rig.read(LINE_CONTROL), 0x03);
        assert_eq!(rig.read(MODEM_CONTROL), MCR_LOOPBACK);
        assert_eq!(rig.read(INTERRUPT_ENABLE), IER_THR_EMPTY);
        assert_eq!(rig.iir() & 0xc0, 0xc0, "FIFOs still enabled");
        assert_eq!(rig.read(SCRATCH), 0x77);
        // The received 'B', then the looped-back 0x42.
        assert_eq!(rig.drain(), b"BB");
        assert!(rig.rec.console.is_empty());
    }

    #[test]
    fn a_single_byte_past_the_registers_reads_all_ones() {
        let mut rig = Rig::new();
        assert_eq!(rig.read(8), 0xff);
        rig.write(8, 0);
        assert_eq!(rig.read(LINE_CONTROL), 0);
    }

    #[test]
    fn through_the_bus_com1_answers_at_0x3f8() {
        use crate::devices::bus::PortBus;
        use crate::devices::AnyPortDevice;
        let mut rec = Recorder::default();
        let mut bus = PortBus::new();
        let id = bus
            .add(
                COM1_BASE,
                PORT_COUNT,
                AnyPortDevice::Serial(Serial16550::com1()),
            )
            .unwrap();
        bus.write(0x3f8, AccessSize::Byte, u32::from(b'o'), &mut rec.cx());
        bus.write(0x3f8, AccessSize::Byte, u32::from(b'k'), &mut rec.cx());
        assert_eq!(bus.read(0x3fd, AccessSize::Byte, &mut rec.cx()), 0x60);
        assert_eq!(bus.read(0x2fd, AccessSize::Byte, &mut rec.cx()), 0xff);
        assert_eq!(rec.console, b"ok");
        let Some(AnyPortDevice::Serial(uart)) = bus.device_mut(id) else {
            panic!("COM1 is a serial port");
        };
        assert!(uart.receive(b'?', &mut rec.cx()));
        assert_eq!(
            bus.read(0x3f8, AccessSize::Byte, &mut rec.cx()),
            u32::from(b'?')
        );
    }
}
