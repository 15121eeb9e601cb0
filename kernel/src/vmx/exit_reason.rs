//! VM-exit basic reasons (Intel SDM Vol. 3D, Appendix C) and per-VM counts.

/// The number of basic exit reasons tracked: 0..=77 are defined today, and a
/// power of two lets [`ExitCounts::record`] index without a bounds check.
pub const EXIT_REASON_COUNT: usize = 128;

/// The name of a basic exit reason, for reports.
pub fn name(reason: u32) -> &'static str {
    match reason {
        0 => "exception or NMI",
        1 => "external interrupt",
        2 => "triple fault",
        3 => "INIT signal",
        4 => "SIPI",
        7 => "interrupt window",
        8 => "NMI window",
        9 => "task switch",
        10 => "CPUID",
        11 => "GETSEC",
        12 => "HLT",
        13 => "INVD",
        14 => "INVLPG",
        15 => "RDPMC",
        16 => "RDTSC",
        18 => "VMCALL",
        19 => "VMCLEAR",
        20 => "VMLAUNCH",
        21 => "VMPTRLD",
        22 => "VMPTRST",
        23 => "VMREAD",
        24 => "VMRESUME",
        25 => "VMWRITE",
        26 => "VMXOFF",
        27 => "VMXON",
        28 => "control-register access",
        29 => "MOV DR",
        30 => "I/O instruction",
        31 => "RDMSR",
        32 => "WRMSR",
        33 => "entry failure: invalid guest state",
        34 => "entry failure: MSR loading",
        36 => "MWAIT",
        37 => "monitor trap flag",
        39 => "MONITOR",
        40 => "PAUSE",
        41 => "entry failure: machine check",
        43 => "TPR below threshold",
        44 => "APIC access",
        46 => "GDTR/IDTR access",
        47 => "LDTR/TR access",
        48 => "EPT violation",
        49 => "EPT misconfiguration",
        50 => "INVEPT",
        51 => "RDTSCP",
        52 => "VMX-preemption timer",
        53 => "INVVPID",
        54 => "WBINVD",
        55 => "XSETBV",
        57 => "RDRAND",
        58 => "INVPCID",
        59 => "VMFUNC",
        61 => "RDSEED",
        63 => "XSAVES",
        64 => "XRSTORS",
        _ => "other",
    }
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
    /// Counts one exit; reasons past the table wrap around it (none are
    /// defined there).
    #[inline(always)]
    pub fn record(&mut self, reason: u32) {
        self.counts[reason as usize % EXIT_REASON_COUNT] += 1;
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
        assert_eq!(ranked, [(30, 3), (10, 1), (12, 1), (500 % 128, 1)]);
        assert_eq!(counts.total(), 6);
        assert_eq!(counts.get(30), 3);
    }
}
