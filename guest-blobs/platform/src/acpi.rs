//! The ACPI tables as an OS finds them (ACPI 6.5, chapter 5): the RSDP in
//! the EBDA's first KiB or 0xE0000-0xFFFFF, the RSDT/XSDT, every table's
//! checksum, the MADT (interrupt wiring) and the FADT (the PM timer, the
//! DSDT); and their probes.

use crate::report::Outcome;
use crate::x86::physical;
use crate::{fail, text, Machine};

/// The SDT header's length (ACPI 6.5, Table 5.4).
const HEADER: usize = 36;
/// Tables longer than this are taken as garbage.
const MAX_TABLE: usize = 1 << 20;
/// Where the RSDP may be (ACPI 6.5, 5.2.5.1): 16-byte aligned in the BIOS
/// area.
const BIOS_AREA: (u64, u64) = (0xe0000, 0x100000);
/// The BIOS data area's word holding the EBDA's segment.
const EBDA_SEGMENT: u64 = 0x40e;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Whether the bytes sum to 0 (mod 256): every ACPI and MP checksum.
pub fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) == 0
}

/// The EBDA's first KiB, if the BIOS data area names one.
pub fn ebda() -> Option<(u64, u64)> {
    let segment = u64::from(u16_at(physical(EBDA_SEGMENT, 2), 0));
    let start = segment << 4;
    (0x80000..0xa0000)
        .contains(&start)
        .then_some((start, start + 1024))
}

/// The first 16-byte aligned `signature` in `[start, end)`.
pub fn scan(start: u64, end: u64, signature: &[u8]) -> Option<u64> {
    let area = physical(start, (end - start) as usize);
    area.chunks_exact(16)
        .position(|chunk| chunk.starts_with(signature))
        .map(|index| start + 16 * index as u64)
}

/// A table's bytes by its header's length, if plausible.
fn table(address: u64) -> Option<&'static [u8]> {
    if address == 0 || address >= (1 << 32) - HEADER as u64 {
        return None;
    }
    let length = u32_at(physical(address, HEADER), 4) as usize;
    (HEADER..=MAX_TABLE)
        .contains(&length)
        .then(|| physical(address, length))
}

/// Up to this many tables are recorded.
const MAX_TABLES: usize = 24;

/// One table an RSDT/XSDT points to.
#[derive(Clone, Copy)]
pub struct Entry {
    pub signature: [u8; 4],
    pub address: u64,
    pub checksum_ok: bool,
}

/// An I/O APIC entry of the MADT.
#[derive(Clone, Copy)]
pub struct IoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

/// What the MADT says (ACPI 6.5, 5.2.12).
#[derive(Clone, Copy)]
pub struct Madt {
    pub local_apic_address: u32,
    /// Flags bit 0: the PC's dual 8259A is present.
    pub pcat_compat: bool,
    /// Enabled processors (local APIC and local x2APIC entries).
    pub enabled_cpus: u32,
    /// The first processor's APIC ID: the boot processor's (5.2.12.14).
    pub boot_apic_id: Option<u32>,
    /// The first I/O APIC entry.
    pub io_apic: Option<IoApic>,
    pub io_apics: u32,
    /// The interrupt source override for ISA IRQ 0: GSI and flags.
    pub irq0_override: Option<(u32, u16)>,
    pub overrides: u32,
}

impl Madt {
    /// ISA IRQ 0's GSI: the override's, else identity (5.2.12.5).
    pub fn isa_irq0_gsi(&self) -> u32 {
        self.irq0_override.map_or(0, |(gsi, _)| gsi)
    }

    /// ISA IRQ 0's polarity and trigger flags (0: conforms to ISA).
    pub fn isa_irq0_flags(&self) -> u16 {
        self.irq0_override.map_or(0, |(_, flags)| flags)
    }
}

/// What the FADT says (ACPI 6.5, 5.2.9).
#[derive(Clone, Copy)]
pub struct Fadt {
    pub pm_timer_port: u32,
    pub pm_timer_length: u8,
    pub pm1a_control_port: u32,
    pub sci_interrupt: u16,
    pub flags: u32,
    pub dsdt: u64,
}

