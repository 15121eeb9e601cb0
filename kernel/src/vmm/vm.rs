//! A virtual machine: one guest image, its RAM, its EPT, its vCPU and its
//! bookkeeping. Creating one checks everything about the module first, so
//! that a bad module costs only its own VM.

use super::guest_memory::{GuestRam, OwnedFrames};
use crate::console::line_buffer::LineBuffer;
use crate::loader::{self, BootState};
use crate::options::{ModuleOptions, RestartPolicy};
use crate::size::Bytes;
use crate::vmm::sched::RunState;
use crate::vmx::capabilities::Capabilities;
use crate::vmx::ept;
use crate::vmx::exit_reason::ExitCounts;
use crate::vmx::vcpu::{StartState, Vcpu, VmStructures};
use alloc::format;
use alloc::string::String;

/// Guest RAM when `mem=` is absent.
pub const DEFAULT_MEMORY: u64 = 16 << 20;
/// Restarts in a row after which a crashing VM is left stopped.
pub const MAX_RESTARTS: u32 = 3;

/// Why a VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The guest called the exit hypercall.
    Exited(i64),
    /// The guest halted with nothing that could wake it.
    Halted,
    /// The guest did something that ends it: the text says what.
    Fault(String),
}

impl StopReason {
    /// Whether this counts as a crash for `restart=on-crash`.
    pub fn is_crash(&self) -> bool {
        matches!(self, StopReason::Fault(_))
            || matches!(self, StopReason::Exited(code) if *code != 0)
    }
}

/// Per-VM port I/O statistics for the unhandled ports.
#[derive(Debug, Default, Clone, Copy)]
pub struct PortStats {
    /// Reads of ports with no device (answered with all ones).
    pub unhandled_reads: u64,
    /// Writes to ports with no device (dropped).
    pub unhandled_writes: u64,
}

/// One VM.
pub struct Vm {
    /// Number from 1, in module order.
    pub id: u32,
    /// Unique name; prefixes its console lines.
    pub name: String,
    /// The module's options.
    pub options: ModuleOptions,
    /// The image bytes (inside the module GRUB loaded; reloaded on restart).
    pub image: &'static [u8],
    /// Guest RAM.
    pub ram: GuestRam,
    /// EPT tables and bitmaps.
    _frames: OwnedFrames,
    /// The vCPU.
    pub vcpu: Vcpu,
    /// How it starts.
    pub start: StartState,
    /// What the scheduler sees.
    pub state: RunState,
    /// Set once stopped.
    pub stop: Option<StopReason>,
    /// Exits by basic reason.
    pub exits: ExitCounts,
    /// Unhandled port accesses.
    pub ports: PortStats,
    /// Pending console output.
    pub console: LineBuffer,
    /// Restarts so far.
    pub restarts: u32,
    /// COM1 line-control register (for DLAB).
    pub com1_lcr: u8,
    /// COM1 scratch register.
    pub com1_scratch: u8,
    /// Virtualized MSR values.
    pub msrs: super::msr::VirtualMsrs,
}

/// MSRs a guest may read and write directly (SDM Vol. 3C, 26.6.9 for the
/// bitmap layout): the segment bases, which the VMCS switches, and the
/// SYSCALL MSRs and KERNEL_GS_BASE, which the vCPU switches.
const PASS_THROUGH_MSRS: [u32; 10] = [
    0x174,       // IA32_SYSENTER_CS
    0x175,       // IA32_SYSENTER_ESP
    0x176,       // IA32_SYSENTER_EIP
    0xc000_0081, // IA32_STAR
    0xc000_0082, // IA32_LSTAR
    0xc000_0083, // IA32_CSTAR
    0xc000_0084, // IA32_FMASK
    0xc000_0100, // IA32_FS_BASE
    0xc000_0101, // IA32_GS_BASE
    0xc000_0102, // IA32_KERNEL_GS_BASE
];

fn start_state(boot: &BootState) -> StartState {
    StartState {
        mode: boot.mode,
        rip: boot.entry,
        real_mode_cs: boot.real_mode_cs,
        rsp: boot.stack,
        cr3: boot.cr3,
        gdt_base: boot.gdt_base,
        gdt_limit: boot.gdt_limit,
    }
}

