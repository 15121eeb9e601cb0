//! VM-exit basic reasons (SDM Vol. 3D, Appendix C) and per-VM counts.

/// The number of basic exit reasons tracked (0..=77 are defined today).
pub const EXIT_REASON_COUNT: usize = 80;

/// Basic exit reasons (SDM Vol. 3D, Appendix C), by name: the one place
/// their numbers are written.
pub mod reason {
    /// exception or NMI.
    pub const EXCEPTION_OR_NMI: u32 = 0;
    /// external interrupt.
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    /// triple fault.
    pub const TRIPLE_FAULT: u32 = 2;
    /// INIT signal.
    pub const INIT: u32 = 3;
    /// SIPI.
    pub const SIPI: u32 = 4;
    /// interrupt window.
    pub const INTERRUPT_WINDOW: u32 = 7;
    /// NMI window.
    pub const NMI_WINDOW: u32 = 8;
    /// task switch.
    pub const TASK_SWITCH: u32 = 9;
    /// CPUID.
    pub const CPUID: u32 = 10;
    /// GETSEC.
    pub const GETSEC: u32 = 11;
    /// HLT.
    pub const HLT: u32 = 12;
    /// INVD.
    pub const INVD: u32 = 13;
    /// INVLPG.
    pub const INVLPG: u32 = 14;
    /// RDPMC.
    pub const RDPMC: u32 = 15;
    /// RDTSC.
    pub const RDTSC: u32 = 16;
    /// VMCALL.
    pub const VMCALL: u32 = 18;
    /// VMCLEAR.
    pub const VMCLEAR: u32 = 19;
    /// VMLAUNCH.
    pub const VMLAUNCH: u32 = 20;
    /// VMPTRLD.
    pub const VMPTRLD: u32 = 21;
    /// VMPTRST.
    pub const VMPTRST: u32 = 22;
    /// VMREAD.
    pub const VMREAD: u32 = 23;
    /// VMRESUME.
    pub const VMRESUME: u32 = 24;
    /// VMWRITE.
    pub const VMWRITE: u32 = 25;
    /// VMXOFF.
    pub const VMXOFF: u32 = 26;
    /// VMXON.
    pub const VMXON: u32 = 27;
    /// control-register access.
    pub const CONTROL_REGISTER: u32 = 28;
    /// MOV DR.
    pub const MOV_DR: u32 = 29;
    /// I/O instruction.
    pub const IO_INSTRUCTION: u32 = 30;
    /// RDMSR.
    pub const RDMSR: u32 = 31;
    /// WRMSR.
    pub const WRMSR: u32 = 32;
    /// entry failure: invalid guest state.
    pub const INVALID_GUEST_STATE: u32 = 33;
    /// entry failure: MSR loading.
    pub const MSR_LOADING: u32 = 34;
    /// MWAIT.
    pub const MWAIT: u32 = 36;
    /// monitor trap flag.
    pub const MONITOR_TRAP_FLAG: u32 = 37;
    /// MONITOR.
    pub const MONITOR: u32 = 39;
    /// PAUSE.
    pub const PAUSE: u32 = 40;
    /// entry failure: machine check.
    pub const MACHINE_CHECK: u32 = 41;
    /// TPR below threshold.
    pub const TPR_BELOW_THRESHOLD: u32 = 43;
    /// APIC access.
    pub const APIC_ACCESS: u32 = 44;
    /// GDTR/IDTR access.
    pub const DESCRIPTOR_TABLE: u32 = 46;
    /// LDTR/TR access.
    pub const LDTR_TR: u32 = 47;
    /// EPT violation.
    pub const EPT_VIOLATION: u32 = 48;
    /// EPT misconfiguration.
    pub const EPT_MISCONFIGURATION: u32 = 49;
    /// INVEPT.
    pub const INVEPT: u32 = 50;
    /// RDTSCP.
    pub const RDTSCP: u32 = 51;
    /// VMX-preemption timer.
    pub const PREEMPTION_TIMER: u32 = 52;
    /// INVVPID.
    pub const INVVPID: u32 = 53;
    /// WBINVD.
    pub const WBINVD: u32 = 54;
    /// XSETBV.
    pub const XSETBV: u32 = 55;
    /// RDRAND.
    pub const RDRAND: u32 = 57;
    /// INVPCID.
    pub const INVPCID: u32 = 58;
    /// VMFUNC.
    pub const VMFUNC: u32 = 59;
    /// RDSEED.
    pub const RDSEED: u32 = 61;
    /// XSAVES.
    pub const XSAVES: u32 = 63;
    /// XRSTORS.
    pub const XRSTORS: u32 = 64;
}