/// What the walk found.
pub struct Acpi {
    pub rsdp: u64,
    pub revision: u8,
    pub rsdp_ok: bool,
    pub rsdt: u32,
    pub xsdt: u64,
    pub root_ok: bool,
    pub tables: [Entry; MAX_TABLES],
    pub count: usize,
    pub madt: Option<Madt>,
    pub fadt: Option<Fadt>,
}

impl Acpi {
    /// The tables found, deduplicated by address.
    pub fn tables(&self) -> &[Entry] {
        &self.tables[..self.count]
    }

    fn find(&self, signature: &[u8; 4]) -> Option<&'static [u8]> {
        self.tables()
            .iter()
            .find(|entry| &entry.signature == signature)
            .and_then(|entry| table(entry.address))
    }
}

/// Finds the RSDP and walks what it points to.
pub fn discover() -> Option<Acpi> {
    let rsdp = ebda()
        .and_then(|(start, end)| scan(start, end, b"RSD PTR "))
        .or_else(|| scan(BIOS_AREA.0, BIOS_AREA.1, b"RSD PTR "))?;
    let v1 = physical(rsdp, 20);
    let revision = v1[15];
    let mut rsdp_ok = sums_to_zero(v1);
    let rsdt = u32_at(v1, 16);
    let mut xsdt = 0;
    if revision >= 2 {
        let v2 = physical(rsdp, 36);
        let length = u32_at(v2, 20) as usize;
        rsdp_ok &= length >= 36 && sums_to_zero(physical(rsdp, length.min(4096)));
        xsdt = u64_at(v2, 24);
    }
    let mut acpi = Acpi {
        rsdp,
        revision,
        rsdp_ok,
        rsdt,
        xsdt,
        root_ok: true,
        tables: [Entry {
            signature: [0; 4],
            address: 0,
            checksum_ok: false,
        }; MAX_TABLES],
        count: 0,
        madt: None,
        fadt: None,
    };
    for (root, signature, width) in [(u64::from(rsdt), b"RSDT", 4), (xsdt, b"XSDT", 8)] {
        if root == 0 {
            continue;
        }
        let Some(bytes) = table(root) else {
            acpi.root_ok = false;
            continue;
        };
        acpi.root_ok &= &bytes[..4] == signature && sums_to_zero(bytes);
        for entry in bytes[HEADER..].chunks_exact(width) {
            let address = if width == 4 {
                u64::from(u32_at(entry, 0))
            } else {
                u64_at(entry, 0)
            };
            if acpi.tables().iter().any(|known| known.address == address)
                || acpi.count == MAX_TABLES
            {
                continue;
            }
            let (signature, checksum_ok) = match table(address) {
                Some(bytes) => (bytes[..4].try_into().unwrap_or([0; 4]), sums_to_zero(bytes)),
                None => (*b"????", false),
            };
            acpi.tables[acpi.count] = Entry {
                signature,
                address,
                checksum_ok,
            };
            acpi.count += 1;
        }
    }
    acpi.madt = acpi.find(b"APIC").map(parse_madt);
    acpi.fadt = acpi.find(b"FACP").map(parse_fadt);
    Some(acpi)
}

