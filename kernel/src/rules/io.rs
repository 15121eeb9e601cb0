//! Port I/O instructions as data, and the address arithmetic of string I/O
//! (INS/OUTS): which linear address each element uses, how RSI/RDI/RCX
//! advance, and how an element that straddles two pages is split.
//!
//! Everything is vendor-neutral except [`io_from_vmx`], the one decoder of
//! VMX's exit qualification and instruction information into these types.
//! Segmentation follows SDM Vol. 3A, 3.4.5.1 (types), 6.3 (limits) and 6.4
//! (type checks); 64-bit mode follows 3.4.2.1 (bases ignored) and Vol. 1,
//! 3.3.7.1 (canonical addresses).

use super::Fault;

/// One IN, OUT, INS or OUTS, packed into one word: bits 2:0 the size minus
/// one (0, 1 or 3), bit 3 IN, bit 4 string, bit 5 REP, bits 31:16 the port.
///
/// The layout is tessera's own, chosen to equal VMX's I/O exit
/// qualification (SDM Vol. 3C, Table 29-5) so that the Intel backend decodes
/// it for free on the exit path; the AMD backend packs EXITINFO1 into it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IoAccess(u64);

impl IoAccess {
    const INPUT: u64 = 1 << 3;
    const STRING: u64 = 1 << 4;
    const REP: u64 = 1 << 5;

    /// An access of `size` bytes (1, 2 or 4) at `port`.
    pub const fn new(port: u16, size: u8, input: bool, string: bool, rep: bool) -> IoAccess {
        let size_bits = match size {
            1 => 0,
            2 => 1,
            _ => 3,
        };
        IoAccess(
            size_bits
                | if input { Self::INPUT } else { 0 }
                | if string { Self::STRING } else { 0 }
                | if rep { Self::REP } else { 0 }
                | (port as u64) << 16,
        )
    }

    /// The port.
    #[inline(always)]
    pub const fn port(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// Access width in bytes (1, 2 or 4).
    #[inline(always)]
    pub const fn size(self) -> u8 {
        (self.0 & 7) as u8 + 1
    }

    /// IN/INS (true) or OUT/OUTS.
    #[inline(always)]
    pub const fn input(self) -> bool {
        self.0 & Self::INPUT != 0
    }

    /// INS/OUTS.
    #[inline(always)]
    pub const fn string(self) -> bool {
        self.0 & Self::STRING != 0
    }

    /// A REP prefix.
    #[inline(always)]
    pub const fn rep(self) -> bool {
        self.0 & Self::REP != 0
    }
}

impl core::fmt::Debug for IoAccess {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoAccess")
            .field("port", &self.port())
            .field("size", &self.size())
            .field("input", &self.input())
            .field("string", &self.string())
            .field("rep", &self.rep())
            .finish()
    }
}

/// A segment register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRegister {
    /// ES.
    Es,
    /// CS.
    Cs,
    /// SS.
    Ss,
    /// DS.
    Ds,
    /// FS.
    Fs,
    /// GS.
    Gs,
}

/// The memory side of a string I/O instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringIo {
    /// Address size in bytes: 2, 4 or 8 (which of SI/ESI/RSI, DI/EDI/RDI and
    /// CX/ECX/RCX are used).
    pub address_size: u8,
    /// The segment of the memory operand: ES for INS (not overridable),
    /// DS or the override for OUTS.
    pub segment: SegmentRegister,
    /// The CPU did not report the segment of an OUTS (SVM without decode
    /// assists): `segment` is the default, DS, and the core reads the
    /// instruction's prefixes for an override ([`segment_override`]).
    pub segment_from_prefixes: bool,
}