/// Each reason with its name in reports.
const NAMES: [(u32, &str); 55] = [
    (reason::EXCEPTION_OR_NMI, "exception or NMI"),
    (reason::EXTERNAL_INTERRUPT, "external interrupt"),
    (reason::TRIPLE_FAULT, "triple fault"),
    (reason::INIT, "INIT signal"),
    (reason::SIPI, "SIPI"),
    (reason::INTERRUPT_WINDOW, "interrupt window"),
    (reason::NMI_WINDOW, "NMI window"),
    (reason::TASK_SWITCH, "task switch"),
    (reason::CPUID, "CPUID"),
    (reason::GETSEC, "GETSEC"),
    (reason::HLT, "HLT"),
    (reason::INVD, "INVD"),
    (reason::INVLPG, "INVLPG"),
    (reason::RDPMC, "RDPMC"),
    (reason::RDTSC, "RDTSC"),
    (reason::VMCALL, "VMCALL"),
    (reason::VMCLEAR, "VMCLEAR"),
    (reason::VMLAUNCH, "VMLAUNCH"),
    (reason::VMPTRLD, "VMPTRLD"),
    (reason::VMPTRST, "VMPTRST"),
    (reason::VMREAD, "VMREAD"),
    (reason::VMRESUME, "VMRESUME"),
    (reason::VMWRITE, "VMWRITE"),
    (reason::VMXOFF, "VMXOFF"),
    (reason::VMXON, "VMXON"),
    (reason::CONTROL_REGISTER, "control-register access"),
    (reason::MOV_DR, "MOV DR"),
    (reason::IO_INSTRUCTION, "I/O instruction"),
    (reason::RDMSR, "RDMSR"),
    (reason::WRMSR, "WRMSR"),
    (
        reason::INVALID_GUEST_STATE,
        "entry failure: invalid guest state",
    ),
    (reason::MSR_LOADING, "entry failure: MSR loading"),
    (reason::MWAIT, "MWAIT"),
    (reason::MONITOR_TRAP_FLAG, "monitor trap flag"),
    (reason::MONITOR, "MONITOR"),
    (reason::PAUSE, "PAUSE"),
    (reason::MACHINE_CHECK, "entry failure: machine check"),
    (reason::TPR_BELOW_THRESHOLD, "TPR below threshold"),
    (reason::APIC_ACCESS, "APIC access"),
    (reason::DESCRIPTOR_TABLE, "GDTR/IDTR access"),
    (reason::LDTR_TR, "LDTR/TR access"),
    (reason::EPT_VIOLATION, "EPT violation"),
    (reason::EPT_MISCONFIGURATION, "EPT misconfiguration"),
    (reason::INVEPT, "INVEPT"),
    (reason::RDTSCP, "RDTSCP"),
    (reason::PREEMPTION_TIMER, "VMX-preemption timer"),
    (reason::INVVPID, "INVVPID"),
    (reason::WBINVD, "WBINVD"),
    (reason::XSETBV, "XSETBV"),
    (reason::RDRAND, "RDRAND"),
    (reason::INVPCID, "INVPCID"),
    (reason::VMFUNC, "VMFUNC"),
    (reason::RDSEED, "RDSEED"),
    (reason::XSAVES, "XSAVES"),
    (reason::XRSTORS, "XRSTORS"),
];

/// The name of a basic exit reason, for reports.
pub fn name(reason: u32) -> &'static str {
    NAMES
        .iter()
        .find(|(number, _)| *number == reason)
        .map_or("other", |(_, name)| name)
}

/// How often each exit reason occurred in one VM.
#[derive(Clone)]
pub struct ExitCounts {
    counts: [u64; EXIT_REASON_COUNT],
}

impl Default for ExitCounts {
    fn default() -> Self {
        ExitCounts {
            counts: [0; EXIT_REASON_COUNT],
        }
    }
}

impl ExitCounts {
    /// Counts one exit; reasons past the table count in its last slot.
    #[inline(always)]
    pub fn record(&mut self, reason: u32) {
        self.counts[(reason as usize).min(EXIT_REASON_COUNT - 1)] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, reason: u32) -> u64 {
        self.counts.get(reason as usize).copied().unwrap_or(0)
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Non-zero counts, most frequent first.
    pub fn ranked(&self) -> impl Iterator<Item = (u32, u64)> {
        let mut pairs: [(u32, u64); EXIT_REASON_COUNT] = [(0, 0); EXIT_REASON_COUNT];
        for (reason, count) in self.counts.iter().enumerate() {
            pairs[reason] = (reason as u32, *count);
        }
        pairs.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs.into_iter().filter(|&(_, count)| count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn names_match_the_sdm() {
        assert_eq!(name(10), "CPUID");
        assert_eq!(name(18), "VMCALL");
        assert_eq!(name(30), "I/O instruction");
        assert_eq!(name(48), "EPT violation");
        assert_eq!(name(52), "VMX-preemption timer");
        assert_eq!(name(55), "XSETBV");
    }

    #[test]
    fn counts_rank_by_frequency() {
        let mut counts = ExitCounts::default();
        for _ in 0..3 {
            counts.record(30);
        }
        counts.record(10);
        counts.record(12);
        counts.record(500);
        let ranked: Vec<_> = counts.ranked().collect();
        assert_eq!(ranked, [(30, 3), (10, 1), (12, 1), (79, 1)]);
        assert_eq!(counts.total(), 6);
        assert_eq!(counts.get(30), 3);
    }
}
