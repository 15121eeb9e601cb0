//! Register-level tests of the MC146818A model: the guest's view through
//! ports 0x70/0x71 at chosen VM times, as the datasheet describes it.

use super::*;
use crate::devices::testing::Recorder;

/// 2024-02-29 12:34:56, a Thursday (day of week 5).
const START: u64 = 1_709_210_096;
const SECOND: u64 = 1_000_000_000;
const MIB: u64 = 1024 * 1024;

struct Rig {
    rtc: Rtc,
    rec: Recorder,
    now: u64,
}

impl Rig {
    fn new() -> Rig {
        Rig::at(START)
    }

    fn at(unix_seconds: u64) -> Rig {
        Rig {
            rtc: Rtc::new(
                unix_seconds,
                CmosLayout {
                    ram_bytes: 128 * MIB,
                },
            ),
            rec: Recorder::default(),
            now: 0,
        }
    }

    fn read(&mut self, register: u8) -> u8 {
        let mut cx = self.rec.cx().at(self.now);
        self.rtc
            .write(INDEX, AccessSize::Byte, register.into(), &mut cx);
        self.rtc.read(DATA, AccessSize::Byte, &mut cx) as u8
    }

    fn write(&mut self, register: u8, value: u8) {
        let mut cx = self.rec.cx().at(self.now);
        self.rtc
            .write(INDEX, AccessSize::Byte, register.into(), &mut cx);
        self.rtc
            .write(DATA, AccessSize::Byte, value.into(), &mut cx);
    }

    /// Moves VM time to `now` and lets the core advance the RTC.
    fn advance_to(&mut self, now: u64) {
        self.now = now;
        let mut cx = self.rec.cx().at(now);
        self.rtc.advance(&mut cx);
    }

    /// Seconds, minutes, hours, day of week, day, month, year, century.
    fn clock(&mut self) -> [u8; 8] {
        [
            SECONDS,
            MINUTES,
            HOURS,
            DAY_OF_WEEK,
            DAY_OF_MONTH,
            MONTH,
            YEAR,
            cmos::CENTURY,
        ]
        .map(|register| self.read(register))
    }

    fn line(&self) -> bool {
        self.rec.lines.level(RTC_IRQ)
    }
}

#[test]
fn registers_start_as_a_bios_leaves_them() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.read(REGISTER_A),
        0x26,
        "32.768 kHz divider, 1024 Hz rate"
    );
    assert_eq!(rig.read(REGISTER_B), 0x02, "24-hour BCD, no interrupts");
    assert_eq!(rig.read(REGISTER_C), 0x00);
    assert_eq!(rig.read(REGISTER_D), 0x80, "VRT");
    assert_eq!(
        rig.clock(),
        [0x56, 0x34, 0x12, 0x05, 0x29, 0x02, 0x24, 0x20]
    );
    assert!(!rig.line());
    assert_eq!(rig.rtc.next_deadline_ns(), None, "no interrupt enabled");
}

#[test]
fn cmos_ram_holds_the_layout_and_is_writable() {
    let mut rig = Rig::new();
    assert_eq!(rig.read(0x15), 0x80);
    assert_eq!(rig.read(0x16), 0x02, "640 KiB base memory");
    assert_eq!(rig.read(0x34), 0x00);
    assert_eq!(rig.read(0x35), 0x07, "112 MiB above 16 MiB: 0x0700 units");
    assert_eq!(rig.read(0x14), cmos::EQUIPMENT_BYTE);
    for register in [0x0e, 0x40, 0x7f] {
        rig.write(register, 0xa5);
        assert_eq!(rig.read(register), 0xa5);
    }
}

#[test]
fn registers_c_and_d_ignore_writes() {
    let mut rig = Rig::new();
    rig.write(REGISTER_C, 0xff);
    rig.write(REGISTER_D, 0x00);
    assert_eq!(rig.read(REGISTER_C), 0x00);
    assert_eq!(rig.read(REGISTER_D), 0x80);
    rig.write(REGISTER_A, 0xa6);
    assert_eq!(rig.read(REGISTER_A), 0x26, "UIP is read-only");
}

