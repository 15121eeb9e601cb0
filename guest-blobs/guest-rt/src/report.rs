//! One line per probe for the hostile-tenant guests: `<guest>: PASS <probe>:
//! <what happened>` or `<guest>: FAIL <probe>: expected <what>, got <what>`,
//! then a summary line `<guest>: N probes, M failed`. Tests match these
//! lines, so a failure names its probe.

use core::fmt::{self, Display};

use crate::idt::Fault;
use crate::println;

/// Counts probes and prints their lines.
pub struct Report {
    guest: &'static str,
    /// Probes checked so far.
    pub probes: u32,
    /// Probes that failed.
    pub failed: u32,
}

impl Report {
    /// A report whose lines start with `guest`.
    pub const fn new(guest: &'static str) -> Report {
        Report {
            guest,
            probes: 0,
            failed: 0,
        }
    }

    /// Records one probe: `got` is printed either way, `expected` on failure.
    pub fn check(&mut self, probe: &str, ok: bool, expected: impl Display, got: impl Display) {
        self.probes += 1;
        if ok {
            println!("{}: PASS {probe}: {got}", self.guest);
        } else {
            self.failed += 1;
            println!(
                "{}: FAIL {probe}: expected {expected}, got {got}",
                self.guest
            );
        }
    }

    /// A probe that expects exactly the fault `expected` (or none).
    pub fn fault(&mut self, probe: &str, expected: Option<Fault>, got: Option<Fault>) {
        self.check(probe, expected == got, Shown(expected), Shown(got));
    }

    /// Prints the summary line and returns the exit code: 0 if all passed.
    pub fn summary(&self) -> u64 {
        println!(
            "{}: {} probes, {} failed",
            self.guest, self.probes, self.failed
        );
        u64::from(self.failed != 0)
    }
}

/// A probe outcome as text: `no fault`, `#GP(0x0)`, `#PF(0x2) CR2 0x…`.
pub struct Shown(pub Option<Fault>);

impl Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => write!(f, "no fault"),
            Some(fault) if fault.vector == crate::idt::vector::PF => write!(
                f,
                "{}({:#x}) CR2 {:#x}",
                fault.name(),
                fault.error_code,
                fault.cr2
            ),
            Some(fault) => write!(f, "{}({:#x})", fault.name(), fault.error_code),
        }
    }
}

/// #GP with error code 0.
pub const GP0: Option<Fault> = Some(Fault {
    vector: crate::idt::vector::GP,
    error_code: 0,
    cr2: 0,
});

/// The time-stamp counter (under Bochs: instructions executed, machine-wide).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effect.
    unsafe { core::arch::x86_64::_rdtsc() }
}
