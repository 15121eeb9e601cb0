//! Real encodings (SDM Vol. 2, the instruction pages and Appendix A) with
//! the access each makes and its exact length; refused forms; and a
//! deterministic fuzz loop.

use super::*;
use CodeMode::{Long64, Protected32, Real16};

const fn reg(number: u8) -> Register {
    Register {
        number,
        high_byte: false,
    }
}

const fn high(number: u8) -> Register {
    Register {
        number,
        high_byte: true,
    }
}

const fn load(number: u8, size: u8) -> MmioOperation {
    MmioOperation::Load(Load {
        register: reg(number),
        size,
        extension: Extension::None,
        destination_size: size,
    })
}

const fn extend(register: Register, size: u8, extension: Extension, to: u8) -> MmioOperation {
    MmioOperation::Load(Load {
        register,
        size,
        extension,
        destination_size: to,
    })
}

const fn store(register: Register, size: u8) -> MmioOperation {
    MmioOperation::Store { register, size }
}

const fn rmw(op: AluOp, size: u8, source: Source) -> MmioOperation {
    MmioOperation::ReadModifyWrite { op, size, source }
}

const fn imm(value: u64) -> Source {
    Source::Immediate(value)
}

/// (mode, bytes, operation, what the assembler calls it). `iced_tests.rs`
/// decodes each with iced-x86 too.
#[rustfmt::skip]
pub(super) const ACCEPTED: &[(CodeMode, &[u8], MmioOperation, &str)] = &[
    (Long64, &[0x8b, 0x04, 0x25, 0x20, 0x00, 0xe0, 0xfe], load(0, 4), "mov eax,[0xfee00020]"),
    (Long64, &[0xc7, 0x05, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00], MmioOperation::StoreImmediate { value: 0x10000, size: 4 }, "mov dword [rip+0xf0],0x10000"),
    (Long64, &[0x89, 0x90, 0xb0, 0x00, 0x00, 0x00], store(reg(2), 4), "mov [rax+0xb0],edx"),
    (Long64, &[0x44, 0x89, 0x04, 0x0a], store(reg(8), 4), "mov [rdx+rcx],r8d"),
    (Long64, &[0x66, 0x89, 0x10], store(reg(2), 2), "mov [rax],dx"),
    (Long64, &[0x66, 0x44, 0x89, 0x00], store(reg(8), 2), "mov [rax],r8w"),
    // REX before a legacy prefix is ignored (SDM Vol. 2A, 2.2.1).
    (Long64, &[0x44, 0x66, 0x89, 0x00], store(reg(0), 2), "rex; mov [rax],ax"),
    (Long64, &[0x0f, 0xb6, 0x40, 0x04], extend(reg(0), 1, Extension::Zero, 4), "movzx eax,byte [rax+4]"),
    (Long64, &[0x0f, 0xb7, 0x06], extend(reg(0), 2, Extension::Zero, 4), "movzx eax,word [rsi]"),
    (Long64, &[0x0f, 0xbe, 0x43, 0x02], extend(reg(0), 1, Extension::Sign, 4), "movsx eax,byte [rbx+2]"),
    (Long64, &[0x48, 0x0f, 0xbf, 0x03], extend(reg(0), 2, Extension::Sign, 8), "movsx rax,word [rbx]"),
    (Long64, &[0x48, 0x63, 0x07], extend(reg(0), 4, Extension::Sign, 8), "movsxd rax,dword [rdi]"),
    (Long64, &[0x81, 0x48, 0x04, 0x00, 0x00, 0x01, 0x00], rmw(AluOp::Or, 4, imm(0x10000)), "or dword [rax+4],0x10000"),
    (Long64, &[0xf0, 0x83, 0x08, 0x01], rmw(AluOp::Or, 4, imm(1)), "lock or dword [rax],1"),
    (Long64, &[0x83, 0x60, 0x04, 0xfe], rmw(AluOp::And, 4, imm(0xffff_fffe)), "and dword [rax+4],-2"),
    (Long64, &[0x48, 0x83, 0x20, 0xfe], rmw(AluOp::And, 8, imm(u64::MAX - 1)), "and qword [rax],-2"),
    (Long64, &[0x66, 0x81, 0x00, 0x34, 0x12], rmw(AluOp::Add, 2, imm(0x1234)), "add word [rax],0x1234"),
    (Long64, &[0x80, 0x38, 0x7f], rmw(AluOp::Cmp, 1, imm(0x7f)), "cmp byte [rax],0x7f"),
    (Long64, &[0x29, 0x0f], rmw(AluOp::Sub, 4, Source::Register(reg(1))), "sub [rdi],ecx"),
    (Long64, &[0x30, 0x20], rmw(AluOp::Xor, 1, Source::Register(high(0))), "xor [rax],ah"),
    (Long64, &[0x39, 0x47, 0x08], rmw(AluOp::Cmp, 4, Source::Register(reg(0))), "cmp [rdi+8],eax"),
    (Long64, &[0x3b, 0x47, 0x08], MmioOperation::CompareRegister { register: reg(0), size: 4 }, "cmp eax,[rdi+8]"),
    (Long64, &[0x85, 0x07], rmw(AluOp::Test, 4, Source::Register(reg(0))), "test [rdi],eax"),
    (Long64, &[0xf6, 0x40, 0x01, 0x80], rmw(AluOp::Test, 1, imm(0x80)), "test byte [rax+1],0x80"),
    (Long64, &[0x0f, 0xba, 0x28, 0x03], rmw(AluOp::Bts, 4, imm(3)), "bts dword [rax],3"),
    (Long64, &[0xf0, 0x0f, 0xba, 0x30, 0x25], rmw(AluOp::Btr, 4, imm(5)), "lock btr dword [rax],37 (mod 32)"),
    (Long64, &[0x0f, 0xba, 0x20, 0x01], rmw(AluOp::Bt, 4, imm(1)), "bt dword [rax],1"),
    (Long64, &[0x87, 0x07], MmioOperation::Exchange { register: reg(0), size: 4 }, "xchg [rdi],eax"),
    (Long64, &[0x8a, 0x47, 0x03], load(0, 1), "mov al,[rdi+3]"),
    (Long64, &[0x88, 0x60, 0x10], store(high(0), 1), "mov [rax+0x10],ah"),
    (Long64, &[0x8a, 0x3b], extend(high(3), 1, Extension::None, 1), "mov bh,[rbx]"),
    (Long64, &[0x40, 0x88, 0x60, 0x10], store(reg(4), 1), "mov [rax+0x10],spl"),
    (Long64, &[0x45, 0x88, 0x48, 0x10], store(reg(9), 1), "mov [r8+0x10],r9b"),
    (Long64, &[0x48, 0x8b, 0x05, 0x78, 0x56, 0x34, 0x12], load(0, 8), "mov rax,[rip+0x12345678]"),
    (Long64, &[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], MmioOperation::StoreImmediate { value: u64::MAX, size: 8 }, "mov qword [rax],-1"),
    (Long64, &[0xc6, 0x05, 0x00, 0x10, 0x00, 0x00, 0x01], MmioOperation::StoreImmediate { value: 1, size: 1 }, "mov byte [rip+0x1000],1"),
    (Long64, &[0x41, 0x8b, 0x44, 0x24, 0x08], load(0, 4), "mov eax,[r12+8]"),
    (Long64, &[0x42, 0x8b, 0x04, 0xa5, 0x00, 0x00, 0x00, 0x00], load(0, 4), "mov eax,[r12*4+0]"),
    (Long64, &[0x8b, 0x84, 0x88, 0x00, 0x03, 0x00, 0x00], load(0, 4), "mov eax,[rax+rcx*4+0x300]"),
    (Long64, &[0x2e, 0x8b, 0x00], load(0, 4), "mov eax,cs:[rax]"),
    (Long64, &[0x65, 0x4c, 0x8b, 0x00], load(8, 8), "mov r8,gs:[rax]"),
    (Long64, &[0x67, 0x8b, 0x07], load(0, 4), "mov eax,[edi]"),
    (Long64, &[0xa1, 0x20, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00], load(0, 4), "mov eax,[moffs64]"),
    (Long64, &[0x67, 0xa3, 0x20, 0x00, 0xe0, 0xfe], store(reg(0), 4), "mov [moffs32],eax"),
    (Protected32, &[0x8b, 0x15, 0x30, 0x00, 0xc0, 0xfe], load(2, 4), "mov edx,[0xfec00030]"),
    (Protected32, &[0x89, 0x0c, 0x24], store(reg(1), 4), "mov [esp],ecx"),
    (Protected32, &[0xa1, 0x20, 0x00, 0xe0, 0xfe], load(0, 4), "mov eax,[moffs32]"),
    (Protected32, &[0x66, 0x89, 0x47, 0x10], store(reg(0), 2), "mov [edi+0x10],ax"),
    (Protected32, &[0x67, 0x8b, 0x07], load(0, 4), "mov eax,[bx]"),
    (Protected32, &[0x67, 0x89, 0x47, 0x10], store(reg(0), 4), "mov [bx+0x10],eax"),
    (Protected32, &[0x67, 0x8b, 0x1e, 0x00, 0x03], load(3, 4), "mov ebx,[0x300] (16-bit address)"),
    (Real16, &[0x66, 0x89, 0x07], store(reg(0), 4), "mov [bx],eax"),
    (Real16, &[0x89, 0x1e, 0x00, 0x03], store(reg(3), 2), "mov [0x300],bx"),
    (Real16, &[0x8b, 0x86, 0x20, 0x00], load(0, 2), "mov ax,[bp+0x20]"),
    (Real16, &[0x67, 0x66, 0x8b, 0x04, 0x25, 0x20, 0x00, 0xe0, 0xfe], load(0, 4), "mov eax,[dword 0xfee00020]"),
    (Real16, &[0xc7, 0x07, 0x34, 0x12], MmioOperation::StoreImmediate { value: 0x1234, size: 2 }, "mov word [bx],0x1234"),
    (Real16, &[0x83, 0x0f, 0xff], rmw(AluOp::Or, 2, imm(0xffff)), "or word [bx],-1"),
];

