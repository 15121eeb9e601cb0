//! The arithmetic of the read-modify-write instructions the MMIO decoder
//! accepts: the value written back and the status flags, computed as the
//! processor does (SDM Vol. 1, 3.4.3.1 and Appendix A; Vol. 2, the
//! "Flags Affected" paragraph of each instruction).

use crate::rules::bits::rflags::{AF, CF, OF, PF, SF, STATUS, ZF};

/// The operation of a read-modify-write (or read-and-compare) access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluOp {
    /// ADD: memory += source.
    Add,
    /// OR: memory |= source.
    Or,
    /// AND: memory &= source.
    And,
    /// SUB: memory -= source.
    Sub,
    /// XOR: memory ^= source.
    Xor,
    /// CMP: the flags of memory - source; memory is not written.
    Cmp,
    /// TEST: the flags of memory & source; memory is not written.
    Test,
    /// BT: CF = the source-numbered bit of memory; memory is not written.
    Bt,
    /// BTS: CF = the bit, then the bit is set.
    Bts,
    /// BTR: CF = the bit, then the bit is cleared.
    Btr,
    /// BTC: CF = the bit, then the bit is complemented.
    Btc,
}

impl AluOp {
    /// Whether the result is written back to memory (CMP, TEST and BT only
    /// read it).
    pub const fn writes_memory(self) -> bool {
        !matches!(self, AluOp::Cmp | AluOp::Test | AluOp::Bt)
    }

    /// The RFLAGS bits the operation defines; the caller replaces exactly
    /// these: `rflags = (rflags & !op.flags_written()) | flags`.
    ///
    /// BT/BTS/BTR/BTC define only CF (SDM Vol. 2A, "BT": OF, SF, AF and PF
    /// are undefined and ZF is unaffected), and tessera leaves the undefined
    /// ones as they were. The logical operations leave AF undefined; tessera
    /// clears it.
    pub const fn flags_written(self) -> u64 {
        match self {
            AluOp::Bt | AluOp::Bts | AluOp::Btr | AluOp::Btc => CF,
            _ => STATUS,
        }
    }
}

/// The most significant bit of a `size`-byte operand.
const fn sign_bit(size: u8) -> u64 {
    1 << (size as u32 * 8 - 1)
}

/// All ones in the low `size` bytes.
pub(super) const fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1 << (size as u32 * 8)) - 1
    }
}

/// ZF, SF and PF of a `size`-byte result (PF looks at the low byte only).
const fn result_flags(size: u8, result: u64) -> u64 {
    let mut flags = 0;
    if result == 0 {
        flags |= ZF;
    }
    if result & sign_bit(size) != 0 {
        flags |= SF;
    }
    if (result as u8).count_ones() & 1 == 0 {
        flags |= PF;
    }
    flags
}

/// Computes `op` on a `size`-byte (1, 2, 4 or 8) `destination` (the memory
/// operand) and `source` (a register, an immediate, or for the BT family
/// the bit number): returns the result, truncated to `size` bytes, and the
/// RFLAGS bits among [`AluOp::flags_written`] that are set.
///
/// For CMP and TEST the result is the one the flags describe (it is not
/// written anywhere); for BT it is `destination` unchanged.
pub fn alu(op: AluOp, size: u8, destination: u64, source: u64) -> (u64, u64) {
    let mask = size_mask(size);
    let sign = sign_bit(size);
    let destination = destination & mask;
    let source = source & mask;
    match op {
        AluOp::Add => {
            let result = destination.wrapping_add(source) & mask;
            let mut flags = result_flags(size, result);
            // Unsigned carry out of the top bit: the truncated sum wrapped.
            if result < destination {
                flags |= CF;
            }
            // Signed overflow: both inputs share a sign the result lacks.
            if (destination ^ result) & (source ^ result) & sign != 0 {
                flags |= OF;
            }
            (result, flags | auxiliary_carry(destination, source, result))
        }
        AluOp::Sub | AluOp::Cmp => {
            let result = destination.wrapping_sub(source) & mask;
            let mut flags = result_flags(size, result);
            // Borrow: the subtrahend exceeds the minuend as unsigned numbers.
            if source > destination {
                flags |= CF;
            }
            // Signed overflow: the inputs' signs differ and the result's sign
            // differs from the minuend's.
            if (destination ^ source) & (destination ^ result) & sign != 0 {
                flags |= OF;
            }
            (result, flags | auxiliary_carry(destination, source, result))
        }
        AluOp::Or => logical(size, destination | source),
        AluOp::And | AluOp::Test => logical(size, destination & source),
        AluOp::Xor => logical(size, destination ^ source),
        AluOp::Bt | AluOp::Bts | AluOp::Btr | AluOp::Btc => {
            // The decoder has already reduced an immediate bit offset modulo
            // the operand width (SDM Vol. 2A, "BT"); reduce again so that a
            // hand-built operation cannot shift out of range.
            let bit = 1u64 << (source % (size as u64 * 8));
            let flags = if destination & bit != 0 { CF } else { 0 };
            let result = match op {
                AluOp::Bts => destination | bit,
                AluOp::Btr => destination & !bit,
                AluOp::Btc => destination ^ bit,
                _ => destination,
            };
            (result, flags)
        }
    }
}

