//! Per-VM buses: which device decodes which I/O port or guest-physical
//! address, and what happens to an access nobody decodes.
//!
//! This module owns the routing tables and the counts of unclaimed
//! accesses. It does not decode instructions or touch guest registers (the
//! VM core does), and it knows no device's registers.
//!
//! # Static dispatch
//!
//! A bus is generic over its device type, and tessera instantiates it with
//! the closed enums [`AnyPortDevice`](super::AnyPortDevice) and
//! [`AnyMmioDevice`](super::AnyMmioDevice) rather than `Box<dyn PortDevice>`:
//! the set of device models is tessera's own and known at compile time, so
//! an enum costs one predictable `match` on the exit path where a trait
//! object costs an indirect call (retpolined or IBRS-fenced on hosts that
//! need Spectre v2 mitigations) and a heap object per device; the `match`
//! is also exhaustive, so a new device kind cannot be forgotten anywhere it
//! must be handled. Unit tests instantiate the same bus with test devices.
//!
//! # Lookup
//!
//! Ranges are kept sorted by first address, and an access finds its range
//! by binary search: no allocation, O(log n) over the dozen or so ranges of
//! a virtual PC (a 64 K-entry port table would be O(1) but cost 64 KiB or
//! more per VM for no measurable gain at that size). Registration is the
//! only place that allocates.
//!
//! An access that straddles the end of a range (a 4-byte IN at the last
//! port of a device) is routed by its first port, as a whole: the device
//! decides what its bytes past the end read as.

use super::DeviceContext;
use super::{AccessSize, MmioDevice, MmioSize, PortDevice};
use alloc::vec::Vec;
use core::fmt;

/// A device's handle on its bus, returned when it is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(usize);

/// Why a device or range could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// A range of zero ports or bytes.
    EmptyRange {
        /// The range's first address.
        first: u64,
    },
    /// A range that runs past the end of the address space.
    RangeWraps {
        /// The range's first address.
        first: u64,
        /// How many ports or bytes it was to cover.
        count: u64,
    },
    /// A range that overlaps one already claimed.
    Overlap {
        /// The refused range's first address.
        first: u64,
        /// The refused range's last address.
        last: u64,
        /// The first address of the range already claimed.
        claimed_first: u64,
        /// The last address of the range already claimed.
        claimed_last: u64,
    },
    /// A [`DeviceId`] this bus never handed out.
    UnknownDevice(DeviceId),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BusError::EmptyRange { first } => {
                write!(f, "device bus: empty range at {first:#x}")
            }
            BusError::RangeWraps { first, count } => write!(
                f,
                "device bus: range of {count:#x} at {first:#x} runs past the end of the address space"
            ),
            BusError::Overlap {
                first,
                last,
                claimed_first,
                claimed_last,
            } => write!(
                f,
                "device bus: range {first:#x}-{last:#x} overlaps {claimed_first:#x}-{claimed_last:#x}, already claimed"
            ),
            BusError::UnknownDevice(id) => {
                write!(f, "device bus: no device {} on this bus", id.0)
            }
        }
    }
}

/// Accesses no device decoded, for the VM's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnclaimedAccesses<A> {
    /// Reads answered with all ones.
    pub reads: u64,
    /// Writes dropped.
    pub writes: u64,
    /// The address of the latest one, if any.
    pub last: Option<A>,
}

impl<A> Default for UnclaimedAccesses<A> {
    fn default() -> Self {
        UnclaimedAccesses {
            reads: 0,
            writes: 0,
            last: None,
        }
    }
}

/// One claimed range: `first..=last`, decoded by `device`, whose offsets
/// count from `base` (the device's first range, so a device with several
/// ranges sees them at distinct offsets).
#[derive(Debug, Clone, Copy)]
struct Range {
    first: u64,
    last: u64,
    base: u64,
    device: DeviceId,
}

/// Sorted, non-overlapping ranges; shared by both buses.
#[derive(Debug, Default)]
struct RangeTable {
    ranges: Vec<Range>,
}

