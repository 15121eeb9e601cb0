//! Register-level and behavioural tests of the local APIC: drive it as a
//! guest and a core would, and check what the SDM says happens.

use super::*;
use crate::devices::testing::Recorder;
use std::vec::Vec;

/// A 25 MHz crystal (40 ns a tick) and a 2 GHz TSC.
const TIMER_HZ: u64 = 25_000_000;
const TSC_HZ: u64 = 2_000_000_000;
const APIC_ID: u32 = 2;

// xAPIC offsets.
const O_ID: u64 = 0x20;
const O_VERSION: u64 = 0x30;
const O_TPR: u64 = 0x80;
const O_PPR: u64 = 0xa0;
const O_EOI: u64 = 0xb0;
const O_LDR: u64 = 0xd0;
const O_DFR: u64 = 0xe0;
const O_SVR: u64 = 0xf0;
const O_ISR: u64 = 0x100;
const O_TMR: u64 = 0x180;
const O_IRR: u64 = 0x200;
const O_ESR: u64 = 0x280;
const O_ICR_LOW: u64 = 0x300;
const O_ICR_HIGH: u64 = 0x310;
const O_LVT_TIMER: u64 = 0x320;
const O_LVT_LINT0: u64 = 0x350;
const O_LVT_ERROR: u64 = 0x370;
const O_INITIAL: u64 = 0x380;
const O_CURRENT: u64 = 0x390;
const O_DIVIDE: u64 = 0x3e0;

const TIMER_VECTOR: u32 = 0xec;
const PERIODIC: u32 = 1 << 17;
const TSC_DEADLINE: u32 = 2 << 17;
const MASKED: u32 = 1 << 16;
/// Divide configuration 1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;

const ENABLED_XAPIC: u64 = APIC_BASE_ADDRESS | apic_base::BSP | apic_base::EN;
const ENABLED_X2APIC: u64 = ENABLED_XAPIC | apic_base::EXTD;
const DISABLED: u64 = APIC_BASE_ADDRESS | apic_base::BSP;

fn config() -> LapicConfig {
    LapicConfig {
        apic_id: APIC_ID,
        timer_hz: TIMER_HZ,
        tsc_hz: TSC_HZ,
        bootstrap_processor: true,
        x2apic: true,
    }
}

struct Rig {
    apic: Lapic,
    rec: Recorder,
    now: u64,
}

impl Rig {
    /// An APIC out of reset.
    fn reset() -> Rig {
        Rig {
            apic: Lapic::new(config()),
            rec: Recorder::default(),
            now: 0,
        }
    }

    /// An APIC software-enabled in xAPIC mode, as an OS leaves it.
    fn new() -> Rig {
        let mut rig = Rig::reset();
        rig.write(O_SVR, 0x1ff);
        rig
    }

    /// Software-enabled in x2APIC mode.
    fn x2apic() -> Rig {
        let mut rig = Rig::new();
        rig.wrmsr(IA32_APIC_BASE, ENABLED_X2APIC).unwrap();
        rig
    }

    fn read(&mut self, offset: u64) -> u32 {
        let cx = &mut self.rec.cx().at(self.now);
        self.apic.read(offset, MmioSize::Dword, cx) as u32
    }

    fn write(&mut self, offset: u64, value: u32) {
        let cx = &mut self.rec.cx().at(self.now);
        self.apic.write(offset, MmioSize::Dword, value.into(), cx);
    }

    fn rdmsr(&self, msr: u32) -> Result<u64, ApicError> {
        self.apic.read_msr(msr, self.now)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), ApicError> {
        let cx = &mut self.rec.cx().at(self.now);
        self.apic.write_msr(msr, value, cx)
    }

    fn advance_to(&mut self, now: u64) {
        self.now = now;
        let cx = &mut self.rec.cx().at(now);
        self.apic.advance(cx);
    }

    fn irr(&mut self, vector: u8) -> bool {
        let register = self.read(O_IRR + 0x10 * u64::from(vector / 32));
        register & (1 << (vector % 32)) != 0
    }

    /// Injects whatever is pending, as the core would.
    fn inject(&mut self) -> Option<u8> {
        let vector = self.apic.pending()?;
        self.apic.acknowledge(vector);
        Some(vector)
    }

    fn ipis(&mut self) -> Vec<SentIpi> {
        core::iter::from_fn(|| self.apic.take_ipi()).collect()
    }
}

// --- reset state and IA32_APIC_BASE ---

