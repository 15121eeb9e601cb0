//! hostile: an adversarial guest. It misuses what a guest can reach of the
//! hypervisor — VMX instructions, MSRs, control registers, XSETBV,
//! hypercalls with bad buffers, string I/O, cache and monitor instructions,
//! CPUID — and checks that each gets the architectural answer (#UD, #GP, an
//! error code) rather than crashing, hanging or confusing the hypervisor.
//! Then it triple-faults on purpose, which must stop this VM alone.
//!
//! Every probe prints one line
//! `hostile: <probe>: <what happened> (expected <what>) ok|FAIL`; a fault is
//! caught by guest-rt's IDT, which records the vector and resumes after the
//! probe ([`guest_rt::probe!`]). The expectations are what tessera does
//! today (see `kernel/src/vmm/exits.rs` and its neighbours). After
//! `hostile: N probes, M failed` it loads an empty IDT and executes INT3
//! (#BP, then #GP, #DF: a triple fault) — or, if any probe failed, exits
//! with code 1 instead, so that a failure shows as a different summary row.
#![no_std]
#![no_main]

use core::arch::x86_64::__cpuid;
use core::fmt::{self, Display};

use guest_rt::hypercall::{self, number};
use guest_rt::idt::{vector, Fault};
use guest_rt::{println, probe, vm_info};

guest_rt::entry!(main);

const CR4_VMXE: u64 = 1 << 13;
const CR4_OSXSAVE: u64 = 1 << 18;
const CPUID1_ECX_VMX: u32 = 1 << 5;
const CPUID1_ECX_XSAVE: u32 = 1 << 26;
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;
const IA32_TSC: u32 = 0x10;
const IA32_FEATURE_CONTROL: u32 = 0x3a;
const IA32_PAT: u32 = 0x277;
const IA32_EFER: u32 = 0xc000_0080;
const COM1: u16 = 0x3f8;
/// A port no device of tessera claims: reads as all ones, writes dropped.
const NO_DEVICE_PORT: u16 = 0x2f0;
/// Assumed when VM_INFO fails (which counts as a failed probe).
const DEFAULT_RAM: u64 = 2 << 20;

fn main() -> u64 {
    let mut tally = Tally::default();
    let ram = match vm_info() {
        Ok(info) => {
            println!(
                "hostile: I am VM {} \"{}\" with {} KiB of RAM; probing the hypervisor",
                info.id,
                info.name(),
                info.memory_bytes / 1024
            );
            info.memory_bytes
        }
        Err(error) => {
            tally.record(
                "VM_INFO with a 48-byte buffer",
                &format_args!("{error:?}"),
                &"48",
                false,
            );
            println!("hostile: assuming {DEFAULT_RAM:#x} bytes of RAM");
            DEFAULT_RAM
        }
    };
    // Let the other VMs start first, so that everything below happens while
    // they are in the middle of their work.
    if let Err(error) = guest_rt::yield_now() {
        println!("hostile: YIELD failed: {error:?}");
    }
    guest_rt::idt::install("hostile");

    vmx_instructions(&mut tally);
    msrs(&mut tally);
    control_registers(&mut tally);
    xsetbv(&mut tally);
    hypercalls(&mut tally, ram);
    string_io(&mut tally, ram);
    cache_and_monitor(&mut tally);
    cpuid(&mut tally);

    println!("hostile: {} probes, {} failed", tally.probes, tally.failed);
    if tally.failed != 0 {
        return 1;
    }
    println!("hostile: now triple-faulting on purpose (empty IDT, INT3)");
    triple_fault()
}

/// Counts the probes and prints their lines.
#[derive(Default)]
struct Tally {
    probes: u32,
    failed: u32,
}

impl Tally {
    fn record(&mut self, probe: impl Display, got: &dyn Display, expected: &dyn Display, ok: bool) {
        self.probes += 1;
        if !ok {
            self.failed += 1;
        }
        let verdict = if ok { "ok" } else { "FAIL" };
        println!("hostile: {probe}: {got} (expected {expected}) {verdict}");
    }

