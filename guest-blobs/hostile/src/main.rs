//! hostile: an adversarial guest. It misuses what a guest can reach of the
//! hypervisor — VMX and SVM instructions (the same probes on either
//! vendor's CPU, and the other vendor's hypercall instruction), MSRs (SVM's
//! too), control registers, XSETBV, hypercalls with bad buffers, string I/O
//! (also faulting in its own page tables), cache and monitor instructions,
//! CPUID — and checks that each gets the architectural answer (#UD, #GP,
//! #PF with its error code and CR2, an error code) rather than crashing,
//! hanging or confusing the hypervisor.
//! Then it triple-faults on purpose, which must stop this VM alone.
//!
//! Every probe prints one line
//! `hostile: <probe>: <what happened> (expected <what>) ok|FAIL`; a fault is
//! caught by guest-rt's IDT, which records the vector, error code and CR2 and
//! resumes after the probe ([`guest_rt::probe!`]). The expectations are what tessera does
//! today (see `kernel/src/vmm/exit_handler.rs` and `kernel/src/rules/`). After
//! `hostile: N probes, M failed` it loads an empty IDT and executes INT3
//! (#BP, then #GP, #DF: a triple fault) — or, if any probe failed, exits
//! with code 1 instead, so that a failure shows as a different summary row.
#![no_std]
#![no_main]

use core::arch::x86_64::{__cpuid, __cpuid_count};
use core::fmt::{self, Display};

use guest_rt::hypercall::{self, number};
use guest_rt::idt::{vector, Fault};
use guest_rt::{println, probe, vm_info};

guest_rt::entry!(main);

const CR0_NE: u64 = 1 << 5;
/// CR0 bit 6 is reserved, and writing 1 there is ignored.
const CR0_RESERVED_6: u64 = 1 << 6;
/// CR0 bits 63:32 are reserved, and writing 1 there is #GP(0).
const CR0_RESERVED_32: u64 = 1 << 32;
const CR0_WP: u64 = 1 << 16;
const CR4_VMXE: u64 = 1 << 13;
const CR4_SMXE: u64 = 1 << 14;
/// CR4 bit 15 is reserved (SDM Vol. 3A, 2.5).
const CR4_RESERVED_15: u64 = 1 << 15;
const CR4_OSXSAVE: u64 = 1 << 18;
const CPUID1_ECX_VMX: u32 = 1 << 5;
const CPUID1_ECX_SMX: u32 = 1 << 6;
const CPUID1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const CPUID1_ECX_XSAVE: u32 = 1 << 26;
const CPUID1_ECX_OSXSAVE: u32 = 1 << 27;
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;
const CPUID1_EDX_MCE: u32 = 1 << 7;
const CPUID1_EDX_MCA: u32 = 1 << 14;
const CPUID7_EBX_TSC_ADJUST: u32 = 1 << 1;
const IA32_TSC: u32 = 0x10;
const IA32_FEATURE_CONTROL: u32 = 0x3a;
const IA32_MISC_ENABLE: u32 = 0x1a0;
const IA32_PAT: u32 = 0x277;
const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
const IA32_EFER: u32 = 0xc000_0080;
const EFER_LME: u64 = 1 << 8;
/// EFER bit 12: SVME on AMD (APM Vol. 2, 3.1.7), reserved on Intel (SDM
/// Vol. 4, Table 2-2).
const EFER_SVME: u64 = 1 << 12;
/// SVM's lock and disable bits (APM Vol. 2, 15.30.1).
const VM_CR: u32 = 0xc001_0114;
/// Where VMRUN saves the host's state (APM Vol. 2, 15.30.4).
const VM_HSAVE_PA: u32 = 0xc001_0117;
const CPUID_EXT1_ECX_SVM: u32 = 1 << 2;
const CPUID_EXT1_ECX_SKINIT: u32 = 1 << 12;
/// A hypercall number tessera does not know: the answer would be -1.
const UNKNOWN_HYPERCALL: u64 = 0x1234;
/// #GP(0), as a probe expects it.
const GP0: Fault = Fault {
    vector: vector::GP,
    error_code: 0,
    cr2: 0,
};
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
    svm_instructions(&mut tally);
    msrs(&mut tally);
    control_registers(&mut tally);
    xsetbv(&mut tally);
    hypercalls(&mut tally, ram);
    string_io(&mut tally, ram);
    string_io_page_faults(&mut tally);
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

    /// A probe that must raise exactly `expected`: vector, error code and,
    /// for a #PF, CR2.
    fn exact(&mut self, probe: impl Display, got: Option<Fault>, expected: Fault) {
        self.record(
            probe,
            &Outcome(got),
            &Outcome(Some(expected)),
            got == Some(expected),
        );
    }

    /// A read that must raise exactly `expected` instead of returning a
    /// value (shown should it return one).
    fn refused(&mut self, probe: impl Display, got: Result<u64, Fault>, expected: Fault) {
        self.record(
            probe,
            &Value(&got),
            &Outcome(Some(expected)),
            got == Err(expected),
        );
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
            Some(fault) if fault.vector == vector::PF => write!(
                f,
                "#PF, error code {:#x}, CR2 {:#x}",
                fault.error_code, fault.cr2
            ),
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
// 1. Virtualization instructions, VMX's and SVM's: tessera does not nest, so
// each is #UD, on either vendor's CPU.

/// A page for the operands of the virtualization instructions (a VMXON
/// region, a VMCB) and of the SVM MSRs; never actually touched, since every
/// one of them must fault first.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut OPERAND_PAGE: Page = Page([0; 4096]);

/// The guest-physical (= linear) address of [`OPERAND_PAGE`].
fn operand_page() -> u64 {
    core::ptr::addr_of_mut!(OPERAND_PAGE) as u64
}

/// VMX's instructions: #UD on AMD, which has none of them, and under
/// tessera on Intel, which offers no VMX (CPUID.1:ECX[5] is clear).
fn vmx_instructions(t: &mut Tally) {
    let region = operand_page();
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

/// SVM's instructions, and the hypercall instruction of the other vendor.
///
/// On Intel none of them exists (0F 01 D8-DF are undefined opcodes there):
/// the CPU itself raises #UD (SDM Vol. 3A, 7.15, interrupt 6). On AMD a
/// guest runs with EFER.SVME set in its VMCB, since VMRUN refuses a guest
/// state without it (APM Vol. 2, 15.5.1), so the CPU would carry them out:
/// tessera must intercept each and raise the #UD that the guest's view
/// calls for — EFER.SVME clear and no SVM or SKINIT in CPUID (probed in
/// sections 2 and 8), and then VMRUN, VMLOAD, VMSAVE, CLGI and INVLPGA are
/// #UD, and so are STGI and SKINIT (APM Vol. 2, 15.4; APM Vol. 3, each
/// instruction's exceptions).
///
/// VMCALL is no AMD instruction, so it is #UD on AMD (APM Vol. 2, 8.2.7);
/// VMMCALL is #UD on Intel as above (and a VMMCALL that no hypervisor
/// intercepts is #UD on AMD too, APM Vol. 3, VMMCALL). On Intel, VMCALL is
/// the hypercall: it always exits (SDM Vol. 3C, 27.1.2); on AMD, VMMCALL is.
fn svm_instructions(t: &mut Tally) {
    // The physical address VMRUN, VMLOAD and VMSAVE take in RAX (a VMCB),
    // SKINIT in EAX (a secure loader block), and the linear address INVLPGA
    // takes in RAX: a page of this guest's own.
    let page = operand_page();
    let ud = vector::UD;
    // SAFETY (all below): each must raise #UD, which the probe catches,
    // before it touches anything. Were one carried out, VMLOAD and VMSAVE
    // (virtualized by the CPU) would read or write OPERAND_PAGE only,
    // INVLPGA only drops a TLB entry, and CLGI runs before STGI, which would
    // set GIF again; a VMRUN or SKINIT carried out is the hypervisor's flaw
    // that these probes exist to show.
    t.fault(
        "VMRUN",
        unsafe { probe!(vector::ALL, ["vmrun rax"], in("rax") page, options(nostack)) },
        ud,
    );
    t.fault(
        "VMLOAD",
        unsafe { probe!(vector::ALL, ["vmload rax"], in("rax") page, options(nostack)) },
        ud,
    );
    t.fault(
        "VMSAVE",
        unsafe { probe!(vector::ALL, ["vmsave rax"], in("rax") page, options(nostack)) },
        ud,
    );
    t.fault(
        "CLGI",
        unsafe { probe!(vector::ALL, ["clgi"], options(nostack)) },
        ud,
    );
    t.fault(
        "STGI",
        unsafe { probe!(vector::ALL, ["stgi"], options(nostack)) },
        ud,
    );
    t.fault(
        "SKINIT",
        unsafe { probe!(vector::ALL, ["skinit eax"], in("eax") page as u32, options(nostack)) },
        ud,
    );
    t.fault(
        "INVLPGA (ASID 1)",
        unsafe {
            probe!(
                vector::ALL,
                ["invlpga rax, ecx"],
                in("rax") page,
                in("ecx") 1,
                options(nostack),
            )
        },
        ud,
    );

    // RAX names no hypercall: were the instruction taken for one, the
    // answer would be -1 and nothing else would happen; RDI, RSI, RDX and
    // R10 are clobbered as for a hypercall.
    // SAFETY (both): must raise #UD; at worst an unknown hypercall.
    let (probe, fault) = if hypercall::uses_vmmcall() {
        (
            "VMCALL (Intel's hypercall; this CPU's is VMMCALL)",
            unsafe {
                probe!(
                    vector::ALL,
                    ["vmcall"],
                    inout("rax") UNKNOWN_HYPERCALL => _,
                    out("rdi") _,
                    out("rsi") _,
                    out("rdx") _,
                    out("r10") _,
                    options(nostack),
                )
            },
        )
    } else {
        ("VMMCALL (AMD's hypercall; this CPU's is VMCALL)", unsafe {
            probe!(
                vector::ALL,
                ["vmmcall"],
                inout("rax") UNKNOWN_HYPERCALL => _,
                out("rdi") _,
                out("rsi") _,
                out("rdx") _,
                out("r10") _,
                options(nostack),
            )
        })
    };
    t.fault(probe, fault, ud);
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
        // LME cannot change while paging is on (SDM Vol. 3A, 10.8.5).
        let cleared = efer & !EFER_LME;
        // SAFETY: must fault; were it accepted, EFER would hold LMA without
        // LME, which stops this VM at its next entry, and only it.
        let fault = unsafe { wrmsr(IA32_EFER, cleared) };
        t.exact(
            format_args!("WRMSR IA32_EFER = {cleared:#x} (LME cleared, paging on)"),
            fault,
            GP0,
        );
        t.value(
            "IA32_EFER after it (unchanged, LME set)",
            rdmsr(IA32_EFER),
            efer,
        );
        efer_svme(t, efer);
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

    svm_msrs(t);
    misc_enable_and_mtrr(t);

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

/// IA32_MISC_ENABLE takes back its own value but refuses to change controls
/// tessera does not emulate; IA32_MTRR_DEF_TYPE takes only defined memory
/// types.
fn misc_enable_and_mtrr(t: &mut Tally) {
    match rdmsr(IA32_MISC_ENABLE) {
        Ok(misc) => {
            // SAFETY (both): tessera keeps this MSR per VM and acts on none
            // of its bits; the first write must fault, the second rewrites
            // the value just read.
            let fault = unsafe { wrmsr(IA32_MISC_ENABLE, u64::MAX) };
            t.exact("WRMSR IA32_MISC_ENABLE = all ones", fault, GP0);
            let fault = unsafe { wrmsr(IA32_MISC_ENABLE, misc) };
            let after = rdmsr(IA32_MISC_ENABLE);
            t.record(
                format_args!("WRMSR IA32_MISC_ENABLE = {misc:#x} (its current value), read back"),
                &format_args!("{}, reads {}", Outcome(fault), Value(&after)),
                &format_args!("no fault, reads {misc:#x}"),
                fault.is_none() && after == Ok(misc),
            );
        }
        Err(fault) => t.value("RDMSR IA32_MISC_ENABLE", Err(fault), 1),
    }

    match rdmsr(IA32_MTRR_DEF_TYPE) {
        Ok(def_type) => {
            // Default type 2 is reserved, 6 is write-back (SDM Vol. 3A,
            // Table 13-8). SAFETY (all three): tessera keeps this MSR per VM
            // without applying it (EPT decides the memory type); the first
            // write must fault, the last puts the value read back.
            let reserved = (def_type & !0xff) | 2;
            let fault = unsafe { wrmsr(IA32_MTRR_DEF_TYPE, reserved) };
            t.exact(
                format_args!("WRMSR IA32_MTRR_DEF_TYPE = {reserved:#x} (type 2, reserved)"),
                fault,
                GP0,
            );
            let write_back = (def_type & !0xff) | 6;
            let fault = unsafe { wrmsr(IA32_MTRR_DEF_TYPE, write_back) };
            let after = rdmsr(IA32_MTRR_DEF_TYPE);
            t.record(
                format_args!(
                    "WRMSR IA32_MTRR_DEF_TYPE = {write_back:#x} (type 6, write-back), read back"
                ),
                &format_args!("{}, reads {}", Outcome(fault), Value(&after)),
                &format_args!("no fault, reads {write_back:#x}"),
                fault.is_none() && after == Ok(write_back),
            );
            let _ = unsafe { wrmsr(IA32_MTRR_DEF_TYPE, def_type) };
        }
        Err(fault) => t.value("RDMSR IA32_MTRR_DEF_TYPE", Err(fault), 0),
    }
}

/// EFER.SVME, bit 12, given `efer`, the value the guest reads. Setting it
/// is #GP(0): on Intel the bit is reserved (SDM Vol. 4, Table 2-2; SDM
/// Vol. 2B, WRMSR); on AMD the guest's CPUID offers no SVM, and a processor
/// whose SVM is off treats SVME as must-be-zero (VM_CR.SVMDIS, APM Vol. 2,
/// 15.30.1). Under SVM the VMCB's EFER does hold SVME (APM Vol. 2, 15.5.1),
/// so the guest must also read the bit clear.
fn efer_svme(t: &mut Tally, efer: u64) {
    let svme = efer | EFER_SVME;
    // SAFETY: must fault; were it accepted, only this guest's EFER would
    // claim SVM, whose instructions it never runs outside a probe.
    let fault = unsafe { wrmsr(IA32_EFER, svme) };
    t.exact(
        format_args!("WRMSR IA32_EFER = {svme:#x} (SVME, bit 12, set)"),
        fault,
        GP0,
    );
    let after = rdmsr(IA32_EFER);
    let expected = efer & !EFER_SVME;
    t.record(
        "IA32_EFER after it (unchanged, SVME clear)",
        &Value(&after),
        &Hex(&expected),
        after == Ok(expected) && efer == expected,
    );
}

/// SVM's MSRs: VM_CR (APM Vol. 2, 15.30.1) and VM_HSAVE_PA (15.30.4), the
/// physical address where VMRUN saves the host's state. They come with SVM,
/// which the guest's CPUID does not offer, so RDMSR and WRMSR of either are
/// #GP(0) as for any unimplemented MSR (SDM Vol. 2B, RDMSR and WRMSR; APM
/// Vol. 3, RDMSR and WRMSR). Under SVM they are the hypervisor's own: its
/// MSR permission map must send every access to tessera.
fn svm_msrs(t: &mut Tally) {
    t.refused("RDMSR VM_CR (0xc0010114)", rdmsr(VM_CR), GP0);
    // SAFETY: must fault; were it to reach the real VM_CR, it would clear
    // SVMDIS (ignored once firmware set LOCK) and the debug, INIT and A20
    // controls — the hypervisor's flaw this probe exists to show.
    let fault = unsafe { wrmsr(VM_CR, 0) };
    t.exact("WRMSR VM_CR (0xc0010114) = 0, SVMDIS clear", fault, GP0);
    t.refused("RDMSR VM_HSAVE_PA (0xc0010117)", rdmsr(VM_HSAVE_PA), GP0);
    let page = operand_page();
    // SAFETY: must fault; were it to reach the real VM_HSAVE_PA, the host's
    // state would next be saved at this guest-physical address taken as a
    // host-physical one — the flaw this probe exists to show.
    let fault = unsafe { wrmsr(VM_HSAVE_PA, page) };
    t.exact(
        format_args!("WRMSR VM_HSAVE_PA (0xc0010117) = a page of my RAM ({page:#x})"),
        fault,
        GP0,
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

fn read_cr0() -> u64 {
    let cr0: u64;
    // SAFETY: reading CR0 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags))
    };
    cr0
}

/// MOV to CR0; the caller vouches for the value should it be accepted.
unsafe fn write_cr0(value: u64) -> Option<Fault> {
    // SAFETY: forwarded to the caller; a fault is caught.
    unsafe { probe!(vector::ALL, ["mov cr0, {v}"], v = in(reg) value, options(nostack)) }
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

    // SAFETY (both): each write must fault. Were one accepted, bit 15 has
    // no function and SMXE only enables GETSEC, which this guest never runs.
    let fault = unsafe { write_cr4(before | CR4_RESERVED_15) };
    t.exact("MOV to CR4 with reserved bit 15", fault, GP0);
    let fault = unsafe { write_cr4(before | CR4_SMXE) };
    t.exact(
        "MOV to CR4 with SMXE (bit 14; CPUID offers no SMX)",
        fault,
        GP0,
    );
    let after = read_cr4();
    t.record(
        "CR4 after them (unchanged)",
        &Hex(&after),
        &Hex(&before),
        after == before,
    );

    // CR0: bits 63:32 are reserved and a 1 there is #GP(0) (SDM Vol. 3A,
    // 2.5). Such a write exits to tessera only if it also changes a bit
    // tessera owns (NE, fixed to 1 under VMX, which this guest sees clear),
    // so probe both paths. A 1 in a reserved bit of 31:0 is ignored
    // instead: bit 6 raises nothing and reads back clear.
    let cr0 = read_cr0();
    // SAFETY (all three): the first two must fault, and bit 6 is ignored;
    // were any accepted, the reserved bit has no function, and NE only
    // selects native x87 error reporting, which this guest never triggers.
    let fault = unsafe { write_cr0(cr0 | CR0_RESERVED_32) };
    t.exact("MOV to CR0 with reserved bit 32", fault, GP0);
    let fault = unsafe { write_cr0(cr0 | CR0_RESERVED_32 | CR0_NE) };
    t.exact(
        "MOV to CR0 with reserved bit 32 and NE (owned by tessera: exits)",
        fault,
        GP0,
    );
    let fault = unsafe { write_cr0(cr0 | CR0_RESERVED_6) };
    t.no_fault("MOV to CR0 with reserved bit 6 (ignored)", fault);
    let after = read_cr0();
    t.record(
        "CR0 after them (unchanged, bit 6 clear)",
        &Hex(&after),
        &Hex(&cr0),
        after == cr0,
    );
    // The same reserved bit on the path that exits (NE changes): tessera
    // must ignore it too, not fault, and take NE.
    // SAFETY: as above; NE only changes x87 error reporting.
    let fault = unsafe { write_cr0(cr0 | CR0_RESERVED_6 | CR0_NE) };
    t.no_fault(
        "MOV to CR0 with reserved bit 6 and NE (exits to tessera: bit ignored)",
        fault,
    );
    let after = read_cr0();
    t.record(
        "CR0 after it (NE set, bit 6 clear)",
        &Hex(&after),
        &Hex(&(cr0 | CR0_NE)),
        after == cr0 | CR0_NE,
    );
    // SAFETY: restores the value read above.
    let _ = unsafe { write_cr0(cr0) };
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
    // CPUID.1:ECX.OSXSAVE mirrors this guest's own CR4.OSXSAVE, which it
    // was entered without.
    let osxsave = __cpuid(1).ecx & CPUID1_ECX_OSXSAVE;
    t.record(
        "CPUID.1:ECX bit 27 (OSXSAVE) before I set CR4.OSXSAVE",
        &set_clear(osxsave),
        &"clear",
        osxsave == 0,
    );
    // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE may be set; it only
    // enables XGETBV/XSETBV/XSAVE.
    let fault = unsafe { write_cr4(read_cr4() | CR4_OSXSAVE) };
    t.no_fault("MOV to CR4 with OSXSAVE (bit 18)", fault);
    if fault.is_some() {
        return;
    }
    let osxsave = __cpuid(1).ecx & CPUID1_ECX_OSXSAVE;
    t.record(
        "CPUID.1:ECX bit 27 (OSXSAVE) after I set CR4.OSXSAVE",
        &set_clear(osxsave),
        &"set",
        osxsave != 0,
    );
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

/// The 16 bytes at the end of [`SPLIT_PAGE`]: a whole console line.
const SPLIT_LINE: &[u8; 16] = b"hostile: 16 out\n";

/// String I/O whose memory operand faults in hostile's own page tables: the
/// hypervisor walks them for the instruction it emulates and must deliver
/// the #PF the hardware would, with CR2 and the REP progress so far.
fn string_io_page_faults(t: &mut Tally) {
    // SAFETY: one vCPU; nothing else references SPLIT_PAGE.
    let split_page = unsafe { &mut *core::ptr::addr_of_mut!(SPLIT_PAGE) };
    split_page.0[4096 - 16..].copy_from_slice(SPLIT_LINE);
    let old_cr3 = switch_to_own_tables();

    // OUTSB and INSB at an address with no translation: not present, read
    // (0) or write (2), supervisor.
    let rsi: u64;
    // SAFETY: must fault before reading anything; a byte written to a port
    // without a device is dropped.
    let outs = unsafe {
        probe!(
            vector::ALL,
            ["outsb"],
            inout("rsi") UNMAPPED => rsi,
            in("dx") NO_DEVICE_PORT,
            options(nostack, readonly),
        )
    };
    let rdi: u64;
    // SAFETY: must fault before writing; nothing is mapped at UNMAPPED.
    let ins = unsafe {
        probe!(
            vector::ALL,
            ["insb"],
            inout("rdi") UNMAPPED => rdi,
            in("dx") NO_DEVICE_PORT,
            options(nostack),
        )
    };

    // INSB into a present, read-only page, with CR0.WP so that the
    // supervisor cannot write it either: a protection fault (3).
    let cr0 = read_cr0();
    // SAFETY: WP only makes read-only pages read-only for CPL 0 too; every
    // page this guest writes is writable in both sets of tables.
    let wp = unsafe { write_cr0(cr0 | CR0_WP) };
    let target = WINDOW_READ_ONLY + 0x10;
    let mut read_only = None;
    if wp.is_none() {
        let rdi: u64;
        // SAFETY: must fault; were it to write, the byte would land in
        // READ_ONLY_PAGE, which exists for this and is checked below.
        let fault = unsafe {
            probe!(
                vector::ALL,
                ["insb"],
                inout("rdi") target => rdi,
                in("dx") NO_DEVICE_PORT,
                options(nostack),
            )
        };
        read_only = Some((fault, rdi));
        // SAFETY: back to the CR0 this guest was running with.
        let _ = unsafe { write_cr0(cr0) };
    }

    // REP OUTSB of 32 bytes to COM1 from the last 16 bytes of SPLIT_PAGE
    // into the hole: the 16 bytes go out (a console line), then #PF at the
    // hole with RSI and RCX showing the progress.
    let source = WINDOW_SPLIT + 4096 - 16;
    let (rsi_split, rcx_split): (u64, u64);
    // SAFETY: reads SPLIT_PAGE's last 16 bytes and must fault at the hole;
    // writes to COM1 only print.
    let split = unsafe {
        probe!(
            vector::ALL,
            ["rep outsb"],
            inout("rsi") source => rsi_split,
            inout("rcx") 32_u64 => rcx_split,
            in("dx") COM1,
            options(nostack, readonly),
        )
    };
    restore_tables(old_cr3);

    let not_present = |error_code| Fault {
        vector: vector::PF,
        error_code,
        cr2: UNMAPPED,
    };
    let got = Indexed(outs, "RSI", rsi.wrapping_sub(UNMAPPED));
    let expected = Indexed(Some(not_present(0)), "RSI", 0);
    let ok = got == expected;
    t.record(
        format_args!("OUTSB from linear {UNMAPPED:#x} (not mapped in my own page tables)"),
        &got,
        &expected,
        ok,
    );
    let got = Indexed(ins, "RDI", rdi.wrapping_sub(UNMAPPED));
    let expected = Indexed(Some(not_present(2)), "RDI", 0);
    let ok = got == expected;
    t.record(
        format_args!("INSB to linear {UNMAPPED:#x} (not mapped in my own page tables)"),
        &got,
        &expected,
        ok,
    );

    let probe = format_args!("INSB to {target:#x} (read-only page, CR0.WP = 1)");
    match read_only {
        Some((fault, rdi)) => {
            // SAFETY: one vCPU; the INSB above is over.
            let page = unsafe { &(*core::ptr::addr_of!(READ_ONLY_PAGE)).0 };
            let untouched = page.iter().all(|&byte| byte == 0);
            let got = Indexed(fault, "RDI", rdi.wrapping_sub(target));
            let fault = Fault {
                vector: vector::PF,
                error_code: 3,
                cr2: target,
            };
            let expected = Indexed(Some(fault), "RDI", 0);
            t.record(
                probe,
                &format_args!(
                    "{got}, page {}",
                    if untouched { "untouched" } else { "written!" }
                ),
                &format_args!("{expected}, page untouched"),
                got == expected && untouched,
            );
        }
        None => t.no_fault(format_args!("MOV to CR0 with WP (bit 16), for {probe}"), wp),
    }

    let got = StringIo(split, rsi_split.wrapping_sub(source), rcx_split);
    let fault = Fault {
        vector: vector::PF,
        error_code: 0,
        cr2: WINDOW_HOLE,
    };
    let expected = StringIo(Some(fault), 16, 16);
    let ok = got == expected;
    t.record(
        format_args!("REP OUTSB of 32 bytes at {source:#x}, unmapped after 16"),
        &got,
        &expected,
        ok,
    );
}

/// What a single string I/O instruction did: the fault, and how far its
/// index register (named) moved.
#[derive(PartialEq)]
struct Indexed(Option<Fault>, &'static str, u64);

impl Display for Indexed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}, {} {}", Outcome(self.0), self.1, Advance(self.2))
    }
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
/// pages, RAM and beyond; and a window of three 4 KiB pages at [`WINDOW`]
/// (the start of the second GiB). Nothing else is mapped.
#[repr(C, align(4096))]
struct PageTables {
    pml4: [u64; 512],
    pdpt: [u64; 512],
    pd: [u64; 512],
    /// The second GiB: only its first 2 MiB, through `window`.
    window_pd: [u64; 512],
    /// [`WINDOW`]: [`SPLIT_PAGE`], a hole, [`READ_ONLY_PAGE`] read-only.
    window: [u64; 512],
}

static mut TABLES: PageTables = PageTables {
    pml4: [0; 512],
    pdpt: [0; 512],
    pd: [0; 512],
    window_pd: [0; 512],
    window: [0; 512],
};

/// Where hostile's own tables map 4 KiB pages of their own (linear).
const WINDOW: u64 = 1 << 30;
/// Window page 0: [`SPLIT_PAGE`], writable.
const WINDOW_SPLIT: u64 = WINDOW;
/// Window page 1: not present.
const WINDOW_HOLE: u64 = WINDOW + 0x1000;
/// Window page 2: [`READ_ONLY_PAGE`], present but read-only.
const WINDOW_READ_ONLY: u64 = WINDOW + 0x2000;
/// A linear address hostile's own tables leave unmapped: the third GiB has
/// no PDPT entry.
const UNMAPPED: u64 = (2 << 30) + 0x5a5;

/// Ends with [`SPLIT_LINE`]: the source of the REP OUTSB that runs into
/// [`WINDOW_HOLE`].
static mut SPLIT_PAGE: Page = Page([0; 4096]);
/// The target of an INSB that must not write it.
static mut READ_ONLY_PAGE: Page = Page([0; 4096]);

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
    // Identity map: a table's or a static's virtual address is its physical one.
    tables.window[0] = core::ptr::addr_of!(SPLIT_PAGE) as u64 | WRITABLE | PRESENT;
    tables.window[1] = 0;
    tables.window[2] = core::ptr::addr_of!(READ_ONLY_PAGE) as u64 | PRESENT;
    tables.window_pd[0] = tables.window.as_ptr() as u64 | WRITABLE | PRESENT;
    tables.pdpt[0] = tables.pd.as_ptr() as u64 | WRITABLE | PRESENT;
    tables.pdpt[1] = tables.window_pd.as_ptr() as u64 | WRITABLE | PRESENT;
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
        &"\"TesseraHV\", max leaf 0x40000010",
        signature == *b"TesseraHV\0\0\0" && leaf.eax == 0x4000_0010,
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
    // The local APIC's TSC-deadline mode is emulated, whatever the host has.
    let leaf1 = __cpuid(1);
    t.record(
        "CPUID.1:ECX bit 24 (TSC-deadline timer)",
        &set_clear(leaf1.ecx & CPUID1_ECX_TSC_DEADLINE),
        &"set",
        leaf1.ecx & CPUID1_ECX_TSC_DEADLINE != 0,
    );
    // Features whose MSRs or instructions tessera does not virtualize.
    // Beyond the highest basic leaf, CPUID answers with that leaf's data.
    let leaf7_ebx = if __cpuid(0).eax >= 7 {
        __cpuid_count(7, 0).ebx
    } else {
        0
    };
    let ext1_ecx = if __cpuid(0x8000_0000).eax >= 0x8000_0001 {
        __cpuid(0x8000_0001).ecx
    } else {
        0
    };
    for (probe, bit) in [
        ("CPUID.1:EDX bit 7 (MCE)", leaf1.edx & CPUID1_EDX_MCE),
        ("CPUID.1:EDX bit 14 (MCA)", leaf1.edx & CPUID1_EDX_MCA),
        ("CPUID.1:ECX bit 6 (SMX)", leaf1.ecx & CPUID1_ECX_SMX),
        (
            "CPUID.7.0:EBX bit 1 (IA32_TSC_ADJUST)",
            leaf7_ebx & CPUID7_EBX_TSC_ADJUST,
        ),
        // SVM and SKINIT (APM Vol. 3, E.4.2; reserved on Intel): tessera
        // does not nest; either flag would make STGI and SKINIT valid (APM
        // Vol. 2, 15.4), and SVM would promise VM_CR and VM_HSAVE_PA.
        (
            "CPUID.0x80000001:ECX bit 2 (SVM)",
            ext1_ecx & CPUID_EXT1_ECX_SVM,
        ),
        (
            "CPUID.0x80000001:ECX bit 12 (SKINIT)",
            ext1_ecx & CPUID_EXT1_ECX_SKINIT,
        ),
    ] {
        t.record(probe, &set_clear(bit), &"clear", bit == 0);
    }
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
