//! Test doubles for the loader: a sparse guest memory that records every
//! access and refuses any outside guest RAM, a builder of small ELF32 and
//! ELF64 executables, and one of fake Linux bzImages.

use super::elf::ElfClass;
use super::GuestMemory;
use crate::mm::page_tables::TableMemory;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec::Vec;

/// Guest RAM of any size, holding only the pages that were touched.
pub struct FakeMemory {
    size: u64,
    pages: BTreeMap<u64, Box<[u64; 512]>>,
    /// Every `write` (and so `zero`) access, `(start, length)`.
    pub accesses: Vec<(u64, u64)>,
    /// Every page reached through `table`.
    pub tables: Vec<u64>,
}

impl FakeMemory {
    /// `size` bytes of zeroed guest RAM.
    pub fn new(size: u64) -> Self {
        FakeMemory {
            size,
            pages: BTreeMap::new(),
            accesses: Vec::new(),
            tables: Vec::new(),
        }
    }

    fn check(&self, gpa: u64, length: u64) {
        let end = gpa.checked_add(length);
        assert!(
            end.is_some_and(|end| end <= self.size),
            "access {:#x}+{:#x} outside {:#x} bytes of guest RAM",
            gpa,
            length,
            self.size
        );
    }

    fn page(&mut self, gpa: u64) -> &mut [u64; 512] {
        self.pages
            .entry(gpa & !0xfff)
            .or_insert_with(|| Box::new([0; 512]))
    }

    fn set(&mut self, gpa: u64, bytes: &[u8]) {
        let mut at = gpa;
        for chunk in bytes.chunks(4096) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let offset = (at & 0xfff) as usize;
                let here = rest.len().min(4096 - offset);
                let page = self.page(at);
                for (i, &byte) in rest[..here].iter().enumerate() {
                    let word = &mut page[(offset + i) / 8];
                    let mut le = word.to_le_bytes();
                    le[(offset + i) % 8] = byte;
                    *word = u64::from_le_bytes(le);
                }
                at += here as u64;
                rest = &rest[here..];
            }
        }
    }

    /// Fills a range with `byte` without recording it: dirt a loader must clear.
    pub fn fill(&mut self, gpa: u64, length: u64, byte: u8) {
        self.check(gpa, length);
        self.set(gpa, &std::vec![byte; length as usize]);
    }

    /// Reads `length` bytes at `gpa`.
    pub fn read(&self, gpa: u64, length: u64) -> Vec<u8> {
        (gpa..gpa + length)
            .map(|at| match self.pages.get(&(at & !0xfff)) {
                Some(page) => page[((at & 0xfff) / 8) as usize].to_le_bytes()[(at % 8) as usize],
                None => 0,
            })
            .collect()
    }

    /// Reads the little-endian `u64` at `gpa`.
    pub fn read_u64(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(self.read(gpa, 8).try_into().unwrap())
    }
}

impl GuestMemory for FakeMemory {
    fn size(&self) -> u64 {
        self.size
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) {
        self.check(gpa, bytes.len() as u64);
        self.accesses.push((gpa, bytes.len() as u64));
        self.set(gpa, bytes);
    }

    fn table(&mut self, gpa: u64) -> &mut [u64; 512] {
        assert_eq!(gpa % 4096, 0, "table {:#x} is not page-aligned", gpa);
        self.check(gpa, 4096);
        self.tables.push(gpa);
        self.page(gpa)
    }
}

/// A [`TableMemory`] over guest memory that adopts an existing PML4: its one
/// allocation is `root`, so `PageTables::new` wraps tables the loader built.
pub struct ExistingTables<'m> {
    /// The guest memory holding the tables.
    pub memory: &'m mut FakeMemory,
    /// The PML4 to adopt, until it is taken.
    pub root: Option<u64>,
}

impl TableMemory for ExistingTables<'_> {
    fn allocate_table(&mut self) -> Option<u64> {
        self.root.take()
    }

    fn table(&mut self, address: u64) -> &mut [u64; 512] {
        self.memory.table(address)
    }
}

struct TestSegment {
    kind: u32,
    physical: u64,
    virtual_address: u64,
    data: Vec<u8>,
    memory_size: u64,
}

/// Assembles an ELF executable: header, program headers, then each
/// segment's bytes back to back, with no padding anywhere.
pub struct ElfBuilder {
    class: ElfClass,
    machine: u16,
    kind: u16,
    entry: u64,
    segments: Vec<TestSegment>,
}

impl ElfBuilder {
    /// An x86-64 executable entering at `entry`.
    pub fn elf64(entry: u64) -> Self {
        ElfBuilder {
            class: ElfClass::Elf64,
            machine: 62,
            kind: 2,
            entry,
            segments: Vec::new(),
        }
    }

    /// An i386 executable entering at `entry`.
    pub fn elf32(entry: u64) -> Self {
        ElfBuilder {
            class: ElfClass::Elf32,
            machine: 3,
            ..ElfBuilder::elf64(entry)
        }
    }

    /// Sets e_machine.
    pub fn machine(mut self, machine: u16) -> Self {
        self.machine = machine;
        self
    }

    /// Sets e_type.
    pub fn kind(mut self, kind: u16) -> Self {
        self.kind = kind;
        self
    }

    /// A PT_LOAD segment with p_paddr = p_vaddr.
    pub fn segment(self, physical: u64, data: &[u8], memory_size: u64) -> Self {
        self.segment_at(physical, physical, data, memory_size)
    }

