//! The VM's APIC pair — its vCPU's local APIC and the I/O APIC — and the
//! wiring between them and the ISA interrupt lines.
//!
//! The pair is made when the guest first touches an APIC (a register page
//! or an APIC MSR), in the state a PC's firmware leaves: the local APIC
//! software-enabled in virtual-wire mode (LINT0 ExtINT from the 8259A,
//! LINT1 NMI; MP specification 1.4, 3.6.2.2) and every I/O APIC pin
//! masked. Until then that state is also what the VM has — the 8259A's
//! INTR reaches the vCPU and nothing else can interrupt it — so deferring
//! the pair changes nothing a guest can see, and a VM that never looks at
//! an APIC (every guest before Linux) does not pay the kilobyte it costs.
//!
//! Wiring, as the MADT describes it (`firmware/layout.rs`): ISA IRQ n is
//! I/O APIC pin n except IRQ 0, which is pin 2 ([`TIMER_GSI`]); pin 0 is
//! left unconnected (on a PC the 8259's INTR). Messages are delivered to
//! the one local APIC when their destination names it; ExtINT messages
//! are the 8259A's path, which LINT0 already gives.

use crate::devices::ioapic::{InterruptMessage, Ioapic};
use crate::devices::lapic::{ApicError, DeliveryMode, Lapic, LapicConfig};
use crate::devices::{DeviceContext, MmioDevice, MmioSize};
use crate::firmware::layout::{APIC_WINDOW_SIZE, IOAPIC_BASE, TIMER_GSI, TIMER_IRQ};

/// The local APIC's register window while IA32_APIC_BASE is where reset
/// puts it (a relocated base is honoured through [`Lapic::apic_base`]).
fn lapic_window(lapic: &Lapic) -> u64 {
    lapic.apic_base() & !0xfff
}

/// ISA interrupt lines (bit n: IRQ n) as I/O APIC pins (bit n: GSI n).
pub(super) const fn isa_to_gsi(lines: u32) -> u32 {
    let timer = (lines >> TIMER_IRQ) & 1;
    let others = lines & !(1 << TIMER_IRQ) & !(1 << TIMER_GSI);
    // IRQ 2 is the cascade on the 8259A pair and no device drives it; its
    // pin is the timer's.
    others | (timer << TIMER_GSI)
}

/// The local APIC and I/O APIC of a one-vCPU VM.
pub struct Apics {
    lapic: Lapic,
    ioapic: Ioapic,
    /// Messages no local APIC took: SMI, INIT and start-up messages, which
    /// a one-vCPU PC does not carry out, and messages and IPIs for another
    /// APIC ID.
    undelivered: u64,
    /// An NMI reached the vCPU and waits to be injected. NMIs are edge
    /// events the processor latches one deep: another arriving while one
    /// waits is the same NMI (SDM Vol. 3A, 7.7.1: the NMI "latch").
    nmi_latched: bool,
    /// NMIs that arrived while one was already latched.
    nmis_merged: u64,
}

impl Apics {
    /// The pair as firmware leaves it (see the module's documentation).
    pub fn new(config: LapicConfig, ioapic_id: u8) -> Apics {
        let mut lapic = Lapic::new(config);
        lapic.enter_virtual_wire_mode();
        Apics {
            lapic,
            ioapic: Ioapic::new(ioapic_id),
            undelivered: 0,
            nmi_latched: false,
            nmis_merged: 0,
        }
    }

    /// An NMI for the vCPU (an NMI message, an NMI IPI, LINT1).
    fn raise_nmi(&mut self) {
        if self.nmi_latched {
            self.nmis_merged += 1;
        }
        self.nmi_latched = true;
    }

    /// Whether an NMI waits for the vCPU.
    pub fn nmi_pending(&self) -> bool {
        self.nmi_latched
    }

    /// The vCPU takes the latched NMI; false if there was none.
    pub fn take_nmi(&mut self) -> bool {
        core::mem::take(&mut self.nmi_latched)
    }

    /// NMIs that arrived while one was latched, and were merged into it.
    pub fn nmis_merged(&self) -> u64 {
        self.nmis_merged
    }

    /// The local APIC.
    pub fn lapic(&self) -> &Lapic {
        &self.lapic
    }

    /// The I/O APIC.
    pub fn ioapic(&self) -> &Ioapic {
        &self.ioapic
    }

    /// The guest wrote `value` to IA32_TSC at `now_ns`.
    pub fn set_guest_tsc(&mut self, value: u64, now_ns: u64) {
        self.lapic.set_guest_tsc(value, now_ns);
    }

    /// Messages that reached no local APIC.
    pub fn undelivered(&self) -> u64 {
        self.undelivered
    }

    /// Takes in the ISA lines' `levels` and `edges` (as the 8259A got
    /// them) at the I/O APIC and delivers what fires; then hands the I/O
    /// APIC the EOIs of level-triggered vectors the local APIC took since,
    /// which send again the pins still asserted (SDM Vol. 3A, 12.8.5). The
    /// EOIs wait for this point so that the I/O APIC judges "still
    /// asserted" on the lines as they are now: a guest's handler typically
    /// quiets its device (which lowers the line) just before the EOI.
    pub fn sync_lines(&mut self, levels: u32, edges: u32) {
        let messages = self.ioapic.sync(isa_to_gsi(levels), isa_to_gsi(edges));
        for message in messages {
            self.deliver(message);
        }
        self.take_level_eois();
    }

