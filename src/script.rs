//! The `--input` script: a scripted console session for `boot`, so that a
//! test can type into the guest console and wait for its answers.
//!
//! One step per line:
//!
//! - any other line is typed: its bytes, then CR (what a terminal's Enter
//!   sends in raw mode);
//! - `@send TEXT` sends TEXT without the CR;
//! - `@wait TEXT` waits until a transcript line contains TEXT, at most the
//!   current wait limit (`@timeout`), else the boot fails;
//! - `@timeout S` sets that limit for the following waits, in seconds
//!   (0: none but the boot's own `--timeout`; the default is
//!   [`DEFAULT_WAIT`]);
//! - `@sleep MS` pauses;
//! - `@quit` ends the emulator, as the interactive escape key does;
//! - `@# …` is a comment; `@@…` types a line that starts with one `@`.
//!
//! Typed lines and `@send` take escapes: `\r`, `\n`, `\t`, `\e` (ESC),
//! `\\` and `\xHH` (any byte; `\x01` is Ctrl-A). `@wait` text is literal and
//! is matched against the cleaned transcript (no CR, no terminal control
//! sequences).
//!
//! Each wait looks only at the lines after the one that satisfied the
//! previous wait (the line being printed, a prompt without its newline,
//! included), so that waiting twice for the same prompt waits for a new one.
//!
//! Pure logic: the boot supervisor gives it the time and the transcript.

use std::fmt;
use std::time::{Duration, Instant};

/// How long a `@wait` waits unless `@timeout` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// One thing the script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes for the serial port.
    Send(Vec<u8>),
    /// Wait for a transcript line containing `text`, at most `limit`
    /// (`None`: no limit of its own).
    Wait {
        /// What the line must contain.
        text: String,
        /// How long to wait.
        limit: Option<Duration>,
    },
    /// Do nothing for this long.
    Sleep(Duration),
    /// End the emulator.
    Quit,
}

/// A step and the script line it came from (1-based), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The line number.
    pub line: usize,
    /// The step.
    pub step: Step,
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Where it came from (a path, or `<stdin>`), for messages.
    pub source: String,
    /// The steps, in order.
    pub steps: Vec<Located>,
}

/// A script that does not parse: names the source and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScriptError {
    /// Where the script came from (a path, or `<stdin>`).
    pub file: String,
    /// The line (1-based).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a script read from `source`.
pub fn parse(source: &str, text: &str) -> Result<Script, ScriptError> {
    let mut steps = Vec::new();
    let mut limit = Some(DEFAULT_WAIT);
    // `lines` also drops the CR of a CRLF file, which the author did not mean to type.
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let error = |message: String| ScriptError {
            file: source.to_owned(),
            line: number,
            message,
        };
        let step = if let Some(rest) = line.strip_prefix("@@") {
            let mut bytes = unescape(&format!("@{rest}")).map_err(error)?;
            bytes.push(b'\r');
            Step::Send(bytes)
        } else if let Some(directive) = line.strip_prefix('@') {
            if directive.starts_with('#') {
                continue;
            }
            let (name, argument) = match directive.split_once(' ') {
                Some((name, argument)) => (name, Some(argument)),
                None => (directive, None),
            };
            let required = |what: &str| {
                argument
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| error(format!("`@{name}` needs {what}")))
            };
            match name {
                "send" => Step::Send(unescape(required("the text to send")?).map_err(error)?),
                "wait" => Step::Wait {
                    text: required("the text to wait for")?.to_owned(),
                    limit,
                },
                "timeout" => {
                    let seconds = parse_number(required("a number of seconds")?)
                        .map_err(|e| error(format!("`@timeout`: {e}")))?;
                    limit = (seconds > 0).then(|| Duration::from_secs(seconds));
                    continue;
                }
                "sleep" => {
                    let ms = parse_number(required("a number of milliseconds")?)
                        .map_err(|e| error(format!("`@sleep`: {e}")))?;
                    Step::Sleep(Duration::from_millis(ms))
                }
                "quit" if argument.is_none() => Step::Quit,
                "quit" => return Err(error("`@quit` takes nothing after it".into())),
                _ => {
                    return Err(error(format!(
                        "unknown directive `@{name}` (the directives are @send, @wait, \
                         @timeout, @sleep, @quit and @# for a comment; `@@` types a line \
                         that starts with `@`)"
                    )))
                }
            }
        } else {
            let mut bytes = unescape(line).map_err(error)?;
            bytes.push(b'\r');
            Step::Send(bytes)
        };
        steps.push(Located { line: number, step });
    }
    Ok(Script {
        source: source.to_owned(),
        steps,
    })
}