#[test]
fn the_index_port_keeps_the_nmi_mask() {
    let mut rig = Rig::new();
    let mut cx = rig.rec.cx();
    rig.rtc.write(
        INDEX,
        AccessSize::Byte,
        u32::from(NMI_DISABLE | REGISTER_D),
        &mut cx,
    );
    assert!(rig.rtc.nmi_disabled());
    assert_eq!(rig.rtc.read(DATA, AccessSize::Byte, &mut cx), 0x80);
    assert_eq!(rig.rtc.read(INDEX, AccessSize::Byte, &mut cx), 0x8d);
    rig.rtc.write(INDEX, AccessSize::Byte, 0x0d, &mut cx);
    assert!(!rig.rtc.nmi_disabled());
}

#[test]
fn a_word_write_sets_the_index_and_the_data() {
    let mut rig = Rig::new();
    let mut cx = rig.rec.cx();
    rig.rtc.write(INDEX, AccessSize::Word, 0x5a_40, &mut cx);
    assert_eq!(rig.read(0x40), 0x5a);
}

#[test]
fn binary_mode_shows_the_same_time_in_binary() {
    let mut rig = Rig::new();
    rig.write(REGISTER_B, B_24_HOUR | B_BINARY);
    assert_eq!(rig.clock(), [56, 34, 12, 5, 29, 2, 24, 20]);
    rig.write(MINUTES, 59);
    rig.write(REGISTER_B, B_24_HOUR);
    assert_eq!(rig.read(MINUTES), 0x59);
}

#[test]
fn twelve_hour_mode_puts_pm_in_the_hour_s_bit_7() {
    // 13:00 is 1 PM; midnight is 12 AM; noon is 12 PM.
    let cases = [
        (13, 0x81, 0x81),
        (0, 0x12, 12),
        (12, 0x92, 0x8c),
        (9, 0x09, 9),
    ];
    for (hour, bcd, binary) in cases {
        let mut rig = Rig::at(START - 12 * 3600 + hour * 3600);
        rig.write(REGISTER_B, 0);
        assert_eq!(rig.read(HOURS), bcd, "BCD hour {hour}");
        rig.write(REGISTER_B, B_BINARY);
        assert_eq!(rig.read(HOURS), binary, "binary hour {hour}");
    }
    let mut rig = Rig::new();
    rig.write(REGISTER_B, 0);
    rig.write(HOURS, 0x92);
    rig.write(REGISTER_B, B_24_HOUR);
    assert_eq!(rig.read(HOURS), 0x12, "12 PM is noon");
    rig.write(REGISTER_B, 0);
    rig.write(HOURS, 0x12);
    rig.write(REGISTER_B, B_24_HOUR);
    assert_eq!(rig.read(HOURS), 0x00, "12 AM is midnight");
}

#[test]
fn the_clock_advances_with_vm_time() {
    let mut rig = Rig::new();
    rig.now = SECOND - 1;
    assert_eq!(rig.read(SECONDS), 0x56);
    rig.now = SECOND;
    assert_eq!(rig.read(SECONDS), 0x57);
    rig.now = 3600 * SECOND;
    assert_eq!(rig.clock()[..3], [0x56, 0x34, 0x13]);
    // Past midnight: 1 March, a Friday.
    rig.now = 12 * 3600 * SECOND;
    assert_eq!(
        rig.clock(),
        [0x56, 0x34, 0x00, 0x06, 0x01, 0x03, 0x24, 0x20]
    );
}

#[test]
fn the_year_and_the_century_roll_over_together() {
    // 2099-12-31 23:59:59, a Thursday.
    let mut rig = Rig::at(4_102_444_799);
    assert_eq!(
        rig.clock(),
        [0x59, 0x59, 0x23, 0x05, 0x31, 0x12, 0x99, 0x20]
    );
    rig.now = SECOND;
    assert_eq!(
        rig.clock(),
        [0x00, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00, 0x21]
    );
    // 2100 is no leap year: 28 February is followed by 1 March.
    rig.write(MONTH, 0x02);
    rig.write(DAY_OF_MONTH, 0x28);
    rig.write(HOURS, 0x23);
    rig.write(MINUTES, 0x59);
    rig.write(SECONDS, 0x59);
    rig.now = 2 * SECOND;
    assert_eq!(rig.clock()[4..], [0x01, 0x03, 0x00, 0x21]);
}