/// The segment-override prefix of the instruction in `bytes`, if it has
/// one: the last of its legacy prefixes that is an override (SDM Vol. 2A,
/// 2.1.1), scanning until the opcode. REX prefixes (64-bit code) are
/// skipped as they come last before the opcode.
pub fn segment_override(bytes: &[u8], long_mode: bool) -> Option<SegmentRegister> {
    let mut found = None;
    for &byte in bytes.iter().take(15) {
        match byte {
            0x26 => found = Some(SegmentRegister::Es),
            0x2e => found = Some(SegmentRegister::Cs),
            0x36 => found = Some(SegmentRegister::Ss),
            0x3e => found = Some(SegmentRegister::Ds),
            0x64 => found = Some(SegmentRegister::Fs),
            0x65 => found = Some(SegmentRegister::Gs),
            0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 => {}
            0x40..=0x4f if long_mode => {}
            _ => break,
        }
    }
    found
}

/// Decodes the exit qualification of a VMX I/O exit (SDM Vol. 3C, Table
/// 29-5) alone: all that IN and OUT need, and all the exit path reads for
/// them.
#[inline]
pub const fn io_access_from_vmx(qualification: u64) -> IoAccess {
    // Bits 2:0, 3, 4, 5 and 31:16 are the ones IoAccess keeps; bit 6
    // (immediate operand) and the rest are dropped.
    IoAccess(qualification & 0xffff_003f)
}

/// Decodes a VMX I/O exit: the exit qualification (SDM Vol. 3C, Table 29-5)
/// and, for INS/OUTS, the VM-exit instruction information (Table 29-8).
/// VMX-specific, but pure: the one place these bit layouts are known.
pub fn io_from_vmx(qualification: u64, instruction_info: u32) -> (IoAccess, StringIo) {
    let access = io_access_from_vmx(qualification);
    let address_size = match (instruction_info >> 7) & 7 {
        0 => 2,
        1 => 4,
        _ => 8,
    };
    // The segment field is undefined for INS, which always writes ES:DI.
    let segment = if access.input() {
        SegmentRegister::Es
    } else {
        match (instruction_info >> 15) & 7 {
            0 => SegmentRegister::Es,
            1 => SegmentRegister::Cs,
            2 => SegmentRegister::Ss,
            4 => SegmentRegister::Fs,
            5 => SegmentRegister::Gs,
            _ => SegmentRegister::Ds,
        }
    };
    (
        access,
        StringIo {
            address_size,
            segment,
            segment_from_prefixes: false,
        },
    )
}

/// The hidden part of a segment register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentState {
    /// The base address.
    pub base: u64,
    /// The limit in bytes (granularity already applied).
    pub limit: u32,
    /// Access rights in VMX layout: type 3:0, S 4, DPL 6:5, P 7, AVL 12,
    /// L 13, D/B 14, G 15, unusable 16.
    pub access_rights: u32,
}

const TYPE_CODE: u32 = 1 << 3;
/// Data: expand-down. (For code the same bit means conforming.)
const TYPE_EXPAND_DOWN: u32 = 1 << 2;
/// Data: writable; code: readable.
const TYPE_WRITABLE_OR_READABLE: u32 = 1 << 1;
const NOT_SYSTEM: u32 = 1 << 4;
const PRESENT: u32 = 1 << 7;
const BIG: u32 = 1 << 14;
const UNUSABLE: u32 = 1 << 16;

/// How the guest forms addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressingMode {
    /// Real-address (or virtual-8086) mode: base + offset, limit checked, no types.
    Real,
    /// Protected mode outside IA-32e mode.
    Protected,
    /// IA-32e mode with a 32- or 16-bit code segment.
    Compatibility,
    /// 64-bit mode.
    Long64,
}

/// One element of a string instruction's memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringElement {
    /// The segment register in use.
    pub register: SegmentRegister,
    /// The offset: RSI or RDI already cut to the address size.
    pub offset: u64,
    /// The element size in bytes.
    pub size: u8,
    /// INS writes memory; OUTS reads it.
    pub write: bool,
}

/// The fault of a segmentation check: #SS(0) through SS, #GP(0) otherwise
/// (SDM Vol. 3A, 6.3).
fn segment_fault(register: SegmentRegister) -> Fault {
    match register {
        SegmentRegister::Ss => Fault::StackSegment(0),
        _ => Fault::GP0,
    }
}

/// Whether `address` is canonical: bits 63 down to 47 (or 56 with 5-level
/// paging) all equal (SDM Vol. 1, 3.3.7.1).
pub const fn canonical(address: u64, la57: bool) -> bool {
    let shift = if la57 { 56 } else { 47 };
    let top = (address as i64) >> shift;
    top == 0 || top == -1
}