fn parse_number(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{}` is not a whole number", text.trim()))
}

/// The bytes `text` stands for, its escapes decoded.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        let byte = match chars.next() {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('e') => 0x1b,
            Some('\\') => b'\\',
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                if hex.len() != 2 {
                    return Err(format!("`\\x{hex}` needs two hex digits"));
                }
                u8::from_str_radix(&hex, 16)
                    .map_err(|_| format!("`\\x{hex}` needs two hex digits"))?
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}` (the escapes are \\r \\n \\t \\e \\\\ and \\xHH)"
                ))
            }
            None => return Err("a lone `\\` ends the line (write `\\\\` for a backslash)".into()),
        };
        out.push(byte);
    }
    Ok(out)
}

/// Follows the transcript for `@wait`: the complete lines since the last
/// match, and the line being printed.
#[derive(Debug, Default)]
pub struct LineMatcher {
    since: Vec<String>,
    partial: String,
    /// The line being printed satisfied a wait: later waits skip it.
    partial_matched: bool,
}

impl LineMatcher {
    /// Adds cleaned transcript text.
    pub fn push(&mut self, text: &str) {
        let mut rest = text;
        while let Some(newline) = rest.find('\n') {
            self.partial.push_str(&rest[..newline]);
            let line = std::mem::take(&mut self.partial);
            if !std::mem::take(&mut self.partial_matched) {
                self.since.push(line);
            }
            rest = &rest[newline + 1..];
        }
        self.partial.push_str(rest);
    }

    /// Whether a line since the last match contains `text`; if so, that
    /// line and those before it no longer count.
    pub fn take(&mut self, text: &str) -> bool {
        if let Some(at) = self.since.iter().position(|line| line.contains(text)) {
            self.since.drain(..=at);
            return true;
        }
        if !self.partial_matched && self.partial.contains(text) {
            self.since.clear();
            self.partial_matched = true;
            return true;
        }
        false
    }
}

/// How a script's run ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `@quit` at this place (`FILE:LINE`).
    Quit {
        /// `FILE:LINE`.
        at: String,
    },
    /// A `@wait` ran out of time.
    Stalled {
        /// `FILE:LINE`.
        at: String,
        /// What it waited for.
        text: String,
        /// Its limit.
        limit: Duration,
    },
}

/// What one call of [`Runner::advance`] asks of the supervisor.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes to send, in order.
    pub sends: Vec<Vec<u8>>,
    /// Whether the run ends here.
    pub end: Option<End>,
}

/// Runs a script against the clock and the transcript.
#[derive(Debug)]
pub struct Runner {
    script: Script,
    next: usize,
    /// When the current step (a wait or a sleep) began.
    started: Option<Instant>,
}

impl Runner {
    /// A runner at the first step.
    pub fn new(script: Script) -> Self {
        Self {
            script,
            next: 0,
            started: None,
        }
    }

    /// Where the script stands (`FILE:LINE`) while steps are left.
    pub fn pending(&self) -> Option<String> {
        let located = self.script.steps.get(self.next)?;
        Some(format!("{}:{}", self.script.source, located.line))
    }

