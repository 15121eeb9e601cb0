//! Time. The TSC is the measuring stick: calibrated against PIT channel 2,
//! then used to time every other device.
//!
//! Both platforms this runs on share the CPU with others — QEMU's vCPU
//! thread with the host's other work, a tessera VM with the other VMs — so
//! any measurement may have the CPU taken away in its middle. Measurements
//! therefore poll, watch the largest step between two consecutive TSC
//! reads, and are repeated when that step says the CPU was away for a
//! significant part of what was measured. The device still runs meanwhile
//! (its time is wall-clock time on both), but the moment its event was
//! seen would be late.

use crate::x86::{inb, inl, outb, pause, rdtsc};
use crate::{fail, pit, report::Outcome, text, Machine};

/// A calibrated TSC.
#[derive(Clone, Copy)]
pub struct Tsc {
    /// Ticks per second.
    pub hz: u64,
}

impl Tsc {
    /// TSC ticks in `us` microseconds.
    pub fn ticks_from_us(&self, us: u64) -> u64 {
        (u128::from(self.hz) * u128::from(us) / 1_000_000) as u64
    }

    /// Microseconds in `ticks` TSC ticks.
    pub fn us_from_ticks(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000 / u128::from(self.hz)) as u64
    }

    /// Nanoseconds in `ticks` TSC ticks.
    pub fn ns_from_ticks(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.hz)) as u64
    }

    /// The rate of something that counted `counts` in `ticks` TSC ticks, in Hz.
    pub fn rate(&self, counts: u64, ticks: u64) -> u64 {
        (u128::from(counts) * u128::from(self.hz) / u128::from(ticks.max(1))) as u64
    }

    /// Busy-waits `us` microseconds.
    pub fn delay_us(&self, us: u64) {
        poll(self.ticks_from_us(us), false, || false);
    }
}

/// What a polling loop saw of the time.
#[derive(Clone, Copy)]
pub struct Window {
    /// TSC before the first poll.
    pub start: u64,
    /// TSC after the last.
    pub end: u64,
    /// The largest step between consecutive TSC reads.
    pub longest_gap: u64,
}

impl Window {
    /// TSC ticks from start to end.
    pub fn elapsed(&self) -> u64 {
        self.end - self.start
    }
}

/// Calls `done` until it says so or `limit` TSC ticks passed, with
/// interrupts enabled throughout if `interrupts`. Returns the window and
/// whether `done` said so.
pub fn poll(limit: u64, interrupts: bool, mut done: impl FnMut() -> bool) -> (Window, bool) {
    let start = rdtsc();
    let mut previous = start;
    let mut longest_gap = 0;
    if interrupts {
        crate::x86::sti();
    }
    let finished = loop {
        if done() {
            break true;
        }
        let now = rdtsc();
        longest_gap = longest_gap.max(now - previous);
        previous = now;
        if now - start >= limit {
            break false;
        }
        pause();
    };
    if interrupts {
        crate::x86::cli();
    }
    let end = rdtsc();
    longest_gap = longest_gap.max(end - previous);
    (
        Window {
            start,
            end,
            longest_gap,
        },
        finished,
    )
}

/// The first `Some` of up to `attempts` calls (each `None` a measurement
/// the CPU's absence spoiled).
pub fn retry<T>(attempts: u32, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    (0..attempts).find_map(|_| attempt())
}

/// Port 0x61 (system control port B): bit 0 gates PIT channel 2, bit 1
/// drives the speaker, bit 5 reads channel 2's OUT.
const PORT_B: u16 = 0x61;
const GATE2: u8 = 1 << 0;
const SPEAKER: u8 = 1 << 1;
const OUT2: u8 = 1 << 5;
/// Channel 2 must finish within this many TSC ticks: 2^31 is over 20 ms
/// at any plausible TSC rate (and 10 s of Bochs' instructions).
const GATE_LIMIT: u64 = 1 << 31;

/// What one gate of channel 2 came to.
enum Gate {
    /// OUT2 rose after this many TSC ticks.
    Timed(u64),
    /// The CPU was away for over 1/8 of the gate: try again.
    Disturbed,
    /// OUT2 never rose.
    NeverEnded,
}

