//! A 16550A UART, register by register, as the National Semiconductor
//! PC16550D datasheet describes it (TI's PC16550D is the same part; the
//! citations below name its register descriptions and tables by title):
//! what Linux's 8250 driver and polling kernels program.
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
//!   exactly as the datasheet says. In loopback the receive line is
//!   disconnected (datasheet, Modem Control Register bit 4), so input
//!   arriving then is dropped and counted, without an overrun.
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
pub const COM1_IRQ: IrqLine = IrqLine::new(4).unwrap();
/// How many ports a 16550 decodes.
pub const PORT_COUNT: u16 = 8;
/// Bytes in the receive FIFO (the datasheet's "16-byte FIFOs").
pub const FIFO_CAPACITY: usize = 16;
/// Bytes waiting behind a full FIFO before input is dropped.
pub const BACKLOG_CAPACITY: usize = 64;

// Register offsets (datasheet, register summary table).
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

// IER bits; 7:4 always read 0 (datasheet, Interrupt Enable Register).
const IER_RECEIVED_DATA: u8 = 1 << 0;
const IER_THR_EMPTY: u8 = 1 << 1;
const IER_LINE_STATUS: u8 = 1 << 2;
const IER_MODEM_STATUS: u8 = 1 << 3;
const IER_MASK: u8 = 0x0f;

// IIR values (datasheet, Interrupt Control Functions table), and bits 7:6 set while FIFOs are enabled.
const IIR_NONE: u8 = 0x01;
const IIR_LINE_STATUS: u8 = 0x06;
const IIR_RECEIVED_DATA: u8 = 0x04;
const IIR_CHARACTER_TIMEOUT: u8 = 0x0c;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_FIFOS_ENABLED: u8 = 0xc0;

// FCR bits (datasheet, FIFO Control Register).
const FCR_ENABLE: u8 = 1 << 0;
const FCR_RESET_RECEIVER: u8 = 1 << 1;
const FCR_TRIGGER_SHIFT: u8 = 6;
/// Receive trigger levels for FCR bits 7:6.
const TRIGGER_LEVELS: [usize; 4] = [1, 4, 8, 14];

const LCR_DLAB: u8 = 1 << 7;

// MCR bits; 7:5 always read 0 (datasheet, Modem Control Register).
const MCR_DTR: u8 = 1 << 0;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT1: u8 = 1 << 2;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOPBACK: u8 = 1 << 4;
const MCR_MASK: u8 = 0x1f;

// LSR bits (datasheet, Line Status Register).
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_OVERRUN: u8 = 1 << 1;
/// OE, PE, FE, BI: cleared by reading LSR; any of them is a line-status
/// interrupt. Only OE is ever produced here.
const LSR_ERRORS: u8 = 0x1e;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;

// MSR bits (datasheet, Modem Status Register): deltas in 3:0, input levels in 7:4.
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

/// What the UART reports in IIR, highest priority first (datasheet,
/// Interrupt Control Functions table).
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
    /// IIR read that reports it (datasheet, Interrupt Control Functions table, "reset control").
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

    /// Input bytes lost: dropped with the FIFO and backlog full or the
    /// receive line disconnected by loopback, or overrun in loopback.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped
    }

    /// How many more input bytes would be accepted now.
    pub fn receive_room(&self) -> usize {
        if self.loopback() {
            return 0;
        }
        let fifo = self.receive_capacity() - self.receive_fifo.len();
        if self.backlog.is_empty() && fifo > 0 {
            fifo + BACKLOG_CAPACITY
        } else {
            BACKLOG_CAPACITY - self.backlog.len()
        }
    }

    /// Master reset (the MR pin): every register to its datasheet reset
    /// value (the UART Reset Configuration table); the divisor latch and the counts are kept, and the
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
    /// Returns false when it was dropped: in loopback (the line is
    /// disconnected), or because the FIFO and the backlog are full, which
    /// the guest then sees as an overrun.
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
        if self.loopback() {
            self.dropped += 1;
            false
        } else if self.backlog.is_empty() && self.receive_fifo.len() < self.receive_capacity() {
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
    /// Overruns as the datasheet says (Line Status Register, bit 1): in FIFO mode the
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
    /// (datasheet, Modem Control Register bit 4): CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2.
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
    /// and in loopback the OUT2 pin is forced inactive (datasheet, Modem Control Register bit 4), so
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
                // (datasheet, Interrupt Control Functions table); other sources clear on their own
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
                // TERI marks only RI going from on to off (datasheet, Modem Status Register bit 2).
                if before & MSR_RI != 0 && after & MSR_RI == 0 {
                    self.modem_deltas |= MSR_TRAILING_EDGE_RI;
                }
            }
            SCRATCH => self.scratch = value,
            // LSR and MSR are for reading (writes are factory test
            // features, datasheet, Line Status Register); offsets past 7 decode nothing.
            _ => {}
        }
    }

    /// FCR (datasheet, FIFO Control Register). Changing bit 0 clears both FIFOs; the other bits
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
mod tests;
