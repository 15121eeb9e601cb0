//! The PC's two Intel 8259A programmable interrupt controllers (master at
//! ports 0x20-0x21, slave at 0xA0-0xA1, its INT wired to the master's IR2)
//! and the edge/level control registers (ELCR, ports 0x4D0-0x4D1) that PC
//! chipsets (PIIX, ICH) put beside them. Citations name sections of the
//! Intel 8259A datasheet (order number 231468) by title.
//!
//! This module owns the two chips' registers (IRR, ISR, IMR and the
//! initialization state) and the ELCR. It does not know which devices
//! drive the lines (it samples [`InterruptLines`](super::irq::InterruptLines)
//! masks handed to it), nor how a vector reaches a vCPU: the VM core asks
//! [`Pic::output`] and runs the INTA cycle with [`Pic::acknowledge`].
//!
//! # Wiring it into a VM
//!
//! One [`Pic`] decodes all three port pairs: register it with
//! `add(MASTER_BASE, 2, ..)` and `add_range(id, SLAVE_BASE, 2)`,
//! `add_range(id, ELCR_BASE, 2)` (see [`PORT_RANGES`]); it sees the ports
//! at offsets from 0x20. After anything that may move a line (a port
//! access, a timer's `advance`), the core takes the edges once and hands
//! the same masks to every controller:
//!
//! ```ignore
//! let edges = lines.take_edges();
//! pic.sync_lines(lines.levels(), edges);
//! if pic.output() && vcpu_accepts_external_interrupts {
//!     inject(pic.acknowledge());
//! }
//! ```
//!
//! # Modelling choices
//!
//! - **Edge-triggered requests latch.** A rising edge sets the IRR bit,
//!   which stays until an INTA moves it to the ISR, even if the line falls
//!   first, so a device may [`pulse`](super::irq::InterruptLines::pulse)
//!   its line. (The datasheet, "Edge Triggered Mode", asks the line to stay
//!   high until the first INTA; a request withdrawn earlier is not
//!   modelled as a spurious IR7, except through the IMR, below.)
//!   Level-triggered inputs (ELCR bit set) follow the line: the IRR bit is
//!   the level.
//! - **Trigger mode comes from the ELCR alone.** ICW1's LTIM bit is
//!   ignored, as on PIIX and ICH chipsets, whose ELCR replaces it. IRQ 0,
//!   1, 2, 8 and 13 are always edge-triggered (their ELCR bits are
//!   read-only zeros).
//! - **The cascade.** The slave's INT drives the master's IR2 as an edge
//!   (IR2 is edge-triggered), and drops during every INTA through the
//!   slave, so each new slave request gives the master a new edge. Only
//!   IR2 is wired to a slave: other ICW3 bits are kept but ignored, and the
//!   slave's ICW3 identity is not compared (it is 2 on every PC). A master
//!   programmed in single mode answers IR2 itself.
//! - **Spurious interrupts.** An INTA that finds no request (the guest
//!   masked it after INT rose, or a level-triggered line fell) returns the
//!   chip's base + 7 and sets no ISR bit; if it is the slave that finds
//!   none, the master has already put IR2 in service, so the guest's EOI
//!   to the master (as Linux sends for a spurious IRQ 15) is needed.
//! - **Nothing before initialization.** A chip whose guest never completed
//!   an ICW sequence (or is in the middle of one) has no vector base and
//!   drives no INT. OCW1 works at any time, so Linux's probe (write the
//!   IMR, read it back) finds the PIC before programming it.
//! - **OCW2** is modelled whole: non-specific and specific EOI, both
//!   rotations on EOI, rotation in auto-EOI mode, set priority.
//! - **Not modelled:** the MCS-80/85 mode (ICW4.µPM = 0 is taken as 8086
//!   mode, the only one an x86 CPU can use), buffered mode (ICW4.BUF, M/S:
//!   pins a VM does not have), and the call-address interval (ADI).
//! - **Access widths.** Each chip is 8 bits wide: wider accesses are split
//!   into bytes at consecutive ports, low byte first; ports past a pair read
//!   0xFF and ignore writes.

use super::irq::IrqLine;
use super::{AccessSize, DeviceContext, PortDevice};

