//! Cross-checks against outside references, since the decoder's encodings
//! were written from the SDM by hand: every encoding the tests accept, and
//! every fuzz input the decoder accepts, is decoded again by iced-x86 (a
//! host-only dev-dependency; the kernel never links it) and must mean the
//! same access; and [`alu()`] is compared with the host processor's own
//! ADD/OR/AND/SUB/XOR/CMP/TEST/BT* results and flags.

use core::arch::asm;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register as Gpr};

use super::tests::{fuzz_inputs, next_random, ACCEPTED, FUZZ_ROUNDS, REFUSED};
use super::*;
use crate::rules::bits::rflags::{AF, CF, STATUS};

const fn bitness(mode: CodeMode) -> u32 {
    match mode {
        CodeMode::Long64 => 64,
        CodeMode::Protected32 => 32,
        CodeMode::Real16 => 16,
    }
}

fn iced_decode(bytes: &[u8], mode: CodeMode) -> Instruction {
    Decoder::with_ip(bitness(mode), bytes, 0, DecoderOptions::NONE).decode()
}

/// A general-purpose register operand of iced's as the decoder names it,
/// with its size in bytes; `None` for any other register (segment, control,
/// vector), which no accepted form has.
fn register(register: Gpr) -> Option<(Register, u8)> {
    if !register.is_gpr() {
        return None;
    }
    let high_byte = matches!(register, Gpr::AH | Gpr::CH | Gpr::DH | Gpr::BH);
    let number = register.full_register().number() as u8;
    Some((Register { number, high_byte }, register.size() as u8))
}

fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// The access iced's decoding describes, in the decoder's terms, if it is
/// one of the forms the decoder claims to emulate; `None` otherwise. Built
/// from iced's operands alone (mnemonic, operand kinds and order, registers,
/// immediates, memory size), so it shares no decoding table with the
/// decoder.
fn expected(instruction: &Instruction) -> Option<MmioOperation> {
    if instruction.is_invalid() || instruction.op_count() != 2 {
        return None;
    }
    // The decoder refuses REP/REPNE outright.
    if instruction.has_rep_prefix() || instruction.has_repne_prefix() {
        return None;
    }
    let kinds = [instruction.op_kind(0), instruction.op_kind(1)];
    if kinds.iter().filter(|&&kind| kind == OpKind::Memory).count() != 1 {
        return None;
    }
    let size = instruction.memory_size().size();
    if !matches!(size, 1 | 2 | 4 | 8) {
        return None;
    }
    let size = size as u8;
    let mask = alu::size_mask(size);
    let memory_first = kinds[0] == OpKind::Memory;
    let other: u32 = if memory_first { 1 } else { 0 };
    let other_kind = kinds[other as usize];
    let other_register = if other_kind == OpKind::Register {
        register(instruction.op_register(other))
    } else {
        None
    };
    let immediate = is_immediate(other_kind).then(|| instruction.immediate(other));
    // A register operand of the memory operand's size (m, r forms).
    let same_size_register =
        other_register.and_then(|(register, width)| (width == size).then_some(register));

    let alu_op = match instruction.mnemonic() {
        Mnemonic::Add => Some(AluOp::Add),
        Mnemonic::Or => Some(AluOp::Or),
        Mnemonic::And => Some(AluOp::And),
        Mnemonic::Sub => Some(AluOp::Sub),
        Mnemonic::Xor => Some(AluOp::Xor),
        Mnemonic::Cmp => Some(AluOp::Cmp),
        Mnemonic::Test => Some(AluOp::Test),
        Mnemonic::Bt => Some(AluOp::Bt),
        Mnemonic::Bts => Some(AluOp::Bts),
        Mnemonic::Btr => Some(AluOp::Btr),
        Mnemonic::Btc => Some(AluOp::Btc),
        _ => None,
    };
    let operation = match (instruction.mnemonic(), alu_op) {
        (Mnemonic::Mov, _) if memory_first => match immediate {
            Some(value) => MmioOperation::StoreImmediate {
                value: value & mask,
                size,
            },
            None => MmioOperation::Store {
                register: same_size_register?,
                size,
            },
        },
        (Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd, _)
            if !memory_first =>
        {
            let (register, destination_size) = other_register?;
            let extension = match instruction.mnemonic() {
                Mnemonic::Mov if destination_size == size => Extension::None,
                // MOVZX/MOVSX r16, m16 exist and widen nothing.
                Mnemonic::Movzx if destination_size >= size => Extension::Zero,
                Mnemonic::Movsx if destination_size >= size => Extension::Sign,
                // MOVSXD without REX.W reads as many bytes as it writes.
                Mnemonic::Movsxd if destination_size > size => Extension::Sign,
                Mnemonic::Movsxd if destination_size == size => Extension::None,
                _ => return None,
            };
            MmioOperation::Load(Load {
                register,
                size,
                extension,
                destination_size,
            })
        }
        (Mnemonic::Xchg, _) => MmioOperation::Exchange {
            register: same_size_register?,
            size,
        },
        (Mnemonic::Cmp, _) if !memory_first => MmioOperation::CompareRegister {
            register: same_size_register?,
            size,
        },
        (_, Some(op @ (AluOp::Bt | AluOp::Bts | AluOp::Btr | AluOp::Btc))) if memory_first => {
            // Only the immediate form: with a register offset the bit may
            // lie outside the operand. The decoder reduces the offset
            // modulo the operand width, as the processor does.
            MmioOperation::ReadModifyWrite {
                op,
                size,
                source: Source::Immediate(immediate? % (size as u64 * 8)),
            }
        }
        (_, Some(op)) if memory_first => MmioOperation::ReadModifyWrite {
            op,
            size,
            source: match immediate {
                Some(value) => Source::Immediate(value & mask),
                None => Source::Register(same_size_register?),
            },
        },
        _ => return None,
    };
    // LOCK is legal only on the forms that write memory; iced may flag its
    // misuse as invalid already, but the decoder's answer is the same.
    let lock_allowed = match operation {
        MmioOperation::ReadModifyWrite { op, .. } => op.writes_memory(),
        MmioOperation::Exchange { .. } => true,
        _ => false,
    };
    if instruction.has_lock_prefix() && !lock_allowed {
        return None;
    }
    Some(operation)
}

