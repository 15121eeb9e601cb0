//! Pure calendar arithmetic for the RTC: seconds since the Unix epoch to a
//! proleptic Gregorian date and time, and back.
//!
//! Days are counted from 1970-01-01 with eras of 400 years (146 097 days),
//! the period after which the Gregorian calendar repeats; inside an era a
//! year starts on 1 March, so the leap day is the era-year's last day and
//! the month lengths need no table. Works for any year a CMOS can hold
//! (century 00-99, so 0000-9999) and beyond.

/// Seconds in a day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days in a 400-year Gregorian era.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 to 1970-01-01.
const EPOCH_SHIFT: i64 = 719_468;

/// A date and time of day, with the year in full (2024, not 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The year, e.g. 2024.
    pub year: i64,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
    /// 0-59.
    pub second: u8,
    /// 1 (Sunday) to 7 (Saturday), the MC146818's numbering.
    pub day_of_week: u8,
}

/// Whether `year` is a Gregorian leap year: every fourth year, but not the
/// centuries, except every fourth century (2000 is one, 2100 is not).
pub const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in `month` (1-12) of `year`; 0 for a month out of
/// range.
pub const fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to `year`-`month`-`day` (negative before). `month`
/// must be 1-12; `day` may run past the month's end (day 32 of January is
/// 1 February), which is how the RTC normalises what a guest wrote.
pub const fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    // Count years from March: January and February belong to the year before.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = month as i64;
    // Month index from March (0) to February (11); days before it in the
    // year follow from 153 days per five months (31+30+31+30+31).
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT
}

/// The date (year, month 1-12, day 1-31) `days` days after 1970-01-01.
pub const fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let days = days + EPOCH_SHIFT;
    let era = days.div_euclid(DAYS_PER_ERA);
    let day_of_era = days.rem_euclid(DAYS_PER_ERA);
    // Undo the leap days: one every 1460 days, less one every 36524, plus
    // one every 146096 (the era's last day).
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + if month <= 2 { 1 } else { 0 };
    (year, month as u8, day as u8)
}

/// The day of the week of day `days` after 1970-01-01, 1 (Sunday) to 7
/// (Saturday). 1970-01-01 was a Thursday.
pub const fn day_of_week(days: i64) -> u8 {
    ((days + 4).rem_euclid(7) + 1) as u8
}

impl DateTime {
    /// The date and time `seconds` seconds after 1970-01-01T00:00:00 (UTC,
    /// or whatever zone the host's RTC keeps).
    pub const fn from_unix_seconds(seconds: i64) -> DateTime {
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (second_of_day / 3600) as u8,
            minute: (second_of_day / 60 % 60) as u8,
            second: (second_of_day % 60) as u8,
            day_of_week: day_of_week(days),
        }
    }

    /// Seconds since 1970-01-01T00:00:00. Fields out of range are
    /// normalised rather than refused (day 31 of February is 2 or 3
    /// March, minute 61 is the next hour's first); a month out of 1-12
    /// counts as the nearest valid month. The day of the week is ignored.
    pub const fn to_unix_seconds(&self) -> i64 {
        let month = if self.month < 1 {
            1
        } else if self.month > 12 {
            12
        } else {
            self.month
        };
        let days = days_from_civil(self.year, month, 1) + self.day as i64 - 1;
        days * SECONDS_PER_DAY
            + self.hour as i64 * 3600
            + self.minute as i64 * 60
            + self.second as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_a_thursday_at_midnight() {
        let epoch = DateTime::from_unix_seconds(0);
        assert_eq!(
            epoch,
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                day_of_week: 5,
            }
        );
        assert_eq!(epoch.to_unix_seconds(), 0);
    }

    #[test]
    fn known_instants_convert_both_ways() {
        // (seconds, y, mo, d, h, mi, s, day of week 1 = Sunday)
        let cases = [
            (951_782_400, 2000, 2, 29, 0, 0, 0, 3), // leap day of 2000, a Tuesday
            (1_234_567_890, 2009, 2, 13, 23, 31, 30, 6), // a Friday
            (1_709_210_096, 2024, 2, 29, 12, 34, 56, 5), // a Thursday
            (2_147_483_647, 2038, 1, 19, 3, 14, 7, 3), // i32 end, a Tuesday
            (4_107_542_399, 2100, 2, 28, 23, 59, 59, 1), // a Sunday
            (4_107_542_400, 2100, 3, 1, 0, 0, 0, 2), // 2100 has no 29 February
            (-1, 1969, 12, 31, 23, 59, 59, 4),
            (-2_208_988_800, 1900, 1, 1, 0, 0, 0, 2), // a Monday
        ];
        for (seconds, year, month, day, hour, minute, second, dow) in cases {
            let expected = DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                day_of_week: dow,
            };
            assert_eq!(DateTime::from_unix_seconds(seconds), expected, "{seconds}");
            assert_eq!(expected.to_unix_seconds(), seconds, "{expected:?}");
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        assert!(is_leap_year(2024));
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2400));
        assert!(!is_leap_year(2023));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
        assert_eq!(days_in_month(2023, 13), 0);
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1900-03-01 to 2300-03-01: the leap rules of every kind of year.
        let first = days_from_civil(1900, 3, 1);
        let last = days_from_civil(2300, 3, 1);
        assert_eq!(last - first, DAYS_PER_ERA);
        let mut expected = (1900, 3, 1);
        for days in first..last {
            let date = civil_from_days(days);
            assert_eq!(date, expected, "day {days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days);
            let (year, month, day) = expected;
            expected = if day < days_in_month(year, month) {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
        }
    }

    #[test]
    fn the_century_and_the_millennium_roll_over() {
        let before = DateTime::from_unix_seconds(946_684_799);
        assert_eq!((before.year, before.month, before.day), (1999, 12, 31));
        let after = DateTime::from_unix_seconds(946_684_800);
        assert_eq!(
            (after.year, after.month, after.day, after.hour),
            (2000, 1, 1, 0)
        );
        assert_eq!(after.day_of_week, 7, "1 January 2000 was a Saturday");
        let end = DateTime::from_unix_seconds(days_from_civil(2100, 1, 1) * SECONDS_PER_DAY - 1);
        assert_eq!(
            (end.year, end.month, end.day, end.second),
            (2099, 12, 31, 59)
        );
    }

    #[test]
    fn out_of_range_fields_are_normalised() {
        let odd = DateTime {
            year: 2023,
            month: 2,
            day: 31,
            hour: 24,
            minute: 0,
            second: 60,
            day_of_week: 1,
        };
        let normal = DateTime::from_unix_seconds(odd.to_unix_seconds());
        assert_eq!(
            (
                normal.month,
                normal.day,
                normal.hour,
                normal.minute,
                normal.second
            ),
            (3, 4, 0, 1, 0)
        );
    }
}
