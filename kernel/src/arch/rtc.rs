//! The host's real-time clock, read once per VM so that its virtual RTC
//! starts at the right date and time (MC146818 CMOS registers through ports
//! 0x70/0x71, the way a PC BIOS reads them).

use crate::devices::rtc::calendar::DateTime;
use x86::io::{inb, outb};

fn cmos(register: u8) -> u8 {
    // SAFETY: selecting a CMOS register (NMI left enabled, bit 7 clear) and
    // reading it has no effect beyond the RTC's index register.
    unsafe {
        outb(0x70, register & 0x7f);
        inb(0x71)
    }
}

/// The host RTC's time in seconds since the Unix epoch (0 if it reads as
/// nonsense).
pub fn unix_seconds() -> u64 {
    // Wait out an update in progress (status A bit 7): the registers are
    // consistent for at least 244 us after it clears.
    for _ in 0..1_000_000 {
        if cmos(0x0a) & 0x80 == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    let status_b = cmos(0x0b);
    let binary = status_b & 0x04 != 0;
    let decode = |value: u8| {
        if binary {
            value
        } else {
            (value >> 4) * 10 + (value & 0x0f)
        }
    };
    let second = decode(cmos(0x00));
    let minute = decode(cmos(0x02));
    let hour_raw = cmos(0x04);
    let mut hour = decode(hour_raw & 0x7f);
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        // 12-hour clock, PM.
        hour = (hour % 12) + 12;
    }
    let day = decode(cmos(0x07));
    let month = decode(cmos(0x08));
    let year = decode(cmos(0x09)) as i64;
    let century = decode(cmos(0x32)) as i64;
    let full_year = if (19..=21).contains(&century) {
        century * 100 + year
    } else {
        2000 + year
    };
    let seconds = DateTime {
        year: full_year,
        month,
        day,
        hour,
        minute,
        second,
        day_of_week: 1,
    }
    .to_unix_seconds();
    u64::try_from(seconds).unwrap_or(0)
}