    /// Hands the I/O APIC the EOIs of level-triggered vectors the local
    /// APIC took since the last call (the second half of
    /// [`Apics::sync_lines`], for when the lines did not move).
    pub fn take_level_eois(&mut self) {
        while let Some(vector) = self.lapic.take_level_eoi() {
            let messages = self.ioapic.end_of_interrupt(vector);
            for message in messages {
                self.deliver(message);
            }
        }
    }

    /// One I/O APIC message to the local APIC.
    fn deliver(&mut self, message: InterruptMessage) {
        let for_us = self
            .lapic
            .is_message_destination(message.destination.into(), message.logical_destination);
        match message.delivery_mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority if for_us => {
                self.lapic.accept(message.vector, message.level_triggered);
            }
            // The 8259A's vector reaches the vCPU through LINT0.
            DeliveryMode::ExtInt => {}
            // An NMI pin ignores its vector (82093AA datasheet, 3.2.4,
            // IOREDTBL delivery mode 100).
            DeliveryMode::Nmi if for_us => self.raise_nmi(),
            _ => self.undelivered += 1,
        }
    }

    /// Whether an interrupt is pending for the vCPU: a vector the local
    /// APIC would deliver, or the 8259A's INTR (`pic_output`) through the
    /// virtual wire.
    pub fn interrupt_pending(&self, pic_output: bool) -> bool {
        self.lapic.pending().is_some() || (pic_output && self.lapic.lint0_extint())
    }

    /// The vector the vCPU takes now: the local APIC's highest deliverable
    /// one, else (`pic` is the 8259A's acknowledge cycle) the 8259A's through
    /// the virtual wire. `None` when neither has one.
    pub fn acknowledge(&mut self, pic_output: bool, pic: impl FnOnce() -> u8) -> Option<u8> {
        if let Some(vector) = self.lapic.pending() {
            self.lapic.acknowledge(vector);
            return Some(vector);
        }
        (pic_output && self.lapic.lint0_extint()).then(pic)
    }

    /// The local APIC timer's next expiry.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        crate::devices::Timed::next_deadline_ns(&self.lapic)
    }

    /// Brings the local APIC timer up to `cx.now_ns`.
    pub fn advance(&mut self, cx: &mut DeviceContext) {
        crate::devices::Timed::advance(&mut self.lapic, cx);
    }

    /// Whether `gpa` is in one of the two register windows.
    pub fn decodes(&self, gpa: u64) -> bool {
        self.window(gpa).is_some()
    }

    /// The window `gpa` falls in and its offset there.
    fn window(&self, gpa: u64) -> Option<(Window, u64)> {
        let lapic = lapic_window(&self.lapic);
        if self.lapic.hardware_enabled() && gpa.wrapping_sub(lapic) < APIC_WINDOW_SIZE {
            return Some((Window::Lapic, gpa - lapic));
        }
        let offset = gpa.wrapping_sub(u64::from(IOAPIC_BASE));
        (offset < APIC_WINDOW_SIZE).then_some((Window::Ioapic, offset))
    }

    /// A read of `size` at `gpa`; `None` when no APIC decodes it.
    pub fn mmio_read(&mut self, gpa: u64, size: MmioSize, cx: &mut DeviceContext) -> Option<u64> {
        let (window, offset) = self.window(gpa)?;
        Some(match window {
            Window::Lapic => self.lapic.read(offset, size, cx),
            Window::Ioapic => self.ioapic.read(offset, size, cx),
        })
    }

    /// A write of `size` bytes of `value` at `gpa`; `None` when no APIC
    /// decodes it.
    pub fn mmio_write(
        &mut self,
        gpa: u64,
        size: MmioSize,
        value: u64,
        cx: &mut DeviceContext,
    ) -> Option<()> {
        let (window, offset) = self.window(gpa)?;
        match window {
            Window::Lapic => self.lapic.write(offset, size, value, cx),
            Window::Ioapic => {
                self.ioapic.write(offset, size, value, cx);
                // Unmasking an asserted level-triggered pin fires it.
                let messages = self.ioapic.take_messages();
                for message in messages {
                    self.deliver(message);
                }
            }
        }
        self.after_lapic_change();
        Some(())
    }

    /// RDMSR of an APIC MSR (see [`Lapic::handles_msr`]).
    pub fn read_msr(&self, msr: u32, now_ns: u64) -> Result<u64, ApicError> {
        self.lapic.read_msr(msr, now_ns)
    }

    /// WRMSR of an APIC MSR.
    pub fn write_msr(
        &mut self,
        msr: u32,
        value: u64,
        cx: &mut DeviceContext,
    ) -> Result<(), ApicError> {
        let result = self.lapic.write_msr(msr, value, cx);
        self.after_lapic_change();
        result
    }

    /// What a local APIC register write leaves for the rest of the PC: an
    /// NMI IPI that reaches this APIC (self, all-including-self, its own
    /// ID) is latched for the vCPU; other IPIs to other processors have
    /// nobody to reach on a one-vCPU VM (a fixed IPI to itself the local
    /// APIC has already taken). Level EOIs wait for [`Apics::sync_lines`],
    /// which the core's settle runs next.
    fn after_lapic_change(&mut self) {
        while let Some(ipi) = self.lapic.take_ipi() {
            match ipi.delivery_mode {
                DeliveryMode::Nmi if self.lapic.is_destination(ipi.destination) => self.raise_nmi(),
                DeliveryMode::Fixed | DeliveryMode::LowestPriority
                    if self.lapic.is_destination(ipi.destination) => {}
                _ => self.undelivered += 1,
            }
        }
    }
}

/// Which register window an address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Lapic,
    Ioapic,
}
