//! The shell's line editor: turns the operator's keystrokes into a command
//! line, and says what to echo so the terminal shows what was typed.
//!
//! The serial line has no local echo and no line discipline of its own, so
//! the editor does both. It knows:
//!
//! - printable ASCII (0x20..=0x7e) appends to the line, up to
//!   [`LINE_CAPACITY`]; a key past that rings the bell;
//! - Backspace (0x7f, or 0x08) erases the last character;
//! - Ctrl-U erases the whole line; Ctrl-C abandons it (`^C` and a new line);
//! - CR or LF ends the line, and CR LF counts as one Enter, because
//!   terminals send either or both;
//! - Up and Down (`ESC [ A`, `ESC [ B`, or `ESC O A`/`B` in application
//!   cursor mode) walk the last [`HISTORY_CAPACITY`] distinct lines; any
//!   other escape sequence (Left, Right, Delete, function keys, also the
//!   Linux console's `ESC [ [ A`) is read to its end and ignored, so its
//!   bytes never land in the line;
//! - every other byte is ignored.
//!
//! It edits at the end of the line only: there is no cursor to move, so a
//! redraw is "return to column 0, prompt, line, erase to end of row". That is
//! exact as long as prompt and line fit in one row, which is why a line is at
//! most 70 characters: with the 9-character prompt it fits an 80-column
//! terminal. The editor writes nothing to the UART itself; echo goes to a
//! closure.

use alloc::collections::VecDeque;
use alloc::string::String;

/// The shell's prompt.
pub const PROMPT: &str = "tessera> ";

/// The longest command line: with [`PROMPT`], one 80-column row.
pub const LINE_CAPACITY: usize = 70;

/// How many past lines Up can recall.
pub const HISTORY_CAPACITY: usize = 16;

const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESCAPE: u8 = 0x1b;
const BELL: &[u8] = b"\x07";
/// Erase from the cursor to the end of the row (ECMA-48 EL, "CSI K").
const ERASE_TO_END: &[u8] = b"\x1b[K";

/// What a keystroke completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditorEvent {
    /// Enter: this line (possibly empty), already echoed with a new line.
    Line(String),
    /// Ctrl-C: the line was abandoned; the caller prints a new prompt.
    Cancelled,
}

/// Where the editor is in an escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    None,
    /// After ESC.
    Started,
    /// After `ESC [` (CSI) or `ESC O` (SS3): parameters until a final byte.
    Sequence,
    /// After `ESC [ [`: the Linux console's F1..F5, one more byte to come.
    LinuxFunctionKey,
}

