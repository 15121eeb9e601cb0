//! The world switch: VMRUN and the return from #VMEXIT.
//!
//! VMRUN loads RAX, RSP, RIP and RFLAGS from the VMCB and #VMEXIT restores
//! the host's from the host save area (APM Vol. 2, 15.5); the other general
//! registers are nobody's, so the stub keeps them in [`GuestRegisters`].
//! VMRUN does not switch the hidden state VMLOAD/VMSAVE handle (FS, GS, TR,
//! LDTR, KERNEL_GS_BASE, SYSCALL/SYSENTER MSRs): the stub loads the guest's
//! before VMRUN, saves it after, and reloads the host's — tessera's GS base
//! points at its per-CPU structure, and its TR at its TSS.
//!
//! **Interrupts** (15.17, 15.21). The host runs with RFLAGS.IF clear. The
//! stub clears GIF, sets IF, and runs the guest: with V_INTR_MASKING the
//! host's IF at VMRUN decides whether physical interrupts reach the
//! processor while the guest runs, and with the INTR intercept they end it
//! — the time-slice timer among them. #VMEXIT leaves GIF clear, so nothing
//! is taken until the stub has cleared IF again and set GIF; the interrupt
//! stays pending in the local APIC for the vCPU to take.

use core::arch::global_asm;

pub use crate::arch::registers::GeneralRegisters as GuestRegisters;

extern "C" {
    /// Runs the guest of the VMCB at `vmcb` until its next #VMEXIT.
    fn svm_enter(registers: *mut GuestRegisters, vmcb: u64, host_vmload_area: u64);
}

global_asm!(concat!(
    r#"
    .section .text
    .global svm_enter
svm_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdx                            /* the host's VMLOAD area */
    push rdi                            /* [rsp] = &GuestRegisters */
    mov rax, rsi
    "#,
    crate::load_guest_registers_but_rax_rdi!(),
    r#"
    mov rdi, [rdi + 40]
    clgi
    sti
    vmload rax
    vmrun rax
    vmsave rax                          /* rax = the VMCB again (15.5.2) */
    xchg rdi, [rsp]                     /* rdi = &GuestRegisters, [rsp] = guest rdi */
    "#,
    crate::store_guest_registers_but_rax_rdi!(),
    r#"
    pop rax
    mov [rdi + 40], rax
    pop rax
    vmload rax
    cli
    stgi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
));

/// Runs the guest of the VMCB at physical `vmcb` until it exits. RAX is
/// the VMCB's (its save area), not `registers.rax`.
///
/// # Safety
/// `vmcb` must be a complete, valid VMCB page; SVM must be on with a host
/// save area; `host_vmload_area` must hold the host's VMSAVE'd state.
#[inline(always)]
pub unsafe fn enter(registers: &mut GuestRegisters, vmcb: u64, host_vmload_area: u64) {
    // SAFETY: forwarded to the caller; the stub preserves every callee-saved
    // register and returns on the same stack.
    unsafe { svm_enter(registers, vmcb, host_vmload_area) }
}
