/* mb2test: a Multiboot2 kernel in the form GRUB accepts — an ELF32 image
 * with a Multiboot2 header and nothing else — that walks the boot
 * information's tags, checks what a Multiboot2 loader must hand over,
 * prints its findings on COM1 by port I/O and stops through QEMU's
 * isa-debug-exit port, as test kernels written for QEMU do (mbtest.toml
 * gives it `debug-exit = 0xf4`). It uses nothing tessera-specific.
 *
 * Checks (Multiboot2 specification 1.0, 3.6 "Boot information format"):
 * EAX = 0x36D76289 and EBX 8-byte aligned; the command line tag (1) is the
 * module's text after `--` ("hello multiboot2"); the basic memory tag (4)
 * says mem_lower = 639; the memory map tag (6) has 24-byte entries and an
 * available region starting at 1 MiB; an ACPI RSDP tag (14 or 15) holds
 * "RSD PTR "; the module tag (3) describes exactly the bytes of the data
 * module `mb2data` (module.txt), page-aligned. Each check prints a PASS or
 * FAIL line. A pass writes 0x10 to the debug-exit port (exit code 0x21), a
 * failure 0x11 (0x23).
 */
    .set MB2_MAGIC, 0xE85250D6
    .set MB2_ARCH_I386, 0
    .set COM1, 0x3f8
    .set DEBUG_EXIT, 0xf4

    .section .multiboot2, "a"
    .balign 8
header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long header_end - header
    .long -(MB2_MAGIC + MB2_ARCH_I386 + (header_end - header))
    /* the end tag */
    .short 0
    .short 0
    .long 8
header_end:

    .section .text
    .code32
    .global _start
_start:
    mov $stack_top, %esp
    mov %eax, magic
    mov %ebx, info
    xor %ebp, %ebp                   /* failures */

    /* Walk the tags: each is {type u32, size u32, ...}, padded to 8 bytes;
     * type 0 ends the list. The walk never leaves total_size. */
    mov info, %esi
    mov (%esi), %edi
    add %esi, %edi                   /* %edi = end of the information */
    add $8, %esi                     /* first tag */
walk:
    lea 8(%esi), %eax
    cmp %edi, %eax
    ja walked
    mov (%esi), %eax
    test %eax, %eax
    jz walked
    cmp $1, %eax
    jne 1f
    mov %esi, tag_cmdline
1:  cmp $3, %eax
    jne 1f
    mov %esi, tag_module
1:  cmp $4, %eax
    jne 1f
    mov %esi, tag_meminfo
1:  cmp $6, %eax
    jne 1f
    mov %esi, tag_mmap
1:  cmp $14, %eax
    je 2f
    cmp $15, %eax
    jne 1f
2:  mov %esi, tag_acpi
1:  mov 4(%esi), %ecx
    cmp $8, %ecx
    jb walked                        /* a malformed size would loop forever */
    add $7, %ecx
    and $~7, %ecx
    add %ecx, %esi
    jmp walk
walked:

    /* EAX = 0x36D76289, EBX aligned to 8 */
    cmpl $0x36D76289, magic
    jne 1f
    testl $7, info
1:  mov $msg_magic, %esi
    call check

    /* the command line tag */
    mov tag_cmdline, %esi
    test %esi, %esi
    jz 0f
    add $8, %esi
    mov $expected_cmdline, %ecx
    call streq
    jmp 1f
0:  test %esp, %esp                  /* a missing tag fails: ZF clear */
1:  mov $msg_cmdline, %esi
    call check

    /* basic memory information: mem_lower = 639 KiB */
    mov tag_meminfo, %esi
    test %esi, %esi
    jz 0f
    cmpl $639, 8(%esi)
    jmp 1f
0:  test %esp, %esp
1:  mov $msg_meminfo, %esi
    call check

    /* the memory map: 24-byte entries, one available (type 1) at 1 MiB */
    mov tag_mmap, %esi
    test %esi, %esi
    jz 0f
    cmpl $24, 8(%esi)
    jne 3f
    mov 4(%esi), %ecx
    add %esi, %ecx                   /* end of the tag */
    add $16, %esi                    /* first entry */
2:  lea 24(%esi), %eax
    cmp %ecx, %eax
    ja 3f                            /* not found: ZF is clear */
    cmpl $0x100000, (%esi)
    jne 4f
    cmpl $0, 4(%esi)
    jne 4f
    cmpl $1, 16(%esi)
    je 3f                            /* found: ZF is set */
4:  add $24, %esi
    jmp 2b
0:  test %esp, %esp
3:  mov $msg_mmap, %esi
    call check

    /* the ACPI RSDP tag holds a copy of the RSDP: "RSD PTR " */
    mov tag_acpi, %esi
    test %esi, %esi
    jz 0f
    add $8, %esi
    mov $rsdp_signature, %edi
    mov $8, %ecx
    repe cmpsb
    jmp 1f
0:  test %esp, %esp
1:  mov $msg_acpi, %esi
    call check

    /* the module tag: mod_start page-aligned, exactly module.txt's bytes */
    mov tag_module, %esi
    test %esi, %esi
    jz 0f
    mov 8(%esi), %eax                /* mod_start */
    mov 12(%esi), %ecx               /* mod_end */
    sub %eax, %ecx
    cmp $(module_text_end - module_text), %ecx
    jne 1f
    testl $0xfff, 8(%esi)
    jnz 1f
    mov %eax, %esi
    mov $module_text, %edi
    repe cmpsb
    jmp 1f
0:  test %esp, %esp
1:  mov $msg_module, %esi
    call check

    /* summary, then the debug-exit port */
    test %ebp, %ebp
    jnz 3f
    mov $msg_all_passed, %esi
    call puts
    mov $0x10, %al
    jmp 4f
3:  mov $msg_failed, %esi
    call puts
    mov $0x11, %al
4:  mov $DEBUG_EXIT, %dx
    out %al, %dx
    cli
5:  hlt
    jmp 5b

/* ZF set if the NUL-terminated strings at %esi and %ecx are equal. */
streq:
    push %eax
1:  movb (%esi), %al
    cmpb (%ecx), %al
    jne 2f
    inc %esi
    inc %ecx
    test %al, %al
    jnz 1b
2:  pop %eax
    ret

/* check and puts */
    .include "report.s"

    .section .rodata
msg_pass:         .asciz "mb2test: PASS "
msg_fail:         .asciz "mb2test: FAIL "
msg_magic:        .asciz "multiboot2-magic-in-eax"
msg_cmdline:      .asciz "cmdline-tag"
msg_meminfo:      .asciz "basic-meminfo-tag-639"
msg_mmap:         .asciz "mmap-tag-ram-at-1m"
msg_acpi:         .asciz "acpi-rsdp-tag"
msg_module:       .asciz "module-tag-bytes"
msg_all_passed:   .asciz "mb2test: all passed; exiting through debug-exit\n"
msg_failed:       .asciz "mb2test: some failed; exiting through debug-exit\n"
expected_cmdline: .asciz "hello multiboot2"
rsdp_signature:   .ascii "RSD PTR "
/* module.txt, byte for byte */
module_text:      .incbin "module.txt"
module_text_end:

    .section .data
    .balign 4
magic:       .long 0
info:        .long 0
tag_cmdline: .long 0
tag_module:  .long 0
tag_meminfo: .long 0
tag_mmap:    .long 0
tag_acpi:    .long 0

    .section .bss
    .balign 16
    .skip 4096
stack_top:
