//! QEMU's isa-debug-exit device: a port whose write stops the VM with an
//! exit code derived from the value, the way test kernels built for QEMU
//! report their result.
//!
//! This module owns nothing but the rule. The VM chooses the port (module
//! option `debug-exit=<port>`) and the core registers the device there; a
//! write sets [`VmRequest::Exit`] in the access's context and the core
//! stops the VM.

use super::{AccessSize, DeviceContext, PortDevice, VmRequest};

/// The port QEMU's test setups conventionally give the device.
pub const CONVENTIONAL_PORT: u16 = 0xf4;
/// How many ports it decodes (QEMU's default `iosize`).
pub const PORT_COUNT: u16 = 1;

/// The exit code a write of `value` gives: `(value << 1) | 1`, as QEMU
/// computes it, so that no value a guest writes looks like a clean exit 0.
/// Bits shifted past 32 are lost.
pub const fn exit_code(value: u32) -> u32 {
    (value << 1) | 1
}

/// isa-debug-exit.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebugExit;

impl PortDevice for DebugExit {
    /// Reads return all ones: the device drives nothing.
    fn read(&mut self, _offset: u16, size: AccessSize, _cx: &mut DeviceContext) -> u32 {
        size.mask()
    }

    /// The whole value written, whatever the width (the bus has already
    /// masked it to the access size).
    fn write(&mut self, _offset: u16, _size: AccessSize, value: u32, cx: &mut DeviceContext) {
        cx.request = Some(VmRequest::Exit(exit_code(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;

    #[test]
    fn a_write_requests_an_exit_with_the_shifted_code() {
        for (value, code) in [(0, 1), (1, 3), (0x10, 0x21), (0xff, 0x1ff)] {
            let mut rec = Recorder::default();
            let mut cx = rec.cx();
            DebugExit.write(0, AccessSize::Byte, value, &mut cx);
            assert_eq!(cx.request, Some(VmRequest::Exit(code)), "{value:#x}");
        }
        let mut rec = Recorder::default();
        let mut cx = rec.cx();
        DebugExit.write(0, AccessSize::Dword, 0x1234, &mut cx);
        assert_eq!(cx.request, Some(VmRequest::Exit(0x2469)));
    }

    #[test]
    fn reads_return_all_ones_and_request_nothing() {
        let mut rec = Recorder::default();
        let mut cx = rec.cx();
        assert_eq!(DebugExit.read(0, AccessSize::Byte, &mut cx), 0xff);
        assert_eq!(DebugExit.read(0, AccessSize::Dword, &mut cx), 0xffff_ffff);
        assert_eq!(cx.request, None);
    }
}
