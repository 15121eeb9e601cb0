//! `tessera bench`: boots the `bench` guest and reports the round-trip cost
//! of the hypervisor's exit paths.
//!
//! The guest times each operation with RDTSC and prints
//! `bench: <operation> <n> cycles/op (n=<samples>)`. Under Bochs the TSC
//! advances by exactly one per emulated instruction, guest and hypervisor
//! alike, so the figures are instruction counts: deterministic path lengths,
//! not timings, and the same on any machine. Under KVM they are real cycles.

use anyhow::{bail, Result};

/// One figure the guest printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// `cpuid`, `vmcall`, `port-in` or `baseline`.
    pub operation: String,
    /// Average TSC ticks per operation.
    pub ticks: u64,
    /// How many samples were averaged.
    pub samples: u64,
}

/// Extracts the figures from a console transcript (lines may carry the VM
/// prefix `   bench | `).
pub fn parse(transcript: &str) -> Vec<Figure> {
    transcript
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("bench: ")? + "bench: ".len()..];
            let mut words = rest.split_whitespace();
            let operation = words.next()?.to_string();
            let ticks = words.next()?.parse().ok()?;
            if words.next()? != "cycles/op" {
                return None;
            }
            let samples = words
                .next()?
                .strip_prefix("(n=")?
                .strip_suffix(')')?
                .parse()
                .ok()?;
            Some(Figure {
                operation,
                ticks,
                samples,
            })
        })
        .collect()
}

/// The report: each operation's round trip and, without the guest's own
/// timing overhead (the `baseline`), the cost of the exit path.
pub fn report(figures: &[Figure], engine: &str) -> Result<String> {
    let Some(baseline) = figures.iter().find(|f| f.operation == "baseline") else {
        bail!("the bench guest printed no baseline figure");
    };
    let operations: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.operation != "baseline")
        .collect();
    if operations.is_empty() {
        bail!("the bench guest printed no figures");
    }
    let unit = if engine.starts_with("bochs") {
        "instructions (Bochs' TSC counts instructions)"
    } else {
        "TSC cycles"
    };
    let mut text = format!("tessera exit-path benchmark on {engine}, in {unit}\n");
    text.push_str(&format!(
        "  {:<10} {:>12} {:>16} {:>9}\n",
        "operation", "round trip", "minus baseline", "samples"
    ));
    for figure in operations {
        text.push_str(&format!(
            "  {:<10} {:>12} {:>16} {:>9}\n",
            figure.operation,
            figure.ticks,
            figure.ticks.saturating_sub(baseline.ticks),
            figure.samples
        ));
    }
    text.push_str(&format!(
        "  {:<10} {:>12} {:>16} {:>9}\n",
        "baseline", baseline.ticks, "-", baseline.samples
    ));
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSCRIPT: &str = "\
[INFO ] scheduler: 1 VMs
   bench | bench: cpuid 224 cycles/op (n=10000)
   bench | bench: vmcall 231 cycles/op (n=10000)
   bench | bench: port-in 232 cycles/op (n=10000)
   bench | bench: baseline 5 cycles/op (n=10000)
   bench | bench: something else entirely
";

    #[test]
    fn figures_are_parsed_from_prefixed_lines() {
        let figures = parse(TRANSCRIPT);
        assert_eq!(figures.len(), 4);
        assert_eq!(
            figures[0],
            Figure {
                operation: "cpuid".into(),
                ticks: 224,
                samples: 10000
            }
        );
        assert_eq!(figures[3].operation, "baseline");
    }

    #[test]
    fn report_subtracts_the_baseline() {
        let text = report(&parse(TRANSCRIPT), "bochs").unwrap();
        assert!(text.contains("instructions"));
        let cpuid = text
            .lines()
            .find(|l| l.trim_start().starts_with("cpuid"))
            .unwrap();
        let columns: Vec<&str> = cpuid.split_whitespace().collect();
        assert_eq!(columns, ["cpuid", "224", "219", "10000"]);
    }

    #[test]
    fn missing_figures_are_an_error() {
        assert!(report(&[], "bochs").is_err());
        let only_baseline = parse("bench: baseline 5 cycles/op (n=10)");
        assert!(report(&only_baseline, "bochs").is_err());
    }
}
