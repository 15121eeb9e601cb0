//! Renders the ISO's grub.cfg from the template in `grub/grub.cfg.in`.
//!
//! This is the one place that writes GRUB script. Values arrive validated from
//! [`crate::config`], but the renderer checks again that every value it emits
//! bare is a plain GRUB word, so that no config — or future caller that builds a
//! [`VmSpec`] by hand — can smuggle GRUB syntax into the boot menu.

use crate::config::{Config, VmSpec};
use crate::options;

/// The template, compiled into the tool so that an installed binary needs no
/// repository checkout to make an ISO.
pub const TEMPLATE: &str = include_str!("../grub/grub.cfg.in");

/// Where the hypervisor's ELF sits in the ISO (the template names it too).
pub const KERNEL_ISO_PATH: &str = "boot/tessera.elf";
/// Where grub.cfg sits in the ISO.
pub const GRUB_CFG_ISO_PATH: &str = "boot/grub/grub.cfg";
/// The ISO directory that holds the guest images.
pub const GUESTS_ISO_DIR: &str = "guests";

const HYPERVISOR_CMDLINE: &str = "@HYPERVISOR_CMDLINE@";
const MODULES: &str = "@MODULES@";

/// Why grub.cfg could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template lacks a placeholder or has it more than once.
    #[error(
        "grub.cfg template: placeholder {placeholder} must appear exactly once, found {count}"
    )]
    Placeholder {
        /// The placeholder, with its at-signs.
        placeholder: &'static str,
        /// How often it was found.
        count: usize,
    },
    /// The template has an `@NAME@` that the renderer does not know.
    #[error("grub.cfg template: unknown placeholder {0}")]
    UnknownPlaceholder(String),
    /// A value would not be a plain GRUB word.
    #[error("{what}: {value:?} cannot be written safely into grub.cfg")]
    UnsafeValue {
        /// Which value (VM and key).
        what: String,
        /// The value.
        value: String,
    },
}

/// Renders `template` for `config`.
pub fn render(template: &str, config: &Config) -> Result<String, RenderError> {
    for placeholder in [HYPERVISOR_CMDLINE, MODULES] {
        let count = template.matches(placeholder).count();
        if count != 1 {
            return Err(RenderError::Placeholder { placeholder, count });
        }
    }
    let cmdline = command_line("[hypervisor] cmdline", &config.hypervisor_cmdline)?;
    let modules = config
        .vms
        .iter()
        .map(module_line)
        .collect::<Result<Vec<_>, _>>()?;

    let mut out = String::with_capacity(template.len() + 128 * modules.len());
    for line in template.lines() {
        if let Some(at) = line.find(MODULES) {
            // The placeholder stands on a line of its own; each module line takes
            // its indentation, and zero modules leave no blank line behind.
            let indent = &line[..at];
            for module in &modules {
                out.push_str(indent);
                out.push_str(module);
                out.push('\n');
            }
        } else {
            out.push_str(line.replace(HYPERVISOR_CMDLINE, &cmdline).trim_end());
            out.push('\n');
        }
    }
    if let Some(unknown) = leftover_placeholder(&out) {
        return Err(RenderError::UnknownPlaceholder(unknown));
    }
    Ok(out)
}

/// The `module2` line for one VM: path, `name=`, the other options in the
/// config's fixed order, then `--` and the guest's command line.
pub fn module_line(vm: &VmSpec) -> Result<String, RenderError> {
    let file_name = vm.iso_file_name();
    let mut line = format!(
        "module2 /{GUESTS_ISO_DIR}/{}",
        plain(&vm.name, "file name", &file_name)?
    );
    let mut option = |key: &str, value: Option<&str>| -> Result<(), RenderError> {
        if let Some(value) = value {
            line.push_str(&format!(" {key}={}", plain(&vm.name, key, value)?));
        }
        Ok(())
    };
    // The same words, in the same order, as `VmSpec::kernel_cmdline`, which the
    // config checked with the kernel's parser.
    option("name", Some(&vm.name))?;
    for (key, value) in &vm.options {
        option(key, Some(value))?;
    }
    if !vm.cmdline.is_empty() {
        line.push_str(" -- ");
        line.push_str(&command_line(
            &format!("vm {:?}: cmdline", vm.name),
            &vm.cmdline,
        )?);
    }
    Ok(line)
}

fn plain<'a>(vm: &str, key: &str, value: &'a str) -> Result<&'a str, RenderError> {
    options::plain_token(value).map_err(|_| RenderError::UnsafeValue {
        what: format!("vm {vm:?}: {key}"),
        value: value.to_owned(),
    })
}

/// Command-line words as GRUB words. GRUB joins them with single spaces again.
fn command_line(what: &str, words: &[String]) -> Result<String, RenderError> {
    let mut out = Vec::with_capacity(words.len());
    for word in words {
        // The same rule the config applies; repeated because a quote inside a
        // word would end GRUB's single-quoted string early.
        let checked = options::command_line_words(word).map_err(|_| RenderError::UnsafeValue {
            what: what.to_owned(),
            value: word.clone(),
        })?;
        if checked.len() != 1 {
            return Err(RenderError::UnsafeValue {
                what: what.to_owned(),
                value: word.clone(),
            });
        }
        out.push(options::grub_word(word));
    }
    Ok(out.join(" "))
}

