//! pctest: probes the virtual PC the way a small kernel uses it — the 8259A
//! pair remapped and IRQ 0 unmasked, the 8254 in mode 2 at 1 kHz, an IDT
//! whose vector 0x20 counts ticks and sends the EOI, then `sti; hlt` until
//! enough ticks arrived (so HLT must be woken by the timer); then the RTC's
//! date, the ACPI PM timer's rate against the PIT, fw_cfg's signature and
//! CPU count. One `PASS`/`FAIL` line per probe, then `pctest: N probes, M
//! failed`; then exits through the isa-debug-exit port (code 0x21 if all
//! passed), or with the hypercall's 0/1 when the VM has no such device.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use guest_rt::report::{rdtsc, Report};

guest_rt::entry!(main);

/// The isa-debug-exit port pctest.toml configures.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Timer interrupts taken.
static TICKS: AtomicU64 = AtomicU64::new(0);
/// Exceptions taken (any is a failure: the handler exits).
const TICK_VECTOR: usize = 0x20;
/// The 8254 runs at 1.193182 MHz: 1193 counts are 1 ms.
const PIT_COUNT_1MS: u16 = 1193;
const WANTED_TICKS: u64 = 100;

global_asm!(
    ".global pctest_tick",
    "pctest_tick:",
    "    push rax",
    "    lock inc qword ptr [rip + {ticks}]",
    "    mov al, 0x20",
    "    out 0x20, al",
    "    pop rax",
    "    iretq",
    // Any other vector ends the VM with exit code 2, through the guest
    // runtime's hypercall (VMCALL or VMMCALL, by vendor). The stack is
    // aligned for the call: the CPU aligned it to 16 bytes before pushing
    // the 5 (or, with an error code, 6) words of the frame.
    ".global pctest_unexpected",
    "pctest_unexpected:",
    "    and rsp, -16",
    "    call {unexpected}",
    ticks = sym TICKS,
    unexpected = sym unexpected_interrupt,
);

/// An interrupt on a vector pctest did not expect: its probes are void.
extern "C" fn unexpected_interrupt() -> ! {
    guest_rt::exit(2)
}

extern "C" {
    fn pctest_tick();
    fn pctest_unexpected();
}

/// 64-bit interrupt gates, vectors 0..=0x2F.
static mut IDT: [u64; 2 * 0x30] = [0; 2 * 0x30];

fn gate(handler: u64) -> [u64; 2] {
    let cs: u64;
    // SAFETY: reading CS has no side effects.
    unsafe { asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    // Present, DPL 0, 64-bit interrupt gate (type 0xE), IST 0.
    let low = (handler & 0xffff)
        | ((cs & 0xffff) << 16)
        | (0x8e00u64 << 32)
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

fn install_idt() {
    for vector in 0..0x30usize {
        let handler = if vector == TICK_VECTOR {
            pctest_tick as *const () as u64
        } else {
            pctest_unexpected as *const () as u64
        };
        let [low, high] = gate(handler);
        // SAFETY: the table is this guest's own, written before LIDT and
        // before interrupts are enabled.
        unsafe {
            let idt = core::ptr::addr_of_mut!(IDT) as *mut u64;
            idt.add(2 * vector).write(low);
            idt.add(2 * vector + 1).write(high);
        }
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<[u64; 2 * 0x30]>() - 1) as u16,
        base: core::ptr::addr_of!(IDT) as u64,
    };
    // SAFETY: the IDT is static and every gate points at a handler above.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack)) };
}

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O to the virtual PC's devices.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as above.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as above.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    };
    value
}

fn cmos(register: u8) -> u8 {
    outb(0x70, register);
    inb(0x71)
}

fn bcd(value: u8) -> u32 {
    u32::from(value >> 4) * 10 + u32::from(value & 0xf)
}

