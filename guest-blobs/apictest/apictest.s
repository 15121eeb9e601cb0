/* apictest: a Multiboot1 kernel that uses the APICs the way an operating
 * system does, through their MMIO registers and MSRs, in 32-bit protected
 * mode with paging off (so 0xFEE00000 and 0xFEC00000 are plain physical
 * addresses). It prints its findings on COM1 by port I/O and stops through
 * isa-debug-exit (0x10: all passed, exit code 0x21; 0x11 otherwise).
 *
 * Checks:
 *  - lapic-version: the local APIC's version register reads 0x14 in its
 *    low byte and ID 0 (MOV loads from the APIC page);
 *  - apic-base-msr: RDMSR IA32_APIC_BASE = 0xFEE00900 (enabled, BSP);
 *  - lapic-timer-periodic: the APIC timer, periodic at 1 kHz on vector
 *    0x40 (divide by 1, 25,000 counts of the 25 MHz crystal), wakes 20
 *    HLTs; each handler writes EOI; then masked with an OR on the LVT
 *    (a read-modify-write on the APIC page);
 *  - ioapic-version: the I/O APIC's version register (index 1) reads 0x11
 *    with 23 as the highest redirection entry;
 *  - ioapic-pit-on-pin-2: with the 8259A pair masked, the PIT at 1 kHz
 *    routed through I/O APIC pin 2 to vector 0x30 wakes 20 HLTs.
 */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000003
    .set COM1, 0x3f8
    .set DEBUG_EXIT, 0xf4
    .set LAPIC, 0xFEE00000
    .set IOAPIC, 0xFEC00000
    .set TICKS_WANTED, 20
    .set HLT_LIMIT, 100000

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
    xor %ebp, %ebp                   /* failures */

    /* The IDT: every vector to `spurious`, 0x30 and 0x40 to their
     * handlers; the code selector is whatever the loader left in CS. */
    mov %cs, %bx
    mov $idt, %edi
    xor %ecx, %ecx
1:  mov $spurious, %eax
    cmp $0x30, %ecx
    jne 2f
    mov $pit_isr, %eax
2:  cmp $0x40, %ecx
    jne 3f
    mov $timer_isr, %eax
3:  mov %ax, (%edi)                  /* offset 15:0 */
    mov %bx, 2(%edi)                 /* selector */
    movw $0x8E00, 4(%edi)            /* present, DPL 0, 32-bit interrupt gate */
    shr $16, %eax
    mov %ax, 6(%edi)                 /* offset 31:16 */
    add $8, %edi
    inc %ecx
    cmp $256, %ecx
    jb 1b
    lidt idt_descriptor

    /* The 8259A pair: initialised, vectors 0x20/0x28, everything masked. */
    mov $pic_init, %esi
4:  movw (%esi), %dx
    test %dx, %dx
    jz 5f
    movb 2(%esi), %al
    out %al, %dx
    add $4, %esi
    jmp 4b
5:

    /* lapic-version */
    mov LAPIC + 0x30, %eax
    and $0xff, %eax
    cmp $0x14, %eax
    jne 6f
    mov LAPIC + 0x20, %eax
    test $0xff000000, %eax
6:  mov $msg_version, %esi
    call check

    /* apic-base-msr */
    mov $0x1b, %ecx
    rdmsr
    test %edx, %edx
    jne 6f
    cmp $0xFEE00900, %eax
