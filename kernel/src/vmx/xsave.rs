//! The vCPUs' XSAVE areas: one per vCPU, of the size CPUID gives for every
//! component this CPU supports (2.7 KiB with AVX-512), 64-byte aligned.
//!
//! They come from 64 KiB chunks cut into exact slots rather than from the
//! heap one by one: the heap's buddy allocator rounds every block up to a
//! power of two, which would make each area cost 4 KiB — a quarter of what a
//! small VM costs the host beyond its RAM. Chunks are never returned (a freed
//! slot goes back on the free list), so the pool's size is the high-water
//! mark of vCPUs.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::vec::Vec;
use spin::Mutex;

/// The size of the chunks the pool takes from the heap: a power of two, so
/// the buddy allocator wastes nothing on them.
const CHUNK: usize = 64 * 1024;
/// XSAVE's alignment (SDM Vol. 1, 13.4).
const ALIGN: usize = 64;

/// Free slots, by address.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// The size XSAVE needs for every feature this CPU supports (CPUID.0DH.0:ECX),
/// rounded up to the alignment, asked once.
fn slot_size() -> usize {
    static SIZE: spin::Once<usize> = spin::Once::new();
    *SIZE.call_once(|| {
        let bytes = (raw_cpuid::cpuid!(0xd, 0).ecx as usize).max(576);
        bytes.div_ceil(ALIGN) * ALIGN
    })
}

/// One vCPU's XSAVE area, owned: it goes back to the pool when dropped.
pub struct XsaveArea {
    address: usize,
}

impl XsaveArea {
    /// A zeroed area, or `None` when the heap has no room for another chunk.
    pub fn new() -> Option<XsaveArea> {
        let size = slot_size();
        let mut free = FREE.lock();
        if free.is_empty() {
            let layout = Layout::from_size_align(CHUNK, ALIGN).ok()?;
            let slots = CHUNK / size;
            free.try_reserve(slots).ok()?;
            // SAFETY: a non-zero size with a valid alignment.
            let chunk = unsafe { alloc_zeroed(layout) };
            if chunk.is_null() {
                return None;
            }
            free.extend((0..slots).rev().map(|slot| chunk as usize + slot * size));
        }
        let address = free.pop()?;
        drop(free);
        let mut area = XsaveArea { address };
        area.clear();
        Some(area)
    }

    /// Zeroes the area: a zeroed XSAVE header makes XRSTOR load every
    /// component's initial state.
    pub fn clear(&mut self) {
        // SAFETY: the slot is this area's alone (taken off the free list),
        // `slot_size()` bytes of a live chunk.
        unsafe { core::ptr::write_bytes(self.address as *mut u8, 0, slot_size()) };
    }

    /// The area's address, for XSAVE and XRSTOR.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.address as *mut u8
    }
}

impl Drop for XsaveArea {
    fn drop(&mut self) {
        FREE.lock().push(self.address);
    }
}
