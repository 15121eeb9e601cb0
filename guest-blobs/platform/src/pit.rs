//! The 8254 PIT (Intel 8254 datasheet): channel 0 on IRQ 0, the
//! read-back command, one-shot sleeps; and its probes.

use crate::clock::{self, Tsc};
use crate::interrupts::{self, vector};
use crate::report::Outcome;
use crate::x86::{inb, outb, rdtsc, sti_hlt_cli};
use crate::{apic, fail, pic, text, Machine};

/// The input clock: 1.193182 MHz.
pub const HZ: u64 = 1_193_182;
/// 1 ms of it.
pub const COUNT_1MS: u16 = 1193;
/// Channel 0's line on the 8259A (and ISA IRQ 0 for the I/O APIC).
pub const IRQ: u8 = 0;
/// Ports.
pub const CHANNEL_0_DATA: u16 = 0x40;
pub const CHANNEL_2_DATA: u16 = 0x42;
pub const COMMAND: u16 = 0x43;
/// Control word fields (datasheet, "Control Word Format").
pub const CHANNEL_0: u8 = 0b00 << 6;
pub const CHANNEL_2: u8 = 0b10 << 6;
pub const ACCESS_LOW_HIGH: u8 = 0b11 << 4;
pub const MODE_0: u8 = 0b000 << 1;
pub const MODE_2: u8 = 0b010 << 1;
/// Read-back: 11, /COUNT, /STATUS, then a channel bit map (bit 1 = ch. 0).
const READ_BACK_STATUS_0: u8 = 0b1110_0010;
const READ_BACK_COUNT_0: u8 = 0b1101_0010;
/// Counter latch command for channel 0: channel 0, access 00.
const LATCH_0: u8 = 0;
/// The nominal period of channel 0 at `COUNT_1MS`, in ns.
pub const PERIOD_1MS_NS: u64 = COUNT_1MS as u64 * 1_000_000_000 / HZ;

/// Channel 0 in mode 2 (rate generator): an IRQ 0 edge every `count` cycles.
pub fn periodic(count: u16) {
    outb(COMMAND, CHANNEL_0 | ACCESS_LOW_HIGH | MODE_2);
    outb(CHANNEL_0_DATA, count as u8);
    outb(CHANNEL_0_DATA, (count >> 8) as u8);
}

/// Channel 0 in mode 0: OUT (IRQ 0) rises once, `count` cycles from now.
pub fn one_shot(count: u16) {
    outb(COMMAND, CHANNEL_0 | ACCESS_LOW_HIGH | MODE_0);
    outb(CHANNEL_0_DATA, count as u8);
    outb(CHANNEL_0_DATA, (count >> 8) as u8);
}

/// Stops channel 0: a mode 0 control word sets OUT low and holds the
/// counter until a count is written (datasheet, "Write Operations").
pub fn stop() {
    outb(COMMAND, CHANNEL_0 | ACCESS_LOW_HIGH | MODE_0);
}

fn read_count_bytes() -> u16 {
    u16::from(inb(CHANNEL_0_DATA)) | u16::from(inb(CHANNEL_0_DATA)) << 8
}

/// pit-readback: channel 0's status byte through the read-back command
/// (mode 2, low/high access, binary, count loaded) and its count through
/// the counter latch and the read-back command, inside 1..=reload and
/// moving.
pub fn probe_read_back(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    let reload = COUNT_1MS * 50;
    periodic(reload);
    tsc.delay_us(100);
    outb(COMMAND, READ_BACK_STATUS_0);
    let status = inb(CHANNEL_0_DATA);
    outb(COMMAND, LATCH_0);
    let first = read_count_bytes();
    tsc.delay_us(200);
    outb(COMMAND, READ_BACK_COUNT_0);
    let second = read_count_bytes();
    stop();
    // Status: bit 7 OUT, bit 6 null count, 5:4 access, 3:1 mode, 0 BCD.
    let expected_status = ACCESS_LOW_HIGH | MODE_2;
    let in_range = |count: u16| (1..=reload).contains(&count);
    let ok =
        status & 0x7f == expected_status && in_range(first) && in_range(second) && first != second;
    Outcome::check(
        ok,
        text!(
            "status {status:#04x} (null count clear, low/high, mode 2, binary: {expected_status:#04x} in bits 6:0); \
             latched count {first}, 200 us later {second} (reload {reload})"
        ),
    )
}

