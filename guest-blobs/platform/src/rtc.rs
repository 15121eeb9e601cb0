//! The MC146818 RTC and CMOS RAM at ports 0x70/0x71 (Motorola MC146818A
//! datasheet): the memory sizes firmware leaves in CMOS, the periodic
//! interrupt on IRQ 8 and its acknowledge by register C, the update cycle
//! and its UIP flag.

use crate::clock;
use crate::interrupts::{self, vector};
use crate::report::Outcome;
use crate::x86::{cli, inb, interrupts_enabled, outb, rdtsc, sti};
use crate::{fail, pic, pit, text, Machine};

/// The RTC's line: IRQ 8, the slave 8259A's IRQ 0.
pub const IRQ: u8 = 8;
const INDEX_PORT: u16 = 0x70;
const DATA_PORT: u16 = 0x71;
const SECONDS: u8 = 0x00;
const REGISTER_A: u8 = 0x0a;
const REGISTER_B: u8 = 0x0b;
/// Register C: interrupt flags, cleared (and IRQ 8 released) by reading it.
pub const REGISTER_C: u8 = 0x0c;
const REGISTER_D: u8 = 0x0d;
/// Register A: UIP (7), divider DV (6:4), rate select RS (3:0).
const A_UIP: u8 = 1 << 7;
const A_DIVIDER_MASK: u8 = 0x70;
const A_DIVIDER_32K: u8 = 0x20;
const A_DIVIDER_RESET: u8 = 0x60;
const A_RATE_MASK: u8 = 0x0f;
/// RS = 0110: 1024 Hz, 976.5625 us.
const A_RATE_1024HZ: u8 = 0x06;
const PERIOD_1024HZ_NS: u64 = 976_562;
/// Register B: SET (7), PIE (6), AIE (5), UIE (4), DM binary (2).
const B_SET: u8 = 1 << 7;
const B_PIE: u8 = 1 << 6;
const B_INTERRUPTS: u8 = 0x70;
const B_BINARY: u8 = 1 << 2;
/// Register C: IRQF (7), PF (6), AF (5), UF (4).
const C_IRQF: u8 = 1 << 7;
const C_PF: u8 = 1 << 6;
const C_UF: u8 = 1 << 4;
/// Register D: VRT (7), valid RAM and time.
const D_VRT: u8 = 1 << 7;

/// Reads a CMOS byte from the interrupt handler (interrupts are off).
pub fn read_in_handler(index: u8) -> u8 {
    outb(INDEX_PORT, index);
    inb(DATA_PORT)
}

/// Reads a CMOS byte with interrupts held off, so that the RTC's handler
/// cannot change the index between the two accesses.
pub fn read(index: u8) -> u8 {
    let enabled = interrupts_enabled();
    cli();
    let value = read_in_handler(index);
    if enabled {
        sti();
    }
    value
}

/// Writes a CMOS byte (with interrupts off, as `read`).
pub fn write(index: u8, value: u8) {
    let enabled = interrupts_enabled();
    cli();
    outb(INDEX_PORT, index);
    outb(DATA_PORT, value);
    if enabled {
        sti();
    }
}

fn read16(low: u8) -> u16 {
    u16::from(read(low)) | u16::from(read(low + 1)) << 8
}

/// Stops the RTC's interrupts and releases IRQ 8.
pub fn quiesce() {
    write(REGISTER_B, read(REGISTER_B) & !B_INTERRUPTS);
    read(REGISTER_C);
}

