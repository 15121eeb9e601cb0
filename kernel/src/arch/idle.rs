//! The host's own timer: the local APIC timer of this CPU, on one vector.
//! It does two jobs.
//!
//! - **Waiting without spinning**: when every VM sleeps until a timer, the
//!   CPU halts and this timer wakes it at the nearest deadline. The HLT saves
//!   power on hardware and gives the cycles to the other hyperthread.
//! - **Ending time slices on SVM**, which has no preemption timer: the vCPU
//!   arms it for the slice's deadline and the interrupt ends the guest's run
//!   (APM Vol. 2, 15.21.1, with the INTR intercept).
//!
//! It runs in TSC-deadline mode where the CPU has it (SDM Vol. 3A,
//! 12.5.4.1), and otherwise in one-shot mode with the count computed from a
//! TSC-to-timer ratio measured at start-up (QEMU's TCG has no TSC-deadline
//! mode).
//!
//! tessera otherwise runs with interrupts masked: it enables them only for
//! the length of one HLT, or (on SVM) while a guest runs, with nothing but
//! this timer able to interrupt — the 8259A pair is masked
//! ([`super::mask_legacy_interrupts`]), and the APIC's other local sources
//! are masked here. The wake-up vector's gate is a bare IRET
//! ([`super::idt`]); the EOI comes after, with interrupts off again.
//!
//! Without a local APIC the wait spins.

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
const INITIAL_COUNT: u32 = 0x380;
const CURRENT_COUNT: u32 = 0x390;
const DIVIDE_CONFIGURATION: u32 = 0x3e0;
/// Divide by 1 (SDM Vol. 3A, Figure 12-10).
const DIVIDE_BY_1: u32 = 0b1011;
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

/// How the timer is armed.
#[derive(Clone, Copy)]
enum Mode {
    /// IA32_TSC_DEADLINE takes the deadline itself.
    TscDeadline,
    /// One-shot: the initial count is the TSC ticks left times this ratio
    /// (timer ticks per TSC tick, 32.32 fixed point).
    OneShot {
        /// Timer ticks per TSC tick, times 2^32.
        ratio: u64,
    },
}

/// The host's timer, once found.
#[derive(Clone, Copy)]
struct HostTimer {
    apic: HostApic,
    mode: Mode,
}

static TIMER: Once<Option<HostTimer>> = Once::new();
static WAITS: AtomicU64 = AtomicU64::new(0);
/// The deadline the timer is armed for (0: disarmed), so that re-arming
/// for the same deadline costs nothing.
static ARMED: AtomicU64 = AtomicU64::new(0);

/// Measures the one-shot timer's ticks per TSC tick, as 32.32 fixed point:
/// counts down from the top for about 2^21 TSC ticks (a millisecond at 2 GHz).
fn measure_ratio(apic: HostApic) -> u64 {
    const SPAN: u64 = 1 << 21;
    apic.write(DIVIDE_CONFIGURATION, DIVIDE_BY_1);
    apic.write(LVT_TIMER, LVT_MASKED | u32::from(WAKE_VECTOR));
    let start = super::tsc::rdtsc();
    apic.write(INITIAL_COUNT, u32::MAX);
    while super::tsc::rdtsc() - start < SPAN {
        core::hint::spin_loop();
    }
    let elapsed_tsc = super::tsc::rdtsc() - start;
    let elapsed_ticks = u64::from(u32::MAX - apic.read(CURRENT_COUNT));
    apic.write(INITIAL_COUNT, 0);
    ((u128::from(elapsed_ticks) << 32) / u128::from(elapsed_tsc.max(1))).max(1) as u64
}

