//! The local APIC of one vCPU (SDM Vol. 3A, chapter 12): one register
//! model behind two front ends, the xAPIC MMIO page ([`MmioDevice`]) and
//! the x2APIC MSRs 0x800-0x8FF ([`Lapic::read_msr`], [`Lapic::write_msr`]),
//! with IA32_APIC_BASE choosing between them and IA32_TSC_DEADLINE arming
//! the timer.
//!
//! This module owns the APIC's registers, its IRR/ISR/TMR, priorities and
//! timer. It must not inject anything: the core asks [`Lapic::pending`],
//! injects, and reports back with [`Lapic::acknowledge`]; level-triggered
//! EOIs go back to the I/O APIC through [`Lapic::take_level_eoi`], and IPIs
//! the APIC cannot carry out alone (INIT, SIPI, NMI, SMI, any to other
//! CPUs) wait in a log for the core ([`Lapic::take_ipi`]).
//!
//! Modelling choices:
//! - **LVT entries.** Six, as on a Pentium 4 (version 0x14, max LVT entry
//!   5): timer, thermal, performance counters, LINT0, LINT1, error. Thermal
//!   and performance are storage only — CPUID hides thermal monitoring and
//!   the PMU, so nothing raises them — but exist because Linux programs
//!   every entry up to the max LVT entry. No CMCI entry (CPUID hides MCA).
//!   LINT0 matters only as the ExtINT virtual wire ([`Lapic::lint0_extint`]);
//!   LINT1 is stored (the core wires the NMI pin, if any).
//! - **xAPIC accesses** are 32 bits wide at 16-byte-aligned offsets
//!   (SDM Vol. 3A, 12.4.1). Any other size or alignment reads 0 and its
//!   write is dropped. An aligned access to an offset with no register sets
//!   ESR "illegal register address" (12.5.3). Outside xAPIC mode the page is
//!   not decoded: it reads as all ones, as unclaimed MMIO does.
//! - **The base never moves.** IA32_APIC_BASE's address field must stay at
//!   [`APIC_BASE_ADDRESS`]; a write that relocates it is refused with #GP
//!   ([`ApicError::Relocation`]). The SDM allows relocation (12.4.5), but
//!   the VM's MMIO map is fixed and no guest tessera runs moves it.
//! - **Software-disabled** (SVR bit 8 clear): IRR and ISR keep what they
//!   hold but nothing is delivered, new fixed interrupts are dropped, and
//!   LVT mask bits are set and stay set (12.4.7.2).
//! - **Delivery is instant**: delivery-status bits always read 0.
//! - **IPIs.** Fixed and lowest-priority IPIs that reach this APIC (self,
//!   all-including-self, its own physical ID or a logical match) are set in
//!   IRR, edge-triggered. Every IPI that is not a fixed IPI to this APIC
//!   alone is also logged for the core; INIT and SIPI are only logged.
//! - **EOI broadcast suppression** is not offered (version bit 24 clear):
//!   every EOI of a level-triggered vector goes to the I/O APIC.

mod ipi;
mod timer;
mod x2apic;
mod xapic;

use ipi::IpiLog;
pub use ipi::{DeliveryMode, IpiDestination, SentIpi, IPI_LOG_CAPACITY};

pub use timer::{divisor, guest_tsc, tsc_to_ns, TimerMode};

use super::{DeviceContext, MmioDevice, MmioSize, Timed};
use crate::rules::Fault;
use core::fmt;
use timer::ApicTimer;
pub use x86::msr::{IA32_APIC_BASE, IA32_TSC_DEADLINE};

/// Where the xAPIC registers sit in guest-physical memory, the architectural
/// default (SDM Vol. 3A, 12.4.4).
pub const APIC_BASE_ADDRESS: u64 = 0xfee0_0000;
/// Bytes the xAPIC MMIO page decodes.
pub const MMIO_LENGTH: u64 = 0x1000;
/// The first x2APIC MSR; register `offset >> 4` is MSR 0x800 + that index
/// (SDM Vol. 3A, 12.12.1.2).
pub const X2APIC_MSR_FIRST: u32 = 0x800;
/// The last x2APIC MSR.
pub const X2APIC_MSR_LAST: u32 = 0x8ff;