    /// Runs every step that can run at `now`.
    pub fn advance(&mut self, now: Instant, matcher: &mut LineMatcher) -> Progress {
        let mut progress = Progress::default();
        while let Some(located) = self.script.steps.get(self.next) {
            let at = format!("{}:{}", self.script.source, located.line);
            let started = *self.started.get_or_insert(now);
            match &located.step {
                Step::Send(bytes) => progress.sends.push(bytes.clone()),
                Step::Sleep(pause) if now.duration_since(started) < *pause => break,
                Step::Sleep(_) => {}
                Step::Wait { text, .. } if matcher.take(text) => {}
                Step::Wait { text, limit } => {
                    if let Some(limit) = limit.filter(|&l| now.duration_since(started) >= l) {
                        progress.end = Some(End::Stalled {
                            at,
                            text: text.clone(),
                            limit,
                        });
                    }
                    break;
                }
                Step::Quit => {
                    self.next = self.script.steps.len();
                    progress.end = Some(End::Quit { at });
                    break;
                }
            }
            self.next += 1;
            self.started = None;
        }
        progress
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Quit { at } => write!(f, "`@quit` at {at}"),
            End::Stalled { at, text, limit } => write!(
                f,
                "the --input script waited {}s at {at} for a line containing {text:?}",
                limit.as_secs_f64()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Vec<Step> {
        parse("t.script", text)
            .unwrap()
            .steps
            .into_iter()
            .map(|l| l.step)
            .collect()
    }

    #[test]
    fn plain_lines_are_typed_with_enter() {
        assert_eq!(
            steps("help\n\nvm list\r\n"),
            [
                Step::Send(b"help\r".to_vec()),
                Step::Send(b"\r".to_vec()),
                Step::Send(b"vm list\r".to_vec()),
            ]
        );
        assert_eq!(steps("@@home\n"), [Step::Send(b"@home\r".to_vec())]);
        assert_eq!(steps("é\n"), [Step::Send("é\r".as_bytes().to_vec())]);
    }

    #[test]
    fn directives() {
        let script = "@# log in\n@wait tessera> \n@send \\x01\\x01\\x01\n@sleep 250\n\
                      @timeout 5\n@wait  two spaces\n@timeout 0\n@wait x\n@quit\n";
        assert_eq!(
            steps(script),
            [
                Step::Wait {
                    text: "tessera> ".into(),
                    limit: Some(DEFAULT_WAIT)
                },
                Step::Send(vec![1, 1, 1]),
                Step::Sleep(Duration::from_millis(250)),
                Step::Wait {
                    text: " two spaces".into(),
                    limit: Some(Duration::from_secs(5))
                },
                Step::Wait {
                    text: "x".into(),
                    limit: None
                },
                Step::Quit,
            ]
        );
        let parsed = parse("t.script", script).unwrap();
        assert_eq!(
            parsed.steps.iter().map(|l| l.line).collect::<Vec<_>>(),
            [2, 3, 4, 6, 8, 9]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            unescape(r"a\r\n\t\e\\\x01\x7f\xFFz").unwrap(),
            b"a\r\n\t\x1b\\\x01\x7f\xffz"
        );
        assert_eq!(steps(r"x\\y"), [Step::Send(b"x\\y\r".to_vec())]);
        for bad in [r"\q", r"\x1", r"\xg0", "ab\\"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        for (text, line, words) in [
            ("ok\n@wiat x\n", 2, "unknown directive `@wiat`"),
            ("@wait\n", 1, "`@wait` needs the text"),
            ("@wait \n", 1, "`@wait` needs the text"),
            ("\n\n@sleep soon\n", 3, "not a whole number"),
            ("@timeout -1\n", 1, "not a whole number"),
            ("@quit now\n", 1, "takes nothing"),
            ("a\nb\\q\n", 2, "unknown escape `\\q`"),
            ("@send \\x4\n", 1, "two hex digits"),
        ] {
            let error = parse("s.txt", text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            let shown = error.to_string();
            assert!(shown.starts_with(&format!("s.txt:{line}: ")), "{shown}");
            assert!(shown.contains(words), "{shown}");
        }
    }

    #[test]
    fn a_wait_sees_only_lines_after_the_last_match() {
        let mut m = LineMatcher::default();
        m.push("boot\ntessera> ");
        assert!(m.take("tessera> "), "a prompt without its newline");
        // The same prompt, completed by the echo, does not count again.
        m.push("help\nusage: ...\n");
        assert!(!m.take("tessera> "));
        assert!(m.take("usage"));
        assert!(!m.take("usage"));
        m.push("tesse");
        assert!(!m.take("tessera> "));
        m.push("ra> ");
        assert!(m.take("tessera> "));
        // Lines before a match are spent, later ones stay.
        m.push("\na 1\nb\na 2\n");
        assert!(m.take("b"));
        assert!(m.take("a 2"));
        assert!(!m.take("a 1"));
    }

    #[test]
    fn the_runner_sends_waits_sleeps_and_stops() {
        let script = parse(
            "s",
            "@wait ready\none\n@sleep 100\n@send \\x1d\n@timeout 2\n@wait never\n",
        )
        .unwrap();
        let mut runner = Runner::new(script);
        let mut m = LineMatcher::default();
        let t0 = Instant::now();
        assert_eq!(runner.advance(t0, &mut m), Progress::default());
        m.push("ready\n");
        let p = runner.advance(t0 + Duration::from_millis(10), &mut m);
        assert_eq!(p.sends, [b"one\r".to_vec()]);
        assert_eq!(p.end, None);
        // The sleep counts from when it was reached.
        assert!(runner
            .advance(t0 + Duration::from_millis(100), &mut m)
            .sends
            .is_empty());
        let p = runner.advance(t0 + Duration::from_millis(110), &mut m);
        assert_eq!(p.sends, [vec![0x1d]]);
        let p = runner.advance(t0 + Duration::from_millis(2110), &mut m);
        assert_eq!(
            p.end,
            Some(End::Stalled {
                at: "s:6".into(),
                text: "never".into(),
                limit: Duration::from_secs(2)
            })
        );
        assert!(p.end.unwrap().to_string().contains("s:6"));
        assert_eq!(runner.pending().as_deref(), Some("s:6"));

        let mut runner = Runner::new(parse("s", "a\n@quit\nb\n").unwrap());
        let p = runner.advance(t0, &mut m);
        assert_eq!(p.sends, [b"a\r".to_vec()]);
        assert_eq!(p.end, Some(End::Quit { at: "s:2".into() }));
        assert_eq!(runner.pending(), None);
        let mut runner = Runner::new(parse("s", "@timeout 0\n@wait x\n").unwrap());
        let p = runner.advance(t0 + Duration::from_secs(1_000_000), &mut m);
        assert_eq!(p, Progress::default());
    }
}