    /// A probe that must raise `expected`.
    fn fault(&mut self, probe: impl Display, got: Option<Fault>, expected: u8) {
        let ok = got.map(|fault| fault.vector) == Some(expected);
        self.record(probe, &Outcome(got), &guest_rt::idt::name(expected), ok);
    }

    /// A probe that must not fault.
    fn no_fault(&mut self, probe: impl Display, got: Option<Fault>) {
        self.record(probe, &Outcome(got), &"no fault", got.is_none());
    }

    /// A probe whose result must equal `expected`.
    fn value<T: PartialEq + fmt::LowerHex>(
        &mut self,
        probe: impl Display,
        got: Result<T, Fault>,
        expected: T,
    ) {
        let ok = got.as_ref().is_ok_and(|value| *value == expected);
        self.record(probe, &Value(&got), &Hex(&expected), ok);
    }

    /// A hypercall that must return `expected`.
    fn hypercall(&mut self, probe: impl Display, got: i64, expected: i64) {
        self.record(probe, &got, &expected, got == expected);
    }
}

/// A fault or its absence, as a probe line shows it.
struct Outcome(Option<Fault>);

impl Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            None => f.write_str("no fault"),
            Some(fault) if has_error_code(fault.vector) => {
                write!(f, "{}, error code {:#x}", fault.name(), fault.error_code)
            }
            Some(fault) => f.write_str(fault.name()),
        }
    }
}

/// Whether the CPU pushes an error code for `vector` (SDM Vol. 3A, 6.13).
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// A value in hex.
struct Hex<'a, T>(&'a T);

impl<T: fmt::LowerHex> Display for Hex<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A value in hex, or the fault that came instead.
struct Value<'a, T>(&'a Result<T, Fault>);

impl<T: fmt::LowerHex> Display for Value<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Ok(value) => write!(f, "{value:#x}"),
            Err(fault) => Outcome(Some(*fault)).fmt(f),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. VMX instructions: tessera does not nest, so each is #UD.

/// A page for the VMX instructions' memory operands; never actually touched,
/// since every one of them must fault first.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut VMX_PAGE: Page = Page([0; 4096]);

fn vmx_instructions(t: &mut Tally) {
    let region = core::ptr::addr_of_mut!(VMX_PAGE) as u64;
    // The m64 operand of VMXON/VMCLEAR/VMPTRLD/VMPTRST: a physical address.
    let mut operand: u64 = region;
    let operand = &raw mut operand;
    // An INVEPT/INVVPID descriptor (m128).
    let descriptor = [0u64; 2];
    let descriptor = &raw const descriptor;
    let ud = vector::UD;
    // SAFETY (all below): each instruction raises #UD, which the probe
    // catches; none of them reaches its memory operand, which would anyway be
    // a live local or a static page of this guest.
    t.fault(
        "VMXON",
        unsafe { probe!(vector::ALL, ["vmxon qword ptr [{p}]"], p = in(reg) operand) },
        ud,
    );
    t.fault("VMXOFF", unsafe { probe!(vector::ALL, ["vmxoff"]) }, ud);
    t.fault(
        "VMCLEAR",
        unsafe { probe!(vector::ALL, ["vmclear qword ptr [{p}]"], p = in(reg) operand) },
        ud,
    );
    t.fault(
        "VMPTRLD",
        unsafe { probe!(vector::ALL, ["vmptrld qword ptr [{p}]"], p = in(reg) operand) },
        ud,
    );
    t.fault(
        "VMPTRST",
        unsafe { probe!(vector::ALL, ["vmptrst qword ptr [{p}]"], p = in(reg) operand) },
        ud,
    );
    t.fault(
        "VMREAD (guest RIP)",
        unsafe {
            probe!(
                vector::ALL,
                ["vmread {value}, {field}"],
                value = out(reg) _,
                field = in(reg) 0x681e_u64,
            )
        },
        ud,
    );
    t.fault(
        "VMWRITE (guest RIP)",
        unsafe {
            probe!(
                vector::ALL,
                ["vmwrite {field}, {value}"],
                value = in(reg) 0_u64,
                field = in(reg) 0x681e_u64,
            )
        },
        ud,
    );
    t.fault("VMLAUNCH", unsafe { probe!(vector::ALL, ["vmlaunch"]) }, ud);
    t.fault("VMRESUME", unsafe { probe!(vector::ALL, ["vmresume"]) }, ud);
    t.fault(
        "INVEPT (all contexts)",
        unsafe {
            probe!(
                vector::ALL,
                ["invept {kind}, xmmword ptr [{d}]"],
                kind = in(reg) 2_u64,
                d = in(reg) descriptor,
            )
        },
        ud,
    );
    t.fault(
        "INVVPID (all contexts)",
        unsafe {
            probe!(
                vector::ALL,
                ["invvpid {kind}, xmmword ptr [{d}]"],
                kind = in(reg) 2_u64,
                d = in(reg) descriptor,
            )
        },
        ud,
    );
    t.fault(
        "VMFUNC 0",
        unsafe { probe!(vector::ALL, ["vmfunc"], in("eax") 0, in("ecx") 0) },
        ud,
    );
}

