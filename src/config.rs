//! The VM config file (`vms.toml`): parsing, validation, and the checked model
//! that the ISO builder and the grub.cfg renderer work from.
//!
//! Everything that can be wrong with a config is found here, before any file is
//! copied or any external program runs. There is one grammar: each VM's module
//! line goes through the kernel's own option parser
//! (`tessera_kernel::options::ModuleOptions::parse`) and each image through the
//! kernel's boot path without its bytes (`tessera_kernel::vmm::boot::dry_run`:
//! the firmware tables, then the loader with the data modules a VM's `modules`
//! names, into guest RAM of `mem=` bytes), so
//! that the tool refuses exactly what the kernel would refuse at boot, in the
//! kernel's words. [`crate::options`] only turns TOML values into option
//! text; this module adds what needs the whole file: unique names, images on
//! disk, and the data modules that a VM's `modules` names (which must be
//! `role = "data"` entries of the same file, and are loaded with the VM's image
//! in its dry run). A VM's `initrd = "path"` becomes a data module of its own
//! (`<vm>-initrd`, one per file however many VMs share it, after every entry
//! of the file) and the `initrd=` option naming it. It does not render GRUB
//! syntax.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tessera_kernel::loader;
use tessera_kernel::options::{HypervisorOptions, ModuleOptions, ModuleRole};
use tessera_kernel::vmm::boot;

use crate::options::{self, NumberOrText, SyntaxError};

/// Whether a raw entry says `role = "data"` (the kernel's parser decides
/// for good; this only keeps a data entry from getting an initrd module).
fn is_data(raw: &RawVm) -> bool {
    matches!(&raw.role, Some(NumberOrText::Text(role)) if role == "data")
}

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    hypervisor: RawHypervisor,
    #[serde(default)]
    vm: Vec<RawVm>,
}

/// The `[hypervisor]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHypervisor {
    #[serde(default)]
    cmdline: String,
}

/// One `[[vm]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Option<String>,
    image: PathBuf,
    mem: Option<NumberOrText>,
    cmdline: Option<String>,
    /// A Linux kernel's initial ramdisk: a file, made into a data module.
    initrd: Option<PathBuf>,
    restart: Option<NumberOrText>,
    /// The data modules (`role = "data"` entries) a Multiboot kernel gets, in order.
    modules: Option<Vec<String>>,
    cpu: Option<NumberOrText>,
    format: Option<NumberOrText>,
    load: Option<NumberOrText>,
    entry: Option<NumberOrText>,
    mode: Option<NumberOrText>,
    role: Option<NumberOrText>,
    #[serde(rename = "debug-exit")]
    debug_exit: Option<NumberOrText>,
}

/// A validated config: every value is known to be well-formed and GRUB-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The hypervisor's command line, split into words.
    pub hypervisor_cmdline: Vec<String>,
    /// What the kernel will warn about in that command line (it boots anyway,
    /// with the defaults), in the kernel's words.
    pub hypervisor_warnings: Vec<String>,
    /// The modules, in file order (which is the module order the kernel sees).
    pub vms: Vec<VmSpec>,
}

/// One validated `[[vm]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Unique name; also the image's file name (plus extension) in the ISO.
    pub name: String,
    /// The image on the host, resolved against the config file's directory.
    pub image: PathBuf,
    /// A VM or a data module, as the kernel's parser read the module line.
    pub role: ModuleRole,
    /// The options after `name=`, in module-line order, as `(key, value)` text
    /// (each value a plain GRUB word).
    pub options: Vec<(&'static str, String)>,
    /// The guest's own command line, split into words (after `--` on the module line).
    pub cmdline: Vec<String>,
}

impl VmSpec {
    /// The image's file name inside the ISO's `/guests` directory: the VM's name
    /// plus the image's extension, so that two VMs may share one host file.
    pub fn iso_file_name(&self) -> String {
        format!("{}{}", self.name, image_extension(&self.image))
    }

    /// The module's command line as GRUB hands it to the kernel: `name=`, the
    /// other options, then `--` and the guest's words, joined by single spaces
    /// (GRUB removes the quotes that [`crate::grubcfg`] adds).
    pub fn kernel_cmdline(&self) -> String {
        let mut words = vec![format!("name={}", self.name)];
        words.extend(
            self.options
                .iter()
                .map(|(key, value)| format!("{key}={value}")),
        );
        if !self.cmdline.is_empty() {
            words.push("--".into());
            words.extend(self.cmdline.iter().cloned());
        }
        words.join(" ")
    }
}