#[test]
fn registers_come_out_of_reset_with_their_sdm_values() {
    let mut rig = Rig::reset();
    assert_eq!(rig.apic.apic_base(), ENABLED_XAPIC);
    assert_eq!(rig.read(O_ID), APIC_ID << 24);
    assert_eq!(rig.read(O_VERSION), 0x0005_0014, "version 0x14, 6 LVTs");
    assert_eq!(rig.read(O_SVR), 0xff, "software-disabled");
    assert_eq!(rig.read(O_DFR), u32::MAX);
    assert_eq!(rig.read(O_TPR), 0);
    for lvt in (0x320..=0x370).step_by(0x10) {
        assert_eq!(rig.read(lvt), MASKED, "LVT at {lvt:#x}");
    }
    assert!(rig.apic.hardware_enabled());
    assert!(!rig.apic.software_enabled());
    assert_eq!(rig.apic.mode(), ApicMode::XApic);
}

#[test]
fn apic_base_follows_the_legal_transitions() {
    let mut rig = Rig::new();
    rig.wrmsr(IA32_APIC_BASE, ENABLED_X2APIC).unwrap();
    assert_eq!(rig.apic.mode(), ApicMode::X2Apic);
    assert_eq!(rig.rdmsr(IA32_APIC_BASE), Ok(ENABLED_X2APIC));
    rig.wrmsr(IA32_APIC_BASE, DISABLED).unwrap();
    assert_eq!(rig.apic.mode(), ApicMode::Disabled);
    assert_eq!(rig.rdmsr(IA32_APIC_BASE), Ok(DISABLED));
    rig.wrmsr(IA32_APIC_BASE, ENABLED_XAPIC).unwrap();
    assert_eq!(rig.apic.mode(), ApicMode::XApic);
    rig.wrmsr(IA32_APIC_BASE, DISABLED).unwrap();
    rig.wrmsr(IA32_APIC_BASE, DISABLED).unwrap();
    assert_eq!(rig.apic.mode(), ApicMode::Disabled, "same state is fine");
}

#[test]
fn apic_base_refuses_illegal_transitions_with_gp() {
    let mut rig = Rig::new();
    // EN = 0, EXTD = 1 is the invalid state.
    let invalid = APIC_BASE_ADDRESS | apic_base::EXTD;
    let error = rig.wrmsr(IA32_APIC_BASE, invalid).unwrap_err();
    assert!(matches!(error, ApicError::IllegalTransition { .. }));
    assert_eq!(error.fault(), Fault::GP0);
    rig.wrmsr(IA32_APIC_BASE, ENABLED_X2APIC).unwrap();
    assert!(
        matches!(
            rig.wrmsr(IA32_APIC_BASE, ENABLED_XAPIC),
            Err(ApicError::IllegalTransition {
                from: ApicMode::X2Apic,
                ..
            })
        ),
        "x2APIC back to xAPIC must go through disabled"
    );
    rig.wrmsr(IA32_APIC_BASE, DISABLED).unwrap();
    assert!(
        rig.wrmsr(IA32_APIC_BASE, ENABLED_X2APIC).is_err(),
        "disabled to x2APIC skips xAPIC"
    );
    assert_eq!(
        rig.apic.mode(),
        ApicMode::Disabled,
        "a refused write changes nothing"
    );
}

#[test]
fn apic_base_refuses_relocation_and_reserved_bits() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.wrmsr(IA32_APIC_BASE, 0xfed0_0000 | apic_base::EN),
        Err(ApicError::Relocation { base: 0xfed0_0000 })
    );
    for reserved in [1 << 0, 1 << 9] {
        assert!(matches!(
            rig.wrmsr(IA32_APIC_BASE, ENABLED_XAPIC | reserved),
            Err(ApicError::ReservedBits { .. })
        ));
    }
    // The BSP flag is read-only: writing it clear is not an error.
    rig.wrmsr(IA32_APIC_BASE, ENABLED_XAPIC & !apic_base::BSP)
        .unwrap();
    assert_eq!(rig.rdmsr(IA32_APIC_BASE), Ok(ENABLED_XAPIC));
}

#[test]
fn extd_is_reserved_without_x2apic_support() {
    let mut apic = Lapic::new(LapicConfig {
        x2apic: false,
        ..config()
    });
    let mut rec = Recorder::default();
    let result = apic.write_msr(IA32_APIC_BASE, ENABLED_X2APIC, &mut rec.cx());
    assert!(matches!(result, Err(ApicError::ReservedBits { .. })));
    assert_eq!(apic.mode(), ApicMode::XApic);
}

