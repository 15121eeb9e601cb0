//! The serial transcript of a boot: cleaning it for the terminal, and judging
//! how the boot ended from the kernel's transcript contract.
//!
//! Pure logic over bytes and lines: no files, no processes, no clocks. The boot
//! supervisor feeds it what the emulator wrote and asks it for a [`Verdict`].

/// Printed by the kernel as its last line before it powers the machine off.
pub const POWER_OFF_MARKER: &str = "tessera: powering off";
/// Starts the kernel's report of a CPU exception.
pub const CRASH_MARKER: &str = "tessera: CRASH";
/// Starts the kernel's report of a Rust panic.
pub const PANIC_MARKER: &str = "tessera: PANIC";
/// Part of the kernel's banner, the first thing it prints.
pub const BANNER_MARKER: &str = "tessera v";
/// GRUB's prompt after a menu entry failed; it then waits for a key forever.
pub const GRUB_GAVE_UP_MARKER: &str = "Press any key to continue";

/// Removes terminal control sequences from a byte stream, chunk by chunk.
///
/// GRUB (and OVMF) draw on the serial port as on a VT100: clear screen, cursor
/// moves, colours. Those bytes stay in the raw log but would garble a transcript
/// read in a pipe or a file, and would hide markers from a substring search.
/// A sequence split across two chunks is handled: the state carries over.
#[derive(Debug, Default)]
pub struct ControlStripper {
    state: StripState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum StripState {
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// Inside `ESC [` … final byte.
    Csi,
    /// Inside `ESC ]` … BEL or `ESC \`.
    Osc,
    /// ESC seen inside an OSC string.
    OscEscape,
}

impl ControlStripper {
    /// Appends the printable part of `input` to `out`. Keeps `\n`, `\t` and all
    /// bytes from 0x80 up (UTF-8); drops `\r` and other C0 controls.
    pub fn strip(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            self.state = match (self.state, byte) {
                (StripState::Text, 0x1b) => StripState::Escape,
                (StripState::Text, b'\n' | b'\t') => {
                    out.push(byte);
                    StripState::Text
                }
                (StripState::Text, 0x00..=0x1f | 0x7f) => StripState::Text,
                (StripState::Text, _) => {
                    out.push(byte);
                    StripState::Text
                }
                (StripState::Escape, b'[') => StripState::Csi,
                (StripState::Escape, b']') => StripState::Osc,
                // Intermediate bytes of a two-part escape (`ESC ( B`): keep waiting.
                (StripState::Escape, 0x20..=0x2f) => StripState::Escape,
                (StripState::Escape, _) => StripState::Text,
                // Parameter and intermediate bytes; any other byte ends the sequence.
                (StripState::Csi, 0x20..=0x3f) => StripState::Csi,
                (StripState::Csi, _) => StripState::Text,
                (StripState::Osc, 0x07) => StripState::Text,
                (StripState::Osc, 0x1b) => StripState::OscEscape,
                (StripState::Osc, _) => StripState::Osc,
                (StripState::OscEscape, _) => StripState::Text,
            };
        }
    }
}

/// What the transcript has shown so far, line by line.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    partial: String,
    banner_seen: bool,
    power_off: Option<String>,
    crash: Option<String>,
    bootloader_errors: Vec<String>,
    bootloader_gave_up: bool,
}

impl Transcript {
    /// A transcript with nothing in it yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds cleaned text (output of [`ControlStripper`]).
    pub fn push(&mut self, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let mut rest: &str = &text;
        while let Some(newline) = rest.find('\n') {
            self.partial.push_str(&rest[..newline]);
            let line = std::mem::take(&mut self.partial);
            self.observe(&line);
            rest = &rest[newline + 1..];
        }
        self.partial.push_str(rest);
        // GRUB's prompt ends without a newline and then nothing more comes.
        if !self.banner_seen && self.partial.contains(GRUB_GAVE_UP_MARKER) {
            self.bootloader_gave_up = true;
        }
    }

