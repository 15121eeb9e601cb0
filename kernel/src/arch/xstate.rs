//! A guest's extended state (x87, SSE, AVX, ...) while it is not on the
//! CPU, for both backends: neither VMX nor SVM switches it (SDM Vol. 3C,
//! 28.3; APM Vol. 2, 15.5.1), so the vCPU saves it with XSAVE when another
//! is loaded and restores it with XRSTOR, under the full mask, then the
//! guest's own XCR0.
//!
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

/// Whether the CPU has XSAVE (CPUID.1:ECX[26]); asked once, since CPUID
/// itself exits when tessera runs nested.
pub fn has_xsave() -> bool {
    static XSAVE: spin::Once<bool> = spin::Once::new();
    *XSAVE.call_once(|| raw_cpuid::cpuid!(1).ecx & (1 << 26) != 0)
}

/// Every XCR0 bit this CPU supports (CPUID.0DH.0:EDX:EAX), asked once.
pub fn supported_xcr0() -> u64 {
    static SUPPORTED: spin::Once<u64> = spin::Once::new();
    *SUPPORTED.call_once(|| {
        let r = raw_cpuid::cpuid!(0xd, 0);
        ((r.edx as u64) << 32) | r.eax as u64
    })
}

/// Writes XCR0.
///
/// # Safety
/// `value` must be a valid XCR0 for this CPU and CR4.OSXSAVE must be set.
pub unsafe fn xsetbv(value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { x86::controlregs::xcr0_write(x86::controlregs::Xcr0::from_bits_truncate(value)) };
}

/// Loads a guest's extended state from `area`, then its `xcr0` (which
/// passed the XSETBV rules when the guest set it).
pub fn restore(area: &mut XsaveArea, xcr0: u64) {
    if !has_xsave() {
        return;
    }
    let all = supported_xcr0();
    let area = area.as_mut_ptr();
    // SAFETY: XRSTOR only touches components enabled in XCR0 (SDM Vol. 1,
    // 13.8), so restore under the full mask — a guest still at XCR0 = x87
    // uses SSE registers too — then its own XCR0. The area is this vCPU's,
    // 64-byte aligned, of the size CPUID gave.
    unsafe {
        xsetbv(all);
        core::arch::asm!(
            "xrstor64 [{}]", in(reg) area,
            in("eax") all as u32, in("edx") (all >> 32) as u32,
            options(nostack)
        );
        xsetbv(xcr0);
    }
}

/// Saves the extended state on the CPU into `area`.
pub fn save(area: &mut XsaveArea) {
    if !has_xsave() {
        return;
    }
    let all = supported_xcr0();
    let area = area.as_mut_ptr();
    // SAFETY: XSAVE writes only into this vCPU's own 64-byte-aligned area of
    // the size CPUID reported; the full mask for the reason given in
    // `restore`.
    unsafe {
        xsetbv(all);
        core::arch::asm!(
            "xsave64 [{}]", in(reg) area,
            in("eax") all as u32, in("edx") (all >> 32) as u32,
            options(nostack)
        );
    }
}