/// Times `counts` PIT cycles with channel 2 in mode 0, gated through port
/// 0x61, the way firmware and kernels calibrate the TSC (8254 datasheet,
/// mode 0: OUT rises at terminal count; counting runs while GATE is high).
fn gate_channel2(counts: u16) -> Gate {
    let port_b = inb(PORT_B) & !(GATE2 | SPEAKER);
    outb(PORT_B, port_b);
    outb(
        pit::COMMAND,
        pit::CHANNEL_2 | pit::ACCESS_LOW_HIGH | pit::MODE_0,
    );
    outb(pit::CHANNEL_2_DATA, counts as u8);
    outb(pit::CHANNEL_2_DATA, (counts >> 8) as u8);
    let start = rdtsc();
    outb(PORT_B, port_b | GATE2);
    let (window, finished) = poll(GATE_LIMIT, false, || inb(PORT_B) & OUT2 != 0);
    outb(PORT_B, port_b);
    let elapsed = window.end - start;
    let longest_gap = window.longest_gap.max(window.start - start);
    match (finished, longest_gap * 8 < elapsed) {
        (false, _) => Gate::NeverEnded,
        (true, false) => Gate::Disturbed,
        (true, true) => Gate::Timed(elapsed),
    }
}

/// pit-channel2-tsc-calibration: the TSC rate from gates of 2 ms and 5 ms
/// on PIT channel 2. Each gate's own rate and the rate of their difference
/// must agree within 2% (the PIT counts at one rate, OUT2 rising at
/// terminal count); the difference's is kept for every later probe, since
/// what it takes to start a gate and notice its end (port I/O, an exit
/// under a hypervisor) cancels out in it.
pub fn probe_calibrate(machine: &mut Machine) -> Outcome {
    let gates = [pit::COUNT_1MS * 2, pit::COUNT_1MS * 5];
    let mut ticks = [0u64; 2];
    for (ticks, counts) in ticks.iter_mut().zip(gates) {
        // The shortest of five undisturbed gates: anything that delays the
        // poll (the host, an exit) only ever lengthens one.
        let mut best: Option<u64> = None;
        for _ in 0..5 {
            for _ in 0..ATTEMPTS {
                match gate_channel2(counts) {
                    Gate::Timed(gate) => {
                        best = Some(best.map_or(gate, |best| best.min(gate)));
                        break;
                    }
                    Gate::Disturbed => {}
                    Gate::NeverEnded => {
                        return fail!(
                            "{counts} counts of PIT channel 2 never raised OUT2 (port 0x61 bit 5) within 2^31 TSC ticks"
                        )
                    }
                }
            }
        }
        let Some(best) = best else {
            return fail!(
                "no undisturbed gate of {counts} counts of PIT channel 2 in {ATTEMPTS} attempts"
            );
        };
        *ticks = best;
    }
    let rate = |ticks: u64, counts: u16| ticks * pit::HZ / u64::from(counts).max(1);
    let short = rate(ticks[0], gates[0]);
    let long = rate(ticks[1], gates[1]);
    let difference = rate(ticks[1].saturating_sub(ticks[0]), gates[1] - gates[0]);
    let agree = |a: u64| a.abs_diff(difference) * 50 <= difference;
    let ok = agree(short) && agree(long) && (10_000_000..=100_000_000_000).contains(&difference);
    if ok {
        machine.tsc_hz = Some(difference);
    }
    Outcome::check(
        ok,
        text!(
            "TSC at {} kHz from the 3 ms between gates of 2 and 5 ms ({} and {} kHz alone; within 2%)",
            difference / 1000,
            short / 1000,
            long / 1000
        ),
    )
}

/// The ACPI PM timer's rate (ACPI 6.5, 4.8.3.3: 3.579545 MHz).
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// It counts in 24 bits (32 with FADT.TMR_VAL_EXT; 24 of them serve here).
const PM_TIMER_MASK: u32 = 0x00ff_ffff;

/// The PM timer with the TSC read around it: `(TSC midpoint, count)`, or
/// `None` if the read took over `max_ticks` (the CPU was away).
fn pm_sample(port: u16, max_ticks: u64) -> Option<(u64, u32)> {
    let before = rdtsc();
    let count = inl(port) & PM_TIMER_MASK;
    let after = rdtsc();
    (after - before <= max_ticks).then_some((before + (after - before) / 2, count))
}

/// One PM-timer rate measurement over ~3 ms of TSC; `None` if a read
/// took over 1% of that (an I/O exit is ~15 us in Bochs) or a step of the
/// wait over 3%.
fn pm_rate(port: u16, tsc: Tsc) -> Option<u64> {
    let window_ticks = tsc.ticks_from_us(3000);
    let (t0, p0) = pm_sample(port, window_ticks / 100)?;
    let (window, _) = poll(window_ticks, false, || false);
    let (t1, p1) = pm_sample(port, window_ticks / 100)?;
    if window.longest_gap * 33 > window_ticks {
        return None;
    }
    let counts = u64::from(p1.wrapping_sub(p0) & PM_TIMER_MASK);
    Some(tsc.rate(counts, t1 - t0))
}

