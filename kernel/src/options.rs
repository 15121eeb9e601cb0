//! Command-line options: the hypervisor's own (`multiboot2` line) and each
//! module's (`module2` line). See the boot contract in design.md.
//!
//! Parsing is strict and total: every token is either understood or reported.
//! A bad hypervisor option is a warning (the machine still boots with the
//! default); a bad module option is an error that keeps that one VM from being
//! created, because guessing what an operator meant for a guest is worse than
//! refusing it with a reason.

use crate::size::{parse_number, parse_size};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Verbosity of the serial log (`log=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default: boot summary and VM lifecycle.
    Info,
    /// Per-VM detail.
    Debug,
    /// Everything, including per-exit tracing.
    Trace,
}

/// How console lines are decorated (`console=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleStyle {
    /// Plain text, for logs and dumb terminals.
    Plain,
    /// ANSI colours per VM prefix and log level.
    Color,
}

/// What to do once no VM is left to run (`on-idle=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// ACPI S5 (or the emulator's exit port).
    PowerOff,
    /// Stop the CPUs and wait for a reset.
    Halt,
    /// Reset the machine (and so boot everything again).
    Reboot,
    /// Hand the serial console to the operator shell.
    Shell,
}

/// A deliberate failure for testing the crash reports (`crash-test=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashTest {
    /// Read an unmapped address: #PF.
    PageFault,
    /// Recurse until the guard page under the stack: #PF on the guard,
    /// which must still produce a report.
    StackOverflow,
    /// A Rust panic.
    Panic,
}

/// The hypervisor's options, from the `multiboot2` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypervisorOptions {
    /// `log=`
    pub log: LogLevel,
    /// `timeslice=`, in microseconds of guest time.
    pub timeslice_us: u64,
    /// `console=`
    pub console: ConsoleStyle,
    /// `on-idle=`
    pub on_idle: IdleAction,
    /// `crash-test=`: fail on purpose after the boot summary.
    pub crash_test: Option<CrashTest>,
}

impl Default for HypervisorOptions {
    fn default() -> Self {
        HypervisorOptions {
            log: LogLevel::Info,
            timeslice_us: 10_000,
            console: ConsoleStyle::Plain,
            on_idle: IdleAction::PowerOff,
            crash_test: None,
        }
    }
}

/// A hypervisor option that was not understood; booting goes on with the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionWarning {
    /// The option name is not one tessera knows.
    Unknown(String),
    /// The option is known but its value is not valid.
    BadValue {
        /// The option's name.
        option: String,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl fmt::Display for OptionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionWarning::Unknown(token) => write!(f, "unknown option `{}` ignored", token),
            OptionWarning::BadValue {
                option,
                value,
                expected,
            } => write!(
                f,
                "option `{}={}` ignored: expected {}",
                option, value, expected
            ),
        }
    }
}

/// Parses a duration with an `ms` or `us` suffix into microseconds (`10ms`).
pub fn parse_duration_us(text: &str) -> Option<u64> {
    let (digits, scale) = if let Some(d) = text.strip_suffix("ms") {
        (d, 1000)
    } else if let Some(d) = text.strip_suffix("us") {
        (d, 1)
    } else {
        (text, 1000)
    };
    let value: u64 = digits.parse().ok()?;
    value.checked_mul(scale).filter(|&us| us > 0)
}