/// cmos-memory: the memory sizes firmware leaves in CMOS (IBM PC AT
/// Technical Reference, "CMOS RAM Address Map"; 0x34/0x35 the Bochs/QEMU
/// BIOS convention) agree with fw_cfg's RAM size and the Multiboot
/// information: base 640 KiB at 0x15, extended KiB above 1 MiB (at most
/// 0xFFFF) at 0x17 and 0x30, 64 KiB units above 16 MiB at 0x34.
pub fn probe_memory(machine: &mut Machine) -> Outcome {
    let Some(ram) = machine.ram_bytes else {
        return fail!("needs fw_cfg's RAM size to compare with (fw-cfg failed)");
    };
    // Below 4 GiB at most: the fields cannot say more; a PC's RAM is split
    // around the PCI hole anyway.
    let low_ram = ram.min(0xc000_0000);
    let base = read16(0x15);
    let extended = read16(0x17);
    let extended_post = read16(0x30);
    let above_16m = read16(0x34);
    let expect_extended = (low_ram.saturating_sub(1 << 20) / 1024).min(0xffff) as u16;
    let expect_above = (low_ram.saturating_sub(16 << 20) / (64 * 1024)).min(0xffff) as u16;
    let upper_ok = machine
        .multiboot_memory()
        .is_some_and(|(lower, upper)| lower <= 640 && u64::from(upper) <= low_ram / 1024);
    let ok = base == 640
        && extended == expect_extended
        && extended_post == expect_extended
        && above_16m == expect_above
        && upper_ok;
    Outcome::check(
        ok,
        text!(
            "fw_cfg RAM {} KiB; CMOS base {base}, extended {extended}/{extended_post} (expected {expect_extended}), \
             above 16M {above_16m} (expected {expect_above}); Multiboot upper {}",
            ram / 1024,
            machine.multiboot_memory().map_or(0, |(_, upper)| upper)
        ),
    )
}

/// Sets the periodic rate to 1024 Hz (RS = 0110), clears pending flags by
/// reading register C and leaves IRQ 8 the only one the 8259A lets
/// through; PIE is for the caller to set.
fn prepare_1024hz() {
    write(
        REGISTER_A,
        (read(REGISTER_A) & !A_RATE_MASK) | A_RATE_1024HZ,
    );
    read(REGISTER_C);
    pic::only(IRQ);
}

/// rtc-periodic-irq8: RS = 0110 (1024 Hz) with PIE raises IRQ 8 every
/// 976.5625 us; register C read in the handler shows IRQF and PF.
pub fn probe_periodic(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    prepare_1024hz();
    write(REGISTER_B, read(REGISTER_B) | B_PIE);
    let capture = clock::capture_periodic(tsc, 5000, PERIOD_1024HZ_NS);
    let flags = interrupts::rtc_c_seen();
    quiesce();
    pic::set_masks(pic::ALL_MASKED);
    let outcome = clock::periodic_outcome(
        capture,
        PERIOD_1024HZ_NS,
        5000,
        format_args!("IRQ 8 on vector {:#x}", vector::PIC_SLAVE_BASE),
    );
    match outcome {
        Outcome::Pass(detail) => Outcome::check(
            flags & (C_IRQF | C_PF) == C_IRQF | C_PF,
            text!("{detail}; register C had IRQF|PF ({flags:#04x} in common)"),
        ),
        other => other,
    }
}

/// rtc-irq8-needs-register-c: while register C is not read, IRQ 8 stays
/// asserted and no further interrupt reaches the edge-triggered 8259A
/// (datasheet, "Register C": IRQF is cleared by reading C, and with it the
/// IRQ pin); reading C lets the next one through.
pub fn probe_acknowledge(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    prepare_1024hz();
    interrupts::set_rtc_acknowledge(false);
    write(REGISTER_B, read(REGISTER_B) | B_PIE);
    let slave = vector::PIC_SLAVE_BASE;
    clock::poll(tsc.ticks_from_us(20_000), true, || {
        interrupts::count(slave) > 0
    });
    let first = interrupts::count(slave);
    // Five periods without a read of C.
    clock::poll(tsc.ticks_from_us(5000), true, || false);
    let unacknowledged = interrupts::count(slave);
    let c = read(REGISTER_C);
    interrupts::set_rtc_acknowledge(true);
    clock::poll(tsc.ticks_from_us(20_000), true, || {
        interrupts::count(slave) > unacknowledged
    });
    let after = interrupts::count(slave);
    quiesce();
    pic::set_masks(pic::ALL_MASKED);
    let ok = first == 1 && unacknowledged == 1 && c & (C_IRQF | C_PF) == C_IRQF | C_PF && after > 1;
    Outcome::check(
        ok,
        text!(
            "first IRQ 8: {first}; after 5 ms without reading C: {unacknowledged} in all; C read {c:#04x}; \
             then {after} in all"
        ),
    )
}

/// Decodes a time register per register B's DM bit.
fn decode(value: u8, binary: bool) -> u8 {
    if binary {
        value
    } else {
        (value >> 4) * 10 + (value & 0xf)
    }
}

