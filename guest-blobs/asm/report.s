/* The PASS/FAIL reporting the assembly test kernels (mbtest, mb2test,
 * apictest) share, included into their .text. The including file defines
 * COM1 and the strings msg_pass and msg_fail ("<name>: PASS " and
 * "<name>: FAIL "), and counts failures in %ebp.
 *
 * check: prints msg_pass if ZF is set, else msg_fail and counts the
 * failure in %ebp; then the NUL-terminated text at %esi and a newline.
 * puts: prints the NUL-terminated string at %esi on COM1, polling
 * LSR.THRE; preserves every register. */
check:
    push %esi
    jne 6f
    mov $msg_pass, %esi
    call puts
    jmp 7f
6:  inc %ebp
    mov $msg_fail, %esi
    call puts
7:  pop %esi
    call puts
    mov $report_newline, %esi
    call puts
    ret

puts:
    push %eax
    push %edx
    push %esi
8:  movb (%esi), %al
    test %al, %al
    jz 10f
    mov %al, %ah
    mov $COM1 + 5, %dx
9:  in %dx, %al
    test $0x20, %al
    jz 9b
    mov $COM1, %dx
    mov %ah, %al
    out %al, %dx
    inc %esi
    jmp 8b
10: pop %esi
    pop %edx
    pop %eax
    ret

    .pushsection .rodata
report_newline: .asciz "\n"
    .popsection
