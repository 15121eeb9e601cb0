//! The emulators that boot an ISO, and how each is set up to run headless with
//! the serial port written to a file.
//!
//! This module decides *what* to run (engine choice, command lines, Bochs'
//! configuration); [`crate::boot`] runs it and watches the transcript. The
//! verified facts behind the settings are in shared/emulators.md.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// OVMF's firmware code, mapped read-only.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
/// OVMF's variable store template; each boot gets a writable copy.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";
/// Bochs' system BIOS.
pub const BOCHS_BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// Bochs' VGA BIOS.
pub const BOCHS_VGA_BIOS: &str = "/usr/share/bochs/VGABIOS-lgpl-latest";
/// OVMF as one flash image (code and variables), for Bochs' UEFI boot.
pub const OVMF_COMBINED: &str = "/usr/share/ovmf/OVMF.fd";
/// Where Bochs maps [`OVMF_COMBINED`]: its 2 MiB end at 4 GiB, like a flash chip.
pub const OVMF_BOCHS_ADDRESS: u32 = 0xffe0_0000;

/// The `--engine` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// KVM when it works and the CPU has VMX or SVM, else Bochs.
    Auto,
    /// QEMU with KVM (nested virtualization on the host): the host's VMX or SVM.
    Kvm,
    /// QEMU with TCG and SeaBIOS: SVM with NPT (TCG has no VMX).
    Qemu,
    /// QEMU with TCG and OVMF (UEFI): SVM with NPT.
    QemuUefi,
    /// Bochs: VMX with EPT.
    Bochs,
    /// Bochs with OVMF (UEFI): VMX with EPT.
    BochsUefi,
}

impl From<Engine> for EngineChoice {
    fn from(engine: Engine) -> Self {
        match engine {
            Engine::Kvm => EngineChoice::Kvm,
            Engine::Qemu => EngineChoice::Qemu,
            Engine::QemuUefi => EngineChoice::QemuUefi,
            Engine::Bochs => EngineChoice::Bochs,
            Engine::BochsUefi => EngineChoice::BochsUefi,
        }
    }
}

/// The engine `--engine auto` picks when KVM is not usable: of the two
/// emulators that offer tessera hardware virtualization on a machine without
/// it — Bochs (VMX with EPT) and QEMU's TCG (SVM with NPT) — the one that
/// runs the demo (`cargo run`, six guests to their end) in less wall time
/// on the 2-core Debian 12 build machine. Measured there with
/// `cargo run -- boot tessera-demo.iso --engine …`: Bochs 18.3 s, QEMU 1.4 s
/// (3.3 s with `--count-instructions`). Re-measure both before changing
/// this; `resolve`'s tests follow it, the `--engine` help texts and the
/// README name it.
pub const AUTO_EMULATOR: Engine = Engine::Qemu;

/// Which of the kernel's virtualization backends an engine makes it use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Intel VMX with EPT (Bochs).
    Vmx,
    /// AMD SVM with nested paging (QEMU's TCG).
    Svm,
    /// Whatever the host CPU has (KVM passes VMX or SVM through).
    Host,
}

impl Backend {
    /// How the boot line and the bench reports name it.
    pub fn describe(self) -> &'static str {
        match self {
            Backend::Vmx => "VMX",
            Backend::Svm => "SVM under TCG",
            Backend::Host => "the host's VMX or SVM",
        }
    }
}

/// What the guest-visible time-stamp counter counts. Every figure the bench
/// guest reports is a TSC difference, so this is the unit of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tsc {
    /// The engine's own clock: instructions in Bochs, the host's TSC in QEMU
    /// (with TCG or KVM).
    #[default]
    Usual,
    /// One tick per executed instruction, guest and hypervisor alike, so
    /// that exit paths are path lengths whatever the machine and the load:
    /// Bochs always counts this way; QEMU's TCG does with `-icount shift=0`;
    /// KVM runs on the real CPU and cannot.
    Instructions,
}

