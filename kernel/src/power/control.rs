//! Power-off and reset.
//!
//! Power-off tries, in order: ACPI S5 through PM1a/PM1b_CNT with the sleep
//! type from the DSDT's `\_S5` (ACPI 6.5, 16.1.7 "Transitioning from the
//! Working to the Soft Off State"); the Bochs shutdown port; QEMU's
//! `isa-debug-exit` device. Reset tries the FADT reset register, the PCI reset
//! control at 0xCF9, then the keyboard controller's pulse of the reset line.

use crate::power::acpi_sleep::{find_s5, SleepType};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;
use spin::Once;
use x86::io::{inb, outb, outw};

/// All RAM and firmware tables are identity-mapped: a physical address is a
/// pointer, and nothing needs unmapping.
#[derive(Clone, Copy)]
struct IdentityMapped;

impl AcpiHandler for IdentityMapped {
    unsafe fn map_physical_region<T>(
        &self,
        address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let pointer = NonNull::new(address as *mut T).expect("ACPI table at physical address 0");
        // SAFETY: the identity map covers all physical memory below the top
        // of RAM and the 4 GiB hole, where firmware puts its tables.
        unsafe { PhysicalMapping::new(address, pointer, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What the FADT and DSDT say about power control.
#[derive(Debug, Clone, Copy)]
pub struct AcpiPower {
    pm1a_control: u16,
    pm1b_control: Option<u16>,
    s5: Option<SleepType>,
    smi_command: u16,
    acpi_enable: u8,
    reset: Option<(u16, u8)>,
}

static POWER: Once<Option<AcpiPower>> = Once::new();

/// Reads the ACPI tables once, from the RSDP copy GRUB passed.
pub fn init(rsdp: Option<u64>) {
    POWER.call_once(|| {
        let Some(rsdp) = rsdp else {
            log::warn!("acpi: the bootloader passed no RSDP; power-off will use emulator ports");
            return None;
        };
        match probe(rsdp) {
            Ok(power) => {
                log::debug!("acpi: {:?}", power);
                if power.s5.is_none() {
                    log::warn!("acpi: no \\_S5 package in the DSDT; ACPI soft-off unavailable");
                }
                Some(power)
            }
            Err(error) => {
                log::warn!(
                    "acpi: tables unusable ({:?}); power-off will use emulator ports",
                    error
                );
                None
            }
        }
    });
}

fn probe(rsdp: u64) -> Result<AcpiPower, acpi::AcpiError> {
    // SAFETY: `rsdp` points at GRUB's copy of the RSDP inside the boot
    // information, which stays reserved; the tables it leads to are
    // firmware memory, identity-mapped.
    let tables = unsafe { AcpiTables::from_rsdp(IdentityMapped, rsdp as usize)? };
    let fadt = tables.find_table::<acpi::fadt::Fadt>()?;
    let pm1a = fadt.pm1a_control_block()?;
    let pm1b = fadt.pm1b_control_block()?;
    let io = |address: u64| u16::try_from(address).ok();
    let dsdt = tables.dsdt()?;
    // SAFETY: the DSDT's AML stream as the FADT locates it, identity-mapped.
    let aml =
        unsafe { core::slice::from_raw_parts(dsdt.address as *const u8, dsdt.length as usize) };
    let flags = fadt.flags;
    let reset = fadt.reset_register().ok().and_then(|register| {
        (flags.supports_system_reset_via_fadt()
            && register.address_space == acpi::address::AddressSpace::SystemIo)
            .then(|| io(register.address).map(|port| (port, fadt.reset_value)))
            .flatten()
    });
    Ok(AcpiPower {
        pm1a_control: io(pm1a.address).ok_or(acpi::AcpiError::InvalidGenericAddress)?,
        pm1b_control: pm1b.and_then(|b| io(b.address)).filter(|&p| p != 0),
        s5: find_s5(aml),
        smi_command: fadt.smi_cmd_port as u16,
        acpi_enable: fadt.acpi_enable,
        reset,
    })
}

const SLP_EN: u16 = 1 << 13;
const SCI_EN: u16 = 1;

fn acpi_soft_off(power: &AcpiPower, s5: SleepType) {
    // SAFETY: the ports come from the FADT; writing them is how ACPI asks
    // the chipset to power down. Nothing runs afterwards.
    unsafe {
        // Hand the fixed hardware to the OS first if the firmware still owns
        // it (ACPI 6.5, 16.3.1 "Legacy/ACPI Select and the SCI Interrupt").
        if inw(power.pm1a_control) & SCI_EN == 0 && power.smi_command != 0 && power.acpi_enable != 0
        {
            outb(power.smi_command, power.acpi_enable);
            for _ in 0..1_000_000 {
                if inw(power.pm1a_control) & SCI_EN != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        outw(power.pm1a_control, ((s5.a as u16) << 10) | SLP_EN);
        if let Some(port) = power.pm1b_control {
            outw(port, ((s5.b as u16) << 10) | SLP_EN);
        }
    }
}

/// # Safety
/// As `x86::io::inw`: reading `port` must have no effect the caller does
/// not intend (here, the ACPI PM1 registers the FADT names).
unsafe fn inw(port: u16) -> u16 {
    // SAFETY: forwarded to the caller.
    unsafe { x86::io::inw(port) }
}

/// Powers the machine off. `reason` goes on the final console line, which
/// the host tool looks for to tell a clean stop from a hang.
pub fn power_off(reason: &str) -> ! {
    crate::println!("tessera: powering off ({})", reason);
    crate::console::drain();
    if let Some(Some(power)) = POWER.get() {
        if let Some(s5) = power.s5 {
            acpi_soft_off(power, s5);
            wait_a_moment();
        }
    }
    // SAFETY: these ports exist only in the emulators (Bochs' shutdown port,
    // QEMU's isa-debug-exit); on real hardware nothing decodes them.
    unsafe {
        for byte in b"Shutdown" {
            outb(0x8900, *byte);
        }
        outb(0xf4, 0);
    }
    wait_a_moment();
    crate::println!("tessera: power-off did not take effect; halting");
    crate::console::drain();
    crate::arch::halt_forever()
}

/// Resets the machine.
pub fn reboot() -> ! {
    crate::println!("tessera: resetting");
    crate::console::drain();
    // SAFETY: resetting is the purpose; each write is a documented reset path.
    unsafe {
        if let Some(Some(AcpiPower {
            reset: Some((port, value)),
            ..
        })) = POWER.get()
        {
            outb(*port, *value);
            wait_a_moment();
        }
        // PCI Reset Control Register: full reset.
        outb(0xcf9, 0x02);
        outb(0xcf9, 0x06);
        wait_a_moment();
        // 8042: wait for the input buffer to empty, then pulse reset.
        for _ in 0..100_000 {
            if inb(0x64) & 0x02 == 0 {
                break;
            }
        }
        outb(0x64, 0xfe);
    }
    wait_a_moment();
    crate::arch::halt_forever()
}

fn wait_a_moment() {
    for _ in 0..10_000_000 {
        core::hint::spin_loop();
    }
}
