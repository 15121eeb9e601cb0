//! WRMSR to IA32_EFER: which writes fault and what the register holds after.
//! LMA is the processor's to set (it follows CR0.PG and LME, see
//! `control_registers::write_cr0`); LME is frozen while paging is on.

use super::bits::{cr0, efer};
use super::control_registers::ControlState;
use super::Fault;

/// Decides a write of `value` to IA32_EFER; `supported` holds the bits
/// tessera offers this guest. SVME is never offered (tessera does not nest).
pub fn write_efer(state: &ControlState, value: u64, supported: u64) -> Result<u64, Fault> {
    let writable = supported & !(efer::LMA | efer::SVME);
    // Reserved or unsupported bits fault (SDM Vol. 4, Table 2-2). LMA is
    // read-only: the written bit is ignored, whatever it is.
    if value & !(writable | efer::LMA) != 0 {
        return Err(Fault::GP0);
    }
    // LME cannot be modified while paging is enabled (SDM Vol. 3A, 10.8.5;
    // 5.1.2).
    if (value ^ state.efer) & efer::LME != 0 && state.cr0 & cr0::PG != 0 {
        return Err(Fault::GP0);
    }
    Ok((value & writable) | (state.efer & efer::LMA))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUPPORTED: u64 = efer::SCE | efer::LME | efer::LMA | efer::NXE;
    const LONG: ControlState = ControlState {
        cr0: cr0::PE | cr0::PG,
        cr3: 0,
        cr4: 1 << 5,
        efer: efer::LME | efer::LMA,
        cs_long: true,
        cpl: 0,
    };
    const PROTECTED: ControlState = ControlState {
        cr0: cr0::PE,
        efer: 0,
        cs_long: false,
        ..LONG
    };

    #[test]
    fn unsupported_bits_fault() {
        assert_eq!(write_efer(&PROTECTED, 1 << 1, SUPPORTED), Err(Fault::GP0));
        assert_eq!(
            write_efer(&PROTECTED, efer::NXE, efer::SCE | efer::LME),
            Err(Fault::GP0),
            "NXE not offered"
        );
    }

    #[test]
    fn svme_is_never_offered() {
        assert_eq!(
            write_efer(&PROTECTED, efer::SVME, u64::MAX),
            Err(Fault::GP0)
        );
    }

    #[test]
    fn lme_is_frozen_while_paging_is_on() {
        // SDM Vol. 3A, 10.8.5.
        assert_eq!(write_efer(&LONG, efer::LMA, SUPPORTED), Err(Fault::GP0));
        assert_eq!(
            write_efer(&PROTECTED, efer::LME, SUPPORTED),
            Ok(efer::LME),
            "paging off: LME may change"
        );
        assert_eq!(
            write_efer(&LONG, efer::LME | efer::NXE | efer::SCE, SUPPORTED),
            Ok(efer::LME | efer::LMA | efer::NXE | efer::SCE),
            "other bits change while LME stays"
        );
    }

    #[test]
    fn lma_is_read_only() {
        assert_eq!(write_efer(&PROTECTED, efer::LMA, SUPPORTED), Ok(0));
        assert_eq!(
            write_efer(&LONG, efer::LME, SUPPORTED),
            Ok(efer::LME | efer::LMA),
            "clearing LMA is ignored too"
        );
    }
}
