//! A VM's RAM and the page frames its EPT and bitmaps occupy.

use crate::loader::GuestMemory;
use crate::mm;
use crate::mm::page_tables::TableMemory;
use crate::mm::phys::{PhysRange, RangeError};
use alloc::vec::Vec;

/// Guest RAM: one contiguous host range, guest-physical 0 at its start.
pub struct GuestRam {
    range: PhysRange,
}

impl GuestRam {
    /// Allocates `size` bytes, zeroed, 2 MiB-aligned when large enough for
    /// 2 MiB EPT pages to matter.
    pub fn allocate(size: u64) -> Result<GuestRam, RangeError> {
        let align = if size >= 2 << 20 { 2 << 20 } else { 4096 };
        let range =
            mm::allocate_zeroed(size, align).or_else(|_| mm::allocate_zeroed(size, 4096))?;
        Ok(GuestRam { range })
    }

    /// The host-physical range.
    pub fn range(&self) -> PhysRange {
        self.range
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.range.len()
    }

    /// Panics unless `[address, address + length)` lies inside the RAM,
    /// computed without overflow: callers check guest-supplied ranges with
    /// `hypercall::guest_range` first, so a failure here is a tessera bug,
    /// never a way for a guest to reach memory that is not its own.
    fn check(&self, address: u64, length: u64) {
        // One rule for every guest range, unit-tested against overflow.
        let inside = crate::vmm::hypercall::guest_range(address, length, self.size()).is_some();
        assert!(
            inside,
            "guest RAM access {:#x}+{:#x} outside {:#x} bytes",
            address,
            length,
            self.size()
        );
    }

    /// Clears it (for a restart).
    pub fn clear(&mut self) {
        // SAFETY: the range is this VM's RAM, identity-mapped, and no vCPU
        // of the VM runs while the host clears it.
        unsafe { core::ptr::write_bytes(self.range.start as *mut u8, 0, self.size() as usize) };
    }

    /// `N` bytes at `address`, which the caller checked with
    /// `hypercall::guest_range`.
    pub fn read_array<const N: usize>(&self, address: u64) -> [u8; N] {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.slice(address, N as u64));
        bytes
    }

    /// Writes `bytes` at `address`, which the caller checked.
    pub fn write_bytes(&mut self, address: u64, bytes: &[u8]) {
        self.slice_mut(address, bytes.len() as u64)
            .copy_from_slice(bytes);
    }

    /// The bytes at `[address, address + length)`, which the caller checked
    /// with `hypercall::guest_range`.
    pub fn slice(&self, address: u64, length: u64) -> &[u8] {
        self.check(address, length);
        // SAFETY: inside this VM's RAM (asserted), identity-mapped; the guest
        // does not run while the host looks.
        unsafe {
            core::slice::from_raw_parts((self.range.start + address) as *const u8, length as usize)
        }
    }

    /// The bytes at `[address, address + length)`, writable.
    pub fn slice_mut(&mut self, address: u64, length: u64) -> &mut [u8] {
        self.check(address, length);
        // SAFETY: as for `slice`, and `&mut self` makes it exclusive.
        unsafe {
            core::slice::from_raw_parts_mut(
                (self.range.start + address) as *mut u8,
                length as usize,
            )
        }
    }
}

impl GuestMemory for GuestRam {
    fn size(&self) -> u64 {
        self.range.len()
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) {
        self.slice_mut(gpa, bytes.len() as u64)
            .copy_from_slice(bytes);
    }

    fn table(&mut self, gpa: u64) -> &mut [u64; 512] {
        assert!(gpa.is_multiple_of(4096));
        self.check(gpa, 4096);
        // SAFETY: a page-aligned page inside this VM's RAM (asserted).
        unsafe { &mut *((self.range.start + gpa) as *mut [u64; 512]) }
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        mm::free(self.range);
    }
}

/// Page frames owned by one VM (EPT tables, bitmaps), freed with it.
#[derive(Default)]
pub struct OwnedFrames {
    frames: Vec<PhysRange>,
}

impl OwnedFrames {
    /// A zeroed frame-aligned range of `pages` pages.
    pub fn allocate(&mut self, pages: u64) -> Option<PhysRange> {
        let range = mm::allocate_zeroed(pages * 4096, 4096).ok()?;
        self.frames.push(range);
        Some(range)
    }
}

impl TableMemory for OwnedFrames {
    fn allocate_table(&mut self) -> Option<u64> {
        self.allocate(1).map(|r| r.start)
    }

    fn table(&mut self, address: u64) -> &mut [u64; 512] {
        // The trait is safe, so any address may arrive here: only a page
        // this VM allocated may become a table.
        let owned = self.frames.iter().any(|frame| {
            address.is_multiple_of(4096) && frame.start <= address && address < frame.end
        });
        assert!(owned, "{:#x} is not a page-table frame of this VM", address);
        // SAFETY: `address` is a page of a frame range this VM allocated and
        // owns (checked above), identity-mapped; `&mut self` makes the borrow
        // exclusive.
        unsafe { &mut *(address as *mut [u64; 512]) }
    }
}

impl Drop for OwnedFrames {
    fn drop(&mut self) {
        for frame in self.frames.drain(..) {
            mm::free(frame);
        }
    }
}
