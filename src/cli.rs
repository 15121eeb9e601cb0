//! The command line: subcommands and their flags (clap derive).
//!
//! Only the shape of the command line lives here; `main.rs` carries it out.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::{EngineChoice, Tsc};

/// Build and boot tessera, a bare-metal type-1 x86-64 hypervisor.
///
/// Without a subcommand: build the kernel and the guest blobs, make the demo ISO
/// (target/tessera-demo.iso from guest-blobs/demo.toml) and boot it, with the
/// serial console on this terminal.
///
/// Host packages that an action needs (GRUB, xorriso, QEMU, OVMF, Bochs) are
/// installed with apt-get when missing and running as root; set
/// TESSERA_NO_INSTALL=1 to get an error naming them instead.
#[derive(Debug, Parser)]
#[command(name = "tessera", version)]
pub struct Cli {
    /// What to do (default: `demo`).
    #[command(subcommand)]
    pub command: Option<Commands>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Build the kernel, the guest blobs and the demo ISO, then boot it (the default).
    Demo(DemoArgs),
    /// Build the kernel and print the absolute path of its ELF.
    Kernel,
    /// Build the kernel, then an ISO from a VM config file.
    Iso(IsoArgs),
    /// Boot an ISO headless and stream its serial console.
    ///
    /// Exit status: 0 when the hypervisor powered off cleanly after running
    /// every module it was given; 3 after a crash report (`tessera: CRASH` or
    /// `tessera: PANIC`); 4 on timeout; 5 when the emulator exited (or kept
    /// running) without a clean power-off; 6 when GRUB could not start the
    /// kernel; 7 when the kernel refused a module ("VM not created") and ran
    /// the rest; 8 when no guest could run at all (the CPU offers no hardware
    /// virtualization the kernel can use); 130 when interrupted; 1 for any
    /// other error; with --input, 9 when a `@wait` timed out, and 0 also
    /// when `@quit` (or, typing at a terminal, Ctrl-]) ended the emulator
    /// without a crash. The reason goes to stderr.
    Boot(BootArgs),
    /// Boot the `bench` guest and report the round trip of a guest CPUID, a
    /// hypercall, an unhandled port read, a PIT write, a local APIC MMIO
    /// read and a local APIC timer interrupt with its EOI (default engine:
    /// Bochs, whose TSC counts instructions, so the figures are exact path
    /// lengths; QEMU's TCG is made to count them too, so that the SVM and
    /// VMX paths compare), and the hypervisor's loaded size; then the scale
    /// measure: N copies of the `race` guest side by side, their
    /// min/median/max progress, Jain's fairness index and the host memory
    /// per VM; then a Linux boot's cost against the same kernel booted
    /// natively in the same engine.
    Bench(BenchArgs),
}

/// `tessera bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The emulator: bochs and bochs-uefi measure the VMX backend, qemu and
    /// qemu-uefi the SVM backend (with `-icount shift=0`), both in
    /// instructions; kvm measures the host's backend in cycles.
    #[arg(long, value_enum, default_value_t = EngineChoice::Bochs)]
    pub engine: EngineChoice,
    /// Give up after this many seconds (0: never).
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout: u64,
    /// The scale measure's copy counts, comma-separated: one boot each.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',',
          default_values_t = crate::scale::DEFAULT_SIZES,
          value_parser = clap::value_parser!(u32).range(1..=crate::scale::MAX_COPIES as i64))]
    pub scale: Vec<u32>,
    /// Leave out the scale measure (only the exit paths and the hypervisor's size).
    #[arg(long, conflicts_with = "scale")]
    pub no_scale: bool,
    /// Leave out the Linux boot measure (the Debian test guest natively in
    /// Bochs and under tessera, about two minutes; the first run downloads
    /// the kernel package).
    #[arg(long)]
    pub no_linux: bool,
}

impl BenchArgs {
    /// The copy counts to measure, none with `--no-scale`.
    pub fn scale_sizes(&self) -> &[u32] {
        if self.no_scale {
            &[]
        } else {
            &self.scale
        }
    }
}

/// `tessera iso`.
#[derive(Debug, Args)]
pub struct IsoArgs {
    /// The VM config (TOML); image paths are relative to its directory.
    #[arg(long, value_name = "FILE.toml")]
    pub config: PathBuf,
    /// Where to write the ISO.
    #[arg(long, value_name = "FILE.iso")]
    pub out: PathBuf,
    /// Use this kernel ELF instead of building the kernel.
    #[arg(long, value_name = "ELF")]
    pub kernel: Option<PathBuf>,
}

/// `tessera boot`.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// The ISO to boot.
    #[arg(value_name = "ISO")]
    pub iso: PathBuf,
    /// How to boot it.
    #[command(flatten)]
    pub flags: BootFlags,
}

/// `tessera demo [guests|linux]`.
#[derive(Debug, Clone, Args, Default)]
pub struct DemoArgs {
    /// Which demo: tessera's own guests (guest-blobs/demo.toml), or two
    /// unmodified Debian 12 Linux kernels beside the counter
    /// (guest-blobs/linux.toml; the first run downloads the kernel package
    /// and busybox-static with apt-get).
    #[arg(value_enum, default_value_t = DemoKind::Guests)]
    pub which: DemoKind,
    /// How to boot it.
    #[command(flatten)]
    pub flags: BootFlags,
}

/// The demos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoKind {
    /// Six small guests: real mode, a prime counter, a spinner, a crasher,
    /// two extended-state checkers.
    #[default]
    Guests,
    /// Two Linux guests beside the counter and the spinner.
    Linux,
}

