//! Virtual devices: the traits every device model implements, the context
//! through which a device acts, and the bus that routes guest accesses.
//!
//! Devices are pure state machines (the mythril and rust-vmm vm-superio
//! shape): a register access goes in, and whatever the access causes — an
//! interrupt line moving, a byte for the console — goes out through the
//! [`DeviceContext`] passed with it. A device never reaches into global
//! state, a VMCS, the console or another VM; so each one is driven by unit
//! tests on the host. Decoding the guest's instruction and writing the
//! result back to its registers belong to the VM core, not here.

pub mod bus;
pub mod ioapic;
pub mod irq;
pub mod lapic;
pub mod pic;
pub mod pit;
pub mod serial;

// The small devices of a PC's platform: the chipset's RTC, ACPI and reset
// registers, the keyboard controller, and QEMU's paravirtual ports.
pub mod acpi_pm;
pub mod debug_exit;
pub mod fw_cfg;
pub mod i8042;
pub mod pci;
pub mod reset;
pub mod rtc;

use irq::InterruptLines;

/// The width of a port access: IN and OUT move 1, 2 or 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessSize {
    /// 8 bits (`IN AL`, `OUTSB`).
    Byte,
    /// 16 bits (`IN AX`, `OUTSW`).
    Word,
    /// 32 bits (`IN EAX`, `OUTSD`).
    Dword,
}

impl AccessSize {
    /// The size for an access of `bytes` bytes (1, 2 or 4).
    pub const fn from_bytes(bytes: u8) -> Option<AccessSize> {
        match bytes {
            1 => Some(AccessSize::Byte),
            2 => Some(AccessSize::Word),
            4 => Some(AccessSize::Dword),
            _ => None,
        }
    }

    /// How many bytes the access moves.
    pub const fn bytes(self) -> u8 {
        match self {
            AccessSize::Byte => 1,
            AccessSize::Word => 2,
            AccessSize::Dword => 4,
        }
    }

    /// The value mask of the access: `0xff`, `0xffff` or `0xffff_ffff`.
    pub const fn mask(self) -> u32 {
        match self {
            AccessSize::Byte => 0xff,
            AccessSize::Word => 0xffff,
            AccessSize::Dword => 0xffff_ffff,
        }
    }
}

/// The width of an MMIO access: 1, 2, 4 or 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioSize {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Word,
    /// 32 bits.
    Dword,
    /// 64 bits.
    Qword,
}

impl MmioSize {
    /// The size for an access of `bytes` bytes (1, 2, 4 or 8).
    pub const fn from_bytes(bytes: u8) -> Option<MmioSize> {
        match bytes {
            1 => Some(MmioSize::Byte),
            2 => Some(MmioSize::Word),
            4 => Some(MmioSize::Dword),
            8 => Some(MmioSize::Qword),
            _ => None,
        }
    }

    /// How many bytes the access moves.
    pub const fn bytes(self) -> u8 {
        match self {
            MmioSize::Byte => 1,
            MmioSize::Word => 2,
            MmioSize::Dword => 4,
            MmioSize::Qword => 8,
        }
    }

    /// The value mask of the access (all ones over its width).
    pub const fn mask(self) -> u64 {
        match self {
            MmioSize::Byte => 0xff,
            MmioSize::Word => 0xffff,
            MmioSize::Dword => 0xffff_ffff,
            MmioSize::Qword => u64::MAX,
        }
    }
}

/// Where a device's transmitted bytes go.
///
/// The VM implements it over its `LineBuffer` (whole lines prefixed with the
/// VM's name). One byte per call, by value: a transmit allocates nothing and
/// the sink decides when a line is complete.
pub trait ConsoleSink {
    /// Takes one byte the guest transmitted.
    fn transmit(&mut self, byte: u8);
}

/// A console that discards what it is given (for contexts where no device
/// can transmit, such as a timer tick).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardConsole;

impl ConsoleSink for DiscardConsole {
    fn transmit(&mut self, _byte: u8) {}
}

/// What a device can ask of its VM as a whole: the platform devices that
/// reset or power off the machine, and QEMU's isa-debug-exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmRequest {
    /// Reset the VM (port 0xCF9, the i8042's pulse of the reset line, the
    /// ACPI reset register): a restart, counted like any other.
    Reset,
    /// Power the VM off (ACPI PM1 control, SLP_TYP for S5 with SLP_EN).
    PowerOff,
    /// Stop the VM with this exit code (isa-debug-exit: `(value << 1) | 1`).
    Exit(u32),
}