fn parse_madt(bytes: &[u8]) -> Madt {
    let mut madt = Madt {
        local_apic_address: u32_at(bytes, 36),
        pcat_compat: u32_at(bytes, 40) & 1 != 0,
        enabled_cpus: 0,
        boot_apic_id: None,
        io_apic: None,
        io_apics: 0,
        irq0_override: None,
        overrides: 0,
    };
    let mut at = 44;
    while at + 2 <= bytes.len() {
        let (kind, length) = (bytes[at], usize::from(bytes[at + 1]));
        if length < 2 || at + length > bytes.len() {
            break;
        }
        let entry = &bytes[at..at + length];
        match (kind, length) {
            // Processor local APIC: ACPI ID, APIC ID, flags (bit 0 enabled).
            (0, 8..) if u32_at(entry, 4) & 1 != 0 => {
                madt.enabled_cpus += 1;
                madt.boot_apic_id.get_or_insert(u32::from(entry[3]));
            }
            // I/O APIC: ID, reserved, address, GSI base.
            (1, 12..) => {
                madt.io_apics += 1;
                madt.io_apic.get_or_insert(IoApic {
                    id: entry[2],
                    address: u32_at(entry, 4),
                    gsi_base: u32_at(entry, 8),
                });
            }
            // Interrupt source override: bus, source, GSI, flags.
            (2, 10..) => {
                madt.overrides += 1;
                if entry[2] == 0 && entry[3] == 0 {
                    madt.irq0_override = Some((u32_at(entry, 4), u16_at(entry, 8)));
                }
            }
            // Processor local x2APIC: reserved, x2APIC ID, flags, UID.
            (9, 16..) if u32_at(entry, 8) & 1 != 0 => {
                madt.enabled_cpus += 1;
                madt.boot_apic_id.get_or_insert(u32_at(entry, 4));
            }
            _ => {}
        }
        at += length;
    }
    madt
}

fn parse_fadt(bytes: &[u8]) -> Fadt {
    let field32 = |at: usize| {
        if bytes.len() >= at + 4 {
            u32_at(bytes, at)
        } else {
            0
        }
    };
    let field64 = |at: usize| {
        if bytes.len() >= at + 8 {
            u64_at(bytes, at)
        } else {
            0
        }
    };
    // X_PM_TMR_BLK (offset 208) is a Generic Address Structure: space ID 1
    // (system I/O) with the address at +4.
    let mut pm_timer_port = field32(76);
    if pm_timer_port == 0 && bytes.len() >= 220 && bytes[208] == 1 {
        pm_timer_port = field64(212) as u32;
    }
    let x_dsdt = field64(140);
    Fadt {
        pm_timer_port,
        pm_timer_length: bytes.get(91).copied().unwrap_or(0),
        pm1a_control_port: field32(64),
        sci_interrupt: if bytes.len() >= 48 {
            u16_at(bytes, 46)
        } else {
            0
        },
        flags: field32(112),
        dsdt: if x_dsdt != 0 {
            x_dsdt
        } else {
            u64::from(field32(40))
        },
    }
}

/// acpi-rsdp: "RSD PTR " on a 16-byte boundary in the EBDA's first KiB or
/// 0xE0000-0xFFFFF, with its checksum (and the extended one from revision 2).
pub fn probe_rsdp(machine: &mut Machine) -> Outcome {
    let Some(acpi) = &machine.acpi else {
        return fail!("no \"RSD PTR \" in the EBDA's first KiB or 0xe0000-0xfffff");
    };
    Outcome::check(
        acpi.rsdp_ok && (acpi.rsdt != 0 || acpi.xsdt != 0),
        text!(
            "at {:#x}, revision {}, checksum{} {}; RSDT {:#x}, XSDT {:#x}",
            acpi.rsdp,
            acpi.revision,
            if acpi.revision >= 2 { "s" } else { "" },
            if acpi.rsdp_ok { "good" } else { "BAD" },
            acpi.rsdt,
            acpi.xsdt
        ),
    )
}

