//! counter: counts the primes below ten million with a segmented sieve of
//! Eratosthenes, printing its progress at every quarter and yielding after
//! each report. It checks its answer against the known value of π(10⁷), so a
//! hypervisor that corrupts guest state across exits makes it exit with 1.
#![no_std]
#![no_main]

use guest_rt::{println, vm_info, yield_now};

guest_rt::entry!(main);

/// Count the primes in `[0, LIMIT)`.
const LIMIT: u32 = 10_000_000;
/// π(10⁷), from the literature; the sieve must reproduce it.
const EXPECTED_PRIMES: u32 = 664_579;
/// The integer square root of `LIMIT`, rounded up: the sieving primes are below it.
const SQRT_LIMIT: usize = 3163;
/// How many numbers one sieve segment covers; the segment lives on the stack.
const SEGMENT: u32 = 8192;

fn main() -> u64 {
    let mut status = 0;
    match vm_info() {
        Ok(info) => println!(
            "counter: I am VM {} \"{}\" with {} KiB of RAM",
            info.id,
            info.name(),
            info.memory_bytes / 1024
        ),
        Err(error) => {
            println!("counter: VM_INFO failed: {error:?}");
            status = 1;
        }
    }
    println!("counter: counting the primes below {LIMIT}");

    let mut sieving_primes = [0u32; 512];
    let sieving_primes = small_primes(&mut sieving_primes);

    let mut found = 0;
    for quarter in 1..=4u32 {
        let start = LIMIT / 4 * (quarter - 1);
        let end = LIMIT / 4 * quarter;
        found += count_primes(start, end, sieving_primes);
        println!("counter: {}% (primes so far: {found})", quarter * 25);
        if let Err(error) = yield_now() {
            println!("counter: YIELD failed: {error:?}");
            status = 1;
        }
    }

    if found == EXPECTED_PRIMES {
        println!("counter: done: {found} primes below {LIMIT}, as expected");
    } else {
        println!("counter: WRONG: {found} primes below {LIMIT}, expected {EXPECTED_PRIMES}");
        status = 1;
    }
    status
}

/// Fills `storage` with the primes below `SQRT_LIMIT` (a plain sieve) and
/// returns the filled part.
fn small_primes(storage: &mut [u32; 512]) -> &[u32] {
    let mut composite = [false; SQRT_LIMIT];
    let mut count = 0;
    for n in 2..SQRT_LIMIT {
        if composite[n] {
            continue;
        }
        storage[count] = n as u32;
        count += 1;
        for multiple in (n * n..SQRT_LIMIT).step_by(n) {
            composite[multiple] = true;
        }
    }
    &storage[..count]
}

/// The number of primes in `[start, end)`, sieved segment by segment with
/// `sieving_primes` (all primes up to √end).
fn count_primes(start: u32, end: u32, sieving_primes: &[u32]) -> u32 {
    let mut count = 0;
    let mut composite = [false; SEGMENT as usize];
    let mut low = start;
    while low < end {
        let high = (low + SEGMENT).min(end);
        let segment = &mut composite[..(high - low) as usize];
        segment.fill(false);
        for &p in sieving_primes {
            if p * p >= high {
                break;
            }
            // The first multiple of p in [low, high) that is not p itself.
            let first = (p * p).max(low.div_ceil(p) * p);
            for multiple in (first..high).step_by(p as usize) {
                segment[(multiple - low) as usize] = true;
            }
        }
        for (offset, &is_composite) in segment.iter().enumerate() {
            if !is_composite && low + offset as u32 >= 2 {
                count += 1;
            }
        }
        low = high;
    }
    count
}
