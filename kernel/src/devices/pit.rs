//! The Intel 8254 programmable interval timer (ports 0x40-0x43) and the
//! PC's port 0x61 beside it (system control port B: channel 2's gate, the
//! speaker, the refresh toggle, OUT2). Citations name sections of the
//! Intel 82C54 datasheet (order number 231244) by title.
//!
//! This module owns the three counters and port 0x61. Channel 0's OUT is
//! wired to IRQ 0, which it pulses through the context's lines; it must not
//! know which interrupt controller samples that line, nor how the VM keeps
//! time (it is handed `DeviceContext::now_ns`).
//!
//! # Wiring it into a VM
//!
//! Register it with `add(PIT_BASE, PORT_COUNT, ..)` and
//! `add_range(id, PORT_B, 1)`; it sees port 0x61 at offset 0x21. It is
//! [`Timed`]: before entering the guest, the core arms its timer for
//! [`Timed::next_deadline_ns`] and, once VM time reaches it, calls
//! [`Timed::advance`], which pulses IRQ 0; then it samples the lines into
//! the interrupt controllers as after any access.
//!
//! # Modelling choices
//!
//! - **Time, not ticks.** The counters run at [`FREQUENCY_HZ`] of VM time:
//!   a count's value and its OUT are computed from the nanoseconds elapsed
//!   since it was loaded, never simulated clock by clock. A count is loaded
//!   at the instant it is written (the datasheet's load pulse, "the next
//!   CLK pulse", is taken to fall at the write), so OUT in mode 0 rises
//!   exactly N clock periods after a count of N is written — what a
//!   calibration loop measures.
//! - **Coalescing.** Rising edges of OUT0 that fell due while nobody
//!   called [`Timed::advance`] (the VM was descheduled) are delivered as
//!   one pulse of IRQ 0; the rest are counted in
//!   [`Pit::coalesced_ticks`]. Any access also brings the timer up to date
//!   first, so the guest never reads a count past an undelivered tick.
//! - **OUT0 edges from writes.** A write that raises OUT0 at once (a
//!   control word for modes 1-5 after mode 0 held it low) pulses IRQ 0 as
//!   the wire would.
//! - **New counts in modes 2 and 3** take effect at the end of the current
//!   period (the datasheet's mode 3 takes them at the next half-cycle;
//!   the difference is at most half a period, once, and keeps OUT0's
//!   rising edges on period boundaries). A count of 1, illegal in both
//!   modes, counts as 2.
//! - **BCD counting is supported**: counts are written and read as four
//!   BCD digits, and the counter wraps at 10000.
//! - **Gates.** Channels 0 and 1 have their GATE tied high, as on a PC;
//!   channel 2's is port 0x61 bit 0.
//! - **Port 0x61.** Bits 0-3 (gate 2, speaker data, the SERR# and IOCHK#
//!   NMI enables) read back as written; bit 4, the refresh toggle,
//!   flips on every read (BIOSes and Linux poll it for a change); bit 5 is
//!   OUT2; bits 6-7 (NMI sources) read 0, since no NMI is modelled.
//! - **Undefined values.** The counting element of a counter with no
//!   count loaded since its control word reads as its last value (0 at
//!   power-on); the control word register, write-only, reads 0xFF.
//! - **Power-on state** (undefined in the datasheet): every counter in
//!   mode 0, LSB-then-MSB, binary, no count written (OUT low); gate 2 low.

use super::irq::IrqLine;
use super::{AccessSize, DeviceContext, PortDevice, Timed};

/// Channel 0's port; channels 1 and 2 and the control word follow.
pub const PIT_BASE: u16 = 0x40;
/// How many ports from [`PIT_BASE`] the 8254 decodes.
pub const PORT_COUNT: u16 = 4;
/// System control port B: channel 2's gate, the speaker, OUT2.
pub const PORT_B: u16 = 0x61;
/// The counters' input clock on every PC: 14.31818 MHz / 12.
pub const FREQUENCY_HZ: u64 = 1_193_182;
/// The line channel 0's OUT drives.
pub const PIT_IRQ: IrqLine = IrqLine::new(0).unwrap();

// Offsets from PIT_BASE, as the bus computes them.
const CONTROL: u16 = 3;
const PORT_B_OFFSET: u16 = PORT_B - PIT_BASE;

const NS_PER_SECOND: u128 = 1_000_000_000;

// Control word fields (datasheet, "Control Word Format").
const SELECT_SHIFT: u8 = 6;
const SELECT_READ_BACK: u8 = 3;
const ACCESS_SHIFT: u8 = 4;
const ACCESS_LATCH: u8 = 0;
const MODE_SHIFT: u8 = 1;
const CONTROL_BCD: u8 = 1 << 0;
/// The status byte's bits 5:0 repeat the control word's.
const CONTROL_FIELDS: u8 = 0x3f;
// Read-back command (datasheet, "Read-Back Command"): active-low latch
// selects, then one bit per counter from bit 1.
const READ_BACK_NO_COUNT: u8 = 1 << 5;
const READ_BACK_NO_STATUS: u8 = 1 << 4;
// Status byte (datasheet, "Status Byte").
const STATUS_OUTPUT: u8 = 1 << 7;
const STATUS_NULL_COUNT: u8 = 1 << 6;

// Port 0x61.
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_WRITABLE: u8 = 0x0f;
const PORT_B_REFRESH: u8 = 1 << 4;
const PORT_B_OUT2: u8 = 1 << 5;

/// Whole clock periods in `ns` nanoseconds.
fn ticks_in(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(FREQUENCY_HZ) / NS_PER_SECOND) as u64
}

/// The first nanosecond by which `ticks` clock periods have passed.
fn ns_for(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * NS_PER_SECOND).div_ceil(u128::from(FREQUENCY_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// A counter's mode (datasheet, "Operational Description").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Mode 0: interrupt on terminal count.
    TerminalCount,
    /// Mode 1: hardware retriggerable one-shot.
    OneShot,
    /// Mode 2: rate generator.
    RateGenerator,
    /// Mode 3: square wave.
    SquareWave,
    /// Mode 4: software triggered strobe.
    SoftwareStrobe,
    /// Mode 5: hardware triggered (retriggerable) strobe.
    HardwareStrobe,
}

impl Mode {
    /// Modes 6 and 7 are 2 and 3 (M2 is a don't-care there).
    fn from_bits(bits: u8) -> Mode {
        match bits & 7 {
            0 => Mode::TerminalCount,
            1 => Mode::OneShot,
            2 | 6 => Mode::RateGenerator,
            3 | 7 => Mode::SquareWave,
            4 => Mode::SoftwareStrobe,
            _ => Mode::HardwareStrobe,
        }
    }

    fn periodic(self) -> bool {
        matches!(self, Mode::RateGenerator | Mode::SquareWave)
    }

    /// Modes whose count starts on GATE's rising edge, not on the write.
    fn gate_triggered(self) -> bool {
        matches!(self, Mode::OneShot | Mode::HardwareStrobe)
    }

    /// OUT after `t` clock periods of a run loaded with `n`.
    fn out(self, n: u64, t: u64) -> bool {
        match self {
            Mode::TerminalCount | Mode::OneShot => t >= n,
            Mode::RateGenerator => t % n != n - 1,
            Mode::SquareWave => t % n < n.div_ceil(2),
            Mode::SoftwareStrobe | Mode::HardwareStrobe => t != n,
        }
    }

    /// The counting element after `t` periods of a run loaded with `n`,
    /// before reduction modulo the counter's range.
    fn element(self, n: u64, t: u64, modulus: u64) -> u64 {
        match self {
            Mode::RateGenerator => n - t % n,
            // Datasheet, mode 3: even counts drop by two each clock and
            // reload at each half-cycle; an odd count drops by one on its
            // first clock in the high half and by three in the low half.
            Mode::SquareWave => {
                let position = t % n;
                let high = n.div_ceil(2);
                let (step, odd_adjust) = if position < high {
                    (position, 1)
                } else {
                    (position - high, 0)
                };
                match (n % 2, step) {
                    (_, 0) => n,
                    (0, _) => n - 2 * step,
                    _ if odd_adjust == 1 => n + 1 - 2 * step,
                    _ => n - 1 - 2 * step,
                }
            }
            _ => (n + modulus - t % modulus) % modulus,
        }
    }

    /// The periods after the load at which OUT rises: once, or every
    /// `period`.
    fn rising_edges(self, n: u64) -> Edges {
        match self {
            Mode::TerminalCount | Mode::OneShot => Edges::Once(n),
            Mode::RateGenerator | Mode::SquareWave => Edges::Every(n),
            Mode::SoftwareStrobe | Mode::HardwareStrobe => Edges::Once(n + 1),
        }
    }
}

/// When OUT rises during a run, in clock periods after its load.
#[derive(Debug, Clone, Copy)]
enum Edges {
    Once(u64),
    Every(u64),
}

/// How the counter's port moves a 16-bit value (the control word's RW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    LowByte,
    HighByte,
    /// LSB then MSB.
    Word,
}

