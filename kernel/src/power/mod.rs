//! Powering the machine off and resetting it: the `\_S5` sleep-type parser
//! (pure) and the hardware paths that use it.

pub mod acpi_sleep;
#[cfg(target_os = "none")]
mod control;
#[cfg(target_os = "none")]
pub use control::*;
