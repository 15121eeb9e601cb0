//! The tessera hypercall ABI, guest side.
//!
//! `VMCALL` (Intel) or `VMMCALL` (AMD) with the call number in RAX and up to
//! four arguments in RDI, RSI, RDX, R10; the result comes back in RAX, where a
//! negative value is an error ([`Error`]). The hypervisor preserves every
//! other register; the wrappers below still let the compiler assume the
//! argument registers are clobbered, which costs nothing and leaves room for
//! calls that return more. Buffers are passed by guest-physical address, which
//! here equals the virtual one because guests run on an identity map.

use core::sync::atomic::{AtomicBool, Ordering};

/// The call numbers. Stable: guests built against them must keep working.
pub mod number {
    /// CONSOLE_WRITE(rdi = buffer address, rsi = length ≤ 4096) → bytes written.
    pub const CONSOLE_WRITE: u64 = 0;
    /// YIELD() → 0; gives up the rest of the time slice.
    pub const YIELD: u64 = 1;
    /// EXIT(rdi = exit code); does not return.
    pub const EXIT: u64 = 2;
    /// VM_INFO(rdi = buffer address, rsi = buffer length) → size of `VmInfo` (48).
    pub const VM_INFO: u64 = 3;
    /// BENCH_NOP() → 0 at once; the cheapest possible hypercall, for benchmarks.
    pub const BENCH_NOP: u64 = 0xFF;
}

/// The most CONSOLE_WRITE accepts in one call.
pub const CONSOLE_WRITE_MAX: usize = 4096;

/// A hypercall's failure, decoded from its negative result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// -1: the hypervisor knows no call with this number.
    UnknownCall,
    /// -2: a buffer address or length lies outside the VM's memory.
    BadAddress,
    /// -3: an argument is out of range (e.g. a buffer too small).
    BadArgument,
    /// Any other negative result.
    Other(i64),
}

impl Error {
    /// The error for a negative result.
    fn from_result(result: i64) -> Error {
        match result {
            -1 => Error::UnknownCall,
            -2 => Error::BadAddress,
            -3 => Error::BadArgument,
            other => Error::Other(other),
        }
    }
}

/// The answer to VM_INFO; the layout is part of the ABI (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VmInfo {
    /// The VM's id, as the hypervisor numbers VMs.
    pub id: u32,
    /// Zero.
    pub reserved: u32,
    /// Size of the VM's RAM, guest-physical `[0, memory_bytes)`.
    pub memory_bytes: u64,
    /// The VM's `name=`, NUL-padded (not terminated when 32 bytes long).
    pub name: [u8; 32],
}

const _: () = assert!(core::mem::size_of::<VmInfo>() == 48);

impl VmInfo {
    /// The name up to its first NUL, or `"?"` if it is not UTF-8.
    pub fn name(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..end]).unwrap_or("?")
    }
}

/// Whether the CPU wants `VMMCALL` (AMD) rather than `VMCALL` (Intel). The
/// other vendor's instruction raises #UD in the guest instead of exiting.
static USE_VMMCALL: AtomicBool = AtomicBool::new(false);

/// Chooses the hypercall instruction from the CPU vendor. `_start` calls this
/// before `main`; it costs one CPUID exit.
pub(crate) fn select_instruction() {
    let leaf0 = core::arch::x86_64::__cpuid(0);
    let amd_like = matches!(
        (leaf0.ebx, leaf0.edx, leaf0.ecx),
        // "AuthenticAMD" and "HygonGenuine", as EBX, EDX, ECX.
        (0x6874_7541, 0x6974_6E65, 0x444D_4163) | (0x6F67_7948, 0x6E65_476E, 0x656E_6975)
    );
    USE_VMMCALL.store(amd_like, Ordering::Relaxed);
}

/// Whether hypercalls use `VMMCALL` (AMD, Hygon) rather than `VMCALL`; set
/// before `main` runs.
pub fn uses_vmmcall() -> bool {
    USE_VMMCALL.load(Ordering::Relaxed)
}

