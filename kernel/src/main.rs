//! tessera, a bare-metal type-1 hypervisor for x86-64.
//!
//! GRUB loads this ELF as a Multiboot2 kernel, with every guest image as a
//! module. `boot::entry` switches to long mode and calls [`kernel_main`],
//! which takes the machine: console, descriptor tables, memory, paging, then
//! the VMs. The pure logic lives in the `tessera_kernel` library next to this
//! file, where host unit tests exercise it.
//!
//! On a host target this file compiles to an empty program, so that
//! `cargo test --workspace` and `cargo clippy --workspace` work on the host.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
#[macro_use]
extern crate tessera_kernel;

#[cfg(target_os = "none")]
mod boot;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("tessera-kernel runs on bare metal: build it with `cargo run -- kernel`");
}

#[cfg(target_os = "none")]
mod kernel {
    use crate::boot::info::{BootInfo, Firmware};
    use tessera_kernel::mm::phys::{free_frames, PhysRange};
    use tessera_kernel::options::{
        ConsoleStyle, CrashTest, HypervisorOptions, IdleAction, LogLevel,
    };
    use tessera_kernel::size::Bytes;
    use tessera_kernel::{arch, console, mm, power, svm, vmm, vmx};

    /// Heap for the hypervisor's own data structures.
    const HEAP_SIZE: u64 = 16 << 20;
    /// The first megabyte stays with the firmware (real-mode IVT, EBDA, ROMs)
    /// and, later, the application-processor start-up trampoline.
    const LOW_MEMORY: u64 = 1 << 20;

