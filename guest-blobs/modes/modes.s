# modes.bin: raw guests that switch CPU modes themselves and then make
# tessera inject an exception or emulate string I/O. Load with load=0x8000;
# the VM's entry= picks the guest (guest-blobs/isolation.toml):
#
#   0x8000 real mode      (modes16): real-mode #GP through the IVT; real ->
#          protected mode (own GDT/IDT, CR0.PE by a MOV that does not exit),
#          then RDMSR of an unknown MSR: the #GP handler must get error code
#          0; then back to real mode and the same through the IVT.
#   0x8010 mode=protected (pm-real): protected -> real mode, RDMSR -> #GP
#          through the IVT without an error code (tessera's CR0 read shadow
#          still says PE=1). Run with restart=always: prints its start line
#          once per run.
#   0x8020 mode=protected (pm-pae): CR4.PAE, CR3 -> PDPT, then MOV CR0 with
#          PG|NE (NE is owned by tessera, so it exits): must keep running
#          (the PDPTEs must be loaded); then REP OUTSB/INSB under PAE paging.
#   0x8030 mode=protected (pm-pg32): OUTSB through FS whose limit the offset
#          exceeds -> #GP(0); then REP OUTSB/INSB under 32-bit paging.
#   0x8040 mode=protected (ac-loop, deliveryloop.toml): CR0.AM, then at CPL 3
#          with EFLAGS.AC a misaligned load -> #AC through the IDT with error
#          code 0 (tessera intercepts #AC and reflects it); then the #AC
#          delivery loop of CVE-2015-5307: the #AC gate leads to a DPL 3 code
#          segment (no stack switch) and ESP is misaligned, so pushing the
#          exception frame raises #AC again, forever. It never returns; if the
#          handler ever runs, the probe `ac-delivery-loop` FAILs. Only legacy
#          protected mode can do this: in IA-32e mode the CPU aligns RSP to 16
#          bytes before pushing a frame (SDM Vol. 3A, 6.14.2).
#
# Lines go to COM1 by port I/O: `modes: PASS <probe>: <what happened>` or
# `modes: FAIL <probe>: expected <what>, got <what happened>`, then
# `modes: N probes, M failed` and the EXIT hypercall with M as exit code.

        .intel_syntax noprefix

        .set STACK, 0x7000
        .set COM1, 0x3f8
        .set NO_DEVICE_PORT, 0x2f0
        .set BAD_MSR, 0x12345678
        .set NONE, 0xffffffff
        .set PDPT, 0x20000
        .set PAE_PD, 0x21000
        .set PD32, 0x22000
        .set TSS32, 0x6000              # ac-loop: 32-bit TSS (ESP0 = STACK)
        .set USER_STACK, 0x5800         # ac-loop: the CPL 3 stack
        .set USER_CS, 0x33
        .set USER_DS, 0x3b
        .set TSS_SEL, 0x40
        .set EFLAGS_AC_IOPL3, 0x43002   # AC, IOPL 3, bit 1
        .set CR0_AM, 0x40000

        .section .text.entry, "ax"
        .code16
        .globl _start
_start:                                 # 0x8000: real mode
        .byte 0xea                      # jmp far 0000:start16
        .word start16, 0
        .org 0x10
        .code32
        jmp pm_real_entry               # 0x8010
        .org 0x20
        jmp pm_pae_entry                # 0x8020
        .org 0x30
        jmp pm_pg32_entry               # 0x8030
        .org 0x40
        jmp ac_loop_entry               # 0x8040

# ---------------------------------------------------------------------------
# Printing, reporting and exiting, once for 16-bit and once for 32-bit code.
        .macro ROUTINES s
puts\s:                                 # ESI: NUL-terminated string
        push eax
1:      mov al, [esi]
        test al, al
        jz 2f
        call putc\s
        inc esi
        jmp 1b
2:      pop eax
        ret
putc\s:                                 # AL
        push edx
        push eax
        mov dx, COM1 + 5
3:      in al, dx
        test al, 0x20
        jz 3b
        pop eax
        mov dx, COM1
        out dx, al
        pop edx
        ret
puthex\s:                               # EAX, as 0x + 8 digits
        push eax
        push ecx
        push esi
        mov esi, offset s_0x
        call puts\s
        mov ecx, 8
4:      rol eax, 4
        push eax
        and al, 0xf
        add al, '0'
        cmp al, '9'
        jbe 5f
        add al, 'a' - '9' - 1
5:      call putc\s
        pop eax
        dec ecx
        jnz 4b
        pop esi
        pop ecx
        pop eax
        ret
