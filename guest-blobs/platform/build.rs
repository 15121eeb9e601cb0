//! Links platform with its own linker script (one loadable segment that
//! the Multiboot header's a.out-kludge addresses describe) as a fixed-address
//! executable, like the other guests (see ../guest-rt/guest-build.rs).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let script = std::path::Path::new(&dir).join("linker.ld");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rerun-if-changed={}", script.display());
}
