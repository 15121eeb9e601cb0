//! tessera's pure logic: everything that can be decided without touching the
//! hardware lives here, so that it compiles for the host and is unit-tested by
//! `cargo test`. The binary (`main.rs`) holds the thin hardware layer.
//!
//! Nothing in this crate may execute privileged instructions or dereference
//! physical addresses: it computes, the kernel binary acts.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod acpi_sleep;
pub mod controls;
pub mod ept;
pub mod exit_reason;
pub mod guest_walk;
pub mod hypercall;
pub mod line_buffer;
pub mod loader;
pub mod options;
pub mod paging;
pub mod phys;
pub mod rules;
pub mod sched;
pub mod size;