/// UIP may stay up longer than the datasheet's 244 us + 1984 us: QEMU
/// latches it until its update timer has run in its main loop, and a read
/// of register A can wait milliseconds for that loop. Ten milliseconds is
/// taken as a plausible update.
const UIP_MAX_US: u64 = 10_000;
/// How long a poll may stall before the CPU counts as having been away
/// (then how long UIP stayed up, and when the update came, are unknown).
const AWAY_US: u64 = 500;
/// When to stop sleeping after the divider's release, and how long to
/// watch then: UIP is due at 499.756 ms. The margin covers the TSC rate's
/// error; waking closer to the window leaves less time for another VM (or
/// the host) to take the CPU just then.
const WAKE_US: u64 = 498_500;
const WATCH_US: u64 = 40_000;
/// Update cycles to try before giving up: each may be missed when the CPU
/// is elsewhere in the 244 us UIP is up.
const UPDATE_ATTEMPTS: u32 = 6;

/// One try at seeing the update cycle; `None` when UIP was never seen up
/// (the CPU may have been away just then).
fn watch_update(machine: &mut Machine, tsc: clock::Tsc) -> Option<Outcome> {
    let rate = read(REGISTER_A) & A_RATE_MASK;
    let b = read(REGISTER_B);
    let binary = b & B_BINARY != 0;
    write(REGISTER_A, A_DIVIDER_RESET | rate);
    let seconds_before = decode(read(SECONDS), binary);
    read(REGISTER_C);
    // Released from reset, the divider chain makes the first update 500 ms
    // later (datasheet, "Divider Control"), UIP rising 244 us before it.
    // Sleep until shortly before, then watch register A rise and fall.
    write(REGISTER_A, A_DIVIDER_32K | rate);
    let released = rdtsc();
    pit::sleep_until(machine, tsc, released + tsc.ticks_from_us(WAKE_US));
    let (mut rose, mut fell) = (None, None);
    let (window, _) = clock::poll(tsc.ticks_from_us(WATCH_US), false, || {
        let up = read(REGISTER_A) & A_UIP != 0;
        let now = rdtsc();
        match (rose, up) {
            (None, true) => rose = Some(now),
            (Some(_), false) => fell = Some(now),
            _ => {}
        }
        fell.is_some()
    });
    let rose = rose?;
    let seconds_after = decode(read(SECONDS), binary);
    let c = read(REGISTER_C);
    let d = read(REGISTER_D);
    let timed = window.longest_gap <= tsc.ticks_from_us(AWAY_US);
    let timing = match fell {
        Some(fell) if timed => {
            let uip_us = tsc.us_from_ticks(fell - rose);
            let update_ms = tsc.us_from_ticks(fell - released) / 1000;
            let ok = uip_us <= UIP_MAX_US && (450..=550).contains(&update_ms);
            (
                ok,
                text!(
                    "UIP up {uip_us} us, the update {update_ms} ms after the divider reset (~500)"
                ),
            )
        }
        Some(_) => (
            true,
            text!("UIP seen up, then down (the CPU was away meanwhile: not timed)"),
        ),
        None => (false, text!("UIP still up {} ms later", WATCH_US / 1000)),
    };
    let ok = timing.0
        && seconds_after == (seconds_before + 1) % 60
        && c & C_UF != 0
        && d & D_VRT != 0
        && b & B_SET == 0;
    Some(Outcome::check(
        ok,
        text!(
            "{}; seconds {seconds_before} -> {seconds_after}; C {c:#04x} (UF), D {d:#04x} (VRT)",
            timing.1
        ),
    ))
}

/// rtc-update-uip: after a divider reset, the update cycle comes about
/// 500 ms later with UIP seen set, then clear, the seconds advanced by one
/// and the update-ended flag set in register C; register D says the time
/// is valid.
pub fn probe_update(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    if read(REGISTER_A) & A_DIVIDER_MASK != A_DIVIDER_32K {
        return fail!(
            "register A's divider is not the 32.768 kHz time base: {:#04x}",
            read(REGISTER_A)
        );
    }
    clock::retry(UPDATE_ATTEMPTS, || watch_update(machine, tsc)).unwrap_or_else(|| {
        fail!(
            "UIP never seen up in {UPDATE_ATTEMPTS} update cycles (watched from {} to {} ms after the divider reset)",
            WAKE_US / 1000,
            (WAKE_US + WATCH_US) / 1000
        )
    })
}
