//! The vendor-neutral core: VMs built from the boot modules, the scheduler
//! loop that runs them side by side on the boot CPU, and the final report.

use super::exit_handler::{self, Outcome};
use super::vcpu::Vcpu;
use super::vm;
use super::vm::Backend;
use super::vm::{StopReason, Vm};
use crate::loader::DataModule;
use crate::options::{is_valid_name, ModuleOptions, ModuleRole};
use crate::vmm::sched::{wake, RunState};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A boot module as the bootloader handed it over.
pub struct GuestModule<'a> {
    /// Its command line (the module options).
    pub cmdline: &'a str,
    /// Its bytes, which stay in place for the hypervisor's life.
    pub image: &'static [u8],
}

/// Keeps a string for the hypervisor's life: data modules' names and
/// command lines live as long as the modules themselves.
fn leak(text: String) -> &'static str {
    alloc::boxed::Box::leak(text.into_boxed_str())
}

/// A module that did not become a VM, for the summary table.
pub struct Refused {
    /// Its name, or `module-N` when its options could not be read.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// Builds a VM for every `role=vm` module. A module that cannot become a VM
/// gets one error line naming it and the reason, and a row in the summary;
/// the others go on.
pub fn create_vms<B: Backend>(
    modules: &[GuestModule],
    backend: &mut B,
    tsc_hz: u64,
) -> (Vec<Vm<B::Vcpu>>, Vec<Refused>) {
    let free_before = crate::mm::free_bytes();
    let heap_before = crate::mm::heap_bytes_used();
    // One allocation of exactly the size needed: pushing one by one would
    // leave the buddy heap's power-of-two blocks half empty.
    let mut vms: Vec<Vm<B::Vcpu>> = Vec::with_capacity(modules.len());
    let mut refused: Vec<Refused> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    // Data modules first, so that a VM may name one that comes after it.
    let data_modules: Vec<DataModule<'static>> = modules
        .iter()
        .enumerate()
        .filter_map(|(index, module)| {
            let options = ModuleOptions::parse(module.cmdline).ok()?;
            (options.role == ModuleRole::Data).then(|| DataModule {
                name: leak(options.resolved_name(index)),
                bytes: module.image,
                cmdline: leak(options.guest_cmdline.clone()),
            })
        })
        .collect();
    for (index, module) in modules.iter().enumerate() {
        let options = match ModuleOptions::parse(module.cmdline) {
            Ok(options) => options,
            Err(error) => {
                log::error!(
                    "module {} (\"{}\"): {}; VM not created",
                    index,
                    module.cmdline,
                    error
                );
                refused.push(Refused {
                    name: format!("module-{}", index),
                    reason: format!("{}", error),
                });
                continue;
            }
        };
        let name = options.resolved_name(index);
        if options.role == ModuleRole::Data {
            log::info!("module {}: data module `{}`", index, name);
            names.push(name);
            continue;
        }
        if !is_valid_name(&name) || names.contains(&name) {
            log::error!(
                "vm {}: module {} uses the name `{}` that another module already has; VM not created",
                name,
                index,
                name
            );
            refused.push(Refused {
                name: name.clone(),
                reason: format!("module {} repeats the name", index),
            });
            continue;
        }
        names.push(name.clone());
        let image = module.image;
        let id = vms.len() as u32 + 1;
        match Vm::create(
            backend,
            id,
            name.clone(),
            options,
            image,
            &data_modules,
            tsc_hz,
        ) {
            Ok(vm) => vms.push(vm),
            Err(reason) => {
                log::error!("vm {}: {}; VM not created", name, reason);
                refused.push(Refused { name, reason });
            }
        }
    }
    report_memory(&vms, free_before, heap_before);
    (vms, refused)
}

/// Prints what the VMs cost the host beyond their RAM: frames (VMCS, EPT)
/// and heap (XSAVE areas, device and bookkeeping state). `tessera bench`
/// reads this line.
fn report_memory<V: Vcpu>(vms: &[Vm<V>], free_before: u64, heap_before: u64) {
    if vms.is_empty() {
        return;
    }
    let ram: u64 = vms.iter().map(|vm| vm.ram.size()).sum();
    let frames = free_before
        .saturating_sub(crate::mm::free_bytes())
        .saturating_sub(ram);
    let heap = crate::mm::heap_bytes_used().saturating_sub(heap_before);
    let overhead = frames + heap;
    crate::println!(
        "memory: {} VMs with {} of RAM; host memory beyond it: {} ({} frames, {} heap), {} bytes per VM",
        vms.len(),
        crate::size::Bytes(ram),
        crate::size::Bytes(overhead),
        crate::size::Bytes(frames),
        crate::size::Bytes(heap),
        overhead / vms.len() as u64
    );
}

/// Runs every VM until all have stopped, in round-robin slices of
/// `timeslice_us` microseconds of wall-clock time (TSC at `tsc_hz`).
/// Returns what the operator asked of the machine (`reboot`, `poweroff`), if
/// the run ended that way rather than with every VM stopped. With `stay`
/// (`on-idle=shell`) it does not end when every VM has stopped: the console
/// goes on, to restart VMs or power off.
pub fn run<V: Vcpu>(
    vms: &mut [Vm<V>],
    timeslice_us: u64,
    tsc_hz: u64,
    stay: bool,
) -> Option<super::operator::OperatorRequest> {
    let slice_tsc = ((timeslice_us as u128 * tsc_hz as u128) / 1_000_000).max(1) as u64;
    log::info!(
        "scheduler: {} VMs, round robin, {} us slices ({} TSC ticks of wall-clock time each)",
        vms.len(),
        timeslice_us,
        slice_tsc
    );
    let cpu = crate::arch::percpu::this_cpu();
    // A VM runs at least this long before a sleeper's wake-up preempts it
    // (Xen's ratelimit_us, 1 ms by default): a guest that sleeps on a
    // microsecond timer cannot make its neighbours switch every few
    // microseconds.
    let ratelimit_tsc = slice_tsc.min(tsc_hz / 1000);
    let mut states: Vec<RunState> = Vec::with_capacity(vms.len());
    let mut operator = super::operator::Operator::new(vms.len(), tsc_hz);
    operator.announce();
    // The console is polled between slices and while idle: no wait is
    // longer than this (20 ms), so a key reaches its VM or the shell soon.
    let poll_interval = (tsc_hz / 50).max(1);
    loop {
        let mut loaded = cpu.current_vcpu();
        let request = operator.poll(vms, &mut loaded);
        cpu.set_current_vcpu(loaded);
        if let Some(request) = request {
            if let Some(previous) = cpu.current_vcpu() {
                vms[previous].vcpu.unload();
                cpu.set_current_vcpu(None);
            }
            return Some(request);
        }
        let now = crate::arch::tsc::rdtsc();
        let mut next_wake: Option<u64> = None;
        // The VM whose timer woke it first, which runs next.
        let mut woken: Option<(u64, usize)> = None;
        for (index, vm) in vms.iter_mut().enumerate() {
            let was_sleeping = vm.state == RunState::Sleeping;
            if let Some(wake) = wake(&mut vm.state, vm.wake_at, now) {
                next_wake = Some(next_wake.map_or(wake, |next| next.min(wake)));
            } else if was_sleeping && vm.state == RunState::Runnable {
                let at = vm.wake_at.unwrap_or(now);
                if woken.is_none_or(|(first, _)| at < first) {
                    woken = Some((at, index));
                }
            }
        }
        states.clear();
        states.extend(vms.iter().map(|vm| vm.state));
        let picked = cpu
            .scheduler
            .lock()
            .pick_woken_first(&states, woken.map(|(_, index)| index));
        let Some(index) = picked else {
            if let Some(wake) = next_wake {
                // Every runnable VM is halted until a timer event: wait for
                // the nearest one.
                crate::arch::idle::wait_until(wake.min(now.saturating_add(poll_interval)));
                continue;
            }
            // Only paused VMs are left besides stopped ones: wait for the
            // operator's `resume` (or `kill`).
            if vms.iter().any(|vm| vm.state == RunState::Paused) {
                crate::arch::idle::wait_until(now.saturating_add(poll_interval));
                continue;
            }
            // Nothing runnable and no timer pending: sleeping VMs wait for an
            // interrupt that nothing will raise.
            let mut any = false;
            for vm in vms.iter_mut().filter(|vm| vm.state == RunState::Sleeping) {
                log::info!(
                    "vm {}: halted with interrupts enabled and no device to wake it",
                    vm.name
                );
                finish(vm, StopReason::Halted);
                any = true;
            }
            if any {
                continue;
            }
            if stay {
                crate::arch::idle::wait_until(now.saturating_add(poll_interval));
                continue;
            }
            break;
        };
        if cpu.current_vcpu() != Some(index) {
            if let Some(previous) = cpu.current_vcpu() {
                vms[previous].vcpu.unload();
            }
            let vm = &mut vms[index];
            if let Err(failure) = vm.vcpu.load() {
                finish(vm, StopReason::Fault(failure.meaning.into()));
                cpu.set_current_vcpu(None);
                continue;
            }
            cpu.set_current_vcpu(Some(index));
        }
        // A VM halted until a timer event preempts the running one then, so
        // that timer-driven guests wake on time beside busy ones.
        let preempt_at = next_wake.map(|wake| wake.max(now.saturating_add(ratelimit_tsc)));
        run_slice(&mut vms[index], slice_tsc, preempt_at);
    }
    if let Some(previous) = cpu.current_vcpu() {
        vms[previous].vcpu.unload();
        cpu.set_current_vcpu(None);
    }
    None
}

/// Runs one VM for one time slice, handling its exits. The slice ends at a
/// wall-clock deadline, so the time tessera spends on the VM's exits is the
/// VM's too. Between exits the VM's devices get their say: their timers
/// bound how long the guest runs, and a pending interrupt is injected as
/// soon as the vCPU can take it.
fn run_slice<V: Vcpu>(vm: &mut Vm<V>, slice_tsc: u64, preempt_at: Option<u64>) {
    let now = crate::arch::tsc::rdtsc();
    let slice_end = now.saturating_add(slice_tsc);
    vm.slice_deadline = preempt_at.map_or(slice_end, |at| at.max(now).min(slice_end));
    // Timers that fell due while the VM waited for the CPU fire now.
    vm.platform.advance(vm.clock.ns_at(now), &mut vm.console);
    loop {
        if vm.platform.attention() {
            settle(vm);
        }
        let exit = vm.vcpu.run();
        if let super::exit::Exit::EntryFailed { code } = exit {
            log::error!(
                "vm {}: guest state at the failed entry: {}",
                vm.name,
                vm.vcpu.describe()
            );
            let meaning = vm.vcpu.entry_error(code);
            stop(
                vm,
                StopReason::Fault(format!(
                    "VM entry failed (VM-instruction error {}: {})",
                    code, meaning
                )),
            );
            return;
        }
        if let super::exit::Exit::InvalidGuestState { .. } = exit {
            log::error!(
                "vm {}: guest state at the failed entry: {}",
                vm.name,
                vm.vcpu.describe()
            );
        }
        match exit_handler::handle(vm, exit) {
            Outcome::Continue => {}
            Outcome::Timer => {
                let now = crate::arch::tsc::rdtsc();
                if now >= vm.slice_deadline {
                    return;
                }
                // A device timer is due before the slice ends.
                vm.platform.advance(vm.clock.ns_at(now), &mut vm.console);
            }
            Outcome::EndSlice => return,
            Outcome::Sleep => {
                // HLT with interrupts on: an interrupt already pending wakes
                // it at once; otherwise it sleeps until its next timer event.
                if settle(vm) {
                    continue;
                }
                vm.state = RunState::Sleeping;
                return;
            }
            Outcome::Stop(reason) => {
                stop(vm, reason);
                return;
            }
        }
    }
}

/// Asks the platform what changed: injects the pending interrupt if the
/// vCPU can take it now, or asks for an interrupt window; bounds the guest's
/// run by the next timer event; records when a halted vCPU must wake.
/// NMIs likewise, ahead of interrupts. Returns whether either is pending.
fn settle<V: Vcpu>(vm: &mut Vm<V>) -> bool {
    let settled = vm.platform.settle();
    vm.wake_at = settled.next_deadline_ns.map(|ns| vm.clock.tsc_at(ns));
    let deadline = vm
        .wake_at
        .map_or(vm.slice_deadline, |wake| wake.min(vm.slice_deadline));
    vm.vcpu.set_slice_deadline(deadline);
    // An NMI goes first: it outranks external interrupts (SDM Vol. 3A,
    // 7.9, Table 7-2), and one event is injected per entry.
    if settled.nmi {
        if vm.vcpu.nmi_allowed() && !vm.vcpu.event_pending() {
            if vm.platform.acknowledge_nmi() {
                vm.vcpu.inject_nmi();
                vm.nmis_injected += 1;
            }
        } else {
            // Inside the guest's NMI handler, or an event already queued:
            // exit once it can take one (without NMI-window exiting, at
            // the next exit).
            let _ = vm.vcpu.request_nmi_window(true);
        }
    }
    if !settled.interrupt {
        return settled.nmi;
    }
    if vm.vcpu.interruptible() && !vm.vcpu.event_pending() {
        if let Some(vector) = vm.platform.acknowledge_interrupt() {
            vm.vcpu.inject_interrupt(vector);
            vm.interrupts_injected += 1;
        }
    } else {
        // Interrupts are blocked (RFLAGS.IF clear, an STI or MOV-SS shadow,
        // or an event already queued): exit as soon as they are not. A CPU
        // without interrupt-window exiting retries at the next exit.
        let _ = vm.vcpu.request_interrupt_window(true);
    }
    true
}

/// Reports a stopped VM, then restarts it or leaves it stopped.
fn stop<V: Vcpu>(vm: &mut Vm<V>, reason: StopReason) {
    vm.console.flush();
    match &reason {
        StopReason::Exited(code) => log::info!("vm {}: exited with code {}", vm.name, code),
        StopReason::Halted => log::info!("vm {}: halted", vm.name),
        StopReason::Fault(what) => log::error!("vm {}: stopped: {}", vm.name, what),
        StopReason::PoweredOff => log::info!("vm {}: powered off", vm.name),
        StopReason::Reset => log::info!("vm {}: reset", vm.name),
        StopReason::Killed => log::info!("vm {}: killed", vm.name),
    }
    if vm.wants_restart(&reason) {
        log::info!(
            "vm {}: restarting ({} of at most {})",
            vm.name,
            vm.restarts + 1,
            vm::MAX_RESTARTS
        );
        match vm.restart() {
            Ok(()) => return,
            Err(error) => log::error!("vm {}: restart failed: {}", vm.name, error),
        }
    }
    finish(vm, reason);
}

fn finish<V: Vcpu>(vm: &mut Vm<V>, reason: StopReason) {
    vm.state = RunState::Stopped;
    vm.stop = Some(reason);
}

/// Prints the final table: one row per VM, then its exits by reason.
pub fn print_summary<V: Vcpu>(vms: &[Vm<V>], refused: &[Refused]) {
    crate::println!("tessera: all VMs have stopped");
    crate::println!(
        "  {:<12} {:<8} {:>9} {:>8}  RESULT",
        "VM",
        "STATE",
        "EXITS",
        "RESTARTS"
    );
    for vm in vms {
        let (state, result) = match &vm.stop {
            Some(StopReason::Exited(code)) => ("exited", format!("exit code {}", code)),
            Some(StopReason::Halted) => ("halted", String::from("HLT with nothing to wake it")),
            Some(StopReason::Fault(what)) => ("crashed", what.clone()),
            Some(StopReason::PoweredOff) => ("off", String::from("powered off")),
            Some(StopReason::Reset) => ("reset", String::from("reset, restart limit reached")),
            Some(StopReason::Killed) => ("killed", String::from("killed by the operator")),
            None => ("running", String::new()),
        };
        crate::println!(
            "  {:<12} {:<8} {:>9} {:>8}  {}",
            vm.name,
            state,
            vm.vcpu.exit_count(),
            vm.restarts,
            result
        );
    }
    print_refused(refused);
    for vm in vms {
        let mut line = format!("  exits of {}:", vm.name);
        for (reason, count) in vm.vcpu.exit_statistics() {
            line.push_str(&format!(" {} {},", reason, count));
        }
        line.pop();
        crate::println!("{}", line);
        if vm.interrupts_injected > 0 || vm.nmis_injected > 0 {
            crate::println!(
                "    interrupts of {}: {} injected, {} NMIs, {} timer ticks coalesced",
                vm.name,
                vm.interrupts_injected,
                vm.nmis_injected,
                vm.platform.coalesced_ticks()
            );
        }
        let unclaimed = vm.platform.unclaimed_ports();
        if let Some(last) = unclaimed.last {
            crate::println!(
                "    ports of {} with no device: {} reads, {} writes (the last {:#x})",
                vm.name,
                unclaimed.reads,
                unclaimed.writes,
                last
            );
        }
    }
    let (how, waits) = crate::arch::idle::report();
    crate::println!(
        "  idle: the CPU waited for guest timers {} times, {}",
        waits,
        how
    );
}

/// The summary rows of the modules that did not become VMs.
pub fn print_refused(refused: &[Refused]) {
    for module in refused {
        crate::println!(
            "  {:<12} {:<8} {:>9} {:>8}  not created: {}",
            module.name,
            "refused",
            "-",
            "-",
            module.reason
        );
    }
}
