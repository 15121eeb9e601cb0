//! xstate: checks that the hypervisor keeps each VM's FPU/SSE/AVX state
//! (xmm0-15, the upper halves of ymm0-15, the x87 control word and stack,
//! MXCSR) and XCR0 across VM switches, and that it refuses invalid XSETBVs.
//!
//! Run two or more copies side by side: each fills the registers with a
//! pattern derived from its VM id (from VM_INFO), yields so that the others
//! run and load their own patterns into the same physical registers, and
//! checks after every YIELD that its own values are back.
//!
//! The guest is entered with CR4 = PAE only and XCR0 = 1 (x87). It loads an
//! IDT that reports any exception (guest-rt's [`guest_rt::idt`]), enables SSE itself
//! (CR4.OSFXSR/OSXMMEXCPT, CR0.MP, CR0.EM clear), then:
//!
//! 1. checks that the vector registers start out zero (the reset state), not
//!    holding another VM's values;
//! 2. phase 1: with XCR0 still 1 — the state of any guest that uses SSE
//!    without XSAVE — fills xmm0-15, the x87 unit and MXCSR and checks them
//!    across [`PHASE1_YIELDS`] yields;
//! 3. if CPUID has XSAVE, sets CR4.OSXSAVE and XCR0 = 7 (x87|SSE|AVX; 3 without
//!    AVX), reads it back with XGETBV, and checks that invalid XSETBVs (XCR0 =
//!    4, XCR0 = 0, XCR1) raise #GP and leave XCR0 alone;
//! 4. phase 2: fills xmm0-15 and the upper halves of ymm0-15 (with AVX) and
//!    checks them, the x87 state, MXCSR and XCR0 across [`PHASE2_YIELDS`] yields;
//! 5. phase 3: checks the same state in a loop without yielding, across
//!    [`PREEMPTIONS`] preemption-timer switches (seen as TSC gaps).
//!
//! A failed check prints a line and the guest goes on to the next step, so
//! one run shows every problem; it exits with 1 if anything failed.
#![no_std]
#![no_main]

mod regs;

use core::arch::x86_64::{__cpuid, __cpuid_count};

use guest_rt::idt::vector;
use guest_rt::{println, vm_info, yield_now};
use regs::State;

guest_rt::entry!(main);

/// YIELDs in phase 1 (SSE with XCR0 = 1).
const PHASE1_YIELDS: u32 = 100;
/// YIELDs in phase 2 (XCR0 = 7).
const PHASE2_YIELDS: u32 = 200;

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const CPUID1_ECX_XSAVE: u32 = 1 << 26;
const CPUID1_ECX_OSXSAVE: u32 = 1 << 27;
const CPUID1_ECX_AVX: u32 = 1 << 28;
const XCR0_X87: u64 = 1 << 0;
const XCR0_SSE: u64 = 1 << 1;
const XCR0_AVX: u64 = 1 << 2;

