//! One 8254 counter: its control word, count register, counting element,
//! latches and OUT, computed from VM time (Intel 82C54 datasheet, cited by
//! section title). The device around it ([`super::Pit`]) owns the ports,
//! the gates' wiring and IRQ 0; a counter knows none of them.

use super::FREQUENCY_HZ;

const NS_PER_SECOND: u128 = 1_000_000_000;

// Control word fields (datasheet, "Control Word Format").
pub(super) const ACCESS_SHIFT: u8 = 4;
const MODE_SHIFT: u8 = 1;
const CONTROL_BCD: u8 = 1 << 0;
/// The status byte's bits 5:0 repeat the control word's.
const CONTROL_FIELDS: u8 = 0x3f;
// Status byte (datasheet, "Status Byte").
pub(super) const STATUS_OUTPUT: u8 = 1 << 7;
pub(super) const STATUS_NULL_COUNT: u8 = 1 << 6;

/// Whole clock periods in `ns` nanoseconds.
pub(super) fn ticks_in(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(FREQUENCY_HZ) / NS_PER_SECOND) as u64
}

/// The first nanosecond by which `ticks` clock periods have passed.
pub(super) fn ns_for(ticks: u64) -> u64 {
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
pub(super) struct Channel {
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
    pub(super) edges_through_ns: u64,
}

impl Channel {
    pub(super) const fn new(gate: bool) -> Channel {
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
    pub(super) fn out(&self, now_ns: u64) -> bool {
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
    pub(super) fn next_edge_ns(&self, after_ns: u64) -> Option<u64> {
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
    pub(super) fn settle(&mut self, now_ns: u64) -> u64 {
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
    pub(super) fn program(&mut self, control: u8, now_ns: u64) {
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
    pub(super) fn latch_count(&mut self, now_ns: u64) {
        if self.latched_count.is_none() {
            self.latched_count = Some(self.element(now_ns));
        }
    }

    pub(super) fn latch_status(&mut self, now_ns: u64) {
        if self.latched_status.is_none() {
            self.latched_status = Some(self.status(now_ns));
        }
    }

    pub(super) fn read(&mut self, now_ns: u64) -> u8 {
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

    pub(super) fn write(&mut self, byte: u8, now_ns: u64) {
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
    pub(super) fn set_gate(&mut self, high: bool, now_ns: u64) {
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
