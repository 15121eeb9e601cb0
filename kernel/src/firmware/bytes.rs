//! Little-endian assembly of firmware structures, and the byte checksum
//! both ACPI and the MP specification use: every byte of a structure,
//! checksum included, adds up to zero modulo 256.

use alloc::vec::Vec;

/// A structure being assembled, field by field, in little-endian order.
#[derive(Debug, Default, Clone)]
pub(super) struct Bytes(pub(super) Vec<u8>);

impl Bytes {
    pub(super) fn new() -> Self {
        Bytes(Vec::new())
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    pub(super) fn u16(&mut self, value: u16) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }

    pub(super) fn zeros(&mut self, count: usize) -> &mut Self {
        self.0.resize(self.0.len() + count, 0);
        self
    }

    /// Overwrites the little-endian `u16` at `offset`.
    pub(super) fn set_u16(&mut self, offset: usize, value: u16) {
        self.0[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }

    /// Overwrites the little-endian `u32` at `offset`.
    pub(super) fn set_u32(&mut self, offset: usize, value: u32) {
        self.0[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets the byte at `checksum` so that `[start, end)` sums to zero.
    pub(super) fn set_checksum(&mut self, start: usize, end: usize, checksum: usize) {
        self.0[checksum] = 0;
        self.0[checksum] = checksum_of(&self.0[start..end]);
    }
}

/// The byte that makes `bytes` (which include it as zero) sum to zero.
pub(super) fn checksum_of(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(sum(bytes))
}

/// The sum of `bytes` modulo 256: zero for a structure with a correct checksum.
pub(super) fn sum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |total, &byte| total.wrapping_add(byte))
}
