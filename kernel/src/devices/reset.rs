//! The PC chipset's reset control register at port 0xCF9 (Intel PIIX3/
//! PIIX4 and ICH "Reset Control Register"), which the FADT's reset
//! register also names.
//!
//! This module owns the register's value. It must not reset anything
//! itself: it sets [`VmRequest::Reset`] in the access's context, and the
//! core acts on it.
//!
//! Bit 2 (RST_CPU) starts a reset on its 0-to-1 transition; bit 1
//! (SYS_RST) chooses a hard reset and bit 3 (FULL_RST) a full power cycle.
//! Every reset here is the same restart of the VM, so any write with bit 2
//! set requests it (the bit cannot already be 1: the machine reset when it
//! became 1). Reads return bits 1 and 3 of the last write; bit 2 is
//! write-only.
//!
//! Port 0xCF9 lies inside the PCI configuration mechanism's 0xCF8-0xCFF;
//! the host bridge (`pci.rs`) leaves byte accesses at 0xCF9 to this device
//! (the chipsets decode a byte access there as this register, and
//! CONFIG_ADDRESS only as a dword at 0xCF8).

use super::{AccessSize, DeviceContext, PortDevice, VmRequest};

/// The reset control register's port.
pub const RESET_CONTROL_PORT: u16 = 0xcf9;
/// How many ports it decodes.
pub const PORT_COUNT: u16 = 1;
/// The value the FADT's RESET_VALUE gives for RESET_REG = port 0xCF9:
/// SYS_RST | RST_CPU, a hard reset.
pub const FADT_RESET_VALUE: u8 = 0x06;

/// SYS_RST: the reset is a hard one.
pub const SYS_RST: u8 = 1 << 1;
/// RST_CPU: a 0-to-1 transition resets the machine.
pub const RST_CPU: u8 = 1 << 2;
/// FULL_RST: the reset cycles the power.
pub const FULL_RST: u8 = 1 << 3;

/// Port 0xCF9.
#[derive(Debug, Clone, Default)]
pub struct ResetControl {
    value: u8,
}

impl ResetControl {
    /// The register at its power-on value, 0.
    pub const fn new() -> ResetControl {
        ResetControl { value: 0 }
    }
}

impl PortDevice for ResetControl {
    fn read(&mut self, _offset: u16, _size: AccessSize, _cx: &mut DeviceContext) -> u32 {
        u32::from(self.value & (SYS_RST | FULL_RST))
    }

    /// Only the low byte counts: the register is 8 bits wide.
    fn write(&mut self, _offset: u16, _size: AccessSize, value: u32, cx: &mut DeviceContext) {
        self.value = value as u8;
        if self.value & RST_CPU != 0 {
            cx.request = Some(VmRequest::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;

    fn write(device: &mut ResetControl, value: u8) -> Option<VmRequest> {
        let mut rec = Recorder::default();
        let mut cx = rec.cx();
        device.write(0, AccessSize::Byte, value.into(), &mut cx);
        cx.request
    }

    fn read(device: &mut ResetControl) -> u8 {
        let mut rec = Recorder::default();
        device.read(0, AccessSize::Byte, &mut rec.cx()) as u8
    }

    #[test]
    fn rst_cpu_requests_a_reset() {
        for value in [FADT_RESET_VALUE, 0x0e, RST_CPU] {
            let mut device = ResetControl::new();
            assert_eq!(
                write(&mut device, value),
                Some(VmRequest::Reset),
                "{value:#x}"
            );
        }
    }

    #[test]
    fn writes_without_rst_cpu_only_set_the_reset_kind() {
        let mut device = ResetControl::new();
        assert_eq!(read(&mut device), 0);
        assert_eq!(write(&mut device, SYS_RST | FULL_RST), None);
        assert_eq!(read(&mut device), 0x0a);
        assert_eq!(write(&mut device, 0), None);
        assert_eq!(read(&mut device), 0);
    }

    #[test]
    fn reads_return_bits_1_and_3_only() {
        let mut device = ResetControl::new();
        write(&mut device, 0xff);
        assert_eq!(read(&mut device), 0x0a);
    }
}
