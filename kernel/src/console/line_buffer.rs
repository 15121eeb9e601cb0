//! Turns a guest's byte stream into whole console lines.
//!
//! Guests write their serial output a byte at a time; printing bytes as they
//! come would interleave VMs mid-line. Each VM gets a buffer that releases a
//! line at `\n`, or when full (so a guest that never sends a newline still
//! shows its output), and drops `\r` and other control characters except tab.

/// The longest line kept before a forced break.
pub const LINE_CAPACITY: usize = 200;

/// One VM's pending partial line.
pub struct LineBuffer {
    bytes: [u8; LINE_CAPACITY],
    length: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer {
            bytes: [0; LINE_CAPACITY],
            length: 0,
        }
    }
}

impl LineBuffer {
    /// How many bytes wait for the end of their line.
    pub fn pending(&self) -> usize {
        self.length
    }

    /// Adds one byte; returns a complete line when one is ready.
    pub fn push(&mut self, byte: u8) -> Option<&[u8]> {
        match byte {
            b'\n' => {
                let length = core::mem::take(&mut self.length);
                return Some(&self.bytes[..length]);
            }
            b'\r' => {}
            b'\t' | 0x20..=0x7e => {
                if self.length == LINE_CAPACITY {
                    self.length = 0;
                }
                self.bytes[self.length] = byte;
                self.length += 1;
                if self.length == LINE_CAPACITY {
                    return Some(&self.bytes[..]);
                }
            }
            // Other control bytes and non-ASCII would corrupt the operator's
            // terminal; show them as '?'.
            _ => return self.push(b'?'),
        }
        None
    }

    /// Takes what is pending (when a VM stops mid-line).
    pub fn flush(&mut self) -> Option<&[u8]> {
        let length = core::mem::take(&mut self.length);
        (length > 0).then(|| &self.bytes[..length])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn feed(buffer: &mut LineBuffer, text: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &byte in text {
            if let Some(line) = buffer.push(byte) {
                lines.push(line.to_vec());
            }
        }
        lines
    }

    #[test]
    fn lines_split_at_newline_and_drop_carriage_returns() {
        let mut buffer = LineBuffer::default();
        let lines = feed(&mut buffer, b"hello\r\nworld\npartial");
        assert_eq!(lines, [b"hello".to_vec(), b"world".to_vec()]);
        assert_eq!(buffer.flush(), Some(&b"partial"[..]));
        assert_eq!(buffer.flush(), None);
    }

    #[test]
    fn long_lines_are_broken() {
        let mut buffer = LineBuffer::default();
        let text = [b'x'; LINE_CAPACITY + 5];
        let lines = feed(&mut buffer, &text);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), LINE_CAPACITY);
        assert_eq!(buffer.flush().map(|l| l.len()), Some(5));
    }

    #[test]
    fn control_bytes_are_neutralised() {
        let mut buffer = LineBuffer::default();
        let lines = feed(&mut buffer, b"a\x1b[2Jb\xff\n");
        assert_eq!(lines, [b"a?[2Jb?".to_vec()]);
    }

    #[test]
    fn pending_counts_the_unfinished_line() {
        let mut buffer = LineBuffer::default();
        assert_eq!(buffer.pending(), 0);
        for &byte in b"~ # " {
            assert_eq!(buffer.push(byte), None);
        }
        assert_eq!(buffer.pending(), 4, "a prompt waits for its newline");
        assert_eq!(buffer.flush(), Some(&b"~ # "[..]));
        assert_eq!(buffer.pending(), 0);
    }
}