/// What the counting element is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// No count loaded since the control word: OUT at its mode's initial
    /// level.
    Unloaded,
    /// Modes 1 and 5: a count written, waiting for GATE to rise.
    Armed,
    /// Counting from `initial`, loaded at `start_ns`.
    Counting { start_ns: u64, initial: u64 },
    /// Counting suspended by GATE low, `elapsed_ns` into a run from
    /// `initial` (modes 0, 2, 3, 4; in 2 and 3 OUT is held high).
    Suspended { elapsed_ns: u64, initial: u64 },
}

/// One of the three counters.
#[derive(Debug, Clone)]
struct Channel {
    /// The control word's RW, mode and BCD bits, as the status byte shows
    /// them.
    control: u8,
    mode: Mode,
    access: Access,
    bcd: bool,
    /// The count register: the count last written, in clock periods.
    reload: u64,
    /// LSB written, MSB awaited.
    written_low: Option<u8>,
    /// The next read of a 16-bit value is its MSB.
    read_high_next: bool,
    latched_count: Option<u16>,
    latched_status: Option<u8>,
    /// The status byte's NULL COUNT: a count written and not yet loaded.
    null_count: bool,
    gate: bool,
    run: Run,
    /// The last value of the counting element when no run is going.
    held: u64,
    /// Modes 2 and 3: when the count written during a run is loaded.
    reload_at_ns: Option<u64>,
    /// Rising edges of OUT up to this VM time have been counted.
    edges_through_ns: u64,
}

impl Channel {
    const fn new(gate: bool) -> Channel {
        Channel {
            control: 0x30,
            mode: Mode::TerminalCount,
            access: Access::Word,
            bcd: false,
            reload: 0x1_0000,
            written_low: None,
            read_high_next: false,
            latched_count: None,
            latched_status: None,
            null_count: true,
            gate,
            run: Run::Unloaded,
            held: 0,
            reload_at_ns: None,
            edges_through_ns: 0,
        }
    }

    /// The counting element's range: it wraps at 10^4 in BCD.
    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// The run length of a count of `n`: 1 is illegal in modes 2 and 3
    /// (datasheet, Mode 2 and Mode 3) and runs as 2.
    fn run_length(&self, n: u64) -> u64 {
        if self.mode.periodic() {
            n.max(2)
        } else {
            n
        }
    }

    /// Loads the count register into the counting element at `now_ns`.
    fn load(&mut self, now_ns: u64) {
        let initial = self.run_length(self.reload);
        self.run = Run::Counting {
            start_ns: now_ns,
            initial,
        };
        self.null_count = false;
        self.reload_at_ns = None;
    }

    /// OUT now (after [`Channel::settle`] to `now_ns`).
    fn out(&self, now_ns: u64) -> bool {
        match self.run {
            Run::Unloaded => self.mode != Mode::TerminalCount,
            Run::Armed => true,
            Run::Counting { start_ns, initial } => self
                .mode
                .out(initial, ticks_in(now_ns.saturating_sub(start_ns))),
            Run::Suspended { .. } if self.mode.periodic() => true,
            Run::Suspended {
                elapsed_ns,
                initial,
            } => self.mode.out(initial, ticks_in(elapsed_ns)),
        }
    }

    /// The counting element now, as the guest reads it (BCD if counting
    /// in BCD).
    fn element(&self, now_ns: u64) -> u16 {
        let modulus = self.modulus();
        let value = match self.run {
            Run::Counting { start_ns, initial } => {
                self.mode
                    .element(initial, ticks_in(now_ns.saturating_sub(start_ns)), modulus)
            }
            Run::Suspended {
                elapsed_ns,
                initial,
            } => self.mode.element(initial, ticks_in(elapsed_ns), modulus),
            Run::Unloaded | Run::Armed => self.held,
        } % modulus;
        if self.bcd {
            to_bcd(value)
        } else {
            value as u16
        }
    }

