//! Typed VMCS fields (Intel SDM Vol. 3C, 26.11.2 and Vol. 3D, Appendix B).
//!
//! A field's encoding fixes its width and whether it is writable, so each
//! field is a constant of a type that carries both: a 16-bit field cannot be
//! written with a 64-bit value, and the read-only exit-information fields
//! have no `write` at all. Reads and writes act on the current VMCS; a
//! failure means tessera used a field this CPU does not have, which is a
//! hypervisor bug: it traps, and the crash report names the instruction. Host RSP has no constant:
//! only the entry stub writes it (`entry.rs`).

/// VMREAD of `field` from the current VMCS.
///
/// VMfailInvalid sets CF and VMfailValid sets ZF (SDM Vol. 3C, 32.2): both
/// mean tessera used a field this CPU does not have or has no current VMCS,
/// a hypervisor bug. The failure branch is a UD2, so the crash report names
/// the exact instruction, and the success path costs one taken-never jump —
/// this is on every exit path, where each instruction counts.
#[inline(always)]
fn vmread(field: u32) -> u64 {
    let value: u64;
    // SAFETY: VMREAD from the current VMCS has no memory effects visible to
    // Rust; a failure traps (UD2) instead of returning garbage.
    unsafe {
        core::arch::asm!(
            "vmread {value}, {field}",
            "ja 2f",
            "ud2",
            "2:",
            field = in(reg) field as u64,
            value = out(reg) value,
            options(nostack, nomem),
        );
    }
    value
}

/// VMWRITE of `value` to `field` of the current VMCS; a failure traps as
/// for [`vmread`].
#[inline(always)]
fn vmwrite(field: u32, value: u64) {
    // SAFETY: VMWRITE to the current VMCS has no memory effects visible to
    // Rust; a failure traps (UD2).
    unsafe {
        core::arch::asm!(
            "vmwrite {field}, {value}",
            "ja 2f",
            "ud2",
            "2:",
            field = in(reg) field as u64,
            value = in(reg) value,
            options(nostack, nomem),
        );
    }
}

macro_rules! field_type {
    ($name:ident, $value:ty, writable) => {
        field_type!($name, $value, read_only);
        impl $name {
            /// Writes the field of the current VMCS.
            #[inline]
            pub fn write(self, value: $value) {
                vmwrite(self.0, value as u64)
            }
        }
    };
    ($name:ident, $value:ty, read_only) => {
        /// A VMCS field encoding of this width and class.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub u32);
        impl $name {
            /// Reads the field of the current VMCS.
            #[inline]
            #[allow(dead_code)] // not every width is read back
            pub fn read(self) -> $value {
                vmread(self.0) as $value
            }
        }
    };
}

field_type!(Field16, u16, writable);
field_type!(Field32, u32, writable);
field_type!(Field64, u64, writable);
field_type!(FieldNatural, u64, writable);
field_type!(ReadOnly32, u32, read_only);
field_type!(ReadOnly64, u64, read_only);
field_type!(ReadOnlyNatural, u64, read_only);

/// VM-execution, exit and entry control fields.
pub mod control {
    use super::*;
    use x86::vmx::vmcs::control as c;

    /// Virtual-processor identifier.
    pub const VPID: Field16 = Field16(c::VPID);
    /// I/O bitmap A (ports 0x0000-0x7FFF).
    pub const IO_BITMAP_A: Field64 = Field64(c::IO_BITMAP_A_ADDR_FULL);
    /// I/O bitmap B (ports 0x8000-0xFFFF).
    pub const IO_BITMAP_B: Field64 = Field64(c::IO_BITMAP_B_ADDR_FULL);
    /// MSR bitmaps.
    pub const MSR_BITMAPS: Field64 = Field64(c::MSR_BITMAPS_ADDR_FULL);
    /// TSC offset.
    pub const TSC_OFFSET: Field64 = Field64(c::TSC_OFFSET_FULL);
    /// EPT pointer.
    pub const EPT_POINTER: Field64 = Field64(c::EPTP_FULL);
    /// Pin-based controls.
    pub const PIN_BASED: Field32 = Field32(c::PINBASED_EXEC_CONTROLS);
    /// Primary processor-based controls.
    pub const PRIMARY_PROCESSOR_BASED: Field32 = Field32(c::PRIMARY_PROCBASED_EXEC_CONTROLS);
    /// Secondary processor-based controls.
    pub const SECONDARY_PROCESSOR_BASED: Field32 = Field32(c::SECONDARY_PROCBASED_EXEC_CONTROLS);
    /// Exception bitmap.
    pub const EXCEPTION_BITMAP: Field32 = Field32(c::EXCEPTION_BITMAP);
    /// CR3-target count.
    pub const CR3_TARGET_COUNT: Field32 = Field32(c::CR3_TARGET_COUNT);
    /// VM-exit controls.
    pub const EXIT: Field32 = Field32(c::VMEXIT_CONTROLS);
    /// VM-exit MSR-store count.
    pub const EXIT_MSR_STORE_COUNT: Field32 = Field32(c::VMEXIT_MSR_STORE_COUNT);
    /// VM-exit MSR-load count.
    pub const EXIT_MSR_LOAD_COUNT: Field32 = Field32(c::VMEXIT_MSR_LOAD_COUNT);
    /// VM-entry controls.
    pub const ENTRY: Field32 = Field32(c::VMENTRY_CONTROLS);
    /// VM-entry MSR-load count.
    pub const ENTRY_MSR_LOAD_COUNT: Field32 = Field32(c::VMENTRY_MSR_LOAD_COUNT);
    /// VM-entry interruption-information (event injection).
    pub const ENTRY_INTERRUPTION_INFO: Field32 = Field32(c::VMENTRY_INTERRUPTION_INFO_FIELD);
    /// VM-entry exception error code.
    pub const ENTRY_EXCEPTION_ERROR_CODE: Field32 = Field32(c::VMENTRY_EXCEPTION_ERR_CODE);
    /// VM-entry instruction length (for software interrupts and exceptions).
    pub const ENTRY_INSTRUCTION_LENGTH: Field32 = Field32(c::VMENTRY_INSTRUCTION_LEN);
    /// CR0 guest/host mask.
    pub const CR0_MASK: FieldNatural = FieldNatural(c::CR0_GUEST_HOST_MASK);
    /// CR4 guest/host mask.
    pub const CR4_MASK: FieldNatural = FieldNatural(c::CR4_GUEST_HOST_MASK);
    /// CR0 read shadow.
    pub const CR0_SHADOW: FieldNatural = FieldNatural(c::CR0_READ_SHADOW);
    /// CR4 read shadow.
    pub const CR4_SHADOW: FieldNatural = FieldNatural(c::CR4_READ_SHADOW);
}

/// Read-only VM-exit information fields.
pub mod exit {
    use super::*;
    use x86::vmx::vmcs::ro as r;

    /// VM-instruction error.
    pub const INSTRUCTION_ERROR: ReadOnly32 = ReadOnly32(r::VM_INSTRUCTION_ERROR);
    /// Exit reason.
    pub const REASON: ReadOnly32 = ReadOnly32(r::EXIT_REASON);
    /// VM-exit interruption information.
    pub const INTERRUPTION_INFO: ReadOnly32 = ReadOnly32(r::VMEXIT_INTERRUPTION_INFO);
    /// IDT-vectoring information: the event whose delivery the exit
    /// interrupted.
    pub const IDT_VECTORING_INFO: ReadOnly32 = ReadOnly32(r::IDT_VECTORING_INFO);
    /// IDT-vectoring error code.
    pub const IDT_VECTORING_ERROR_CODE: ReadOnly32 = ReadOnly32(r::IDT_VECTORING_ERR_CODE);
    /// VM-exit interruption error code.
    pub const INTERRUPTION_ERROR_CODE: ReadOnly32 = ReadOnly32(r::VMEXIT_INTERRUPTION_ERR_CODE);
    /// VM-exit instruction length.
    pub const INSTRUCTION_LENGTH: ReadOnly32 = ReadOnly32(r::VMEXIT_INSTRUCTION_LEN);
    /// VM-exit instruction information.
    pub const INSTRUCTION_INFO: ReadOnly32 = ReadOnly32(r::VMEXIT_INSTRUCTION_INFO);
    /// Exit qualification.
    pub const QUALIFICATION: ReadOnlyNatural = ReadOnlyNatural(r::EXIT_QUALIFICATION);
    /// Guest-physical address (EPT violations and misconfigurations).
    pub const GUEST_PHYSICAL_ADDRESS: ReadOnly64 = ReadOnly64(r::GUEST_PHYSICAL_ADDR_FULL);
    /// Guest linear address.
    pub const GUEST_LINEAR_ADDRESS: ReadOnlyNatural = ReadOnlyNatural(r::GUEST_LINEAR_ADDR);
}

