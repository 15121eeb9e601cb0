//! The VMX backend as the core sees it: what VM creation needs of Intel
//! hardware — EPT per VM, the I/O and MSR bitmaps shared by all VMs, a VPID
//! and a VMCS per vCPU.

use super::capabilities::Capabilities;
use super::ept;
use super::vcpu::{VmStructures, VmxVcpu};
use crate::mm::phys::PhysRange;
use crate::vmm::guest_memory::OwnedFrames;
use crate::vmm::vcpu::StartState;
use crate::vmm::vm::Backend;
use alloc::format;
use alloc::string::String;

use crate::rules::msr::PASS_THROUGH_MSRS;

/// Intel VMX with EPT.
pub struct VmxBackend {
    capabilities: &'static Capabilities,
    /// I/O bitmaps A and B: every port traps, for every VM, so one copy
    /// serves them all.
    io_bitmaps: PhysRange,
    /// The MSR bitmap, the same for every VM.
    msr_bitmap: PhysRange,
}

fn clear_msr_intercept(bitmap: &mut [u8], msr: u32) {
    // Read bitmap for low MSRs at 0, high MSRs at 1024; write bitmaps at
    // 2048 and 3072 (SDM Vol. 3C, 26.6.9).
    let (base, index) = match msr {
        0..=0x1fff => (0, msr),
        0xc000_0000..=0xc000_1fff => (1024, msr - 0xc000_0000),
        _ => return,
    };
    let byte = base + (index / 8) as usize;
    let bit = 1u8 << (index % 8);
    bitmap[byte] &= !bit;
    bitmap[byte + 2048] &= !bit;
}

impl VmxBackend {
    /// The backend for a CPU whose VMX is on with `capabilities`.
    pub fn new(capabilities: Capabilities) -> Result<VmxBackend, String> {
        let io_bitmaps = crate::mm::allocate_zeroed(8192, 4096)
            .map_err(|_| String::from("no memory for the I/O bitmaps"))?;
        let msr_bitmap = crate::mm::allocate_zeroed(4096, 4096)
            .map_err(|_| String::from("no memory for the MSR bitmap"))?;
        // SAFETY: both ranges are fresh frames owned by the backend for the
        // hypervisor's life, identity-mapped.
        unsafe {
            core::ptr::write_bytes(io_bitmaps.start as *mut u8, 0xff, 8192);
            let bitmap = core::slice::from_raw_parts_mut(msr_bitmap.start as *mut u8, 4096);
            bitmap.fill(0xff);
            for msr in PASS_THROUGH_MSRS {
                clear_msr_intercept(bitmap, msr);
            }
        }
        Ok(VmxBackend {
            // One copy for the hypervisor's life, which every vCPU points at.
            capabilities: alloc::boxed::Box::leak(alloc::boxed::Box::new(capabilities)),
            io_bitmaps,
            msr_bitmap,
        })
    }
}

impl Backend for VmxBackend {
    type Vcpu = VmxVcpu;

    fn create_vcpu(
        &mut self,
        id: u32,
        ram: PhysRange,
        start: &StartState,
    ) -> Result<VmxVcpu, String> {
        let mut frames = OwnedFrames::default();
        let tables = ept::build(&mut frames, ram.start, ram.len())
            .map_err(|error| format!("cannot build its EPT: {}", error))?;
        // A previous VM may have used these frames with other contents.
        super::invept_all();
        let structures = VmStructures {
            ept_pointer: ept::pointer(tables.root()),
            // VPIDs 1..=65535; 0 belongs to the host (SDM Vol. 3C, 30.1).
            vpid: (id % 0xffff + 1) as u16,
            io_bitmaps: self.io_bitmaps.start,
            msr_bitmap: self.msr_bitmap.start,
        };
        VmxVcpu::new(self.capabilities, &structures, start, frames)
            .map_err(|error| format!("cannot create its vCPU: {:?}", error))
    }
}
