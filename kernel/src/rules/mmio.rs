//! Decoding the instructions guests use on memory-mapped device registers
//! (the local APIC page, the IOAPIC): when such an access exits on an EPT
//! violation, the exit names the guest-physical address but not what the
//! instruction does, so the caller fetches the bytes at RIP (up to 15,
//! through the guest's page tables), asks [`decode`] what they do and how
//! long they are, performs the access on the device model, and advances RIP
//! by [`Decoded::length`]. The arithmetic of the read-modify-write forms is
//! [`alu()`] in `mmio/alu.rs`; the decoded operation's types are in
//! `mmio/operation.rs`.
//!
//! A small decoder of exactly the forms device drivers use, not a general
//! one: a full x86 decoder costs ≈ 108 KiB of code plus ≈ 330 KiB of tables
//! (iced-x86, measured no_std, opt-level s, LTO) or ≈ 150 KiB (yaxpeax-x86)
//! to answer a question that Linux asks with a plain MOV almost every time.
//! Anything else — string instructions, REP, VEX/EVEX, ADC/SBB, ALU forms
//! with a register destination other than CMP, x87/SSE — is refused with a
//! [`DecodeError`] that prints the instruction's bytes in hex; the caller
//! stops that VM only, and the bytes say what to add here.
//!
//! Encodings follow SDM Vol. 2A, chapter 2 (prefixes 2.1.1, ModR/M and SIB
//! Tables 2-1 to 2-3, REX 2.2.1) and the opcode map of Vol. 2D, Appendix A.
//! Pure: no allocation, no hardware; the caller owns the register file and
//! the device.

mod alu;
#[cfg(test)]
mod iced_tests;
mod operation;
#[cfg(test)]
mod tests;

use alu::size_mask;
pub use alu::{alu, AluOp};
pub use operation::{
    DecodeError, Decoded, Extension, Load, MmioOperation, Register, Source, MAX_INSTRUCTION_LENGTH,
};

/// The processor mode the instruction was fetched in: it sets the default
/// operand and address sizes and whether REX exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMode {
    /// 64-bit mode (IA-32e, CS.L = 1): 32-bit operands, 64-bit addresses, REX.
    Long64,
    /// Protected mode or compatibility mode with CS.D = 1: 32-bit operands
    /// and addresses.
    Protected32,
    /// Real mode, virtual-8086 mode, or a 16-bit code segment: 16-bit
    /// operands and addresses.
    Real16,
}

/// Why decoding stopped, before the bytes are attached.
enum Refusal {
    Truncated,
    Unsupported(&'static str),
    RegisterOperand,
}

/// Reads the instruction one byte at a time, never past 15 bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, Refusal> {
        if self.position >= MAX_INSTRUCTION_LENGTH {
            // The processor raises #GP for an instruction longer than 15
            // bytes; it cannot have reached the device.
            return Err(Refusal::Unsupported("longer than 15 bytes"));
        }
        let byte = *self.bytes.get(self.position).ok_or(Refusal::Truncated)?;
        self.position += 1;
        Ok(byte)
    }

    /// A little-endian `count`-byte value (1, 2, 4 or 8).
    fn little_endian(&mut self, count: u8) -> Result<u64, Refusal> {
        let mut value = 0;
        for index in 0..count {
            value |= (self.next()? as u64) << (8 * index);
        }
        Ok(value)
    }

    /// Skips `count` bytes (a displacement or a memory offset).
    fn skip(&mut self, count: u8) -> Result<(), Refusal> {
        self.little_endian(count).map(|_| ())
    }
}

/// The REX prefix's bits (SDM Vol. 2A, 2.2.1); all clear without one.
#[derive(Clone, Copy, Default)]
struct Rex {
    present: bool,
    w: bool,
    r: bool,
}

/// The prefixes and modes that shape the operands.
struct Prefixes {
    mode: CodeMode,
    operand_size_override: bool,
    address_size_override: bool,
    lock: bool,
    rex: Rex,
}

impl Prefixes {
    /// The operand size of a non-byte instruction (SDM Vol. 2A, 2.2.1.2
    /// and Table 3-4 of Vol. 1): REX.W wins over 0x66.
    fn operand_size(&self) -> u8 {
        match self.mode {
            CodeMode::Long64 if self.rex.w => 8,
            CodeMode::Long64 | CodeMode::Protected32 if self.operand_size_override => 2,
            CodeMode::Long64 | CodeMode::Protected32 => 4,
            CodeMode::Real16 if self.operand_size_override => 4,
            CodeMode::Real16 => 2,
        }
    }