/// The extension of an image file, with its dot: `.bin`, `.elf`, `.cpio.gz`.
/// A compression suffix keeps the extension before it, so that the file stays
/// recognisable to a person reading the ISO. Empty when there is none or when it
/// has characters outside the file-name alphabet that names use.
fn image_extension(image: &Path) -> String {
    let Some(file_name) = image.file_name().and_then(|n| n.to_str()) else {
        return String::new();
    };
    let parts: Vec<&str> = file_name.split('.').collect();
    // parts[0] is the stem (possibly empty for dotfiles, which then have no extension).
    if parts.len() < 2 || parts[0].is_empty() {
        return String::new();
    }
    let last = parts[parts.len() - 1];
    let compressed = matches!(last, "gz" | "xz" | "zst" | "bz2" | "lz4" | "lzma");
    let take = if compressed && parts.len() >= 3 { 2 } else { 1 };
    let extension: String = parts[parts.len() - take..]
        .iter()
        .map(|part| format!(".{part}"))
        .collect();
    let usable = extension
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !extension.contains("..");
    if usable {
        extension
    } else {
        String::new()
    }
}

/// Everything that can be wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. (The I/O error is part of the message and
    /// deliberately not a `source`, which `{:#}` would print a second time.)
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Not TOML, or keys/types that do not belong (the message names the key).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// `[hypervisor] cmdline` cannot be written into grub.cfg.
    #[error("[hypervisor] cmdline: {0}")]
    HypervisorCmdline(SyntaxError),
    /// A value of one VM cannot be written into grub.cfg as it is.
    #[error("vm {vm:?}: {key}: {reason}")]
    InvalidOption {
        /// The VM's name (or its position, when the name itself is bad).
        vm: String,
        /// The key in the `[[vm]]` table.
        key: &'static str,
        /// What is wrong with it.
        reason: SyntaxError,
    },
    /// The kernel's option parser refuses the VM's module line.
    #[error("vm {vm:?}: {reason} (module line \"{line}\")")]
    Refused {
        /// The VM's name.
        vm: String,
        /// The kernel's reason.
        reason: String,
        /// The module line as the kernel would see it.
        line: String,
    },
    /// The kernel's loader refuses the VM's image.
    #[error("vm {vm:?}: {reason} (image {}); the kernel would not create this VM", path.display())]
    ImageRefused {
        /// The VM's name.
        vm: String,
        /// The image.
        path: PathBuf,
        /// The kernel's reason.
        reason: String,
    },
    /// A required option is absent.
    #[error("vm {vm:?}: {key} is required for role = \"vm\"")]
    MissingOption {
        /// The VM's name.
        vm: String,
        /// The missing key.
        key: &'static str,
    },
    /// An option that means nothing for a data module.
    #[error("vm {vm:?}: {key} does not apply to role = \"data\"")]
    NotForData {
        /// The module's name.
        vm: String,
        /// The offending key.
        key: &'static str,
    },
    /// The image file is not there.
    #[error("vm {vm:?}: image {} not found", path.display())]
    MissingImage {
        /// The VM's name.
        vm: String,
        /// The resolved path that does not exist.
        path: PathBuf,
    },
    /// The image path names a directory (or another non-file).
    #[error("vm {vm:?}: image {} is a directory, not a file", path.display())]
    ImageIsDirectory {
        /// The VM's name.
        vm: String,
        /// The resolved path.
        path: PathBuf,
    },
    /// The image exists but cannot be read.
    #[error("vm {vm:?}: cannot read image {}: {error}", path.display())]
    ImageUnreadable {
        /// The VM's name.
        vm: String,
        /// The resolved path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// `modules` names an entry that the config does not have.
    #[error("vm {vm:?}: modules names {module:?}, which is not in this config")]
    UnknownModule {
        /// The VM whose `modules` names it.
        vm: String,
        /// The name.
        module: String,
    },
    /// `modules` names a VM: only data modules can be handed to a kernel.
    #[error(
        "vm {vm:?}: modules names {module:?}, which is a VM, not a data module (role = \"data\")"
    )]
    ModuleIsVm {
        /// The VM whose `modules` names it.
        vm: String,
        /// The other VM's name.
        module: String,
    },
    /// The data module made for a VM's `initrd` would have a name too long.
    #[error(
        "vm {vm:?}: initrd: its data module would be named {module:?}, longer than the \
         {max} characters a name may have; shorten the VM's name"
    )]
    InitrdName {
        /// The VM.
        vm: String,
        /// The data module's name.
        module: String,
        /// The longest name.
        max: usize,
    },
    /// Two entries share a name.
    #[error("vm {name:?} is defined more than once (names must be unique)")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
}