/// What a device may act on during one access: the VM's interrupt lines, its
/// console, the time, and requests to the VM. Built by the VM for each
/// access from its own fields, so it costs a few words and no allocation.
pub struct DeviceContext<'a> {
    /// The VM's interrupt lines, which devices raise and lower.
    pub irq: &'a mut InterruptLines,
    /// The VM's console, which receives transmitted bytes.
    pub console: &'a mut dyn ConsoleSink,
    /// The VM's time now, in nanoseconds since it started (or was reset):
    /// timers count from it. It keeps running while the VM is descheduled,
    /// like the guest's TSC, so periodic timers can pile up ticks (which the
    /// devices coalesce).
    pub now_ns: u64,
    /// Set by a device that needs the VM reset, powered off or stopped; the
    /// core acts on it after the access.
    pub request: Option<VmRequest>,
}

impl<'a> DeviceContext<'a> {
    /// A context over a VM's lines and console at time 0.
    pub fn new(irq: &'a mut InterruptLines, console: &'a mut dyn ConsoleSink) -> Self {
        DeviceContext {
            irq,
            console,
            now_ns: 0,
            request: None,
        }
    }

    /// The same context at `now_ns`.
    pub fn at(mut self, now_ns: u64) -> Self {
        self.now_ns = now_ns;
        self
    }
}

/// A device that acts on its own as time passes (timers): the core asks
/// when it next needs to, and calls [`Timed::advance`] once that time has
/// come, so that its interrupt lines change at the right moment even when
/// the guest does not touch the device.
pub trait Timed {
    /// The VM time (`DeviceContext::now_ns`) of the device's next event, if
    /// it has one pending.
    fn next_deadline_ns(&self) -> Option<u64>;
    /// Brings the device up to `cx.now_ns`: fires what is due, raising or
    /// pulsing its lines through `cx.irq`.
    fn advance(&mut self, cx: &mut DeviceContext);
}

/// A device decoding a range of I/O ports.
pub trait PortDevice {
    /// An IN of `size` bytes at `offset` from the device's base port; the
    /// result's bits above `size` are ignored.
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32;
    /// An OUT of `size` bytes of `value` at `offset` from the device's base
    /// port; bits of `value` above `size` are zero.
    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext);
}

/// A device decoding a range of guest-physical addresses.
pub trait MmioDevice {
    /// A read of `size` bytes at `offset` from the device's base address;
    /// the result's bits above `size` are ignored.
    fn read(&mut self, offset: u64, size: MmioSize, cx: &mut DeviceContext) -> u64;
    /// A write of `size` bytes of `value` at `offset` from the device's base
    /// address; bits of `value` above `size` are zero.
    fn write(&mut self, offset: u64, size: MmioSize, value: u64, cx: &mut DeviceContext);
}

/// Every port device kind tessera models, for [`bus::PortBus`]: a closed
/// enum, so the bus dispatches with a `match` (see the bus module for why).
#[derive(Debug, Clone)]
pub enum AnyPortDevice {
    /// The MC146818A RTC and CMOS RAM (0x70-0x71), boxed like the other
    /// large devices: every entry of a bus is as large as its largest kind.
    Rtc(alloc::boxed::Box<rtc::Rtc>),
    /// The ACPI PM1 blocks and PM timer (0x600-0x60B).
    AcpiPm(acpi_pm::AcpiPm),
    /// PCI configuration mechanism #1 (0xCF8 as a dword, 0xCFC-0xCFF), the
    /// host bridge on bus 0 and the chipset's reset control register
    /// (0xCF9).
    Pci(pci::PciHost),
    /// The 8042 keyboard controller with empty ports (0x60, 0x64).
    Keyboard(i8042::I8042),
    /// QEMU's isa-debug-exit (at the port the VM's options name).
    DebugExit(debug_exit::DebugExit),
    /// QEMU's fw_cfg, I/O interface (0x510-0x511).
    FwCfg(fw_cfg::FwCfg),
    /// A 16550A UART (COM1), boxed (its FIFOs make it large).
    Serial(alloc::boxed::Box<serial::Serial16550>),
    /// The 8259A master/slave pair and the ELCR.
    Pic(pic::Pic),
    /// The 8254 timer and port 0x61, boxed: its three channels make it the
    /// largest device, and every entry of a bus is as large as the largest.
    Pit(alloc::boxed::Box<pit::Pit>),
}

