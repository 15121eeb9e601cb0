//! The Intel 8254 programmable interval timer (ports 0x40-0x43) and the
//! PC's port 0x61 beside it (system control port B: channel 2's gate, the
//! speaker, the refresh toggle, OUT2). Citations name sections of the
//! Intel 82C54 datasheet (order number 231244) by title.
//!
//! This module owns the three counters and port 0x61. Channel 0's OUT is
//! wired to IRQ 0, which it pulses through the context's lines; it must not
//! know which interrupt controller samples that line, nor how the VM keeps
//! time (it is handed `DeviceContext::now_ns`).
//!
//! # Wiring it into a VM
//!
//! Register it with `add(PIT_BASE, PORT_COUNT, ..)` and
//! `add_range(id, PORT_B, 1)`; it sees port 0x61 at offset 0x21. It is
//! [`Timed`]: before entering the guest, the core arms its timer for
//! [`Timed::next_deadline_ns`] and, once VM time reaches it, calls
//! [`Timed::advance`], which pulses IRQ 0; then it samples the lines into
//! the interrupt controllers as after any access.
//!
//! # Modelling choices
//!
//! - **Time, not ticks.** The counters run at [`FREQUENCY_HZ`] of VM time:
//!   a count's value and its OUT are computed from the nanoseconds elapsed
//!   since it was loaded, never simulated clock by clock. A count is loaded
//!   at the instant it is written (the datasheet's load pulse, "the next
//!   CLK pulse", is taken to fall at the write), so OUT in mode 0 rises
//!   exactly N clock periods after a count of N is written — what a
//!   calibration loop measures.
//! - **Coalescing.** Rising edges of OUT0 that fell due while nobody
//!   called [`Timed::advance`] (the VM was descheduled) are delivered as
//!   one pulse of IRQ 0; the rest are counted in
//!   [`Pit::coalesced_ticks`]. Any access also brings the timer up to date
//!   first, so the guest never reads a count past an undelivered tick.
//! - **OUT0 edges from writes.** A write that raises OUT0 at once (a
//!   control word for modes 1-5 after mode 0 held it low) pulses IRQ 0 as
//!   the wire would.
//! - **New counts in modes 2 and 3** take effect at the end of the current
//!   period (the datasheet's mode 3 takes them at the next half-cycle;
//!   the difference is at most half a period, once, and keeps OUT0's
//!   rising edges on period boundaries). A count of 1, illegal in both
//!   modes, counts as 2.
//! - **BCD counting is supported**: counts are written and read as four
//!   BCD digits, and the counter wraps at 10000.
//! - **Gates.** Channels 0 and 1 have their GATE tied high, as on a PC;
//!   channel 2's is port 0x61 bit 0.
//! - **Port 0x61.** Bits 0-3 (gate 2, speaker data, the SERR# and IOCHK#
//!   NMI enables) read back as written; bit 4, the refresh toggle,
//!   flips on every read (BIOSes and Linux poll it for a change); bit 5 is
//!   OUT2; bits 6-7 (NMI sources) read 0, since no NMI is modelled.
//! - **Undefined values.** The counting element of a counter with no
//!   count loaded since its control word reads as its last value (0 at
//!   power-on); the control word register, write-only, reads 0xFF.
//! - **Power-on state** (undefined in the datasheet): every counter in
//!   mode 0, LSB-then-MSB, binary, no count written (OUT low); gate 2 low.

use super::irq::IrqLine;
use super::{AccessSize, DeviceContext, PortDevice, Timed};
#[cfg(test)]
use counter::{ns_for, ticks_in, STATUS_NULL_COUNT, STATUS_OUTPUT};
use counter::{Channel, ACCESS_SHIFT};

mod counter;

/// Channel 0's port; channels 1 and 2 and the control word follow.
pub const PIT_BASE: u16 = 0x40;
/// How many ports from [`PIT_BASE`] the 8254 decodes.
pub const PORT_COUNT: u16 = 4;
/// System control port B: channel 2's gate, the speaker, OUT2.
pub const PORT_B: u16 = 0x61;
/// The counters' input clock on every PC: 14.31818 MHz / 12.
pub const FREQUENCY_HZ: u64 = 1_193_182;
/// The line channel 0's OUT drives.
pub const PIT_IRQ: IrqLine = IrqLine::new(0).unwrap();

// Offsets from PIT_BASE, as the bus computes them.
const CONTROL: u16 = 3;
const PORT_B_OFFSET: u16 = PORT_B - PIT_BASE;

// Control word fields (datasheet, "Control Word Format").
const SELECT_SHIFT: u8 = 6;
const SELECT_READ_BACK: u8 = 3;
const ACCESS_LATCH: u8 = 0;
// Read-back command (datasheet, "Read-Back Command"): active-low latch
// selects, then one bit per counter from bit 1.
const READ_BACK_NO_COUNT: u8 = 1 << 5;
const READ_BACK_NO_STATUS: u8 = 1 << 4;

