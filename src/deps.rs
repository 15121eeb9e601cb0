//! Host programs and files that an action needs, and the Debian packages that
//! provide them.
//!
//! Each action checks only what it uses. When something is missing and the tool
//! runs as root on a machine with apt-get, it installs the packages itself (and
//! says so); otherwise it stops with an error that names the packages.
//! `scripts/install-deps.sh` installs the whole set up front.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Something on the host, and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// An executable looked up on `PATH`.
    Program {
        /// Its name.
        name: &'static str,
        /// The Debian package.
        package: &'static str,
    },
    /// A file or directory at a fixed path.
    File {
        /// The path.
        path: &'static str,
        /// The Debian package.
        package: &'static str,
    },
}

impl Need {
    /// The Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            Need::Program { package, .. } | Need::File { package, .. } => package,
        }
    }

    fn describe(self) -> String {
        match self {
            Need::Program { name, package } => format!("program `{name}` (package {package})"),
            Need::File { path, package } => format!("{path} (package {package})"),
        }
    }

    fn is_present(self) -> bool {
        match self {
            Need::Program { name, .. } => find_program(name),
            Need::File { path, .. } => Path::new(path).exists(),
        }
    }
}

/// What `grub-mkrescue` needs to make a hybrid BIOS + UEFI ISO.
pub const ISO: &[Need] = &[
    Need::Program {
        name: "grub-mkrescue",
        package: "grub-common",
    },
    Need::Program {
        name: "xorriso",
        package: "xorriso",
    },
    // grub-mkrescue builds the EFI system partition image with mtools.
    Need::Program {
        name: "mformat",
        package: "mtools",
    },
    Need::File {
        path: "/usr/lib/grub/i386-pc",
        package: "grub-pc-bin",
    },
    Need::File {
        path: "/usr/lib/grub/x86_64-efi",
        package: "grub-efi-amd64-bin",
    },
];

/// QEMU (TCG or KVM).
pub const QEMU: &[Need] = &[Need::Program {
    name: "qemu-system-x86_64",
    package: "qemu-system-x86",
}];

/// The OVMF firmware for QEMU's UEFI boot.
pub const OVMF: &[Need] = &[
    Need::File {
        path: crate::engine::OVMF_CODE,
        package: "ovmf",
    },
    Need::File {
        path: crate::engine::OVMF_VARS,
        package: "ovmf",
    },
];

/// OVMF as the single flash image that Bochs maps.
pub const OVMF_BOCHS: &[Need] = &[Need::File {
    path: crate::engine::OVMF_COMBINED,
    package: "ovmf",
}];

/// Bochs with its BIOS images, its terminal display and `script` to give it a terminal.
pub const BOCHS: &[Need] = &[
    Need::Program {
        name: "bochs",
        package: "bochs",
    },
    Need::File {
        path: crate::engine::BOCHS_BIOS,
        package: "bochsbios",
    },
    // Debian's bochs ships the VGA BIOS path as a link into the vgabios package.
    Need::File {
        path: "/usr/share/vgabios/vgabios.bin",
        package: "vgabios",
    },
    Need::File {
        path: "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
        package: "bochs-term",
    },
    Need::Program {
        name: "script",
        package: "bsdutils",
    },
];

/// `make` for the guest blobs.
pub const MAKE: &[Need] = &[Need::Program {
    name: "make",
    package: "make",
}];

/// Whether `name` is an executable file in a `PATH` directory.
pub fn find_program(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Makes sure everything in `needs` is present, installing missing packages with
/// apt-get when running as root (unless `TESSERA_NO_INSTALL` is set).
pub fn ensure(needs: &[Need]) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let may_install =
        is_root && std::env::var_os("TESSERA_NO_INSTALL").is_none() && find_program("apt-get");
    ensure_with(needs, may_install)
}

