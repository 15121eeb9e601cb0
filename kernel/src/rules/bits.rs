//! Architectural bit positions of the registers the rules reason about:
//! CR0, CR4, IA32_EFER and RFLAGS (SDM Vol. 3A, 2.5 and 2.2.1; Vol. 1, 3.4.3).
//! Defined here once; every file in `rules/` uses these names.

/// CR0 bits (SDM Vol. 3A, 2.5).
pub mod cr0 {
    /// Protection enable.
    pub const PE: u64 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u64 = 1 << 1;
    /// x87 emulation.
    pub const EM: u64 = 1 << 2;
    /// Task switched.
    pub const TS: u64 = 1 << 3;
    /// Extension type: reserved, reads as 1 on every processor since the i486DX.
    pub const ET: u64 = 1 << 4;
    /// Numeric error (native x87 error reporting).
    pub const NE: u64 = 1 << 5;
    /// Write protect (supervisor writes honour read-only pages).
    pub const WP: u64 = 1 << 16;
    /// Alignment mask.
    pub const AM: u64 = 1 << 18;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging.
    pub const PG: u64 = 1 << 31;
    /// Every defined CR0 bit; the others in 31:0 are reserved.
    pub const DEFINED: u64 = PE | MP | EM | TS | ET | NE | WP | AM | NW | CD | PG;
}

/// CR4 bits (SDM Vol. 3A, 2.5).
pub mod cr4 {
    /// Virtual-8086 mode extensions.
    pub const VME: u64 = 1 << 0;
    /// Protected-mode virtual interrupts.
    pub const PVI: u64 = 1 << 1;
    /// RDTSC restricted to CPL 0.
    pub const TSD: u64 = 1 << 2;
    /// Debugging extensions.
    pub const DE: u64 = 1 << 3;
    /// 4-MByte pages under 32-bit paging.
    pub const PSE: u64 = 1 << 4;
    /// Physical address extension.
    pub const PAE: u64 = 1 << 5;
    /// Machine-check enable.
    pub const MCE: u64 = 1 << 6;
    /// Global pages.
    pub const PGE: u64 = 1 << 7;
    /// RDPMC allowed at any CPL.
    pub const PCE: u64 = 1 << 8;
    /// FXSAVE/FXRSTOR and SSE enabled by the OS.
    pub const OSFXSR: u64 = 1 << 9;
    /// Unmasked SIMD floating-point exceptions handled by the OS.
    pub const OSXMMEXCPT: u64 = 1 << 10;
    /// User-mode instruction prevention.
    pub const UMIP: u64 = 1 << 11;
    /// 57-bit linear addresses (5-level paging).
    pub const LA57: u64 = 1 << 12;
    /// VMX enable.
    pub const VMXE: u64 = 1 << 13;
    /// SMX enable.
    pub const SMXE: u64 = 1 << 14;
    /// RDFSBASE/WRFSBASE and friends.
    pub const FSGSBASE: u64 = 1 << 16;
    /// Process-context identifiers.
    pub const PCIDE: u64 = 1 << 17;
    /// XSAVE and XSETBV enabled by the OS.
    pub const OSXSAVE: u64 = 1 << 18;
    /// Key Locker.
    pub const KL: u64 = 1 << 19;
    /// Supervisor-mode execution prevention.
    pub const SMEP: u64 = 1 << 20;
    /// Supervisor-mode access prevention.
    pub const SMAP: u64 = 1 << 21;
    /// Protection keys for user pages.
    pub const PKE: u64 = 1 << 22;
    /// Control-flow enforcement technology.
    pub const CET: u64 = 1 << 23;
    /// Protection keys for supervisor pages.
    pub const PKS: u64 = 1 << 24;
    /// User interrupts.
    pub const UINTR: u64 = 1 << 25;
    /// Linear-address space separation.
    pub const LASS: u64 = 1 << 27;
    /// Linear-address masking for supervisor pointers.
    pub const LAM_SUP: u64 = 1 << 28;
    /// Flexible return and event delivery.
    pub const FRED: u64 = 1 << 32;
    /// Every architecturally defined CR4 bit.
    pub const ARCHITECTURAL: u64 = VME
        | PVI
        | TSD
        | DE
        | PSE
        | PAE
        | MCE
        | PGE
        | PCE
        | OSFXSR
        | OSXMMEXCPT
        | UMIP
        | LA57
        | VMXE
        | SMXE
        | FSGSBASE
        | PCIDE
        | OSXSAVE
        | KL
        | SMEP
        | SMAP
        | PKE
        | CET
        | PKS
        | UINTR
        | LASS
        | LAM_SUP
        | FRED;
}

/// IA32_EFER bits (SDM Vol. 4, Table 2-2; SVME from the AMD APM).
pub mod efer {
    /// SYSCALL/SYSRET enable.
    pub const SCE: u64 = 1 << 0;
    /// IA-32e (long) mode enable.
    pub const LME: u64 = 1 << 8;
    /// IA-32e mode active (read-only: LME and CR0.PG together).
    pub const LMA: u64 = 1 << 10;
    /// Execute-disable bit enable.
    pub const NXE: u64 = 1 << 11;
    /// AMD's secure virtual machine enable.
    pub const SVME: u64 = 1 << 12;
}

/// RFLAGS bits (SDM Vol. 1, 3.4.3).
pub mod rflags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Parity: the low byte of the result has an even number of 1 bits.
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry: a carry or borrow out of bit 3.
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign: the result's most significant bit.
    pub const SF: u64 = 1 << 7;
    /// Overflow: the signed result does not fit.
    pub const OF: u64 = 1 << 11;
    /// The six status flags arithmetic sets (SDM Vol. 1, 3.4.3.1).
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
    /// Trap (single-step).
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction: string instructions count down.
    pub const DF: u64 = 1 << 10;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check (and SMAP override).
    pub const AC: u64 = 1 << 18;
}