impl RangeTable {
    /// Checks `first`, `count` against the address space ending at `max`
    /// and the ranges already claimed; returns the insertion index and the
    /// last address.
    fn check(&self, first: u64, count: u64, max: u64) -> Result<(usize, u64), BusError> {
        if count == 0 {
            return Err(BusError::EmptyRange { first });
        }
        let last = first
            .checked_add(count - 1)
            .filter(|&last| last <= max)
            .ok_or(BusError::RangeWraps { first, count })?;
        let index = self.ranges.partition_point(|range| range.first <= first);
        // Only the neighbours can overlap: the ranges are disjoint and sorted.
        let before = index.checked_sub(1).map(|i| self.ranges[i]);
        let after = self.ranges.get(index).copied();
        let clash = before
            .filter(|range| range.last >= first)
            .or(after.filter(|range| range.first <= last));
        match clash {
            Some(range) => Err(BusError::Overlap {
                first,
                last,
                claimed_first: range.first,
                claimed_last: range.last,
            }),
            None => Ok((index, last)),
        }
    }

    fn insert(&mut self, index: usize, range: Range) {
        self.ranges.insert(index, range);
    }

    /// The device decoding `address`, and the offset it sees.
    fn find(&self, address: u64) -> Option<(DeviceId, u64)> {
        let index = self.ranges.partition_point(|range| range.first <= address);
        let range = self.ranges.get(index.checked_sub(1)?)?;
        (address <= range.last).then(|| (range.device, address.wrapping_sub(range.base)))
    }
}

/// A VM's I/O-port bus: routes IN and OUT to the devices that claimed the
/// port.
#[derive(Debug)]
pub struct PortBus<D> {
    devices: Vec<(D, u16)>,
    table: RangeTable,
    unclaimed: UnclaimedAccesses<u16>,
}

impl<D> Default for PortBus<D> {
    fn default() -> Self {
        PortBus {
            devices: Vec::new(),
            table: RangeTable::default(),
            unclaimed: UnclaimedAccesses::default(),
        }
    }
}

impl<D: PortDevice> PortBus<D> {
    /// An empty bus: every port unclaimed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `device` decoding `count` ports from `first`, which becomes its
    /// base port (offset 0).
    pub fn add(&mut self, first: u16, count: u16, device: D) -> Result<DeviceId, BusError> {
        let (index, last) = self
            .table
            .check(first.into(), count.into(), u16::MAX.into())?;
        let id = DeviceId(self.devices.len());
        self.devices.push((device, first));
        self.table.insert(
            index,
            Range {
                first: first.into(),
                last,
                base: first.into(),
                device: id,
            },
        );
        Ok(id)
    }

    /// Adds another range of ports to a device already on the bus (the
    /// PIT's port 0x61 besides 0x40-0x43); it sees them at offsets from its
    /// base port (wrapping, so a range below the base gives large offsets).
    pub fn add_range(&mut self, id: DeviceId, first: u16, count: u16) -> Result<(), BusError> {
        let base = self
            .devices
            .get(id.0)
            .map(|(_, base)| *base)
            .ok_or(BusError::UnknownDevice(id))?;
        let (index, last) = self
            .table
            .check(first.into(), count.into(), u16::MAX.into())?;
        self.table.insert(
            index,
            Range {
                first: first.into(),
                last,
                base: base.into(),
                device: id,
            },
        );
        Ok(())
    }

    /// The device `id`.
    pub fn device(&self, id: DeviceId) -> Option<&D> {
        self.devices.get(id.0).map(|(device, _)| device)
    }

    /// The device `id`, to act on it outside a guest access (console input
    /// into a UART, a timer tick).
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut D> {
        self.devices.get_mut(id.0).map(|(device, _)| device)
    }

    /// The device decoding `port`, if any.
    pub fn claimant(&self, port: u16) -> Option<DeviceId> {
        self.table.find(port.into()).map(|(id, _)| id)
    }

    /// An IN of `size` at `port`. Unclaimed ports read as all ones, as on an
    /// ISA bus where nothing drives the data lines (they are pulled up).
    pub fn read(&mut self, port: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        match self.table.find(port.into()) {
            Some((id, offset)) => {
                let device = &mut self.devices[id.0].0;
                device.read(offset as u16, size, cx) & size.mask()
            }
            None => {
                self.unclaimed.reads += 1;
                self.unclaimed.last = Some(port);
                size.mask()
            }
        }
    }

