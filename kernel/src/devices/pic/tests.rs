//! Register-level tests of the 8259A pair: the guest's port accesses go
//! through a real [`PortBus`] registered as the VM core will register it,
//! and the core's side (lines in, INT and INTA out) is driven directly.

use super::*;
use crate::devices::bus::{DeviceId, PortBus};
use crate::devices::testing::Recorder;

/// A PIC on a port bus at its PC ports.
struct Rig {
    bus: PortBus<Pic>,
    id: DeviceId,
    rec: Recorder,
}

fn line(number: u8) -> IrqLine {
    IrqLine::new(number).unwrap()
}

impl Rig {
    fn new() -> Rig {
        let mut bus = PortBus::new();
        let id = bus.add(PORT_RANGES[0], RANGE_PORTS, Pic::new()).unwrap();
        for &first in &PORT_RANGES[1..] {
            bus.add_range(id, first, RANGE_PORTS).unwrap();
        }
        Rig {
            bus,
            id,
            rec: Recorder::default(),
        }
    }

    /// A PIC initialized as Linux's `init_8259A` does: vectors 0x30 and
    /// 0x38, cascade on IR2, normal EOI, everything then unmasked.
    fn linux() -> Rig {
        let mut rig = Rig::new();
        rig.linux_init(false);
        rig.outb(0x21, 0x00);
        rig.outb(0xa1, 0x00);
        rig
    }

    fn linux_init(&mut self, auto_eoi: bool) {
        let icw4 = if auto_eoi { 0x03 } else { 0x01 };
        self.outb(0x21, 0xff);
        self.outb(0xa1, 0xff);
        self.outb(0x20, 0x11); // ICW1: edge, cascade, ICW4 follows
        self.outb(0x21, 0x30); // ICW2: IR0-7 at 0x30
        self.outb(0x21, 0x04); // ICW3: slave on IR2
        self.outb(0x21, icw4); // ICW4: 8086 mode
        self.outb(0xa0, 0x11);
        self.outb(0xa1, 0x38);
        self.outb(0xa1, 0x02); // ICW3: slave identity 2
        self.outb(0xa1, icw4);
    }

    fn pic(&mut self) -> &mut Pic {
        self.bus.device_mut(self.id).unwrap()
    }

    fn inb(&mut self, port: u16) -> u8 {
        self.bus.read(port, AccessSize::Byte, &mut self.rec.cx()) as u8
    }

    fn outb(&mut self, port: u16, value: u8) {
        self.bus
            .write(port, AccessSize::Byte, value.into(), &mut self.rec.cx());
    }

    fn set(&mut self, irq: u8, high: bool) {
        self.pic().set_line(line(irq), high);
    }

    /// A rising edge that ends low again (a device pulsing its line).
    fn pulse(&mut self, irq: u8) {
        self.set(irq, true);
        self.set(irq, false);
    }

    fn output(&mut self) -> bool {
        self.pic().output()
    }

    fn ack(&mut self) -> u8 {
        self.pic().acknowledge()
    }

    fn registers(&mut self, chip: u16) -> (u8, u8, u8) {
        self.outb(chip, OCW3 | OCW3_READ_REGISTER);
        let irr = self.inb(chip);
        self.outb(chip, OCW3 | OCW3_READ_REGISTER | OCW3_READ_ISR);
        let isr = self.inb(chip);
        (irr, isr, self.inb(chip + 1))
    }

    fn isr(&mut self, chip: u16) -> u8 {
        self.registers(chip).1
    }

    fn eoi(&mut self, chip: u16) {
        self.outb(chip, 0x20);
    }
}