/// AF: a carry into or borrow from bit 4, visible as bit 4 of
/// destination ^ source ^ result for both addition and subtraction.
const fn auxiliary_carry(destination: u64, source: u64, result: u64) -> u64 {
    if (destination ^ source ^ result) & 0x10 != 0 {
        AF
    } else {
        0
    }
}

/// AND, OR, XOR, TEST: OF = CF = 0, SF/ZF/PF from the result (SDM Vol. 2A,
/// "AND", "Flags Affected"); AF is undefined and cleared here.
const fn logical(size: u8, result: u64) -> (u64, u64) {
    (result, result_flags(size, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_carries_and_overflows_at_each_width() {
        // 0xff + 1 = 0x100: CF, the zero byte has even parity, the low
        // nibble carried.
        assert_eq!(alu(AluOp::Add, 1, 0xff, 1), (0, CF | ZF | PF | AF));
        // 0x7f + 1 = 0x80: two positives give a negative.
        assert_eq!(alu(AluOp::Add, 1, 0x7f, 1), (0x80, OF | SF | AF));
        // 0x80 + 0x80 = 0x100: two negatives give zero.
        assert_eq!(alu(AluOp::Add, 1, 0x80, 0x80), (0, CF | OF | ZF | PF));
        // The width matters: 0xff + 1 is 0x100 without carry in 16 bits.
        assert_eq!(alu(AluOp::Add, 2, 0xff, 1), (0x100, PF | AF));
        assert_eq!(
            alu(AluOp::Add, 8, i64::MAX as u64, 1),
            (1 << 63, OF | SF | PF | AF)
        );
        // -1 + -1 = -2 with carry, no overflow; 0xfe has seven 1 bits.
        assert_eq!(
            alu(AluOp::Add, 8, u64::MAX, u64::MAX),
            (u64::MAX - 1, CF | SF | AF)
        );
        // Bits above the operand size are ignored.
        assert_eq!(alu(AluOp::Add, 4, 0xdead_0000_0001, 0x1_0000_0001), (2, 0));
    }

    #[test]
    fn sub_and_cmp_borrow_and_overflow() {
        // 0 - 1 = 0xffffffff: borrow, negative, eight 1 bits in the low
        // byte, a borrow out of bit 4.
        assert_eq!(alu(AluOp::Sub, 4, 0, 1), (0xffff_ffff, CF | SF | PF | AF));
        // 0x80 - 1 = 0x7f: the most negative byte minus one overflows.
        assert_eq!(alu(AluOp::Sub, 1, 0x80, 1), (0x7f, OF | AF));
        // 0x7f - 0xff (127 - (-1)) = 0x80: overflow and borrow.
        assert_eq!(alu(AluOp::Sub, 1, 0x7f, 0xff), (0x80, CF | OF | SF));
        // Equal operands: zero, no borrow.
        assert_eq!(alu(AluOp::Cmp, 8, 5, 5), (0, ZF | PF));
        assert_eq!(alu(AluOp::Cmp, 2, 0x1000, 0x2000), (0xf000, CF | SF | PF));
    }

    #[test]
    fn logical_operations_clear_carry_and_overflow() {
        assert_eq!(alu(AluOp::And, 2, 0x8000, 0xffff), (0x8000, SF | PF));
        assert_eq!(alu(AluOp::Test, 4, 0x10, 0x01), (0, ZF | PF));
        assert_eq!(alu(AluOp::Or, 4, 0x1, 0x10000), (0x10001, 0));
        assert_eq!(alu(AluOp::Xor, 8, 0x1234, 0x1234), (0, ZF | PF));
        assert_eq!(alu(AluOp::Or, 1, 0x03, 0x04), (0x07, 0));
        assert!(!AluOp::Test.writes_memory() && AluOp::Or.writes_memory());
        assert_eq!(AluOp::Xor.flags_written(), STATUS);
    }

    #[test]
    fn bit_tests_set_only_carry() {
        assert_eq!(alu(AluOp::Bt, 4, 0b1000, 3), (0b1000, CF));
        assert_eq!(alu(AluOp::Bt, 4, 0b1000, 0), (0b1000, 0));
        assert_eq!(alu(AluOp::Bts, 4, 0b1000, 0), (0b1001, 0));
        assert_eq!(alu(AluOp::Btr, 4, 0b1000, 3), (0, CF));
        assert_eq!(alu(AluOp::Btc, 2, 0x8000, 15), (0, CF));
        // The offset is taken modulo the width: bit 33 of a dword is bit 1.
        assert_eq!(alu(AluOp::Bts, 4, 0, 33), (2, 0));
        assert_eq!(alu(AluOp::Bts, 8, 0, 63), (1 << 63, 0));
        assert_eq!(AluOp::Bts.flags_written(), CF);
        assert!(!AluOp::Bt.writes_memory() && AluOp::Btr.writes_memory());
    }
}