/// Guest-state fields.
pub mod guest {
    use super::*;
    use x86::vmx::vmcs::guest as g;

    /// Selector, base, limit and access-rights fields of one segment register.
    #[derive(Debug, Clone, Copy)]
    pub struct Segment {
        /// Selector.
        pub selector: Field16,
        /// Base.
        pub base: FieldNatural,
        /// Limit.
        pub limit: Field32,
        /// Access rights.
        pub access: Field32,
    }

    macro_rules! segment {
        ($name:ident, $selector:ident, $base:ident, $limit:ident, $access:ident) => {
            /// The segment register's fields.
            pub const $name: Segment = Segment {
                selector: Field16(g::$selector),
                base: FieldNatural(g::$base),
                limit: Field32(g::$limit),
                access: Field32(g::$access),
            };
        };
    }
    segment!(ES, ES_SELECTOR, ES_BASE, ES_LIMIT, ES_ACCESS_RIGHTS);
    segment!(CS, CS_SELECTOR, CS_BASE, CS_LIMIT, CS_ACCESS_RIGHTS);
    segment!(SS, SS_SELECTOR, SS_BASE, SS_LIMIT, SS_ACCESS_RIGHTS);
    segment!(DS, DS_SELECTOR, DS_BASE, DS_LIMIT, DS_ACCESS_RIGHTS);
    segment!(FS, FS_SELECTOR, FS_BASE, FS_LIMIT, FS_ACCESS_RIGHTS);
    segment!(GS, GS_SELECTOR, GS_BASE, GS_LIMIT, GS_ACCESS_RIGHTS);
    segment!(
        LDTR,
        LDTR_SELECTOR,
        LDTR_BASE,
        LDTR_LIMIT,
        LDTR_ACCESS_RIGHTS
    );
    segment!(TR, TR_SELECTOR, TR_BASE, TR_LIMIT, TR_ACCESS_RIGHTS);

