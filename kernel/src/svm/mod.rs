//! The AMD SVM backend (AMD64 Architecture Programmer's Manual, Vol. 2,
//! chapter 15 "Secure Virtual Machine"). So far: what the CPU offers and
//! whether firmware let it be used, for the CPU report (pure, host-tested).
//! The backend behind the core's `Vcpu` seam comes next; its intercept
//! maps, built with the VMX bitmaps' policy, are here already.

pub mod features;
pub mod permission_maps;