impl Config {
    /// Reads and validates a config file; image paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, path)
    }

    /// Validates config text. `base` resolves relative image paths; `origin` only
    /// names the file in error messages.
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        let hypervisor_cmdline = options::command_line_words(&raw.hypervisor.cmdline)
            .map_err(ConfigError::HypervisorCmdline)?;
        let (_, warnings) = HypervisorOptions::parse(&hypervisor_cmdline.join(" "));
        let hypervisor_warnings = warnings.iter().map(ToString::to_string).collect();

        let mut entries = Vec::with_capacity(raw.vm.len());
        let mut names = HashSet::new();
        let mut initrds = Initrds::default();
        let count = raw.vm.len();
        for (index, entry) in raw.vm.into_iter().enumerate() {
            let (vm, parsed) = validate_vm(entry, index, base, &mut initrds)?;
            if !names.insert(vm.name.clone()) {
                return Err(ConfigError::DuplicateName { name: vm.name });
            }
            entries.push((vm, parsed));
        }
        // The initrds' data modules come after the file's own entries, so
        // that they change no VM's place in the module order.
        for (offset, (module, path)) in initrds.made.into_iter().enumerate() {
            let raw = RawVm::data(module, path);
            let (data, parsed) = validate_vm(raw, count + offset, base, &mut Initrds::default())?;
            if !names.insert(data.name.clone()) {
                return Err(ConfigError::DuplicateName { name: data.name });
            }
            entries.push((data, parsed));
        }
        // A VM may name a data module that comes after it (the kernel finds
        // them the same way), so this waits for the whole file.
        check_modules(&entries)?;
        Ok(Config {
            hypervisor_cmdline,
            hypervisor_warnings,
            vms: entries.into_iter().map(|(vm, _)| vm).collect(),
        })
    }
}

/// The data modules made for `initrd` paths: one per file, named after the
/// first VM that gives it.
#[derive(Default)]
struct Initrds {
    /// The module's name for each file.
    by_path: HashMap<PathBuf, String>,
    /// `(name, file as the config gives it)` in the order they were made;
    /// the data entries made from them resolve the file against the
    /// config's folder as every image is.
    made: Vec<(String, PathBuf)>,
}

impl Initrds {
    /// The data module's name for `vm`'s initrd at `path`, relative to the
    /// config's folder `base`; one file is one module however it is named.
    fn module_for(&mut self, vm: &str, base: &Path, path: &Path) -> Result<String, ConfigError> {
        let key = base.join(path);
        if let Some(name) = self.by_path.get(&key) {
            return Ok(name.clone());
        }
        let name = format!("{vm}-initrd");
        if name.len() > tessera_kernel::options::MAX_NAME_LEN {
            return Err(ConfigError::InitrdName {
                vm: vm.to_owned(),
                module: name,
                max: tessera_kernel::options::MAX_NAME_LEN,
            });
        }
        self.by_path.insert(key, name.clone());
        self.made.push((name.clone(), path.to_path_buf()));
        Ok(name)
    }
}

impl RawVm {
    /// A `role = "data"` entry for `image` named `name`.
    fn data(name: String, image: PathBuf) -> RawVm {
        RawVm {
            name: Some(name),
            image,
            mem: None,
            cmdline: None,
            initrd: None,
            restart: None,
            modules: None,
            cpu: None,
            format: None,
            load: None,
            entry: None,
            mode: None,
            role: Some(NumberOrText::Text("data".into())),
            debug_exit: None,
        }
    }
}

