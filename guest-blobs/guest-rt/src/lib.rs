//! guest-rt: what every Rust guest of tessera shares — the `_start` entry glue,
//! the hypercall ABI, `print!`/`println!` over the hypercall console, the
//! panic handler, and an optional exception table with probes for
//! instructions expected to fault ([`idt`], [`probe!`]). A guest is then a
//! `no_std`, `no_main` binary that names its main function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! guest_rt::entry!(main);
//! fn main() -> u64 {
//!     guest_rt::println!("hi");
//!     0 // the exit code, handed to the EXIT hypercall
//! }
//! ```
//!
//! It owns nothing of the hypervisor: it only issues hypercalls, whose numbers
//! and semantics are documented in `guest-blobs/README.md`.
#![no_std]

pub mod console;
pub mod hypercall;
pub mod idt;
pub mod report;
mod start;

pub use hypercall::{exit, vm_info, yield_now, Error, VmInfo};

/// The exit code a guest reports when it panics (Rust's own convention).
pub const PANIC_EXIT_CODE: u64 = 101;

/// Names the guest's main function, `fn() -> u64`, whose result becomes the
/// exit code passed to the EXIT hypercall.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[export_name = "guest_rt_main"]
        fn __guest_rt_main() -> u64 {
            let main: fn() -> u64 = $main;
            main()
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {info}");
    exit(PANIC_EXIT_CODE)
}
