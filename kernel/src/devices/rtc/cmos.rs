//! The CMOS RAM bytes a PC's firmware leaves for the OS and boot loaders:
//! memory sizes, the equipment byte and the checksum over them. Pure: it
//! computes the initial image, and the RTC model owns the bytes after that.
//!
//! Offsets are the IBM PC AT's CMOS map (IBM PC AT Technical Reference,
//! "CMOS RAM Address Map"), plus 0x34/0x35, the Bochs/QEMU BIOS convention
//! for memory above 16 MiB that SeaBIOS and some boot loaders read.

/// Diagnostic status byte (0 = POST found nothing wrong).
pub const DIAGNOSTIC_STATUS: u8 = 0x0e;
/// Shutdown status byte (0 = normal power-on reset).
pub const SHUTDOWN_STATUS: u8 = 0x0f;
/// Floppy drive types (0 = none).
pub const FLOPPY_TYPES: u8 = 0x10;
/// Fixed disk types (0 = none).
pub const DISK_TYPES: u8 = 0x12;
/// Equipment byte.
pub const EQUIPMENT: u8 = 0x14;
/// Base memory in KiB, low byte (high byte at 0x16).
pub const BASE_MEMORY_LOW: u8 = 0x15;
/// Extended memory above 1 MiB in KiB, low byte (high byte at 0x18).
pub const EXTENDED_MEMORY_LOW: u8 = 0x17;
/// The checksum of bytes 0x10-0x2D, high byte (low byte at 0x2F).
pub const CHECKSUM_HIGH: u8 = 0x2e;
/// Extended memory as POST measured it, in KiB, low byte (high at 0x31).
pub const POST_EXTENDED_MEMORY_LOW: u8 = 0x30;
/// The century, in the RTC's number format (kept by the clock).
pub const CENTURY: u8 = 0x32;
/// Memory above 16 MiB in 64 KiB units, low byte (high byte at 0x35).
pub const MEMORY_ABOVE_16M_LOW: u8 = 0x34;

/// The base memory a PC reports: 640 KiB below the video hole.
pub const BASE_MEMORY_KIB: u16 = 640;
/// Equipment byte: bit 1 math coprocessor present; bits 5:4 = 00, a
/// primary display with its own BIOS (EGA/VGA, or none); no floppy drives
/// (bit 0 clear, bits 7:6 count 0).
pub const EQUIPMENT_BYTE: u8 = 0x02;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// What the CMOS reports about the machine, given when the VM is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmosLayout {
    /// The guest's RAM in bytes (the amount below 4 GiB, where it is split:
    /// the 16-bit fields cannot say more).
    pub ram_bytes: u64,
}

impl CmosLayout {
    /// Extended memory above 1 MiB in KiB, capped at 0xFFFF (the field is
    /// 16 bits: just under 64 MiB).
    pub fn extended_memory_kib(&self) -> u16 {
        let kib = self.ram_bytes.saturating_sub(MIB) / KIB;
        kib.min(0xffff) as u16
    }

    /// Memory above 16 MiB in 64 KiB units, capped at 0xFFFF (4 GiB).
    pub fn memory_above_16m_units(&self) -> u16 {
        let units = self.ram_bytes.saturating_sub(16 * MIB) / (64 * KIB);
        units.min(0xffff) as u16
    }

    /// The 128-byte image: every byte this layout defines, zero elsewhere
    /// (the clock registers are the RTC's to fill).
    pub fn image(&self) -> [u8; 128] {
        let mut bytes = [0u8; 128];
        let mut put16 = |at: u8, value: u16| {
            let [low, high] = value.to_le_bytes();
            bytes[usize::from(at)] = low;
            bytes[usize::from(at) + 1] = high;
        };
        put16(BASE_MEMORY_LOW, BASE_MEMORY_KIB);
        put16(EXTENDED_MEMORY_LOW, self.extended_memory_kib());
        put16(POST_EXTENDED_MEMORY_LOW, self.extended_memory_kib());
        put16(MEMORY_ABOVE_16M_LOW, self.memory_above_16m_units());
        bytes[usize::from(DIAGNOSTIC_STATUS)] = 0;
        bytes[usize::from(SHUTDOWN_STATUS)] = 0;
        bytes[usize::from(FLOPPY_TYPES)] = 0;
        bytes[usize::from(DISK_TYPES)] = 0;
        bytes[usize::from(EQUIPMENT)] = EQUIPMENT_BYTE;
        // The AT checksum: the sum of 0x10-0x2D, stored high byte first.
        let sum = bytes[0x10..=0x2d]
            .iter()
            .fold(0u16, |sum, &byte| sum.wrapping_add(byte.into()));
        let [high, low] = sum.to_be_bytes();
        bytes[usize::from(CHECKSUM_HIGH)] = high;
        bytes[usize::from(CHECKSUM_HIGH) + 1] = low;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(image: &[u8; 128], at: u8) -> u16 {
        u16::from_le_bytes([image[usize::from(at)], image[usize::from(at) + 1]])
    }

    #[test]
    fn memory_fields_for_128_mib() {
        let image = CmosLayout {
            ram_bytes: 128 * MIB,
        }
        .image();
        assert_eq!(word(&image, BASE_MEMORY_LOW), 640);
        assert_eq!(&image[0x15..0x17], &[0x80, 0x02]);
        // 127 MiB above 1 MiB is 130048 KiB: more than 16 bits hold.
        assert_eq!(word(&image, EXTENDED_MEMORY_LOW), 0xffff);
        assert_eq!(word(&image, POST_EXTENDED_MEMORY_LOW), 0xffff);
        // 112 MiB above 16 MiB in 64 KiB units.
        assert_eq!(word(&image, MEMORY_ABOVE_16M_LOW), 112 * 16);
        assert_eq!(image[usize::from(EQUIPMENT)], 0x02);
    }

    #[test]
    fn memory_fields_for_small_and_huge_machines() {
        let small = CmosLayout {
            ram_bytes: 32 * MIB,
        };
        assert_eq!(small.extended_memory_kib(), 31 * 1024);
        assert_eq!(small.memory_above_16m_units(), 256);
        let tiny = CmosLayout { ram_bytes: MIB / 2 };
        assert_eq!(tiny.extended_memory_kib(), 0);
        assert_eq!(tiny.memory_above_16m_units(), 0);
        let huge = CmosLayout {
            ram_bytes: 64 * 1024 * MIB,
        };
        assert_eq!(huge.memory_above_16m_units(), 0xffff);
    }

    #[test]
    fn the_checksum_covers_bytes_0x10_to_0x2d() {
        let image = CmosLayout {
            ram_bytes: 32 * MIB,
        }
        .image();
        let sum: u16 = image[0x10..=0x2d].iter().map(|&byte| u16::from(byte)).sum();
        assert_eq!(
            u16::from_be_bytes([image[0x2e], image[0x2f]]),
            sum,
            "high byte first"
        );
        // Base memory 640 KiB (0x0280), equipment 0x02, extended memory
        // 31744 KiB (0x7C00).
        assert_eq!(sum, 0x80 + 0x02 + 0x02 + 0x7c);
    }
}
