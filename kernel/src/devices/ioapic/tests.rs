//! Register-level and behavioural tests of the I/O APIC: program it as
//! Linux does through IOREGSEL/IOWIN, drive its pins, check the messages.

use super::*;
use crate::devices::bus::MmioBus;
use crate::devices::irq::InterruptLines;
use crate::devices::lapic::{Lapic, LapicConfig, APIC_BASE_ADDRESS, VERSION as LAPIC_VERSION};
use crate::devices::testing::Recorder;
use crate::devices::AnyMmioDevice;
use std::vec::Vec;

const LEVEL: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;
const ACTIVE_LOW: u32 = 1 << 13;

struct Rig {
    ioapic: Ioapic,
    rec: Recorder,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            ioapic: Ioapic::new(1),
            rec: Recorder::default(),
        }
    }

    fn read(&mut self, register: u8) -> u32 {
        let cx = &mut self.rec.cx();
        self.ioapic
            .write(IOREGSEL, MmioSize::Dword, register.into(), cx);
        self.ioapic.read(IOWIN, MmioSize::Dword, cx) as u32
    }

    fn write(&mut self, register: u8, value: u32) {
        let cx = &mut self.rec.cx();
        self.ioapic
            .write(IOREGSEL, MmioSize::Dword, register.into(), cx);
        self.ioapic.write(IOWIN, MmioSize::Dword, value.into(), cx);
    }

    /// Programs pin `pin`: the low dword, destination APIC `destination`.
    fn route(&mut self, pin: u8, low: u32, destination: u8) {
        self.write(0x11 + 2 * pin, u32::from(destination) << 24);
        self.write(0x10 + 2 * pin, low);
    }

    fn set(&mut self, pin: u8, asserted: bool) -> Vec<InterruptMessage> {
        self.ioapic.set_pin(line(pin), asserted).collect()
    }
}

fn line(pin: u8) -> IrqLine {
    IrqLine::new(pin).unwrap()
}

fn vectors(messages: &[InterruptMessage]) -> Vec<u8> {
    messages.iter().map(|message| message.vector).collect()
}

#[test]
fn id_version_and_arbitration_registers() {
    let mut rig = Rig::new();
    assert_eq!(rig.read(0x00), 1 << 24);
    assert_eq!(rig.read(0x01), 0x0017_0011, "version 0x11, 24 entries");
    assert_eq!(rig.read(0x02), 1 << 24);
    rig.write(0x00, 0x0f00_00ff);
    assert_eq!(rig.read(0x00), 0x0f00_0000, "only bits 27:24");
    rig.write(0x01, 0);
    assert_eq!(rig.read(0x01), VERSION, "read-only");
    assert_eq!(rig.read(0x40), 0, "past the table");
}

#[test]
fn ioregsel_reads_back_and_odd_accesses_are_dropped() {
    let mut rig = Rig::new();
    let cx = &mut rig.rec.cx();
    rig.ioapic.write(IOREGSEL, MmioSize::Byte, 0x12, cx);
    assert_eq!(rig.ioapic.read(IOREGSEL, MmioSize::Dword, cx), 0x12);
    assert_eq!(rig.ioapic.read(IOWIN, MmioSize::Byte, cx), 0);
    assert_eq!(rig.ioapic.read(0x20, MmioSize::Dword, cx), 0);
}

#[test]
fn redirection_entries_reset_masked_and_read_back() {
    let mut rig = Rig::new();
    for register in 0x10..=0x3f {
        let expected = if register % 2 == 0 { MASKED } else { 0 };
        assert_eq!(rig.read(register), expected, "register {register:#x}");
    }
    rig.route(5, 0x0000_a931 | ACTIVE_LOW | MASKED, 0x03);
    assert_eq!(rig.read(0x1a), 0x0000_a931 | ACTIVE_LOW | MASKED);
    assert_eq!(rig.read(0x1b), 0x0300_0000);
    assert_eq!(
        rig.ioapic.redirection_entry(line(5)),
        0x0300_0000_0001_a931 | u64::from(ACTIVE_LOW)
    );
}