/// The master's command port (ICW1, OCW2, OCW3; IRR, ISR, poll).
pub const MASTER_BASE: u16 = 0x20;
/// The slave's command port.
pub const SLAVE_BASE: u16 = 0xa0;
/// The ELCR for IRQ 0-7; IRQ 8-15's is the next port.
pub const ELCR_BASE: u16 = 0x4d0;
/// The first port of each range the PIC decodes, each [`RANGE_PORTS`]
/// long; the first is its base (register it with `add`, the others with
/// `add_range`).
pub const PORT_RANGES: [u16; 3] = [MASTER_BASE, SLAVE_BASE, ELCR_BASE];
/// How many ports each range covers.
pub const RANGE_PORTS: u16 = 2;

// Offsets from MASTER_BASE, as the bus computes them.
const MASTER_COMMAND: u16 = 0;
const MASTER_DATA: u16 = 1;
const SLAVE_COMMAND: u16 = SLAVE_BASE - MASTER_BASE;
const SLAVE_DATA: u16 = SLAVE_COMMAND + 1;
const ELCR_MASTER: u16 = ELCR_BASE - MASTER_BASE;
const ELCR_SLAVE: u16 = ELCR_MASTER + 1;

/// The master input wired to the slave's INT.
const CASCADE_INPUT: u8 = 2;
/// The ELCR bits a guest can set: IRQ 0, 1, 2 (master) and 8, 13 (slave)
/// are always edge-triggered on a PC (PIIX4 datasheet, ELCR1 and ELCR2).
const ELCR_WRITABLE: [u8; 2] = [0xf8, 0xde];

// ICW1 (datasheet, "Initialization Command Words").
const ICW1: u8 = 1 << 4;
const ICW1_NEEDS_ICW4: u8 = 1 << 0;
const ICW1_SINGLE: u8 = 1 << 1;
// ICW4.
const ICW4_AUTO_EOI: u8 = 1 << 1;
const ICW4_SPECIAL_FULLY_NESTED: u8 = 1 << 4;
// OCW3 (datasheet, "Operation Command Words"); bit 3 set and bit 4 clear
// tell it from OCW2 and ICW1 on the command port.
const OCW3: u8 = 1 << 3;
const OCW3_READ_ISR: u8 = 1 << 0;
const OCW3_READ_REGISTER: u8 = 1 << 1;
const OCW3_POLL: u8 = 1 << 2;
const OCW3_SPECIAL_MASK: u8 = 1 << 5;
const OCW3_ENABLE_SPECIAL_MASK: u8 = 1 << 6;
// OCW2 commands: bits 7:5 are R, SL, EOI.
const OCW2_ROTATE_AUTO_EOI_CLEAR: u8 = 0b000;
const OCW2_NON_SPECIFIC_EOI: u8 = 0b001;
const OCW2_SPECIFIC_EOI: u8 = 0b011;
const OCW2_ROTATE_AUTO_EOI_SET: u8 = 0b100;
const OCW2_ROTATE_NON_SPECIFIC_EOI: u8 = 0b101;
const OCW2_SET_PRIORITY: u8 = 0b110;
const OCW2_ROTATE_SPECIFIC_EOI: u8 = 0b111;
/// The poll word's "interrupt requested" bit.
const POLL_REQUEST: u8 = 1 << 7;

/// Where a chip is in its initialization sequence: which ICW the data port
/// takes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    /// Not initializing: the data port is OCW1 (the IMR).
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Debug, Clone)]
struct Chip {
    /// The master (whose IR2 carries the slave) rather than the slave.
    master: bool,
    irr: u8,
    isr: u8,
    imr: u8,
    /// The input levels last seen, for edge detection.
    inputs: u8,
    /// The ELCR: bit n set makes IRn level-triggered.
    level_triggered: u8,
    /// ICW2's T7-T3: the vector of IR0.
    vector_base: u8,
    init: Init,
    /// Whether an initialization sequence has completed since reset.
    initialized: bool,
    needs_icw4: bool,
    single: bool,
    /// ICW3 as written.
    cascade: u8,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    /// The input with the lowest priority; the next one round has the
    /// highest (7 after initialization: IR0 highest).
    lowest_priority: u8,
    /// OCW3's register select: the command port reads the ISR, not the IRR.
    read_isr: bool,
    /// OCW3's poll command: the next read is the poll word.
    poll: bool,
}

