//! Register- and timing-level tests of the 8254 model: the guest's port
//! accesses go through a [`PortBus`] registered as the VM core will
//! register it, at chosen VM times; OUT is observed through the status
//! byte, port 0x61 and IRQ 0.

use super::*;
use crate::devices::bus::{DeviceId, PortBus};
use crate::devices::testing::Recorder;

/// A PIT on a port bus at 0x40-0x43 and 0x61, with the VM's time.
struct Rig {
    bus: PortBus<Pit>,
    id: DeviceId,
    rec: Recorder,
    now_ns: u64,
}

/// Read-back commands latching only the status of one counter.
const STATUS_OF: [u8; 3] = [0xe2, 0xe4, 0xe8];

impl Rig {
    fn new() -> Rig {
        let mut bus = PortBus::new();
        let id = bus.add(PIT_BASE, PORT_COUNT, Pit::new()).unwrap();
        bus.add_range(id, PORT_B, 1).unwrap();
        Rig {
            bus,
            id,
            rec: Recorder::default(),
            now_ns: 0,
        }
    }

    fn pit(&mut self) -> &mut Pit {
        self.bus.device_mut(self.id).unwrap()
    }

    /// Moves VM time to `now_ns`, without advancing the timer.
    fn at(&mut self, now_ns: u64) -> &mut Rig {
        self.now_ns = now_ns;
        self
    }

    fn inb(&mut self, port: u16) -> u8 {
        let mut cx = self.rec.cx().at(self.now_ns);
        self.bus.read(port, AccessSize::Byte, &mut cx) as u8
    }

    fn outb(&mut self, port: u16, value: u8) {
        let mut cx = self.rec.cx().at(self.now_ns);
        self.bus
            .write(port, AccessSize::Byte, value.into(), &mut cx);
    }

    /// A control word, then a 16-bit count LSB first, on `channel`.
    fn program(&mut self, channel: u16, control: u8, count: u16) {
        self.outb(0x43, control);
        let [low, high] = count.to_le_bytes();
        self.outb(0x40 + channel, low);
        self.outb(0x40 + channel, high);
    }

    fn status(&mut self, channel: usize) -> u8 {
        self.outb(0x43, STATUS_OF[channel]);
        self.inb(0x40 + channel as u16)
    }

    fn out(&mut self, channel: usize) -> bool {
        self.status(channel) & STATUS_OUTPUT != 0
    }

    /// The live count, read LSB then MSB without a latch.
    fn count(&mut self, channel: u16) -> u16 {
        let low = self.inb(0x40 + channel);
        let high = self.inb(0x40 + channel);
        u16::from_le_bytes([low, high])
    }

    fn deadline(&mut self) -> Option<u64> {
        self.pit().next_deadline_ns()
    }

    /// Advances the timer to the current time; returns whether IRQ 0 was
    /// pulsed.
    fn advance(&mut self) -> bool {
        let now_ns = self.now_ns;
        let pit = self.bus.device_mut(self.id).unwrap();
        pit.advance(&mut self.rec.cx().at(now_ns));
        self.irq0()
    }

    /// Whether IRQ 0 rose since the last look.
    fn irq0(&mut self) -> bool {
        self.rec.lines.take_edges() & 1 != 0
    }
}

/// The VM time `ticks` clock periods after `start_ns`.
fn after(start_ns: u64, ticks: u64) -> u64 {
    start_ns + ns_for(ticks)
}

#[test]
fn the_clock_converts_both_ways_without_drift() {
    assert_eq!(ticks_in(1_000_000_000), FREQUENCY_HZ);
    assert_eq!(ns_for(FREQUENCY_HZ), 1_000_000_000);
    assert_eq!(ns_for(1), 839, "838.095 ns, rounded up");
    for ticks in [1, 2, 3, 11_931, 65_536, 1 << 40] {
        assert_eq!(ticks_in(ns_for(ticks)), ticks);
        assert_eq!(ticks_in(ns_for(ticks) - 1), ticks - 1);
    }
    // Hours of VM time do not overflow.
    assert_eq!(ticks_in(u64::MAX), 22_010_322_987_356_910);
}

