//! The Multiboot1 header and the 32-bit entry: what makes one ELF64 file
//! load both under QEMU's `-kernel` and under tessera, and get from the
//! Multiboot machine state (flat 32-bit protected mode, paging off, IF = 0;
//! Multiboot 0.6.96, 3.2) into 64-bit mode for the Rust code.
//!
//! The header sets the a.out-kludge flag (bit 16) so that a loader takes the
//! load addresses from the header instead of the ELF program headers: QEMU
//! refuses ELF64 Multiboot kernels without it. The addresses come from the
//! linker script (`__load_start`, `__load_end`, `__bss_end`).
//!
//! The entry builds identity page tables for the low 4 GiB out of 2 MiB
//! pages, turns on PAE, EFER.LME and CR0.PG (SDM Vol. 3A, 10.8.5
//! "Initializing IA-32e Mode"), loads a GDT with a 64-bit code segment and
//! far-jumps to it, then calls [`crate::platform_main`] with the Multiboot
//! magic (EAX at entry) and the information structure's address (EBX).

use core::arch::global_asm;

/// Multiboot 0.6.96, 3.1.1: the header's magic.
const MAGIC: u32 = 0x1BAD_B002;
/// Flag 1: the loader must give memory information (mem_lower/upper,
/// the memory map). Flag 16: the address fields are valid (a.out kludge).
const FLAGS: u32 = (1 << 1) | (1 << 16);
/// magic + flags + checksum must be 0 (mod 2^32).
const CHECKSUM: u32 = 0u32.wrapping_sub(MAGIC.wrapping_add(FLAGS));

/// Page-directory entry bits: present, writable, 2 MiB page.
const PDE_LARGE_PAGE: u32 = 0x83;
/// PWT | PCD: with the power-on PAT this selects UC (SDM Vol. 3A, 13.12.3).
const PDE_UNCACHED: u32 = 0x18;
/// From 3 GiB up (the PCI hole, the I/O APIC at 0xFEC00000, the local APIC
/// at 0xFEE00000, the firmware) the map is uncached: device registers must
/// not be cached (SDM Vol. 3A, 12.4.1 "The Local APIC Block Diagram": the
/// APIC page is to be mapped strong uncacheable).
const FIRST_UNCACHED_2M_PAGE: u32 = 0xC000_0000 >> 21;
/// 2048 2 MiB pages are the low 4 GiB.
const PAGES_2M: u32 = 2048;
/// The stack the Rust code runs on.
const STACK_BYTES: usize = 64 * 1024;

global_asm!(
    r#"
    .pushsection .text.boot, "ax", @progbits
    .code32
    .global _start
_start:
    jmp platform_start32

    .balign 4
platform_multiboot_header:
    .long {magic}
    .long {flags}
    .long {checksum}
    .long platform_multiboot_header     /* header_addr */
    .long __load_start                  /* load_addr */
    .long __load_end                    /* load_end_addr */
    .long __bss_end                     /* bss_end_addr */
    .long _start                        /* entry_addr */

platform_start32:
    cli
    cld
    /* EAX = magic and EBX = information: kept in EBP and EBX. */
    mov %eax, %ebp
    mov $platform_stack_top, %esp

    /* Zero .bss (the loader does too; a.out kludge, 3.1.3) */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT; PDPT[0..4] -> four page directories */
    mov $platform_pdpt + 3, %eax
    mov %eax, platform_pml4
    mov $platform_page_directories + 3, %eax
    xor %ecx, %ecx
1:  mov %eax, platform_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b

    /* 2048 identity-mapped 2 MiB pages; uncached from 3 GiB up */
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or ${large}, %eax
    cmp ${first_uncached}, %ecx
    jb 3f
    or ${uncached}, %eax
3:  mov %eax, platform_page_directories(,%ecx,8)
    inc %ecx
    cmp ${pages}, %ecx
    jb 2b

    /* SDM Vol. 3A 10.8.5: PAE, CR3, EFER.LME, then CR0.PG */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $platform_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0

    lgdt platform_gdt_pointer
    ljmp $0x08, $platform_start64

    .code64
platform_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $platform_stack_top, %esp
    mov %ebp, %edi
    mov %ebx, %esi
    call {main}
4:  cli
    hlt
    jmp 4b

    .balign 8
platform_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF            /* 0x10: data, DPL 0 */
platform_gdt_end:
platform_gdt_pointer:
    .short platform_gdt_end - platform_gdt - 1
    .long platform_gdt
    .popsection

    .pushsection .bss.page_tables, "aw", @nobits
    .balign 4096
platform_pml4:
    .skip 4096
platform_pdpt:
    .skip 4096
platform_page_directories:
    .skip 4 * 4096
    .popsection

    .pushsection .bss.platform_stack, "aw", @nobits
    .balign 16
    .skip {stack_bytes}
platform_stack_top:
    .popsection
"#,
    magic = const MAGIC,
    flags = const FLAGS,
    checksum = const CHECKSUM,
    large = const PDE_LARGE_PAGE,
    uncached = const PDE_UNCACHED,
    first_uncached = const FIRST_UNCACHED_2M_PAGE,
    pages = const PAGES_2M,
    stack_bytes = const STACK_BYTES,
    main = sym crate::platform_main,
    options(att_syntax)
);