    /// The counting element's value, kept while no run goes on.
    fn hold(&mut self, now_ns: u64) {
        let value = self.element(now_ns);
        self.held = if self.bcd {
            from_bcd(value)
        } else {
            value.into()
        };
    }

    fn status(&self, now_ns: u64) -> u8 {
        let mut status = self.control;
        if self.out(now_ns) {
            status |= STATUS_OUTPUT;
        }
        if self.null_count {
            status |= STATUS_NULL_COUNT;
        }
        status
    }

    /// Rising edges of OUT in the current run with times in
    /// `(after_ns, until_ns]`.
    fn edges_between(&self, after_ns: u64, until_ns: u64) -> u64 {
        let Run::Counting { start_ns, initial } = self.run else {
            return 0;
        };
        if until_ns <= after_ns || until_ns < start_ns {
            return 0;
        }
        // Every edge comes at least one period after the load, so an
        // `after_ns` before the load counts as the load itself.
        let from = ticks_in(after_ns.saturating_sub(start_ns));
        let to = ticks_in(until_ns - start_ns);
        match self.mode.rising_edges(initial) {
            Edges::Once(at) => u64::from(from < at && at <= to),
            Edges::Every(period) => to / period - from / period,
        }
    }

    /// The time of the first rising edge of OUT after `after_ns`.
    fn next_edge_ns(&self, after_ns: u64) -> Option<u64> {
        let Run::Counting { start_ns, initial } = self.run else {
            return None;
        };
        let from = ticks_in(after_ns.saturating_sub(start_ns));
        let at = match self.mode.rising_edges(initial) {
            Edges::Once(at) => (at > from).then_some(at)?,
            Edges::Every(period) => (from / period + 1) * period,
        };
        Some(start_ns.saturating_add(ns_for(at)))
    }

    /// Brings the counter to `now_ns`: loads a count that was waiting for
    /// the end of a period, and returns how many times OUT rose since the
    /// last call.
    fn settle(&mut self, now_ns: u64) -> u64 {
        let mut edges = 0;
        if let Some(at) = self.reload_at_ns.filter(|&at| at <= now_ns) {
            edges += self.edges_between(self.edges_through_ns, at);
            self.edges_through_ns = self.edges_through_ns.max(at);
            self.load(at);
        }
        edges += self.edges_between(self.edges_through_ns, now_ns);
        self.edges_through_ns = self.edges_through_ns.max(now_ns);
        edges
    }

    /// A control word for this counter (datasheet, "Write Operations"):
    /// the control logic resets and OUT takes its mode's initial level.
    fn program(&mut self, control: u8, now_ns: u64) {
        self.hold(now_ns);
        self.control = control & CONTROL_FIELDS;
        self.mode = Mode::from_bits(control >> MODE_SHIFT);
        self.bcd = control & CONTROL_BCD != 0;
        self.access = match (control >> ACCESS_SHIFT) & 3 {
            1 => Access::LowByte,
            2 => Access::HighByte,
            _ => Access::Word,
        };
        self.run = Run::Unloaded;
        self.reload_at_ns = None;
        self.null_count = true;
        self.written_low = None;
        self.read_high_next = false;
        self.latched_count = None;
        self.latched_status = None;
    }

    /// The counter-latch command: the first latch holds until read.
    fn latch_count(&mut self, now_ns: u64) {
        if self.latched_count.is_none() {
            self.latched_count = Some(self.element(now_ns));
        }
    }

    fn latch_status(&mut self, now_ns: u64) {
        if self.latched_status.is_none() {
            self.latched_status = Some(self.status(now_ns));
        }
    }

    fn read(&mut self, now_ns: u64) -> u8 {
        // Datasheet, "Read-Back Command": a latched status is read first.
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        let value = self.latched_count.unwrap_or_else(|| self.element(now_ns));
        let [low, high] = value.to_le_bytes();
        let (byte, done) = match self.access {
            Access::LowByte => (low, true),
            Access::HighByte => (high, true),
            Access::Word if self.read_high_next => (high, true),
            Access::Word => (low, false),
        };
        self.read_high_next = !done;
        if done {
            self.latched_count = None;
        }
        byte
    }