#[test]
fn mode_0_out_rises_after_exactly_the_count_and_interrupts_once() {
    let mut rig = Rig::new();
    let start = 5_000;
    rig.at(start).program(0, 0x30, 100);
    assert!(!rig.out(0));
    assert_eq!(rig.status(0), 0x30, "OUT low, count loaded, lohi mode 0");
    assert_eq!(rig.deadline(), Some(after(start, 100)));
    rig.at(after(start, 100) - 1);
    assert!(!rig.advance());
    assert!(!rig.out(0));
    assert_eq!(rig.count(0), 1);
    rig.at(after(start, 100));
    assert!(rig.advance(), "terminal count pulses IRQ 0");
    assert!(rig.out(0));
    assert_eq!(rig.count(0), 0);
    assert_eq!(rig.deadline(), None, "mode 0 fires once");
    rig.at(after(start, 101));
    assert_eq!(rig.count(0), 0xffff, "the count wraps, OUT stays high");
    assert!(rig.out(0));
    assert!(!rig.advance());
    // Linux's one-shot reprogramming: a new count alone restarts it.
    rig.program(0, 0x30, 10);
    assert!(!rig.out(0), "OUT low again");
    let restart = rig.now_ns;
    assert_eq!(rig.deadline(), Some(after(restart, 10)));
    rig.at(after(restart, 10));
    assert!(rig.advance());
    assert_eq!(rig.pit().delivered_ticks(), 2);
}

#[test]
fn mode_0_first_byte_stops_the_count_and_gate_low_suspends_it() {
    let mut rig = Rig::new();
    rig.outb(0x61, PORT_B_GATE2);
    rig.at(0).program(2, 0xb0, 50);
    rig.at(after(0, 10));
    assert_eq!(rig.count(2), 40);
    rig.outb(0x42, 0x99);
    rig.at(after(0, 20));
    assert_eq!(rig.count(2), 40, "stopped by the first byte");
    assert!(!rig.out(2));
    rig.outb(0x42, 0);
    assert_eq!(rig.count(2), 0x99, "the new count, loaded at the write");
    let loaded = rig.now_ns;
    rig.outb(0x61, 0);
    rig.at(loaded + 1_000_000);
    assert_eq!(rig.count(2), 0x99, "gate low: counting suspended");
    rig.outb(0x61, PORT_B_GATE2);
    rig.at(loaded + 1_000_000 + ns_for(0x99));
    assert!(rig.out(2), "the count resumed where it stopped");
}

#[test]
fn mode_1_is_a_one_shot_retriggered_by_the_gate() {
    let mut rig = Rig::new();
    rig.program(2, 0xb2, 10);
    assert!(rig.out(2));
    assert_eq!(rig.status(2) & STATUS_NULL_COUNT, STATUS_NULL_COUNT);
    rig.at(10_000);
    assert!(rig.out(2), "no trigger yet");
    rig.outb(0x61, PORT_B_GATE2);
    assert!(!rig.out(2), "OUT low from the trigger");
    assert_eq!(rig.status(2) & STATUS_NULL_COUNT, 0);
    rig.at(after(10_000, 5));
    assert_eq!(rig.count(2), 5);
    rig.outb(0x61, 0);
    rig.outb(0x61, PORT_B_GATE2);
    let retrigger = rig.now_ns;
    rig.at(after(retrigger, 9));
    assert!(!rig.out(2), "retriggered: low for a whole count again");
    rig.at(after(retrigger, 10));
    assert!(rig.out(2));
    // Channel 0's gate is tied high: mode 1 never starts there.
    rig.program(0, 0x32, 10);
    rig.at(rig.now_ns + 1_000_000);
    assert!(rig.out(0));
    assert_eq!(rig.deadline(), None);
}

#[test]
fn mode_2_pulses_low_for_one_period_in_n_and_ticks_periodically() {
    let mut rig = Rig::new();
    rig.program(0, 0x34, 4);
    assert!(rig.irq0(), "OUT0 went high from mode 0's low: an edge");
    let outs: std::vec::Vec<bool> = (0..9)
        .map(|tick| {
            rig.at(after(0, tick));
            rig.out(0)
        })
        .collect();
    assert_eq!(
        outs,
        [true, true, true, false, true, true, true, false, true]
    );
    let counts: std::vec::Vec<u16> = (0..5)
        .map(|tick| {
            rig.at(after(0, tick));
            rig.count(0)
        })
        .collect();
    assert_eq!(counts, [4, 3, 2, 1, 4]);
}