#[test]
fn an_unprogrammed_pic_reads_back_its_mask_and_requests_nothing() {
    let mut rig = Rig::new();
    assert!(!rig.pic().initialized());
    // Linux's probe_8259A: the IMR reads back what was written.
    rig.outb(0xa1, 0xff);
    rig.outb(0x21, 0xfb);
    assert_eq!(rig.inb(0x21), 0xfb);
    assert_eq!(rig.inb(0xa1), 0xff);
    rig.outb(0x21, 0x00);
    rig.pulse(0);
    assert!(!rig.output(), "no vector base yet: no INT");
    assert!(!rig.pic().initialized());
}

#[test]
fn linux_initialization_sets_vectors_and_cascade() {
    let mut rig = Rig::linux();
    assert!(rig.pic().initialized());
    assert_eq!(rig.registers(0x20), (0, 0, 0));
    rig.pulse(0);
    assert!(rig.output());
    assert_eq!(rig.ack(), 0x30);
    assert_eq!(rig.isr(0x20), 0x01);
    rig.eoi(0x20);
    rig.pulse(9);
    assert_eq!(rig.ack(), 0x39);
    assert_eq!(rig.isr(0x20), 0x04, "the master serves the cascade");
    assert_eq!(rig.isr(0xa0), 0x02);
}

#[test]
fn a_bios_initialization_and_a_sequence_without_icw4() {
    let mut rig = Rig::new();
    // A PC BIOS: 0x08 and 0x70, ICW4 given, then a mask for what it uses.
    for (port, value) in [
        (0x20, 0x11),
        (0x21, 0x08),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xa0, 0x11),
        (0xa1, 0x70),
        (0xa1, 0x02),
        (0xa1, 0x01),
        (0x21, 0xb8),
        (0xa1, 0x8f),
    ] {
        rig.outb(port, value);
    }
    assert_eq!(rig.inb(0x21), 0xb8);
    assert_eq!(rig.inb(0xa1), 0x8f);
    rig.pulse(1);
    assert_eq!(rig.ack(), 0x09);
    rig.eoi(0x20);
    rig.pulse(14);
    assert_eq!(rig.ack(), 0x76);
    // ICW1 without IC4 clears auto-EOI and waits for no ICW4: the next
    // data byte after ICW3 is OCW1.
    rig.outb(0x20, 0x10);
    rig.outb(0x21, 0x08);
    rig.outb(0x21, 0x04);
    rig.outb(0x21, 0x5a);
    assert_eq!(rig.inb(0x21), 0x5a);
    assert_eq!(rig.isr(0x20), 0, "ICW1 leaves nothing in service");
}

#[test]
fn icw1_clears_the_mask_and_needs_a_new_edge() {
    let mut rig = Rig::linux();
    rig.outb(0x21, 0xff);
    rig.set(3, true);
    assert!(!rig.output(), "masked");
    rig.outb(0x20, 0x11);
    assert_eq!(rig.inb(0x21), 0x00, "ICW1 cleared the IMR");
    assert!(!rig.output(), "mid-sequence: no INT");
    rig.outb(0x21, 0x30);
    rig.outb(0x21, 0x04);
    rig.outb(0x21, 0x01);
    assert!(!rig.output(), "the edge sense was reset; IR3 is still high");
    rig.set(3, false);
    rig.set(3, true);
    assert_eq!(rig.ack(), 0x33);
}

#[test]
fn masked_requests_wait_in_the_irr() {
    let mut rig = Rig::linux();
    rig.outb(0x21, 1 << 4);
    rig.pulse(4);
    assert!(!rig.output());
    assert_eq!(rig.registers(0x20).0, 1 << 4);
    rig.outb(0x21, 0);
    assert!(rig.output());
    assert_eq!(rig.ack(), 0x34);
    assert_eq!(rig.registers(0x20), (0, 1 << 4, 0));
}

