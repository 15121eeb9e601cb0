//! The Multiboot2 boot information, reduced to what tessera uses: the
//! command lines, the memory map, the modules and the ACPI RSDP.
//!
//! GRUB leaves the information structure, the modules and the strings in RAM
//! that the memory map reports as usable; [`BootInfo::reserved`] names those
//! ranges so that the frame allocator leaves them alone, which is what makes
//! the `'static` borrows here sound.

use core::cell::UnsafeCell;
use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType, StringError};
use tessera_kernel::mm::phys::{PhysRange, RegionKind};
use tessera_kernel::options::lossy_cmdline;

/// The most memory-map entries kept (firmware maps rarely exceed 64).
pub const MAX_REGIONS: usize = 128;
/// The most modules accepted.
pub const MAX_MODULES: usize = 256;

/// One module as GRUB loaded it.
#[derive(Clone, Copy)]
pub struct Module {
    /// Where its bytes are.
    pub range: PhysRange,
    /// Its `module2` command line.
    pub cmdline: &'static str,
}

/// The firmware GRUB ran on, as the tags reveal it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS.
    Bios,
    /// UEFI (GRUB passed an EFI system-table tag).
    Uefi,
}

/// What tessera learned from the bootloader.
pub struct BootInfo {
    /// The hypervisor's command line.
    pub cmdline: &'static str,
    /// The bootloader's name.
    pub loader: &'static str,
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// Which memory map the regions came from.
    pub map_source: &'static str,
    /// The memory map.
    pub regions: [(PhysRange, RegionKind); MAX_REGIONS],
    /// Entries used in `regions`.
    pub region_count: usize,
    /// The modules, in GRUB's order.
    pub modules: [Module; MAX_MODULES],
    /// Entries used in `modules`.
    pub module_count: usize,
    /// Modules beyond `MAX_MODULES`, which are ignored.
    pub modules_dropped: usize,
    /// Physical address of a copy of the RSDP, if GRUB passed one.
    pub rsdp: Option<u64>,
    /// Where the boot information itself lies.
    pub info_range: PhysRange,
}

/// Why the boot information could not be used.
#[derive(Debug)]
pub enum BootInfoError {
    /// The structure failed the multiboot2 crate's checks.
    Malformed,
    /// No memory map of either kind.
    NoMemoryMap,
}

/// Extends a borrow of a string inside the boot information to `'static`.
fn forever(text: &str) -> &'static str {
    // SAFETY: the boot information is reserved from the frame allocator for
    // the life of the kernel and never written, so its strings stay valid.
    unsafe { &*(text as *const str) }
}

/// Bytes for the readable copies of command lines that are not UTF-8.
const SCRATCH_SIZE: usize = 4096;

/// Where [`readable`] writes those copies: the boot information must not be
/// written, and there is no heap yet when it is parsed.
struct Scratch(UnsafeCell<[u8; SCRATCH_SIZE]>);

// SAFETY: bytes are only written through `readable`, under `SCRATCH_USED`'s
// lock, and only past `SCRATCH_USED`, where no reference has been handed out.
unsafe impl Sync for Scratch {}

static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; SCRATCH_SIZE]));
/// How many bytes of `SCRATCH` are handed out (and never written again).
static SCRATCH_USED: spin::Mutex<usize> = spin::Mutex::new(0);

/// Stands for a bad command line when `SCRATCH` is full: still refused
/// (U+FFFD makes the option parser refuse the line), just less readable.
const UNREADABLE: &str = "\u{FFFD}";

/// A command line from the boot information as text.
///
/// A line that is not UTF-8 must not become "" — a module would silently
/// lose every option and run with defaults. It becomes a copy with U+FFFD
/// for each bad byte, which the option parser refuses with a reason naming
/// the module, and which the boot log shows as it was.
fn readable(text: Result<&str, StringError>, raw: &[u8]) -> &'static str {
    match text {
        Ok(text) => forever(text),
        Err(StringError::MissingNul(_)) => forever(""),
        Err(StringError::Utf8(_)) => {
            let raw = raw.split(|&b| b == 0).next().unwrap_or(raw);
            let mut used = SCRATCH_USED.lock();
            let start = *used;
            // SAFETY: `[start, SCRATCH_SIZE)` has never been handed out and
            // the lock keeps anyone else from writing it meanwhile.
            let out = unsafe {
                core::slice::from_raw_parts_mut(
                    SCRATCH.0.get().cast::<u8>().add(start),
                    SCRATCH_SIZE - start,
                )
            };
            let length = lossy_cmdline(raw, out);
            *used = start + length;
            match core::str::from_utf8(&out[..length]) {
                Ok(copy) if copy.contains(char::REPLACEMENT_CHARACTER) => forever(copy),
                _ => UNREADABLE,
            }
        }
    }
}

