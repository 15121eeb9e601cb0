//! The Intel VMX backend: turning VMX on, the VMCS, EPT, entry and exit.
//!
//! Pure parts (host-tested): control reconciliation against the capability
//! MSRs, the exit-reason table, the EPT builder. Machine parts (bare metal
//! only): VMXON (`vmxon`), the typed VMCS (`vmcs`), what a fresh VMCS holds
//! (`setup`), the vCPU that implements the core's seam (`vcpu`), the backend
//! that creates them (`backend`), the entry/exit stub (`entry`), exit
//! decoding (`decode`). This is the only module that executes VMX
//! instructions.

pub mod controls;
pub mod ept;
pub mod exit_reason;

#[cfg(target_os = "none")]
pub mod backend;
#[cfg(target_os = "none")]
pub mod capabilities;
#[cfg(target_os = "none")]
pub mod decode;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
mod setup;
#[cfg(target_os = "none")]
pub mod vcpu;
#[cfg(target_os = "none")]
pub mod vmcs;
#[cfg(target_os = "none")]
mod vmxon;
#[cfg(target_os = "none")]
pub use vmxon::*;