#[test]
fn mode_2_deadlines_follow_the_period_and_late_ticks_coalesce() {
    let mut rig = Rig::new();
    let start = 1_000;
    rig.at(start).program(0, 0x34, 11_932); // Linux's LATCH at HZ=100
    rig.irq0();
    for k in 1..=3 {
        let deadline = rig.deadline().unwrap();
        assert_eq!(deadline, after(start, 11_932 * k));
        rig.at(deadline - 1);
        assert!(!rig.advance());
        rig.at(deadline);
        assert!(rig.advance());
    }
    assert_eq!(rig.pit().coalesced_ticks(), 0);
    // Descheduled for ten periods and a half: one pulse, nine coalesced.
    rig.at(after(start, 11_932 * 13 + 5_000));
    assert!(rig.advance());
    assert_eq!(rig.pit().coalesced_ticks(), 9);
    assert_eq!(rig.pit().delivered_ticks(), 5);
    assert_eq!(rig.deadline(), Some(after(start, 11_932 * 14)));
}

#[test]
fn an_access_delivers_the_ticks_that_fell_due_before_it() {
    let mut rig = Rig::new();
    rig.program(0, 0x34, 100);
    rig.irq0();
    rig.at(after(0, 250));
    assert_eq!(rig.count(0), 50);
    assert!(rig.irq0(), "the read brought the timer up to date");
    assert_eq!(rig.pit().coalesced_ticks(), 1);
    assert!(!rig.advance());
}

#[test]
fn mode_3_is_a_square_wave_with_the_odd_count_high_longer() {
    let mut rig = Rig::new();
    rig.program(0, 0x36, 5);
    let outs: std::vec::Vec<bool> = (0..6)
        .map(|tick| {
            rig.at(after(0, tick));
            rig.out(0)
        })
        .collect();
    assert_eq!(outs, [true, true, true, false, false, true]);
    let counts: std::vec::Vec<u16> = (0..6)
        .map(|tick| {
            rig.at(after(0, tick));
            rig.count(0)
        })
        .collect();
    assert_eq!(counts, [5, 4, 2, 5, 2, 5]);
    rig.program(0, 0x36, 4);
    let start = rig.now_ns;
    let outs: std::vec::Vec<bool> = (0..5)
        .map(|tick| {
            rig.at(after(start, tick));
            rig.out(0)
        })
        .collect();
    assert_eq!(outs, [true, true, false, false, true]);
    rig.advance();
    rig.irq0();
    assert_eq!(rig.deadline(), Some(after(start, 8)));
}

#[test]
fn mode_4_strobes_low_for_one_period_after_the_count() {
    let mut rig = Rig::new();
    rig.program(0, 0x38, 3); // Linux's one-shot clockevent mode
    assert!(rig.irq0(), "the control word raised OUT0");
    assert_eq!(rig.deadline(), Some(after(0, 4)), "the strobe's end");
    let outs: std::vec::Vec<bool> = (0..6)
        .map(|tick| {
            rig.at(after(0, tick));
            rig.out(0)
        })
        .collect();
    assert_eq!(outs, [true, true, true, false, true, true]);
    rig.at(after(0, 4));
    assert!(rig.advance());
    assert_eq!(rig.deadline(), None);
    // A new count restarts the strobe at once.
    rig.outb(0x40, 7);
    rig.outb(0x40, 0);
    assert_eq!(rig.deadline(), Some(after(after(0, 4), 8)));
}

#[test]
fn mode_5_strobes_after_a_gate_trigger() {
    let mut rig = Rig::new();
    rig.program(2, 0xba, 2);
    rig.at(50_000);
    assert!(rig.out(2));
    rig.outb(0x61, PORT_B_GATE2);
    let outs: std::vec::Vec<bool> = (0..4)
        .map(|tick| {
            rig.at(after(50_000, tick));
            rig.out(2)
        })
        .collect();
    assert_eq!(outs, [true, true, false, true]);
}

#[test]
fn gate_low_holds_modes_2_and_3_high_and_rising_reloads() {
    let mut rig = Rig::new();
    rig.outb(0x61, PORT_B_GATE2);
    rig.program(2, 0xb6, 10);
    rig.at(after(0, 7));
    assert!(!rig.out(2), "the low half of the square wave");
    rig.outb(0x61, 0);
    assert!(rig.out(2), "gate low forces OUT high");
    rig.at(after(0, 100));
    assert!(rig.out(2));
    rig.outb(0x61, PORT_B_GATE2);
    let reload = rig.now_ns;
    assert_eq!(rig.count(2), 10, "reloaded");
    rig.at(after(reload, 5));
    assert!(!rig.out(2));
}