/// One line being edited, and the lines entered before it.
#[derive(Clone, Debug)]
pub struct LineEditor {
    line: String,
    history: VecDeque<String>,
    /// Which history entry is shown, 0 being the newest; `None` while the
    /// operator edits their own line.
    browsing: Option<usize>,
    /// The operator's own line, kept while they browse the history.
    draft: String,
    escape: Escape,
    /// The last byte was a CR, so an LF now is the second half of CR LF.
    after_carriage_return: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line and history.
    pub fn new() -> LineEditor {
        LineEditor {
            line: String::with_capacity(LINE_CAPACITY),
            history: VecDeque::with_capacity(HISTORY_CAPACITY),
            browsing: None,
            draft: String::new(),
            escape: Escape::None,
            after_carriage_return: false,
        }
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The remembered lines, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Writes the prompt and the line so far over the current row: after
    /// the console printed something else (a focus line, a log message).
    pub fn redraw(&self, mut echo: impl FnMut(&[u8])) {
        echo(b"\r");
        echo(PROMPT.as_bytes());
        echo(self.line.as_bytes());
        echo(ERASE_TO_END);
    }

    /// Takes one byte typed by the operator; `echo` receives what the
    /// terminal should show. Returns the line on Enter.
    pub fn feed(&mut self, byte: u8, mut echo: impl FnMut(&[u8])) -> Option<EditorEvent> {
        let after_carriage_return = core::mem::take(&mut self.after_carriage_return);
        match self.escape {
            Escape::None => {}
            Escape::Started => match byte {
                b'[' | b'O' => {
                    self.escape = Escape::Sequence;
                    return None;
                }
                ESCAPE => return None,
                // ESC and a printable key (Alt-x): a sequence of two, ignored.
                0x20..=0x7e => {
                    self.escape = Escape::None;
                    return None;
                }
                // A control key after ESC is a key of its own (ESC, then
                // Enter): the sequence is abandoned and the key acted on.
                _ => self.escape = Escape::None,
            },
            Escape::LinuxFunctionKey => {
                self.escape = Escape::None;
                return None;
            }
            // `[` right after `ESC [` opens the Linux console's function
            // keys; as a final byte it would end the sequence and let their
            // last letter land in the line.
            Escape::Sequence if byte == b'[' => {
                self.escape = Escape::LinuxFunctionKey;
                return None;
            }
            Escape::Sequence => match byte {
                // Parameter and intermediate bytes (ECMA-48 5.4).
                0x20..=0x3f => return None,
                0x40..=0x7e => {
                    self.escape = Escape::None;
                    match byte {
                        b'A' => self.recall_older(&mut echo),
                        b'B' => self.recall_newer(&mut echo),
                        _ => {}
                    }
                    return None;
                }
                _ => self.escape = Escape::None,
            },
        }
        match byte {
            b'\n' if after_carriage_return => None,
            b'\r' | b'\n' => {
                self.after_carriage_return = byte == b'\r';
                echo(b"\r\n");
                Some(EditorEvent::Line(self.enter()))
            }
            0x20..=0x7e => {
                if self.line.len() == LINE_CAPACITY {
                    echo(BELL);
                } else {
                    self.browsing = None;
                    self.line.push(char::from(byte));
                    echo(&[byte]);
                }
                None
            }
            DELETE | BACKSPACE => {
                if self.line.pop().is_some() {
                    self.browsing = None;
                    // Back over the character, blank it, back again.
                    echo(b"\x08 \x08");
                }
                None
            }
            CTRL_U => {
                if !self.line.is_empty() {
                    self.line.clear();
                    self.browsing = None;
                    self.redraw(echo);
                }
                None
            }
            CTRL_C => {
                self.line.clear();
                self.browsing = None;
                echo(b"^C\r\n");
                Some(EditorEvent::Cancelled)
            }
            ESCAPE => {
                self.escape = Escape::Started;
                None
            }
            _ => None,
        }
    }

    /// Ends the line: remembers it (unless blank or the same as the newest
    /// entry, as a shell's ignoredups does) and starts an empty one.
    fn enter(&mut self) -> String {
        let line = core::mem::replace(&mut self.line, String::with_capacity(LINE_CAPACITY));
        self.browsing = None;
        self.draft.clear();
        let blank = line.trim().is_empty();
        if !blank && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY_CAPACITY {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        line
    }

    fn recall_older(&mut self, echo: &mut impl FnMut(&[u8])) {
        let shown = match self.browsing {
            None if !self.history.is_empty() => {
                self.draft.clone_from(&self.line);
                0
            }
            Some(shown) if shown + 1 < self.history.len() => shown + 1,
            // Nothing older: the bell, and the line stays.
            _ => return echo(BELL),
        };
        self.show_history(shown, echo);
    }

    fn recall_newer(&mut self, echo: &mut impl FnMut(&[u8])) {
        match self.browsing {
            None => echo(BELL),
            Some(0) => {
                self.browsing = None;
                self.line.clone_from(&self.draft);
                self.redraw(echo);
            }
            Some(shown) => self.show_history(shown - 1, echo),
        }
    }

    fn show_history(&mut self, shown: usize, echo: &mut impl FnMut(&[u8])) {
        let index = self.history.len() - 1 - shown;
        self.line.clone_from(&self.history[index]);
        self.browsing = Some(shown);
        self.redraw(echo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    const UP: &[u8] = b"\x1b[A";
    const DOWN: &[u8] = b"\x1b[B";

    /// Feeds `input`; returns the echo and the events.
    fn type_in(editor: &mut LineEditor, input: &[u8]) -> (Vec<u8>, Vec<EditorEvent>) {
        let mut echo = Vec::new();
        let mut events = Vec::new();
        for &byte in input {
            if let Some(event) = editor.feed(byte, |bytes: &[u8]| echo.extend_from_slice(bytes)) {
                events.push(event);
            }
        }
        (echo, events)
    }

    fn lines(events: &[EditorEvent]) -> Vec<&str> {
        events
            .iter()
            .map(|event| match event {
                EditorEvent::Line(line) => line.as_str(),
                EditorEvent::Cancelled => "<cancelled>",
            })
            .collect()
    }

    fn redrawn(line: &str) -> Vec<u8> {
        [b"\r", PROMPT.as_bytes(), line.as_bytes(), ERASE_TO_END].concat()
    }

    #[test]
    fn typed_characters_are_echoed_and_enter_completes_the_line() {
        let mut editor = LineEditor::new();
        let (echo, events) = type_in(&mut editor, b"vms\r");
        assert_eq!(echo, b"vms\r\n");
        assert_eq!(lines(&events), ["vms"]);
        assert_eq!(editor.line(), "");
    }

    #[test]
    fn cr_lf_is_one_enter_but_lf_cr_and_doubles_are_two() {
        let mut editor = LineEditor::new();
        let (_, events) = type_in(&mut editor, b"a\r\nb\n\rc\r\r");
        assert_eq!(lines(&events), ["a", "b", "", "c", ""]);
        // The last CR pairs with the next LF, whenever it comes.
        let (_, events) = type_in(&mut editor, b"\n\n\n");
        assert_eq!(lines(&events), ["", ""]);
    }

    #[test]
    fn an_lf_after_other_bytes_is_still_an_enter() {
        let mut editor = LineEditor::new();
        // CR, then a key, then LF: the LF is not half of a CR LF.
        let (_, events) = type_in(&mut editor, b"\rx\n");
        assert_eq!(lines(&events), ["", "x"]);
    }

    #[test]
    fn backspace_erases_with_either_key_and_not_past_the_start() {
        let mut editor = LineEditor::new();
        let (echo, _) = type_in(&mut editor, b"ab\x7f\x08\x7f");
        assert_eq!(echo, b"ab\x08 \x08\x08 \x08");
        assert_eq!(editor.line(), "");
        let (_, events) = type_in(&mut editor, b"c\r");
        assert_eq!(lines(&events), ["c"]);
    }

    #[test]
    fn ctrl_u_clears_the_line_and_redraws() {
        let mut editor = LineEditor::new();
        let (echo, events) = type_in(&mut editor, b"kill 3\x15");
        assert!(events.is_empty());
        assert_eq!(echo, [&b"kill 3"[..], &redrawn("")].concat());
        assert_eq!(editor.line(), "");
        // On an empty line it has nothing to do.
        assert_eq!(type_in(&mut editor, b"\x15").0, b"");
    }

    #[test]
    fn ctrl_c_abandons_the_line_without_remembering_it() {
        let mut editor = LineEditor::new();
        let (echo, events) = type_in(&mut editor, b"reboot\x03");
        assert_eq!(echo, b"reboot^C\r\n");
        assert_eq!(events, [EditorEvent::Cancelled]);
        assert_eq!(editor.line(), "");
        assert_eq!(editor.history().count(), 0);
    }

    #[test]
    fn the_line_stops_at_its_capacity_with_a_bell() {
        let mut editor = LineEditor::new();
        let input = [b'x'; LINE_CAPACITY + 2];
        let (echo, _) = type_in(&mut editor, &input);
        assert_eq!(editor.line().len(), LINE_CAPACITY);
        assert_eq!(&echo[LINE_CAPACITY..], b"\x07\x07");
        // Room again after a backspace.
        type_in(&mut editor, b"\x7fy");
        assert!(editor.line().ends_with("xy"));
        assert!(PROMPT.len() + LINE_CAPACITY < 80);
    }

    #[test]
    fn control_and_non_ascii_bytes_are_ignored() {
        let mut editor = LineEditor::new();
        let (echo, events) = type_in(&mut editor, b"a\x00\x01\x04\t\x80\xffb\r");
        assert_eq!(echo, b"ab\r\n");
        assert_eq!(lines(&events), ["ab"]);
    }

    #[test]
    fn up_and_down_walk_the_history_and_restore_the_draft() {
        let mut editor = LineEditor::new();
        type_in(&mut editor, b"one\rtwo\rthree\r");
        type_in(&mut editor, b"dra");
        let (echo, _) = type_in(&mut editor, UP);
        assert_eq!(echo, redrawn("three"));
        type_in(&mut editor, UP);
        assert_eq!(editor.line(), "two");
        type_in(&mut editor, UP);
        assert_eq!(editor.line(), "one");
        // At the oldest: the bell, the line stays.
        let (echo, _) = type_in(&mut editor, UP);
        assert_eq!(echo, b"\x07");
        assert_eq!(editor.line(), "one");
        type_in(&mut editor, DOWN);
        assert_eq!(editor.line(), "two");
        type_in(&mut editor, DOWN);
        type_in(&mut editor, DOWN);
        assert_eq!(editor.line(), "dra");
        // Below the draft: the bell.
        assert_eq!(type_in(&mut editor, DOWN).0, b"\x07");
        assert_eq!(editor.line(), "dra");
    }

    #[test]
    fn up_with_no_history_rings_the_bell() {
        let mut editor = LineEditor::new();
        let (echo, _) = type_in(&mut editor, UP);
        assert_eq!(echo, b"\x07");
        assert_eq!(editor.line(), "");
    }

    #[test]
    fn a_recalled_line_can_be_edited_and_entered() {
        let mut editor = LineEditor::new();
        type_in(&mut editor, b"pause 1\r");
        let (_, events) = type_in(&mut editor, b"\x1b[A\x7f2\r");
        assert_eq!(lines(&events), ["pause 2"]);
        assert_eq!(editor.history().collect::<Vec<_>>(), ["pause 1", "pause 2"]);
    }

    #[test]
    fn history_keeps_the_newest_distinct_non_blank_lines() {
        let mut editor = LineEditor::new();
        type_in(&mut editor, b"vms\rvms\r   \r\r");
        assert_eq!(editor.history().collect::<Vec<_>>(), ["vms"]);
        for index in 0..HISTORY_CAPACITY + 3 {
            type_in(&mut editor, std::format!("info {index}\r").as_bytes());
        }
        let history: Vec<_> = editor.history().map(ToString::to_string).collect();
        assert_eq!(history.len(), HISTORY_CAPACITY);
        assert_eq!(history[0], "info 3");
        assert_eq!(
            history[HISTORY_CAPACITY - 1],
            std::format!("info {}", HISTORY_CAPACITY + 2)
        );
        // Up reaches exactly the oldest kept entry, then rings.
        for _ in 0..HISTORY_CAPACITY {
            assert_ne!(type_in(&mut editor, UP).0, b"\x07");
        }
        assert_eq!(editor.line(), "info 3");
        assert_eq!(type_in(&mut editor, UP).0, b"\x07");
    }

    #[test]
    fn application_mode_arrows_work_too() {
        let mut editor = LineEditor::new();
        type_in(&mut editor, b"mem\r");
        type_in(&mut editor, b"\x1bOA");
        assert_eq!(editor.line(), "mem");
        type_in(&mut editor, b"\x1bOB");
        assert_eq!(editor.line(), "");
    }

    #[test]
    fn other_escape_sequences_are_swallowed_whole() {
        let mut editor = LineEditor::new();
        // Right, Left, Delete, F5, Alt-x, ESC ESC [ C, a colour report,
        // the Linux console's F1.
        let input = b"a\x1b[C\x1b[D\x1b[3~\x1b[15~\x1bx\x1b\x1b[C\x1b[38;5;1m\x1b[[Ab\r";
        let (echo, events) = type_in(&mut editor, input);
        assert_eq!(echo, b"ab\r\n");
        assert_eq!(lines(&events), ["ab"]);
    }

    #[test]
    fn a_control_key_ends_an_unfinished_escape_sequence_and_acts() {
        let mut editor = LineEditor::new();
        let (_, events) = type_in(&mut editor, b"up\x1b\r");
        assert_eq!(lines(&events), ["up"]);
        let (_, events) = type_in(&mut editor, b"time\x1b[1;\x7f\r");
        assert_eq!(lines(&events), ["tim"]);
        let (echo, events) = type_in(&mut editor, b"x\x1b[\x03");
        assert_eq!(events, [EditorEvent::Cancelled]);
        assert_eq!(echo, b"x^C\r\n");
    }

    #[test]
    fn redraw_shows_the_prompt_and_the_line() {
        let mut editor = LineEditor::new();
        type_in(&mut editor, b"focus 2");
        let mut echo = Vec::new();
        editor.redraw(|bytes: &[u8]| echo.extend_from_slice(bytes));
        assert_eq!(echo, redrawn("focus 2"));
    }
}
