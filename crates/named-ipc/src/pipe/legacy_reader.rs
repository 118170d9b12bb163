//! The frame reader the Unix socket backend still uses while it moves to
//! [`crate::proto::frame::Decoder`]. Not used anywhere else.
#![allow(dead_code)]

use std::fmt;
use std::io::{self, Read};

use super::framing::{Received, HEADER_LEN};

/// Bytes buffered per reader: small messages arrive with their header in one read.
const READ_BUF: usize = 8 * 1024;

/// A receive buffer at least this large is read into directly (header and
/// payload in one OS call) instead of through the reader's own buffer.
const SCATTER_MIN: usize = 256;

/// Where a [`FrameReader`] gets its bytes. The defaults work for any `Read`;
/// the Unix socket overrides them to read straight into the caller's buffer.
pub(crate) trait Source: Read {
    /// Appends up to `max` bytes to `out`, returning how many; 0 means end of
    /// stream. On error, bytes appended before it stay in `out`.
    fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let before = out.len();
        <&mut Self as Read>::take(self, max as u64).read_to_end(out)?;
        Ok(out.len() - before)
    }

    /// Reads the 4 header bytes into `head` and what follows into the spare
    /// capacity of `out`, in one OS call, returning the total. `None`: not
    /// supported by this source.
    fn read_head_and_append(
        &mut self,
        head: &mut [u8; HEADER_LEN],
        out: &mut Vec<u8>,
    ) -> Option<io::Result<usize>> {
        let _ = (head, out);
        None
    }
}

/// Any reader as a [`Source`], without the fast paths.
pub(crate) struct Plain<'a, R: ?Sized>(pub(crate) &'a mut R);

impl<R: Read + ?Sized> Read for Plain<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + ?Sized> Source for Plain<'_, R> {}

/// Outcome of [`FrameReader::read_head_direct`].
enum Direct {
    /// A header was read and the payload so far is in the caller's buffer.
    Header,
    /// Clean end of stream at a message boundary.
    End,
    /// Not possible here, or only part of a header arrived (now buffered):
    /// continue on the ordinary path.
    Fallback,
}

/// Sticky error of a reader whose stream lost frame sync.
#[derive(Clone)]
struct Poison {
    kind: io::ErrorKind,
    message: String,
}

impl Poison {
    fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

impl fmt::Debug for Poison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// The buffered frame reader behind Unix message mode, [`Framed`] and
/// [`FrameDecoder`]. It never loses bytes: a read interrupted by a timeout or
/// `WouldBlock` keeps what arrived and resumes on the next call.
#[derive(Debug)]
pub(crate) struct FrameReader {
    max: u32,
    /// What the stream is, for error messages (e.g. `pipe "jobs"`).
    label: String,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// `Some(n)` while inside a message: `n` payload bytes still unread from
    /// `buf` and the stream.
    remaining: Option<u32>,
    /// Length of the current message, for error messages.
    total: u32,
    /// Payload of the current message already read but not yet handed out.
    stash: Vec<u8>,
    poison: Option<Poison>,
}

impl FrameReader {
    pub(crate) fn new(max: u32, label: String) -> FrameReader {
        FrameReader {
            max,
            label,
            buf: Vec::new(),
            lo: 0,
            hi: 0,
            remaining: None,
            total: 0,
            stash: Vec::new(),
            poison: None,
        }
    }

    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// Whether nothing has been read or buffered yet.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn is_fresh(&self) -> bool {
        self.at_boundary() && self.buf.is_empty() && self.poison.is_none()
    }

    fn poison(&mut self, kind: io::ErrorKind, message: String) -> io::Error {
        let p = Poison { kind, message };
        let e = p.to_io();
        self.poison = Some(p);
        e
    }

    fn check_poison(&self) -> io::Result<()> {
        match &self.poison {
            Some(p) => Err(p.to_io()),
            None => Ok(()),
        }
    }

    /// Whether the reader is between messages with nothing buffered: the clean
    /// place for a stream to end.
    fn at_boundary(&self) -> bool {
        self.remaining.is_none() && self.lo == self.hi
    }

