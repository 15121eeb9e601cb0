//! [`Text`], a fixed-capacity string for probe details (there is no heap).

use core::fmt::{self, Write};

/// Up to `CAPACITY` bytes of formatted text; what does not fit is cut and
/// marked with `...`.
#[derive(Clone, Copy)]
pub struct Text {
    bytes: [u8; Text::CAPACITY],
    length: usize,
    cut: bool,
}

impl Text {
    /// Room for a detail on a console line: tessera breaks lines at 200
    /// bytes and the line also holds `platform: PASS <probe>: `.
    pub const CAPACITY: usize = 150;

    /// An empty text.
    pub const fn new() -> Text {
        Text {
            bytes: [0; Text::CAPACITY],
            length: 0,
            cut: false,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, cut at a character boundary.
        core::str::from_utf8(&self.bytes[..self.length]).unwrap_or("?")
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::new()
    }
}

impl Write for Text {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = Text::CAPACITY - self.length;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.length..self.length + take].copy_from_slice(&text.as_bytes()[..take]);
        self.length += take;
        self.cut |= take < text.len();
        Ok(())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Formats into a [`Text`].
#[macro_export]
macro_rules! text {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut text = $crate::text::Text::new();
        let _ = write!(text, $($arg)*);
        text
    }};
}
