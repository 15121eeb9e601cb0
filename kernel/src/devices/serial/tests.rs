//! Register-level tests of the 16550A model, in the shape of rust-vmm
//! vm-superio's serial tests: drive the registers as a driver would and
//! check what the datasheet says the part does.

use super::*;
use crate::devices::testing::Recorder;
use std::vec::Vec;

/// A COM1 UART with a recording console and interrupt lines.
struct Rig {
    uart: Serial16550,
    rec: Recorder,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            uart: Serial16550::com1(),
            rec: Recorder::default(),
        }
    }

    fn read(&mut self, offset: u16) -> u8 {
        self.uart.read(offset, AccessSize::Byte, &mut self.rec.cx()) as u8
    }

    fn write(&mut self, offset: u16, value: u8) {
        self.uart
            .write(offset, AccessSize::Byte, value.into(), &mut self.rec.cx());
    }

    fn receive(&mut self, bytes: &[u8]) -> usize {
        self.uart.receive_bytes(bytes, &mut self.rec.cx())
    }

    /// The level of IRQ 4 as the interrupt controller sees it.
    fn line(&self) -> bool {
        self.rec.lines.level(COM1_IRQ)
    }

    fn iir(&mut self) -> u8 {
        self.read(INTERRUPT_ID)
    }

    fn drain(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        while self.read(LINE_STATUS) & LSR_DATA_READY != 0 {
            bytes.push(self.read(DATA));
        }
        bytes
    }
}

#[test]
fn every_register_has_its_reset_value() {
    let mut rig = Rig::new();
    assert_eq!(rig.read(INTERRUPT_ENABLE), 0x00);
    assert_eq!(rig.read(INTERRUPT_ID), 0x01, "no interrupt, FIFOs off");
    assert_eq!(rig.read(LINE_CONTROL), 0x00);
    assert_eq!(rig.read(MODEM_CONTROL), 0x00);
    assert_eq!(rig.read(LINE_STATUS), 0x60, "THRE and TEMT");
    assert_eq!(rig.read(MODEM_STATUS), 0xb0, "CTS, DSR, DCD, no deltas");
    assert_eq!(rig.read(SCRATCH), 0x00);
    assert_eq!(rig.read(DATA), 0x00, "empty RBR");
    rig.write(LINE_CONTROL, LCR_DLAB);
    assert_eq!(rig.read(DATA), 12, "DLL: 9600 baud");
    assert_eq!(rig.read(INTERRUPT_ENABLE), 0, "DLM");
    assert_eq!(rig.uart.divisor(), 12);
    assert!(!rig.line());
    assert_eq!(rig.rec.lines.take_edges(), 0);
}

#[test]
fn reset_restores_registers_and_keeps_the_divisor() {
    let mut rig = Rig::new();
    rig.write(LINE_CONTROL, LCR_DLAB);
    rig.write(DATA, 1);
    rig.write(LINE_CONTROL, 0x03);
    rig.write(MODEM_CONTROL, MCR_OUT2);
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    rig.write(SCRATCH, 0x5a);
    rig.receive(b"xy");
    assert!(rig.line());
    rig.uart.reset(&mut rig.rec.cx());
    assert!(!rig.line(), "reset lowers the interrupt");
    assert_eq!(rig.read(INTERRUPT_ID), 0x01);
    assert_eq!(rig.read(LINE_STATUS), 0x60, "receiver emptied");
    assert_eq!(rig.read(MODEM_CONTROL), 0);
    assert_eq!(rig.read(SCRATCH), 0);
    assert_eq!(rig.uart.divisor(), 1);
}

