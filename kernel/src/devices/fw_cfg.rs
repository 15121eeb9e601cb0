//! QEMU's firmware configuration device (fw_cfg), its traditional I/O
//! interface: a 16-bit selector at port 0x510 and a byte-wide data port at
//! 0x511 (QEMU's docs/specs/fw_cfg.rst). Test kernels built for QEMU read
//! the CPU count from it before bringing up application processors.
//!
//! This module owns the items and the read position. The items are built
//! once, from [`FwCfgConfig`], when the VM is created; the guest cannot
//! change them.
//!
//! Modelling choices:
//! - **No DMA.** FW_CFG_ID reports the traditional interface only (bit 0),
//!   and port 0x514 is not decoded.
//! - **Selecting** an item (a 16-bit write at 0x510) resets the read
//!   offset to 0, whether or not the item exists. Bit 14 (the old write
//!   channel) is ignored; bit 15 (architecture-local items) is part of the
//!   key, and no such item exists here.
//! - **Reading** the data port returns the next byte of the item; past its
//!   end, or with no item selected, it returns 0 (fw_cfg.rst). A wider
//!   read at 0x511 returns consecutive bytes, first byte lowest, as the
//!   MMIO form of the data register does; QEMU's I/O form refuses such
//!   reads.
//! - **Writes** to the data port (deprecated since QEMU 2.4) and byte
//!   writes to the selector are ignored; reads of the selector return all
//!   ones.

use super::{AccessSize, DeviceContext, PortDevice};
use alloc::vec::Vec;

/// The selector port; the data port follows it.
pub const SELECTOR_PORT: u16 = 0x510;
/// The data port.
pub const DATA_PORT: u16 = 0x511;
/// How many ports the device decodes (selector and data).
pub const PORT_COUNT: u16 = 2;

// Item keys (fw_cfg.rst and QEMU's include/standard-headers/linux/qemu_fw_cfg.h).
/// "QEMU", the signature a guest checks first.
pub const FW_CFG_SIGNATURE: u16 = 0x0000;
/// Feature bitmap, u32 little-endian: bit 0 traditional interface, bit 1 DMA.
pub const FW_CFG_ID: u16 = 0x0001;
/// RAM size in bytes, u64 little-endian.
pub const FW_CFG_RAM_SIZE: u16 = 0x0003;
/// CPUs present at boot, u16 little-endian.
pub const FW_CFG_NB_CPUS: u16 = 0x0005;
/// The most CPUs the machine can have, u16 little-endian.
pub const FW_CFG_MAX_CPUS: u16 = 0x000f;
/// The file directory: a big-endian u32 count, then 64-byte entries.
pub const FW_CFG_FILE_DIR: u16 = 0x0019;

/// FW_CFG_ID bit 0: the traditional selector/data interface.
pub const FEATURE_TRADITIONAL: u32 = 1 << 0;
/// The signature item's bytes.
pub const SIGNATURE: [u8; 4] = *b"QEMU";
/// Selector bit 14: QEMU's deprecated write channel, ignored.
const WRITE_CHANNEL: u16 = 1 << 14;

/// What the device tells the guest about its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwCfgConfig {
    /// The guest's RAM in bytes.
    pub ram_bytes: u64,
    /// The number of vCPUs (both present and maximum: no hot-plug).
    pub cpus: u16,
}

/// One item: a key and its bytes.
#[derive(Debug, Clone)]
struct Item {
    key: u16,
    data: Vec<u8>,
}

/// The fw_cfg device.
#[derive(Debug, Clone)]
pub struct FwCfg {
    items: Vec<Item>,
    /// The selected item's index in `items`, if the key named one.
    selected: Option<usize>,
    offset: usize,
}

impl FwCfg {
    /// The device with the items `config` describes, and the signature
    /// selected (QEMU's reset state).
    pub fn new(config: FwCfgConfig) -> FwCfg {
        let item = |key, data: &[u8]| Item {
            key,
            data: data.to_vec(),
        };
        let items = alloc::vec![
            item(FW_CFG_SIGNATURE, &SIGNATURE),
            item(FW_CFG_ID, &FEATURE_TRADITIONAL.to_le_bytes()),
            item(FW_CFG_RAM_SIZE, &config.ram_bytes.to_le_bytes()),
            item(FW_CFG_NB_CPUS, &config.cpus.to_le_bytes()),
            item(FW_CFG_MAX_CPUS, &config.cpus.to_le_bytes()),
            // An empty directory: only its count, big-endian (fw_cfg.rst,
            // "File Directory").
            item(FW_CFG_FILE_DIR, &0u32.to_be_bytes()),
        ];
        let mut device = FwCfg {
            items,
            selected: None,
            offset: 0,
        };
        device.select(FW_CFG_SIGNATURE);
        device
    }