// ---------------------------------------------------------------------------
// 2. MSRs.

fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let (low, high): (u32, u32);
    // SAFETY: RDMSR only reads; a #GP is caught.
    let fault = unsafe {
        probe!(
            vector::ALL,
            ["rdmsr"],
            in("ecx") msr,
            out("eax") low,
            out("edx") high,
            options(nostack),
        )
    };
    match fault {
        Some(fault) => Err(fault),
        None => Ok((u64::from(high) << 32) | u64::from(low)),
    }
}

/// WRMSR; the caller vouches for the effect should the write go through.
unsafe fn wrmsr(msr: u32, value: u64) -> Option<Fault> {
    // SAFETY: forwarded to the caller; a #GP is caught.
    unsafe {
        probe!(
            vector::ALL,
            ["wrmsr"],
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack),
        )
    }
}

fn msrs(t: &mut Tally) {
    t.fault(
        "RDMSR 0x12345 (no such MSR)",
        rdmsr(0x12345).err(),
        vector::GP,
    );
    t.value(
        "RDMSR IA32_FEATURE_CONTROL (locked, VMX off)",
        rdmsr(IA32_FEATURE_CONTROL),
        1,
    );

    let efer = rdmsr(IA32_EFER);
    if let Ok(efer) = efer {
        // SAFETY: bit 1 is reserved: the write must fault; were it accepted,
        // only this guest's EFER would carry a meaningless bit.
        let fault = unsafe { wrmsr(IA32_EFER, efer | 1 << 1) };
        t.fault("WRMSR IA32_EFER with reserved bit 1 set", fault, vector::GP);
        t.value("IA32_EFER after it (unchanged)", rdmsr(IA32_EFER), efer);
    } else {
        t.value("RDMSR IA32_EFER", efer, 0x500);
    }

    let pat = rdmsr(IA32_PAT);
    if let Ok(pat) = pat {
        // Entry 0 = 2, a reserved memory type (SDM Vol. 3A, 13.12.2).
        let bad = (pat & !0xff) | 2;
        // SAFETY: must fault; were it accepted, PAT entry 0 (used by the
        // page tables' PAT/PCD/PWT = 0, i.e. all memory) would be invalid —
        // the guest's own problem.
        let fault = unsafe { wrmsr(IA32_PAT, bad) };
        t.fault(
            "WRMSR IA32_PAT with memory type 2 (reserved) in entry 0",
            fault,
            vector::GP,
        );
        t.value("IA32_PAT after it (unchanged)", rdmsr(IA32_PAT), pat);
    } else {
        t.value("RDMSR IA32_PAT", pat, 0x0007_0406_0007_0406);
    }

    // IA32_TSC: write a value well ahead, read it back through RDMSR and
    // RDTSC. Another VM may run in between (the counter keeps going), so
    // allow up to 2^32 ticks.
    let (ok, got) = match rdmsr(IA32_TSC) {
        Ok(now) => {
            let written = now.wrapping_add(1 << 36);
            // SAFETY: moves only this guest's TSC forward (the hypervisor
            // keeps it as this VM's TSC offset).
            let fault = unsafe { wrmsr(IA32_TSC, written) };
            let read = rdmsr(IA32_TSC);
            let tsc = rdtsc();
            match (fault, read) {
                (None, Ok(read)) => (
                    written <= read && read <= tsc && tsc - written < 1 << 32,
                    TscRoundTrip::Values(written, read, tsc),
                ),
                (Some(fault), _) | (None, Err(fault)) => (false, TscRoundTrip::Fault(fault)),
            }
        }
        Err(fault) => (false, TscRoundTrip::Fault(fault)),
    };
    t.record(
        "IA32_TSC: WRMSR, RDMSR, RDTSC",
        &got,
        &"written <= RDMSR <= RDTSC < written + 2^32",
        ok,
    );
}