#[test]
fn dlab_switches_offsets_0_and_1_to_the_divisor_latch() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
    rig.write(LINE_CONTROL, LCR_DLAB | 0x03);
    rig.write(DATA, 0x01);
    rig.write(INTERRUPT_ENABLE, 0x02);
    assert_eq!(rig.read(DATA), 0x01);
    assert_eq!(rig.read(INTERRUPT_ENABLE), 0x02);
    assert_eq!(rig.uart.divisor(), 0x0201);
    assert!(rig.rec.console.is_empty(), "DLL writes transmit nothing");
    assert_eq!(rig.read(LINE_CONTROL), LCR_DLAB | 0x03);
    rig.write(LINE_CONTROL, 0x03);
    assert_eq!(rig.read(INTERRUPT_ENABLE), IER_RECEIVED_DATA, "IER kept");
    rig.write(DATA, b'A');
    assert_eq!(rig.rec.console, b"A");
    assert_eq!(rig.uart.divisor(), 0x0201);
}

#[test]
fn transmitted_bytes_reach_the_console_at_once() {
    let mut rig = Rig::new();
    for &byte in b"hi\n" {
        rig.write(DATA, byte);
        assert_eq!(rig.read(LINE_STATUS) & 0x60, 0x60, "transmitter empty");
    }
    assert_eq!(rig.rec.console, b"hi\n");
    assert_eq!(rig.uart.transmitted_bytes(), 3);
}

#[test]
fn received_bytes_come_out_of_rbr_in_order() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    assert_eq!(rig.receive(b"abc"), 3);
    assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, LSR_DATA_READY);
    assert_eq!(rig.drain(), b"abc");
    assert_eq!(rig.read(LINE_STATUS), 0x60);
    assert_eq!(rig.read(DATA), b'c', "RBR keeps its last byte");
}

#[test]
fn input_beyond_fifo_and_backlog_is_dropped_as_an_overrun() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    let input: Vec<u8> = (0..=255u8)
        .cycle()
        .take(FIFO_CAPACITY + BACKLOG_CAPACITY + 5)
        .collect();
    assert_eq!(rig.uart.receive_room(), FIFO_CAPACITY + BACKLOG_CAPACITY);
    assert_eq!(rig.receive(&input), FIFO_CAPACITY + BACKLOG_CAPACITY);
    assert_eq!(rig.uart.dropped_bytes(), 5);
    assert_eq!(rig.uart.receive_room(), 0);
    assert_eq!(rig.read(LINE_STATUS), 0x60 | LSR_OVERRUN | LSR_DATA_READY);
    assert_eq!(
        rig.read(LINE_STATUS),
        0x60 | LSR_DATA_READY,
        "OE cleared by reading"
    );
    assert_eq!(rig.drain(), input[..FIFO_CAPACITY + BACKLOG_CAPACITY]);
    assert_eq!(rig.uart.receive_room(), FIFO_CAPACITY + BACKLOG_CAPACITY);
}

#[test]
fn the_backlog_waits_behind_a_one_byte_receiver_in_16450_mode() {
    let mut rig = Rig::new();
    assert_eq!(rig.receive(b"xyz"), 3);
    assert_eq!(rig.uart.receive_room(), BACKLOG_CAPACITY - 2);
    assert_eq!(rig.drain(), b"xyz");
    assert_eq!(rig.read(LINE_STATUS) & LSR_OVERRUN, 0);
}

#[test]
fn loopback_overrun_keeps_the_fifo_and_loses_the_new_byte() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    rig.write(MODEM_CONTROL, MCR_LOOPBACK);
    for byte in 0..=FIFO_CAPACITY as u8 {
        rig.write(DATA, byte);
    }
    assert_eq!(rig.read(LINE_STATUS) & LSR_OVERRUN, LSR_OVERRUN);
    let expected: Vec<u8> = (0..FIFO_CAPACITY as u8).collect();
    assert_eq!(rig.drain(), expected);
    assert!(rig.rec.console.is_empty());
}

#[test]
fn loopback_overrun_in_16450_mode_overwrites_rbr() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_LOOPBACK);
    rig.write(DATA, 1);
    rig.write(DATA, 2);
    assert_eq!(rig.read(LINE_STATUS), 0x60 | LSR_OVERRUN | LSR_DATA_READY);
    assert_eq!(rig.drain(), [2]);
    assert_eq!(rig.uart.dropped_bytes(), 1);
}