clear\s:                                # before each probe
        mov dword ptr [g_vec], NONE
        mov dword ptr [g_err], 0
        mov dword ptr [g_ip], 0
        mov dword ptr [g_extra], 0
        ret
report\s:                               # ESI name, EDI expected, BL ok
        inc dword ptr [probes]
        push esi
        mov esi, offset s_prefix
        call puts\s
        mov esi, offset s_pass
        test bl, bl
        jnz 6f
        inc dword ptr [failed]
        mov esi, offset s_fail
6:      call puts\s
        pop esi
        call puts\s
        mov esi, offset s_colon
        call puts\s
        test bl, bl
        jnz 7f
        mov esi, offset s_expected
        call puts\s
        mov esi, edi
        call puts\s
        mov esi, offset s_got
        call puts\s
7:      cmp dword ptr [g_vec], NONE
        jne 8f
        mov esi, offset s_nofault
        call puts\s
        jmp 9f
8:      mov esi, offset s_vector
        call puts\s
        mov eax, [g_vec]
        call puthex\s
        mov esi, offset s_error
        call puts\s
        mov eax, [g_err]
        call puthex\s
        mov esi, offset s_frame
        call puts\s
        mov eax, [g_ip]
        call puthex\s
9:      mov esi, offset s_extra
        call puts\s
        mov eax, [g_extra]
        call puthex\s
        mov al, 10
        call putc\s
        ret
finish\s:                               # summary line and EXIT
        mov esi, offset s_prefix
        call puts\s
        mov eax, [probes]
        call puthex\s
        mov esi, offset s_probes
        call puts\s
        mov eax, [failed]
        call puthex\s
        mov esi, offset s_failed
        call puts\s
        xor eax, eax                    # the hypercall instruction is the
        cpuid                           # vendor's: VMMCALL on AMD (VMCALL
        cmp ebx, 0x68747541             # is #UD there), VMCALL on Intel
        mov eax, 2                      # EXIT
        mov edi, [failed]
        je 11f
        vmcall
        jmp 10f
11:     vmmcall
10:     cli
        hlt
        jmp 10b
        .endm

        .text
        .code16
        ROUTINES 16
        .code32
        ROUTINES 32

# ---------------------------------------------------------------------------
# Exception handlers.
        .code16
rm_gp_handler:                          # IVT vector 13
        mov dword ptr [g_vec], 13
        mov bp, sp
        movzx eax, word ptr [bp]        # IP (or an error code, wrongly)
        mov [g_ip], eax
        movzx eax, word ptr [bp + 2]    # CS (or IP, wrongly)
        mov [g_extra], eax
        mov sp, STACK
        jmp word ptr [resume16]

        .code32
        .irp v, 0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
pm_stub_\v:
        push 0
        push \v
        jmp pm_exception
        .endr
        .irp v, 8, 10, 11, 12, 13, 14, 17
pm_stub_\v:
        push \v
        jmp pm_exception
        .endr
pm_exception:
        pop dword ptr [g_vec]
        pop dword ptr [g_err]
        mov eax, [esp]
        mov [g_ip], eax
        add esp, 12                     # EIP, CS, EFLAGS: the stack as before the fault
        jmp dword ptr [resume32]

# Common protected-mode setup for the mode=protected entries: own GDT and
# IDT, flat segments, own stack. Returns with a near RET (jumped to with the
# return address in EBX).
pm_setup:
        cli
        lgdt [gdt_pointer]
        .byte 0xea                      # jmp far 0x08:1f
        .long 1f
        .word 0x08
1:      mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov esp, STACK
        lidt [idt_pointer]
        jmp ebx

# ---------------------------------------------------------------------------
# 0x8000: modes16.
        .code16
start16:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, STACK
        mov esi, offset s_start16
        call puts16
        mov word ptr [13 * 4], offset rm_gp_handler
        mov word ptr [13 * 4 + 2], 0
        # Real mode: #GP through the IVT, no error code.
        call clear16
        mov word ptr [resume16], offset r1_done
        mov ecx, BAD_MSR
r1_insn:
        rdmsr
r1_done:
        xor bl, bl
        cmp dword ptr [g_vec], 13
        jne 1f
        cmp dword ptr [g_ip], offset r1_insn
        jne 1f
        cmp dword ptr [g_extra], 0
        jne 1f
        mov bl, 1
1:      mov esi, offset p_rm_gp
        mov edi, offset x_rm_gp
        call report16
        # Real -> protected mode by a MOV to CR0 that does not exit.
        lgdt [gdt_pointer]
        lidt [idt_pointer]
        mov eax, cr0
        or eax, 1
        mov cr0, eax
        .byte 0xea                      # jmp far 0x08:r2
        .word r2
        .word 0x08
        .code32
