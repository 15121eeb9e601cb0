//! The operator's serial console: tessera's own output (the `print!` and
//! `println!` macros, the `log` backend) and the line discipline that turns
//! each VM's bytes into whole, prefixed lines.

pub mod line_buffer;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
pub use serial::*;
