/* mbtest: a Multiboot1 kernel in the form GRUB and QEMU's -kernel accept —
 * an ELF32 image with a Multiboot header — that checks what a Multiboot
 * loader must hand over, prints its findings on COM1 by port I/O, and
 * powers its PC off through ACPI (PM1a control: SLP_TYP 5 with SLP_EN), as
 * an OS shutting down does. It uses nothing tessera-specific.
 *
 * Checks: EAX = 0x2BADB002; the information structure's flags carry
 * memory (bit 0), a command line (bit 2) and a memory map (bit 6);
 * mem_lower = 639; the command line is the module's text after `--`
 * ("hello multiboot"); the boot loader name (flag 9) is "tessera"; the
 * entry state is the specification's (3.2): interrupts off, protected mode
 * without paging, flat 4 GiB CS and DS; the A20 gate is open (memory at
 * 1 MiB + x is not x). Each check prints a PASS or FAIL line.
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
    mov %eax, %esi                   /* keep the magic across PUSHF */
    mov $entry_stack_top, %esp       /* a loader gives no stack (3.2) */
    pushf
    pop entry_eflags
    mov %esi, %eax
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
    call streq
    mov $msg_cmdline, %esi
    call check

    /* boot-loader-name: flag 9, the string at offset 64 */
    testl $(1 << 9), (%edi)
    jnz 1f
    test %esp, %esp                  /* no name: ZF clear, a failure */
    jmp 2f
1:  mov 64(%edi), %ebx
    mov $expected_loader, %ecx
    call streq
2:  mov $msg_loader, %esi
    call check

    /* entry-state: EFLAGS.IF and VM clear; CR0.PE set, PG clear; CS and
     * DS with base 0 and limit 4 GiB (a 4 GiB LSL limit is 0xffffffff) */
    testl $((1 << 9) | (1 << 17)), entry_eflags
    jnz 2f
    mov %cr0, %eax
    and $0x80000001, %eax
    cmp $1, %eax
    jne 2f
    mov %cs, %eax
    lsl %eax, %ebx
    jnz 2f
    cmp $0xffffffff, %ebx
    jne 2f
    mov %ds, %eax
    lsl %eax, %ebx
    jnz 2f
    cmp $0xffffffff, %ebx
    jne 2f
    /* base 0: the GDT entry's base bytes (2-4, 7) */
    sgdt gdtr
    mov %cs, %eax
    and $0xfff8, %eax
    add gdtr + 2, %eax
    mov 2(%eax), %ebx
    and $0x00ffffff, %ebx
    or 7(%eax), %bl                  /* base 31:24 into the zero test */
    test %ebx, %ebx
2:  mov $msg_entry, %esi
    call check

    /* a20-on: 0x17F000 and 0x7F000 differ only in bit 20 */
    mov 0x7F000, %ecx                /* keep both words */
    mov 0x17F000, %edx
    movl $0x11111111, 0x7F000
    movl $0x22222222, 0x17F000
    cmpl $0x11111111, 0x7F000
    mov %ecx, 0x7F000
    mov %edx, 0x17F000
    mov $msg_a20, %esi
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

/* ZF set when the strings at %ebx and %ecx are equal (both end with a 0);
 * clobbers %al, %ebx, %ecx. */
streq:
1:  movb (%ecx), %al
    cmpb (%ebx), %al
    jne 2f
    inc %ebx
    inc %ecx
    test %al, %al
    jnz 1b
2:  ret

/* check and puts */
    .include "report.s"

    .section .rodata
msg_pass:         .asciz "mbtest: PASS "
msg_fail:         .asciz "mbtest: FAIL "
msg_magic:        .asciz "multiboot-magic-in-eax"
msg_flags:        .asciz "info-flags-mem-cmdline-mmap"
msg_lower:        .asciz "mem-lower-639"
msg_cmdline:      .asciz "cmdline-after-dashes"
msg_loader:       .asciz "boot-loader-name"
msg_entry:        .asciz "entry-state"
msg_a20:          .asciz "a20-on"
expected_loader:  .asciz "tessera"
msg_all_passed:   .asciz "mbtest: all passed; powering off\n"
msg_failed:       .asciz "mbtest: some failed; powering off\n"
expected_cmdline: .asciz "hello multiboot"
passed:

    .section .data
    .balign 4
entry_eflags:     .long 0
gdtr:             .short 0
                  .long 0

    .section .bss
    .balign 16
    .skip 4096
stack_top:
    .skip 64
entry_stack_top:
