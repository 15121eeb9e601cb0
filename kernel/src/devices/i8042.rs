//! The 8042 keyboard controller at ports 0x60 (data) and 0x64 (status and
//! command), with no keyboard and no mouse behind it. Citations name the
//! IBM PS/2 Hardware Interface Technical Reference's "Keyboard/Auxiliary
//! Device Controller" chapter.
//!
//! This module owns the controller's registers, its output buffer and the
//! levels of IRQ 1 and IRQ 12. It asks for a reset through the context and
//! never acts on one. It must not grow a keyboard: a VM's input is its
//! serial console.
//!
//! What a guest's probe sees, so that it gives up fast and never hangs:
//! - The status register reads with both buffers empty (commands are
//!   taken at once) and the system flag set (self-test passed at POST).
//! - Controller commands answer at once: self-test 0xAA answers 0x55; the
//!   interface tests 0xAB (keyboard) and 0xA9 (auxiliary) answer 0x00,
//!   "no error", because the lines of an empty port are fine — the absence
//!   shows when a device is spoken to, as on a real board; the command
//!   byte (0x20/0x60) and the output port (0xD0/0xD1) read and write; the
//!   loopback commands 0xD2/0xD3 echo their byte as if from the device.
//! - A byte for the keyboard (a data-port write) or the mouse (0xD4 and a
//!   byte) finds no device: the controller answers 0xFE with the timeout
//!   status bit, as the 8042 does when a device does not clock in a
//!   transmission ("Status Register", bit 6). Linux's i8042 driver passes
//!   its controller checks, and atkbd and psmouse get that NAK in
//!   microseconds instead of waiting out their timeouts.
//! - Resets: command 0xFE (and every pulse command 0xF0-0xFE with bit 0
//!   clear) pulses the reset line, and an output-port write with bit 0
//!   clear holds it; both request [`VmRequest::Reset`].
//! - A20 (output port bit 1, commands 0xDD/0xDF) is kept and has no
//!   effect: the VM's address line 20 is always enabled.
//! - Replies queue (up to [`OUTPUT_QUEUE`] bytes) where the part would
//!   overwrite its one-byte buffer; the status describes the oldest.

use super::irq::IrqLine;
use super::{AccessSize, DeviceContext, PortDevice, VmRequest};

/// The data port.
pub const DATA_PORT: u16 = 0x60;
/// The status (read) and command (write) port.
pub const COMMAND_PORT: u16 = 0x64;
/// The device's base port; [`COMMAND_PORT`] is a second range at offset 4.
pub const BASE_PORT: u16 = DATA_PORT;
/// The keyboard's interrupt line.
pub const KEYBOARD_IRQ: IrqLine = IrqLine::new(1).unwrap();
/// The auxiliary (mouse) port's interrupt line.
pub const AUX_IRQ: IrqLine = IrqLine::new(12).unwrap();
/// Replies held at once.
pub const OUTPUT_QUEUE: usize = 4;

const DATA: u16 = 0;
const COMMAND: u16 = COMMAND_PORT - DATA_PORT;

// Status register bits ("Status Register").
/// Output buffer full.
pub const STATUS_OUTPUT_FULL: u8 = 1 << 0;
/// Input buffer full (never: commands are taken at once).
pub const STATUS_INPUT_FULL: u8 = 1 << 1;
/// System flag: self-test passed.
pub const STATUS_SYSTEM: u8 = 1 << 2;
/// The last write went to the command port.
pub const STATUS_COMMAND: u8 = 1 << 3;
/// Keyboard not inhibited (the key lock is open).
pub const STATUS_NOT_INHIBITED: u8 = 1 << 4;
/// The output buffer holds a byte from the auxiliary device.
pub const STATUS_AUX_DATA: u8 = 1 << 5;
/// A transmission to a device timed out.
pub const STATUS_TIMEOUT: u8 = 1 << 6;

