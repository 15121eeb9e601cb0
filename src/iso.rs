//! Builds the bootable ISO: stages the tree that GRUB will see and runs
//! `grub-mkrescue` over it.
//!
//! ISO layout:
//!
//! ```text
//! /boot/tessera.elf        the hypervisor
//! /boot/grub/grub.cfg      rendered from grub/grub.cfg.in
//! /guests/<name><ext>      one file per [[vm]] entry
//! ```
//!
//! grub-mkrescue puts every GRUB platform installed under /usr/lib/grub into the
//! image; with grub-pc-bin and grub-efi-amd64-bin that is a hybrid ISO for BIOS
//! and UEFI, from a CD or a USB stick. The result is checked for both boot images.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::grubcfg;

/// Builds `out` from `config` with the kernel ELF at `kernel`.
pub fn build(config: &Config, kernel: &Path, out: &Path) -> Result<()> {
    crate::deps::ensure(crate::deps::ISO)?;
    if !kernel.is_file() {
        bail!("kernel {} not found", kernel.display());
    }
    warn_unless_multiboot2(kernel);

    let grub_cfg = grubcfg::render(grubcfg::TEMPLATE, config)?;
    let stage = tempfile::Builder::new()
        .prefix("tessera-iso-")
        .tempdir()
        .context("cannot create a staging directory")?;
    let root = stage.path();
    copy(kernel, &root.join(grubcfg::KERNEL_ISO_PATH))?;
    let cfg_path = root.join(grubcfg::GRUB_CFG_ISO_PATH);
    std::fs::create_dir_all(cfg_path.parent().expect("grub.cfg has a directory"))?;
    std::fs::write(&cfg_path, &grub_cfg)
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let guests = root.join(grubcfg::GUESTS_ISO_DIR);
    std::fs::create_dir_all(&guests)?;
    for vm in &config.vms {
        copy(&vm.image, &guests.join(vm.iso_file_name()))?;
    }

    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // Written under a temporary name and renamed, so that a failed build never
    // leaves a half-written ISO where a good one is expected.
    let partial = out.with_extension("iso.partial");
    let result = make_rescue(root, &partial).and_then(|()| check_boot_images(&partial));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;

    let names: Vec<&str> = config.vms.iter().map(|vm| vm.name.as_str()).collect();
    eprintln!(
        "tessera: wrote {} ({} module{}{}{})",
        out.display(),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        if names.is_empty() { "" } else { ": " },
        names.join(", ")
    );
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// GRUB refuses a kernel without a Multiboot2 header only at boot time; say so now.
/// A warning, not an error: a deliberately broken kernel is how GRUB's failure
/// path gets tested.
fn warn_unless_multiboot2(kernel: &Path) {
    let verdict = Command::new("grub-file")
        .arg("--is-x86-multiboot2")
        .arg(kernel)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Ok(status) = verdict {
        if !status.success() {
            eprintln!(
                "tessera: warning: {} has no Multiboot2 header; GRUB will not boot it",
                kernel.display()
            );
        }
    }
}

pub fn make_rescue(tree: &Path, out: &Path) -> Result<()> {
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(tree)
        .stdin(Stdio::null())
        .output()
        .context("cannot run grub-mkrescue")?;
    if !output.status.success() {
        // xorriso is chatty when it works; its output is only worth showing now.
        bail!(
            "grub-mkrescue failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Asks xorriso which El Torito boot images the ISO has; both BIOS and UEFI must be there.
fn check_boot_images(iso: &Path) -> Result<()> {
    let output = Command::new("xorriso")
        .arg("-indev")
        .arg(iso)
        .args(["-report_el_torito", "plain"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run xorriso")?;
    let report = String::from_utf8_lossy(&output.stdout);
    let missing = missing_platforms(&report);
    if !missing.is_empty() {
        bail!(
            "{} lacks the {} boot image(s); are grub-pc-bin and grub-efi-amd64-bin installed?\n{}",
            iso.display(),
            missing.join(" and "),
            report.trim_end()
        );
    }
    Ok(())
}

/// The platforms (of BIOS, UEFI) without a boot image in an xorriso El Torito report.
fn missing_platforms(report: &str) -> Vec<&'static str> {
    let platform_present = |platform: &str| {
        report.lines().any(|line| {
            line.starts_with("El Torito boot img")
                && line.split_whitespace().any(|word| word == platform)
        })
    };
    ["BIOS", "UEFI"]
        .into_iter()
        .filter(|platform| !platform_present(platform))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xorriso_boot_image_reports() {
        let hybrid = "\
El Torito catalog  : 1628  1
El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA
El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4        2974
El Torito boot img :   2  UEFI  y   none  0x0000  0x00   5760          73
El Torito img path :   1  /boot/grub/i386-pc/eltorito.img
";
        assert!(missing_platforms(hybrid).is_empty());
        let bios_only = hybrid.replace("  UEFI  ", "  ????  ");
        assert_eq!(missing_platforms(&bios_only), ["UEFI"]);
        assert_eq!(missing_platforms(""), ["BIOS", "UEFI"]);
    }
}