/// Issues hypercall `number` with `args` in RDI, RSI, RDX, R10 and returns RAX.
///
/// # Safety
///
/// Arguments that the call treats as addresses must describe memory the
/// hypervisor may read or write for that call (for VM_INFO: writable and not
/// aliased by a live reference).
#[inline(always)]
pub unsafe fn raw(number: u64, args: [u64; 4]) -> i64 {
    let result: i64;
    if USE_VMMCALL.load(Ordering::Relaxed) {
        // SAFETY: the caller vouches for the arguments; VMMCALL touches no
        // guest state except through the hypervisor, which honours the ABI.
        unsafe {
            core::arch::asm!(
                "vmmcall",
                inlateout("rax") number as i64 => result,
                inlateout("rdi") args[0] => _,
                inlateout("rsi") args[1] => _,
                inlateout("rdx") args[2] => _,
                inlateout("r10") args[3] => _,
                options(nostack),
            );
        }
    } else {
        // SAFETY: as above, with VMCALL.
        unsafe {
            core::arch::asm!(
                "vmcall",
                inlateout("rax") number as i64 => result,
                inlateout("rdi") args[0] => _,
                inlateout("rsi") args[1] => _,
                inlateout("rdx") args[2] => _,
                inlateout("r10") args[3] => _,
                options(nostack),
            );
        }
    }
    result
}

/// Turns a raw result into a `Result`.
fn decode(result: i64) -> Result<u64, Error> {
    if result < 0 {
        Err(Error::from_result(result))
    } else {
        Ok(result as u64)
    }
}

/// CONSOLE_WRITE: writes at most [`CONSOLE_WRITE_MAX`] bytes of `bytes` and
/// returns how many the hypervisor took. See `console::write_all` for more.
pub fn console_write(bytes: &[u8]) -> Result<usize, Error> {
    let length = bytes.len().min(CONSOLE_WRITE_MAX);
    // SAFETY: the hypervisor only reads `length` bytes at `bytes`, which the
    // slice keeps alive and initialised across the call.
    let result = unsafe {
        raw(
            number::CONSOLE_WRITE,
            [bytes.as_ptr() as u64, length as u64, 0, 0],
        )
    };
    decode(result).map(|written| written as usize)
}

/// YIELD: gives up the rest of this time slice.
pub fn yield_now() -> Result<(), Error> {
    // SAFETY: YIELD takes no arguments.
    decode(unsafe { raw(number::YIELD, [0; 4]) }).map(|_| ())
}

/// EXIT: ends the VM with `code`. Should the hypervisor ever return, the vCPU
/// halts with interrupts off rather than run on.
pub fn exit(code: u64) -> ! {
    // SAFETY: EXIT reads no guest memory.
    unsafe { raw(number::EXIT, [code, 0, 0, 0]) };
    loop {
        // SAFETY: halting with interrupts off only stops this vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// VM_INFO: who and how big this VM is.
pub fn vm_info() -> Result<VmInfo, Error> {
    let mut info = VmInfo {
        id: 0,
        reserved: 0,
        memory_bytes: 0,
        name: [0; 32],
    };
    let address = core::ptr::addr_of_mut!(info) as u64;
    let length = core::mem::size_of::<VmInfo>() as u64;
    // SAFETY: `info` is a live, writable local of exactly `length` bytes with
    // no reference to it held across the call; any bit pattern is a VmInfo.
    let result = unsafe { raw(number::VM_INFO, [address, length, 0, 0]) };
    decode(result).map(|_| info)
}

/// BENCH_NOP: the round trip through the hypervisor and nothing else.
#[inline(always)]
pub fn bench_nop() -> Result<u64, Error> {
    // SAFETY: BENCH_NOP takes no arguments.
    decode(unsafe { raw(number::BENCH_NOP, [0; 4]) })
}
