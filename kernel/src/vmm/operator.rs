//! The operator's console: what is typed on the host's COM1 goes to the VM
//! that has the focus — onto its virtual 16550's receive line — or to the
//! tessera shell. Ctrl-A three times moves the focus (`console::focus`);
//! the shell edits lines (`console::editor`) and parses them
//! (`console::shell`); this module carries the commands out on the VMs.
//!
//! It runs between time slices, from the scheduler loop: a key typed while
//! a spinning guest owns the CPU reaches its VM within one slice. Nothing
//! here is on the exit path.

use super::sched::RunState;
use super::vcpu::Vcpu;
use super::vm::{StopReason, Vm};
use crate::console::editor::{EditorEvent, LineEditor, PROMPT};
use crate::console::focus::{Focus, FocusOutput, Target};
use crate::console::shell::{self, Command, VmRef};
use crate::options::LogLevel;
use crate::size::Bytes;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What the shell asks of the hypervisor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRequest {
    /// `reboot`: reset the machine.
    Reboot,
    /// `poweroff`: stop every VM and power the machine off.
    PowerOff,
}

/// The console's state: focus, the shell's line, what `stats` last saw.
pub struct Operator {
    focus: Focus,
    editor: LineEditor,
    tsc_hz: u64,
    started: u64,
    /// Per VM, its exit count and the TSC at the last `stats`.
    last_stats: Vec<u64>,
    last_stats_at: u64,
    /// The focused VM's unfinished line: its length and when it was last
    /// seen to change, so that a prompt is shown once it has waited.
    partial: (usize, u64),
}

/// How long a focused VM's unfinished line waits before it is shown
/// (a shell prompt never gets its newline), in milliseconds.
const PARTIAL_LINE_MS: u64 = 100;

/// Prints bytes the editor echoes (ASCII and escape sequences): the shell's
/// line stays open unless they end it.
fn echo(bytes: &[u8]) {
    if let Ok(text) = core::str::from_utf8(bytes) {
        crate::console::write_shell(text, !text.ends_with('\n'));
    }
}

/// Shows the prompt and leaves the line open for typing.
fn prompt() {
    crate::console::write_shell(PROMPT, true);
}

impl Operator {
    /// The console for `vm_count` VMs on a TSC at `tsc_hz`. The focus
    /// starts on the shell, so nothing typed reaches a guest until the
    /// operator chooses one.
    pub fn new(vm_count: usize, tsc_hz: u64) -> Operator {
        Operator {
            focus: Focus::new(vm_count),
            editor: LineEditor::new(),
            tsc_hz: tsc_hz.max(1),
            started: crate::arch::tsc::rdtsc(),
            last_stats: alloc::vec![0; vm_count],
            last_stats_at: crate::arch::tsc::rdtsc(),
            partial: (0, 0),
        }
    }

    /// Says how to use the console, once, before the VMs start.
    pub fn announce(&self) {
        crate::println!(
            "console: type here; Ctrl-A three times moves the focus (VMs, then the tessera shell), Ctrl-A a sends a Ctrl-A"
        );
    }

    /// Reads what has arrived on the host console and acts on it. `loaded`
    /// is the vCPU loaded on this CPU, which a restart must put aside.
    pub fn poll<V: Vcpu>(
        &mut self,
        vms: &mut [Vm<V>],
        loaded: &mut Option<usize>,
    ) -> Option<OperatorRequest> {
        self.show_partial_line(vms);
        // Output ended the line the operator was typing: draw it again.
        if crate::console::take_shell_line_broken()
            && self.focus.target() == Target::Shell
            && !self.editor.line().is_empty()
        {
            self.editor.redraw(echo);
        }
        let mut buffer = [0u8; 64];
        let count = crate::console::read_input(&mut buffer);
        let mut request = None;
        for &byte in &buffer[..count] {
            match self.focus.feed(byte) {
                FocusOutput::Held => {}
                FocusOutput::Switched(target) => self.announce_focus(vms, target),
                FocusOutput::Deliver {
                    target: Target::Vm(index),
                    keys,
                } => {
                    if let Some(vm) = vms.get_mut(index) {
                        let now = vm.clock.ns_at(crate::arch::tsc::rdtsc());
                        vm.platform
                            .console_input(keys.as_slice(), now, &mut vm.console);
                    }
                }
                FocusOutput::Deliver {
                    target: Target::Shell,
                    keys,
                } => {
                    for &key in keys.as_slice() {
                        // The prompt comes with the first key (a console
                        // nobody types on shows none), and again, with what
                        // was typed, when other output has ended its line.
                        if !crate::console::shell_line_open() {
                            self.editor.redraw(echo);
                        }
                        match self.editor.feed(key, echo) {
                            Some(EditorEvent::Line(line)) => {
                                request = request.or(self.execute(&line, vms, loaded));
                                if request.is_none() {
                                    prompt();
                                }
                            }
                            Some(EditorEvent::Cancelled) => prompt(),
                            None => {}
                        }
                    }
                }
            }
        }
        request
    }