#[test]
fn a_new_count_in_mode_2_waits_for_the_end_of_the_period() {
    let mut rig = Rig::new();
    rig.program(0, 0x34, 100);
    rig.irq0();
    rig.at(after(0, 30));
    rig.outb(0x40, 10);
    rig.outb(0x40, 0);
    assert_eq!(rig.status(0) & STATUS_NULL_COUNT, STATUS_NULL_COUNT);
    assert_eq!(rig.count(0), 70, "the old count goes on");
    assert_eq!(rig.deadline(), Some(after(0, 100)));
    rig.at(after(0, 100));
    assert!(rig.advance());
    assert_eq!(rig.status(0) & STATUS_NULL_COUNT, 0, "loaded");
    assert_eq!(rig.count(0), 10);
    assert_eq!(rig.deadline(), Some(after(after(0, 100), 10)));
    // Late past the boundary: the old period's edge and the new ones.
    rig.program(0, 0x34, 100);
    let start = rig.now_ns;
    rig.irq0();
    rig.outb(0x40, 10);
    rig.outb(0x40, 0);
    rig.at(after(start, 100) + ns_for(35));
    assert!(rig.advance());
    assert_eq!(rig.pit().coalesced_ticks(), 3);
}

#[test]
fn the_counter_latch_holds_a_count_until_it_is_read() {
    let mut rig = Rig::new();
    rig.program(0, 0x34, 1000);
    rig.at(after(0, 100));
    rig.outb(0x43, 0x00);
    rig.at(after(0, 200));
    rig.outb(0x43, 0x00); // ignored: a latch is pending
    assert_eq!(rig.inb(0x40), 0x84, "900 = 0x384");
    rig.at(after(0, 300));
    assert_eq!(rig.inb(0x40), 0x03, "still the latched value");
    assert_eq!(rig.count(0), 700, "released after its two bytes");
}

#[test]
fn read_back_latches_status_and_count_of_several_counters() {
    let mut rig = Rig::new();
    rig.program(0, 0x34, 1000);
    rig.outb(0x43, 0xb0); // channel 2: control word only
    rig.at(after(0, 10));
    rig.outb(0x43, 0xc0 | 0b1010); // count and status of counters 0 and 2
    rig.at(after(0, 500));
    assert_eq!(rig.inb(0x40), STATUS_OUTPUT | 0x34, "status first");
    assert_eq!(rig.inb(0x40), 0xde, "990 = 0x3de");
    assert_eq!(rig.inb(0x40), 0x03);
    assert_eq!(
        rig.inb(0x42),
        STATUS_NULL_COUNT | 0x30,
        "no count yet: NULL COUNT, OUT low in mode 0"
    );
    // Count-only read-back, and a status latched twice keeps the first.
    rig.outb(0x43, 0xd2);
    rig.outb(0x43, 0xe2);
    rig.at(after(0, 600));
    rig.outb(0x43, 0xe2);
    assert_eq!(rig.inb(0x40), STATUS_OUTPUT | 0x34);
    assert_eq!(rig.inb(0x40), 0xf4, "500 = 0x1f4");
    assert_eq!(rig.inb(0x40), 0x01);
    assert_eq!(rig.inb(0x40), 0x90, "unlatched again: 400 = 0x190");
}

#[test]
fn lobyte_and_hibyte_access_modes_move_one_byte() {
    let mut rig = Rig::new();
    rig.outb(0x43, 0x14); // channel 0, LSB only, mode 2
    rig.outb(0x40, 0x80);
    assert_eq!(rig.inb(0x40), 0x80);
    assert_eq!(rig.inb(0x40), 0x80, "every read is the LSB");
    rig.outb(0x43, 0x24); // MSB only
    rig.outb(0x40, 0x02);
    assert_eq!(rig.status(0), STATUS_OUTPUT | 0x24);
    assert_eq!(rig.inb(0x40), 0x02);
    rig.at(after(0, 0x100));
    assert_eq!(rig.inb(0x40), 0x01, "0x200 - 0x100");
    // A control word resets the LSB/MSB sequence.
    rig.outb(0x43, 0x34);
    rig.outb(0x40, 0x11);
    rig.outb(0x43, 0x34);
    rig.outb(0x40, 0x22);
    rig.outb(0x40, 0x00);
    assert_eq!(rig.count(0), 0x22);
}