impl Chip {
    const fn new(master: bool) -> Chip {
        Chip {
            master,
            irr: 0,
            isr: 0,
            imr: 0,
            inputs: 0,
            level_triggered: 0,
            vector_base: 0,
            init: Init::Ready,
            initialized: false,
            needs_icw4: false,
            single: false,
            cascade: 0,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            special_mask: false,
            lowest_priority: 7,
            read_isr: false,
            poll: false,
        }
    }

    /// Drives input `irq` (0-7) to `high`.
    fn set_input(&mut self, irq: u8, high: bool) {
        let bit = 1 << irq;
        let was_high = self.inputs & bit != 0;
        if high {
            self.inputs |= bit;
        } else {
            self.inputs &= !bit;
        }
        if self.level_triggered & bit != 0 {
            self.irr = (self.irr & !bit) | (self.inputs & bit);
        } else if high && !was_high {
            self.irr |= bit;
        }
    }

    /// Writes the ELCR: inputs turned level-triggered request at once if
    /// their line is high.
    fn set_level_triggered(&mut self, value: u8) {
        self.level_triggered = value;
        self.irr = (self.irr & !value) | (self.inputs & value);
    }

    /// The priority rank of `irq`: 0 is the highest.
    fn rank(&self, irq: u8) -> u8 {
        irq.wrapping_sub(self.lowest_priority.wrapping_add(1)) & 7
    }

    /// The input of highest priority among the bits of `mask`.
    fn highest(&self, mask: u8) -> Option<u8> {
        (1..=8)
            .map(|step| self.lowest_priority.wrapping_add(step) & 7)
            .find(|irq| mask & (1 << irq) != 0)
    }

    /// The inputs that carry a slave.
    fn slave_inputs(&self) -> u8 {
        if self.master && !self.single {
            self.cascade & (1 << CASCADE_INPUT)
        } else {
            0
        }
    }

    /// The request an INTA would serve now: the highest-priority unmasked
    /// request above everything in service (datasheet, "Fully Nested
    /// Mode"). In special mask mode, masked levels in service inhibit
    /// nothing ("Special Mask Mode"); in special fully nested mode, a
    /// slave's input in service does not inhibit the same slave
    /// ("Special Fully Nested Mode").
    fn next_request(&self) -> Option<u8> {
        let irq = self.highest(self.irr & !self.imr)?;
        let in_service = if self.special_mask {
            self.isr & !self.imr
        } else {
            self.isr
        };
        let Some(serving) = self.highest(in_service) else {
            return Some(irq);
        };
        let nested_slave =
            self.special_fully_nested && irq == serving && self.slave_inputs() & (1 << irq) != 0;
        (self.rank(irq) < self.rank(serving) || nested_slave).then_some(irq)
    }

    /// The INT pin.
    fn output(&self) -> bool {
        self.initialized && self.init == Init::Ready && self.next_request().is_some()
    }

