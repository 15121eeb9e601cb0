//! Recognising a guest image's format from its bytes (`format=auto`).
//!
//! Only the signatures are looked at here; whether an ELF image is actually
//! loadable is for [`super::elf`] to decide.

use super::bytes::u32_at;
use core::fmt;

/// What an image's bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectedFormat {
    /// No known signature: a flat binary.
    Raw,
    /// ELF magic with class 1 (ELFCLASS32).
    Elf32,
    /// ELF magic with class 2 (ELFCLASS64).
    Elf64,
    /// A Multiboot (1) header in the first 8 KiB.
    Multiboot,
    /// A Multiboot2 header in the first 32 KiB.
    Multiboot2,
    /// A Linux bzImage (`HdrS` setup header).
    Linux,
}

impl fmt::Display for DetectedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetectedFormat::Raw => "raw binary",
            DetectedFormat::Elf32 => "ELF32",
            DetectedFormat::Elf64 => "ELF64",
            DetectedFormat::Multiboot => "Multiboot kernel",
            DetectedFormat::Multiboot2 => "Multiboot2 kernel",
            DetectedFormat::Linux => "Linux bzImage",
        })
    }
}

/// The four bytes every ELF file starts with (gABI, "ELF Identification").
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

/// Multiboot 0.6.96, 3.1.1: the header's magic, in the first 8192 bytes,
/// 32-bit aligned, followed by flags and a checksum making the sum zero.
pub(super) const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;
pub(super) const MULTIBOOT_SEARCH_BYTES: u64 = 8192;
const MULTIBOOT_HEADER_BYTES: u64 = 12;

/// Multiboot2 1.0, 3.1.1: the header's magic, in the first 32768 bytes,
/// 64-bit aligned, followed by architecture, header length and a checksum
/// making the sum of the four zero.
pub(super) const MULTIBOOT2_MAGIC: u32 = 0xE852_50D6;
pub(super) const MULTIBOOT2_SEARCH_BYTES: u64 = 32768;
const MULTIBOOT2_HEADER_BYTES: u64 = 16;

/// Linux boot protocol (Documentation/arch/x86/boot.rst): the setup header's
/// `header` field, "HdrS", at offset 0x202 of a bzImage.
const LINUX_SIGNATURE_OFFSET: usize = 0x202;
const LINUX_SIGNATURE: &[u8; 4] = b"HdrS";

/// Detects an image's format, in the order of the boot contract: a Linux
/// setup header, then a Multiboot2 header, then a Multiboot (1) header —
/// so that a Multiboot kernel that is also an ELF executable (most are) is
/// booted as Multiboot, as GRUB and QEMU's `-kernel` do — then ELF. An ELF
/// magic with an unknown class is not ELF here (the loader still refuses it
/// as a corrupt ELF rather than running it raw).
pub fn detect(image: &[u8]) -> DetectedFormat {
    other_format(image)
        .or_else(|| elf_class(image))
        .unwrap_or(DetectedFormat::Raw)
}

/// `Elf32` or `Elf64` when the image starts with the ELF magic and a known class.
fn elf_class(image: &[u8]) -> Option<DetectedFormat> {
    if !image.starts_with(&ELF_MAGIC) {
        return None;
    }
    match image.get(4) {
        Some(1) => Some(DetectedFormat::Elf32),
        Some(2) => Some(DetectedFormat::Elf64),
        _ => None,
    }
}

/// The first non-ELF signature the image carries (Linux, Multiboot2, Multiboot).
fn other_format(image: &[u8]) -> Option<DetectedFormat> {
    if image.get(LINUX_SIGNATURE_OFFSET..LINUX_SIGNATURE_OFFSET + 4)
        == Some(LINUX_SIGNATURE.as_slice())
    {
        Some(DetectedFormat::Linux)
    } else if has_multiboot2_header(image, true) {
        Some(DetectedFormat::Multiboot2)
    } else if has_multiboot_header(image, true) {
        Some(DetectedFormat::Multiboot)
    } else if has_multiboot2_header(image, false) {
        // A magic whose checksum fails: a damaged Multiboot kernel, which
        // the Multiboot loader refuses with the reason, rather than one to
        // run as plain ELF without the hand-over it expects.
        Some(DetectedFormat::Multiboot2)
    } else if has_multiboot_header(image, false) {
        Some(DetectedFormat::Multiboot)
    } else {
        None
    }
}