    /// The address size in bytes: 0x67 toggles 64 → 32, 32 → 16, 16 → 32.
    fn address_size(&self) -> u8 {
        match (self.mode, self.address_size_override) {
            (CodeMode::Long64, false) => 8,
            (CodeMode::Long64, true) | (CodeMode::Protected32, false) => 4,
            (CodeMode::Real16, true) => 4,
            (CodeMode::Protected32, true) | (CodeMode::Real16, false) => 2,
        }
    }

    /// The register a ModR/M reg field (0–7) names, extended by REX.R, for
    /// an operand of `size` bytes.
    fn register(&self, reg_field: u8, size: u8) -> Register {
        let number = reg_field | if self.rex.r { 8 } else { 0 };
        if size == 1 && !self.rex.present && (4..8).contains(&number) {
            Register {
                number: number - 4,
                high_byte: true,
            }
        } else {
            Register {
                number,
                high_byte: false,
            }
        }
    }
}

/// Decodes the instruction at the start of `bytes` (the caller passes up to
/// 15 bytes fetched at RIP) as executed in `mode`.
pub fn decode(bytes: &[u8], mode: CodeMode) -> Result<Decoded, DecodeError> {
    let mut cursor = Cursor { bytes, position: 0 };
    match decode_with(&mut cursor, mode) {
        Ok(operation) => Ok(Decoded {
            operation,
            length: cursor.position as u8,
        }),
        Err(refusal) => {
            let length = bytes.len().min(MAX_INSTRUCTION_LENGTH);
            let mut copy = [0u8; MAX_INSTRUCTION_LENGTH];
            copy[..length].copy_from_slice(&bytes[..length]);
            let length = length as u8;
            Err(match refusal {
                Refusal::Truncated => DecodeError::Truncated {
                    bytes: copy,
                    length,
                },
                Refusal::Unsupported(reason) => DecodeError::Unsupported {
                    bytes: copy,
                    length,
                    reason,
                },
                Refusal::RegisterOperand => DecodeError::RegisterOperand {
                    bytes: copy,
                    length,
                },
            })
        }
    }
}

fn decode_with(cursor: &mut Cursor<'_>, mode: CodeMode) -> Result<MmioOperation, Refusal> {
    let mut prefixes = Prefixes {
        mode,
        operand_size_override: false,
        address_size_override: false,
        lock: false,
        rex: Rex::default(),
    };
    let opcode = loop {
        let byte = cursor.next()?;
        match byte {
            0x66 => prefixes.operand_size_override = true,
            0x67 => prefixes.address_size_override = true,
            // The caller has the guest-physical address from the exit, so
            // the segment (and its base) is already accounted for.
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            0xf0 => prefixes.lock = true,
            0xf2 | 0xf3 => return Err(Refusal::Unsupported("REP/REPNE prefix")),
            0x40..=0x4f if mode == CodeMode::Long64 => {
                prefixes.rex = Rex {
                    present: true,
                    w: byte & 8 != 0,
                    r: byte & 4 != 0,
                };
                // REX must be the last prefix; one followed by a legacy
                // prefix is ignored (SDM Vol. 2A, 2.2.1).
                let next = cursor.next()?;
                if is_legacy_prefix(next) || (0x40..=0x4f).contains(&next) {
                    prefixes.rex = Rex::default();
                    cursor.position -= 1;
                    continue;
                }
                break next;
            }
            _ => break byte,
        }
    };
    let operation = decode_opcode(cursor, &prefixes, opcode)?;
    let lock_allowed = match operation {
        MmioOperation::ReadModifyWrite { op, .. } => op.writes_memory(),
        MmioOperation::Exchange { .. } => true,
        _ => false,
    };
    if prefixes.lock && !lock_allowed {
        return Err(Refusal::Unsupported(
            "LOCK on an instruction that does not write memory (#UD)",
        ));
    }
    Ok(operation)
}

const fn is_legacy_prefix(byte: u8) -> bool {
    matches!(
        byte,
        0x66 | 0x67 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf0 | 0xf2 | 0xf3
    )
}

/// The group-1 operation a ModR/M reg field or an opcode's bits 5:3 name
/// (ADD, OR, ADC, SBB, AND, SUB, XOR, CMP: Vol. 2D, Table A-6).
fn group1(field: u8) -> Result<AluOp, Refusal> {
    match field & 7 {
        0 => Ok(AluOp::Add),
        1 => Ok(AluOp::Or),
        4 => Ok(AluOp::And),
        5 => Ok(AluOp::Sub),
        6 => Ok(AluOp::Xor),
        7 => Ok(AluOp::Cmp),
        _ => Err(Refusal::Unsupported("ADC/SBB (needs the carry flag in)")),
    }
}