    /// A PT_LOAD segment with distinct physical and virtual addresses.
    pub fn segment_at(
        mut self,
        physical: u64,
        virtual_address: u64,
        data: &[u8],
        memory_size: u64,
    ) -> Self {
        self.segments.push(TestSegment {
            kind: 1,
            physical,
            virtual_address,
            data: data.to_vec(),
            memory_size,
        });
        self
    }

    /// A PT_NOTE program header, which the loader must skip.
    pub fn note(mut self) -> Self {
        self.segments.push(TestSegment {
            kind: 4,
            physical: 0,
            virtual_address: 0,
            data: Vec::new(),
            memory_size: 0,
        });
        self
    }

    /// Where the program headers start, and the size of each, for a class.
    pub fn program_header_fields(class: ElfClass) -> (u64, u64) {
        match class {
            ElfClass::Elf32 => (52, 32),
            ElfClass::Elf64 => (64, 56),
        }
    }

    /// The image's bytes.
    pub fn build(&self) -> Vec<u8> {
        let wide = self.class == ElfClass::Elf64;
        let (header_size, entry_size) = Self::program_header_fields(self.class);
        let mut out = Vec::new();
        let word = |out: &mut Vec<u8>, value: u64| {
            if wide {
                out.extend_from_slice(&value.to_le_bytes());
            } else {
                out.extend_from_slice(&(value as u32).to_le_bytes());
            }
        };
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[if wide { 2 } else { 1 }, 1, 1, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        word(&mut out, self.entry);
        word(&mut out, header_size); // e_phoff
        word(&mut out, 0); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(header_size as u16).to_le_bytes());
        out.extend_from_slice(&(entry_size as u16).to_le_bytes());
        out.extend_from_slice(&(self.segments.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
        assert_eq!(out.len() as u64, header_size);

        let mut offset = header_size + entry_size * self.segments.len() as u64;
        for segment in &self.segments {
            out.extend_from_slice(&segment.kind.to_le_bytes());
            if wide {
                out.extend_from_slice(&7u32.to_le_bytes()); // p_flags: RWX
            }
            word(&mut out, offset);
            word(&mut out, segment.virtual_address);
            word(&mut out, segment.physical);
            word(&mut out, segment.data.len() as u64);
            word(&mut out, segment.memory_size);
            if !wide {
                out.extend_from_slice(&7u32.to_le_bytes()); // p_flags: RWX
            }
            word(&mut out, 0x1000); // p_align
            offset += segment.data.len() as u64;
        }
        for segment in &self.segments {
            out.extend_from_slice(&segment.data);
        }
        out
    }
}

/// The fields of a fake bzImage's setup header.
#[derive(Clone)]
pub struct BzImage {
    /// `setup_sects` (0 means 4).
    pub setup_sects: u8,
    /// `version`.
    pub version: u16,
    /// `loadflags`.
    pub loadflags: u8,
    /// `xloadflags`.
    pub xloadflags: u16,
    /// `relocatable_kernel`.
    pub relocatable: u8,
    /// `kernel_alignment`.
    pub kernel_alignment: u32,
    /// `pref_address`.
    pub pref_address: u64,
    /// `init_size`.
    pub init_size: u32,
    /// `initrd_addr_max`.
    pub initrd_addr_max: u32,
    /// `cmdline_size`.
    pub cmdline_size: u32,
    /// One past the header's last byte (0x202 + the byte at 0x201).
    pub header_end: u64,
    /// Bytes of protected-mode kernel after the setup sectors.
    pub payload: usize,
}

impl BzImage {
    /// A protocol 2.15 kernel like Debian's, scaled down: 16 MiB preferred,
    /// 4 MiB init_size, relocatable on 2 MiB.
    pub fn new() -> Self {
        BzImage {
            setup_sects: 3,
            version: 0x020f,
            loadflags: 0x01,
            xloadflags: 0x01,
            relocatable: 1,
            kernel_alignment: 0x20_0000,
            pref_address: 0x100_0000,
            init_size: 0x40_0000,
            initrd_addr_max: 0x7fff_ffff,
            cmdline_size: 2047,
            header_end: 0x26c,
            payload: 0x1000,
        }
    }

    fn setup_bytes(&self) -> usize {
        let sectors = if self.setup_sects == 0 {
            4
        } else {
            self.setup_sects
        };
        (usize::from(sectors) + 1) * 512
    }

    /// The byte at `offset` of the payload.
    pub fn payload_byte(offset: usize) -> u8 {
        (offset * 7 + 3) as u8
    }

    /// The image: boot sector, setup sectors, payload.
    pub fn build(&self) -> Vec<u8> {
        let setup = self.setup_bytes();
        let mut image = std::vec![0u8; setup + self.payload];
        let mut put = |offset: usize, bytes: &[u8]| {
            image[offset..offset + bytes.len()].copy_from_slice(bytes);
        };
        put(0x1f1, &[self.setup_sects]);
        put(0x1fe, &[0x55, 0xaa]);
        put(0x200, &[0xeb, (self.header_end - 0x202) as u8]);
        put(0x202, b"HdrS");
        put(0x206, &self.version.to_le_bytes());
        put(0x211, &[self.loadflags]);
        put(0x214, &0x10_0000u32.to_le_bytes());
        put(0x22c, &self.initrd_addr_max.to_le_bytes());
        put(0x230, &self.kernel_alignment.to_le_bytes());
        put(0x234, &[self.relocatable, 21]);
        put(0x236, &self.xloadflags.to_le_bytes());
        put(0x238, &self.cmdline_size.to_le_bytes());
        put(0x258, &self.pref_address.to_le_bytes());
        put(0x260, &self.init_size.to_le_bytes());
        for (index, byte) in image[setup..].iter_mut().enumerate() {
            *byte = BzImage::payload_byte(index);
        }
        image
    }
}
