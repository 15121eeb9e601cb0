//! A virtual machine: one guest image, its RAM, its vCPU and its
//! bookkeeping. Creating one checks everything about the module first, so
//! that a bad module costs only its own VM.

use super::guest_memory::GuestRam;
use super::vcpu::{StartState, Vcpu};
use crate::console::line_buffer::LineBuffer;
use crate::devices::ConsoleSink;
use crate::loader::{BootState, DataModule};
use crate::mm::phys::PhysRange;
use crate::options::{ModuleOptions, RestartPolicy};
use crate::rules::cpuid::TimingLeaves;
use crate::rules::msr::VirtualMsrs;
use crate::size::Bytes;
use crate::vmm::clock::VmClock;

/// The timing leaves' answers every VM shares (see [`Vm::cpuid_timing`]).
static TIMING_LEAVES: spin::Once<TimingLeaves> = spin::Once::new();
use crate::vmm::delivery_loop::ExceptionStreak;
use crate::vmm::platform::{Platform, PlatformConfig};
use crate::vmm::sched::RunState;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

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
    /// The guest powered its virtual PC off (ACPI S5).
    PoweredOff,
    /// The guest reset its virtual PC (port 0xCF9, the keyboard
    /// controller's reset line): it starts again, counted as a restart.
    Reset,
    /// The operator's `kill`.
    Killed,
}

impl StopReason {
    /// Whether this counts as a crash for `restart=on-crash`.
    pub fn is_crash(&self) -> bool {
        matches!(self, StopReason::Fault(_))
            || matches!(self, StopReason::Exited(code) if *code != 0)
    }
}

/// A VM's console output: bytes from its UART and the console hypercall
/// become whole lines prefixed with its name.
pub struct VmConsole {
    id: u32,
    name: String,
    line: LineBuffer,
}

impl VmConsole {
    fn new(id: u32, name: &str) -> VmConsole {
        VmConsole {
            id,
            name: String::from(name),
            line: LineBuffer::default(),
        }
    }

    /// Prints what is left of an unfinished line (the VM stopped).
    pub fn flush(&mut self) {
        if let Some(line) = self.line.flush() {
            super::port_io::emit_line(self.id, &self.name, line);
        }
    }
}

impl VmConsole {
    /// How many bytes of an unfinished line wait (a shell prompt).
    pub fn pending(&self) -> usize {
        self.line.pending()
    }

    /// Takes one byte; prints the line it completes. Returns whether it
    /// printed one (the expensive part: the serial port's pace).
    pub fn push(&mut self, byte: u8) -> bool {
        match self.line.push(byte) {
            Some(line) => {
                super::port_io::emit_line(self.id, &self.name, line);
                true
            }
            None => false,
        }
    }
}

