//! The hypercall interface: numbers, results and argument checks.
//!
//! A guest issues `VMCALL` with the call number in RAX and arguments in RDI,
//! RSI, RDX and R10; the result comes back in RAX, negative for an error.
//! Pointers are guest-physical addresses. These numbers are a stable ABI:
//! never renumber, only add.

/// `console_write(buffer, length) -> bytes written`: prints guest text,
/// line-buffered and prefixed with the VM's name. May take fewer than
/// `length` bytes (never none) when the VM's time slice ran out while its
/// lines were going out: call again with the rest.
pub const CONSOLE_WRITE: u64 = 0;
/// `yield() -> 0`: gives up the rest of the time slice.
pub const YIELD: u64 = 1;
/// `exit(code)`: stops the VM with an exit code; does not return.
pub const EXIT: u64 = 2;
/// `vm_info(buffer, length) -> 48`: fills a [`VmInfo`].
pub const VM_INFO: u64 = 3;
/// `bench_nop() -> 0`: does nothing, for measuring the round trip.
pub const BENCH_NOP: u64 = 0xff;

/// The call number is unknown.
pub const ERROR_UNKNOWN_CALL: i64 = -1;
/// A buffer is not inside the VM's memory.
pub const ERROR_BAD_ADDRESS: i64 = -2;
/// An argument is out of range.
pub const ERROR_BAD_ARGUMENT: i64 = -3;

/// The most bytes one `console_write` takes.
pub const CONSOLE_WRITE_MAX: u64 = 4096;

/// What `vm_info` writes, little-endian, 48 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmInfo {
    /// The VM's number, from 1 in boot order.
    pub id: u32,
    /// Zero.
    pub reserved: u32,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// The VM's name, NUL-padded.
    pub name: [u8; 32],
}

impl VmInfo {
    /// The structure for a VM.
    pub fn new(id: u32, memory_bytes: u64, name: &str) -> VmInfo {
        let mut padded = [0u8; 32];
        let length = name.len().min(31);
        padded[..length].copy_from_slice(&name.as_bytes()[..length]);
        VmInfo {
            id,
            reserved: 0,
            memory_bytes,
            name: padded,
        }
    }

    /// Its bytes as the guest sees them.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut bytes = [0u8; 48];
        bytes[0..4].copy_from_slice(&self.id.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.memory_bytes.to_le_bytes());
        bytes[16..48].copy_from_slice(&self.name);
        bytes
    }
}

/// Checks that `[address, address + length)` lies inside a guest memory of
/// `memory_size` bytes; returns the range as offsets.
pub fn guest_range(address: u64, length: u64, memory_size: u64) -> Option<core::ops::Range<u64>> {
    let end = address.checked_add(length)?;
    (end <= memory_size).then_some(address..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(guest_range(0x1000, 0x10, 0x2000), Some(0x1000..0x1010));
        assert_eq!(guest_range(0x1ff0, 0x10, 0x2000), Some(0x1ff0..0x2000));
        assert_eq!(guest_range(0x1ff0, 0x11, 0x2000), None);
        assert_eq!(guest_range(u64::MAX, 2, 0x2000), None);
        assert_eq!(guest_range(0x3000, 0, 0x2000), None);
    }

    #[test]
    fn vm_info_layout() {
        let info = VmInfo::new(2, 8 << 20, "counter");
        let bytes = info.to_bytes();
        assert_eq!(&bytes[0..4], &2u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &(8u64 << 20).to_le_bytes());
        assert_eq!(&bytes[16..23], b"counter");
        assert!(bytes[23..].iter().all(|&b| b == 0));
        assert_eq!(core::mem::size_of::<VmInfo>(), 48);
    }
}
