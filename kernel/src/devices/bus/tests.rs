//! Tests of the port and MMIO buses with probe devices that record what
//! reaches them.

use super::*;
use crate::devices::testing::Recorder;
use std::vec::Vec;

/// Records what it sees; reads return a tag and the offset.
#[derive(Debug, Default)]
struct Probe {
    tag: u32,
    seen: Vec<(u64, u8, Option<u64>)>,
}

impl Probe {
    fn tagged(tag: u32) -> Probe {
        Probe {
            tag,
            seen: Vec::new(),
        }
    }
}

impl PortDevice for Probe {
    fn read(&mut self, offset: u16, size: AccessSize, _cx: &mut DeviceContext) -> u32 {
        self.seen.push((offset.into(), size.bytes(), None));
        // Deliberately sets bits above the access size: the bus masks.
        0xdead_0000 | (self.tag << 8) | u32::from(offset)
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, _cx: &mut DeviceContext) {
        self.seen
            .push((offset.into(), size.bytes(), Some(value.into())));
    }
}

impl MmioDevice for Probe {
    fn read(&mut self, offset: u64, size: MmioSize, _cx: &mut DeviceContext) -> u64 {
        self.seen.push((offset, size.bytes(), None));
        0xdead_beef_0000_0000 | u64::from(self.tag << 8) | offset
    }

    fn write(&mut self, offset: u64, size: MmioSize, value: u64, _cx: &mut DeviceContext) {
        self.seen.push((offset, size.bytes(), Some(value)));
    }
}

#[test]
fn port_accesses_reach_the_claiming_device_at_its_offset() {
    let mut rec = Recorder::default();
    let mut bus = PortBus::new();
    let com1 = bus.add(0x3f8, 8, Probe::tagged(1)).unwrap();
    let pic = bus.add(0x20, 2, Probe::tagged(2)).unwrap();
    assert_eq!(bus.read(0x3fd, AccessSize::Byte, &mut rec.cx()), 0x05);
    assert_eq!(bus.read(0x21, AccessSize::Word, &mut rec.cx()), 0x0201);
    bus.write(0x3f8, AccessSize::Byte, 0x41, &mut rec.cx());
    assert_eq!(
        bus.device(com1).unwrap().seen,
        [(5, 1, None), (0, 1, Some(0x41))]
    );
    assert_eq!(bus.device(pic).unwrap().seen, [(1, 2, None)]);
    assert_eq!(bus.unclaimed(), UnclaimedAccesses::default());
}

#[test]
fn unclaimed_ports_read_all_ones_and_drop_writes_and_are_counted() {
    let mut rec = Recorder::default();
    let mut bus: PortBus<Probe> = PortBus::new();
    bus.add(0x3f8, 8, Probe::default()).unwrap();
    assert_eq!(bus.read(0x80, AccessSize::Byte, &mut rec.cx()), 0xff);
    assert_eq!(bus.read(0x3f7, AccessSize::Word, &mut rec.cx()), 0xffff);
    assert_eq!(
        bus.read(0x400, AccessSize::Dword, &mut rec.cx()),
        0xffff_ffff
    );
    bus.write(0x3f0, AccessSize::Byte, 1, &mut rec.cx());
    let unclaimed = bus.unclaimed();
    assert_eq!((unclaimed.reads, unclaimed.writes), (3, 1));
    assert_eq!(unclaimed.last, Some(0x3f0));
    assert!(bus.device(DeviceId(0)).unwrap().seen.is_empty());
}

#[test]
fn overlapping_port_ranges_are_refused_and_the_bus_is_unchanged() {
    let mut bus = PortBus::new();
    bus.add(0x3f8, 8, Probe::default()).unwrap();
    bus.add(0x2f8, 8, Probe::default()).unwrap();
    let cases = [
        (0x3f0, 9),
        (0x3ff, 1),
        (0x3fa, 2),
        (0x3f0, 0x20),
        (0x2fc, 0x100),
    ];
    for (first, count) in cases {
        match bus.add(first, count, Probe::default()) {
            Err(BusError::Overlap { first: f, .. }) => assert_eq!(f, first.into()),
            other => panic!("{first:#x}+{count}: {other:?}"),
        }
    }
    assert_eq!(
        bus.add(0x3fc, 2, Probe::default()),
        Err(BusError::Overlap {
            first: 0x3fc,
            last: 0x3fd,
            claimed_first: 0x3f8,
            claimed_last: 0x3ff
        })
    );
    // Neighbours that touch without overlapping are fine.
    bus.add(0x3f0, 8, Probe::default()).unwrap();
    bus.add(0x400, 1, Probe::default()).unwrap();
    assert_eq!(bus.claims.devices.len(), 4, "refused devices are not kept");
    assert_eq!(bus.claimant(0x3f7), Some(DeviceId(2)));
    assert_eq!(bus.claimant(0x3f8), Some(DeviceId(0)));
    assert_eq!(bus.claimant(0x400), Some(DeviceId(3)));
    assert_eq!(bus.claimant(0x401), None);
}

#[test]
fn empty_and_wrapping_port_ranges_are_refused() {
    let mut bus = PortBus::new();
    assert_eq!(
        bus.add(0x10, 0, Probe::default()),
        Err(BusError::EmptyRange { first: 0x10 })
    );
    assert_eq!(
        bus.add(0xfff0, 0x11, Probe::default()),
        Err(BusError::RangeWraps {
            first: 0xfff0,
            count: 0x11
        })
    );
    // The very last port can be claimed.
    let id = bus.add(0xfff0, 0x10, Probe::default()).unwrap();
    assert_eq!(bus.claimant(0xffff), Some(id));
}

