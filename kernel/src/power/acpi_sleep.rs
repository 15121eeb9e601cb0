//! Finding the S5 (soft-off) sleep type in a DSDT without an AML interpreter.
//!
//! Soft-off needs `SLP_TYPa`/`SLP_TYPb` from the `\_S5` package (ACPI 6.5,
//! 7.4.2 "\_Sx (System States)"). Firmware defines it as a plain named package
//! at the top level in practice (`Name (_S5, Package () { 5, 5, 0, 0 })`), so
//! a scan for that encoding finds it; anything fancier (a method) is reported
//! as not found and power-off falls back to the emulators' exit ports.

/// The two sleep-type values for S5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepType {
    /// For PM1a_CNT.SLP_TYP.
    pub a: u8,
    /// For PM1b_CNT.SLP_TYP.
    pub b: u8,
}

const NAME_OP: u8 = 0x08;
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const BYTE_PREFIX: u8 = 0x0a;

/// Decodes one integer package element: ZeroOp, OneOp or BytePrefix n.
fn integer(aml: &[u8], at: &mut usize) -> Option<u8> {
    let op = *aml.get(*at)?;
    *at += 1;
    match op {
        ZERO_OP => Some(0),
        ONE_OP => Some(1),
        BYTE_PREFIX => {
            let value = *aml.get(*at)?;
            *at += 1;
            Some(value)
        }
        _ => None,
    }
}

/// Scans an AML byte stream (a DSDT body) for `Name (_S5_, Package ...)`.
pub fn find_s5(aml: &[u8]) -> Option<SleepType> {
    let mut start = 0;
    while let Some(found) = aml[start..].windows(4).position(|w| w == b"_S5_") {
        let name = start + found;
        start = name + 4;
        // NameOp, optionally with the root prefix `\` before the name.
        let named = (name >= 1 && aml[name - 1] == NAME_OP)
            || (name >= 2 && aml[name - 1] == b'\\' && aml[name - 2] == NAME_OP);
        if !named || aml.get(name + 4) != Some(&PACKAGE_OP) {
            continue;
        }
        // PkgLength: bits 7..6 of the lead byte count the bytes that follow.
        let Some(&lead) = aml.get(name + 5) else {
            continue;
        };
        let mut at = name + 6 + (lead >> 6) as usize;
        at += 1; // NumElements
        let Some(a) = integer(aml, &mut at) else {
            continue;
        };
        let b = integer(aml, &mut at).unwrap_or(0);
        return Some(SleepType { a, b });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_style_s5() {
        // Name (\_S5, Package (0x04) { Zero, Zero, Zero, Zero }) from SeaBIOS-era QEMU.
        let aml = [
            0x10, 0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 0, b: 0 }));
    }

    #[test]
    fn byte_prefixed_values() {
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x07, 0x00, 0x00,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 5, b: 7 }));
    }

    #[test]
    fn long_package_length() {
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x04, 0x01, 0x0a, 0x02,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 1, b: 2 }));
    }

    #[test]
    fn references_that_are_not_definitions_are_skipped() {
        // A method that mentions _S5_ (no NameOp), then the real definition.
        let aml = [
            0x70, b'_', b'S', b'5', b'_', 0x60, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02,
            0x0a, 0x05, 0x01,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 5, b: 1 }));
    }

    #[test]
    fn missing_or_truncated() {
        assert_eq!(find_s5(b"no sleep states here"), None);
        assert_eq!(find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x12]), None);
        assert_eq!(
            find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0x77]),
            None
        );
    }
}