#[test]
fn a_count_of_zero_is_the_full_range() {
    let mut rig = Rig::new();
    rig.program(0, 0x34, 0);
    rig.irq0();
    assert_eq!(rig.count(0), 0);
    assert_eq!(rig.deadline(), Some(after(0, 0x1_0000)));
    rig.at(after(0, 1));
    assert_eq!(rig.count(0), 0xffff);
}

#[test]
fn bcd_counts_are_four_decimal_digits() {
    let mut rig = Rig::new();
    rig.program(0, 0x31, 0x1000);
    assert_eq!(rig.status(0), 0x31);
    assert_eq!(rig.deadline(), Some(after(0, 1000)));
    rig.at(after(0, 1));
    assert_eq!(rig.count(0), 0x0999);
    rig.at(after(0, 1001));
    assert_eq!(rig.count(0), 0x9999, "wraps at 10000");
    rig.program(0, 0x35, 0);
    assert_eq!(rig.deadline(), Some(after(rig.now_ns, 10_000)));
}

#[test]
fn port_61_reports_out2_after_the_calibration_count() {
    // tessera's arch/tsc.rs, step by step, at VM times.
    let mut rig = Rig::new();
    let count = (FREQUENCY_HZ * 10 / 1000) as u16;
    let gate = rig.inb(0x61);
    rig.outb(0x61, (gate & !0x02) | 0x01);
    rig.outb(0x43, 0b1011_0000);
    rig.outb(0x42, count as u8);
    rig.outb(0x42, (count >> 8) as u8);
    rig.at(2_000);
    let value = rig.inb(0x61);
    rig.outb(0x61, value & !0x01);
    let value = rig.inb(0x61);
    rig.outb(0x61, value | 0x01);
    rig.at(after(0, u64::from(count)) - 1);
    assert_eq!(rig.inb(0x61) & PORT_B_OUT2, 0);
    rig.at(after(0, u64::from(count)));
    assert_eq!(rig.inb(0x61) & PORT_B_OUT2, PORT_B_OUT2);
    assert_eq!(
        rig.now_ns, 9_999_313,
        "11931 periods: 10 ms less a fraction"
    );
}

#[test]
fn port_61_keeps_its_low_bits_and_toggles_refresh_on_each_read() {
    let mut rig = Rig::new();
    rig.outb(0x61, 0xff);
    let first = rig.inb(0x61);
    let second = rig.inb(0x61);
    assert_eq!(first & 0x0f, 0x0f);
    assert_eq!(first & 0xc0, 0, "no NMI sources");
    assert_eq!((first ^ second) & PORT_B_REFRESH, PORT_B_REFRESH);
    assert_eq!(rig.inb(0x61) & PORT_B_REFRESH, first & PORT_B_REFRESH);
    rig.outb(0x61, 0x02);
    assert_eq!(rig.inb(0x61) & 0x0f, 0x02);
}

#[test]
fn linux_quick_calibration_sees_the_msb_fall_on_time() {
    let mut rig = Rig::new();
    let port_b = rig.inb(0x61);
    rig.outb(0x61, (port_b & !0x02) | 0x01);
    rig.program(2, 0xb0, 0xffff);
    // pit_expect_msb: read LSB then MSB of the live count.
    for msb in [0xffu8, 0xfe, 0xf0] {
        let ticks = 256 * u64::from(0xff - msb) + 1;
        rig.at(after(0, ticks));
        rig.inb(0x42);
        assert_eq!(rig.inb(0x42), msb);
    }
}

#[test]
fn the_control_port_reads_as_floating_and_power_on_is_quiet() {
    let mut rig = Rig::new();
    assert_eq!(rig.inb(0x43), 0xff);
    assert_eq!(rig.deadline(), None);
    rig.at(1_000_000_000);
    assert!(!rig.advance());
    assert_eq!(rig.status(0), STATUS_NULL_COUNT | 0x30);
    assert!(!rig.pit().output(0, 0));
    assert!(!rig.pit().output(3, 0));
}
