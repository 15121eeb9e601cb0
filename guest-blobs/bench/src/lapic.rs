//! The local APIC as the bench guest reaches it: through xAPIC MMIO at
//! 0xFEE00000, which tessera emulates (every access is an EPT violation that
//! it decodes and carries out), and a timer interrupt on [`TIMER_VECTOR`].
//!
//! tessera's ELF loader identity-maps only the guest's RAM, so [`map`] adds
//! the APIC's 4 KiB page to the loader's tables itself, uncached, from two
//! tables in this guest's .bss. [`install_timer_vector`] extends guest-rt's
//! exception table with the timer's gate; the handler sets [`FIRED`] and
//! writes the EOI.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where the xAPIC registers are (the architectural default, SDM Vol. 3A,
/// 12.4.4; tessera does not let a guest move them).
pub const APIC_BASE: u64 = 0xfee0_0000;

/// Register offsets (SDM Vol. 3A, Table 12-1).
pub mod register {
    /// Local APIC version (read-only).
    pub const VERSION: u64 = 0x30;
    /// End of interrupt (write-only).
    pub const EOI: u64 = 0xb0;
    /// Spurious-interrupt vector; bit 8 software-enables the APIC.
    pub const SPURIOUS: u64 = 0xf0;
    /// LVT timer: vector, mask (bit 16), mode (bits 18:17).
    pub const LVT_TIMER: u64 = 0x320;
    /// LVT LINT0: the 8259A's virtual wire after reset.
    pub const LVT_LINT0: u64 = 0x350;
    /// Timer initial count; a write (re)starts the countdown.
    pub const INITIAL_COUNT: u64 = 0x380;
    /// Timer divide configuration.
    pub const DIVIDE: u64 = 0x3e0;
}

/// The vector the timer interrupts on: the first one above the exceptions.
pub const TIMER_VECTOR: u8 = 0x20;

/// LVT mask bit.
const LVT_MASKED: u32 = 1 << 16;
/// The spurious-interrupt vector register: APIC enabled, vector 0xFF.
const SPURIOUS_ENABLED: u32 = 0x1ff;
/// Divide configuration 1011b: the timer counts at the bus rate, divided by 1.
const DIVIDE_BY_1: u32 = 0b1011;

// Paging-structure entry bits (SDM Vol. 3A, 4.5).
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

/// A 4 KiB paging structure in .bss, written only through atomics so that it
/// needs neither `static mut` nor `unsafe` to fill.
#[repr(C, align(4096))]
struct PageTable([AtomicU64; 512]);

impl PageTable {
    const fn new() -> PageTable {
        PageTable([const { AtomicU64::new(0) }; 512])
    }

    /// Its guest-physical address: the guest runs on an identity map.
    fn address(&self) -> u64 {
        self as *const PageTable as u64
    }
}

/// The page directory for 3-4 GiB and the page table for the APIC's 2 MiB.
static DIRECTORY: PageTable = PageTable::new();
static TABLE: PageTable = PageTable::new();

