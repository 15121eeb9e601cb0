//! A VM's virtual PC: its devices on the port and MMIO buses, the interrupt
//! lines between them, and the timers among them — everything a guest can
//! touch besides its RAM and its vCPU. Pure: the core drives it with the
//! VM's time and the guest's accesses, and asks it which interrupt, if any,
//! the vCPU should take next.

mod apic;

pub use apic::Apics;

use super::clock::VmClock;
use crate::devices::bus::{DeviceId, PortBus, UnclaimedAccesses};
use crate::devices::irq::InterruptLines;
use crate::devices::lapic::{ApicError, Lapic, LapicConfig};
use crate::devices::serial::{self, Serial16550};
use crate::devices::MmioSize;
use crate::devices::{acpi_pm, debug_exit, fw_cfg, i8042, pci, pic, pit, reset, rtc};
use crate::devices::{AccessSize, AnyPortDevice, ConsoleSink, DeviceContext, Timed, VmRequest};
use crate::firmware::layout::{APIC_TIMER_HZ, APIC_WINDOW_SIZE, IOAPIC_BASE, LAPIC_BASE};

/// How many devices [`Platform::pc`] puts on the port bus (its table is
/// allocated at that size once).
const DEVICES: usize = 8;
/// How many port ranges they decode: one per row of [`PC_PORTS`].
const RANGES: usize = PC_PORTS.len();

/// What a VM's PC is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformConfig {
    /// Guest RAM, for the CMOS memory bytes and fw_cfg.
    pub ram_bytes: u64,
    /// The wall-clock time at the VM's start, in seconds since the Unix
    /// epoch (the host's RTC), which the guest's RTC starts from.
    pub unix_seconds: u64,
    /// The port of an isa-debug-exit device (`debug-exit=`), if the VM has
    /// one. [`pc_port_owner`] must have found it free.
    pub debug_exit: Option<u16>,
    /// The guest TSC's rate, against which the local APIC compares
    /// IA32_TSC_DEADLINE.
    pub tsc_hz: u64,
}

/// The I/O APIC's ID: the vCPU count (`firmware/layout.rs`).
const IOAPIC_ID: u8 = 1;

/// The ports the PC decodes, and whose they are: the one list that options
/// checking (`debug-exit=`, in the kernel and the host tool) consults, kept
/// equal to what [`Platform::pc`] registers by a test that asks the bus
/// about every port.
const PC_PORTS: [(u16, u16, &str); 14] = [
    (serial::COM1_BASE, serial::PORT_COUNT, "COM1"),
    (pic::MASTER_BASE, 2, "the master 8259A"),
    (pic::SLAVE_BASE, 2, "the slave 8259A"),
    (pic::ELCR_BASE, 2, "the 8259A's ELCR"),
    (pit::PIT_BASE, pit::PORT_COUNT, "the 8254 PIT"),
    (pit::PORT_B, 1, "port 0x61 (PIT channel 2 gate)"),
    (rtc::BASE_PORT, rtc::PORT_COUNT, "the RTC/CMOS"),
    (acpi_pm::PM_BASE, acpi_pm::PORT_COUNT, "the ACPI PM blocks"),
    (
        reset::RESET_CONTROL_PORT,
        reset::PORT_COUNT,
        "the reset control register",
    ),
    (i8042::BASE_PORT, 1, "the i8042 data port"),
    (i8042::BASE_PORT + 4, 1, "the i8042 command port"),
    (fw_cfg::SELECTOR_PORT, fw_cfg::PORT_COUNT, "fw_cfg"),
    (pci::CONFIG_ADDRESS_PORT, 1, "PCI CONFIG_ADDRESS"),
    (
        pci::CONFIG_DATA_PORT,
        pci::CONFIG_DATA_COUNT,
        "PCI CONFIG_DATA",
    ),
];

/// Which of the PC's devices decodes `port`, if one does.
pub fn pc_port_owner(port: u16) -> Option<&'static str> {
    PC_PORTS
        .iter()
        .find(|&&(first, count, _)| {
            port >= first && u32::from(port) < u32::from(first) + u32::from(count)
        })
        .map(|&(_, _, name)| name)
}

/// What the platform needs of the core after its devices changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// An interrupt is pending for the vCPU.
    pub interrupt: bool,
    /// An NMI is pending for the vCPU.
    pub nmi: bool,
    /// The VM time of the next timer event.
    pub next_deadline_ns: Option<u64>,
}

/// The devices of one VM and their wiring.
pub struct Platform {
    ports: PortBus<AnyPortDevice>,
    lines: InterruptLines,
    /// The 8259A pair: the interrupt controller the vCPU takes interrupts
    /// from until the local APIC joins.
    pic: DeviceId,
    /// The devices with timers of their own (PIT, RTC, PM timer).
    timers: [DeviceId; 3],
    /// A device was touched or time advanced since the core last asked what
    /// the vCPU should take: the interrupt state and the next timer deadline
    /// may have changed. One flag, so the exit path tests a byte.
    attention: bool,
    /// The local APIC and I/O APIC, made when the guest first touches one
    /// (see [`Apics`]: until then the VM is in the state they would start
    /// in, and costs the host a kilobyte less).
    apics: Option<alloc::boxed::Box<Apics>>,
    /// The guest TSC's rate, for the local APIC when it is made.
    tsc_hz: u64,
    /// The line levels the interrupt controllers last took in. While the
    /// lines stay so, with no edge, taking them in again changes nothing
    /// (the controllers' own register writes, INTAs and EOIs keep them
    /// consistent), and settle skips it: most exits that touch a device
    /// move no line.
    synced_levels: u32,
}

