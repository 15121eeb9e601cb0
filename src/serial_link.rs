//! COM1 both ways, for boots that type into the console: the tool listens,
//! the emulator connects its serial port to the tool, and the tool copies
//! everything the guest writes to the work directory's serial log (which
//! the boot supervisor follows, as it follows the file an emulator writes
//! when nothing is typed) and writes the keys to the socket.
//!
//! The tool listens rather than the emulator, so that the socket exists
//! before the emulator starts: no port to guess, no waiting for the
//! emulator's server to appear, and Bochs' server mode, which stops the
//! whole simulation until a client connects, is not needed. QEMU connects
//! to a Unix socket in the private work directory (`-chardev socket`
//! without `server`); Bochs 2.7 knows only TCP (`mode=socket-client`), so
//! it gets a port on 127.0.0.1 that the kernel picked for the listener.
//!
//! Both emulators hold the guest back rather than lose a byte: QEMU's UART
//! takes input only while its FIFO has room and waits for a socket that
//! cannot take output; Bochs reads the next byte when the guest has taken
//! the last one, and blocks in send(2).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::engine::{files, Com1, Engine};

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// The tool's end of COM1.
pub struct SerialLink {
    listener: Listener,
    log: PathBuf,
    /// Until the emulator connects: where the keys wait.
    pending_keys: Option<Receiver<Vec<u8>>>,
    keys: Sender<Vec<u8>>,
    reader: Option<JoinHandle<()>>,
}

impl SerialLink {
    /// Listens for `engine`'s COM1 in `workdir`; returns the link and how
    /// the emulator is to connect.
    pub fn listen(engine: Engine, workdir: &Path) -> Result<(Self, Com1)> {
        let (listener, com1) = match engine {
            Engine::Kvm | Engine::Qemu | Engine::QemuUefi => {
                let path = workdir.join(files::SERIAL_SOCKET);
                let listener = UnixListener::bind(&path)
                    .with_context(|| format!("listening on {}", path.display()))?;
                (Listener::Unix(listener), Com1::UnixSocket)
            }
            Engine::Bochs | Engine::BochsUefi => {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .context("listening on a TCP port of 127.0.0.1 for Bochs' COM1")?;
                let port = listener.local_addr()?.port();
                (Listener::Tcp(listener), Com1::TcpPort(port))
            }
        };
        // Polled by the boot loop, which must go on watching an emulator
        // that never connects (one that failed to start, say).
        match &listener {
            Listener::Unix(l) => l.set_nonblocking(true)?,
            Listener::Tcp(l) => l.set_nonblocking(true)?,
        }
        let log = workdir.join(files::SERIAL);
        // The supervisor opens the log when it exists; it exists from the start.
        File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let (keys, pending_keys) = mpsc::channel();
        Ok((
            Self {
                listener,
                log,
                pending_keys: Some(pending_keys),
                keys,
                reader: None,
            },
            com1,
        ))
    }

    /// Where to send bytes for the guest; they wait until the emulator
    /// connects, and are written in order.
    pub fn keys(&self) -> Sender<Vec<u8>> {
        self.keys.clone()
    }

    /// Whether the emulator has connected.
    pub fn connected(&self) -> bool {
        self.reader.is_some()
    }

    /// Takes the emulator's connection if it has come, and starts copying
    /// both ways. Only the first connection is taken.
    pub fn poll(&mut self) -> Result<()> {
        if self.connected() {
            return Ok(());
        }
        let accepted = match &self.listener {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error).context("accepting the emulator's COM1"),
        };
        stream.set_nonblocking(false)?;
        let mut output = stream.try_clone()?;
        let mut log = std::fs::OpenOptions::new().append(true).open(&self.log)?;
        self.reader = Some(std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match output.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(count) => {
                        // A full disk must not stop the emulator: keep reading.
                        let _ = log.write_all(&buffer[..count]);
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        }));
        if let Some(keys) = self.pending_keys.take() {
            let mut input = stream;
            std::thread::spawn(move || {
                for bytes in keys {
                    if input.write_all(&bytes).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(())
    }

    /// After the emulator has gone: waits (at most `patience`) until
    /// everything it wrote is in the log.
    pub fn drain(&mut self, patience: Duration) {
        // An emulator that connected and exited at once may still be waiting.
        let _ = self.poll();
        let Some(reader) = self.reader.as_ref() else {
            return;
        };
        let deadline = Instant::now() + patience;
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Tcp(s) => s.set_nonblocking(on),
        }
    }

    fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buffer),
            Stream::Tcp(s) => s.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(bytes),
            Stream::Tcp(s) => s.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_output_to_the_log_and_keys_to_the_emulator() {
        for engine in [Engine::Qemu, Engine::Bochs] {
            let dir = tempfile::tempdir().unwrap();
            let (mut link, com1) = SerialLink::listen(engine, dir.path()).unwrap();
            // Keys sent before the emulator connects wait for it.
            link.keys().send(b"early ".to_vec()).unwrap();
            link.poll().unwrap();
            assert!(!link.connected());
            let mut emulator = match com1 {
                Com1::UnixSocket => Stream::Unix(
                    UnixStream::connect(dir.path().join(files::SERIAL_SOCKET)).unwrap(),
                ),
                Com1::TcpPort(port) => {
                    Stream::Tcp(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap())
                }
                Com1::File => panic!("{engine:?} got no socket"),
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while !link.connected() {
                assert!(Instant::now() < deadline, "never accepted");
                link.poll().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            link.keys().send(b"late\r".to_vec()).unwrap();
            let mut got = [0u8; 11];
            emulator.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"early late\r");
            emulator.write_all(b"tessera v0.1.0\r\n").unwrap();
            drop(emulator);
            link.drain(Duration::from_secs(5));
            let log = std::fs::read(dir.path().join(files::SERIAL)).unwrap();
            assert_eq!(log, b"tessera v0.1.0\r\n", "{engine:?}");
        }
    }
}