    /// The chip's part of an INTA cycle: the input served, its IRR bit
    /// moved to the ISR (or, in auto-EOI mode, dropped at once), or `None`
    /// when nothing is requesting.
    fn acknowledge(&mut self) -> Option<u8> {
        let irq = self.next_request()?;
        let bit = 1 << irq;
        // A level-triggered input still high keeps requesting; the ISR bit
        // holds it off until the EOI.
        self.irr = (self.irr & !bit) | (self.inputs & self.level_triggered & bit);
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.lowest_priority = irq;
            }
        } else {
            self.isr |= bit;
        }
        Some(irq)
    }

    fn read(&mut self, data_port: bool) -> u8 {
        if self.poll {
            // Datasheet, "The Poll Command": the read is the INTA.
            self.poll = false;
            return self.acknowledge().map_or(0, |irq| POLL_REQUEST | irq);
        }
        if data_port {
            self.imr
        } else if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    fn write_command(&mut self, value: u8) {
        if value & ICW1 != 0 {
            self.start_initialization(value);
        } else if value & OCW3 != 0 {
            self.operation_command_3(value);
        } else {
            self.operation_command_2(value);
        }
    }

    /// ICW1 (datasheet, "Initialization Command Words", effects a-f): the
    /// edge sense is reset (a line already high must fall and rise again),
    /// the IMR cleared, IR7 given the lowest priority, special mask mode
    /// cleared, the IRR selected for reading, and ICW4's functions zeroed
    /// when no ICW4 follows. The datasheet leaves the ISR alone; it is
    /// cleared too, so a guest re-initializing mid-interrupt (kexec) is not
    /// left with a level stuck in service.
    fn start_initialization(&mut self, icw1: u8) {
        self.irr = self.inputs & self.level_triggered;
        self.isr = 0;
        self.imr = 0;
        self.lowest_priority = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_on_auto_eoi = false;
        self.needs_icw4 = icw1 & ICW1_NEEDS_ICW4 != 0;
        self.single = icw1 & ICW1_SINGLE != 0;
        if !self.needs_icw4 {
            self.auto_eoi = false;
            self.special_fully_nested = false;
        }
        self.init = Init::Icw2;
    }

    fn write_data(&mut self, value: u8) {
        let initializing = self.init != Init::Ready;
        self.init = match self.init {
            Init::Ready => {
                self.imr = value;
                Init::Ready
            }
            Init::Icw2 => {
                // In 8086 mode T2-T0 come from the input number.
                self.vector_base = value & 0xf8;
                if !self.single {
                    Init::Icw3
                } else if self.needs_icw4 {
                    Init::Icw4
                } else {
                    Init::Ready
                }
            }
            Init::Icw3 => {
                self.cascade = value;
                if self.needs_icw4 {
                    Init::Icw4
                } else {
                    Init::Ready
                }
            }
            Init::Icw4 => {
                self.auto_eoi = value & ICW4_AUTO_EOI != 0;
                self.special_fully_nested = value & ICW4_SPECIAL_FULLY_NESTED != 0;
                Init::Ready
            }
        };
        if initializing && self.init == Init::Ready {
            self.initialized = true;
        }
    }

    /// OCW2: EOIs and priority rotation (datasheet, "Operation Command
    /// Words", OCW2 table).
    fn operation_command_2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            OCW2_NON_SPECIFIC_EOI => {
                if let Some(irq) = self.highest(self.isr) {
                    self.isr &= !(1 << irq);
                }
            }
            OCW2_SPECIFIC_EOI => self.isr &= !(1 << level),
            OCW2_ROTATE_NON_SPECIFIC_EOI => {
                if let Some(irq) = self.highest(self.isr) {
                    self.isr &= !(1 << irq);
                    self.lowest_priority = irq;
                }
            }
            OCW2_ROTATE_SPECIFIC_EOI => {
                self.isr &= !(1 << level);
                self.lowest_priority = level;
            }
            OCW2_SET_PRIORITY => self.lowest_priority = level,
            OCW2_ROTATE_AUTO_EOI_SET => self.rotate_on_auto_eoi = true,
            OCW2_ROTATE_AUTO_EOI_CLEAR => self.rotate_on_auto_eoi = false,
            // 0b010: no operation.
            _ => {}
        }
    }

    /// OCW3: special mask mode, the poll command, the register read next.
    fn operation_command_3(&mut self, value: u8) {
        if value & OCW3_ENABLE_SPECIAL_MASK != 0 {
            self.special_mask = value & OCW3_SPECIAL_MASK != 0;
        }
        if value & OCW3_READ_REGISTER != 0 {
            self.read_isr = value & OCW3_READ_ISR != 0;
        }
        if value & OCW3_POLL != 0 {
            self.poll = true;
        }
    }
}

/// The master/slave 8259A pair of a PC, with the ELCR.
#[derive(Debug, Clone)]
pub struct Pic {
    master: Chip,
    slave: Chip,
    spurious: u64,
}

impl Default for Pic {
    fn default() -> Self {
        Pic::new()
    }
}

impl Pic {
    /// Both chips as at power-on: uninitialized (no INT until the guest
    /// programs them), nothing masked or requested, every input
    /// edge-triggered.
    pub const fn new() -> Pic {
        Pic {
            master: Chip::new(true),
            slave: Chip::new(false),
            spurious: 0,
        }
    }

    /// Whether the guest has programmed the master (completed an ICW
    /// sequence). Until then the PIC requests nothing, and a VM may prefer
    /// another way of delivering its timer.
    pub fn initialized(&self) -> bool {
        self.master.initialized
    }

    /// Drives ISA line `line` (IRQ 0-15) high or low. Lines 16 and up are
    /// the IOAPIC's alone, and line 2 reaches no PIC input (the master's
    /// IR2 carries the slave; what ISA calls IRQ 2 is IRQ 9 on an AT), so
    /// those are ignored.
    pub fn set_line(&mut self, line: IrqLine, high: bool) {
        let irq = line.number();
        match irq {
            0..=7 if irq != CASCADE_INPUT => self.master.set_input(irq, high),
            8..=15 => self.slave.set_input(irq - 8, high),
            _ => return,
        }
        self.update_cascade();
    }

