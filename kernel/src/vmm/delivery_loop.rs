//! Recognising an exception-delivery loop: a guest can make the delivery of
//! #AC raise #AC again, or the delivery of #DB raise #DB (CVE-2015-5307,
//! CVE-2015-8104). On bare hardware that loop never leaves the CPU; tessera
//! intercepts both exceptions, so each round is a VM exit, the slice timer
//! keeps preempting the VM and its neighbours run. What remains is to end
//! the VM: the same exception at the same RIP and RSP, exit after exit with
//! nothing else in between, [`LIMIT`] times in a row, is a loop that cannot
//! end by itself — a guest's own handler always moves RIP or RSP.

/// Rounds in a row that make a loop: about 13 M instructions under Bochs,
/// a few hundred milliseconds on hardware — far beyond anything a working
/// guest does, short enough that the VM does not linger.
pub const LIMIT: u32 = 100_000;

/// The run of identical intercepted exceptions seen last.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionStreak {
    vector: u8,
    rip: u64,
    rsp: u64,
    /// The vCPU's exit count at the last exception of the run.
    exit: u64,
    length: u32,
}

impl ExceptionStreak {
    /// Records exception `vector` at `rip`/`rsp`, seen as the vCPU's exit
    /// number `exit`; returns how long the run of identical exceptions with
    /// no other exit between them now is.
    pub fn observe(&mut self, vector: u8, rip: u64, rsp: u64, exit: u64) -> u32 {
        let continues = self.length > 0
            && self.vector == vector
            && self.rip == rip
            && self.rsp == rsp
            && exit == self.exit.wrapping_add(1);
        self.length = if continues {
            self.length.saturating_add(1)
        } else {
            1
        };
        self.vector = vector;
        self.rip = rip;
        self.rsp = rsp;
        self.exit = exit;
        self.length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_exception_exit_after_exit_is_a_run() {
        let mut streak = ExceptionStreak::default();
        for exit in 1..=5u64 {
            assert_eq!(streak.observe(17, 0x8933, 0x5801, exit) as u64, exit);
        }
    }

    #[test]
    fn any_other_exit_between_breaks_the_run() {
        let mut streak = ExceptionStreak::default();
        assert_eq!(streak.observe(1, 0x1000, 0x2000, 10), 1);
        assert_eq!(streak.observe(1, 0x1000, 0x2000, 11), 2);
        // Exit 12 was something else (a hypercall, a port access).
        assert_eq!(streak.observe(1, 0x1000, 0x2000, 13), 1);
    }

    #[test]
    fn a_moving_rip_or_rsp_or_another_vector_is_a_working_guest() {
        let mut streak = ExceptionStreak::default();
        streak.observe(1, 0x1000, 0x2000, 1);
        assert_eq!(
            streak.observe(1, 0x1003, 0x2000, 2),
            1,
            "single-stepping moves RIP"
        );
        assert_eq!(streak.observe(1, 0x1003, 0x1ff8, 3), 1, "RSP moved");
        assert_eq!(streak.observe(17, 0x1003, 0x1ff8, 4), 1, "another vector");
        assert_eq!(streak.observe(17, 0x1003, 0x1ff8, 5), 2);
    }

    #[test]
    fn the_limit_is_reached_by_a_loop() {
        let mut streak = ExceptionStreak::default();
        let mut length = 0;
        for exit in 0..LIMIT as u64 {
            length = streak.observe(17, 0x8933, 0x5801, exit);
        }
        assert_eq!(length, LIMIT);
    }
}
