//! Round-robin scheduling of VMs on one CPU, and the arithmetic of the
//! VMX-preemption timer that enforces the time slices.

/// What a VM is doing, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Ready to run.
    Runnable,
    /// Halted with interrupts enabled: waits for an interrupt.
    Sleeping,
    /// Finished, faulted or killed.
    Stopped,
    /// Paused by the operator (`pause`): not run until `resume`.
    Paused,
}

/// Picks VMs in turn, starting after the last one picked.
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: Option<usize>,
}

impl RoundRobin {
    /// The VM to run next: `woken`, a VM its timer has just woken from HLT,
    /// if it is runnable — it runs at once, as Xen's credit scheduler boosts
    /// a waking vCPU, so that a guest's timer interrupt is not late by the
    /// other VMs' slices — else [`RoundRobin::pick`]. A woken VM's turn
    /// leaves the round-robin order where it was: it gets the CPU until it
    /// halts again or its slice ends, and the busy VMs then go on in turn.
    pub fn pick_woken_first(&mut self, states: &[RunState], woken: Option<usize>) -> Option<usize> {
        match woken {
            Some(index) if states.get(index) == Some(&RunState::Runnable) => Some(index),
            _ => self.pick(states),
        }
    }

    /// The next runnable VM after the previous pick, wrapping around.
    pub fn pick(&mut self, states: &[RunState]) -> Option<usize> {
        let count = states.len();
        let start = self.last.map_or(0, |last| last + 1);
        let chosen = (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&index| states[index] == RunState::Runnable)?;
        self.last = Some(chosen);
        Some(chosen)
    }
}

/// Wakes a VM sleeping in HLT whose wake time (a TSC value) has come;
/// returns its wake time if it is still ahead.
pub fn wake(state: &mut RunState, wake_at: Option<u64>, now: u64) -> Option<u64> {
    match (*state, wake_at) {
        (RunState::Sleeping, Some(at)) if at <= now => {
            *state = RunState::Runnable;
            None
        }
        (RunState::Sleeping, Some(at)) => Some(at),
        _ => None,
    }
}

/// The preemption-timer value for a slice of `slice_us` microseconds when
/// the TSC runs at `tsc_hz` and the timer ticks every 2^`rate` TSC cycles
/// (SDM Vol. 3C, 27.5.1). At least 1, at most the 32-bit field's maximum.
pub fn preemption_ticks(slice_us: u64, tsc_hz: u64, rate: u32) -> u32 {
    let cycles = (slice_us as u128 * tsc_hz as u128) / 1_000_000;
    let ticks = cycles >> rate.min(31);
    ticks.clamp(1, u32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::*;

    #[test]
    fn round_robin_visits_everyone_in_turn() {
        let mut rr = RoundRobin::default();
        let states = [Runnable, Runnable, Runnable];
        let picks: std::vec::Vec<_> = (0..6).map(|_| rr.pick(&states).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn stopped_and_sleeping_vms_are_skipped() {
        let mut rr = RoundRobin::default();
        let states = [Stopped, Runnable, Sleeping, Runnable];
        assert_eq!(rr.pick(&states), Some(1));
        assert_eq!(rr.pick(&states), Some(3));
        assert_eq!(rr.pick(&states), Some(1));
        assert_eq!(rr.pick(&[Stopped, Sleeping]), None);
        assert_eq!(rr.pick(&[]), None);
    }

    #[test]
    fn a_woken_vm_runs_first_and_the_turns_go_on_after() {
        let mut rr = RoundRobin::default();
        let states = [Runnable, Runnable, Runnable];
        assert_eq!(rr.pick(&states), Some(0));
        // VM 2 was woken by its timer while VM 0 ran: it goes before 1.
        assert_eq!(rr.pick_woken_first(&states, Some(2)), Some(2));
        // Then the order resumes after 0, as if 2 had not cut in.
        assert_eq!(rr.pick_woken_first(&states, None), Some(1));
        assert_eq!(rr.pick(&states), Some(2));
        // A woken VM that is no longer runnable gets no turn.
        assert_eq!(
            rr.pick_woken_first(&[Runnable, Stopped, Runnable], Some(1)),
            Some(0)
        );
    }

    #[test]
    fn a_vm_that_never_yields_cannot_starve_the_others() {
        // The scheduler hands the CPU on at every slice end, so in any
        // window of n picks each of n runnable VMs runs exactly once.
        let mut rr = RoundRobin::default();
        let states = [Runnable; 4];
        for _ in 0..10 {
            let mut seen = [false; 4];
            for _ in 0..4 {
                seen[rr.pick(&states).unwrap()] = true;
            }
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn a_sleeping_vm_wakes_at_its_time_and_not_before() {
        let mut state = Sleeping;
        assert_eq!(wake(&mut state, Some(100), 99), Some(100));
        assert_eq!(state, Sleeping);
        assert_eq!(wake(&mut state, Some(100), 100), None);
        assert_eq!(state, Runnable);
        let mut state = Sleeping;
        assert_eq!(wake(&mut state, None, 1_000), None, "nothing to wake it");
        assert_eq!(state, Sleeping);
        let mut state = Stopped;
        assert_eq!(wake(&mut state, Some(1), 5), None);
        assert_eq!(state, Stopped, "only sleeping VMs wake");
    }

    #[test]
    fn preemption_timer_arithmetic() {
        // 10 ms at 200 MHz with the timer at TSC/32: 2,000,000 / 32.
        assert_eq!(preemption_ticks(10_000, 200_000_000, 5), 62_500);
        assert_eq!(preemption_ticks(10_000, 3_000_000_000, 0), 30_000_000);
        assert_eq!(preemption_ticks(10_000_000, 5_000_000_000, 0), u32::MAX);
        assert_eq!(preemption_ticks(1, 1_000, 5), 1);
    }
}
