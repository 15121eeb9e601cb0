//! echo: the operator console's test guest (`guest-blobs/console.toml`).
//! It reads its COM1 by polling the line status register and answers each
//! line typed to it with `echo: you typed "<line>"`, so a test can see that
//! keys reach the VM with the focus and only that VM. Every 250 ms of its
//! TSC (rate from CPUID leaf 0x4000_0010) it prints `echo: tick <n>`, so a
//! test can see it stop while paused and go on after `resume`. `quit` ends
//! it with exit code 0; after [`MAX_TICKS`] ticks it ends by itself.
#![no_std]
#![no_main]

use core::arch::asm;

use guest_rt::println;
use guest_rt::report::rdtsc;

guest_rt::entry!(main);

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
/// LSR bit 0: a received byte is waiting.
const DATA_READY: u8 = 1;
const MAX_TICKS: u64 = 2400;
const LINE_CAPACITY: usize = 80;

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: a port read of the virtual 16550; it has no effect on memory.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack)) };
    value
}

/// The TSC rate in kHz from the hypervisor's timing leaf (tessera's
/// 0x4000_0010), or a guess of 1 GHz without it.
fn tsc_khz() -> u64 {
    let leaf = core::arch::x86_64::__cpuid(0x4000_0010);
    if leaf.eax == 0 {
        1_000_000
    } else {
        u64::from(leaf.eax)
    }
}

fn main() -> u64 {
    println!("echo: ready; type a line (quit ends me)");
    let tick = tsc_khz() * 250;
    let mut next_tick = rdtsc() + tick;
    let mut ticks = 0u64;
    let mut line = [0u8; LINE_CAPACITY];
    let mut length = 0;
    loop {
        while inb(LINE_STATUS) & DATA_READY != 0 {
            match inb(COM1) {
                b'\r' | b'\n' => {
                    if length > 0 {
                        let text = core::str::from_utf8(&line[..length]).unwrap_or("?");
                        println!("echo: you typed \"{text}\"");
                        if text == "quit" {
                            return 0;
                        }
                    }
                    length = 0;
                }
                byte @ 0x20..=0x7e if length < LINE_CAPACITY => {
                    line[length] = byte;
                    length += 1;
                }
                _ => {}
            }
        }
        let now = rdtsc();
        if now >= next_tick {
            ticks += 1;
            println!("echo: tick {ticks}");
            if ticks >= MAX_TICKS {
                return 0;
            }
            next_tick = now + tick;
        }
        let _ = guest_rt::yield_now();
    }
}