fn clear_msr_intercept(bitmap: &mut [u8], msr: u32) {
    // Read bitmap for low MSRs at 0, high MSRs at 1024; write bitmaps at
    // 2048 and 3072.
    let (base, index) = match msr {
        0..=0x1fff => (0, msr),
        0xc000_0000..=0xc000_1fff => (1024, msr - 0xc000_0000),
        _ => return,
    };
    let byte = base + (index / 8) as usize;
    let bit = 1u8 << (index % 8);
    bitmap[byte] &= !bit;
    bitmap[byte + 2048] &= !bit;
}

impl Vm {
    /// Creates a VM for a module: RAM, image, EPT, bitmaps, vCPU.
    pub fn create(
        id: u32,
        name: String,
        options: ModuleOptions,
        image: &'static [u8],
        capabilities: &Capabilities,
    ) -> Result<Vm, String> {
        let memory = options.mem.unwrap_or(DEFAULT_MEMORY);
        let free = crate::mm::free_bytes();
        if memory > free {
            return Err(format!(
                "mem={} is more than the {} of memory still free",
                Bytes(memory),
                Bytes(free)
            ));
        }
        let mut ram = GuestRam::allocate(memory).map_err(|error| {
            format!("cannot allocate {} of guest RAM: {}", Bytes(memory), error)
        })?;
        let boot = loader::load(image, &options, &mut ram).map_err(|error| format!("{}", error))?;
        log::debug!("vm {}: {:?}", name, boot);

        let mut frames = OwnedFrames::default();
        let tables = ept::build(&mut frames, ram.range().start, memory)
            .map_err(|error| format!("cannot build its EPT: {}", error))?;
        let io_bitmaps = frames.allocate(2).ok_or("no memory for its I/O bitmaps")?;
        let msr_bitmap = frames.allocate(1).ok_or("no memory for its MSR bitmap")?;
        // SAFETY: both ranges are fresh frames of this VM, identity-mapped.
        unsafe {
            core::ptr::write_bytes(io_bitmaps.start as *mut u8, 0xff, 8192);
            let bitmap = core::slice::from_raw_parts_mut(msr_bitmap.start as *mut u8, 4096);
            bitmap.fill(0xff);
            for msr in PASS_THROUGH_MSRS {
                clear_msr_intercept(bitmap, msr);
            }
        }
        // A previous VM may have used these frames with other contents.
        crate::vmx::invept_all();
        let structures = VmStructures {
            ept_pointer: ept::pointer(tables.root()),
            vpid: id as u16,
            io_bitmaps: io_bitmaps.start,
            msr_bitmap: msr_bitmap.start,
        };
        let start = start_state(&boot);
        let vcpu = Vcpu::new(capabilities, &structures, &start)
            .map_err(|error| format!("cannot create its vCPU: {:?}", error))?;
        log::info!(
            "vm {}: {} image, {} loaded, {} RAM, starts in {:?} mode at {:#x}",
            name,
            boot.format,
            Bytes(boot.loaded.iter().map(|(_, length)| length).sum()),
            Bytes(memory),
            boot.mode,
            boot.entry
        );
        Ok(Vm {
            id,
            name,
            options,
            image,
            ram,
            _frames: frames,
            vcpu,
            start,
            state: RunState::Runnable,
            stop: None,
            exits: ExitCounts::default(),
            ports: PortStats::default(),
            console: LineBuffer::default(),
            restarts: 0,
            com1_lcr: 0,
            com1_scratch: 0,
            msrs: super::msr::VirtualMsrs::default(),
        })
    }

    /// Whether the restart policy asks for another run after `reason`.
    pub fn wants_restart(&self, reason: &StopReason) -> bool {
        let policy = match self.options.restart {
            RestartPolicy::Never => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnCrash => reason.is_crash(),
        };
        policy && self.restarts < MAX_RESTARTS
    }

    /// Starts the VM over from its image. Its VMCS must be current.
    pub fn restart(&mut self, capabilities: &Capabilities) -> Result<(), String> {
        self.ram.clear();
        let boot = loader::load(self.image, &self.options, &mut self.ram)
            .map_err(|error| format!("{}", error))?;
        self.start = start_state(&boot);
        self.vcpu.reset(capabilities, &self.start);
        // The vCPU is the one loaded on this CPU: put its fresh extended
        // state, CR2 and MSRs in place, or the next switch-out would save
        // the crashed run's values over them.
        self.vcpu.switch_in();
        if capabilities.vpid() {
            crate::vmx::invvpid_all();
        }
        self.restarts += 1;
        self.state = RunState::Runnable;
        self.stop = None;
        self.msrs = super::msr::VirtualMsrs::default();
        self.com1_lcr = 0;
        Ok(())
    }
}