#[test]
fn a_straddling_access_goes_whole_to_the_device_of_its_first_port() {
    let mut rec = Recorder::default();
    let mut bus = PortBus::new();
    let low = bus.add(0x60, 4, Probe::tagged(1)).unwrap();
    let high = bus.add(0x64, 4, Probe::tagged(2)).unwrap();
    assert_eq!(
        bus.read(0x63, AccessSize::Dword, &mut rec.cx()),
        0xdead_0103
    );
    bus.write(0x62, AccessSize::Dword, 0x1234_5678, &mut rec.cx());
    assert_eq!(
        bus.device(low).unwrap().seen,
        [(3, 4, None), (2, 4, Some(0x1234_5678))]
    );
    assert!(bus.device(high).unwrap().seen.is_empty());
    // An access starting just before a device is unclaimed, whole.
    assert_eq!(bus.read(0x5f, AccessSize::Word, &mut rec.cx()), 0xffff);
    assert_eq!(bus.unclaimed().last, Some(0x5f));
}

#[test]
fn a_device_with_several_ranges_sees_offsets_from_its_base() {
    let mut rec = Recorder::default();
    let mut bus = PortBus::new();
    let pit = bus.add(0x40, 4, Probe::default()).unwrap();
    bus.add_range(pit, 0x61, 1).unwrap();
    assert_eq!(
        bus.add_range(pit, 0x43, 1),
        Err(BusError::Overlap {
            first: 0x43,
            last: 0x43,
            claimed_first: 0x40,
            claimed_last: 0x43
        })
    );
    assert_eq!(
        bus.add_range(DeviceId(7), 0x70, 2),
        Err(BusError::UnknownDevice(DeviceId(7)))
    );
    bus.write(0x61, AccessSize::Byte, 3, &mut rec.cx());
    assert_eq!(bus.device(pit).unwrap().seen, [(0x21, 1, Some(3))]);
    assert_eq!(bus.claimant(0x60), None);
}

#[test]
fn lookup_finds_every_port_of_many_ranges() {
    let mut bus = PortBus::new();
    // Registered out of order; the table keeps them sorted.
    let firsts = [0x3f8u16, 0x20, 0x70, 0xa0, 0x40, 0x2f8, 0x4d0, 0x510, 0xf4];
    let ids: Vec<_> = firsts
        .iter()
        .map(|&first| bus.add(first, 2, Probe::default()).unwrap())
        .collect();
    for (&first, &id) in firsts.iter().zip(&ids) {
        assert_eq!(bus.claimant(first), Some(id));
        assert_eq!(bus.claimant(first + 1), Some(id));
        assert_eq!(bus.claimant(first + 2), None);
        assert_eq!(bus.claimant(first - 1), None);
    }
    assert_eq!(bus.claimant(0), None);
    assert_eq!(bus.claimant(u16::MAX), None);
}

#[test]
fn device_mut_reaches_a_device_outside_an_access() {
    let mut bus = PortBus::new();
    let id = bus.add(0x3f8, 8, Probe::default()).unwrap();
    bus.device_mut(id).unwrap().tag = 9;
    assert_eq!(bus.device(id).unwrap().tag, 9);
    assert!(bus.device(DeviceId(1)).is_none());
}

#[test]
fn mmio_accesses_route_mask_and_count_like_ports() {
    let mut rec = Recorder::default();
    let mut bus = MmioBus::new();
    let ioapic = bus.add(0xfec0_0000, 0x1000, Probe::tagged(1)).unwrap();
    let lapic = bus.add(0xfee0_0000, 0x1000, Probe::tagged(2)).unwrap();
    assert_eq!(
        bus.read(0xfec0_0010, MmioSize::Dword, &mut rec.cx()),
        0x0000_0110
    );
    assert_eq!(
        bus.read(0xfee0_0020, MmioSize::Qword, &mut rec.cx()),
        0xdead_beef_0000_0220
    );
    bus.write(0xfee0_00b0, MmioSize::Dword, 0, &mut rec.cx());
    assert_eq!(bus.device(ioapic).unwrap().seen, [(0x10, 4, None)]);
    assert_eq!(
        bus.device(lapic).unwrap().seen,
        [(0x20, 8, None), (0xb0, 4, Some(0))]
    );
    assert_eq!(bus.read(0xfed0_0000, MmioSize::Word, &mut rec.cx()), 0xffff);
    bus.write(0xfed0_0004, MmioSize::Byte, 1, &mut rec.cx());
    assert_eq!(
        bus.unclaimed(),
        UnclaimedAccesses {
            reads: 1,
            writes: 1,
            last: Some(0xfed0_0004)
        }
    );
    assert!(matches!(
        bus.add(0xfec0_0800, 0x1000, Probe::default()),
        Err(BusError::Overlap { .. })
    ));
    assert_eq!(
        bus.add(u64::MAX, 2, Probe::default()),
        Err(BusError::RangeWraps {
            first: u64::MAX,
            count: 2
        })
    );
    let hpet = bus.add(0xfed0_0000, 0x400, Probe::default()).unwrap();
    bus.add_range(hpet, 0xfed0_1000, 0x10).unwrap();
    assert_eq!(bus.claimant(0xfed0_1008), Some(hpet));
    assert_eq!(bus.claimant(0xfed0_0400), None);
}

#[test]
fn bus_errors_name_the_ranges() {
    let error = BusError::Overlap {
        first: 0x3fc,
        last: 0x3fd,
        claimed_first: 0x3f8,
        claimed_last: 0x3ff,
    };
    assert_eq!(
        std::format!("{error}"),
        "device bus: range 0x3fc-0x3fd overlaps 0x3f8-0x3ff, already claimed"
    );
}
