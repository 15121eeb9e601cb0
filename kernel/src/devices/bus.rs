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
    /// A port bus holds at most [`MAX_PORT_DEVICES`] devices (its direct
    /// index of the low ports has a byte per port).
    TooManyDevices,
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
            BusError::TooManyDevices => write!(
                f,
                "device bus: a port bus holds at most {MAX_PORT_DEVICES} devices"
            ),
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
    #[inline(always)]
    fn find(&self, address: u64) -> Option<(DeviceId, u64)> {
        // Outside the claimed span altogether (port 0x80 and the other
        // probes of a booting PC, mostly): answered without the search.
        let (lowest, highest) = (self.ranges.first()?, self.ranges.last()?);
        if address < lowest.first || address > highest.last {
            return None;
        }
        let index = self.ranges.partition_point(|range| range.first <= address);
        let range = self.ranges.get(index.checked_sub(1)?)?;
        (address <= range.last).then(|| (range.device, address.wrapping_sub(range.base)))
    }
}

/// What both buses share: the devices, the ranges they claimed, and the
/// count of accesses nobody claimed. Addresses are `u64` inside; the buses
/// give them their width.
#[derive(Debug)]
struct Claims<D, A> {
    devices: Vec<(D, u64)>,
    table: RangeTable,
    unclaimed: UnclaimedAccesses<A>,
}

impl<D, A> Default for Claims<D, A> {
    fn default() -> Self {
        Claims {
            devices: Vec::new(),
            table: RangeTable::default(),
            unclaimed: UnclaimedAccesses::default(),
        }
    }
}