#[test]
fn real_encodings_decode_with_their_exact_length() {
    for &(mode, bytes, operation, name) in ACCEPTED {
        let decoded = decode(bytes, mode).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded.operation, operation, "{name}");
        assert_eq!(decoded.length as usize, bytes.len(), "{name}: length");
        // Bytes beyond the instruction (the caller fetches 15) change nothing.
        let mut padded = [0x90u8; MAX_INSTRUCTION_LENGTH];
        padded[..bytes.len()].copy_from_slice(bytes);
        assert_eq!(decode(&padded, mode), Ok(decoded), "{name}: padded");
    }
}

fn refusal(bytes: &[u8], mode: CodeMode) -> DecodeError {
    match decode(bytes, mode) {
        Ok(decoded) => panic!("{bytes:02x?} decoded as {decoded:?}"),
        Err(error) => error,
    }
}

/// Forms the decoder refuses as unsupported, with what the assembler calls
/// them; `iced_tests.rs` checks that iced-x86 agrees none is a supported form.
#[rustfmt::skip]
pub(super) const REFUSED: &[(CodeMode, &[u8], &str)] = &[
    (Long64, &[0xf3, 0xa5], "rep movsd"),
    (Long64, &[0xa5], "movsd"),
    (Long64, &[0xab], "stosd"),
    (Long64, &[0xc5, 0xf9, 0x6f, 0x00], "vmovdqa xmm0,[rax]"),
    (Long64, &[0xc4, 0xe2, 0x79, 0x18, 0x00], "vbroadcastss xmm0,[rax]"),
    (Long64, &[0x62, 0xf1, 0x7c, 0x48, 0x10, 0x00], "vmovups zmm0,[rax]"),
    (Long64, &[0x11, 0x00], "adc [rax],eax"),
    (Long64, &[0x83, 0x18, 0x01], "sbb dword [rax],1"),
    (Long64, &[0x03, 0x00], "add eax,[rax]"),
    (Long64, &[0x0b, 0x00], "or eax,[rax]"),
    (Long64, &[0xf0, 0x8b, 0x00], "lock mov (#UD)"),
    (Long64, &[0xf0, 0x39, 0x00], "lock cmp (#UD)"),
    (Long64, &[0x0f, 0xa3, 0x00], "bt [rax],eax"),
    (Long64, &[0x0f, 0xba, 0x00, 0x01], "0f ba /0"),
    (Long64, &[0xc7, 0x48, 0x00, 0, 0, 0, 0], "c7 /1"),
    (Long64, &[0xf7, 0x18], "neg dword [rax]"),
    (Long64, &[0x0f, 0x10, 0x00], "movups xmm0,[rax]"),
    (Long64, &[0xd9, 0x00], "fld dword [rax]"),
    (Protected32, &[0x63, 0x00], "arpl [eax],ax"),
    (Protected32, &[0x40, 0x8b, 0x00], "inc eax; (not a REX)"),
];

#[test]
fn unsupported_forms_are_refused_with_their_bytes() {
    for &(mode, bytes, _) in REFUSED {
        let error = refusal(bytes, mode);
        let DecodeError::Unsupported {
            bytes: given,
            length,
            reason,
        } = error
        else {
            panic!("{bytes:02x?}: {error:?}");
        };
        assert_eq!(&given[..length as usize], bytes);
        assert!(!reason.is_empty());
    }
}

#[test]
fn the_message_names_the_bytes_in_hex() {
    let error = refusal(&[0xf3, 0xa5], Long64);
    assert_eq!(
        std::format!("{error}"),
        "mmio decode: unsupported (REP/REPNE prefix): f3 a5"
    );
}

#[test]
fn register_operands_and_short_or_long_instructions_are_errors() {
    // mov eax,eax: no memory operand, so not the instruction that exited.
    assert!(matches!(
        refusal(&[0x8b, 0xc0], Long64),
        DecodeError::RegisterOperand { length: 2, .. }
    ));
    for bytes in [
        &[][..],
        &[0x8b],
        &[0x8b, 0x04],
        &[0xc7, 0x05, 0, 0, 0, 0, 1],
        &[0x66],
    ] {
        assert!(
            matches!(refusal(bytes, Long64), DecodeError::Truncated { .. }),
            "{bytes:02x?}"
        );
    }
    // Fourteen prefixes and a two-byte MOV: 16 bytes, over the limit (#GP).
    let mut long = [0x66u8; 16];
    long[14] = 0x8b;
    long[15] = 0x00;
    assert!(matches!(
        refusal(&long, Long64),
        DecodeError::Unsupported { length: 15, .. }
    ));
    // Thirteen prefixes and a two-byte MOV: exactly 15 bytes.
    let mut longest = [0x3eu8; 15];
    longest[13] = 0x8b;
    longest[14] = 0x00;
    assert_eq!(decode(&longest, Long64).map(|d| d.length), Ok(15));
}

#[test]
fn loads_write_the_register_as_the_sdm_says() {
    let old = 0x1111_2222_3333_4444;
    // A 32-bit MOV zero-extends into the full register (SDM Vol. 1, 3.4.1.1).
    let MmioOperation::Load(mov32) = load(0, 4) else {
        unreachable!()
    };
    assert_eq!(mov32.register_value(old, 0xfedc_ba98), 0xfedc_ba98);
    // 8- and 16-bit MOVs keep the other bytes.
    let MmioOperation::Load(mov8) = load(0, 1) else {
        unreachable!()
    };
    assert_eq!(mov8.register_value(old, 0xab), 0x1111_2222_3333_44ab);
    let MmioOperation::Load(mov16) = load(0, 2) else {
        unreachable!()
    };
    assert_eq!(mov16.register_value(old, 0xabcd), 0x1111_2222_3333_abcd);
    // mov bh,[m] writes bits 15:8 only.
    let MmioOperation::Load(mov_bh) = extend(high(3), 1, Extension::None, 1) else {
        unreachable!()
    };
    assert_eq!(mov_bh.register_value(old, 0xab), 0x1111_2222_3333_ab44);
    // movsx eax,byte: sign-extended to 32 bits, then zero-extended to 64.
    let MmioOperation::Load(movsx) = extend(reg(0), 1, Extension::Sign, 4) else {
        unreachable!()
    };
    assert_eq!(movsx.register_value(old, 0x80), 0xffff_ff80);
    // movsx rax,word and movsxd rax,dword fill all 64 bits.
    let MmioOperation::Load(movsx64) = extend(reg(0), 2, Extension::Sign, 8) else {
        unreachable!()
    };
    assert_eq!(movsx64.register_value(old, 0x8000), 0xffff_ffff_ffff_8000);
    let MmioOperation::Load(movsxd) = extend(reg(0), 4, Extension::Sign, 8) else {
        unreachable!()
    };
    assert_eq!(movsxd.register_value(old, 0x7fff_ffff), 0x7fff_ffff);
    // movzx ax,byte changes only the low 16 bits.
    let MmioOperation::Load(movzx16) = extend(reg(0), 1, Extension::Zero, 2) else {
        unreachable!()
    };
    assert_eq!(movzx16.register_value(old, 0xff), 0x1111_2222_3333_00ff);
    // Stores read AH–BH from bits 15:8.
    assert_eq!(high(0).read(0x1234, 1), 0x12);
    assert_eq!(reg(0).read(0x1234_5678_9abc, 2), 0x9abc);
}