// Command byte bits ("Command Byte").
/// Keyboard interrupt (IRQ 1) enabled.
pub const CTR_KEYBOARD_INTERRUPT: u8 = 1 << 0;
/// Auxiliary interrupt (IRQ 12) enabled.
pub const CTR_AUX_INTERRUPT: u8 = 1 << 1;
/// System flag.
pub const CTR_SYSTEM: u8 = 1 << 2;
/// Keyboard interface disabled.
pub const CTR_KEYBOARD_DISABLED: u8 = 1 << 4;
/// Auxiliary interface disabled.
pub const CTR_AUX_DISABLED: u8 = 1 << 5;
/// Scan-code translation.
pub const CTR_TRANSLATE: u8 = 1 << 6;
/// The command byte a BIOS leaves: translation, the system flag, the
/// keyboard interrupt; the auxiliary port disabled.
pub const RESET_COMMAND_BYTE: u8 =
    CTR_TRANSLATE | CTR_AUX_DISABLED | CTR_SYSTEM | CTR_KEYBOARD_INTERRUPT;

// Output port bits ("Output Port").
/// System reset, active low: writing 0 resets the machine.
pub const OUTPUT_PORT_RESET: u8 = 1 << 0;
/// Gate A20.
pub const OUTPUT_PORT_A20: u8 = 1 << 1;

/// The reply to a byte no device took.
pub const NO_DEVICE_RESPONSE: u8 = 0xfe;
/// The self-test's pass reply.
pub const SELF_TEST_PASSED: u8 = 0x55;
/// The interface tests' "no error" reply.
pub const INTERFACE_OK: u8 = 0x00;

/// Where a byte in the output buffer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The controller or the keyboard port: IRQ 1.
    Keyboard,
    /// The auxiliary port: IRQ 12, AUXB set.
    Aux,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    byte: u8,
    source: Source,
    timed_out: bool,
}

/// What the next data-port write means, after a command that takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    WriteRam(u8),
    WriteOutputPort,
    EchoKeyboard,
    EchoAux,
    SendToAux,
}

/// The 8042 with empty ports.
#[derive(Debug, Clone)]
pub struct I8042 {
    /// The 32 bytes of controller RAM; byte 0 is the command byte.
    ram: [u8; 32],
    output_port: u8,
    replies: [Option<Reply>; OUTPUT_QUEUE],
    last_read: u8,
    last_write_was_command: bool,
    pending: Option<Pending>,
    keyboard_irq: bool,
    aux_irq: bool,
}

impl Default for I8042 {
    fn default() -> Self {
        I8042::new()
    }
}

impl I8042 {
    /// The controller as a BIOS leaves it: [`RESET_COMMAND_BYTE`], reset
    /// line inactive and A20 enabled, nothing to read.
    pub const fn new() -> I8042 {
        let mut ram = [0; 32];
        ram[0] = RESET_COMMAND_BYTE;
        I8042 {
            ram,
            output_port: OUTPUT_PORT_RESET | OUTPUT_PORT_A20,
            replies: [None; OUTPUT_QUEUE],
            last_read: 0,
            last_write_was_command: false,
            pending: None,
            keyboard_irq: false,
            aux_irq: false,
        }
    }

    /// The command byte.
    pub fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    /// The output port (bit 1: A20 gate).
    pub fn output_port(&self) -> u8 {
        self.output_port
    }

