//! The local APIC timer's counting (SDM Vol. 3A, 12.5.4): the divide
//! configuration, the initial and current counts in one-shot and periodic
//! modes, and the IA32_TSC_DEADLINE target (12.5.4.1).
//!
//! This file owns only *when* the timer expires. The LVT timer register's
//! vector and mask, and what an expiry does (an IRR bit), belong to the
//! local APIC in `lapic.rs`, which tells the timer its mode.
//!
//! Time comes in as the VM's nanoseconds; the counter runs at
//! `timer_hz / divisor` and is computed from the time it started, never
//! stepped, so reading it costs a multiplication and nothing drifts. The
//! guest TSC the deadline compares against is `now_ns × tsc_hz / 10⁹`
//! (see [`guest_tsc`]).

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The timer mode field of the LVT timer register, bits 18:17
/// (SDM Vol. 3A, 12.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// 00: counts down once from the initial count.
    OneShot,
    /// 01: reloads the initial count at each expiry.
    Periodic,
    /// 10: fires when the TSC reaches IA32_TSC_DEADLINE.
    TscDeadline,
    /// 11: reserved; the timer does not run.
    Reserved,
}

impl TimerMode {
    /// The mode an LVT timer value selects.
    pub const fn from_lvt(lvt: u32) -> TimerMode {
        match (lvt >> 17) & 3 {
            0 => TimerMode::OneShot,
            1 => TimerMode::Periodic,
            2 => TimerMode::TscDeadline,
            _ => TimerMode::Reserved,
        }
    }
}

/// The divisor a divide configuration register value selects: bits 0, 1
/// and 3 form a 3-bit code, 111 meaning 1 and n meaning 2^(n+1)
/// (SDM Vol. 3A, 12.5.4, the Divide Configuration Register figure).
pub const fn divisor(divide_config: u32) -> u32 {
    let code = (divide_config & 3) | ((divide_config >> 1) & 4);
    if code == 7 {
        1
    } else {
        2 << code
    }
}

/// The guest TSC at VM time `now_ns` for a TSC of `tsc_hz`: the TSC and
/// the VM's clock both start at 0 with the VM and run at their rates.
pub fn guest_tsc(now_ns: u64, tsc_hz: u64) -> u64 {
    let ticks = u128::from(now_ns) * u128::from(tsc_hz) / NANOS_PER_SECOND;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// The earliest VM time at which the guest TSC has reached `tsc`.
pub fn tsc_to_ns(tsc: u64, tsc_hz: u64) -> u64 {
    let ns = (u128::from(tsc) * NANOS_PER_SECOND).div_ceil(u128::from(tsc_hz.max(1)));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// A countdown in progress (one-shot or periodic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Countdown {
    /// The VM time the count was `first`.
    start_ns: u64,
    /// The count at `start_ns` (at least 1): the first expiry is this many
    /// ticks later; periodic expiries follow every `initial` ticks.
    first: u32,
    /// Expiries already taken by [`ApicTimer::advance`].
    fired: u64,
}

/// The timer's counting state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApicTimer {
    timer_hz: u64,
    tsc_hz: u64,
    mode: TimerMode,
    divide_config: u32,
    initial: u32,
    countdown: Option<Countdown>,
    /// IA32_TSC_DEADLINE; 0 is disarmed.
    deadline_tsc: u64,
    /// The guest TSC at VM time 0: 0 unless the guest wrote IA32_TSC.
    tsc_at_zero: u64,
}

impl ApicTimer {
    /// A stopped timer in one-shot mode (the LVT's reset value), counting
    /// at `timer_hz` and comparing deadlines against a TSC of `tsc_hz`.
    /// A rate of 0 is taken as 1 Hz rather than dividing by zero.
    pub fn new(timer_hz: u64, tsc_hz: u64) -> ApicTimer {
        ApicTimer {
            timer_hz: timer_hz.max(1),
            tsc_hz: tsc_hz.max(1),
            mode: TimerMode::OneShot,
            divide_config: 0,
            initial: 0,
            countdown: None,
            deadline_tsc: 0,
            tsc_at_zero: 0,
        }
    }

    /// The guest TSC at `now_ns`.
    pub fn guest_tsc(&self, now_ns: u64) -> u64 {
        // Modulo 2^64, as the TSC offset of the hardware adds (SDM Vol. 3C,
        // 26.6.5): the guest may set its TSC below its value at VM time 0.
        guest_tsc(now_ns, self.tsc_hz).wrapping_add(self.tsc_at_zero)
    }

    /// The guest wrote IA32_TSC (SDM Vol. 3A, 18.17): from `now_ns` on its
    /// TSC reads `value` plus what has passed since, and deadlines compare
    /// against that.
    pub fn set_guest_tsc(&mut self, value: u64, now_ns: u64) {
        self.tsc_at_zero = value.wrapping_sub(guest_tsc(now_ns, self.tsc_hz));
    }

    /// The divide configuration register (bits 0, 1 and 3).
    pub fn divide_config(&self) -> u32 {
        self.divide_config
    }

    /// The initial count register.
    pub fn initial_count(&self) -> u32 {
        self.initial
    }

