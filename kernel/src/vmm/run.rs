//! The vendor-neutral core: VMs built from the boot modules, the scheduler
//! loop that runs them side by side on the boot CPU, and the final report.

use super::exits::{self, Outcome};
use super::vm::{StopReason, Vm};
use super::{io, vm};
use crate::options::{is_valid_name, ModuleOptions, ModuleRole};
use crate::vmm::sched::{preemption_ticks, RoundRobin, RunState};
use crate::vmx::capabilities::Capabilities;
use crate::vmx::entry::EntryResult;
use crate::vmx::exit_reason;
use crate::vmx::{exit, vmcs};
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

/// Builds a VM for every `role=vm` module. A module that cannot become a VM
/// gets one error line naming it and the reason; the others go on.
pub fn create_vms(modules: &[GuestModule], capabilities: &Capabilities) -> Vec<Vm> {
    let mut vms: Vec<Vm> = Vec::new();
    let mut names: Vec<String> = Vec::new();
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
            continue;
        }
        names.push(name.clone());
        let image = module.image;
        let id = vms.len() as u32 + 1;
        match Vm::create(id, name.clone(), options, image, capabilities) {
            Ok(vm) => vms.push(vm),
            Err(reason) => log::error!("vm {}: {}; VM not created", name, reason),
        }
    }
    vms
}

/// Runs every VM until all have stopped.
pub fn run(vms: &mut [Vm], capabilities: &Capabilities, timeslice_us: u64, tsc_hz: u64) {
    let slice = preemption_ticks(timeslice_us, tsc_hz, capabilities.preemption_timer_rate);
    let slice_tsc = (timeslice_us as u128 * tsc_hz as u128 / 1_000_000) as u64;
    log::info!(
        "scheduler: {} VMs, round robin, {} us slices ({} preemption-timer ticks)",
        vms.len(),
        timeslice_us,
        slice
    );
    let mut round_robin = RoundRobin::default();
    let mut current: Option<usize> = None;
    let mut states: Vec<RunState> = Vec::with_capacity(vms.len());
    loop {
        states.clear();
        states.extend(vms.iter().map(|vm| vm.state));
        let Some(index) = round_robin.pick(&states) else {
            // Nothing runnable. Sleeping VMs wait for an interrupt, and no
            // virtual device in this build raises one: they will never wake.
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
            break;
        };
        if current != Some(index) {
            if let Some(previous) = current {
                vms[previous].vcpu.switch_out();
            }
            let vm = &mut vms[index];
            if vm.vcpu.make_current().is_err() {
                finish(vm, StopReason::Fault("VMPTRLD of its VMCS failed".into()));
                current = None;
                continue;
            }
            vm.vcpu.switch_in();
            current = Some(index);
        }
        run_slice(&mut vms[index], capabilities, slice, slice_tsc);
    }
    if let Some(previous) = current {
        vms[previous].vcpu.switch_out();
    }
}

/// Runs one VM for one time slice, handling its exits.
fn run_slice(vm: &mut Vm, capabilities: &Capabilities, slice: u32, slice_tsc: u64) {
    let saves_timer = capabilities.saves_preemption_timer();
    let deadline = crate::arch::tsc::rdtsc() + slice_tsc;
    vmcs::guest::PREEMPTION_TIMER.write(slice);
    loop {
        if !saves_timer {
            // Without "save VMX-preemption timer value" every entry reloads
            // the field, so keep it pointing at the slice's deadline.
            let left = deadline.saturating_sub(crate::arch::tsc::rdtsc());
            let ticks = (left >> capabilities.preemption_timer_rate).clamp(1, u32::MAX as u64);
            vmcs::guest::PREEMPTION_TIMER.write(ticks as u32);
        }
        match vm.vcpu.run() {
            EntryResult::Exited => {}
            failure => {
                let error = vm.vcpu.instruction_error();
                log::error!(
                    "vm {}: guest state at the failed entry: {}",
                    vm.name,
                    crate::vmx::vcpu::describe_guest_state()
                );
                stop(
                    vm,
                    capabilities,
                    StopReason::Fault(format!(
                        "VM entry failed ({:?}, VM-instruction error {}: {})",
                        failure,
                        error,
                        instruction_error_text(error)
                    )),
                );
                return;
            }
        }
        let reason = exit::basic_reason();
        vm.exits.record(reason);
        let event = exit::decode(reason);
        if let exit::VmExit::InvalidGuestState { .. } = event {
            log::error!(
                "vm {}: guest state at the failed entry: {}",
                vm.name,
                crate::vmx::vcpu::describe_guest_state()
            );
        }
        log::trace!("vm {}: exit {:?}", vm.name, event);
        match exits::handle(vm, event, capabilities) {
            Outcome::Continue => {}
            Outcome::EndSlice => return,
            Outcome::Sleep => {
                vm.state = RunState::Sleeping;
                return;
            }
            Outcome::Stop(reason) => {
                stop(vm, capabilities, reason);
                return;
            }
        }
    }
}

/// Text for VM-instruction error numbers (SDM Vol. 3C, 31.4).
fn instruction_error_text(error: u32) -> &'static str {
    match error {
        7 => "invalid control fields",
        8 => "invalid host-state fields",
        9 => "VMRESUME of a VMCS that was never launched",
        5 => "VMLAUNCH of a VMCS already launched",
        26 => "VM entry with events blocked by MOV SS",
        _ => "see the SDM's table of VM-instruction errors",
    }
}

/// Reports a stopped VM, then restarts it or leaves it stopped.
fn stop(vm: &mut Vm, capabilities: &Capabilities, reason: StopReason) {
    if let Some(line) = vm.console.flush() {
        io::emit_line(vm.id, &vm.name, line);
    }
    match &reason {
        StopReason::Exited(code) => log::info!("vm {}: exited with code {}", vm.name, code),
        StopReason::Halted => log::info!("vm {}: halted", vm.name),
        StopReason::Fault(what) => log::error!("vm {}: stopped: {}", vm.name, what),
    }
    if vm.wants_restart(&reason) {
        log::info!(
            "vm {}: restarting ({} of at most {})",
            vm.name,
            vm.restarts + 1,
            vm::MAX_RESTARTS
        );
        match vm.restart(capabilities) {
            Ok(()) => return,
            Err(error) => log::error!("vm {}: restart failed: {}", vm.name, error),
        }
    }
    finish(vm, reason);
}

fn finish(vm: &mut Vm, reason: StopReason) {
    vm.state = RunState::Stopped;
    vm.stop = Some(reason);
}

/// Prints the final table: one row per VM, then its exits by reason.
pub fn print_summary(vms: &[Vm]) {
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
            None => ("running", String::new()),
        };
        crate::println!(
            "  {:<12} {:<8} {:>9} {:>8}  {}",
            vm.name,
            state,
            vm.exits.total(),
            vm.restarts,
            result
        );
    }
    for vm in vms {
        let mut line = format!("  exits of {}:", vm.name);
        for (reason, count) in vm.exits.ranked() {
            line.push_str(&format!(" {} {},", exit_reason::name(reason), count));
        }
        line.pop();
        crate::println!("{}", line);
        if vm.ports.unhandled_reads + vm.ports.unhandled_writes > 0 {
            crate::println!(
                "    unhandled ports of {}: {} reads, {} writes",
                vm.name,
                vm.ports.unhandled_reads,
                vm.ports.unhandled_writes
            );
        }
    }
}
