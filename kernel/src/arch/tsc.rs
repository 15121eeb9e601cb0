//! The time-stamp counter's frequency, measured against the PIT.
//!
//! The VMX-preemption timer counts in TSC units, so time slices in
//! microseconds need the TSC frequency. CPUID leaf 0x15 gives it on recent
//! Intel parts but is often absent (and in emulators, meaningless), so
//! tessera measures: PIT channel 2 counts a fixed 10 ms gate (the PIT clock
//! is 1.193182 MHz on every PC) while the TSC runs. Under Bochs the TSC
//! advances once per instruction, so the result is the emulated IPS rate —
//! exactly what makes slices "10 ms of guest time" there too.

use x86::io::{inb, outb};

const PIT_HZ: u64 = 1_193_182;
const GATE_MS: u64 = 10;

/// Reads the TSC.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency in Hz.
pub fn calibrate() -> u64 {
    let count = (PIT_HZ * GATE_MS / 1000) as u16;
    // SAFETY: programs PIT channel 2 and the speaker gate (port 0x61), which
    // nothing else in tessera uses; the speaker output stays disabled.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        // Restart the count: toggle the gate low then high.
        outb(0x61, inb(0x61) & !0x01);
        outb(0x61, inb(0x61) | 0x01);
        let start = rdtsc();
        // Bit 5 of port 0x61 is channel 2's output: high at terminal count.
        let mut spins = 0u64;
        while inb(0x61) & 0x20 == 0 {
            spins += 1;
            if spins > 1_000_000_000 {
                break;
            }
        }
        let end = rdtsc();
        outb(0x61, gate);
        (end - start) * (1000 / GATE_MS)
    }
}
