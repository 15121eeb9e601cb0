//! isolation: probes of what one VM can leave behind for another, and of
//! exit handling that loses or misplaces guest state. Run two copies,
//! `iso-a` then `iso-b` (`guest-blobs/isolation.toml`); the name picks the
//! role. VM 1 runs first, so:
//!
//! - `iso-a` sets CR0.CD|NW, CR8 = 0xF and DR7 = 0x401 (DR0 on an address
//!   it never executes), yields three times — `iso-b` runs in between — and
//!   checks that it reads back what it wrote; then it probes CR8's reserved
//!   bits, IA32_DEBUGCTL, XSETBV with partial AMX/AVX-512/MPX sets, INS/OUTS
//!   with non-zero DS/ES bases in 64-bit mode and with an element that
//!   straddles into a not-present page, and that every MSR that CPUID
//!   advertises is readable.
//! - `iso-b` reads its own CR0, CR8 and DR7 while `iso-a` holds its values
//!   (it never set any) and must see the reset values; last it clears CR0.PG
//!   in 64-bit mode together with NE (so that the MOV exits), which must be
//!   #GP(0).
//!
//! One line per probe (`isolation: PASS <probe>: …` or `isolation: FAIL
//! <probe>: expected …, got …`), a summary, exit code 0 only if all passed.
#![no_std]
#![no_main]

use core::arch::x86_64::{__cpuid, __cpuid_count};

use guest_rt::idt::{vector, Fault};
use guest_rt::report::{Report, Shown, GP0};
use guest_rt::{println, probe, vm_info};

guest_rt::entry!(main);

const CR0_NE: u64 = 1 << 5;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
const CR4_OSXSAVE: u64 = 1 << 18;
/// DR7 with L0 set (bit 0) and the always-one bit 10.
const DR7_L0: u64 = 0x401;
const DR7_RESET: u64 = 0x400;
/// DR0 for the probes: an address in guest RAM this guest never executes.
const DR0_TARGET: u64 = 0x1f_f000;
const IA32_DEBUGCTL: u32 = 0x1d9;
const DEBUGCTL_BTF: u64 = 1 << 1;
const NO_DEVICE_PORT: u16 = 0x2f0;

fn main() -> u64 {
    let info = vm_info();
    let name = info.as_ref().map_or("?", |info| info.name());
    guest_rt::idt::install("isolation");
    let mut report = Report::new("isolation");
    if name == "iso-a" {
        println!("isolation: I am {name}: I set CR0.CD|NW, CR8 = 0xf, DR7 = 0x401 and yield");
        setter(&mut report);
        own_probes(&mut report);
    } else {
        println!("isolation: I am {name}: I check that I see none of iso-a's CR0/CR8/DR7");
        observer(&mut report);
    }
    report.summary()
}

fn cr0() -> u64 {
    let value: u64;
    // SAFETY: reading CR0 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr0", out(reg) value, options(nomem, nostack)) };
    value
}

fn cr8() -> u64 {
    let value: u64;
    // SAFETY: reading CR8 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr8", out(reg) value, options(nomem, nostack)) };
    value
}

fn dr7() -> u64 {
    let value: u64;
    // SAFETY: reading DR7 has no side effect.
    unsafe { core::arch::asm!("mov {}, dr7", out(reg) value, options(nomem, nostack)) };
    value
}

fn cpuid_exit() {
    // CPUID always exits under VMX.
    let _ = __cpuid(0);
}

/// RDMSR under a probe: the value or the fault.
fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let (low, high): (u32, u32);
    // SAFETY: RDMSR either reads or faults; a #GP is caught.
    let fault = unsafe {
        probe!(1 << vector::GP, ["rdmsr"], in("ecx") msr, inout("eax") 0u32 => low, inout("edx") 0u32 => high)
    };
    match fault {
        Some(fault) => Err(fault),
        None => Ok(u64::from(high) << 32 | u64::from(low)),
    }
}

fn wrmsr(msr: u32, value: u64) -> Option<Fault> {
    // SAFETY: the MSRs written here are debug controls, harmless to set.
    unsafe {
        probe!(1 << vector::GP, ["wrmsr"], in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32)
    }
}

fn setter(r: &mut Report) {
    let before = cr0();
    // SAFETY: caching off for this VM only; DR0/DR7 arm an execute
    // breakpoint on an address this guest never runs; CR8 masks interrupts
    // this guest does not use.
    unsafe {
        core::arch::asm!("mov cr0, {}", in(reg) before | CR0_CD | CR0_NW, options(nostack));
        core::arch::asm!("mov cr8, {}", in(reg) 0xfu64, options(nostack));
        core::arch::asm!("mov dr0, {}", "mov dr7, {}", in(reg) DR0_TARGET, in(reg) DR7_L0, options(nostack));
    }
    cpuid_exit();
    let seen = dr7();
    r.check(
        "dr7-survives-exit",
        seen == DR7_L0,
        format_args!("DR7 {DR7_L0:#x} after a CPUID exit"),
        format_args!("DR7 {seen:#x} after a CPUID exit"),
    );
    for _ in 0..3 {
        let _ = guest_rt::yield_now();
    }
    let (c0, c8, d7) = (cr0(), cr8(), dr7());
    r.check(
        "cr0-cd-nw-kept",
        c0 & (CR0_CD | CR0_NW) == CR0_CD | CR0_NW,
        "CR0.CD = NW = 1 (as I wrote them) after 3 yields",
        format_args!("CR0 {c0:#x} after 3 yields"),
    );
    r.check(
        "cr8-kept",
        c8 == 0xf,
        "CR8 0xf (as I wrote it) after 3 yields",
        format_args!("CR8 {c8:#x} after 3 yields"),
    );
    r.check(
        "dr7-kept",
        d7 == DR7_L0,
        format_args!("DR7 {DR7_L0:#x} (as I wrote it) after 3 yields"),
        format_args!("DR7 {d7:#x} after 3 yields"),
    );
    // SAFETY: back to the reset values.
    unsafe {
        core::arch::asm!("mov cr0, {}", in(reg) before, options(nostack));
        core::arch::asm!("mov cr8, {}", in(reg) 0u64, options(nostack));
        core::arch::asm!("mov dr7, {}", "mov dr0, {}", in(reg) DR7_RESET, in(reg) 0u64, options(nostack));
    }
}

fn observer(r: &mut Report) {
    for round in 0..2 {
        let (c0, c8, d7) = (cr0(), cr8(), dr7());
        r.check(
            if round == 0 {
                "cr0-cd-nw-isolated"
            } else {
                "cr0-cd-nw-isolated-after-yield"
            },
            c0 & (CR0_CD | CR0_NW) == 0,
            "CR0.CD = NW = 0 (I never set them; iso-a did)",
            format_args!("CR0 {c0:#x}"),
        );
        r.check(
            if round == 0 {
                "cr8-isolated"
            } else {
                "cr8-isolated-after-yield"
            },
            c8 == 0,
            "CR8 0 (I never wrote it; iso-a wrote 0xf)",
            format_args!("CR8 {c8:#x}"),
        );
        r.check(
            if round == 0 {
                "dr7-isolated"
            } else {
                "dr7-isolated-after-yield"
            },
            d7 == DR7_RESET,
            "DR7 0x400 (I never wrote it; iso-a wrote 0x401)",
            format_args!("DR7 {d7:#x}"),
        );
        let _ = guest_rt::yield_now();
    }
    // Last, because a hypervisor that accepts it leaves this VM in a state
    // it cannot run in: CR0.PG cleared in 64-bit mode, with NE (owned by
    // tessera, so the MOV exits).
    let value = (cr0() & !CR0_PG) | CR0_NE;
    println!("isolation: clearing CR0.PG in 64-bit mode (CR0 <- {value:#x}); must be #GP(0)");
    // SAFETY: architecturally #GP(0) (SDM Vol. 3A, 10.8.5.4), which is caught.
    let fault = unsafe { probe!(1 << vector::GP, ["mov cr0, {v}"], v = in(reg) value) };
    let after = cr0();
    r.check(
        "pg-clear-in-64-bit-mode",
        fault == GP0 && after & CR0_PG != 0,
        "#GP(0), CR0.PG still 1",
        format_args!("{}, CR0 {after:#x}", Shown(fault)),
    );
}

fn own_probes(r: &mut Report) {
    cr8_reserved(r);
    debugctl(r);
    xsetbv(r);
    string_io_segment_bases(r);
    string_io_straddling(r);
    cpuid_msrs(r);
}

fn cr8_reserved(r: &mut Report) {
    for value in [0x10u64, 1 << 63] {
        // SAFETY: a reserved bit: #GP(0), caught; otherwise CR8 is reset below.
        let fault = unsafe { probe!(1 << vector::GP, ["mov cr8, {v}"], v = in(reg) value) };
        let after = cr8();
        r.check(
            if value == 0x10 {
                "cr8-reserved-bit-4"
            } else {
                "cr8-reserved-bit-63"
            },
            fault == GP0 && after == 0,
            "#GP(0), CR8 still 0",
            format_args!("{}, CR8 {after:#x}", Shown(fault)),
        );
        // SAFETY: the reset value.
        unsafe { core::arch::asm!("mov cr8, {}", in(reg) 0u64, options(nostack)) };
    }
}