impl Platform {
    /// The PC every VM gets: COM1 (a 16550A on IRQ 4), the 8259A pair
    /// (0x20, 0xA0, ELCR 0x4D0), the 8254 PIT (0x40, port 0x61), the RTC and
    /// CMOS (0x70), the ACPI PM blocks and PM timer (0x600), the reset
    /// control register (0xCF9), PCI configuration mechanism #1 with the
    /// host bridge (0xCF8, 0xCFC), an i8042 with nothing behind it (0x60,
    /// 0x64) and fw_cfg (0x510). Every other port reads as all ones and
    /// ignores writes, as an ISA bus with nothing decoding the address does.
    pub fn pc(config: PlatformConfig) -> Platform {
        let debug_exit = usize::from(config.debug_exit.is_some());
        let mut ports = PortBus::with_capacity(DEVICES + debug_exit, RANGES + debug_exit);
        let mut add =
            |first: u16, count: u16, device: AnyPortDevice| match ports.add(first, count, device) {
                Ok(id) => id,
                // The ranges are constants: a clash is a tessera bug.
                Err(error) => panic!("the platform's device ranges clash: {}", error),
            };
        add(
            serial::COM1_BASE,
            serial::PORT_COUNT,
            AnyPortDevice::Serial(alloc::boxed::Box::new(Serial16550::com1())),
        );
        let pic = add(pic::MASTER_BASE, 2, AnyPortDevice::Pic(pic::Pic::new()));
        let pit = add(
            pit::PIT_BASE,
            pit::PORT_COUNT,
            AnyPortDevice::Pit(alloc::boxed::Box::default()),
        );
        let rtc = add(
            rtc::BASE_PORT,
            rtc::PORT_COUNT,
            AnyPortDevice::Rtc(alloc::boxed::Box::new(rtc::Rtc::new(
                config.unix_seconds,
                rtc::CmosLayout {
                    ram_bytes: config.ram_bytes,
                },
            ))),
        );
        let pm = add(
            acpi_pm::PM_BASE,
            acpi_pm::PORT_COUNT,
            AnyPortDevice::AcpiPm(acpi_pm::AcpiPm::new()),
        );
        let pci = add(
            pci::CONFIG_ADDRESS_PORT,
            pci::BASE_COUNT,
            AnyPortDevice::Pci(pci::PciHost::new()),
        );
        let keyboard = add(
            i8042::BASE_PORT,
            1,
            AnyPortDevice::Keyboard(i8042::I8042::new()),
        );
        add(
            fw_cfg::SELECTOR_PORT,
            fw_cfg::PORT_COUNT,
            AnyPortDevice::FwCfg(fw_cfg::FwCfg::new(fw_cfg::FwCfgConfig {
                ram_bytes: config.ram_bytes,
                cpus: 1,
            })),
        );
        let extra = [
            (pic, pic::SLAVE_BASE, 2),
            (pic, pic::ELCR_BASE, 2),
            (pit, pit::PORT_B, 1),
            (keyboard, i8042::BASE_PORT + 4, 1),
            (pci, pci::CONFIG_DATA_PORT, pci::CONFIG_DATA_COUNT),
        ];
        for (id, first, count) in extra {
            if let Err(error) = ports.add_range(id, first, count) {
                panic!("the platform's device ranges clash: {}", error);
            }
        }
        if let Some(port) = config.debug_exit {
            // Options parsing refused a port in PC_PORTS, which lists every
            // range above, so this cannot clash.
            if let Err(error) = ports.add(
                port,
                debug_exit::PORT_COUNT,
                AnyPortDevice::DebugExit(debug_exit::DebugExit),
            ) {
                panic!("debug-exit={:#x} clashes with the PC: {}", port, error);
            }
        }
        Platform {
            ports,
            lines: InterruptLines::new(),
            pic,
            timers: [pit, rtc, pm],
            attention: false,
            apics: None,
            synced_levels: 0,
            tsc_hz: config.tsc_hz,
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
        if self.ports.claimant(port).is_none() {
            // Floating data lines read as ones.
            self.ports.count_unclaimed(port, false);
            return (size.mask(), None);
        }
        self.attention = true;
        let mut cx = DeviceContext::new(&mut self.lines, console).at(clock.ns_at(tsc()));
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
        if self.ports.claimant(port).is_none() {
            self.ports.count_unclaimed(port, true);
            return None;
        }
        self.attention = true;
        let mut cx = DeviceContext::new(&mut self.lines, console).at(clock.ns_at(tsc()));
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
        for id in self.timers {
            let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
            if let Some(timer) = self.ports.device_mut(id).and_then(timed) {
                timer.advance(&mut cx);
            }
        }
        if let Some(apics) = self.apics.as_deref_mut() {
            let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
            apics.advance(&mut cx);
        }
        self.attention = true;
    }

    /// Routes the interrupt lines through the interrupt controller and
    /// clears [`Platform::attention`]; returns what the core must arrange:
    /// whether an interrupt is pending for the vCPU and the VM time of the
    /// next timer event.
    pub fn settle(&mut self) -> Settled {
        self.attention = false;
        let edges = self.lines.take_edges();
        let levels = self.lines.levels();
        let lines_moved = edges != 0 || levels != self.synced_levels;
        self.synced_levels = levels;
        let pic_output = match self.ports.device_mut(self.pic) {
            Some(AnyPortDevice::Pic(pic)) => {
                if lines_moved {
                    pic.sync_lines(levels, edges);
                }
                pic.output()
            }
            _ => false,
        };
        let (interrupt, nmi) = match self.apics.as_deref_mut() {
            Some(apics) => {
                if lines_moved {
                    apics.sync_lines(levels, edges);
                } else {
                    apics.take_level_eois();
                }
                (apics.interrupt_pending(pic_output), apics.nmi_pending())
            }
            None => (pic_output, false),
        };
        let next_deadline_ns = self
            .timers
            .iter()
            .filter_map(|&id| match self.ports.device(id) {
                Some(AnyPortDevice::Pit(device)) => device.next_deadline_ns(),
                Some(AnyPortDevice::Rtc(device)) => device.next_deadline_ns(),
                Some(AnyPortDevice::AcpiPm(device)) => device.next_deadline_ns(),
                _ => None,
            })
            .chain(self.apics.as_deref().and_then(Apics::next_deadline_ns))
            .min();
        Settled {
            interrupt,
            nmi,
            next_deadline_ns,
        }
    }

    /// The vector of the interrupt the vCPU takes now (the 8259A's
    /// acknowledge cycle), after [`Settled::interrupt`] said one is pending
    /// and the vCPU can take it.
    pub fn acknowledge_interrupt(&mut self) -> Option<u8> {
        let Some(AnyPortDevice::Pic(pic)) = self.ports.device_mut(self.pic) else {
            return None;
        };
        let pic_output = pic.output();
        let vector = match self.apics.as_deref_mut() {
            Some(apics) => apics.acknowledge(pic_output, || pic.acknowledge()),
            None => pic_output.then(|| pic.acknowledge()),
        };
        if vector.is_some() {
            self.attention = true;
        }
        vector
    }

    /// The vCPU takes the pending NMI (after [`Settled::nmi`] said one is
    /// pending and the vCPU can take it); false if none was.
    pub fn acknowledge_nmi(&mut self) -> bool {
        let taken = self.apics.as_deref_mut().is_some_and(Apics::take_nmi);
        if taken {
            self.attention = true;
        }
        taken
    }

    /// The APIC pair, made now if the guest had not touched it before.
    fn apics(&mut self) -> &mut Apics {
        let tsc_hz = self.tsc_hz;
        let levels = self.lines.levels();
        self.apics.get_or_insert_with(|| {
            let mut apics = alloc::boxed::Box::new(Apics::new(
                LapicConfig {
                    apic_id: 0,
                    timer_hz: APIC_TIMER_HZ,
                    tsc_hz,
                    bootstrap_processor: true,
                    // CPUID.1:ECX[21] offers it (rules/cpuid.rs).
                    x2apic: true,
                },
                IOAPIC_ID,
            ));
            // Every pin starts masked: this records which lines are high
            // and fires nothing.
            apics.sync_lines(levels, 0);
            apics
        })
    }

    /// The APIC pair if the guest has touched it.
    pub fn apics_if_made(&self) -> Option<&Apics> {
        self.apics.as_deref()
    }

    /// Whether an access to `gpa` (outside RAM) is one the APICs decode:
    /// their windows where reset puts them, or where the guest moved the
    /// local APIC's.
    pub fn decodes_mmio(&self, gpa: u64) -> bool {
        match self.apics.as_deref() {
            Some(apics) => apics.decodes(gpa),
            None => {
                gpa.wrapping_sub(u64::from(LAPIC_BASE)) < APIC_WINDOW_SIZE
                    || gpa.wrapping_sub(u64::from(IOAPIC_BASE)) < APIC_WINDOW_SIZE
            }
        }
    }

    /// An MMIO read of `size` at `gpa` at VM time `now_ns`; `None` when no
    /// device decodes it (the core then stops the VM as it did before).
    pub fn mmio_read(
        &mut self,
        gpa: u64,
        size: MmioSize,
        now_ns: u64,
        console: &mut dyn ConsoleSink,
    ) -> Option<u64> {
        if !self.decodes_mmio(gpa) {
            return None;
        }
        self.attention = true;
        self.apics();
        let apics = self.apics.as_deref_mut()?;
        let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
        apics.mmio_read(gpa, size, &mut cx)
    }

    /// An MMIO write; `None` when no device decodes `gpa`.
    pub fn mmio_write(
        &mut self,
        gpa: u64,
        size: MmioSize,
        value: u64,
        now_ns: u64,
        console: &mut dyn ConsoleSink,
    ) -> Option<()> {
        if !self.decodes_mmio(gpa) {
            return None;
        }
        self.attention = true;
        self.apics();
        let apics = self.apics.as_deref_mut()?;
        let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
        apics.mmio_write(gpa, size, value, &mut cx)
    }

    /// RDMSR of an APIC MSR (IA32_APIC_BASE, IA32_TSC_DEADLINE, the x2APIC
    /// range); `None` for any other MSR. An error is #GP(0) for the guest.
    pub fn read_apic_msr(&mut self, msr: u32, now_ns: u64) -> Option<Result<u64, ApicError>> {
        if !Lapic::handles_msr(msr) {
            return None;
        }
        Some(self.apics().read_msr(msr, now_ns))
    }

    /// WRMSR of an APIC MSR; `None` for any other MSR.
    pub fn write_apic_msr(
        &mut self,
        msr: u32,
        value: u64,
        now_ns: u64,
        console: &mut dyn ConsoleSink,
    ) -> Option<Result<(), ApicError>> {
        if !Lapic::handles_msr(msr) {
            return None;
        }
        self.attention = true;
        self.apics();
        let apics = self.apics.as_deref_mut()?;
        let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
        Some(apics.write_msr(msr, value, &mut cx))
    }

    /// Bytes typed at the operator's console while this VM has the focus:
    /// they arrive on its COM1's receive line, with the interrupts a real
    /// UART raises. Returns how many it accepted; the UART counts the ones
    /// it dropped (FIFO and backlog full: a guest that does not read).
    pub fn console_input(
        &mut self,
        bytes: &[u8],
        now_ns: u64,
        console: &mut dyn ConsoleSink,
    ) -> usize {
        let Some(id) = self.ports.claimant(serial::COM1_BASE) else {
            return 0;
        };
        self.attention = true;
        let mut cx = DeviceContext::new(&mut self.lines, console).at(now_ns);
        match self.ports.device_mut(id) {
            Some(AnyPortDevice::Serial(uart)) => uart.receive_bytes(bytes, &mut cx),
            _ => 0,
        }
    }

    /// Console input this VM's COM1 dropped because the guest did not read.
    pub fn console_input_dropped(&self) -> u64 {
        match self
            .ports
            .claimant(serial::COM1_BASE)
            .and_then(|id| self.ports.device(id))
        {
            Some(AnyPortDevice::Serial(uart)) => uart.dropped_bytes(),
            _ => 0,
        }
    }

    /// The guest wrote `value` to IA32_TSC at `now_ns`: the local APIC's
    /// TSC-deadline timer compares against the TSC from there on.
    pub fn guest_tsc_written(&mut self, value: u64, now_ns: u64) {
        self.attention = true;
        self.apics().set_guest_tsc(value, now_ns);
    }

    /// Carries the battery-backed CMOS RAM of `previous` (the VM's PC
    /// before a reset or restart) into this one, as a PC's CMOS outlives
    /// its resets: a guest that counts its boots there (Linux's
    /// /dev/nvram) sees its count.
    pub fn keep_nvram_of(&mut self, previous: &Platform) {
        let Some(nvram) = previous
            .timers
            .iter()
            .find_map(|&id| match previous.ports.device(id) {
                Some(AnyPortDevice::Rtc(rtc)) => Some(rtc.nvram()),
                _ => None,
            })
        else {
            return;
        };
        for id in self.timers {
            if let Some(AnyPortDevice::Rtc(rtc)) = self.ports.device_mut(id) {
                rtc.restore_nvram(nvram);
            }
        }
    }

    /// Periodic timer ticks (PIT channel 0, the RTC's periodic interrupt,
    /// the local APIC timer) that fell due while an earlier one was still
    /// waiting to be delivered, and were merged into it.
    pub fn coalesced_ticks(&self) -> u64 {
        let devices: u64 = self
            .timers
            .iter()
            .map(|&id| match self.ports.device(id) {
                Some(AnyPortDevice::Pit(pit)) => pit.coalesced_ticks(),
                Some(AnyPortDevice::Rtc(rtc)) => rtc.coalesced_periodic_ticks(),
                _ => 0,
            })
            .sum();
        let apic = self
            .apics
            .as_deref()
            .map_or(0, |apics| apics.lapic().timer_ticks_coalesced());
        devices + apic
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

/// The timer of a device that has one.
fn timed(device: &mut AnyPortDevice) -> Option<&mut dyn Timed> {
    match device {
        AnyPortDevice::Pit(device) => Some(&mut **device),
        AnyPortDevice::Rtc(device) => Some(&mut **device),
        AnyPortDevice::AcpiPm(device) => Some(device),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const CLOCK: VmClock = VmClock::new(0, 1_000_000_000);
    const CONFIG: PlatformConfig = PlatformConfig {
        ram_bytes: 2 << 20,
        unix_seconds: 1_764_633_600,
        debug_exit: None,
        tsc_hz: 1_000_000_000,
    };

    #[test]
    fn com1_transmits_and_other_ports_float_high() {
        let mut platform = Platform::pc(CONFIG);
        let mut out: Vec<u8> = Vec::new();
        let request =
            platform.write_port(0x3f8, AccessSize::Byte, b'A' as u32, &mut out, &CLOCK, || 5);
        assert_eq!(request, None);
        assert_eq!(out, b"A");
        let (value, _) = platform.read_port(0x80, AccessSize::Byte, &mut out, &CLOCK, || {
            panic!("an unclaimed port needs no time")
        });
        assert_eq!(value, 0xff);
        let (value, _) = platform.read_port(0x2f8, AccessSize::Dword, &mut out, &CLOCK, || 0);
        assert_eq!(value, 0xffff_ffff, "COM2 is absent");
        assert_eq!(platform.unclaimed_ports().reads, 2);
        // LSR: transmitter empty.
        let (lsr, _) = platform.read_port(0x3fd, AccessSize::Byte, &mut out, &CLOCK, || 7);
        assert_eq!(lsr & 0x60, 0x60);
    }

    #[test]
    fn console_input_reaches_com1_and_raises_its_interrupt() {
        let mut platform = Platform::pc(CONFIG);
        let mut out: Vec<u8> = Vec::new();
        // IER.ERBFI: received-data-available interrupts on.
        platform.write_port(0x3f9, AccessSize::Byte, 1, &mut out, &CLOCK, || 1);
        assert_eq!(platform.console_input(b"hi", 1, &mut out), 2);
        assert!(platform.attention());
        // IIR: received data available (0x04), LSR.DR, then the bytes.
        let (iir, _) = platform.read_port(0x3fa, AccessSize::Byte, &mut out, &CLOCK, || 2);
        assert_eq!(iir & 0x0f, 0x04);
        let mut read = Vec::new();
        for _ in 0..2 {
            let (lsr, _) = platform.read_port(0x3fd, AccessSize::Byte, &mut out, &CLOCK, || 3);
            assert_ne!(lsr & 1, 0);
            let (byte, _) = platform.read_port(0x3f8, AccessSize::Byte, &mut out, &CLOCK, || 3);
            read.push(byte as u8);
        }
        assert_eq!(read, b"hi");
        let (lsr, _) = platform.read_port(0x3fd, AccessSize::Byte, &mut out, &CLOCK, || 4);
        assert_eq!(lsr & 1, 0, "nothing left");
        assert_eq!(platform.console_input_dropped(), 0);
    }

    #[test]
    fn console_input_a_guest_does_not_read_is_dropped_and_counted() {
        let mut platform = Platform::pc(CONFIG);
        let mut out: Vec<u8> = Vec::new();
        let flood = [b'x'; 4096];
        let accepted = platform.console_input(&flood, 1, &mut out);
        assert!(accepted < flood.len(), "the UART's queues are bounded");
        assert_eq!(
            platform.console_input_dropped(),
            (flood.len() - accepted) as u64
        );
    }

    /// PC_PORTS is what pc() registers: the bus claims exactly the ports
    /// the table names, so a debug-exit port the options accept is free.
    #[test]
    fn the_port_table_matches_the_bus() {
        let platform = Platform::pc(CONFIG);
        for port in 0..=u16::MAX {
            assert_eq!(
                platform.ports.claimant(port).is_some(),
                pc_port_owner(port).is_some(),
                "port {port:#x}"
            );
        }
        assert_eq!(pc_port_owner(0x3fd), Some("COM1"));
        assert_eq!(pc_port_owner(0xf4), None);
    }

    #[test]
    fn a_debug_exit_write_stops_the_vm_with_the_shifted_code() {
        let mut platform = Platform::pc(PlatformConfig {
            debug_exit: Some(0xf4),
            ..CONFIG
        });
        let mut console = Vec::new();
        assert_eq!(
            platform.write_port(0xf4, AccessSize::Byte, 0x10, &mut console, &CLOCK, || 0),
            Some(VmRequest::Exit(0x21))
        );
        // Without the option the port is floating.
        let mut plain = Platform::pc(CONFIG);
        assert_eq!(
            plain.write_port(0xf4, AccessSize::Byte, 0x10, &mut console, &CLOCK, || 0),
            None
        );
    }
}

#[cfg(test)]
mod interrupt_tests {
    use super::*;
    use std::vec::Vec;

    const CLOCK: VmClock = VmClock::new(0, 1_000_000_000);

    fn out(
        platform: &mut Platform,
        port: u16,
        value: u8,
        console: &mut Vec<u8>,
        now: u64,
    ) -> Option<VmRequest> {
        platform.write_port(
            port,
            AccessSize::Byte,
            value as u32,
            console,
            &CLOCK,
            || now,
        )
    }

    /// A guest's usual set-up: the 8259A pair remapped to vectors 0x20 and
    /// 0x28, only IRQ 0 unmasked, the PIT in mode 2 at 1 kHz.
    pub(super) fn programmed() -> (Platform, Vec<u8>) {
        let mut platform = Platform::pc(PlatformConfig {
            ram_bytes: 2 << 20,
            unix_seconds: 0,
            debug_exit: None,
            tsc_hz: 1_000_000_000,
        });
        let mut console = Vec::new();
        for (port, value) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0xfe),
            (0xa1, 0xff),
            (0x43, 0x34),
            (0x40, (1193 & 0xff) as u8),
            (0x40, (1193 >> 8) as u8),
        ] {
            out(&mut platform, port, value, &mut console, 0);
        }
        (platform, console)
    }

    #[test]
    fn the_pit_interrupts_through_the_pic() {
        let (mut platform, mut console) = programmed();
        // Switching channel 0 from its power-on mode 0 (OUT low) to mode 2
        // raises OUT0 at once: one interrupt before the first period, as on
        // a real 8254.
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        out(&mut platform, 0x20, 0x20, &mut console, 0);
        let settled = platform.settle();
        assert!(!settled.interrupt, "no tick yet");
        let deadline = settled.next_deadline_ns.expect("the PIT has a deadline");
        assert!(
            (900_000..=1_100_000).contains(&deadline),
            "about 1 ms: {deadline}"
        );
        platform.advance(deadline, &mut console);
        assert!(platform.settle().interrupt);
        assert_eq!(
            platform.acknowledge_interrupt(),
            Some(0x20),
            "IRQ 0 at the remapped base"
        );
        // In service until EOI: no second delivery.
        assert!(!platform.settle().interrupt);
        out(&mut platform, 0x20, 0x20, &mut console, deadline);
        platform.advance(deadline * 2 + 100_000, &mut console);
        assert!(platform.settle().interrupt, "the next tick after EOI");
    }

    #[test]
    fn cmos_ram_outlives_a_reset_but_the_clock_registers_do_not() {
        let (mut platform, mut console) = programmed();
        // A boot counter in CMOS byte 0x40, and register B changed.
        out(&mut platform, 0x70, 0x40, &mut console, 0);
        out(&mut platform, 0x71, 0x2a, &mut console, 0);
        out(&mut platform, 0x70, 0x0b, &mut console, 0);
        out(&mut platform, 0x71, 0x42, &mut console, 0);
        let mut next = Platform::pc(PlatformConfig {
            ram_bytes: 2 << 20,
            unix_seconds: 0,
            debug_exit: None,
            tsc_hz: 1_000_000_000,
        });
        next.keep_nvram_of(&platform);
        let mut read = |port_value: u8| {
            out(&mut next, 0x70, port_value, &mut console, 0);
            next.read_port(0x71, AccessSize::Byte, &mut console, &CLOCK, || 0)
                .0
        };
        assert_eq!(read(0x40), 0x2a, "the guest's byte");
        assert_eq!(read(0x0b), 0x02, "register B as firmware leaves it");
        assert_eq!(read(0x15), 0x80, "base memory, 640 KiB, still there");
    }

    #[test]
    fn a_reset_write_and_the_keyboard_reset_reach_the_core() {
        let (mut platform, mut console) = programmed();
        assert_eq!(
            out(&mut platform, 0xcf9, 0x06, &mut console, 0),
            Some(VmRequest::Reset)
        );
        assert_eq!(
            out(&mut platform, 0x64, 0xfe, &mut console, 0),
            Some(VmRequest::Reset)
        );
    }

    #[test]
    fn ticks_that_pile_up_while_descheduled_arrive_once() {
        let (mut platform, mut console) = programmed();
        assert!(platform.settle().interrupt, "the mode switch");
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        out(&mut platform, 0x20, 0x20, &mut console, 0);
        // 50 ms without the VM running: 50 ticks, one delivery.
        platform.advance(50_000_000, &mut console);
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        assert!(!platform.settle().interrupt);
    }
}

#[cfg(test)]
mod calibration_tests {
    use super::*;
    use std::vec::Vec;

    /// The classic calibration loop (tessera's own `arch/tsc.rs`, Linux's
    /// PIT calibration): channel 2 in mode 0 gated through port 0x61 for
    /// 10 ms, while the ACPI PM timer runs — with channel 0 ticking at 1 kHz
    /// and its interrupts taken meanwhile.
    #[test]
    fn channel_2_gates_10_ms_and_the_pm_timer_agrees() {
        let clock = VmClock::new(0, 1_000_000_000);
        let mut p = Platform::pc(PlatformConfig {
            ram_bytes: 2 << 20,
            unix_seconds: 0,
            debug_exit: None,
            tsc_hz: 1_000_000_000,
        });
        let mut c: Vec<u8> = Vec::new();
        let mut out = |p: &mut Platform, port: u16, value: u32, at: u64| {
            p.write_port(port, AccessSize::Byte, value, &mut c, &clock, || at);
        };
        for (port, value) in [(0x43u16, 0x34u32), (0x40, 1193 & 0xff), (0x40, 1193 >> 8)] {
            out(&mut p, port, value, 0);
        }
        let t0 = 1_000_000u64;
        out(&mut p, 0x61, 0, t0);
        out(&mut p, 0x43, 0xb0, t0);
        out(&mut p, 0x42, 11932 & 0xff, t0);
        out(&mut p, 0x42, 11932 >> 8, t0);
        let mut console: Vec<u8> = Vec::new();
        let pm0 = p
            .read_port(0x608, AccessSize::Dword, &mut console, &clock, || t0)
            .0;
        p.write_port(0x61, AccessSize::Byte, 1, &mut console, &clock, || t0);
        let mut t = t0;
        loop {
            t += 10_000;
            if t.is_multiple_of(1_000_000) {
                p.advance(t, &mut console);
                let _ = p.settle();
                if p.acknowledge_interrupt().is_some() {
                    p.write_port(0x20, AccessSize::Byte, 0x20, &mut console, &clock, || t);
                }
            }
            let value = p
                .read_port(0x61, AccessSize::Byte, &mut console, &clock, || t)
                .0;
            if value & 0x20 != 0 {
                break;
            }
            assert!(t < t0 + 100_000_000, "OUT2 never rose");
        }
        let pm1 = p
            .read_port(0x608, AccessSize::Dword, &mut console, &clock, || t)
            .0;
        let pm = pm1.wrapping_sub(pm0) & 0x00ff_ffff;
        assert!(
            (10_000_000..=10_020_000).contains(&(t - t0)),
            "OUT2 after {} ns",
            t - t0
        );
        assert!(
            (35_790..=35_870).contains(&pm),
            "{pm} PM-timer counts in 10 ms"
        );
    }
}

#[cfg(test)]
mod apic_tests {
    use super::*;
    use std::vec::Vec;

    const LAPIC: u64 = LAPIC_BASE as u64;
    const IOAPIC: u64 = IOAPIC_BASE as u64;

    /// The 8259A pair at 0x20/0x28, every IRQ masked but 0; the PIT in
    /// mode 2 at 1 kHz (the interrupt tests' set-up).
    fn pc() -> (Platform, Vec<u8>) {
        super::interrupt_tests::programmed()
    }

    fn out(platform: &mut Platform, port: u16, value: u8, console: &mut Vec<u8>) {
        let clock = VmClock::new(0, 1_000_000_000);
        platform.write_port(port, AccessSize::Byte, value.into(), console, &clock, || 0);
    }

    fn write32(platform: &mut Platform, gpa: u64, value: u32, now: u64, console: &mut Vec<u8>) {
        assert_eq!(
            platform.mmio_write(gpa, MmioSize::Dword, value.into(), now, console),
            Some(())
        );
    }

    fn read32(platform: &mut Platform, gpa: u64, now: u64, console: &mut Vec<u8>) -> u32 {
        platform
            .mmio_read(gpa, MmioSize::Dword, now, console)
            .expect("an APIC register") as u32
    }

    /// Writes I/O APIC redirection entry `pin`.
    fn route(platform: &mut Platform, pin: u32, entry: u64, console: &mut Vec<u8>) {
        write32(platform, IOAPIC, 0x10 + 2 * pin, 0, console);
        write32(platform, IOAPIC + 0x10, entry as u32, 0, console);
        write32(platform, IOAPIC, 0x11 + 2 * pin, 0, console);
        write32(platform, IOAPIC + 0x10, (entry >> 32) as u32, 0, console);
    }

    #[test]
    fn the_apics_are_made_on_first_touch_and_keep_the_virtual_wire() {
        let (mut platform, mut console) = pc();
        assert!(platform.apics_if_made().is_none());
        // The mode switch's tick, through the PIC as before.
        assert!(platform.settle().interrupt);
        // Now the guest looks at its local APIC: version 0x14, 6 LVTs.
        let version = read32(&mut platform, LAPIC + 0x30, 0, &mut console);
        assert_eq!(version & 0xff, 0x14);
        assert!(platform.apics_if_made().is_some());
        // The pending PIC interrupt still arrives, through LINT0 (ExtINT).
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        // Neither window decodes a byte past its page; RAM-side addresses
        // are not the platform's.
        assert_eq!(
            platform.mmio_read(LAPIC + 0x1000, MmioSize::Dword, 0, &mut console),
            None
        );
        assert_eq!(
            platform.mmio_read(0x1000, MmioSize::Dword, 0, &mut console),
            None
        );
    }

    #[test]
    fn the_pit_reaches_the_local_apic_through_ioapic_pin_2() {
        let (mut platform, mut console) = pc();
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        out(&mut platform, 0x20, 0x20, &mut console);
        // A kernel's switch to the APICs: mask the 8259A, route GSI 2 (ISA
        // IRQ 0, as the MADT's override says) to vector 0x30, physical
        // destination 0, edge, active high.
        out(&mut platform, 0x21, 0xff, &mut console);
        route(&mut platform, 2, 0x30, &mut console);
        let deadline = platform.settle().next_deadline_ns.expect("the PIT ticks");
        platform.advance(deadline, &mut console);
        assert!(
            platform.settle().interrupt,
            "the tick, through the I/O APIC"
        );
        assert_eq!(platform.acknowledge_interrupt(), Some(0x30));
        // In service until the EOI: a later tick waits behind it.
        platform.advance(deadline + 1_000_000, &mut console);
        assert!(!platform.settle().interrupt);
        // ISR bits 63:32 are at offset 0x110; vector 0x30 is bit 16 there.
        let isr_32_63 = read32(&mut platform, LAPIC + 0x110, 0, &mut console);
        assert_eq!(isr_32_63, 1 << 16, "vector 0x30 in service");
        write32(&mut platform, LAPIC + 0xb0, 0, 0, &mut console);
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x30));
        // A masked pin fires nothing.
        route(&mut platform, 2, 0x30 | 1 << 16, &mut console);
        write32(&mut platform, LAPIC + 0xb0, 0, 0, &mut console);
        platform.advance(deadline + 5_000_000, &mut console);
        assert!(!platform.settle().interrupt);
    }

