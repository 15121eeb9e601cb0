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
mod grubcfg;
mod iso;
mod linux_bench;
mod options;
mod process;
mod scale;
mod transcript;
mod workspace;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::boot::BootOptions;
use crate::cli::{BenchArgs, BootFlags, Cli, Commands, DemoArgs, DemoKind};
use crate::config::Config;
use crate::engine::{EngineChoice, HostVirtualization};

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
/// one boot of the bench guest, then one boot per scale size. The reports are
/// printed together at the end, after the transcripts; on a failure, what was
/// measured until then is printed before the error.
fn bench(args: &BenchArgs) -> Result<u8> {
    // Known before anything is built: the bench guest must run.
    if let Ok(engine) = engine::resolve(args.engine, HostVirtualization::probe()) {
        if let Some(why) = engine.cannot_run_guests() {
            bail!("bench cannot use --engine {}: {why}", engine.name());
        }
    }
    let root = workspace::root()?;
    deps::ensure(deps::ISO)?;
    let kernel = workspace::build_kernel(&root)?;
    workspace::build_guest_blobs(&root)?;
    let config = load_config(&root.join("guest-blobs").join("bench.toml"))?;
    let target = workspace::target_dir(&root);
    let out = target.join("tessera-bench.iso");
    iso::build(&config, &kernel, &out)?;
    let log = target.join("tessera-bench.serial.log");
    let flags = BootFlags {
        engine: args.engine,
        timeout: args.timeout,
        log: Some(log.clone()),
        ..BootFlags::default()
    };
    let code = boot_iso(&out, &flags)?;
    if code != 0 {
        return Ok(code);
    }
    let transcript = std::fs::read_to_string(&log)?;
    let engine = match args.engine {
        EngineChoice::Bochs => "bochs",
        EngineChoice::BochsUefi => "bochs-uefi",
        _ => "the chosen engine",
    };
    let mut report = bench::report(&bench::parse(&transcript), engine)?;
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
    for &copies in args.scale_sizes() {
        match scale_run(&root, &kernel, copies, args) {
            Ok(result) => results.push(result),
            Err(error) => {
                print!("{report}");
                if !results.is_empty() {
                    print!("{}", scale::report(&results, engine));
                }
                return Err(error);
            }
        }
    }
    let linux = if args.no_linux {
        None
    } else {
        match linux_run(&root, &kernel, args) {
            Ok(boot) => Some(boot),
            Err(error) => {
                print!("{report}");
                if !results.is_empty() {
                    print!("{}", scale::report(&results, engine));
                }
                return Err(error);
            }
        }
    };
    print!("{report}");
    if !results.is_empty() {
        print!("{}", scale::report(&results, engine));
    }
    if let Some(boot) = linux {
        print!("{}", linux_bench::report(&boot, engine));
    }
    Ok(0)
}

/// The Linux boot measure: the test guest natively in Bochs, then as the
/// only VM under tessera (see `linux_bench`).
fn linux_run(root: &Path, kernel: &Path, args: &BenchArgs) -> Result<linux_bench::LinuxBoot> {
    if args.engine != EngineChoice::Bochs {
        bail!("the Linux boot measure needs --engine bochs (its TSC counts instructions)");
    }
    workspace::build_linux_guest(root)?;
    let target = workspace::target_dir(root);
    let vmlinuz = target.join("linux").join("vmlinuz");
    let initramfs = target.join("linux").join("initramfs.cpio.gz");

    // Natively: GRUB's `linux` and `initrd`, Bochs' debugger reading the
    // tick count at the kernel's entry.
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
    let launch = engine::prepare(
        engine::Engine::Bochs,
        &native_iso,
        engine::Machine {
            cpus: 1,
            mem_mib: 512,
        },
        &work,
    )?;
    std::fs::write(
        work.join(engine::files::BOCHS_COMMANDS),
        linux_bench::NATIVE_DEBUGGER_COMMANDS,
    )?;
    eprintln!(
        "tessera: booting Linux natively in Bochs ({})",
        work.display()
    );
    let mut command = launch.command;
    let mut child = command.spawn().context("cannot start Bochs")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout.max(60));
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the native Linux boot took longer than {} s",
                args.timeout.max(60)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let native_serial = linux_bench::read(&launch.serial_log)?;
    linux_bench::check_native(&native_serial)?;
    let native_terminal = linux_bench::read(&work.join(engine::files::BOCHS_TERMINAL))?;

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
    let outcome = boot::boot(&BootOptions {
        iso: out,
        engine: args.engine,
        cpus: 1,
        mem_mib: 512,
        timeout: (args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout)),
        log: Some(log.clone()),
    })?;
    if outcome.exit_code() != 0 {
        bail!("the Linux boot under tessera: {}", outcome.describe());
    }
    let transcript = std::fs::read_to_string(&log).unwrap_or_default();
    linux_bench::evaluate(&native_terminal, &native_serial, &transcript)
}

/// Boots `copies` copies of the race guest and evaluates their progress.
fn scale_run(
    root: &Path,
    kernel: &Path,
    copies: u32,
    args: &BenchArgs,
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
    let outcome = boot::boot(&BootOptions {
        iso: out,
        engine: args.engine,
        cpus: 1,
        mem_mib: scale::machine_mib(copies),
        timeout: (args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout)),
        log: Some(log.clone()),
    })?;
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

fn boot_iso(iso: &Path, flags: &BootFlags) -> Result<u8> {
    let outcome = boot::boot(&BootOptions {
        iso: iso.to_owned(),
        engine: flags.engine,
        cpus: flags.cpus,
        mem_mib: flags.mem,
        timeout: flags.timeout(),
        log: flags.log.clone(),
    })?;
    Ok(outcome.exit_code())
}
