//! The ACPI fixed hardware a PC's chipset provides: the PM1a event block
//! (PM1_STS, PM1_EN), the PM1a control block (PM1_CNT) and the power
//! management timer, at I/O ports the FADT names. Citations are to ACPI
//! 6.4, chapter 4 ("ACPI Hardware Specification").
//!
//! This module owns those registers and the level of the SCI. It must not
//! power anything off itself (it sets [`VmRequest::PowerOff`] in the
//! access's context and the core acts), and it knows nothing of the
//! tables: the firmware-table builder reads the constants below.
//!
//! Modelling choices:
//! - **Always in ACPI mode.** SCI_EN reads 1 and cannot be cleared: there
//!   is no SMM firmware to hand events to. The FADT must say so with
//!   SMI_CMD = 0 (ACPI 6.4, 5.2.9, "SMI_CMD": zero means the system has no
//!   legacy mode to leave).
//! - **Sleep states.** A PM1_CNT write with SLP_EN and SLP_TYP =
//!   [`SLP_TYP_S5`] requests power-off. The DSDT declares no other sleep
//!   package, so an OS never asks for S1-S4; a write asking for any other
//!   SLP_TYP is ignored (the machine stays in S0, as if it woke at once,
//!   without setting WAK_STS).
//! - **The PM timer** counts VM time at 3.579545 MHz, 24 bits wide (the
//!   FADT's TMR_VAL_EXT flag must be 0), wrapping to 0 after 0xFFFFFF
//!   (about 4.69 s). TMR_STS is set whenever bit 23 changes, and with
//!   TMR_EN the SCI rises then ([`Timed`] gives the deadline): ACPI 6.4,
//!   4.8.4.1.1 (PM1 Status Registers), TMR_STS.
//! - **The power button** is the fixed-feature one ([`AcpiPm::press_power_button`]);
//!   the FADT must leave PWR_BUTTON clear and the DSDT declare no
//!   control-method button.
//! - **Access widths.** The registers are 16 bits (PM timer 32); any
//!   access is split into byte accesses at consecutive offsets, so a dword
//!   read at PM1a_EVT_BLK returns PM1_STS in its low half and PM1_EN in
//!   its high half. Bytes 6 and 7 decode nothing and read as 0xFF.

use super::irq::IrqLine;
use super::{AccessSize, DeviceContext, PortDevice, Timed, VmRequest};

pub use super::reset::{FADT_RESET_VALUE, RESET_CONTROL_PORT as FADT_RESET_PORT};

/// The first port of the block: the FADT's PM1a_EVT_BLK. (QEMU's q35
/// machine uses the same base; nothing else on a PC sits at 0x600.)
pub const PM_BASE: u16 = 0x600;
/// FADT PM1a_EVT_BLK.
pub const PM1A_EVT_BLK: u16 = PM_BASE;
/// FADT PM1_EVT_LEN: PM1_STS and PM1_EN, two bytes each.
pub const PM1_EVT_LEN: u8 = 4;
/// FADT PM1a_CNT_BLK.
pub const PM1A_CNT_BLK: u16 = PM_BASE + 4;
/// FADT PM1_CNT_LEN.
pub const PM1_CNT_LEN: u8 = 2;
/// FADT PM_TMR_BLK.
pub const PM_TMR_BLK: u16 = PM_BASE + 8;
/// FADT PM_TMR_LEN.
pub const PM_TMR_LEN: u8 = 4;
/// How many ports the device decodes from [`PM_BASE`].
pub const PORT_COUNT: u16 = 12;
/// The SCI's interrupt line: the FADT's SCI_INT (9, as on PC chipsets).
pub const SCI_IRQ: IrqLine = IrqLine::new(9).unwrap();
/// The SLP_TYP value for S5 (soft off): the first element of the DSDT's
/// `\_S5` package must be this.
pub const SLP_TYP_S5: u8 = 5;
/// The PM timer's rate in Hz (ACPI 6.4, 4.8.2.1, "Power Management Timer").
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The PM timer's width: 24 bits (FADT flags TMR_VAL_EXT = 0).
pub const PM_TIMER_BITS: u32 = 24;

// PM1_STS and PM1_EN bits (ACPI 6.4, Tables 4.11 and 4.12): each enable
// sits at its status bit's position.
/// TMR_STS / TMR_EN.
pub const TMR_STS: u16 = 1 << 0;
/// BM_STS (status only).
pub const BM_STS: u16 = 1 << 4;
/// GBL_STS / GBL_EN.
pub const GBL_STS: u16 = 1 << 5;
/// PWRBTN_STS / PWRBTN_EN.
pub const PWRBTN_STS: u16 = 1 << 8;
/// SLPBTN_STS / SLPBTN_EN.
pub const SLPBTN_STS: u16 = 1 << 9;
/// RTC_STS / RTC_EN.
pub const RTC_STS: u16 = 1 << 10;
/// WAK_STS (status only).
pub const WAK_STS: u16 = 1 << 15;
/// The enable bits that exist (PCIEXP_WAKE_DIS, bit 14, is not modelled).
const ENABLE_MASK: u16 = TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS;