    fn write(&mut self, byte: u8, now_ns: u64) {
        let raw = match self.access {
            Access::LowByte => u16::from(byte),
            Access::HighByte => u16::from(byte) << 8,
            Access::Word => match self.written_low.take() {
                Some(low) => u16::from_le_bytes([low, byte]),
                None => {
                    self.written_low = Some(byte);
                    // Datasheet, Mode 0: writing the first byte stops the
                    // count and sets OUT low.
                    if self.mode == Mode::TerminalCount {
                        self.hold(now_ns);
                        self.run = Run::Unloaded;
                    }
                    return;
                }
            },
        };
        self.write_count(raw, now_ns);
    }

    /// A whole count written: 0 stands for the range's size.
    fn write_count(&mut self, raw: u16, now_ns: u64) {
        let count = if self.bcd { from_bcd(raw) } else { raw.into() };
        self.reload = if count == 0 { self.modulus() } else { count };
        self.null_count = true;
        match (self.mode, self.run) {
            (mode, Run::Unloaded) if mode.gate_triggered() => self.run = Run::Armed,
            (mode, _) if mode.gate_triggered() => {}
            (mode, Run::Counting { start_ns, initial }) if mode.periodic() => {
                let period_end = (ticks_in(now_ns - start_ns) / initial + 1) * initial;
                self.reload_at_ns = Some(start_ns.saturating_add(ns_for(period_end)));
            }
            _ => {
                self.load(now_ns);
                if !self.gate {
                    self.suspend(now_ns);
                }
            }
        }
    }

    fn suspend(&mut self, now_ns: u64) {
        if let Run::Counting { start_ns, initial } = self.run {
            self.run = Run::Suspended {
                elapsed_ns: now_ns - start_ns,
                initial,
            };
        }
    }

    /// GATE moving to `high` (datasheet, "Gate" table per mode).
    fn set_gate(&mut self, high: bool, now_ns: u64) {
        if high == self.gate {
            return;
        }
        self.gate = high;
        let loaded = self.run != Run::Unloaded;
        match self.mode {
            Mode::TerminalCount | Mode::SoftwareStrobe => match self.run {
                Run::Counting { .. } if !high => self.suspend(now_ns),
                Run::Suspended {
                    elapsed_ns,
                    initial,
                } if high => {
                    self.run = Run::Counting {
                        start_ns: now_ns - elapsed_ns,
                        initial,
                    };
                }
                _ => {}
            },
            // Low: counting stops and OUT goes high at once; rising:
            // the count reloads.
            Mode::RateGenerator | Mode::SquareWave if !high => {
                self.reload_at_ns = None;
                self.suspend(now_ns);
            }
            // Rising: the trigger, which (re)loads the count.
            _ if high && loaded => self.load(now_ns),
            _ => {}
        }
    }
}

/// `value` (below 10^4) as four BCD digits.
fn to_bcd(value: u64) -> u16 {
    let digits = [
        value % 10,
        value / 10 % 10,
        value / 100 % 10,
        value / 1000 % 10,
    ];
    digits
        .iter()
        .rev()
        .fold(0, |bcd, &digit| (bcd << 4) | digit as u16)
}

/// Four BCD digits as a number; nibbles above 9 weigh what they say.
fn from_bcd(bcd: u16) -> u64 {
    (0..4).rev().fold(0, |value, digit| {
        value * 10 + u64::from((bcd >> (4 * digit)) & 0xf)
    })
}

/// The 8254 with port 0x61.
#[derive(Debug, Clone)]
pub struct Pit {
    channels: [Channel; 3],
    /// Port 0x61 bits 0-3 (bit 0 is also channel 2's gate).
    port_b: u8,
    refresh: bool,
    delivered: u64,
    coalesced: u64,
}

impl Default for Pit {
    fn default() -> Self {
        Pit::new()
    }
}

impl Pit {
    /// The timer at power-on: no counts written, channel 2's gate low.
    pub const fn new() -> Pit {
        Pit {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port_b: 0,
            refresh: false,
            delivered: 0,
            coalesced: 0,
        }
    }