#[test]
fn disabling_the_apic_resets_its_state_but_keeps_the_id() {
    let mut rig = Rig::new();
    rig.write(O_ID, 7 << 24);
    rig.write(O_TPR, 0x20);
    rig.apic.accept(0x40, false);
    rig.wrmsr(IA32_APIC_BASE, DISABLED).unwrap();
    assert_eq!(rig.apic.pending(), None);
    assert!(rig.apic.lint0_extint(), "LINT0 is the plain INTR pin");
    assert_eq!(rig.read(O_TPR), u32::MAX, "the page is not decoded");
    rig.wrmsr(IA32_APIC_BASE, ENABLED_XAPIC).unwrap();
    assert_eq!(rig.read(O_ID), 7 << 24);
    assert_eq!(rig.read(O_TPR), 0);
    assert_eq!(rig.read(O_SVR), 0xff);
    assert!(!rig.irr(0x40));
}

// --- xAPIC versus x2APIC access rules ---

#[test]
fn xapic_takes_only_aligned_32_bit_accesses() {
    let mut rig = Rig::new();
    rig.write(O_TPR, 0x30);
    let cx = &mut rig.rec.cx();
    assert_eq!(rig.apic.read(O_TPR, MmioSize::Byte, cx), 0);
    assert_eq!(rig.apic.read(O_TPR, MmioSize::Qword, cx), 0);
    assert_eq!(rig.apic.read(O_TPR + 4, MmioSize::Dword, cx), 0);
    rig.apic.write(O_TPR, MmioSize::Byte, 0x50, cx);
    rig.apic.write(O_TPR + 4, MmioSize::Dword, 0x50, cx);
    assert_eq!(rig.read(O_TPR), 0x30, "odd accesses were dropped");
}

#[test]
fn xapic_offsets_without_a_register_set_illegal_register_address() {
    let mut rig = Rig::new();
    assert_eq!(rig.read(0x400), 0);
    rig.write(O_ESR, 0);
    assert_eq!(rig.read(O_ESR), esr::ILLEGAL_REGISTER_ADDRESS);
}

#[test]
fn xapic_id_ldr_and_dfr_are_writable_in_their_fields() {
    let mut rig = Rig::new();
    rig.write(O_ID, 0x0500_00ff);
    assert_eq!(rig.read(O_ID), 0x0500_0000);
    rig.write(O_LDR, 0x0100_ffff);
    assert_eq!(rig.read(O_LDR), 0x0100_0000);
    rig.write(O_DFR, 0x0000_0000);
    assert_eq!(rig.read(O_DFR), 0x0fff_ffff, "cluster model, 27:0 read 1");
    rig.write(O_VERSION, 0);
    assert_eq!(rig.read(O_VERSION), VERSION, "read-only");
}

#[test]
fn x2apic_msrs_fault_outside_x2apic_mode() {
    let mut rig = Rig::new();
    assert_eq!(rig.rdmsr(0x802), Err(ApicError::NotX2apicMode(0x802)));
    assert_eq!(rig.wrmsr(0x808, 0), Err(ApicError::NotX2apicMode(0x808)));
    assert_eq!(rig.rdmsr(0x10), Err(ApicError::NotApicMsr(0x10)));
    assert!(Lapic::handles_msr(0x8ff) && Lapic::handles_msr(0x6e0) && Lapic::handles_msr(0x1b));
    assert!(!Lapic::handles_msr(0x900));
}

#[test]
fn x2apic_mode_moves_the_registers_to_msrs() {
    let mut rig = Rig::x2apic();
    assert_eq!(rig.read(O_VERSION), u32::MAX, "no MMIO in x2APIC mode");
    assert_eq!(rig.rdmsr(0x802), Ok(APIC_ID.into()));
    assert_eq!(rig.rdmsr(0x803), Ok(VERSION.into()));
    // LDR: cluster ID[19:4] << 16 | 1 << ID[3:0].
    assert_eq!(rig.rdmsr(0x80d), Ok(1 << APIC_ID));
    rig.wrmsr(0x808, 0x40).unwrap();
    assert_eq!(rig.rdmsr(0x808), Ok(0x40));
    assert_eq!(rig.rdmsr(0x80a), Ok(0x40), "PPR follows TPR");
    assert_eq!(rig.rdmsr(0x80f), Ok(0x1ff), "SVR survives the switch");
}

#[test]
fn x2apic_ldr_derives_cluster_and_bit_from_the_id() {
    let apic = Lapic::new(LapicConfig {
        apic_id: 0x35,
        ..config()
    });
    assert_eq!(apic.x2apic_logical_id(), (3 << 16) | (1 << 5));
}