fn main() -> u64 {
    let mut report = Report::new("pctest");
    install_idt();

    // The 8259A pair: ICW1-4, vectors 0x20 and 0x28, cascade on IRQ 2.
    for (port, value) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xa0, 0x11),
        (0xa1, 0x28),
        (0xa1, 0x02),
        (0xa1, 0x01),
        (0x21, 0xfe),
        (0xa1, 0xff),
    ] {
        outb(port, value);
    }
    report.check(
        "pic-imr-reads-back",
        inb(0x21) == 0xfe,
        "IMR 0xfe",
        format_args!("IMR {:#04x}", inb(0x21)),
    );

    // The 8254, channel 0, mode 2 (rate generator) at 1 kHz.
    outb(0x43, 0x34);
    outb(0x40, PIT_COUNT_1MS as u8);
    outb(0x40, (PIT_COUNT_1MS >> 8) as u8);

    let start = rdtsc();
    let mut halts = 0u64;
    while TICKS.load(Ordering::Relaxed) < WANTED_TICKS {
        // SAFETY: STI; HLT sleeps until the next interrupt, whose handler
        // is installed; the STI shadow covers the HLT.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
        halts += 1;
    }
    let elapsed = rdtsc() - start;
    let ticks = TICKS.load(Ordering::Relaxed);
    // Ticks that fall while the VM waits for the CPU arrive coalesced, and
    // the first comes from the mode switch itself, so a few ticks may not
    // have needed a HLT; most must have woken one.
    report.check(
        "pit-interrupts-wake-hlt",
        ticks >= WANTED_TICKS && halts + 10 >= WANTED_TICKS,
        format_args!("{WANTED_TICKS} ticks, nearly each waking a HLT"),
        format_args!("{ticks} ticks, {halts} HLTs, {elapsed} TSC ticks"),
    );
    // The ACPI PM timer (3.579545 MHz) against the 8254's channel 2 gated
    // through port 0x61 for 5 ms (5966 counts in mode 0), the classic
    // calibration loop: about 17898 PM counts. Both clocks run while the VM
    // waits for the CPU, but the end of the gate is seen late if another VM
    // holds the CPU just then: each gate starts a fresh slice (a yield), and
    // the best of five counts.
    let mut pm = u32::MAX;
    for _ in 0..5 {
        let _ = guest_rt::yield_now();
        outb(0x61, (inb(0x61) & !0x02) & !0x01);
        outb(0x43, 0b1011_0000);
        outb(0x42, (5966u16 & 0xff) as u8);
        outb(0x42, (5966u16 >> 8) as u8);
        let pm_start = inl(0x608) & 0x00ff_ffff;
        outb(0x61, inb(0x61) | 0x01);
        while inb(0x61) & 0x20 == 0 {}
        let pm_end = inl(0x608) & 0x00ff_ffff;
        pm = pm.min(pm_end.wrapping_sub(pm_start) & 0x00ff_ffff);
    }
    report.check(
        "pm-timer-against-pit-channel-2",
        (17_000..=18_800).contains(&pm),
        "about 17898 PM-timer counts in a 5 ms gate",
        format_args!("{pm} counts (the best of five gates)"),
    );

    // The RTC: a plausible date (BCD, 24-hour, as a BIOS leaves it).
    while cmos(0x0a) & 0x80 != 0 {}
    let year = bcd(cmos(0x32)) * 100 + bcd(cmos(0x09));
    let month = bcd(cmos(0x08));
    let day = bcd(cmos(0x07));
    report.check(
        "rtc-date",
        (2024..=2199).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day),
        "a date from 2024 on",
        format_args!("{year:04}-{month:02}-{day:02}"),
    );

    // fw_cfg: the "QEMU" signature and one CPU.
    outb(0x510, 0x00);
    outb(0x511, 0x00);
    let mut signature = [0u8; 4];
    // Selector writes are 16-bit.
    // SAFETY: port I/O to fw_cfg.
    unsafe {
        asm!("out dx, ax", in("dx") 0x510u16, in("ax") 0u16, options(nomem, nostack, preserves_flags))
    };
    for byte in signature.iter_mut() {
        *byte = inb(0x511);
    }
    // SAFETY: as above.
    unsafe {
        asm!("out dx, ax", in("dx") 0x510u16, in("ax") 5u16, options(nomem, nostack, preserves_flags))
    };
    let cpus = u16::from(inb(0x511)) | (u16::from(inb(0x511)) << 8);
    report.check(
        "fw-cfg",
        &signature == b"QEMU" && cpus == 1,
        "signature QEMU, 1 CPU",
        format_args!(
            "signature {:?}, {cpus} CPU(s)",
            core::str::from_utf8(&signature).unwrap_or("?")
        ),
    );
    let code = report.summary();
    // The way a test kernel written for QEMU reports: a byte to the
    // isa-debug-exit port (pctest.toml gives the VM `debug-exit=0xf4`), which
    // stops the VM with exit code (byte << 1) | 1 — 0x21 for a pass, 0x23
    // for a failure. Without the device the write is ignored and pctest
    // falls back to the hypercall, with the plain 0/1.
    outb(DEBUG_EXIT_PORT, 0x10 | code as u8);
    code
}
