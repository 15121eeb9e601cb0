//! SVM exit codes (APM Vol. 2, Appendix C "SVM Intercept Exit Codes"), their
//! decoding into the core's [`Exit`], and per-VM counts.
//!
//! Pure: the decoder takes EXITCODE, EXITINFO1 and EXITINFO2 as numbers, so
//! host tests pin every layout it relies on — IOIO's EXITINFO1 (15.10.2),
//! #NPF's error code (15.25.6), MOV-CR decode assists (15.33.1).

use crate::rules::io::{IoAccess, SegmentRegister, StringIo};
use crate::vmm::exit::{ControlRegisterAccess, Exit, MemoryAccess};

/// Exit codes, by name: the one place their numbers are written.
pub mod code {
    /// MOV to CR0 (CR n is `CR0_WRITE + n`).
    pub const CR0_WRITE: u64 = 0x10;
    /// MOV to CR4.
    pub const CR4_WRITE: u64 = 0x14;
    /// MOV to CR8.
    pub const CR8_WRITE: u64 = 0x18;
    /// Exception vector 0 (vector n is `EXCEPTION_BASE + n`).
    pub const EXCEPTION_BASE: u64 = 0x40;
    /// A physical maskable interrupt.
    pub const INTR: u64 = 0x60;
    /// A physical NMI.
    pub const NMI: u64 = 0x61;
    /// An SMI.
    pub const SMI: u64 = 0x62;
    /// INIT.
    pub const INIT: u64 = 0x63;
    /// The guest became able to take the virtual interrupt (V_IRQ).
    pub const VINTR: u64 = 0x64;
    /// RDPMC.
    pub const RDPMC: u64 = 0x6f;
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// IRET.
    pub const IRET: u64 = 0x74;
    /// INVD.
    pub const INVD: u64 = 0x76;
    /// PAUSE.
    pub const PAUSE: u64 = 0x77;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// INVLPGA.
    pub const INVLPGA: u64 = 0x7a;
    /// IN, OUT, INS, OUTS.
    pub const IOIO: u64 = 0x7b;
    /// RDMSR (EXITINFO1 = 0) or WRMSR (1).
    pub const MSR: u64 = 0x7c;
    /// A task switch.
    pub const TASK_SWITCH: u64 = 0x7d;
    /// FERR_FREEZE.
    pub const FERR_FREEZE: u64 = 0x7e;
    /// Shutdown: a triple fault.
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMRUN.
    pub const VMRUN: u64 = 0x80;
    /// VMMCALL.
    pub const VMMCALL: u64 = 0x81;
    /// VMLOAD.
    pub const VMLOAD: u64 = 0x82;
    /// VMSAVE.
    pub const VMSAVE: u64 = 0x83;
    /// STGI.
    pub const STGI: u64 = 0x84;
    /// CLGI.
    pub const CLGI: u64 = 0x85;
    /// SKINIT.
    pub const SKINIT: u64 = 0x86;
    /// RDTSCP.
    pub const RDTSCP: u64 = 0x87;
    /// ICEBP.
    pub const ICEBP: u64 = 0x88;
    /// WBINVD.
    pub const WBINVD: u64 = 0x89;
    /// MONITOR.
    pub const MONITOR: u64 = 0x8a;
    /// MWAIT.
    pub const MWAIT: u64 = 0x8b;
    /// MWAIT when armed.
    pub const MWAIT_ARMED: u64 = 0x8c;
    /// XSETBV.
    pub const XSETBV: u64 = 0x8d;
    /// RDPRU.
    pub const RDPRU: u64 = 0x8e;
    /// A nested page fault.
    pub const NPF: u64 = 0x400;
    /// VMRUN found the guest state or the controls invalid (-1).
    pub const INVALID: u64 = u64::MAX;
}

/// What the exit path knows of the CPU when it decodes: the two SVM
/// features that change what the VMCB holds at an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeFeatures {
    /// Decode assists: MOV-CR intercepts name the register, IOIO names
    /// the segment of OUTS.
    pub decode_assists: bool,
}

