//! ticker: the neighbour of the flood guests (`guest-blobs/flood.toml`).
//! It does a fixed amount of pure arithmetic with no VM exit (the spinner's
//! LCG, [`STEPS`] steps, ~0.15 G instructions) and reads the TSC every
//! [`CHUNK`] steps. A TSC step much larger than a chunk takes means that the
//! ticker was descheduled and other VMs ran: its length is how long the
//! ticker waited. The longest stretch it ran uninterrupted is about one time
//! slice of machine time (only stretches that end in a wait count: once
//! the others have stopped, the ticker runs alone).
//!
//! With fair round-robin slices and N other VMs, no wait is much longer
//! than N slices; the probe `fair-share` fails if the longest wait is over
//! [`FACTOR`] times its own longest uninterrupted run — which is what
//! happens when a neighbour's exits are not charged to its slice and it
//! keeps the CPU for hundreds of slices' worth of time. It prints progress
//! per quarter, then `ticker: done …`, the probe line and the summary, and
//! exits 0 only if the probe passed.
#![no_std]
#![no_main]

use core::hint::black_box;

use guest_rt::println;
use guest_rt::report::{rdtsc, Report};

guest_rt::entry!(main);

const STEPS: u64 = 24_000_000;
const CHUNK: u64 = 2_000;
/// A TSC step this much longer than the usual chunk means a wait.
const WAIT: u64 = 200_000;
const FACTOR: u64 = 10;

fn main() -> u64 {
    let mut report = Report::new("ticker");
    println!("ticker: {STEPS} steps without a VM exit, timing my waits");
    let mut state: u64 = 1;
    let mut last = rdtsc();
    let mut run_start = last;
    let (mut longest_wait, mut longest_run, mut waits) = (0u64, 0u64, 0u64);
    for chunk in 0..STEPS / CHUNK {
        for _ in 0..CHUNK {
            state = black_box(state)
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        let now = rdtsc();
        if now - last > WAIT {
            waits += 1;
            longest_wait = longest_wait.max(now - last);
            longest_run = longest_run.max(last - run_start);
            run_start = now;
        }
        last = now;
        if (chunk + 1) % (STEPS / CHUNK / 4) == 0 {
            println!(
                "ticker: {}% (longest wait so far {longest_wait} ticks)",
                (chunk + 1) * 100 / (STEPS / CHUNK)
            );
        }
    }
    println!("ticker: done (state {state:#x})");
    report.check(
        "fair-share",
        longest_wait <= FACTOR * longest_run,
        format_args!("no wait over {FACTOR} x my longest run ({longest_run} ticks)"),
        format_args!(
            "{waits} waits, longest {longest_wait} ticks = {} x my longest uninterrupted run of {longest_run} ticks",
            longest_wait / longest_run.max(1)
        ),
    );
    report.summary()
}