#[test]
fn x2apic_enforces_read_only_write_only_and_reserved_bits() {
    let mut rig = Rig::x2apic();
    for read_only in [0x802, 0x803, 0x80a, 0x80d, 0x810, 0x818, 0x820, 0x839] {
        assert_eq!(rig.wrmsr(read_only, 0), Err(ApicError::ReadOnly(read_only)));
    }
    for write_only in [0x80b, 0x83f] {
        assert_eq!(rig.rdmsr(write_only), Err(ApicError::WriteOnly(write_only)));
    }
    // No DFR, APR, remote read or ICR high in x2APIC mode.
    for absent in [0x80e, 0x809, 0x80c, 0x831, 0x82f, 0x8ff] {
        assert_eq!(rig.rdmsr(absent), Err(ApicError::NoRegister(absent)));
    }
    let reserved = [
        (0x808, 0x100),
        (0x80b, 1),
        (0x828, 1),
        (0x80f, 1 << 12),
        (0x832, 1 << 19),
        (0x837, 0x700),
        (0x83e, 0x4),
        (0x838, 1 << 32),
        (0x83f, 0x100),
        (0x830, 1 << 12),
    ];
    for (msr, value) in reserved {
        assert_eq!(
            rig.wrmsr(msr, value),
            Err(ApicError::ReservedBits { msr, value }),
            "MSR {msr:#x} value {value:#x}"
        );
    }
}

#[test]
fn x2apic_icr_is_one_64_bit_register() {
    let mut rig = Rig::x2apic();
    // A fixed IPI to APIC 9 (some other CPU): logged, kept in ICR.
    let icr = (9u64 << 32) | 0x45;
    rig.wrmsr(0x830, icr).unwrap();
    assert_eq!(rig.rdmsr(0x830), Ok(icr));
    assert_eq!(
        rig.ipis(),
        [SentIpi {
            delivery_mode: DeliveryMode::Fixed,
            vector: 0x45,
            destination: IpiDestination::Physical(9),
            level_assert: false,
            level_triggered: false,
        }]
    );
    assert_eq!(rig.rdmsr(0x820 + 2), Ok(0), "IRR word of 0x45 empty");
    assert_eq!(rig.apic.pending(), None);
    // Destination = own 32-bit ID: delivered here.
    rig.wrmsr(0x830, (u64::from(APIC_ID) << 32) | 0x46).unwrap();
    assert_eq!(rig.apic.pending(), Some(0x46));
    assert!(rig.ipis().is_empty());
}

// --- priorities, acceptance, EOI ---

#[test]
fn ppr_is_the_higher_of_tpr_and_the_in_service_class() {
    let mut rig = Rig::new();
    rig.write(O_TPR, 0x25);
    assert_eq!(rig.read(O_PPR), 0x25, "nothing in service: PPR = TPR");
    rig.apic.accept(0x51, false);
    assert_eq!(rig.inject(), Some(0x51));
    assert_eq!(rig.read(O_PPR), 0x50, "ISRV[7:4], low nibble 0");
    rig.write(O_TPR, 0x5a);
    assert_eq!(rig.read(O_PPR), 0x5a, "equal classes: TPR wins");
    rig.write(O_TPR, 0x60);
    assert_eq!(rig.read(O_PPR), 0x60);
}

#[test]
fn pending_needs_a_class_above_ppr() {
    let mut rig = Rig::new();
    rig.write(O_TPR, 0x40);
    rig.apic.accept(0x45, false);
    assert_eq!(rig.apic.pending(), None, "class 4 is not above TPR class 4");
    rig.apic.accept(0x50, false);
    assert_eq!(rig.apic.pending(), Some(0x50));
    rig.apic.set_task_priority(0);
    assert_eq!(rig.apic.pending(), Some(0x50), "highest first");
}

#[test]
fn eoi_retires_nested_interrupts_highest_first() {
    let mut rig = Rig::new();
    rig.apic.accept(0x41, false);
    assert_eq!(rig.inject(), Some(0x41));
    // A higher class interrupts the handler; a lower one waits.
    rig.apic.accept(0x61, false);
    rig.apic.accept(0x31, false);
    assert_eq!(rig.inject(), Some(0x61));
    assert_eq!(rig.apic.pending(), None, "0x31 is below PPR 0x60");
    assert_eq!(rig.read(O_ISR + 0x20), 1 << 1);
    rig.write(O_EOI, 0);
    assert_eq!(rig.read(O_ISR + 0x30), 0, "0x61 retired first");
    assert_eq!(rig.read(O_PPR), 0x40);
    assert_eq!(rig.apic.pending(), None, "0x31 is below 0x41 in service");
    rig.write(O_EOI, 0);
    assert_eq!(rig.inject(), Some(0x31));
    rig.write(O_EOI, 0);
    assert_eq!(rig.read(O_PPR), 0);
    rig.write(O_EOI, 0);
    assert_eq!(
        rig.apic.take_level_eoi(),
        None,
        "edge EOIs are not reported"
    );
}

