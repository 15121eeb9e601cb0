//! Boots an ISO in an emulator and supervises the run: streams the serial
//! console to stdout (and to the `--log` file, raw), judges the transcript, and
//! makes sure the emulator is gone when the tool returns.
//!
//! When asked (`--input`, or a terminal on standard input), COM1 also
//! carries bytes into the guest: see [`crate::serial_link`] for the wiring,
//! [`crate::script`] for scripted sessions and [`crate::terminal`] for the
//! interactive one.
//!
//! Success means the kernel said `tessera: powering off` and the emulator then
//! exited by itself, with no crash report in between. Everything else — a crash,
//! GRUB giving up, the emulator dying early, a timeout, Ctrl-C — is a failure
//! with its own exit code and a one-line reason on stderr.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::engine::{self, Com1, Engine, EngineChoice, HostVirtualization, Machine, Tsc};
use crate::process;
use crate::script::{self, LineMatcher, Runner, Script};
use crate::serial_link::SerialLink;
use crate::terminal;
use crate::transcript::{ControlStripper, MirrorFilter, Transcript, Verdict};

/// How often the serial log is polled for new output.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The same while someone types: an echo should not lag behind the key.
const INPUT_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long the guest's last output may take to come out of the socket
/// once the emulator has gone.
const DRAIN_PATIENCE: Duration = Duration::from_secs(2);
/// How long a crash report gets to finish before the emulator is stopped.
const CRASH_GRACE: Duration = Duration::from_secs(2);
/// How long the emulator gets to exit after the kernel announced its power-off.
const POWER_OFF_GRACE: Duration = Duration::from_secs(10);

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The ISO.
    pub iso: PathBuf,
    /// Which emulator.
    pub engine: EngineChoice,
    /// Number of CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Give up after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// Also write the raw serial output here.
    pub log: Option<PathBuf>,
    /// What the guest-visible TSC counts.
    pub tsc: Tsc,
    /// What goes into the serial port.
    pub input: Input,
}

/// What the serial port receives.
#[derive(Debug, Clone, Default)]
pub enum Input {
    /// Nothing: COM1 is output only, written to a file by the emulator.
    #[default]
    None,
    /// A scripted session (`--input`).
    Script(Script),
    /// The keys typed on this terminal, in raw mode, until [`terminal::ESCAPE_KEY`].
    Terminal,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The hypervisor powered off cleanly.
    PoweredOff {
        /// The reason it gave.
        reason: String,
    },
    /// The kernel printed a crash or panic report.
    Crashed {
        /// The first line of the report.
        line: String,
    },
    /// GRUB did not start the kernel.
    BootloaderFailed {
        /// GRUB's error lines.
        errors: Vec<String>,
    },
    /// The emulator exited without a power-off line.
    EmulatorExited {
        /// How it exited.
        status: String,
    },
    /// The kernel announced its power-off but the emulator kept running.
    DidNotPowerOff,
    /// The hypervisor powered off cleanly but refused at least one module.
    VmsRefused {
        /// The kernel's line for each refused module.
        lines: Vec<String>,
    },
    /// The hypervisor powered off without running any guest: the CPU it was
    /// given has no hardware virtualization it can use (none, one that
    /// firmware locked off, or one without a backend in the kernel).
    NoGuestCouldRun {
        /// The kernel's reason.
        reason: String,
    },
    /// Nothing decisive happened in time.
    TimedOut {
        /// The limit that passed.
        after: Duration,
    },
    /// Stopped by a signal (Ctrl-C).
    Interrupted,
    /// The operator ended the emulator ([`terminal::ESCAPE_KEY`], or the
    /// script's `@quit`) before anything else decided the run.
    Quit {
        /// How.
        how: String,
    },
    /// A `@wait` of the `--input` script ran out of time.
    ScriptStalled {
        /// Which wait, for what, how long.
        why: String,
    },
}

impl Outcome {
    /// The tool's exit status for this outcome (documented in `boot --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            // A session the operator ended on purpose, with no crash seen.
            Outcome::PoweredOff { .. } | Outcome::Quit { .. } => 0,
            Outcome::Crashed { .. } => 3,
            Outcome::TimedOut { .. } => 4,
            Outcome::EmulatorExited { .. } | Outcome::DidNotPowerOff => 5,
            Outcome::BootloaderFailed { .. } => 6,
            Outcome::VmsRefused { .. } => 7,
            Outcome::NoGuestCouldRun { .. } => 8,
            Outcome::ScriptStalled { .. } => 9,
            Outcome::Interrupted => 130,
        }
    }

    /// A one-line account for stderr.
    pub fn describe(&self) -> String {
        match self {
            Outcome::PoweredOff { reason } if reason.is_empty() => {
                "the hypervisor powered off cleanly".into()
            }
            Outcome::PoweredOff { reason } => {
                format!("the hypervisor powered off cleanly ({reason})")
            }
            Outcome::Crashed { line } => format!("the hypervisor crashed: {line}"),
            Outcome::BootloaderFailed { errors } if errors.is_empty() => {
                "GRUB could not start the hypervisor".into()
            }
            Outcome::BootloaderFailed { errors } => format!(
                "GRUB could not start the hypervisor: {}",
                errors.join(" / ")
            ),
            Outcome::EmulatorExited { status } => format!(
                "the emulator exited ({status}) before the hypervisor powered off \
                 (a triple fault ends the run this way)"
            ),
            Outcome::DidNotPowerOff => format!(
                "the hypervisor announced its power-off but the emulator was still running \
                 {}s later",
                POWER_OFF_GRACE.as_secs()
            ),
            Outcome::TimedOut { after } => format!(
                "timed out after {}s without a power-off",
                after.as_secs_f64()
            ),
            Outcome::VmsRefused { lines } => format!(
                "the hypervisor powered off, but refused {} module{}: {}",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" },
                lines.join(" / ")
            ),
            Outcome::NoGuestCouldRun { reason } => format!(
                "the hypervisor powered off without running any guest: \
                 it cannot run guests here ({reason})"
            ),
            Outcome::Interrupted => "interrupted".into(),
            Outcome::Quit { how } => format!("the emulator was ended ({how})"),
            Outcome::ScriptStalled { why } => why.clone(),
        }
    }
}

/// Set by SIGINT, SIGTERM or SIGHUP while a boot runs.
fn interruption_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("cannot install a signal handler")?;
    }
    Ok(flag)
}

