//! deliveryloop: the #DB delivery loop of CVE-2015-8104, next to a
//! neighbour (`guest-blobs/deliveryloop.toml`, `tests/isolation.rs`).
//!
//! First two probes that a reflected #DB looks to the guest as the CPU's own
//! (tessera intercepts #DB and injects it back):
//! - `db-single-step`: RFLAGS.TF, one instruction, then the guest's own #DB
//!   handler must run once with RIP after that instruction and DR6 =
//!   0xffff4ff0 (BS; the guest cleared DR6 to 0xffff0ff0 before);
//! - `db-data-breakpoint`: DR0/DR7 watch a quadword for writes; a write must
//!   reach the handler once with RIP after the write and DR6 = 0xffff0ff1 (B0).
//!
//! Then, if the VM's name contains `loop`, the delivery loop: the guest loads
//! its own GDT and a 64-bit TSS whose IST1 is a small stack, points the #DB
//! gate at IST1, and watches the quadword at the top of that stack (where the
//! CPU pushes SS) with DR0/DR7. Delivering a #DB writes that quadword, which
//! raises a #DB, whose delivery starts again at the top of IST1 — forever,
//! without retiring an instruction. On hardware without interception the
//! host CPU is lost inside the delivery; with tessera every round is a VM
//! exit, so the VM can be preempted. This never returns; if the handler ever
//! runs, the probe `db-delivery-loop` FAILs and the guest exits with 1.
//!
//! Lines: `deliveryloop: PASS|FAIL <probe>: …`, then (without `loop` in the
//! name) `deliveryloop: N probes, M failed` and exit 0 only if all passed.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, addr_of_mut};

use guest_rt::report::Report;
use guest_rt::{idt, println, vm_info};

guest_rt::entry!(main);

const GUEST: &str = "deliveryloop";
/// DR6 with no condition reported: its reserved bits read as ones.
const DR6_CLEAR: u64 = 0xffff_0ff0;
/// DR6.BS, single step.
const DR6_BS: u64 = 1 << 14;
/// DR6.B0, breakpoint 0.
const DR6_B0: u64 = 1;
/// DR7 with nothing enabled (bit 10 reads as one).
const DR7_OFF: u64 = 0x400;
/// DR7: L0, R/W0 = 01 (data writes), LEN0 = 10 (8 bytes).
const DR7_WRITE8_L0: u64 = DR7_OFF | 1 | (0b01 << 16) | (0b10 << 18);
/// The selectors of the guest's own GDT.
const CODE64: u16 = 0x08;
const DATA: u16 = 0x10;
const TSS: u16 = 0x18;
const RFLAGS_TF: u64 = 1 << 8;

/// What the guest's own #DB handler saw: calls, DR6, the RIP of the frame.
#[no_mangle]
static mut DB_COUNT: u64 = 0;
#[no_mangle]
static mut DB_DR6: u64 = 0;
#[no_mangle]
static mut DB_RIP: u64 = 0;

/// The quadword the data-breakpoint probe watches.
static mut WATCHED: u64 = 0;

// The #DB handler: records DR6 and the frame's RIP, counts, clears TF in the
// frame (so a single step ends) and returns.
global_asm!(
    ".section .text.deliveryloop_db, \"ax\", @progbits",
    ".global deliveryloop_db_handler",
    "deliveryloop_db_handler:",
    "    push rax",
    "    mov rax, dr6",
    "    mov qword ptr [rip + DB_DR6], rax",
    "    mov rax, qword ptr [rsp + 8]",
    "    mov qword ptr [rip + DB_RIP], rax",
    "    and qword ptr [rsp + 24], -257",
    "    add qword ptr [rip + DB_COUNT], 1",
    "    pop rax",
    "    iretq",
);

extern "C" {
    fn deliveryloop_db_handler();
}

/// A 64-bit TSS (SDM Vol. 3A, 8.7): only IST1 and the I/O map base are used.
#[repr(C, align(16))]
struct Tss([u8; 104]);

static mut TSS64: Tss = Tss([0; 104]);
/// The IST1 stack: the loop's breakpoint watches its top quadword.
#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut IST1_STACK: Stack = Stack([0; 4096]);

/// Null, 64-bit code, data, the TSS (two entries).
static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];
/// The guest's own IDT (copied from guest-rt's, then vector 1 replaced).
#[repr(C, align(16))]
struct Idt([[u64; 2]; 32]);
static mut IDT: Idt = Idt([[0; 2]; 32]);

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

fn read_dr6() -> u64 {
    let value: u64;
    // SAFETY: reading DR6 has no side effect.
    unsafe { asm!("mov {}, dr6", out(reg) value, options(nomem, nostack)) };
    value
}

/// SAFETY: the caller must not enable a breakpoint on memory in use by
/// anything but the probe it runs.
unsafe fn set_debug_registers(dr0: u64, dr6: u64, dr7: u64) {
    // SAFETY: the caller's.
    unsafe {
        asm!(
            "mov dr0, {dr0}",
            "mov dr6, {dr6}",
            "mov dr7, {dr7}",
            dr0 = in(reg) dr0,
            dr6 = in(reg) dr6,
            dr7 = in(reg) dr7,
            options(nostack),
        )
    };
}

fn reset_handler_record() {
    // SAFETY: one vCPU; the handler runs only inside the probes.
    unsafe {
        *addr_of_mut!(DB_COUNT) = 0;
        *addr_of_mut!(DB_DR6) = 0;
        *addr_of_mut!(DB_RIP) = 0;
    }
}

fn handler_record() -> (u64, u64, u64) {
    // SAFETY: one vCPU; the handler is not running.
    unsafe { (*addr_of!(DB_COUNT), *addr_of!(DB_DR6), *addr_of!(DB_RIP)) }
}

/// The address of [`deliveryloop_db_handler`].
fn handler_address() -> u64 {
    deliveryloop_db_handler as *const () as u64
}

/// One 16-byte interrupt gate in `CODE64`, DPL 0, with `ist`.
fn gate(handler: u64, ist: u64) -> [u64; 2] {
    [
        (handler & 0xffff)
            | (u64::from(CODE64) << 16)
            | (ist << 32)
            | (0x8e << 40)
            | ((handler >> 16) & 0xffff) << 48,
        handler >> 32,
    ]
}

/// Own GDT with a TSS, and own IDT: guest-rt's gates for every vector but
/// #DB, which goes to [`deliveryloop_db_handler`] (IST 0).
fn install_tables() {
    // SAFETY: one vCPU; nothing uses these tables before LGDT/LTR/LIDT below.
    unsafe {
        let tss = &mut (*addr_of_mut!(TSS64)).0;
        let ist1 = addr_of!(IST1_STACK) as u64 + 4096;
        tss[36..44].copy_from_slice(&ist1.to_le_bytes());
        tss[102..104].copy_from_slice(&104u16.to_le_bytes()); // no I/O map
        let base = tss.as_ptr() as u64;
        let gdt = &mut *addr_of_mut!(GDT);
        gdt[3] = 103 | ((base & 0xff_ffff) << 16) | (0x89 << 40) | (((base >> 24) & 0xff) << 56);
        gdt[4] = base >> 32;
        let pointer = Pointer {
            limit: (5 * 8 - 1) as u16,
            base: gdt.as_ptr() as u64,
        };
        asm!(
            "lgdt [{pointer}]",
            "push {code}",
            "lea {scratch}, [rip + 2f]",
            "push {scratch}",
            "retfq",
            "2:",
            "mov ss, {data:x}",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "ltr {tss:x}",
            pointer = in(reg) &pointer,
            code = in(reg) u64::from(CODE64),
            data = in(reg) u64::from(DATA),
            tss = in(reg) u64::from(TSS),
            scratch = out(reg) _,
        );
    }
    // guest-rt's table for everything else (it takes the new CS).
    idt::install(GUEST);
    let mut current = Pointer { limit: 0, base: 0 };
    // SAFETY: SIDT writes the 10-byte operand only.
    unsafe { asm!("sidt [{}]", in(reg) &mut current, options(nostack)) };
    let limit = current.limit;
    let base = current.base;
    // SAFETY: one vCPU; guest-rt's table is `limit + 1` bytes at `base`.
    unsafe {
        let idt = &mut (*addr_of_mut!(IDT)).0;
        let gates = (usize::from(limit) + 1) / 16;
        for (vector, slot) in idt.iter_mut().enumerate().take(gates) {
            *slot = *(base as *const [u64; 2]).add(vector);
        }
        idt[1] = gate(handler_address(), 0);
        let pointer = Pointer {
            limit: (32 * 16 - 1) as u16,
            base: idt.as_ptr() as u64,
        };
        asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack));
    }
}

fn main() -> u64 {
    let info = vm_info();
    let name = info.as_ref().map_or("?", |info| info.name());
    let looping = name.contains("loop");
    println!(
        "{GUEST}: VM {name:?}: #DB probes{}",
        if looping {
            ", then the #DB delivery loop"
        } else {
            ""
        }
    );
    install_tables();
    let mut report = Report::new(GUEST);

    // Single step: TF set by POPFQ traps after the next instruction.
    reset_handler_record();
    let expected_rip: u64;
    // SAFETY: only DR6 and TF change; the handler clears TF.
    unsafe {
        set_debug_registers(0, DR6_CLEAR, DR7_OFF);
        asm!(
            "pushfq",
            "or qword ptr [rsp], {tf}",
            "popfq",
            "nop",
            "2:",
            "nop",
            "lea {rip}, [rip + 2b]",
            tf = const RFLAGS_TF,
            rip = out(reg) expected_rip,
        );
    }
    let (count, dr6, rip) = handler_record();
    report.check(
        "db-single-step",
        count == 1 && dr6 == DR6_CLEAR | DR6_BS && rip == expected_rip,
        format_args!(
            "1 #DB with DR6 {:#x} at RIP {expected_rip:#x}",
            DR6_CLEAR | DR6_BS
        ),
        format_args!(
            "{count} #DB, DR6 {dr6:#x}, RIP {rip:#x} (DR6 now {:#x})",
            read_dr6()
        ),
    );

    // A data breakpoint on a write.
    reset_handler_record();
    let expected_rip: u64;
    // SAFETY: the breakpoint watches WATCHED only, which nothing else uses.
    unsafe {
        set_debug_registers(addr_of!(WATCHED) as u64, DR6_CLEAR, DR7_WRITE8_L0);
        asm!(
            "mov qword ptr [{watched}], 1",
            "2:",
            "lea {rip}, [rip + 2b]",
            watched = in(reg) addr_of_mut!(WATCHED),
            rip = out(reg) expected_rip,
            options(nostack),
        );
        set_debug_registers(0, DR6_CLEAR, DR7_OFF);
    }
    let (count, dr6, rip) = handler_record();
    report.check(
        "db-data-breakpoint",
        count == 1 && dr6 == DR6_CLEAR | DR6_B0 && rip == expected_rip,
        format_args!(
            "1 #DB with DR6 {:#x} at RIP {expected_rip:#x}",
            DR6_CLEAR | DR6_B0
        ),
        format_args!("{count} #DB, DR6 {dr6:#x}, RIP {rip:#x}"),
    );

    if !looping {
        return report.summary();
    }

    // The loop: #DB on IST1, whose top quadword (the pushed SS) is watched.
    let watched = addr_of!(IST1_STACK) as u64 + 4096 - 8;
    reset_handler_record();
    // SAFETY: one vCPU; the IDT is ours.
    unsafe {
        (*addr_of_mut!(IDT)).0[1] = gate(handler_address(), 1);
    }
    println!(
        "{GUEST}: arming the #DB delivery loop: #DB on IST1, DR0 = {watched:#x} (the SS slot of its frame), DR7 = {DR7_WRITE8_L0:#x}: handler at RIP {:#x}",
        handler_address()
    );
    // SAFETY: the breakpoint watches the IST1 stack, used by #DB only. The
    // write to it starts the loop.
    unsafe {
        set_debug_registers(watched, DR6_CLEAR, DR7_WRITE8_L0);
        asm!("mov qword ptr [{}], 0", in(reg) watched, options(nostack));
        set_debug_registers(0, DR6_CLEAR, DR7_OFF);
    }
    let (count, dr6, rip) = handler_record();
    report.check(
        "db-delivery-loop",
        false,
        "no delivery of #DB ever completing (the handler never runs)",
        format_args!("the handler ran {count} times, last DR6 {dr6:#x}, RIP {rip:#x}"),
    );
    report.summary()
}