impl PortDevice for AnyPortDevice {
    fn read(&mut self, offset: u16, size: AccessSize, cx: &mut DeviceContext) -> u32 {
        match self {
            AnyPortDevice::Rtc(rtc) => rtc.read(offset, size, cx),
            AnyPortDevice::AcpiPm(pm) => pm.read(offset, size, cx),
            AnyPortDevice::Pci(pci) => pci.read(offset, size, cx),
            AnyPortDevice::Keyboard(kbc) => kbc.read(offset, size, cx),
            AnyPortDevice::DebugExit(exit) => exit.read(offset, size, cx),
            AnyPortDevice::FwCfg(fw_cfg) => fw_cfg.read(offset, size, cx),
            AnyPortDevice::Serial(uart) => uart.read(offset, size, cx),
            AnyPortDevice::Pic(pic) => pic.read(offset, size, cx),
            AnyPortDevice::Pit(pit) => pit.read(offset, size, cx),
        }
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32, cx: &mut DeviceContext) {
        match self {
            AnyPortDevice::Rtc(rtc) => rtc.write(offset, size, value, cx),
            AnyPortDevice::AcpiPm(pm) => pm.write(offset, size, value, cx),
            AnyPortDevice::Pci(pci) => pci.write(offset, size, value, cx),
            AnyPortDevice::Keyboard(kbc) => kbc.write(offset, size, value, cx),
            AnyPortDevice::DebugExit(exit) => exit.write(offset, size, value, cx),
            AnyPortDevice::FwCfg(fw_cfg) => fw_cfg.write(offset, size, value, cx),
            AnyPortDevice::Serial(uart) => uart.write(offset, size, value, cx),
            AnyPortDevice::Pic(pic) => pic.write(offset, size, value, cx),
            AnyPortDevice::Pit(pit) => pit.write(offset, size, value, cx),
        }
    }
}

/// Every MMIO device kind tessera models, for [`bus::MmioBus`]: a closed
/// enum, dispatched with a `match` like [`AnyPortDevice`].
#[derive(Debug, Clone)]
pub enum AnyMmioDevice {
    /// A vCPU's local APIC, in its xAPIC page at 0xFEE00000.
    Lapic(lapic::Lapic),
    /// The I/O APIC at 0xFEC00000.
    Ioapic(ioapic::Ioapic),
}

impl MmioDevice for AnyMmioDevice {
    fn read(&mut self, offset: u64, size: MmioSize, cx: &mut DeviceContext) -> u64 {
        match self {
            AnyMmioDevice::Lapic(lapic) => lapic.read(offset, size, cx),
            AnyMmioDevice::Ioapic(ioapic) => ioapic.read(offset, size, cx),
        }
    }

    fn write(&mut self, offset: u64, size: MmioSize, value: u64, cx: &mut DeviceContext) {
        match self {
            AnyMmioDevice::Lapic(lapic) => lapic.write(offset, size, value, cx),
            AnyMmioDevice::Ioapic(ioapic) => ioapic.write(offset, size, value, cx),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the device tests.
    use super::*;
    use std::vec::Vec;

    /// A console that keeps every byte, and the lines for the context.
    #[derive(Default)]
    pub struct Recorder {
        pub lines: InterruptLines,
        pub console: Vec<u8>,
    }

    impl ConsoleSink for Vec<u8> {
        fn transmit(&mut self, byte: u8) {
            self.push(byte);
        }
    }

    impl Recorder {
        /// A context over the recorder's lines and console.
        pub fn cx(&mut self) -> DeviceContext<'_> {
            DeviceContext::new(&mut self.lines, &mut self.console)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_sizes_round_trip_through_their_byte_counts() {
        for bytes in [1, 2, 4] {
            assert_eq!(AccessSize::from_bytes(bytes).unwrap().bytes(), bytes);
        }
        for bytes in [1, 2, 4, 8] {
            assert_eq!(MmioSize::from_bytes(bytes).unwrap().bytes(), bytes);
        }
        assert_eq!(AccessSize::from_bytes(8), None);
        assert_eq!(AccessSize::from_bytes(3), None);
        assert_eq!(MmioSize::from_bytes(0), None);
        assert_eq!(AccessSize::Word.mask(), 0xffff);
        assert_eq!(MmioSize::Qword.mask(), u64::MAX);
    }
}
