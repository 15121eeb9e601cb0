//! The shell's command language: parses a line from the editor into a
//! [`Command`], or a [`ParseError`] that names what was wrong and points at
//! `help`. It executes nothing; the kernel's shell does that.
//!
//! A line is words separated by blanks. The first is the command, matched
//! without regard to case (an operator with Caps Lock on still gets `VMS`);
//! the rest are its arguments, checked here for count and form: a `<vm>` is
//! an id (decimal, as `vms` lists them) or a VM name, a `<level>` one of the
//! log levels of the `log=` boot option. Whether such a VM exists is for the
//! caller to say, since only it knows the VMs.

use crate::options::{is_valid_name, LogLevel};
use alloc::string::{String, ToString};
use core::fmt;
use core::str::SplitAsciiWhitespace;

/// A VM as the operator named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmRef {
    /// By id: its index in boot order. A word of digits only is always an
    /// id, so a VM whose name is all digits is reached by its id.
    Id(usize),
    /// By name (`name=` of its module line).
    Name(String),
}

impl fmt::Display for VmRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmRef::Id(id) => write!(f, "{id}"),
            VmRef::Name(name) => f.write_str(name),
        }
    }
}

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A blank line: nothing to do but prompt again.
    Empty,
    /// `help [command]`: the list, or one command's usage (its name).
    Help(Option<&'static str>),
    /// `vms`: list the VMs.
    Vms,
    /// `info <vm>`: one VM in detail.
    Info(VmRef),
    /// `focus <vm>`: give the console's input to a VM.
    Focus(VmRef),
    /// `pause <vm>`: stop scheduling a VM, keeping its state.
    Pause(VmRef),
    /// `resume <vm>`: schedule a paused VM again.
    Resume(VmRef),
    /// `kill <vm>`: stop a VM for good.
    Kill(VmRef),
    /// `restart <vm>`: start a VM again from its image.
    Restart(VmRef),
    /// `log <level>`: set the log level.
    Log(LogLevel),
    /// `mem`: memory use.
    Mem,
    /// `stats`: exit and scheduling counters.
    Stats,
    /// `uptime`: time since boot.
    Uptime,
    /// `version`: tessera's version.
    Version,
    /// `reboot`: reset the machine.
    Reboot,
    /// `poweroff`: turn the machine off.
    Poweroff,
}

/// Why a line is not a command. Its `Display` is the message for the
/// operator, ending with the `help` to type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The first word is no command.
    UnknownCommand(String),
    /// A required argument is absent.
    MissingArgument {
        /// The command's name.
        command: &'static str,
        /// The argument, as the usage writes it (`<vm>`).
        argument: &'static str,
    },
    /// A word after the command's last argument.
    UnexpectedArgument {
        /// The command's name.
        command: &'static str,
        /// The first extra word.
        argument: String,
    },
    /// An argument of the wrong form.
    BadArgument {
        /// The command's name.
        command: &'static str,
        /// The word as typed.
        argument: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownCommand(word) => {
                write!(f, "unknown command {word:?}: type help for the list")
            }
            ParseError::MissingArgument { command, argument } => {
                write!(f, "{command}: missing {argument}; type help {command}")
            }
            ParseError::UnexpectedArgument { command, argument } => {
                write!(
                    f,
                    "{command}: unexpected argument {argument:?}; type help {command}"
                )
            }
            ParseError::BadArgument {
                command,
                argument,
                expected,
            } => write!(
                f,
                "{command}: {argument:?} is not {expected}; type help {command}"
            ),
        }
    }
}

