/* mbtest: a Multiboot1 kernel in the form GRUB and QEMU's -kernel accept —
 * an ELF32 image with a Multiboot header — that checks what a Multiboot
 * loader must hand over, prints its findings on COM1 by port I/O, and
 * powers its PC off through ACPI (PM1a control: SLP_TYP 5 with SLP_EN), as
 * an OS shutting down does. It uses nothing tessera-specific.
 *
 * Checks: EAX = 0x2BADB002; the information structure's flags carry
 * memory (bit 0), a command line (bit 2) and a memory map (bit 6);
 * mem_lower = 639; the command line is the module's text after `--`
 * ("hello multiboot"). Each check prints a PASS or FAIL line.
 */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000003        /* page-aligned modules, memory info */
    .set COM1, 0x3f8
    .set PM1A_CNT, 0x604

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text
    .code32
    .global _start
_start:
    mov $stack_top, %esp
    mov %ebx, %edi                   /* the information structure */
    mov $passed, %ebp                /* count failures in %ebp below */
    xor %ebp, %ebp

    /* EAX = 0x2BADB002 */
    cmp $0x2BADB002, %eax
    mov $msg_magic, %esi
    call check

    /* flags: bits 0 (mem_*), 2 (cmdline), 6 (mmap) */
    mov (%edi), %eax
    and $0x45, %eax
    cmp $0x45, %eax
    mov $msg_flags, %esi
    call check

    /* mem_lower = 639 KiB */
    cmpl $639, 4(%edi)
    mov $msg_lower, %esi
    call check

    /* the command line is "hello multiboot" */
    mov 16(%edi), %ebx
    mov $expected_cmdline, %ecx
1:  movb (%ecx), %al
    cmpb (%ebx), %al
    jne 2f
    inc %ebx
    inc %ecx
    test %al, %al
    jnz 1b
2:  mov $msg_cmdline, %esi
    call check

    /* summary, then power off */
    test %ebp, %ebp
    jnz 3f
    mov $msg_all_passed, %esi
    call puts
    jmp 4f
3:  mov $msg_failed, %esi
    call puts
4:  mov $PM1A_CNT, %dx
    mov $(5 << 10) | (1 << 13), %ax
    out %ax, %dx
    cli
5:  hlt
    jmp 5b

/* check and puts */
    .include "report.s"

    .section .rodata
msg_pass:         .asciz "mbtest: PASS "
msg_fail:         .asciz "mbtest: FAIL "
msg_magic:        .asciz "multiboot-magic-in-eax"
msg_flags:        .asciz "info-flags-mem-cmdline-mmap"
msg_lower:        .asciz "mem-lower-639"
msg_cmdline:      .asciz "cmdline-after-dashes"
msg_all_passed:   .asciz "mbtest: all passed; powering off\n"
msg_failed:       .asciz "mbtest: some failed; powering off\n"
expected_cmdline: .asciz "hello multiboot"
passed:

    .section .bss
    .balign 16
    .skip 4096
stack_top:
