# rdtsc: a static x86-64 Linux program, no libc, that prints the time-stamp
# counter in decimal followed by a newline and exits 0.
#
# Why it exists: busybox has no way to read the TSC, and in Bochs the TSC
# advances by one per emulated instruction, so `/bin/rdtsc` in the test
# initramfs turns "how long did Linux take to reach /init's marker" into a
# deterministic instruction count (the boot-cost benchmark of issue 8).
# Built by guest-blobs/linux/fetch-and-build.sh with GNU as and ld only:
#   as --64 -o rdtsc.o rdtsc.s && ld -static -nostdlib -o rdtsc rdtsc.o
#
# RDTSC is not serializing; LFENCE first so the count is not taken before
# the instructions that precede it in program order (the Intel SDM's
# recommended "LFENCE; RDTSC").

        .set SYS_write, 1
        .set SYS_exit, 60

        .text
        .globl _start
_start:
        lfence
        rdtsc                           # EDX:EAX = TSC
        shlq    $32, %rdx
        orq     %rdx, %rax              # RAX = 64-bit TSC

        # Convert to decimal from the end of the buffer backwards.
        leaq    buf_end(%rip), %rsi
        movb    $'\n', -1(%rsi)
        leaq    -1(%rsi), %rdi          # RDI = first byte written so far
        movq    $10, %rcx
1:      xorl    %edx, %edx
        divq    %rcx                    # RAX = quotient, RDX = digit
        addb    $'0', %dl
        decq    %rdi
        movb    %dl, (%rdi)
        testq   %rax, %rax
        jnz     1b

        # write(1, rdi, buf_end - rdi); a short write to a tty or pipe of
        # at most 21 bytes does not happen, so no retry loop.
        movq    %rsi, %rdx
        subq    %rdi, %rdx
        movq    %rdi, %rsi
        movl    $1, %edi
        movl    $SYS_write, %eax
        syscall

        # exit(0), or exit(1) when the write failed (RAX negative).
        xorl    %edi, %edi
        testq   %rax, %rax
        jns     2f
        movl    $1, %edi
2:      movl    $SYS_exit, %eax
        syscall

        .bss
# 20 digits hold 2^64 - 1; one more byte for the newline.
buf:    .skip 24
buf_end:
