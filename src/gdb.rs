//! Just enough of the GDB remote serial protocol to stop QEMU at one
//! instruction: the breakpoint of `bench`'s native Linux boot in QEMU, where
//! Bochs has `pb` in its own debugger. What the CPU has done by then is
//! asked of QMP (see `qmp`).
//!
//! Packets are `$payload#checksum` (the checksum is the payload's bytes
//! summed modulo 256, in two hex digits), each acknowledged with `+` unless
//! the stub agrees to no-ack mode (QEMU 7.2's does not without a `qSupported`
//! exchange first, and ignores acknowledgements in its system emulators).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A connection to a gdbstub.
pub struct Gdb {
    stream: UnixStream,
    /// Bytes read but not yet consumed.
    pending: Vec<u8>,
    /// Whether received packets are acknowledged.
    acks: bool,
}

impl Gdb {
    /// Connects to the gdbstub listening on the Unix socket `path`, waiting
    /// up to `patience` for the emulator to create it.
    pub fn connect(path: &Path, patience: Duration) -> Result<Self> {
        let deadline = Instant::now() + patience;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!("cannot connect to the gdbstub at {}", path.display())
                    })
                }
            }
        };
        let mut gdb = Self {
            stream,
            pending: Vec::new(),
            acks: true,
        };
        // The stub's `+` for a request is skipped like any byte outside a
        // packet; an empty reply means the request is not supported.
        gdb.acks = gdb.request("QStartNoAckMode")? != "OK";
        Ok(gdb)
    }

    /// Sends one request and returns the reply's payload.
    fn request(&mut self, payload: &str) -> Result<String> {
        self.stream
            .write_all(&frame(payload))
            .context("writing to the gdbstub")?;
        self.receive()
    }

    /// Sends a request whose reply must be `OK`.
    fn expect_ok(&mut self, payload: &str) -> Result<()> {
        match self.request(payload)?.as_str() {
            "OK" => Ok(()),
            reply => bail!("the gdbstub answered `{payload}` with `{reply}`"),
        }
    }

    /// Sends a request whose reply is a stop: `S` or `T` and a signal.
    fn expect_stop(&mut self, payload: &str) -> Result<()> {
        let reply = self.request(payload)?;
        if !(reply.starts_with('S') || reply.starts_with('T')) {
            bail!("the gdbstub answered `{payload}` with `{reply}`, not a stop");
        }
        Ok(())
    }

    /// Reads until one whole packet has arrived and returns its payload.
    fn receive(&mut self) -> Result<String> {
        loop {
            if let Some((payload, used)) = unframe(&self.pending)? {
                self.pending.drain(..used);
                if self.acks {
                    self.stream
                        .write_all(b"+")
                        .context("writing to the gdbstub")?;
                }
                return Ok(payload);
            }
            let mut buffer = [0u8; 4096];
            let read = self
                .stream
                .read(&mut buffer)
                .context("reading from the gdbstub")?;
            if read == 0 {
                bail!("the gdbstub closed the connection");
            }
            self.pending.extend_from_slice(&buffer[..read]);
        }
    }

    /// Runs until the CPU reaches `address` (linear), with a hardware
    /// breakpoint that is gone again when this returns.
    pub fn run_to(&mut self, address: u64) -> Result<()> {
        self.expect_ok(&format!("Z1,{address:x},1"))?;
        self.expect_stop("c")?;
        self.expect_ok(&format!("z1,{address:x},1"))
    }
}

/// `$payload#checksum`.
fn frame(payload: &str) -> Vec<u8> {
    let checksum = payload
        .bytes()
        .fold(0u8, |sum, byte| sum.wrapping_add(byte));
    format!("${payload}#{checksum:02x}").into_bytes()
}

/// The first whole packet in `bytes` (skipping acknowledgements and
/// anything else before its `$`): its payload, run-length encoding undone,
/// and how many bytes it took. `None` until the packet is complete.
fn unframe(bytes: &[u8]) -> Result<Option<(String, usize)>> {
    let Some(start) = bytes.iter().position(|&b| b == b'$') else {
        return Ok(None);
    };
    let Some(hash) = bytes[start..]
        .iter()
        .position(|&b| b == b'#')
        .map(|at| start + at)
    else {
        return Ok(None);
    };
    if bytes.len() < hash + 3 {
        return Ok(None);
    }
    let body = &bytes[start + 1..hash];
    let sent = std::str::from_utf8(&bytes[hash + 1..hash + 3])
        .ok()
        .and_then(|hex| u8::from_str_radix(hex, 16).ok());
    let checksum = body.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
    if sent != Some(checksum) {
        bail!(
            "a gdbstub packet with a bad checksum: {}",
            String::from_utf8_lossy(&bytes[start..hash + 3])
        );
    }
    // Run-length encoding: `x*n` stands for x and then n - 29 more of it.
    let mut payload = Vec::with_capacity(body.len());
    let mut at = 0;
    while at < body.len() {
        if body[at] == b'*' && at + 1 < body.len() && !payload.is_empty() {
            let last = *payload.last().expect("not empty");
            let repeats = usize::from(body[at + 1]).saturating_sub(29);
            payload.extend(std::iter::repeat_n(last, repeats));
            at += 2;
        } else {
            payload.push(body[at]);
            at += 1;
        }
    }
    Ok(Some((
        String::from_utf8_lossy(&payload).into_owned(),
        hash + 3,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_framed_with_their_checksum() {
        assert_eq!(frame("g"), b"$g#67");
        assert_eq!(frame("QStartNoAckMode"), b"$QStartNoAckMode#b0");
        assert_eq!(frame("Z1,100000,1"), b"$Z1,100000,1#35");
    }

    #[test]
    fn replies_are_found_after_acks_and_checked() {
        assert_eq!(unframe(b"+$OK#9a").unwrap(), Some(("OK".into(), 7)));
        // Incomplete: wait for more.
        assert_eq!(unframe(b"+$OK#9").unwrap(), None);
        assert_eq!(unframe(b"+").unwrap(), None);
        assert!(unframe(b"$OK#00").is_err());
        // Two packets: one at a time.
        let two = b"$T05thread:01;#07$OK#9a";
        let (first, used) = unframe(two).unwrap().unwrap();
        assert_eq!(first, "T05thread:01;");
        assert_eq!(unframe(&two[used..]).unwrap(), Some(("OK".into(), 6)));
    }

    #[test]
    fn run_length_encoding_is_undone() {
        // "0* " is '0' and 3 more (' ' is 32, and 32 - 29 = 3).
        let body = b"0* 1";
        let checksum = body.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        let packet = [b"$".as_slice(), body, format!("#{checksum:02x}").as_bytes()].concat();
        assert_eq!(unframe(&packet).unwrap().unwrap().0, "00001");
    }
}