/// pm-timer-rate: the PM timer found through the FADT counts at
/// 3.579545 MHz against the calibrated TSC (within 1%).
pub fn probe_pm_timer(machine: &mut Machine) -> Outcome {
    let Some(port) = machine.pm_timer_port() else {
        return fail!("no PM timer block in the FADT");
    };
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    let Some(rate) = retry(ATTEMPTS, || pm_rate(port, tsc)) else {
        return fail!("no undisturbed 3 ms window in {ATTEMPTS} attempts");
    };
    let ok = rate.abs_diff(PM_TIMER_HZ) * 100 <= PM_TIMER_HZ;
    Outcome::check(
        ok,
        text!("port {port:#x} counts at {rate} Hz against the TSC (3579545 Hz within 1%)"),
    )
}

/// The median of the gaps between consecutive `stamps`, in TSC ticks.
pub fn median_interval(stamps: &[u64]) -> Option<u64> {
    let mut intervals = [0u64; 64];
    let count = stamps.len().saturating_sub(1).min(intervals.len());
    if count == 0 {
        return None;
    }
    for (slot, pair) in intervals.iter_mut().zip(stamps.windows(2)) {
        *slot = pair[1].wrapping_sub(pair[0]);
    }
    let intervals = &mut intervals[..count];
    intervals.sort_unstable();
    Some(intervals[count / 2])
}

/// Attempts at a measurement before the last one counts as it is.
pub const ATTEMPTS: u32 = 20;

/// What a periodic source did in a window.
pub struct Periodic {
    /// Interrupts in the window.
    pub count: usize,
    /// Median interval, in nanoseconds.
    pub median_ns: u64,
    /// Handler runs that found the ISR bit set.
    pub in_service: u32,
    /// Handler runs that found it clear after the EOI.
    pub cleared_by_eoi: u32,
    /// Which attempt this was.
    pub attempt: u32,
}

impl Periodic {
    /// Whether the source ticked every `period_ns` (median within 5%, no
    /// more ticks than fit in the window plus one that may have been
    /// pending when it opened, and not under half of them) with each
    /// interrupt in service in its handler and retired by the EOI.
    pub fn steady(&self, period_ns: u64, window_us: u64) -> bool {
        let fits = (window_us * 1000 / period_ns) as usize;
        self.median_ns.abs_diff(period_ns) * 20 <= period_ns
            && (fits / 2..=fits + 2).contains(&self.count)
            && self.in_service as usize == self.count
            && self.cleared_by_eoi as usize == self.count
    }
}

/// Captures the interrupts of an already-running periodic source for
/// `window_us` with interrupts enabled.
///
/// An attempt is disturbed when the CPU was away for over half a period,
/// when ticks came late (the median interval over 5% long) or fewer than
/// fit in the window: a host that delays its timers (QEMU runs them in its
/// main loop) or a VM that was descheduled. A disturbed attempt is
/// repeated, up to [`ATTEMPTS`] in all; then the last one is judged as it
/// is. Too many ticks, or too short an interval, is never the host's
/// doing and fails at once. `None` if the last attempt saw under 2 ticks.
pub fn capture_periodic(tsc: Tsc, window_us: u64, period_ns: u64) -> Option<Periodic> {
    let fits = (window_us * 1000 / period_ns) as usize;
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        crate::interrupts::reset();
        let (window, _) = poll(tsc.ticks_from_us(window_us), true, || false);
        let seen = crate::interrupts::seen();
        last = median_interval(seen.stamps()).map(|median| Periodic {
            count: seen.stamped,
            median_ns: tsc.ns_from_ticks(median),
            in_service: seen.in_service,
            cleared_by_eoi: seen.cleared_by_eoi,
            attempt,
        });
        let away = tsc.ns_from_ticks(window.longest_gap) * 2 > period_ns;
        let late = last.as_ref().is_none_or(|capture| {
            capture.count + 1 < fits || capture.median_ns * 20 > period_ns * 21
        });
        if !away && !late {
            break;
        }
    }
    last
}

impl core::fmt::Display for Periodic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} ticks, median {}.{:03} us apart; ISR {}/{}",
            self.count,
            self.median_ns / 1000,
            self.median_ns % 1000,
            self.in_service,
            self.cleared_by_eoi
        )?;
        if self.attempt > 1 {
            write!(f, " (attempt {})", self.attempt)?;
        }
        Ok(())
    }
}

/// Reports a periodic capture against its expected period.
pub fn periodic_outcome(
    capture: Option<Periodic>,
    period_ns: u64,
    window_us: u64,
    what: core::fmt::Arguments<'_>,
) -> Outcome {
    match capture {
        None => fail!("{what}: under 2 ticks in {window_us} us, {ATTEMPTS} times"),
        Some(capture) => Outcome::check(
            capture.steady(period_ns, window_us),
            text!("{what}: {capture} (period {period_ns} ns)"),
        ),
    }
}