    /// Pulses of IRQ 0 delivered (each for one or more rising edges of
    /// OUT0).
    pub fn delivered_ticks(&self) -> u64 {
        self.delivered
    }

    /// Rising edges of OUT0 folded into an earlier pulse because they fell
    /// due before the VM was brought up to date.
    pub fn coalesced_ticks(&self) -> u64 {
        self.coalesced
    }

    /// Channel `index`'s OUT at `now_ns`, as the counters stand after the
    /// last access or advance.
    pub fn output(&self, index: usize, now_ns: u64) -> bool {
        self.channels
            .get(index)
            .is_some_and(|channel| channel.out(now_ns))
    }

    /// Brings every counter to `cx.now_ns`, pulsing IRQ 0 once if OUT0
    /// rose.
    fn catch_up(&mut self, cx: &mut DeviceContext) {
        let [channel0, rest @ ..] = &mut self.channels;
        for channel in rest {
            channel.settle(cx.now_ns);
        }
        let edges = channel0.settle(cx.now_ns);
        self.deliver(edges, cx);
    }

    fn deliver(&mut self, edges: u64, cx: &mut DeviceContext) {
        if edges > 0 {
            cx.irq.pulse(PIT_IRQ);
            self.delivered += 1;
            self.coalesced += edges - 1;
        }
    }

    fn write_control(&mut self, value: u8, now_ns: u64) {
        let select = value >> SELECT_SHIFT;
        if select == SELECT_READ_BACK {
            for (index, channel) in self.channels.iter_mut().enumerate() {
                if value & (2 << index) == 0 {
                    continue;
                }
                if value & READ_BACK_NO_COUNT == 0 {
                    channel.latch_count(now_ns);
                }
                if value & READ_BACK_NO_STATUS == 0 {
                    channel.latch_status(now_ns);
                }
            }
            return;
        }
        let channel = &mut self.channels[usize::from(select)];
        if (value >> ACCESS_SHIFT) & 3 == ACCESS_LATCH {
            channel.latch_count(now_ns);
        } else {
            channel.program(value, now_ns);
        }
    }

    fn read_port_b(&mut self, now_ns: u64) -> u8 {
        let mut value = self.port_b;
        if self.refresh {
            value |= PORT_B_REFRESH;
        }
        if self.channels[2].out(now_ns) {
            value |= PORT_B_OUT2;
        }
        self.refresh = !self.refresh;
        value
    }

    fn read_port(&mut self, offset: u16, now_ns: u64) -> u8 {
        match offset {
            0..=2 => self.channels[usize::from(offset)].read(now_ns),
            PORT_B_OFFSET => self.read_port_b(now_ns),
            // CONTROL is write-only; the rest decode nothing.
            _ => 0xff,
        }
    }

    fn write_port(&mut self, offset: u16, value: u8, now_ns: u64) {
        match offset {
            0..=2 => self.channels[usize::from(offset)].write(value, now_ns),
            CONTROL => self.write_control(value, now_ns),
            PORT_B_OFFSET => {
                self.port_b = value & PORT_B_WRITABLE;
                self.channels[2].set_gate(value & PORT_B_GATE2 != 0, now_ns);
            }
            _ => {}
        }
    }
}

impl Timed for Pit {
    fn next_deadline_ns(&self) -> Option<u64> {
        let channel0 = &self.channels[0];
        channel0.next_edge_ns(channel0.edges_through_ns)
    }

    fn advance(&mut self, cx: &mut DeviceContext) {
        self.catch_up(cx);
    }
}

impl PortDevice for Pit {
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        self.catch_up(cx);
        (0..size.bytes()).fold(0, |value, index| {
            let byte = self.read_port(offset.wrapping_add(index.into()), cx.now_ns);
            value | u32::from(byte) << (8 * index)
        })
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        self.catch_up(cx);
        for (index, byte) in value.to_le_bytes()[..size.bytes().into()]
            .iter()
            .enumerate()
        {
            let before = self.channels[0].out(cx.now_ns);
            self.write_port(offset.wrapping_add(index as u16), *byte, cx.now_ns);
            if !before && self.channels[0].out(cx.now_ns) {
                self.deliver(1, cx);
            }
        }
    }
}

#[cfg(test)]
mod tests;
