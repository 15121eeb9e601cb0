//! The local APIC (SDM Vol. 3A, chapter 12): register access in xAPIC
//! (MMIO) and x2APIC (MSR) mode, the timer; and its probes — registers,
//! the timer in one-shot, periodic and TSC-deadline mode, x2APIC, and the
//! crystal clock CPUID leaf 0x15 reports.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::{self, Tsc};
use crate::interrupts::{self, vector};
use crate::report::Outcome;
use crate::x86::{cpuid, mfence, mmio_read, mmio_write, rdmsr, rdtsc, wrmsr};
use crate::{fail, skip, text, Machine};

/// IA32_APIC_BASE (SDM Vol. 3A, 12.4.4): bit 8 BSP, bit 10 x2APIC mode,
/// bit 11 global enable, bits 12 up the base.
pub const IA32_APIC_BASE: u32 = 0x1b;
const BASE_BSP: u64 = 1 << 8;
const BASE_X2APIC: u64 = 1 << 10;
const BASE_ENABLE: u64 = 1 << 11;
const BASE_ADDRESS: u64 = 0xf_ffff_f000;
/// IA32_TSC_DEADLINE (SDM Vol. 3A, 12.5.4.1).
const IA32_TSC_DEADLINE: u32 = 0x6e0;
/// The x2APIC MSRs are 0x800 + (MMIO offset >> 4) (SDM Vol. 3A, 12.12.1.2).
const X2APIC_MSR_BASE: u32 = 0x800;
/// The x2APIC-only SELF IPI register (SDM Vol. 3A, 12.12.11).
const X2APIC_SELF_IPI: u32 = 0x83f;

/// Register offsets in the xAPIC page (SDM Vol. 3A, Table 12-1).
pub mod register {
    pub const ID: u32 = 0x20;
    pub const VERSION: u32 = 0x30;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xb0;
    pub const LDR: u32 = 0xd0;
    pub const SVR: u32 = 0xf0;
    pub const ISR: u32 = 0x100;
    pub const ESR: u32 = 0x280;
    pub const ICR: u32 = 0x300;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_LINT0: u32 = 0x350;
    pub const INITIAL_COUNT: u32 = 0x380;
    pub const CURRENT_COUNT: u32 = 0x390;
    pub const DIVIDE: u32 = 0x3e0;
}

/// LVT bits (SDM Vol. 3A, Figure 12-8).
const LVT_MASKED: u32 = 1 << 16;
const TIMER_PERIODIC: u32 = 0b01 << 17;
const TIMER_TSC_DEADLINE: u32 = 0b10 << 17;
/// Divide configuration 1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;
/// SVR: APIC software enable, spurious vector.
const SVR_ENABLE: u32 = 1 << 8;
/// ICR destination shorthand 01: self (SDM Vol. 3A, 12.6.1).
const ICR_SELF: u32 = 0b01 << 18;

/// CPUID.1:ECX feature bits.
pub const CPUID_X2APIC: u32 = 1 << 21;
pub const CPUID_TSC_DEADLINE: u32 = 1 << 24;

static BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);
static X2APIC: AtomicBool = AtomicBool::new(false);
/// Set once the timer has been touched, so `stop_timer` may touch it.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Reads a register by its xAPIC offset, through MMIO or its x2APIC MSR.
pub fn read(offset: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        rdmsr(X2APIC_MSR_BASE + (offset >> 4)) as u32
    } else {
        mmio_read(BASE.load(Ordering::Relaxed) + u64::from(offset))
    }
}

/// Writes a register by its xAPIC offset.
pub fn write(offset: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        wrmsr(X2APIC_MSR_BASE + (offset >> 4), u64::from(value));
    } else {
        mmio_write(BASE.load(Ordering::Relaxed) + u64::from(offset), value);
    }
}

/// Whether `vector`'s ISR bit is set (SDM Vol. 3A, 12.8.4).
pub fn in_service(vector: u8) -> bool {
    let word = read(register::ISR + 0x10 * u32::from(vector / 32));
    word & (1 << (vector % 32)) != 0
}