    /// Shows the focused VM's unfinished line once it has not changed for
    /// [`PARTIAL_LINE_MS`]: the prompt of a shell in the guest, which the
    /// operator must see to type after it. It is printed as a line of its
    /// own, so no two VMs' bytes ever share a line.
    fn show_partial_line<V: Vcpu>(&mut self, vms: &mut [Vm<V>]) {
        let Target::Vm(index) = self.focus.target() else {
            return;
        };
        let Some(vm) = vms.get_mut(index) else {
            return;
        };
        let pending = vm.console.pending();
        let now = crate::arch::tsc::rdtsc();
        if pending == 0 {
            self.partial = (0, now);
        } else if pending != self.partial.0 {
            self.partial = (pending, now);
        } else if self.milliseconds_since(self.partial.1) >= PARTIAL_LINE_MS {
            vm.console.flush();
            self.partial = (0, now);
        }
    }

    fn announce_focus<V: Vcpu>(&mut self, vms: &[Vm<V>], target: Target) {
        match target {
            Target::Vm(index) => {
                let name = vms.get(index).map_or("?", |vm| vm.name.as_str());
                crate::println!("tessera: console focus on vm {}", name);
            }
            Target::Shell => {
                crate::println!("tessera: console focus on the tessera shell");
                // The prompt and whatever was typed before the focus left.
                self.editor.redraw(echo);
            }
        }
    }

    /// The VM a command names: by id (from 1) or by name.
    fn find<V: Vcpu>(vms: &[Vm<V>], reference: &VmRef) -> Result<usize, String> {
        let found = match reference {
            VmRef::Id(id) => vms.iter().position(|vm| vm.id as usize == *id),
            VmRef::Name(name) => vms.iter().position(|vm| vm.name == *name),
        };
        found.ok_or_else(|| format!("no vm {}; type vms for the list", reference))
    }

