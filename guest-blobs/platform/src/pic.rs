//! The 8259A pair (Intel 8259A datasheet): initialisation, masks, the
//! IRR/ISR reads of OCW3, EOIs; and the probes of what a PC's pair must do.

use crate::clock;
use crate::interrupts::{self, vector};
use crate::report::Outcome;
use crate::x86::{inb, outb};
use crate::{fail, pass, pit, Machine};

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;
/// ICW1: edge triggered, cascaded, ICW4 follows.
const ICW1_INIT: u8 = 0x11;
/// ICW4: 8086/88 mode, normal EOI.
const ICW4_8086: u8 = 0x01;
/// OCW3: the next read of the command port returns IRR / ISR.
const OCW3_READ_IRR: u8 = 0x0a;
const OCW3_READ_ISR: u8 = 0x0b;
/// OCW2: non-specific EOI.
const OCW2_EOI: u8 = 0x20;
/// The slave hangs off the master's IRQ 2.
pub const CASCADE_IRQ: u8 = 2;
/// Every line masked.
pub const ALL_MASKED: u16 = 0xffff;

/// ICW1-ICW4 for both controllers: vectors 0x20 and 0x28, the slave on
/// IRQ 2; then every line masked.
pub fn init() {
    for (command, data, base, cascade) in [
        (
            MASTER_COMMAND,
            MASTER_DATA,
            vector::PIC_MASTER_BASE,
            1 << CASCADE_IRQ,
        ),
        (
            SLAVE_COMMAND,
            SLAVE_DATA,
            vector::PIC_SLAVE_BASE,
            CASCADE_IRQ,
        ),
    ] {
        outb(command, ICW1_INIT);
        outb(data, base);
        outb(data, cascade);
        outb(data, ICW4_8086);
    }
    set_masks(ALL_MASKED);
}

/// IMR of both controllers: bit n masks IRQ n.
pub fn set_masks(mask: u16) {
    outb(MASTER_DATA, mask as u8);
    outb(SLAVE_DATA, (mask >> 8) as u8);
}

/// Both IMRs as read back.
pub fn masks() -> u16 {
    u16::from(inb(MASTER_DATA)) | u16::from(inb(SLAVE_DATA)) << 8
}

/// Masks every line but `irq` (and the cascade when `irq` is on the slave).
pub fn only(irq: u8) {
    let mut mask = ALL_MASKED & !(1 << irq);
    if irq >= 8 {
        mask &= !(1 << CASCADE_IRQ);
    }
    set_masks(mask);
}

fn read_register(ocw3: u8) -> u16 {
    outb(MASTER_COMMAND, ocw3);
    outb(SLAVE_COMMAND, ocw3);
    let value = u16::from(inb(MASTER_COMMAND)) | u16::from(inb(SLAVE_COMMAND)) << 8;
    // Leave IRR selected, the state after initialisation.
    outb(MASTER_COMMAND, OCW3_READ_IRR);
    outb(SLAVE_COMMAND, OCW3_READ_IRR);
    value
}

/// Both interrupt request registers.
pub fn requests() -> u16 {
    read_register(OCW3_READ_IRR)
}

/// Both in-service registers.
pub fn in_service() -> u16 {
    read_register(OCW3_READ_ISR)
}

/// A non-specific EOI for `irq`: to the slave and the master for 8-15.
pub fn eoi(irq: u8) {
    if irq >= 8 {
        outb(SLAVE_COMMAND, OCW2_EOI);
    }
    outb(MASTER_COMMAND, OCW2_EOI);
}

/// pic-imr: the mask registers hold what was written (OCW1).
pub fn probe_masks(_: &mut Machine) -> Outcome {
    let mut wrong = None;
    for pattern in [0xa55a_u16, 0x5aa5, ALL_MASKED] {
        set_masks(pattern);
        let back = masks();
        if back != pattern && wrong.is_none() {
            wrong = Some((pattern, back));
        }
    }
    match wrong {
        None => {
            pass!("IMRs read back 0xa55a, 0x5aa5 and 0xffff (vectors 0x20/0x28, slave on IRQ 2)")
        }
        Some((pattern, back)) => fail!("wrote IMRs {pattern:#06x}, read {back:#06x}"),
    }
}

/// pic-irr-while-masked: a masked line still latches its request in IRR
/// but is not delivered; unmasking delivers it, with its ISR bit set in
/// the handler and cleared by the EOI (8259A datasheet, "Interrupt Mask
/// Register": masking inhibits only the priority resolver's input).
pub fn probe_masked_request(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    set_masks(ALL_MASKED);
    pit::periodic(pit::COUNT_1MS);
    // Interrupts enabled until IRQ 0's request shows in IRR (a period, if
    // the PIT keeps time): nothing may be delivered meanwhile.
    let vector = vector::PIC_MASTER_BASE;
    let (_, latched) = clock::poll(tsc.ticks_from_us(20_000), true, || requests() & 1 != 0);
    let delivered_masked = interrupts::count(vector);
    let irr = requests();
    let isr = in_service();
    only(pit::IRQ);
    clock::poll(tsc.ticks_from_us(20_000), true, || {
        interrupts::count(vector) > 0
    });
    pit::stop();
    set_masks(ALL_MASKED);
    let seen = interrupts::seen();
    let delivered = interrupts::count(vector);
    let ok = latched
        && delivered_masked == 0
        && irr & 1 != 0
        && isr == 0
        && delivered >= 1
        && seen.in_service == delivered
        && seen.cleared_by_eoi == delivered;
    Outcome::check(
        ok,
        crate::text!(
            "masked: {delivered_masked} delivered, IRR {irr:#06x}, ISR {isr:#06x}; unmasked: {delivered} delivered, \
             ISR bit set in {} and clear after EOI in {}",
            seen.in_service,
            seen.cleared_by_eoi
        ),
    )
}