6:  mov $msg_base, %esi
    call check

    /* lapic-timer-periodic */
    orl $0x100, LAPIC + 0xF0         /* SVR: software-enable (RMW) */
    movl $0xB, LAPIC + 0x3E0         /* divide by 1 */
    movl $(0x40 | 1 << 17), LAPIC + 0x320   /* periodic, vector 0x40 */
    movl $25000, LAPIC + 0x380       /* 1 ms at 25 MHz */
    mov $timer_ticks, %esi
    call wait_ticks
    mov $msg_timer, %esi
    call check
    orl $0x10000, LAPIC + 0x320      /* mask the timer (RMW) */

    /* ioapic-version */
    movl $1, IOAPIC
    mov IOAPIC + 0x10, %eax
    and $0x00ff00ff, %eax
    cmp $0x00170011, %eax
    mov $msg_ioapic, %esi
    call check

    /* ioapic-pit-on-pin-2: the PIT in mode 2 at 1 kHz, pin 2 -> 0x30 */
    mov $0x43, %dx
    mov $0x34, %al
    out %al, %dx
    mov $0x40, %dx
    mov $(1193 & 0xff), %al
    out %al, %dx
    mov $(1193 >> 8), %al
    out %al, %dx
    movl $0x15, IOAPIC               /* pin 2, high half: destination 0 */
    movl $0, IOAPIC + 0x10
    movl $0x14, IOAPIC               /* pin 2, low half: vector 0x30, unmasked */
    movl $0x30, IOAPIC + 0x10
    mov $pit_ticks, %esi
    call wait_ticks
    mov $msg_pit, %esi
    call check
    orl $0x10000, IOAPIC + 0x10      /* mask pin 2 again (RMW on IOWIN) */

    /* summary, then the debug-exit port */
    test %ebp, %ebp
    jnz 7f
    mov $msg_all_passed, %esi
    call puts
    mov $0x10, %al
    jmp 8f
7:  mov $msg_failed, %esi
    call puts
    mov $0x11, %al
8:  mov $DEBUG_EXIT, %dx
    out %al, %dx
    cli
9:  hlt
    jmp 9b

/* Sleeps in STI; HLT until the counter at %esi reaches TICKS_WANTED, at
 * most HLT_LIMIT times; ZF set if it did. */
wait_ticks:
    push %ecx
    mov $HLT_LIMIT, %ecx
1:  cmpl $TICKS_WANTED, (%esi)
    jae 2f
    sti
    hlt
    cli
    loop 1b
    /* gave up: ZF clear */
    test %esp, %esp
    pop %ecx
    ret
2:  cmp %eax, %eax                   /* ZF set */
    pop %ecx
    ret

timer_isr:
    incl timer_ticks
    movl $0, LAPIC + 0xB0            /* EOI */
    iret

pit_isr:
    incl pit_ticks
    movl $0, LAPIC + 0xB0            /* EOI */
    iret

spurious:
    incl spurious_count
    iret

/* check and puts */
    .include "report.s"

    .section .rodata
    .balign 4
/* {port: u16, value: u8, pad}, ended by port 0 */
pic_init:
    .short 0x20
    .byte 0x11, 0
    .short 0x21
    .byte 0x20, 0
    .short 0x21
    .byte 0x04, 0
    .short 0x21
    .byte 0x01, 0
    .short 0xa0
    .byte 0x11, 0
    .short 0xa1
    .byte 0x28, 0
    .short 0xa1
    .byte 0x02, 0
    .short 0xa1
    .byte 0x01, 0
    .short 0x21
    .byte 0xff, 0
    .short 0xa1
    .byte 0xff, 0
    .short 0
    .byte 0, 0
msg_pass:         .asciz "apictest: PASS "
msg_fail:         .asciz "apictest: FAIL "
msg_version:      .asciz "lapic-version"
msg_base:         .asciz "apic-base-msr"
msg_timer:        .asciz "lapic-timer-periodic"
msg_ioapic:       .asciz "ioapic-version"
msg_pit:          .asciz "ioapic-pit-on-pin-2"
msg_all_passed:   .asciz "apictest: all passed; exiting through debug-exit\n"
msg_failed:       .asciz "apictest: some failed; exiting through debug-exit\n"

    .section .data
    .balign 8
idt_descriptor:
    .short 256 * 8 - 1
    .long idt
timer_ticks:    .long 0
pit_ticks:      .long 0
spurious_count: .long 0

    .section .bss
    .balign 16
idt:
    .skip 256 * 8
    .skip 4096
stack_top:
