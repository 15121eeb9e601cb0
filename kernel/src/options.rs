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
    /// A Multiboot or Multiboot2 kernel (its header says which).
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
    /// `cpu=`: refused for now (every VM runs on the boot CPU), so always `None`.
    pub cpu: Option<u32>,
    /// `restart=`
    pub restart: RestartPolicy,
    /// `initrd=`: the name of the data module a Linux kernel gets as its
    /// initial ramdisk.
    pub initrd: Option<String>,
    /// `role=`
    pub role: ModuleRole,
    /// `modules=`: the names of the data modules a Multiboot kernel gets,
    /// in order; empty when not given.
    pub modules: Vec<String>,
    /// `debug-exit=<port>`: an isa-debug-exit device at that port, whose
    /// write of `v` stops the VM with exit code `(v << 1) | 1` (QEMU's rule,
    /// for test kernels written for QEMU).
    pub debug_exit: Option<u16>,
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
    /// An option of the boot contract that tessera does not implement yet.
    /// Refused rather than ignored, so that nobody believes it took effect.
    NotSupportedYet {
        /// The option's name.
        option: &'static str,
        /// Why not, and what brings it.
        reason: &'static str,
    },
    /// The command line is not UTF-8: the boot code puts U+FFFD (the
    /// replacement character) where the bad bytes were, see [`lossy_cmdline`].
    /// Refused as a whole, since no option of such a line can be trusted.
    NotUtf8,
    /// `debug-exit=` names a port that one of the PC's devices decodes.
    PortTaken {
        /// The port given.
        port: u16,
        /// The device that decodes it.
        owner: &'static str,
    },
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
            ModuleOptionError::NotSupportedYet { option, reason } => {
                write!(f, "{}= is not supported yet: {}", option, reason)
            }
            ModuleOptionError::NotUtf8 => f.write_str(
                "the module's command line is not valid UTF-8 \
                 (each bad byte is shown as \u{FFFD})",
            ),
            ModuleOptionError::PortTaken { port, owner } => write!(
                f,
                "debug-exit={:#x}: the port belongs to {}; choose a free one (0xf4 is usual)",
                port, owner
            ),
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
        if cmdline.contains(char::REPLACEMENT_CHARACTER) {
            return Err(ModuleOptionError::NotUtf8);
        }
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
            modules: Vec::new(),
            debug_exit: None,
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
                "modules" => "modules",
                "debug-exit" => "debug-exit",
                _ => return Err(ModuleOptionError::Unknown(key.to_string())),
            };
            if let Some(reason) = not_supported_yet(option) {
                return Err(ModuleOptionError::NotSupportedYet { option, reason });
            }
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
                "debug-exit" => {
                    let port = parse_number(value)
                        .and_then(|port| u16::try_from(port).ok())
                        .filter(|&port| port != 0)
                        .ok_or_else(|| bad("an I/O port from 0x1 to 0xffff, like 0xf4"))?;
                    if let Some(owner) = crate::vmm::platform::pc_port_owner(port) {
                        return Err(ModuleOptionError::PortTaken { port, owner });
                    }
                    options.debug_exit = Some(port);
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
                "restart" => {
                    options.restart = match value {
                        "never" => RestartPolicy::Never,
                        "always" => RestartPolicy::Always,
                        "on-crash" => RestartPolicy::OnCrash,
                        _ => return Err(bad("never|always|on-crash")),
                    }
                }
                "modules" => {
                    let names: Vec<&str> = value.split(',').collect();
                    if !names.iter().all(|name| is_valid_name(name)) {
                        return Err(bad("module names separated by commas, like a,b"));
                    }
                    options.modules = names.into_iter().map(String::from).collect();
                }
                "initrd" => {
                    if !is_valid_name(value) {
                        return Err(bad("the name of a data module (role=data)"));
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
                _ => unreachable!("every option name is matched above or not supported yet"),
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

/// Why a module option of the boot contract is refused for now, or `None`
/// when it is implemented. The host tool shows the same words.
pub fn not_supported_yet(option: &str) -> Option<&'static str> {
    match option {
        "cpu" => Some("tessera runs every VM on the boot CPU until SMP support comes"),
        _ => None,
    }
}

/// Writes `bytes` (a command line from the bootloader) into `out` as UTF-8,
/// with U+FFFD in place of every byte that is not part of valid UTF-8, and
/// returns how many bytes of `out` it used.
///
/// The kernel cannot just drop a command line that is not UTF-8: the module
/// would silently lose its options. With the replacement character in it,
/// [`ModuleOptions::parse`] refuses the line and the operator sees where the
/// bad bytes were. When `out` is too small the text is cut at a character
/// boundary and ends in U+FFFD (if `out` holds at least 3 bytes), so that a
/// cut line is never taken for a whole one.
pub fn lossy_cmdline(bytes: &[u8], out: &mut [u8]) -> usize {
    const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
    let mut used = 0;
    let mut rest = bytes;
    let mut truncated = false;
    while !rest.is_empty() {
        let (valid, skip) = match core::str::from_utf8(rest) {
            Ok(text) => (text.len(), 0),
            Err(error) => (
                error.valid_up_to(),
                error
                    .error_len()
                    .unwrap_or(rest.len() - error.valid_up_to()),
            ),
        };
        // Cut the valid part at a character boundary if it does not fit.
        let room = out.len() - used;
        let mut take = valid.min(room);
        while take < valid && take > 0 && (rest[take] & 0xc0) == 0x80 {
            take -= 1;
        }
        out[used..used + take].copy_from_slice(&rest[..take]);
        used += take;
        if take < valid {
            truncated = true;
            break;
        }
        if skip > 0 {
            if out.len() - used < REPLACEMENT.len() {
                truncated = true;
                break;
            }
            out[used..used + REPLACEMENT.len()].copy_from_slice(REPLACEMENT);
            used += REPLACEMENT.len();
        }
        rest = &rest[valid + skip..];
    }
    if truncated && out.len() >= REPLACEMENT.len() {
        // Make room for a final U+FFFD by dropping whole characters.
        let mut end = used.min(out.len() - REPLACEMENT.len());
        while end > 0 && end < used && (out[end] & 0xc0) == 0x80 {
            end -= 1;
        }
        out[end..end + REPLACEMENT.len()].copy_from_slice(REPLACEMENT);
        used = end + REPLACEMENT.len();
    }
    used
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
            "/guests/vmlinuz name=linux mem=128M format=linux restart=on-crash -- console=ttyS0 quiet -- x",
        )
        .unwrap();
        assert_eq!(options.path.as_deref(), Some("/guests/vmlinuz"));
        assert_eq!(options.name.as_deref(), Some("linux"));
        assert_eq!(options.mem, Some(128 << 20));
        assert_eq!(options.format, ImageFormat::Linux);
        assert_eq!(options.restart, RestartPolicy::OnCrash);
        assert_eq!(options.initrd, None);
        assert_eq!(options.cpu, None);
        assert_eq!(options.guest_cmdline, "console=ttyS0 quiet -- x");
    }

    #[test]
    fn initrd_names_a_data_module() {
        let options = ModuleOptions::parse("name=linux mem=128M initrd=rootfs").unwrap();
        assert_eq!(options.initrd.as_deref(), Some("rootfs"));
        for bad in ["initrd=", "initrd=a/b", "initrd=a,b"] {
            assert!(
                matches!(
                    ModuleOptions::parse(bad),
                    Err(ModuleOptionError::BadValue {
                        option: "initrd",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            ModuleOptions::parse("initrd=a initrd=b"),
            Err(ModuleOptionError::Repeated("initrd"))
        );
    }

    #[test]
    fn options_not_implemented_yet_are_refused_with_the_reason() {
        let error = ModuleOptions::parse("name=a mem=1M cpu=1").unwrap_err();
        assert!(
            matches!(
                error,
                ModuleOptionError::NotSupportedYet { option: "cpu", .. }
            ),
            "{:?}",
            error
        );
        assert!(error.to_string().starts_with("cpu= is not supported yet: "));
        // Whatever the value: the option itself is what is missing.
        assert!(ModuleOptions::parse("cpu=lots").is_err());
        // After `--` they are the guest's words, not tessera's options.
        assert!(ModuleOptions::parse("mem=1M -- initrd=x cpu=1").is_ok());
    }

    #[test]
    fn debug_exit_takes_a_free_port() {
        assert_eq!(ModuleOptions::parse("mem=1M").unwrap().debug_exit, None);
        assert_eq!(
            ModuleOptions::parse("mem=1M debug-exit=0xf4")
                .unwrap()
                .debug_exit,
            Some(0xf4)
        );
        assert_eq!(
            ModuleOptions::parse("debug-exit=0x501").unwrap().debug_exit,
            Some(0x501)
        );
        for bad in ["debug-exit=0", "debug-exit=0x10000", "debug-exit=port"] {
            let error = ModuleOptions::parse(bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    ModuleOptionError::BadValue {
                        option: "debug-exit",
                        ..
                    }
                ),
                "{bad}: {error:?}"
            );
        }
        assert_eq!(
            ModuleOptions::parse("debug-exit=0x3f9")
                .unwrap_err()
                .to_string(),
            "debug-exit=0x3f9: the port belongs to COM1; choose a free one (0xf4 is usual)"
        );
        assert_eq!(
            ModuleOptions::parse("debug-exit=0x70").unwrap_err(),
            ModuleOptionError::PortTaken {
                port: 0x70,
                owner: "the RTC/CMOS"
            }
        );
    }

    #[test]
    fn a_command_line_that_was_not_utf8_is_refused() {
        let mut buffer = [0u8; 64];
        let used = lossy_cmdline(b"name=caf\xe9 mem=1M", &mut buffer);
        let text = core::str::from_utf8(&buffer[..used]).unwrap();
        assert_eq!(text, "name=caf\u{FFFD} mem=1M");
        assert_eq!(ModuleOptions::parse(text), Err(ModuleOptionError::NotUtf8));
        // Also when the bad bytes are only in the guest's part.
        let used = lossy_cmdline(b"name=a mem=1M -- \xff\xfe", &mut buffer);
        let text = core::str::from_utf8(&buffer[..used]).unwrap();
        assert_eq!(text, "name=a mem=1M -- \u{FFFD}\u{FFFD}");
        assert_eq!(ModuleOptions::parse(text), Err(ModuleOptionError::NotUtf8));
        assert!(ModuleOptionError::NotUtf8
            .to_string()
            .contains("not valid UTF-8"));
    }

    #[test]
    fn lossy_command_lines_fit_their_buffer() {
        let mut small = [0u8; 8];
        // Cut: still valid UTF-8, and marked with U+FFFD at the end.
        let used = lossy_cmdline(b"name=\xc3\xa9\xc3\xa9\xc3\xa9\xff", &mut small);
        let text = core::str::from_utf8(&small[..used]).unwrap();
        assert!(text.ends_with('\u{FFFD}'), "{:?}", text);
        assert!(used <= small.len());
        let mut buffer = [0u8; 32];
        let used = lossy_cmdline(b"\xe9\x80", &mut buffer);
        assert_eq!(core::str::from_utf8(&buffer[..used]), Ok("\u{FFFD}"));
        let used = lossy_cmdline(b"plain", &mut buffer);
        assert_eq!(&buffer[..used], b"plain");
        assert_eq!(lossy_cmdline(b"\xff", &mut [0u8; 2]), 0);
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
    fn modules_are_names_separated_by_commas() {
        let options = ModuleOptions::parse("name=kernel mem=4M modules=rootfs,config.txt").unwrap();
        assert_eq!(options.modules, ["rootfs", "config.txt"]);
        assert!(ModuleOptions::parse("mem=4M").unwrap().modules.is_empty());
        for bad in ["modules=", "modules=a,,b", "modules=a,", "modules=a/b"] {
            assert_eq!(
                ModuleOptions::parse(bad).unwrap_err().to_string(),
                std::format!(
                    "bad value `{}`: expected module names separated by commas, like a,b",
                    bad
                )
            );
        }
        assert_eq!(
            ModuleOptions::parse("modules=a modules=b"),
            Err(ModuleOptionError::Repeated("modules"))
        );
    }

    #[test]
    fn guest_cmdline_split() {
        assert_eq!(split_guest_cmdline("a=1 -- b c"), ("a=1 ", "b c"));
        assert_eq!(split_guest_cmdline("a=1 b=--"), ("a=1 b=--", ""));
        assert_eq!(split_guest_cmdline("-- x"), ("", "x"));
    }
}