/// Boots `options.iso` and supervises the run until a verdict.
pub fn boot(options: &BootOptions) -> Result<Outcome> {
    engine::check_iso(&options.iso)?;
    let engine =
        engine::resolve(options.engine, HostVirtualization::probe()).map_err(anyhow::Error::msg)?;
    crate::deps::ensure(&engine.needs())?;
    let machine = Machine {
        cpus: options.cpus,
        mem_mib: options.mem_mib,
        tsc: options.tsc,
    };

    let workdir = tempfile::Builder::new()
        .prefix("tessera-boot-")
        .tempdir()
        .context("cannot create a work directory")?;
    let (mut link, com1) = match options.input {
        Input::None => (None, Com1::File),
        Input::Script(_) | Input::Terminal => {
            let (link, com1) = SerialLink::listen(engine, workdir.path())?;
            (Some(link), com1)
        }
    };
    let launch = engine::prepare_wired(engine, &options.iso, machine, com1, workdir.path())?;
    let mut raw_log = match &options.log {
        Some(path) => Some(create_log(path)?),
        None => None,
    };
    eprintln!(
        "tessera: booting {} with {}, {} ({} CPU{}, {} MiB{}){}",
        options.iso.display(),
        engine.name(),
        engine.backend().describe(),
        machine.cpus,
        if machine.cpus == 1 { "" } else { "s" },
        machine.mem_mib,
        match machine.tsc {
            Tsc::Usual => "",
            Tsc::Instructions => ", the TSC counting instructions",
        },
        match options.timeout {
            Some(limit) => format!(", timeout {}s", limit.as_secs_f64()),
            None => String::new(),
        }
    );
    if machine.cpus > 1 {
        eprintln!(
            "tessera: note: the machine gets {} CPUs, but tessera uses only the boot CPU yet",
            machine.cpus
        );
    }

    let interrupted = interruption_flag()?;
    let mut command = launch.command;
    let mut child = process::spawn_supervised(&mut command)
        .with_context(|| format!("cannot start {}", engine.name()))?;

    let mut console = Console::new(&launch.serial_log, engine.firmware_mirrors_serial());
    let mut runner = match &options.input {
        Input::Script(script) => Some((Runner::new(script.clone()), LineMatcher::default())),
        Input::None | Input::Terminal => None,
    };
    let escaped = Arc::new(AtomicBool::new(false));
    // Raw mode from here on: the emulator has started, and every way out of
    // this function (a return, `?`, a signal turned into `Interrupted`) drops
    // the guard; a panic restores the terminal through its hook.
    let raw_mode = match (&options.input, &link) {
        (Input::Terminal, Some(link)) => {
            let guard = terminal::RawMode::enter().context("switching the terminal to raw mode")?;
            eprintln!(
                "tessera: the console takes your keys (Ctrl-C too); {} ends the emulator",
                terminal::ESCAPE_NAME
            );
            terminal::forward_keys(link.keys(), Arc::clone(&escaped));
            Some(guard)
        }
        _ => None,
    };
    let poll_interval = if link.is_some() {
        INPUT_POLL_INTERVAL
    } else {
        POLL_INTERVAL
    };
    let started = Instant::now();
    let mut crash_seen: Option<Instant> = None;
    let mut power_off_seen: Option<Instant> = None;

    let outcome = loop {
        let exit = child.try_wait().context("waiting for the emulator")?;
        if let Some(link) = link.as_mut() {
            link.poll()?;
            if exit.is_some() {
                link.drain(DRAIN_PATIENCE);
            }
        }
        // Read after checking for exit, so that an exit implies everything the
        // emulator wrote has been read.
        let fresh = console.poll(raw_log.as_mut());
        // The script sees the last output too, so that a note can say how far it got.
        let mut script_end = None;
        if let (Some((runner, matcher)), Some(link)) = (runner.as_mut(), link.as_ref()) {
            matcher.push(&String::from_utf8_lossy(&fresh));
            let progress = runner.advance(Instant::now(), matcher);
            for bytes in progress.sends {
                // The writing thread lives as long as the link.
                let _ = link.keys().send(bytes);
            }
            script_end = progress.end;
        }
        if let Some(status) = exit {
            console.finish();
            break match console.transcript.verdict(true) {
                Verdict::PoweredOff { reason } => Outcome::PoweredOff { reason },
                Verdict::Crashed { line } => Outcome::Crashed { line },
                Verdict::BootloaderFailed { errors } => Outcome::BootloaderFailed { errors },
                Verdict::VmsRefused { lines } => Outcome::VmsRefused { lines },
                Verdict::NoGuestCouldRun { reason } => Outcome::NoGuestCouldRun { reason },
                Verdict::PoweringOff | Verdict::Incomplete => Outcome::EmulatorExited {
                    status: status.to_string(),
                },
            };
        }

        let now = Instant::now();
        let decided = match console.transcript.verdict(false) {
            Verdict::Crashed { line } => {
                let since = *crash_seen.get_or_insert(now);
                (now - since >= CRASH_GRACE).then_some(Outcome::Crashed { line })
            }
            Verdict::BootloaderFailed { errors } => Some(Outcome::BootloaderFailed { errors }),
            Verdict::PoweringOff => {
                let since = *power_off_seen.get_or_insert(now);
                (now - since >= POWER_OFF_GRACE).then_some(Outcome::DidNotPowerOff)
            }
            Verdict::PoweredOff { .. }
            | Verdict::VmsRefused { .. }
            | Verdict::NoGuestCouldRun { .. }
            | Verdict::Incomplete => None,
        };
        let decided = decided
            .or_else(|| {
                interrupted
                    .load(Ordering::SeqCst)
                    .then_some(Outcome::Interrupted)
            })
            .or_else(|| match script_end.take() {
                Some(end @ script::End::Quit { .. }) => Some(Outcome::Quit {
                    how: end.to_string(),
                }),
                Some(end @ script::End::Stalled { .. }) => Some(Outcome::ScriptStalled {
                    why: end.to_string(),
                }),
                None => None,
            })
            .or_else(|| {
                escaped.load(Ordering::SeqCst).then(|| Outcome::Quit {
                    how: format!("{} pressed", terminal::ESCAPE_NAME),
                })
            })
            .or_else(|| {
                options
                    .timeout
                    .filter(|&limit| now - started >= limit)
                    .map(|after| Outcome::TimedOut { after })
            });
        if let Some(outcome) = decided {
            process::kill_tree(&mut child);
            if let Some(link) = link.as_mut() {
                link.drain(DRAIN_PATIENCE);
            }
            console.poll(raw_log.as_mut());
            console.finish();
            break match (outcome, console.transcript.verdict(false)) {
                // Ending the emulator must not hide a crash it had reported.
                (Outcome::Quit { .. }, Verdict::Crashed { line }) => Outcome::Crashed { line },
                (outcome, _) => outcome,
            };
        }
        std::thread::sleep(poll_interval);
    };
    drop(raw_mode);
    if let Some(at) = runner.as_ref().and_then(|(runner, _)| runner.pending()) {
        eprintln!("tessera: note: the --input script did not get past {at}");
    }

    if let Some(log) = raw_log.as_mut() {
        log.flush().context("writing the log")?;
    }
    report(
        &outcome,
        engine,
        &console.transcript,
        launch.emulator_log.as_deref(),
    );
    keep_diagnostics(
        &outcome,
        workdir,
        options.log.as_deref(),
        launch.emulator_log.as_deref(),
    );
    Ok(outcome)
}

