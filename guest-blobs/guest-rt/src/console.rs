//! `print!`/`println!` over the CONSOLE_WRITE hypercall.
//!
//! Formatting goes into a small buffer on the stack that is handed to the
//! hypervisor when it fills and at the end of each `print!`; the hypervisor
//! itself assembles lines and prefixes them with the VM's name, so a line may
//! arrive in several writes.

use core::fmt;

use crate::hypercall;

/// Writes all of `bytes`, in as many CONSOLE_WRITE calls as it takes. Gives
/// up at the first error, or if the hypervisor stops taking bytes.
pub fn write_all(mut bytes: &[u8]) -> Result<(), hypercall::Error> {
    while !bytes.is_empty() {
        match hypercall::console_write(bytes)? {
            0 => return Err(hypercall::Error::Other(0)),
            written => bytes = &bytes[written.min(bytes.len())..],
        }
    }
    Ok(())
}

/// A `fmt::Write` sink that batches output into hypercalls.
pub struct Console {
    buffer: [u8; 128],
    length: usize,
}

impl Console {
    /// An empty console writer.
    pub const fn new() -> Console {
        Console {
            buffer: [0; 128],
            length: 0,
        }
    }

    /// Hands what is buffered to the hypervisor. Output that cannot be
    /// written is dropped: a guest has nowhere else to report it.
    pub fn flush(&mut self) {
        let _ = write_all(&self.buffer[..self.length]);
        self.length = 0;
    }
}

impl Default for Console {
    fn default() -> Console {
        Console::new()
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.length == self.buffer.len() {
                self.flush();
            }
            self.buffer[self.length] = byte;
            self.length += 1;
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The body of `print!`; not for direct use.
#[doc(hidden)]
pub fn print_fmt(arguments: fmt::Arguments) {
    let mut console = Console::new();
    let _ = fmt::Write::write_fmt(&mut console, arguments);
}

/// Prints to the VM's console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the VM's console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