#[test]
fn delivery_status_remote_irr_and_reserved_bits_are_read_only() {
    let mut rig = Rig::new();
    rig.write(0x10, 0xfffe_ffff);
    assert_eq!(rig.read(0x10), 0x0000_afff, "bits 12, 14 and 31:17 read 0");
    rig.write(0x11, 0x00ff_ffff);
    assert_eq!(rig.read(0x11), 0, "bits 55:32 reserved");
}

#[test]
fn edge_pins_fire_on_rising_edges_only() {
    let mut rig = Rig::new();
    rig.route(4, 0x34, 0);
    let fired = rig.set(4, true);
    assert_eq!(
        fired,
        [InterruptMessage {
            pin: line(4),
            vector: 0x34,
            delivery_mode: DeliveryMode::Fixed,
            destination: 0,
            logical_destination: false,
            level_triggered: false,
        }]
    );
    assert!(rig.set(4, true).is_empty(), "still high: no new edge");
    assert!(rig.set(4, false).is_empty());
    assert_eq!(vectors(&rig.set(4, true)), [0x34]);
    assert!(!rig.ioapic.remote_irr(line(4)), "edges set no remote IRR");
}

#[test]
fn masked_edges_are_lost() {
    let mut rig = Rig::new();
    rig.route(4, 0x34 | MASKED, 0);
    assert!(rig.set(4, true).is_empty());
    rig.route(4, 0x34, 0);
    assert!(
        rig.ioapic.take_messages().is_empty(),
        "unmasking an edge pin sends nothing"
    );
}

#[test]
fn level_pins_wait_for_the_eoi_and_refire_while_asserted() {
    let mut rig = Rig::new();
    rig.route(10, LEVEL | ACTIVE_LOW | 0x3a, 0);
    let fired = rig.set(10, true);
    assert_eq!(vectors(&fired), [0x3a]);
    assert!(fired[0].level_triggered);
    assert!(rig.ioapic.remote_irr(line(10)));
    assert_eq!(rig.read(0x24) & (1 << 14), 1 << 14, "remote IRR visible");
    assert!(rig.set(10, true).is_empty(), "remote IRR holds it");
    assert!(rig.ioapic.end_of_interrupt(0x3b).is_empty(), "other vector");
    assert!(rig.ioapic.remote_irr(line(10)));
    // Still asserted at the EOI: sent again.
    assert_eq!(
        vectors(&rig.ioapic.end_of_interrupt(0x3a).collect::<Vec<_>>()),
        [0x3a]
    );
    assert!(rig.ioapic.remote_irr(line(10)));
    // Deasserted before the EOI: remote IRR clears, nothing is sent.
    rig.set(10, false);
    assert!(rig.ioapic.end_of_interrupt(0x3a).is_empty());
    assert!(!rig.ioapic.remote_irr(line(10)));
}

#[test]
fn unmasking_an_asserted_level_pin_fires_it() {
    let mut rig = Rig::new();
    rig.route(11, LEVEL | MASKED | 0x3b, 0);
    assert!(rig.set(11, true).is_empty());
    rig.route(11, LEVEL | 0x3b, 0);
    let waiting = rig.read(0x26);
    assert_eq!(
        waiting & (1 << 12),
        1 << 12,
        "delivery status while waiting"
    );
    assert_eq!(
        vectors(&rig.ioapic.take_messages().collect::<Vec<_>>()),
        [0x3b]
    );
    assert_eq!(rig.read(0x26) & (1 << 12), 0);
    assert!(rig.ioapic.remote_irr(line(11)));
}

#[test]
fn switching_a_pin_to_edge_clears_remote_irr() {
    let mut rig = Rig::new();
    rig.route(9, LEVEL | 0x39, 0);
    rig.set(9, true);
    assert!(rig.ioapic.remote_irr(line(9)));
    // Linux's EOI for I/O APICs without an EOI register.
    rig.route(9, MASKED | 0x39, 0);
    assert!(!rig.ioapic.remote_irr(line(9)));
    rig.route(9, LEVEL | 0x39, 0);
    assert_eq!(
        vectors(&rig.ioapic.take_messages().collect::<Vec<_>>()),
        [0x39]
    );
}

