//! PCI configuration mechanism #1 with the one device every PC's bus 0
//! has: the host bridge (PCI Local Bus Specification 3.0, 3.2.2.3.2).
//!
//! CONFIG_ADDRESS is the dword at port 0xCF8 (enable bit 31, bus 23:16,
//! device 15:11, function 10:8, dword register 7:2); CONFIG_DATA is ports
//! 0xCFC-0xCFF, where a byte, word or dword access reaches the register
//! bytes CONFIG_ADDRESS selects plus the port's offset. As on the PIIX and
//! ICH chipsets, only a dword access at 0xCF8 is CONFIG_ADDRESS: a byte at
//! 0xCF9 is the reset control register (`reset.rs`), and byte or word
//! accesses at 0xCF8 and 0xCFA-0xCFB are ordinary I/O that nothing decodes
//! (which is what a kernel's probe for the long-gone mechanism #2 expects
//! to find).
//!
//! The reset control register at 0xCF9 is the same chipset's, and this
//! device holds it, so that the PC's bus keeps one entry for the three
//! (a VM's devices are a table whose every entry costs as much as the
//! largest kind).
//!
//! Bus 0 holds the host bridge at 00:00.0, an Intel 440FX (8086:1237,
//! class 06/00/00), the bridge QEMU's and Bochs' `pc` machines have, whose
//! identity Linux's `pci_sanity_check` looks for before it trusts the
//! mechanism. Its configuration space is read-only here: it has no BARs and
//! no interrupt, and nothing behind it to configure. Every other bus,
//! device and function is absent: its registers read as all ones (a master
//! abort), and writes to it are dropped.

use super::reset::ResetControl;
use super::{AccessSize, DeviceContext, PortDevice};

/// CONFIG_ADDRESS's port: the device's base.
pub const CONFIG_ADDRESS_PORT: u16 = 0xcf8;
/// CONFIG_DATA's first port.
pub const CONFIG_DATA_PORT: u16 = 0xcfc;
/// The ports of CONFIG_DATA.
pub const CONFIG_DATA_COUNT: u16 = 4;

/// CONFIG_ADDRESS bit 31: configuration cycles enabled.
const ENABLE: u32 = 1 << 31;
/// The bits of CONFIG_ADDRESS that hold a value; 30:24 are reserved and
/// 1:0 are always 0 for type 0/1 cycles.
const ADDRESS_BITS: u32 = ENABLE | 0x00ff_fffc;

/// The host bridge's configuration header (type 0), the first 16 bytes;
/// the rest of its 256 bytes read as 0.
const HOST_BRIDGE_HEADER: [u8; 16] = [
    0x86, 0x80, // vendor: Intel
    0x37, 0x12, // device: 82441FX (440FX) PMC
    0x06, 0x00, // command: memory space, bus master
    0x80, 0x02, // status: fast back-to-back capable, medium DEVSEL
    0x02, // revision
    0x00, 0x00, 0x06, // class: bridge, host bridge, no programming interface
    0x00, // cache line size
    0x00, // latency timer
    0x00, // header type 0, single function
    0x00, // BIST: not supported
];

/// The ports this device decodes from its base, 0xCF8: CONFIG_ADDRESS and
/// the reset control register (0xCF9).
pub const BASE_COUNT: u16 = 2;
/// The reset control register's offset from the base.
const RESET_CONTROL: u16 = super::reset::RESET_CONTROL_PORT - CONFIG_ADDRESS_PORT;

/// Configuration mechanism #1, bus 0 and the reset control register.
#[derive(Debug, Clone, Default)]
pub struct PciHost {
    /// CONFIG_ADDRESS as last written (its value bits).
    address: u32,
    /// Port 0xCF9.
    reset: ResetControl,
}

impl PciHost {
    /// The mechanism with CONFIG_ADDRESS at 0.
    pub const fn new() -> PciHost {
        PciHost {
            address: 0,
            reset: ResetControl::new(),
        }
    }

    /// Byte `register` of the configuration space CONFIG_ADDRESS selects
    /// (its dword register plus `register`'s low bits), or `None` for an
    /// absent function or with configuration cycles disabled.
    fn config_byte(&self, register: u32) -> Option<u8> {
        if self.address & ENABLE == 0 {
            return None;
        }
        let bus = (self.address >> 16) & 0xff;
        let device = (self.address >> 11) & 0x1f;
        let function = (self.address >> 8) & 0x7;
        if (bus, device, function) != (0, 0, 0) {
            return None;
        }
        let offset = (self.address & 0xfc) + register;
        Some(
            HOST_BRIDGE_HEADER
                .get(offset as usize)
                .copied()
                .unwrap_or(0),
        )
    }
}