#[test]
fn level_triggered_eois_are_reported_for_the_io_apic() {
    let mut rig = Rig::new();
    rig.apic.accept(0x30, true);
    rig.apic.accept(0x31, false);
    assert_eq!(
        rig.read(O_TMR + 0x10),
        1 << 16,
        "TMR set for level 0x30 only"
    );
    assert_eq!(rig.inject(), Some(0x31));
    assert_eq!(rig.inject(), None);
    rig.write(O_EOI, 0);
    assert_eq!(rig.apic.take_level_eoi(), None);
    assert_eq!(rig.inject(), Some(0x30));
    rig.write(O_EOI, 0);
    assert_eq!(rig.apic.take_level_eoi(), Some(0x30));
    assert_eq!(rig.apic.take_level_eoi(), None);
}

#[test]
fn acknowledge_moves_irr_to_isr() {
    let mut rig = Rig::new();
    rig.apic.accept(0x80, false);
    assert!(rig.irr(0x80));
    rig.apic.acknowledge(0x80);
    assert!(!rig.irr(0x80));
    assert_eq!(rig.read(O_ISR + 0x40), 1);
    rig.apic.acknowledge(0x90);
    assert_eq!(
        rig.read(O_ISR + 0x40),
        1,
        "an unrequested vector is ignored"
    );
}

#[test]
fn software_disable_stops_delivery_and_pins_the_lvt_masks() {
    let mut rig = Rig::new();
    rig.apic.accept(0x40, false);
    rig.write(O_LVT_LINT0, 0x700);
    rig.write(O_SVR, 0xff);
    assert!(!rig.apic.software_enabled());
    assert_eq!(rig.apic.pending(), None, "held, not delivered");
    assert!(rig.irr(0x40), "IRR keeps its bits");
    assert!(!rig.apic.accept(0x50, false), "new interrupts are dropped");
    assert_eq!(rig.apic.interrupts_dropped(), 1);
    assert_eq!(rig.read(O_LVT_LINT0), 0x700 | MASKED);
    rig.write(O_LVT_LINT0, 0x700);
    assert_eq!(rig.read(O_LVT_LINT0), 0x700 | MASKED, "masks stay set");
    assert!(!rig.apic.lint0_extint());
    rig.write(O_SVR, 0x1ff);
    assert_eq!(rig.apic.pending(), Some(0x40));
}

#[test]
fn illegal_vectors_set_esr_which_reads_after_a_write() {
    let mut rig = Rig::new();
    assert!(!rig.apic.accept(0x0f, false));
    assert!(!rig.irr(0x0f));
    assert_eq!(rig.read(O_ESR), 0, "not latched before a write");
    rig.write(O_ESR, 0);
    assert_eq!(rig.read(O_ESR), esr::RECEIVE_ILLEGAL_VECTOR);
    rig.write(O_ESR, 0);
    assert_eq!(rig.read(O_ESR), 0, "a second write clears it");
}

#[test]
fn errors_are_signalled_through_lvt_error() {
    let mut rig = Rig::new();
    rig.write(O_LVT_ERROR, 0xfe);
    rig.write(O_ICR_LOW, (1 << 18) | 0x03); // self-IPI, vector 3
    assert_eq!(rig.apic.pending(), Some(0xfe));
    rig.write(O_ESR, 0);
    assert_eq!(rig.read(O_ESR), esr::SEND_ILLEGAL_VECTOR);
}

#[test]
fn lint0_extint_is_the_virtual_wire() {
    let mut rig = Rig::new();
    assert!(!rig.apic.lint0_extint(), "masked at reset");
    rig.write(O_LVT_LINT0, 0x700);
    assert!(rig.apic.lint0_extint());
    rig.write(O_LVT_LINT0, 0x000);
    assert!(!rig.apic.lint0_extint(), "fixed is not ExtINT");
    let mut fresh = Rig::reset();
    fresh.apic.enter_virtual_wire_mode();
    assert!(fresh.apic.software_enabled() && fresh.apic.lint0_extint());
    assert_eq!(fresh.read(0x360), 0x400, "LINT1 is NMI");
}

// --- IPIs ---

#[test]
fn self_ipis_land_in_irr() {
    let mut rig = Rig::new();
    rig.write(O_ICR_LOW, (1 << 18) | 0x55);
    assert_eq!(rig.apic.pending(), Some(0x55));
    assert_eq!(rig.read(O_ICR_LOW), (1 << 18) | 0x55, "delivery status 0");
    assert!(rig.ipis().is_empty(), "a self-IPI needs no core");
    let mut x2 = Rig::x2apic();
    x2.wrmsr(0x83f, 0x66).unwrap();
    assert_eq!(x2.apic.pending(), Some(0x66));
    assert_eq!(x2.rdmsr(0x810 + 3), Ok(0), "not in service yet");
    assert_eq!(x2.rdmsr(0x820 + 3), Ok(1 << 6), "IRR bit 0x66");
}

