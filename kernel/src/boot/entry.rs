//! The Multiboot2 header and the 32-bit entry point.
//!
//! GRUB (BIOS and x86_64-EFI alike) enters the kernel in 32-bit protected mode
//! with paging off, EAX = the Multiboot2 magic and EBX = the physical address
//! of the boot information (Multiboot2 spec, 3.3 "I386 machine state"). This
//! code checks both, builds identity page tables for the first 4 GiB with
//! 2 MiB pages, enables long mode (Intel SDM Vol. 3A, 10.8.5 "Initializing
//! IA-32e Mode") and calls `kernel_main` on the guarded boot stack. The Rust
//! side then replaces these tables with finer ones (`arch::paging`).

use core::arch::global_asm;

/// The value GRUB leaves in EAX for a Multiboot2 kernel.
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

/// Size of the boot (and main) stack.
pub const BOOT_STACK_SIZE: usize = 128 * 1024;
/// Size of each interrupt stack (double fault, NMI, machine check).
pub const IST_STACK_SIZE: usize = 16 * 1024;

global_asm!(
    r#"
    .section .multiboot_header, "a"
    .balign 8
mb2_header_start:
    .long 0xe85250d6                    /* magic */
    .long 0                             /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header_start
    .long -(0xe85250d6 + 0 + (mb2_header_end - mb2_header_start))
    /* End tag. No framebuffer, no EFI boot-services tag: GRUB exits boot
       services and enters us in 32-bit protected mode on EFI as on BIOS. */
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

    /* Stacks, each with an unmapped guard page below it (arch::paging
       leaves the guard pages not-present, so an overflow faults at once
       instead of corrupting whatever lies below). */
    .section .bss.stacks, "aw", @nobits
    .balign 4096
    .global __boot_stack_guard, __boot_stack_top
    .global __df_stack_guard, __df_stack_top
    .global __nmi_stack_guard, __nmi_stack_top
    .global __mc_stack_guard, __mc_stack_top
__boot_stack_guard: .skip 4096
    .skip {boot_stack}
__boot_stack_top:
__df_stack_guard: .skip 4096
    .skip {ist_stack}
__df_stack_top:
__nmi_stack_guard: .skip 4096
    .skip {ist_stack}
__nmi_stack_top:
__mc_stack_guard: .skip 4096
    .skip {ist_stack}
__mc_stack_top:

    .section .bss.boot_tables, "aw", @nobits
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096 * 4

    .section .data.boot, "aw"
    .balign 8
boot_magic: .long 0
boot_info:  .long 0
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff            /* 0x10: data, DPL 0 */
boot_gdt_end:
long_mode_far_pointer:
    .long long_mode_entry
    .short 0x08
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .text.boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov esp, offset __boot_stack_top
    mov dword ptr [boot_magic], eax
    mov dword ptr [boot_info], ebx
    cmp eax, {magic}
    jne 90f

    /* Long mode available? (CPUID.80000001H:EDX.LM[bit 29]) */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 91f
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29
    jz 91f
    mov ebx, edx                        /* keep: bit 20 = NX available */

    /* Identity-map 0..4 GiB with 2 MiB pages. */
    mov edi, offset boot_pml4
    mov ecx, (4096 * 6) / 4
    xor eax, eax
    rep stosd
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov dword ptr [boot_pml4], eax
    mov eax, offset boot_pd
    or eax, 0x3
    mov edi, offset boot_pdpt
    mov ecx, 4
1:  mov dword ptr [edi], eax
    add eax, 4096
    add edi, 8
    loop 1b
    mov eax, 0x83                       /* present, writable, 2 MiB page */
    mov edi, offset boot_pd
    mov ecx, 2048
2:  mov dword ptr [edi], eax
    add eax, 0x200000
    add edi, 8
    loop 2b

    mov eax, cr4
    or eax, 1 << 5                      /* PAE */
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xc0000080                 /* IA32_EFER */
    rdmsr
    or eax, 1 << 8                      /* LME */
    test ebx, 1 << 20
    jz 3f
    or eax, 1 << 11                     /* NXE, when the CPU has NX */
3:  wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1   /* PG, WP (ring 0 honours read-only), PE */
    /* Caches on: clear CD and NW, which firmware (Bochs' BIOS does) may
       leave set. VM entry never loads CD/NW from the guest CR0 field, so
       guests inherit these (SDM Vol. 3C, 28.3.2.1). */
    and eax, ~((1 << 30) | (1 << 29))
    mov cr0, eax

    lgdt [boot_gdt_pointer]
    jmp fword ptr [long_mode_far_pointer]

    /* Failures before long mode: say so on COM1 (115200 8N1) and stop. */
90: mov esi, offset boot_error_magic
    jmp 95f
91: mov esi, offset boot_error_long_mode
95: mov dx, 0x3fb
    mov al, 0x80
    out dx, al
    mov dx, 0x3f8
    mov al, 1
    out dx, al
    mov dx, 0x3f9
    xor al, al
    out dx, al
    mov dx, 0x3fb
    mov al, 3
    out dx, al
96: lodsb
    test al, al
    jz 98f
    mov ah, al
    mov dx, 0x3fd
97: in al, dx
    test al, 0x20
    jz 97b
    mov dx, 0x3f8
    mov al, ah
    out dx, al
    jmp 96b
98: cli
    hlt
    jmp 98b

    .code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset __boot_stack_top
    xor ebp, ebp
    mov edi, dword ptr [rip + boot_magic]
    mov esi, dword ptr [rip + boot_info]
    call kernel_main
99: cli
    hlt
    jmp 99b

    .section .rodata.boot, "a"
boot_error_magic:
    .asciz "\r\ntessera: CRASH: not started by a Multiboot2 loader (bad magic in EAX)\r\n"
boot_error_long_mode:
    .asciz "\r\ntessera: CRASH: this CPU has no 64-bit long mode\r\n"
"#,
    magic = const MULTIBOOT2_BOOTLOADER_MAGIC,
    boot_stack = const BOOT_STACK_SIZE,
    ist_stack = const IST_STACK_SIZE,
);