/// EOI (0 written: in x2APIC mode anything else is a #GP, SDM 12.12.1.2).
pub fn eoi() {
    write(register::EOI, 0);
}

fn deadline_supported() -> bool {
    cpuid(1, 0).ecx & CPUID_TSC_DEADLINE != 0
}

/// Masks the timer and stops it in every mode.
pub fn stop_timer() {
    if !IN_USE.load(Ordering::Relaxed) {
        return;
    }
    write(
        register::LVT_TIMER,
        LVT_MASKED | u32::from(vector::APIC_TIMER),
    );
    write(register::INITIAL_COUNT, 0);
    if deadline_supported() {
        wrmsr(IA32_TSC_DEADLINE, 0);
    }
}

/// The timer in one-shot mode at divide-by-1: `vector` after `count` ticks.
pub fn arm_one_shot(vector: u8, count: u32) {
    IN_USE.store(true, Ordering::Relaxed);
    write(register::DIVIDE, DIVIDE_BY_1);
    write(register::LVT_TIMER, u32::from(vector));
    write(register::INITIAL_COUNT, count);
}

/// lapic-registers: IA32_APIC_BASE (enabled, BSP, xAPIC mode, at the
/// MADT's address), the ID (the MADT's first processor), the version (an
/// integrated APIC, 0x1X, with at least 4 LVT entries), software enable
/// through the SVR, TPR and ESR. LINT0 is shown, not judged: in virtual
/// wire mode it is ExtINT, in PIC mode (the IMCR) it may be masked (MP
/// spec 1.4, 3.6.2); hlt-timer-wake, later, shows whether the 8259A
/// still reaches the CPU with the APIC software-enabled.
pub fn probe_registers(machine: &mut Machine) -> Outcome {
    let base = rdmsr(IA32_APIC_BASE);
    let address = base & BASE_ADDRESS;
    BASE.store(address, Ordering::Relaxed);
    let madt = machine.madt();
    let base_ok = base & (BASE_ENABLE | BASE_BSP | BASE_X2APIC) == BASE_ENABLE | BASE_BSP
        && madt.is_some_and(|madt| u64::from(madt.local_apic_address) == address);
    let id = read(register::ID) >> 24;
    let id_ok = madt.is_some_and(|madt| madt.boot_apic_id == Some(id));
    let version = read(register::VERSION);
    let max_lvt = (version >> 16) & 0xff;
    let version_ok = (0x10..=0x1f).contains(&(version & 0xff)) && max_lvt >= 3;
    write(register::SVR, SVR_ENABLE | u32::from(vector::APIC_SPURIOUS));
    let svr = read(register::SVR);
    write(register::TPR, 0x20);
    let tpr = read(register::TPR);
    write(register::TPR, 0);
    write(register::ESR, 0);
    let esr = read(register::ESR);
    let lint0 = read(register::LVT_LINT0);
    let ok = base_ok && id_ok && version_ok && svr & 0x1ff == 0x1ff && tpr == 0x20 && esr == 0;
    Outcome::check(
        ok,
        text!(
            "IA32_APIC_BASE {base:#x}, ID {id}, version {version:#x} ({} LVT entries), SVR {svr:#x}, \
             TPR {tpr:#x}, ESR {esr:#x}, LINT0 {lint0:#x}",
            max_lvt + 1
        ),
    )
}

