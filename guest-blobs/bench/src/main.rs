//! bench: the cost of a VM-exit round trip, measured from inside the guest.
//!
//! Each operation is timed on its own between two serialized RDTSC reads
//! (`lfence; rdtsc; lfence`), after 100 untimed warm-ups, and the average of
//! 10000 samples is printed in cycles. The baseline is the same measurement
//! around nothing — the cost of the timing itself, to subtract from the
//! others, which are printed raw. Under Bochs the TSC advances once per
//! instruction, so the figures are instruction counts of the exit path.
#![no_std]
#![no_main]

use core::hint::black_box;

use guest_rt::hypercall::bench_nop;
use guest_rt::println;

guest_rt::entry!(main);

/// Untimed runs before the measurement (caches, branch predictors).
const WARM_UPS: u32 = 100;
/// Timed runs averaged into the result.
const SAMPLES: u32 = 10_000;
/// A port no device claims: not COM1 (0x3F8–0x3FF) nor a debug port, so the
/// read exits to the hypervisor and comes back as 0xFF with nothing emulated.
const UNHANDLED_PORT: u16 = 0xEE;

fn main() -> u64 {
    let mut status = 0;
    if let Err(error) = bench_nop() {
        println!("bench: BENCH_NOP failed ({error:?}); the vmcall figure is of the error path");
        status = 1;
    }

    report(
        "cpuid",
        measure(|| {
            black_box(core::arch::x86_64::__cpuid(0).eax);
        }),
    );
    report(
        "vmcall",
        measure(|| {
            let _ = black_box(bench_nop());
        }),
    );
    report(
        "port-in",
        measure(|| {
            black_box(port_in(UNHANDLED_PORT));
        }),
    );
    report("baseline", measure(|| {}));
    status
}

fn report(name: &str, cycles_per_operation: u64) {
    println!("bench: {name} {cycles_per_operation} cycles/op (n={SAMPLES})");
}

/// The average cycles one call of `operation` takes, timing included.
fn measure(operation: impl Fn()) -> u64 {
    for _ in 0..WARM_UPS {
        operation();
    }
    let mut total = 0u64;
    for _ in 0..SAMPLES {
        let start = timestamp();
        operation();
        let end = timestamp();
        total += end.wrapping_sub(start);
    }
    total / u64::from(SAMPLES)
}

/// The TSC, read with LFENCE on both sides so that neither earlier nor later
/// instructions overlap the read (SDM Vol. 2B, RDTSC).
#[inline(always)]
fn timestamp() -> u64 {
    let low: u32;
    let high: u32;
    // SAFETY: RDTSC and LFENCE only read the time-stamp counter and order
    // execution; CR4.TSD is clear at CPL 0 in any case.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            "lfence",
            out("eax") low,
            out("edx") high,
            options(nomem, nostack, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// A byte from I/O port `port`.
#[inline(always)]
fn port_in(port: u16) -> u8 {
    let value: u8;
    // SAFETY: reading a port nothing claims has no effect beyond the exit.
    unsafe {
        core::arch::asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags));
    }
    value
}