#[test]
fn fifo_control_enables_resets_and_shows_in_iir() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    assert_eq!(rig.iir(), 0xc1);
    rig.receive(b"abcd");
    // Reset the receiver; FIFOs stay enabled.
    rig.write(INTERRUPT_ID, FCR_ENABLE | FCR_RESET_RECEIVER);
    assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, 0);
    assert_eq!(rig.iir(), 0xc1);
    // Disabling the FIFOs clears them too.
    rig.receive(b"ef");
    rig.write(INTERRUPT_ID, 0);
    assert_eq!(rig.iir(), 0x01);
    assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, 0);
    // With bit 0 clear, the other bits are not programmed (datasheet, FIFO Control Register).
    rig.write(INTERRUPT_ID, 0xc0);
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
    rig.receive(b"g");
    assert_eq!(rig.iir(), 0xc4, "trigger level 1 was kept");
}

#[test]
fn below_the_trigger_level_data_is_a_character_timeout() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE | (2 << FCR_TRIGGER_SHIFT)); // 8 bytes
    rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
    rig.write(MODEM_CONTROL, MCR_OUT2);
    assert!(!rig.line());
    rig.receive(b"1234567");
    assert_eq!(rig.iir(), 0xcc);
    assert!(rig.line());
    rig.receive(b"8");
    assert_eq!(rig.iir(), 0xc4);
    rig.read(DATA);
    assert_eq!(rig.iir(), 0xcc);
    rig.drain();
    assert_eq!(rig.iir(), 0xc1);
    assert!(!rig.line());
}

#[test]
fn trigger_levels_follow_fcr_bits_7_6() {
    for (bits, level) in [(0u8, 1usize), (1, 4), (2, 8), (3, 14)] {
        let mut rig = Rig::new();
        rig.write(INTERRUPT_ID, FCR_ENABLE | (bits << FCR_TRIGGER_SHIFT));
        rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
        rig.receive(&[0; 16][..level - 1]);
        assert_ne!(rig.iir(), 0xc4, "level {level}");
        rig.receive(b"x");
        assert_eq!(rig.iir(), 0xc4, "level {level}");
    }
}

#[test]
fn iir_reports_sources_in_priority_order() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    rig.write(MODEM_CONTROL, MCR_OUT2);
    // A modem-status change: loopback on and off changes the inputs.
    rig.write(MODEM_CONTROL, MCR_OUT2 | MCR_LOOPBACK);
    rig.write(MODEM_CONTROL, MCR_OUT2);
    // Received data and an overrun, from a full FIFO and backlog.
    rig.receive(&[b'r'; FIFO_CAPACITY + BACKLOG_CAPACITY + 1]);
    rig.write(INTERRUPT_ENABLE, IER_MASK);
    assert!(rig.line());
    assert_eq!(rig.iir(), 0xc6, "receiver line status first");
    assert_eq!(rig.iir(), 0xc6, "reading IIR does not clear it");
    rig.read(LINE_STATUS);
    assert_eq!(rig.iir(), 0xc4, "then received data");
    rig.drain();
    assert_eq!(rig.iir(), 0xc2, "then THR empty");
    assert_eq!(
        rig.iir(),
        0xc0,
        "then modem status, THRE cleared by the read"
    );
    assert!(rig.line());
    // Loopback with only OUT2 set dropped CTS and DSR (DCD mirrored
    // OUT2 and stayed on), and leaving it raised them again.
    assert_eq!(rig.read(MODEM_STATUS) & 0x0f, MSR_DELTA_CTS | MSR_DELTA_DSR);
    assert_eq!(rig.iir(), 0xc1, "nothing left");
    assert!(!rig.line());
}

