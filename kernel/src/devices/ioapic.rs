//! The I/O APIC, as the Intel 82093AA datasheet describes it: 24 input
//! pins, each routed by a redirection-table entry to an interrupt message
//! for the local APICs. Register descriptions are cited by their datasheet
//! titles (IOREGSEL, IOWIN, IOAPICID, IOAPICVER, IOAPICARB, IOREDTBL).
//!
//! This module owns the redirection table, the indirect register window and
//! the pins' last-seen levels. It must not reach a local APIC: what fires
//! comes out as [`InterruptMessage`]s the core hands on (see
//! [`Ioapic::take_messages`]), and EOIs come back in through
//! [`Ioapic::end_of_interrupt`].
//!
//! Modelling choices:
//! - **Pins carry the asserted state.** A device raising its
//!   [`InterruptLines`](super::irq::InterruptLines) line means "asserted",
//!   whatever the wire's electrical polarity. The polarity bit is stored and
//!   read back but inverts nothing, so a guest that (rightly) programs PCI
//!   pins active-low still sees them fire.
//! - **Version 0x11** (the 82093AA), which has no EOI register: EOIs arrive
//!   as the local APIC's broadcast. As on that part, switching a pin to
//!   edge-triggered clears its remote IRR (Linux relies on this to clear a
//!   stuck remote IRR on I/O APICs without an EOI register).
//! - **Delivery modes.** Fixed and lowest priority (to the only CPU, or as
//!   the core routes it) are the level-triggered ones; SMI, NMI, INIT and
//!   ExtINT are sent on a rising edge whatever the trigger-mode bit says, as
//!   the datasheet requires them to be programmed edge-triggered. The
//!   reserved modes (011, 110) send nothing.
//! - **Delivery status** reads 1 while a message waits for the core to take
//!   it, 0 otherwise: delivery itself is instant.
//! - **Accesses.** IOREGSEL at offset 0x00 takes 1-, 2- or 4-byte writes
//!   (its low byte selects); IOWIN at 0x10 is accessed 32 bits at a time.
//!   Any other access reads 0 and is dropped. Registers past the table read
//!   0 and ignore writes.

use super::irq::{IrqLine, LINE_COUNT};
use super::lapic::DeliveryMode;
use super::{DeviceContext, MmioDevice, MmioSize};

/// Where a PC's I/O APIC sits in guest-physical memory.
pub const IOAPIC_BASE_ADDRESS: u64 = 0xfec0_0000;
/// Bytes the I/O APIC claims (registers at 0x00 and 0x10 only).
pub const MMIO_LENGTH: u64 = 0x1000;
/// Redirection entries (input pins).
pub const PIN_COUNT: usize = LINE_COUNT as usize;
/// IOAPICVER: version 0x11, maximum redirection entry 23 in bits 23:16.
pub const VERSION: u32 = 0x11 | ((PIN_COUNT as u32 - 1) << 16);

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;

// Indirect registers (IOREGSEL values).
const IOAPICID: u8 = 0x00;
const IOAPICVER: u8 = 0x01;
const IOAPICARB: u8 = 0x02;
const IOREDTBL_FIRST: u8 = 0x10;
const IOREDTBL_LAST: u8 = IOREDTBL_FIRST + 2 * PIN_COUNT as u8 - 1;

// IOREDTBL bits (datasheet, IOREDTBL).
const DESTINATION_LOGICAL: u64 = 1 << 11;
const DELIVERY_STATUS: u64 = 1 << 12;
const REMOTE_IRR: u64 = 1 << 14;
const TRIGGER_LEVEL: u64 = 1 << 15;
const MASK: u64 = 1 << 16;
/// Vector, delivery mode, destination mode, polarity, trigger mode, mask
/// and destination; delivery status and remote IRR are read-only, bits
/// 55:17 reserved.
const WRITABLE: u64 = 0xff00_0000_0001_afff;
/// An entry after reset: masked (the datasheet leaves the rest undefined;
/// here it is 0).
const ENTRY_RESET: u64 = MASK;

/// What the I/O APIC sends when a pin fires: the core hands it to the local
/// APIC (fixed, lowest priority), injects an NMI, asks the 8259 for the
/// vector (ExtINT), or logs it (SMI, INIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptMessage {
    /// The pin that fired.
    pub pin: IrqLine,
    /// The vector.
    pub vector: u8,
    /// How the destination treats it.
    pub delivery_mode: DeliveryMode,
    /// The destination field (an APIC ID, or a logical destination).
    pub destination: u8,
    /// Whether `destination` is logical (destination mode bit 11).
    pub logical_destination: bool,
    /// Whether it is level-triggered: the local APIC sets TMR, and its EOI
    /// must come back through [`Ioapic::end_of_interrupt`].
    pub level_triggered: bool,
}

