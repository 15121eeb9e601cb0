//! The MC146818A real-time clock and its CMOS RAM, as a PC decodes it at
//! ports 0x70 (index) and 0x71 (data). Citations name sections of the
//! Motorola MC146818A datasheet.
//!
//! This module owns the clock, the 128 bytes of CMOS RAM and the level of
//! IRQ 8. It must not read the host's clock (the core gives the wall-clock
//! time at creation) or know which controller its IRQ reaches.
//!
//! Modelling choices:
//! - **Time.** The clock counts VM time (`DeviceContext::now_ns`) from the
//!   wall-clock second given to [`Rtc::new`]. Everything runs off a virtual
//!   32.768 kHz divider chain: one second is 32 768 of its cycles, so the
//!   updates, the periodic interrupt and the UIP window stay in the
//!   datasheet's phase relation without drift. The chain counts from VM
//!   time 0, or from half a second before the moment the guest releases it
//!   from reset (datasheet, "Divider Control": the first update follows
//!   500 ms after the reset is released).
//! - **Lazily caught up.** Updates and periodic ticks are applied when the
//!   guest touches the device or the core calls [`Timed::advance`], for
//!   all the seconds and ticks that passed since; the core needs deadlines
//!   only when an interrupt is enabled.
//! - **The update is instantaneous**, at the second boundary; UIP reads 1
//!   for the 244 µs (8 divider cycles) before it, so a guest that waits for
//!   UIP to fall and then reads the time sees a fresh, stable second. The
//!   time registers never hold the half-updated values of the real
//!   part's 1984 µs update cycle.
//! - **The registers hold the time as fields** (binary, 24-hour) and are
//!   encoded on each read in the format register B selects, so changing
//!   DM or 24/12 converts the reading instead of leaving undefined values
//!   (the datasheet asks software to re-initialise the time after such a
//!   change; converting is one valid outcome). A BCD byte with a digit
//!   above 9 is decoded digit by digit (0x5A is 60). An impossible date or
//!   time is normalised by the next update (31 February becomes 3 March).
//! - **The century** at 0x32 is general-purpose RAM on the MC146818 (it is
//!   the IBM AT's convention); here it moves with the year, so 2099 rolls
//!   to 2100, and leap years follow the full Gregorian rule (the part
//!   itself treats every fourth year as leap).
//! - **The day of the week** is a counter of its own, as on the part: it
//!   advances by one at each midnight, whatever the date says.
//! - **Daylight saving** (register B, DSE) is kept and never applied: no
//!   PC OS sets it, and the 1986 US rule it encodes is obsolete.
//! - **The divider** runs only with DV = 010 (register A bits 6:4), the
//!   32.768 kHz time base every PC has; 11x holds it in reset, and the
//!   other time bases (4.19 and 1.05 MHz crystals) stop it, since this PC
//!   has no such crystal.
//! - **Port 0x70** keeps bit 7 (NMI disable on a PC) alongside the index;
//!   reads of it return the last value written (the AT's port is
//!   write-only, and the value written is the least surprising answer).
//!   The extended bank at 0x72/0x73 is not decoded.

pub mod calendar;
pub mod cmos;

pub use calendar::DateTime;
pub use cmos::CmosLayout;

use super::irq::IrqLine;
use super::{AccessSize, DeviceContext, PortDevice, Timed};

/// The index port; the data port follows it.
pub const BASE_PORT: u16 = 0x70;
/// How many ports the RTC decodes (index and data).
pub const PORT_COUNT: u16 = 2;
/// The RTC's ISA interrupt line on a PC.
pub const RTC_IRQ: IrqLine = IrqLine::new(8).unwrap();
/// Port 0x70's bit 7: NMI disabled while set (PC convention, not the RTC's).
pub const NMI_DISABLE: u8 = 1 << 7;

const INDEX: u16 = 0;
const DATA: u16 = 1;