#[test]
fn disabled_sources_are_not_reported() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_OUT2);
    rig.receive(b"a");
    rig.write(DATA, b'b');
    assert_eq!(rig.iir(), 0x01);
    assert!(!rig.line());
    rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
    assert_eq!(rig.iir(), 0x04);
}

#[test]
fn setting_etbei_raises_thre_at_once() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_OUT2);
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
    assert!(rig.line(), "raised by the IER write itself");
    assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
    assert_eq!(rig.iir(), 0x02);
}

#[test]
fn reading_iir_clears_thre_until_a_thr_write_or_re_enable() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_OUT2);
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
    assert_eq!(rig.iir(), 0x02);
    assert!(!rig.line(), "cleared by the IIR read");
    assert_eq!(rig.iir(), 0x01);
    // Writing IER again with ETBEI already set does not re-arm it.
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
    assert_eq!(rig.iir(), 0x01);
    // A THR write does: the byte leaves and THR is empty again.
    rig.write(DATA, b'x');
    assert!(rig.line());
    assert_eq!(rig.iir(), 0x02);
    // So does clearing and setting ETBEI (Linux's UART_BUG_THRE probe).
    rig.write(INTERRUPT_ENABLE, 0);
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
    assert_eq!(rig.iir(), 0x02);
    assert_eq!(rig.iir(), 0x01);
}

#[test]
fn a_higher_source_hides_thre_and_an_iir_read_then_keeps_it() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY | IER_RECEIVED_DATA);
    rig.receive(b"z");
    assert_eq!(rig.iir(), 0x04);
    rig.read(DATA);
    assert_eq!(rig.iir(), 0x02, "THRE was not cleared by the earlier read");
}

#[test]
fn linux_tx_probe_sees_thre_with_temt() {
    // serial8250_do_startup: IER=THRI, read LSR and IIR, IER=0; a UART
    // whose IIR says "no interrupt" here is flagged UART_BUG_TXEN.
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE | FCR_RESET_RECEIVER | 0x04);
    rig.write(INTERRUPT_ENABLE, IER_THR_EMPTY);
    let lsr = rig.read(LINE_STATUS);
    let iir = rig.iir();
    rig.write(INTERRUPT_ENABLE, 0);
    assert_eq!(lsr & LSR_TRANSMITTER_EMPTY, LSR_TRANSMITTER_EMPTY);
    assert_eq!(iir & 0x0f, 0x02);
}

#[test]
fn loopback_echoes_and_msr_mirrors_mcr() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    // Linux's autoconfig: MCR = LOOP | OUT2 | RTS must read CTS | DCD.
    rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_OUT2 | MCR_RTS);
    assert_eq!(rig.read(MODEM_STATUS) & 0xf0, MSR_CTS | MSR_DCD);
    rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_DTR | MCR_OUT1);
    assert_eq!(rig.read(MODEM_STATUS) & 0xf0, MSR_DSR | MSR_RI);
    rig.write(DATA, 0x55);
    rig.write(DATA, 0xaa);
    assert!(rig.rec.console.is_empty(), "nothing leaves in loopback");
    assert_eq!(rig.uart.transmitted_bytes(), 0);
    assert_eq!(rig.drain(), [0x55, 0xaa]);
    rig.write(MODEM_CONTROL, 0);
    assert_eq!(rig.read(MODEM_STATUS) & 0xf0, MSR_CONNECTED);
    rig.write(DATA, b'!');
    assert_eq!(rig.rec.console, b"!");
    assert_eq!(rig.read(LINE_STATUS) & LSR_DATA_READY, 0);
}