    /// Treats a trailing unterminated line as complete (the emulator has exited).
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.push(b"\n");
        }
    }

    fn observe(&mut self, line: &str) {
        if line.contains(CRASH_MARKER) || line.contains(PANIC_MARKER) {
            self.crash.get_or_insert_with(|| line.trim().to_owned());
        }
        if line.contains(POWER_OFF_MARKER) {
            self.power_off.get_or_insert_with(|| line.trim().to_owned());
        }
        if line.contains(BANNER_MARKER) {
            self.banner_seen = true;
        }
        if !self.banner_seen {
            let trimmed = line.trim();
            // GRUB repeats "you need to load the kernel first" for every later command.
            if trimmed.starts_with("error:") && !self.bootloader_errors.iter().any(|e| e == trimmed)
            {
                self.bootloader_errors.push(trimmed.to_owned());
            }
            if trimmed.contains(GRUB_GAVE_UP_MARKER) {
                self.bootloader_gave_up = true;
            }
        }
    }

    /// `error:` lines GRUB printed before the kernel started.
    pub fn bootloader_errors(&self) -> &[String] {
        &self.bootloader_errors
    }

    /// Whether the kernel's banner has appeared.
    pub fn banner_seen(&self) -> bool {
        self.banner_seen
    }

    /// Judges the boot from what has been seen; `emulator_exited` says whether
    /// the emulator process has ended.
    pub fn verdict(&self, emulator_exited: bool) -> Verdict {
        if let Some(line) = &self.crash {
            return Verdict::Crashed { line: line.clone() };
        }
        if self.bootloader_gave_up {
            return Verdict::BootloaderFailed {
                errors: self.bootloader_errors.clone(),
            };
        }
        match (&self.power_off, emulator_exited) {
            (Some(line), true) => Verdict::PoweredOff {
                reason: power_off_reason(line),
            },
            (Some(_), false) => Verdict::PoweringOff,
            (None, _) => Verdict::Incomplete,
        }
    }
}

/// How a boot stands, judged from the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel said it was powering off and the emulator has exited: success.
    PoweredOff {
        /// The reason in parentheses on the power-off line, if any.
        reason: String,
    },
    /// The power-off line is there but the emulator still runs.
    PoweringOff,
    /// The kernel reported a crash or panic (this line starts the report).
    Crashed {
        /// The line with the marker.
        line: String,
    },
    /// GRUB could not start the kernel.
    BootloaderFailed {
        /// GRUB's `error:` lines.
        errors: Vec<String>,
    },
    /// None of the above: still booting, or ended without a word.
    Incomplete,
}

