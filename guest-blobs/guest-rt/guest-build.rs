//! The build script of every Rust guest (each guest's Cargo.toml names this
//! file as `build`): link with guest-rt's linker script, as a fixed-address
//! executable with only PT_LOAD (and PT_GNU_STACK) headers. `-no-pie` makes
//! the image ET_EXEC whatever relocation model the code was compiled with, so
//! a RUSTFLAGS override cannot turn it into a PIE.
fn main() {
    let guest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let script = std::path::Path::new(&guest_dir).join("../guest-rt/linker.ld");
    let script = script.canonicalize().expect("guest-rt/linker.ld exists");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    // No PT_GNU_RELRO: nothing would ever make it read-only.
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rerun-if-changed={}", script.display());
}