/// Maps the APIC's page at its own address, uncached (PCD and PWT: device
/// registers must not be cached or combined). The loader's tables map RAM
/// from 0 with 2 MiB pages, so a guest with less than 3 GiB has no page
/// directory for the 3-4 GiB slot yet; this adds one, and a page table for
/// the APIC's 2 MiB, from .bss.
pub fn map() -> Result<(), &'static str> {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags)) };
    let pml4 = (cr3 & ADDRESS) as *const u64;
    let pml4_index = (APIC_BASE >> 39) & 0x1ff;
    let pdpt_index = (APIC_BASE >> 30) & 0x1ff;
    // SAFETY: CR3 holds the loader's PML4, in RAM and identity-mapped; its
    // entries are plain quadwords.
    let pml4_entry = unsafe { pml4.add(pml4_index as usize).read_volatile() };
    if pml4_entry & PRESENT == 0 {
        return Err("the PML4 has no entry for the low 512 GiB");
    }
    let pdpt = (pml4_entry & ADDRESS) as *mut u64;
    // SAFETY: as above, for the PDPT that the present PML4 entry names.
    let slot = unsafe { pdpt.add(pdpt_index as usize) };
    // SAFETY: `slot` is an entry of the identity-mapped PDPT.
    if unsafe { slot.read_volatile() } & PRESENT != 0 {
        return Err("the 3-4 GiB slot is already mapped (RAM above 3 GiB?)");
    }
    let directory_index = ((APIC_BASE >> 21) & 0x1ff) as usize;
    let table_index = ((APIC_BASE >> 12) & 0x1ff) as usize;
    TABLE.0[table_index].store(
        APIC_BASE | PRESENT | WRITABLE | WRITE_THROUGH | CACHE_DISABLE,
        Ordering::SeqCst,
    );
    DIRECTORY.0[directory_index].store(TABLE.address() | PRESENT | WRITABLE, Ordering::SeqCst);
    // SAFETY: the slot was empty, so no translation in use changes; the
    // directory and table are complete before the entry makes them live.
    unsafe { slot.write_volatile(DIRECTORY.address() | PRESENT | WRITABLE) };
    // The slot was not present, which the TLB does not cache, but flush the
    // address anyway in case the CPU cached the walk's upper levels.
    // SAFETY: INVLPG only drops translations.
    unsafe { asm!("invlpg [{}]", in(reg) APIC_BASE, options(nostack, preserves_flags)) };
    Ok(())
}

/// A 32-bit read of the register at `offset`: one MMIO exit.
#[inline(always)]
pub fn read(offset: u64) -> u32 {
    let value: u32;
    // SAFETY: `map` mapped the APIC page; reading an APIC register has no
    // side effect on memory.
    unsafe {
        asm!(
            "mov {value:e}, dword ptr [{address}]",
            address = in(reg) APIC_BASE + offset,
            value = out(reg) value,
            options(nostack, preserves_flags, readonly),
        )
    };
    value
}

/// A 32-bit write of `value` to the register at `offset`: one MMIO exit.
#[inline(always)]
pub fn write(offset: u64, value: u32) {
    // SAFETY: `map` mapped the APIC page; the callers write registers whose
    // effects they own (the timer, LVTs, EOI).
    unsafe {
        asm!(
            "mov dword ptr [{address}], {value:e}",
            address = in(reg) APIC_BASE + offset,
            value = in(reg) value,
            options(nostack, preserves_flags),
        )
    };
}

/// Set by the timer handler; cleared by the measurement before it arms.
static FIRED: AtomicBool = AtomicBool::new(false);

// The timer handler: EOI (a register store, the form Linux's `apic_write`
// uses), then the flag, then back. No stack frame beyond the two registers
// it needs, so that the figure is the delivery's, not a handler's.
global_asm!(
    ".section .text.bench_timer, \"ax\", @progbits",
    ".global bench_timer_handler",
    "bench_timer_handler:",
    "    push rax",
    "    push rcx",
    "    mov ecx, {eoi}",
    "    xor eax, eax",
    "    mov dword ptr [rcx], eax",
    "    mov byte ptr [rip + {fired}], 1",
    "    pop rcx",
    "    pop rax",
    "    iretq",
    eoi = const APIC_BASE + register::EOI,
    fired = sym FIRED,
);

extern "C" {
    fn bench_timer_handler();
}

/// Gates 0 to [`TIMER_VECTOR`]; guest-rt's 20 exception gates are copied in.
const GATES: usize = TIMER_VECTOR as usize + 1;

/// The IDT, two quadwords per gate; written before LIDT only.
#[repr(C, align(16))]
struct Gates([AtomicU64; 2 * GATES]);

static IDT: Gates = Gates([const { AtomicU64::new(0) }; 2 * GATES]);