fn decode_opcode(
    cursor: &mut Cursor<'_>,
    prefixes: &Prefixes,
    opcode: u8,
) -> Result<MmioOperation, Refusal> {
    // Bit 0 of the one-byte ALU and MOV opcodes selects byte (0) or full
    // operand size (1).
    let size = if opcode & 1 == 0 {
        1
    } else {
        prefixes.operand_size()
    };
    let operation = match opcode {
        // ALU m, r: ADD 00/01, OR 08/09, AND 20/21, SUB 28/29, XOR 30/31,
        // CMP 38/39 (ADC 10/11 and SBB 18/19 are refused by group1).
        0x00 | 0x01 | 0x08 | 0x09 | 0x10 | 0x11 | 0x18 | 0x19 | 0x20 | 0x21 | 0x28 | 0x29
        | 0x30 | 0x31 | 0x38 | 0x39 => {
            let op = group1(opcode >> 3)?;
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::ReadModifyWrite {
                op,
                size,
                source: Source::Register(prefixes.register(reg, size)),
            }
        }
        0x3a | 0x3b => {
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::CompareRegister {
                register: prefixes.register(reg, size),
                size,
            }
        }
        0x02 | 0x03 | 0x0a | 0x0b | 0x12 | 0x13 | 0x1a | 0x1b | 0x22 | 0x23 | 0x2a | 0x2b
        | 0x32 | 0x33 => {
            return Err(Refusal::Unsupported(
                "ALU with a register destination (drivers load with MOV)",
            ))
        }
        0x63 if prefixes.mode == CodeMode::Long64 => {
            // MOVSXD r, r/m32; without REX.W it is a plain 32-bit (or with
            // 0x66, 16-bit) MOV (SDM Vol. 2B, "MOVSX/MOVSXD").
            let destination_size = prefixes.operand_size();
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::Load(Load {
                register: prefixes.register(reg, destination_size),
                size: destination_size.min(4),
                extension: if destination_size == 8 {
                    Extension::Sign
                } else {
                    Extension::None
                },
                destination_size,
            })
        }
        0x80 | 0x81 | 0x83 => {
            let size = if opcode == 0x80 {
                1
            } else {
                prefixes.operand_size()
            };
            let reg = memory_operand(cursor, prefixes)?;
            let op = group1(reg)?;
            let value = if opcode == 0x83 {
                sign_extend(cursor.little_endian(1)?, 1) & size_mask(size)
            } else {
                immediate(cursor, size)?
            };
            MmioOperation::ReadModifyWrite {
                op,
                size,
                source: Source::Immediate(value),
            }
        }
        0x84 | 0x85 => {
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::ReadModifyWrite {
                op: AluOp::Test,
                size,
                source: Source::Register(prefixes.register(reg, size)),
            }
        }
        0x86 | 0x87 => {
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::Exchange {
                register: prefixes.register(reg, size),
                size,
            }
        }
        0x88 | 0x89 => {
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::Store {
                register: prefixes.register(reg, size),
                size,
            }
        }
        0x8a | 0x8b => {
            let reg = memory_operand(cursor, prefixes)?;
            MmioOperation::Load(Load {
                register: prefixes.register(reg, size),
                size,
                extension: Extension::None,
                destination_size: size,
            })
        }
        0xa0..=0xa3 => {
            // MOV AL/eAX, moffs and back: the offset is as wide as an
            // address; the register is always (R/E)AX.
            cursor.skip(prefixes.address_size())?;
            let register = Register {
                number: 0,
                high_byte: false,
            };
            if opcode < 0xa2 {
                MmioOperation::Load(Load {
                    register,
                    size,
                    extension: Extension::None,
                    destination_size: size,
                })
            } else {
                MmioOperation::Store { register, size }
            }
        }
        0xc6 | 0xc7 => {
            let reg = memory_operand(cursor, prefixes)?;
            if reg != 0 {
                return Err(Refusal::Unsupported("C6/C7 with reg field other than 0"));
            }
            MmioOperation::StoreImmediate {
                value: immediate(cursor, size)?,
                size,
            }
        }
        0xf6 | 0xf7 => {
            let reg = memory_operand(cursor, prefixes)?;
            if reg != 0 {
                return Err(Refusal::Unsupported(
                    "F6/F7 other than TEST (NOT, NEG, MUL, DIV)",
                ));
            }
            MmioOperation::ReadModifyWrite {
                op: AluOp::Test,
                size,
                source: Source::Immediate(immediate(cursor, size)?),
            }
        }
        0x0f => decode_two_byte(cursor, prefixes)?,
        0xc4 | 0xc5 | 0x62 | 0x8f => {
            return Err(Refusal::Unsupported("VEX/EVEX/XOP or LES/LDS/BOUND/POP"))
        }
        0xa4..=0xa7 | 0xaa..=0xaf => return Err(Refusal::Unsupported("string instruction")),
        _ => return Err(Refusal::Unsupported("opcode")),
    };
    Ok(operation)
}