#[test]
fn modem_status_deltas_latch_until_msr_is_read() {
    let mut rig = Rig::new();
    rig.write(
        MODEM_CONTROL,
        MCR_LOOPBACK | MCR_RTS | MCR_DTR | MCR_OUT1 | MCR_OUT2,
    );
    // CTS, DSR and DCD stayed on; RI came on: no deltas, no TERI yet.
    assert_eq!(rig.read(MODEM_STATUS), 0xf0);
    rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_DTR);
    assert_eq!(
        rig.read(MODEM_STATUS),
        MSR_DSR | MSR_DELTA_CTS | MSR_TRAILING_EDGE_RI | MSR_DELTA_DCD
    );
    assert_eq!(
        rig.read(MODEM_STATUS),
        MSR_DSR,
        "deltas cleared by the read"
    );
    // RI rising is not a trailing edge.
    rig.write(MODEM_CONTROL, MCR_LOOPBACK | MCR_DTR | MCR_OUT1);
    assert_eq!(rig.read(MODEM_STATUS), MSR_DSR | MSR_RI);
}

#[test]
fn modem_status_interrupt_needs_edssi() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_LOOPBACK);
    assert_eq!(rig.iir(), 0x01);
    rig.write(INTERRUPT_ENABLE, IER_MODEM_STATUS);
    assert_eq!(rig.iir(), 0x00);
    rig.read(MODEM_STATUS);
    assert_eq!(rig.iir(), 0x01);
}

#[test]
fn out2_gates_the_interrupt_line() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
    rig.receive(b"k");
    assert_eq!(rig.iir(), 0x04, "pending inside the UART");
    assert!(!rig.line(), "but OUT2 is off");
    rig.write(MODEM_CONTROL, MCR_OUT2);
    assert!(rig.line());
    rig.write(MODEM_CONTROL, 0);
    assert!(!rig.line());
    rig.write(MODEM_CONTROL, MCR_OUT2);
    assert!(rig.uart.irq_asserted());
    // Loopback forces the OUT2 pin inactive.
    rig.write(MODEM_CONTROL, MCR_OUT2 | MCR_LOOPBACK);
    assert!(!rig.line());
    rig.write(MODEM_CONTROL, MCR_OUT2);
    rig.read(DATA);
    assert!(!rig.line(), "lowered when the condition clears");
    assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
}

#[test]
fn the_line_is_level_and_rises_again_for_new_data() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_OUT2);
    rig.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA);
    rig.receive(b"a");
    assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
    rig.receive(b"b");
    assert_eq!(rig.rec.lines.take_edges(), 0, "already high");
    rig.drain();
    assert!(!rig.line());
    rig.receive(b"c");
    assert_eq!(rig.rec.lines.take_edges(), 1 << 4);
}

#[test]
fn an_overrun_is_a_line_status_interrupt_cleared_by_reading_lsr() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_OUT2 | MCR_LOOPBACK);
    rig.write(INTERRUPT_ENABLE, IER_LINE_STATUS);
    rig.write(DATA, 1);
    rig.write(DATA, 2);
    assert_eq!(rig.iir(), 0x06);
    rig.write(MODEM_CONTROL, MCR_OUT2);
    assert!(rig.line());
    rig.read(LINE_STATUS);
    assert_eq!(rig.iir(), 0x01);
    assert!(!rig.line());
}

#[test]
fn scratch_register_keeps_any_byte() {
    let mut rig = Rig::new();
    for value in [0x00, 0x55, 0xaa, 0xff] {
        rig.write(SCRATCH, value);
        assert_eq!(rig.read(SCRATCH), value);
    }
}

#[test]
fn reserved_bits_of_ier_and_mcr_read_zero_and_lsr_msr_ignore_writes() {
    let mut rig = Rig::new();
    rig.write(INTERRUPT_ENABLE, 0xf0);
    assert_eq!(rig.read(INTERRUPT_ENABLE), 0);
    rig.write(MODEM_CONTROL, 0xe0);
    assert_eq!(rig.read(MODEM_CONTROL), 0);
    rig.write(LINE_STATUS, 0xff);
    rig.write(MODEM_STATUS, 0xff);
    assert_eq!(rig.read(LINE_STATUS), 0x60);
    assert_eq!(rig.read(MODEM_STATUS), 0xb0);
}

