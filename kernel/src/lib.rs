//! tessera, a bare-metal type-1 hypervisor for x86-64: everything but the
//! boot entry.
//!
//! One module per concept; inside each, the **pure** files compute and are
//! compiled and unit-tested on the host by `cargo test`, the **machine** files
//! act on the hardware and exist only for the bare-metal target
//! (`#[cfg(target_os = "none")]`). The binary (`main.rs`, `boot/`) holds the
//! Multiboot2 entry and calls into this crate.
//!
//! | module    | pure                                                  | machine                                          |
//! |-----------|-------------------------------------------------------|--------------------------------------------------|
//! | `vmm`     | the vCPU seam and exit enum, scheduler, hypercall ABI, delivery-loop rule | VMs, the run loop, exit and hypercall handling, port I/O, the operator console |
//! | `rules`   | what an exit's outcome is: CR/EFER/XCR0/MSR/CPUID, I/O decoding, string-I/O addressing, MMIO instruction decoding and its ALU flags | |
//! | `devices` | port/MMIO device traits, the bus, interrupt lines, the 16550A |                                          |
//! | `firmware` | the guest's ACPI and MP tables, BIOS data area and memory map; the platform's fixed layout (`firmware/layout.rs`) |  |
//! | `vmx`     | control reconciliation, exit reasons, EPT             | VMXON, VMCS, VmxVcpu and VmxBackend, entry/exit, decoding |
//! | `svm`     | features, VMCB layout, intercepts, permission maps, exit codes, NPT | enabling, VMRUN entry/exit, SvmVcpu and SvmBackend |
//! | `mm`      | physical ranges, the page-table builder               | frame allocator, heap                            |
//! | `loader`  | guest image formats                                   |                                                  |
//! | `console` | the per-VM line discipline; input focus (Ctrl-A x3), the shell's line editor and command parser | COM1 output and input, `println!`, the `log` backend |
//! | `power`   | the ACPI `\_S5` parser                                | power-off and reset                              |
//! | `arch`    | the general-register file                             | GDT/TSS/IDT, per-CPU state, host paging, CPU, TSC, the host timer, XSAVE areas |
//!
//! Citations: "SDM" is the Intel 64 and IA-32 Architectures Software
//! Developer's Manual in its editions since 2024 (order number 325462-084US,
//! June 2024), which number paging Vol. 3A chapter 5, interrupts chapter 7,
//! and the VMX chapters of Vol. 3C 25 (VMX operation, VMXON), 26 (VMCS), 27
//! (VMX non-root operation), 28 (VM entries), 29 (VM exits), 30 (EPT and
//! VPIDs) and 32 (VMX instruction reference); cited as "SDM Vol. 3C,
//! 28.3.1" (volume, section) or "Table 29-5". "APM" is the AMD64
//! Architecture Programmer's Manual, publication 24593, cited as "APM
//! Vol. 2, 15.5".

#![no_std]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;
#[cfg(test)]
extern crate std;

#[macro_use]
pub mod console;

pub mod arch;
pub mod devices;
pub mod firmware;
pub mod guest_walk;
pub mod loader;
pub mod mm;
pub mod options;
pub mod power;
pub mod rules;
pub mod size;
pub mod svm;
pub mod vmm;
pub mod vmx;