/// A concrete engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// QEMU with KVM.
    Kvm,
    /// QEMU TCG, SeaBIOS.
    Qemu,
    /// QEMU TCG, OVMF.
    QemuUefi,
    /// Bochs under a pseudo-terminal.
    Bochs,
    /// Bochs with OVMF instead of its BIOS.
    BochsUefi,
}

impl Engine {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Kvm => "kvm",
            Engine::Qemu => "qemu",
            Engine::QemuUefi => "qemu-uefi",
            Engine::Bochs => "bochs",
            Engine::BochsUefi => "bochs-uefi",
        }
    }

    /// Whether the engine starts UEFI firmware (OVMF) rather than a BIOS.
    pub fn uefi(self) -> bool {
        matches!(self, Engine::QemuUefi | Engine::BochsUefi)
    }

    /// Whether the firmware copies GRUB's EFI console to the serial port, so
    /// that GRUB's messages arrive twice (see `transcript::MirrorFilter`).
    pub fn firmware_mirrors_serial(self) -> bool {
        self.uefi()
    }

    /// The kernel backend this engine exercises: Bochs emulates VMX, QEMU's
    /// TCG emulates SVM (and no VMX), KVM hands over the host CPU's.
    pub fn backend(self) -> Backend {
        match self {
            Engine::Bochs | Engine::BochsUefi => Backend::Vmx,
            Engine::Qemu | Engine::QemuUefi => Backend::Svm,
            Engine::Kvm => Backend::Host,
        }
    }

    /// Whether the guest-visible TSC can be made to count instructions.
    pub fn counts_instructions(self) -> bool {
        self != Engine::Kvm
    }

    /// The unit of TSC differences measured in this engine with `tsc`, for
    /// the bench reports: what the number is, and why.
    pub fn tsc_unit(self, tsc: Tsc) -> &'static str {
        match (self, tsc) {
            (Engine::Bochs | Engine::BochsUefi, _) => {
                "instructions (Bochs' TSC counts instructions)"
            }
            (Engine::Qemu | Engine::QemuUefi, Tsc::Instructions) => {
                "instructions (QEMU's TSC counts instructions with -icount shift=0)"
            }
            (Engine::Qemu | Engine::QemuUefi, Tsc::Usual) => {
                "TSC ticks (QEMU's TCG reads the host's TSC: time, not instructions)"
            }
            (Engine::Kvm, _) => "TSC cycles (the host CPU's)",
        }
    }

    /// The host programs and files this engine needs.
    pub fn needs(self) -> Vec<crate::deps::Need> {
        use crate::deps;
        match self {
            Engine::Kvm | Engine::Qemu => deps::QEMU.to_vec(),
            Engine::QemuUefi => [deps::QEMU, deps::OVMF].concat(),
            Engine::Bochs => deps::BOCHS.to_vec(),
            Engine::BochsUefi => [deps::BOCHS, deps::OVMF_BOCHS].concat(),
        }
    }
}

/// What the host offers for KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostVirtualization {
    /// /dev/kvm opens for reading and writing.
    pub kvm_device: bool,
    /// The CPU advertises Intel VMX.
    pub vmx: bool,
    /// The CPU advertises AMD SVM.
    pub svm: bool,
}

impl HostVirtualization {
    /// Looks at /dev/kvm and /proc/cpuinfo.
    pub fn probe() -> Self {
        let kvm_device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let (vmx, svm) = cpu_flags(&cpuinfo);
        Self {
            kvm_device,
            vmx,
            svm,
        }
    }
}

/// Whether the `flags` lines of /proc/cpuinfo list `vmx` and `svm`.
fn cpu_flags(cpuinfo: &str) -> (bool, bool) {
    let mut vmx = false;
    let mut svm = false;
    for line in cpuinfo.lines().filter(|l| l.starts_with("flags")) {
        let flags = line.split_once(':').map_or("", |(_, f)| f);
        vmx |= flags.split_whitespace().any(|f| f == "vmx");
        svm |= flags.split_whitespace().any(|f| f == "svm");
    }
    (vmx, svm)
}

/// Turns the `--engine` choice into an engine, or says why it cannot run here.
pub fn resolve(choice: EngineChoice, host: HostVirtualization) -> Result<Engine, String> {
    match choice {
        // The kernel has a backend for either vendor's extension, and KVM
        // runs it at hardware speed.
        EngineChoice::Auto if host.kvm_device && (host.vmx || host.svm) => Ok(Engine::Kvm),
        EngineChoice::Auto => Ok(AUTO_EMULATOR),
        EngineChoice::Kvm if !host.kvm_device => {
            Err("KVM is not usable: /dev/kvm does not open for reading and writing".into())
        }
        EngineChoice::Kvm if !(host.vmx || host.svm) => {
            Err("KVM is not usable: the CPU advertises neither vmx nor svm in /proc/cpuinfo".into())
        }
        EngineChoice::Kvm => Ok(Engine::Kvm),
        EngineChoice::Qemu => Ok(Engine::Qemu),
        EngineChoice::QemuUefi => Ok(Engine::QemuUefi),
        EngineChoice::Bochs => Ok(Engine::Bochs),
        EngineChoice::BochsUefi => Ok(Engine::BochsUefi),
    }
}

/// The emulated machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Number of CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// What the TSC counts.
    pub tsc: Tsc,
}

/// File names inside a boot's work directory. Emulator configuration refers to
/// these short relative names only, so that no user path (with a comma, a space…)
/// ever needs quoting for QEMU's option syntax or Bochs' config parser.
pub mod files {
    /// A symbolic link to the ISO being booted.
    pub const ISO: &str = "tessera.iso";
    /// The serial port's output, written by the emulator (or, when the tool
    /// types into the console, by the tool from [`SERIAL_SOCKET`]).
    pub const SERIAL: &str = "serial.log";
    /// The Unix socket QEMU connects COM1 to when the tool types into the console.
    pub const SERIAL_SOCKET: &str = "com1.sock";
    /// The writable copy of OVMF's variable store.
    pub const OVMF_VARS: &str = "OVMF_VARS.fd";
    /// Bochs' configuration.
    pub const BOCHSRC: &str = "bochsrc";
    /// Commands for Bochs' built-in debugger: continue, then quit.
    pub const BOCHS_COMMANDS: &str = "bochs-commands";
    /// Bochs' own log: device messages, VMX entry failures, panics.
    pub const BOCHS_LOG: &str = "bochs.log";
    /// What Bochs draws on its pseudo-terminal (the VGA text screen), and port 0xE9.
    pub const BOCHS_TERMINAL: &str = "bochs-terminal.out";
    /// The Unix socket of QEMU's gdbstub, when a debugger is to attach.
    pub const GDB_SOCKET: &str = "gdb.sock";
    /// The Unix socket of QEMU's QMP server, when a tool is to ask it.
    pub const QMP_SOCKET: &str = "qmp.sock";
}

/// Where the emulator wires COM1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Com1 {
    /// Output only, to [`files::SERIAL`]: nothing is typed.
    #[default]
    File,
    /// Both ways through [`files::SERIAL_SOCKET`], where the tool listens (QEMU).
    UnixSocket,
    /// Both ways through this TCP port of 127.0.0.1, where the tool listens
    /// (Bochs, whose serial sockets are TCP only).
    TcpPort(u16),
}

/// The three ways this tool runs QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuFlavor {
    /// Hardware-assisted, with the host CPU's features.
    Kvm,
    /// TCG with SeaBIOS.
    Tcg,
    /// TCG with OVMF.
    TcgUefi,
}

/// The QEMU arguments for one flavor, relative to the work directory.
pub fn qemu_args(flavor: QemuFlavor, machine: Machine, com1: Com1) -> Vec<OsString> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    match flavor {
        QemuFlavor::Kvm => push(&["-enable-kvm", "-cpu", "host"]),
        // TCG emulates SVM with nested paging and no VMX. `max` is every
        // feature TCG implements and nothing else: vendor AuthenticAMD, SVM
        // with NPT and vGIF, XSAVE and AVX2 (which the demo's xstate guests
        // use), 1 GiB pages, and not one "TCG doesn't support requested
        // feature" warning (QEMU 7.2). The named AMD models ask for more than
        // TCG has and QEMU drops it with a warning each (EPYC: 9, among them
        // SVM's NRIP save, which the kernel must then do without;
        // EPYC-Milan: 22); `qemu64,+svm,+npt` is honest but has no XSAVE or
        // AVX, so the guests' extended state would go untested under SVM.
        QemuFlavor::Tcg | QemuFlavor::TcgUefi => push(&["-cpu", "max"]),
    }
    if machine.tsc == Tsc::Instructions && flavor != QemuFlavor::Kvm {
        // With icount, TCG's virtual clock advances 2^shift ns per executed
        // instruction and the TSC reads that clock: shift=0 makes every
        // instruction, guest's or hypervisor's, one tick, as in Bochs (a
        // loop of N `dec; jnz` measured 2N + 5 between two RDTSCs). Without
        // sleep=off an idle CPU waits for its timer in real time, which
        // would put the host's speed back into the count; with it, the
        // clock jumps to the next timer at once and runs are repeatable.
        push(&["-icount", "shift=0,sleep=off"]);
    }
    if flavor == QemuFlavor::TcgUefi {
        let code = format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}");
        let vars = format!("if=pflash,format=raw,file={}", files::OVMF_VARS);
        push(&["-drive", &code, "-drive", &vars]);
    }
    let cpus = machine.cpus.to_string();
    let mem = machine.mem_mib.to_string();
    push(&["-smp", &cpus, "-m", &mem]);
    push(&["-cdrom", files::ISO, "-boot", "d"]);
    let serial = match com1 {
        Com1::File => format!("file:{}", files::SERIAL),
        // A client socket: QEMU connects while it starts, before the guest
        // runs, and fails at once if the tool is not listening.
        Com1::UnixSocket | Com1::TcpPort(_) => {
            let socket = match com1 {
                Com1::TcpPort(port) => format!("socket,id=com1,host=127.0.0.1,port={port}"),
                _ => format!("socket,id=com1,path={}", files::SERIAL_SOCKET),
            };
            push(&["-chardev", &socket]);
            "chardev:com1".to_owned()
        }
    };
    push(&["-display", "none", "-serial", &serial, "-monitor", "none"]);
    // A triple fault ends the run instead of rebooting into GRUB again.
    push(&["-no-reboot"]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    args.into_iter().map(OsString::from).collect()
}

/// The firmware Bochs starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BochsFirmware {
    /// Bochs' own BIOS.
    Bios,
    /// OVMF (UEFI) on an i440FX PCI chipset, which OVMF needs. OVMF in Bochs
    /// publishes no ACPI tables (it gets them from QEMU's fw_cfg), so tessera
    /// powers off through the emulator's shutdown port there.
    Uefi,
}