#[test]
fn priority_serves_the_lowest_input_first_and_nests_higher_ones() {
    let mut rig = Rig::linux();
    rig.pulse(3);
    rig.pulse(1);
    assert_eq!(rig.ack(), 0x31);
    assert!(!rig.output(), "IR3 is below IR1 in service");
    rig.pulse(0);
    assert!(rig.output(), "IR0 is above IR1");
    assert_eq!(rig.ack(), 0x30);
    assert_eq!(rig.isr(0x20), 0b11);
    rig.eoi(0x20); // non-specific: the highest, IR0
    assert_eq!(rig.isr(0x20), 0b10);
    assert!(!rig.output());
    rig.eoi(0x20);
    assert_eq!(rig.ack(), 0x33);
}

#[test]
fn specific_eoi_clears_only_its_level() {
    let mut rig = Rig::linux();
    rig.pulse(5);
    rig.ack();
    rig.pulse(3);
    rig.ack();
    assert_eq!(rig.isr(0x20), (1 << 5) | (1 << 3));
    rig.outb(0x20, 0x60 | 5);
    assert_eq!(rig.isr(0x20), 1 << 3);
    rig.outb(0x20, 0x40); // OCW2 0b010: no operation
    assert_eq!(rig.isr(0x20), 1 << 3);
}

#[test]
fn rotation_on_eoi_and_set_priority_move_the_lowest_priority() {
    let mut rig = Rig::linux();
    rig.pulse(4);
    assert_eq!(rig.ack(), 0x34);
    rig.outb(0x20, 0xa0); // rotate on non-specific EOI: IR4 lowest
    assert_eq!(rig.isr(0x20), 0);
    for irq in [4, 6, 1] {
        rig.pulse(irq);
    }
    assert_eq!(rig.ack(), 0x36, "order 5 6 7 0 1 2 3 4");
    rig.outb(0x20, 0xe0 | 6); // rotate on specific EOI: IR6 lowest
    assert_eq!(rig.isr(0x20), 0);
    assert_eq!(rig.ack(), 0x31, "order 7 0 1 2 3 4 5 6");
    rig.outb(0x20, 0x60 | 1);
    rig.outb(0x20, 0xc0 | 3); // set priority: IR3 lowest
    rig.pulse(3);
    assert_eq!(rig.ack(), 0x34, "order 4 5 6 7 0 1 2 3");
    rig.outb(0x20, 0x60 | 4);
    assert_eq!(rig.ack(), 0x33);
    rig.outb(0x20, 0xc0 | 7); // back to IR0 highest
    rig.pulse(7);
    rig.pulse(0);
    assert_eq!(rig.ack(), 0x30, "IR0 above IR3 in service");
    rig.eoi(0x20);
    assert!(!rig.output(), "IR7 below IR3 in service");
    rig.eoi(0x20);
    assert_eq!(rig.ack(), 0x37);
}

#[test]
fn auto_eoi_leaves_nothing_in_service_and_can_rotate() {
    let mut rig = Rig::new();
    rig.linux_init(true);
    rig.outb(0x21, 0);
    rig.outb(0xa1, 0);
    rig.pulse(3);
    rig.pulse(5);
    assert_eq!(rig.ack(), 0x33);
    assert_eq!(rig.isr(0x20), 0);
    assert!(rig.output(), "nothing in service holds IR5 off");
    assert_eq!(rig.ack(), 0x35);
    rig.outb(0x20, 0x80); // rotate in auto-EOI mode
    rig.pulse(1);
    assert_eq!(rig.ack(), 0x31);
    rig.pulse(1);
    rig.pulse(6);
    assert_eq!(rig.ack(), 0x36, "IR1 became the lowest");
    rig.outb(0x20, 0x00); // clear rotate in auto-EOI mode
    assert_eq!(rig.ack(), 0x31);
}

