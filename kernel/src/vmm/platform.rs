//! A VM's virtual PC: its devices on the port and MMIO buses, the interrupt
//! lines between them, and the timers among them — everything a guest can
//! touch besides its RAM and its vCPU. Pure: the core drives it with the
//! VM's time and the guest's accesses, and asks it which interrupt, if any,
//! the vCPU should take next.

use super::clock::VmClock;
use crate::devices::bus::{PortBus, UnclaimedAccesses};
use crate::devices::irq::InterruptLines;
use crate::devices::serial::{self, Serial16550};
use crate::devices::{AccessSize, AnyPortDevice, ConsoleSink, DeviceContext, VmRequest};

/// What the platform needs of the core after its devices changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// An interrupt is pending for the vCPU.
    pub interrupt: bool,
    /// The VM time of the next timer event.
    pub next_deadline_ns: Option<u64>,
}

/// The devices of one VM and their wiring.
pub struct Platform {
    ports: PortBus<AnyPortDevice>,
    lines: InterruptLines,
    /// A device was touched or time advanced since the core last asked what
    /// the vCPU should take: the interrupt state and the next timer deadline
    /// may have changed. One flag, so the exit path tests a byte.
    attention: bool,
}

impl Platform {
    /// The PC every VM gets: COM1 (a 16550A on IRQ 4). Every other port
    /// reads as all ones and ignores writes, as an ISA bus with nothing
    /// decoding the address does.
    pub fn pc() -> Platform {
        let mut ports = PortBus::new();
        if let Err(error) = ports.add(
            serial::COM1_BASE,
            serial::PORT_COUNT,
            AnyPortDevice::Serial(Serial16550::com1()),
        ) {
            // The ranges are constants: a clash is a tessera bug.
            panic!("the platform's device ranges clash: {}", error);
        }
        Platform {
            ports,
            lines: InterruptLines::new(),
            attention: false,
        }
    }

    /// An IN of `size` at `port`, at TSC value `tsc`; returns the value and
    /// what the access asks of the VM. The VM's time is computed only for a
    /// port some device decodes: port 0x80 and the other probes of a booting
    /// PC cost a lookup and nothing more.
    #[inline(always)]
    pub fn read_port(
        &mut self,
        port: u16,
        size: AccessSize,
        console: &mut dyn ConsoleSink,
        clock: &VmClock,
        tsc: impl FnOnce() -> u64,
    ) -> (u32, Option<VmRequest>) {
        let now_ns = match self.ports.claimant(port) {
            Some(_) => {
                self.attention = true;
                clock.ns_at(tsc())
            }
            None => 0,
        };
        let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
        let value = self.ports.read(port, size, &mut cx);
        (value, cx.request)
    }

    /// An OUT of `size` bytes of `value` at `port`; returns what the access
    /// asks of the VM.
    #[inline(always)]
    pub fn write_port(
        &mut self,
        port: u16,
        size: AccessSize,
        value: u32,
        console: &mut dyn ConsoleSink,
        clock: &VmClock,
        tsc: impl FnOnce() -> u64,
    ) -> Option<VmRequest> {
        let now_ns = match self.ports.claimant(port) {
            Some(_) => {
                self.attention = true;
                clock.ns_at(tsc())
            }
            None => 0,
        };
        let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
        self.ports.write(port, size, value, &mut cx);
        cx.request
    }

    /// Whether a device was touched or time advanced since the last
    /// [`Platform::settle`].
    #[inline(always)]
    pub fn attention(&self) -> bool {
        self.attention
    }

    /// Makes the core settle the platform before the next entry (the vCPU
    /// became able to take an interrupt).
    pub fn notice(&mut self) {
        self.attention = true;
    }

    /// Brings the timers up to `now_ns` (firing what is due, coalescing
    /// periodic ticks that piled up while the VM was descheduled).
    pub fn advance(&mut self, now_ns: u64, console: &mut dyn ConsoleSink) {
        let _ = (now_ns, console);
        self.attention = true;
    }

    /// Routes the interrupt lines through the interrupt controllers and
    /// clears [`Platform::attention`]; returns what the core must arrange:
    /// the vector the vCPU should take next, if any, and the VM time of the
    /// next timer event, if any. (Until the interrupt controllers join the
    /// platform, nothing is ever pending.)
    pub fn settle(&mut self) -> Settled {
        self.attention = false;
        Settled {
            interrupt: false,
            next_deadline_ns: None,
        }
    }

    /// The vector of the interrupt the vCPU takes now (the interrupt
    /// controller's acknowledge cycle), after [`Settled::interrupt`] said
    /// one is pending and the vCPU can take it.
    pub fn acknowledge_interrupt(&mut self) -> Option<u8> {
        None
    }

    /// The port accesses no device decoded.
    pub fn unclaimed_ports(&self) -> UnclaimedAccesses<u16> {
        self.ports.unclaimed()
    }

    /// The interrupt lines (for the interrupt controllers and for tests).
    pub fn lines(&self) -> &InterruptLines {
        &self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const CLOCK: VmClock = VmClock::new(0, 1_000_000_000);

    #[test]
    fn com1_transmits_and_other_ports_float_high() {
        let mut platform = Platform::pc();
        let mut out: Vec<u8> = Vec::new();
        let request =
            platform.write_port(0x3f8, AccessSize::Byte, b'A' as u32, &mut out, &CLOCK, || 5);
        assert_eq!(request, None);
        assert_eq!(out, b"A");
        let (value, _) = platform.read_port(0x80, AccessSize::Byte, &mut out, &CLOCK, || {
            panic!("an unclaimed port needs no time")
        });
        assert_eq!(value, 0xff);
        let (value, _) = platform.read_port(0xcfc, AccessSize::Dword, &mut out, &CLOCK, || 0);
        assert_eq!(value, 0xffff_ffff);
        assert_eq!(platform.unclaimed_ports().reads, 2);
        // LSR: transmitter empty.
        let (lsr, _) = platform.read_port(0x3fd, AccessSize::Byte, &mut out, &CLOCK, || 7);
        assert_eq!(lsr & 0x60, 0x60);
    }
}