    /// An OUT of `size` bytes of `value` at `port`. Writes to unclaimed
    /// ports are dropped.
    pub fn write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        match self.table.find(port.into()) {
            Some((id, offset)) => {
                let device = &mut self.devices[id.0].0;
                device.write(offset as u16, size, value & size.mask(), cx);
            }
            None => {
                self.unclaimed.writes += 1;
                self.unclaimed.last = Some(port);
            }
        }
    }

    /// The accesses no device decoded so far.
    pub fn unclaimed(&self) -> UnclaimedAccesses<u16> {
        self.unclaimed
    }
}

/// A VM's MMIO bus: routes reads and writes of guest-physical addresses
/// (EPT violations on addresses with no RAM) to the devices that claimed
/// them.
#[derive(Debug)]
pub struct MmioBus<D> {
    devices: Vec<(D, u64)>,
    table: RangeTable,
    unclaimed: UnclaimedAccesses<u64>,
}

impl<D> Default for MmioBus<D> {
    fn default() -> Self {
        MmioBus {
            devices: Vec::new(),
            table: RangeTable::default(),
            unclaimed: UnclaimedAccesses::default(),
        }
    }
}

impl<D: MmioDevice> MmioBus<D> {
    /// An empty bus: every address unclaimed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `device` decoding `length` bytes from `first`, which becomes its
    /// base address (offset 0).
    pub fn add(&mut self, first: u64, length: u64, device: D) -> Result<DeviceId, BusError> {
        let (index, last) = self.table.check(first, length, u64::MAX)?;
        let id = DeviceId(self.devices.len());
        self.devices.push((device, first));
        self.table.insert(
            index,
            Range {
                first,
                last,
                base: first,
                device: id,
            },
        );
        Ok(id)
    }

    /// Adds another range of addresses to a device already on the bus; it
    /// sees them at offsets from its base address (wrapping).
    pub fn add_range(&mut self, id: DeviceId, first: u64, length: u64) -> Result<(), BusError> {
        let base = self
            .devices
            .get(id.0)
            .map(|(_, base)| *base)
            .ok_or(BusError::UnknownDevice(id))?;
        let (index, last) = self.table.check(first, length, u64::MAX)?;
        self.table.insert(
            index,
            Range {
                first,
                last,
                base,
                device: id,
            },
        );
        Ok(())
    }

    /// The device `id`.
    pub fn device(&self, id: DeviceId) -> Option<&D> {
        self.devices.get(id.0).map(|(device, _)| device)
    }

    /// The device `id`, to act on it outside a guest access.
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut D> {
        self.devices.get_mut(id.0).map(|(device, _)| device)
    }

    /// The device decoding `address`, if any.
    pub fn claimant(&self, address: u64) -> Option<DeviceId> {
        self.table.find(address).map(|(id, _)| id)
    }

    /// A read of `size` at `address`. Unclaimed addresses read as all ones
    /// (what a PC chipset returns for a master abort) and are counted.
    pub fn read(&mut self, address: u64, size: MmioSize, cx: &mut DeviceContext) -> u64 {
        match self.table.find(address) {
            Some((id, offset)) => {
                let device = &mut self.devices[id.0].0;
                device.read(offset, size, cx) & size.mask()
            }
            None => {
                self.unclaimed.reads += 1;
                self.unclaimed.last = Some(address);
                size.mask()
            }
        }
    }

    /// A write of `size` bytes of `value` at `address`. Writes to unclaimed
    /// addresses are dropped and counted.
    pub fn write(&mut self, address: u64, size: MmioSize, value: u64, cx: &mut DeviceContext) {
        match self.table.find(address) {
            Some((id, offset)) => {
                let device = &mut self.devices[id.0].0;
                device.write(offset, size, value & size.mask(), cx);
            }
            None => {
                self.unclaimed.writes += 1;
                self.unclaimed.last = Some(address);
            }
        }
    }

    /// The accesses no device decoded so far.
    pub fn unclaimed(&self) -> UnclaimedAccesses<u64> {
        self.unclaimed
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(bus.devices.len(), 4, "refused devices are not kept");
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
}