/// Prepares the timer on this CPU: the local APIC enabled in the mode
/// firmware left it in, its local interrupt sources masked but the timer,
/// which is set up on [`WAKE_VECTOR`] (TSC-deadline mode, or one-shot with
/// its rate measured) and disarmed. Returns whether there is a timer. The
/// legacy PICs must be masked first.
pub fn init() -> bool {
    TIMER
        .call_once(|| {
            let features = raw_cpuid::CpuId::new().get_feature_info()?;
            if !features.has_apic() {
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
            if features.has_tsc_deadline() {
                apic.write(LVT_TIMER, LVT_TSC_DEADLINE | u32::from(WAKE_VECTOR));
                // The LVT write must be done before IA32_TSC_DEADLINE is
                // armed; in xAPIC mode a fence orders the MMIO store before
                // the WRMSR (SDM Vol. 3A, 12.5.4.1).
                // SAFETY: a fence and disarming the deadline have no other
                // effect.
                unsafe {
                    asm!("mfence", options(nostack));
                    wrmsr(IA32_TSC_DEADLINE, 0);
                }
                Some(HostTimer {
                    apic,
                    mode: Mode::TscDeadline,
                })
            } else {
                let ratio = measure_ratio(apic);
                // One-shot mode (bits 18:17 = 0), unmasked, disarmed.
                apic.write(LVT_TIMER, u32::from(WAKE_VECTOR));
                Some(HostTimer {
                    apic,
                    mode: Mode::OneShot { ratio },
                })
            }
        })
        .is_some()
}

/// Whether [`init`] found a timer.
pub fn has_timer() -> bool {
    TIMER.get().copied().flatten().is_some()
}

/// Arms the timer to interrupt at TSC `deadline` (0 disarms). Cheap when
/// it is already armed for that deadline.
#[inline]
pub fn arm(deadline: u64) {
    if ARMED.load(Ordering::Relaxed) == deadline {
        return;
    }
    let Some(timer) = TIMER.get().copied().flatten() else {
        return;
    };
    ARMED.store(deadline, Ordering::Relaxed);
    match timer.mode {
        // SAFETY: the LVT is in TSC-deadline mode (`init`); writing the
        // deadline only schedules this CPU's own timer interrupt.
        Mode::TscDeadline => unsafe { wrmsr(IA32_TSC_DEADLINE, deadline) },
        Mode::OneShot { ratio } => {
            let count = if deadline == 0 {
                0
            } else {
                let left = deadline.saturating_sub(super::tsc::rdtsc());
                // At least 1: a count of 0 would disarm a deadline already
                // due instead of firing it.
                ((u128::from(left) * u128::from(ratio)) >> 32).clamp(1, u128::from(u32::MAX)) as u32
            };
            timer.apic.write(INITIAL_COUNT, count);
        }
    }
}

/// Takes a timer interrupt that is pending with interrupts masked (an SVM
/// guest's run ended on it): lets it in through its bare-IRET gate, then
/// sends the EOI. Any other vector pending is taken by its gate too.
pub fn take_pending_interrupt() {
    let Some(timer) = TIMER.get().copied().flatten() else {
        return;
    };
    // SAFETY: STI takes effect after the next instruction (SDM Vol. 2B,
    // STI), so the pending interrupt is delivered after the NOP, to a gate
    // that only returns; CLI masks interrupts again. The jump in between
    // costs nothing on hardware; QEMU's TCG looks for interrupts only
    // between its translation blocks, which a jump ends, and would
    // otherwise run STI-NOP-CLI as one without taking it.
    unsafe { asm!("sti", "nop", "jmp 2f", "2:", "cli", options(nomem, nostack)) };
    acknowledge(timer.apic);
    // A fired one-shot timer is disarmed; a fired deadline too.
    ARMED.store(0, Ordering::Relaxed);
}

/// Sends the EOI if the wake-up vector is in service.
fn acknowledge(apic: HostApic) {
    let isr = apic.read(ISR_BASE + 0x10 * (u32::from(WAKE_VECTOR) / 32));
    if isr & (1 << (WAKE_VECTOR % 32)) != 0 {
        apic.write(EOI, 0);
    }
}

/// Waits until the TSC reaches `deadline`: in HLT, woken by the timer,
/// when [`init`] found one; spinning otherwise.
pub fn wait_until(deadline: u64) {
    let Some(timer) = TIMER.get().copied().flatten() else {
        while super::tsc::rdtsc() < deadline {
            core::hint::spin_loop();
        }
        return;
    };
    // Another wake-up (an NMI, an SMI) before the deadline halts again.
    while super::tsc::rdtsc() < deadline {
        ARMED.store(0, Ordering::Relaxed);
        arm(deadline);
        // SAFETY: the timer's interrupt only ends the HLT below. STI's
        // one-instruction shadow covers the HLT, so an interrupt already due
        // wakes it rather than being lost before it (SDM Vol. 2B, STI). The
        // gate of WAKE_VECTOR returns at once.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
        WAITS.fetch_add(1, Ordering::Relaxed);
        acknowledge(timer.apic);
    }
    arm(0);
}

/// How the CPU waits (for the summary) and how many HLTs it has waited in.
pub fn report() -> (&'static str, u64) {
    let how = match TIMER.get().copied().flatten().map(|timer| timer.mode) {
        Some(Mode::TscDeadline) => "in HLT, woken by the local APIC's TSC-deadline timer",
        Some(Mode::OneShot { .. }) => "in HLT, woken by the local APIC's one-shot timer",
        None => "spinning (no local APIC timer)",
    };
    (how, WAITS.load(Ordering::Relaxed))
}