fn main() -> u64 {
    let info = match vm_info() {
        Ok(info) => info,
        Err(error) => {
            println!("xstate: VM_INFO failed: {error:?}");
            return 1;
        }
    };
    let id = info.id;
    let pattern = pattern_byte(id);
    println!(
        "xstate: I am VM {id} \"{}\"; my pattern byte is {pattern:#04x}",
        info.name()
    );
    // Any exception becomes a line and exit 1; only the #GP of the invalid-
    // XSETBV probes below is caught and stepped over.
    guest_rt::idt::install("xstate");
    let mut failed = false;

    let leaf1 = __cpuid(1);
    let has_xsave = leaf1.ecx & CPUID1_ECX_XSAVE != 0;
    let has_avx = leaf1.ecx & CPUID1_ECX_AVX != 0;
    let supported_xcr0 = if has_xsave && __cpuid(0).eax >= 0xd {
        let leaf = __cpuid_count(0xd, 0);
        (u64::from(leaf.edx) << 32) | u64::from(leaf.eax)
    } else {
        XCR0_X87
    };
    println!(
        "xstate: CPUID: XSAVE {}, AVX {}, XCR0 may hold {supported_xcr0:#x}",
        yes_no(has_xsave),
        yes_no(has_avx)
    );
    if has_xsave && leaf1.ecx & CPUID1_ECX_OSXSAVE != 0 {
        // Not fatal: nothing below depends on it.
        println!(
            "xstate: note: CPUID.1:ECX.OSXSAVE reads 1 before I set CR4.OSXSAVE \
             (it should mirror the guest's CR4)"
        );
    }

    // SAFETY: the guest runs at CPL 0; the bits changed enable SSE and
    // affect nothing the compiler relies on (it emits no FP code).
    unsafe { enable_sse() };
    println!("xstate: SSE enabled (CR4.OSFXSR|OSXMMEXCPT, CR0.MP, CR0.EM clear)");

    // The vector registers of a freshly started VM are in their reset state.
    let mut initial = State::zeroed();
    // SAFETY: SSE is enabled.
    unsafe { regs::store(&mut initial, false) };
    if let Some((index, lanes)) = initial
        .vectors
        .iter()
        .enumerate()
        .find(|(_, lanes)| lanes[0] != 0 || lanes[1] != 0)
    {
        // `value` puts the id in byte 3 and the id's pattern byte in bytes 4-7.
        let owner = (lanes[0] >> 24 & 0xff) as u32;
        let foreign =
            owner != id & 0xff && lanes[0] >> 32 == u64::from(pattern_byte(owner)) * 0x0101_0101;
        let owner = if foreign {
            " (it looks like another VM's pattern)"
        } else {
            ""
        };
        println!(
            "xstate: xmm{index} is {} at start, before I wrote it; expected 0 (the reset state){owner}",
            hex128(lanes[1], lanes[0])
        );
        failed = true;
    } else {
        println!("xstate: xmm0-15 are zero at start");
    }

    // Phase 1: SSE without XSAVE, XCR0 = 1.
    println!("xstate: phase 1: xmm0-15, x87 and MXCSR with XCR0 = 0x1, {PHASE1_YIELDS} yields");
    let expected = pattern_state(id, 1, false);
    // SAFETY: SSE is enabled; FCW and MXCSR come from `pattern_state`.
    unsafe { regs::load(&expected, false) };
    if check_yields(&expected, false, None, PHASE1_YIELDS) {
        println!(
            "xstate: phase 1: {PHASE1_YIELDS} yields, xmm0-15, x87 and MXCSR intact with XCR0 = 0x1"
        );
    } else {
        failed = true;
    }

    // XSAVE: XCR0 for SSE and AVX, and the invalid values that must be refused.
    let mut xcr0 = XCR0_X87;
    if has_xsave {
        xcr0 = XCR0_X87 | XCR0_SSE;
        if has_avx && supported_xcr0 & XCR0_AVX != 0 {
            xcr0 |= XCR0_AVX;
        }
        // SAFETY: CPUID reports XSAVE; XCR0 holds only supported bits in a
        // valid combination. A #GP here is reported by the IDT (exit 1).
        unsafe { enable_xsave(xcr0) };
        let read = xgetbv(0);
        if read == xcr0 {
            println!("xstate: XCR0 = {xcr0:#x} (XSETBV, read back with XGETBV)");
        } else {
            println!("xstate: XSETBV of XCR0 = {xcr0:#x} reads back as {read:#x}");
            failed = true;
        }
        if !check_invalid_xsetbv(xcr0) {
            failed = true;
        }
    } else {
        println!("xstate: no XSAVE: XCR0 stays {xcr0:#x}");
    }

    // Phase 2: XCR0 = 7 (or what the CPU allows), AVX upper halves too.
    let avx = xcr0 & XCR0_AVX != 0;
    println!(
        "xstate: phase 2: {} with XCR0 = {xcr0:#x}, {PHASE2_YIELDS} yields",
        if avx {
            "ymm0-15, x87 and MXCSR"
        } else {
            "xmm0-15, x87 and MXCSR"
        }
    );
    let expected = pattern_state(id, 2, avx);
    // SAFETY: SSE is enabled, and AVX too when `avx`; FCW and MXCSR come
    // from `pattern_state`.
    unsafe { regs::load(&expected, avx) };
    let checked_xcr0 = has_xsave.then_some(xcr0);
    if check_yields(&expected, avx, checked_xcr0, PHASE2_YIELDS) {
        if avx {
            println!(
                "xstate: {PHASE2_YIELDS} yields, xmm0-15 and ymm upper halves intact \
                 (pattern {pattern:#04x}); x87 FCW/ST0/ST1, MXCSR and XCR0 too"
            );
        } else {
            println!(
                "xstate: {PHASE2_YIELDS} yields, xmm0-15 intact (pattern {pattern:#04x}; \
                 AVX not available, checked XMM only); x87 FCW/ST0/ST1 and MXCSR too"
            );
        }
    } else {
        failed = true;
    }

    // Phase 3: the same state across preemptions rather than yields.
    if !check_preemptions(&expected, avx, checked_xcr0) {
        failed = true;
    }

    if failed {
        println!("xstate: FAILED (see above)");
        1
    } else {
        println!("xstate: all checks passed");
        0
    }
}

