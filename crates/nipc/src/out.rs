//! Printing received data, shared by every command.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Mutex;

/// Marker: stdout was closed by its reader; the command should end quietly.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

static STDOUT: Mutex<()> = Mutex::new(());

fn wrap(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}

/// Lowercase hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Prints one message as a line: lossy UTF-8 text, or hex.
pub fn message(msg: &[u8], as_hex: bool) -> anyhow::Result<()> {
    let _g = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
    let mut o = io::stdout().lock();
    let r = if as_hex {
        writeln!(o, "{}", hex(msg))
    } else {
        o.write_all(msg).and_then(|()| o.write_all(b"\n"))
    };
    r.and_then(|()| o.flush()).map_err(wrap)
}

/// Writes bytes as they are (byte mode), or as a hex line.
pub fn raw(bytes: &[u8], as_hex: bool) -> anyhow::Result<()> {
    if as_hex {
        return message(bytes, true);
    }
    let _g = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
    let mut o = io::stdout().lock();
    o.write_all(bytes).and_then(|()| o.flush()).map_err(wrap)
}

/// Prints a line of human-readable text to stdout (demo, ls).
pub fn line(text: &str) -> anyhow::Result<()> {
    let _g = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
    let mut o = io::stdout().lock();
    writeln!(o, "{text}").and_then(|()| o.flush()).map_err(wrap)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_without_separators() {
        assert_eq!(super::hex(&[0x00, 0xab, 0x10]), "00ab10");
        assert_eq!(super::hex(&[]), "");
    }
}