    /// VM nanoseconds until `ticks` timer ticks have passed (rounded up, so
    /// the count has really reached the tick at that time).
    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let scaled = u128::from(ticks) * u128::from(divisor(self.divide_config)) * NANOS_PER_SECOND;
        u64::try_from(scaled.div_ceil(u128::from(self.timer_hz))).unwrap_or(u64::MAX)
    }

    /// Whole timer ticks between `start_ns` and `now_ns`.
    fn elapsed_ticks(&self, start_ns: u64, now_ns: u64) -> u64 {
        let ns = u128::from(now_ns.saturating_sub(start_ns));
        let ticks = ns * u128::from(self.timer_hz)
            / (u128::from(divisor(self.divide_config)) * NANOS_PER_SECOND);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The LVT timer register's mode changed to `mode`. Moving into or out
    /// of TSC-deadline mode disarms the timer (SDM Vol. 3A, 12.5.4.1);
    /// between one-shot and periodic a running count keeps running.
    pub fn set_mode(&mut self, mode: TimerMode) {
        let deadline = |mode| mode == TimerMode::TscDeadline;
        if deadline(mode) != deadline(self.mode) {
            self.countdown = None;
            self.deadline_tsc = 0;
        }
        if mode == TimerMode::Reserved {
            self.countdown = None;
        }
        self.mode = mode;
    }

    /// A write of the divide configuration register at `now_ns`: a running
    /// count goes on from where it is, at the new rate.
    pub fn set_divide_config(&mut self, value: u32, now_ns: u64) {
        let current = self.current_count(now_ns);
        self.divide_config = value & 0b1011;
        if let Some(countdown) = self.countdown.as_mut() {
            if current > 0 {
                *countdown = Countdown {
                    start_ns: now_ns,
                    first: current,
                    fired: 0,
                };
            }
        }
    }

    /// A write of the initial count register: starts counting from `value`
    /// (0 stops the timer). Ignored in TSC-deadline mode
    /// (SDM Vol. 3A, 12.5.4.1).
    pub fn set_initial_count(&mut self, value: u32, now_ns: u64) {
        if matches!(self.mode, TimerMode::TscDeadline | TimerMode::Reserved) {
            return;
        }
        self.initial = value;
        self.countdown = (value != 0).then_some(Countdown {
            start_ns: now_ns,
            first: value,
            fired: 0,
        });
    }

    /// The current count register at `now_ns`: 0 when stopped, expired in
    /// one-shot mode, or in TSC-deadline mode (SDM Vol. 3A, 12.5.4.1).
    pub fn current_count(&self, now_ns: u64) -> u32 {
        let Some(countdown) = self.countdown else {
            return 0;
        };
        let elapsed = self.elapsed_ticks(countdown.start_ns, now_ns);
        let first = u64::from(countdown.first);
        if elapsed < first {
            return (first - elapsed) as u32;
        }
        match self.mode {
            // Reloaded at each expiry: `initial` is not 0 while counting.
            TimerMode::Periodic if self.initial != 0 => {
                let into_period = (elapsed - first) % u64::from(self.initial);
                self.initial - into_period as u32
            }
            _ => 0,
        }
    }

    /// IA32_TSC_DEADLINE as RDMSR returns it at `now_ns`: the armed target,
    /// 0 once it passed, and 0 outside TSC-deadline mode
    /// (SDM Vol. 3A, 12.5.4.1).
    pub fn deadline(&self, now_ns: u64) -> u64 {
        if self.mode != TimerMode::TscDeadline || self.deadline_tsc <= self.guest_tsc(now_ns) {
            0
        } else {
            self.deadline_tsc
        }
    }

    /// A WRMSR of IA32_TSC_DEADLINE: arms the timer for guest TSC `value`
    /// (0 disarms). Ignored outside TSC-deadline mode (SDM Vol. 3A, 12.5.4.1).
    pub fn set_deadline(&mut self, value: u64) {
        if self.mode == TimerMode::TscDeadline {
            self.deadline_tsc = value;
        }
    }

    /// The VM time of the next expiry, if the timer is armed.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        match self.mode {
            TimerMode::TscDeadline if self.deadline_tsc != 0 => {
                // Ticks since VM time 0; a deadline before the TSC's value
                // then (after a write of IA32_TSC) is already due.
                let ticks = self.deadline_tsc.wrapping_sub(self.tsc_at_zero);
                Some(if (ticks as i64) < 0 {
                    0
                } else {
                    tsc_to_ns(ticks, self.tsc_hz)
                })
            }
            TimerMode::OneShot | TimerMode::Periodic => {
                let countdown = self.countdown?;
                let ticks = u64::from(countdown.first)
                    .saturating_add(countdown.fired.saturating_mul(self.initial.into()));
                Some(countdown.start_ns.saturating_add(self.ticks_to_ns(ticks)))
            }
            _ => None,
        }
    }

    /// Takes the expiries due by `now_ns` and returns how many there were:
    /// at most 1 in one-shot and TSC-deadline modes (which then disarm),
    /// any number of piled-up periods in periodic mode.
    pub fn advance(&mut self, now_ns: u64) -> u64 {
        if self.mode == TimerMode::TscDeadline {
            if self.deadline_tsc != 0 && self.deadline_tsc <= self.guest_tsc(now_ns) {
                self.deadline_tsc = 0;
                return 1;
            }
            return 0;
        }
        let Some(countdown) = self.countdown else {
            return 0;
        };
        let elapsed = self.elapsed_ticks(countdown.start_ns, now_ns);
        let first = u64::from(countdown.first);
        if elapsed < first {
            return 0;
        }
        if self.mode != TimerMode::Periodic || self.initial == 0 {
            self.countdown = None;
            return 1;
        }
        let due = 1 + (elapsed - first) / u64::from(self.initial);
        let new = due.saturating_sub(countdown.fired);
        if let Some(countdown) = self.countdown.as_mut() {
            countdown.fired = due;
        }
        new
    }
}