#[test]
fn a_request_withdrawn_before_inta_is_a_spurious_irq_7() {
    let mut rig = Rig::linux();
    rig.outb(0x4d0, 1 << 5);
    rig.set(5, true);
    assert!(rig.output());
    rig.set(5, false);
    assert!(
        !rig.output(),
        "level-triggered: the request followed the line"
    );
    assert_eq!(rig.ack(), 0x37);
    assert_eq!(rig.isr(0x20), 0, "no ISR bit for a spurious IRQ 7");
    // Masked between INT and INTA: the same.
    rig.pulse(4);
    rig.outb(0x21, 1 << 4);
    assert_eq!(rig.ack(), 0x37);
    assert_eq!(rig.isr(0x20), 0);
    assert_eq!(rig.pic().spurious_interrupts(), 2);
    rig.outb(0x21, 0);
    assert_eq!(rig.ack(), 0x34, "the edge waited in the IRR");
}

#[test]
fn a_slave_request_withdrawn_before_inta_is_a_spurious_irq_15() {
    let mut rig = Rig::linux();
    rig.outb(0x4d1, 1 << 2); // IRQ 10 level-triggered
    rig.set(10, true);
    assert!(rig.output());
    rig.set(10, false);
    assert!(rig.output(), "the master latched the slave's edge on IR2");
    assert_eq!(rig.ack(), 0x3f);
    assert_eq!(rig.isr(0xa0), 0, "no ISR bit on the slave");
    assert_eq!(rig.isr(0x20), 1 << 2, "the master serves IR2");
    assert_eq!(rig.pic().spurious_interrupts(), 1);
    rig.pulse(3);
    assert!(!rig.output(), "IR2 in service holds IR3 off until its EOI");
    rig.eoi(0x20);
    assert_eq!(rig.ack(), 0x33);
}

#[test]
fn cascade_through_ir2_serves_slave_requests_in_turn() {
    let mut rig = Rig::linux();
    rig.pulse(12);
    rig.pulse(14);
    assert_eq!(rig.registers(0x20).0, 1 << 2, "the slave's INT on IR2");
    assert_eq!(rig.ack(), 0x3c);
    assert_eq!(rig.isr(0x20), 1 << 2);
    assert_eq!(rig.isr(0xa0), 1 << 4);
    assert!(!rig.output(), "IR14 waits below IR12 in service");
    // Linux's order: the slave first, then the cascade on the master.
    rig.eoi(0xa0);
    assert!(!rig.output(), "IR2 still in service on the master");
    rig.eoi(0x20);
    assert!(rig.output(), "a new edge on IR2 for IR14");
    assert_eq!(rig.ack(), 0x3e);
    rig.eoi(0xa0);
    rig.eoi(0x20);
    assert_eq!(rig.registers(0x20), (0, 0, 0));
    assert_eq!(rig.registers(0xa0), (0, 0, 0));
    assert!(!rig.output());
}

#[test]
fn slave_requests_in_auto_eoi_each_reach_the_master() {
    let mut rig = Rig::new();
    rig.linux_init(true);
    rig.outb(0x21, 0);
    rig.outb(0xa1, 0);
    rig.pulse(8);
    rig.pulse(15);
    assert_eq!(rig.ack(), 0x38);
    assert_eq!(rig.ack(), 0x3f, "not spurious: IRQ 15 itself");
    assert_eq!(rig.pic().spurious_interrupts(), 0);
    assert!(!rig.output());
}

#[test]
fn masking_the_cascade_or_the_slave_input_holds_slave_requests() {
    let mut rig = Rig::linux();
    rig.outb(0x21, 1 << 2);
    rig.pulse(11);
    assert!(!rig.output());
    rig.outb(0x21, 0);
    assert_eq!(rig.ack(), 0x3b);
    rig.eoi(0xa0);
    rig.eoi(0x20);
    rig.outb(0xa1, 1 << 3);
    rig.pulse(11);
    assert!(!rig.output());
    assert_eq!(rig.registers(0xa0), (1 << 3, 0, 1 << 3));
}

