/*
 * hello.s — tessera's real-mode demo guest.
 *
 * A raw image: the loader puts it at 0x7C00 and starts it in 16-bit real mode,
 * like a boot sector (it is also padded to 512 bytes with the 0x55AA boot
 * signature, so it boots as-is from a BIOS for comparison). It uses no BIOS
 * service: it drives COM1 directly with port I/O, polling the line status
 * register before every byte as a real 16550 driver must, prints two lines and
 * halts with interrupts off.
 *
 * Line 2 reports the CS:IP the image was entered at, so a run shows how the
 * hypervisor set up the real-mode entry (0000:7C00 or 07C0:0000 both work).
 */

        .code16

        .set COM1_DATA,        0x3F8   /* transmit holding register (DLAB = 0) */
        .set COM1_LINE_STATUS, 0x3FD
        .set LSR_THR_EMPTY,    0x20    /* bit 5: ready for the next byte */
        .set LOAD_ADDRESS,     0x7C00

        .section .text.entry, "ax"
        .globl _start
_start:
        cli
        /* A known stack first: the entry state promises none, and the call
         * below pushes. SS:SP = 0000:7C00 grows down into free low memory. */
        xor     %ax, %ax
        mov     %ax, %ss
        mov     $LOAD_ADDRESS, %sp

        /* Record the entry CS:IP. CS can be read; IP only through a call,
         * whose return address is the runtime offset of the label after it. */
        mov     %cs, %bx
        call    1f
1:      pop     %di
        sub     $(1b - _start), %di

        /* From here on CS = 0, which is what the link addresses assume,
         * whichever of the equivalent segment:offset pairs we entered by. */
        ljmp    $0, $flat
flat:
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %es
        cld

        mov     $greeting, %si
        call    put_string

        mov     $entry_prefix, %si
        call    put_string
        mov     %bx, %ax
        call    put_hex16
        mov     $':', %al
        call    put_char
        mov     %di, %ax
        call    put_hex16
        mov     $'\n', %al
        call    put_char

halt:
        cli
        hlt
        jmp     halt                    /* an NMI would resume after hlt */

/* put_string: print the NUL-terminated string at DS:SI. Clobbers AX, SI. */
put_string:
        lodsb
        test    %al, %al
        jz      2f
        call    put_char
        jmp     put_string
2:      ret

/* put_hex16: print AX as four upper-case hex digits. Clobbers AX, CX. */
put_hex16:
        mov     $4, %cx
3:      rol     $4, %ax
        push    %ax
        and     $0x0F, %al
        add     $'0', %al
        cmp     $'9', %al
        jbe     4f
        add     $('A' - '9' - 1), %al
4:      call    put_char
        pop     %ax
        loop    3b
        ret

/* put_char: send AL to COM1 once the transmitter can take it. Preserves all
 * registers. An emulated UART may drop a byte written while THR is busy. */
put_char:
        push    %dx
        push    %ax
        mov     $COM1_LINE_STATUS, %dx
5:      in      %dx, %al
        test    $LSR_THR_EMPTY, %al
        jz      5b
        pop     %ax
        mov     $COM1_DATA, %dx
        out     %al, %dx
        pop     %dx
        ret

        .section .rodata.strings, "a"
greeting:
        .asciz  "Hello from a real-mode guest!\n"
entry_prefix:
        .asciz  "hello: entered at CS:IP "