/// The version register: integrated APIC 0x14, max LVT entry 5 (six
/// entries), no EOI-broadcast suppression (SDM Vol. 3A, 12.4.8).
pub const VERSION: u32 = 0x14 | (5 << 16);

/// IA32_APIC_BASE bits (SDM Vol. 3A, 12.4.4 and 12.12.1).
pub mod apic_base {
    /// BSP: this processor is the bootstrap processor (read-only).
    pub const BSP: u64 = 1 << 8;
    /// EXTD: x2APIC mode.
    pub const EXTD: u64 = 1 << 10;
    /// EN: the APIC is globally enabled.
    pub const EN: u64 = 1 << 11;
}

/// ESR bits (SDM Vol. 3A, 12.5.3).
pub mod esr {
    /// An IPI was sent with a vector below 16.
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    /// An interrupt arrived with a vector below 16.
    pub const RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
    /// An xAPIC access to an offset with no register.
    pub const ILLEGAL_REGISTER_ADDRESS: u32 = 1 << 7;
}

// Register indices: xAPIC offset >> 4, x2APIC MSR - 0x800
// (SDM Vol. 3A, 12.4.1 and 12.12.1.2).
const ID: u32 = 0x02;
const VERSION_REGISTER: u32 = 0x03;
const TPR: u32 = 0x08;
const APR: u32 = 0x09;
const PPR: u32 = 0x0a;
const EOI: u32 = 0x0b;
const RRD: u32 = 0x0c;
const LDR: u32 = 0x0d;
const DFR: u32 = 0x0e;
const SVR: u32 = 0x0f;
const ISR_FIRST: u32 = 0x10;
const TMR_FIRST: u32 = 0x18;
const IRR_FIRST: u32 = 0x20;
const ESR: u32 = 0x28;
const ICR_LOW: u32 = 0x30;
const ICR_HIGH: u32 = 0x31;
const LVT_TIMER: u32 = 0x32;
const LVT_ERROR: u32 = 0x37;
const INITIAL_COUNT: u32 = 0x38;
const CURRENT_COUNT: u32 = 0x39;
const DIVIDE_CONFIG: u32 = 0x3e;
const SELF_IPI: u32 = 0x3f;

// SVR bits (SDM Vol. 3A, 12.9): vector, software enable, focus checking.
const SVR_ENABLE: u32 = 1 << 8;
const SVR_WRITABLE: u32 = 0x3ff;

const LVT_MASK: u32 = 1 << 16;
const LVT_RESET: u32 = LVT_MASK;
const LVT_DELIVERY_MODE_SHIFT: u32 = 8;
/// The delivery-mode field's ExtINT value (SDM Vol. 3A, 12.5.1).
const DELIVERY_EXTINT: u32 = 0b111;
const DELIVERY_NMI: u32 = 0b100;

// ICR bits (SDM Vol. 3A, 12.6.1; 12.12.9 for x2APIC).
const ICR_DESTINATION_LOGICAL: u32 = 1 << 11;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_TRIGGER_LEVEL: u32 = 1 << 15;
/// The ICR low bits software can write: vector, delivery mode, destination
/// mode, level, trigger mode, shorthand. Delivery status (12) is read-only
/// in xAPIC mode and reserved in x2APIC mode, as are 13, 17:16 and 31:20.
const ICR_LOW_WRITABLE: u32 = 0x000c_cfff;

