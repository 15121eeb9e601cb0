//! Just enough of QMP, QEMU's JSON machine protocol, to ask how many
//! instructions the CPU has executed: `query-replay` answers with the
//! instruction counter whenever `-icount` is on, record/replay or not.
//!
//! QMP sends one JSON object per line: a greeting, then a `return` (or an
//! `error`) for each command, with asynchronous `event`s in between.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A QMP connection past its capabilities negotiation.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the QMP server on the Unix socket `path`, waiting up to
    /// `patience` for the emulator to create it.
    pub fn connect(path: &Path, patience: Duration) -> Result<Self> {
        let deadline = Instant::now() + patience;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("cannot connect to QMP at {}", path.display()))
                }
            }
        };
        let writer = stream.try_clone().context("cloning the QMP socket")?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.next_message()?;
        if greeting.get("QMP").is_none() {
            bail!("QMP greeted with {greeting}");
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    /// The next message that is not an event.
    fn next_message(&mut self) -> Result<Value> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).context("reading QMP")? == 0 {
                bail!("QMP closed the connection");
            }
            let message: Value = serde_json::from_str(&line)
                .with_context(|| format!("QMP sent something that is not JSON: {line}"))?;
            if message.get("event").is_none() {
                return Ok(message);
            }
        }
    }

    /// Runs `command` and returns its `return` value.
    fn execute(&mut self, command: &str) -> Result<Value> {
        let request = serde_json::json!({ "execute": command });
        writeln!(self.writer, "{request}").context("writing to QMP")?;
        let reply = self.next_message()?;
        returned(command, reply)
    }

    /// The instructions the CPU has executed since QEMU started (with
    /// `-icount`; the count ignores the clock's jumps over idle time).
    pub fn instructions(&mut self) -> Result<u64> {
        let reply = self.execute("query-replay")?;
        icount(&reply).with_context(|| format!("query-replay answered {reply} (is -icount on?)"))
    }
}

/// The `return` of a reply, or its error as one.
fn returned(command: &str, reply: Value) -> Result<Value> {
    match reply {
        Value::Object(mut fields) => match fields.remove("return") {
            Some(value) => Ok(value),
            None => bail!(
                "QMP refused {command}: {}",
                fields.get("error").unwrap_or(&Value::Null)
            ),
        },
        other => bail!("QMP answered {command} with {other}"),
    }
}

/// `icount` of a `query-replay` return.
fn icount(reply: &Value) -> Option<u64> {
    reply.get("icount")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_replay_gives_the_instruction_count() {
        // As QEMU 7.2 answered with -icount shift=0,sleep=off, stopped at a
        // native Linux kernel's entry.
        let reply: Value =
            serde_json::from_str(r#"{"return": {"icount": 16538055, "mode": "none"}}"#).unwrap();
        let value = returned("query-replay", reply).unwrap();
        assert_eq!(icount(&value), Some(16_538_055));
        assert_eq!(icount(&serde_json::json!({ "mode": "none" })), None);
    }

    #[test]
    fn an_error_reply_names_the_command() {
        let reply: Value = serde_json::from_str(
            r#"{"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}"#,
        )
        .unwrap();
        let error = returned("x", reply).unwrap_err().to_string();
        assert!(
            error.contains("QMP refused x") && error.contains("CommandNotFound"),
            "{error}"
        );
    }
}
