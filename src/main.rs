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
mod options;
mod process;
mod transcript;
mod workspace;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;

use crate::boot::BootOptions;
use crate::cli::{BootFlags, Cli, Commands};
use crate::config::Config;
use crate::engine::{EngineChoice, HostVirtualization};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Commands::Demo(BootFlags::default()))) {
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
        Commands::Bench(args) => {
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
            print!("{}", bench::report(&bench::parse(&transcript), engine)?);
            Ok(0)
        }
        Commands::Demo(flags) => {
            let root = workspace::root()?;
            deps::ensure(deps::ISO)?;
            let kernel = workspace::build_kernel(&root)?;
            workspace::build_guest_blobs(&root)?;
            // Loaded after `make`, which writes the images it names.
            let config = load_config(&root.join("guest-blobs").join("demo.toml"))?;
            let out = workspace::target_dir(&root).join("tessera-demo.iso");
            iso::build(&config, &kernel, &out)?;
            boot_iso(&out, &flags)
        }
    }
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