// The address map (datasheet, "Address Map" figure).
const SECONDS: u8 = 0x00;
const SECONDS_ALARM: u8 = 0x01;
const MINUTES: u8 = 0x02;
const MINUTES_ALARM: u8 = 0x03;
const HOURS: u8 = 0x04;
const HOURS_ALARM: u8 = 0x05;
const DAY_OF_WEEK: u8 = 0x06;
const DAY_OF_MONTH: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
/// Register A.
pub const REGISTER_A: u8 = 0x0a;
/// Register B.
pub const REGISTER_B: u8 = 0x0b;
/// Register C.
pub const REGISTER_C: u8 = 0x0c;
/// Register D.
pub const REGISTER_D: u8 = 0x0d;

// Register A (datasheet, "Register A").
/// Update in progress (read-only).
pub const A_UIP: u8 = 1 << 7;
const A_DIVIDER_MASK: u8 = 0x70;
/// DV2-0 = 010: the 32.768 kHz time base, divider running.
pub const A_DIVIDER_32KHZ: u8 = 0x20;
/// DV2-0 = 11x: divider chain held in reset.
pub const A_DIVIDER_RESET: u8 = 0x60;
const A_RATE_MASK: u8 = 0x0f;
const A_WRITABLE: u8 = 0x7f;

// Register B (datasheet, "Register B").
/// SET: updates inhibited while the time is being set.
pub const B_SET: u8 = 1 << 7;
/// PIE: periodic interrupt enable.
pub const B_PIE: u8 = 1 << 6;
/// AIE: alarm interrupt enable.
pub const B_AIE: u8 = 1 << 5;
/// UIE: update-ended interrupt enable.
pub const B_UIE: u8 = 1 << 4;
/// SQWE: square-wave output enable (no pin in a VM: kept only).
pub const B_SQWE: u8 = 1 << 3;
/// DM: binary data mode (clear: BCD).
pub const B_BINARY: u8 = 1 << 2;
/// 24/12: 24-hour mode (clear: 12-hour, PM in the hour's bit 7).
pub const B_24_HOUR: u8 = 1 << 1;
/// DSE: daylight saving enable (kept, not applied).
pub const B_DSE: u8 = 1 << 0;

// Register C (datasheet, "Register C"): the flags sit at the same bit
// positions as their enables in register B.
/// IRQF: an enabled flag is set, IRQ asserted.
pub const C_IRQF: u8 = 1 << 7;
/// PF: periodic interrupt flag.
pub const C_PF: u8 = 1 << 6;
/// AF: alarm flag.
pub const C_AF: u8 = 1 << 5;
/// UF: update-ended flag.
pub const C_UF: u8 = 1 << 4;
const INTERRUPT_BITS: u8 = C_PF | C_AF | C_UF;

/// Register D: VRT, valid RAM and time (the battery is good).
pub const D_VRT: u8 = 1 << 7;

/// An alarm byte with both top bits set matches every value (datasheet,
/// "Alarm": the "don't care" code).
const ALARM_DONT_CARE: u8 = 0xc0;
/// The PM flag in a 12-hour hour byte.
const HOUR_PM: u8 = 1 << 7;

/// What register A holds after the firmware ran: the 32.768 kHz divider
/// and rate 6 (1024 Hz), as PC BIOSes program it.
pub const RESET_REGISTER_A: u8 = A_DIVIDER_32KHZ | 0x06;
/// What register B holds after the firmware ran: 24-hour BCD, no
/// interrupts.
pub const RESET_REGISTER_B: u8 = B_24_HOUR;

const NS_PER_SECOND: u64 = 1_000_000_000;
/// Cycles of the 32.768 kHz time base in a second.
const CYCLES_PER_SECOND: u64 = 32_768;
/// UIP rises this many cycles (244 µs) before each update (datasheet,
/// "Update Cycle": tBUC).
const UIP_CYCLES: u64 = 8;

