//! The x2APIC front end: the registers as MSRs 0x800-0x8FF, with x2APIC's
//! rules — reserved bits, read-only and write-only registers fault, the ICR
//! is one 64-bit MSR, the LDR is derived from the ID, no DFR, SELF IPI at
//! 0x83F (SDM Vol. 3A, 12.12).

use super::*;

impl Lapic {
    pub(super) fn read_x2apic(&self, msr: u32, now_ns: u64) -> Result<u64, ApicError> {
        if self.mode != ApicMode::X2Apic {
            return Err(ApicError::NotX2apicMode(msr));
        }
        let value = match msr - X2APIC_MSR_FIRST {
            ID => self.config.apic_id,
            VERSION_REGISTER => VERSION,
            TPR => self.task_priority.into(),
            PPR => self.processor_priority().into(),
            LDR => self.x2apic_logical_id(),
            SVR => self.spurious_vector,
            register @ ISR_FIRST..=0x27 => self.vector_register(register).unwrap_or(0),
            ESR => self.error_status,
            // The ICR is one 64-bit register (12.12.9).
            ICR_LOW => return Ok(u64::from(self.icr_high) << 32 | u64::from(self.icr_low)),
            register @ LVT_TIMER..=LVT_ERROR => self.lvt[Lvt::at(register).map_or(0, Lvt::index)],
            INITIAL_COUNT => self.timer.initial_count(),
            CURRENT_COUNT => self.timer.current_count(now_ns),
            DIVIDE_CONFIG => self.timer.divide_config(),
            EOI | SELF_IPI => return Err(ApicError::WriteOnly(msr)),
            _ => return Err(ApicError::NoRegister(msr)),
        };
        Ok(value.into())
    }

    pub(super) fn write_x2apic(
        &mut self,
        msr: u32,
        value: u64,
        now_ns: u64,
    ) -> Result<(), ApicError> {
        if self.mode != ApicMode::X2Apic {
            return Err(ApicError::NotX2apicMode(msr));
        }
        let register = msr - X2APIC_MSR_FIRST;
        // Reserved-bit checking (12.12.1.3): every bit outside `allowed`.
        let check = |allowed: u64| {
            if value & !allowed == 0 {
                Ok(value as u32)
            } else {
                Err(ApicError::ReservedBits { msr, value })
            }
        };
        match register {
            TPR => self.task_priority = check(0xff)? as u8,
            // EOI and ESR take only 0 in x2APIC mode (12.12.1.2).
            EOI => {
                check(0)?;
                self.end_of_interrupt();
            }
            ESR => {
                check(0)?;
                self.write_error_status();
            }
            SVR => self.write_spurious_vector(check(SVR_WRITABLE.into())?),
            ICR_LOW => {
                let low = check(u64::from(u32::MAX) << 32 | u64::from(ICR_LOW_WRITABLE))?;
                self.icr_low = low;
                self.icr_high = (value >> 32) as u32;
                self.send_ipi(low, self.icr_high);
            }
            LVT_TIMER..=LVT_ERROR => {
                let lvt = Lvt::at(register).ok_or(ApicError::NoRegister(msr))?;
                let value = check((lvt.writable() | lvt.read_only()).into())?;
                self.write_lvt(lvt, value);
            }
            INITIAL_COUNT => self
                .timer
                .set_initial_count(check(u32::MAX.into())?, now_ns),
            DIVIDE_CONFIG => self.timer.set_divide_config(check(0b1011)?, now_ns),
            // SELF IPI: a fixed, edge-triggered IPI to this APIC (12.12.11).
            SELF_IPI => {
                let vector = check(0xff)? as u8;
                if vector < 16 {
                    self.record_error(esr::SEND_ILLEGAL_VECTOR);
                } else {
                    self.accept(vector, false);
                }
            }
            ID | VERSION_REGISTER | PPR | LDR | ISR_FIRST..=0x27 | CURRENT_COUNT => {
                return Err(ApicError::ReadOnly(msr))
            }
            _ => return Err(ApicError::NoRegister(msr)),
        }
        Ok(())
    }
}