impl PortDevice for PciHost {
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        let all_ones = size.mask();
        match offset {
            0 if size == AccessSize::Dword => self.address,
            RESET_CONTROL => self.reset.read(0, size, cx),
            0 | 2 | 3 => all_ones,
            _ => {
                // CONFIG_DATA: port 0xCFC + n reaches register byte n on.
                let first = u32::from(offset) - u32::from(CONFIG_DATA_PORT - CONFIG_ADDRESS_PORT);
                let mut value = 0u32;
                for byte in 0..u32::from(size.bytes()) {
                    match self.config_byte(first + byte) {
                        Some(data) => value |= u32::from(data) << (8 * byte),
                        None => return all_ones,
                    }
                }
                value
            }
        }
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        match offset {
            0 if size == AccessSize::Dword => self.address = value & ADDRESS_BITS,
            RESET_CONTROL => self.reset.write(0, size, value, cx),
            // Byte and word writes at 0xCF8 and 0xCFA-0xCFB decode nothing;
            // CONFIG_DATA writes: the host bridge's registers are read-only
            // here, and an absent function ignores them.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;

    const DATA: u16 = CONFIG_DATA_PORT - CONFIG_ADDRESS_PORT;

    fn select(pci: &mut PciHost, bus: u32, device: u32, function: u32, register: u32) {
        let address = ENABLE | bus << 16 | device << 11 | function << 8 | register;
        pci.write(0, AccessSize::Dword, address, &mut Recorder::default().cx());
    }

    fn read(pci: &mut PciHost, offset: u16, size: AccessSize) -> u32 {
        pci.read(offset, size, &mut Recorder::default().cx())
    }

    #[test]
    fn config_address_reads_back_its_value_bits_only_as_a_dword() {
        let mut pci = PciHost::new();
        let mut rec = Recorder::default();
        pci.write(0, AccessSize::Dword, 0xffff_ffff, &mut rec.cx());
        assert_eq!(read(&mut pci, 0, AccessSize::Dword), 0x80ff_fffc);
        // Linux's type-1 probe: 0x80000000 reads back.
        pci.write(0, AccessSize::Dword, 0x8000_0000, &mut rec.cx());
        assert_eq!(read(&mut pci, 0, AccessSize::Dword), 0x8000_0000);
        // Byte and word accesses at 0xCF8 are not CONFIG_ADDRESS.
        pci.write(0, AccessSize::Byte, 0x00, &mut rec.cx());
        assert_eq!(read(&mut pci, 0, AccessSize::Byte), 0xff);
        assert_eq!(read(&mut pci, 0, AccessSize::Word), 0xffff);
        assert_eq!(read(&mut pci, 0, AccessSize::Dword), 0x8000_0000);
    }

    #[test]
    fn the_host_bridge_is_an_intel_440fx_at_00_00_0() {
        let mut pci = PciHost::new();
        select(&mut pci, 0, 0, 0, 0x00);
        assert_eq!(read(&mut pci, DATA, AccessSize::Dword), 0x1237_8086);
        assert_eq!(read(&mut pci, DATA + 2, AccessSize::Word), 0x1237);
        select(&mut pci, 0, 0, 0, 0x08);
        // Revision 2, class 06/00/00.
        assert_eq!(read(&mut pci, DATA, AccessSize::Dword), 0x0600_0002);
        assert_eq!(read(&mut pci, DATA + 3, AccessSize::Byte), 0x06);
        assert_eq!(read(&mut pci, DATA + 2, AccessSize::Word), 0x0600);
        select(&mut pci, 0, 0, 0, 0x0c);
        assert_eq!(
            read(&mut pci, DATA + 2, AccessSize::Byte),
            0x00,
            "header type 0"
        );
        // No BARs, no interrupt pin: zeros.
        select(&mut pci, 0, 0, 0, 0x10);
        assert_eq!(read(&mut pci, DATA, AccessSize::Dword), 0);
        select(&mut pci, 0, 0, 0, 0x3c);
        assert_eq!(read(&mut pci, DATA, AccessSize::Dword), 0);
        select(&mut pci, 0, 0, 0, 0xfc);
        assert_eq!(read(&mut pci, DATA, AccessSize::Dword), 0);
    }

    #[test]
    fn absent_functions_and_disabled_cycles_read_all_ones() {
        let mut pci = PciHost::new();
        for (bus, device, function) in [(0, 1, 0), (0, 0, 1), (0, 31, 7), (1, 0, 0), (255, 0, 0)] {
            select(&mut pci, bus, device, function, 0);
            assert_eq!(read(&mut pci, DATA, AccessSize::Dword), 0xffff_ffff);
            assert_eq!(read(&mut pci, DATA + 1, AccessSize::Byte), 0xff);
        }
        let mut rec = Recorder::default();
        pci.write(0, AccessSize::Dword, 0, &mut rec.cx());
        assert_eq!(
            read(&mut pci, DATA, AccessSize::Dword),
            0xffff_ffff,
            "bit 31 clear"
        );
    }

    #[test]
    fn port_0xcf9_is_the_reset_control_register() {
        let mut pci = PciHost::new();
        let mut rec = Recorder::default();
        let mut cx = rec.cx();
        pci.write(RESET_CONTROL, AccessSize::Byte, 0x06, &mut cx);
        assert_eq!(cx.request, Some(crate::devices::VmRequest::Reset));
        assert_eq!(read(&mut pci, RESET_CONTROL, AccessSize::Byte), 0x02);
        // CONFIG_ADDRESS is not touched by it.
        assert_eq!(read(&mut pci, 0, AccessSize::Dword), 0);
    }

    #[test]
    fn the_host_bridge_ignores_writes() {
        let mut pci = PciHost::new();
        select(&mut pci, 0, 0, 0, 0x04);
        let mut rec = Recorder::default();
        pci.write(DATA, AccessSize::Word, 0x0000, &mut rec.cx());
        assert_eq!(read(&mut pci, DATA, AccessSize::Word), 0x0006);
    }
}