/// Checks one entry on its own and returns it with what the kernel's parser
/// read from its module line. A VM with `modules` or `initrd` has its image
/// loaded later, by [`check_modules`].
fn validate_vm(
    raw: RawVm,
    index: usize,
    base: &Path,
    initrds: &mut Initrds,
) -> Result<(VmSpec, ModuleOptions), ConfigError> {
    let name = match &raw.name {
        Some(name) => name.clone(),
        // Like the kernel's own default, the image's file name, less its extension
        // (which the ISO file name adds back).
        None => raw
            .image
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.split('.').next().unwrap_or(n).to_owned())
            .unwrap_or_default(),
    };
    // GRUB safety first; whether it is a good name is the kernel's parser's call.
    options::plain_token(&name).map_err(|reason| ConfigError::InvalidOption {
        vm: if name.is_empty() {
            format!("#{}", index + 1)
        } else {
            name.clone()
        },
        key: "name",
        reason,
    })?;
    let invalid = |key: &'static str| {
        let vm = name.clone();
        move |reason: SyntaxError| ConfigError::InvalidOption { vm, key, reason }
    };
    // In the order of the module line (grubcfg writes them so). Every value is
    // converted, but the first bad one in this order is the one reported.
    let initrd = match &raw.initrd {
        // A data entry's initrd is refused below, by name.
        Some(path) if !is_data(&raw) => Some(initrds.module_for(&name, base, path)?),
        _ => None,
    };
    type Convert = fn(&NumberOrText) -> Result<String, SyntaxError>;
    let text = |value: &Option<NumberOrText>, convert: Convert| value.as_ref().map(convert);
    let fields: [(&'static str, Option<Result<String, SyntaxError>>); 11] = [
        ("role", text(&raw.role, options::value_text)),
        ("mem", text(&raw.mem, options::size_text)),
        ("format", text(&raw.format, options::value_text)),
        ("load", text(&raw.load, options::address_text)),
        ("entry", text(&raw.entry, options::address_text)),
        ("mode", text(&raw.mode, options::value_text)),
        ("cpu", text(&raw.cpu, options::value_text)),
        ("restart", text(&raw.restart, options::value_text)),
        ("modules", raw.modules.as_deref().map(options::list_text)),
        ("initrd", initrd.map(Ok)),
        ("debug-exit", text(&raw.debug_exit, options::address_text)),
    ];
    let mut module_options = Vec::new();
    for (key, value) in fields {
        if let Some(value) = value {
            module_options.push((key, value.map_err(invalid(key))?));
        }
    }
    let cmdline = raw
        .cmdline
        .as_deref()
        .map(options::command_line_words)
        .transpose()
        .map_err(invalid("cmdline"))?
        .unwrap_or_default();
    let mut spec = VmSpec {
        name,
        image: base.join(&raw.image),
        role: ModuleRole::Vm,
        options: module_options,
        cmdline,
    };

    // The kernel's grammar: exactly what it will parse at boot.
    let line = spec.kernel_cmdline();
    let parsed = ModuleOptions::parse(&line).map_err(|error| ConfigError::Refused {
        vm: spec.name.clone(),
        reason: error.to_string(),
        line: line.clone(),
    })?;
    spec.role = parsed.role;
    match parsed.role {
        ModuleRole::Vm if parsed.mem.is_none() => {
            // The kernel would default to 16 MiB; a config says what it means.
            return Err(ConfigError::MissingOption {
                vm: spec.name,
                key: "mem",
            });
        }
        ModuleRole::Data => {
            // The kernel ignores them on a data module; a config that sets them
            // has most likely mistaken the role.
            let present = [
                ("mem", raw.mem.is_some()),
                ("format", raw.format.is_some()),
                ("load", raw.load.is_some()),
                ("entry", raw.entry.is_some()),
                ("mode", raw.mode.is_some()),
                ("restart", raw.restart.is_some()),
                ("debug-exit", raw.debug_exit.is_some()),
                ("modules", raw.modules.is_some()),
                ("initrd", raw.initrd.is_some()),
                ("cmdline", raw.cmdline.is_some()),
            ];
            if let Some((key, _)) = present.iter().find(|(_, is_set)| *is_set) {
                return Err(ConfigError::NotForData { vm: spec.name, key });
            }
        }
        ModuleRole::Vm => {}
    }
    check_image(&spec, &parsed)?;
    Ok((spec, parsed))
}