/// An RDMSR result as text: the value, or the fault.
struct Msr(Result<u64, Fault>);

impl core::fmt::Display for Msr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(value) => write!(f, "{value:#x}"),
            Err(fault) => write!(f, "{}", Shown(Some(fault))),
        }
    }
}

fn debugctl(r: &mut Report) {
    let read = rdmsr(IA32_DEBUGCTL);
    r.check(
        "debugctl-read",
        read == Ok(0),
        "IA32_DEBUGCTL (0x1d9, architectural) reads 0",
        format_args!("RDMSR {}", Msr(read)),
    );
    let fault = wrmsr(IA32_DEBUGCTL, DEBUGCTL_BTF);
    cpuid_exit();
    let back = rdmsr(IA32_DEBUGCTL);
    r.check(
        "debugctl-btf-survives-exit",
        fault.is_none() && back == Ok(DEBUGCTL_BTF),
        "WRMSR IA32_DEBUGCTL = 0x2 (BTF) accepted, reads 0x2 after a CPUID exit",
        format_args!("WRMSR: {}, then RDMSR {}", Shown(fault), Msr(back)),
    );
    let _ = wrmsr(IA32_DEBUGCTL, 0);
}

fn xgetbv() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: XGETBV of XCR0 with CR4.OSXSAVE set.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") high, options(nomem, nostack))
    };
    u64::from(high) << 32 | u64::from(low)
}

fn xsetbv(r: &mut Report) {
    if __cpuid(1).ecx & (1 << 26) == 0 {
        r.check("xsetbv-partial-sets", true, "", "no XSAVE: skipped");
        return;
    }
    let supported = {
        let leaf = __cpuid_count(0xd, 0);
        u64::from(leaf.edx) << 32 | u64::from(leaf.eax)
    };
    let base = if supported & 4 != 0 { 7 } else { 3 };
    // SAFETY: OSXSAVE, then a valid XCR0.
    unsafe {
        let cr4: u64;
        core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
        core::arch::asm!("mov cr4, {}", in(reg) cr4 | CR4_OSXSAVE, options(nostack));
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") base as u32, in("edx") 0u32, options(nostack));
    }
    for (probe, value) in [
        ("xsetbv-amx-tilecfg-without-tiledata", base | 1 << 17),
        ("xsetbv-amx-tiledata-without-tilecfg", base | 1 << 18),
        ("xsetbv-avx512-opmask-only", base | 0x20),
        ("xsetbv-avx512-zmm-without-opmask", base | 0xc0),
        ("xsetbv-avx512-without-hi16", base | 0x60),
        ("xsetbv-avx512-without-avx", 0x3 | 0xe0),
        ("xsetbv-mpx-bndregs-only", base | 0x8),
        ("xsetbv-mpx-bndcsr-only", base | 0x10),
    ] {
        // SAFETY: an invalid XCR0: #GP(0), caught.
        let fault = unsafe {
            probe!(1 << vector::GP, ["xsetbv"], in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32)
        };
        let after = xgetbv();
        r.check(
            probe,
            fault == GP0 && after == base,
            format_args!("XCR0 = {value:#x}: #GP(0), XCR0 still {base:#x}"),
            format_args!("XCR0 = {value:#x}: {}, XCR0 {after:#x}", Shown(fault)),
        );
        if after != base {
            // SAFETY: back to a valid XCR0.
            unsafe {
                core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") base as u32, in("edx") 0u32, options(nostack))
            };
        }
    }
}

/// Null, 64-bit code (0x08), flat data (0x10) as the hypervisor's GDT has
/// them, and data with base 0x4000_0000 (0x18): in 64-bit mode the CPU
/// ignores DS/ES bases, so INS/OUTS must as well.
static GDT: [u64; 4] = [
    0,
    0x00af_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x40cf_9200_0000_ffff,
];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

static mut INS_BUFFER: [u8; 8] = [0; 8];
static OUTS_BUFFER: [u8; 8] = *b"ignored\n";