/// The linear address of `element`, or the fault its access raises.
/// `la57` is the guest's CR4.LA57 (57-bit canonical addresses in 64-bit mode).
pub fn linear_address(
    mode: AddressingMode,
    la57: bool,
    segment: &SegmentState,
    element: StringElement,
) -> Result<u64, Fault> {
    let size = element.size.max(1) as u64;
    let fault = segment_fault(element.register);
    if mode == AddressingMode::Long64 {
        // SDM Vol. 3A, 3.4.2.1: in 64-bit mode the CS, DS, ES and SS bases
        // are treated as 0 and no limits or types are checked; FS and GS
        // keep their bases.
        let base = match element.register {
            SegmentRegister::Fs | SegmentRegister::Gs => segment.base,
            _ => 0,
        };
        let first = base.wrapping_add(element.offset);
        let last = first.wrapping_add(size - 1);
        if !canonical(first, la57) || !canonical(last, la57) {
            return Err(fault);
        }
        return Ok(first);
    }
    let rights = segment.access_rights;
    if mode != AddressingMode::Real {
        // An unusable (null) segment cannot be used for memory (SDM Vol. 3A,
        // 3.4.2); nor can a system or not-present one be in a data register.
        if rights & UNUSABLE != 0 || rights & NOT_SYSTEM == 0 || rights & PRESENT == 0 {
            return Err(Fault::GP0);
        }
        // SDM Vol. 3A, 6.4: no writes to code or read-only data segments, no
        // reads from execute-only code segments.
        let code = rights & TYPE_CODE != 0;
        let flag = rights & TYPE_WRITABLE_OR_READABLE != 0;
        let allowed = if element.write {
            !code && flag
        } else {
            !code || flag
        };
        if !allowed {
            return Err(Fault::GP0);
        }
    }
    // SDM Vol. 3A, 6.3: every byte must lie within the limit; for an
    // expand-down data segment, above the limit and up to 0xFFFF (B = 0) or
    // 0xFFFF_FFFF (B = 1). Real mode checks the cached limit too.
    let first = element.offset;
    let last = first + size - 1;
    let limit = segment.limit as u64;
    let expand_down =
        mode != AddressingMode::Real && rights & (TYPE_CODE | TYPE_EXPAND_DOWN) == TYPE_EXPAND_DOWN;
    let inside = if expand_down {
        let upper = if rights & BIG != 0 {
            0xffff_ffff
        } else {
            0xffff
        };
        first > limit && last <= upper
    } else {
        last <= limit
    };
    if !inside {
        return Err(fault);
    }
    // Outside 64-bit mode linear addresses are 32 bits and wrap.
    Ok(segment.base.wrapping_add(first) & 0xffff_ffff)
}

/// The mask of the register part an address size uses.
pub const fn address_mask(address_size: u8) -> u64 {
    match address_size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// Writes `value` into the part of `register` the address size names: a
/// 16-bit write keeps bits 63:16, a 32-bit write zero-extends as every
/// 32-bit register write does in 64-bit mode (SDM Vol. 1, 3.4.1.1).
pub const fn write_register(register: u64, value: u64, address_size: u8) -> u64 {
    match address_size {
        2 => (register & !0xffff) | (value & 0xffff),
        4 => value & 0xffff_ffff,
        _ => value,
    }
}

/// RSI or RDI after one element of `size` bytes, forwards or (with
/// RFLAGS.DF) backwards, wrapping within the address size.
pub const fn advance(register: u64, size: u8, address_size: u8, backwards: bool) -> u64 {
    let offset = register & address_mask(address_size);
    let next = if backwards {
        offset.wrapping_sub(size as u64)
    } else {
        offset.wrapping_add(size as u64)
    };
    write_register(register, next, address_size)
}

/// The element count of a REP string instruction: CX, ECX or RCX.
pub const fn count(rcx: u64, address_size: u8) -> u64 {
    rcx & address_mask(address_size)
}

/// One part of an element that lies within a single 4-KiB page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The piece's first linear address.
    pub linear: u64,
    /// Its length in bytes.
    pub size: u64,
}