/// One command of the shell: its name, usage and one-line description.
pub struct CommandInfo {
    /// The word that invokes it.
    pub name: &'static str,
    /// How it is typed, with `<required>` and `[optional]` arguments.
    pub usage: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Reads its arguments.
    build: fn(&mut Arguments<'_>) -> Result<Command, ParseError>,
}

const VM_EXPECTED: &str = "a VM id or name";
const LEVEL_EXPECTED: &str = "a log level: error|warn|info|debug|trace";

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "help",
        usage: "help [command]",
        summary: "list the commands, or show how to use one",
        build: |arguments| {
            let topic = arguments.optional().map(|word| {
                find(word)
                    .map(|info| info.name)
                    .ok_or_else(|| ParseError::UnknownCommand(word.to_string()))
            });
            Ok(Command::Help(topic.transpose()?))
        },
    },
    CommandInfo {
        name: "vms",
        usage: "vms",
        summary: "list the VMs: id, name, state",
        build: |_| Ok(Command::Vms),
    },
    CommandInfo {
        name: "info",
        usage: "info <vm>",
        summary: "show one VM in detail",
        build: |arguments| Ok(Command::Info(arguments.vm()?)),
    },
    CommandInfo {
        name: "focus",
        usage: "focus <vm>",
        summary: "type into a VM (Ctrl-A three times moves on)",
        build: |arguments| Ok(Command::Focus(arguments.vm()?)),
    },
    CommandInfo {
        name: "pause",
        usage: "pause <vm>",
        summary: "stop running a VM, keeping its state",
        build: |arguments| Ok(Command::Pause(arguments.vm()?)),
    },
    CommandInfo {
        name: "resume",
        usage: "resume <vm>",
        summary: "run a paused VM again",
        build: |arguments| Ok(Command::Resume(arguments.vm()?)),
    },
    CommandInfo {
        name: "kill",
        usage: "kill <vm>",
        summary: "stop a VM for good",
        build: |arguments| Ok(Command::Kill(arguments.vm()?)),
    },
    CommandInfo {
        name: "restart",
        usage: "restart <vm>",
        summary: "start a VM again from its image",
        build: |arguments| Ok(Command::Restart(arguments.vm()?)),
    },
    CommandInfo {
        name: "log",
        usage: "log <level>",
        summary: "set the log level: error|warn|info|debug|trace",
        build: |arguments| Ok(Command::Log(arguments.level()?)),
    },
    CommandInfo {
        name: "mem",
        usage: "mem",
        summary: "show memory use",
        build: |_| Ok(Command::Mem),
    },
    CommandInfo {
        name: "stats",
        usage: "stats",
        summary: "show exit, scheduling and console counters",
        build: |_| Ok(Command::Stats),
    },
    CommandInfo {
        name: "uptime",
        usage: "uptime",
        summary: "show the time since boot",
        build: |_| Ok(Command::Uptime),
    },
    CommandInfo {
        name: "version",
        usage: "version",
        summary: "show tessera's version",
        build: |_| Ok(Command::Version),
    },
    CommandInfo {
        name: "reboot",
        usage: "reboot",
        summary: "reset the machine",
        build: |_| Ok(Command::Reboot),
    },
    CommandInfo {
        name: "poweroff",
        usage: "poweroff",
        summary: "turn the machine off",
        build: |_| Ok(Command::Poweroff),
    },
];

/// What `help` prints: one line per command of [`COMMANDS`], usage padded
/// to 16 columns, then the summary (a test keeps the two in step).
pub const HELP_TEXT: &str = "\
help [command]   list the commands, or show how to use one
vms              list the VMs: id, name, state
info <vm>        show one VM in detail
focus <vm>       type into a VM (Ctrl-A three times moves on)
pause <vm>       stop running a VM, keeping its state
resume <vm>      run a paused VM again
kill <vm>        stop a VM for good
restart <vm>     start a VM again from its image
log <level>      set the log level: error|warn|info|debug|trace
mem              show memory use
stats            show exit, scheduling and console counters
uptime           show the time since boot
version          show tessera's version
reboot           reset the machine
poweroff         turn the machine off
<vm> is an id or a name, as vms lists them.
";

/// The command named `name` (any case).
pub fn find(name: &str) -> Option<&'static CommandInfo> {
    COMMANDS
        .iter()
        .find(|info| info.name.eq_ignore_ascii_case(name))
}

/// How `command` is typed (`pause <vm>`); `None` for no such command.
pub fn usage(command: &str) -> Option<&'static str> {
    find(command).map(|info| info.usage)
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let mut words = line.split_ascii_whitespace();
    let Some(word) = words.next() else {
        return Ok(Command::Empty);
    };
    let info = find(word).ok_or_else(|| ParseError::UnknownCommand(word.to_string()))?;
    let mut arguments = Arguments {
        command: info.name,
        words,
    };
    let command = (info.build)(&mut arguments)?;
    match arguments.words.next() {
        None => Ok(command),
        Some(extra) => Err(ParseError::UnexpectedArgument {
            command: info.name,
            argument: extra.to_string(),
        }),
    }
}

