//! The AMD SVM backend (AMD64 Architecture Programmer's Manual, Vol. 2,
//! chapter 15 "Secure Virtual Machine").
//!
//! Pure parts (host-tested): what the CPU offers and whether firmware let
//! it be used (`features`), the intercept maps built with the VMX bitmaps'
//! policy (`permission_maps`), the intercept vectors (`intercepts`), the
//! VMCB layout (`vmcb`), exit-code decoding into the core's `Exit`
//! (`exit_code`) and the nested page-table format (`npt`). Machine parts (bare metal only): turning SVM on (`enable`), the
//! world switch (`entry`), the vCPU behind the core's seam (`vcpu`) and the
//! backend that creates them (`backend`). This is the only module that
//! executes SVM instructions.

pub mod exit_code;
pub mod features;
pub mod intercepts;
pub mod npt;
pub mod permission_maps;
pub mod vmcb;

#[cfg(target_os = "none")]
pub mod backend;
#[cfg(target_os = "none")]
pub mod enable;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod vcpu;