impl ConsoleSink for VmConsole {
    fn transmit(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// What a backend must do to give a VM a vCPU.
pub trait Backend {
    /// The backend's vCPU.
    type Vcpu: Vcpu;
    /// A vCPU for VM number `id` whose RAM is the host range `ram`
    /// (guest-physical 0 at its start), in `start` state, with its own
    /// nested page tables mapping exactly that RAM.
    fn create_vcpu(
        &mut self,
        id: u32,
        ram: PhysRange,
        start: &StartState,
    ) -> Result<Self::Vcpu, String>;
}

/// One VM.
pub struct Vm<V: Vcpu> {
    /// Number from 1, in module order.
    pub id: u32,
    /// Unique name; prefixes its console lines.
    pub name: String,
    /// The module's options.
    pub options: ModuleOptions,
    /// The image bytes (inside the module GRUB loaded; reloaded on restart).
    pub image: &'static [u8],
    /// The data modules its image may ask for (`modules=`), reloaded on
    /// restart too.
    pub data_modules: Vec<DataModule<'static>>,
    /// Guest RAM.
    pub ram: GuestRam,
    /// The vCPU.
    pub vcpu: V,
    /// How it starts.
    pub start: StartState,
    /// What the scheduler sees.
    pub state: RunState,
    /// Set once stopped.
    pub stop: Option<StopReason>,
    /// The virtual PC: devices, buses, interrupt lines.
    pub platform: Platform,
    /// The VM's clock (nanoseconds since it started), which its devices'
    /// timers count in.
    pub clock: VmClock,
    /// The console output.
    pub console: VmConsole,
    /// Restarts so far.
    pub restarts: u32,
    /// Interrupts injected into the vCPU (for the summary).
    pub interrupts_injected: u64,
    /// CPUID's answers for the leaves that report the TSC's rate, which is
    /// the host's and the same for every VM: made once, shared.
    pub cpuid_timing: &'static TimingLeaves,
    /// NMIs injected into the vCPU (for the summary).
    pub nmis_injected: u64,
    /// When a vCPU halted with interrupts on must wake (TSC), if a timer
    /// of its devices will fire.
    pub wake_at: Option<u64>,
    /// The run of identical intercepted exceptions (see `delivery_loop`).
    pub exception_streak: ExceptionStreak,
    /// The TSC value at which the current slice ends: work tessera does for
    /// the VM (printing its lines, say) stops there.
    pub slice_deadline: u64,
    /// Virtualized MSR values.
    pub msrs: VirtualMsrs,
}

/// The VM's RAM prepared as `vmm::boot` says; the kernel reports a refusal
/// as text.
fn boot(
    image: &[u8],
    options: &ModuleOptions,
    data_modules: &[DataModule<'static>],
    ram: &mut GuestRam,
) -> Result<BootState, String> {
    super::boot::boot(image, options, data_modules, ram).map_err(|error| format!("{}", error))
}

fn platform_config(ram_bytes: u64, options: &ModuleOptions, tsc_hz: u64) -> PlatformConfig {
    PlatformConfig {
        ram_bytes,
        unix_seconds: crate::arch::rtc::unix_seconds(),
        debug_exit: options.debug_exit,
        tsc_hz,
    }
}

/// How `boot` starts, on a guest TSC that reads 0 at host TSC `origin_tsc`.
fn start_state(boot: &BootState, origin_tsc: u64) -> StartState {
    StartState {
        mode: boot.mode,
        rip: boot.entry,
        real_mode_cs: boot.real_mode_cs,
        rsp: boot.stack,
        cr3: boot.cr3,
        gdt_base: boot.gdt_base,
        gdt_limit: boot.gdt_limit,
        rax: boot.rax,
        rbx: boot.rbx,
        rsi: boot.rsi,
        tsc_offset: origin_tsc.wrapping_neg(),
    }
}

impl<V: Vcpu> Vm<V> {
    /// Creates a VM for a module: RAM, image, vCPU.
    pub fn create<B: Backend<Vcpu = V>>(
        backend: &mut B,
        id: u32,
        name: String,
        options: ModuleOptions,
        image: &'static [u8],
        data_modules: &[DataModule<'static>],
        tsc_hz: u64,
    ) -> Result<Vm<V>, String> {
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
        let data_modules: Vec<DataModule<'static>> = data_modules.to_vec();
        let boot = boot(image, &options, &data_modules, &mut ram)?;
        log::debug!("vm {}: {:?}", name, boot);
        let origin_tsc = crate::arch::tsc::rdtsc();
        let start = start_state(&boot, origin_tsc);
        let vcpu = backend.create_vcpu(id, ram.range(), &start)?;
        log::info!(
            "vm {}: {} image, {} loaded, {} RAM, starts in {:?} mode at {:#x}",
            name,
            boot.format,
            Bytes(boot.loaded.iter().map(|(_, length)| length).sum()),
            Bytes(memory),
            boot.mode,
            boot.entry
        );
        let console = VmConsole::new(id, &name);
        let platform = Platform::pc(platform_config(memory, &options, tsc_hz));
        Ok(Vm {
            id,
            name,
            options,
            image,
            data_modules,
            ram,
            vcpu,
            start,
            state: RunState::Runnable,
            stop: None,
            platform,
            clock: VmClock::new(origin_tsc, tsc_hz),
            console,
            restarts: 0,
            slice_deadline: 0,
            wake_at: None,
            interrupts_injected: 0,
            nmis_injected: 0,
            cpuid_timing: TIMING_LEAVES.call_once(|| {
                TimingLeaves::new(tsc_hz).with_host_max_leaf(raw_cpuid::cpuid!(0).eax)
            }),
            exception_streak: ExceptionStreak::default(),
            msrs: VirtualMsrs::default(),
        })
    }

    /// The TSC frequency the VM's clock runs on.
    fn clock_hz(&self) -> u64 {
        self.clock.tsc_hz()
    }

    /// Whether the restart policy asks for another run after `reason`.
    pub fn wants_restart(&self, reason: &StopReason) -> bool {
        let policy = match self.options.restart {
            // A reset is the guest asking to start again, whatever the policy
            // says about stops.
            _ if *reason == StopReason::Reset => true,
            RestartPolicy::Never => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnCrash => reason.is_crash(),
        };
        policy && self.restarts < MAX_RESTARTS
    }

    /// Starts the VM over from its image. Its vCPU must be the loaded one.
    pub fn restart(&mut self) -> Result<(), String> {
        self.ram.clear();
        let boot = boot(self.image, &self.options, &self.data_modules, &mut self.ram)?;
        let origin_tsc = crate::arch::tsc::rdtsc();
        self.start = start_state(&boot, origin_tsc);
        self.vcpu.reset(&self.start);
        // The vCPU is the one loaded on this CPU: put its fresh extended
        // state, CR2 and MSRs in place, or the next unload would save the
        // crashed run's values over them.
        self.vcpu
            .load()
            .map_err(|failure| String::from(failure.meaning))?;
        self.restarts += 1;
        self.state = RunState::Runnable;
        self.stop = None;
        self.msrs = VirtualMsrs::default();
        let platform = Platform::pc(platform_config(
            self.ram.size(),
            &self.options,
            self.clock_hz(),
        ));
        let previous = core::mem::replace(&mut self.platform, platform);
        self.platform.keep_nvram_of(&previous);
        self.clock = VmClock::new(origin_tsc, self.clock_hz());
        self.exception_streak = ExceptionStreak::default();
        self.wake_at = None;
        Ok(())
    }
}