    /// Reads the next header. `Ok(None)`: clean end of stream.
    fn read_header<R: Read>(&mut self, r: &mut R) -> io::Result<Option<u32>> {
        loop {
            if self.hi - self.lo >= HEADER_LEN {
                let mut h = [0u8; HEADER_LEN];
                h.copy_from_slice(&self.buf[self.lo..self.lo + HEADER_LEN]);
                self.lo += HEADER_LEN;
                let len = u32::from_le_bytes(h);
                if len > self.max {
                    return Err(self.too_large(len));
                }
                self.remaining = Some(len);
                self.total = len;
                return Ok(Some(len));
            }
            if self.buf.is_empty() {
                self.buf = vec![0; READ_BUF];
            }
            if self.lo > 0 {
                self.buf.copy_within(self.lo..self.hi, 0);
                self.hi -= self.lo;
                self.lo = 0;
            }
            let n = r.read(&mut self.buf[self.hi..])?;
            if n == 0 {
                if self.hi == 0 {
                    return Ok(None);
                }
                let got = self.hi;
                return Err(self.poison(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: the peer closed the stream inside a message header \
                         ({got} of {HEADER_LEN} length bytes received)",
                        self.label
                    ),
                ));
            }
            self.hi += n;
        }
    }

    fn truncated(&mut self, unread: u32) -> io::Error {
        let got = self.total - unread;
        let total = self.total;
        self.poison(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: the peer closed the stream in the middle of a {total}-byte message \
                 ({got} bytes received)",
                self.label
            ),
        )
    }

    /// Receives one whole message into `out` (replacing its contents).
    /// `Ok(None)`: the stream ended cleanly at a message boundary.
    pub(crate) fn recv_into<S: Source>(
        &mut self,
        r: &mut S,
        out: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        self.check_poison()?;
        out.clear();
        if self.remaining.is_none() {
            let fast = self.lo == self.hi && out.capacity() >= SCATTER_MIN;
            match if fast {
                self.read_head_direct(r, out)?
            } else {
                Direct::Fallback
            } {
                Direct::Header => {}
                Direct::End => return Ok(None),
                Direct::Fallback => {
                    if self.read_header(r)?.is_none() {
                        return Ok(None);
                    }
                }
            }
        } else if !self.stash.is_empty() {
            // Resume a message interrupted by a timeout or WouldBlock.
            std::mem::swap(out, &mut self.stash);
        }
        let mut rem = self.remaining.unwrap_or(0);
        out.reserve(rem as usize);
        let take = (rem as usize).min(self.hi - self.lo);
        out.extend_from_slice(&self.buf[self.lo..self.lo + take]);
        self.lo += take;
        rem -= take as u32;
        while rem > 0 {
            let before = out.len();
            let res = r.read_append(out, rem as usize);
            rem -= (out.len() - before) as u32;
            match res {
                Ok(0) if rem > 0 => return Err(self.truncated(rem)),
                Ok(_) => {}
                Err(e) => {
                    // Keep what arrived; the next call continues this message.
                    self.remaining = Some(rem);
                    std::mem::swap(out, &mut self.stash);
                    out.clear();
                    return Err(e);
                }
            }
        }
        self.remaining = None;
        Ok(Some(out.len()))
    }

    /// The fast path at a message boundary with nothing buffered: one OS call
    /// puts the header in a small array and the payload straight into `out`.
    /// Bytes beyond this message move to our buffer.
    fn read_head_direct<S: Source>(&mut self, r: &mut S, out: &mut Vec<u8>) -> io::Result<Direct> {
        let mut head = [0u8; HEADER_LEN];
        let n = match r.read_head_and_append(&mut head, out) {
            None => return Ok(Direct::Fallback),
            Some(n) => n?,
        };
        if n == 0 {
            return Ok(Direct::End);
        }
        if n < HEADER_LEN {
            // A partial header: buffer it; the ordinary path reads the rest.
            self.keep(&head[..n]);
            return Ok(Direct::Fallback);
        }
        let len = u32::from_le_bytes(head);
        if len > self.max {
            return Err(self.too_large(len));
        }
        if out.len() > len as usize {
            let extra = out.split_off(len as usize);
            self.keep(&extra);
        }
        self.remaining = Some(len - out.len() as u32);
        self.total = len;
        Ok(Direct::Header)
    }

    /// Buffers bytes read ahead (the buffer is empty when this is called).
    fn keep(&mut self, bytes: &[u8]) {
        if self.buf.len() < bytes.len().max(READ_BUF) {
            self.buf.resize(bytes.len().max(READ_BUF), 0);
        }
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.lo = 0;
        self.hi = bytes.len();
    }

    fn too_large(&mut self, len: u32) -> io::Error {
        self.poison(
            io::ErrorKind::InvalidData,
            format!(
                "{}: incoming message of {len} bytes exceeds the limit of {} bytes \
                 (raise the receiver's max message size, or check that the peer \
                 speaks the u32-LE length-prefixed format)",
                self.label, self.max
            ),
        )
    }

    /// Copies as much of the current (or next) message as fits into `out`.
    /// With `fill`, waits until `out` is full or the message is complete;
    /// without, returns as soon as any payload byte was delivered.
    /// `Ok(None)`: the stream ended cleanly at a message boundary.
    pub(crate) fn recv_slice<R: Read>(
        &mut self,
        r: &mut R,
        out: &mut [u8],
        fill: bool,
    ) -> io::Result<Option<Received>> {
        self.check_poison()?;
        if self.remaining.is_none() && self.read_header(r)?.is_none() {
            return Ok(None);
        }
        let mut rem = self.remaining.unwrap_or(0);
        let mut n = (out.len()).min(self.stash.len());
        out[..n].copy_from_slice(&self.stash[..n]);
        self.stash.drain(..n);
        let take = (out.len() - n).min(rem as usize).min(self.hi - self.lo);
        out[n..n + take].copy_from_slice(&self.buf[self.lo..self.lo + take]);
        self.lo += take;
        n += take;
        rem -= take as u32;
        while n < out.len() && rem > 0 && (fill || n == 0) {
            let want = (out.len() - n).min(rem as usize);
            match r.read(&mut out[n..n + want]) {
                Ok(0) => {
                    let e = self.truncated(rem);
                    if n == 0 {
                        return Err(e);
                    }
                    break;
                }
                Ok(k) => {
                    n += k;
                    rem -= k as u32;
                }
                Err(e) if n == 0 => {
                    self.remaining = Some(rem);
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        let left = self.stash.len() as u64 + u64::from(rem);
        self.remaining = if left == 0 && self.stash.is_empty() {
            None
        } else {
            Some(rem)
        };
        Ok(Some(Received {
            len: n,
            remaining: left,
        }))
    }

    /// `Read` over message payloads (boundaries dropped, empty messages skipped).
    /// Windows reads native messages instead.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn read_payload<R: Read>(&mut self, r: &mut R, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.recv_slice(r, out, false)? {
                None => return Ok(0),
                Some(got) if got.len == 0 && got.remaining == 0 => continue,
                Some(got) => return Ok(got.len),
            }
        }
    }
}