#[test]
fn icr_shorthands_reach_self_and_log_the_rest() {
    let mut rig = Rig::new();
    rig.write(O_ICR_LOW, (2 << 18) | 0x70); // all including self
    assert_eq!(rig.apic.pending(), Some(0x70));
    rig.write(O_ICR_LOW, (3 << 18) | 0x71); // all excluding self
    assert!(!rig.irr(0x71));
    let logged: Vec<_> = rig.ipis().iter().map(|ipi| ipi.destination).collect();
    assert_eq!(
        logged,
        [
            IpiDestination::AllIncludingSelf,
            IpiDestination::AllExcludingSelf
        ]
    );
}

#[test]
fn physical_and_logical_destinations_match_this_apic() {
    let mut rig = Rig::new();
    rig.write(O_ICR_HIGH, APIC_ID << 24);
    rig.write(O_ICR_LOW, 0x72);
    assert!(rig.irr(0x72), "own ID");
    rig.write(O_ICR_HIGH, 3 << 24);
    rig.write(O_ICR_LOW, 0x73);
    assert!(!rig.irr(0x73), "another CPU");
    rig.write(O_ICR_HIGH, 0xff << 24);
    rig.write(O_ICR_LOW, 0x74);
    assert!(rig.irr(0x74), "physical broadcast");
    // Flat logical: LDR bit 2 matches destination 0b0110.
    rig.write(O_LDR, 0b0100 << 24);
    rig.write(O_ICR_HIGH, 0b0110 << 24);
    rig.write(O_ICR_LOW, (1 << 11) | 0x75);
    assert!(rig.irr(0x75));
    // Cluster logical: cluster 1, member bit 0.
    rig.write(O_DFR, 0);
    rig.write(O_LDR, 0x11 << 24);
    rig.write(O_ICR_HIGH, 0x21 << 24);
    rig.write(O_ICR_LOW, (1 << 11) | 0x76);
    assert!(!rig.irr(0x76), "cluster 2 is not ours");
    rig.write(O_ICR_HIGH, 0x13 << 24);
    rig.write(O_ICR_LOW, (1 << 11) | 0x77);
    assert!(rig.irr(0x77));
}

#[test]
fn init_and_sipi_are_recorded_not_acted_on() {
    let mut rig = Rig::new();
    rig.write(O_ICR_HIGH, 1 << 24);
    rig.write(O_ICR_LOW, 0x0000_c500); // INIT, level assert, level trigger
    rig.write(O_ICR_LOW, 0x0000_0608); // SIPI, start page 8
    let ipis = rig.ipis();
    assert_eq!(
        ipis,
        [
            SentIpi {
                delivery_mode: DeliveryMode::Init,
                vector: 0,
                destination: IpiDestination::Physical(1),
                level_assert: true,
                level_triggered: true,
            },
            SentIpi {
                delivery_mode: DeliveryMode::Startup,
                vector: 8,
                destination: IpiDestination::Physical(1),
                level_assert: false,
                level_triggered: false,
            },
        ]
    );
    assert_eq!(rig.apic.pending(), None);
    assert_eq!(rig.apic.mode(), ApicMode::XApic);
}

#[test]
fn a_full_ipi_log_counts_what_it_drops() {
    let mut rig = Rig::new();
    for _ in 0..IPI_LOG_CAPACITY + 3 {
        rig.write(O_ICR_LOW, (3 << 18) | 0x40);
    }
    assert_eq!(rig.ipis().len(), IPI_LOG_CAPACITY);
    assert_eq!(rig.apic.ipis_dropped(), 3);
}

// --- the timer ---

/// Programs the timer: LVT `lvt`, divide configuration, initial count.
fn start_timer(rig: &mut Rig, lvt: u32, divide: u32, initial: u32) {
    rig.write(O_LVT_TIMER, lvt);
    rig.write(O_DIVIDE, divide);
    rig.write(O_INITIAL, initial);
}

#[test]
fn one_shot_counts_down_and_fires_once() {
    let mut rig = Rig::new();
    rig.now = 1_000;
    start_timer(&mut rig, TIMER_VECTOR, DIVIDE_BY_1, 1_000);
    // 1000 ticks of 40 ns.
    assert_eq!(rig.apic.next_deadline_ns(), Some(1_000 + 40_000));
    rig.now = 11_000;
    assert_eq!(rig.read(O_CURRENT), 750);
    assert_eq!(rig.read(O_INITIAL), 1_000);
    rig.advance_to(40_999);
    assert_eq!(rig.apic.pending(), None, "not yet");
    rig.advance_to(41_000);
    assert_eq!(rig.apic.pending(), Some(TIMER_VECTOR as u8));
    assert_eq!(rig.read(O_TMR + 0xe0), 0, "edge-triggered");
    assert_eq!(rig.read(O_CURRENT), 0);
    assert_eq!(rig.apic.next_deadline_ns(), None, "one shot only");
}