impl<D, A: Copy> Claims<D, A> {
    /// Adds `device` decoding `count` addresses from `first` (its base,
    /// offset 0) in an address space that ends at `max`.
    fn add(&mut self, first: u64, count: u64, max: u64, device: D) -> Result<DeviceId, BusError> {
        let (index, last) = self.table.check(first, count, max)?;
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

    /// Adds another range to device `id`, seen at offsets from its base
    /// (wrapping, so a range below the base gives large offsets).
    fn add_range(
        &mut self,
        id: DeviceId,
        first: u64,
        count: u64,
        max: u64,
    ) -> Result<(), BusError> {
        let base = self
            .devices
            .get(id.0)
            .map(|(_, base)| *base)
            .ok_or(BusError::UnknownDevice(id))?;
        let (index, last) = self.table.check(first, count, max)?;
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

    fn device(&self, id: DeviceId) -> Option<&D> {
        self.devices.get(id.0).map(|(device, _)| device)
    }

    fn device_mut(&mut self, id: DeviceId) -> Option<&mut D> {
        self.devices.get_mut(id.0).map(|(device, _)| device)
    }

    fn claimant(&self, address: u64) -> Option<DeviceId> {
        self.table.find(address).map(|(id, _)| id)
    }

    /// The device decoding `address` and the offset it sees; `None` counts
    /// an unclaimed read (`write` false) or write.
    #[inline(always)]
    fn route(&mut self, address: u64, shown: A, write: bool) -> Option<(&mut D, u64)> {
        match self.table.find(address) {
            Some((id, offset)) => Some((&mut self.devices[id.0].0, offset)),
            None => {
                self.count_unclaimed(shown, write);
                None
            }
        }
    }

    /// Counts an access nobody decoded.
    #[inline(always)]
    fn count_unclaimed(&mut self, shown: A, write: bool) {
        if write {
            self.unclaimed.writes += 1;
        } else {
            self.unclaimed.reads += 1;
        }
        self.unclaimed.last = Some(shown);
    }
}

/// Ports below this have a direct index: the legacy PC devices (PIC, PIT,
/// keyboard controller, RTC, POST port 0x80) all live there, and guests hit
/// them — the unclaimed ones most of all — far more often than the rest.
const LOW_PORTS: usize = 0x100;

/// The most devices a port bus holds: each low port's index entry is a
/// byte, the device's index + 1.
pub const MAX_PORT_DEVICES: usize = u8::MAX as usize;

/// A VM's I/O-port bus: routes IN and OUT to the devices that claimed the
/// port.
#[derive(Debug)]
pub struct PortBus<D> {
    claims: Claims<D, u16>,
    /// For each port below [`LOW_PORTS`]: the index + 1 of the device that
    /// decodes it, 0 for none. 256 bytes that spare the search for the
    /// ports PC guests touch most.
    low: [u8; LOW_PORTS],
}

impl<D> Default for PortBus<D> {
    fn default() -> Self {
        PortBus {
            claims: Claims::default(),
            low: [0; LOW_PORTS],
        }
    }
}

impl<D: PortDevice> PortBus<D> {
    /// An empty bus: every port unclaimed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus with room for `devices` devices and `ranges` port
    /// ranges in all, so that a fixed platform allocates its tables once,
    /// at their size (a table that grows doubles, and every VM pays for
    /// the slack).
    pub fn with_capacity(devices: usize, ranges: usize) -> Self {
        let mut bus = Self::default();
        bus.claims.devices.reserve_exact(devices);
        bus.claims.table.ranges.reserve_exact(ranges);
        bus
    }

    /// Adds `device` decoding `count` ports from `first`, which becomes its
    /// base port (offset 0).
    pub fn add(&mut self, first: u16, count: u16, device: D) -> Result<DeviceId, BusError> {
        if self.claims.devices.len() >= MAX_PORT_DEVICES {
            return Err(BusError::TooManyDevices);
        }
        let id = self
            .claims
            .add(first.into(), count.into(), u16::MAX.into(), device)?;
        self.index_low(id, first, count);
        Ok(id)
    }

    /// Records `count` ports from `first` in the direct index, as far as it
    /// reaches.
    fn index_low(&mut self, id: DeviceId, first: u16, count: u16) {
        // `add` keeps the index within a byte.
        let entry = (id.0 + 1) as u8;
        let end = (first as usize + count as usize).min(LOW_PORTS);
        for port in first as usize..end {
            self.low[port] = entry;
        }
    }

    /// The device decoding `port` and the offset it sees; `None` counts an
    /// unclaimed read or write.
    #[inline(always)]
    fn route(&mut self, port: u16, write: bool) -> Option<(&mut D, u16)> {
        if (port as usize) < LOW_PORTS {
            return match self.low[port as usize] {
                0 => {
                    self.claims.count_unclaimed(port, write);
                    None
                }
                entry => {
                    let (device, base) = &mut self.claims.devices[entry as usize - 1];
                    Some((device, port.wrapping_sub(*base as u16)))
                }
            };
        }
        self.claims
            .route(port.into(), port, write)
            .map(|(device, offset)| (device, offset as u16))
    }

    /// Adds another range of ports to a device already on the bus (the
    /// PIT's port 0x61 besides 0x40-0x43); it sees them at offsets from its
    /// base port (wrapping, so a range below the base gives large offsets).
    pub fn add_range(&mut self, id: DeviceId, first: u16, count: u16) -> Result<(), BusError> {
        self.claims
            .add_range(id, first.into(), count.into(), u16::MAX.into())?;
        self.index_low(id, first, count);
        Ok(())
    }

    /// The device `id`.
    pub fn device(&self, id: DeviceId) -> Option<&D> {
        self.claims.device(id)
    }

    /// The device `id`, to act on it outside a guest access (console input
    /// into a UART, a timer tick).
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut D> {
        self.claims.device_mut(id)
    }

    /// The device decoding `port`, if any.
    #[inline(always)]
    pub fn claimant(&self, port: u16) -> Option<DeviceId> {
        if (port as usize) < LOW_PORTS {
            return match self.low[port as usize] {
                0 => None,
                entry => Some(DeviceId(entry as usize - 1)),
            };
        }
        self.claims.claimant(port.into())
    }

    /// An IN of `size` at `port`. Unclaimed ports read as all ones, as on an
    /// ISA bus where nothing drives the data lines (they are pulled up).
    #[inline(always)]
    pub fn read(&mut self, port: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        match self.route(port, false) {
            Some((device, offset)) => device.read(offset, size, cx) & size.mask(),
            None => size.mask(),
        }
    }

    /// An OUT of `size` bytes of `value` at `port`. Writes to unclaimed
    /// ports are dropped.
    #[inline(always)]
    pub fn write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        if let Some((device, offset)) = self.route(port, true) {
            device.write(offset, size, value & size.mask(), cx);
        }
    }

    /// The accesses no device decoded so far.
    pub fn unclaimed(&self) -> UnclaimedAccesses<u16> {
        self.claims.unclaimed
    }

    /// Counts an access to `port` that the caller found unclaimed (with
    /// [`PortBus::claimant`]) and answered itself.
    #[inline(always)]
    pub fn count_unclaimed(&mut self, port: u16, write: bool) {
        self.claims.count_unclaimed(port, write);
    }
}

/// A VM's MMIO bus: routes reads and writes of guest-physical addresses
/// (EPT violations on addresses with no RAM) to the devices that claimed
/// them.
#[derive(Debug)]
pub struct MmioBus<D> {
    claims: Claims<D, u64>,
}

impl<D> Default for MmioBus<D> {
    fn default() -> Self {
        MmioBus {
            claims: Claims::default(),
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
        self.claims.add(first, length, u64::MAX, device)
    }

    /// Adds another range of addresses to a device already on the bus; it
    /// sees them at offsets from its base address (wrapping).
    pub fn add_range(&mut self, id: DeviceId, first: u64, length: u64) -> Result<(), BusError> {
        self.claims.add_range(id, first, length, u64::MAX)
    }

    /// The device `id`.
    pub fn device(&self, id: DeviceId) -> Option<&D> {
        self.claims.device(id)
    }

    /// The device `id`, to act on it outside a guest access.
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut D> {
        self.claims.device_mut(id)
    }

    /// The device decoding `address`, if any.
    pub fn claimant(&self, address: u64) -> Option<DeviceId> {
        self.claims.claimant(address)
    }

    /// A read of `size` at `address`. Unclaimed addresses read as all ones
    /// (what a PC chipset returns for a master abort) and are counted.
    pub fn read(&mut self, address: u64, size: MmioSize, cx: &mut DeviceContext) -> u64 {
        match self.claims.route(address, address, false) {
            Some((device, offset)) => device.read(offset, size, cx) & size.mask(),
            None => size.mask(),
        }
    }

    /// A write of `size` bytes of `value` at `address`. Writes to unclaimed
    /// addresses are dropped and counted.
    pub fn write(&mut self, address: u64, size: MmioSize, value: u64, cx: &mut DeviceContext) {
        if let Some((device, offset)) = self.claims.route(address, address, true) {
            device.write(offset, size, value & size.mask(), cx);
        }
    }

    /// The accesses no device decoded so far.
    pub fn unclaimed(&self) -> UnclaimedAccesses<u64> {
        self.claims.unclaimed
    }
}

#[cfg(test)]
mod tests;
