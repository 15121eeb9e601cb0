//! Interrupt lines between devices and interrupt controllers.
//!
//! A VM has [`LINE_COUNT`] wires: ISA IRQs 0-15 and the IOAPIC's further
//! pins up to 23. Devices drive them (level or edge); the interrupt
//! controllers (8259 PIC, IOAPIC) sample them. This module owns only the
//! wire states: it knows nothing of masking, priorities, vectors or
//! delivery to a vCPU, which belong to the controllers.

/// How many lines a VM has: ISA IRQs 0-15 and IOAPIC pins 16-23 (the
/// 82093AA IOAPIC has 24 redirection entries).
pub const LINE_COUNT: u8 = 24;

/// One interrupt line, checked to be below [`LINE_COUNT`] when made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IrqLine(u8);

impl IrqLine {
    /// The line numbered `number`, if the VM has one.
    pub const fn new(number: u8) -> Option<IrqLine> {
        if number < LINE_COUNT {
            Some(IrqLine(number))
        } else {
            None
        }
    }

    /// The line's number (ISA IRQ or IOAPIC pin).
    pub const fn number(self) -> u8 {
        self.0
    }

    const fn bit(self) -> u32 {
        1 << self.0
    }
}

/// The state of a VM's interrupt lines: which are high now, and which rose
/// since a controller last looked.
///
/// A line has one driver. Two devices sharing a line would need a count of
/// drivers per line (wired-OR); no PC device tessera models shares one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InterruptLines {
    /// Bit n: line n is high.
    levels: u32,
    /// Bit n: line n had a rising edge not yet taken.
    edges: u32,
}

impl InterruptLines {
    /// All lines low, no edges pending.
    pub const fn new() -> InterruptLines {
        InterruptLines {
            levels: 0,
            edges: 0,
        }
    }

    /// Drives `line` high; a low-to-high change is recorded as an edge.
    pub fn raise(&mut self, line: IrqLine) {
        if self.levels & line.bit() == 0 {
            self.edges |= line.bit();
        }
        self.levels |= line.bit();
    }

    /// Drives `line` low. A recorded edge stays until taken.
    pub fn lower(&mut self, line: IrqLine) {
        self.levels &= !line.bit();
    }

    /// Drives `line` high or low.
    pub fn set(&mut self, line: IrqLine, high: bool) {
        if high {
            self.raise(line);
        } else {
            self.lower(line);
        }
    }

    /// A short pulse: records a rising edge and leaves the line low, so an
    /// edge-triggered controller sees it even though nobody saw it high.
    /// (The PIT's output to IRQ 0 in a tick, for example.)
    pub fn pulse(&mut self, line: IrqLine) {
        self.edges |= line.bit();
        self.levels &= !line.bit();
    }

    /// Whether `line` is high now.
    pub fn level(&self, line: IrqLine) -> bool {
        self.levels & line.bit() != 0
    }

    /// Bitmask of the lines high now (bit n = line n).
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// Bitmask of the lines that rose since the last call, without
    /// clearing it.
    pub fn pending_edges(&self) -> u32 {
        self.edges
    }

    /// Bitmask of the lines that rose since the last call; clears it.
    pub fn take_edges(&mut self) -> u32 {
        core::mem::take(&mut self.edges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: u8) -> IrqLine {
        IrqLine::new(number).unwrap()
    }

    #[test]
    fn lines_exist_up_to_pin_23() {
        assert_eq!(IrqLine::new(0).map(IrqLine::number), Some(0));
        assert_eq!(IrqLine::new(23).map(IrqLine::number), Some(23));
        assert_eq!(IrqLine::new(24), None);
        assert_eq!(IrqLine::new(255), None);
    }

    #[test]
    fn all_lines_start_low_without_edges() {
        let mut lines = InterruptLines::new();
        assert_eq!(lines.levels(), 0);
        assert!(!lines.level(line(4)));
        assert_eq!(lines.take_edges(), 0);
        assert_eq!(lines, InterruptLines::default());
    }

    #[test]
    fn raise_and_lower_follow_the_level() {
        let mut lines = InterruptLines::new();
        lines.raise(line(4));
        assert!(lines.level(line(4)));
        assert_eq!(lines.levels(), 1 << 4);
        lines.lower(line(4));
        assert!(!lines.level(line(4)));
        assert_eq!(lines.levels(), 0);
    }

    #[test]
    fn a_rising_edge_is_recorded_once_until_taken() {
        let mut lines = InterruptLines::new();
        lines.raise(line(4));
        // Raising a line that is already high is no new edge.
        lines.raise(line(4));
        assert_eq!(lines.pending_edges(), 1 << 4);
        assert_eq!(lines.take_edges(), 1 << 4);
        assert_eq!(lines.take_edges(), 0);
        lines.raise(line(4));
        assert_eq!(lines.take_edges(), 0, "still high: no edge");
        lines.lower(line(4));
        lines.raise(line(4));
        assert_eq!(lines.take_edges(), 1 << 4);
    }

    #[test]
    fn an_edge_survives_lowering_before_anyone_looked() {
        let mut lines = InterruptLines::new();
        lines.raise(line(3));
        lines.lower(line(3));
        assert!(!lines.level(line(3)));
        assert_eq!(lines.take_edges(), 1 << 3);
    }

    #[test]
    fn pulse_records_an_edge_and_leaves_the_line_low() {
        let mut lines = InterruptLines::new();
        lines.pulse(line(0));
        assert!(!lines.level(line(0)));
        assert_eq!(lines.take_edges(), 1);
        // A pulse on a line that was high also ends low.
        lines.raise(line(8));
        lines.take_edges();
        lines.pulse(line(8));
        assert!(!lines.level(line(8)));
        assert_eq!(lines.take_edges(), 1 << 8);
    }

    #[test]
    fn lines_are_independent() {
        let mut lines = InterruptLines::new();
        lines.raise(line(1));
        lines.set(line(23), true);
        lines.pulse(line(12));
        lines.set(line(1), false);
        assert_eq!(lines.levels(), 1 << 23);
        assert_eq!(lines.take_edges(), (1 << 1) | (1 << 12) | (1 << 23));
    }
}