    fn push(&mut self, byte: u8, source: Source, timed_out: bool) {
        // A full queue drops the reply, as the part's one-byte buffer would
        // lose the older byte; guests read each reply before the next.
        if let Some(slot) = self.replies.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(Reply {
                byte,
                source,
                timed_out,
            });
        }
    }

    fn pop(&mut self) -> Option<Reply> {
        let head = self.replies[0].take();
        self.replies.rotate_left(1);
        head
    }

    fn status(&self) -> u8 {
        let mut status = STATUS_SYSTEM | STATUS_NOT_INHIBITED;
        if self.last_write_was_command {
            status |= STATUS_COMMAND;
        }
        if let Some(head) = self.replies[0] {
            status |= STATUS_OUTPUT_FULL;
            if head.source == Source::Aux {
                status |= STATUS_AUX_DATA;
            }
            if head.timed_out {
                status |= STATUS_TIMEOUT;
            }
        }
        status
    }

    /// IRQ 1 and IRQ 12 follow the output buffer and the command byte's
    /// interrupt enables ("Command Byte", bits 0 and 1).
    fn update_irqs(&mut self, cx: &mut DeviceContext) {
        let head = self.replies[0].map(|reply| reply.source);
        let ctr = self.command_byte();
        let keyboard = head == Some(Source::Keyboard) && ctr & CTR_KEYBOARD_INTERRUPT != 0;
        let aux = head == Some(Source::Aux) && ctr & CTR_AUX_INTERRUPT != 0;
        if keyboard != self.keyboard_irq {
            self.keyboard_irq = keyboard;
            cx.irq.set(KEYBOARD_IRQ, keyboard);
        }
        if aux != self.aux_irq {
            self.aux_irq = aux;
            cx.irq.set(AUX_IRQ, aux);
        }
    }

    fn command(&mut self, command: u8, cx: &mut DeviceContext) {
        self.pending = None;
        let reply = |device: &mut I8042, byte| device.push(byte, Source::Keyboard, false);
        match command {
            0x20..=0x3f => reply(self, self.ram[usize::from(command & 0x1f)]),
            0x60..=0x7f => self.pending = Some(Pending::WriteRam(command & 0x1f)),
            0xa7 => self.ram[0] |= CTR_AUX_DISABLED,
            0xa8 => self.ram[0] &= !CTR_AUX_DISABLED,
            0xa9 | 0xab => reply(self, INTERFACE_OK),
            0xaa => reply(self, SELF_TEST_PASSED),
            0xad => self.ram[0] |= CTR_KEYBOARD_DISABLED,
            0xae => self.ram[0] &= !CTR_KEYBOARD_DISABLED,
            0xd0 => reply(self, self.output_port),
            0xd1 => self.pending = Some(Pending::WriteOutputPort),
            0xd2 => self.pending = Some(Pending::EchoKeyboard),
            0xd3 => self.pending = Some(Pending::EchoAux),
            0xd4 => self.pending = Some(Pending::SendToAux),
            0xdd => self.output_port &= !OUTPUT_PORT_A20,
            0xdf => self.output_port |= OUTPUT_PORT_A20,
            // Pulse the output-port bits whose mask bit is 0 ("Pulse
            // Output Port"); bit 0 is the reset line.
            0xf0..=0xff if command & OUTPUT_PORT_RESET == 0 => {
                cx.request = Some(VmRequest::Reset);
            }
            // Other commands (input port, test inputs, password) are not
            // modelled and answer nothing.
            _ => {}
        }
    }

    fn data(&mut self, value: u8, cx: &mut DeviceContext) {
        match self.pending.take() {
            Some(Pending::WriteRam(index)) => self.ram[usize::from(index)] = value,
            Some(Pending::WriteOutputPort) => {
                self.output_port = value;
                if value & OUTPUT_PORT_RESET == 0 {
                    cx.request = Some(VmRequest::Reset);
                }
            }
            Some(Pending::EchoKeyboard) => self.push(value, Source::Keyboard, false),
            Some(Pending::EchoAux) => self.push(value, Source::Aux, false),
            Some(Pending::SendToAux) => self.push(NO_DEVICE_RESPONSE, Source::Aux, true),
            // A byte for the keyboard, which is not there.
            None => self.push(NO_DEVICE_RESPONSE, Source::Keyboard, true),
        }
    }
}