/// The first `@NAME@` (upper-case letters and underscores) left in the text.
fn leftover_placeholder(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = text[start..].find('@') {
        let open = start + offset;
        let name_len = bytes[open + 1..]
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || **b == b'_')
            .count();
        let close = open + 1 + name_len;
        if name_len > 0 && bytes.get(close) == Some(&b'@') {
            return Some(text[open..=close].to_owned());
        }
        start = open + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tessera_kernel::options::ModuleRole;

    fn vm(name: &str, image: &str, mem: &str) -> VmSpec {
        VmSpec {
            name: name.into(),
            image: PathBuf::from(image),
            role: ModuleRole::Vm,
            options: vec![("mem", mem.into())],
            cmdline: vec![],
        }
    }

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn renders_the_shipped_template() {
        let mut beta = vm("beta", "/x/beta.elf", "2M");
        beta.cmdline = words("guest args here");
        let config = Config {
            hypervisor_cmdline: words("log=debug timeslice=10ms"),
            hypervisor_warnings: vec![],
            vms: vec![vm("alpha", "/x/alpha.bin", "1M"), beta],
        };
        let cfg = render(TEMPLATE, &config).unwrap();
        assert!(cfg.contains("\n    multiboot2 /boot/tessera.elf log=debug timeslice=10ms\n"));
        assert!(cfg.contains(
            "\n    module2 /guests/alpha.bin name=alpha mem=1M\n    \
             module2 /guests/beta.elf name=beta mem=2M -- guest args here\n    boot\n"
        ));
        assert!(cfg.contains("set timeout=0"));
        assert!(cfg.contains("set timeout_style=hidden"));
        assert!(cfg.contains("serial --unit=0 --speed=115200"));
        assert!(cfg.contains("terminal_output serial console"));
        assert!(!cfg.contains('@'), "no placeholder may survive:\n{cfg}");
        assert!(cfg.contains(&format!("/{KERNEL_ISO_PATH} ")));
    }

    #[test]
    fn zero_vms_and_an_empty_cmdline_leave_clean_lines() {
        let config = Config {
            hypervisor_cmdline: vec![],
            hypervisor_warnings: vec![],
            vms: vec![],
        };
        let cfg = render(TEMPLATE, &config).unwrap();
        assert!(
            cfg.contains("\n    multiboot2 /boot/tessera.elf\n    boot\n"),
            "{cfg}"
        );
    }

    #[test]
    fn options_come_in_the_configs_order() {
        let mut spec = vm("k", "/x/k", "8M");
        spec.options.extend([
            ("format", "raw".into()),
            ("load", "0x100000".into()),
            ("entry", "0x100010".into()),
            ("mode", "long".into()),
            ("restart", "on-crash".into()),
        ]);
        spec.cmdline = words("a b");
        assert_eq!(
            module_line(&spec).unwrap(),
            "module2 /guests/k name=k mem=8M format=raw load=0x100000 entry=0x100010 \
             mode=long restart=on-crash -- a b"
        );
        assert_eq!(
            format!("module2 /guests/k {}", spec.kernel_cmdline()),
            module_line(&spec).unwrap(),
            "grub.cfg and the line the config checked with the kernel's parser differ"
        );
        let data = VmSpec {
            role: ModuleRole::Data,
            options: vec![("role", "data".into())],
            ..vm("rootfs", "/x/rootfs.cpio.gz", "")
        };
        assert_eq!(
            module_line(&data).unwrap(),
            "module2 /guests/rootfs.cpio.gz name=rootfs role=data"
        );
    }

    #[test]
    fn guest_words_with_grub_syntax_are_single_quoted() {
        let mut spec = vm("a", "/x/a.bin", "1M");
        spec.cmdline = words("x=$y a;b {c} #d plain");
        assert_eq!(
            module_line(&spec).unwrap(),
            "module2 /guests/a.bin name=a mem=1M -- 'x=$y' 'a;b' '{c}' '#d' plain"
        );
    }

    #[test]
    fn injection_through_hand_built_values_is_refused() {
        let mut spec = vm("a", "/x/a.bin", "1M; reboot");
        assert!(matches!(
            module_line(&spec),
            Err(RenderError::UnsafeValue { .. })
        ));
        spec.options = vec![("mem", "1M".into())];
        spec.cmdline = vec!["x' ; reboot ; echo '".into()];
        assert!(matches!(
            module_line(&spec),
            Err(RenderError::UnsafeValue { .. })
        ));
        spec.cmdline = vec!["two words".into()];
        assert!(matches!(
            module_line(&spec),
            Err(RenderError::UnsafeValue { .. })
        ));
        spec.cmdline = vec![];
        spec.name = "a\nboot".into();
        assert!(matches!(
            module_line(&spec),
            Err(RenderError::UnsafeValue { .. })
        ));
        let config = Config {
            hypervisor_cmdline: vec!["log=info\n}\nmenuentry x {".into()],
            hypervisor_warnings: vec![],
            vms: vec![],
        };
        assert!(matches!(
            render(TEMPLATE, &config),
            Err(RenderError::UnsafeValue { .. })
        ));
    }

    #[test]
    fn template_placeholders_are_checked() {
        let config = Config {
            hypervisor_cmdline: vec![],
            hypervisor_warnings: vec![],
            vms: vec![],
        };
        assert_eq!(
            render("@MODULES@\n", &config),
            Err(RenderError::Placeholder {
                placeholder: HYPERVISOR_CMDLINE,
                count: 0
            })
        );
        assert_eq!(
            render("@HYPERVISOR_CMDLINE@ @MODULES@ @MODULES@\n", &config),
            Err(RenderError::Placeholder {
                placeholder: MODULES,
                count: 2
            })
        );
        assert_eq!(
            render("x @HYPERVISOR_CMDLINE@ @TYPO@\n@MODULES@\n", &config),
            Err(RenderError::UnknownPlaceholder("@TYPO@".into()))
        );
    }

    #[test]
    fn an_email_like_at_is_not_a_placeholder() {
        assert_eq!(leftover_placeholder("user@host @ x"), None);
        assert_eq!(leftover_placeholder("a @B_C@ d"), Some("@B_C@".into()));
    }
}
