//! bench: the cost of a VM-exit round trip, measured from inside the guest.
//!
//! Each operation is timed on its own between two serialized RDTSC reads
//! (`lfence; rdtsc; lfence`), after 100 untimed warm-ups, and the average of
//! 10000 samples is printed in cycles. The baseline is the same measurement
//! around nothing — the cost of the timing itself, to subtract from the
//! others, which are printed raw. Under Bochs the TSC advances once per
//! instruction, so the figures are instruction counts of the exit path.
//!
//! The operations, in order:
//! - `cpuid`: CPUID leaf 0 (always exits under VMX);
//! - `vmcall`: the `BENCH_NOP` hypercall;
//! - `port-in`: a read of a port no device claims (the bare port path);
//! - `mmio-read`: a 32-bit read of the local APIC's version register
//!   (0xFEE00030): the EPT violation, the fetch of the instruction at RIP
//!   through the guest's page tables, its decoding, the read from the APIC
//!   model, RIP moved past it, and the platform settled before the entry
//!   (a device was touched); the guest maps the page itself ([`lapic`]);
//! - `lapic-timer-irq`: one local APIC timer interrupt, delivered while the
//!   guest spins with interrupts enabled, to a handler that writes the EOI
//!   and returns: the VM exit at the timer's deadline, the injection, the
//!   handler with its EOI write (an MMIO exit of its own) and IRETQ — from
//!   the last TSC read before the interrupt to the first after it
//!   ([`lapic::timer_interrupt`]). Arming the timer (an MMIO write) comes
//!   before that span and is not counted. The span holds 12 guest
//!   instructions of the spin loop (7 more than the baseline's timing) and
//!   the handler's 9;
//! - `pit-write`: `out 0x43, al` with 0xB0, the control word that programs
//!   the 8254's channel 2 (mode 0, low then high byte), as the classic TSC
//!   calibration loop starts: the port bus finds the PIT, which brings its
//!   counters up to date and reprograms the channel — the same work every
//!   time, and nothing the guest can notice (channel 2's gate is low and it
//!   drives no IRQ) — then the platform is settled before the entry. It
//!   comes after the APIC figures on purpose: tessera makes a VM's APIC
//!   pair when the guest first touches it, and from then on settling also
//!   syncs the I/O APIC's 24 pins, which costs a port write to any device
//!   about 1100 more instructions. Measured here, the figure is that of a
//!   guest that uses its local APIC, as any that wants its timer does;
//! - `baseline`: the timing around nothing.
#![no_std]
#![no_main]

mod lapic;

use core::convert::Infallible;
use core::hint::black_box;

use guest_rt::hypercall::bench_nop;
use guest_rt::{println, yield_now};

guest_rt::entry!(main);

/// Untimed runs before the measurement (caches, branch predictors).
const WARM_UPS: u32 = 100;
/// Timed runs averaged into the result.
const SAMPLES: u32 = 10_000;
/// A port no device claims: not COM1 (0x3F8–0x3FF) nor a debug port, so the
/// read exits to the hypervisor and comes back as 0xFF with nothing emulated.
const UNHANDLED_PORT: u16 = 0xEE;
/// The 8254's control word port.
const PIT_CONTROL: u16 = 0x43;
/// Channel 2 (bits 7:6 = 10), low byte then high byte (5:4 = 11), mode 0,
/// interrupt on terminal count (3:1 = 000), binary (0): programs channel 2,
/// which then waits for its count.
const PIT_PROGRAM_CHANNEL_2: u8 = 0b1011_0000;
/// Samples of the new figures between two yields: each run of them starts on
/// a fresh time slice, so that no slice end (a few thousand instructions of
/// scheduler) lands in one. 50 timer rounds of about 17000 instructions fit
/// well inside a 10 ms slice (2,000,000 under Bochs).
const SAMPLES_PER_SLICE: u32 = 50;
/// The APIC timer's first initial count, in undivided timer ticks: at the
/// 25 MHz tessera gives it, 41 µs, about 8200 instructions under Bochs, of
/// which the arming write's own exit takes some 2500 after it starts the
/// count (and a slice end in it, were there one, 2600 more). Doubled whenever the interrupt still
/// arrives before the guest is back in its loop.
const FIRST_TIMER_COUNT: u32 = 1024;
/// Beyond this the timer cannot be outrun, and the measurement gives up.
const LAST_TIMER_COUNT: u32 = 1 << 24;

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
    if let Err(error) = local_apic() {
        println!("bench: {error}; no further local APIC figures");
        status = 1;
    }
    // After the APIC figures, which make the VM's APIC pair (see above).
    report(
        "pit-write",
        measure_on_fresh_slices(|| port_out(PIT_CONTROL, PIT_PROGRAM_CHANNEL_2)),
    );
    report("baseline", measure(|| {}));
    status
}

/// The two local APIC figures: `mmio-read`, then `lapic-timer-irq`.
fn local_apic() -> Result<(), &'static str> {
    lapic::map()?;
    // The first touch also makes tessera build the VM's APIC pair.
    let version = lapic::read(lapic::register::VERSION);
    if version & 0xf0 != 0x10 {
        return Err("the local APIC's version register does not read as an integrated APIC");
    }
    report(
        "mmio-read",
        measure_on_fresh_slices(|| {
            black_box(lapic::read(lapic::register::VERSION));
        }),
    );
    lapic::install_timer_vector();
    lapic::set_up_timer();
    // A round in which the interrupt beat the guest back to its loop
    // measured nothing: it is retried with twice the count.
    let mut count = FIRST_TIMER_COUNT;
    let figure = average_on_fresh_slices(|| loop {
        if let Some(ticks) = lapic::timer_interrupt(count) {
            return Ok(ticks);
        }
        if count >= LAST_TIMER_COUNT {
            return Err("the APIC timer fired before the guest could wait for it");
        }
        count *= 2;
    })?;
    report("lapic-timer-irq", figure);
    Ok(())
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

/// [`measure`], but on fresh time slices ([`average_on_fresh_slices`]).
fn measure_on_fresh_slices(operation: impl Fn()) -> u64 {
    let Ok(average) = average_on_fresh_slices(|| {
        let start = timestamp();
        operation();
        let end = timestamp();
        Ok::<u64, Infallible>(end.wrapping_sub(start))
    });
    average
}

/// The average of [`SAMPLES`] results of `sample`, after [`WARM_UPS`]
/// untimed ones, with a yield before every [`SAMPLES_PER_SLICE`]: the
/// figure is then the operation's alone, and exact under Bochs. (The first
/// three figures leave this out: their 10000 samples take under one slice,
/// so at most one slice end lands in them, adding at most 0.3 to the mean.)
fn average_on_fresh_slices<E>(mut sample: impl FnMut() -> Result<u64, E>) -> Result<u64, E> {
    let _ = yield_now();
    for _ in 0..WARM_UPS {
        sample()?;
    }
    let mut total = 0u64;
    for taken in 0..SAMPLES {
        if taken % SAMPLES_PER_SLICE == 0 {
            let _ = yield_now();
        }
        total += sample()?;
    }
    Ok(total / u64::from(SAMPLES))
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

/// Writes `value` to I/O port `port`.
#[inline(always)]
fn port_out(port: u16, value: u8) {
    // SAFETY: the callers write ports whose effect they own (the PIT's
    // channel 2, which nothing else uses).
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
    }
}