impl PortDevice for I8042 {
    /// Only byte accesses mean anything; a wider read repeats the byte in
    /// the low lane and zeroes above.
    fn read(&mut self, offset: u16, _size: AccessSize, cx: &mut DeviceContext) -> u32 {
        let value = match offset {
            DATA => {
                if let Some(reply) = self.pop() {
                    self.last_read = reply.byte;
                }
                // An empty buffer reads its last byte again.
                self.last_read
            }
            COMMAND => self.status(),
            _ => 0xff,
        };
        self.update_irqs(cx);
        u32::from(value)
    }

    fn write(&mut self, offset: u16, _size: AccessSize, value: u32, cx: &mut DeviceContext) {
        let value = value as u8;
        match offset {
            DATA => {
                self.last_write_was_command = false;
                self.data(value, cx);
            }
            COMMAND => {
                self.last_write_was_command = true;
                self.command(value, cx);
            }
            _ => {}
        }
        self.update_irqs(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testing::Recorder;

    struct Rig {
        kbc: I8042,
        rec: Recorder,
        request: Option<VmRequest>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                kbc: I8042::new(),
                rec: Recorder::default(),
                request: None,
            }
        }

        fn status(&mut self) -> u8 {
            self.kbc.read(COMMAND, AccessSize::Byte, &mut self.rec.cx()) as u8
        }

        fn read(&mut self) -> u8 {
            self.kbc.read(DATA, AccessSize::Byte, &mut self.rec.cx()) as u8
        }

        fn command(&mut self, command: u8) {
            let mut cx = self.rec.cx();
            self.kbc
                .write(COMMAND, AccessSize::Byte, command.into(), &mut cx);
            self.request = cx.request;
        }

        fn data(&mut self, value: u8) {
            let mut cx = self.rec.cx();
            self.kbc
                .write(DATA, AccessSize::Byte, value.into(), &mut cx);
            self.request = cx.request;
        }

        /// A command and the one byte it answers.
        fn ask(&mut self, command: u8) -> u8 {
            self.command(command);
            assert_ne!(
                self.status() & STATUS_OUTPUT_FULL,
                0,
                "{command:#x} answers"
            );
            let byte = self.read();
            assert_eq!(self.status() & STATUS_OUTPUT_FULL, 0);
            byte
        }
    }

    #[test]
    fn the_status_starts_with_both_buffers_empty() {
        let mut rig = Rig::new();
        let status = rig.status();
        assert_eq!(status & (STATUS_OUTPUT_FULL | STATUS_INPUT_FULL), 0);
        assert_eq!(status, STATUS_SYSTEM | STATUS_NOT_INHIBITED);
    }

    #[test]
    fn self_test_and_interface_tests_answer_at_once() {
        let mut rig = Rig::new();
        assert_eq!(rig.ask(0xaa), SELF_TEST_PASSED);
        assert_eq!(rig.ask(0xab), INTERFACE_OK);
        assert_eq!(rig.ask(0xa9), INTERFACE_OK);
        assert_eq!(rig.request, None);
        assert_ne!(
            rig.status() & STATUS_COMMAND,
            0,
            "the last write was a command"
        );
    }

    #[test]
    fn the_command_byte_reads_and_writes() {
        let mut rig = Rig::new();
        assert_eq!(rig.ask(0x20), RESET_COMMAND_BYTE);
        rig.command(0x60);
        rig.data(0x47);
        assert_eq!(rig.status() & STATUS_COMMAND, 0);
        assert_eq!(rig.ask(0x20), 0x47);
        rig.command(0xa7);
        rig.command(0xad);
        assert_eq!(
            rig.kbc.command_byte(),
            0x47 | CTR_AUX_DISABLED | CTR_KEYBOARD_DISABLED
        );
        rig.command(0xa8);
        rig.command(0xae);
        assert_eq!(rig.kbc.command_byte(), 0x47);
        rig.command(0x61);
        rig.data(0x12);
        assert_eq!(rig.ask(0x21), 0x12, "controller RAM");
    }

