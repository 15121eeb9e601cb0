//! IPIs: what the ICR encodes, whom an IPI reaches, and the log of IPIs
//! the core carries out (SDM Vol. 3A, 12.6).

use super::{esr, ApicMode, Lapic, ICR_DESTINATION_LOGICAL, ICR_LEVEL_ASSERT, ICR_TRIGGER_LEVEL};

/// A delivery mode, as the ICR, the LVT and the I/O APIC's redirection
/// entries encode it in 3 bits (SDM Vol. 3A, 12.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// 000: the vector, to the destination's IRR.
    Fixed,
    /// 001: the vector, to the lowest-priority destination.
    LowestPriority,
    /// 010: a system-management interrupt.
    Smi,
    /// 100: a non-maskable interrupt.
    Nmi,
    /// 101: INIT.
    Init,
    /// 110: start-up (SIPI), with the vector as the start page.
    Startup,
    /// 111: the vector comes from an 8259-compatible controller.
    ExtInt,
}

impl DeliveryMode {
    /// The mode `bits` (the 3-bit field) encode; 011 is reserved.
    pub const fn from_bits(bits: u32) -> Option<DeliveryMode> {
        match bits & 7 {
            0b000 => Some(DeliveryMode::Fixed),
            0b001 => Some(DeliveryMode::LowestPriority),
            0b010 => Some(DeliveryMode::Smi),
            0b100 => Some(DeliveryMode::Nmi),
            0b101 => Some(DeliveryMode::Init),
            0b110 => Some(DeliveryMode::Startup),
            0b111 => Some(DeliveryMode::ExtInt),
            _ => None,
        }
    }
}

/// Whom an IPI is for (SDM Vol. 3A, 12.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiDestination {
    /// Shorthand 01: this APIC.
    SelfOnly,
    /// Shorthand 10: every APIC, this one included.
    AllIncludingSelf,
    /// Shorthand 11: every other APIC.
    AllExcludingSelf,
    /// No shorthand, physical mode: the APIC with this ID (all ones is a
    /// broadcast).
    Physical(u32),
    /// No shorthand, logical mode: the APICs whose LDR matches.
    Logical(u32),
}

/// An IPI the guest sent through the ICR, as logged for the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentIpi {
    /// What it asks for.
    pub delivery_mode: DeliveryMode,
    /// The vector (the start page for a SIPI).
    pub vector: u8,
    /// Whom it is for.
    pub destination: IpiDestination,
    /// ICR bit 14: assert (1) or de-assert (0); an INIT with level 0 and
    /// level trigger is the legacy INIT de-assert.
    pub level_assert: bool,
    /// ICR bit 15: level-triggered.
    pub level_triggered: bool,
}

/// How many IPIs wait in the log before more are dropped (and counted).
pub const IPI_LOG_CAPACITY: usize = 16;

/// A fixed-capacity FIFO of IPIs for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IpiLog {
    entries: [Option<SentIpi>; IPI_LOG_CAPACITY],
    head: usize,
    length: usize,
    pub(super) dropped: u64,
}

impl IpiLog {
    pub(super) const fn new() -> IpiLog {
        IpiLog {
            entries: [None; IPI_LOG_CAPACITY],
            head: 0,
            length: 0,
            dropped: 0,
        }
    }

    pub(super) fn push(&mut self, ipi: SentIpi) {
        if self.length == IPI_LOG_CAPACITY {
            self.dropped += 1;
            return;
        }
        self.entries[(self.head + self.length) % IPI_LOG_CAPACITY] = Some(ipi);
        self.length += 1;
    }

    pub(super) fn pop(&mut self) -> Option<SentIpi> {
        if self.length == 0 {
            return None;
        }
        let ipi = self.entries[self.head].take();
        self.head = (self.head + 1) % IPI_LOG_CAPACITY;
        self.length -= 1;
        ipi
    }
}

impl Lapic {
    /// Sends the IPI in ICR (SDM Vol. 3A, 12.6.1, 12.6.2). `destination`
    /// is the destination field (8 bits in xAPIC mode, 32 in x2APIC).
    pub(super) fn send_ipi(&mut self, low: u32, destination: u32) {
        let Some(delivery_mode) = DeliveryMode::from_bits(low >> 8) else {
            return;
        };
        let vector = low as u8;
        let destination = match (low >> 18) & 3 {
            1 => IpiDestination::SelfOnly,
            2 => IpiDestination::AllIncludingSelf,
            3 => IpiDestination::AllExcludingSelf,
            _ if low & ICR_DESTINATION_LOGICAL != 0 => IpiDestination::Logical(destination),
            _ => IpiDestination::Physical(destination),
        };
        let ipi = SentIpi {
            delivery_mode,
            vector,
            destination,
            level_assert: low & ICR_LEVEL_ASSERT != 0,
            level_triggered: low & ICR_TRIGGER_LEVEL != 0,
        };
        let fixed = matches!(
            delivery_mode,
            DeliveryMode::Fixed | DeliveryMode::LowestPriority
        );
        if fixed && vector < 16 {
            self.record_error(esr::SEND_ILLEGAL_VECTOR);
            return;
        }
        let only_self = match destination {
            IpiDestination::SelfOnly => true,
            IpiDestination::Physical(id) => id == self.own_physical_id(),
            _ => false,
        };
        if !(fixed && only_self) {
            self.ipis.push(ipi);
        }
        if fixed && self.is_destination(destination) {
            // IPIs are edge-triggered into IRR: the trigger-mode bit only
            // matters for the INIT de-assert (12.6.1).
            self.accept(vector, false);
        }
    }

    /// Whether an interrupt message (an I/O APIC's or an MSI's) with
    /// `destination` in physical or logical mode is for this APIC: the
    /// same matching as an IPI's (SDM Vol. 3A, 12.6.2.1-12.6.2.2).
    pub fn is_message_destination(&self, destination: u32, logical: bool) -> bool {
        self.is_destination(if logical {
            IpiDestination::Logical(destination)
        } else {
            IpiDestination::Physical(destination)
        })
    }

    /// This APIC's ID as physical destinations name it.
    fn own_physical_id(&self) -> u32 {
        match self.mode {
            ApicMode::X2Apic => self.config.apic_id,
            _ => self.xapic_id.into(),
        }
    }

    /// Whether an IPI to `destination` reaches this APIC (SDM Vol. 3A,
    /// 12.6.2; 12.12.10 for x2APIC).
    pub fn is_destination(&self, destination: IpiDestination) -> bool {
        let x2apic = self.mode == ApicMode::X2Apic;
        let broadcast = if x2apic { u32::MAX } else { 0xff };
        match destination {
            IpiDestination::SelfOnly | IpiDestination::AllIncludingSelf => true,
            IpiDestination::AllExcludingSelf => false,
            IpiDestination::Physical(id) => id == broadcast || id == self.own_physical_id(),
            IpiDestination::Logical(id) if id == broadcast => true,
            IpiDestination::Logical(id) if x2apic => {
                let ldr = self.x2apic_logical_id();
                id >> 16 == ldr >> 16 && id & ldr & 0xffff != 0
            }
            IpiDestination::Logical(id) => {
                let ldr = self.logical_destination >> 24;
                if self.destination_format >> 28 == 0xf {
                    // Flat model: a bit per APIC.
                    ldr & id != 0
                } else {
                    // Cluster model: cluster in the high nibble.
                    ldr >> 4 == (id >> 4) & 0xf && ldr & id & 0xf != 0
                }
            }
        }
    }
}