/// The byte that identifies VM `id`'s pattern: 0x11 × id.
fn pattern_byte(id: u32) -> u8 {
    (id as u8).wrapping_mul(0x11)
}

/// Lane `lane` (0-3, low first) of ymm`register` in phase `phase`: the
/// pattern byte four times in the high half, then the id's low byte, the
/// phase, the register and the lane — e.g. 0x11111111_01020301 for VM 1,
/// phase 2, ymm3, lane 1. Unique per VM (for ids below 256), phase, register
/// and lane.
fn value(id: u32, phase: u8, register: usize, lane: usize) -> u64 {
    let high = u64::from(pattern_byte(id)) * 0x0101_0101;
    (high << 32)
        | u64::from(id & 0xff) << 24
        | u64::from(phase) << 16
        | (register as u64) << 8
        | lane as u64
}

/// What VM `id` loads in `phase`. The x87 control word keeps every exception
/// masked with 64-bit precision; its rounding mode and MXCSR's rounding and
/// flush-to-zero bits come from the id alone (not the phase, so that one VM's
/// phase 1 cannot match another's phase 2), so VMs whose ids differ mod 8
/// differ there too.
fn pattern_state(id: u32, phase: u8, avx: bool) -> State {
    let mut state = State::zeroed();
    for (register, lanes) in state.vectors.iter_mut().enumerate() {
        let used = if avx { 4 } else { 2 };
        for (lane, slot) in lanes.iter_mut().enumerate().take(used) {
            *slot = value(id, phase, register, lane);
        }
    }
    let tag = i64::from(id & 0xffff) << 16 | i64::from(phase) << 8;
    state.st = [
        0x5EED_0000_0000_0000 | tag,
        -(0x0BAD_0000_0000_0000 | tag | 1),
    ];
    let mode = id.wrapping_add(1) & 7;
    state.fcw = 0x037f | ((mode & 3) as u16) << 10;
    state.mxcsr = 0x1f80 | mode << 13;
    state
}

/// YIELDs `yields` times, after each comparing the registers (and XCR0, if
/// given) with `expected`. Prints the first mismatch and returns false then.
fn check_yields(expected: &State, avx: bool, xcr0: Option<u64>, yields: u32) -> bool {
    let mut actual = State::zeroed();
    for yield_number in 1..=yields {
        if let Err(error) = yield_now() {
            println!("xstate: YIELD {yield_number} failed: {error:?}");
            return false;
        }
        // SAFETY: `load` was called with the same `avx`, so SSE (and AVX) are on.
        unsafe { regs::store(&mut actual, avx) };
        let mut ok = compare(
            expected,
            &actual,
            avx,
            &format_args!("after yield {yield_number}"),
        );
        if let Some(xcr0) = xcr0 {
            let read = xgetbv(0);
            if read != xcr0 {
                println!(
                    "xstate: MISMATCH in XCR0 after yield {yield_number}: got {read:#x} expected {xcr0:#x}"
                );
                ok = false;
            }
        }
        if !ok {
            return false;
        }
    }
    true
}

/// Phase 3 stops after this many preemptions...
const PREEMPTIONS: u32 = 5;
/// ...or after this many checks.
const SPIN_CHECKS: u32 = 100_000;
/// A TSC gap between two consecutive checks longer than this means another
/// VM ran in between (a check takes a few thousand cycles at most; a time
/// slice is milliseconds; under Bochs the TSC counts instructions).
const PREEMPTION_GAP: u64 = 200_000;