/// Bochs' configuration, relative to the work directory.
pub fn bochsrc(machine: Machine, firmware: BochsFirmware, com1: Com1) -> String {
    let firmware_lines = match firmware {
        BochsFirmware::Bios => format!("romimage: file={BOCHS_BIOS}\n"),
        BochsFirmware::Uefi => format!(
            "romimage: file={OVMF_COMBINED}, address={OVMF_BOCHS_ADDRESS:#x}\n\
             pci: enabled=1, chipset=i440fx\n"
        ),
    };
    let com1 = match com1 {
        Com1::File => format!("com1: enabled=1, mode=file, dev={}", files::SERIAL),
        // Bochs connects while it starts; a refused connection would leave
        // COM1 unconnected, with only an error in its log.
        Com1::TcpPort(port) => {
            format!("com1: enabled=1, mode=socket-client, dev=127.0.0.1:{port}")
        }
        Com1::UnixSocket => unreachable!("`prepare` refuses Unix sockets for Bochs"),
    };
    format!(
        "\
# Generated by the tessera host tool for one boot.
megs: {mem}
# Skylake-X: VMX with EPT, unrestricted guest, VPID and the preemption timer.
# A triple fault stops Bochs (a panic, made fatal below) instead of resetting.
cpu: model=corei7_skylake_x, count={cpus}, ips=200000000, reset_on_triple_fault=0
{firmware_lines}vgaromimage: file={vga}
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
display_library: term
{com1}
port_e9_hack: enabled=1
log: {log}
# Nobody is there to answer Bochs' questions: a panic ends the run.
panic: action=fatal
error: action=report
",
        mem = machine.mem_mib,
        cpus = machine.cpus,
        vga = BOCHS_VGA_BIOS,
        iso = files::ISO,
        log = files::BOCHS_LOG,
    )
}

/// An emulator ready to start in its work directory.
#[derive(Debug)]
pub struct Launch {
    /// The command; its working directory is set.
    pub command: Command,
    /// The file the serial port is written to.
    pub serial_log: PathBuf,
    /// The emulator's own log, worth reading when a boot fails.
    pub emulator_log: Option<PathBuf>,
}

/// Prepares `workdir` for booting `iso` with `engine` and returns the command.
pub fn prepare(engine: Engine, iso: &Path, machine: Machine, workdir: &Path) -> Result<Launch> {
    prepare_wired(engine, iso, machine, Com1::File, workdir)
}

/// [`prepare`] with COM1 wired as `com1`.
pub fn prepare_wired(
    engine: Engine,
    iso: &Path,
    machine: Machine,
    com1: Com1,
    workdir: &Path,
) -> Result<Launch> {
    if com1 == Com1::UnixSocket && matches!(engine, Engine::Bochs | Engine::BochsUefi) {
        bail!("Bochs 2.7 connects its serial port to TCP sockets only");
    }
    if machine.tsc == Tsc::Instructions && !engine.counts_instructions() {
        bail!(
            "{} runs guests on the real CPU, whose TSC cannot count instructions",
            engine.name()
        );
    }
    let iso = std::path::absolute(iso).with_context(|| format!("resolving {}", iso.display()))?;
    std::os::unix::fs::symlink(&iso, workdir.join(files::ISO))
        .with_context(|| format!("linking {} into {}", iso.display(), workdir.display()))?;
    let serial_log = workdir.join(files::SERIAL);

    let (mut command, emulator_log) = match engine {
        Engine::Kvm | Engine::Qemu | Engine::QemuUefi => {
            let flavor = match engine {
                Engine::Kvm => QemuFlavor::Kvm,
                Engine::QemuUefi => QemuFlavor::TcgUefi,
                _ => QemuFlavor::Tcg,
            };
            if flavor == QemuFlavor::TcgUefi {
                std::fs::copy(OVMF_VARS, workdir.join(files::OVMF_VARS))
                    .with_context(|| format!("copying {OVMF_VARS}"))?;
            }
            let mut command = Command::new("qemu-system-x86_64");
            command.args(qemu_args(flavor, machine, com1));
            (command, None)
        }
        Engine::Bochs | Engine::BochsUefi => {
            let firmware = match engine {
                Engine::BochsUefi => BochsFirmware::Uefi,
                _ => BochsFirmware::Bios,
            };
            std::fs::write(
                workdir.join(files::BOCHSRC),
                bochsrc(machine, firmware, com1),
            )?;
            std::fs::write(workdir.join(files::BOCHS_COMMANDS), "c\nquit\n")?;
            // Bochs as Debian builds it stops at its debugger prompt (hence the
            // command file) and has only terminal displays, which need a terminal:
            // `script` gives it a pseudo-terminal and copies the screen to stdout.
            let mut command = Command::new("script");
            command.args([
                "-qfc",
                &format!(
                    "bochs -q -f {} -rc {}",
                    files::BOCHSRC,
                    files::BOCHS_COMMANDS
                ),
                "/dev/null",
            ]);
            let terminal = std::fs::File::create(workdir.join(files::BOCHS_TERMINAL))?;
            command.stdout(terminal);
            (command, Some(workdir.join(files::BOCHS_LOG)))
        }
    };
    // An emulator in its own process group must not touch the terminal: reading
    // it would stop the emulator (SIGTTIN), and `script` would switch it to raw mode.
    command.current_dir(workdir).stdin(Stdio::null());
    Ok(Launch {
        command,
        serial_log,
        emulator_log,
    })
}