/// xorshift64 (Marsaglia 2003): deterministic, no dependency.
pub(super) fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Whatever the bytes, `decode` answers without panicking, never claims
/// more bytes than it was given or than 15, and its answer depends only on
/// the instruction's own bytes: one byte fewer is `Truncated`.
fn check_consistent(bytes: &[u8], mode: CodeMode) {
    let Ok(decoded) = decode(bytes, mode) else {
        return;
    };
    let length = decoded.length as usize;
    assert!(length >= 1 && length <= bytes.len().min(MAX_INSTRUCTION_LENGTH));
    assert_eq!(decode(&bytes[..length], mode), Ok(decoded), "{bytes:02x?}");
    assert!(
        matches!(
            decode(&bytes[..length - 1], mode),
            Err(DecodeError::Truncated { .. })
        ),
        "{bytes:02x?}"
    );
}

/// The fuzz inputs, deterministic: random byte strings of 0–20 bytes, then
/// the real encodings with one byte changed and random bytes after them
/// (these reach the accepted paths more often). `iced_tests.rs` checks every
/// input the decoder accepts against iced-x86.
pub(super) fn fuzz_inputs(rounds: usize, mut visit: impl FnMut(&[u8], CodeMode)) {
    let mut state = 0x2545_f491_4f6c_dd1d;
    let modes = [Long64, Protected32, Real16];
    let mut bytes = [0u8; 20];
    for round in 0..rounds {
        for byte in bytes.iter_mut() {
            *byte = next_random(&mut state) as u8;
        }
        let length = (next_random(&mut state) % 21) as usize;
        visit(&bytes[..length], modes[round % 3]);
    }
    for round in 0..rounds {
        let (_, original, _, _) = ACCEPTED[round % ACCEPTED.len()];
        let mut mutated = [0u8; MAX_INSTRUCTION_LENGTH];
        for byte in mutated.iter_mut() {
            *byte = next_random(&mut state) as u8;
        }
        mutated[..original.len()].copy_from_slice(original);
        let position = (next_random(&mut state) as usize) % original.len();
        mutated[position] = next_random(&mut state) as u8;
        visit(&mutated, modes[(round / ACCEPTED.len()) % 3]);
    }
}

/// Rounds of each half of [`fuzz_inputs`].
pub(super) const FUZZ_ROUNDS: usize = 50_000;

#[test]
fn random_bytes_never_panic() {
    fuzz_inputs(FUZZ_ROUNDS, check_consistent);
}