impl HypervisorOptions {
    /// Parses the hypervisor command line. A leading token without `=` is the
    /// kernel's own path (some loaders pass it) and is skipped.
    pub fn parse(cmdline: &str) -> (HypervisorOptions, Vec<OptionWarning>) {
        let mut options = HypervisorOptions::default();
        let mut warnings = Vec::new();
        for (index, token) in cmdline.split_ascii_whitespace().enumerate() {
            let Some((key, value)) = token.split_once('=') else {
                if index == 0 && token.starts_with('/') {
                    continue;
                }
                warnings.push(OptionWarning::Unknown(token.to_string()));
                continue;
            };
            let bad = |expected| OptionWarning::BadValue {
                option: key.to_string(),
                value: value.to_string(),
                expected,
            };
            match key {
                "log" => match value {
                    "error" => options.log = LogLevel::Error,
                    "warn" => options.log = LogLevel::Warn,
                    "info" => options.log = LogLevel::Info,
                    "debug" => options.log = LogLevel::Debug,
                    "trace" => options.log = LogLevel::Trace,
                    _ => warnings.push(bad("error|warn|info|debug|trace")),
                },
                "timeslice" => match parse_duration_us(value) {
                    // Below 100 us the switch cost dominates; above 10 s the
                    // console stops feeling shared.
                    Some(us) if (100..=10_000_000).contains(&us) => options.timeslice_us = us,
                    _ => warnings.push(bad("a duration between 100us and 10000ms, like 10ms")),
                },
                "console" => match value {
                    "plain" => options.console = ConsoleStyle::Plain,
                    "color" => options.console = ConsoleStyle::Color,
                    _ => warnings.push(bad("plain|color")),
                },
                "on-idle" => match value {
                    "poweroff" => options.on_idle = IdleAction::PowerOff,
                    "halt" => options.on_idle = IdleAction::Halt,
                    "reboot" => options.on_idle = IdleAction::Reboot,
                    "shell" => options.on_idle = IdleAction::Shell,
                    _ => warnings.push(bad("poweroff|halt|reboot|shell")),
                },
                "crash-test" => match value {
                    "page-fault" => options.crash_test = Some(CrashTest::PageFault),
                    "stack-overflow" => options.crash_test = Some(CrashTest::StackOverflow),
                    "panic" => options.crash_test = Some(CrashTest::Panic),
                    _ => warnings.push(bad("page-fault|stack-overflow|panic")),
                },
                _ => warnings.push(OptionWarning::Unknown(token.to_string())),
            }
        }
        (options, warnings)
    }
}

/// How a guest image is to be interpreted (`format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// Detect from the image's bytes.
    Auto,
    /// A flat binary, loaded at `load=` (default 0x7C00).
    Raw,
    /// An ELF32 or ELF64 executable.
    Elf,
    /// A Multiboot (1) kernel.
    Multiboot,
    /// A Linux bzImage.
    Linux,
}

/// The processor mode a raw image starts in (`mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// 16-bit real mode, like a boot sector.
    Real,
    /// Flat 32-bit protected mode, paging off.
    Protected,
    /// 64-bit long mode on identity page tables.
    Long,
}

/// When a stopped VM is started again (`restart=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    Never,
    /// Restart whenever it stops.
    Always,
    /// Restart only when it stopped because of a fault.
    OnCrash,
}

/// What a module is (`role=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleRole {
    /// A guest image that becomes a VM.
    Vm,
    /// Data for another module (an initrd), never run.
    Data,
}

/// The options of one `module2` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleOptions {
    /// The file path GRUB passed as the first word, if it did.
    pub path: Option<String>,
    /// `name=`, or the file name of `path`.
    pub name: Option<String>,
    /// `mem=`, in bytes.
    pub mem: Option<u64>,
    /// `format=`
    pub format: ImageFormat,
    /// `load=`
    pub load: Option<u64>,
    /// `entry=`
    pub entry: Option<u64>,
    /// `mode=`
    pub mode: Option<CpuMode>,
    /// `cpu=`
    pub cpu: Option<u32>,
    /// `restart=`
    pub restart: RestartPolicy,
    /// `initrd=`, the name of a data module.
    pub initrd: Option<String>,
    /// `role=`
    pub role: ModuleRole,
    /// Everything after `--`: the guest's own command line.
    pub guest_cmdline: String,
}

/// Why a module's options were rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleOptionError {
    /// An option tessera does not know.
    Unknown(String),
    /// A known option with an invalid value.
    BadValue {
        /// The option's name.
        option: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The same option twice.
    Repeated(&'static str),
}

impl fmt::Display for ModuleOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleOptionError::Unknown(token) => write!(f, "unknown option `{}`", token),
            ModuleOptionError::BadValue {
                option,
                value,
                expected,
            } => write!(f, "bad value `{}={}`: expected {}", option, value, expected),
            ModuleOptionError::Repeated(option) => write!(f, "option `{}` given twice", option),
        }
    }
}

/// The longest VM name; it prefixes every console line of the VM.
pub const MAX_NAME_LEN: usize = 24;