#[test]
fn a_master_in_single_mode_answers_ir2_itself() {
    let mut rig = Rig::new();
    rig.outb(0x20, 0x13); // single, ICW4
    rig.outb(0x21, 0x40);
    rig.outb(0x21, 0x01);
    rig.outb(0xa0, 0x13);
    rig.outb(0xa1, 0x48);
    rig.outb(0xa1, 0x01);
    rig.pulse(9);
    assert_eq!(rig.ack(), 0x42, "the slave's INT is just an input");
    assert_eq!(rig.isr(0xa0), 0);
}

#[test]
fn elcr_bits_of_the_fixed_edge_irqs_read_as_zero() {
    let mut rig = Rig::new();
    rig.outb(0x4d0, 0xff);
    rig.outb(0x4d1, 0xff);
    assert_eq!(rig.inb(0x4d0), 0xf8, "IRQ 0, 1, 2 always edge");
    assert_eq!(rig.inb(0x4d1), 0xde, "IRQ 8, 13 always edge");
    let both = rig.bus.read(0x4d0, AccessSize::Word, &mut rig.rec.cx());
    assert_eq!(both, 0xdef8, "a 16-bit read covers both registers");
}

#[test]
fn a_level_triggered_line_requests_again_after_eoi_while_high() {
    let mut rig = Rig::linux();
    rig.outb(0x4d1, 1 << 3); // IRQ 11 level, as for a PCI device
    rig.set(11, true);
    assert_eq!(rig.ack(), 0x3b);
    rig.eoi(0xa0);
    rig.eoi(0x20);
    assert!(rig.output(), "still high: a new request");
    assert_eq!(rig.ack(), 0x3b);
    rig.set(11, false);
    rig.eoi(0xa0);
    rig.eoi(0x20);
    assert!(!rig.output());
    // Turning an input level-triggered while its line is high requests.
    rig.set(6, true);
    assert_eq!(rig.ack(), 0x36);
    rig.eoi(0x20);
    assert!(!rig.output(), "edge-triggered: no new edge");
    rig.outb(0x4d0, 1 << 6);
    assert!(rig.output());
}

#[test]
fn an_edge_triggered_line_held_high_requests_once() {
    let mut rig = Rig::linux();
    rig.set(4, true);
    assert_eq!(rig.ack(), 0x34);
    rig.eoi(0x20);
    assert!(!rig.output());
    rig.set(4, false);
    rig.set(4, true);
    assert_eq!(rig.ack(), 0x34);
}

#[test]
fn sync_lines_takes_pulses_levels_and_fall_rise_pairs() {
    let mut rig = Rig::linux();
    let mut lines = crate::devices::irq::InterruptLines::new();
    lines.pulse(line(0));
    lines.raise(line(4));
    lines.raise(line(2)); // ISA IRQ 2 reaches no input
    lines.raise(line(20)); // an IOAPIC pin
    let edges = lines.take_edges();
    rig.pic().sync_lines(lines.levels(), edges);
    assert_eq!(rig.registers(0x20).0, (1 << 0) | (1 << 4));
    assert_eq!(rig.ack(), 0x30);
    rig.eoi(0x20);
    assert_eq!(rig.ack(), 0x34);
    rig.eoi(0x20);
    // IR4 fell and rose between two samples: still one new request.
    lines.lower(line(4));
    lines.raise(line(4));
    let edges = lines.take_edges();
    rig.pic().sync_lines(lines.levels(), edges);
    assert_eq!(rig.ack(), 0x34);
    rig.eoi(0x20);
    rig.pic().sync_lines(lines.levels(), lines.take_edges());
    assert!(!rig.output(), "held high: no new edge");
}

#[test]
fn ocw3_selects_irr_or_isr_and_the_data_port_reads_the_imr() {
    let mut rig = Rig::linux();
    rig.outb(0x21, 0x80);
    rig.pulse(6);
    rig.pulse(7);
    assert_eq!(rig.inb(0x20), 0xc0, "the IRR after initialization");
    rig.ack();
    rig.outb(0x20, 0x0b);
    assert_eq!(rig.inb(0x20), 0x40, "ISR");
    assert_eq!(rig.inb(0x20), 0x40, "the selection stays");
    assert_eq!(rig.inb(0x21), 0x80, "IMR");
    rig.outb(0x20, 0x08); // RR clear: selection unchanged
    assert_eq!(rig.inb(0x20), 0x40);
    rig.outb(0x20, 0x0a);
    assert_eq!(rig.inb(0x20), 0x80, "IRR");
}

