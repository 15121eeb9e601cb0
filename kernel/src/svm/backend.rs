//! The SVM backend as the core sees it: what VM creation needs of AMD
//! hardware — nested page tables per VM, the IOPM and MSRPM shared by all
//! VMs, an ASID and a VMCB per vCPU.

use super::enable::SvmCpu;
use super::exit_code::DecodeFeatures;
use super::npt;
use super::permission_maps::{fill_iopm, fill_msrpm, IOPM_BYTES, MSRPM_BYTES};
use super::vcpu::{SvmShared, SvmVcpu, MAX_ASIDS};
use crate::mm::phys::PhysRange;
use crate::rules::bits::cr4;
use crate::vmm::guest_memory::OwnedFrames;
use crate::vmm::vcpu::StartState;
use crate::vmm::vm::Backend;
use alloc::format;
use alloc::string::String;

/// AMD SVM with nested paging.
pub struct SvmBackend {
    shared: &'static SvmShared,
    /// ASIDs handed out round robin: 1..=`asid_limit`.
    asid_limit: u32,
}

/// The CR4 bits a guest may set on this CPU: the architectural base and
/// what CPUID says the CPU has (APM Vol. 2, 3.1.3; the VMX backend gets the
/// same answer from IA32_VMX_CR4_FIXED1), without LA57, which CPUID hides
/// from guests (`rules::cpuid::LEAF7_ECX_LA57`): Linux on QEMU's "max" CPU
/// turned it on when it was offered.
fn supported_cr4() -> u64 {
    let leaf1 = raw_cpuid::cpuid!(1);
    let leaf7 = raw_cpuid::cpuid!(7, 0);
    let mut bits = cr4::VME
        | cr4::PVI
        | cr4::TSD
        | cr4::DE
        | cr4::PSE
        | cr4::PAE
        | cr4::MCE
        | cr4::PGE
        | cr4::PCE
        | cr4::OSFXSR
        | cr4::OSXMMEXCPT;
    let pairs = [
        (leaf7.ecx & (1 << 2) != 0, cr4::UMIP),
        (leaf7.ebx & 1 != 0, cr4::FSGSBASE),
        (leaf1.ecx & (1 << 17) != 0, cr4::PCIDE),
        (leaf1.ecx & (1 << 26) != 0, cr4::OSXSAVE),
        (leaf7.ebx & (1 << 7) != 0, cr4::SMEP),
        (leaf7.ebx & (1 << 20) != 0, cr4::SMAP),
        (leaf7.ecx & (1 << 3) != 0, cr4::PKE),
    ];
    for (present, bit) in pairs {
        if present {
            bits |= bit;
        }
    }
    bits
}

impl SvmBackend {
    /// The backend for a CPU whose SVM is on.
    pub fn new(cpu: SvmCpu) -> Result<SvmBackend, String> {
        let iopm = crate::mm::allocate_zeroed(IOPM_BYTES as u64, 4096)
            .map_err(|_| String::from("no memory for the I/O permission map"))?;
        let msrpm = crate::mm::allocate_zeroed(MSRPM_BYTES as u64, 4096)
            .map_err(|_| String::from("no memory for the MSR permission map"))?;
        // SAFETY: both ranges are fresh frames of exactly these sizes, owned
        // by the backend for the hypervisor's life, identity-mapped.
        unsafe {
            fill_iopm(&mut *(iopm.start as *mut [u8; IOPM_BYTES]));
            fill_msrpm(&mut *(msrpm.start as *mut [u8; MSRPM_BYTES]));
        }
        let features = cpu.features;
        let shared = SvmShared {
            decode: DecodeFeatures {
                decode_assists: features.decode_assists(),
            },
            next_rip_save: features.next_rip_save(),
            flush_by_asid: features.edx & (1 << 6) != 0,
            host_vmload_area: cpu.host_vmload_area,
            iopm: iopm.start,
            msrpm: msrpm.start,
            supported_cr4: supported_cr4(),
        };
        Ok(SvmBackend {
            // One copy for the hypervisor's life, which every vCPU points at.
            shared: alloc::boxed::Box::leak(alloc::boxed::Box::new(shared)),
            asid_limit: (features.asids - 1).min(MAX_ASIDS as u32 - 1),
        })
    }
}

impl Backend for SvmBackend {
    type Vcpu = SvmVcpu;

    fn create_vcpu(
        &mut self,
        id: u32,
        ram: PhysRange,
        start: &StartState,
    ) -> Result<SvmVcpu, String> {
        let mut frames = OwnedFrames::default();
        let tables = npt::build(&mut frames, ram.start, ram.len())
            .map_err(|error| format!("cannot build its nested page tables: {}", error))?;
        // ASIDs 1..=limit; 0 is the host's (15.16). With more VMs than
        // ASIDs, VMs share them and flush when they switch (`load`).
        let asid = (id - 1) % self.asid_limit + 1;
        SvmVcpu::new(self.shared, asid, tables.root(), ram, start, frames)
            .ok_or_else(|| String::from("cannot create its vCPU: no memory for its VMCB"))
    }
}
