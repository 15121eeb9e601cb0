//! SVM's intercept permission maps (APM Vol. 2, 15.10 "I/O Intercepts" and
//! 15.11 "MSR Intercepts"), built with the same policy as the VMX bitmaps:
//! every port exits, and every MSR but [`PASS_THROUGH_MSRS`].
//!
//! The MSR permission map (MSRPM) is 8 KiB: three ranges of 8192 MSRs at
//! two bits each — MSRs 0000_0000h-0000_1FFFh in bytes 000h-7FFh,
//! C000_0000h-C000_1FFFh in 800h-FFFh, C001_0000h-C001_1FFFh in
//! 1000h-17FFh; the rest is reserved. Bit 2n intercepts reads of the
//! range's MSR n and bit 2n+1 its writes; MSRs outside the ranges always
//! exit. The I/O permission map (IOPM) is 12 KiB, a bit per port; its
//! last bytes cover multi-byte accesses that run past port FFFFh.

use crate::rules::msr::PASS_THROUGH_MSRS;

/// The MSRPM's size.
pub const MSRPM_BYTES: usize = 8192;
/// The IOPM's size.
pub const IOPM_BYTES: usize = 12288;

/// The MSRPM byte and the bit of the read intercept for `msr` (the write
/// intercept is the next bit); `None` outside the three ranges.
pub const fn msrpm_position(msr: u32) -> Option<(usize, u8)> {
    let (base, offset) = match msr {
        0..=0x1fff => (0x000, msr),
        0xc000_0000..=0xc000_1fff => (0x800, msr - 0xc000_0000),
        0xc001_0000..=0xc001_1fff => (0x1000, msr - 0xc001_0000),
        _ => return None,
    };
    Some((base + (offset / 4) as usize, ((offset % 4) * 2) as u8))
}

/// Fills `map` as the MSRPM every VM shares: everything intercepted but
/// the pass-through MSRs, in both directions.
pub fn fill_msrpm(map: &mut [u8; MSRPM_BYTES]) {
    map.fill(0xff);
    for msr in PASS_THROUGH_MSRS {
        if let Some((byte, bit)) = msrpm_position(msr) {
            map[byte] &= !(0b11 << bit);
        }
    }
}

/// Fills `map` as the IOPM every VM shares: every port intercepted.
pub fn fill_iopm(map: &mut [u8; IOPM_BYTES]) {
    map.fill(0xff);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    /// Whether reads and writes of `msr` exit with `map`.
    fn intercepted(map: &[u8; MSRPM_BYTES], msr: u32) -> (bool, bool) {
        match msrpm_position(msr) {
            Some((byte, bit)) => (map[byte] >> bit & 1 != 0, map[byte] >> (bit + 1) & 1 != 0),
            None => (true, true),
        }
    }

    #[test]
    fn positions_follow_the_apm_layout() {
        assert_eq!(msrpm_position(0), Some((0, 0)));
        assert_eq!(msrpm_position(3), Some((0, 6)));
        assert_eq!(msrpm_position(4), Some((1, 0)));
        assert_eq!(msrpm_position(0x1fff), Some((0x7ff, 6)));
        assert_eq!(msrpm_position(0xc000_0080), Some((0x800 + 0x20, 0)), "EFER");
        assert_eq!(
            msrpm_position(0xc001_0114),
            Some((0x1000 + 0x45, 0)),
            "VM_CR"
        );
        assert_eq!(msrpm_position(0x2000), None);
        assert_eq!(msrpm_position(0xc000_2000), None);
        assert_eq!(msrpm_position(0xc002_0000), None);
    }

    #[test]
    fn only_the_pass_through_msrs_go_through() {
        let mut map = Box::new([0u8; MSRPM_BYTES]);
        fill_msrpm(&mut map);
        for msr in PASS_THROUGH_MSRS {
            assert_eq!(intercepted(&map, msr), (false, false), "{msr:#x}");
        }
        for msr in [
            0x10,        // TSC
            0x1b,        // APIC base
            0x6e0,       // TSC deadline
            0x802,       // x2APIC ID
            0xc000_0080, // EFER: SVME must never reach the guest
            0xc001_0114, // VM_CR
            0xc001_0117, // VM_HSAVE_PA
            0xc001_0116, // SVM_KEY
        ] {
            assert_eq!(intercepted(&map, msr), (true, true), "{msr:#x}");
        }
        // The reserved tail and every MSR beside a pass-through one exit.
        assert!(map[0x1800..].iter().all(|&b| b == 0xff));
        assert_eq!(intercepted(&map, 0xc000_0083), (false, false), "CSTAR");
        assert_eq!(intercepted(&map, 0xc000_0082), (false, false), "LSTAR");
        assert_eq!(intercepted(&map, 0xc000_0085), (true, true), "beside them");
    }

    #[test]
    fn every_port_exits() {
        let mut map = Box::new([0u8; IOPM_BYTES]);
        fill_iopm(&mut map);
        assert!(map.iter().all(|&b| b == 0xff));
    }
}