/// The decoder's answer for `bytes` must be iced's, length and all.
fn check_against_iced(bytes: &[u8], mode: CodeMode, decoded: Decoded, name: &str) {
    let instruction = iced_decode(bytes, mode);
    assert!(
        !instruction.is_invalid(),
        "{name} {bytes:02x?} ({mode:?}): iced says invalid, decoder says {decoded:?}"
    );
    assert_eq!(
        instruction.len(),
        decoded.length as usize,
        "{name} {bytes:02x?} ({mode:?}): length; iced {:?}, decoder {decoded:?}",
        instruction.code()
    );
    let access_size = match decoded.operation {
        MmioOperation::Load(load) => load.size,
        MmioOperation::Store { size, .. }
        | MmioOperation::StoreImmediate { size, .. }
        | MmioOperation::ReadModifyWrite { size, .. }
        | MmioOperation::CompareRegister { size, .. }
        | MmioOperation::Exchange { size, .. } => size,
    };
    assert_eq!(
        instruction.memory_size().size(),
        access_size as usize,
        "{name} {bytes:02x?} ({mode:?}): access size; iced {:?}",
        instruction.code()
    );
    assert_eq!(
        expected(&instruction),
        Some(decoded.operation),
        "{name} {bytes:02x?} ({mode:?}): iced decodes {:?}",
        instruction.code()
    );
}

#[test]
fn accepted_encodings_agree_with_iced() {
    for &(mode, bytes, _, name) in ACCEPTED {
        let decoded = decode(bytes, mode).unwrap_or_else(|error| panic!("{name}: {error}"));
        check_against_iced(bytes, mode, decoded, name);
    }
}