    /// The four PAE page-directory-pointer-table entries, which VM entry
    /// loads when the guest uses PAE paging (SDM Vol. 3C, 28.3.2.4).
    pub const PDPTES: [Field64; 4] = [
        Field64(g::PDPTE0_FULL),
        Field64(g::PDPTE1_FULL),
        Field64(g::PDPTE2_FULL),
        Field64(g::PDPTE3_FULL),
    ];
    /// GDTR base.
    pub const GDTR_BASE: FieldNatural = FieldNatural(g::GDTR_BASE);
    /// GDTR limit.
    pub const GDTR_LIMIT: Field32 = Field32(g::GDTR_LIMIT);
    /// IDTR base.
    pub const IDTR_BASE: FieldNatural = FieldNatural(g::IDTR_BASE);
    /// IDTR limit.
    pub const IDTR_LIMIT: Field32 = Field32(g::IDTR_LIMIT);
    /// CR0.
    pub const CR0: FieldNatural = FieldNatural(g::CR0);
    /// CR3.
    pub const CR3: FieldNatural = FieldNatural(g::CR3);
    /// CR4.
    pub const CR4: FieldNatural = FieldNatural(g::CR4);
    /// DR7.
    pub const DR7: FieldNatural = FieldNatural(g::DR7);
    /// RSP.
    pub const RSP: FieldNatural = FieldNatural(g::RSP);
    /// RIP.
    pub const RIP: FieldNatural = FieldNatural(g::RIP);
    /// RFLAGS.
    pub const RFLAGS: FieldNatural = FieldNatural(g::RFLAGS);
    /// Pending debug exceptions.
    pub const PENDING_DEBUG_EXCEPTIONS: FieldNatural = FieldNatural(g::PENDING_DBG_EXCEPTIONS);
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: FieldNatural = FieldNatural(g::IA32_SYSENTER_ESP);
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: FieldNatural = FieldNatural(g::IA32_SYSENTER_EIP);
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: Field32 = Field32(g::IA32_SYSENTER_CS);
    /// VMCS link pointer (must be all ones: no shadow VMCS).
    pub const LINK_POINTER: Field64 = Field64(g::LINK_PTR_FULL);
    /// IA32_DEBUGCTL.
    pub const DEBUGCTL: Field64 = Field64(g::IA32_DEBUGCTL_FULL);
    /// IA32_PAT.
    pub const PAT: Field64 = Field64(g::IA32_PAT_FULL);
    /// IA32_EFER.
    pub const EFER: Field64 = Field64(g::IA32_EFER_FULL);
    /// Interruptibility state.
    pub const INTERRUPTIBILITY: Field32 = Field32(g::INTERRUPTIBILITY_STATE);
    /// Activity state.
    pub const ACTIVITY: Field32 = Field32(g::ACTIVITY_STATE);
    /// VMX-preemption timer value.
    pub const PREEMPTION_TIMER: Field32 = Field32(g::VMX_PREEMPTION_TIMER_VALUE);
}

/// Host-state fields.
pub mod host {
    use super::*;
    use x86::vmx::vmcs::host as h;

    /// ES selector.
    pub const ES: Field16 = Field16(h::ES_SELECTOR);
    /// CS selector.
    pub const CS: Field16 = Field16(h::CS_SELECTOR);
    /// SS selector.
    pub const SS: Field16 = Field16(h::SS_SELECTOR);
    /// DS selector.
    pub const DS: Field16 = Field16(h::DS_SELECTOR);
    /// FS selector.
    pub const FS: Field16 = Field16(h::FS_SELECTOR);
    /// GS selector.
    pub const GS: Field16 = Field16(h::GS_SELECTOR);
    /// TR selector.
    pub const TR: Field16 = Field16(h::TR_SELECTOR);
    /// CR0.
    pub const CR0: FieldNatural = FieldNatural(h::CR0);
    /// CR3.
    pub const CR3: FieldNatural = FieldNatural(h::CR3);
    /// CR4.
    pub const CR4: FieldNatural = FieldNatural(h::CR4);
    /// FS base.
    pub const FS_BASE: FieldNatural = FieldNatural(h::FS_BASE);
    /// GS base.
    pub const GS_BASE: FieldNatural = FieldNatural(h::GS_BASE);
    /// TR base.
    pub const TR_BASE: FieldNatural = FieldNatural(h::TR_BASE);
    /// GDTR base.
    pub const GDTR_BASE: FieldNatural = FieldNatural(h::GDTR_BASE);
    /// IDTR base.
    pub const IDTR_BASE: FieldNatural = FieldNatural(h::IDTR_BASE);
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: FieldNatural = FieldNatural(h::IA32_SYSENTER_ESP);
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: FieldNatural = FieldNatural(h::IA32_SYSENTER_EIP);
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: Field32 = Field32(h::IA32_SYSENTER_CS);
    /// RIP: the exit stub.
    pub const RIP: FieldNatural = FieldNatural(h::RIP);
    /// IA32_PAT.
    pub const PAT: Field64 = Field64(h::IA32_PAT_FULL);
    /// IA32_EFER.
    pub const EFER: Field64 = Field64(h::IA32_EFER_FULL);
}