/// Decodes an exit. Every code tessera does not intercept on purpose is
/// [`Exit::Unsupported`], which the core answers with #UD.
#[inline(always)]
pub fn decode(exit_code: u64, info1: u64, info2: u64, features: DecodeFeatures) -> Exit {
    match exit_code {
        code::IOIO => io(info1, features),
        code::CPUID => Exit::Cpuid,
        code::MSR => {
            if info1 & 1 != 0 {
                Exit::Wrmsr
            } else {
                Exit::Rdmsr
            }
        }
        code::NPF => nested_page_fault(info1, info2),
        code::INTR => Exit::ExternalInterrupt,
        code::VINTR => Exit::InterruptWindow,
        code::IRET => Exit::NmiWindow,
        code::HLT => Exit::Hlt,
        code::VMMCALL => Exit::Hypercall,
        code::XSETBV => Exit::Xsetbv,
        code::CR0_WRITE..=0x1f => Exit::ControlRegister(control_register_write(
            (exit_code - code::CR0_WRITE) as u8,
            info1,
            features,
        )),
        // #DB (1) and #AC (17) carry their error code, if any, in EXITINFO1
        // (15.12).
        0x40..=0x5f => {
            let vector = (exit_code - code::EXCEPTION_BASE) as u8;
            Exit::Exception {
                vector,
                error_code: has_error_code(vector).then_some(info1 as u32),
            }
        }
        code::NMI => Exit::Nmi,
        code::INIT => Exit::Init,
        code::SHUTDOWN => Exit::TripleFault,
        code::INVD | code::WBINVD => Exit::CacheInvalidation,
        code::RDPMC => Exit::Rdpmc,
        code::VMRUN
        | code::VMLOAD
        | code::VMSAVE
        | code::STGI
        | code::CLGI
        | code::SKINIT
        | code::INVLPGA => Exit::VirtualizationInstruction,
        code::INVALID => Exit::InvalidGuestState { detail: 0 },
        other => Exit::Unsupported {
            reason: other.min(u32::MAX as u64) as u32,
        },
    }
}

/// Whether exception `vector` pushes an error code (SDM Vol. 3A, Table 7-1;
/// APM Vol. 2, Table 8-1).
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// IOIO's EXITINFO1 (APM Vol. 2, 15.10.2, Figure 15-2): TYPE 0 (1 = IN),
/// STR 2, REP 3, SZ8/SZ16/SZ32 6:4, A16/A32/A64 9:7, SEG 12:10 (with
/// decode assists), the port 31:16. The next RIP is in EXITINFO2, which the
/// vCPU keeps for skipping.
fn io(info1: u64, features: DecodeFeatures) -> Exit {
    let port = (info1 >> 16) as u16;
    let input = info1 & 1 != 0;
    let string = info1 & (1 << 2) != 0;
    let rep = info1 & (1 << 3) != 0;
    let size = match (info1 >> 4) & 7 {
        0b001 => 1,
        0b010 => 2,
        _ => 4,
    };
    let access = IoAccess::new(port, size, input, string, rep);
    if !string {
        return Exit::Io(access);
    }
    let address_size = match (info1 >> 7) & 7 {
        0b001 => 2,
        0b010 => 4,
        _ => 8,
    };
    // INS always writes through ES (not overridable). OUTS reads through DS
    // or its override, which only decode assists report; without them (QEMU's
    // TCG has none) the core reads the override from the prefixes.
    let segment = if input {
        SegmentRegister::Es
    } else if features.decode_assists {
        match (info1 >> 10) & 7 {
            0 => SegmentRegister::Es,
            1 => SegmentRegister::Cs,
            2 => SegmentRegister::Ss,
            4 => SegmentRegister::Fs,
            5 => SegmentRegister::Gs,
            _ => SegmentRegister::Ds,
        }
    } else {
        SegmentRegister::Ds
    };
    Exit::StringIo(
        access,
        StringIo {
            address_size,
            segment,
            segment_from_prefixes: !input && !features.decode_assists,
        },
    )
}

/// #NPF (APM Vol. 2, 15.25.6): EXITINFO1 is a page-fault error code — P 0,
/// R/W 1, U/S 2, RSV 3, I/D 4 — and EXITINFO2 the guest-physical address.
/// A reserved bit set in a nested entry is tessera's bug, as an EPT
/// misconfiguration is.
fn nested_page_fault(info1: u64, address: u64) -> Exit {
    if info1 & (1 << 3) != 0 {
        return Exit::PageTableMisconfiguration { address };
    }
    let access = if info1 & (1 << 4) != 0 {
        MemoryAccess::Execute
    } else if info1 & (1 << 1) != 0 {
        MemoryAccess::Write
    } else {
        MemoryAccess::Read
    };
    Exit::UnmappedMemory { address, access }
}