/// How to boot: shared by `boot` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct BootFlags {
    /// The emulator: auto = KVM when usable with VMX or SVM, else QEMU (TCG, SVM).
    /// bochs and bochs-uefi exercise the kernel's VMX backend, qemu and
    /// qemu-uefi (TCG) its SVM backend, kvm the host CPU's.
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto)]
    pub engine: EngineChoice,
    /// Number of CPUs of the emulated machine. tessera uses only the boot CPU
    /// yet (SMP comes later); the others stay idle.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: u32,
    /// Give up after this many seconds (0: never).
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout: u64,
    /// Also write the raw serial output to this file (with Bochs, its own log
    /// goes next to it as FILE.bochs.log).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Memory of the emulated machine, in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(32..=65536))]
    pub mem: u32,
    /// Make the guest-visible TSC advance by one per instruction, as `bench`
    /// does, so that a bench run can be repeated: QEMU's TCG then runs with
    /// `-icount shift=0,sleep=off` (slower); Bochs' TSC always counts
    /// instructions; KVM's cannot.
    #[arg(long)]
    pub count_instructions: bool,
    /// Type a scripted session into the serial console: FILE, or `-` for
    /// standard input (read to its end before the boot). A line is typed
    /// followed by Enter (CR); `@wait TEXT` waits for a console line
    /// containing TEXT (60 s, or what `@timeout S` set; exit status 9 when it
    /// does not come); `@send TEXT` sends without Enter; `@sleep MS`;
    /// `@quit` ends the emulator (exit status 0 unless it crashed); `@#` is
    /// a comment, `@@` types a leading `@`. Escapes: \r \n \t \e \\ \xHH.
    /// Without --input, a terminal on standard input is the console's
    /// keyboard (Ctrl-] ends the emulator); anything else is not read.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
}

impl Default for BootFlags {
    fn default() -> Self {
        Self {
            engine: EngineChoice::Auto,
            cpus: 1,
            timeout: 300,
            log: None,
            mem: 512,
            count_instructions: false,
            input: None,
        }
    }
}

impl BootFlags {
    /// The timeout as a duration; `None` for no limit.
    pub fn timeout(&self) -> Option<Duration> {
        (self.timeout > 0).then(|| Duration::from_secs(self.timeout))
    }

    /// What the guest-visible TSC is to count.
    pub fn tsc(&self) -> Tsc {
        if self.count_instructions {
            Tsc::Instructions
        } else {
            Tsc::Usual
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_demo_with_defaults() {
        let cli = Cli::try_parse_from(["tessera"]).unwrap();
        assert!(cli.command.is_none());
        let (which, parsed) = match Cli::try_parse_from(["tessera", "demo"]).unwrap().command {
            Some(Commands::Demo(args)) => (args.which, args.flags),
            other => panic!("{other:?}"),
        };
        assert_eq!(which, DemoKind::Guests);
        match Cli::try_parse_from(["tessera", "demo", "linux", "--timeout", "900"])
            .unwrap()
            .command
        {
            Some(Commands::Demo(args)) => {
                assert_eq!((args.which, args.flags.timeout), (DemoKind::Linux, 900))
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["tessera", "demo", "windows"]).is_err());
        let defaults = BootFlags::default();
        assert_eq!(parsed.engine, defaults.engine);
        assert_eq!(parsed.cpus, defaults.cpus);
        assert_eq!(parsed.timeout, defaults.timeout);
        assert_eq!(parsed.mem, defaults.mem);
    }

    #[test]
    fn boot_flags_parse() {
        let cli = Cli::try_parse_from([
            "tessera",
            "boot",
            "x.iso",
            "--engine",
            "qemu-uefi",
            "--cpus",
            "2",
            "--timeout",
            "0",
            "--log",
            "s.log",
            "--mem",
            "1024",
        ])
        .unwrap();
        let Some(Commands::Boot(args)) = cli.command else {
            panic!("not boot")
        };
        assert_eq!(args.iso, PathBuf::from("x.iso"));
        assert_eq!(args.flags.engine, EngineChoice::QemuUefi);
        assert_eq!(args.flags.cpus, 2);
        assert_eq!(args.flags.timeout(), None);
        assert_eq!(args.flags.mem, 1024);
        assert_eq!(args.flags.tsc(), Tsc::Usual);
        assert!(Cli::try_parse_from(["tessera", "boot", "x.iso", "--engine", "vmware"]).is_err());
        let cli =
            Cli::try_parse_from(["tessera", "boot", "x.iso", "--count-instructions"]).unwrap();
        let Some(Commands::Boot(args)) = cli.command else {
            panic!("not boot")
        };
        assert_eq!(args.flags.tsc(), Tsc::Instructions);
        assert!(Cli::try_parse_from(["tessera", "boot", "x.iso", "--cpus", "0"]).is_err());
    }

    fn bench(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let argv = ["tessera", "bench"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Some(Commands::Bench(args)) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bench_scale_sizes() {
        assert_eq!(bench(&[]).unwrap().scale_sizes(), [64, 256]);
        assert_eq!(bench(&["--scale", "8"]).unwrap().scale_sizes(), [8]);
        assert_eq!(
            bench(&["--scale", "64,128,256"]).unwrap().scale_sizes(),
            [64, 128, 256]
        );
        assert!(bench(&["--no-scale"]).unwrap().scale_sizes().is_empty());
        assert!(bench(&["--scale", "257"]).is_err());
        assert!(bench(&["--scale", "0"]).is_err());
        assert!(bench(&["--scale", "64", "--no-scale"]).is_err());
    }

    #[test]
    fn iso_needs_config_and_out() {
        assert!(Cli::try_parse_from(["tessera", "iso", "--config", "a.toml"]).is_err());
        let cli = Cli::try_parse_from(["tessera", "iso", "--config", "a.toml", "--out", "a.iso"])
            .unwrap();
        assert!(matches!(cli.command, Some(Commands::Iso(_))));
    }
}