/// The periodic interrupt's period in divider cycles for rate select `rs`
/// (datasheet, "Periodic Interrupt Rate and Square-Wave Output Frequency"
/// table, 32.768 kHz column): none for 0; 256 Hz and 128 Hz for 1 and 2
/// (the 32.768 kHz time base cannot go faster); 2^(rs-1) cycles, 8192 Hz
/// down to 2 Hz, for 3-15.
pub const fn periodic_cycles(rate_select: u8) -> Option<u64> {
    match rate_select & A_RATE_MASK {
        0 => None,
        1 => Some(128),
        2 => Some(256),
        rs => Some(1 << (rs - 1)),
    }
}

/// VM nanoseconds to divider cycles, rounding down.
fn cycles_at(divider_ns: u64) -> u64 {
    (u128::from(divider_ns) * u128::from(CYCLES_PER_SECOND) / u128::from(NS_PER_SECOND)) as u64
}

/// The first nanosecond at which the divider has counted `cycles`.
fn ns_of_cycle(cycles: u64) -> u64 {
    let ns =
        (u128::from(cycles) * u128::from(NS_PER_SECOND)).div_ceil(u128::from(CYCLES_PER_SECOND));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The first CMOS byte that is plain battery-backed RAM: 0x00-0x0D are the
/// clock, the alarm and registers A-D (MC146818A datasheet, address map).
const NVRAM_FIRST: u8 = 0x0e;

/// One MC146818A with its 128 bytes of CMOS RAM.
#[derive(Debug, Clone)]
pub struct Rtc {
    /// The last byte written to port 0x70 (index in 6:0, NMI disable in 7).
    index: u8,
    /// CMOS RAM; also holds registers A (without UIP) and B and the alarm
    /// bytes. The time registers, C and D live elsewhere.
    ram: [u8; 128],
    /// The clock: binary, 24-hour.
    time: DateTime,
    /// PF, AF and UF not yet read.
    flags: u8,
    irq_asserted: bool,
    /// Divider time = VM time + `phase_ns`.
    phase_ns: u64,
    /// Second boundaries of divider time already applied.
    updates_seen: u64,
    /// Periodic ticks of divider time already applied.
    ticks_seen: u64,
    coalesced: u64,
}

impl Rtc {
    /// An RTC whose clock reads `unix_seconds` (seconds since 1970-01-01,
    /// the host's RTC at boot, plus however long ago that was) at VM time
    /// 0, and whose CMOS RAM describes `layout`. Registers A and B hold
    /// what a BIOS leaves ([`RESET_REGISTER_A`], [`RESET_REGISTER_B`]).
    pub fn new(unix_seconds: u64, layout: CmosLayout) -> Rtc {
        let mut ram = layout.image();
        ram[usize::from(REGISTER_A)] = RESET_REGISTER_A;
        ram[usize::from(REGISTER_B)] = RESET_REGISTER_B;
        Rtc {
            index: 0,
            ram,
            time: DateTime::from_unix_seconds(i64::try_from(unix_seconds).unwrap_or(i64::MAX)),
            flags: 0,
            irq_asserted: false,
            phase_ns: 0,
            updates_seen: 0,
            ticks_seen: 0,
            coalesced: 0,
        }
    }

    /// The battery-backed CMOS RAM after the clock and status registers
    /// (bytes 0x0E-0x7F, what Linux's /dev/nvram exposes), which survives
    /// a reset or power cycle of the PC.
    pub fn nvram(&self) -> &[u8] {
        &self.ram[usize::from(NVRAM_FIRST)..]
    }

    /// Puts back CMOS RAM that an earlier run of the VM left (see
    /// [`Rtc::nvram`]); bytes beyond the RAM's end are ignored.
    pub fn restore_nvram(&mut self, bytes: &[u8]) {
        let ram = &mut self.ram[usize::from(NVRAM_FIRST)..];
        let length = ram.len().min(bytes.len());
        ram[..length].copy_from_slice(&bytes[..length]);
    }

    /// The clock as of the last access or advance (binary, 24-hour).
    pub fn date_time(&self) -> DateTime {
        self.time
    }

    /// Whether the guest disabled NMIs through port 0x70's bit 7.
    pub fn nmi_disabled(&self) -> bool {
        self.index & NMI_DISABLE != 0
    }

    /// Whether the RTC drives IRQ 8 now.
    pub fn irq_asserted(&self) -> bool {
        self.irq_asserted
    }

    /// Periodic ticks, with the periodic interrupt enabled, that found PF
    /// still set from an earlier tick and so gave the guest no interrupt of
    /// their own: ticks that piled up while the guest did not read register
    /// C, or while the core did not call [`Timed::advance`] in time.
    pub fn coalesced_periodic_ticks(&self) -> u64 {
        self.coalesced
    }

    fn register_a(&self) -> u8 {
        self.ram[usize::from(REGISTER_A)]
    }

    fn register_b(&self) -> u8 {
        self.ram[usize::from(REGISTER_B)]
    }

    fn running(&self) -> bool {
        self.register_a() & A_DIVIDER_MASK == A_DIVIDER_32KHZ
    }

    fn setting(&self) -> bool {
        self.register_b() & B_SET != 0
    }

    fn period(&self) -> Option<u64> {
        periodic_cycles(self.register_a())
    }

    fn divider_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_add(self.phase_ns)
    }

    /// Restarts the divider chain at `now_ns` so that the first update
    /// comes half a second later (datasheet, "Divider Control").
    fn restart_divider(&mut self, now_ns: u64) {
        let half = NS_PER_SECOND / 2;
        self.phase_ns = (NS_PER_SECOND + half - now_ns % NS_PER_SECOND) % NS_PER_SECOND;
        let divider = self.divider_ns(now_ns);
        self.updates_seen = divider / NS_PER_SECOND;
        self.restart_ticks(now_ns);
    }

    fn restart_ticks(&mut self, now_ns: u64) {
        let cycles = cycles_at(self.divider_ns(now_ns));
        self.ticks_seen = self.period().map_or(0, |period| cycles / period);
    }

    /// Applies every update and periodic tick due by `now_ns`.
    fn catch_up(&mut self, now_ns: u64) {
        if !self.running() {
            return;
        }
        let divider = self.divider_ns(now_ns);
        let updates_due = divider / NS_PER_SECOND;
        if updates_due > self.updates_seen {
            let missed = updates_due - self.updates_seen;
            self.updates_seen = updates_due;
            // With SET, the seconds pass uncounted: the guest is setting
            // the time (datasheet, "Register B", SET).
            if !self.setting() {
                self.update(missed);
            }
        }
        if let Some(period) = self.period() {
            let ticks_due = cycles_at(divider) / period;
            if ticks_due > self.ticks_seen {
                let ticks = ticks_due - self.ticks_seen;
                self.ticks_seen = ticks_due;
                if self.register_b() & B_PIE != 0 {
                    let first_gets_through = u64::from(self.flags & C_PF == 0);
                    self.coalesced += ticks - first_gets_through;
                }
                self.flags |= C_PF;
            }
        }
    }

    /// `seconds` update cycles at once: the clock moves on, UF is set, and
    /// AF if the alarm matched at any of those seconds.
    fn update(&mut self, seconds: u64) {
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        let before = self.time.to_unix_seconds();
        let after = before.saturating_add(seconds);
        let days = after.div_euclid(calendar::SECONDS_PER_DAY)
            - before.div_euclid(calendar::SECONDS_PER_DAY);
        let day_of_week = (i64::from(self.time.day_of_week) - 1 + days).rem_euclid(7) as u8 + 1;
        self.time = DateTime {
            day_of_week,
            ..DateTime::from_unix_seconds(after)
        };
        // A day holds every hour-minute-second the alarm can name: looking
        // at the last day's worth of seconds finds any match.
        let looked_at = seconds.min(calendar::SECONDS_PER_DAY);
        if (after - looked_at + 1..=after).any(|second| self.alarm_matches(second)) {
            self.flags |= C_AF;
        }
        self.flags |= C_UF;
    }

    /// Whether the alarm bytes match the time of day of Unix second `at`.
    fn alarm_matches(&self, at: i64) -> bool {
        let second_of_day = at.rem_euclid(calendar::SECONDS_PER_DAY);
        let fields = [
            (HOURS_ALARM, self.encode_hour((second_of_day / 3600) as u8)),
            (MINUTES_ALARM, self.encode((second_of_day / 60 % 60) as u8)),
            (SECONDS_ALARM, self.encode((second_of_day % 60) as u8)),
        ];
        fields.iter().all(|&(alarm, now)| {
            let alarm = self.ram[usize::from(alarm)];
            alarm & ALARM_DONT_CARE == ALARM_DONT_CARE || alarm == now
        })
    }

    fn binary(&self) -> bool {
        self.register_b() & B_BINARY != 0
    }

    /// `value` (0-99) in the data mode of register B.
    fn encode(&self, value: u8) -> u8 {
        if self.binary() {
            value
        } else {
            ((value / 10) << 4) | (value % 10)
        }
    }

    fn decode(&self, byte: u8) -> u8 {
        if self.binary() {
            byte
        } else {
            (byte >> 4) * 10 + (byte & 0x0f)
        }
    }

    /// An hour 0-23 in the mode of register B: 12-hour mode counts 12, 1,
    /// ..., 11 with bit 7 set for PM (datasheet, "Time, Calendar and Alarm
    /// Data Modes" table).
    fn encode_hour(&self, hour: u8) -> u8 {
        if self.register_b() & B_24_HOUR != 0 {
            return self.encode(hour);
        }
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        let twelve_hour = match hour % 12 {
            0 => 12,
            hour => hour,
        };
        self.encode(twelve_hour) | pm
    }

    fn decode_hour(&self, byte: u8) -> u8 {
        if self.register_b() & B_24_HOUR != 0 {
            return self.decode(byte);
        }
        let pm = if byte & HOUR_PM != 0 { 12 } else { 0 };
        self.decode(byte & !HOUR_PM) % 12 + pm
    }

    fn update_in_progress(&self, now_ns: u64) -> bool {
        self.running()
            && !self.setting()
            && cycles_at(self.divider_ns(now_ns)) % CYCLES_PER_SECOND
                >= CYCLES_PER_SECOND - UIP_CYCLES
    }

    fn read_register(&mut self, register: u8, cx: &mut DeviceContext) -> u8 {
        let year_of_century = self.time.year.rem_euclid(100) as u8;
        let century = self.time.year.div_euclid(100).clamp(0, 99) as u8;
        match register {
            SECONDS => self.encode(self.time.second),
            MINUTES => self.encode(self.time.minute),
            HOURS => self.encode_hour(self.time.hour),
            DAY_OF_WEEK => self.encode(self.time.day_of_week),
            DAY_OF_MONTH => self.encode(self.time.day),
            MONTH => self.encode(self.time.month),
            YEAR => self.encode(year_of_century),
            cmos::CENTURY => self.encode(century),
            REGISTER_A if self.update_in_progress(cx.now_ns) => self.register_a() | A_UIP,
            REGISTER_C => {
                let irqf = if self.irq_flag() { C_IRQF } else { 0 };
                // Reading C clears every flag, and with IRQF the IRQ
                // (datasheet, "Register C").
                let value = self.flags | irqf;
                self.flags = 0;
                value
            }
            REGISTER_D => D_VRT,
            _ => self.ram[usize::from(register)],
        }
    }

    fn write_register(&mut self, register: u8, value: u8, now_ns: u64) {
        let year_of_century = self.time.year.rem_euclid(100);
        let century = self.time.year.div_euclid(100);
        match register {
            SECONDS => self.time.second = self.decode(value),
            MINUTES => self.time.minute = self.decode(value),
            HOURS => self.time.hour = self.decode_hour(value),
            DAY_OF_WEEK => self.time.day_of_week = self.decode(value),
            DAY_OF_MONTH => self.time.day = self.decode(value),
            MONTH => self.time.month = self.decode(value),
            YEAR => self.time.year = century * 100 + i64::from(self.decode(value)),
            cmos::CENTURY => {
                self.time.year = i64::from(self.decode(value)) * 100 + year_of_century;
            }
            REGISTER_A => {
                let was_running = self.running();
                let old_rate = self.register_a() & A_RATE_MASK;
                self.ram[usize::from(REGISTER_A)] = value & A_WRITABLE;
                if self.running() && !was_running {
                    self.restart_divider(now_ns);
                } else if value & A_RATE_MASK != old_rate {
                    self.restart_ticks(now_ns);
                }
            }
            REGISTER_B => {
                // Setting SET clears UIE (datasheet, "Register B", UIE).
                let value = if value & B_SET != 0 {
                    value & !B_UIE
                } else {
                    value
                };
                self.ram[usize::from(REGISTER_B)] = value;
            }
            // C and D are read-only (datasheet, "Register C", "Register D").
            REGISTER_C | REGISTER_D => {}
            _ => self.ram[usize::from(register)] = value,
        }
    }

    /// IRQF: a flag set together with its enable (datasheet, "Register C":
    /// IRQF = PF·PIE + AF·AIE + UF·UIE).
    fn irq_flag(&self) -> bool {
        self.flags & self.register_b() & INTERRUPT_BITS != 0
    }

    /// Drives IRQ 8 to follow IRQF. The part's IRQ pin stays asserted until
    /// register C is read, so a guest that never reads it gets no further
    /// interrupts: the line does not rise again while it is high.
    fn update_irq(&mut self, cx: &mut DeviceContext) {
        let assert = self.irq_flag();
        if assert != self.irq_asserted {
            self.irq_asserted = assert;
            cx.irq.set(RTC_IRQ, assert);
        }
    }

    fn read_port(&mut self, offset: u16, cx: &mut DeviceContext) -> u8 {
        match offset {
            INDEX => self.index,
            DATA => self.read_register(self.index & !NMI_DISABLE, cx),
            _ => 0xff,
        }
    }

    fn write_port(&mut self, offset: u16, value: u8, now_ns: u64) {
        match offset {
            INDEX => self.index = value,
            DATA => self.write_register(self.index & !NMI_DISABLE, value, now_ns),
            _ => {}
        }
    }
}

