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
 *    routed through I/O APIC pin 2 to vector 0x30 wakes 20 HLTs;
 *  - cpuid-tsc-frequency: CPUID leaf 0x15 (crystal and ratio) and leaf
 *    0x40000010 (kHz) agree, and the TSC runs at that rate against the
 *    ACPI PM timer;
 *  - lapic-tsc-deadline: CPUID offers the TSC-deadline mode; armed 1 ms
 *    ahead through IA32_TSC_DEADLINE, the timer wakes HLT once, its
 *    handler sees the TSC past the deadline, and the MSR reads 0 after;
 *  - self-nmi: an NMI IPI to itself runs the NMI handler; a second one
 *    sent from inside the handler waits for its IRET (NMI blocking), then
 *    runs it once more;
 *  - x2apic: CPUID offers x2APIC; with IA32_APIC_BASE.EXTD set the ID and
 *    version are MSRs 0x802/0x803, and a self-IPI through MSR 0x83F runs
 *    its handler, which ends it with an EOI through MSR 0x80B.
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
3:  cmp $0x41, %ecx
    jne 3f
    mov $x2apic_isr, %eax
3:  cmp $2, %ecx
    jne 3f
    mov $nmi_isr, %eax
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

    /* cpuid-tsc-frequency: leaf 0x15's ratio gives the TSC rate that leaf
     * 0x40000010 gives in kHz, and that rate is the one the TSC runs at
     * against the ACPI PM timer (3.579545 MHz) over about 20 ms. */
    mov $0x40000010, %eax
    cpuid
    mov %eax, tsc_khz
    mov $0x15, %eax
    cpuid                            /* TSC = ECX * EBX / EAX */
    test %eax, %eax
    jz 7f
    mov %eax, %esi
    mov %ecx, %eax
    mul %ebx
    cmp %esi, %edx                   /* the quotient must fit 32 bits */
    jae 7f
    div %esi
    xor %edx, %edx
    mov $1000, %ecx
    div %ecx                         /* kHz */
    sub tsc_khz, %eax
    add $1, %eax                     /* within one kHz of leaf 0x40000010 */
    cmp $2, %eax
    ja 7f
    call pm_sample
    mov %eax, pm_start
    mov %edx, tsc_start
1:  call pm_sample
    sub pm_start, %eax
    and $0xffffff, %eax              /* the PM timer is 24 bits wide */
    cmp $71590, %eax                 /* 20 ms */
    jb 1b
    sub tsc_start, %edx              /* TSC ticks in the window */
    mov %edx, %ebx
    mull tsc_khz                     /* PM ticks * kHz ... */
    mov $3580, %ecx                  /* ... / 3579.545 kHz (0.013% off) */
    cmp %ecx, %edx
    jae 7f
    div %ecx                         /* the TSC ticks the window should hold */
    mov %eax, %ecx
    shr $6, %ecx                     /* tolerance: 1/64, about 1.6% */
    sub %ebx, %eax
    jns 2f
    neg %eax
2:  cmp %ecx, %eax
    ja 7f
    cmp %eax, %eax                   /* ZF: passed */
    jmp 8f
7:  test %esp, %esp                  /* ZF clear: failed */
8:  mov $msg_tsc, %esi
    call check

    /* lapic-tsc-deadline */
    mov $1, %eax
    cpuid
    bt $24, %ecx                     /* CPUID.1:ECX[24]: TSC-deadline */
    jnc 7f
    movl $0, timer_ticks
    movl $(0x40 | 2 << 17), LAPIC + 0x320   /* TSC-deadline, vector 0x40 */
    rdtsc
    add tsc_khz, %eax                /* 1 ms ahead */
    adc $0, %edx
    mov %eax, deadline_lo
    mov %edx, deadline_hi
    mov $0x6e0, %ecx                 /* IA32_TSC_DEADLINE */
    wrmsr
    mov $HLT_LIMIT, %ecx
1:  cmpl $0, timer_ticks
    jne 2f
    sti
    hlt
    cli
    loop 1b
    jmp 7f
2:  mov timer_tsc_lo, %eax           /* the handler's TSC - the deadline */
    mov timer_tsc_hi, %edx
    sub deadline_lo, %eax
    sbb deadline_hi, %edx
    js 7f                            /* early */
    mov $0x6e0, %ecx
    rdmsr                            /* disarmed once it fired */
    or %edx, %eax
    jnz 7f
    cmpl $1, timer_ticks             /* and fired once */
    jmp 8f
