//! The instructions the probes are made of: port I/O, MSRs, CPUID, the
//! time-stamp counter, device-register MMIO and physical memory reads.
//!
//! Device registers are read and written with one plain `mov` each, written
//! out in assembly, so that the access is a single 32-bit load or store
//! whatever the compiler would have made of a volatile access: that is what
//! the APICs define (SDM Vol. 3A, 12.4.1: 128-bit aligned registers,
//! accessed as aligned dwords), and the form a hypervisor that decodes MMIO
//! must handle.

use core::arch::asm;
use core::arch::x86_64::CpuidResult;

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port reads of the PC's devices have no effect on memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the devices probed here do not touch this program's memory
    // (no DMA is programmed).
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit word to an I/O port (fw_cfg's selector is 16 bits).
pub fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 32-bit dword from an I/O port (the ACPI PM timer is 32 bits wide).
pub fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// RDMSR. Only called for MSRs that CPUID says exist.
pub fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the callers read architectural MSRs whose presence they
    // checked; RDMSR has no memory effects.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags))
    };
    u64::from(high) << 32 | u64::from(low)
}

/// WRMSR. Only called for MSRs that CPUID says exist, with valid values.
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the callers write APIC MSRs (IA32_APIC_BASE, x2APIC
    // registers, IA32_TSC_DEADLINE), which do not change this program's
    // memory or paging.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// CPUID with a subleaf.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A 32-bit load from a device register at physical `address` (identity
/// mapped, uncached; see `boot`).
pub fn mmio_read(address: u64) -> u32 {
    let value: u32;
    // SAFETY: `address` is an APIC register inside the identity map; the
    // load has no effect on this program's memory.
    unsafe {
        asm!("mov {value:e}, dword ptr [{address}]", address = in(reg) address,
             value = out(reg) value, options(nostack, preserves_flags))
    };
    value
}

/// A 32-bit store to a device register at physical `address`.
pub fn mmio_write(address: u64, value: u32) {
    // SAFETY: `address` is an APIC register inside the identity map, not
    // memory this program uses.
    unsafe {
        asm!("mov dword ptr [{address}], {value:e}", address = in(reg) address,
             value = in(reg) value, options(nostack, preserves_flags))
    };
}

/// `length` bytes of physical memory at `address` (firmware tables).
///
/// The low 4 GiB are identity-mapped and nothing writes the firmware's
/// tables while this program runs, so the bytes can be borrowed for good.
/// Callers keep `address + length` below 4 GiB and lengths small.
pub fn physical(address: u64, length: usize) -> &'static [u8] {
    assert!(
        address
            .checked_add(length as u64)
            .is_some_and(|end| end <= 1 << 32),
        "physical range {address:#x}+{length:#x} is outside the identity map"
    );
    // SAFETY: the range is inside the identity map of the low 4 GiB
    // (checked above) and is only read; firmware tables do not change.
    unsafe { core::slice::from_raw_parts(address as usize as *const u8, length) }
}

/// Enables interrupts.
pub fn sti() {
    // SAFETY: every vector has a handler (see `interrupts`).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Disables interrupts.
pub fn cli() {
    // SAFETY: clearing IF only delays interrupts.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// `sti; hlt`: waits for the next interrupt with none lost between the two
/// (the STI shadow covers the HLT, SDM Vol. 2B "STI"), then `cli`.
pub fn sti_hlt_cli() {
    // SAFETY: every vector has a handler; the sequence returns after one
    // interrupt has been taken.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// A spin-wait hint.
pub fn pause() {
    core::hint::spin_loop();
}

/// Whether RFLAGS.IF is set.
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS has no side effects.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// MFENCE: orders an MMIO store before a following WRMSR, which is not
/// serializing for IA32_TSC_DEADLINE and the x2APIC MSRs (SDM Vol. 3A,
/// 12.5.4.1 and 12.12.3).
pub fn mfence() {
    // SAFETY: a fence has no side effects.
    unsafe { asm!("mfence", options(nostack, preserves_flags)) };
}
