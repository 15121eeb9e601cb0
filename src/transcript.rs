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
/// Ends the kernel's line for a module that did not become a VM (a bad
/// option, an image the loader refuses, too little memory, …).
pub const VM_REFUSED_MARKER: &str = "VM not created";
/// Starts the kernel's line when it cannot run any guest (no VMX, or VMX
/// locked off by the firmware); it then goes idle.
pub const CANNOT_RUN_GUESTS_MARKER: &str = "tessera: cannot run guests:";
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

/// Removes the second copy of GRUB's lines that UEFI firmware mirrors.
///
/// On UEFI, GRUB writes each message twice to COM1: once through its own
/// serial terminal and once through the EFI console, which OVMF copies to the
/// serial port too. The copies arrive as a repeated line or, when GRUB wrote
/// no newline in between, as one line holding the text twice ("Booting
/// `tessera'Booting `tessera'"). Only what comes before the kernel's banner is
/// touched (after it, GRUB is gone) and only the display: the raw log and the
/// verdict see every byte. Before the banner, text is held until its line
/// ends; [`MirrorFilter::finish`] lets out the rest.
#[derive(Debug, Default)]
pub struct MirrorFilter {
    partial: String,
    last: Option<String>,
    blank_run: bool,
    banner_seen: bool,
}

impl MirrorFilter {
    /// Appends to `out` what of `text` (cleaned text) is worth showing.
    pub fn filter(&mut self, text: &str, out: &mut String) {
        if self.banner_seen {
            out.push_str(text);
            return;
        }
        let mut rest = text;
        while let Some(newline) = rest.find('\n') {
            self.partial.push_str(&rest[..newline]);
            let line = std::mem::take(&mut self.partial);
            rest = &rest[newline + 1..];
            if line.contains(BANNER_MARKER) {
                self.banner_seen = true;
                out.push_str(&line);
                out.push('\n');
                out.push_str(rest);
                return;
            }
            self.line(&line, out);
        }
        self.partial.push_str(rest);
    }

    fn line(&mut self, line: &str, out: &mut String) {
        let line = undouble(line);
        if line.trim().is_empty() {
            // The copies double the blank lines too.
            if !self.blank_run {
                out.push('\n');
            }
            self.blank_run = true;
            return;
        }
        self.blank_run = false;
        if self.last.as_deref() == Some(line) {
            return;
        }
        self.last = Some(line.to_owned());
        out.push_str(line);
        out.push('\n');
    }

    /// Lets out a held unterminated line (the emulator has stopped, or GRUB
    /// waits at its prompt).
    pub fn finish(&mut self, out: &mut String) {
        out.push_str(&std::mem::take(&mut self.partial));
    }

    /// The unterminated text held back so far.
    #[cfg(test)]
    pub fn pending(&self) -> &str {
        &self.partial
    }
}