/// Whether a Multiboot (1) header is in its place; with `checked`, only
/// one whose checksum adds up counts.
fn has_multiboot_header(image: &[u8], checked: bool) -> bool {
    header_offsets(
        image,
        MULTIBOOT_SEARCH_BYTES,
        MULTIBOOT_HEADER_BYTES,
        4,
        MULTIBOOT_MAGIC,
    )
    .any(|offset| {
        let field = |n: u64| u32_at(image, offset + 4 * n).unwrap_or(0);
        !checked
            || MULTIBOOT_MAGIC
                .wrapping_add(field(1))
                .wrapping_add(field(2))
                == 0
    })
}

/// Whether a Multiboot2 header is in its place; with `checked`, only one
/// whose checksum adds up and whose length covers the fixed part counts.
fn has_multiboot2_header(image: &[u8], checked: bool) -> bool {
    header_offsets(
        image,
        MULTIBOOT2_SEARCH_BYTES,
        MULTIBOOT2_HEADER_BYTES,
        8,
        MULTIBOOT2_MAGIC,
    )
    .any(|offset| {
        let field = |n: u64| u32_at(image, offset + 4 * n).unwrap_or(0);
        let sum = MULTIBOOT2_MAGIC
            .wrapping_add(field(1))
            .wrapping_add(field(2))
            .wrapping_add(field(3));
        !checked || (sum == 0 && u64::from(field(2)) >= MULTIBOOT2_HEADER_BYTES)
    })
}

