//! `tessera bench`: boots the `bench` guest and reports the round-trip cost
//! of the hypervisor's exit paths.
//!
//! The guest times each operation with RDTSC and prints
//! `bench: <operation> <n> cycles/op (n=<samples>)`. Under Bochs the TSC
//! advances by exactly one per emulated instruction, guest and hypervisor
//! alike, so the figures are instruction counts: deterministic path lengths,
//! not timings, and the same on any machine. Under KVM they are real cycles.
//!
//! The operations (guest-blobs/bench/src/main.rs has the details):
//! - `cpuid`, `vmcall`, `port-in`: CPUID leaf 0, the `BENCH_NOP` hypercall
//!   and a read of a port no device claims — the bare exit round trip;
//! - `mmio-read`: a read of the local APIC's version register through xAPIC
//!   MMIO — the EPT violation, the fetch and decoding of the instruction, the
//!   APIC model, the platform settled before the entry;
//! - `lapic-timer-irq`: a local APIC timer interrupt taken while the guest
//!   spins — the exit at the timer's deadline, the injection, a handler
//!   that writes the EOI (an MMIO write, so a second exit) and IRETQ, from
//!   the guest's last TSC read before the interrupt to its first after;
//!   arming the timer is not included, and the span holds 21 guest
//!   instructions (the handler's 9, and 12 of the spin loop where the
//!   baseline has 5);
//! - `pit-write`: `out 0x43` of a control word that programs the 8254's
//!   channel 2 — the port bus, the PIT model, the platform settled; taken
//!   after the APIC figures, so with the VM's APIC pair made, as in any
//!   guest that uses its local APIC (settling then also syncs the I/O
//!   APIC's pins);
//! - `baseline`: the timing itself, which the report subtracts.
//!
//! The three later figures start every 50 samples on a fresh time slice, so
//! that no scheduler slice end lands in them.

use anyhow::{bail, Result};

/// One figure the guest printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// `cpuid`, `vmcall`, `port-in`, `mmio-read`, `lapic-timer-irq`,
    /// `pit-write` or `baseline`.
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
/// timing overhead (the `baseline`), the cost of the exit path. `engine`
/// names where it ran, `unit` what the TSC counted there.
pub fn report(figures: &[Figure], engine: &str, unit: &str) -> Result<String> {
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
    let mut text = format!("tessera exit-path benchmark on {engine}, in {unit}\n");
    text.push_str(&format!(
        "  {:<15} {:>12} {:>16} {:>9}\n",
        "operation", "round trip", "minus baseline", "samples"
    ));
    for figure in operations {
        text.push_str(&format!(
            "  {:<15} {:>12} {:>16} {:>9}\n",
            figure.operation,
            figure.ticks,
            figure.ticks.saturating_sub(baseline.ticks),
            figure.samples
        ));
    }
    text.push_str(&format!(
        "  {:<15} {:>12} {:>16} {:>9}\n",
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
   bench | bench: mmio-read 2951 cycles/op (n=10000)
   bench | bench: lapic-timer-irq 5576 cycles/op (n=10000)
   bench | bench: pit-write 2414 cycles/op (n=10000)
   bench | bench: baseline 5 cycles/op (n=10000)
   bench | bench: something else entirely
";

    /// The report's row for `operation`, split into columns.
    fn row<'a>(text: &'a str, operation: &str) -> Vec<&'a str> {
        text.lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|columns| columns.first() == Some(&operation))
            .unwrap_or_else(|| panic!("no row for {operation} in\n{text}"))
    }

    #[test]
    fn figures_are_parsed_from_prefixed_lines() {
        let figures = parse(TRANSCRIPT);
        assert_eq!(figures.len(), 7);
        assert_eq!(
            figures[0],
            Figure {
                operation: "cpuid".into(),
                ticks: 224,
                samples: 10000
            }
        );
        assert_eq!(
            figures[4],
            Figure {
                operation: "lapic-timer-irq".into(),
                ticks: 5576,
                samples: 10000
            }
        );
        assert_eq!(figures[6].operation, "baseline");
    }

    const UNIT: &str = "instructions (QEMU's TSC counts instructions with -icount shift=0)";

    #[test]
    fn report_subtracts_the_baseline() {
        let text = report(&parse(TRANSCRIPT), "qemu (SVM under TCG)", UNIT).unwrap();
        // The first line names the engine, the backend and the unit.
        assert_eq!(
            text.lines().next(),
            Some(
                "tessera exit-path benchmark on qemu (SVM under TCG), in instructions \
                 (QEMU's TSC counts instructions with -icount shift=0)"
            )
        );
        assert_eq!(row(&text, "cpuid"), ["cpuid", "224", "219", "10000"]);
        assert_eq!(
            row(&text, "pit-write"),
            ["pit-write", "2414", "2409", "10000"]
        );
        assert_eq!(
            row(&text, "mmio-read"),
            ["mmio-read", "2951", "2946", "10000"]
        );
        assert_eq!(
            row(&text, "lapic-timer-irq"),
            ["lapic-timer-irq", "5576", "5571", "10000"]
        );
    }

    #[test]
    fn the_longest_operation_name_keeps_the_columns_aligned() {
        let text = report(&parse(TRANSCRIPT), "bochs (VMX)", UNIT).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 8, "header, six operations and the baseline");
        // Fixed-width columns: a name wider than its column pushes the
        // numbers of its row out of line and makes the row longer.
        for row in &rows {
            assert_eq!(row.len(), rows[0].len(), "{row:?} is out of line");
        }
    }

    #[test]
    fn missing_figures_are_an_error() {
        assert!(report(&[], "bochs", UNIT).is_err());
        let only_baseline = parse("bench: baseline 5 cycles/op (n=10)");
        assert!(report(&only_baseline, "bochs", UNIT).is_err());
    }
}