#[test]
fn writing_zero_to_the_initial_count_stops_the_timer() {
    let mut rig = Rig::new();
    start_timer(&mut rig, TIMER_VECTOR, DIVIDE_BY_1, 1_000);
    rig.write(O_INITIAL, 0);
    assert_eq!(rig.apic.next_deadline_ns(), None);
    assert_eq!(rig.read(O_CURRENT), 0);
}

#[test]
fn periodic_reloads_and_coalesces_missed_ticks() {
    let mut rig = Rig::new();
    start_timer(&mut rig, TIMER_VECTOR | PERIODIC, DIVIDE_BY_1, 250);
    let period = 250 * 40;
    assert_eq!(rig.apic.next_deadline_ns(), Some(period));
    rig.advance_to(period);
    assert_eq!(rig.inject(), Some(TIMER_VECTOR as u8));
    rig.write(O_EOI, 0);
    assert_eq!(rig.apic.next_deadline_ns(), Some(2 * period));
    rig.now = 2 * period + period / 2;
    assert_eq!(rig.read(O_CURRENT), 125, "half-way through a period");
    // The VM was descheduled for three more periods: one interrupt.
    rig.advance_to(4 * period + 10);
    assert_eq!(rig.inject(), Some(TIMER_VECTOR as u8));
    assert_eq!(rig.inject(), None);
    assert_eq!(rig.apic.timer_ticks_coalesced(), 2);
    assert_eq!(rig.apic.next_deadline_ns(), Some(5 * period));
}

#[test]
fn every_divide_value_scales_the_count_rate() {
    let expected = [
        (0b0000, 2),
        (0b0001, 4),
        (0b0010, 8),
        (0b0011, 16),
        (0b1000, 32),
        (0b1001, 64),
        (0b1010, 128),
        (0b1011, 1),
    ];
    for (config, divide) in expected {
        assert_eq!(divisor(config), divide, "configuration {config:#06b}");
        let mut rig = Rig::new();
        start_timer(&mut rig, TIMER_VECTOR, config, 100);
        assert_eq!(rig.read(O_DIVIDE), config);
        assert_eq!(
            rig.apic.next_deadline_ns(),
            Some(100 * 40 * u64::from(divide))
        );
        rig.now = 40 * u64::from(divide) * 10;
        assert_eq!(rig.read(O_CURRENT), 90);
    }
}

#[test]
fn changing_the_divider_mid_count_keeps_the_count() {
    let mut rig = Rig::new();
    start_timer(&mut rig, TIMER_VECTOR, DIVIDE_BY_1, 100);
    rig.now = 40 * 60;
    rig.write(O_DIVIDE, 0b0000); // by 2: 40 ticks left at 80 ns
    assert_eq!(rig.read(O_CURRENT), 40);
    assert_eq!(rig.apic.next_deadline_ns(), Some(40 * 60 + 40 * 80));
}

#[test]
fn a_masked_timer_counts_but_does_not_interrupt() {
    let mut rig = Rig::new();
    start_timer(&mut rig, TIMER_VECTOR | PERIODIC | MASKED, DIVIDE_BY_1, 100);
    assert_eq!(rig.apic.next_deadline_ns(), None, "no event to wake for");
    rig.now = 40 * 150;
    assert_eq!(rig.read(O_CURRENT), 50, "still counting");
    rig.advance_to(40 * 350);
    assert_eq!(rig.apic.pending(), None);
    // Unmasking does not deliver the expiries that passed while masked.
    rig.write(O_LVT_TIMER, TIMER_VECTOR | PERIODIC);
    assert_eq!(rig.apic.pending(), None);
    assert_eq!(rig.apic.next_deadline_ns(), Some(40 * 400));
    rig.advance_to(40 * 400);
    assert_eq!(rig.apic.pending(), Some(TIMER_VECTOR as u8));
    assert_eq!(rig.apic.timer_ticks_coalesced(), 0);
}