/// Splits the element at `linear` of `size` bytes (at most 4 KiB) at a 4-KiB
/// page boundary. Both pieces must translate before any byte moves: if the
/// second page is not present, the #PF reports CR2 = the second piece's
/// address, and neither memory nor the port sees a partial element.
/// Outside 64-bit mode the caller cuts the second address to 32 bits.
pub const fn page_pieces(linear: u64, size: u64) -> (Piece, Option<Piece>) {
    let room = 0x1000 - (linear & 0xfff);
    if size <= room {
        return (Piece { linear, size }, None);
    }
    (
        Piece { linear, size: room },
        Some(Piece {
            linear: linear.wrapping_add(room),
            size: size - room,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flat 4-GiB read/write data segment: type 3, S, P, D/B, G.
    const FLAT_DATA: SegmentState = SegmentState {
        base: 0,
        limit: 0xffff_ffff,
        access_rights: 0x3 | NOT_SYSTEM | PRESENT | BIG | (1 << 15),
    };

    fn element(register: SegmentRegister, offset: u64, size: u8, write: bool) -> StringElement {
        StringElement {
            register,
            offset,
            size,
            write,
        }
    }

    #[test]
    fn io_access_packs_and_unpacks() {
        for (port, size, input, string, rep) in [
            (0u16, 1u8, false, false, false),
            (0xffff, 4, true, true, true),
            (0x3f8, 2, true, false, true),
        ] {
            let access = IoAccess::new(port, size, input, string, rep);
            assert_eq!(
                (
                    access.port(),
                    access.size(),
                    access.input(),
                    access.string(),
                    access.rep()
                ),
                (port, size, input, string, rep)
            );
        }
        // Bit 6 (immediate operand) of the VMX qualification is not kept.
        assert_eq!(
            io_access_from_vmx((1 << 6) | (0x60 << 16)),
            IoAccess::new(0x60, 1, false, false, false)
        );
    }

    #[test]
    fn vmx_qualification_and_instruction_information() {
        // Table 29-5: REP INSW from port 0x1f0 (size-1 = 1, IN, string, REP).
        let q = 1 | (1 << 3) | (1 << 4) | (1 << 5) | (0x1f0 << 16);
        // Table 29-8: 32-bit addresses; the segment field says GS but INS
        // always uses ES.
        let (access, string) = io_from_vmx(q, (1 << 7) | (5 << 15));
        assert_eq!(access, IoAccess::new(0x1f0, 2, true, true, true));
        assert_eq!(string.address_size, 4);
        assert_eq!(string.segment, SegmentRegister::Es);
        // OUTSD with an FS override, 64-bit addresses.
        let (access, string) = io_from_vmx(3 | (1 << 4) | (0x80 << 16), (2 << 7) | (4 << 15));
        assert_eq!(
            (access.size(), access.input(), access.rep()),
            (4, false, false)
        );
        assert_eq!(access.port(), 0x80);
        assert_eq!(
            (string.address_size, string.segment),
            (8, SegmentRegister::Fs)
        );
        let (_, string) = io_from_vmx(1 << 4, 3 << 15);
        assert_eq!(
            (string.address_size, string.segment),
            (2, SegmentRegister::Ds)
        );
    }

    #[test]
    fn long64_ignores_ds_es_bases_but_not_fs_gs() {
        // SDM Vol. 3A, 3.4.2.1.
        let based = SegmentState {
            base: 0x1000_0000,
            ..FLAT_DATA
        };
        let mode = AddressingMode::Long64;
        assert_eq!(
            linear_address(
                mode,
                false,
                &based,
                element(SegmentRegister::Es, 0x10, 1, true)
            ),
            Ok(0x10)
        );
        assert_eq!(
            linear_address(
                mode,
                false,
                &based,
                element(SegmentRegister::Gs, 0x10, 1, false)
            ),
            Ok(0x1000_0010)
        );
    }

    #[test]
    fn long64_non_canonical_is_gp_or_ss() {
        // SDM Vol. 1, 3.3.7.1; #SS(0) when the reference is through SS.
        let mode = AddressingMode::Long64;
        let hole = 0x0000_8000_0000_0000;
        assert_eq!(
            linear_address(
                mode,
                false,
                &FLAT_DATA,
                element(SegmentRegister::Ds, hole, 1, false)
            ),
            Err(Fault::GP0)
        );
        assert_eq!(
            linear_address(
                mode,
                false,
                &FLAT_DATA,
                element(SegmentRegister::Ss, hole, 1, false)
            ),
            Err(Fault::StackSegment(0))
        );
        assert_eq!(
            linear_address(
                mode,
                false,
                &FLAT_DATA,
                element(SegmentRegister::Ds, hole - 2, 4, false)
            ),
            Err(Fault::GP0),
            "the last byte is non-canonical"
        );
        assert_eq!(
            linear_address(
                mode,
                true,
                &FLAT_DATA,
                element(SegmentRegister::Ds, hole, 1, false)
            ),
            Ok(hole),
            "canonical with 5-level paging"
        );
    }

    #[test]
    fn protected_mode_applies_base_and_expand_up_limit() {
        // SDM Vol. 3A, 6.3.
        let small = SegmentState {
            base: 0x10_0000,
            limit: 0xfff,
            access_rights: 0x3 | NOT_SYSTEM | PRESENT | BIG,
        };
        let mode = AddressingMode::Protected;
        assert_eq!(
            linear_address(
                mode,
                false,
                &small,
                element(SegmentRegister::Es, 0xffc, 4, true)
            ),
            Ok(0x10_0ffc)
        );
        assert_eq!(
            linear_address(
                mode,
                false,
                &small,
                element(SegmentRegister::Es, 0xffd, 4, true)
            ),
            Err(Fault::GP0),
            "last byte beyond the limit"
        );
        assert_eq!(
            linear_address(
                mode,
                false,
                &small,
                element(SegmentRegister::Ss, 0x1000, 1, false)
            ),
            Err(Fault::StackSegment(0))
        );
    }

    #[test]
    fn expand_down_segments_allow_only_offsets_above_the_limit() {
        // SDM Vol. 3A, 3.4.5.1 and 6.3: type 7, read/write expand-down.
        let mut down = SegmentState {
            base: 0,
            limit: 0x0fff,
            access_rights: 0x7 | NOT_SYSTEM | PRESENT,
        };
        let mode = AddressingMode::Compatibility;
        let at = |d: &SegmentState, offset, size| {
            linear_address(
                mode,
                false,
                d,
                element(SegmentRegister::Ds, offset, size, true),
            )
        };
        assert_eq!(at(&down, 0x0fff, 1), Err(Fault::GP0));
        assert_eq!(at(&down, 0x1000, 2), Ok(0x1000));
        assert_eq!(at(&down, 0xfffe, 2), Ok(0xfffe));
        assert_eq!(
            at(&down, 0xffff, 2),
            Err(Fault::GP0),
            "B = 0: top is 0xFFFF"
        );
        down.access_rights |= BIG;
        assert_eq!(at(&down, 0xffff, 2), Ok(0xffff));
    }

    #[test]
    fn type_checks() {
        // SDM Vol. 3A, 6.4: INS needs a writable data segment, OUTS a
        // readable one.
        let read_only = SegmentState {
            access_rights: 0x1 | NOT_SYSTEM | PRESENT | BIG,
            ..FLAT_DATA
        };
        let readable_code = SegmentState {
            access_rights: 0xb | NOT_SYSTEM | PRESENT | BIG,
            ..FLAT_DATA
        };
        let execute_only = SegmentState {
            access_rights: 0x9 | NOT_SYSTEM | PRESENT | BIG,
            ..FLAT_DATA
        };
        let mode = AddressingMode::Protected;
        let go =
            |s: &SegmentState, r, write| linear_address(mode, false, s, element(r, 0, 1, write));
        assert_eq!(go(&read_only, SegmentRegister::Es, true), Err(Fault::GP0));
        assert_eq!(go(&read_only, SegmentRegister::Ds, false), Ok(0));
        assert_eq!(go(&readable_code, SegmentRegister::Cs, false), Ok(0));
        assert_eq!(
            go(&readable_code, SegmentRegister::Es, true),
            Err(Fault::GP0)
        );
        assert_eq!(
            go(&execute_only, SegmentRegister::Cs, false),
            Err(Fault::GP0)
        );
    }

    #[test]
    fn unusable_segment_is_gp() {
        let null = SegmentState {
            access_rights: UNUSABLE,
            ..FLAT_DATA
        };
        let got = linear_address(
            AddressingMode::Protected,
            false,
            &null,
            element(SegmentRegister::Ds, 0, 1, false),
        );
        assert_eq!(got, Err(Fault::GP0));
        let mode = AddressingMode::Long64;
        assert_eq!(
            linear_address(
                mode,
                false,
                &null,
                element(SegmentRegister::Ds, 0x20, 1, false)
            ),
            Ok(0x20),
            "64-bit mode does not use DS at all"
        );
    }

    #[test]
    fn real_mode_is_base_plus_offset_within_the_limit() {
        let real = SegmentState {
            base: 0xb800 << 4,
            limit: 0xffff,
            access_rights: 0x93,
        };
        let mode = AddressingMode::Real;
        assert_eq!(
            linear_address(
                mode,
                false,
                &real,
                element(SegmentRegister::Es, 0x10, 2, true)
            ),
            Ok(0xb8010)
        );
        assert_eq!(
            linear_address(
                mode,
                false,
                &real,
                element(SegmentRegister::Es, 0xffff, 2, true)
            ),
            Err(Fault::GP0),
            "a word at offset 0xFFFF crosses the limit"
        );
    }

    #[test]
    fn advancing_wraps_within_the_address_size() {
        assert_eq!(advance(0xdead_0000_ffff, 1, 2, false), 0xdead_0000_0000);
        assert_eq!(advance(0, 2, 2, true), 0xfffe);
        assert_eq!(
            advance(0xdead_ffff_fffc, 4, 4, false),
            0,
            "ESI wraps, zero-extends"
        );
        assert_eq!(advance(0x1000, 4, 8, true), 0xffc);
        assert_eq!(advance(u64::MAX, 1, 8, false), 0);
        assert_eq!(count(0x1_0000_0005, 4), 5);
        assert_eq!(count(0x1_0005, 2), 5);
        assert_eq!(write_register(0x1234_5678, 0, 2), 0x1234_0000);
    }

    #[test]
    fn elements_crossing_a_page_split_in_two() {
        assert_eq!(
            page_pieces(0x1ffe, 2),
            (
                Piece {
                    linear: 0x1ffe,
                    size: 2
                },
                None
            )
        );
        let (first, second) = page_pieces(0x1ffe, 4);
        assert_eq!(
            first,
            Piece {
                linear: 0x1ffe,
                size: 2
            }
        );
        assert_eq!(
            second,
            Some(Piece {
                linear: 0x2000,
                size: 2
            }),
            "CR2 for a fault in the second page is 0x2000"
        );
    }

    #[test]
    fn segment_overrides_are_read_from_the_prefixes() {
        use super::{segment_override, SegmentRegister};
        // rep outsb: no override.
        assert_eq!(segment_override(&[0xf3, 0x6e], false), None);
        // fs rep outsb, and rep fs outsb.
        assert_eq!(
            segment_override(&[0x64, 0xf3, 0x6e], false),
            Some(SegmentRegister::Fs)
        );
        assert_eq!(
            segment_override(&[0xf3, 0x64, 0x6e], false),
            Some(SegmentRegister::Fs)
        );
        // The last override wins; REX is skipped in 64-bit code only.
        assert_eq!(
            segment_override(&[0x2e, 0x65, 0x48, 0x6f], true),
            Some(SegmentRegister::Gs)
        );
        assert_eq!(segment_override(&[0x48, 0x65, 0x6f], false), None);
        // Bytes after the opcode are not prefixes.
        assert_eq!(segment_override(&[0x6e, 0x64], false), None);
    }
}