#[test]
fn sync_takes_levels_and_pulses_from_the_lines() {
    let mut rig = Rig::new();
    rig.route(0, 0x30, 0);
    rig.route(4, 0x34, 0);
    rig.route(10, LEVEL | 0x3a, 0);
    let mut lines = InterruptLines::new();
    lines.pulse(line(0));
    lines.raise(line(4));
    lines.raise(line(10));
    let edges = lines.take_edges();
    let fired: Vec<_> = rig.ioapic.sync(lines.levels(), edges).collect();
    assert_eq!(vectors(&fired), [0x30, 0x34, 0x3a]);
    assert!(rig
        .ioapic
        .sync(lines.levels(), lines.take_edges())
        .is_empty());
}

#[test]
fn messages_carry_mode_and_destination() {
    let mut rig = Rig::new();
    rig.route(3, (1 << 11) | (0b001 << 8) | 0x33, 0x0f);
    rig.route(2, 0b100 << 8, 0);
    rig.route(1, LEVEL | (0b111 << 8), 0);
    rig.route(6, 0b110 << 8, 0);
    let fired = rig.set(3, true);
    assert_eq!(fired[0].delivery_mode, DeliveryMode::LowestPriority);
    assert!(fired[0].logical_destination);
    assert_eq!(fired[0].destination, 0x0f);
    let nmi = rig.set(2, true);
    assert_eq!(nmi[0].delivery_mode, DeliveryMode::Nmi);
    let extint = rig.set(1, true);
    assert_eq!(extint[0].delivery_mode, DeliveryMode::ExtInt);
    assert!(!extint[0].level_triggered, "ExtINT is edge-only");
    assert!(!rig.ioapic.remote_irr(line(1)));
    assert!(rig.set(6, true).is_empty(), "reserved mode sends nothing");
}

#[test]
fn ioapic_to_lapic_round_trip_for_a_level_interrupt() {
    let mut rig = Rig::new();
    let mut lapic = Lapic::new(LapicConfig {
        apic_id: 0,
        timer_hz: 25_000_000,
        tsc_hz: 2_000_000_000,
        bootstrap_processor: true,
        x2apic: false,
    });
    let cx = &mut rig.rec.cx();
    lapic.write(0xf0, MmioSize::Dword, 0x1ff, cx);
    rig.route(10, LEVEL | 0x4a, 0);
    for message in rig.ioapic.set_pin(line(10), true) {
        assert!(lapic.accept(message.vector, message.level_triggered));
    }
    let vector = lapic.pending().unwrap();
    lapic.acknowledge(vector);
    // The guest's handler quiets the device, then EOIs.
    rig.ioapic.set_pin(line(10), false);
    lapic.write(0xb0, MmioSize::Dword, 0, &mut rig.rec.cx());
    let eoi = lapic.take_level_eoi().unwrap();
    assert!(rig.ioapic.end_of_interrupt(eoi).is_empty());
    assert!(!rig.ioapic.remote_irr(line(10)));
}

#[test]
fn both_apics_sit_on_the_mmio_bus() {
    let mut bus = MmioBus::new();
    let lapic = Lapic::new(LapicConfig {
        apic_id: 0,
        timer_hz: 25_000_000,
        tsc_hz: 2_000_000_000,
        bootstrap_processor: true,
        x2apic: false,
    });
    bus.add(APIC_BASE_ADDRESS, 0x1000, AnyMmioDevice::Lapic(lapic))
        .unwrap();
    bus.add(
        IOAPIC_BASE_ADDRESS,
        MMIO_LENGTH,
        AnyMmioDevice::Ioapic(Ioapic::new(1)),
    )
    .unwrap();
    let mut rec = Recorder::default();
    let cx = &mut rec.cx();
    assert_eq!(
        bus.read(APIC_BASE_ADDRESS + 0x30, MmioSize::Dword, cx),
        u64::from(LAPIC_VERSION)
    );
    bus.write(IOAPIC_BASE_ADDRESS, MmioSize::Dword, 1, cx);
    assert_eq!(
        bus.read(IOAPIC_BASE_ADDRESS + 0x10, MmioSize::Dword, cx),
        u64::from(VERSION)
    );
}