#[test]
fn tsc_deadline_fires_when_the_guest_tsc_reaches_it() {
    let mut rig = Rig::new();
    rig.write(O_LVT_TIMER, TIMER_VECTOR | TSC_DEADLINE);
    assert_eq!(rig.rdmsr(IA32_TSC_DEADLINE), Ok(0));
    // 2 GHz: TSC 3_000_000 is 1.5 ms into the VM's life.
    rig.wrmsr(IA32_TSC_DEADLINE, 3_000_000).unwrap();
    assert_eq!(rig.rdmsr(IA32_TSC_DEADLINE), Ok(3_000_000));
    assert_eq!(rig.apic.next_deadline_ns(), Some(1_500_000));
    assert_eq!(rig.read(O_CURRENT), 0, "no count in TSC-deadline mode");
    rig.write(O_INITIAL, 100);
    assert_eq!(rig.read(O_INITIAL), 0, "initial count ignored");
    rig.advance_to(1_499_999);
    assert_eq!(rig.apic.pending(), None);
    rig.advance_to(1_500_000);
    assert_eq!(rig.apic.pending(), Some(TIMER_VECTOR as u8));
    assert_eq!(rig.rdmsr(IA32_TSC_DEADLINE), Ok(0), "disarmed after firing");
    assert_eq!(rig.apic.next_deadline_ns(), None);
}

#[test]
fn tsc_deadline_zero_disarms_and_a_past_deadline_fires_at_once() {
    let mut rig = Rig::new();
    rig.write(O_LVT_TIMER, TIMER_VECTOR | TSC_DEADLINE);
    rig.wrmsr(IA32_TSC_DEADLINE, 10_000_000).unwrap();
    rig.wrmsr(IA32_TSC_DEADLINE, 0).unwrap();
    assert_eq!(rig.apic.next_deadline_ns(), None);
    rig.now = 1_000_000;
    rig.wrmsr(IA32_TSC_DEADLINE, rig.apic.guest_tsc(rig.now) - 1)
        .unwrap();
    assert_eq!(rig.apic.pending(), Some(TIMER_VECTOR as u8));
}

#[test]
fn tsc_deadline_is_ignored_outside_its_mode_and_leaving_it_disarms() {
    let mut rig = Rig::new();
    rig.write(O_LVT_TIMER, TIMER_VECTOR);
    rig.wrmsr(IA32_TSC_DEADLINE, 5_000).unwrap();
    assert_eq!(rig.rdmsr(IA32_TSC_DEADLINE), Ok(0));
    assert_eq!(rig.apic.next_deadline_ns(), None);
    rig.write(O_LVT_TIMER, TIMER_VECTOR | TSC_DEADLINE);
    rig.wrmsr(IA32_TSC_DEADLINE, 5_000_000).unwrap();
    rig.write(O_LVT_TIMER, TIMER_VECTOR);
    rig.write(O_LVT_TIMER, TIMER_VECTOR | TSC_DEADLINE);
    assert_eq!(
        rig.rdmsr(IA32_TSC_DEADLINE),
        Ok(0),
        "the mode change disarmed it"
    );
}

#[test]
fn tsc_conversions_round_towards_the_deadline() {
    assert_eq!(guest_tsc(1_000, 2_000_000_000), 2_000);
    assert_eq!(tsc_to_ns(3, 2_000_000_000), 2, "1.5 ns rounds up");
    assert!(guest_tsc(tsc_to_ns(12_345, 3_000_000_007), 3_000_000_007) >= 12_345);
}

#[test]
fn tsc_deadline_follows_a_guest_write_of_the_tsc() {
    let mut rig = Rig::new();
    rig.write(O_LVT_TIMER, TIMER_VECTOR | TSC_DEADLINE);
    // At 1 ms (TSC 2_000_000 at 2 GHz) the guest sets its TSC to 10^9.
    rig.now = 1_000_000;
    rig.apic.set_guest_tsc(1_000_000_000, rig.now);
    assert_eq!(rig.apic.guest_tsc(rig.now), 1_000_000_000);
    assert_eq!(rig.apic.guest_tsc(2_000_000), 1_002_000_000);
    // A deadline 1 ms ahead of the new TSC fires 1 ms later, not at the
    // VM time the old TSC would have reached it.
    rig.wrmsr(IA32_TSC_DEADLINE, 1_002_000_000).unwrap();
    assert_eq!(rig.apic.next_deadline_ns(), Some(2_000_000));
    rig.advance_to(1_999_999);
    assert_eq!(rig.apic.pending(), None);
    rig.advance_to(2_000_000);
    assert_eq!(rig.apic.pending(), Some(TIMER_VECTOR as u8));
    // Set back below its value at VM time 0 (TSC 4_000_000 at 2 ms): the
    // TSC keeps counting from there, and a deadline below the value it
    // had at VM time 0 is due at once.
    rig.apic.set_guest_tsc(5, rig.now);
    assert_eq!(rig.apic.guest_tsc(rig.now + 1_000), 2_005);
    rig.wrmsr(IA32_TSC_DEADLINE, 1_005).unwrap();
    assert_eq!(
        rig.apic.next_deadline_ns(),
        Some(rig.now + 500),
        "1000 ticks on"
    );
    rig.apic.set_guest_tsc(5_000_000, rig.now);
    assert_eq!(rig.apic.next_deadline_ns(), Some(0));
}
