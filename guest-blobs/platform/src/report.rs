//! The probes' verdicts: one console line each, `platform: PASS <probe>:
//! <detail>`, `platform: FAIL <probe>: <reason>` or `platform: SKIP
//! <probe>: <why>`, then `platform: N passed, M failed, K skipped` and the
//! exit through QEMU's isa-debug-exit port.
//!
//! The counts are global so that the exception and panic handlers can
//! close the report too.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::text::Text;

/// isa-debug-exit's port (`-device isa-debug-exit,iobase=0xf4`): a write
/// of v ends QEMU with exit status (v << 1) | 1, and tessera's VM with that
/// exit code when the VM has `debug-exit=0xf4`.
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Written when every probe passed or was skipped: exit status 33.
const EXIT_ALL_PASSED: u8 = 0x10;
/// Written when a probe failed: exit status 35.
const EXIT_FAILED: u8 = 0x11;

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
static SKIPPED: AtomicU32 = AtomicU32::new(0);

/// What a probe found.
pub enum Outcome {
    /// The device behaved as specified; the text says what was seen.
    Pass(Text),
    /// It did not; the text says what was expected and what was seen.
    Fail(Text),
    /// The CPU does not offer the feature (CPUID), so there is nothing to test.
    Skip(Text),
}

impl Outcome {
    /// `Pass(detail)` if `ok`, else `Fail(detail)`.
    pub fn check(ok: bool, detail: Text) -> Outcome {
        if ok {
            Outcome::Pass(detail)
        } else {
            Outcome::Fail(detail)
        }
    }
}

/// Prints a probe's line and counts it.
pub fn record(probe: &str, outcome: &Outcome) {
    let (word, detail, counter) = match outcome {
        Outcome::Pass(detail) => ("PASS", detail, &PASSED),
        Outcome::Fail(detail) => ("FAIL", detail, &FAILED),
        Outcome::Skip(detail) => ("SKIP", detail, &SKIPPED),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    crate::println!("platform: {word} {probe}: {detail}");
}

/// Prints the summary and stops the machine through isa-debug-exit; if
/// there is no such device, halts with interrupts off.
pub fn finish() -> ! {
    crate::x86::cli();
    let failed = FAILED.load(Ordering::Relaxed);
    crate::println!(
        "platform: {} passed, {failed} failed, {} skipped",
        PASSED.load(Ordering::Relaxed),
        SKIPPED.load(Ordering::Relaxed)
    );
    crate::console::drain();
    let code = if failed == 0 {
        EXIT_ALL_PASSED
    } else {
        EXIT_FAILED
    };
    crate::x86::outb(DEBUG_EXIT_PORT, code);
    loop {
        crate::x86::cli();
        // SAFETY: halting with interrupts off ends this program.
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
    }
}

/// `Outcome::Pass` with a formatted detail.
#[macro_export]
macro_rules! pass {
    ($($arg:tt)*) => { $crate::report::Outcome::Pass($crate::text!($($arg)*)) };
}

/// `Outcome::Fail` with a formatted reason.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::report::Outcome::Fail($crate::text!($($arg)*)) };
}

/// `Outcome::Skip` with a formatted reason.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => { $crate::report::Outcome::Skip($crate::text!($($arg)*)) };
}
