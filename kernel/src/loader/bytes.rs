//! Bounds-checked little-endian reads of fields from untrusted image bytes.
//!
//! Every offset comes from the image itself, so each read checks that the
//! whole field lies inside the slice and answers `None` otherwise: no
//! arithmetic here can overflow and no index can panic.

/// `N` bytes at `offset`, if they all lie inside `bytes`.
fn field<const N: usize>(bytes: &[u8], offset: u64) -> Option<[u8; N]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(N)?;
    bytes.get(start..end)?.try_into().ok()
}

/// The little-endian `u16` at `offset`.
pub(super) fn u16_at(bytes: &[u8], offset: u64) -> Option<u16> {
    field(bytes, offset).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `offset`.
pub(super) fn u32_at(bytes: &[u8], offset: u64) -> Option<u32> {
    field(bytes, offset).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `offset`.
pub(super) fn u64_at(bytes: &[u8], offset: u64) -> Option<u64> {
    field(bytes, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_outside() {
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u16_at(&bytes, 0), Some(0x0201));
        assert_eq!(u32_at(&bytes, 5), Some(0x0908_0706));
        assert_eq!(u64_at(&bytes, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(u32_at(&bytes, 6), None);
        assert_eq!(u64_at(&bytes, 2), None);
        assert_eq!(u16_at(&bytes, u64::MAX), None);
        assert_eq!(u16_at(&bytes, usize::MAX as u64), None);
    }
}