/// acpi-tables: the RSDT (and XSDT) and every table they list have good
/// signatures and checksums; FACP and APIC are among them.
pub fn probe_tables(machine: &mut Machine) -> Outcome {
    let Some(acpi) = &machine.acpi else {
        return fail!("no RSDP");
    };
    let mut names = crate::text::Text::new();
    let mut bad = 0;
    for entry in acpi.tables() {
        let _ = core::fmt::Write::write_str(
            &mut names,
            core::str::from_utf8(&entry.signature).unwrap_or("????"),
        );
        let _ =
            core::fmt::Write::write_str(&mut names, if entry.checksum_ok { " " } else { "(BAD) " });
        bad += usize::from(!entry.checksum_ok);
    }
    let has = |signature: &[u8; 4]| {
        acpi.tables()
            .iter()
            .any(|entry| &entry.signature == signature)
    };
    Outcome::check(
        acpi.root_ok && bad == 0 && has(b"FACP") && has(b"APIC"),
        text!(
            "{} root table checksum{} {}; {} tables: {}",
            if acpi.xsdt != 0 && acpi.rsdt != 0 {
                "RSDT and XSDT"
            } else if acpi.xsdt != 0 {
                "XSDT"
            } else {
                "RSDT"
            },
            if acpi.xsdt != 0 && acpi.rsdt != 0 {
                "s"
            } else {
                ""
            },
            if acpi.root_ok { "good" } else { "BAD" },
            acpi.count,
            names.as_str().trim_end()
        ),
    )
}

/// acpi-madt: the PC's wiring — PCAT_COMPAT, an enabled local APIC, the
/// I/O APIC at 0xFEC00000 from GSI 0, and ISA IRQ 0 overridden to GSI 2.
pub fn probe_madt(machine: &mut Machine) -> Outcome {
    let Some(madt) = machine.madt() else {
        return fail!("no MADT (\"APIC\") in the RSDT/XSDT");
    };
    let io_ok = madt
        .io_apic
        .is_some_and(|io| io.address == 0xfec0_0000 && io.gsi_base == 0);
    let ok = madt.pcat_compat
        && madt.enabled_cpus >= 1
        && madt.local_apic_address == 0xfee0_0000
        && io_ok
        && madt.irq0_override.is_some_and(|(gsi, _)| gsi == 2);
    let io = match madt.io_apic {
        Some(io) => text!(
            "I/O APIC {} at {:#x} from GSI {}",
            io.id,
            io.address,
            io.gsi_base
        ),
        None => text!("no I/O APIC"),
    };
    let irq0 = match madt.irq0_override {
        Some((gsi, flags)) => text!("IRQ 0 -> GSI {gsi} (flags {flags:#x})"),
        None => text!("no IRQ 0 override"),
    };
    Outcome::check(
        ok,
        text!(
            "PCAT_COMPAT {}, {} CPU(s), BSP APIC ID {}, local APIC {:#x}, {io}, {irq0} ({} overrides)",
            u8::from(madt.pcat_compat),
            madt.enabled_cpus,
            madt.boot_apic_id.map_or(-1, i64::from),
            madt.local_apic_address,
            madt.overrides
        ),
    )
}

/// acpi-fadt: the PM timer block (4 bytes of I/O ports), PM1a control, and
/// the DSDT it points to, with a good checksum and an `_S5_` object (what
/// an OS needs to power off).
pub fn probe_fadt(machine: &mut Machine) -> Outcome {
    let Some(fadt) = machine.acpi.as_ref().and_then(|acpi| acpi.fadt) else {
        return fail!("no FADT (\"FACP\") in the RSDT/XSDT");
    };
    let dsdt = table(fadt.dsdt);
    let dsdt_ok = dsdt.is_some_and(|bytes| &bytes[..4] == b"DSDT" && sums_to_zero(bytes));
    let s5 = dsdt.is_some_and(|bytes| bytes.windows(4).any(|window| window == b"_S5_"));
    let ok = fadt.pm_timer_port != 0
        && fadt.pm_timer_port <= 0xffff
        && fadt.pm_timer_length == 4
        && fadt.pm1a_control_port != 0
        && dsdt_ok
        && s5;
    Outcome::check(
        ok,
        text!(
            "PM timer at port {:#x} ({} bytes, flags {:#x}), PM1a_CNT {:#x}, SCI {}; DSDT at {:#x} {}, {}",
            fadt.pm_timer_port,
            fadt.pm_timer_length,
            fadt.flags,
            fadt.pm1a_control_port,
            fadt.sci_interrupt,
            fadt.dsdt,
            if dsdt_ok { "checksum good" } else { "BAD signature or checksum" },
            if s5 { "_S5_ defined" } else { "no _S5_" }
        ),
    )
}