fn create_log(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// The serial log as it grows: raw bytes to the log file, cleaned text to stdout
/// and to the transcript.
struct Console {
    path: PathBuf,
    file: Option<File>,
    stripper: ControlStripper,
    /// Only for engines whose firmware mirrors GRUB's console to the serial port.
    mirror: Option<MirrorFilter>,
    transcript: Transcript,
    ends_with_newline: bool,
}

impl Console {
    fn new(path: &Path, mirrored: bool) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            stripper: ControlStripper::default(),
            mirror: mirrored.then(MirrorFilter::default),
            transcript: Transcript::new(),
            ends_with_newline: true,
        }
    }

    /// Reads what is new; returns it cleaned (as the transcript got it).
    fn poll(&mut self, mut raw_log: Option<&mut File>) -> Vec<u8> {
        if self.file.is_none() {
            // The emulator creates the file when it starts.
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut raw = Vec::new();
        if file.read_to_end(&mut raw).is_err() || raw.is_empty() {
            return Vec::new();
        }
        if let Some(log) = raw_log.as_mut() {
            // A full disk must not stop the supervision of the emulator.
            let _ = log.write_all(&raw);
        }
        let mut clean = Vec::with_capacity(raw.len());
        self.stripper.strip(&raw, &mut clean);
        if clean.is_empty() {
            return clean;
        }
        self.transcript.push(&clean);
        match self.mirror.as_mut() {
            Some(mirror) => {
                let mut shown = String::new();
                mirror.filter(&String::from_utf8_lossy(&clean), &mut shown);
                self.show(shown.as_bytes());
            }
            None => self.show(&clean),
        }
        clean
    }

    fn show(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        self.ends_with_newline = text.ends_with(b"\n");
        // stdout may be a closed pipe (`| head`); the run goes on regardless.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text);
        let _ = stdout.flush();
    }

    fn finish(&mut self) {
        if let Some(mirror) = self.mirror.as_mut() {
            let mut rest = String::new();
            mirror.finish(&mut rest);
            self.show(rest.as_bytes());
        }
        if !self.ends_with_newline {
            // Keep the stderr summary off the end of an unterminated console line.
            println!();
            self.ends_with_newline = true;
        }
        self.transcript.finish();
    }
}

fn report(outcome: &Outcome, engine: Engine, transcript: &Transcript, emulator_log: Option<&Path>) {
    let prefix = if outcome.exit_code() == 0 {
        "tessera"
    } else {
        "tessera: FAILED"
    };
    eprintln!("{prefix}: {} [{}]", outcome.describe(), engine.name());
    // EFI GRUB says "no suitable video mode found" before every Multiboot2 boot
    // where the firmware has no video mode for it (Bochs' OVMF); it changes nothing.
    let grub_errors: Vec<&str> = transcript
        .bootloader_errors()
        .iter()
        .map(String::as_str)
        .filter(|e| !e.contains("no suitable video mode found"))
        .collect();
    if !grub_errors.is_empty() && !matches!(outcome, Outcome::BootloaderFailed { .. }) {
        eprintln!("tessera: note: GRUB reported: {}", grub_errors.join(" / "));
    }
    if outcome.exit_code() != 0 && !transcript.banner_seen() {
        eprintln!("tessera: note: the kernel's banner never appeared on the serial console");
    }
    if outcome.exit_code() != 0 {
        let log = emulator_log.and_then(|path| std::fs::read(path).ok());
        for line in bochs_panics(&String::from_utf8_lossy(log.as_deref().unwrap_or_default())) {
            eprintln!("tessera: note: Bochs: {line}");
        }
    }
}

