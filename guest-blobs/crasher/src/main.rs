//! crasher: writes to a guest-physical address outside its RAM, which must
//! raise an EPT violation that stops this VM alone.
//!
//! The hypervisor's identity map covers only guest RAM, so a plain store to a
//! far address would end in a guest page fault (and, with no IDT of ours, a
//! triple fault) rather than an EPT violation. So crasher first switches to
//! page tables of its own: the first GiB identity-mapped with 2 MiB pages (the
//! image, its stack and these tables live there) plus one 2 MiB page at the
//! target, the first 1 GiB boundary at or above the end of RAM (0x4000_0000
//! for any VM of up to 1 GiB). The store then translates fine in the guest and
//! reaches EPT with a GPA the VM does not own.
//!
//! Should the store go through, the hypervisor is broken: crasher says so and
//! exits with 1.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;

use guest_rt::{println, vm_info};

guest_rt::entry!(main);

const GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;
/// Page-table entry bit 0 (SDM Vol. 3A, 5.5 "4-Level Paging"): present.
const PRESENT: u64 = 1 << 0;
/// Bit 1: writable.
const WRITABLE: u64 = 1 << 1;
/// Bit 7 of a PDE: maps a 2 MiB page rather than pointing to a page table.
const LARGE_PAGE: u64 = 1 << 7;
/// What crasher writes there.
const MARKER: u64 = 0xDEAD_BEEF_0BAD_F00D;

/// crasher's own four tables: one PML4, one PDPT, and two page directories.
#[repr(C, align(4096))]
struct PageTables {
    pml4: [u64; 512],
    pdpt: [u64; 512],
    /// Identity map of [0, 1 GiB) with 2 MiB pages.
    low: [u64; 512],
    /// Maps the 1 GiB region around the target; only entry 0 is used.
    far: [u64; 512],
}

/// A static the CPU reads as page tables once CR3 points at it.
struct TableStorage(UnsafeCell<PageTables>);

// SAFETY: the guest has a single vCPU and only `main` touches the tables.
unsafe impl Sync for TableStorage {}

static TABLES: TableStorage = TableStorage(UnsafeCell::new(PageTables {
    pml4: [0; 512],
    pdpt: [0; 512],
    low: [0; 512],
    far: [0; 512],
}));

fn main() -> u64 {
    let memory_bytes = match vm_info() {
        Ok(info) => info.memory_bytes,
        Err(error) => {
            println!("crasher: VM_INFO failed ({error:?}); assuming at most 1 GiB of RAM");
            GIB
        }
    };
    let target = memory_bytes.div_ceil(GIB).max(1) * GIB;
    if target >= 512 * GIB {
        println!("crasher: RAM too large for my page tables; giving up");
        return 2;
    }
    println!(
        "crasher: my RAM ends at {memory_bytes:#x}; mapping GPA {target:#x} in my own page tables"
    );

    // SAFETY: nothing else references TABLES; building the tables is ordinary
    // writes to memory the image owns.
    let tables = unsafe { &mut *TABLES.0.get() };
    let address = |table: &[u64; 512]| table as *const _ as u64; // identity map: virtual = physical
    for (index, entry) in tables.low.iter_mut().enumerate() {
        *entry = (index as u64 * TWO_MIB) | LARGE_PAGE | WRITABLE | PRESENT;
    }
    tables.far[0] = target | LARGE_PAGE | WRITABLE | PRESENT;
    tables.pdpt[0] = address(&tables.low) | WRITABLE | PRESENT;
    tables.pdpt[(target / GIB) as usize] = address(&tables.far) | WRITABLE | PRESENT;
    tables.pml4[0] = address(&tables.pdpt) | WRITABLE | PRESENT;
    let root = address(&tables.pml4);

    println!("crasher: about to write outside my RAM");
    // SAFETY: the new tables map everything this code, its stack and its
    // statics use exactly as before (identity, first GiB), so execution goes
    // on unchanged; the store is to the page mapped at `target`, whose only
    // effect on a correct hypervisor is to end this VM.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags));
        core::ptr::write_volatile(target as *mut u64, MARKER);
    }

    println!("crasher: the write went through!");
    1
}
