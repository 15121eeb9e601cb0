//! The operator's serial console: tessera's own output (the `print!` and
//! `println!` macros, the `log` backend) and the line discipline that turns
//! each VM's bytes into whole, prefixed lines; and its input side: which VM
//! or the shell has the focus, the shell's line editor and command parser.
//! The per-VM input queue is the virtual 16550's own receive FIFO and
//! backlog, bounded, which counts what a guest does not read.

pub mod editor;
pub mod focus;
pub mod line_buffer;
#[cfg(target_os = "none")]
mod serial;
pub mod shell;
#[cfg(target_os = "none")]
pub use serial::*;