#[test]
fn writing_the_year_or_the_century_keeps_the_other() {
    let mut rig = Rig::new();
    rig.write(cmos::CENTURY, 0x19);
    assert_eq!(rig.read(YEAR), 0x24);
    rig.write(YEAR, 0x99);
    assert_eq!(rig.rtc.date_time().year, 1999);
    rig.write(cmos::CENTURY, 0x20);
    assert_eq!(rig.rtc.date_time().year, 2099);
}

#[test]
fn the_day_of_week_is_a_counter_of_its_own() {
    let mut rig = Rig::new();
    rig.write(DAY_OF_WEEK, 0x07);
    rig.now = 12 * 3600 * SECOND;
    assert_eq!(rig.read(DAY_OF_WEEK), 0x01, "7 wraps to 1 at midnight");
}

#[test]
fn an_impossible_date_is_normalised_by_the_next_update() {
    let mut rig = Rig::new();
    rig.write(DAY_OF_MONTH, 0x31);
    assert_eq!(rig.read(DAY_OF_MONTH), 0x31, "kept until the update");
    rig.now = SECOND;
    assert_eq!(
        rig.clock()[4..6],
        [0x02, 0x03],
        "31 February 2024 is 2 March"
    );
}

#[test]
fn uip_is_set_for_the_244_us_before_each_update() {
    let mut rig = Rig::new();
    let window_start = SECOND - 244_140; // 8 cycles of 30.5176 µs
    rig.now = window_start - 1;
    assert_eq!(rig.read(REGISTER_A) & A_UIP, 0);
    rig.now = window_start;
    assert_eq!(rig.read(REGISTER_A), A_UIP | 0x26);
    assert_eq!(rig.read(SECONDS), 0x56, "the old second until the update");
    rig.now = SECOND - 1;
    assert_ne!(rig.read(REGISTER_A) & A_UIP, 0);
    rig.now = SECOND;
    assert_eq!(rig.read(REGISTER_A) & A_UIP, 0, "UIP falls with the update");
    assert_eq!(rig.read(SECONDS), 0x57);
    // The window recurs every second.
    rig.now = 5 * SECOND - 100_000;
    assert_ne!(rig.read(REGISTER_A) & A_UIP, 0);
}

#[test]
fn uip_stays_clear_while_setting_or_in_divider_reset() {
    let mut rig = Rig::new();
    rig.now = SECOND - 1000;
    rig.write(REGISTER_B, B_SET | B_24_HOUR);
    assert_eq!(rig.read(REGISTER_A) & A_UIP, 0);
    rig.write(REGISTER_B, B_24_HOUR);
    rig.write(REGISTER_A, 0x76);
    assert_eq!(rig.read(REGISTER_A), 0x76, "divider reset, no UIP");
}

#[test]
fn set_inhibits_updates_and_the_clock_resumes_from_what_was_written() {
    let mut rig = Rig::new();
    rig.write(REGISTER_B, B_SET | B_UIE | B_24_HOUR);
    assert_eq!(rig.read(REGISTER_B), B_SET | B_24_HOUR, "SET clears UIE");
    rig.write(HOURS, 0x08);
    rig.write(MINUTES, 0x00);
    rig.write(SECONDS, 0x00);
    rig.now = 5 * SECOND;
    assert_eq!(rig.clock()[..3], [0x00, 0x00, 0x08], "no update while SET");
    assert_eq!(rig.read(REGISTER_C) & C_UF, 0);
    rig.write(REGISTER_B, B_24_HOUR);
    rig.now = 6 * SECOND;
    assert_eq!(rig.clock()[..3], [0x01, 0x00, 0x08]);
    assert_eq!(rig.read(REGISTER_C), C_PF | C_UF, "PF: rate 6 runs");
}