#[test]
fn wide_accesses_split_into_byte_accesses_low_byte_first() {
    let mut rig = Rig::new();
    rig.write(SCRATCH, 0x5a);
    rig.write(INTERRUPT_ID, FCR_ENABLE);
    rig.receive(b"AB");
    let mut cx = rig.rec.cx();
    // IN AX at RBR: RBR (pops 'A'), then IER.
    assert_eq!(rig.uart.read(DATA, AccessSize::Word, &mut cx), 0x0041);
    // IN EAX at MSR: MSR, SCR, then two bytes past the device.
    assert_eq!(
        rig.uart.read(MODEM_STATUS, AccessSize::Dword, &mut cx),
        0xffff_5ab0
    );
    // OUT AX at LCR writes LCR and MCR.
    rig.uart
        .write(LINE_CONTROL, AccessSize::Word, 0x1003, &mut cx);
    // OUT EAX at THR: THR (looped back), IER, FCR (unchanged), LCR.
    rig.uart
        .write(DATA, AccessSize::Dword, 0x0301_0242, &mut cx);
    // OUT AX at SCR: SCR, and a byte past the device that is dropped.
    rig.uart.write(SCRATCH, AccessSize::Word, 0xee77, &mut cx);
    assert_eq!(rig.read(LINE_CONTROL), 0x03);
    assert_eq!(rig.read(MODEM_CONTROL), MCR_LOOPBACK);
    assert_eq!(rig.read(INTERRUPT_ENABLE), IER_THR_EMPTY);
    assert_eq!(rig.iir() & 0xc0, 0xc0, "FIFOs still enabled");
    assert_eq!(rig.read(SCRATCH), 0x77);
    // The received 'B', then the looped-back 0x42.
    assert_eq!(rig.drain(), b"BB");
    assert!(rig.rec.console.is_empty());
}

#[test]
fn a_single_byte_past_the_registers_reads_all_ones() {
    let mut rig = Rig::new();
    assert_eq!(rig.read(8), 0xff);
    rig.write(8, 0);
    assert_eq!(rig.read(LINE_CONTROL), 0);
}

#[test]
fn through_the_bus_com1_answers_at_0x3f8() {
    use crate::devices::bus::PortBus;
    use crate::devices::AnyPortDevice;
    let mut rec = Recorder::default();
    let mut bus = PortBus::new();
    let id = bus
        .add(
            COM1_BASE,
            PORT_COUNT,
            AnyPortDevice::Serial(alloc::boxed::Box::new(Serial16550::com1())),
        )
        .unwrap();
    bus.write(0x3f8, AccessSize::Byte, u32::from(b'o'), &mut rec.cx());
    bus.write(0x3f8, AccessSize::Byte, u32::from(b'k'), &mut rec.cx());
    assert_eq!(bus.read(0x3fd, AccessSize::Byte, &mut rec.cx()), 0x60);
    assert_eq!(bus.read(0x2fd, AccessSize::Byte, &mut rec.cx()), 0xff);
    assert_eq!(rec.console, b"ok");
    let Some(AnyPortDevice::Serial(uart)) = bus.device_mut(id) else {
        panic!("COM1 is a serial port");
    };
    assert!(uart.receive(b'?', &mut rec.cx()));
    assert_eq!(
        bus.read(0x3f8, AccessSize::Byte, &mut rec.cx()),
        u32::from(b'?')
    );
}

#[test]
fn input_is_dropped_while_the_receive_line_is_disconnected_by_loopback() {
    let mut rig = Rig::new();
    rig.write(MODEM_CONTROL, MCR_LOOPBACK);
    assert_eq!(rig.uart.receive_room(), 0);
    assert_eq!(rig.receive(b"lost"), 0);
    assert_eq!(rig.uart.dropped_bytes(), 4);
    assert_eq!(rig.read(LINE_STATUS), 0x60, "no data, no overrun");
    rig.write(MODEM_CONTROL, 0);
    assert_eq!(rig.receive(b"kept"), 4);
    assert_eq!(rig.drain(), b"kept");
}