/// The current count after `window_us` of a masked one-shot from
/// 0xFFFFFFFF: `(counts, TSC ticks)`, each read timed by the TSC around
/// it (at its midpoint). `None` if a read, or a step of the wait, took
/// over 1/20 of the window: the CPU was away. A read's own length (an MMIO
/// exit under a hypervisor: ~4000 instructions in Bochs) is much the same
/// each time, so it cancels out between the two reads.
fn count_down(tsc: Tsc, window_us: u64) -> Option<(u64, u64)> {
    let max_read = tsc.ticks_from_us(window_us) / 20;
    write(
        register::LVT_TIMER,
        LVT_MASKED | u32::from(vector::APIC_TIMER),
    );
    write(register::DIVIDE, DIVIDE_BY_1);
    write(register::INITIAL_COUNT, u32::MAX);
    let sample = || {
        let before = rdtsc();
        let count = read(register::CURRENT_COUNT);
        let after = rdtsc();
        (after - before <= max_read).then_some((before + (after - before) / 2, count))
    };
    let (t0, c0) = sample()?;
    let (window, _) = clock::poll(tsc.ticks_from_us(window_us), false, || false);
    let (t1, c1) = sample()?;
    write(register::INITIAL_COUNT, 0);
    if window.longest_gap * 20 > window.elapsed() || c1 >= c0 {
        return None;
    }
    Some((u64::from(c0 - c1), t1 - t0))
}

/// lapic-timer-counts-down: the current-count register falls at one steady
/// rate (2 ms and 4 ms windows agree within 2%); the rate is kept for the
/// timer probes.
pub fn probe_counts_down(machine: &mut Machine) -> Outcome {
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    IN_USE.store(true, Ordering::Relaxed);
    let mut rates = [0u64; 2];
    for (rate, window_us) in rates.iter_mut().zip([2000, 4000]) {
        let Some((counts, ticks)) = clock::retry(20, || count_down(tsc, window_us)) else {
            return fail!("the current count did not fall over {window_us} us (or no undisturbed window in 20)");
        };
        *rate = tsc.rate(counts, ticks);
    }
    let divide = read(register::DIVIDE) & 0b1011;
    let [short, long] = rates;
    let ok = short.abs_diff(long) * 50 <= long && long >= 1_000_000 && divide == DIVIDE_BY_1;
    if ok {
        machine.apic_timer_hz = Some(long);
    }
    Outcome::check(
        ok,
        text!(
            "at divide-by-1 (DCR {divide:#x}) it counts {} kHz over 2 ms and {} kHz over 4 ms (within 2%)",
            short / 1000,
            long / 1000
        ),
    )
}

/// What one armed timer interrupt did.
struct Shot {
    /// TSC ticks from arming to the handler.
    after: u64,
    /// Interrupts in all (one expected).
    count: u32,
    in_service: u32,
    cleared_by_eoi: u32,
}

/// Arms with `arm` (which returns the TSC it counts from), then polls for
/// `wait_us` with interrupts enabled. An attempt during which the CPU was
/// away for over 100 us, or whose interrupt came over `late` ticks after
/// `arm`'s TSC (a host that delays its timers), is repeated, up to
/// [`clock::ATTEMPTS`]; then the last is judged as it is.
fn shoot(tsc: Tsc, wait_us: u64, late: u64, arm: impl Fn() -> u64) -> Shot {
    let mut attempt = 0;
    loop {
        attempt += 1;
        stop_timer();
        interrupts::reset();
        let from = arm();
        let (window, _) = clock::poll(tsc.ticks_from_us(wait_us), true, || false);
        let seen = interrupts::seen();
        let first = seen.stamps().first().copied().unwrap_or(window.end);
        let shot = Shot {
            after: first.wrapping_sub(from),
            count: interrupts::count(vector::APIC_TIMER),
            in_service: seen.in_service,
            cleared_by_eoi: seen.cleared_by_eoi,
        };
        let away = window.longest_gap > tsc.ticks_from_us(100);
        let delayed = shot.count == 0 || (shot.after < u64::MAX / 2 && shot.after > late);
        if !(away || delayed) || attempt == clock::ATTEMPTS {
            return shot;
        }
    }
}