#[test]
fn the_poll_command_acknowledges_through_a_read() {
    let mut rig = Rig::linux();
    rig.outb(0x20, 0x0c);
    assert_eq!(rig.inb(0x20), 0x00, "no request");
    rig.pulse(5);
    rig.pulse(3);
    rig.outb(0x20, 0x0c);
    assert_eq!(rig.inb(0x20), 0x83);
    assert_eq!(rig.inb(0x20), 1 << 5, "the poll is over: the IRR, with IR5");
    assert_eq!(rig.isr(0x20), 1 << 3);
    // Through the cascade: the master says IR2, the slave says which.
    rig.eoi(0x20);
    rig.eoi(0x20);
    rig.pulse(13);
    rig.outb(0x20, 0x0c);
    assert_eq!(rig.inb(0x20), 0x82);
    rig.outb(0xa0, 0x0c);
    assert_eq!(rig.inb(0xa1), 0x85, "either port returns the poll word");
    assert_eq!(rig.isr(0xa0), 1 << 5);
}

#[test]
fn special_mask_mode_lets_lower_levels_in_past_a_masked_one() {
    let mut rig = Rig::linux();
    rig.pulse(1);
    assert_eq!(rig.ack(), 0x31);
    rig.pulse(5);
    assert!(!rig.output());
    rig.outb(0x21, 1 << 1);
    rig.outb(0x20, 0x68); // OCW3: set special mask mode
    assert!(
        rig.output(),
        "IR1 in service is masked: it inhibits nothing"
    );
    assert_eq!(rig.ack(), 0x35);
    rig.outb(0x20, 0x60 | 5);
    rig.outb(0x20, 0x48); // reset special mask mode
    rig.outb(0x21, 0);
    rig.pulse(6);
    assert!(!rig.output(), "IR1 in service inhibits again");
    rig.outb(0x20, 0x60 | 1);
    assert_eq!(rig.ack(), 0x36);
}

#[test]
fn special_fully_nested_mode_lets_a_higher_slave_request_through() {
    let mut rig = Rig::new();
    rig.linux_init(false);
    rig.outb(0x20, 0x11);
    rig.outb(0x21, 0x30);
    rig.outb(0x21, 0x04);
    rig.outb(0x21, 0x11); // ICW4: 8086, special fully nested
    rig.outb(0x21, 0);
    rig.outb(0xa1, 0);
    rig.pulse(12);
    assert_eq!(rig.ack(), 0x3c);
    rig.pulse(9);
    assert!(
        rig.output(),
        "IR2 in service does not hold off its own slave"
    );
    assert_eq!(rig.ack(), 0x39);
    assert_eq!(rig.isr(0xa0), (1 << 4) | (1 << 1));
}

#[test]
fn wide_accesses_split_into_ports_and_strays_read_all_ones() {
    let mut rig = Rig::linux();
    rig.outb(0x21, 0x12);
    rig.pulse(5);
    let word = rig.bus.read(0x20, AccessSize::Word, &mut rig.rec.cx());
    assert_eq!(word, 0x1220);
    let dword = rig.bus.read(0xa0, AccessSize::Dword, &mut rig.rec.cx());
    assert_eq!(dword, 0xffff_0000);
    rig.bus
        .write(0x20, AccessSize::Word, 0x3420, &mut rig.rec.cx());
    assert_eq!(rig.inb(0x21), 0x34, "the high byte went to the IMR");
    assert_eq!(rig.bus.claimant(0x22), None);
}
