//! race: the guest of `tessera bench`'s scale measure. Many copies run side by
//! side; each counts as fast as it can for a fixed window of TSC ticks and
//! prints how far it got, so that the spread of the counts over the copies
//! shows how fairly tessera shares the CPU.
//!
//! The counting loop makes no VM exit: a register increment in a loop of
//! [`CHUNK`] iterations, then one RDTSC. Only whole chunks that ended inside
//! the window count.
//!
//! Phase 1 is the copy's own window of [`WINDOW`] ticks from its first
//! instruction in `main`. The copies start within one scheduler round of each
//! other, so their windows are shifted by up to a round; phase 2 keeps this
//! copy competing, without counting, for another [`WINDOW`] ticks, so that
//! the window of every other copy overlaps only with copies that still want
//! the CPU (none has exited or gone quiet early, which would hand the rest
//! more time). Then it prints `race: progress <n>` and exits with code 0.
#![no_std]
#![no_main]

use guest_rt::println;
use guest_rt::report::rdtsc;

guest_rt::entry!(main);

/// The window, in TSC ticks: 2^30, about 5.4 s of guest time at the ~200 MHz
/// that tessera calibrates under Bochs (where the TSC counts instructions).
/// With `bench`'s 1 ms slices a round of 256 VMs is 256 ms, so the window
/// spans about 21 rounds: a copy's share is ~21 slices, and being at the
/// start or the end of a round changes it by at most one. Both phases take
/// 2^31 instructions in all, ~7 s of Bochs time, whatever the number of copies.
const WINDOW: u64 = 1 << 30;

/// Iterations between two TSC reads: about 3 instructions each, so a chunk
/// is ~12 k instructions, small against a 1 ms slice (~200 k).
const CHUNK: u64 = 4096;

fn main() -> u64 {
    let start = rdtsc();
    let counted_until = start + WINDOW;
    let mut progress = 0u64;
    loop {
        count(CHUNK);
        if rdtsc() > counted_until {
            break;
        }
        progress += CHUNK;
    }
    let competing_until = counted_until + WINDOW;
    while rdtsc() <= competing_until {
        count(CHUNK);
    }
    println!("race: progress {progress}");
    0
}

/// Increments a register `iterations` times, in a loop the compiler cannot
/// fold away (it is assembly) and that touches neither memory nor anything
/// that exits.
#[inline(always)]
fn count(iterations: u64) {
    let mut counter = 0u64;
    // SAFETY: register arithmetic and a local branch only.
    unsafe {
        core::arch::asm!(
            "2:",
            "inc {counter}",
            "dec {left}",
            "jnz 2b",
            counter = inout(reg) counter,
            left = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
    core::hint::black_box(counter);
}