/// lapic-timer-one-shot: one interrupt 2 ms after the initial count is
/// written — not before (allowing 2% for the rate's measurement), at most
/// 10% late — and none after; the current count then reads 0; ISR set in
/// the handler, clear after EOI.
pub fn probe_one_shot(machine: &mut Machine) -> Outcome {
    let (Some(tsc), Some(hz)) = (machine.tsc(), machine.apic_timer_hz) else {
        return fail!("needs the TSC and APIC timer rates");
    };
    machine.quiesce();
    let count = (hz / 500) as u32;
    let shot = shoot(tsc, 5000, tsc.ticks_from_us(2200), || {
        write(register::DIVIDE, DIVIDE_BY_1);
        write(register::LVT_TIMER, u32::from(vector::APIC_TIMER));
        let from = rdtsc();
        write(register::INITIAL_COUNT, count);
        from
    });
    let current = read(register::CURRENT_COUNT);
    stop_timer();
    let after_us = tsc.us_from_ticks(shot.after);
    if shot.count == 0 {
        return fail!(
            "initial count {count} (2 ms): no interrupt in 5 ms; current count {current}"
        );
    }
    let ok = shot.count == 1
        && (1960..=2200).contains(&after_us)
        && current == 0
        && shot.in_service == 1
        && shot.cleared_by_eoi == 1;
    Outcome::check(
        ok,
        text!(
            "initial count {count}: {} interrupt(s) in 5 ms, the first after {after_us} us (2000 expected), \
             current count then {current}; ISR set {}, clear after EOI {}",
            shot.count,
            shot.in_service,
            shot.cleared_by_eoi
        ),
    )
}

/// lapic-timer-periodic: 1 kHz for 5 ms, then masked: no more.
pub fn probe_periodic(machine: &mut Machine) -> Outcome {
    let (Some(tsc), Some(hz)) = (machine.tsc(), machine.apic_timer_hz) else {
        return fail!("needs the TSC and APIC timer rates");
    };
    machine.quiesce();
    let count = (hz / 1000) as u32;
    let period_ns = u64::from(count) * 1_000_000_000 / hz;
    write(register::DIVIDE, DIVIDE_BY_1);
    write(
        register::LVT_TIMER,
        TIMER_PERIODIC | u32::from(vector::APIC_TIMER),
    );
    write(register::INITIAL_COUNT, count);
    let capture = clock::capture_periodic(tsc, 5000, period_ns);
    let current = read(register::CURRENT_COUNT);
    write(
        register::LVT_TIMER,
        LVT_MASKED | TIMER_PERIODIC | u32::from(vector::APIC_TIMER),
    );
    // A tick already in the IRR when the LVT was masked is still delivered
    // (masking stops new ones only); take it, then count.
    clock::poll(tsc.ticks_from_us(100), true, || false);
    interrupts::reset();
    clock::poll(tsc.ticks_from_us(3000), true, || false);
    let after_mask = interrupts::count(vector::APIC_TIMER);
    stop_timer();
    let outcome = clock::periodic_outcome(
        capture,
        period_ns,
        5000,
        format_args!("initial count {count}"),
    );
    match outcome {
        Outcome::Pass(detail) => Outcome::check(
            after_mask == 0 && (1..=count).contains(&current),
            text!("{detail}; current count {current}; {after_mask} in 3 ms masked"),
        ),
        other => other,
    }
}