/// pit-pic-irq0: channel 0 in mode 2 at 1 kHz, through the 8259A's IRQ 0,
/// ticks every 1 ms with the ISR bit set in the handler and cleared by EOI.
pub fn probe_through_pic(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    pic::only(IRQ);
    periodic(COUNT_1MS);
    let capture = clock::capture_periodic(tsc, 5000, PERIOD_1MS_NS);
    stop();
    pic::set_masks(pic::ALL_MASKED);
    clock::periodic_outcome(
        capture,
        PERIOD_1MS_NS,
        5000,
        format_args!("IRQ 0 on vector {:#x} for 5 ms", vector::PIC_MASTER_BASE),
    )
}

/// Sleeps until the TSC reaches `deadline`: HLT woken by one-shots of
/// channel 0 (at most 50 ms each) if HLT is known to wake, else polling.
pub fn sleep_until(machine: &mut Machine, tsc: Tsc, deadline: u64) {
    machine.quiesce();
    pic::only(IRQ);
    while rdtsc() < deadline {
        let remaining_us = tsc.us_from_ticks(deadline - rdtsc()).max(1);
        let counts = (remaining_us * HZ / 1_000_000).clamp(1, 50 * u64::from(COUNT_1MS));
        let before = interrupts::count(vector::PIC_MASTER_BASE);
        one_shot(counts as u16);
        if machine.hlt_wakes {
            sti_hlt_cli();
        } else {
            clock::poll(tsc.ticks_from_us(remaining_us), true, || {
                interrupts::count(vector::PIC_MASTER_BASE) != before
            });
        }
    }
    stop();
    pic::set_masks(pic::ALL_MASKED);
}

/// hlt-timer-wake: one `sti; hlt` with only a 5 ms one-shot of channel 0
/// armed (IRQ 0 through the 8259A): HLT must end by that interrupt, not
/// before 5 ms and not 2 ms after it — on a hypervisor, even with busy VMs
/// beside this one, the woken vCPU must get the CPU promptly (tessera runs
/// it next, after the running VM's 1 ms minimum); the APIC timer stands by
/// as a watchdog at 100 ms so that a lost interrupt is a failure rather
/// than a hang.
pub fn probe_hlt(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    let Some(apic_hz) = machine.apic_timer_hz else {
        return fail!("needs the APIC timer as a watchdog (lapic-timer-counts-down failed)");
    };
    machine.quiesce();
    pic::only(IRQ);
    let watchdog = (apic_hz / 10).min(u64::from(u32::MAX)) as u32;
    apic::arm_one_shot(vector::WATCHDOG, watchdog);
    let start = rdtsc();
    one_shot(COUNT_1MS * 5);
    sti_hlt_cli();
    let woke = rdtsc();
    let ticks = interrupts::count(vector::PIC_MASTER_BASE);
    let bites = interrupts::count(vector::WATCHDOG);
    // One-shot: OUT stays high, no second edge within another 2 ms.
    clock::poll(tsc.ticks_from_us(2000), true, || false);
    let ticks_after = interrupts::count(vector::PIC_MASTER_BASE);
    apic::stop_timer();
    stop();
    pic::set_masks(pic::ALL_MASKED);
    let slept_us = tsc.us_from_ticks(woke - start);
    let ok = ticks == 1 && bites == 0 && ticks_after == 1 && (4500..=7000).contains(&slept_us);
    if ok {
        machine.hlt_wakes = true;
    }
    Outcome::check(
        ok,
        text!(
            "HLT woke after {slept_us} us (5 ms one-shot: 4.5..7 ms) by {ticks} IRQ 0 and {bites} watchdog \
             interrupts; {ticks_after} IRQ 0 in all after 2 ms more"
        ),
    )
}