// PM1_CNT bits (ACPI 6.4, Table 4.13).
/// SCI_EN: SCI rather than SMI (always set here).
pub const SCI_EN: u16 = 1 << 0;
/// BM_RLD.
pub const BM_RLD: u16 = 1 << 1;
/// GBL_RLS (write-only).
pub const GBL_RLS: u16 = 1 << 2;
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0x7 << SLP_TYP_SHIFT;
/// SLP_EN (write-only): enter the sleep state SLP_TYP names.
pub const SLP_EN: u16 = 1 << 13;

const STATUS: u16 = 0;
const ENABLE: u16 = 2;
const CONTROL: u16 = 4;
const TIMER: u16 = 8;

const NS_PER_SECOND: u64 = 1_000_000_000;

/// The PM timer's count (all bits, before the 24-bit wrap) at `now_ns`.
pub fn pm_timer_ticks(now_ns: u64) -> u64 {
    (u128::from(now_ns) * u128::from(PM_TIMER_HZ) / u128::from(NS_PER_SECOND)) as u64
}

/// The first VM nanosecond at which the timer has counted `ticks`.
fn ns_of_tick(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * u128::from(NS_PER_SECOND)).div_ceil(u128::from(PM_TIMER_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The ACPI PM1a event and control blocks and the PM timer.
#[derive(Debug, Clone, Default)]
pub struct AcpiPm {
    status: u16,
    enable: u16,
    /// BM_RLD and SLP_TYP as last written.
    control: u16,
    /// How many times bit 23 of the timer changed, as last seen.
    msb_changes_seen: u64,
    sci_asserted: bool,
}

impl AcpiPm {
    /// The registers after power-on: no status, nothing enabled, SLP_TYP 0.
    pub fn new() -> AcpiPm {
        AcpiPm::default()
    }

    /// The power button was pressed (the host asks for a clean shutdown):
    /// sets PWRBTN_STS, which raises the SCI if PWRBTN_EN is set.
    pub fn press_power_button(&mut self, cx: &mut DeviceContext) {
        self.catch_up(cx.now_ns);
        self.status |= PWRBTN_STS;
        self.update_sci(cx);
    }

    /// Whether the device drives the SCI now.
    pub fn sci_asserted(&self) -> bool {
        self.sci_asserted
    }

    /// Sets TMR_STS if bit 23 of the timer changed since the last look.
    fn catch_up(&mut self, now_ns: u64) {
        let changes = pm_timer_ticks(now_ns) >> (PM_TIMER_BITS - 1);
        if changes > self.msb_changes_seen {
            self.msb_changes_seen = changes;
            self.status |= TMR_STS;
        }
    }

    /// The SCI is a level: high while an enabled status bit is set (ACPI
    /// 6.4, 4.8.4.1, PM1 Event Grouping). SCI_EN is always set.
    fn update_sci(&mut self, cx: &mut DeviceContext) {
        let assert = self.status & self.enable & ENABLE_MASK != 0;
        if assert != self.sci_asserted {
            self.sci_asserted = assert;
            cx.irq.set(SCI_IRQ, assert);
        }
    }

    fn control_value(&self) -> u16 {
        // SLP_EN and GBL_RLS are write-only and read as 0.
        self.control | SCI_EN
    }

    fn read_byte(&self, offset: u16, now_ns: u64) -> u8 {
        let byte_of = |value: u64, index: u16| (value >> (8 * index)) as u8;
        match offset {
            STATUS..=1 => byte_of(self.status.into(), offset - STATUS),
            ENABLE..=3 => byte_of(self.enable.into(), offset - ENABLE),
            CONTROL..=5 => byte_of(self.control_value().into(), offset - CONTROL),
            TIMER..=11 => {
                let count = pm_timer_ticks(now_ns) & ((1 << PM_TIMER_BITS) - 1);
                byte_of(count, offset - TIMER)
            }
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, value: u8, cx: &mut DeviceContext) {
        let shift = |index: u16| u16::from(value) << (8 * index);
        let lane = |index: u16| 0xffu16 << (8 * index);
        match offset {
            // Write 1 to clear (ACPI 6.4, 4.8.4.1.1).
            STATUS..=1 => self.status &= !shift(offset - STATUS),
            ENABLE..=3 => {
                let index = offset - ENABLE;
                self.enable = (self.enable & !lane(index)) | (shift(index) & ENABLE_MASK);
            }
            CONTROL..=5 => {
                let index = offset - CONTROL;
                let written = shift(index);
                let kept = BM_RLD | SLP_TYP_MASK;
                self.control = (self.control & !lane(index)) | (written & kept);
                if written & SLP_EN != 0 {
                    self.sleep(((written & SLP_TYP_MASK) >> SLP_TYP_SHIFT) as u8, cx);
                }
            }
            // The timer is read-only; bytes 6 and 7 decode nothing.
            _ => {}
        }
    }

    /// SLP_EN was written with `sleep_type` (ACPI 6.4, 4.8.4.2.1, PM1
    /// Control Registers): S5 powers off, anything else is ignored.
    fn sleep(&mut self, sleep_type: u8, cx: &mut DeviceContext) {
        if sleep_type == SLP_TYP_S5 {
            cx.request = Some(VmRequest::PowerOff);
        }
    }
}

impl PortDevice for AcpiPm {
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        self.catch_up(cx.now_ns);
        let mut value = 0;
        for index in 0..size.bytes() {
            let byte = self.read_byte(offset.saturating_add(index.into()), cx.now_ns);
            value |= u32::from(byte) << (8 * index);
        }
        self.update_sci(cx);
        value
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        self.catch_up(cx.now_ns);
        for (index, byte) in value.to_le_bytes()[..size.bytes().into()]
            .iter()
            .enumerate()
        {
            self.write_byte(offset.saturating_add(index as u16), *byte, cx);
        }
        self.update_sci(cx);
    }
}

impl Timed for AcpiPm {
    /// The next change of the timer's bit 23, while TMR_EN is set.
    fn next_deadline_ns(&self) -> Option<u64> {
        (self.enable & TMR_STS != 0)
            .then(|| ns_of_tick((self.msb_changes_seen + 1) << (PM_TIMER_BITS - 1)))
    }

    fn advance(&mut self, cx: &mut DeviceContext) {
        self.catch_up(cx.now_ns);
        self.update_sci(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;

    struct Rig {
        pm: AcpiPm,
        rec: Recorder,
        now: u64,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                pm: AcpiPm::new(),
                rec: Recorder::default(),
                now: 0,
            }
        }

        fn read(&mut self, offset: u16, size: AccessSize) -> u32 {
            let mut cx = self.rec.cx().at(self.now);
            self.pm.read(offset, size, &mut cx)
        }

        fn write(&mut self, offset: u16, size: AccessSize, value: u32) -> Option<VmRequest> {
            let mut cx = self.rec.cx().at(self.now);
            self.pm.write(offset, size, value, &mut cx);
            cx.request
        }

        fn timer(&mut self) -> u32 {
            self.read(TIMER, AccessSize::Dword)
        }
    }

    #[test]
    fn the_ports_match_the_fadt_constants() {
        assert_eq!(PM1A_EVT_BLK - PM_BASE, STATUS);
        assert_eq!(PM1A_CNT_BLK - PM_BASE, CONTROL);
        assert_eq!(PM_TMR_BLK - PM_BASE, TIMER);
        assert_eq!(u16::from(PM_TMR_LEN) + TIMER, PORT_COUNT);
        assert_eq!((FADT_RESET_PORT, FADT_RESET_VALUE), (0xcf9, 0x06));
    }

    #[test]
    fn the_timer_counts_at_3_579545_mhz() {
        let mut rig = Rig::new();
        assert_eq!(rig.timer(), 0);
        rig.now = 1_000;
        assert_eq!(rig.timer(), 3, "3.58 ticks in a microsecond");
        rig.now = NS_PER_SECOND;
        assert_eq!(rig.timer(), 3_579_545);
        // Byte reads of the same instant assemble the same value.
        let bytes: [u8; 4] =
            core::array::from_fn(|index| rig.read(TIMER + index as u16, AccessSize::Byte) as u8);
        assert_eq!(u32::from_le_bytes(bytes), 3_579_545);
    }

    #[test]
    fn the_timer_wraps_at_24_bits() {
        let mut rig = Rig::new();
        rig.now = 4_686_968_874;
        assert_eq!(rig.timer(), 0xff_ffff, "the last count before the wrap");
        rig.now = 4_686_968_875;
        assert_eq!(rig.timer(), 0);
        rig.now = 5 * NS_PER_SECOND;
        assert_eq!(rig.timer(), 17_897_725 - (1 << 24));
        assert_eq!(
            rig.read(TIMER + 3, AccessSize::Byte),
            0,
            "bits 31:24 read 0"
        );
        rig.write(TIMER, AccessSize::Dword, 0);
        assert_eq!(rig.timer(), 17_897_725 - (1 << 24), "read-only");
    }

    #[test]
    fn tmr_sts_is_set_when_bit_23_changes_and_cleared_by_writing_1() {
        let mut rig = Rig::new();
        rig.now = 2_343_484_437;
        assert_eq!(rig.read(STATUS, AccessSize::Word), 0);
        rig.now = 2_343_484_438; // 2^23 ticks
        assert_eq!(rig.read(STATUS, AccessSize::Word), u32::from(TMR_STS));
        rig.write(STATUS, AccessSize::Word, 0);
        assert_eq!(
            rig.read(STATUS, AccessSize::Word),
            u32::from(TMR_STS),
            "0 keeps"
        );
        rig.write(STATUS, AccessSize::Word, TMR_STS.into());
        assert_eq!(rig.read(STATUS, AccessSize::Word), 0);
        // Bit 23 falling at the wrap counts too.
        rig.now = 4_686_968_875;
        assert_eq!(rig.read(STATUS, AccessSize::Word), u32::from(TMR_STS));
    }

    #[test]
    fn tmr_en_raises_the_sci_at_the_deadline() {
        let mut rig = Rig::new();
        assert_eq!(rig.pm.next_deadline_ns(), None);
        rig.write(ENABLE, AccessSize::Word, TMR_STS.into());
        assert_eq!(rig.read(ENABLE, AccessSize::Word), u32::from(TMR_STS));
        assert_eq!(rig.pm.next_deadline_ns(), Some(2_343_484_438));
        let mut cx = rig.rec.cx().at(2_343_484_438);
        rig.pm.advance(&mut cx);
        assert!(rig.rec.lines.level(SCI_IRQ));
        assert!(rig.pm.sci_asserted());
        rig.now = 2_343_484_438;
        rig.write(STATUS, AccessSize::Word, TMR_STS.into());
        assert!(
            !rig.rec.lines.level(SCI_IRQ),
            "clearing the status lowers it"
        );
        assert_eq!(rig.pm.next_deadline_ns(), Some(4_686_968_875));
    }

    #[test]
    fn the_power_button_sets_its_status_and_raises_the_enabled_sci() {
        let mut rig = Rig::new();
        let mut cx = rig.rec.cx();
        rig.pm.press_power_button(&mut cx);
        assert!(!rig.rec.lines.level(SCI_IRQ), "not enabled");
        assert_eq!(rig.read(STATUS, AccessSize::Word), u32::from(PWRBTN_STS));
        rig.write(ENABLE, AccessSize::Word, PWRBTN_STS.into());
        assert!(rig.rec.lines.level(SCI_IRQ));
        // A dword read at the event block: status low, enable high.
        assert_eq!(
            rig.read(STATUS, AccessSize::Dword),
            u32::from(PWRBTN_STS) << 16 | u32::from(PWRBTN_STS)
        );
    }

    #[test]
    fn sci_en_reads_set_and_slp_en_reads_clear() {
        let mut rig = Rig::new();
        assert_eq!(rig.read(CONTROL, AccessSize::Word), u32::from(SCI_EN));
        assert_eq!(rig.write(CONTROL, AccessSize::Word, 0), None);
        assert_eq!(
            rig.read(CONTROL, AccessSize::Word),
            u32::from(SCI_EN),
            "cannot leave ACPI mode"
        );
        rig.write(
            CONTROL,
            AccessSize::Word,
            u32::from(3 << SLP_TYP_SHIFT | BM_RLD),
        );
        assert_eq!(
            rig.read(CONTROL, AccessSize::Word),
            u32::from(3 << SLP_TYP_SHIFT | BM_RLD | SCI_EN)
        );
        assert_eq!(rig.read(6, AccessSize::Word), 0xffff, "nothing at 6 and 7");
    }

    #[test]
    fn slp_en_with_s5_requests_power_off() {
        let mut rig = Rig::new();
        let s5 = u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT | SLP_EN | SCI_EN;
        assert_eq!(s5, 0x3401);
        assert_eq!(
            rig.write(CONTROL, AccessSize::Word, s5.into()),
            Some(VmRequest::PowerOff)
        );
        // The high byte alone, as a byte write, does the same.
        let mut rig = Rig::new();
        assert_eq!(
            rig.write(CONTROL + 1, AccessSize::Byte, 0x34),
            Some(VmRequest::PowerOff)
        );
    }

    #[test]
    fn other_sleep_states_and_s5_without_slp_en_are_ignored() {
        let mut rig = Rig::new();
        for sleep_type in [0u16, 1, 3, 4, 6, 7] {
            let value = sleep_type << SLP_TYP_SHIFT | SLP_EN;
            assert_eq!(
                rig.write(CONTROL, AccessSize::Word, value.into()),
                None,
                "S{sleep_type}"
            );
        }
        let s5_type_only = u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT;
        assert_eq!(
            rig.write(CONTROL, AccessSize::Word, s5_type_only.into()),
            None
        );
    }
}