#[test]
fn the_update_ended_interrupt_raises_irq_8_until_register_c_is_read() {
    let mut rig = Rig::new();
    rig.write(REGISTER_B, B_UIE | B_24_HOUR);
    assert_eq!(rig.rtc.next_deadline_ns(), Some(SECOND));
    rig.advance_to(SECOND - 1);
    assert!(!rig.line());
    rig.advance_to(SECOND);
    assert!(rig.line());
    assert!(rig.rtc.irq_asserted());
    assert_eq!(rig.rec.lines.take_edges(), 1 << 8);
    assert_eq!(rig.rtc.next_deadline_ns(), Some(2 * SECOND));
    // PF is set too (rate 6 runs), without PIE it raises nothing.
    assert_eq!(rig.read(REGISTER_C), C_IRQF | C_PF | C_UF);
    assert!(!rig.line(), "reading C lowers the IRQ");
    assert_eq!(rig.read(REGISTER_C), 0, "and clears the flags");
}

#[test]
fn flags_are_set_without_their_enables_and_interrupt_when_enabled() {
    let mut rig = Rig::new();
    rig.now = SECOND;
    assert_eq!(rig.read(REGISTER_C), C_PF | C_UF, "no IRQF without enables");
    rig.now = 2 * SECOND;
    rig.write(REGISTER_B, B_24_HOUR | B_UIE);
    assert!(rig.line(), "enabling UIE with UF set raises IRQ 8 at once");
    rig.write(REGISTER_B, B_24_HOUR);
    assert!(!rig.line(), "IRQF follows its equation");
}

#[test]
fn periodic_rates_follow_register_a() {
    // (rate select, period in ns as the first deadline, rounded up)
    let cases = [
        (1, 3_906_250),
        (2, 7_812_500),
        (3, 122_071),
        (6, 976_563),
        (13, 125_000_000),
        (15, 500_000_000),
    ];
    for (rate, first) in cases {
        let mut rig = Rig::new();
        rig.write(REGISTER_A, A_DIVIDER_32KHZ | rate);
        rig.write(REGISTER_B, B_24_HOUR | B_PIE);
        assert_eq!(rig.rtc.next_deadline_ns(), Some(first), "rate {rate}");
    }
    assert_eq!(periodic_cycles(3), Some(4), "8192 Hz");
    assert_eq!(periodic_cycles(15), Some(16_384), "2 Hz");
    let mut rig = Rig::new();
    rig.write(REGISTER_A, A_DIVIDER_32KHZ);
    rig.write(REGISTER_B, B_24_HOUR | B_PIE);
    assert_eq!(
        rig.rtc.next_deadline_ns(),
        None,
        "rate 0: no periodic interrupt"
    );
}

#[test]
fn periodic_ticks_interrupt_at_their_rate() {
    let mut rig = Rig::new();
    rig.write(REGISTER_A, A_DIVIDER_32KHZ | 15);
    rig.write(REGISTER_B, B_24_HOUR | B_PIE);
    for tick in 1..=4 {
        let deadline = rig.rtc.next_deadline_ns().unwrap();
        assert_eq!(deadline, tick * SECOND / 2);
        rig.advance_to(deadline);
        assert!(rig.line());
        assert_eq!(rig.read(REGISTER_C) & (C_IRQF | C_PF), C_IRQF | C_PF);
        assert!(!rig.line());
    }
    assert_eq!(rig.rtc.coalesced_periodic_ticks(), 0);
}

#[test]
fn piled_up_periodic_ticks_coalesce_into_one_interrupt() {
    let mut rig = Rig::new();
    rig.write(REGISTER_A, A_DIVIDER_32KHZ | 15);
    rig.write(REGISTER_B, B_24_HOUR | B_PIE);
    // Four ticks due at once (0.5, 1, 1.5, 2 s): one interrupt.
    rig.advance_to(2 * SECOND);
    assert!(rig.line());
    assert_eq!(rig.rec.lines.take_edges(), 1 << 8);
    assert_eq!(rig.rtc.coalesced_periodic_ticks(), 3);
    // The guest has not read C: the next tick is lost too.
    rig.advance_to(2 * SECOND + SECOND / 2);
    assert_eq!(rig.rtc.coalesced_periodic_ticks(), 4);
    assert_eq!(rig.rec.lines.take_edges(), 0, "the line was still high");
    rig.read(REGISTER_C);
    rig.advance_to(3 * SECOND);
    assert_eq!(rig.rtc.coalesced_periodic_ticks(), 4);
    assert_eq!(rig.rec.lines.take_edges(), 1 << 8);
}

