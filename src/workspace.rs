//! The tessera repository as the host tool sees it: where it is, and how to
//! build what lives in it (the kernel with cargo, the guest blobs with make).
//!
//! Child builds write their progress to stderr, never to stdout: stdout carries
//! the console transcript, or the kernel path that `tessera kernel` prints for
//! scripts to capture.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The kernel's package and binary name.
pub const KERNEL_PACKAGE: &str = "tessera-kernel";
/// The bare-metal target the kernel is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The workspace root: the directory this tool was compiled from, if it still
/// holds the workspace, else the nearest directory above the current one whose
/// Cargo.toml has a `[workspace]` table.
pub fn root() -> Result<PathBuf> {
    let compiled_from = Path::new(env!("CARGO_MANIFEST_DIR"));
    if is_workspace_root(compiled_from) {
        return Ok(compiled_from.to_owned());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    cwd.ancestors()
        .find(|dir| is_workspace_root(dir))
        .map(Path::to_owned)
        .with_context(|| {
            format!(
                "cannot find the tessera workspace: neither {} nor a directory above {} \
                 has a Cargo.toml with [workspace]",
                compiled_from.display(),
                cwd.display()
            )
        })
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("workspace"))
}

/// Cargo's target directory for the workspace (`CARGO_TARGET_DIR` if set).
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The cargo to run: the one that started us when there is one (same toolchain),
/// else `cargo` from PATH.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Makes sure the toolchain can build for the bare-metal target.
///
/// rustup installs what rust-toolchain.toml names when it installs that
/// toolchain, but not when the toolchain (say `stable`) is already there
/// without the target, as on a fresh Debian machine with rustup's default
/// install. So look for the target's library directory and add it when
/// missing.
pub fn ensure_bare_metal_target(root: &Path) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .current_dir(root)
        .args(["--print", "target-libdir", "--target", KERNEL_TARGET])
        .stdin(Stdio::null())
        .output()
        .context("cannot run rustc")?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if output.status.success() && libdir.is_dir() {
        return Ok(());
    }
    eprintln!("tessera: the Rust target {KERNEL_TARGET} is missing; running `rustup target add {KERNEL_TARGET}`");
    let status = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", KERNEL_TARGET])
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!("`rustup target add {KERNEL_TARGET}` failed ({status})"),
        Err(_) => bail!(
            "the Rust target {KERNEL_TARGET} is not installed and rustup is not available; \
             install it with your toolchain manager"
        ),
    }
}

/// Builds the kernel in release mode and returns the absolute path of its ELF.
pub fn build_kernel(root: &Path) -> Result<PathBuf> {
    ensure_bare_metal_target(root)?;
    eprintln!("tessera: building {KERNEL_PACKAGE} ({KERNEL_TARGET}, release)");
    // The JSON messages name the artifact exactly, wherever the target directory is.
    let mut child = cargo()
        .current_dir(root)
        .args([
            "build",
            "-p",
            KERNEL_PACKAGE,
            "--release",
            "--target",
            KERNEL_TARGET,
        ])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut executable = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        if let Some(path) = kernel_executable(&line) {
            executable = Some(path);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("building the kernel failed ({status}); cargo's messages are above");
    }
    let path = executable.with_context(|| {
        format!("cargo built {KERNEL_PACKAGE} but reported no executable for it")
    })?;
    std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))
}

/// The executable path from one cargo JSON message, if it is the kernel's binary.
fn kernel_executable(message: &str) -> Option<PathBuf> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    if value["reason"] != "compiler-artifact" || value["target"]["name"] != KERNEL_PACKAGE {
        return None;
    }
    value["executable"].as_str().map(PathBuf::from)
}

/// Runs `make -C guest-blobs` when the directory has a Makefile.
pub fn build_guest_blobs(root: &Path) -> Result<()> {
    let dir = root.join("guest-blobs");
    if !dir.join("Makefile").is_file() {
        eprintln!("tessera: no guest-blobs/Makefile, skipping the guest blobs");
        return Ok(());
    }
    crate::deps::ensure(crate::deps::MAKE)?;
    ensure_bare_metal_target(root)?;
    eprintln!("tessera: make -C {}", dir.display());
    let status = Command::new("make")
        .arg("-C")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .context("cannot run make")?;
    if !status.success() {
        bail!("make -C {} failed ({status})", dir.display());
    }
    Ok(())
}

/// The Linux test guest in target/linux/ (guest-blobs/linux/fetch-and-build.sh:
/// the first run downloads the Debian kernel package and busybox-static).
pub fn build_linux_guest(root: &Path) -> Result<()> {
    let script = root.join("guest-blobs/linux/fetch-and-build.sh");
    eprintln!("tessera: {}", script.display());
    let status = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .context("cannot run bash")?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_root_is_this_workspace() {
        let root = root().unwrap();
        assert!(root.join("kernel").is_dir(), "{}", root.display());
        assert!(is_workspace_root(&root));
        assert!(!is_workspace_root(&root.join("kernel")));
    }

    #[test]
    fn picks_the_kernel_artifact_from_cargo_messages() {
        let kernel = r#"{"reason":"compiler-artifact","target":{"name":"tessera-kernel","kind":["bin"]},"executable":"/w/target/x86_64-unknown-none/release/tessera-kernel"}"#;
        assert_eq!(
            kernel_executable(kernel),
            Some(PathBuf::from(
                "/w/target/x86_64-unknown-none/release/tessera-kernel"
            ))
        );
        let library = r#"{"reason":"compiler-artifact","target":{"name":"tessera_kernel","kind":["lib"]},"executable":null}"#;
        assert_eq!(kernel_executable(library), None);
        let other = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(kernel_executable(other), None);
        assert_eq!(kernel_executable("not json"), None);
    }
}