r2:     mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov esp, STACK
        call clear32
        mov dword ptr [resume32], offset r2_done
        mov ecx, BAD_MSR
r2_insn:
        rdmsr
r2_done:
        xor bl, bl
        cmp dword ptr [g_vec], 13
        jne 1f
        cmp dword ptr [g_err], 0
        jne 1f
        cmp dword ptr [g_ip], offset r2_insn
        jne 1f
        mov bl, 1
1:      mov esi, offset p_pm_gp
        mov edi, offset x_pm_gp
        call report32
        # And back to real mode: the IVT again, no error code.
        jmp to_real_and_probe

# Protected (32-bit, own GDT) -> real mode, then RDMSR -> #GP via the IVT.
to_real_and_probe:
        mov word ptr [13 * 4], offset rm_gp_handler
        mov word ptr [13 * 4 + 2], 0
        .byte 0xea                      # jmp far 0x18:1f (16-bit code)
        .long 1f
        .word 0x18
        .code16
1:      mov ax, 0x20
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov eax, cr0
        and eax, ~1
        mov cr0, eax
        .byte 0xea                      # jmp far 0000:2f
        .word 2f, 0
2:      xor ax, ax
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov sp, STACK
        lidt [ivt_pointer]
        call clear16
        mov word ptr [resume16], offset r3_done
        mov ecx, BAD_MSR
r3_insn:
        rdmsr
r3_done:
        xor bl, bl
        cmp dword ptr [g_vec], 13
        jne 1f
        cmp dword ptr [g_ip], offset r3_insn
        jne 1f
        cmp dword ptr [g_extra], 0
        jne 1f
        mov bl, 1
1:      mov esi, offset p_pm_rm_gp
        mov edi, offset x_rm_gp
        call report16
        jmp finish16

# ---------------------------------------------------------------------------
# 0x8010: pm-real.
        .code32
pm_real_entry:
        mov ebx, offset 1f
        jmp pm_setup
1:      mov esi, offset s_start_pm_real
        call puts32
        jmp to_real_and_probe

# ---------------------------------------------------------------------------
# 0x8020: pm-pae.
pm_pae_entry:
        mov ebx, offset 1f
        jmp pm_setup
1:      mov esi, offset s_start_pm_pae
        call puts32
        mov edi, PAE_PD                 # PD: one 2 MiB page at 0
        xor eax, eax
        mov ecx, 1024
        rep stosd
        mov dword ptr [PAE_PD], 0x83
        mov edi, PDPT                   # PDPT: entry 0 -> PD (PDPTEs: P only)
        mov ecx, 8
        rep stosd
        mov dword ptr [PDPT], PAE_PD | 1
        mov eax, cr4
        or eax, 0x20                    # PAE
        mov cr4, eax
        mov eax, PDPT
        mov cr3, eax
        call clear32
        mov dword ptr [resume32], offset 2f
        mov eax, cr0
        or eax, 0x80000020              # PG | NE: NE is tessera's, so this exits
        mov cr0, eax
        nop
2:      mov eax, cr0
        mov [g_extra], eax
        xor bl, bl
        cmp dword ptr [g_vec], NONE
        jne 3f
        test eax, 0x80000000
        jz 3f
        mov bl, 1
3:      mov esi, offset p_pae_cr0
        mov edi, offset x_pae_cr0
        call report32
        mov esi, offset p_pae_outs
        mov edi, offset p_pae_ins
        call string_io_pair
        mov eax, cr0
        and eax, ~0x80000000
        mov cr0, eax
        jmp finish32

# REP OUTSB then REP INSB of 4 bytes on a port no device claims, under the
# current paging; ESI/EDI: the two probes' names.
string_io_pair:
        push edi
        call clear32
        mov dword ptr [resume32], offset 1f
        mov ecx, 4
        mov dx, NO_DEVICE_PORT
        push esi
        mov esi, offset io_buffer
        rep outsb
1:      mov eax, esi
        sub eax, offset io_buffer
        pop esi
        mov [g_extra], eax
        xor bl, bl
        cmp dword ptr [g_vec], NONE
        jne 2f
        cmp eax, 4
        jne 2f
        test ecx, ecx
        jnz 2f
        mov bl, 1
2:      mov edi, offset x_string_io
        call report32
        pop esi
        call clear32
        mov dword ptr [io_buffer], 0
        mov dword ptr [resume32], offset 3f
        mov ecx, 4
        mov dx, NO_DEVICE_PORT
        mov edi, offset io_buffer
        rep insb