/// Checks the registers (and XCR0, if given) against `expected` over and
/// over without yielding, so that the hypervisor's preemption timer switches
/// VMs in the middle of the guest's code, until [`PREEMPTIONS`] TSC gaps were
/// seen or [`SPIN_CHECKS`] checks were done. False after a mismatch; seeing
/// no preemption (the other VMs may have finished) is not a failure.
fn check_preemptions(expected: &State, avx: bool, xcr0: Option<u64>) -> bool {
    println!(
        "xstate: phase 3: checking without yielding until preempted {PREEMPTIONS} times \
         (at most {SPIN_CHECKS} checks)"
    );
    let mut actual = State::zeroed();
    let mut preemptions = 0;
    let mut last = rdtsc();
    for check in 1..=SPIN_CHECKS {
        // SAFETY: `load` was called with the same `avx`, so SSE (and AVX) are on.
        unsafe { regs::store(&mut actual, avx) };
        let now = rdtsc();
        if now.wrapping_sub(last) > PREEMPTION_GAP {
            preemptions += 1;
        }
        last = now;
        let mut ok = true;
        if actual != *expected {
            ok = compare(
                expected,
                &actual,
                avx,
                &format_args!("at check {check} after {preemptions} preemptions"),
            );
        }
        if let Some(xcr0) = xcr0 {
            let read = xgetbv(0);
            if read != xcr0 {
                println!(
                    "xstate: MISMATCH in XCR0 at check {check}, after {preemptions} preemptions: \
                     got {read:#x} expected {xcr0:#x}"
                );
                ok = false;
            }
        }
        if !ok {
            return false;
        }
        if preemptions == PREEMPTIONS {
            println!(
                "xstate: phase 3: preempted {preemptions} times in {check} checks, state intact"
            );
            return true;
        }
    }
    println!(
        "xstate: phase 3: preempted {preemptions} times in {SPIN_CHECKS} checks, state intact \
         (no other VM running?)"
    );
    true
}

/// The time-stamp counter.
fn rdtsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear at CPL 0 anyway).
    unsafe {
        core::arch::asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// Compares the checked registers; on a difference prints the first one and
/// a summary of all (`when` says when, e.g. "after yield 3"), and returns false.
fn compare(expected: &State, actual: &State, avx: bool, when: &dyn core::fmt::Display) -> bool {
    if expected == actual {
        return true;
    }
    let mut first = true;
    let mut report = |what: core::fmt::Arguments,
                      got: &dyn core::fmt::Display,
                      want: &dyn core::fmt::Display| {
        if first {
            println!("xstate: MISMATCH in {what} {when}: got {got} expected {want}");
            first = false;
        }
    };
    let (mut bad_xmm, mut bad_high) = (0u32, 0u32);
    for (index, (want, got)) in expected.vectors.iter().zip(&actual.vectors).enumerate() {
        if want[..2] != got[..2] {
            bad_xmm |= 1 << index;
            report(
                format_args!("xmm{index}"),
                &Hex128(got[1], got[0]),
                &Hex128(want[1], want[0]),
            );
        }
    }
    if avx {
        for (index, (want, got)) in expected.vectors.iter().zip(&actual.vectors).enumerate() {
            if want[2..] != got[2..] {
                bad_high |= 1 << index;
                report(
                    format_args!("ymm{index}[255:128]"),
                    &Hex128(got[3], got[2]),
                    &Hex128(want[3], want[2]),
                );
            }
        }
    }
    let x87_ok = expected.st == actual.st && expected.fcw == actual.fcw;
    if expected.fcw != actual.fcw {
        report(
            format_args!("x87 FCW"),
            &Hex(actual.fcw.into()),
            &Hex(expected.fcw.into()),
        );
    }
    for (index, (want, got)) in expected.st.iter().zip(&actual.st).enumerate() {
        if want != got {
            report(
                format_args!("x87 ST{index}"),
                &Hex(*got as u64),
                &Hex(*want as u64),
            );
        }
    }
    if expected.mxcsr != actual.mxcsr {
        report(
            format_args!("MXCSR"),
            &Hex(actual.mxcsr.into()),
            &Hex(expected.mxcsr.into()),
        );
    }
    println!(
        "xstate: {when}: {} of 16 xmm differ (mask {bad_xmm:#06x}){}, x87 {}, MXCSR {}",
        bad_xmm.count_ones(),
        if avx {
            Summary::High(bad_high)
        } else {
            Summary::None
        },
        if x87_ok { "ok" } else { "differs" },
        if expected.mxcsr == actual.mxcsr {
            "ok"
        } else {
            "differs"
        },
    );
    false
}

/// The ymm-upper-half part of the summary line.
enum Summary {
    None,
    High(u32),
}

impl core::fmt::Display for Summary {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Summary::None => Ok(()),
            Summary::High(mask) => write!(
                f,
                ", {} of 16 ymm upper halves differ (mask {mask:#06x})",
                mask.count_ones()
            ),
        }
    }
}

/// A 64-bit value in hex.
struct Hex(u64);

impl core::fmt::Display for Hex {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A 128-bit value (high, low) in hex, with an underscore between the halves.
struct Hex128(u64, u64);

impl core::fmt::Display for Hex128 {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "0x{:016x}_{:016x}", self.0, self.1)
    }
}

