//! Test doubles for the firmware builders: guest RAM as one flat buffer
//! that records each write, and an `acpi` crate handler that reads tables
//! out of such a buffer as if it were physical memory.

use crate::loader::GuestMemory;
use ::acpi::{AcpiHandler, PhysicalMapping};
use core::ptr::NonNull;
use std::vec;
use std::vec::Vec;

/// Guest RAM of `size` bytes, all present (tests keep it to a few MiB).
pub struct FlatMemory {
    /// The bytes of guest RAM, guest-physical address = index.
    pub bytes: Vec<u8>,
    /// Every `write` (and so `zero`) access, `(start, length)`.
    pub writes: Vec<(u64, u64)>,
}

impl FlatMemory {
    /// `size` bytes of zeroed guest RAM.
    pub fn new(size: u64) -> Self {
        FlatMemory {
            bytes: vec![0; size as usize],
            writes: Vec::new(),
        }
    }

    /// The `length` bytes at `gpa`.
    pub fn read(&self, gpa: u64, length: usize) -> &[u8] {
        &self.bytes[gpa as usize..gpa as usize + length]
    }

    /// The little-endian `u16` at `gpa`.
    pub fn read_u16(&self, gpa: u64) -> u16 {
        u16::from_le_bytes(self.read(gpa, 2).try_into().unwrap())
    }

    /// An `acpi` handler over this RAM.
    pub fn handler(&self) -> PhysicalRam<'_> {
        PhysicalRam { ram: &self.bytes }
    }
}

impl GuestMemory for FlatMemory {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) {
        let start = gpa as usize;
        assert!(
            start + bytes.len() <= self.bytes.len(),
            "write {:#x}+{:#x} outside guest RAM",
            gpa,
            bytes.len()
        );
        self.writes.push((gpa, bytes.len() as u64));
        self.bytes[start..start + bytes.len()].copy_from_slice(bytes);
    }

    fn table(&mut self, gpa: u64) -> &mut [u64; 512] {
        panic!("the firmware builds no page tables (asked for {:#x})", gpa)
    }
}

/// Physical memory for the `acpi` crate: a guest-physical address is an
/// index into the borrowed RAM, and nothing needs unmapping.
#[derive(Clone, Copy)]
pub struct PhysicalRam<'r> {
    ram: &'r [u8],
}

impl AcpiHandler for PhysicalRam<'_> {
    unsafe fn map_physical_region<T>(
        &self,
        address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        assert!(
            address
                .checked_add(size)
                .is_some_and(|end| end <= self.ram.len()),
            "the acpi crate read {:#x}+{:#x}, outside guest RAM",
            address,
            size
        );
        let pointer = NonNull::from(&self.ram[address]).cast::<T>();
        // SAFETY: `[address, address + size)` lies inside the borrowed RAM,
        // which outlives the mapping; the crate only reads through it, and
        // its table types are `repr(C, packed)`, so any address is aligned.
        unsafe { PhysicalMapping::new(address, pointer, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}