3:      mov eax, [io_buffer]
        mov [g_extra], eax
        xor bl, bl
        cmp dword ptr [g_vec], NONE
        jne 4f
        cmp eax, 0xffffffff
        jne 4f
        cmp edi, offset io_buffer + 4
        jne 4f
        mov bl, 1
4:      mov edi, offset x_string_in
        call report32
        ret

# ---------------------------------------------------------------------------
# 0x8030: pm-pg32.
pm_pg32_entry:
        mov ebx, offset 1f
        jmp pm_setup
1:      mov esi, offset s_start_pm_pg32
        call puts32
        # OUTSB through FS (limit 0xfff) at offset 0x2000: #GP(0).
        mov ax, 0x28
        mov fs, ax
        call clear32
        mov dword ptr [resume32], offset 2f
        mov esi, 0x2000
        mov dx, NO_DEVICE_PORT
        .byte 0x64, 0x6e                # fs outsb
2:      mov ax, 0x10
        mov fs, ax
        mov eax, esi
        sub eax, 0x2000
        mov [g_extra], eax
        xor bl, bl
        cmp dword ptr [g_vec], 13
        jne 3f
        cmp dword ptr [g_err], 0
        jne 3f
        cmp eax, 0
        jne 3f
        mov bl, 1
3:      mov esi, offset p_limit
        mov edi, offset x_limit
        call report32
        # 32-bit paging: one 4 MiB page at 0.
        mov edi, PD32
        xor eax, eax
        mov ecx, 1024
        rep stosd
        mov dword ptr [PD32], 0x83
        mov eax, cr4
        or eax, 0x10                    # PSE
        mov cr4, eax
        mov eax, PD32
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        mov esi, offset p_pg32_outs
        mov edi, offset p_pg32_ins
        call string_io_pair
        mov eax, cr0
        and eax, ~0x80000000
        mov cr0, eax
        jmp finish32

# ---------------------------------------------------------------------------
# 0x8040: ac-loop.
ac_loop_entry:
        mov ebx, offset 1f
        jmp pm_setup
1:      mov esi, offset s_start_ac_loop
        call puts32
        mov dword ptr [TSS32 + 4], STACK        # ESP0
        mov dword ptr [TSS32 + 8], 0x10         # SS0
        mov word ptr [TSS32 + 0x66], 0x68       # no I/O bitmap
        mov ax, TSS_SEL
        ltr ax
        mov eax, cr0
        or eax, CR0_AM
        mov cr0, eax
        # A misaligned load at CPL 3 with EFLAGS.AC: #AC(0) to the CPL 0 stub.
        call clear32
        mov dword ptr [resume32], offset 2f
        push USER_DS
        push USER_STACK
        push EFLAGS_AC_IOPL3
        push USER_CS
        push offset ac_user_probe
        iretd
2:      call ac_back_to_cpl0
        xor bl, bl
        cmp dword ptr [g_vec], 17
        jne 3f
        cmp dword ptr [g_err], 0
        jne 3f
        cmp dword ptr [g_ip], offset ac_user_insn
        jne 3f
        mov bl, 1
3:      mov esi, offset p_ac_cpl3
        mov edi, offset x_ac_cpl3
        call report32
        # The loop: #AC now goes to a DPL 3 segment, so it is delivered at
        # CPL 3 on the (misaligned) interrupted stack.
        mov word ptr [idt + 17 * 8], offset ac_user_handler
        mov word ptr [idt + 17 * 8 + 2], USER_CS
        mov word ptr [idt + 17 * 8 + 4], 0xee00
        mov esi, offset s_arming_ac
        call puts32
        mov eax, offset ac_user_loop
        call puthex32
        mov al, 10
        call putc32
        call clear32
        mov dword ptr [resume32], offset 4f
        push USER_DS
        push USER_STACK + 1
        push EFLAGS_AC_IOPL3
        push USER_CS
        push offset ac_user_loop
        iretd
4:      call ac_back_to_cpl0            # the handler ran: the loop ended
        xor bl, bl
        mov esi, offset p_ac_loop
        mov edi, offset x_ac_loop
        call report32
        jmp finish32

ac_back_to_cpl0:                        # after pm_exception: flat CPL 0 again
        pop ecx
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov esp, STACK
        jmp ecx

# CPL 3 code (IOPL 3: it may print).
ac_user_probe:
        mov ax, USER_DS
        mov ds, ax
        mov es, ax
ac_user_insn:
        mov eax, [USER_STACK + 1]       # misaligned: #AC
        ud2                             # not reached: the stub records #UD
