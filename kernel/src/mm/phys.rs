//! Physical memory bookkeeping: a set of free physical ranges built from the
//! firmware memory map, minus everything that is in use at boot (the kernel
//! image, the modules, the boot information), and a first-fit allocator of
//! large, aligned regions over it.
//!
//! The set has a fixed capacity so that it works before the heap exists — the
//! heap itself is carved out of it.

use core::fmt;

/// The size of a small page.
pub const PAGE_SIZE: u64 = 4096;

/// A half-open range of physical addresses `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, start + len)`, saturating at the top of the address space.
    pub const fn new(start: u64, len: u64) -> PhysRange {
        PhysRange {
            start,
            end: start.saturating_add(len),
        }
    }

    /// Its length in bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it holds no bytes.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The largest page-aligned range inside this one.
    pub const fn shrink_to_pages(&self) -> PhysRange {
        let start = align_up(self.start, PAGE_SIZE);
        let end = self.end & !(PAGE_SIZE - 1);
        if end <= start {
            PhysRange { start, end: start }
        } else {
            PhysRange { start, end }
        }
    }

    /// The smallest page-aligned range that covers this one.
    pub const fn grow_to_pages(&self) -> PhysRange {
        PhysRange {
            start: self.start & !(PAGE_SIZE - 1),
            end: align_up(self.end, PAGE_SIZE),
        }
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#011x}-{:#011x}", self.start, self.end)
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two), saturating.
pub const fn align_up(value: u64, align: u64) -> u64 {
    match value.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => !(align - 1),
    }
}

/// Why an operation on a [`RangeSet`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// The set would need more entries than its capacity.
    Full,
    /// No free range can satisfy the request.
    OutOfMemory,
    /// Size zero, or an alignment that is not a power of two of at least a page.
    BadRequest,
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::Full => f.write_str("too many free-memory fragments"),
            RangeError::OutOfMemory => f.write_str("not enough free memory"),
            RangeError::BadRequest => f.write_str("invalid size or alignment"),
        }
    }
}

/// A sorted set of disjoint, non-adjacent ranges with a fixed capacity.
#[derive(Clone)]
pub struct RangeSet<const N: usize> {
    ranges: [PhysRange; N],
    count: usize,
}

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for RangeSet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<const N: usize> RangeSet<N> {
    /// An empty set.
    pub const fn new() -> Self {
        RangeSet {
            ranges: [PhysRange { start: 0, end: 0 }; N],
            count: 0,
        }
    }

    /// The ranges, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &PhysRange> + '_ {
        self.ranges[..self.count].iter()
    }

    /// The number of ranges.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set holds no range.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total bytes in the set.
    pub fn total(&self) -> u64 {
        self.iter().map(PhysRange::len).sum()
    }

    /// The largest single range.
    pub fn largest(&self) -> Option<PhysRange> {
        self.iter().copied().max_by_key(PhysRange::len)
    }

    /// Adds a range, merging it with neighbours it touches or overlaps.
    pub fn insert(&mut self, range: PhysRange) -> Result<(), RangeError> {
        if range.is_empty() {
            return Ok(());
        }
        let mut merged = range;
        // Absorb every existing range that overlaps or touches `merged`.
        let mut index = 0;
        while index < self.count {
            let existing = self.ranges[index];
            if existing.start <= merged.end && merged.start <= existing.end {
                merged.start = merged.start.min(existing.start);
                merged.end = merged.end.max(existing.end);
                self.remove_at(index);
            } else {
                index += 1;
            }
        }
        if self.count == N {
            return Err(RangeError::Full);
        }
        let position = self.ranges[..self.count]
            .iter()
            .position(|r| r.start > merged.start)
            .unwrap_or(self.count);
        self.ranges.copy_within(position..self.count, position + 1);
        self.ranges[position] = merged;
        self.count += 1;
        Ok(())
    }

    /// Removes every byte of `range` from the set, splitting ranges as needed.
    pub fn remove(&mut self, range: PhysRange) -> Result<(), RangeError> {
        if range.is_empty() {
            return Ok(());
        }
        let mut index = 0;
        while index < self.count {
            let existing = self.ranges[index];
            if !existing.overlaps(&range) {
                index += 1;
                continue;
            }
            let below = PhysRange {
                start: existing.start,
                end: range.start,
            };
            let above = PhysRange {
                start: range.end,
                end: existing.end,
            };
            match (
                below.is_empty() || existing.start >= range.start,
                above.is_empty() || existing.end <= range.end,
            ) {
                (true, true) => self.remove_at(index),
                (false, true) => {
                    self.ranges[index] = below;
                    index += 1;
                }
                (true, false) => {
                    self.ranges[index] = above;
                    index += 1;
                }
                (false, false) => {
                    if self.count == N {
                        return Err(RangeError::Full);
                    }
                    self.ranges.copy_within(index + 1..self.count, index + 2);
                    self.ranges[index] = below;
                    self.ranges[index + 1] = above;
                    self.count += 1;
                    index += 2;
                }
            }
        }
        Ok(())
    }

    /// Takes `size` bytes aligned to `align` that end at or below `limit`,
    /// from the lowest range that can hold them.
    pub fn allocate(&mut self, size: u64, align: u64, limit: u64) -> Result<PhysRange, RangeError> {
        if size == 0 || !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(RangeError::BadRequest);
        }
        let size = align_up(size, PAGE_SIZE);
        let found = self.iter().find_map(|free| {
            let start = align_up(free.start, align);
            let end = start.checked_add(size)?;
            (end <= free.end && end <= limit).then_some(PhysRange { start, end })
        });
        let chunk = found.ok_or(RangeError::OutOfMemory)?;
        self.remove(chunk)?;
        Ok(chunk)
    }

    /// Whether every byte of `range` is in the set.
    pub fn contains(&self, range: PhysRange) -> bool {
        self.iter()
            .any(|free| free.start <= range.start && range.end <= free.end)
    }

    fn remove_at(&mut self, index: usize) {
        self.ranges.copy_within(index + 1..self.count, index);
        self.count -= 1;
    }
}

