//! spinner: a long stretch of pure computation with no VM exit of its own —
//! 200 million steps of a linear congruential generator, with one report
//! halfway. Only the VMX-preemption timer can take the CPU back from it, so
//! other VMs making progress meanwhile shows that the timer does. At the end
//! it checks its state against the closed form of the generator, so a
//! hypervisor that corrupts guest registers at a preemption makes it exit 1.
#![no_std]
#![no_main]

use core::hint::black_box;

use guest_rt::println;

guest_rt::entry!(main);

/// Generator steps in total; at ~6 instructions a step, ~1.2 G instructions.
const ITERATIONS: u64 = 200_000_000;
/// Knuth's MMIX LCG: state ← state · MULTIPLIER + INCREMENT (mod 2⁶⁴).
const MULTIPLIER: u64 = 6_364_136_223_846_793_005;
/// See [`MULTIPLIER`].
const INCREMENT: u64 = 1_442_695_040_888_963_407;
/// The starting state.
const SEED: u64 = 0x7E55_E8A0;

fn main() -> u64 {
    println!("spinner: spinning for {ITERATIONS} iterations without a VM exit");
    let half = spin(SEED, ITERATIONS / 2);
    println!("spinner: halfway (state {half:#018x})");
    let state = spin(half, ITERATIONS - ITERATIONS / 2);

    let expected = jump(SEED, ITERATIONS);
    if state == expected {
        println!("spinner: done (state {state:#018x}, as expected)");
        0
    } else {
        println!("spinner: WRONG state {state:#018x}, expected {expected:#018x}");
        1
    }
}

/// `steps` generator steps, one at a time: `black_box` hides the state from
/// the optimizer, so it can neither fold the loop nor shorten it.
fn spin(mut state: u64, steps: u64) -> u64 {
    for _ in 0..steps {
        state = black_box(state)
            .wrapping_mul(MULTIPLIER)
            .wrapping_add(INCREMENT);
    }
    state
}

/// The state after `steps` steps, in O(log steps): the step is the affine map
/// x ↦ a·x + c, and composing affine maps is squaring (a, c) ↦ (a², a·c + c).
fn jump(state: u64, mut steps: u64) -> u64 {
    let (mut a, mut c) = (MULTIPLIER, INCREMENT);
    let (mut total_a, mut total_c) = (1u64, 0u64);
    while steps > 0 {
        if steps & 1 == 1 {
            total_a = total_a.wrapping_mul(a);
            total_c = total_c.wrapping_mul(a).wrapping_add(c);
        }
        c = c.wrapping_mul(a).wrapping_add(c);
        a = a.wrapping_mul(a);
        steps >>= 1;
    }
    total_a.wrapping_mul(state).wrapping_add(total_c)
}