    fn level_filter(level: LogLevel) -> log::LevelFilter {
        match level {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    /// Called by `boot::entry` in long mode on the boot stack.
    #[no_mangle]
    extern "C" fn kernel_main(magic: u32, info_address: u32) -> ! {
        console::init();
        arch::percpu::init_boot_cpu();
        arch::idt::init();
        console::init_logger(log::LevelFilter::Info);
        println!();
        println!(
            "tessera v{} - bare-metal type-1 hypervisor for x86-64",
            env!("CARGO_PKG_VERSION")
        );
        if magic != crate::boot::entry::MULTIBOOT2_BOOTLOADER_MAGIC {
            panic!("not started by a Multiboot2 loader (EAX = {:#x})", magic);
        }

        // SAFETY: EBX from a Multiboot2 loader; the structure is reserved
        // from the frame allocator below and never written.
        let boot = match unsafe { BootInfo::parse(info_address as u64) } {
            Ok(boot) => boot,
            Err(error) => panic!("boot information unusable: {:?}", error),
        };
        // The heap must exist before anything allocates (option parsing does).
        init_memory(&boot);
        let (options, warnings) = HypervisorOptions::parse(boot.cmdline);
        console::init_logger(level_filter(options.log));
        console::set_color(options.console == ConsoleStyle::Color);
        println!(
            "boot: {} on {}",
            boot.loader,
            match boot.firmware {
                Firmware::Bios => "BIOS",
                Firmware::Uefi => "UEFI",
            }
        );
        println!("boot: command line \"{}\"", boot.cmdline);
        for warning in &warnings {
            log::warn!("command line: {}", warning);
        }

        let virtualization = arch::cpu::probe();
        map_all_memory(&boot, virtualization.huge_pages);

        match boot.rsdp {
            Some(address) => println!("boot: ACPI RSDP (GRUB's copy) at {:#x}", address),
            None => println!("boot: no ACPI RSDP from the bootloader"),
        }
        print_modules(&boot);
        arch::cpu::report(&virtualization);
        power::init(boot.rsdp);

        if let Some(test) = options.crash_test {
            crash_on_purpose(test);
        }
        if boot.modules().is_empty() {
            println!("tessera: nothing to run: no guest modules were loaded");
            idle(options.on_idle, "no guest modules");
        }
        arch::mask_legacy_interrupts();
        arch::idle::init();
        log::info!("idle: waits {}", arch::idle::report().0);
        let modules: alloc::vec::Vec<vmm::GuestModule> = boot
            .modules()
            .iter()
            .map(|module| vmm::GuestModule {
                cmdline: module.cmdline,
                // SAFETY: the module's range is reserved from the frame
                // allocator and never written, so its bytes stay valid and
                // unchanged for the hypervisor's life.
                image: unsafe {
                    core::slice::from_raw_parts(
                        module.range.start as *const u8,
                        module.range.len() as usize,
                    )
                },
            })
            .collect();
        // Intel VMX where the CPU has it, AMD SVM otherwise; the core above
        // the seam is the same code for both.
        match vmx::enable() {
            Ok(capabilities) => {
                let tsc_hz = arch::tsc::calibrate();
                println!(
                    "backend: Intel VMX with EPT; TSC {} MHz, preemption timer at TSC/{}",
                    tsc_hz / 1_000_000,
                    1u64 << capabilities.preemption_timer_rate
                );
                match vmx::backend::VmxBackend::new(capabilities) {
                    Ok(backend) => run_guests(backend, &modules, &options, tsc_hz),
                    Err(error) => {
                        println!("tessera: cannot run guests: {}", error);
                        idle(options.on_idle, "no memory for the VMX backend");
                    }
                }
            }
            Err(vmx::VmxError::NotSupported) => run_on_svm(&modules, &options),
            Err(error) => {
                println!("tessera: cannot run guests: {}", error);
                idle(
                    options.on_idle,
                    "no hardware virtualization to run guests with",
                );
            }
        }
    }

    /// Turns AMD SVM on and runs the guests with it.
    fn run_on_svm(modules: &[vmm::GuestModule], options: &HypervisorOptions) -> ! {
        let cpu = match svm::enable::enable() {
            Ok(cpu) => cpu,
            Err(error) => {
                println!("tessera: cannot run guests: {}", error);
                idle(
                    options.on_idle,
                    "no hardware virtualization to run guests with",
                );
            }
        };
        // SVM has no preemption timer: the host's local APIC timer ends the
        // slices, so without one a spinning guest would keep the CPU.
        if !arch::idle::has_timer() {
            println!("tessera: cannot run guests: SVM needs the local APIC timer for time slices");
            idle(options.on_idle, "no timer to end time slices with");
        }
        let tsc_hz = arch::tsc::calibrate();
        println!(
            "backend: AMD SVM with nested paging; TSC {} MHz, slices end on the local APIC timer; decode assists {}, NRIP save {}",
            tsc_hz / 1_000_000,
            if cpu.features.decode_assists() { "yes" } else { "no" },
            if cpu.features.next_rip_save() { "yes" } else { "no" },
        );
        match svm::backend::SvmBackend::new(cpu) {
            Ok(backend) => run_guests(backend, modules, options, tsc_hz),
            Err(error) => {
                println!("tessera: cannot run guests: {}", error);
                idle(options.on_idle, "no memory for the SVM backend");
            }
        }
    }

    /// Builds the VMs with `backend` and runs them to the end.
    fn run_guests<B: vmm::vm::Backend>(
        mut backend: B,
        modules: &[vmm::GuestModule],
        options: &HypervisorOptions,
        tsc_hz: u64,
    ) -> ! {
        let (mut vms, refused) = vmm::create_vms(modules, &mut backend, tsc_hz);
        if vms.is_empty() {
            println!("tessera: nothing to run: no module became a VM");
            vmm::print_refused(&refused);
            idle(options.on_idle, "no module became a VM");
        }
        let stay = options.on_idle == IdleAction::Shell;
        if stay {
            println!("tessera: on-idle=shell: the shell stays when every VM has stopped");
        }
        let request = vmm::run(&mut vms, options.timeslice_us, tsc_hz, stay);
        vmm::print_summary(&vms, &refused);
        match request {
            Some(vmm::operator::OperatorRequest::Reboot) => {
                println!("tessera: rebooting (the operator's reboot)");
                console::drain();
                power::reboot()
            }
            Some(vmm::operator::OperatorRequest::PowerOff) => {
                power::power_off("the operator's poweroff")
            }
            None => idle(options.on_idle, "every VM has stopped"),
        }
    }

    fn init_memory(boot: &BootInfo) {
        let layout = arch::identity_map::kernel_layout();
        let kernel = PhysRange {
            start: layout.start,
            end: layout.end,
        };
        let mut reserved = [kernel; crate::boot::info::MAX_MODULES + 2];
        let mut count = 1;
        for range in boot.reserved() {
            reserved[count] = range;
            count += 1;
        }
        let free = match free_frames::<{ mm::FREE_SET_CAPACITY }>(
            boot.regions(),
            &reserved[..count],
            LOW_MEMORY,
        ) {
            Ok(free) => free,
            Err(error) => panic!("memory map unusable: {}", error),
        };
        let usable: u64 = boot
            .regions()
            .filter(|(_, kind)| *kind == tessera_kernel::mm::phys::RegionKind::Usable)
            .map(|(range, _)| range.len())
            .sum();
        println!(
            "memory: {} MiB usable in {} regions ({}); kernel {} at {:#x}",
            usable >> 20,
            boot.regions()
                .filter(|(_, kind)| *kind == tessera_kernel::mm::phys::RegionKind::Usable)
                .count(),
            boot.map_source,
            Bytes(kernel.grow_to_pages().len()),
            kernel.start
        );
        for (range, kind) in boot.regions() {
            log::debug!("memory: {} {:?}", range, kind);
        }
        mm::init(free);
        match mm::init_heap(HEAP_SIZE) {
            Ok(heap) => log::debug!("memory: heap {} at {}", Bytes(heap.len()), heap),
            Err(error) => panic!("no memory for the {} heap: {}", Bytes(HEAP_SIZE), error),
        }
        println!(
            "memory: {} MiB free for guests after the heap",
            mm::free_bytes() >> 20
        );
    }

    fn map_all_memory(boot: &BootInfo, huge_pages: bool) {
        // Cover all RAM and at least the 32-bit MMIO hole (local APIC,
        // I/O APIC, firmware flash).
        // Reserved ranges far above RAM (QEMU reserves one at 1 TiB) need no
        // mapping; RAM and ACPI memory do.
        let top = boot
            .regions()
            .filter(|(_, kind)| *kind != tessera_kernel::mm::phys::RegionKind::Reserved)
            .map(|(range, _)| range.end)
            .max()
            .unwrap_or(0)
            .max(1 << 32);
        if let Err(error) = arch::identity_map::init(top, huge_pages) {
            panic!("cannot build the hypervisor page tables: {}", error);
        }
        log::debug!(
            "paging: identity map up to {:#x}, kernel sections protected",
            top
        );
    }

    fn print_modules(boot: &BootInfo) {
        println!("modules: {}", boot.modules().len());
        for (index, module) in boot.modules().iter().enumerate() {
            println!(
                "module {}: {:#x}-{:#x} ({} bytes) \"{}\"",
                index,
                module.range.start,
                module.range.end,
                module.range.len(),
                module.cmdline
            );
        }
        if boot.modules_dropped > 0 {
            log::warn!(
                "modules: {} more modules ignored (at most {})",
                boot.modules_dropped,
                crate::boot::info::MAX_MODULES
            );
        }
    }

    /// Fails on purpose so that tests can check the crash reports.
    fn crash_on_purpose(test: CrashTest) -> ! {
        log::warn!("crash-test: failing on purpose ({:?})", test);
        match test {
            CrashTest::PageFault => {
                // Page 0 is left unmapped by `arch::identity_map`.
                // SAFETY: deliberately unsound: this read must fault.
                let value = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
                panic!(
                    "read of address 0 returned {:#x} instead of faulting",
                    value
                )
            }
            CrashTest::StackOverflow => {
                #[allow(unconditional_recursion)]
                fn recurse(depth: u64) -> u64 {
                    let frame = core::hint::black_box([depth; 64]);
                    recurse(frame[3] + 1) + frame[7]
                }
                let depth = recurse(0);
                panic!("recursion returned {}", depth)
            }
            CrashTest::Panic => panic!("crash-test=panic"),
        }
    }

    fn idle(action: IdleAction, reason: &str) -> ! {
        match action {
            IdleAction::PowerOff => power::power_off(reason),
            IdleAction::Reboot => power::reboot(),
            IdleAction::Halt => {
                println!("tessera: halted (on-idle=halt); reset the machine to restart");
                console::drain();
                arch::halt_forever()
            }
            // Before any VM ran (nothing to run, no virtualization): there
            // is nothing for the shell to act on.
            IdleAction::Shell => {
                println!("tessera: halted (on-idle=shell, but no VM to drive); reset the machine to restart");
                console::drain();
                arch::halt_forever()
            }
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        // SAFETY: the panic path never returns to the code that held the
        // console lock.
        unsafe { console::force_unlock() };
        println!();
        match info.location() {
            Some(location) => println!(
                "tessera: PANIC at {}:{}: {}",
                location.file(),
                location.line(),
                info.message()
            ),
            None => println!("tessera: PANIC: {}", info.message()),
        }
        println!("tessera: system halted");
        console::drain();
        arch::halt_forever()
    }
}