    /// The bytes of the item `key`, if it exists.
    pub fn item(&self, key: u16) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|item| item.key == key)
            .map(|item| item.data.as_slice())
    }

    fn select(&mut self, selector: u16) {
        let key = selector & !WRITE_CHANNEL;
        self.selected = self.items.iter().position(|item| item.key == key);
        self.offset = 0;
    }

    fn next_byte(&mut self) -> u8 {
        let Some(index) = self.selected else {
            return 0;
        };
        match self.items[index].data.get(self.offset) {
            Some(&byte) => {
                self.offset += 1;
                byte
            }
            None => 0,
        }
    }
}

impl PortDevice for FwCfg {
    fn read(&mut self, offset: u16, size: AccessSize, _cx: &mut DeviceContext) -> u32 {
        if offset != DATA_PORT - SELECTOR_PORT {
            return size.mask();
        }
        (0..size.bytes()).fold(0, |value, index| {
            value | u32::from(self.next_byte()) << (8 * index)
        })
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, _cx: &mut DeviceContext) {
        if offset == 0 && size == AccessSize::Word {
            self.select(value as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;
    use std::vec::Vec;

    const DATA: u16 = 1;

    fn device() -> FwCfg {
        FwCfg::new(FwCfgConfig {
            ram_bytes: 0x8000_0000,
            cpus: 4,
        })
    }

    fn select(device: &mut FwCfg, key: u16) {
        let mut rec = Recorder::default();
        device.write(0, AccessSize::Word, key.into(), &mut rec.cx());
    }

    fn read_bytes(device: &mut FwCfg, count: usize) -> Vec<u8> {
        let mut rec = Recorder::default();
        (0..count)
            .map(|_| device.read(DATA, AccessSize::Byte, &mut rec.cx()) as u8)
            .collect()
    }

    #[test]
    fn the_signature_is_selected_at_reset() {
        let mut device = device();
        assert_eq!(read_bytes(&mut device, 4), b"QEMU");
    }

    #[test]
    fn items_read_as_their_byte_streams() {
        let mut device = device();
        let cases: [(u16, &[u8]); 6] = [
            (FW_CFG_SIGNATURE, b"QEMU"),
            (FW_CFG_ID, &[1, 0, 0, 0]),
            (FW_CFG_RAM_SIZE, &[0, 0, 0, 0x80, 0, 0, 0, 0]),
            (FW_CFG_NB_CPUS, &[4, 0]),
            (FW_CFG_MAX_CPUS, &[4, 0]),
            (FW_CFG_FILE_DIR, &[0, 0, 0, 0]),
        ];
        for (key, bytes) in cases {
            select(&mut device, key);
            assert_eq!(read_bytes(&mut device, bytes.len()), bytes, "item {key:#x}");
            assert_eq!(device.item(key), Some(bytes));
        }
    }

    #[test]
    fn reads_past_the_end_or_of_a_missing_item_return_zero() {
        let mut device = device();
        select(&mut device, FW_CFG_NB_CPUS);
        assert_eq!(read_bytes(&mut device, 5), [4, 0, 0, 0, 0]);
        select(&mut device, 0x0002); // UUID: not provided
        assert_eq!(read_bytes(&mut device, 3), [0, 0, 0]);
        select(&mut device, 0x8000 | FW_CFG_NB_CPUS);
        assert_eq!(
            read_bytes(&mut device, 2),
            [0, 0],
            "arch-local keys are distinct"
        );
    }

    #[test]
    fn selecting_resets_the_offset() {
        let mut device = device();
        select(&mut device, FW_CFG_SIGNATURE);
        assert_eq!(read_bytes(&mut device, 2), b"QE");
        select(&mut device, FW_CFG_SIGNATURE);
        assert_eq!(read_bytes(&mut device, 4), b"QEMU");
        select(&mut device, WRITE_CHANNEL | FW_CFG_NB_CPUS);
        assert_eq!(read_bytes(&mut device, 2), [4, 0], "bit 14 is ignored");
    }

    #[test]
    fn a_wide_data_read_returns_consecutive_bytes() {
        let mut device = device();
        let mut rec = Recorder::default();
        let signature = device.read(DATA, AccessSize::Dword, &mut rec.cx());
        assert_eq!(signature.to_le_bytes(), *b"QEMU");
    }

    #[test]
    fn other_accesses_change_nothing() {
        let mut device = device();
        let mut rec = Recorder::default();
        let mut cx = rec.cx();
        assert_eq!(device.read(0, AccessSize::Word, &mut cx), 0xffff);
        device.write(0, AccessSize::Byte, FW_CFG_NB_CPUS.into(), &mut cx);
        device.write(DATA, AccessSize::Byte, 0x55, &mut cx);
        assert_eq!(read_bytes(&mut device, 4), b"QEMU");
    }
}