/// The kind of a firmware memory-map entry, reduced to what matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// RAM free for the OS.
    Usable,
    /// ACPI tables, reclaimable after they are read.
    AcpiReclaimable,
    /// ACPI NVS, never to be touched.
    AcpiNvs,
    /// Faulty RAM.
    Defective,
    /// Anything else: firmware, MMIO, holes.
    Reserved,
}

/// Builds the set of free page frames: usable RAM, page-aligned inward, above
/// `floor` (the first megabyte stays with the firmware and, later, the
/// application-processor trampoline), minus every reserved range, each grown
/// to whole pages.
///
/// Overlapping firmware entries are resolved conservatively: a byte reported
/// as anything other than usable by any entry is not free.
pub fn free_frames<const N: usize>(
    map: impl Iterator<Item = (PhysRange, RegionKind)> + Clone,
    reserved: &[PhysRange],
    floor: u64,
) -> Result<RangeSet<N>, RangeError> {
    let mut set = RangeSet::<N>::new();
    for (range, kind) in map.clone() {
        if kind == RegionKind::Usable {
            set.insert(range)?;
        }
    }
    for (range, kind) in map {
        if kind != RegionKind::Usable {
            set.remove(range.grow_to_pages())?;
        }
    }
    set.remove(PhysRange {
        start: 0,
        end: floor,
    })?;
    for range in reserved {
        set.remove(range.grow_to_pages())?;
    }
    // Trim every range inward to whole pages.
    let mut trimmed = RangeSet::<N>::new();
    for range in set.iter() {
        trimmed.insert(range.shrink_to_pages())?;
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    fn ranges<const N: usize>(set: &RangeSet<N>) -> Vec<(u64, u64)> {
        set.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn insert_merges_adjacent_and_overlapping() {
        let mut set = RangeSet::<8>::new();
        set.insert(r(0x3000, 0x4000)).unwrap();
        set.insert(r(0x1000, 0x2000)).unwrap();
        assert_eq!(ranges(&set), [(0x1000, 0x2000), (0x3000, 0x4000)]);
        set.insert(r(0x2000, 0x3000)).unwrap();
        assert_eq!(ranges(&set), [(0x1000, 0x4000)]);
        set.insert(r(0x800, 0x5000)).unwrap();
        assert_eq!(ranges(&set), [(0x800, 0x5000)]);
        assert_eq!(set.total(), 0x4800);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut set = RangeSet::<8>::new();
        set.insert(r(0x1000, 0x9000)).unwrap();
        set.remove(r(0x3000, 0x4000)).unwrap();
        assert_eq!(ranges(&set), [(0x1000, 0x3000), (0x4000, 0x9000)]);
        set.remove(r(0x0, 0x2000)).unwrap();
        set.remove(r(0x8000, 0x10000)).unwrap();
        assert_eq!(ranges(&set), [(0x2000, 0x3000), (0x4000, 0x8000)]);
        set.remove(r(0x2000, 0x3000)).unwrap();
        assert_eq!(ranges(&set), [(0x4000, 0x8000)]);
        set.remove(r(0x0, 0x100000)).unwrap();
        assert!(set.is_empty());
    }

    #[test]
    fn capacity_is_reported() {
        let mut set = RangeSet::<2>::new();
        set.insert(r(0x1000, 0x2000)).unwrap();
        set.insert(r(0x3000, 0x8000)).unwrap();
        assert_eq!(set.insert(r(0x10000, 0x11000)), Err(RangeError::Full));
        assert_eq!(set.remove(r(0x4000, 0x5000)), Err(RangeError::Full));
    }

    #[test]
    fn allocate_aligned_below_limit() {
        let mut set = RangeSet::<8>::new();
        set.insert(r(0x1000, 0x100000)).unwrap();
        set.insert(r(0x200000, 0x800000)).unwrap();
        let chunk = set.allocate(0x200000, 0x200000, u64::MAX).unwrap();
        assert_eq!(chunk, r(0x200000, 0x400000));
        let small = set.allocate(0x1800, 0x1000, u64::MAX).unwrap();
        assert_eq!(small, r(0x1000, 0x3000), "rounded up to whole pages");
        assert_eq!(
            set.allocate(0x400000, 0x1000, u64::MAX),
            Ok(r(0x400000, 0x800000))
        );
        assert_eq!(
            set.allocate(0x100000, 0x1000, 0x80000),
            Err(RangeError::OutOfMemory)
        );
        assert_eq!(
            set.allocate(0, 0x1000, u64::MAX),
            Err(RangeError::BadRequest)
        );
        assert_eq!(
            set.allocate(0x1000, 0x1800, u64::MAX),
            Err(RangeError::BadRequest)
        );
        assert!(!set.contains(r(0x200000, 0x201000)));
    }

    #[test]
    fn free_frames_from_a_bios_map() {
        // A typical SeaBIOS e820 map for 256 MiB.
        let map = [
            (r(0x0, 0x9fc00), RegionKind::Usable),
            (r(0x9fc00, 0xa0000), RegionKind::Reserved),
            (r(0xf0000, 0x100000), RegionKind::Reserved),
            (r(0x100000, 0xffe0000), RegionKind::Usable),
            (r(0xffe0000, 0x10000000), RegionKind::Reserved),
            (r(0xfffc0000, 0x100000000), RegionKind::Reserved),
        ];
        let kernel = r(0x200000, 0x2345678);
        let module = r(0x3000123, 0x3000200);
        let set = free_frames::<16>(map.iter().copied(), &[kernel, module], 0x100000).unwrap();
        assert_eq!(
            ranges(&set),
            [
                (0x100000, 0x200000),
                (0x2346000, 0x3000000),
                (0x3001000, 0xffe0000)
            ]
        );
        for (range, kind) in map {
            if kind != RegionKind::Usable {
                assert!(set.iter().all(|free| !free.overlaps(&range)));
            }
        }
    }

    #[test]
    fn conflicting_entries_are_not_free() {
        let map = [
            (r(0x100000, 0x400000), RegionKind::Usable),
            (r(0x200800, 0x201000), RegionKind::AcpiNvs),
        ];
        let set = free_frames::<8>(map.iter().copied(), &[], 0).unwrap();
        assert_eq!(ranges(&set), [(0x100000, 0x200000), (0x201000, 0x400000)]);
    }

    #[test]
    fn unaligned_usable_entries_shrink_inward() {
        let map = [(r(0x100010, 0x103ff0), RegionKind::Usable)];
        let set = free_frames::<8>(map.iter().copied(), &[], 0).unwrap();
        assert_eq!(ranges(&set), [(0x101000, 0x103000)]);
    }
}