/// A local APIC's fixed parameters, chosen by the core when it builds the
/// vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LapicConfig {
    /// The initial (x2)APIC ID; CPUID must report the same. Its low 8 bits
    /// are the xAPIC ID.
    pub apic_id: u32,
    /// The rate the timer counts at before the divider, in Hz: the crystal
    /// clock CPUID leaf 0x15 reports, so that Linux calibrates nothing.
    pub timer_hz: u64,
    /// The guest TSC's rate in Hz (CPUID leaf 0x15 × ratio), against which
    /// IA32_TSC_DEADLINE is compared: the guest TSC is taken to be
    /// `now_ns × tsc_hz / 10⁹`, so the core must run the guest's TSC from 0
    /// at VM start at this rate for deadlines to land on time.
    pub tsc_hz: u64,
    /// Whether IA32_APIC_BASE.BSP is set.
    pub bootstrap_processor: bool,
    /// Whether the guest may enter x2APIC mode: must match CPUID.1:ECX[21].
    /// When false, IA32_APIC_BASE.EXTD is reserved and the x2APIC MSRs fault.
    pub x2apic: bool,
}

/// The state IA32_APIC_BASE's EN and EXTD bits select (SDM Vol. 3A,
/// 12.12.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// EN = 0: globally disabled; the processor acts as one without an APIC.
    Disabled,
    /// EN = 1, EXTD = 0: registers in the MMIO page.
    XApic,
    /// EN = 1, EXTD = 1: registers in MSRs 0x800-0x8FF.
    X2Apic,
}

/// Why an APIC MSR access faults. Every one is #GP(0) to the guest
/// ([`ApicError::fault`]); the variants say why, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicError {
    /// Not an MSR the local APIC implements (the core routed it wrongly).
    NotApicMsr(u32),
    /// An x2APIC MSR accessed outside x2APIC mode (SDM Vol. 3A, 12.12.1.2).
    NotX2apicMode(u32),
    /// An x2APIC MSR with no register behind it.
    NoRegister(u32),
    /// A WRMSR of a read-only x2APIC register (SDM Vol. 3A, 12.12.1.2).
    ReadOnly(u32),
    /// An RDMSR of a write-only x2APIC register (EOI, SELF IPI).
    WriteOnly(u32),
    /// A WRMSR setting reserved bits (SDM Vol. 3A, 12.12.1.3).
    ReservedBits {
        /// The MSR.
        msr: u32,
        /// The value written.
        value: u64,
    },
    /// An IA32_APIC_BASE write to a state not reachable from the current
    /// one (SDM Vol. 3A, 12.12.5).
    IllegalTransition {
        /// The mode the APIC is in.
        from: ApicMode,
        /// The value written.
        value: u64,
    },
    /// An IA32_APIC_BASE write moving the registers: tessera keeps them at
    /// [`APIC_BASE_ADDRESS`].
    Relocation {
        /// The base address asked for.
        base: u64,
    },
}

impl ApicError {
    /// The exception the guest takes: #GP(0), whatever the reason.
    pub const fn fault(self) -> Fault {
        Fault::GP0
    }
}

impl fmt::Display for ApicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ApicError::NotApicMsr(msr) => write!(f, "lapic: MSR {msr:#x} is not an APIC MSR"),
            ApicError::NotX2apicMode(msr) => {
                write!(f, "lapic: MSR {msr:#x} accessed outside x2APIC mode")
            }
            ApicError::NoRegister(msr) => write!(f, "lapic: no x2APIC register at MSR {msr:#x}"),
            ApicError::ReadOnly(msr) => write!(f, "lapic: MSR {msr:#x} is read-only"),
            ApicError::WriteOnly(msr) => write!(f, "lapic: MSR {msr:#x} is write-only"),
            ApicError::ReservedBits { msr, value } => {
                write!(f, "lapic: {value:#x} sets reserved bits of MSR {msr:#x}")
            }
            ApicError::IllegalTransition { from, value } => write!(
                f,
                "lapic: IA32_APIC_BASE {value:#x} is no legal transition from {from:?}"
            ),
            ApicError::Relocation { base } => write!(
                f,
                "lapic: the APIC cannot move to {base:#x} (fixed at {APIC_BASE_ADDRESS:#x})"
            ),
        }
    }
}

/// 256 bits, one per vector: IRR, ISR, TMR (SDM Vol. 3A, 12.8.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VectorSet([u64; 4]);

impl VectorSet {
    fn contains(&self, vector: u8) -> bool {
        self.0[usize::from(vector / 64)] & (1 << (vector % 64)) != 0
    }