    #[test]
    fn the_local_apic_timer_is_one_of_the_platform_timers() {
        let (mut platform, mut console) = pc();
        out(&mut platform, 0x21, 0xff, &mut console);
        platform.settle();
        // Divide by 1, one-shot on vector 0x40, 25,000 counts: 1 ms at the
        // 25 MHz crystal.
        write32(&mut platform, LAPIC + 0x3e0, 0b1011, 0, &mut console);
        write32(&mut platform, LAPIC + 0x320, 0x40, 0, &mut console);
        write32(&mut platform, LAPIC + 0x380, 25_000, 0, &mut console);
        let settled = platform.settle();
        assert!(!settled.interrupt);
        assert_eq!(
            platform.apics_if_made().and_then(Apics::next_deadline_ns),
            Some(1_000_000)
        );
        // The PIT keeps counting behind its mask, so its deadline may come
        // first; the platform's is the earlier of the two.
        assert!(settled.next_deadline_ns <= Some(1_000_000));
        platform.advance(1_000_000, &mut console);
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x40));
        // One-shot: nothing more.
        write32(&mut platform, LAPIC + 0xb0, 0, 0, &mut console);
        assert!(!platform.settle().interrupt);
        assert_eq!(
            platform.apics_if_made().and_then(Apics::next_deadline_ns),
            None
        );
    }

    #[test]
    fn a_level_triggered_pin_is_sent_again_after_eoi_while_asserted() {
        let (mut platform, mut console) = pc();
        out(&mut platform, 0x21, 0xff, &mut console);
        // The RTC's IRQ 8 as level-triggered, vector 0x38; then the RTC's
        // periodic interrupt enabled and left unacknowledged (register C not
        // read), so the line stays high.
        route(&mut platform, 8, 0x38 | 1 << 15, &mut console);
        out(&mut platform, 0x70, 0x0b, &mut console);
        out(&mut platform, 0x71, 0x42, &mut console); // PIE, 24-hour
        let deadline = platform
            .settle()
            .next_deadline_ns
            .expect("the RTC's period");
        platform.advance(deadline, &mut console);
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x38));
        write32(&mut platform, LAPIC + 0xb0, 0, 0, &mut console);
        assert!(
            platform.settle().interrupt,
            "still asserted: remote IRR cleared, sent again"
        );
        assert_eq!(platform.acknowledge_interrupt(), Some(0x38));
        // Reading register C lowers the line; the next EOI sends nothing.
        out(&mut platform, 0x70, 0x0c, &mut console);
        let clock = VmClock::new(0, 1_000_000_000);
        platform.read_port(0x71, AccessSize::Byte, &mut console, &clock, || deadline);
        write32(&mut platform, LAPIC + 0xb0, 0, deadline, &mut console);
        assert!(!platform.settle().interrupt);
    }

    #[test]
    fn apic_msrs_reach_the_local_apic_and_others_do_not() {
        let (mut platform, mut console) = pc();
        // IA32_APIC_BASE: 0xFEE00000, enabled, bootstrap processor.
        assert_eq!(platform.read_apic_msr(0x1b, 0), Some(Ok(0xfee0_0900)));
        assert_eq!(
            platform.read_apic_msr(0x10, 0),
            None,
            "the TSC is not an APIC MSR"
        );
        // x2APIC is not offered: its MSRs fault.
        assert!(matches!(platform.read_apic_msr(0x802, 0), Some(Err(_))));
        assert_eq!(platform.write_apic_msr(0x10, 0, 0, &mut console), None);
        // Disabling the APIC (EN clear) unmaps its window.
        assert_eq!(
            platform.write_apic_msr(0x1b, 0xfee0_0100, 0, &mut console),
            Some(Ok(()))
        );
        assert!(!platform.decodes_mmio(LAPIC + 0x30));
        assert!(platform.decodes_mmio(IOAPIC));
    }

    /// ICR low: NMI delivery mode (100), shorthand in bits 19:18.
    const ICR_NMI_SELF: u32 = 4 << 8 | 1 << 18;
    const ICR_NMI_ALL_BUT_SELF: u32 = 4 << 8 | 3 << 18;

    #[test]
    fn an_nmi_ipi_to_itself_is_latched_one_deep_for_the_vcpu() {
        let (mut platform, mut console) = pc();
        assert!(platform.settle().interrupt, "the PIT's first tick");
        assert!(!platform.settle().nmi);
        write32(&mut platform, LAPIC + 0x300, ICR_NMI_SELF, 0, &mut console);
        let settled = platform.settle();
        assert!(settled.nmi, "the self-NMI is pending");
        // A second NMI before the first is taken is the same NMI.
        write32(&mut platform, LAPIC + 0x300, ICR_NMI_SELF, 0, &mut console);
        assert_eq!(platform.apics_if_made().unwrap().nmis_merged(), 1);
        assert!(platform.acknowledge_nmi());
        assert!(!platform.settle().nmi, "taken");
        assert!(!platform.acknowledge_nmi(), "nothing left to take");
        // Not through IRR: no vector is in service, the PIT still waits.
        assert_eq!(read32(&mut platform, LAPIC + 0x100, 0, &mut console), 0);
        assert!(platform.settle().interrupt);
        // An NMI to everyone but itself reaches nobody on a one-vCPU VM.
        write32(
            &mut platform,
            LAPIC + 0x300,
            ICR_NMI_ALL_BUT_SELF,
            0,
            &mut console,
        );
        assert!(!platform.settle().nmi);
        assert_eq!(platform.apics_if_made().unwrap().undelivered(), 1);
    }

    #[test]
    fn an_ioapic_pin_in_nmi_mode_raises_an_nmi() {
        let (mut platform, mut console) = pc();
        assert!(platform.settle().interrupt);
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        out(&mut platform, 0x20, 0x20, &mut console);
        out(&mut platform, 0x21, 0xff, &mut console);
        // GSI 2 (the PIT) in NMI delivery mode (100), edge: the watchdog
        // set-up some kernels use.
        route(&mut platform, 2, 4 << 8, &mut console);
        let deadline = platform.settle().next_deadline_ns.expect("the PIT ticks");
        platform.advance(deadline, &mut console);
        let settled = platform.settle();
        assert!(settled.nmi, "the tick as an NMI");
        assert!(!settled.interrupt, "and not as a vector");
        assert!(platform.acknowledge_nmi());
        // To another APIC ID: not this vCPU's.
        route(&mut platform, 2, 4 << 8 | 5 << 56, &mut console);
        platform.advance(deadline + 1_000_000, &mut console);
        assert!(!platform.settle().nmi);
    }

    #[test]
    fn the_local_apic_offers_x2apic_as_cpuid_does() {
        let (mut platform, mut console) = pc();
        let base = platform.read_apic_msr(0x1b, 0).unwrap().unwrap();
        // EN | EXTD: x2APIC mode (SDM Vol. 3A, 12.12.1).
        let written = platform.write_apic_msr(0x1b, base | 1 << 10, 0, &mut console);
        assert_eq!(written, Some(Ok(())));
        // The x2APIC version register (MSR 0x803) answers now.
        let version = platform.read_apic_msr(0x803, 0).unwrap().unwrap();
        assert_eq!(version & 0xff, 0x14);
    }

    /// A level-triggered line that stays high asks again after each EOI,
    /// with no line movement in between (settle skips taking unchanged
    /// lines in again): through the 8259A with ELCR, and through an I/O
    /// APIC pin in level mode.
    #[test]
    fn a_level_line_held_high_interrupts_again_after_each_eoi() {
        let (mut platform, mut console) = pc();
        assert!(platform.settle().interrupt, "the PIT's first tick");
        assert_eq!(platform.acknowledge_interrupt(), Some(0x20));
        out(&mut platform, 0x20, 0x20, &mut console);
        // COM1 on IRQ 4, level-triggered (ELCR bit 4); only IRQ 4 unmasked.
        out(&mut platform, 0x4d0, 1 << 4, &mut console);
        out(&mut platform, 0x21, !(1u8 << 4), &mut console);
        // THRE interrupt: MCR.OUT2 gates the line, IER.ETBEI raises it
        // while the transmitter is empty, and it stays high.
        out(&mut platform, 0x3fc, 0x08, &mut console);
        out(&mut platform, 0x3f9, 0x02, &mut console);
        for round in 0..3 {
            assert!(platform.settle().interrupt, "round {round}");
            assert_eq!(platform.acknowledge_interrupt(), Some(0x24));
            assert!(!platform.settle().interrupt, "in service");
            out(&mut platform, 0x20, 0x20, &mut console);
        }
        // The same line through I/O APIC pin 4, level, vector 0x44.
        out(&mut platform, 0x21, 0xff, &mut console);
        route(&mut platform, 4, 0x44 | 1 << 15, &mut console);
        for round in 0..3 {
            assert!(platform.settle().interrupt, "pin 4, round {round}");
            assert_eq!(platform.acknowledge_interrupt(), Some(0x44));
            assert!(!platform.settle().interrupt, "remote IRR holds it");
            write32(&mut platform, LAPIC + 0xb0, 0, 0, &mut console);
        }
    }
}
