//! `tessera`, the host tool: builds the hypervisor and its guest images into a
//! bootable ISO and boots it headless in an emulator, with the serial console
//! streamed to the terminal. See `tessera --help`.
//!
//! stdout carries only the console transcript (or, for `tessera kernel`, the
//! kernel's path); the tool's own messages go to stderr.

mod bench;
mod boot;
mod cli;
mod config;
mod deps;
mod engine;
mod gdb;
mod grubcfg;
mod iso;
mod linux_bench;
mod options;
mod process;
mod qmp;
mod scale;
mod script;
mod serial_link;
mod terminal;
mod transcript;
mod workspace;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::boot::{BootOptions, Input};
use crate::cli::{BenchArgs, BootFlags, Cli, Commands, DemoArgs, DemoKind};
use crate::config::Config;
use crate::engine::{HostVirtualization, Tsc};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Commands::Demo(DemoArgs::default()))) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("tessera: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Carries out one subcommand; returns the process exit status.
fn run(command: Commands) -> Result<u8> {
    match command {
        Commands::Kernel => {
            let kernel = workspace::build_kernel(&workspace::root()?)?;
            println!("{}", kernel.display());
            Ok(0)
        }
        Commands::Iso(args) => {
            // The config and the host tools are checked before the (slow) kernel build.
            let config = load_config(&args.config)?;
            deps::ensure(deps::ISO)?;
            let kernel = match args.kernel {
                Some(kernel) => kernel,
                None => workspace::build_kernel(&workspace::root()?)?,
            };
            iso::build(&config, &kernel, &args.out)?;
            Ok(0)
        }
        Commands::Boot(args) => boot_iso(&args.iso, &args.flags),
        Commands::Bench(args) => bench(&args),
        Commands::Demo(args) => {
            let root = workspace::root()?;
            deps::ensure(deps::ISO)?;
            let kernel = workspace::build_kernel(&root)?;
            workspace::build_guest_blobs(&root)?;
            let (config, iso) = match args.which {
                DemoKind::Guests => ("demo.toml", "tessera-demo.iso"),
                DemoKind::Linux => {
                    workspace::build_linux_guest(&root)?;
                    ("linux.toml", "tessera-linux.iso")
                }
            };
            // Loaded after `make`, which writes the images it names.
            let config = load_config(&root.join("guest-blobs").join(config))?;
            let out = workspace::target_dir(&root).join(iso);
            iso::build(&config, &kernel, &out)?;
            boot_iso(&out, &args.flags)
        }
    }
}

/// `tessera bench`: the exit-path table and the hypervisor's loaded size from
/// one boot of the bench guest, then one boot per scale size, then the Linux
/// boot measure. The reports are printed together at the end, after the
/// transcripts; on a failure, what was measured until then is printed before
/// the error.
fn bench(args: &BenchArgs) -> Result<u8> {
    // Resolved once, before anything is built, so that every boot of the run
    // is in the same engine and the reports can name it and its unit.
    let engine =
        engine::resolve(args.engine, HostVirtualization::probe()).map_err(anyhow::Error::msg)?;
    let run = BenchRun {
        engine,
        // Every figure is a TSC difference: in instructions wherever the
        // engine can count them, so that the VMX and SVM paths compare.
        tsc: if engine.counts_instructions() {
            Tsc::Instructions
        } else {
            Tsc::Usual
        },
        timeout: args.timeout,
    };
    let label = format!("{} ({})", engine.name(), engine.backend().describe());
    let root = workspace::root()?;
    deps::ensure(deps::ISO)?;
    let kernel = workspace::build_kernel(&root)?;
    workspace::build_guest_blobs(&root)?;
    let config = load_config(&root.join("guest-blobs").join("bench.toml"))?;
    let target = workspace::target_dir(&root);
    let out = target.join("tessera-bench.iso");
    iso::build(&config, &kernel, &out)?;
    let log = target.join("tessera-bench.serial.log");
    let outcome = run.boot(&out, 512, &log)?;
    if outcome.exit_code() != 0 {
        return Ok(outcome.exit_code());
    }
    let transcript = std::fs::read_to_string(&log)?;
    let mut report = bench::report(&bench::parse(&transcript), &label, engine.tsc_unit(run.tsc))?;
    let Some(image) = scale::parse_kernel_image(&transcript) else {
        bail!("the kernel printed no `memory: …; kernel <size> at <address>` line");
    };
    report.push_str(&format!(
        "hypervisor: {} KiB loaded ({} bytes at {})\n",
        image.bytes >> 10,
        image.bytes,
        image.address
    ));

    let mut results = Vec::new();
    let print_so_far = |results: &[scale::ScaleResult]| {
        print!("{report}");
        if !results.is_empty() {
            print!("{}", scale::report(results, &label));
        }
    };
    for &copies in args.scale_sizes() {
        match scale_run(&root, &kernel, copies, &run) {
            Ok(result) => results.push(result),
            Err(error) => {
                print_so_far(&results);
                return Err(error);
            }
        }
    }
    let linux = if args.no_linux {
        None
    } else {
        match linux_run(&root, &kernel, &run) {
            Ok(boot) => Some(boot),
            Err(error) => {
                print_so_far(&results);
                return Err(error);
            }
        }
    };
    print_so_far(&results);
    if let Some(boot) = linux {
        print!("{}", linux_bench::report(&boot, &label));
    }
    Ok(0)
}

/// What every boot of one `bench` run shares.
struct BenchRun {
    /// The engine, resolved once.
    engine: engine::Engine,
    /// What the guest's TSC counts.
    tsc: Tsc,
    /// Seconds each boot may take (0: no limit).
    timeout: u64,
}

impl BenchRun {
    /// Boots `iso` under tessera with `mem_mib` of emulated memory, the
    /// serial output going to `log`.
    fn boot(&self, iso: &Path, mem_mib: u32, log: &Path) -> Result<boot::Outcome> {
        boot::boot(&BootOptions {
            iso: iso.to_owned(),
            engine: self.engine.into(),
            cpus: 1,
            mem_mib,
            timeout: self.timeout(),
            log: Some(log.to_owned()),
            tsc: self.tsc,
            // Measurements are never typed into.
            input: Input::None,
        })
    }

    fn timeout(&self) -> Option<Duration> {
        (self.timeout > 0).then(|| Duration::from_secs(self.timeout))
    }
}

/// The Linux boot measure: the test guest natively in the bench's engine,
/// then as the only VM under tessera (see `linux_bench`).
fn linux_run(root: &Path, kernel: &Path, run: &BenchRun) -> Result<linux_bench::LinuxBoot> {
    // The native run stops at the 32-bit entry that GRUB's BIOS build jumps
    // to; its EFI build starts Linux through the EFI hand-over instead.
    if run.tsc != Tsc::Instructions || run.engine.uefi() {
        bail!(
            "the Linux boot measure needs an engine with BIOS firmware whose TSC counts \
             instructions (bochs or qemu), not {}; --no-linux leaves it out",
            run.engine.name()
        );
    }
    workspace::build_linux_guest(root)?;
    let target = workspace::target_dir(root);
    let vmlinuz = target.join("linux").join("vmlinuz");
    let initramfs = target.join("linux").join("initramfs.cpio.gz");

    // Natively: GRUB's `linux` and `initrd`, a debugger reading the tick
    // count at the kernel's entry.
    let tree = target.join("tessera-linux-native");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("boot").join("grub"))?;
    std::fs::copy(&vmlinuz, tree.join("boot").join("vmlinuz"))?;
    std::fs::copy(&initramfs, tree.join("boot").join("initramfs.cpio.gz"))?;
    std::fs::write(
        tree.join("boot").join("grub").join("grub.cfg"),
        linux_bench::native_grub_cfg(),
    )?;
    let native_iso = target.join("tessera-linux-native.iso");
    iso::make_rescue(&tree, &native_iso)?;
    let work = target.join("tessera-linux-native.run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let limit = Duration::from_secs(run.timeout.max(60));
    let (entry, native_serial) = match run.engine.backend() {
        engine::Backend::Vmx => native_linux_in_bochs(run.engine, &native_iso, &work, limit)?,
        _ => native_linux_in_qemu(run.engine, &native_iso, &work, limit)?,
    };
    linux_bench::check_native(&native_serial)?;

    // Under tessera: the same kernel and initramfs as its only VM.
    let config_path = target.join("tessera-linux-bench.toml");
    let text =
        linux_bench::tessera_config(&vmlinuz.to_string_lossy(), &initramfs.to_string_lossy());
    std::fs::write(&config_path, text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = load_config(&config_path)?;
    let out = target.join("tessera-linux-bench.iso");
    iso::build(&config, kernel, &out)?;
    let log = target.join("tessera-linux-bench.serial.log");
    let outcome = run.boot(&out, 512, &log)?;
    if outcome.exit_code() != 0 {
        bail!("the Linux boot under tessera: {}", outcome.describe());
    }
    let transcript = std::fs::read_to_string(&log).unwrap_or_default();
    linux_bench::evaluate(entry, &native_serial, &transcript)
}

/// The machine of the native Linux boot, as tessera's own boots get it.
const NATIVE_MACHINE: engine::Machine = engine::Machine {
    cpus: 1,
    mem_mib: 512,
    tsc: Tsc::Instructions,
};

/// The native Linux boot in Bochs: its debugger stops at the kernel's entry
/// and prints the tick count. Returns that and the serial transcript.
fn native_linux_in_bochs(
    engine: engine::Engine,
    iso: &Path,
    work: &Path,
    limit: Duration,
) -> Result<(u64, String)> {
    let launch = engine::prepare(engine, iso, NATIVE_MACHINE, work)?;
    std::fs::write(
        work.join(engine::files::BOCHS_COMMANDS),
        linux_bench::NATIVE_DEBUGGER_COMMANDS,
    )?;
    eprintln!(
        "tessera: booting Linux natively in Bochs ({})",
        work.display()
    );
    let mut command = launch.command;
    let mut child = process::spawn_supervised(&mut command).context("cannot start Bochs")?;
    wait_for_native(&mut child, limit)?;
    let serial = linux_bench::read(&launch.serial_log)?;
    let terminal = linux_bench::read(&work.join(engine::files::BOCHS_TERMINAL))?;
    Ok((linux_bench::bochs_entry(&terminal)?, serial))
}

/// The native Linux boot in QEMU, in two runs. The first stops at the
/// kernel's entry (a breakpoint through QEMU's gdbstub) and asks QMP how many
/// instructions the CPU has executed: SeaBIOS and GRUB's part, which came
/// out the same within 10,000 of 16.5 million over runs. The second runs
/// undisturbed to /init's marker. One run would not do: stopping the CPU
/// disturbs QEMU's icount clock (with sleep=off the stop counts as idle
/// time, and the TSC jumped 39 million ticks there, to the next timer's
/// deadline), and every run with a stop, with sleep=off or on, reached the
/// marker 1.5% later than the runs without. Without a stop, SeaBIOS and
/// GRUB leave the CPU idle too briefly to matter: undisturbed runs reach
/// the marker at the same TSC with sleep=off as with sleep=on, which idles
/// in real time instead, so the entry's TSC is the instruction count there.
/// Returns that count and the second run's serial transcript.
fn native_linux_in_qemu(
    engine: engine::Engine,
    iso: &Path,
    work: &Path,
    limit: Duration,
) -> Result<(u64, String)> {
    let stopped = work.join("entry");
    std::fs::create_dir_all(&stopped)?;
    let launch = engine::prepare(engine, iso, NATIVE_MACHINE, &stopped)?;
    let mut command = launch.command;
    // Frozen before the first instruction until the debugger lets it go;
    // the sockets are named relative to the work directory, QEMU's.
    command.args([
        "-S",
        "-chardev",
        &format!(
            "socket,id=gdb,path={},server=on,wait=off",
            engine::files::GDB_SOCKET
        ),
        "-gdb",
        "chardev:gdb",
        "-qmp",
        &format!("unix:{},server=on,wait=off", engine::files::QMP_SOCKET),
    ]);
    eprintln!(
        "tessera: booting Linux natively in QEMU to the kernel's entry ({})",
        stopped.display()
    );
    let mut child = process::spawn_supervised(&mut command).context("cannot start QEMU")?;
    let patience = Duration::from_secs(10);
    let entry = (|| {
        let mut gdb = gdb::Gdb::connect(&stopped.join(engine::files::GDB_SOCKET), patience)?;
        let mut qmp = qmp::Qmp::connect(&stopped.join(engine::files::QMP_SOCKET), patience)?;
        gdb.run_to(linux_bench::NATIVE_ENTRY)?;
        qmp.instructions()
    })();
    process::kill_tree(&mut child);
    let entry = entry.context("counting the instructions before the native kernel's entry")?;

    let launch = engine::prepare(engine, iso, NATIVE_MACHINE, work)?;
    eprintln!(
        "tessera: booting Linux natively in QEMU ({})",
        work.display()
    );
    let mut command = launch.command;
    let mut child = process::spawn_supervised(&mut command).context("cannot start QEMU")?;
    wait_for_native(&mut child, limit)?;
    Ok((entry, linux_bench::read(&launch.serial_log)?))
}

/// Waits for a native boot's emulator to end (Linux powers the machine
/// off), killing it after `limit`.
fn wait_for_native(child: &mut std::process::Child, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            process::kill_tree(child);
            bail!(
                "the native Linux boot took longer than {} s",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Boots `copies` copies of the race guest and evaluates their progress.
fn scale_run(
    root: &Path,
    kernel: &Path,
    copies: u32,
    run: &BenchRun,
) -> Result<scale::ScaleResult> {
    let target = workspace::target_dir(root);
    let image = root.join("guest-blobs").join("build").join("race.elf");
    // Written out, so that the run can be repeated with `iso` and `boot`.
    let config_path = target.join(format!("tessera-scale-{copies}.toml"));
    std::fs::write(&config_path, scale::config_toml(copies, &image)?)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = load_config(&config_path)?;
    let out = target.join(format!("tessera-scale-{copies}.iso"));
    iso::build(&config, kernel, &out)?;
    let log = target.join(format!("tessera-scale-{copies}.serial.log"));
    let outcome = run.boot(&out, scale::machine_mib(copies), &log)?;
    let transcript = std::fs::read_to_string(&log).unwrap_or_default();
    let result = scale::evaluate(copies, &transcript).with_context(|| {
        format!(
            "scale run with {copies} VMs ({}; transcript in {})",
            outcome.describe(),
            log.display()
        )
    })?;
    if outcome.exit_code() != 0 {
        bail!("scale run with {copies} VMs: {}", outcome.describe());
    }
    Ok(result)
}

/// Reads and checks a VM config, and says what the kernel will warn about.
fn load_config(path: &Path) -> Result<Config> {
    let config = Config::load(path)?;
    for warning in &config.hypervisor_warnings {
        eprintln!(
            "tessera: warning: {}: [hypervisor] cmdline: {warning} (the kernel boots with the default)",
            path.display()
        );
    }
    Ok(config)
}

/// What `boot` and `demo` send into the serial port: the `--input` script,
/// else the terminal's keys when standard input is one in the foreground,
/// else nothing (standard input is not read).
fn console_input(flags: &BootFlags) -> Result<Input> {
    let Some(path) = &flags.input else {
        return Ok(if terminal::stdin_is_interactive() {
            Input::Terminal
        } else {
            Input::None
        });
    };
    let (source, text) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the --input script from standard input")?;
        ("<stdin>".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the --input script {}", path.display()))?;
        (path.display().to_string(), text)
    };
    Ok(Input::Script(script::parse(&source, &text)?))
}

fn boot_iso(iso: &Path, flags: &BootFlags) -> Result<u8> {
    let input = console_input(flags)?;
    let outcome = boot::boot(&BootOptions {
        iso: iso.to_owned(),
        engine: flags.engine,
        cpus: flags.cpus,
        mem_mib: flags.mem,
        timeout: flags.timeout(),
        log: flags.log.clone(),
        tsc: flags.tsc(),
        input,
    })?;
    Ok(outcome.exit_code())
}