enum TscRoundTrip {
    Values(u64, u64, u64),
    Fault(Fault),
}

impl Display for TscRoundTrip {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            TscRoundTrip::Values(written, read, tsc) => {
                write!(f, "wrote {written:#x}, RDMSR {read:#x}, RDTSC {tsc:#x}")
            }
            TscRoundTrip::Fault(fault) => Outcome(Some(*fault)).fmt(f),
        }
    }
}

fn rdtsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: RDTSC only reads the counter.
    unsafe {
        core::arch::asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

// ---------------------------------------------------------------------------
// 3. Control registers.

fn read_cr4() -> u64 {
    let cr4: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags))
    };
    cr4
}

/// MOV to CR4; the caller vouches for the value should it be accepted.
unsafe fn write_cr4(value: u64) -> Option<Fault> {
    // SAFETY: forwarded to the caller; a fault is caught.
    unsafe { probe!(vector::ALL, ["mov cr4, {v}"], v = in(reg) value, options(nostack)) }
}

fn control_registers(t: &mut Tally) {
    let before = read_cr4();
    // SAFETY: VMXE is the hypervisor's; the write must fault. Were it
    // accepted, VMX would stay unusable anyway (CPUID hides it).
    let fault = unsafe { write_cr4(before | CR4_VMXE) };
    t.fault("MOV to CR4 with VMXE (bit 13)", fault, vector::GP);
    let after = read_cr4();
    t.record(
        "CR4 after it",
        &Hex(&after),
        &format_args!("{before:#x}, VMXE clear"),
        after == before && after & CR4_VMXE == 0,
    );
}

// ---------------------------------------------------------------------------
// 4. XSETBV.