    fn execute<V: Vcpu>(
        &mut self,
        line: &str,
        vms: &mut [Vm<V>],
        loaded: &mut Option<usize>,
    ) -> Option<OperatorRequest> {
        let command = match shell::parse(line) {
            Ok(command) => command,
            Err(error) => {
                crate::println!("{}", error);
                return None;
            }
        };
        let result = match command {
            Command::Empty => Ok(()),
            Command::Help(None) => {
                crate::println!("{}", shell::HELP_TEXT);
                Ok(())
            }
            Command::Help(Some(name)) => {
                if let Some(info) = shell::find(name) {
                    crate::println!("{}: {}", info.usage, info.summary);
                }
                Ok(())
            }
            Command::Vms => {
                self.print_vms(vms);
                Ok(())
            }
            Command::Info(reference) => Self::find(vms, &reference).map(|index| {
                print_info(&vms[index]);
            }),
            Command::Focus(reference) => Self::find(vms, &reference).map(|index| {
                self.focus.set_target(Target::Vm(index));
                self.announce_focus(vms, Target::Vm(index));
            }),
            Command::Pause(reference) => Self::find(vms, &reference).and_then(|index| {
                let vm = &mut vms[index];
                match vm.state {
                    RunState::Stopped => Err(format!("vm {} has stopped", vm.name)),
                    RunState::Paused => Err(format!("vm {} is paused already", vm.name)),
                    _ => {
                        vm.state = RunState::Paused;
                        crate::println!("tessera: vm {} paused", vm.name);
                        Ok(())
                    }
                }
            }),
            Command::Resume(reference) => Self::find(vms, &reference).and_then(|index| {
                let vm = &mut vms[index];
                if vm.state != RunState::Paused {
                    return Err(format!("vm {} is not paused", vm.name));
                }
                // A VM paused while halted resumes as if woken: guests wait
                // in HLT loops, and the platform is settled before it runs.
                vm.state = RunState::Runnable;
                vm.platform.notice();
                crate::println!("tessera: vm {} resumed", vm.name);
                Ok(())
            }),
            Command::Kill(reference) => Self::find(vms, &reference).and_then(|index| {
                let vm = &mut vms[index];
                if vm.state == RunState::Stopped {
                    return Err(format!("vm {} has stopped already", vm.name));
                }
                vm.console.flush();
                vm.state = RunState::Stopped;
                vm.stop = Some(StopReason::Killed);
                crate::println!("tessera: vm {} killed", vm.name);
                Ok(())
            }),
            Command::Restart(reference) => Self::find(vms, &reference).and_then(|index| {
                // The restart loads the VM's fresh state onto the CPU: the
                // vCPU loaded now saves its own first.
                if let Some(current) = loaded.take() {
                    vms[current].vcpu.unload();
                }
                let vm = &mut vms[index];
                vm.console.flush();
                match vm.restart() {
                    Ok(()) => {
                        *loaded = Some(index);
                        vm.stop = None;
                        crate::println!("tessera: vm {} restarted", vm.name);
                        Ok(())
                    }
                    Err(error) => Err(format!("vm {} did not restart: {}", vm.name, error)),
                }
            }),
            Command::Log(level) => {
                log::set_max_level(match level {
                    LogLevel::Error => log::LevelFilter::Error,
                    LogLevel::Warn => log::LevelFilter::Warn,
                    LogLevel::Info => log::LevelFilter::Info,
                    LogLevel::Debug => log::LevelFilter::Debug,
                    LogLevel::Trace => log::LevelFilter::Trace,
                });
                crate::println!("tessera: log level {:?}", level);
                Ok(())
            }
            Command::Mem => {
                let ram: u64 = vms.iter().map(|vm| vm.ram.size()).sum();
                crate::println!(
                    "memory: {} free frames, {} heap in use, {} of guest RAM in {} VMs",
                    Bytes(crate::mm::free_bytes()),
                    Bytes(crate::mm::heap_bytes_used()),
                    Bytes(ram),
                    vms.len()
                );
                for vm in vms.iter() {
                    crate::println!("  {:<12} {}", vm.name, Bytes(vm.ram.size()));
                }
                Ok(())
            }
            Command::Stats => {
                self.print_stats(vms);
                Ok(())
            }
            Command::Uptime => {
                let seconds = self.milliseconds_since(self.started);
                crate::println!("tessera: up {}.{:03} s", seconds / 1000, seconds % 1000);
                Ok(())
            }
            Command::Version => {
                crate::println!("tessera v{}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
            Command::Reboot => return Some(OperatorRequest::Reboot),
            Command::Poweroff => return Some(OperatorRequest::PowerOff),
        };
        if let Err(message) = result {
            crate::println!("{}", message);
        }
        None
    }

    /// Milliseconds since the TSC read `since`.
    fn milliseconds_since(&self, since: u64) -> u64 {
        let ticks = crate::arch::tsc::rdtsc().saturating_sub(since);
        (u128::from(ticks) * 1000 / u128::from(self.tsc_hz)) as u64
    }

    fn print_vms<V: Vcpu>(&self, vms: &[Vm<V>]) {
        crate::println!(
            "  {:>3} {:<12} {:<9} {:>9} {:>10} {:>8}",
            "ID",
            "NAME",
            "STATE",
            "MEMORY",
            "EXITS",
            "RESTARTS"
        );
        for vm in vms {
            crate::println!(
                "  {:>3} {:<12} {:<9} {:>9} {:>10} {:>8}",
                vm.id,
                vm.name,
                state_name(vm),
                format!("{}", Bytes(vm.ram.size())),
                vm.vcpu.exit_count(),
                vm.restarts
            );
        }
    }

    fn print_stats<V: Vcpu>(&mut self, vms: &[Vm<V>]) {
        let now = crate::arch::tsc::rdtsc();
        let milliseconds = self.milliseconds_since(self.last_stats_at).max(1);
        crate::println!("exits per second over the last {} ms:", milliseconds);
        for (index, vm) in vms.iter().enumerate() {
            let total = vm.vcpu.exit_count();
            let before = self.last_stats.get(index).copied().unwrap_or(0);
            let rate = total.saturating_sub(before) * 1000 / milliseconds;
            crate::println!("  {:<12} {:>10}", vm.name, rate);
            if let Some(slot) = self.last_stats.get_mut(index) {
                *slot = total;
            }
        }
        self.last_stats_at = now;
    }
}

fn state_name<V: Vcpu>(vm: &Vm<V>) -> &'static str {
    match vm.state {
        RunState::Runnable => "running",
        RunState::Sleeping => "halted",
        RunState::Paused => "paused",
        RunState::Stopped => "stopped",
    }
}

fn print_info<V: Vcpu>(vm: &Vm<V>) {
    crate::println!(
        "vm {} (id {}): {}, {} of RAM, restarts {}, restart policy {:?}",
        vm.name,
        vm.id,
        state_name(vm),
        Bytes(vm.ram.size()),
        vm.restarts,
        vm.options.restart
    );
    if !vm.options.guest_cmdline.is_empty() {
        crate::println!("  command line: {}", vm.options.guest_cmdline);
    }
    let mut line = format!("  exits ({}):", vm.vcpu.exit_count());
    for (reason, count) in vm.vcpu.exit_statistics() {
        line.push_str(&format!(" {} {},", reason, count));
    }
    line.pop();
    crate::println!("{}", line);
    let ports = vm.platform.unclaimed_ports();
    crate::println!(
        "  interrupts injected {}, NMIs {}; ports with no device: {} reads, {} writes; console input dropped {}",
        vm.interrupts_injected,
        vm.nmis_injected,
        ports.reads,
        ports.writes,
        vm.platform.console_input_dropped()
    );
}