    fn insert(&mut self, vector: u8) {
        self.0[usize::from(vector / 64)] |= 1 << (vector % 64);
    }

    fn remove(&mut self, vector: u8) {
        self.0[usize::from(vector / 64)] &= !(1 << (vector % 64));
    }

    fn highest(&self) -> Option<u8> {
        (0..4).rev().find_map(|word| {
            let bits = self.0[word];
            (bits != 0).then(|| (word * 64 + 63 - bits.leading_zeros() as usize) as u8)
        })
    }

    /// Register `index` (0-7) of the eight 32-bit registers the set reads as.
    fn register(&self, index: u32) -> u32 {
        let index = index as usize;
        (self.0[index / 2] >> (32 * (index % 2))) as u32
    }
}

/// One LVT entry, in register order (SDM Vol. 3A, 12.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lvt {
    Timer,
    Thermal,
    Performance,
    Lint0,
    Lint1,
    Error,
}

impl Lvt {
    /// The entry at register index 0x32-0x37.
    fn at(register: u32) -> Option<Lvt> {
        Some(match register {
            0x32 => Lvt::Timer,
            0x33 => Lvt::Thermal,
            0x34 => Lvt::Performance,
            0x35 => Lvt::Lint0,
            0x36 => Lvt::Lint1,
            0x37 => Lvt::Error,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The bits software writes (SDM Vol. 3A, 12.5.1, the LVT figure):
    /// vector and mask everywhere; timer mode on the timer; delivery mode on
    /// all but timer and error; polarity and trigger mode on LINT0/1.
    const fn writable(self) -> u32 {
        match self {
            Lvt::Timer => 0xff | LVT_MASK | (3 << 17),
            Lvt::Thermal | Lvt::Performance => 0x7ff | LVT_MASK,
            Lvt::Lint0 | Lvt::Lint1 => 0x7ff | (1 << 13) | (1 << 15) | LVT_MASK,
            Lvt::Error => 0xff | LVT_MASK,
        }
    }

    /// Read-only bits (delivery status; remote IRR on LINT0/1): writing
    /// them is not an error, and they read 0 here.
    const fn read_only(self) -> u32 {
        match self {
            Lvt::Lint0 | Lvt::Lint1 => (1 << 12) | (1 << 14),
            _ => 1 << 12,
        }
    }
}

/// One vCPU's local APIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapic {
    config: LapicConfig,
    mode: ApicMode,
    /// The xAPIC ID register's bits 31:24 (writable in xAPIC mode).
    xapic_id: u8,
    task_priority: u8,
    /// The xAPIC LDR (bits 31:24 writable).
    logical_destination: u32,
    /// The xAPIC DFR (bits 31:28 writable, 27:0 all ones).
    destination_format: u32,
    spurious_vector: u32,
    in_service: VectorSet,
    requests: VectorSet,
    trigger_mode: VectorSet,
    /// The ESR as last latched by a write.
    error_status: u32,
    /// Errors since the last ESR write.
    errors_pending: u32,
    icr_low: u32,
    /// xAPIC: destination in bits 31:24; x2APIC: the 32-bit destination.
    icr_high: u32,
    lvt: [u32; 6],
    timer: ApicTimer,
    /// Level-triggered vectors EOI'd and not yet taken by the core.
    level_eois: VectorSet,
    ipis: IpiLog,
    timer_ticks_coalesced: u64,
    interrupts_dropped: u64,
}

impl Lapic {
    /// A local APIC as it comes out of reset: xAPIC mode, software-disabled,
    /// every LVT masked (SDM Vol. 3A, 12.4.7.1).
    pub fn new(config: LapicConfig) -> Lapic {
        Lapic {
            config,
            mode: ApicMode::XApic,
            xapic_id: config.apic_id as u8,
            task_priority: 0,
            logical_destination: 0,
            destination_format: u32::MAX,
            spurious_vector: 0xff,
            in_service: VectorSet::default(),
            requests: VectorSet::default(),
            trigger_mode: VectorSet::default(),
            error_status: 0,
            errors_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [LVT_RESET; 6],
            timer: ApicTimer::new(config.timer_hz, config.tsc_hz),
            level_eois: VectorSet::default(),
            ipis: IpiLog::new(),
            timer_ticks_coalesced: 0,
            interrupts_dropped: 0,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> LapicConfig {
        self.config
    }

    /// Every register but the ID back to its power-up value, as INIT does
    /// (SDM Vol. 3A, 12.4.7.3) and as leaving the disabled state finds
    /// them. The mode, the logs and the counts are kept.
    fn reset_registers(&mut self) {
        *self = Lapic {
            mode: self.mode,
            xapic_id: self.xapic_id,
            level_eois: self.level_eois,
            ipis: self.ipis.clone(),
            timer_ticks_coalesced: self.timer_ticks_coalesced,
            interrupts_dropped: self.interrupts_dropped,
            ..Lapic::new(self.config)
        };
    }

    /// An INIT (pin or IPI): every register but the ID to its reset value,
    /// the mode unchanged (SDM Vol. 3A, 12.4.7.3 and 12.12.5).
    pub fn init(&mut self) {
        self.reset_registers();
    }

    /// The mode IA32_APIC_BASE selects.
    pub fn mode(&self) -> ApicMode {
        self.mode
    }

    /// Whether IA32_APIC_BASE.EN is set (xAPIC or x2APIC mode).
    pub fn hardware_enabled(&self) -> bool {
        self.mode != ApicMode::Disabled
    }

    /// Whether SVR's APIC-software-enable bit is set (and the APIC is
    /// hardware-enabled): only then does it deliver interrupts.
    pub fn software_enabled(&self) -> bool {
        self.hardware_enabled() && self.spurious_vector & SVR_ENABLE != 0
    }

    /// IA32_APIC_BASE as RDMSR returns it.
    pub fn apic_base(&self) -> u64 {
        let bsp = if self.config.bootstrap_processor {
            apic_base::BSP
        } else {
            0
        };
        let mode = match self.mode {
            ApicMode::Disabled => 0,
            ApicMode::XApic => apic_base::EN,
            ApicMode::X2Apic => apic_base::EN | apic_base::EXTD,
        };
        APIC_BASE_ADDRESS | bsp | mode
    }

    /// The 32-bit x2APIC ID (the initial APIC ID; read-only).
    pub fn x2apic_id(&self) -> u32 {
        self.config.apic_id
    }

    /// The logical x2APIC ID the LDR holds in x2APIC mode: cluster
    /// ID[19:4] in bits 31:16, one bit for ID[3:0] below
    /// (SDM Vol. 3A, 12.12.10.2).
    fn x2apic_logical_id(&self) -> u32 {
        let id = self.config.apic_id;
        ((id >> 4) << 16) | (1 << (id & 0xf))
    }

    /// TPR (bits 7:0).
    pub fn task_priority(&self) -> u8 {
        self.task_priority
    }

    /// Sets TPR, as a write of CR8 does (CR8 = TPR[7:4], SDM Vol. 3A,
    /// 12.8.6): the caller shifts.
    pub fn set_task_priority(&mut self, value: u8) {
        self.task_priority = value;
    }

    /// PPR: the higher of TPR and the in-service vector's priority class
    /// (SDM Vol. 3A, 12.8.3.1).
    pub fn processor_priority(&self) -> u8 {
        let in_service = self.in_service.highest().unwrap_or(0);
        if self.task_priority >> 4 >= in_service >> 4 {
            self.task_priority
        } else {
            in_service & 0xf0
        }
    }

    /// Periodic timer expiries that piled up (the VM was not running or the
    /// core was late) and were delivered as one interrupt.
    pub fn timer_ticks_coalesced(&self) -> u64 {
        self.timer_ticks_coalesced
    }

    /// Fixed interrupts that arrived while the APIC was disabled (hardware
    /// or software) and were dropped.
    pub fn interrupts_dropped(&self) -> u64 {
        self.interrupts_dropped
    }

    /// IPIs lost because the log was full.
    pub fn ipis_dropped(&self) -> u64 {
        self.ipis.dropped
    }

    /// The guest TSC at `now_ns` as the TSC-deadline timer sees it.
    pub fn guest_tsc(&self, now_ns: u64) -> u64 {
        self.timer.guest_tsc(now_ns)
    }

    /// The guest wrote `value` to IA32_TSC at `now_ns`: the TSC-deadline
    /// timer compares against the TSC from there.
    pub fn set_guest_tsc(&mut self, value: u64, now_ns: u64) {
        self.timer.set_guest_tsc(value, now_ns);
    }

    /// A fixed interrupt arriving (from the I/O APIC, an IPI, a local
    /// source): sets its IRR bit, and its TMR bit as `level_triggered` says
    /// (SDM Vol. 3A, 12.8.4). Returns false when it was not accepted:
    /// vectors 0-15 are illegal (ESR "receive illegal vector", 12.5.2), and a
    /// disabled APIC takes no fixed interrupts (12.4.7.2).
    pub fn accept(&mut self, vector: u8, level_triggered: bool) -> bool {
        if !self.software_enabled() {
            self.interrupts_dropped += 1;
            return false;
        }
        if vector < 16 {
            self.record_error(esr::RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        self.requests.insert(vector);
        if level_triggered {
            self.trigger_mode.insert(vector);
        } else {
            self.trigger_mode.remove(vector);
        }
        true
    }

    /// The vector the core should inject next: the highest IRR vector whose
    /// priority class is above PPR's (SDM Vol. 3A, 12.8.3.1), if the APIC is
    /// software-enabled. The core still checks RFLAGS.IF and blocking.
    pub fn pending(&self) -> Option<u8> {
        if !self.software_enabled() {
            return None;
        }
        let vector = self.requests.highest()?;
        (vector >> 4 > self.processor_priority() >> 4).then_some(vector)
    }

    /// The core injected `vector`: it moves from IRR to ISR, raising PPR
    /// (SDM Vol. 3A, 12.8.4). A vector not requested is ignored.
    pub fn acknowledge(&mut self, vector: u8) {
        if self.requests.contains(vector) {
            self.requests.remove(vector);
            self.in_service.insert(vector);
        }
    }

    /// The next level-triggered vector the guest EOI'd, for the core to hand
    /// to the I/O APIC's `end_of_interrupt` (SDM Vol. 3A, 12.8.5: the EOI is
    /// broadcast for level-triggered interrupts).
    pub fn take_level_eoi(&mut self) -> Option<u8> {
        let vector = self.level_eois.highest()?;
        self.level_eois.remove(vector);
        Some(vector)
    }

    /// The oldest IPI waiting for the core.
    pub fn take_ipi(&mut self) -> Option<SentIpi> {
        self.ipis.pop()
    }

    /// Whether the 8259 PIC's INTR reaches the processor: LVT LINT0
    /// unmasked with delivery mode ExtINT (the "virtual wire"), or the APIC
    /// globally disabled, which leaves LINT0 as the plain INTR pin
    /// (SDM Vol. 3A, 12.4.3). The PIC supplies the vector, and PPR does not
    /// apply.
    pub fn lint0_extint(&self) -> bool {
        match self.mode {
            ApicMode::Disabled => true,
            _ => {
                let lint0 = self.lvt[Lvt::Lint0.index()];
                lint0 & LVT_MASK == 0 && (lint0 >> LVT_DELIVERY_MODE_SHIFT) & 7 == DELIVERY_EXTINT
            }
        }
    }

    /// Programs what a PC's firmware leaves behind for an operating system
    /// booted without one: the APIC software-enabled, LINT0 as the ExtINT
    /// virtual wire and LINT1 as NMI (MP specification 1.4, 3.6.2.2,
    /// "virtual wire mode").
    pub fn enter_virtual_wire_mode(&mut self) {
        self.spurious_vector |= SVR_ENABLE;
        self.lvt[Lvt::Lint0.index()] = DELIVERY_EXTINT << LVT_DELIVERY_MODE_SHIFT;
        self.lvt[Lvt::Lint1.index()] = DELIVERY_NMI << LVT_DELIVERY_MODE_SHIFT;
    }

    /// Whether an MSR is one [`Lapic::read_msr`] and [`Lapic::write_msr`]
    /// handle: IA32_APIC_BASE, IA32_TSC_DEADLINE and 0x800-0x8FF.
    pub const fn handles_msr(msr: u32) -> bool {
        matches!(
            msr,
            IA32_APIC_BASE | IA32_TSC_DEADLINE | X2APIC_MSR_FIRST..=X2APIC_MSR_LAST
        )
    }

    /// An RDMSR at VM time `now_ns` (the timer's current count depends on
    /// it). An error is #GP(0) to the guest.
    pub fn read_msr(&self, msr: u32, now_ns: u64) -> Result<u64, ApicError> {
        match msr {
            IA32_APIC_BASE => Ok(self.apic_base()),
            IA32_TSC_DEADLINE => Ok(self.timer.deadline(now_ns)),
            X2APIC_MSR_FIRST..=X2APIC_MSR_LAST => self.read_x2apic(msr, now_ns),
            _ => Err(ApicError::NotApicMsr(msr)),
        }
    }

    /// A WRMSR. An error is #GP(0) to the guest, and nothing changed.
    pub fn write_msr(
        &mut self,
        msr: u32,
        value: u64,
        cx: &mut DeviceContext,
    ) -> Result<(), ApicError> {
        let now_ns = cx.now_ns;
        self.sync_timer(now_ns);
        let result = match msr {
            IA32_APIC_BASE => self.write_apic_base(value),
            IA32_TSC_DEADLINE => {
                self.timer.set_deadline(value);
                Ok(())
            }
            X2APIC_MSR_FIRST..=X2APIC_MSR_LAST => self.write_x2apic(msr, value, now_ns),
            _ => Err(ApicError::NotApicMsr(msr)),
        };
        self.sync_timer(now_ns);
        result
    }

    /// IA32_APIC_BASE's state machine (SDM Vol. 3A, 12.12.5): disabled →
    /// xAPIC → x2APIC → disabled, and xAPIC → disabled; the rest #GP.
    fn write_apic_base(&mut self, value: u64) -> Result<(), ApicError> {
        let msr = IA32_APIC_BASE;
        let mut defined = apic_base::BSP | apic_base::EN | !0xfff;
        if self.config.x2apic {
            defined |= apic_base::EXTD;
        }
        // Bits 7:0 and 9 are reserved, and EXTD without x2APIC support
        // (SDM Vol. 3A, 12.12.1, the IA32_APIC_BASE figure).
        if value & !defined != 0 {
            return Err(ApicError::ReservedBits { msr, value });
        }
        let base = value & !0xfff;
        if base != APIC_BASE_ADDRESS {
            return Err(ApicError::Relocation { base });
        }
        let to = match (value & apic_base::EN != 0, value & apic_base::EXTD != 0) {
            (false, false) => ApicMode::Disabled,
            (true, false) => ApicMode::XApic,
            (true, true) => ApicMode::X2Apic,
            // EN = 0 with EXTD = 1 is the invalid state (12.12.5.1).
            (false, true) => {
                return Err(ApicError::IllegalTransition {
                    from: self.mode,
                    value,
                })
            }
        };
        let legal = matches!(
            (self.mode, to),
            (ApicMode::Disabled, ApicMode::XApic)
                | (ApicMode::XApic, ApicMode::X2Apic)
                | (ApicMode::XApic | ApicMode::X2Apic, ApicMode::Disabled)
        );
        if self.mode == to {
            return Ok(());
        }
        if !legal {
            return Err(ApicError::IllegalTransition {
                from: self.mode,
                value,
            });
        }
        match to {
            // Disabling loses the APIC's state; the IDs survive (12.4.3,
            // 12.12.5). Pending interrupts are gone with IRR.
            ApicMode::Disabled => self.reset_registers(),
            // The x2APIC ID replaces whatever the xAPIC ID register was
            // set to; the LDR becomes the derived logical ID; the ICR's
            // destination changes format, so it starts at 0 (12.12.5).
            ApicMode::X2Apic => self.icr_high = 0,
            ApicMode::XApic => {}
        }
        self.mode = to;
        Ok(())
    }

    /// Delivers a local interrupt (timer, error) through its LVT entry:
    /// edge-triggered, unless masked.
    fn deliver_local(&mut self, lvt: Lvt) {
        let entry = self.lvt[lvt.index()];
        if entry & LVT_MASK == 0 {
            self.accept(entry as u8, false);
        }
    }

    /// Records an error in ESR and signals it through LVT error (SDM Vol.
    /// 3A, 12.5.3). An error vector below 16 is not delivered, so a bad
    /// error vector cannot loop on its own illegal-vector error.
    fn record_error(&mut self, bits: u32) {
        self.errors_pending |= bits;
        let entry = self.lvt[Lvt::Error.index()];
        if entry & LVT_MASK == 0 && entry as u8 >= 16 {
            self.deliver_local(Lvt::Error);
        }
    }

    /// Brings the timer up to `now_ns`: due expiries set the timer vector
    /// in IRR, several at once as one (counted), none while masked.
    fn sync_timer(&mut self, now_ns: u64) {
        let expiries = self.timer.advance(now_ns);
        if expiries == 0 || self.lvt[Lvt::Timer.index()] & LVT_MASK != 0 {
            return;
        }
        self.timer_ticks_coalesced += expiries - 1;
        self.deliver_local(Lvt::Timer);
    }

    /// Non-specific EOI: retires the highest in-service vector and, when it
    /// was level-triggered, keeps it for the I/O APIC (SDM Vol. 3A, 12.8.5).
    fn end_of_interrupt(&mut self) {
        if let Some(vector) = self.in_service.highest() {
            self.in_service.remove(vector);
            if self.trigger_mode.contains(vector) {
                self.level_eois.insert(vector);
            }
        }
    }

    fn write_spurious_vector(&mut self, value: u32) {
        self.spurious_vector = value & SVR_WRITABLE;
        if value & SVR_ENABLE == 0 {
            // Software disable masks every LVT entry (12.4.7.2).
            for entry in &mut self.lvt {
                *entry |= LVT_MASK;
            }
        }
    }

    /// ESR is write-then-read: a write latches the errors since the last
    /// write and starts collecting anew (SDM Vol. 3A, 12.5.3).
    fn write_error_status(&mut self) {
        self.error_status = core::mem::take(&mut self.errors_pending);
    }

    fn write_lvt(&mut self, lvt: Lvt, value: u32) {
        let mut value = value & lvt.writable();
        // While software-disabled the mask bits stay set (12.4.7.2).
        if !self.software_enabled() {
            value |= LVT_MASK;
        }
        self.lvt[lvt.index()] = value;
        if lvt == Lvt::Timer {
            self.timer.set_mode(TimerMode::from_lvt(value));
        }
    }

    /// The register files IRR, ISR and TMR, read as eight registers each.
    fn vector_register(&self, register: u32) -> Option<u32> {
        let (set, first) = match register {
            ISR_FIRST..=0x17 => (&self.in_service, ISR_FIRST),
            TMR_FIRST..=0x1f => (&self.trigger_mode, TMR_FIRST),
            IRR_FIRST..=0x27 => (&self.requests, IRR_FIRST),
            _ => return None,
        };
        Some(set.register(register - first))
    }
}

impl Timed for Lapic {
    /// The timer's next expiry, unless the APIC is disabled or the timer
    /// masked (a masked timer still counts; its expiries are taken, without
    /// an interrupt, at the next register write or advance).
    fn next_deadline_ns(&self) -> Option<u64> {
        if !self.hardware_enabled() || self.lvt[Lvt::Timer.index()] & LVT_MASK != 0 {
            return None;
        }
        self.timer.next_deadline_ns()
    }

    fn advance(&mut self, cx: &mut DeviceContext) {
        self.sync_timer(cx.now_ns);
    }
}

#[cfg(test)]
mod tests;
