//! The operator's terminal as the serial console's keyboard: raw mode while
//! a boot runs, restored on every way out, and the escape key that ends the
//! emulator.
//!
//! Raw mode sends every key to the guest as the byte the terminal makes of
//! it — Enter is CR, Backspace DEL, Ctrl-C 0x03 (the guest's to handle, as on
//! a real serial line), Ctrl-A tessera's own focus key — except
//! [`ESCAPE_KEY`], which the tool keeps. Output processing stays on, so that
//! the transcript's LF line ends still start a new line on the screen.
//!
//! The terminal is restored by the guard's `Drop` (a normal end, an error
//! returned, SIGINT/SIGTERM/SIGHUP, which the boot loop turns into an
//! ordinary return) and by a panic hook: the tool is built with
//! `panic = "abort"`, so a panic runs no destructors.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, Once};

/// The key that ends the emulator: Ctrl-] (GS, 0x1d), telnet's escape. Not
/// Ctrl-A as in QEMU, which is tessera's focus key inside the console.
pub const ESCAPE_KEY: u8 = 0x1d;
/// How messages name [`ESCAPE_KEY`].
pub const ESCAPE_NAME: &str = "Ctrl-]";

/// The bytes of `keys` that go to the guest, and whether the escape key
/// came (keys after it are dropped: the session is over).
pub fn split_at_escape(keys: &[u8]) -> (&[u8], bool) {
    match keys.iter().position(|&k| k == ESCAPE_KEY) {
        Some(at) => (&keys[..at], true),
        None => (keys, false),
    }
}

/// Whether standard input is a terminal this process may switch to raw
/// mode: one it is in the foreground of. A background job (`cargo run &`)
/// would be stopped by SIGTTOU for trying, and must not steal the keys.
pub fn stdin_is_interactive() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read process and terminal
    // state; fd 0 is ours whatever it refers to.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

/// The terminal settings to put back, for the panic hook, which cannot reach
/// the guard.
static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

fn restore_saved() {
    // A poisoned lock still holds the settings; restoring matters more.
    let saved = match SAVED.lock() {
        Ok(mut saved) => saved.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(original) = saved {
        // SAFETY: tcsetattr reads the termios we saved from this terminal.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &original);
        }
    }
}

/// Standard input in raw mode until dropped.
pub struct RawMode(());

impl RawMode {
    /// Switches standard input (a terminal) to raw mode.
    pub fn enter() -> io::Result<Self> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_saved();
                previous(info);
            }));
        });
        // SAFETY: termios is plain data that tcgetattr fills in.
        let mut original: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 and a valid pointer to a termios.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut original) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = original;
        // SAFETY: cfmakeraw only edits the struct it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_oflag |= libc::OPOST;
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(original);
        // SAFETY: as above; TCSANOW applies it at once.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            let error = io::Error::last_os_error();
            restore_saved();
            return Err(error);
        }
        Ok(Self(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_saved();
    }
}

/// Forwards the keys typed on standard input to `keys` until the escape
/// key, which sets `escaped`, or the end of input. The thread blocks in
/// read(2) and is never joined: the process ends around it.
pub fn forward_keys(keys: Sender<Vec<u8>>, escaped: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut stdin = io::stdin();
        let mut buffer = [0u8; 256];
        loop {
            let count = match stdin.read(&mut buffer) {
                Ok(0) => return,
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let (send, escape) = split_at_escape(&buffer[..count]);
            if !send.is_empty() && keys.send(send.to_vec()).is_err() {
                return;
            }
            if escape {
                escaped.store(true, Ordering::SeqCst);
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pass_through_until_the_escape_key() {
        // Ctrl-A (the guest's focus key), CR, DEL and Ctrl-C all go to the guest.
        let keys = b"\x01\x01\x01ls\r\x7f\x03";
        assert_eq!(split_at_escape(keys), (&keys[..], false));
        assert_eq!(split_at_escape(b"ab\x1dcd"), (&b"ab"[..], true));
        assert_eq!(split_at_escape(b"\x1d"), (&b""[..], true));
        assert_eq!(split_at_escape(b""), (&b""[..], false));
        assert_eq!(
            ESCAPE_KEY,
            b']' & 0x1f,
            "Ctrl-] is `]` with the top bits cleared"
        );
    }
}