/// Bochs' `>>PANIC<<` lines (a triple fault, say), less the one that every clean
/// power-off through its shutdown port produces. At most the first five.
fn bochs_panics(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|line| line.find(">>PANIC<<").map(|at| line[at..].trim()))
        .filter(|panic| !panic.contains("Shutdown port"))
        .take(5)
        .collect()
}

/// After a clean power-off the work directory goes; after any other end it
/// stays for inspection. With `--log`, the emulator's own log is also copied
/// next to the serial log.
fn keep_diagnostics(
    outcome: &Outcome,
    workdir: tempfile::TempDir,
    serial_log: Option<&Path>,
    emulator_log: Option<&Path>,
) {
    if let (Some(serial_log), Some(emulator_log)) = (serial_log, emulator_log) {
        let mut copy = serial_log.as_os_str().to_owned();
        copy.push(".bochs.log");
        let copy = PathBuf::from(copy);
        if std::fs::copy(emulator_log, &copy).is_ok() && outcome.exit_code() != 0 {
            eprintln!("tessera: Bochs' log: {}", copy.display());
        }
    }
    // A clean power-off leaves nothing to inspect, even when the kernel refused
    // modules or could run none: its transcript says why.
    if matches!(
        outcome,
        Outcome::PoweredOff { .. }
            | Outcome::VmsRefused { .. }
            | Outcome::NoGuestCouldRun { .. }
            | Outcome::Quit { .. }
    ) {
        return;
    }
    let kept = workdir.keep();
    eprintln!(
        "tessera: kept the work directory {} (serial.log{})",
        kept.display(),
        if emulator_log.is_some() {
            ", bochs.log, bochsrc, bochs-terminal.out"
        } else {
            ""
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_distinct_nonzero_code() {
        let outcomes = [
            Outcome::Crashed { line: "x".into() },
            Outcome::TimedOut {
                after: Duration::from_secs(1),
            },
            Outcome::EmulatorExited {
                status: "exit status: 1".into(),
            },
            Outcome::BootloaderFailed { errors: vec![] },
            Outcome::VmsRefused { lines: vec![] },
            Outcome::NoGuestCouldRun {
                reason: String::new(),
            },
            Outcome::Interrupted,
            Outcome::ScriptStalled { why: "x".into() },
        ];
        let codes: Vec<u8> = outcomes.iter().map(Outcome::exit_code).collect();
        assert!(
            codes.iter().all(|&c| c != 0 && c != 1 && c != 2),
            "{codes:?}"
        );
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert_eq!(
            Outcome::PoweredOff {
                reason: String::new()
            }
            .exit_code(),
            0
        );
    }

    #[test]
    fn picks_bochs_panics_but_not_its_shutdown() {
        let log = "00000000000i[      ] Bochs x86 Emulator 2.7\n\
            00759214531p[CPU0  ] >>PANIC<< exception(): 3rd (13) exception with no resolution\n\
            00759765242p[UNMAP ] >>PANIC<< Shutdown port: shutdown requested\n";
        assert_eq!(
            bochs_panics(log),
            [">>PANIC<< exception(): 3rd (13) exception with no resolution"]
        );
    }

    #[test]
    fn descriptions_carry_the_reason() {
        let crashed = Outcome::Crashed {
            line: "tessera: CRASH #PF".into(),
        };
        assert!(crashed.describe().contains("#PF"));
        let grub = Outcome::BootloaderFailed {
            errors: vec!["error: no multiboot header found.".into()],
        };
        assert!(grub.describe().contains("no multiboot header"));
        let timeout = Outcome::TimedOut {
            after: Duration::from_secs(300),
        };
        assert!(timeout.describe().contains("300"));
        let refused = Outcome::VmsRefused {
            lines: vec!["[ERROR] vm empty: the image is empty; VM not created".into()],
        };
        assert_eq!(refused.exit_code(), 7);
        assert!(refused.describe().contains("vm empty: the image is empty"));
        let no_vmx = Outcome::NoGuestCouldRun {
            reason: "no VMX".into(),
        };
        assert_eq!(no_vmx.exit_code(), 8);
        assert!(no_vmx.describe().contains("no VMX"));
    }
}