impl PortDevice for Rtc {
    /// Wider accesses are split into byte accesses at consecutive ports,
    /// low byte first, as a PC's ISA bridge does for an 8-bit device.
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        self.catch_up(cx.now_ns);
        let mut value = 0;
        for index in 0..size.bytes() {
            let byte = self.read_port(offset.saturating_add(index.into()), cx);
            value |= u32::from(byte) << (8 * index);
        }
        self.update_irq(cx);
        value
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        self.catch_up(cx.now_ns);
        for (index, byte) in value.to_le_bytes()[..size.bytes().into()]
            .iter()
            .enumerate()
        {
            self.write_port(offset.saturating_add(index as u16), *byte, cx.now_ns);
        }
        self.update_irq(cx);
    }
}

impl Timed for Rtc {
    /// The next periodic tick with PIE set, and the next update with UIE or
    /// AIE set; none while the divider is stopped. Flags whose interrupt is
    /// disabled are brought up to date on the guest's next access instead.
    fn next_deadline_ns(&self) -> Option<u64> {
        if !self.running() {
            return None;
        }
        let b = self.register_b();
        let tick = self
            .period()
            .filter(|_| b & B_PIE != 0)
            .map(|period| ns_of_cycle((self.ticks_seen + 1) * period));
        let update = (b & (B_UIE | B_AIE) != 0 && !self.setting())
            .then(|| (self.updates_seen + 1).saturating_mul(NS_PER_SECOND));
        let next = match (tick, update) {
            (Some(tick), Some(update)) => tick.min(update),
            (tick, update) => tick.or(update)?,
        };
        Some(next.saturating_sub(self.phase_ns))
    }

    fn advance(&mut self, cx: &mut DeviceContext) {
        self.catch_up(cx.now_ns);
        self.update_irq(cx);
    }
}

#[cfg(test)]
mod tests;