/// The 0x0F page: MOVZX, MOVSX, and BT/BTS/BTR/BTC with an immediate.
fn decode_two_byte(cursor: &mut Cursor<'_>, prefixes: &Prefixes) -> Result<MmioOperation, Refusal> {
    let opcode = cursor.next()?;
    match opcode {
        0xb6 | 0xb7 | 0xbe | 0xbf => {
            let destination_size = prefixes.operand_size();
            let reg = memory_operand(cursor, prefixes)?;
            Ok(MmioOperation::Load(Load {
                register: prefixes.register(reg, destination_size),
                size: if opcode & 1 == 0 { 1 } else { 2 },
                extension: if opcode < 0xbe {
                    Extension::Zero
                } else {
                    Extension::Sign
                },
                destination_size,
            }))
        }
        0xba => {
            let size = prefixes.operand_size();
            let reg = memory_operand(cursor, prefixes)?;
            let op = match reg {
                4 => AluOp::Bt,
                5 => AluOp::Bts,
                6 => AluOp::Btr,
                7 => AluOp::Btc,
                _ => return Err(Refusal::Unsupported("0F BA with reg field 0-3")),
            };
            // An immediate bit offset is taken modulo the operand width
            // (SDM Vol. 2A, "BT"), so it never leaves the operand.
            let bit = cursor.little_endian(1)? % (size as u64 * 8);
            Ok(MmioOperation::ReadModifyWrite {
                op,
                size,
                source: Source::Immediate(bit),
            })
        }
        // With a register offset the bit string may extend past the
        // operand, so the address the exit reported is not the operand's.
        0xa3 | 0xab | 0xb3 | 0xbb => Err(Refusal::Unsupported("BT family with a register offset")),
        _ => Err(Refusal::Unsupported("two-byte opcode")),
    }
}

/// A `size`-byte immediate as MOV, TEST and group 1 encode it: imm8,
/// imm16 or imm32, the latter sign-extended for a 64-bit operand.
fn immediate(cursor: &mut Cursor<'_>, size: u8) -> Result<u64, Refusal> {
    let encoded = size.min(4);
    Ok(sign_extend(cursor.little_endian(encoded)?, encoded) & size_mask(size))
}

const fn sign_extend(value: u64, size: u8) -> u64 {
    let shift = 64 - size as u32 * 8;
    (((value << shift) as i64) >> shift) as u64
}

/// Reads the ModR/M byte and the SIB byte and displacement it calls for
/// (SDM Vol. 2A, Tables 2-1 and 2-2), returning the reg field (0–7). Only
/// the length matters: the exit gives the address.
fn memory_operand(cursor: &mut Cursor<'_>, prefixes: &Prefixes) -> Result<u8, Refusal> {
    let modrm = cursor.next()?;
    let (mode, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if mode == 3 {
        return Err(Refusal::RegisterOperand);
    }
    if prefixes.address_size() == 2 {
        // Table 2-1: [BP] with mod 0 is a bare disp16 instead.
        let displacement = match (mode, rm) {
            (0, 6) | (2, _) => 2,
            (0, _) => 0,
            _ => 1,
        };
        return cursor.skip(displacement).map(|()| reg);
    }
    // Table 2-2 (and 2-3 for SIB); in 64-bit mode mod 0 rm 5 is
    // RIP-relative with the same disp32.
    let mut displacement = match mode {
        0 if rm == 5 => 4,
        0 => 0,
        1 => 1,
        _ => 4,
    };
    if rm == 4 {
        let sib = cursor.next()?;
        if mode == 0 && sib & 7 == 5 {
            // No base register: a disp32 instead.
            displacement = 4;
        }
    }
    cursor.skip(displacement).map(|()| reg)
}