#[test]
fn refused_forms_are_invalid_or_unsupported_for_iced() {
    for &(mode, bytes, name) in REFUSED {
        let instruction = iced_decode(bytes, mode);
        assert_eq!(
            expected(&instruction),
            None,
            "{name} {bytes:02x?}: iced decodes {:?}, a supported form",
            instruction.code()
        );
    }
}

#[test]
fn every_fuzz_input_the_decoder_accepts_agrees_with_iced() {
    let mut accepted = 0;
    fuzz_inputs(FUZZ_ROUNDS, |bytes, mode| {
        if let Ok(decoded) = decode(bytes, mode) {
            accepted += 1;
            check_against_iced(bytes, mode, decoded, "fuzz");
        }
    });
    // The mutations keep most encodings valid: the loop checks something.
    assert!(
        accepted > FUZZ_ROUNDS / 4,
        "only {accepted} inputs accepted"
    );
}

/// The other way round: whatever fuzz input iced decodes as one of the
/// supported forms, the decoder accepts too, except for two undocumented
/// aliases it refuses on purpose (no compiler emits them): 0x82, group 1
/// with imm8 outside 64-bit mode (= 0x80), and TEST as F6/F7 /1 (= /0).
#[test]
fn the_decoder_refuses_no_supported_form_iced_knows() {
    fuzz_inputs(FUZZ_ROUNDS, |bytes, mode| {
        if decode(bytes, mode).is_ok() {
            return;
        }
        let instruction = iced_decode(bytes, mode);
        if expected(&instruction).is_none() {
            return;
        }
        assert!(
            matches!(
                instruction.code(),
                Code::Add_rm8_imm8_82
                    | Code::Or_rm8_imm8_82
                    | Code::And_rm8_imm8_82
                    | Code::Sub_rm8_imm8_82
                    | Code::Xor_rm8_imm8_82
                    | Code::Cmp_rm8_imm8_82
                    | Code::Test_rm8_imm8_F6r1
                    | Code::Test_rm16_imm16_F7r1
                    | Code::Test_rm32_imm32_F7r1
                    | Code::Test_rm64_imm32_F7r1
            ),
            "{bytes:02x?} ({mode:?}): iced decodes {:?}, the decoder refuses: {:?}",
            instruction.code(),
            decode(bytes, mode)
        );
    });
}

// ---------------------------------------------------------------------------
// alu() against the processor running the tests.

/// Runs `$mnemonic destination, source` on registers of the width the
/// operand modifier names (`l` 8, `x` 16, `e` 32, `r` 64 bits), then reads
/// RFLAGS; returns the destination register afterwards and RFLAGS.
macro_rules! execute {
    ($mnemonic:literal, $modifier:literal, $destination:expr, $source:expr) => {{
        let mut destination: u64 = $destination;
        let flags: u64;
        // SAFETY: the instruction reads and writes only the two registers
        // the compiler allocated for it and RFLAGS; pushfq/pop use the
        // stack, which the block may (no `nostack`), and leave RSP as they
        // found it.
        unsafe {
            asm!(
                concat!($mnemonic, " {d:", $modifier, "}, {s:", $modifier, "}"),
                "pushfq",
                "pop {f}",
                d = inout(reg) destination,
                s = in(reg) $source,
                f = out(reg) flags,
            );
        }
        (destination, flags)
    }};
}

/// `$mnemonic` at the operand size `$size` (bytes); BT* have no 8-bit form.
macro_rules! at_size {
    ($mnemonic:literal, $size:expr, $destination:expr, $source:expr) => {
        match $size {
            1 => execute!($mnemonic, "l", $destination, $source),
            2 => execute!($mnemonic, "x", $destination, $source),
            4 => execute!($mnemonic, "e", $destination, $source),
            _ => execute!($mnemonic, "r", $destination, $source),
        }
    };
    (bits $mnemonic:literal, $size:expr, $destination:expr, $source:expr) => {
        match $size {
            2 => execute!($mnemonic, "x", $destination, $source),
            4 => execute!($mnemonic, "e", $destination, $source),
            _ => execute!($mnemonic, "r", $destination, $source),
        }
    };
}

