//! The serial console on COM1: raw output, the `print!`/`println!` macros and
//! the `log` backend.
//!
//! Every byte waits for the transmit holding register to be empty (LSR.THRE):
//! Bochs' UART drops bytes written while it is busy, and real 16550s overrun.
//! Before power-off, [`drain`] waits for the shift register too (LSR.TEMT) so
//! that the last line is not lost.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};
use x86::io::inb;

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;
/// LSR bit 0: a received byte waits in RBR (or the receive FIFO).
const LSR_DATA_READY: u8 = 1 << 0;

/// Whether `console=color` asked for ANSI colours.
static COLOR: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turns ANSI colours on or off (`console=`).
pub fn set_color(on: bool) {
    COLOR.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Whether colours are on.
pub fn color() -> bool {
    COLOR.load(core::sync::atomic::Ordering::Relaxed)
}

/// An ANSI foreground colour for VM number `id`, cycling through six.
pub fn vm_color(id: u32) -> &'static str {
    [
        "\x1b[36m", "\x1b[35m", "\x1b[32m", "\x1b[34m", "\x1b[33m", "\x1b[96m",
    ][id as usize % 6]
}

/// Resets colours.
pub const RESET: &str = "\x1b[0m";

/// COM1, once initialised; `None` when no UART answers at 0x3F8.
static SERIAL: Mutex<Option<Serial>> = Mutex::new(None);

struct Serial {
    uart: Uart16550<PioBackend>,
}

impl Serial {
    fn write_byte(&mut self, byte: u8) {
        // `send_bytes` with one byte checks LSR.THRE first and returns 0
        // while the holding register is still busy.
        while self.uart.send_bytes(&[byte]) == 0 {
            core::hint::spin_loop();
        }
    }
}

impl Write for Serial {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}

/// Initialises COM1 at 115200 8N1 with FIFOs. Returns whether a UART answered.
pub fn init() -> bool {
    // SAFETY: 0x3F8..0x3FF is COM1's register block on every PC; nothing else
    // in tessera drives it (guests see a virtual UART, never this one).
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return false;
    };
    let config = Config {
        baud_rate: uart_16550::BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    if uart.init(config).is_err() {
        return false;
    }
    *SERIAL.lock() = Some(Serial { uart });
    true
}

/// Whether the cursor is on the shell's unfinished line (its prompt and
/// what the operator has typed so far).
static SHELL_LINE_OPEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Whether other output ended the shell's line since the shell last drew it.
static SHELL_LINE_BROKEN: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Writes formatted text to the console (used by the macros). Output that
/// comes while the shell's line is open starts on a line of its own, so
/// that every line stays whole — a VM's, a log message, the shell's.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    use core::sync::atomic::Ordering::Relaxed;
    if let Some(serial) = SERIAL.lock().as_mut() {
        if SHELL_LINE_OPEN.swap(false, Relaxed) {
            let _ = serial.write_str("\n");
            SHELL_LINE_BROKEN.store(true, Relaxed);
        }
        let _ = serial.write_fmt(args);
    }
}

/// Writes the shell's own output: its prompt, the echo of what is typed.
/// `open` says whether the line is left unfinished.
pub fn write_shell(text: &str, open: bool) {
    use core::sync::atomic::Ordering::Relaxed;
    if let Some(serial) = SERIAL.lock().as_mut() {
        let _ = serial.write_str(text);
        SHELL_LINE_OPEN.store(open, Relaxed);
    }
}

/// Whether the shell's line is open: its prompt is the last thing shown.
pub fn shell_line_open() -> bool {
    SHELL_LINE_OPEN.load(core::sync::atomic::Ordering::Relaxed)
}

/// Whether other output ended the shell's line since the last call.
pub fn take_shell_line_broken() -> bool {
    SHELL_LINE_BROKEN.swap(false, core::sync::atomic::Ordering::Relaxed)
}

/// Reads the bytes that have arrived on COM1, at most `buffer.len()`;
/// 0 when none has (or there is no UART). The operator's console polls it
/// between time slices, so the UART's 16-byte FIFO holds what arrives in
/// between: enough for typing; a paste faster than that overruns it.
pub fn read_input(buffer: &mut [u8]) -> usize {
    let guard = SERIAL.lock();
    if guard.is_none() {
        return 0;
    }
    let mut count = 0;
    while count < buffer.len() {
        // SAFETY: COM1's line status and receive registers; reading them
        // takes a byte out of the UART, which only this function does.
        let ready = unsafe { inb(LINE_STATUS) } & LSR_DATA_READY != 0;
        if !ready {
            break;
        }
        // SAFETY: as above; RBR with DLAB clear (`init` leaves it so).
        buffer[count] = unsafe { inb(COM1) };
        count += 1;
    }
    drop(guard);
    count
}

/// Waits until every byte written so far has left the UART's shift register.
pub fn drain() {
    if SERIAL.lock().is_none() {
        return;
    }
    for _ in 0..1_000_000 {
        // SAFETY: reading COM1's line-status register has no side effects.
        if unsafe { inb(LINE_STATUS) } & LSR_TRANSMITTER_EMPTY != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Takes the console for a crash report even if the crashing code held it.
///
/// # Safety
/// Only for the crash and panic paths, which never return to the code that
/// held the lock.
pub unsafe fn force_unlock() {
    if SERIAL.is_locked() {
        // SAFETY: the caller guarantees the holder never runs again.
        unsafe { SERIAL.force_unlock() };
    }
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The `log` backend: one line per record, `[LEVEL] message`.
struct SerialLogger;

impl log::Log for SerialLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "ERROR",
                log::Level::Warn => "WARN ",
                log::Level::Info => "INFO ",
                log::Level::Debug => "DEBUG",
                log::Level::Trace => "TRACE",
            };
            if color() {
                let tint = match record.level() {
                    log::Level::Error => "\x1b[1;31m",
                    log::Level::Warn => "\x1b[33m",
                    log::Level::Info => "\x1b[32m",
                    _ => "\x1b[2m",
                };
                write_fmt(format_args!(
                    "{}[{}]{} {}\n",
                    tint,
                    level,
                    RESET,
                    record.args()
                ));
            } else {
                write_fmt(format_args!("[{}] {}\n", level, record.args()));
            }
        }
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

/// Routes the `log` crate to the console at `level`.
pub fn init_logger(level: log::LevelFilter) {
    // Only fails when a logger is already set, which is then the same one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
