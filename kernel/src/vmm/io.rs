//! Port I/O from guests.
//!
//! Every port traps (the I/O bitmaps are all ones). COM1 (0x3F8-0x3FF) is a
//! minimal transmit-only 16550: bytes written to its data register become
//! console lines with the VM's name, its line status always says "transmitter
//! empty" so polling drivers proceed. Any other port reads as all ones —
//! what an ISA bus returns when nothing decodes the address — and writes are
//! dropped; both are counted.

use super::vm::Vm;
use crate::vmx::exit::IoAccess;
use crate::vmx::vmcs::{exit, guest};

const COM1: u16 = 0x3f8;
const LCR_DLAB: u8 = 0x80;
/// LSR: transmit holding register empty, transmitter empty.
const LSR_IDLE: u8 = 0x60;
/// MSR: CTS, DSR, DCD asserted.
const MODEM_STATUS: u8 = 0xb0;
/// Element count handled per exit for REP string I/O; the instruction is
/// re-executed for the rest, so a huge RCX cannot hold the CPU.
const STRING_BATCH: u64 = 4096;

/// Emits a finished console line of a VM, prefixed with its name.
pub fn emit_line(id: u32, name: &str, line: &[u8]) {
    // LineBuffer passes only printable ASCII and tabs.
    let text = core::str::from_utf8(line).unwrap_or("<non-UTF-8 output>");
    if crate::console::color() {
        crate::println!(
            "{}{:>8} |{} {}",
            crate::console::vm_color(id),
            name,
            crate::console::RESET,
            text
        );
    } else {
        crate::println!("{:>8} | {}", name, text);
    }
}

fn write_port(vm: &mut Vm, port: u16, value: u32, size: u8) {
    match port {
        COM1 if vm.com1_lcr & LCR_DLAB == 0 => {
            if let Some(line) = vm.console.push(value as u8) {
                emit_line(vm.id, &vm.name, line);
            }
        }
        0x3fb => vm.com1_lcr = value as u8,
        0x3ff => vm.com1_scratch = value as u8,
        0x3f8..=0x3fe => {}
        _ => {
            vm.ports.unhandled_writes += 1;
            log::trace!(
                "vm {}: write {:#x} to port {:#x} ({} bytes) dropped",
                vm.name,
                value,
                port,
                size
            );
        }
    }
}

fn read_port(vm: &mut Vm, port: u16, size: u8) -> u32 {
    match port {
        0x3f8 | 0x3f9 | 0x3fc => 0,
        0x3fa => 0x01, // IIR: no interrupt pending
        0x3fb => vm.com1_lcr as u32,
        0x3fd => LSR_IDLE as u32,
        0x3fe => MODEM_STATUS as u32,
        0x3ff => vm.com1_scratch as u32,
        _ => {
            vm.ports.unhandled_reads += 1;
            match size {
                1 => 0xff,
                2 => 0xffff,
                _ => 0xffff_ffff,
            }
        }
    }
}

/// Handles a non-string IN or OUT.
pub fn handle(vm: &mut Vm, access: IoAccess) {
    let mask = match access.size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    };
    if access.input {
        let value = read_port(vm, access.port, access.size) as u64 & mask;
        // IN to AL/AX leaves the rest of RAX; IN to EAX zero-extends.
        let rax = &mut vm.vcpu.registers.rax;
        *rax = if access.size == 4 {
            value
        } else {
            (*rax & !mask) | value
        };
    } else {
        let value = (vm.vcpu.registers.rax & mask) as u32;
        write_port(vm, access.port, value, access.size);
    }
}

/// Why a string I/O instruction could not be emulated.
pub enum StringIoError {
    /// The guest's paging mode is one tessera does not walk.
    UnsupportedPaging,
    /// A linear address did not translate, or left guest RAM.
    BadAddress(u64),
}

/// Translates a guest linear address to guest-physical for a host-side
/// access: paging off, or 4-level IA-32e paging walked in guest RAM.
fn translate(vm: &Vm, linear: u64) -> Result<u64, StringIoError> {
    let cr0 = guest::CR0.read();
    if cr0 & (1 << 31) == 0 {
        return Ok(linear);
    }
    if guest::EFER.read() & (1 << 10) == 0 {
        return Err(StringIoError::UnsupportedPaging);
    }
    let mut table = guest::CR3.read() & 0x000f_ffff_ffff_f000;
    for level in (1..=4).rev() {
        let index = (linear >> (12 + 9 * (level - 1))) & 0x1ff;
        let address = table + index * 8;
        tessera_kernel::hypercall::guest_range(address, 8, vm.ram.size())
            .ok_or(StringIoError::BadAddress(linear))?;
        let entry = u64::from_le_bytes(vm.ram.slice(address, 8).try_into().unwrap_or([0; 8]));
        if entry & 1 == 0 {
            return Err(StringIoError::BadAddress(linear));
        }
        let large = level > 1 && entry & (1 << 7) != 0;
        if level == 1 || large {
            let page = 1u64 << (12 + 9 * (level - 1));
            return Ok((entry & 0x000f_ffff_ffff_f000 & !(page - 1)) | (linear & (page - 1)));
        }
        table = entry & 0x000f_ffff_ffff_f000;
    }
    Err(StringIoError::BadAddress(linear))
}

/// Emulates INS/OUTS (with or without REP), in batches.
pub fn handle_string(vm: &mut Vm, access: IoAccess) -> Result<(), StringIoError> {
    // VM-exit instruction information for INS/OUTS (SDM Vol. 3C, Table 29-8):
    // bits 9:7 address size, bits 17:15 segment register (OUTS only).
    let info = exit::INSTRUCTION_INFO.read();
    let address_mask = match (info >> 7) & 7 {
        0 => 0xffff,
        1 => 0xffff_ffff,
        _ => u64::MAX,
    };
    let size = access.size as u64;
    let backwards = guest::RFLAGS.read() & (1 << 10) != 0;
    let registers = vm.vcpu.registers;
    let total = if access.rep {
        registers.rcx & address_mask
    } else {
        1
    };
    let count = total.min(STRING_BATCH);
    let (base, mut offset) = if access.input {
        (guest::ES.base.read(), registers.rdi & address_mask)
    } else {
        let segment = match (info >> 15) & 7 {
            0 => guest::ES,
            1 => guest::CS,
            2 => guest::SS,
            4 => guest::FS,
            5 => guest::GS,
            _ => guest::DS,
        };
        (segment.base.read(), registers.rsi & address_mask)
    };
    for _ in 0..count {
        let linear = base.wrapping_add(offset);
        let gpa = translate(vm, linear)?;
        tessera_kernel::hypercall::guest_range(gpa, size, vm.ram.size())
            .ok_or(StringIoError::BadAddress(linear))?;
        if access.input {
            let value = read_port(vm, access.port, access.size).to_le_bytes();
            vm.ram
                .slice_mut(gpa, size)
                .copy_from_slice(&value[..size as usize]);
        } else {
            let mut bytes = [0u8; 4];
            bytes[..size as usize].copy_from_slice(vm.ram.slice(gpa, size));
            write_port(vm, access.port, u32::from_le_bytes(bytes), access.size);
        }
        offset = if backwards {
            offset.wrapping_sub(size)
        } else {
            offset.wrapping_add(size)
        } & address_mask;
    }
    let registers = &mut vm.vcpu.registers;
    let update = |register: &mut u64| *register = (*register & !address_mask) | offset;
    if access.input {
        update(&mut registers.rdi);
    } else {
        update(&mut registers.rsi);
    }
    if access.rep {
        let left = total - count;
        registers.rcx = (registers.rcx & !address_mask) | left;
        if left > 0 {
            // Leave RIP on the instruction: it resumes with the rest.
            return Ok(());
        }
    }
    crate::vmx::exit::skip_instruction();
    Ok(())
}