/// The words after the command, read in order by its `build`.
struct Arguments<'line> {
    command: &'static str,
    words: SplitAsciiWhitespace<'line>,
}

impl<'line> Arguments<'line> {
    fn optional(&mut self) -> Option<&'line str> {
        self.words.next()
    }

    fn required(&mut self, argument: &'static str) -> Result<&'line str, ParseError> {
        self.words.next().ok_or(ParseError::MissingArgument {
            command: self.command,
            argument,
        })
    }

    fn bad(&self, word: &str, expected: &'static str) -> ParseError {
        ParseError::BadArgument {
            command: self.command,
            argument: word.to_string(),
            expected,
        }
    }

    fn vm(&mut self) -> Result<VmRef, ParseError> {
        let word = self.required("<vm>")?;
        if word.bytes().all(|byte| byte.is_ascii_digit()) {
            // Too many digits for any id is still a bad id, not a name.
            word.parse()
                .map(VmRef::Id)
                .map_err(|_| self.bad(word, VM_EXPECTED))
        } else if is_valid_name(word) {
            Ok(VmRef::Name(word.to_string()))
        } else {
            Err(self.bad(word, VM_EXPECTED))
        }
    }

    fn level(&mut self) -> Result<LogLevel, ParseError> {
        let word = self.required("<level>")?;
        let levels = [
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ];
        levels
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, level)| level)
            .ok_or_else(|| self.bad(word, LEVEL_EXPECTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::ToString;
    use std::vec::Vec;

    fn name(text: &str) -> VmRef {
        VmRef::Name(text.to_string())
    }

    fn message(line: &str) -> std::string::String {
        parse(line).unwrap_err().to_string()
    }

    /// A `Command` variant that holds a VM.
    type VmCommand = fn(VmRef) -> Command;

    const VM_COMMANDS: [(&str, VmCommand); 6] = [
        ("info", Command::Info),
        ("focus", Command::Focus),
        ("pause", Command::Pause),
        ("resume", Command::Resume),
        ("kill", Command::Kill),
        ("restart", Command::Restart),
    ];

    const BARE_COMMANDS: [(&str, Command); 7] = [
        ("vms", Command::Vms),
        ("mem", Command::Mem),
        ("stats", Command::Stats),
        ("uptime", Command::Uptime),
        ("version", Command::Version),
        ("reboot", Command::Reboot),
        ("poweroff", Command::Poweroff),
    ];

    #[test]
    fn blank_lines_are_empty_commands() {
        for line in ["", "   ", "\t", " \t "] {
            assert_eq!(parse(line), Ok(Command::Empty));
        }
    }

    #[test]
    fn commands_without_arguments_parse_and_refuse_extras() {
        for (word, command) in BARE_COMMANDS {
            assert_eq!(parse(word), Ok(command.clone()));
            assert_eq!(parse(&format!("  {word}  ")), Ok(command));
            assert_eq!(
                parse(&format!("{word} now")),
                Err(ParseError::UnexpectedArgument {
                    command: word,
                    argument: "now".to_string()
                })
            );
        }
        assert_eq!(
            message("reboot now"),
            "reboot: unexpected argument \"now\"; type help reboot"
        );
    }

    #[test]
    fn vm_commands_take_an_id_or_a_name() {
        for (word, make) in VM_COMMANDS {
            assert_eq!(parse(&format!("{word} 0")), Ok(make(VmRef::Id(0))));
            assert_eq!(parse(&format!("{word} 12")), Ok(make(VmRef::Id(12))));
            assert_eq!(parse(&format!("{word} xs-a")), Ok(make(name("xs-a"))));
            assert_eq!(
                parse(&format!("{word}\t2fa.b_c")),
                Ok(make(name("2fa.b_c")))
            );
        }
    }

    #[test]
    fn vm_commands_need_exactly_one_good_vm() {
        for (word, _) in VM_COMMANDS {
            assert_eq!(
                parse(word),
                Err(ParseError::MissingArgument {
                    command: word,
                    argument: "<vm>"
                })
            );
            assert_eq!(
                parse(&format!("{word} 1 2")),
                Err(ParseError::UnexpectedArgument {
                    command: word,
                    argument: "2".to_string()
                })
            );
            for bad in [
                "caf$",
                "-1x!",
                "99999999999999999999999",
                "a-name-far-too-long-for-a-vm",
            ] {
                assert_eq!(
                    parse(&format!("{word} {bad}")),
                    Err(ParseError::BadArgument {
                        command: word,
                        argument: bad.to_string(),
                        expected: VM_EXPECTED
                    }),
                    "{word} {bad}"
                );
            }
        }
        assert_eq!(message("pause"), "pause: missing <vm>; type help pause");
        assert_eq!(
            message("kill 1 2"),
            "kill: unexpected argument \"2\"; type help kill"
        );
        assert_eq!(
            message("info a/b"),
            "info: \"a/b\" is not a VM id or name; type help info"
        );
    }

    #[test]
    fn a_bad_argument_is_reported_before_an_extra_one() {
        assert!(matches!(
            parse("pause ? 2"),
            Err(ParseError::BadArgument { .. })
        ));
    }

    #[test]
    fn log_takes_one_level() {
        let levels = [
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("TRACE", LogLevel::Trace),
        ];
        for (word, level) in levels {
            assert_eq!(parse(&format!("log {word}")), Ok(Command::Log(level)));
        }
        assert_eq!(message("log"), "log: missing <level>; type help log");
        assert_eq!(
            message("log loud"),
            "log: \"loud\" is not a log level: error|warn|info|debug|trace; type help log"
        );
        assert_eq!(
            message("log info debug"),
            "log: unexpected argument \"debug\"; type help log"
        );
    }

    #[test]
    fn help_takes_an_optional_known_command() {
        assert_eq!(parse("help"), Ok(Command::Help(None)));
        assert_eq!(parse("help pause"), Ok(Command::Help(Some("pause"))));
        assert_eq!(parse("help HELP"), Ok(Command::Help(Some("help"))));
        assert_eq!(
            message("help frob"),
            "unknown command \"frob\": type help for the list"
        );
        assert_eq!(
            message("help vms mem"),
            "help: unexpected argument \"mem\"; type help help"
        );
    }

    #[test]
    fn unknown_commands_are_named() {
        assert_eq!(
            parse("frobnicate 3"),
            Err(ParseError::UnknownCommand("frobnicate".to_string()))
        );
        assert_eq!(
            message("foo"),
            "unknown command \"foo\": type help for the list"
        );
        // Control characters in the word are shown escaped, not sent raw.
        assert_eq!(
            message("\x1b[2J"),
            "unknown command \"\\u{1b}[2J\": type help for the list"
        );
        // A prefix is not a command.
        assert!(parse("rest 1").is_err());
    }

    #[test]
    fn command_words_ignore_case_but_names_keep_it() {
        assert_eq!(parse("VMS"), Ok(Command::Vms));
        assert_eq!(parse("Pause Web"), Ok(Command::Pause(name("Web"))));
    }

    #[test]
    fn help_text_lists_every_command_in_order() {
        let lines: Vec<&str> = HELP_TEXT.lines().collect();
        assert_eq!(lines.len(), COMMANDS.len() + 1);
        for (line, info) in lines.iter().zip(COMMANDS) {
            assert_eq!(*line, format!("{:<16} {}", info.usage, info.summary));
            assert!(line.len() < 80, "{line}");
        }
    }

    #[test]
    fn every_listed_command_parses_from_its_usage() {
        for info in COMMANDS {
            assert_eq!(usage(info.name), Some(info.usage));
            let example = info
                .usage
                .replace("[command]", "vms")
                .replace("<vm>", "1")
                .replace("<level>", "warn");
            assert!(parse(&example).is_ok(), "{example}");
        }
        assert_eq!(usage("PAUSE"), Some("pause <vm>"));
        assert_eq!(usage("frob"), None);
    }

    #[test]
    fn vm_refs_display_as_typed() {
        assert_eq!(VmRef::Id(3).to_string(), "3");
        assert_eq!(name("xs-a").to_string(), "xs-a");
    }
}
