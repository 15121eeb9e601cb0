//! Parsing and printing of byte sizes as they appear on command lines (`mem=8M`).

use core::fmt;

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// The string was empty.
    Empty,
    /// The digits did not form a number.
    NotANumber,
    /// The suffix is not one of K, M, G (optionally followed by `B`/`iB`).
    BadSuffix,
    /// The value does not fit in 64 bits.
    Overflow,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Empty => f.write_str("empty size"),
            SizeError::NotANumber => f.write_str("not a number"),
            SizeError::BadSuffix => f.write_str("unknown suffix (use K, M or G)"),
            SizeError::Overflow => f.write_str("too large"),
        }
    }
}

/// Parses `1048576`, `64K`, `8M`, `2G` (binary multiples; `KiB`/`MB` spellings accepted).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    if text.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    if digits.is_empty() {
        return Err(SizeError::NotANumber);
    }
    let value: u64 = digits.parse().map_err(|_| SizeError::Overflow)?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(SizeError::BadSuffix),
    };
    value.checked_mul(1u64 << shift).ok_or(SizeError::Overflow)
}

/// Parses a number in decimal or, with a `0x` prefix, hexadecimal.
pub fn parse_number(text: &str) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        text.parse().ok()
    }
}

/// A byte count that prints in the largest binary unit that divides it evenly
/// (`8 MiB`, `640 KiB`, `1536 bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if value != 0 && value.is_multiple_of(1u64 << shift) {
                return write!(f, "{} {}", value >> shift, unit);
            }
        }
        write!(f, "{} bytes", value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("M"), Err(SizeError::NotANumber));
        assert_eq!(parse_size("8Q"), Err(SizeError::BadSuffix));
        assert_eq!(parse_size("99999999999999999999"), Err(SizeError::Overflow));
        assert_eq!(parse_size("17179869184G"), Err(SizeError::Overflow));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x7c00"), Some(0x7c00));
        assert_eq!(parse_number("31744"), Some(0x7c00));
        assert_eq!(parse_number("0xZZ"), None);
    }

    #[test]
    fn bytes_display() {
        assert_eq!(Bytes(8 << 20).to_string(), "8 MiB");
        assert_eq!(Bytes(640 << 10).to_string(), "640 KiB");
        assert_eq!(Bytes(1536).to_string(), "1536 bytes");
        assert_eq!(Bytes(3 << 30).to_string(), "3 GiB");
    }
}