7:  test %esp, %esp                  /* ZF clear: failed */
8:  mov $msg_deadline, %esi
    call check
    movl $0x10000, LAPIC + 0x320     /* mask the timer */

    /* self-nmi: ICR = NMI delivery mode (4 << 8), shorthand self (1 << 18) */
    movl $0x40400, LAPIC + 0x300
    mov $100000, %ecx
1:  cmpl $2, nmi_count
    jae 2f
    loop 1b
2:  cmpl $2, nmi_count               /* both ran ... */
    jne 8f
    cmpl $1, nmi_inside              /* ... the second after the first's IRET */
8:  mov $msg_nmi, %esi
    call check

    /* x2apic (last: the xAPIC page is not decoded in x2APIC mode) */
    mov $1, %eax
    cpuid
    bt $21, %ecx                     /* CPUID.1:ECX[21]: x2APIC */
    jnc 7f
    mov $0x1b, %ecx
    rdmsr
    or $0x400, %eax                  /* EXTD (EN is already set) */
    wrmsr
    mov $0x802, %ecx                 /* x2APIC ID */
    rdmsr
    test %eax, %eax
    jnz 7f
    mov $0x803, %ecx                 /* version */
    rdmsr
    cmp $0x14, %al
    jne 7f
    mov $0x83f, %ecx                 /* SELF IPI: vector 0x41 */
    mov $0x41, %eax
    xor %edx, %edx
    wrmsr
    sti                              /* taken after the next instruction */
    nop
    cli
    cmpl $1, x2apic_ticks
    jmp 8f
7:  test %esp, %esp                  /* ZF clear: failed */
8:  mov $msg_x2apic, %esi
    call check

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

/* One PM timer reading (EAX, 24 bits) with the TSC (EDX, low 32 bits)
 * taken just before it; retried until the reading took under `pm_limit`
 * TSC ticks (20,000 at first), so that a preemption between the two does
 * not skew them. Every 64 tries over the limit double it: an exit costs
 * far more TSC ticks under an emulator whose TSC is the host's (QEMU's
 * TCG) than under one whose TSC counts instructions (Bochs), and the
 * check's 1/64 tolerance over 20 ms leaves room for that. */
pm_sample:
    push %ebx
    push %ecx
    push %esi
    mov $64, %ecx
1:  dec %ecx
    jnz 3f
    shll pm_limit
    mov $64, %ecx
3:  rdtsc
    mov %eax, %esi
    push %edx
    mov $0x608, %dx
    in %dx, %eax
    pop %edx
    and $0xffffff, %eax
    mov %eax, %ebx
    rdtsc
    sub %esi, %eax
    cmp pm_limit, %eax
    ja 1b
    mov %ebx, %eax
    mov %esi, %edx
    pop %esi
    pop %ecx
    pop %ebx
    ret

timer_isr:
    push %eax
    push %edx
    rdtsc
    mov %eax, timer_tsc_lo
    mov %edx, timer_tsc_hi
    pop %edx
    pop %eax
    incl timer_ticks
    movl $0, LAPIC + 0xB0            /* EOI */
    iret

/* The NMI handler: the first run sends a second self-NMI and records how
 * many runs there have been a while later — still 1, as NMIs are blocked
 * until this handler's IRET (SDM Vol. 3A, 7.7.1). */
nmi_isr:
    push %ecx
    incl nmi_count
    cmpl $1, nmi_count
    jne 2f
    movl $0x40400, LAPIC + 0x300
    mov $1000, %ecx
1:  loop 1b
    mov nmi_count, %ecx
    mov %ecx, nmi_inside
2:  pop %ecx
    iret

x2apic_isr:
    push %eax
    push %ecx
    push %edx
    incl x2apic_ticks
    mov $0x80b, %ecx                 /* EOI */
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    pop %edx
    pop %ecx
    pop %eax
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
msg_tsc:          .asciz "cpuid-tsc-frequency"
msg_deadline:     .asciz "lapic-tsc-deadline"
msg_nmi:          .asciz "self-nmi"
msg_x2apic:       .asciz "x2apic"
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
tsc_khz:        .long 0
pm_limit:       .long 20000
pm_start:       .long 0
tsc_start:      .long 0
deadline_lo:    .long 0
deadline_hi:    .long 0
timer_tsc_lo:   .long 0
timer_tsc_hi:   .long 0
nmi_count:      .long 0
nmi_inside:     .long 0
x2apic_ticks:   .long 0

    .section .bss
    .balign 16
idt:
    .skip 256 * 8
    .skip 4096
stack_top:
