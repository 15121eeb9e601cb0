//! Decoding the instruction behind a control-register write intercept when
//! the CPU does not say which it was: SVM without decode assists reports
//! only "CR0 write" or "CR4 write" (APM Vol. 2, 15.9), and the write may be
//! MOV to CRn, CLTS or LMSW, all of which the CR0 write intercept covers
//! (APM Vol. 2, 15.9, Table 15-7). The core fetches the bytes at RIP and
//! this decoder names the instruction, its operand and its length.

use super::mmio::CodeMode;

/// What a CR write instruction was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRegisterInstruction {
    /// MOV to CR`register` from the register numbered `gpr`.
    Move {
        /// 0-15 (REX.R and, on AMD, LOCK select CR8 and up).
        register: u8,
        /// The source register number.
        gpr: u8,
    },
    /// CLTS.
    Clts,
    /// LMSW from the register numbered `gpr` (its low 16 bits).
    LmswRegister {
        /// The source register number.
        gpr: u8,
    },
}

/// Why the bytes are not a CR write the intercept could have come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ran out (the fetch stopped at an unmapped page).
    Truncated,
    /// LMSW with a memory operand, which tessera does not emulate.
    LmswFromMemory,
    /// Something else: the opcode is not MOV to CR, CLTS or LMSW.
    NotAControlRegisterWrite,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DecodeError::Truncated => "the instruction's bytes could not all be fetched",
            DecodeError::LmswFromMemory => "LMSW with a memory operand is not emulated",
            DecodeError::NotAControlRegisterWrite => {
                "the instruction is not MOV to CRn, CLTS or LMSW"
            }
        })
    }
}

/// Decodes `bytes` (fetched at RIP) in `mode`; returns the instruction and
/// its length.
pub fn decode(
    bytes: &[u8],
    mode: CodeMode,
) -> Result<(ControlRegisterInstruction, u8), DecodeError> {
    let byte = |at: usize| bytes.get(at).copied().ok_or(DecodeError::Truncated);
    let mut at = 0;
    let mut lock = false;
    let mut rex = 0u8;
    // Legacy prefixes, any order (SDM Vol. 2A, 2.1.1); REX must come last
    // (2.2.1), so a legacy prefix after one cancels it.
    loop {
        if at >= 15 {
            return Err(DecodeError::NotAControlRegisterWrite);
        }
        match byte(at)? {
            0xf0 => {
                lock = true;
                rex = 0;
            }
            0x66 | 0x67 | 0xf2 | 0xf3 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => rex = 0,
            prefix @ 0x40..=0x4f if mode == CodeMode::Long64 => rex = prefix,
            _ => break,
        }
        at += 1;
    }
    if byte(at)? != 0x0f {
        return Err(DecodeError::NotAControlRegisterWrite);
    }
    let opcode = byte(at + 1)?;
    let rex_r = (rex >> 2) & 1;
    let rex_b = rex & 1;
    let (instruction, length) = match opcode {
        // MOV CRn, r: the mod field is ignored, the operand is always a
        // register (SDM Vol. 2B, MOV—Move to/from Control Registers). LOCK
        // selects CR8-15 on AMD (APM Vol. 3, MOV CRn, "AltMovCr8").
        0x22 => {
            let modrm = byte(at + 2)?;
            let register = ((modrm >> 3) & 7) | (rex_r << 3) | if lock { 8 } else { 0 };
            let gpr = (modrm & 7) | (rex_b << 3);
            (ControlRegisterInstruction::Move { register, gpr }, at + 3)
        }
        0x06 => (ControlRegisterInstruction::Clts, at + 2),
        // LMSW is 0F 01 /6.
        0x01 => {
            let modrm = byte(at + 2)?;
            if (modrm >> 3) & 7 != 6 {
                return Err(DecodeError::NotAControlRegisterWrite);
            }
            if modrm >> 6 != 3 {
                return Err(DecodeError::LmswFromMemory);
            }
            let gpr = (modrm & 7) | (rex_b << 3);
            (ControlRegisterInstruction::LmswRegister { gpr }, at + 3)
        }
        _ => return Err(DecodeError::NotAControlRegisterWrite),
    };
    Ok((instruction, length as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ControlRegisterInstruction::*;

    #[test]
    fn mov_to_cr0_and_cr4() {
        // mov cr0, rax
        assert_eq!(
            decode(&[0x0f, 0x22, 0xc0], CodeMode::Long64),
            Ok((
                Move {
                    register: 0,
                    gpr: 0
                },
                3
            ))
        );
        // mov cr4, r9 (REX.B)
        assert_eq!(
            decode(&[0x41, 0x0f, 0x22, 0xe1], CodeMode::Long64),
            Ok((
                Move {
                    register: 4,
                    gpr: 9
                },
                4
            ))
        );
        // mov cr0, eax in 32-bit code, with an operand-size prefix.
        assert_eq!(
            decode(&[0x66, 0x0f, 0x22, 0xc0, 0x90], CodeMode::Protected32),
            Ok((
                Move {
                    register: 0,
                    gpr: 0
                },
                4
            ))
        );
    }

    #[test]
    fn rex_and_lock_select_high_control_registers() {
        // mov cr8, rax (REX.R)
        assert_eq!(
            decode(&[0x44, 0x0f, 0x22, 0xc0], CodeMode::Long64),
            Ok((
                Move {
                    register: 8,
                    gpr: 0
                },
                4
            ))
        );
        // lock mov cr0, eax is CR8 on AMD.
        assert_eq!(
            decode(&[0xf0, 0x0f, 0x22, 0xc0], CodeMode::Protected32),
            Ok((
                Move {
                    register: 8,
                    gpr: 0
                },
                4
            ))
        );
        // Outside 64-bit mode 0x41 is INC ECX, not REX.
        assert_eq!(
            decode(&[0x41, 0x0f, 0x22, 0xe1], CodeMode::Protected32),
            Err(DecodeError::NotAControlRegisterWrite)
        );
        // A legacy prefix after REX cancels the REX.
        assert_eq!(
            decode(&[0x41, 0x66, 0x0f, 0x22, 0xe1], CodeMode::Long64),
            Ok((
                Move {
                    register: 4,
                    gpr: 1
                },
                5
            ))
        );
    }

    #[test]
    fn clts_and_lmsw() {
        assert_eq!(decode(&[0x0f, 0x06], CodeMode::Real16), Ok((Clts, 2)));
        // lmsw ax
        assert_eq!(
            decode(&[0x0f, 0x01, 0xf0], CodeMode::Real16),
            Ok((LmswRegister { gpr: 0 }, 3))
        );
        // lmsw [bx]
        assert_eq!(
            decode(&[0x0f, 0x01, 0x37], CodeMode::Real16),
            Err(DecodeError::LmswFromMemory)
        );
        // smsw ax (0F 01 /4) is not a write.
        assert_eq!(
            decode(&[0x0f, 0x01, 0xe0], CodeMode::Real16),
            Err(DecodeError::NotAControlRegisterWrite)
        );
    }

    #[test]
    fn short_or_endless_input_is_refused() {
        assert_eq!(
            decode(&[0x0f, 0x22], CodeMode::Long64),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode(&[], CodeMode::Long64), Err(DecodeError::Truncated));
        assert_eq!(
            decode(&[0x66; 15], CodeMode::Long64),
            Err(DecodeError::NotAControlRegisterWrite)
        );
        assert_eq!(
            decode(&[0x0f, 0x20, 0xc0], CodeMode::Long64),
            Err(DecodeError::NotAControlRegisterWrite)
        );
    }
}
