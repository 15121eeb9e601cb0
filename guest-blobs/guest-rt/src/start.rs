//! `_start`, the ELF entry point, and the guest's own stack.
//!
//! The hypervisor enters in 64-bit mode on an identity map of guest RAM with
//! interrupts off and some valid RSP. `_start` relies on none of that beyond
//! long mode and the identity map: it clears the direction flag, zeroes .bss
//! (the loader should have, but a restarted guest must not depend on it),
//! switches to a stack inside the image, and calls into Rust.

/// Size of the stack `_start` switches to. Guests keep big data in statics.
const STACK_SIZE: usize = 32 * 1024;

core::arch::global_asm!(
    ".section .text._start, \"ax\", @progbits",
    ".global _start",
    "_start:",
    "    cli",
    "    cld",
    "    lea rdi, [rip + __bss_start]",
    "    lea rcx, [rip + __bss_end]",
    "    sub rcx, rdi",
    "    xor eax, eax",
    "    rep stosb",
    "    lea rsp, [rip + guest_rt_stack_top]",
    "    xor ebp, ebp",
    // RSP is 16-byte aligned here, so the callee sees the ABI's RSP+8 alignment.
    "    call {start_rust}",
    "2:  cli",
    "    hlt",
    "    jmp 2b",
    "",
    ".section .bss.guest_rt_stack, \"aw\", @nobits",
    ".balign 16",
    "guest_rt_stack_bottom:",
    "    .skip {stack_size}",
    "guest_rt_stack_top:",
    start_rust = sym start_rust,
    stack_size = const STACK_SIZE,
);

extern "Rust" {
    /// Defined by the guest through [`crate::entry!`].
    fn guest_rt_main() -> u64;
}

/// Runs the guest's main function and exits with its result.
extern "C" fn start_rust() -> ! {
    crate::hypercall::select_instruction();
    // SAFETY: `entry!` defines `guest_rt_main` as a safe `fn() -> u64`; the
    // declaration above has the same signature.
    let code = unsafe { guest_rt_main() };
    crate::hypercall::exit(code)
}