fn string_io_segment_bases(r: &mut Report) {
    let mut old = Pointer { limit: 0, base: 0 };
    let new = Pointer {
        limit: (core::mem::size_of_val(&GDT) - 1) as u16,
        base: GDT.as_ptr() as u64,
    };
    // SAFETY: the new GDT has the same code and data descriptors at the
    // same selectors as the hypervisor's, so CS and SS stay valid.
    unsafe {
        core::arch::asm!("sgdt [{}]", in(reg) &mut old, options(nostack));
        core::arch::asm!("lgdt [{}]", in(reg) &new, options(nostack));
    }
    let buffer = core::ptr::addr_of_mut!(INS_BUFFER) as u64;
    let (rdi, rcx): (u64, u64);
    // SAFETY: writes 8 bytes to this guest's buffer (what the CPU would do).
    let fault = unsafe {
        probe!(vector::ALL, ["mov es, {s:x}", "rep insb", "mov es, {d:x}"],
            s = in(reg) 0x18u64, d = in(reg) 0x10u64,
            inout("rdi") buffer => rdi, inout("rcx") 8u64 => rcx, in("dx") NO_DEVICE_PORT)
    };
    // SAFETY: flat data again (a caught fault skipped the MOV above).
    unsafe { core::arch::asm!("mov es, {:x}", in(reg) 0x10u64, options(nostack)) };
    // SAFETY: a plain read of this guest's buffer.
    let bytes = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(INS_BUFFER)) };
    r.check(
        "ins-ignores-es-base-in-64-bit-mode",
        fault.is_none() && bytes == [0xff; 8] && rdi == buffer + 8 && rcx == 0,
        "no fault, 8 x 0xff at RDI, RDI +8, RCX 0",
        format_args!(
            "{}, {bytes:02x?}, RDI +{}, RCX {rcx}",
            Shown(fault),
            rdi.wrapping_sub(buffer)
        ),
    );
    let source = OUTS_BUFFER.as_ptr() as u64;
    let (rsi, rcx): (u64, u64);
    // SAFETY: reads 8 bytes of this guest's buffer.
    let fault = unsafe {
        probe!(vector::ALL, ["mov ds, {s:x}", "rep outsb", "mov ds, {d:x}"],
            s = in(reg) 0x18u64, d = in(reg) 0x10u64,
            inout("rsi") source => rsi, inout("rcx") 8u64 => rcx, in("dx") NO_DEVICE_PORT)
    };
    // SAFETY: flat data again, and the hypervisor's GDT.
    unsafe {
        core::arch::asm!("mov ds, {:x}", in(reg) 0x10u64, options(nostack));
        core::arch::asm!("lgdt [{}]", in(reg) &old, options(nostack));
    }
    r.check(
        "outs-ignores-ds-base-in-64-bit-mode",
        fault.is_none() && rsi == source + 8 && rcx == 0,
        "no fault, RSI +8, RCX 0",
        format_args!(
            "{}, RSI +{}, RCX {rcx}",
            Shown(fault),
            rsi.wrapping_sub(source)
        ),
    );
}

/// Own page tables: the first GiB identity-mapped with 2 MiB pages, and at
/// [`WINDOW`] one present 4 KiB page (the first of [`PAGES`]) followed by a
/// not-present one.
#[repr(C, align(4096))]
struct Tables {
    pml4: [u64; 512],
    pdpt: [u64; 512],
    pd: [u64; 512],
    window_pd: [u64; 512],
    window: [u64; 512],
}

static mut TABLES: Tables = Tables {
    pml4: [0; 512],
    pdpt: [0; 512],
    pd: [0; 512],
    window_pd: [0; 512],
    window: [0; 512],
};

/// Two physically adjacent pages: the first is mapped at WINDOW, the second
/// is not mapped at all (it only catches a write that runs past the first).
#[repr(C, align(4096))]
struct TwoPages([u8; 8192]);
static mut PAGES: TwoPages = TwoPages([0x5a; 8192]);
const WINDOW: u64 = 1 << 30;