fn ensure_with(needs: &[Need], may_install: bool) -> Result<()> {
    let missing: Vec<Need> = needs.iter().copied().filter(|n| !n.is_present()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: BTreeSet<&str> = missing.iter().map(|n| n.package()).collect();
    let packages: Vec<&str> = packages.into_iter().collect();
    let list: Vec<String> = missing.iter().map(|n| n.describe()).collect();

    if !may_install {
        bail!(
            "missing on this host: {}\ninstall with: sudo apt-get install -y {}\n\
             (or run scripts/install-deps.sh)",
            list.join(", "),
            packages.join(" ")
        );
    }

    eprintln!("tessera: missing {}", list.join(", "));
    eprintln!(
        "tessera: running apt-get update && apt-get install -y {}",
        packages.join(" ")
    );
    apt_get(&["update"])?;
    let mut install = vec!["install", "-y"];
    install.extend(&packages);
    apt_get(&install)?;

    let still: Vec<String> = missing
        .iter()
        .filter(|n| !n.is_present())
        .map(|n| n.describe())
        .collect();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

/// apt-get's options to wait up to 10 minutes for a lock another apt holds.
const APT_LOCK_WAIT: &[&str] = &["-o", "DPkg::Lock::Timeout=600"];

fn apt_get(args: &[&str]) -> Result<()> {
    // apt's output goes to stderr: stdout belongs to the console transcript
    // (or to the kernel path that `tessera kernel` prints).
    // Another apt-get (unattended-upgrades, a second tool run) may hold the
    // dpkg lock for a while: wait for it rather than fail at once.
    let status = Command::new("apt-get")
        .args(APT_LOCK_WAIT)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Debian package the host tool can ask for.
    fn all_packages() -> BTreeSet<&'static str> {
        [ISO, QEMU, OVMF, OVMF_BOCHS, BOCHS, MAKE]
            .iter()
            .flat_map(|needs| needs.iter().map(|need| need.package()))
            .collect()
    }

    fn repository_file(path: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
    }

    #[test]
    fn the_install_script_installs_every_package() {
        let script = repository_file("scripts/install-deps.sh");
        for package in all_packages() {
            let listed = script
                .split(|c: char| c.is_whitespace() || c == '"' || c == '\\')
                .any(|word| word == package);
            assert!(listed, "scripts/install-deps.sh does not install {package}");
        }
        assert!(repository_file(".ci/run").contains("scripts/install-deps.sh"));
        // Both wait for a dpkg lock that another apt-get holds.
        assert!(script.contains("DPkg::Lock::Timeout=600"));
        assert_eq!(APT_LOCK_WAIT, ["-o", "DPkg::Lock::Timeout=600"]);
    }

    #[test]
    fn the_package_set_matches_the_documented_one() {
        let expected = [
            "bochs",
            "bochs-term",
            "bochsbios",
            "bsdutils",
            "grub-common",
            "grub-efi-amd64-bin",
            "grub-pc-bin",
            "make",
            "mtools",
            "ovmf",
            "qemu-system-x86",
            "vgabios",
            "xorriso",
        ];
        assert_eq!(all_packages().into_iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_program("sh"));
        assert!(!find_program("tessera-surely-not-a-program"));
    }

    #[test]
    fn a_missing_need_names_its_package() {
        let error = ensure_with(
            &[
                Need::File {
                    path: "/nonexistent/tessera/firmware.fd",
                    package: "fake-firmware",
                },
                Need::Program {
                    name: "tessera-no-such-program",
                    package: "fake-tools",
                },
                Need::File {
                    path: "/",
                    package: "base-files",
                },
            ],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("/nonexistent/tessera/firmware.fd"),
            "{error}"
        );
        assert!(error.contains("`tessera-no-such-program`"), "{error}");
        assert!(
            error.contains("apt-get install -y fake-firmware fake-tools"),
            "{error}"
        );
        assert!(!error.contains("base-files"), "{error}");
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() {
        assert!(ensure(&[Need::File {
            path: "/",
            package: "base-files"
        }])
        .is_ok());
    }
}