    /// Samples the VM's lines: `levels` and `edges` as
    /// [`InterruptLines::levels`](super::irq::InterruptLines::levels) and
    /// [`take_edges`](super::irq::InterruptLines::take_edges) give them. A
    /// line with an edge counts as having risen even if it is low again
    /// (a pulse), or high again (a fall and rise since the last sample).
    pub fn sync_lines(&mut self, levels: u32, edges: u32) {
        for number in 0..16 {
            let Some(line) = IrqLine::new(number) else {
                continue;
            };
            let bit = 1 << number;
            if edges & bit != 0 {
                self.set_line(line, false);
                self.set_line(line, true);
            }
            self.set_line(line, levels & bit != 0);
        }
    }

    /// The master's INT pin: whether an INTA now would find an unmasked
    /// request of higher priority than everything in service.
    pub fn output(&self) -> bool {
        self.master.output()
    }

    /// The INTA cycle: the vector the PIC puts on the bus, with the request
    /// moved from IRR to ISR (or dropped, in auto-EOI mode). Through IR2
    /// the slave answers. With no request to serve (see [`Pic::output`])
    /// the answer is the spurious base + 7 of the chip that found none, and
    /// no ISR bit of that chip is set.
    pub fn acknowledge(&mut self) -> u8 {
        self.update_cascade();
        let vector = match self.master.acknowledge() {
            None => {
                self.spurious += 1;
                self.master.vector_base | 7
            }
            Some(irq) if self.master.slave_inputs() & (1 << irq) != 0 => {
                // The slave's INT falls during the INTA cycle, so its next
                // request is a new edge on the master's IR2.
                self.master.set_input(CASCADE_INPUT, false);
                match self.slave.acknowledge() {
                    Some(slave_irq) => self.slave.vector_base | slave_irq,
                    None => {
                        self.spurious += 1;
                        self.slave.vector_base | 7
                    }
                }
            }
            Some(irq) => self.master.vector_base | irq,
        };
        self.update_cascade();
        vector
    }

    /// How many INTA cycles (and poll reads) found no request and returned
    /// a spurious IRQ 7 or 15.
    pub fn spurious_interrupts(&self) -> u64 {
        self.spurious
    }

    /// Carries the slave's INT to the master's IR2.
    fn update_cascade(&mut self) {
        let slave_int = self.slave.output();
        self.master.set_input(CASCADE_INPUT, slave_int);
    }

    fn read_port(&mut self, offset: u16) -> u8 {
        let value = match offset {
            MASTER_COMMAND | MASTER_DATA => self.master.read(offset == MASTER_DATA),
            SLAVE_COMMAND | SLAVE_DATA => self.slave.read(offset == SLAVE_DATA),
            ELCR_MASTER => self.master.level_triggered,
            ELCR_SLAVE => self.slave.level_triggered,
            _ => 0xff,
        };
        self.update_cascade();
        value
    }

    fn write_port(&mut self, offset: u16, value: u8) {
        match offset {
            MASTER_COMMAND => self.master.write_command(value),
            MASTER_DATA => self.master.write_data(value),
            SLAVE_COMMAND => self.slave.write_command(value),
            SLAVE_DATA => self.slave.write_data(value),
            ELCR_MASTER => self.master.set_level_triggered(value & ELCR_WRITABLE[0]),
            ELCR_SLAVE => self.slave.set_level_triggered(value & ELCR_WRITABLE[1]),
            _ => {}
        }
        self.update_cascade();
    }
}

impl PortDevice for Pic {
    fn read(&mut self, offset: u16, size: AccessSize, _cx: &mut DeviceContext) -> u32 {
        (0..size.bytes()).fold(0, |value, index| {
            let byte = self.read_port(offset.wrapping_add(index.into()));
            value | u32::from(byte) << (8 * index)
        })
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, _cx: &mut DeviceContext) {
        for (index, byte) in value.to_le_bytes()[..size.bytes().into()]
            .iter()
            .enumerate()
        {
            self.write_port(offset.wrapping_add(index as u16), *byte);
        }
    }
}

#[cfg(test)]
mod tests;
