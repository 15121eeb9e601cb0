//! What a decoded MMIO instruction does, as data the caller applies: the
//! register operands (with AH–BH), loads and how they widen, stores, the
//! read-modify-write forms, and the error that names refused bytes.

use super::alu::{size_mask, AluOp};

/// A general-purpose register operand, numbered as instructions encode it
/// (0 = RAX … 15 = R15, `arch::registers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// The register, 0–15.
    pub number: u8,
    /// The operand is bits 15:8 of register `number` (0–3): AH, CH, DH or
    /// BH, which 8-bit operands 4–7 name when no REX prefix is present (SDM
    /// Vol. 2A, 2.2.1.2). With any REX they name SPL, BPL, SIL, DIL instead.
    pub high_byte: bool,
}

impl Register {
    /// The operand's `size`-byte value, given the full register's value.
    pub const fn read(self, register_value: u64, size: u8) -> u64 {
        if self.high_byte {
            (register_value >> 8) & 0xff
        } else {
            register_value & size_mask(size)
        }
    }

    /// The full register's value after writing a `size`-byte result to the
    /// operand (SDM Vol. 1, 3.4.1.1): a 4-byte result is zero-extended to
    /// 64 bits; 1- and 2-byte results replace only their bytes (bits 15:8
    /// for AH–BH) and leave the rest of the register as it was.
    pub const fn write(self, register_value: u64, result: u64, size: u8) -> u64 {
        if self.high_byte {
            return (register_value & !0xff00) | ((result & 0xff) << 8);
        }
        match size {
            1 | 2 => {
                let mask = size_mask(size);
                (register_value & !mask) | (result & mask)
            }
            4 => result & 0xffff_ffff,
            _ => result,
        }
    }
}

/// How a load widens the memory value to the destination register's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// MOV: memory and destination have the same size.
    None,
    /// MOVZX.
    Zero,
    /// MOVSX, MOVSXD.
    Sign,
}

/// A load from the device into a register (MOV r, m; MOVZX; MOVSX; MOVSXD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// The destination.
    pub register: Register,
    /// Bytes read from the device: 1, 2, 4 or 8.
    pub size: u8,
    /// How the value is widened from `size` to `destination_size`.
    pub extension: Extension,
    /// The operand size of the destination: 1, 2, 4 or 8.
    pub destination_size: u8,
}

impl Load {
    /// The destination register's new value, given its old value and the
    /// `size` bytes read from the device. Follows [`Register::write`]: a
    /// 32-bit destination is zero-extended to 64 bits, 8- and 16-bit
    /// destinations keep the register's other bytes.
    pub const fn register_value(&self, old: u64, memory: u64) -> u64 {
        let memory = memory & size_mask(self.size);
        let widened = match self.extension {
            Extension::Sign => {
                let shift = 64 - self.size as u32 * 8;
                (((memory << shift) as i64) >> shift) as u64
            }
            Extension::None | Extension::Zero => memory,
        };
        let value = widened & size_mask(self.destination_size);
        self.register.write(old, value, self.destination_size)
    }
}

/// The source operand of a read-modify-write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A register's low `size` bytes (or AH–BH).
    Register(Register),
    /// An immediate, already sign-extended as the instruction specifies and
    /// truncated to the operand size; for BT/BTS/BTR/BTC the bit number,
    /// already reduced modulo the operand width.
    Immediate(u64),
}

/// What the instruction does to the device register it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOperation {
    /// Read the device into a register.
    Load(Load),
    /// Write a register's low `size` bytes (or AH–BH) to the device.
    Store {
        /// The source register.
        register: Register,
        /// Bytes written: 1, 2, 4 or 8.
        size: u8,
    },
    /// Write an immediate to the device (MOV m, imm; for a 64-bit store the
    /// imm32 is already sign-extended).
    StoreImmediate {
        /// The value, truncated to `size` bytes.
        value: u64,
        /// Bytes written: 1, 2, 4 or 8.
        size: u8,
    },
    /// Read `size` bytes, compute [`alu`](super::alu::alu)`(op, size, memory, source)`, set
    /// the flags it defines, and write the result back if
    /// [`AluOp::writes_memory`].
    ReadModifyWrite {
        /// The operation.
        op: AluOp,
        /// Operand size in bytes: 1, 2, 4 or 8.
        size: u8,
        /// The second operand.
        source: Source,
    },
    /// CMP r, m (0x3A/0x3B): the flags of `alu(Cmp, size, register,
    /// memory)` — the register is the minuend; nothing is written.
    CompareRegister {
        /// The first operand.
        register: Register,
        /// Operand size in bytes: 1, 2, 4 or 8.
        size: u8,
    },
    /// XCHG m, r: read `size` bytes, write the register's low bytes to the
    /// device, then write the old memory value to the register with
    /// [`Register::write`]. (XCHG on memory is locked; the device sees one
    /// read then one write, which is all a device register can offer.)
    Exchange {
        /// The register exchanged with memory.
        register: Register,
        /// Operand size in bytes: 1, 2, 4 or 8.
        size: u8,
    },
}

/// A decoded instruction: what it does and how many bytes RIP advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The access.
    pub operation: MmioOperation,
    /// The instruction's length in bytes, prefixes included (1–15).
    pub length: u8,
}

/// The architectural maximum instruction length (SDM Vol. 2A, 2.1.1).
pub const MAX_INSTRUCTION_LENGTH: usize = 15;

/// Why [`decode`](super::decode) refused; each carries the bytes it was given (up to 15)
/// so that the message names the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended before the instruction did.
    Truncated {
        /// The bytes given.
        bytes: [u8; MAX_INSTRUCTION_LENGTH],
        /// How many of `bytes` were given.
        length: u8,
    },
    /// A form this decoder does not emulate, or one that would fault on the
    /// processor (LOCK on a MOV, longer than 15 bytes).
    Unsupported {
        /// The bytes given.
        bytes: [u8; MAX_INSTRUCTION_LENGTH],
        /// How many of `bytes` were given.
        length: u8,
        /// What is not supported.
        reason: &'static str,
    },
    /// The ModR/M byte names a register, not memory (mod = 3): such an
    /// instruction cannot have caused an MMIO exit, so RIP does not point
    /// at the instruction that did.
    RegisterOperand {
        /// The bytes given.
        bytes: [u8; MAX_INSTRUCTION_LENGTH],
        /// How many of `bytes` were given.
        length: u8,
    },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (bytes, length) = match *self {
            DecodeError::Truncated { bytes, length } => {
                f.write_str("mmio decode: the instruction is cut short:")?;
                (bytes, length)
            }
            DecodeError::Unsupported {
                bytes,
                length,
                reason,
            } => {
                write!(f, "mmio decode: unsupported ({reason}):")?;
                (bytes, length)
            }
            DecodeError::RegisterOperand { bytes, length } => {
                f.write_str("mmio decode: the operand is a register, not memory:")?;
                (bytes, length)
            }
        };
        for byte in &bytes[..length as usize] {
            write!(f, " {byte:02x}")?;
        }
        Ok(())
    }
}