fn hex128(high: u64, low: u64) -> Hex128 {
    Hex128(high, low)
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// Sets CR4.OSFXSR and CR4.OSXMMEXCPT, sets CR0.MP and clears CR0.EM and
/// CR0.TS: SSE instructions and FXSAVE-style state from here on.
///
/// # Safety
///
/// CPL 0; nothing may rely on SSE being off.
unsafe fn enable_sse() {
    // SAFETY: the caller vouches for CPL 0; the new values only enable SSE.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0",
            "and {t}, {clear0}",
            "or {t}, {set0}",
            "mov cr0, {t}",
            "mov {t}, cr4",
            "or {t}, {set4}",
            "mov cr4, {t}",
            t = out(reg) _,
            clear0 = in(reg) !(CR0_EM | CR0_TS),
            set0 = const CR0_MP,
            set4 = const CR4_OSFXSR | CR4_OSXMMEXCPT,
            options(nomem, nostack),
        );
    }
}

/// Sets CR4.OSXSAVE and XCR0 = `xcr0`.
///
/// # Safety
///
/// CPL 0, XSAVE supported, `xcr0` a valid value for this CPU; the current
/// x87/SSE state stays valid (no register state is lost by enabling more).
unsafe fn enable_xsave(xcr0: u64) {
    // SAFETY: the caller vouches for support and the value.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr4",
            "or {t}, {set4}",
            "mov cr4, {t}",
            "xsetbv",
            t = out(reg) _,
            set4 = const CR4_OSXSAVE,
            in("ecx") 0,
            in("eax") xcr0 as u32,
            in("edx") (xcr0 >> 32) as u32,
            options(nomem, nostack),
        );
    }
}

/// XGETBV(`xcr`). Needs CR4.OSXSAVE (else #UD, reported by the IDT).
fn xgetbv(xcr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: XGETBV only reads; without CR4.OSXSAVE it faults into the IDT.
    unsafe {
        core::arch::asm!(
            "xgetbv",
            in("ecx") xcr,
            out("eax") low,
            out("edx") high,
            options(nomem, nostack, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// XSETBVs that the hypervisor must refuse with #GP: XCR0 = 4 (AVX without
/// x87 and SSE), XCR0 = 0 (no x87), and XCR1 (not writable). Each must also
/// leave XCR0 at `xcr0`. Prints the result; true if all were refused.
fn check_invalid_xsetbv(xcr0: u64) -> bool {
    const CASES: [(&str, u32, u64); 3] = [
        ("XCR0 = 0x4", 0, XCR0_AVX),
        ("XCR0 = 0x0", 0, 0),
        ("XCR1 = 0x1", 1, 1),
    ];
    let mut ok = true;
    for (name, xcr, value) in CASES {
        // SAFETY: should the hypervisor accept it, XCR0 is restored below
        // before any AVX instruction (a guest-only effect either way).
        let refused = unsafe { xsetbv_faults(xcr, value) };
        let after = xgetbv(0);
        if !refused {
            println!("xstate: invalid XSETBV was accepted! ({name}; XCR0 now reads {after:#x})");
            ok = false;
        }
        if after != xcr0 {
            println!("xstate: XCR0 changed to {after:#x} by the invalid XSETBV ({name}); restoring {xcr0:#x}");
            ok = false;
        }
        if !refused || after != xcr0 {
            // SAFETY: back to the valid value set before.
            unsafe { enable_xsave(xcr0) };
        }
    }
    if ok {
        println!("xstate: invalid XSETBV refused with #GP (XCR0 = 0x4, XCR0 = 0x0, XCR1 = 0x1), XCR0 unchanged");
    }
    ok
}

/// Executes XSETBV(`xcr`, `value`) and tells whether it raised #GP. Needs
/// CR4.OSXSAVE (else XSETBV raises #UD, which guest-rt's IDT reports, exit 1).
///
/// # Safety
///
/// If the hypervisor accepts the value, it becomes this VM's XCR*n*: the
/// caller must be ready for that (e.g. set a valid XCR0 again).
unsafe fn xsetbv_faults(xcr: u32, value: u64) -> bool {
    // SAFETY: the probe only executes XSETBV; a #GP resumes after it, and the
    // caller accepts the effect of a successful one.
    let fault = unsafe {
        guest_rt::probe!(
            1 << vector::GP,
            ["xsetbv"],
            in("ecx") xcr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack),
        )
    };
    fault.is_some()
}