/// The bytes of a tag after its first `skip` bytes (the string of a
/// command-line, boot-loader-name or module tag, NUL-terminated).
fn tag_string_bytes<T: ?Sized>(tag: &T, skip: usize) -> &[u8] {
    let size = core::mem::size_of_val(tag);
    // SAFETY: `tag` is a tag of the boot information, `size_of_val` bytes
    // long (the multiboot2 crate sized it from the tag's header).
    let bytes = unsafe { core::slice::from_raw_parts(tag as *const T as *const u8, size) };
    bytes.get(skip..).unwrap_or(&[])
}

impl BootInfo {
    /// The memory map.
    pub fn regions(&self) -> impl Iterator<Item = (PhysRange, RegionKind)> + Clone + '_ {
        self.regions[..self.region_count].iter().copied()
    }

    /// The modules.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.module_count]
    }

    /// Everything the frame allocator must never hand out: the boot
    /// information and every module.
    pub fn reserved(&self) -> impl Iterator<Item = PhysRange> + '_ {
        core::iter::once(self.info_range).chain(self.modules().iter().map(|m| m.range))
    }

    /// Parses the structure at `address`.
    ///
    /// # Safety
    /// `address` must be the value GRUB passed in EBX, and the memory it
    /// covers must stay untouched for the life of the kernel.
    pub unsafe fn parse(address: u64) -> Result<BootInfo, BootInfoError> {
        // SAFETY: the caller vouches for the pointer; `load` validates sizes.
        let info = unsafe { BootInformation::load(address as *const BootInformationHeader) }
            .map_err(|_| BootInfoError::Malformed)?;
        let empty = PhysRange { start: 0, end: 0 };
        let mut boot = BootInfo {
            // Both tags are an 8-byte header, then the string.
            cmdline: info
                .command_line_tag()
                .map_or("", |t| readable(t.cmdline(), tag_string_bytes(t, 8))),
            loader: info.boot_loader_name_tag().map_or("unknown loader", |t| {
                readable(t.name(), tag_string_bytes(t, 8))
            }),
            firmware: if info.efi_sdt64_tag().is_some() || info.efi_sdt32_tag().is_some() {
                Firmware::Uefi
            } else {
                Firmware::Bios
            },
            map_source: "",
            regions: [(empty, RegionKind::Reserved); MAX_REGIONS],
            region_count: 0,
            modules: [Module {
                range: empty,
                cmdline: "",
            }; MAX_MODULES],
            module_count: 0,
            modules_dropped: 0,
            rsdp: None,
            info_range: PhysRange {
                start: info.start_address() as u64,
                end: info.end_address() as u64,
            },
        };

        if let Some(map) = info.memory_map_tag() {
            boot.map_source = "Multiboot2 memory map";
            for area in map.memory_areas() {
                let kind = match area.typ() {
                    MemoryAreaType::Available => RegionKind::Usable,
                    MemoryAreaType::AcpiAvailable => RegionKind::AcpiReclaimable,
                    MemoryAreaType::ReservedHibernate => RegionKind::AcpiNvs,
                    MemoryAreaType::Defective => RegionKind::Defective,
                    _ => RegionKind::Reserved,
                };
                boot.push_region(PhysRange::new(area.start_address(), area.size()), kind);
            }
        } else if let Some(map) = info.efi_memory_map_tag() {
            boot.map_source = "EFI memory map";
            for descriptor in map.memory_areas() {
                // Boot services have been exited by GRUB, so their memory is
                // free too (UEFI spec 2.10, 7.2 "Memory Type Usage after
                // ExitBootServices()").
                let kind = match descriptor.ty.0 {
                    1..=4 | 7 => RegionKind::Usable,
                    9 => RegionKind::AcpiReclaimable,
                    10 => RegionKind::AcpiNvs,
                    8 => RegionKind::Defective,
                    _ => RegionKind::Reserved,
                };
                let range = PhysRange::new(descriptor.phys_start, descriptor.page_count * 4096);
                boot.push_region(range, kind);
            }
        } else {
            return Err(BootInfoError::NoMemoryMap);
        }

        for module in info.module_tags() {
            if boot.module_count == MAX_MODULES {
                boot.modules_dropped += 1;
                continue;
            }
            boot.modules[boot.module_count] = Module {
                range: PhysRange {
                    start: module.start_address() as u64,
                    end: module.end_address() as u64,
                },
                // The header, then the module's start and end (u32 each).
                cmdline: readable(module.cmdline(), tag_string_bytes(module, 16)),
            };
            boot.module_count += 1;
        }

        // The tags hold copies of the RSDP right after their 8-byte header.
        boot.rsdp = info
            .rsdp_v2_tag()
            .map(|t| t as *const _ as u64 + 8)
            .or_else(|| info.rsdp_v1_tag().map(|t| t as *const _ as u64 + 8));
        Ok(boot)
    }

    fn push_region(&mut self, range: PhysRange, kind: RegionKind) {
        if self.region_count < MAX_REGIONS && !range.is_empty() {
            self.regions[self.region_count] = (range, kind);
            self.region_count += 1;
        }
    }
}