const NO_MESSAGE: InterruptMessage = InterruptMessage {
    pin: IrqLine::new(0).unwrap(),
    vector: 0,
    delivery_mode: DeliveryMode::Fixed,
    destination: 0,
    logical_destination: false,
    level_triggered: false,
};

/// The messages one call produced, in pin order; no allocation.
#[derive(Debug, Clone)]
pub struct Messages {
    messages: [InterruptMessage; PIN_COUNT],
    length: usize,
    next: usize,
}

impl Messages {
    /// How many messages are left.
    pub fn len(&self) -> usize {
        self.length - self.next
    }

    /// Whether none are left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Iterator for Messages {
    type Item = InterruptMessage;

    fn next(&mut self) -> Option<InterruptMessage> {
        let message = self.messages[..self.length].get(self.next).copied()?;
        self.next += 1;
        Some(message)
    }
}

/// An 82093AA I/O APIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ioapic {
    /// IOAPICID bits 27:24.
    id: u8,
    select: u8,
    entries: [u64; PIN_COUNT],
    /// Bit n: pin n is asserted, as last seen.
    asserted: u32,
    /// Bit n: pin n fired and its message waits in `outbox[n]`.
    waiting: u32,
    outbox: [InterruptMessage; PIN_COUNT],
}

impl Ioapic {
    /// An I/O APIC after reset, with APIC ID `id` (its low 4 bits; the MP
    /// table or MADT must give the same), every pin masked.
    pub fn new(id: u8) -> Ioapic {
        Ioapic {
            id: id & 0xf,
            select: 0,
            entries: [ENTRY_RESET; PIN_COUNT],
            asserted: 0,
            waiting: 0,
            outbox: [NO_MESSAGE; PIN_COUNT],
        }
    }

    /// The redirection entry of `pin` as the guest reads it.
    pub fn redirection_entry(&self, pin: IrqLine) -> u64 {
        let index = usize::from(pin.number());
        let status = if self.waiting & (1 << index) != 0 {
            DELIVERY_STATUS
        } else {
            0
        };
        self.entries[index] | status
    }

    /// Whether `pin`'s entry has remote IRR set: a level interrupt was sent
    /// and its EOI has not come back.
    pub fn remote_irr(&self, pin: IrqLine) -> bool {
        self.entries[usize::from(pin.number())] & REMOTE_IRR != 0
    }

    /// Drives `pin` asserted or not; returns what fired (with anything an
    /// MMIO access left waiting).
    pub fn set_pin(&mut self, pin: IrqLine, asserted: bool) -> Messages {
        let bit = 1 << pin.number();
        let rising = asserted && self.asserted & bit == 0;
        self.input(usize::from(pin.number()), asserted, rising);
        self.take_messages()
    }

    /// Takes in every pin at once: `levels` (bit n: line n asserted) and
    /// `edges` (bit n: line n rose since the last call, even if it is low
    /// again — a pulse), as [`InterruptLines`](super::irq::InterruptLines)
    /// gives them. The caller takes the edges once and shares them with the
    /// 8259 model.
    pub fn sync(&mut self, levels: u32, edges: u32) -> Messages {
        for pin in 0..PIN_COUNT {
            let bit = 1 << pin;
            let asserted = levels & bit != 0;
            let rising = edges & bit != 0 || (asserted && self.asserted & bit == 0);
            self.input(pin, asserted, rising);
        }
        self.take_messages()
    }

    /// An EOI for `vector` from a local APIC: clears remote IRR of the
    /// level-triggered pins with that vector, and sends again those still
    /// asserted (datasheet, IOREDTBL, remote IRR bit).
    pub fn end_of_interrupt(&mut self, vector: u8) -> Messages {
        for pin in 0..PIN_COUNT {
            let entry = self.entries[pin];
            if entry & REMOTE_IRR != 0 && entry as u8 == vector {
                self.entries[pin] &= !REMOTE_IRR;
                self.reevaluate_level(pin);
            }
        }
        self.take_messages()
    }

    /// The messages waiting: fired by a register write (unmasking an
    /// asserted level pin) since the core last took them. The core calls
    /// this after every MMIO access to the I/O APIC.
    pub fn take_messages(&mut self) -> Messages {
        let mut messages = Messages {
            messages: [NO_MESSAGE; PIN_COUNT],
            length: 0,
            next: 0,
        };
        for pin in 0..PIN_COUNT {
            if self.waiting & (1 << pin) != 0 {
                messages.messages[messages.length] = self.outbox[pin];
                messages.length += 1;
            }
        }
        self.waiting = 0;
        messages
    }