fn xgetbv(xcr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: XGETBV only reads; only called with CR4.OSXSAVE set.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") xcr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

fn xsetbv(t: &mut Tally) {
    if __cpuid(1).ecx & CPUID1_ECX_XSAVE == 0 {
        println!("hostile: XSETBV: skipped, CPUID.1:ECX has no XSAVE");
        return;
    }
    // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE may be set; it only
    // enables XGETBV/XSETBV/XSAVE.
    let fault = unsafe { write_cr4(read_cr4() | CR4_OSXSAVE) };
    t.no_fault("MOV to CR4 with OSXSAVE (bit 18)", fault);
    if fault.is_some() {
        return;
    }
    let xcr0 = xgetbv(0);
    // SAFETY: XCR0 = 0 (no x87) is invalid and must fault; were it accepted
    // nothing below uses x87 or SSE state.
    let fault = unsafe {
        probe!(
            vector::ALL,
            ["xsetbv"],
            in("ecx") 0,
            in("eax") 0,
            in("edx") 0,
            options(nostack),
        )
    };
    t.fault("XSETBV XCR0 = 0", fault, vector::GP);
    t.value("XCR0 after it (unchanged)", Ok(xgetbv(0)), xcr0);
}

// ---------------------------------------------------------------------------
// 5. Hypercalls with bad numbers, buffers and lengths.

fn hypercalls(t: &mut Tally, ram: u64) {
    let text = b"hostile: this text must not be printed\n";
    let start = text.as_ptr() as u64;
    let mut buffer = [0u8; 48];
    let info = buffer.as_mut_ptr() as u64;
    // SAFETY (all below): every call is refused before the hypervisor touches
    // guest memory; were one accepted, CONSOLE_WRITE only reads (`text` and
    // the image at 1 MiB) and VM_INFO writes at most 48 bytes at `info`, a
    // live local of that size — the calls at bad addresses touch nothing.
    t.hypercall(
        "hypercall 0x1234 (unknown)",
        unsafe { hypercall::raw(0x1234, [start, 16, 0, 0]) },
        -1,
    );
    t.hypercall(
        format_args!(
            "CONSOLE_WRITE of 16 bytes at {:#x} (RAM ends at {ram:#x})",
            ram - 2
        ),
        unsafe { hypercall::raw(number::CONSOLE_WRITE, [ram - 2, 16, 0, 0]) },
        -2,
    );
    t.hypercall(
        "CONSOLE_WRITE of 16 bytes at 0xfffffffffffffffb (address + length overflows)",
        unsafe { hypercall::raw(number::CONSOLE_WRITE, [u64::MAX - 4, 16, 0, 0]) },
        -2,
    );
    t.hypercall(
        "CONSOLE_WRITE of 5000 bytes (limit 4096)",
        unsafe { hypercall::raw(number::CONSOLE_WRITE, [0x10_0000, 5000, 0, 0]) },
        -3,
    );
    t.hypercall(
        "VM_INFO with a 16-byte buffer",
        unsafe { hypercall::raw(number::VM_INFO, [info, 16, 0, 0]) },
        -3,
    );
    t.hypercall(
        format_args!("VM_INFO with its buffer at {ram:#x} (end of RAM)"),
        unsafe { hypercall::raw(number::VM_INFO, [ram, 48, 0, 0]) },
        -2,
    );
    t.hypercall(
        format_args!(
            "VM_INFO with its buffer at {:#x} (crossing the end of RAM)",
            ram - 16
        ),
        unsafe { hypercall::raw(number::VM_INFO, [ram - 16, 48, 0, 0]) },
        -2,
    );
}

// ---------------------------------------------------------------------------
// 6. String I/O.

/// The line `rep outsb` sends to COM1: exactly 40 bytes with its newline.
const OUTS_LINE: &[u8; 40] = b"hostile: sent to COM1 with REP OUTSB 40\n";

fn string_io(t: &mut Tally, ram: u64) {
    // REP OUTSB of a whole line to COM1's data port.
    let source = OUTS_LINE.as_ptr() as u64;
    let (rsi, rcx): (u64, u64);
    // SAFETY: reads the 40 bytes of OUTS_LINE; writes to COM1 only print.
    let fault = unsafe {
        probe!(
            vector::ALL,
            ["rep outsb"],
            inout("rsi") source => rsi,
            inout("rcx") OUTS_LINE.len() as u64 => rcx,
            in("dx") COM1,
            options(nostack, readonly),
        )
    };
    let got = StringIo(fault, rsi.wrapping_sub(source), rcx);
    t.record(
        "REP OUTSB of a 40-byte line to COM1",
        &got,
        &StringIo(None, 40, 0),
        got == StringIo(None, 40, 0),
    );

    // REP INSB from a port with no device: all ones.
    let mut buffer = [0u8; 8];
    let target = buffer.as_mut_ptr() as u64;
    let (rdi, rcx): (u64, u64);
    // SAFETY: writes exactly the 8 bytes of `buffer`.
    let fault = unsafe {
        probe!(
            vector::ALL,
            ["rep insb"],
            inout("rdi") target => rdi,
            inout("rcx") buffer.len() as u64 => rcx,
            in("dx") NO_DEVICE_PORT,
            options(nostack),
        )
    };
    let got = StringIo(fault, rdi.wrapping_sub(target), rcx);
    let all_ones = buffer.iter().all(|&byte| byte == 0xff);
    t.record(
        "REP INSB of 8 bytes from port 0x2f0 (no device)",
        &format_args!("{got}, bytes {:02x?}", buffer),
        &format_args!("{}, bytes all 0xff", StringIo(None, 8, 0)),
        got == StringIo(None, 8, 0) && all_ones,
    );

    // OUTSB whose source is guest-physical memory beyond RAM. The
    // hypervisor's identity map stops at the end of RAM, so this guest maps
    // the address in page tables of its own (the first GiB, identity, in
    // 2 MiB pages); the CPU exits before reading memory, and the
    // hypervisor, reading the byte for the guest, finds no RAM there.
    let outside = ram + 0x1000;
    if outside >= 1 << 30 {
        println!("hostile: OUTSB from beyond RAM: skipped, RAM reaches 1 GiB");
        return;
    }
    let old_cr3 = switch_to_own_tables();
    let rsi: u64;
    // SAFETY: the OUTSB must fault before reading anything; a dropped write
    // to a port without a device is harmless either way.
    let fault = unsafe {
        probe!(
            vector::ALL,
            ["outsb"],
            inout("rsi") outside => rsi,
            in("dx") NO_DEVICE_PORT,
            options(nostack, readonly),
        )
    };
    restore_tables(old_cr3);
    t.record(
        format_args!(
            "OUTSB from guest-physical {outside:#x} (beyond RAM, mapped in my own page tables)"
        ),
        &format_args!(
            "{}, RSI {}",
            Outcome(fault),
            Advance(rsi.wrapping_sub(outside))
        ),
        &"#GP, error code 0x0, RSI +0",
        fault.is_some_and(|f| f.vector == vector::GP && f.error_code == 0) && rsi == outside,
    );
}

/// What a string I/O probe did: the fault, how far the index register
/// moved, and RCX after it.
#[derive(PartialEq)]
struct StringIo(Option<Fault>, u64, u64);

impl Display for StringIo {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}, index {}, RCX {}",
            Outcome(self.0),
            Advance(self.1),
            self.2
        )
    }
}