/// lapic-timer-tsc-deadline: in TSC-deadline mode (when CPUID.1:ECX[24]
/// offers it) the interrupt comes once the TSC passes IA32_TSC_DEADLINE,
/// not before; the MSR then reads 0; the current count reads 0 in this
/// mode; writing 0 disarms (SDM Vol. 3A, 12.5.4.1).
pub fn probe_tsc_deadline(machine: &mut Machine) -> Outcome {
    let ecx = cpuid(1, 0).ecx;
    if ecx & CPUID_TSC_DEADLINE == 0 {
        return skip!("not offered by CPUID (CPUID.1:ECX = {ecx:#010x}, bit 24 clear)");
    }
    let Some(tsc) = machine.tsc() else {
        return fail!("needs the TSC rate (pit-channel2-tsc-calibration failed)");
    };
    machine.quiesce();
    IN_USE.store(true, Ordering::Relaxed);
    let lead = tsc.ticks_from_us(2000);
    let shot = shoot(tsc, 5000, tsc.ticks_from_us(200), || {
        write(
            register::LVT_TIMER,
            TIMER_TSC_DEADLINE | u32::from(vector::APIC_TIMER),
        );
        // The LVT write must be seen before the MSR write (SDM 12.5.4.1).
        mfence();
        let deadline = rdtsc() + lead;
        wrmsr(IA32_TSC_DEADLINE, deadline);
        deadline
    });
    let msr_after = rdmsr(IA32_TSC_DEADLINE);
    write(register::INITIAL_COUNT, 12345);
    let current = read(register::CURRENT_COUNT);
    // Disarm: an armed deadline written back to 0 never fires.
    interrupts::reset();
    wrmsr(IA32_TSC_DEADLINE, rdtsc() + tsc.ticks_from_us(1000));
    wrmsr(IA32_TSC_DEADLINE, 0);
    clock::poll(tsc.ticks_from_us(3000), true, || false);
    let disarmed = interrupts::count(vector::APIC_TIMER);
    stop_timer();
    if shot.count == 0 {
        return fail!(
            "deadline 2 ms ahead: no interrupt in 5 ms; the MSR then read {msr_after:#x}, the current count {current}"
        );
    }
    // `after` counts from the deadline: it must not be negative.
    let late_ns = tsc.ns_from_ticks(shot.after);
    let early = shot.after > u64::MAX / 2;
    let ok = shot.count == 1
        && !early
        && late_ns <= 200_000
        && msr_after == 0
        && current == 0
        && disarmed == 0
        && shot.in_service == 1
        && shot.cleared_by_eoi == 1;
    Outcome::check(
        ok,
        text!(
            "{} interrupt(s), {} the deadline by {} us; MSR then {msr_after:#x}; current count {current}; \
             disarmed by 0: {disarmed} in 3 ms; ISR set {}, clear after EOI {}",
            shot.count,
            if early { "before" } else { "after" },
            if early { tsc.us_from_ticks(shot.after.wrapping_neg()) } else { late_ns / 1000 },
            shot.in_service,
            shot.cleared_by_eoi
        ),
    )
}

/// cpuid-crystal-clock: when CPUID leaf 0x15 gives the TSC/crystal ratio
/// and the crystal's frequency, the TSC runs at crystal * EBX / EAX and
/// the APIC timer at the crystal rate (SDM Vol. 3A, 12.5.4: "the core
/// crystal clock frequency, when ... enumerated in CPUID leaf 0x15").
pub fn probe_crystal(machine: &mut Machine) -> Outcome {
    let max_leaf = cpuid(0, 0).eax;
    let leaf = |number: u32| {
        if max_leaf >= number {
            cpuid(number, 0)
        } else {
            core::arch::x86_64::CpuidResult {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            }
        }
    };
    let (leaf, base_mhz) = (leaf(0x15), leaf(0x16).eax);
    if leaf.eax == 0 || leaf.ebx == 0 || leaf.ecx == 0 {
        // Leaf 0x16's base frequency is shown, not judged: the SDM calls
        // it the processor's specification, not a measured rate.
        return skip!(
            "not offered by CPUID (max basic leaf {max_leaf:#x}; leaf 0x15 EAX {:#x} EBX {:#x} ECX {:#x}; \
             leaf 0x16 EAX {base_mhz} MHz)",
            leaf.eax,
            leaf.ebx,
            leaf.ecx
        );
    }
    let (Some(tsc), Some(apic_hz)) = (machine.tsc(), machine.apic_timer_hz) else {
        return fail!("needs the TSC and APIC timer rates");
    };
    let crystal = u64::from(leaf.ecx);
    let tsc_from_leaf = crystal * u64::from(leaf.ebx) / u64::from(leaf.eax);
    let ok =
        tsc_from_leaf.abs_diff(tsc.hz) * 50 <= tsc.hz && crystal.abs_diff(apic_hz) * 50 <= apic_hz;
    Outcome::check(
        ok,
        text!(
            "crystal {crystal} Hz x {}/{}: TSC {tsc_from_leaf} Hz (measured {}), APIC timer measured {apic_hz} Hz \
             (within 2%)",
            leaf.ebx,
            leaf.eax,
            tsc.hz
        ),
    )
}

