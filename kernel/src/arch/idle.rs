//! Waiting for a deadline without spinning: when every VM sleeps until a
//! timer, the CPU halts and its own local APIC timer, in TSC-deadline mode,
//! wakes it at the nearest deadline (SDM Vol. 3A, 12.5.4.1). The HLT saves
//! power on hardware and gives the cycles to the other hyperthread.
//!
//! tessera otherwise runs with interrupts masked: this is the one place it
//! enables them, for the length of one HLT, with nothing but this timer
//! able to interrupt — the 8259A pair is masked ([`super::mask_legacy_interrupts`]),
//! and the APIC's other local sources are masked here. The wake-up vector's
//! gate is a bare IRET ([`super::idt`]); the EOI comes after, with
//! interrupts off again.
//!
//! Without the TSC-deadline mode (CPUID.1:ECX[24]) the wait spins as before.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use x86::msr::{rdmsr, wrmsr, IA32_APIC_BASE, IA32_TSC_DEADLINE};

/// The vector the idle timer interrupts on: high, so that its priority
/// class is above anything firmware may have left in the TPR.
pub const WAKE_VECTOR: u8 = 0xf0;
/// The APIC's spurious-interrupt vector (its low 4 bits must be 1s on old
/// APICs: 0xFF is the usual choice).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// IA32_APIC_BASE bits (SDM Vol. 3A, 12.4.4, 12.12.1).
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const APIC_X2APIC_MODE: u64 = 1 << 10;

/// Local APIC register offsets (SDM Vol. 3A, Table 12-1).
const TPR: u32 = 0x80;
const EOI: u32 = 0xb0;
const SVR: u32 = 0xf0;
const ISR_BASE: u32 = 0x100;
const LVT_TIMER: u32 = 0x320;
const LVT_THERMAL: u32 = 0x330;
const LVT_PERFORMANCE: u32 = 0x340;
const LVT_LINT0: u32 = 0x350;
const LVT_ERROR: u32 = 0x370;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const SVR_ENABLE: u32 = 1 << 8;

/// How the host's local APIC is reached.
#[derive(Clone, Copy)]
enum HostApic {
    /// xAPIC registers in the page at this physical (identity-mapped)
    /// address.
    Mmio(u64),
    /// x2APIC: register `offset` is MSR 0x800 + offset / 16.
    X2apic,
}

impl HostApic {
    fn read(self, offset: u32) -> u32 {
        match self {
            // SAFETY: the APIC page is identity-mapped uncached (main.rs
            // maps the 32-bit MMIO hole), and the offset is a register.
            HostApic::Mmio(base) => unsafe {
                core::ptr::read_volatile((base + u64::from(offset)) as *const u32)
            },
            // SAFETY: an x2APIC register MSR, present in x2APIC mode.
            HostApic::X2apic => unsafe { rdmsr(0x800 + offset / 16) as u32 },
        }
    }

    fn write(self, offset: u32, value: u32) {
        match self {
            // SAFETY: as in `read`; the caller writes a valid value.
            HostApic::Mmio(base) => unsafe {
                core::ptr::write_volatile((base + u64::from(offset)) as *mut u32, value)
            },
            // SAFETY: as in `read`.
            HostApic::X2apic => unsafe { wrmsr(0x800 + offset / 16, value.into()) },
        }
    }
}

static APIC: Once<Option<HostApic>> = Once::new();
static WAITS: AtomicU64 = AtomicU64::new(0);

/// Prepares the idle timer on this CPU, if it has TSC-deadline mode:
/// the local APIC enabled in the mode firmware left it in, its local
/// interrupt sources masked but the timer, which is set to TSC-deadline
/// mode on [`WAKE_VECTOR`] and disarmed. Returns whether HLT waits are on.
/// The legacy PICs must be masked first.
pub fn init() -> bool {
    APIC.call_once(|| {
        let features = raw_cpuid::CpuId::new().get_feature_info()?;
        if !features.has_tsc_deadline() || !features.has_apic() {
            return None;
        }
        // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC.
        let base = unsafe { rdmsr(IA32_APIC_BASE) };
        let apic = if base & APIC_X2APIC_MODE != 0 {
            HostApic::X2apic
        } else {
            if base & APIC_GLOBAL_ENABLE == 0 {
                // SAFETY: enabling the APIC in xAPIC mode at its base.
                unsafe { wrmsr(IA32_APIC_BASE, base | APIC_GLOBAL_ENABLE) };
            }
            HostApic::Mmio(base & 0x000f_ffff_ffff_f000)
        };
        for lvt in [LVT_THERMAL, LVT_PERFORMANCE, LVT_LINT0, LVT_ERROR] {
            apic.write(lvt, apic.read(lvt) | LVT_MASKED);
        }
        apic.write(TPR, 0);
        apic.write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
        apic.write(LVT_TIMER, LVT_TSC_DEADLINE | u32::from(WAKE_VECTOR));
        // The LVT write must be done before IA32_TSC_DEADLINE is armed; in
        // xAPIC mode a fence orders the MMIO store before the WRMSR
        // (SDM Vol. 3A, 12.5.4.1).
        // SAFETY: a fence and disarming the deadline have no other effect.
        unsafe {
            asm!("mfence", options(nostack));
            wrmsr(IA32_TSC_DEADLINE, 0);
        }
        Some(apic)
    })
    .is_some()
}

/// Waits until the TSC reaches `deadline`: in HLT, woken by the idle
/// timer, when [`init`] found one; spinning otherwise.
pub fn wait_until(deadline: u64) {
    let Some(apic) = APIC.get().copied().flatten() else {
        while super::tsc::rdtsc() < deadline {
            core::hint::spin_loop();
        }
        return;
    };
    // Another wake-up (an NMI, an SMI) before the deadline halts again.
    while super::tsc::rdtsc() < deadline {
        // SAFETY: arms this CPU's timer; its interrupt only ends the HLT
        // below. STI's one-instruction shadow covers the HLT, so an
        // interrupt already due wakes it rather than being lost before
        // it (SDM Vol. 2B, STI). The gate of WAKE_VECTOR returns at once.
        unsafe {
            wrmsr(IA32_TSC_DEADLINE, deadline);
            asm!("sti", "hlt", "cli", options(nomem, nostack));
        }
        WAITS.fetch_add(1, Ordering::Relaxed);
        let isr = apic.read(ISR_BASE + 0x10 * (u32::from(WAKE_VECTOR) / 32));
        if isr & (1 << (WAKE_VECTOR % 32)) != 0 {
            apic.write(EOI, 0);
        }
    }
    // SAFETY: disarming; a deadline already passed has fired.
    unsafe { wrmsr(IA32_TSC_DEADLINE, 0) };
}

/// How the CPU waits (for the summary) and how many HLTs it has waited in.
pub fn report() -> (&'static str, u64) {
    let how = match APIC.get().copied().flatten() {
        Some(_) => "in HLT, woken by the local APIC's TSC-deadline timer",
        None => "spinning (no TSC-deadline timer)",
    };
    (how, WAITS.load(Ordering::Relaxed))
}