/// A register's change, signed.
struct Advance(u64);

impl Display for Advance {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let delta = self.0 as i64;
        if delta < 0 {
            write!(f, "-{}", delta.unsigned_abs())
        } else {
            write!(f, "+{delta}")
        }
    }
}

/// hostile's own page tables: the first GiB identity-mapped with 2 MiB
/// pages, RAM and beyond.
#[repr(C, align(4096))]
struct PageTables {
    pml4: [u64; 512],
    pdpt: [u64; 512],
    pd: [u64; 512],
}

static mut TABLES: PageTables = PageTables {
    pml4: [0; 512],
    pdpt: [0; 512],
    pd: [0; 512],
};

/// Builds [`TABLES`], loads them and returns the previous CR3.
fn switch_to_own_tables() -> u64 {
    const PRESENT: u64 = 1 << 0;
    const WRITABLE: u64 = 1 << 1;
    const LARGE_PAGE: u64 = 1 << 7;
    // SAFETY: one vCPU; nothing else references TABLES, and the CPU uses them
    // only after the MOV to CR3 below.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(TABLES) };
    for (index, entry) in tables.pd.iter_mut().enumerate() {
        *entry = ((index as u64) << 21) | LARGE_PAGE | WRITABLE | PRESENT;
    }
    // Identity map: a table's virtual address is its physical one.
    tables.pdpt[0] = tables.pd.as_ptr() as u64 | WRITABLE | PRESENT;
    tables.pml4[0] = tables.pdpt.as_ptr() as u64 | WRITABLE | PRESENT;
    let root = tables.pml4.as_ptr() as u64;
    let old: u64;
    // SAFETY: the new tables map the image, its stack and statics exactly
    // as the hypervisor's do (identity, inside the first GiB).
    unsafe {
        core::arch::asm!(
            "mov {old}, cr3",
            "mov cr3, {new}",
            old = out(reg) old,
            new = in(reg) root,
            options(nostack, preserves_flags),
        );
    }
    old
}