/// Whether `name` is usable as a VM name: 1..=24 of `[A-Za-z0-9_.-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl ModuleOptions {
    /// Parses a module's command line: `[path] key=value ... [-- guest command line]`.
    pub fn parse(cmdline: &str) -> Result<ModuleOptions, ModuleOptionError> {
        let (own, guest) = split_guest_cmdline(cmdline);
        let mut options = ModuleOptions {
            path: None,
            name: None,
            mem: None,
            format: ImageFormat::Auto,
            load: None,
            entry: None,
            mode: None,
            cpu: None,
            restart: RestartPolicy::Never,
            initrd: None,
            role: ModuleRole::Vm,
            guest_cmdline: guest.to_string(),
        };
        let mut seen: Vec<&'static str> = Vec::new();
        for (index, token) in own.split_ascii_whitespace().enumerate() {
            let Some((key, value)) = token.split_once('=') else {
                if index == 0 && token.starts_with('/') {
                    options.path = Some(token.to_string());
                    continue;
                }
                return Err(ModuleOptionError::Unknown(token.to_string()));
            };
            let option: &'static str = match key {
                "name" => "name",
                "mem" => "mem",
                "format" => "format",
                "load" => "load",
                "entry" => "entry",
                "mode" => "mode",
                "cpu" => "cpu",
                "restart" => "restart",
                "initrd" => "initrd",
                "role" => "role",
                _ => return Err(ModuleOptionError::Unknown(key.to_string())),
            };
            if seen.contains(&option) {
                return Err(ModuleOptionError::Repeated(option));
            }
            seen.push(option);
            let bad = |expected| ModuleOptionError::BadValue {
                option,
                value: value.to_string(),
                expected,
            };
            match option {
                "name" => {
                    if !is_valid_name(value) {
                        return Err(bad("1 to 24 letters, digits, `_`, `-` or `.`"));
                    }
                    options.name = Some(value.to_string());
                }
                "mem" => {
                    let bytes = parse_size(value).map_err(|_| bad("a size like 1M or 512K"))?;
                    if bytes < 4096 || bytes % 4096 != 0 {
                        return Err(bad("a whole number of 4 KiB pages, at least 4K"));
                    }
                    options.mem = Some(bytes);
                }
                "format" => {
                    options.format = match value {
                        "auto" => ImageFormat::Auto,
                        "raw" => ImageFormat::Raw,
                        "elf" => ImageFormat::Elf,
                        "multiboot" => ImageFormat::Multiboot,
                        "linux" => ImageFormat::Linux,
                        _ => return Err(bad("auto|raw|elf|multiboot|linux")),
                    }
                }
                "load" => {
                    options.load = Some(parse_number(value).ok_or_else(|| bad("an address"))?)
                }
                "entry" => {
                    options.entry = Some(parse_number(value).ok_or_else(|| bad("an address"))?)
                }
                "mode" => {
                    options.mode = Some(match value {
                        "real" => CpuMode::Real,
                        "protected" => CpuMode::Protected,
                        "long" => CpuMode::Long,
                        _ => return Err(bad("real|protected|long")),
                    })
                }
                "cpu" => {
                    let cpu = parse_number(value)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad("a CPU number"))?;
                    options.cpu = Some(cpu);
                }
                "restart" => {
                    options.restart = match value {
                        "never" => RestartPolicy::Never,
                        "always" => RestartPolicy::Always,
                        "on-crash" => RestartPolicy::OnCrash,
                        _ => return Err(bad("never|always|on-crash")),
                    }
                }
                "initrd" => {
                    if !is_valid_name(value) {
                        return Err(bad("the name of a data module"));
                    }
                    options.initrd = Some(value.to_string());
                }
                "role" => {
                    options.role = match value {
                        "vm" => ModuleRole::Vm,
                        "data" => ModuleRole::Data,
                        _ => return Err(bad("vm|data")),
                    }
                }
                _ => unreachable!("every option name is matched above"),
            }
        }
        Ok(options)
    }

    /// The VM's name: `name=`, else the file name of the path without its
    /// extension, else `module<index>`.
    pub fn resolved_name(&self, index: usize) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        if let Some(path) = &self.path {
            let file = path.rsplit('/').next().unwrap_or(path);
            let stem = file.split('.').next().unwrap_or(file);
            if is_valid_name(stem) {
                return stem.to_string();
            }
        }
        alloc::format!("module{}", index)
    }
}

