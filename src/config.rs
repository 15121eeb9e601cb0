//! The VM config file (`vms.toml`): parsing, validation, and the checked model
//! that the ISO builder and the grub.cfg renderer work from.
//!
//! Everything that can be wrong with a config is found here, before any file is
//! copied or any external program runs. Option *syntax* lives in [`crate::options`];
//! this module adds what needs the whole file: names, images on disk, references
//! between VMs. It does not render GRUB syntax.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::options::{self, Format, Mode, NumberOrText, Restart, Role, SyntaxError};

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
    initrd: Option<String>,
    restart: Option<String>,
    cpu: Option<NumberOrText>,
    format: Option<String>,
    load: Option<NumberOrText>,
    entry: Option<NumberOrText>,
    mode: Option<String>,
    role: Option<String>,
}

/// A validated config: every value is known to be well-formed and GRUB-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The hypervisor's command line, split into words.
    pub hypervisor_cmdline: Vec<String>,
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
    /// A VM or a data module.
    pub role: Role,
    /// `mem=` as it goes on the module line.
    pub mem: Option<String>,
    /// `format=`.
    pub format: Option<Format>,
    /// `load=` as it goes on the module line.
    pub load: Option<String>,
    /// `entry=` as it goes on the module line.
    pub entry: Option<String>,
    /// `mode=`.
    pub mode: Option<Mode>,
    /// `cpu=` as it goes on the module line.
    pub cpu: Option<String>,
    /// `restart=`.
    pub restart: Option<Restart>,
    /// `initrd=`: the name of a data module.
    pub initrd: Option<String>,
    /// The guest's own command line, split into words (after `--` on the module line).
    pub cmdline: Vec<String>,
}

impl VmSpec {
    /// The image's file name inside the ISO's `/guests` directory: the VM's name
    /// plus the image's extension, so that two VMs may share one host file.
    pub fn iso_file_name(&self) -> String {
        format!("{}{}", self.name, image_extension(&self.image))
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
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or keys/types that do not belong (the message names the key).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// `[hypervisor] cmdline` is malformed.
    #[error("[hypervisor] cmdline: {0}")]
    HypervisorCmdline(SyntaxError),
    /// An option of one VM is malformed.
    #[error("vm {vm:?}: {key}: {reason}")]
    InvalidOption {
        /// The VM's name (or its position, when the name itself is bad).
        vm: String,
        /// The key in the `[[vm]]` table.
        key: &'static str,
        /// What is wrong with it.
        reason: SyntaxError,
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
    /// Two entries share a name.
    #[error("vm {name:?} is defined more than once (names must be unique)")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// `initrd=` names no data module.
    #[error("vm {vm:?}: initrd {initrd:?} {problem}")]
    BadInitrd {
        /// The VM's name.
        vm: String,
        /// The referenced name.
        initrd: String,
        /// What is wrong with the reference.
        problem: InitrdProblem,
    },
}

/// Why an `initrd=` reference is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdProblem {
    /// No `[[vm]]` has that name.
    NoSuchModule,
    /// The named module is a VM, not data.
    NotData,
}

impl fmt::Display for InitrdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSuchModule => "names no [[vm]] entry",
            Self::NotData => "names a module without role = \"data\"",
        })
    }
}

impl Config {
    /// Reads and validates a config file; image paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
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

        let mut vms = Vec::with_capacity(raw.vm.len());
        let mut names = HashSet::new();
        for (index, entry) in raw.vm.into_iter().enumerate() {
            let vm = validate_vm(entry, index, base)?;
            if !names.insert(vm.name.clone()) {
                return Err(ConfigError::DuplicateName { name: vm.name });
            }
            vms.push(vm);
        }
        check_initrd_references(&vms)?;
        Ok(Config {
            hypervisor_cmdline,
            vms,
        })
    }
}

fn validate_vm(raw: RawVm, index: usize, base: &Path) -> Result<VmSpec, ConfigError> {
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
    options::vm_name(&name).map_err(|reason| ConfigError::InvalidOption {
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

    let role = raw
        .role
        .as_deref()
        .map(Role::parse)
        .transpose()
        .map_err(invalid("role"))?
        .unwrap_or(Role::Vm);
    let mem = raw
        .mem
        .as_ref()
        .map(options::memory_size_value)
        .transpose()
        .map_err(invalid("mem"))?;
    let format = raw
        .format
        .as_deref()
        .map(Format::parse)
        .transpose()
        .map_err(invalid("format"))?;
    let load = raw
        .load
        .as_ref()
        .map(options::address_value)
        .transpose()
        .map_err(invalid("load"))?;
    let entry = raw
        .entry
        .as_ref()
        .map(options::address_value)
        .transpose()
        .map_err(invalid("entry"))?;
    let mode = raw
        .mode
        .as_deref()
        .map(Mode::parse)
        .transpose()
        .map_err(invalid("mode"))?;
    let cpu = raw
        .cpu
        .as_ref()
        .map(options::cpu_value)
        .transpose()
        .map_err(invalid("cpu"))?;
    let restart = raw
        .restart
        .as_deref()
        .map(Restart::parse)
        .transpose()
        .map_err(invalid("restart"))?;
    let initrd = raw
        .initrd
        .as_deref()
        .map(|value| options::vm_name(value).map(str::to_owned))
        .transpose()
        .map_err(invalid("initrd"))?;
    let cmdline = raw
        .cmdline
        .as_deref()
        .map(options::command_line_words)
        .transpose()
        .map_err(invalid("cmdline"))?;

    match role {
        Role::Vm if mem.is_none() => {
            return Err(ConfigError::MissingOption {
                vm: name,
                key: "mem",
            })
        }
        Role::Data => {
            let present = [
                ("mem", raw.mem.is_some()),
                ("format", raw.format.is_some()),
                ("load", raw.load.is_some()),
                ("entry", raw.entry.is_some()),
                ("mode", raw.mode.is_some()),
                ("cpu", raw.cpu.is_some()),
                ("restart", raw.restart.is_some()),
                ("initrd", raw.initrd.is_some()),
                ("cmdline", raw.cmdline.is_some()),
            ];
            if let Some((key, _)) = present.iter().find(|(_, is_set)| *is_set) {
                return Err(ConfigError::NotForData { vm: name, key });
            }
        }
        Role::Vm => {}
    }

    let image = base.join(&raw.image);
    if !image.is_file() {
        return Err(ConfigError::MissingImage {
            vm: name,
            path: image,
        });
    }

    Ok(VmSpec {
        name,
        image,
        role,
        mem,
        format,
        load,
        entry,
        mode,
        cpu,
        restart,
        initrd,
        cmdline: cmdline.unwrap_or_default(),
    })
}

fn check_initrd_references(vms: &[VmSpec]) -> Result<(), ConfigError> {
    for vm in vms {
        let Some(initrd) = &vm.initrd else { continue };
        let problem = match vms.iter().find(|other| &other.name == initrd) {
            None => InitrdProblem::NoSuchModule,
            Some(other) if other.role != Role::Data => InitrdProblem::NotData,
            Some(_) => continue,
        };
        return Err(ConfigError::BadInitrd {
            vm: vm.name.clone(),
            initrd: initrd.clone(),
            problem,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
