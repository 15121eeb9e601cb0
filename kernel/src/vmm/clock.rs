//! A VM's clock: nanoseconds since the VM started (or was last reset), read
//! from the TSC, which the guest also sees. Device timers count in it; the
//! core converts their deadlines back to TSC values to arm the slice timer
//! and to wake a halted vCPU.

/// The TSC at the VM's start and the TSC's frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmClock {
    origin_tsc: u64,
    tsc_hz: u64,
}

const NS_PER_SECOND: u128 = 1_000_000_000;

impl VmClock {
    /// A clock that reads 0 at TSC value `origin_tsc`, for a TSC counting at
    /// `tsc_hz` (at least 1).
    pub const fn new(origin_tsc: u64, tsc_hz: u64) -> VmClock {
        VmClock {
            origin_tsc,
            tsc_hz: if tsc_hz == 0 { 1 } else { tsc_hz },
        }
    }

    /// The TSC frequency.
    pub const fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// The VM's time at TSC value `tsc`, in nanoseconds (0 before the
    /// origin); saturates instead of overflowing.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.origin_tsc) as u128;
        (ticks * NS_PER_SECOND / self.tsc_hz as u128).min(u64::MAX as u128) as u64
    }

    /// The first TSC value at which the VM's time is at least `ns`.
    pub fn tsc_at(&self, ns: u64) -> u64 {
        let ticks = (ns as u128 * self.tsc_hz as u128).div_ceil(NS_PER_SECOND);
        (self.origin_tsc as u128 + ticks).min(u64::MAX as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_from_the_origin() {
        let clock = VmClock::new(1_000, 200_000_000);
        assert_eq!(clock.ns_at(1_000), 0);
        assert_eq!(clock.ns_at(500), 0, "before the origin");
        assert_eq!(clock.ns_at(1_000 + 200_000_000), 1_000_000_000);
        assert_eq!(clock.ns_at(1_000 + 200), 1_000);
    }

    #[test]
    fn deadlines_round_up_so_the_timer_never_fires_early() {
        let clock = VmClock::new(0, 3);
        // 1 ns at 3 Hz is a third of a tick: the next whole tick.
        assert_eq!(clock.tsc_at(1), 1);
        assert!(clock.ns_at(clock.tsc_at(123_456_789)) >= 123_456_789);
        let clock = VmClock::new(7, 199_999_000);
        for ns in [0, 1, 999, 10_000_000, 5_000_000_000] {
            assert!(clock.ns_at(clock.tsc_at(ns)) >= ns);
            assert!(clock.ns_at(clock.tsc_at(ns) - 1) < ns || ns == 0);
        }
    }

    #[test]
    fn huge_values_saturate() {
        let clock = VmClock::new(0, 1);
        assert_eq!(clock.ns_at(u64::MAX), u64::MAX);
        assert_eq!(clock.tsc_at(u64::MAX), u64::MAX / 1_000_000_000 + 1);
        assert_eq!(
            VmClock::new(0, 0).ns_at(5),
            5_000_000_000,
            "a zero rate is taken as 1 Hz"
        );
    }
}