/// Polls up to 2 ms with interrupts enabled for `vector`; how many came.
fn wait_for(tsc: Tsc, vector: u8) -> u32 {
    clock::poll(tsc.ticks_from_us(2000), true, || {
        interrupts::count(vector) > 0
    });
    interrupts::count(vector)
}

/// x2apic (when CPUID.1:ECX[21] offers it): IA32_APIC_BASE bit 10 switches
/// to x2APIC mode (SDM Vol. 3A, 12.12.1); the ID MSR (0x802) holds the xAPIC
/// ID, the version MSR (0x803) the same version, the LDR (0x80D) the
/// logical ID derived from the ID (12.12.10.2); a SELF IPI (0x83F) and a
/// self-IPI through the ICR (0x830) arrive with ISR and EOI by MSR; and the
/// timer runs through its MSRs. Runs last: the APIC stays in x2APIC mode.
pub fn probe_x2apic(machine: &mut Machine) -> Outcome {
    let ecx = cpuid(1, 0).ecx;
    if ecx & CPUID_X2APIC == 0 {
        return skip!("not offered by CPUID (CPUID.1:ECX = {ecx:#010x}, bit 21 clear)");
    }
    let (Some(tsc), Some(hz)) = (machine.tsc(), machine.apic_timer_hz) else {
        return fail!("needs the TSC and APIC timer rates");
    };
    machine.quiesce();
    let xapic_id = read(register::ID) >> 24;
    let xapic_version = read(register::VERSION);
    let base = rdmsr(IA32_APIC_BASE);
    wrmsr(IA32_APIC_BASE, base | BASE_ENABLE | BASE_X2APIC);
    X2APIC.store(true, Ordering::Relaxed);
    let base_after = rdmsr(IA32_APIC_BASE);
    let id = read(register::ID);
    let version = read(register::VERSION);
    let ldr = read(register::LDR);
    let expected_ldr = ((id >> 4) << 16) | (1 << (id & 0xf));
    let svr = read(register::SVR);

    interrupts::reset();
    wrmsr(X2APIC_SELF_IPI, u64::from(vector::SELF_IPI));
    let self_ipis = wait_for(tsc, vector::SELF_IPI);
    let self_seen = interrupts::seen();

    interrupts::reset();
    wrmsr(
        X2APIC_MSR_BASE + (register::ICR >> 4),
        u64::from(ICR_SELF | u32::from(vector::ICR_IPI)),
    );
    let icr_ipis = wait_for(tsc, vector::ICR_IPI);
    let icr_seen = interrupts::seen();

    interrupts::reset();
    let from = rdtsc();
    arm_one_shot(vector::APIC_TIMER, (hz / 1000) as u32);
    let timer = wait_for(tsc, vector::APIC_TIMER);
    let timer_us = interrupts::seen()
        .stamps()
        .first()
        .map_or(0, |&at| tsc.us_from_ticks(at - from));
    stop_timer();

    let retired = |seen: &interrupts::Seen| seen.in_service == 1 && seen.cleared_by_eoi == 1;
    let ok = base_after & BASE_X2APIC != 0
        && id == xapic_id
        && version == xapic_version
        && ldr == expected_ldr
        && svr & SVR_ENABLE != 0
        && self_ipis == 1
        && retired(&self_seen)
        && icr_ipis == 1
        && retired(&icr_seen)
        && timer == 1
        && (900..=1500).contains(&timer_us);
    Outcome::check(
        ok,
        text!(
            "IA32_APIC_BASE {base_after:#x}; ID {id} (xAPIC {xapic_id}), version {version:#x}, LDR {ldr:#x}; \
             SELF IPI {self_ipis}, ICR self-IPI {icr_ipis} (ISR/EOI {}/{} {}/{}); 1 ms timer: {timer} after {timer_us} us",
            self_seen.in_service,
            self_seen.cleared_by_eoi,
            icr_seen.in_service,
            icr_seen.cleared_by_eoi
        ),
    )
}