/// A CR write intercept. With decode assists, a MOV names its source
/// register in EXITINFO1 (bit 63 valid, GPR 3:0; 15.33.1); otherwise — and
/// for CLTS and LMSW, which leave bit 63 clear — the core decodes the
/// instruction itself.
fn control_register_write(
    register: u8,
    info1: u64,
    features: DecodeFeatures,
) -> ControlRegisterAccess {
    if features.decode_assists && info1 & (1 << 63) != 0 {
        ControlRegisterAccess::Write {
            register,
            gpr: (info1 & 0xf) as u8,
        }
    } else {
        ControlRegisterAccess::Undecoded { register }
    }
}

/// Names for reports, in the words the VMX backend uses where the event is
/// the same, so that summaries read alike on both.
const NAMES: [(u64, &str); 39] = [
    (code::CR0_WRITE, "CR0 write"),
    (code::CR4_WRITE, "CR4 write"),
    (code::CR8_WRITE, "CR8 write"),
    (code::EXCEPTION_BASE + 1, "exception #DB"),
    (code::EXCEPTION_BASE + 17, "exception #AC"),
    (code::INTR, "external interrupt"),
    (code::NMI, "NMI"),
    (code::SMI, "SMI"),
    (code::INIT, "INIT signal"),
    (code::VINTR, "interrupt window"),
    (code::RDPMC, "RDPMC"),
    (code::CPUID, "CPUID"),
    (code::IRET, "IRET (NMI window)"),
    (code::INVD, "INVD"),
    (code::PAUSE, "PAUSE"),
    (code::HLT, "HLT"),
    (code::INVLPGA, "INVLPGA"),
    (code::IOIO, "I/O instruction"),
    (code::MSR, "RDMSR"),
    (MSR_WRITE, "WRMSR"),
    (code::TASK_SWITCH, "task switch"),
    (code::FERR_FREEZE, "FERR_FREEZE"),
    (code::SHUTDOWN, "shutdown (triple fault)"),
    (code::VMRUN, "VMRUN"),
    (code::VMMCALL, "VMMCALL"),
    (code::VMLOAD, "VMLOAD"),
    (code::VMSAVE, "VMSAVE"),
    (code::STGI, "STGI"),
    (code::CLGI, "CLGI"),
    (code::SKINIT, "SKINIT"),
    (code::RDTSCP, "RDTSCP"),
    (code::ICEBP, "ICEBP"),
    (code::WBINVD, "WBINVD"),
    (code::MONITOR, "MONITOR"),
    (code::MWAIT, "MWAIT"),
    (code::XSETBV, "XSETBV"),
    (code::RDPRU, "RDPRU"),
    (code::NPF, "nested page fault"),
    (code::INVALID, "VMRUN failure: invalid state"),
];

/// The counting slot of WRMSR: the one exit code tessera counts apart from
/// its EXITINFO1, so that summaries say RDMSR and WRMSR on both backends.
const MSR_WRITE: u64 = 0x4ff;

/// The name of an exit code (or of [`MSR_WRITE`]), for reports.
pub fn name(exit_code: u64) -> &'static str {
    NAMES
        .iter()
        .find(|(number, _)| *number == exit_code)
        .map_or("other", |(_, name)| name)
}

/// The slots of [`ExitCounts`]: the codes below 0xA0 count one each, then
/// #NPF, WRMSR, VMRUN failure and everything else.
const SLOTS: usize = 0xa4;
const NPF_SLOT: usize = 0xa0;
const WRMSR_SLOT: usize = 0xa1;
const INVALID_SLOT: usize = 0xa2;
const OTHER_SLOT: usize = 0xa3;

/// How often each exit code occurred in one VM.
#[derive(Clone)]
pub struct ExitCounts {
    counts: [u32; SLOTS],
    /// Exits in all: the 32-bit slots could wrap in a long run; the total
    /// does not.
    total: u64,
}

impl Default for ExitCounts {
    fn default() -> Self {
        ExitCounts {
            counts: [0; SLOTS],
            total: 0,
        }
    }
}

const fn slot(exit_code: u64, info1: u64) -> usize {
    match exit_code {
        code::MSR if info1 & 1 != 0 => WRMSR_SLOT,
        0..=0x9f => exit_code as usize,
        code::NPF => NPF_SLOT,
        code::INVALID => INVALID_SLOT,
        _ => OTHER_SLOT,
    }
}