/// `XX` → `X` when X has a letter in it, keeping leading blanks (only the
/// first copy is indented); anything else unchanged.
fn undouble(line: &str) -> &str {
    let body = line.trim_start();
    let indent = line.len() - body.len();
    let half = body.len() / 2;
    if body.len().is_multiple_of(2)
        && body.is_char_boundary(half)
        && body[..half] == body[half..]
        && body[..half].chars().any(char::is_alphabetic)
    {
        &line[..indent + half]
    } else {
        line
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
    refused: Vec<String>,
    cannot_run_guests: Option<String>,
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
        if self.banner_seen {
            if line.contains(VM_REFUSED_MARKER) {
                self.refused.push(line.trim().to_owned());
            }
            if let Some(at) = line.find(CANNOT_RUN_GUESTS_MARKER) {
                let reason = line[at + CANNOT_RUN_GUESTS_MARKER.len()..].trim();
                self.cannot_run_guests
                    .get_or_insert_with(|| reason.to_owned());
            }
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
            // A clean power-off is only a success if the guests it was given ran.
            (Some(_), true) if self.cannot_run_guests.is_some() => Verdict::NoGuestCouldRun {
                reason: self.cannot_run_guests.clone().unwrap_or_default(),
            },
            (Some(_), true) if !self.refused.is_empty() => Verdict::VmsRefused {
                lines: self.refused.clone(),
            },
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
    /// The hypervisor powered off cleanly, but refused at least one module
    /// ("VM not created"); the other VMs ran.
    VmsRefused {
        /// The kernel's lines naming each refused module and the reason.
        lines: Vec<String>,
    },
    /// The hypervisor powered off cleanly without running any guest: the
    /// machine offers no usable hardware virtualization (QEMU TCG has no VMX).
    NoGuestCouldRun {
        /// The kernel's reason.
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
    fn a_refused_module_is_not_a_clean_run() {
        let t = transcript(
            "tessera v0.1.0\n\
             [ERROR] vm toolarge: segment 0x100000..0x101e75 does not fit in 64 KiB of guest RAM; VM not created\n\
             [ERROR] module 6 (\"name=odd mem=1M colour=blue\"): unknown option `colour`; VM not created\n\
             tessera: all VMs have stopped\ntessera: powering off (every VM has stopped)\n",
        );
        match t.verdict(true) {
            Verdict::VmsRefused { lines } => {
                assert_eq!(lines.len(), 2);
                assert!(lines[0].starts_with("[ERROR] vm toolarge: segment"));
                assert!(lines[1].contains("unknown option `colour`"));
            }
            other => panic!("{other:?}"),
        }
        // Still running: the power-off is pending, whatever came before.
        assert_eq!(t.verdict(false), Verdict::PoweringOff);
    }

    #[test]
    fn no_vmx_is_not_a_clean_run() {
        let t = transcript(
            "tessera v0.1.0\n\
             tessera: cannot run guests: this CPU has no VMX (CPUID.1:ECX.VMX = 0)\n\
             tessera: powering off (no hardware virtualization to run guests with)\n",
        );
        assert_eq!(
            t.verdict(true),
            Verdict::NoGuestCouldRun {
                reason: "this CPU has no VMX (CPUID.1:ECX.VMX = 0)".into()
            }
        );
    }

    #[test]
    fn a_crash_wins_over_refusals_and_grub_text_is_not_the_kernels() {
        let t = transcript(
            "tessera v0.1.0\nx; VM not created\ntessera: PANIC boom\ntessera: powering off\n",
        );
        assert!(matches!(t.verdict(true), Verdict::Crashed { .. }));
        // Before the banner nothing is the kernel's.
        let t = transcript("VM not created\ntessera v0.1.0\ntessera: powering off\n");
        assert!(matches!(t.verdict(true), Verdict::PoweredOff { .. }));
    }

    fn unmirror(chunks: &[&str]) -> String {
        let mut filter = MirrorFilter::default();
        let mut out = String::new();
        for chunk in chunks {
            filter.filter(chunk, &mut out);
        }
        filter.finish(&mut out);
        out
    }

    #[test]
    fn ovmf_mirrored_grub_lines_are_shown_once() {
        // As qemu-uefi and bochs-uefi transcripts show them, after stripping.
        let mirrored = "Welcome to GRUB!\n\n    Booting `tessera'Booting `tessera'\n\n\n\n\
            WARNING: no console will be available to OSWARNING: no console will be available to OS\n\n\
            error: no suitable video mode found.\nerror: no suitable video mode found.\n\n\
            tessera v0.1.0 - bare-metal\nboot: ok\nboot: ok\n";
        assert_eq!(
            unmirror(&[mirrored]),
            "Welcome to GRUB!\n\n    Booting `tessera'\n\n\
             WARNING: no console will be available to OS\n\n\
             error: no suitable video mode found.\n\n\
             tessera v0.1.0 - bare-metal\nboot: ok\nboot: ok\n"
        );
        // Split anywhere, the same.
        let (a, b) = mirrored.split_at(37);
        assert_eq!(unmirror(&[a, b]), unmirror(&[mirrored]));
    }

    #[test]
    fn the_mirror_filter_leaves_other_text_alone() {
        assert_eq!(unmirror(&["== x ==\n", "1212\n"]), "== x ==\n1212\n");
        // GRUB's last prompt has no newline: held, then let out at the end.
        let mut filter = MirrorFilter::default();
        let mut out = String::new();
        filter.filter("error: x\nPress any key to continue...", &mut out);
        assert_eq!(out, "error: x\n");
        assert_eq!(filter.pending(), "Press any key to continue...");
        filter.finish(&mut out);
        assert!(out.ends_with("continue..."));
    }

    #[test]
    fn power_off_reasons() {
        assert_eq!(power_off_reason("tessera: powering off (idle)"), "idle");
        assert_eq!(power_off_reason("x tessera: powering off (a (b))"), "a (b)");
        assert_eq!(power_off_reason("tessera: powering off"), "");
    }
}
