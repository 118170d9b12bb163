//! Resumable receive: what a receiving end keeps between calls, whatever the
//! transport (frames on a socket, records in a ring, native pipe messages).

use std::fmt;
use std::io;
use std::sync::Arc;

/// A sticky error: once a stream has lost message sync (a message over the
/// limit, a transport that ended inside a message, a corrupt ring), every later
/// call fails the same way.
#[derive(Clone)]
pub(crate) struct Poison {
    kind: io::ErrorKind,
    message: Arc<str>,
}

impl Poison {
    pub(crate) fn new(kind: io::ErrorKind, message: impl Into<Arc<str>>) -> Poison {
        Poison {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, self.message.to_string())
    }
}

impl fmt::Debug for Poison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// The receive side of one stream between calls.
///
/// A receive runs `begin` (the caller's buffer gets back whatever an earlier,
/// interrupted receive of the same message already took), `start` when a
/// message begins (with its length when the transport announces one),
/// `grown` as bytes arrive (when it does not), and `finish` once the message
/// is complete. When the call has to stop early (timeout, `WouldBlock`, a
/// dropped future), `interrupt` keeps what arrived for the next call; when the
/// transport ends, `end_of_stream` tells a clean end from a truncated message.
#[derive(Debug)]
pub(crate) struct RecvState {
    /// What the stream is, for messages: `pipe "jobs"`, `channel "fast"`.
    label: Arc<str>,
    /// Largest message accepted.
    max: u32,
    /// Bytes of the current message taken off the transport by an earlier,
    /// interrupted call, waiting to be handed out.
    stash: Vec<u8>,
    /// `Some` while inside a message: its total length, if announced.
    current: Option<Option<u64>>,
    /// Bytes of the current message taken off the transport so far
    /// (delivered or stashed), for transports that count them here.
    got: u64,
    poison: Option<Poison>,
}

impl RecvState {
    pub(crate) fn new(label: impl Into<Arc<str>>, max: u32) -> RecvState {
        RecvState {
            label: label.into(),
            max,
            stash: Vec::new(),
            current: None,
            got: 0,
            poison: None,
        }
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// Inside a message (some of it may be stashed or still in flight).
    #[inline]
    pub(crate) fn is_mid(&self) -> bool {
        self.current.is_some()
    }

    /// The announced length of the current message, if any.
    #[inline]
    pub(crate) fn total(&self) -> Option<u64> {
        self.current.flatten()
    }

    /// Between messages, nothing kept from an interrupted one and nothing
    /// wrong: a receive may deliver a message that arrived whole directly.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.current.is_none() && self.stash.is_empty() && self.poison.is_none()
    }