#[test]
fn changing_the_rate_restarts_the_tick_count_without_a_spurious_tick() {
    let mut rig = Rig::new();
    rig.write(REGISTER_B, B_24_HOUR | B_PIE);
    rig.now = SECOND / 4;
    rig.read(REGISTER_C);
    rig.write(REGISTER_A, A_DIVIDER_32KHZ | 15);
    assert_eq!(rig.read(REGISTER_C), 0);
    assert_eq!(rig.rtc.next_deadline_ns(), Some(SECOND / 2));
}

#[test]
fn the_alarm_fires_when_hours_minutes_and_seconds_match() {
    let mut rig = Rig::new();
    rig.write(SECONDS_ALARM, 0x58);
    rig.write(MINUTES_ALARM, 0x34);
    rig.write(HOURS_ALARM, 0x12);
    rig.write(REGISTER_B, B_24_HOUR | B_AIE);
    assert_eq!(rig.rtc.next_deadline_ns(), Some(SECOND));
    rig.advance_to(SECOND);
    assert!(!rig.line(), "12:34:57 does not match");
    rig.advance_to(2 * SECOND);
    assert!(rig.line());
    assert_eq!(rig.read(REGISTER_C), C_IRQF | C_PF | C_AF | C_UF);
}

#[test]
fn alarm_bytes_of_0xc0_and_above_match_anything() {
    let mut rig = Rig::new();
    rig.write(SECONDS_ALARM, 0x00);
    rig.write(MINUTES_ALARM, 0xc0);
    rig.write(HOURS_ALARM, 0xff);
    // Once a minute; the flag is found even when nobody looked in time.
    rig.now = 3 * SECOND;
    assert_eq!(rig.read(REGISTER_C) & C_AF, 0);
    rig.now = 10 * SECOND;
    assert_eq!(rig.read(REGISTER_C) & C_AF, C_AF, "12:35:00 passed");
}

#[test]
fn the_twelve_hour_alarm_compares_in_twelve_hour_form() {
    let mut rig = Rig::new();
    rig.write(REGISTER_B, 0);
    rig.write(SECONDS_ALARM, 0x57);
    rig.write(MINUTES_ALARM, 0x34);
    rig.write(HOURS_ALARM, 0x92); // 12 PM
    rig.now = SECOND;
    assert_eq!(rig.read(REGISTER_C) & C_AF, C_AF);
}

#[test]
fn the_divider_in_reset_stops_the_clock_and_restarts_half_a_second_later() {
    let mut rig = Rig::new();
    rig.write(REGISTER_B, B_24_HOUR | B_UIE | B_PIE);
    rig.write(REGISTER_A, A_DIVIDER_RESET | 6);
    assert_eq!(rig.rtc.next_deadline_ns(), None);
    rig.now = 10 * SECOND + SECOND / 10;
    assert_eq!(rig.read(SECONDS), 0x56, "stopped");
    assert_eq!(rig.read(REGISTER_C), 0);
    rig.write(REGISTER_A, A_DIVIDER_32KHZ | 15);
    assert_eq!(
        rig.rtc.next_deadline_ns(),
        Some(10 * SECOND + SECOND / 10 + SECOND / 2),
        "the first update and tick, 500 ms after the release"
    );
    rig.advance_to(10 * SECOND + SECOND / 10 + SECOND / 2);
    assert_eq!(rig.read(SECONDS), 0x57);
    assert_eq!(rig.read(REGISTER_C), C_IRQF | C_PF | C_UF);
}

#[test]
fn other_time_bases_stop_the_clock() {
    let mut rig = Rig::new();
    rig.write(REGISTER_A, 0x06); // DV = 000: a 4.194304 MHz crystal
    rig.now = 5 * SECOND;
    assert_eq!(rig.read(SECONDS), 0x56);
}