const fn code_of_slot(slot: usize) -> u64 {
    match slot {
        NPF_SLOT => code::NPF,
        WRMSR_SLOT => MSR_WRITE,
        INVALID_SLOT => code::INVALID,
        OTHER_SLOT => 0xfff,
        _ => slot as u64,
    }
}

impl ExitCounts {
    /// Counts one exit.
    #[inline(always)]
    pub fn record(&mut self, exit_code: u64, info1: u64) {
        let slot = &mut self.counts[slot(exit_code, info1)];
        *slot = slot.wrapping_add(1);
        self.total += 1;
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Non-zero counts by name, most frequent first.
    pub fn ranked(&self) -> alloc::vec::Vec<(&'static str, u64)> {
        let mut pairs: alloc::vec::Vec<(&'static str, u64)> = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(slot, &count)| (name(code_of_slot(slot)), u64::from(count)))
            .collect();
        pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: DecodeFeatures = DecodeFeatures {
        decode_assists: false,
    };
    const ASSISTED: DecodeFeatures = DecodeFeatures {
        decode_assists: true,
    };

    #[test]
    fn out_and_in_decode_port_size_and_direction() {
        // OUT DX, AL to 0x3f8: TYPE 0, SZ8 (bit 4), port in 31:16.
        let out = (0x3f8 << 16) | (1 << 4);
        assert_eq!(
            decode(code::IOIO, out, 0, PLAIN),
            Exit::Io(IoAccess::new(0x3f8, 1, false, false, false))
        );
        // IN EAX, 0x71: TYPE 1, SZ32 (bit 6).
        let input = (0x71 << 16) | (1 << 6) | 1;
        assert_eq!(
            decode(code::IOIO, input, 0, PLAIN),
            Exit::Io(IoAccess::new(0x71, 4, true, false, false))
        );
        // IN AX, DX: SZ16 (bit 5).
        let word = (0xcfc << 16) | (1 << 5) | 1;
        assert_eq!(
            decode(code::IOIO, word, 0, PLAIN),
            Exit::Io(IoAccess::new(0xcfc, 2, true, false, false))
        );
    }

    #[test]
    fn string_io_gives_address_size_and_segment() {
        // REP OUTSB with a 64-bit address and an FS override (SEG = 4).
        let outs = (0x3f8 << 16) | (4 << 10) | (1 << 9) | (1 << 4) | (1 << 3) | (1 << 2);
        let Exit::StringIo(access, string) = decode(code::IOIO, outs, 0, ASSISTED) else {
            panic!("not string I/O");
        };
        assert_eq!(access, IoAccess::new(0x3f8, 1, false, true, true));
        assert_eq!(string.address_size, 8);
        assert_eq!(string.segment, SegmentRegister::Fs);
        assert!(!string.segment_from_prefixes);
        // Without decode assists the SEG field is not trusted: the core
        // reads the prefixes.
        let Exit::StringIo(_, string) = decode(code::IOIO, outs, 0, PLAIN) else {
            panic!("not string I/O");
        };
        assert_eq!(string.segment, SegmentRegister::Ds);
        assert!(string.segment_from_prefixes);
        // INSW with a 16-bit address: ES whatever SEG says.
        let ins = (0x60 << 16) | (3 << 10) | (1 << 7) | (1 << 5) | (1 << 2) | 1;
        let Exit::StringIo(access, string) = decode(code::IOIO, ins, 0, ASSISTED) else {
            panic!("not string I/O");
        };
        assert_eq!(access, IoAccess::new(0x60, 2, true, true, false));
        assert_eq!(string.address_size, 2);
        assert_eq!(string.segment, SegmentRegister::Es);
        assert!(!string.segment_from_prefixes);
        // A32.
        let ins32 = (0x60 << 16) | (1 << 8) | (1 << 4) | (1 << 2) | 1;
        let Exit::StringIo(_, string) = decode(code::IOIO, ins32, 0, PLAIN) else {
            panic!("not string I/O");
        };
        assert_eq!(string.address_size, 4);
    }

    #[test]
    fn nested_page_faults_name_the_access() {
        let gpa = 0xfee0_0030;
        assert_eq!(
            decode(code::NPF, 1 << 32 | 0b100, gpa, PLAIN),
            Exit::UnmappedMemory {
                address: gpa,
                access: MemoryAccess::Read
            }
        );
        assert_eq!(
            decode(code::NPF, 1 << 32 | 0b110, gpa, PLAIN),
            Exit::UnmappedMemory {
                address: gpa,
                access: MemoryAccess::Write
            }
        );
        assert_eq!(
            decode(code::NPF, 1 << 32 | 0b10100, gpa, PLAIN),
            Exit::UnmappedMemory {
                address: gpa,
                access: MemoryAccess::Execute
            }
        );
        assert_eq!(
            decode(code::NPF, 0b1001, gpa, PLAIN),
            Exit::PageTableMisconfiguration { address: gpa }
        );
    }

    #[test]
    fn msr_exits_split_on_exitinfo1() {
        assert_eq!(decode(code::MSR, 0, 0, PLAIN), Exit::Rdmsr);
        assert_eq!(decode(code::MSR, 1, 0, PLAIN), Exit::Wrmsr);
    }

    #[test]
    fn control_register_writes_use_decode_assists_when_present() {
        // MOV CR4, R9 with decode assists.
        assert_eq!(
            decode(code::CR4_WRITE, (1 << 63) | 9, 0, ASSISTED),
            Exit::ControlRegister(ControlRegisterAccess::Write {
                register: 4,
                gpr: 9
            })
        );
        // LMSW/CLTS (bit 63 clear) and CPUs without the assist: undecoded.
        assert_eq!(
            decode(code::CR0_WRITE, 0, 0, ASSISTED),
            Exit::ControlRegister(ControlRegisterAccess::Undecoded { register: 0 })
        );
        assert_eq!(
            decode(code::CR0_WRITE, (1 << 63) | 3, 0, PLAIN),
            Exit::ControlRegister(ControlRegisterAccess::Undecoded { register: 0 })
        );
    }

    #[test]
    fn virtualization_instructions_and_other_codes() {
        for exit_code in [
            code::VMRUN,
            code::VMLOAD,
            code::VMSAVE,
            code::STGI,
            code::CLGI,
            code::SKINIT,
            code::INVLPGA,
        ] {
            assert_eq!(
                decode(exit_code, 0, 0, PLAIN),
                Exit::VirtualizationInstruction,
                "{}",
                name(exit_code)
            );
        }
        assert_eq!(decode(code::VMMCALL, 0, 0, PLAIN), Exit::Hypercall);
        assert_eq!(decode(code::SHUTDOWN, 0, 0, PLAIN), Exit::TripleFault);
        assert_eq!(decode(code::INTR, 0, 0, PLAIN), Exit::ExternalInterrupt);
        assert_eq!(decode(code::VINTR, 0, 0, PLAIN), Exit::InterruptWindow);
        assert_eq!(
            decode(code::INVALID, 0, 0, PLAIN),
            Exit::InvalidGuestState { detail: 0 }
        );
        assert_eq!(
            decode(code::RDTSCP, 0, 0, PLAIN),
            Exit::Unsupported {
                reason: code::RDTSCP as u32
            }
        );
    }

    #[test]
    fn exceptions_carry_error_codes_only_for_vectors_that_have_them() {
        assert_eq!(
            decode(code::EXCEPTION_BASE + 17, 0, 0, PLAIN),
            Exit::Exception {
                vector: 17,
                error_code: Some(0)
            }
        );
        assert_eq!(
            decode(code::EXCEPTION_BASE + 1, 0x1234, 0, PLAIN),
            Exit::Exception {
                vector: 1,
                error_code: None
            }
        );
    }

    #[test]
    fn counts_split_msr_reads_and_writes_and_rank_by_frequency() {
        let mut counts = ExitCounts::default();
        counts.record(code::MSR, 1);
        counts.record(code::MSR, 1);
        counts.record(code::MSR, 0);
        counts.record(code::NPF, 0);
        counts.record(code::INVALID, 0);
        counts.record(0x1234, 0);
        let ranked = counts.ranked();
        assert_eq!(ranked[0], ("WRMSR", 2));
        assert!(ranked.contains(&("RDMSR", 1)));
        assert!(ranked.contains(&("nested page fault", 1)));
        assert!(ranked.contains(&("VMRUN failure: invalid state", 1)));
        assert!(ranked.contains(&("other", 1)));
        assert_eq!(counts.total(), 6);
    }
}
