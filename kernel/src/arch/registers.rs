//! The general-purpose register file, in the order tessera's assembly stubs
//! save it (the VM-exit stub and the exception stubs share this layout).

/// Assembly that loads RBX, RCX, RDX, RSI, RBP and R8-R15 from the
/// [`GeneralRegisters`] at RDI — every register but RAX (which VMRUN takes
/// from the VMCB, and the VMX stub loads itself) and RDI (the pointer, loaded
/// last by the stub). For the world-switch stubs' `concat!`, so that the
/// layout's offsets are written once.
#[macro_export]
macro_rules! load_guest_registers_but_rax_rdi {
    () => {
        "mov rbx, [rdi + 8]
        mov rcx, [rdi + 16]
        mov rdx, [rdi + 24]
        mov rsi, [rdi + 32]
        mov rbp, [rdi + 48]
        mov r8,  [rdi + 56]
        mov r9,  [rdi + 64]
        mov r10, [rdi + 72]
        mov r11, [rdi + 80]
        mov r12, [rdi + 88]
        mov r13, [rdi + 96]
        mov r14, [rdi + 104]
        mov r15, [rdi + 112]
        "
    };
}

/// The reverse of [`load_guest_registers_but_rax_rdi`]: stores the same
/// registers into the [`GeneralRegisters`] at RDI.
#[macro_export]
macro_rules! store_guest_registers_but_rax_rdi {
    () => {
        "mov [rdi + 8], rbx
        mov [rdi + 16], rcx
        mov [rdi + 24], rdx
        mov [rdi + 32], rsi
        mov [rdi + 48], rbp
        mov [rdi + 56], r8
        mov [rdi + 64], r9
        mov [rdi + 72], r10
        mov [rdi + 80], r11
        mov [rdi + 88], r12
        mov [rdi + 96], r13
        mov [rdi + 104], r14
        mov [rdi + 112], r15
        "
    };
}

/// RAX..R15 except RSP, which the CPU keeps elsewhere (the VMCS guest-state
/// area, the exception frame). `#[repr(C)]`: the stubs address the fields by
/// offset (RAX at 0, RBX at 8, ..., R15 at 112).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GeneralRegisters {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RBP.
    pub rbp: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
}

/// A register number as instructions and exit qualifications encode it
/// (SDM Vol. 2A, Table 2-2: 0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP,
/// 5 = RBP, 6 = RSI, 7 = RDI, 8-15 = R8-R15).
pub const RSP_NUMBER: u8 = 4;

impl GeneralRegisters {
    /// The register numbered `number` (not RSP: the caller asks the vCPU).
    pub fn get(&self, number: u8) -> u64 {
        match self.slot(number) {
            Some(slot) => *slot_ref(self, slot),
            None => 0,
        }
    }

    /// Sets the register numbered `number`; RSP is the caller's to set.
    pub fn set(&mut self, number: u8, value: u64) {
        if let Some(slot) = self.slot(number) {
            *slot_mut(self, slot) = value;
        }
    }

    fn slot(&self, number: u8) -> Option<usize> {
        // Index into the struct's field order.
        const SLOTS: [Option<usize>; 16] = [
            Some(0),  // RAX
            Some(2),  // RCX
            Some(3),  // RDX
            Some(1),  // RBX
            None,     // RSP
            Some(6),  // RBP
            Some(4),  // RSI
            Some(5),  // RDI
            Some(7),  // R8
            Some(8),  // R9
            Some(9),  // R10
            Some(10), // R11
            Some(11), // R12
            Some(12), // R13
            Some(13), // R14
            Some(14), // R15
        ];
        SLOTS[(number & 15) as usize]
    }
}

fn slot_ref(registers: &GeneralRegisters, slot: usize) -> &u64 {
    match slot {
        0 => &registers.rax,
        1 => &registers.rbx,
        2 => &registers.rcx,
        3 => &registers.rdx,
        4 => &registers.rsi,
        5 => &registers.rdi,
        6 => &registers.rbp,
        7 => &registers.r8,
        8 => &registers.r9,
        9 => &registers.r10,
        10 => &registers.r11,
        11 => &registers.r12,
        12 => &registers.r13,
        13 => &registers.r14,
        _ => &registers.r15,
    }
}

fn slot_mut(registers: &mut GeneralRegisters, slot: usize) -> &mut u64 {
    match slot {
        0 => &mut registers.rax,
        1 => &mut registers.rbx,
        2 => &mut registers.rcx,
        3 => &mut registers.rdx,
        4 => &mut registers.rsi,
        5 => &mut registers.rdi,
        6 => &mut registers.rbp,
        7 => &mut registers.r8,
        8 => &mut registers.r9,
        9 => &mut registers.r10,
        10 => &mut registers.r11,
        11 => &mut registers.r12,
        12 => &mut registers.r13,
        13 => &mut registers.r14,
        _ => &mut registers.r15,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_instruction_encoding() {
        let mut registers = GeneralRegisters::default();
        for number in 0..16u8 {
            registers.set(number, 0x100 + number as u64);
        }
        assert_eq!(registers.rax, 0x100);
        assert_eq!(registers.rcx, 0x101);
        assert_eq!(registers.rdx, 0x102);
        assert_eq!(registers.rbx, 0x103);
        assert_eq!(registers.rbp, 0x105);
        assert_eq!(registers.rsi, 0x106);
        assert_eq!(registers.rdi, 0x107);
        assert_eq!(registers.r8, 0x108);
        assert_eq!(registers.r15, 0x10f);
        assert_eq!(registers.get(RSP_NUMBER), 0, "RSP is not in the file");
        assert_eq!(registers.get(9), 0x109);
    }

    #[test]
    fn layout_matches_the_stubs() {
        // The assembly stores RAX at offset 0 and R15 at offset 112.
        assert_eq!(core::mem::size_of::<GeneralRegisters>(), 15 * 8);
        assert_eq!(core::mem::offset_of!(GeneralRegisters, rbx), 8);
        assert_eq!(core::mem::offset_of!(GeneralRegisters, rdi), 40);
        assert_eq!(core::mem::offset_of!(GeneralRegisters, r15), 112);
    }
}