    #[inline]
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.is_some()
    }

    /// Fails with the sticky error, if any.
    #[inline]
    pub(crate) fn check(&self) -> io::Result<()> {
        match &self.poison {
            Some(p) => Err(p.to_io()),
            None => Ok(()),
        }
    }

    /// Starts a receive of a whole message into `out`: fails if poisoned;
    /// otherwise `out` is cleared and gets back the part of the current
    /// message an interrupted call kept.
    #[inline]
    pub(crate) fn begin(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.check()?;
        out.clear();
        if !self.stash.is_empty() {
            std::mem::swap(out, &mut self.stash);
        }
        Ok(())
    }

    /// A message begins; `total` is its length when the transport announced
    /// it. A message over the limit poisons the receiver before any of its
    /// bytes are read or any memory is reserved for it.
    #[inline]
    pub(crate) fn start(&mut self, total: Option<u64>) -> io::Result<()> {
        if let Some(t) = total {
            if t > u64::from(self.max) {
                return Err(self.too_large(t));
            }
        }
        self.current = Some(total);
        self.got = 0;
        Ok(())
    }

    /// `n` more bytes of the current message were taken off the transport.
    #[inline]
    pub(crate) fn took(&mut self, n: usize) {
        self.got += n as u64;
    }

    /// Bytes of the current message taken off the transport (see
    /// [`took`](Self::took)).
    #[inline]
    pub(crate) fn got(&self) -> u64 {
        self.got
    }

    /// Stashes `bytes` of the current message, taken off the transport but
    /// not yet delivered.
    pub(crate) fn stash(&mut self, bytes: &[u8]) {
        self.stash.extend_from_slice(bytes);
    }

    /// The current message is complete.
    #[inline]
    pub(crate) fn finish(&mut self) {
        self.current = None;
        self.got = 0;
    }

    /// The call stops before the message is complete: the bytes in `out`
    /// belong to the current message and are kept for the next call.
    pub(crate) fn interrupt(&mut self, out: &mut Vec<u8>) {
        if self.is_mid() && self.poison.is_none() {
            std::mem::swap(out, &mut self.stash);
            out.clear();
        }
    }

    /// Stashed bytes of the current message.
    pub(crate) fn stashed(&self) -> usize {
        self.stash.len()
    }

    /// Moves stashed bytes into `out` (for partial reads into a fixed
    /// buffer); returns how many.
    pub(crate) fn take_stash(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.stash.len());
        out[..n].copy_from_slice(&self.stash[..n]);
        self.stash.drain(..n);
        n
    }

    /// The transport ended. At a message boundary that is a clean end
    /// (`Ok(None)`); inside a message (`received` of its bytes arrived, when
    /// known) it poisons the receiver with `UnexpectedEof`.
    pub(crate) fn end_of_stream(&mut self, received: Option<u64>) -> io::Result<Option<usize>> {
        self.check()?;
        if !self.is_mid() && received.unwrap_or(0) == 0 {
            return Ok(None);
        }
        let got = match received {
            Some(n) => format!(" ({n} bytes received)"),
            None => String::new(),
        };
        let what = match self.total() {
            Some(t) => format!("{t}-byte message{got}"),
            None => format!("message{got}"),
        };
        Err(self.fail(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: the peer closed the stream in the middle of a {what}",
                self.label
            ),
        ))
    }

    /// Poisons the receiver: the stream cannot be trusted to be at a message
    /// boundary any more.
    pub(crate) fn fail(&mut self, kind: io::ErrorKind, message: String) -> io::Error {
        let p = Poison::new(kind, message);
        let e = p.to_io();
        self.poison = Some(p);
        self.stash = Vec::new();
        e
    }

    fn too_large(&mut self, len: u64) -> io::Error {
        let msg = format!(
            "{}: incoming message of {len} bytes exceeds the limit of {} bytes \
             (raise the receiver's max message size, or check that the peer \
             speaks this stream's message format)",
            self.label, self.max
        );
        self.fail(io::ErrorKind::InvalidData, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_message_comes_back_whole() {
        let mut st = RecvState::new("t", 100);
        let mut out = Vec::new();
        st.begin(&mut out).unwrap();
        st.start(Some(6)).unwrap();
        out.extend_from_slice(b"abc");
        st.interrupt(&mut out);
        assert!(out.is_empty());
        assert_eq!(st.stashed(), 3);

        let mut out = Vec::with_capacity(1);
        st.begin(&mut out).unwrap();
        assert_eq!(out, b"abc");
        out.extend_from_slice(b"def");
        st.finish();
        assert!(!st.is_mid());
        assert_eq!(st.stashed(), 0);
    }

    #[test]
    fn over_the_limit_poisons_before_reading() {
        let mut st = RecvState::new("pipe \"x\"", 10);
        let e = st.start(Some(11)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string().contains("11 bytes exceeds the limit of 10"),
            "{e}"
        );
        let e = st.begin(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let mut st = RecvState::new("t", 10);
        st.start(Some(10)).unwrap();
        assert!(!st.is_poisoned());
    }

    #[test]
    fn end_of_stream_is_clean_only_at_a_boundary() {
        let mut st = RecvState::new("t", 10);
        assert_eq!(st.end_of_stream(Some(0)).unwrap(), None);
        st.start(Some(5)).unwrap();
        let e = st.end_of_stream(Some(3)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            e.to_string().contains("5-byte message (3 bytes received)"),
            "{e}"
        );
        assert_eq!(
            st.end_of_stream(None).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
