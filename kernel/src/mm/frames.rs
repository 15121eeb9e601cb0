//! Physical memory: the frame allocator over free RAM and the kernel heap.
//!
//! All RAM is identity-mapped (`arch::paging`), so a physical address is also
//! a pointer; that is what lets [`allocate_zeroed`] clear what it returns.

use crate::mm::page_tables::TableMemory;
use crate::mm::phys::{PhysRange, RangeError, RangeSet};
use spin::Mutex;

/// Fragments the free set can hold; each module or VM splits at most one,
/// and up to 256 of each exist.
const MAX_FREE_RANGES: usize = 1024;

static FREE: Mutex<RangeSet<MAX_FREE_RANGES>> = Mutex::new(RangeSet::new());

#[global_allocator]
static HEAP: buddy_system_allocator::LockedHeap<33> = buddy_system_allocator::LockedHeap::empty();

/// Installs the free set computed at boot.
pub fn init(free: RangeSet<MAX_FREE_RANGES>) {
    *FREE.lock() = free;
}

/// The capacity of the free set, for `free_frames`.
pub const FREE_SET_CAPACITY: usize = MAX_FREE_RANGES;

/// Takes `size` bytes aligned to `align` ending at or below `limit`, zeroed.
pub fn allocate_zeroed_below(size: u64, align: u64, limit: u64) -> Result<PhysRange, RangeError> {
    let range = FREE.lock().allocate(size, align, limit)?;
    // SAFETY: the range was free RAM, is identity-mapped writable, and now
    // belongs to the caller alone.
    unsafe { core::ptr::write_bytes(range.start as *mut u8, 0, range.len() as usize) };
    Ok(range)
}

/// Takes `size` bytes aligned to `align`, zeroed.
pub fn allocate_zeroed(size: u64, align: u64) -> Result<PhysRange, RangeError> {
    allocate_zeroed_below(size, align, u64::MAX)
}

/// Gives a range back.
pub fn free(range: PhysRange) {
    // Only fails when fragmentation exceeds the capacity; the range then
    // stays allocated, which leaks it but never corrupts anything.
    if FREE.lock().insert(range).is_err() {
        log::warn!("memory: {} not returned (free set full)", range);
    }
}

/// Bytes free now.
pub fn free_bytes() -> u64 {
    FREE.lock().total()
}

/// Gives the heap its memory.
pub fn init_heap(size: u64) -> Result<PhysRange, RangeError> {
    let range = allocate_zeroed(size, 4096)?;
    // SAFETY: the range is free RAM, identity-mapped, owned by the heap from
    // now on.
    unsafe {
        HEAP.lock().init(range.start as usize, range.len() as usize);
    }
    Ok(range)
}

/// Page-table memory for `PageTables`, taken from the frame allocator.
pub struct FrameTables {
    /// Tables must lie below this address (reachable by the current mapping).
    limit: u64,
    /// The frames handed out, so that [`TableMemory::table`] can refuse any
    /// other address.
    tables: alloc::vec::Vec<u64>,
}

impl FrameTables {
    /// Table memory whose frames all lie below `limit`.
    pub fn below(limit: u64) -> FrameTables {
        FrameTables {
            limit,
            tables: alloc::vec::Vec::new(),
        }
    }
}

impl TableMemory for FrameTables {
    fn allocate_table(&mut self) -> Option<u64> {
        let frame = allocate_zeroed_below(4096, 4096, self.limit).ok()?.start;
        self.tables.push(frame);
        Some(frame)
    }

    fn table(&mut self, address: u64) -> &mut [u64; 512] {
        // The trait is safe, so any address may arrive here: only frames
        // this hierarchy allocated may become tables.
        assert!(
            self.tables.contains(&address),
            "{:#x} is not one of the host page-table frames",
            address
        );
        // SAFETY: `address` is a frame `allocate_table` returned (checked
        // above): identity-mapped, page-aligned, owned by this hierarchy;
        // `&mut self` makes the borrow exclusive.
        unsafe { &mut *(address as *mut [u64; 512]) }
    }
}

/// Bytes of the heap in use (what the allocator handed out, rounded to its
/// block sizes).
pub fn heap_bytes_used() -> u64 {
    HEAP.lock().stats_alloc_actual() as u64
}