    fn input(&mut self, pin: usize, asserted: bool, rising: bool) {
        let bit = 1 << pin;
        if asserted {
            self.asserted |= bit;
        } else {
            self.asserted &= !bit;
        }
        if self.level_triggered(pin) {
            self.reevaluate_level(pin);
        } else if rising {
            // Masked edges are lost (datasheet, IOREDTBL, mask bit).
            self.fire(pin);
        }
    }

    /// A level-triggered pin fires while asserted, unmasked and without
    /// remote IRR.
    fn reevaluate_level(&mut self, pin: usize) {
        if self.level_triggered(pin) && self.asserted & (1 << pin) != 0 {
            self.fire(pin);
        }
    }

    /// Whether `pin` is level-triggered: trigger-mode bit set, with a fixed
    /// or lowest-priority delivery mode (the others are edge-only).
    fn level_triggered(&self, pin: usize) -> bool {
        let entry = self.entries[pin];
        entry & TRIGGER_LEVEL != 0
            && matches!(
                DeliveryMode::from_bits((entry >> 8) as u32),
                Some(DeliveryMode::Fixed | DeliveryMode::LowestPriority)
            )
    }

    /// Sends `pin`'s message unless masked, reserved, or (level) waiting
    /// for its EOI; a level send sets remote IRR.
    fn fire(&mut self, pin: usize) {
        let entry = self.entries[pin];
        if entry & MASK != 0 {
            return;
        }
        let delivery_mode = match DeliveryMode::from_bits((entry >> 8) as u32) {
            Some(DeliveryMode::Startup) | None => return,
            Some(mode) => mode,
        };
        let level_triggered = self.level_triggered(pin);
        if level_triggered {
            if entry & REMOTE_IRR != 0 {
                return;
            }
            self.entries[pin] |= REMOTE_IRR;
        }
        self.outbox[pin] = InterruptMessage {
            pin: IrqLine::new(pin as u8).unwrap_or(NO_MESSAGE.pin),
            vector: entry as u8,
            delivery_mode,
            destination: (entry >> 56) as u8,
            logical_destination: entry & DESTINATION_LOGICAL != 0,
            level_triggered,
        };
        self.waiting |= 1 << pin;
    }

    fn read_register(&self) -> u32 {
        match self.select {
            IOAPICID => u32::from(self.id) << 24,
            IOAPICVER => VERSION,
            // The arbitration ID is loaded from the APIC ID (datasheet,
            // IOAPICARB); there is no bus to arbitrate.
            IOAPICARB => u32::from(self.id) << 24,
            IOREDTBL_FIRST..=IOREDTBL_LAST => {
                let index = usize::from(self.select - IOREDTBL_FIRST);
                let pin = IrqLine::new((index / 2) as u8).unwrap_or(NO_MESSAGE.pin);
                let entry = self.redirection_entry(pin);
                if index % 2 == 0 {
                    entry as u32
                } else {
                    (entry >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, value: u32) {
        match self.select {
            IOAPICID => self.id = ((value >> 24) & 0xf) as u8,
            IOREDTBL_FIRST..=IOREDTBL_LAST => {
                let index = usize::from(self.select - IOREDTBL_FIRST);
                let pin = index / 2;
                let (half, shift) = if index % 2 == 0 {
                    (0xffff_ffff, 0)
                } else {
                    (0xffff_ffff << 32, 32)
                };
                let old = self.entries[pin];
                let mut entry =
                    (old & !(half & WRITABLE)) | ((u64::from(value) << shift) & half & WRITABLE);
                if entry & TRIGGER_LEVEL == 0 {
                    // Edge-triggered: no EOI is awaited.
                    entry &= !REMOTE_IRR;
                }
                self.entries[pin] = entry;
                // Unmasking (or making level-triggered) an asserted level
                // pin sends it now.
                self.reevaluate_level(pin);
            }
            // IOAPICVER and IOAPICARB are read-only.
            _ => {}
        }
    }
}

impl MmioDevice for Ioapic {
    fn read(&mut self, offset: u64, size: MmioSize, _cx: &mut DeviceContext) -> u64 {
        match (offset, size) {
            (IOREGSEL, MmioSize::Byte | MmioSize::Word | MmioSize::Dword) => self.select.into(),
            (IOWIN, MmioSize::Dword) => self.read_register().into(),
            _ => 0,
        }
    }

    fn write(&mut self, offset: u64, size: MmioSize, value: u64, _cx: &mut DeviceContext) {
        match (offset, size) {
            (IOREGSEL, MmioSize::Byte | MmioSize::Word | MmioSize::Dword) => {
                self.select = value as u8
            }
            (IOWIN, MmioSize::Dword) => self.write_register(value as u32),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