/// Fails unless `path` looks like an ISO 9660 image (`CD001` at byte 0x8001).
pub fn check_iso(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 5];
    let is_iso = file.seek(SeekFrom::Start(0x8001)).is_ok()
        && file.read_exact(&mut magic).is_ok()
        && &magic == b"CD001";
    if !is_iso {
        bail!("{} is not an ISO 9660 image", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: HostVirtualization = HostVirtualization {
        kvm_device: false,
        vmx: false,
        svm: false,
    };

    #[test]
    fn auto_prefers_kvm_with_vmx_or_svm_else_the_faster_emulator() {
        let intel = HostVirtualization {
            kvm_device: true,
            vmx: true,
            svm: false,
        };
        let amd = HostVirtualization {
            kvm_device: true,
            vmx: false,
            svm: true,
        };
        let vmx_without_device = HostVirtualization {
            kvm_device: false,
            ..intel
        };
        let svm_without_device = HostVirtualization {
            kvm_device: false,
            ..amd
        };
        // The kernel has both backends: either vendor's KVM runs it.
        assert_eq!(resolve(EngineChoice::Auto, intel), Ok(Engine::Kvm));
        assert_eq!(resolve(EngineChoice::Auto, amd), Ok(Engine::Kvm));
        // A /dev/kvm that does not open, or a CPU without either, is no KVM.
        for host in [vmx_without_device, svm_without_device, NOTHING] {
            assert_eq!(resolve(EngineChoice::Auto, host), Ok(AUTO_EMULATOR));
        }
        let device_only = HostVirtualization {
            kvm_device: true,
            ..NOTHING
        };
        assert_eq!(resolve(EngineChoice::Auto, device_only), Ok(AUTO_EMULATOR));
        assert_eq!(resolve(EngineChoice::Kvm, amd), Ok(Engine::Kvm));
    }

    #[test]
    fn the_auto_emulator_runs_guests_with_a_bios() {
        // One of the two emulators with a kernel backend, booting the BIOS
        // way as `cargo run` always has; never KVM, which needs the host.
        assert!(
            matches!(AUTO_EMULATOR, Engine::Bochs | Engine::Qemu),
            "{AUTO_EMULATOR:?}"
        );
        assert_eq!(AUTO_EMULATOR, Engine::Qemu);
        assert!(AUTO_EMULATOR.counts_instructions() && !AUTO_EMULATOR.uefi());
    }

    #[test]
    fn every_engine_resolves_to_itself() {
        for engine in [
            Engine::Kvm,
            Engine::Qemu,
            Engine::QemuUefi,
            Engine::Bochs,
            Engine::BochsUefi,
        ] {
            let host = HostVirtualization {
                kvm_device: true,
                vmx: true,
                svm: false,
            };
            assert_eq!(resolve(engine.into(), host), Ok(engine));
        }
    }

    #[test]
    fn explicit_kvm_says_why_it_cannot_run() {
        let error = resolve(EngineChoice::Kvm, NOTHING).unwrap_err();
        assert!(error.contains("/dev/kvm"), "{error}");
        let no_flags = HostVirtualization {
            kvm_device: true,
            ..NOTHING
        };
        let error = resolve(EngineChoice::Kvm, no_flags).unwrap_err();
        assert!(error.contains("vmx"), "{error}");
        assert_eq!(
            resolve(EngineChoice::QemuUefi, NOTHING),
            Ok(Engine::QemuUefi)
        );
    }

    #[test]
    fn reads_cpu_flags() {
        let info = "processor\t: 0\nflags\t\t: fpu vme svm sse\nvmx flags\t: ept\n";
        assert_eq!(cpu_flags(info), (false, true));
        assert_eq!(cpu_flags("flags\t: fpu vmx\n"), (true, false));
        assert_eq!(cpu_flags("flags\t: fpu vmxx\n"), (false, false));
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn qemu_command_lines() {
        let machine = Machine {
            cpus: 2,
            mem_mib: 512,
            tsc: Tsc::Usual,
        };
        let tcg = joined(&qemu_args(QemuFlavor::Tcg, machine, Com1::File));
        assert!(tcg.starts_with("-cpu max "), "{tcg}");
        assert!(!tcg.contains("-icount"), "{tcg}");
        for part in [
            "-smp 2",
            "-m 512",
            "-cdrom tessera.iso",
            "-display none",
            "-serial file:serial.log",
            "-monitor none",
            "-no-reboot",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
        ] {
            assert!(tcg.contains(part), "{part} missing from {tcg}");
        }
        assert!(!tcg.contains("pflash") && !tcg.contains("kvm"));

        let uefi = joined(&qemu_args(QemuFlavor::TcgUefi, machine, Com1::File));
        assert!(uefi.contains(
            "-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
             -drive if=pflash,format=raw,file=OVMF_VARS.fd"
        ));
        let kvm = joined(&qemu_args(QemuFlavor::Kvm, machine, Com1::File));
        assert!(kvm.starts_with("-enable-kvm -cpu host "), "{kvm}");
    }

    #[test]
    fn counting_instructions_is_icount_with_shift_0_and_no_sleep() {
        let machine = Machine {
            cpus: 1,
            mem_mib: 512,
            tsc: Tsc::Instructions,
        };
        for flavor in [QemuFlavor::Tcg, QemuFlavor::TcgUefi] {
            let args = joined(&qemu_args(flavor, machine, Com1::File));
            assert!(
                args.starts_with("-cpu max -icount shift=0,sleep=off "),
                "{args}"
            );
        }
        // Bochs counts instructions whatever the machine asks.
        let usual = bochsrc(
            Machine {
                tsc: Tsc::Usual,
                ..machine
            },
            BochsFirmware::Bios,
            Com1::File,
        );
        assert_eq!(bochsrc(machine, BochsFirmware::Bios, Com1::File), usual);
    }

    #[test]
    fn bochs_configuration() {
        let machine = Machine {
            cpus: 2,
            mem_mib: 256,
            tsc: Tsc::Usual,
        };
        let rc = bochsrc(machine, BochsFirmware::Bios, Com1::File);
        for line in [
            "megs: 256",
            "cpu: model=corei7_skylake_x, count=2, ips=200000000, reset_on_triple_fault=0",
            "ata0-master: type=cdrom, path=tessera.iso, status=inserted",
            "boot: cdrom",
            "display_library: term",
            "com1: enabled=1, mode=file, dev=serial.log",
            "port_e9_hack: enabled=1",
            "log: bochs.log",
        ] {
            assert!(rc.lines().any(|l| l == line), "{line:?} missing from\n{rc}");
        }
        assert!(rc.contains("romimage: file=/usr/share/bochs/BIOS-bochs-latest\n"));
        assert!(!rc.contains("pci:"));
        let uefi = bochsrc(machine, BochsFirmware::Uefi, Com1::File);
        for line in [
            "romimage: file=/usr/share/ovmf/OVMF.fd, address=0xffe00000",
            "pci: enabled=1, chipset=i440fx",
            "cpu: model=corei7_skylake_x, count=2, ips=200000000, reset_on_triple_fault=0",
        ] {
            assert!(
                uefi.lines().any(|l| l == line),
                "{line:?} missing from\n{uefi}"
            );
        }
        assert!(!uefi.contains("BIOS-bochs-latest"));
    }

    #[test]
    fn com1_as_a_socket_to_the_tool() {
        let machine = Machine {
            cpus: 1,
            mem_mib: 512,
            tsc: Tsc::Usual,
        };
        let qemu = joined(&qemu_args(QemuFlavor::Tcg, machine, Com1::UnixSocket));
        assert!(
            qemu.contains(
                "-chardev socket,id=com1,path=com1.sock -display none -serial chardev:com1 "
            ),
            "{qemu}"
        );
        assert!(
            !qemu.contains("file:") && !qemu.contains("server"),
            "{qemu}"
        );
        let rc = bochsrc(machine, BochsFirmware::Bios, Com1::TcpPort(4567));
        assert!(
            rc.lines()
                .any(|l| l == "com1: enabled=1, mode=socket-client, dev=127.0.0.1:4567"),
            "{rc}"
        );
        assert!(!rc.contains("mode=file"));
        let dir = tempfile::tempdir().unwrap();
        let error = prepare_wired(
            Engine::Bochs,
            Path::new("x.iso"),
            machine,
            Com1::UnixSocket,
            dir.path(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("TCP"), "{error}");
    }

    #[test]
    fn each_engine_names_its_backend() {
        assert_eq!(Engine::Bochs.backend(), Backend::Vmx);
        assert_eq!(Engine::BochsUefi.backend(), Backend::Vmx);
        assert_eq!(Engine::Qemu.backend(), Backend::Svm);
        assert_eq!(Engine::QemuUefi.backend(), Backend::Svm);
        assert_eq!(Engine::Kvm.backend(), Backend::Host);
        assert_eq!(Backend::Svm.describe(), "SVM under TCG");
        assert_eq!(
            resolve(EngineChoice::BochsUefi, NOTHING),
            Ok(Engine::BochsUefi)
        );
    }

    #[test]
    fn the_tsc_unit_says_what_was_counted() {
        for engine in [Engine::Bochs, Engine::BochsUefi] {
            for tsc in [Tsc::Usual, Tsc::Instructions] {
                assert!(engine.tsc_unit(tsc).starts_with("instructions (Bochs'"));
            }
        }
        for engine in [Engine::Qemu, Engine::QemuUefi] {
            let counted = engine.tsc_unit(Tsc::Instructions);
            assert!(counted.starts_with("instructions ("), "{counted}");
            assert!(counted.contains("-icount shift=0"), "{counted}");
            let timed = engine.tsc_unit(Tsc::Usual);
            assert!(!timed.starts_with("instructions"), "{timed}");
        }
        assert!(Engine::Kvm.tsc_unit(Tsc::Usual).contains("cycles"));
        assert!(!Engine::Kvm.counts_instructions());
    }

    #[test]
    fn kvm_cannot_count_instructions() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine {
            cpus: 1,
            mem_mib: 512,
            tsc: Tsc::Instructions,
        };
        let error = prepare(Engine::Kvm, Path::new("x.iso"), machine, dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("cannot count instructions"),
            "{error}"
        );
    }

    #[test]
    fn recognises_iso_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = vec![0u8; 0x8006];
        image[0x8001..0x8006].copy_from_slice(b"CD001");
        let good = dir.path().join("good.iso");
        std::fs::write(&good, &image).unwrap();
        assert!(check_iso(&good).is_ok());
        let bad = dir.path().join("bad.iso");
        std::fs::write(&bad, b"hello").unwrap();
        assert!(check_iso(&bad).is_err());
        assert!(check_iso(&dir.path().join("missing.iso")).is_err());
    }
}
