//! The xAPIC front end: the register page at IA32_APIC_BASE, 32-bit
//! accesses at 16-byte-aligned offsets (SDM Vol. 3A, 12.4.1).

use super::*;

impl Lapic {
    /// The xAPIC register `register` (offset >> 4), or None for no register.
    pub(super) fn read_xapic(&self, register: u32, now_ns: u64) -> Option<u32> {
        Some(match register {
            ID => u32::from(self.xapic_id) << 24,
            VERSION_REGISTER => VERSION,
            TPR => self.task_priority.into(),
            // APR and the remote read register: no bus arbitration or
            // remote reads here.
            APR | RRD => 0,
            PPR => self.processor_priority().into(),
            EOI => 0,
            LDR => self.logical_destination,
            DFR => self.destination_format,
            SVR => self.spurious_vector,
            ISR_FIRST..=0x27 => self.vector_register(register)?,
            ESR => self.error_status,
            ICR_LOW => self.icr_low,
            ICR_HIGH => self.icr_high,
            LVT_TIMER..=LVT_ERROR => self.lvt[Lvt::at(register)?.index()],
            INITIAL_COUNT => self.timer.initial_count(),
            CURRENT_COUNT => self.timer.current_count(now_ns),
            DIVIDE_CONFIG => self.timer.divide_config(),
            _ => return None,
        })
    }

    /// A write of xAPIC register `register`; false when there is none.
    pub(super) fn write_xapic(&mut self, register: u32, value: u32, now_ns: u64) -> bool {
        match register {
            ID => self.xapic_id = (value >> 24) as u8,
            TPR => self.task_priority = value as u8,
            EOI => self.end_of_interrupt(),
            LDR => self.logical_destination = value & 0xff00_0000,
            DFR => self.destination_format = value | 0x0fff_ffff,
            SVR => self.write_spurious_vector(value),
            ESR => self.write_error_status(),
            ICR_LOW => {
                self.icr_low = value & ICR_LOW_WRITABLE;
                self.send_ipi(self.icr_low, self.icr_high >> 24);
            }
            ICR_HIGH => self.icr_high = value & 0xff00_0000,
            LVT_TIMER..=LVT_ERROR => match Lvt::at(register) {
                Some(lvt) => self.write_lvt(lvt, value),
                None => return false,
            },
            INITIAL_COUNT => self.timer.set_initial_count(value, now_ns),
            DIVIDE_CONFIG => self.timer.set_divide_config(value, now_ns),
            // Read-only registers: the write is dropped.
            VERSION_REGISTER | APR | PPR | RRD | ISR_FIRST..=0x27 | CURRENT_COUNT => {}
            _ => return false,
        }
        true
    }
}

/// The register index an xAPIC access reaches: 32-bit accesses at
/// 16-byte-aligned offsets only (SDM Vol. 3A, 12.4.1).
fn xapic_register(offset: u64, size: MmioSize) -> Option<u32> {
    (size == MmioSize::Dword && offset.is_multiple_of(16) && offset < MMIO_LENGTH)
        .then_some((offset >> 4) as u32)
}

impl MmioDevice for Lapic {
    fn read(&mut self, offset: u64, size: MmioSize, cx: &mut DeviceContext) -> u64 {
        if self.mode != ApicMode::XApic {
            return size.mask();
        }
        let Some(register) = xapic_register(offset, size) else {
            return 0;
        };
        match self.read_xapic(register, cx.now_ns) {
            Some(value) => value.into(),
            None => {
                self.record_error(esr::ILLEGAL_REGISTER_ADDRESS);
                0
            }
        }
    }

    fn write(&mut self, offset: u64, size: MmioSize, value: u64, cx: &mut DeviceContext) {
        let Some(register) = xapic_register(offset, size) else {
            return;
        };
        if self.mode != ApicMode::XApic {
            return;
        }
        self.sync_timer(cx.now_ns);
        if !self.write_xapic(register, value as u32, cx.now_ns) {
            self.record_error(esr::ILLEGAL_REGISTER_ADDRESS);
        }
        self.sync_timer(cx.now_ns);
    }
}
