//! flood: a guest that makes the hypervisor work as hard as it can for as
//! little guest time as possible, to show whether tessera charges the time
//! it spends on a VM's exits to that VM's slice. Run one copy per flood
//! kind (chosen by the VM's name) next to `ticker`, which measures how long
//! it has to wait for the CPU (`guest-blobs/flood.toml`):
//!
//! - name containing `outs`: endless `rep outsb` of 64 KiB to port 0x80;
//! - name containing `hc`: endless `CONSOLE_WRITE` hypercalls of 4096 bytes
//!   (carriage returns, which the console drops, so the transcript stays
//!   small);
//! - name containing `print`: endless `CONSOLE_WRITE` hypercalls of 4096
//!   bytes of real text, 64 lines each, which the hypervisor must send out
//!   of the serial port at the port's pace;
//! - any other name (`out`): a tight `out 0x80, al` loop.
//!
//! It reads the TSC, yields once (so every VM has started), then floods
//! until the TSC is [`WINDOW`] past that first reading — a fixed amount of
//! machine time, not of its own guest time — and prints
//! `flood: <kind> done: …` with how many iterations it made and how often a
//! gap in its TSC showed that another VM ran. With fair (wall-clock) slice
//! accounting the ticker finishes long before the window ends; when exit
//! time is not charged, one flooder keeps the CPU for the whole window and
//! the ticker's `done` line comes after every `flood … done` line.
#![no_std]
#![no_main]

use guest_rt::report::rdtsc;
use guest_rt::{println, vm_info};

guest_rt::entry!(main);

/// How long each flooder floods, in TSC ticks (Bochs: ~5 s of emulation).
const WINDOW: u64 = 1_500_000_000;
/// A TSC step this much longer than the shortest iteration means another
/// VM ran in between.
const GAP: u64 = 1_000_000;
/// The debug port, which tessera drops.
const PORT: u16 = 0x80;

static mut BUFFER: [u8; 65536] = [0; 65536];
static CARRIAGE_RETURNS: [u8; 4096] = [b'\r'; 4096];
/// 64 lines of 63 characters and a newline.
static TEXT: [u8; 4096] = text();

const fn text() -> [u8; 4096] {
    let mut text = [b'.'; 4096];
    let mut line = 0;
    while line < 64 {
        text[line * 64 + 63] = b'\n';
        line += 1;
    }
    text
}

#[derive(Clone, Copy)]
enum Kind {
    Outs,
    Hypercall,
    Print,
    Out,
}

fn main() -> u64 {
    let start = rdtsc();
    let info = vm_info();
    let name = info.as_ref().map_or("?", |info| info.name());
    let kind = if name.contains("outs") {
        Kind::Outs
    } else if name.contains("hc") {
        Kind::Hypercall
    } else if name.contains("print") {
        Kind::Print
    } else {
        Kind::Out
    };
    let what = match kind {
        Kind::Outs => "rep-outsb-64k",
        Kind::Hypercall => "console-write-4096",
        Kind::Print => "console-print-4096",
        Kind::Out => "tight-out-loop",
    };
    println!("flood: {what}: flooding for {WINDOW} TSC ticks");
    let _ = guest_rt::yield_now();
    let first = rdtsc();
    let deadline = start + WINDOW;
    let mut last = first;
    let mut iterations = 0u64;
    let mut shortest = u64::MAX;
    let mut gaps = 0u64;
    while last < deadline {
        match kind {
            Kind::Outs => {
                // SAFETY: reads 64 KiB of this guest's own buffer and writes
                // them to a port no device claims.
                unsafe {
                    core::arch::asm!(
                        "rep outsb",
                        inout("rsi") core::ptr::addr_of!(BUFFER) as u64 => _,
                        inout("rcx") 65536u64 => _,
                        in("dx") PORT,
                        options(nostack, preserves_flags, readonly),
                    )
                };
            }
            Kind::Hypercall => {
                let _ = guest_rt::hypercall::console_write(&CARRIAGE_RETURNS);
            }
            Kind::Print => {
                let _ = guest_rt::console::write_all(&TEXT);
            }
            Kind::Out => {
                for _ in 0..256 {
                    // SAFETY: a write to a port no device claims.
                    unsafe {
                        core::arch::asm!("out 0x80, al", in("al") 0u8, options(nomem, nostack, preserves_flags))
                    };
                }
            }
        }
        let now = rdtsc();
        let step = now - last;
        if step > shortest.saturating_add(GAP) {
            gaps += 1;
        }
        shortest = shortest.min(step);
        last = now;
        iterations += 1;
    }
    println!(
        "flood: {what} done: {iterations} iterations, waited {} ticks for my first slice, {gaps} gaps (another VM ran)",
        first - start
    );
    0
}