/// Splits `own options -- guest command line` at the first standalone `--`.
pub fn split_guest_cmdline(cmdline: &str) -> (&str, &str) {
    let mut offset = 0;
    for token in cmdline.split(' ') {
        if token == "--" {
            let own = &cmdline[..offset];
            let guest = cmdline[offset + 2..].trim();
            return (own, guest);
        }
        offset += token.len() + 1;
    }
    (cmdline, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn hypervisor_defaults() {
        let (options, warnings) = HypervisorOptions::parse("");
        assert_eq!(options, HypervisorOptions::default());
        assert!(warnings.is_empty());
    }

    #[test]
    fn hypervisor_options() {
        let (options, warnings) = HypervisorOptions::parse(
            "/boot/tessera.elf log=debug timeslice=5ms console=color on-idle=halt",
        );
        assert!(warnings.is_empty(), "{:?}", warnings);
        assert_eq!(options.log, LogLevel::Debug);
        assert_eq!(options.timeslice_us, 5000);
        assert_eq!(options.console, ConsoleStyle::Color);
        assert_eq!(options.on_idle, IdleAction::Halt);
        let (options, _) = HypervisorOptions::parse("crash-test=stack-overflow");
        assert_eq!(options.crash_test, Some(CrashTest::StackOverflow));
    }

    #[test]
    fn hypervisor_unknown_and_bad_values_warn_and_keep_defaults() {
        let (options, warnings) =
            HypervisorOptions::parse("log=loud frobnicate=1 timeslice=0ms quiet");
        assert_eq!(options, HypervisorOptions::default());
        assert_eq!(warnings.len(), 4);
        assert_eq!(
            warnings[0].to_string(),
            "option `log=loud` ignored: expected error|warn|info|debug|trace"
        );
        assert_eq!(
            warnings[1].to_string(),
            "unknown option `frobnicate=1` ignored"
        );
        assert!(matches!(warnings[2], OptionWarning::BadValue { .. }));
        assert_eq!(warnings[3], OptionWarning::Unknown("quiet".to_string()));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("10ms"), Some(10_000));
        assert_eq!(parse_duration_us("250us"), Some(250));
        assert_eq!(parse_duration_us("7"), Some(7000));
        assert_eq!(parse_duration_us("0"), None);
        assert_eq!(parse_duration_us("ms"), None);
    }

    #[test]
    fn module_options_full() {
        let options = ModuleOptions::parse(
            "/guests/vmlinuz name=linux mem=128M format=linux restart=on-crash initrd=rootfs cpu=1 -- console=ttyS0 quiet -- x",
        )
        .unwrap();
        assert_eq!(options.path.as_deref(), Some("/guests/vmlinuz"));
        assert_eq!(options.name.as_deref(), Some("linux"));
        assert_eq!(options.mem, Some(128 << 20));
        assert_eq!(options.format, ImageFormat::Linux);
        assert_eq!(options.restart, RestartPolicy::OnCrash);
        assert_eq!(options.initrd.as_deref(), Some("rootfs"));
        assert_eq!(options.cpu, Some(1));
        assert_eq!(options.guest_cmdline, "console=ttyS0 quiet -- x");
    }

    #[test]
    fn module_raw_options() {
        let options =
            ModuleOptions::parse("name=hello mem=1M load=0x1000 entry=0x1000 mode=protected")
                .unwrap();
        assert_eq!(options.load, Some(0x1000));
        assert_eq!(options.entry, Some(0x1000));
        assert_eq!(options.mode, Some(CpuMode::Protected));
        assert_eq!(options.role, ModuleRole::Vm);
        assert_eq!(options.guest_cmdline, "");
    }

    #[test]
    fn module_option_errors() {
        assert_eq!(
            ModuleOptions::parse("name=a colour=blue"),
            Err(ModuleOptionError::Unknown("colour".to_string()))
        );
        assert_eq!(
            ModuleOptions::parse("mem=1M mem=2M"),
            Err(ModuleOptionError::Repeated("mem"))
        );
        let err = ModuleOptions::parse("mem=lots").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad value `mem=lots`: expected a size like 1M or 512K"
        );
        assert!(ModuleOptions::parse("mem=1000").is_err(), "not page-sized");
        assert!(ModuleOptions::parse("name=has/slash").is_err());
        assert!(ModuleOptions::parse("restart=sometimes").is_err());
        assert!(ModuleOptions::parse("load=0xZZ").is_err());
        assert!(ModuleOptions::parse("stray").is_err());
    }

    #[test]
    fn names() {
        let options = ModuleOptions::parse("/guests/counter.elf mem=8M").unwrap();
        assert_eq!(options.resolved_name(3), "counter");
        let options = ModuleOptions::parse("mem=8M").unwrap();
        assert_eq!(options.resolved_name(3), "module3");
        assert!(is_valid_name("vm-1.test_x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a-name-that-is-far-too-long-for-a-prefix"));
    }

    #[test]
    fn guest_cmdline_split() {
        assert_eq!(split_guest_cmdline("a=1 -- b c"), ("a=1 ", "b c"));
        assert_eq!(split_guest_cmdline("a=1 b=--"), ("a=1 b=--", ""));
        assert_eq!(split_guest_cmdline("-- x"), ("", "x"));
    }
}