/// Goes back to the hypervisor's identity map.
fn restore_tables(cr3: u64) {
    // SAFETY: `cr3` is what `switch_to_own_tables` found; those tables are
    // unchanged and map everything this guest uses.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack, preserves_flags)) };
}

// ---------------------------------------------------------------------------
// 7. Cache and monitor instructions, performance counters.

fn cache_and_monitor(t: &mut Tally) {
    // SAFETY (all below): INVD and WBINVD are no-ops for the guest (its RAM
    // is ordinary write-back memory, and tessera skips INVD); RDPMC, MONITOR
    // and MWAIT must fault, as CPUID offers neither counters nor MONITOR.
    t.no_fault("INVD", unsafe {
        probe!(vector::ALL, ["invd"], options(nostack))
    });
    t.no_fault("WBINVD", unsafe {
        probe!(vector::ALL, ["wbinvd"], options(nostack))
    });
    t.fault(
        "RDPMC 0",
        unsafe {
            probe!(
                vector::ALL,
                ["rdpmc"],
                in("ecx") 0,
                out("eax") _,
                out("edx") _,
                options(nostack),
            )
        },
        vector::GP,
    );
    let line = OUTS_LINE.as_ptr() as u64;
    t.fault(
        "MONITOR",
        unsafe {
            probe!(
                vector::ALL,
                ["monitor"],
                in("rax") line,
                in("ecx") 0,
                in("edx") 0,
                options(nostack),
            )
        },
        vector::UD,
    );
    t.fault(
        "MWAIT",
        unsafe {
            probe!(
                vector::ALL,
                ["mwait"],
                in("eax") 0,
                in("ecx") 0,
                options(nostack),
            )
        },
        vector::UD,
    );
}

// ---------------------------------------------------------------------------
// 8. CPUID.

fn cpuid(t: &mut Tally) {
    let leaf = __cpuid(0x4000_0000);
    let mut signature = [0u8; 12];
    signature[..4].copy_from_slice(&leaf.ebx.to_le_bytes());
    signature[4..8].copy_from_slice(&leaf.ecx.to_le_bytes());
    signature[8..].copy_from_slice(&leaf.edx.to_le_bytes());
    let text = signature.split(|&b| b == 0).next().unwrap_or(&[]);
    let text = core::str::from_utf8(text).unwrap_or("<not UTF-8>");
    t.record(
        "CPUID 0x40000000",
        &format_args!("\"{text}\", max leaf {:#x}", leaf.eax),
        &"\"TesseraHV\", max leaf 0x40000001",
        signature == *b"TesseraHV\0\0\0" && leaf.eax == 0x4000_0001,
    );
    let ecx = __cpuid(1).ecx;
    t.record(
        "CPUID.1:ECX bit 5 (VMX)",
        &set_clear(ecx & CPUID1_ECX_VMX),
        &"clear",
        ecx & CPUID1_ECX_VMX == 0,
    );
    t.record(
        "CPUID.1:ECX bit 31 (hypervisor present)",
        &set_clear(ecx & CPUID1_ECX_HYPERVISOR),
        &"set",
        ecx & CPUID1_ECX_HYPERVISOR != 0,
    );
}

fn set_clear(bit: u32) -> &'static str {
    if bit != 0 {
        "set"
    } else {
        "clear"
    }
}

// ---------------------------------------------------------------------------
// 9. The end: a triple fault.

/// Loads an IDT with limit 0 and executes INT3: #BP finds no gate (#GP),
/// neither does #GP (#DF), nor #DF: the CPU shuts down, which under VMX is a
/// triple-fault VM exit.
fn triple_fault() -> ! {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let empty = Pointer { limit: 0, base: 0 };
    // SAFETY: deliberately fatal for this VM, and only for it.
    unsafe {
        core::arch::asm!(
            "lidt [{}]",
            "int3",
            in(reg) &empty,
            options(noreturn, nostack),
        )
    }
}