/// The processor's result (the destination register's low `size` bytes
/// after the instruction; for CMP and TEST unchanged) and RFLAGS.
fn hardware(op: AluOp, size: u8, destination: u64, source: u64) -> (u64, u64) {
    let (result, flags) = match op {
        AluOp::Add => at_size!("add", size, destination, source),
        AluOp::Or => at_size!("or", size, destination, source),
        AluOp::And => at_size!("and", size, destination, source),
        AluOp::Sub => at_size!("sub", size, destination, source),
        AluOp::Xor => at_size!("xor", size, destination, source),
        AluOp::Cmp => at_size!("cmp", size, destination, source),
        AluOp::Test => at_size!("test", size, destination, source),
        AluOp::Bt => at_size!(bits "bt", size, destination, source),
        AluOp::Bts => at_size!(bits "bts", size, destination, source),
        AluOp::Btr => at_size!(bits "btr", size, destination, source),
        AluOp::Btc => at_size!(bits "btc", size, destination, source),
    };
    (result & alu::size_mask(size), flags)
}

/// Operands that reach the edges (zero, one, the sign bit, all ones, nibble
/// carries) often, and random ones otherwise.
fn operand(state: &mut u64) -> u64 {
    const EDGES: [u64; 12] = [
        0,
        1,
        2,
        0x0f,
        0x10,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0x7fff_ffff,
        0x8000_0000,
    ];
    let choice = next_random(state);
    let value = match choice % 4 {
        0 => EDGES[(choice >> 8) as usize % EDGES.len()],
        1 => 0u64.wrapping_sub(EDGES[(choice >> 8) as usize % EDGES.len()]),
        2 => 1u64.rotate_left((choice >> 8) as u32 % 64),
        _ => next_random(state),
    };
    if choice & 0x1_0000 != 0 {
        // Random upper bits: alu() and the processor must both ignore them.
        value ^ (next_random(state) & !0xffff_ffff)
    } else {
        value
    }
}

#[test]
fn alu_matches_the_processor() {
    const OPS: [AluOp; 11] = [
        AluOp::Add,
        AluOp::Or,
        AluOp::And,
        AluOp::Sub,
        AluOp::Xor,
        AluOp::Cmp,
        AluOp::Test,
        AluOp::Bt,
        AluOp::Bts,
        AluOp::Btr,
        AluOp::Btc,
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for op in OPS {
        // The logical operations leave AF undefined (alu() clears it); the
        // BT family defines only CF.
        let compared = match op {
            AluOp::Or | AluOp::And | AluOp::Xor | AluOp::Test => STATUS & !AF,
            AluOp::Bt | AluOp::Bts | AluOp::Btr | AluOp::Btc => CF,
            AluOp::Add | AluOp::Sub | AluOp::Cmp => STATUS,
        };
        let sizes: &[u8] = if compared == CF {
            &[2, 4, 8]
        } else {
            &[1, 2, 4, 8]
        };
        for &size in sizes {
            for _ in 0..20_000 {
                let destination = operand(&mut state);
                let source = operand(&mut state);
                let (result, flags) = alu(op, size, destination, source);
                let (hardware_result, hardware_flags) = hardware(op, size, destination, source);
                // CMP and TEST leave the register alone; alu() returns the
                // result their flags describe, SUB's and AND's.
                let hardware_result = match op {
                    AluOp::Cmp => hardware(AluOp::Sub, size, destination, source).0,
                    AluOp::Test => hardware(AluOp::And, size, destination, source).0,
                    _ => hardware_result,
                };
                assert_eq!(
                    (result, flags & compared),
                    (hardware_result, hardware_flags & compared),
                    "{op:?} size {size}: {destination:#x}, {source:#x}"
                );
                assert_eq!(flags & !op.flags_written(), 0, "{op:?}: flags outside");
            }
        }
    }
}