/// The operand of LIDT and SIDT.
#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Loads an IDT with guest-rt's exception gates (an unexpected fault is
/// reported, not a triple fault) and the timer's at [`TIMER_VECTOR`].
/// Vectors 20-31 stay not present: nothing raises them.
pub fn install_timer_vector() {
    guest_rt::idt::install("bench");
    let mut current = Pointer { limit: 0, base: 0 };
    // SAFETY: SIDT writes the 10-byte operand only.
    unsafe { asm!("sidt [{}]", in(reg) &mut current, options(nostack, preserves_flags)) };
    let (limit, base) = (current.limit, current.base);
    let copied = ((usize::from(limit) + 1) / 16).min(GATES);
    for quadword in 0..2 * copied {
        // SAFETY: guest-rt's table is `limit + 1` bytes at `base`, static,
        // and no longer written.
        let value = unsafe { (base as *const u64).add(quadword).read() };
        IDT.0[quadword].store(value, Ordering::SeqCst);
    }
    // The exception gates already hold the right code segment.
    let selector = (IDT.0[0].load(Ordering::SeqCst) >> 16) & 0xffff;
    let handler = bench_timer_handler as *const () as u64;
    let vector = usize::from(TIMER_VECTOR);
    // Offset 15:0, selector, IST 0, type 0xE (64-bit interrupt gate), DPL 0,
    // present, offset 31:16; then offset 63:32 (SDM Vol. 3A, 6.14.1).
    IDT.0[2 * vector].store(
        (handler & 0xffff) | (selector << 16) | (0x8e << 40) | ((handler >> 16) & 0xffff) << 48,
        Ordering::SeqCst,
    );
    IDT.0[2 * vector + 1].store(handler >> 32, Ordering::SeqCst);
    let pointer = Pointer {
        limit: (core::mem::size_of::<Gates>() - 1) as u16,
        base: IDT.0.as_ptr() as u64,
    };
    // SAFETY: the table is static and complete; its present gates point at
    // guest-rt's stubs and at the timer handler above.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

/// Prepares the timer for [`timer_interrupt`]: the APIC software-enabled,
/// the 8259A's virtual wire (LINT0) masked so that only the timer can
/// interrupt, the timer one-shot on [`TIMER_VECTOR`], counting undivided.
pub fn set_up_timer() {
    write(register::SPURIOUS, SPURIOUS_ENABLED);
    write(register::LVT_LINT0, LVT_MASKED);
    write(register::DIVIDE, DIVIDE_BY_1);
    write(register::LVT_TIMER, u32::from(TIMER_VECTOR));
}

/// Arms the one-shot timer with `count` and spins with interrupts enabled
/// until the handler has run; returns the TSC ticks from the last TSC read
/// before the interrupt to the first one after it — the whole delivery
/// (the VM exit at the timer's deadline, the injection, the handler with its
/// EOI, IRETQ) plus one pass of the spin loop — or `None` when the interrupt
/// came before the loop's first check (`count` too small to outlast the
/// arming write's own exit).
///
/// The loop reads the TSC, then checks the flag. The interrupt lands after a
/// check that saw the flag clear and before the one that sees it set: after
/// the read that preceded the clear check (`prev`), and before the read
/// after the loop. So `end - prev` always spans it, with the same 12 guest
/// instructions of loop around it wherever it lands.
#[inline(never)]
pub fn timer_interrupt(count: u32) -> Option<u64> {
    FIRED.store(false, Ordering::SeqCst);
    let prev: u64;
    let end: u32;
    // SAFETY: the handler at TIMER_VECTOR is installed and preserves every
    // register; it runs on this stack, which has no red zone on
    // x86_64-unknown-none. Interrupts are enabled only inside this block,
    // and the timer is the only unmasked source.
    unsafe {
        asm!(
            "sti",
            "mov dword ptr [{initial_count}], {count:e}",
            "2:",
            "lfence",
            "rdtsc",
            "lfence",
            "cmp byte ptr [rip + {fired}], 0",
            "jne 3f",
            "mov {prev:e}, eax",
            "jmp 2b",
            "3:",
            "lfence",
            "rdtsc",
            "cli",
            initial_count = in(reg) APIC_BASE + register::INITIAL_COUNT,
            count = in(reg) count,
            fired = sym FIRED,
            // u64::MAX: no check has seen the flag clear (a 32-bit MOV
            // zero-extends, so no TSC value can look like it).
            prev = inout(reg) u64::MAX => prev,
            out("eax") end,
            out("edx") _,
        );
    }
    (prev != u64::MAX).then(|| u64::from(end.wrapping_sub(prev as u32)))
}
