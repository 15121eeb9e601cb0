//! The vendor-neutral core: VMs, the scheduler, exit handling, hypercalls.
//!
//! Pure parts (compiled and unit-tested on the host): the vCPU seam and
//! the exit enum, the round-robin scheduler, the hypercall ABI and the
//! delivery-loop rule. Machine parts (bare metal only): the VMs
//! built from the boot modules, the loop that runs them, exit handling.

pub mod boot;
pub mod clock;
pub mod delivery_loop;
pub mod exit;
pub mod hypercall;
pub mod platform;
pub mod sched;
pub mod vcpu;

#[cfg(target_os = "none")]
pub mod exit_handler;
#[cfg(target_os = "none")]
pub mod guest_memory;
#[cfg(target_os = "none")]
pub mod hypercall_handler;
#[cfg(target_os = "none")]
pub mod mmio;
#[cfg(target_os = "none")]
pub mod operator;
#[cfg(target_os = "none")]
pub mod port_io;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub mod vm;
#[cfg(target_os = "none")]
pub use run::*;