// Port 0x61.
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_WRITABLE: u8 = 0x0f;
const PORT_B_REFRESH: u8 = 1 << 4;
const PORT_B_OUT2: u8 = 1 << 5;

/// The 8254 with port 0x61.
#[derive(Debug, Clone)]
pub struct Pit {
    channels: [Channel; 3],
    /// Port 0x61 bits 0-3 (bit 0 is also channel 2's gate).
    port_b: u8,
    refresh: bool,
    delivered: u64,
    coalesced: u64,
}

impl Default for Pit {
    fn default() -> Self {
        Pit::new()
    }
}

impl Pit {
    /// The timer at power-on: no counts written, channel 2's gate low.
    /// A VM reset restarts its time at 0, so it takes a new one.
    pub const fn new() -> Pit {
        Pit {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port_b: 0,
            refresh: false,
            delivered: 0,
            coalesced: 0,
        }
    }

    /// Pulses of IRQ 0 delivered (each for one or more rising edges of
    /// OUT0).
    pub fn delivered_ticks(&self) -> u64 {
        self.delivered
    }

    /// Rising edges of OUT0 folded into an earlier pulse because they fell
    /// due before the VM was brought up to date.
    pub fn coalesced_ticks(&self) -> u64 {
        self.coalesced
    }

    /// Channel `index`'s OUT at `now_ns`, as the counters stand after the
    /// last access or advance.
    pub fn output(&self, index: usize, now_ns: u64) -> bool {
        self.channels
            .get(index)
            .is_some_and(|channel| channel.out(now_ns))
    }

    /// Brings every counter to `cx.now_ns`, pulsing IRQ 0 once if OUT0
    /// rose.
    fn catch_up(&mut self, cx: &mut DeviceContext) {
        let [channel0, rest @ ..] = &mut self.channels;
        for channel in rest {
            channel.settle(cx.now_ns);
        }
        let edges = channel0.settle(cx.now_ns);
        self.deliver(edges, cx);
    }

    fn deliver(&mut self, edges: u64, cx: &mut DeviceContext) {
        if edges > 0 {
            cx.irq.pulse(PIT_IRQ);
            self.delivered += 1;
            self.coalesced += edges - 1;
        }
    }

    fn write_control(&mut self, value: u8, now_ns: u64) {
        let select = value >> SELECT_SHIFT;
        if select == SELECT_READ_BACK {
            for (index, channel) in self.channels.iter_mut().enumerate() {
                if value & (2 << index) == 0 {
                    continue;
                }
                if value & READ_BACK_NO_COUNT == 0 {
                    channel.latch_count(now_ns);
                }
                if value & READ_BACK_NO_STATUS == 0 {
                    channel.latch_status(now_ns);
                }
            }
            return;
        }
        let channel = &mut self.channels[usize::from(select)];
        if (value >> ACCESS_SHIFT) & 3 == ACCESS_LATCH {
            channel.latch_count(now_ns);
        } else {
            channel.program(value, now_ns);
        }
    }

    fn read_port_b(&mut self, now_ns: u64) -> u8 {
        let mut value = self.port_b;
        if self.refresh {
            value |= PORT_B_REFRESH;
        }
        if self.channels[2].out(now_ns) {
            value |= PORT_B_OUT2;
        }
        self.refresh = !self.refresh;
        value
    }

    fn read_port(&mut self, offset: u16, now_ns: u64) -> u8 {
        match offset {
            0..=2 => self.channels[usize::from(offset)].read(now_ns),
            PORT_B_OFFSET => self.read_port_b(now_ns),
            // CONTROL is write-only; the rest decode nothing.
            _ => 0xff,
        }
    }

    fn write_port(&mut self, offset: u16, value: u8, now_ns: u64) {
        match offset {
            0..=2 => self.channels[usize::from(offset)].write(value, now_ns),
            CONTROL => self.write_control(value, now_ns),
            PORT_B_OFFSET => {
                self.port_b = value & PORT_B_WRITABLE;
                self.channels[2].set_gate(value & PORT_B_GATE2 != 0, now_ns);
            }
            _ => {}
        }
    }
}

impl Timed for Pit {
    fn next_deadline_ns(&self) -> Option<u64> {
        let channel0 = &self.channels[0];
        channel0.next_edge_ns(channel0.edges_through_ns)
    }

    fn advance(&mut self, cx: &mut DeviceContext) {
        self.catch_up(cx);
    }
}

impl PortDevice for Pit {
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        self.catch_up(cx);
        (0..size.bytes()).fold(0, |value, index| {
            let byte = self.read_port(offset.wrapping_add(index.into()), cx.now_ns);
            value | u32::from(byte) << (8 * index)
        })
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        self.catch_up(cx);
        for (index, byte) in value.to_le_bytes()[..size.bytes().into()]
            .iter()
            .enumerate()
        {
            let before = self.channels[0].out(cx.now_ns);
            self.write_port(offset.wrapping_add(index as u16), *byte, cx.now_ns);
            if !before && self.channels[0].out(cx.now_ns) {
                self.deliver(1, cx);
            }
        }
    }
}

#[cfg(test)]
mod tests;