ac_user_loop:
        push eax                        # misaligned ESP: #AC, and so is its frame
        ud2
ac_user_handler:                        # CPL 3; reached only if a delivery completed
        ud2                             # -> #UD at CPL 0 -> resume32

# ---------------------------------------------------------------------------
        .data
        .balign 8
gdt:    .quad 0
        .quad 0x00cf9a000000ffff        # 0x08 code32, flat
        .quad 0x00cf92000000ffff        # 0x10 data32, flat
        .quad 0x00009a000000ffff        # 0x18 code16, base 0, limit 64 KiB
        .quad 0x000092000000ffff        # 0x20 data16, base 0, limit 64 KiB
        .quad 0x0040920000000fff        # 0x28 data32, base 0, limit 0xfff
        .quad 0x00cffa000000ffff        # 0x30 code32, flat, DPL 3
        .quad 0x00cff2000000ffff        # 0x38 data32, flat, DPL 3
        .quad 0x0000890060000067        # 0x40 32-bit TSS at TSS32 (0x6000), limit 0x67
gdt_end:
gdt_pointer:
        .word gdt_end - gdt - 1
        .long gdt
        .balign 8
idt:
        .irp v, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
        .word pm_stub_\v, 0x08, 0x8e00, 0
        .endr
idt_end:
idt_pointer:
        .word idt_end - idt - 1
        .long idt
ivt_pointer:
        .word 0x3ff
        .long 0
        .balign 4
g_vec:  .long 0
g_err:  .long 0
g_ip:   .long 0
g_extra: .long 0
probes: .long 0
failed: .long 0
resume16: .word 0
        .balign 4
resume32: .long 0
io_buffer: .ascii "abc\n"

s_0x:   .asciz "0x"
s_prefix: .asciz "modes: "
s_pass: .asciz "PASS "
s_fail: .asciz "FAIL "
s_colon: .asciz ": "
s_expected: .asciz "expected "
s_got:  .asciz ", got "
s_nofault: .asciz "no fault"
s_vector: .asciz "vector "
s_error: .asciz " error "
s_frame: .asciz " frame[0] "
s_extra: .asciz ", extra "
s_probes: .asciz " probes, "
s_failed: .asciz " failed\n"
s_start16: .asciz "modes: modes16 start (real mode)\n"
s_start_pm_real: .asciz "modes: pm-real start (protected mode)\n"
s_start_pm_pae: .asciz "modes: pm-pae start (protected mode)\n"
s_start_pm_pg32: .asciz "modes: pm-pg32 start (protected mode)\n"
s_start_ac_loop: .asciz "modes: ac-loop start (protected mode)\n"
s_arming_ac: .asciz "modes: ac-loop: arming the #AC delivery loop (CPL 3, EFLAGS.AC, CR0.AM, ESP 0x5801, #AC gate to a DPL 3 segment): PUSH at EIP "
p_ac_cpl3: .asciz "ac-cpl3-error-code-zero"
x_ac_cpl3: .asciz "vector 0x00000011 error 0 frame[0] = EIP of the misaligned load"
p_ac_loop: .asciz "ac-delivery-loop"
x_ac_loop: .asciz "no delivery of #AC ever completing (the CPL 3 handler never runs)"
p_rm_gp: .asciz "real-mode-gp-via-ivt"
x_rm_gp: .asciz "vector 0x0000000d through the IVT, frame[0] = IP of the RDMSR (no error code), extra (CS) 0"
p_pm_gp: .asciz "real-to-protected-gp-error-code"
x_pm_gp: .asciz "vector 0x0000000d with error code 0, frame[0] = error code 0 then EIP of the RDMSR"
p_pm_rm_gp: .asciz "protected-to-real-gp-via-ivt"
p_pae_cr0: .asciz "pae-enabled-by-exiting-mov-cr0"
x_pae_cr0: .asciz "no fault, still running, CR0.PG = 1 (extra = CR0)"
p_pae_outs: .asciz "pae-rep-outsb"
p_pae_ins: .asciz "pae-rep-insb"
p_pg32_outs: .asciz "paging32-rep-outsb"
p_pg32_ins: .asciz "paging32-rep-insb"
x_string_io: .asciz "no fault, ESI +4 (extra), ECX 0"
x_string_in: .asciz "no fault, 4 x 0xff read (extra), EDI +4"
p_limit: .asciz "outsb-beyond-fs-limit"
x_limit: .asciz "vector 0x0000000d, error 0, ESI unchanged (extra = ESI - 0x2000 = 0)"