/// The image must be a non-empty file, and a VM's image must load into its
/// `mem=` the way the kernel's loader will load it.
fn check_image(spec: &VmSpec, parsed: &ModuleOptions) -> Result<(), ConfigError> {
    let path = &spec.image;
    let vm = || spec.name.clone();
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ConfigError::MissingImage {
            vm: vm(),
            path: path.clone(),
        },
        _ => ConfigError::ImageUnreadable {
            vm: vm(),
            path: path.clone(),
            error,
        },
    })?;
    if !metadata.is_file() {
        return Err(ConfigError::ImageIsDirectory {
            vm: vm(),
            path: path.clone(),
        });
    }
    match (parsed.role, parsed.mem) {
        // It loads with its data modules, which may come later in the file:
        // check_modules runs the dry run once every entry is known.
        (ModuleRole::Vm, Some(_)) if !parsed.modules.is_empty() || parsed.initrd.is_some() => {}
        (ModuleRole::Vm, Some(ram)) => {
            let image = read_image(spec)?;
            boot::dry_run(&image, parsed, &[], ram).map_err(|error| refused(spec, error))?;
        }
        // GRUB loads an empty data module, but nobody can use it.
        _ if metadata.len() == 0 => return Err(refused(spec, loader::LoadError::EmptyImage)),
        _ => {}
    }
    Ok(())
}

/// The bytes of an entry's image (whose metadata [`check_image`] has checked).
fn read_image(spec: &VmSpec) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(&spec.image).map_err(|error| ConfigError::ImageUnreadable {
        vm: spec.name.clone(),
        path: spec.image.clone(),
        error,
    })
}

/// The kernel's loader refused the entry's image (or the firmware tables
/// would not survive it).
fn refused(spec: &VmSpec, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::ImageRefused {
        vm: spec.name.clone(),
        path: spec.image.clone(),
        reason: error.to_string(),
    }
}

/// A data module's bytes and the string its kernel is given with it.
struct DataContents {
    bytes: Vec<u8>,
    cmdline: String,
}

/// What `modules` and `initrd` need from the whole file: each name must be a
/// `role = "data"` entry of this config, and the VM's image must load with
/// those modules into its `mem=` as the kernel's loader will load it — so a
/// module too large for the VM is refused in the kernel's words.
fn check_modules(entries: &[(VmSpec, ModuleOptions)]) -> Result<(), ConfigError> {
    let by_name: HashMap<&str, &VmSpec> = entries
        .iter()
        .map(|(spec, _)| (spec.name.as_str(), spec))
        .collect();
    // Each data module is read once, however many VMs name it.
    let mut contents: HashMap<&str, DataContents> = HashMap::new();
    for (spec, parsed) in entries {
        let names: Vec<&String> = parsed.modules.iter().chain(&parsed.initrd).collect();
        let Some(ram) = parsed.mem.filter(|_| !names.is_empty()) else {
            continue;
        };
        for &module in &names {
            let data = match by_name.get(module.as_str()) {
                None => {
                    return Err(ConfigError::UnknownModule {
                        vm: spec.name.clone(),
                        module: module.clone(),
                    })
                }
                Some(data) if data.role != ModuleRole::Data => {
                    return Err(ConfigError::ModuleIsVm {
                        vm: spec.name.clone(),
                        module: module.clone(),
                    })
                }
                Some(data) => data,
            };
            if let Entry::Vacant(slot) = contents.entry(data.name.as_str()) {
                slot.insert(DataContents {
                    bytes: read_image(data)?,
                    // What the kernel hands over with a data module is the
                    // text after `--` on its module line (kernel/src/vmm/run.rs),
                    // which a config cannot set for role = "data" today.
                    cmdline: data.cmdline.join(" "),
                });
            }
        }
        // Every name was read above; a name missing here would reach the
        // loader, which refuses it as ModuleNotFound rather than panicking.
        let modules: Vec<loader::DataModule> = names
            .iter()
            .filter_map(|name| {
                contents.get(name.as_str()).map(|data| loader::DataModule {
                    name,
                    bytes: &data.bytes,
                    cmdline: &data.cmdline,
                })
            })
            .collect();
        // With the firmware tables, memory map and RSDP the kernel gives it.
        let image = read_image(spec)?;
        boot::dry_run(&image, parsed, &modules, ram).map_err(|error| refused(spec, error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