/// `tessera: powering off (all VMs stopped)` → `all VMs stopped`.
fn power_off_reason(line: &str) -> String {
    let after = line
        .find(POWER_OFF_MARKER)
        .map(|at| &line[at + POWER_OFF_MARKER.len()..])
        .unwrap_or("")
        .trim();
    after
        .strip_prefix('(')
        .and_then(|rest| rest.rfind(')').map(|close| &rest[..close]))
        .unwrap_or(after)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_all(chunks: &[&[u8]]) -> String {
        let mut stripper = ControlStripper::default();
        let mut out = Vec::new();
        for chunk in chunks {
            stripper.strip(chunk, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn transcript(text: &str) -> Transcript {
        let mut t = Transcript::new();
        t.push(strip_all(&[text.as_bytes()]).as_bytes());
        t
    }

    #[test]
    fn strips_what_grub_and_ovmf_send() {
        // Taken from real SeaBIOS and OVMF transcripts.
        let raw = b"\x1b[H\x1b[J\x1b[1;1H  Booting `tessera'\r\n\r\n\
            \x1b[2J\x1b[01;01H\x1b[=3h\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\r\n\
            tessera v0.1.0\r\n";
        assert_eq!(
            strip_all(&[raw]),
            "  Booting `tessera'\n\nWelcome to GRUB!\ntessera v0.1.0\n"
        );
    }

    #[test]
    fn strips_sequences_split_across_chunks() {
        assert_eq!(
            strip_all(&[b"a\x1b", b"[1;", b"1Hb\x1b]0;t", b"itle\x07c"]),
            "abc"
        );
        assert_eq!(strip_all(&[b"x\x1b(", b"By"]), "xy");
        assert_eq!(strip_all(&[b"\x1b]2;t\x1b", b"\\z"]), "z");
    }

    #[test]
    fn keeps_utf8_and_tabs() {
        assert_eq!(strip_all(&["vm «α»\tok\r\n".as_bytes()]), "vm «α»\tok\n");
    }

    #[test]
    fn a_clean_power_off_needs_the_line_and_an_exit() {
        let t =
            transcript("tessera v0.1.0\r\nboot: ok\r\ntessera: powering off (all VMs stopped)\r\n");
        assert_eq!(
            t.verdict(true),
            Verdict::PoweredOff {
                reason: "all VMs stopped".into()
            }
        );
        assert_eq!(t.verdict(false), Verdict::PoweringOff);
    }

    #[test]
    fn a_crash_wins_over_a_power_off() {
        let t = transcript(
            "tessera v0.1.0\ntessera: CRASH #GP(0) at rip=0x1234\nrax=0\n\
             tessera: powering off (crash)\n",
        );
        assert_eq!(
            t.verdict(true),
            Verdict::Crashed {
                line: "tessera: CRASH #GP(0) at rip=0x1234".into()
            }
        );
        let t = transcript("[  0.1] tessera: PANIC at src/mm.rs:10: out of memory\n");
        assert!(matches!(t.verdict(false), Verdict::Crashed { .. }));
    }

    #[test]
    fn no_power_off_line_is_incomplete() {
        let t = transcript("tessera v0.1.0\nmemory: 255 MiB usable\n");
        assert_eq!(t.verdict(true), Verdict::Incomplete);
        assert_eq!(t.verdict(false), Verdict::Incomplete);
        // An unterminated last line only counts once the stream has ended.
        let mut t = transcript("tessera v0.1.0\ntessera: powering off (done)");
        assert_eq!(t.verdict(true), Verdict::Incomplete);
        t.finish();
        assert!(matches!(t.verdict(true), Verdict::PoweredOff { .. }));
    }

    #[test]
    fn grub_failure_is_recognised_without_a_trailing_newline() {
        let t = transcript(
            "\x1b[H  Booting `tessera'\r\n\r\nerror: no multiboot header found.\r\n\
             error: you need to load the kernel first.\r\n\
             error: you need to load the kernel first.\r\n\r\nPress any key to continue...",
        );
        assert_eq!(
            t.verdict(false),
            Verdict::BootloaderFailed {
                errors: vec![
                    "error: no multiboot header found.".into(),
                    "error: you need to load the kernel first.".into()
                ]
            }
        );
    }

    #[test]
    fn a_grub_error_that_did_not_stop_the_boot_is_only_recorded() {
        let t = transcript(
            "error: file `/guests/a.bin' not found.\ntessera v0.1.0\n\
             error: not from grub\ntessera: powering off (done)\n",
        );
        assert_eq!(
            t.bootloader_errors(),
            ["error: file `/guests/a.bin' not found."]
        );
        assert!(matches!(t.verdict(true), Verdict::PoweredOff { .. }));
    }

    #[test]
    fn kernel_text_after_the_banner_is_not_taken_for_grub() {
        let t = transcript("tessera v0.1.0\nshell: Press any key to continue\n");
        assert_eq!(t.verdict(false), Verdict::Incomplete);
    }

    #[test]
    fn power_off_reasons() {
        assert_eq!(power_off_reason("tessera: powering off (idle)"), "idle");
        assert_eq!(power_off_reason("x tessera: powering off (a (b))"), "a (b)");
        assert_eq!(power_off_reason("tessera: powering off"), "");
    }
}