/// The `align`-aligned offsets holding `magic` at which a header of
/// `header_bytes` fits both in the image and in its first `search_bytes`.
fn header_offsets(
    image: &[u8],
    search_bytes: u64,
    header_bytes: u64,
    align: usize,
    magic: u32,
) -> impl Iterator<Item = u64> + '_ {
    let last = search_bytes
        .min(image.len() as u64)
        .checked_sub(header_bytes);
    last.into_iter()
        .flat_map(move |last| (0..=last).step_by(align))
        .filter(move |&offset| u32_at(image, offset) == Some(magic))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// An image of `size` bytes of 0x90 with a Multiboot (1) header at `offset`.
    pub fn multiboot_image(size: usize, offset: usize) -> Vec<u8> {
        let mut image = vec![0x90; size];
        let flags = 0x0001_0003u32;
        let checksum = 0u32.wrapping_sub(MULTIBOOT_MAGIC).wrapping_sub(flags);
        for (n, value) in [MULTIBOOT_MAGIC, flags, checksum].into_iter().enumerate() {
            image[offset + 4 * n..offset + 4 * n + 4].copy_from_slice(&value.to_le_bytes());
        }
        image
    }

    /// An image of `size` bytes of 0x90 with a Multiboot2 header at `offset`.
    pub fn multiboot2_image(size: usize, offset: usize) -> Vec<u8> {
        let mut image = vec![0x90; size];
        let (architecture, length) = (0u32, 24u32);
        let checksum = 0u32
            .wrapping_sub(MULTIBOOT2_MAGIC)
            .wrapping_sub(architecture)
            .wrapping_sub(length);
        let fields = [MULTIBOOT2_MAGIC, architecture, length, checksum];
        for (n, value) in fields.into_iter().enumerate() {
            image[offset + 4 * n..offset + 4 * n + 4].copy_from_slice(&value.to_le_bytes());
        }
        image
    }

    /// A bzImage-like image: 0x90 bytes with "HdrS" at 0x202.
    pub fn linux_image(size: usize) -> Vec<u8> {
        let mut image = vec![0x90; size];
        image[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image
    }

    #[test]
    fn raw_when_nothing_matches() {
        assert_eq!(detect(&[]), DetectedFormat::Raw);
        assert_eq!(detect(&[0xeb, 0xfe]), DetectedFormat::Raw);
        assert_eq!(detect(&[0x90; 40000]), DetectedFormat::Raw);
        assert_eq!(detect(b"\x7fEL"), DetectedFormat::Raw, "magic cut short");
        assert_eq!(detect(b"\x7fELF"), DetectedFormat::Raw, "no class byte");
        assert_eq!(detect(b"\x7fELF\x03"), DetectedFormat::Raw, "unknown class");
    }

    #[test]
    fn elf_by_class() {
        assert_eq!(detect(b"\x7fELF\x01\x01\x01"), DetectedFormat::Elf32);
        assert_eq!(detect(b"\x7fELF\x02\x01\x01"), DetectedFormat::Elf64);
    }

    #[test]
    fn multiboot_wins_over_elf() {
        let mut image = multiboot_image(4096, 64);
        image[..5].copy_from_slice(b"\x7fELF\x02");
        assert_eq!(detect(&image), DetectedFormat::Multiboot);
        let mut image = multiboot2_image(4096, 64);
        image[..5].copy_from_slice(b"\x7fELF\x01");
        assert_eq!(detect(&image), DetectedFormat::Multiboot2);
    }

    #[test]
    fn multiboot_header_rules() {
        assert_eq!(detect(&multiboot_image(64, 0)), DetectedFormat::Multiboot);
        assert_eq!(
            detect(&multiboot_image(9000, 8180)),
            DetectedFormat::Multiboot
        );
        assert_eq!(
            detect(&multiboot_image(9000, 8184)),
            DetectedFormat::Raw,
            "past 8 KiB"
        );
        assert_eq!(
            detect(&multiboot_image(64, 2)),
            DetectedFormat::Raw,
            "misaligned"
        );
        let mut bad = multiboot_image(64, 8);
        bad[16] ^= 1;
        assert_eq!(
            detect(&bad),
            DetectedFormat::Multiboot,
            "a bad checksum is a damaged Multiboot kernel, for the loader to refuse"
        );
        let cut = &multiboot_image(64, 52)[..62];
        assert_eq!(detect(cut), DetectedFormat::Raw, "header cut off");
    }

    #[test]
    fn multiboot2_header_rules() {
        assert_eq!(detect(&multiboot2_image(64, 0)), DetectedFormat::Multiboot2);
        assert_eq!(
            detect(&multiboot2_image(33000, 32752)),
            DetectedFormat::Multiboot2
        );
        assert_eq!(
            detect(&multiboot2_image(33000, 32760)),
            DetectedFormat::Raw,
            "past 32 KiB"
        );
        assert_eq!(
            detect(&multiboot2_image(64, 4)),
            DetectedFormat::Raw,
            "misaligned"
        );
        let mut bad = multiboot2_image(64, 8);
        bad[20] ^= 1;
        assert_eq!(detect(&bad), DetectedFormat::Multiboot2, "bad checksum");
        // A damaged Multiboot2 magic does not hide a sound Multiboot header.
        let mut both = multiboot2_image(128, 64);
        both[68] ^= 1;
        both[..12].copy_from_slice(&multiboot_image(12, 0));
        assert_eq!(detect(&both), DetectedFormat::Multiboot);
    }

    #[test]
    fn multiboot2_before_multiboot() {
        let mut image = multiboot2_image(128, 64);
        image[..12].copy_from_slice(&multiboot_image(12, 0));
        assert_eq!(detect(&image), DetectedFormat::Multiboot2);
    }

    #[test]
    fn linux_signature() {
        assert_eq!(detect(&linux_image(0x206)), DetectedFormat::Linux);
        assert_eq!(detect(&linux_image(0x206)[..0x205]), DetectedFormat::Raw);
    }

    #[test]
    fn names() {
        use std::string::ToString;
        assert_eq!(DetectedFormat::Elf64.to_string(), "ELF64");
        assert_eq!(DetectedFormat::Multiboot2.to_string(), "Multiboot2 kernel");
    }
}