fn string_io_straddling(r: &mut Report) {
    const P: u64 = 1;
    const W: u64 = 2;
    // SAFETY: one vCPU; the CPU uses the tables only after the MOV to CR3.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(TABLES) };
    for (index, entry) in tables.pd.iter_mut().enumerate() {
        *entry = ((index as u64) << 21) | 0x80 | W | P;
    }
    tables.window[0] = core::ptr::addr_of!(PAGES) as u64 | W | P;
    tables.window_pd[0] = tables.window.as_ptr() as u64 | W | P;
    tables.pdpt[0] = tables.pd.as_ptr() as u64 | W | P;
    tables.pdpt[1] = tables.window_pd.as_ptr() as u64 | W | P;
    tables.pml4[0] = tables.pdpt.as_ptr() as u64 | W | P;
    let old: u64;
    // SAFETY: the new tables map everything this guest uses, identically.
    unsafe {
        core::arch::asm!("mov {o}, cr3", "mov cr3, {n}", o = out(reg) old, n = in(reg) tables.pml4.as_ptr() as u64, options(nostack))
    };
    let start = WINDOW + 0xffe;
    let expected = Some(Fault {
        vector: vector::PF,
        error_code: 0,
        cr2: WINDOW + 0x1000,
    });
    let rsi: u64;
    // SAFETY: a 4-byte read straddling into a not-present page: #PF, caught.
    let fault = unsafe {
        probe!(vector::ALL, ["outsd"], inout("rsi") start => rsi, in("dx") NO_DEVICE_PORT)
    };
    r.check(
        "outsd-straddling-into-not-present-page",
        fault == expected && rsi == start,
        format_args!("{}, RSI unchanged", Shown(expected)),
        format_args!("{}, RSI +{}", Shown(fault), rsi.wrapping_sub(start)),
    );
    let rdi: u64;
    // SAFETY: a 4-byte write straddling into a not-present page: #PF,
    // caught; a wrong emulation writes into PAGES' second page only.
    let fault = unsafe {
        probe!(vector::ALL, ["insd"], inout("rdi") start => rdi, in("dx") NO_DEVICE_PORT)
    };
    // SAFETY: plain reads of this guest's pages.
    let (last, next) = unsafe {
        let pages = &*core::ptr::addr_of!(PAGES);
        (
            [pages.0[0xffe], pages.0[0xfff]],
            [pages.0[0x1000], pages.0[0x1001]],
        )
    };
    let expected = expected.map(|f| Fault { error_code: 2, ..f });
    r.check(
        "insd-straddling-into-not-present-page",
        fault == expected && rdi == start && last == [0x5a; 2] && next == [0x5a; 2],
        format_args!("{}, RDI unchanged, nothing written", Shown(expected)),
        format_args!(
            "{}, RDI +{}, bytes before the boundary {last:02x?}, in the physical page after it {next:02x?}",
            Shown(fault),
            rdi.wrapping_sub(start)
        ),
    );
    // SAFETY: the hypervisor's tables, unchanged.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) old, options(nostack)) };
}

fn cpuid_msrs(r: &mut Report) {
    let leaf1 = __cpuid(1);
    let max = __cpuid(0).eax;
    let leaf6 = if max >= 6 {
        __cpuid(6)
    } else {
        __cpuid_count(0, 0)
    };
    let leaf6 = if max >= 6 {
        leaf6
    } else {
        core::arch::x86_64::CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        }
    };
    let features: [(&str, &str, bool, &[u32]); 8] = [
        (
            "cpuid-est-msrs",
            "CPUID.1:ECX.EST",
            leaf1.ecx & (1 << 7) != 0,
            &[0x198, 0x199],
        ),
        (
            "cpuid-pdcm-msr",
            "CPUID.1:ECX.PDCM",
            leaf1.ecx & (1 << 15) != 0,
            &[0x345],
        ),
        (
            "cpuid-tm-acpi-msrs",
            "CPUID.1:EDX.ACPI|TM",
            leaf1.edx & (1 << 22 | 1 << 29) != 0,
            &[0x19a, 0x19b, 0x19c],
        ),
        (
            "cpuid-tm2-msr",
            "CPUID.1:ECX.TM2",
            leaf1.ecx & (1 << 8) != 0,
            &[0x19d],
        ),
        (
            "cpuid-aperf-mperf-msrs",
            "CPUID.6:ECX.APERFMPERF",
            leaf6.ecx & 1 != 0,
            &[0xe7, 0xe8],
        ),
        (
            "cpuid-epb-msr",
            "CPUID.6:ECX.EPB",
            leaf6.ecx & (1 << 3) != 0,
            &[0x1b0],
        ),
        (
            "cpuid-dts-msr",
            "CPUID.6:EAX.DTS",
            leaf6.eax & 1 != 0,
            &[0x19c],
        ),
        (
            "cpuid-ptm-msrs",
            "CPUID.6:EAX.PTM",
            leaf6.eax & (1 << 6) != 0,
            &[0x1b1, 0x1b2],
        ),
    ];
    for (probe, feature, advertised, msrs) in features {
        if !advertised {
            r.check(probe, true, "", format_args!("{feature} not advertised"));
            continue;
        }
        let mut faulting = [0u32; 3];
        let mut count = 0;
        for &msr in msrs {
            if rdmsr(msr).is_err() {
                faulting[count] = msr;
                count += 1;
            }
        }
        r.check(
            probe,
            count == 0,
            format_args!("{feature} is advertised, so MSRs {msrs:x?} are readable"),
            format_args!(
                "{feature} advertised, RDMSR #GP for {:x?}",
                &faulting[..count]
            ),
        );
    }
}
