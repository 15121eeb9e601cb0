//! The world switch: VMLAUNCH/VMRESUME and the VM-exit landing pad.
//!
//! VMX saves and loads RSP, RIP and RFLAGS through the VMCS but none of the
//! other general-purpose registers (SDM Vol. 3C, 28.1 "Architectural State
//! Before a VM Exit"), so the stub keeps them in [`GuestRegisters`]. The host
//! RSP in the VMCS is refreshed before every entry, so the exit lands on the
//! same stack frame that entered, with the callee-saved registers of the
//! Rust caller on it.

use core::arch::global_asm;

pub use crate::arch::registers::GeneralRegisters as GuestRegisters;

/// How a VMLAUNCH/VMRESUME ended: the stub's return value itself (its
/// numbers are the discriminants), so testing for `Exited` is one compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum EntryResult {
    /// The guest ran and exited; the exit reason is in the VMCS.
    Exited = 0,
    /// VMfailInvalid: there was no valid current VMCS.
    FailInvalid = 1,
    /// VMfailValid: the VM-instruction error field says why.
    FailValid = 2,
}

extern "C" {
    /// Enters the guest. Returns 0 after a VM exit, 1 on VMfailInvalid and
    /// 2 on VMfailValid — no other value — as an [`EntryResult`].
    fn vmx_enter(registers: *mut GuestRegisters, launched: u64) -> EntryResult;
}

global_asm!(
    concat!(
    r#"
    .section .text
    .global vmx_enter
vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                            /* [rsp] = &GuestRegisters */
    mov rax, {host_rsp}
    vmwrite rax, rsp
    cmp rsi, 0                          /* flags survive the loads below */
    mov rax, [rdi + 0]
    "#,
    crate::load_guest_registers_but_rax_rdi!(),
    r#"
    mov rdi, [rdi + 40]
    je 1f
    vmresume
    jmp 2f
1:  vmlaunch
2:  /* Entry failed: CF set = VMfailInvalid, ZF set = VMfailValid. */
    mov eax, 1
    mov ecx, 2
    cmovz eax, ecx
    pop rdi
    jmp 3f

    .global vmx_exit
vmx_exit:
    xchg rdi, [rsp]                     /* rdi = &GuestRegisters, [rsp] = guest rdi */
    mov [rdi + 0], rax
    "#,
    crate::store_guest_registers_but_rax_rdi!(),
    r#"
    pop rax
    mov [rdi + 40], rax
    xor eax, eax
3:  pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
    ),
    host_rsp = const x86::vmx::vmcs::host::RSP,
);

extern "C" {
    fn vmx_exit();
}

/// The address the VMCS host-RIP field must hold.
pub fn exit_address() -> u64 {
    vmx_exit as *const () as u64
}

/// Runs the guest of the current VMCS until it exits.
///
/// # Safety
/// A VMCS must be current on this CPU with complete host state (host RIP =
/// [`exit_address`]) and guest state; `launched` must say whether it was
/// launched since its last VMCLEAR.
#[inline(always)]
pub unsafe fn enter(registers: &mut GuestRegisters, launched: bool) -> EntryResult {
    // SAFETY: forwarded to the caller; the stub preserves every callee-saved
    // register, returns on the same stack and only ever 0, 1 or 2.
    unsafe { vmx_enter(registers, launched as u64) }
}