    #[test]
    fn pulsing_the_reset_line_requests_a_reset() {
        for command in [0xfe, 0xf0, 0xfc] {
            let mut rig = Rig::new();
            rig.command(command);
            assert_eq!(rig.request, Some(VmRequest::Reset), "{command:#x}");
        }
        let mut rig = Rig::new();
        rig.command(0xff);
        assert_eq!(rig.request, None, "0xFF pulses nothing");
    }

    #[test]
    fn the_output_port_and_a20_commands_are_accepted() {
        let mut rig = Rig::new();
        assert_eq!(rig.ask(0xd0), OUTPUT_PORT_RESET | OUTPUT_PORT_A20);
        rig.command(0xdd);
        assert_eq!(rig.kbc.output_port() & OUTPUT_PORT_A20, 0);
        rig.command(0xdf);
        assert_ne!(rig.kbc.output_port() & OUTPUT_PORT_A20, 0);
        rig.command(0xd1);
        rig.data(0xdd);
        assert_eq!(rig.request, None, "reset line inactive");
        assert_eq!(rig.ask(0xd0), 0xdd);
        rig.command(0xd1);
        rig.data(0xdc);
        assert_eq!(
            rig.request,
            Some(VmRequest::Reset),
            "bit 0 clear holds reset"
        );
    }

    #[test]
    fn a_byte_for_the_missing_keyboard_times_out_with_0xfe_on_irq_1() {
        let mut rig = Rig::new();
        rig.data(0xf2); // GET ID
        assert_eq!(
            rig.status(),
            STATUS_SYSTEM | STATUS_NOT_INHIBITED | STATUS_OUTPUT_FULL | STATUS_TIMEOUT
        );
        assert!(
            rig.rec.lines.level(KEYBOARD_IRQ),
            "the command byte enables IRQ 1"
        );
        assert_eq!(rig.read(), NO_DEVICE_RESPONSE);
        assert!(!rig.rec.lines.level(KEYBOARD_IRQ));
        assert_eq!(rig.status() & (STATUS_OUTPUT_FULL | STATUS_TIMEOUT), 0);
        assert_eq!(rig.read(), NO_DEVICE_RESPONSE, "an empty buffer repeats");
    }

    #[test]
    fn a_byte_for_the_missing_mouse_times_out_with_0xfe_on_irq_12() {
        let mut rig = Rig::new();
        rig.command(0x60);
        rig.data(CTR_AUX_INTERRUPT | CTR_SYSTEM);
        rig.command(0xd4);
        rig.data(0xff);
        let status = rig.status();
        assert_eq!(
            status & (STATUS_OUTPUT_FULL | STATUS_AUX_DATA | STATUS_TIMEOUT),
            STATUS_OUTPUT_FULL | STATUS_AUX_DATA | STATUS_TIMEOUT
        );
        assert!(rig.rec.lines.level(AUX_IRQ));
        assert!(!rig.rec.lines.level(KEYBOARD_IRQ));
        assert_eq!(rig.read(), NO_DEVICE_RESPONSE);
        assert!(!rig.rec.lines.level(AUX_IRQ));
    }

    #[test]
    fn loopback_commands_echo_as_if_from_the_device() {
        let mut rig = Rig::new();
        rig.command(0xd3);
        rig.data(0x5a);
        assert_ne!(rig.status() & STATUS_AUX_DATA, 0);
        assert_eq!(rig.status() & STATUS_TIMEOUT, 0);
        assert_eq!(rig.read(), 0x5a);
        rig.command(0xd2);
        rig.data(0xa5);
        assert_eq!(rig.status() & STATUS_AUX_DATA, 0);
        assert_eq!(rig.read(), 0xa5);
    }

    #[test]
    fn without_interrupt_enables_replies_are_polled() {
        let mut rig = Rig::new();
        rig.command(0x60);
        rig.data(0);
        rig.command(0xaa);
        assert!(!rig.rec.lines.level(KEYBOARD_IRQ));
        assert_eq!(rig.read(), SELF_TEST_PASSED);
    }
}
