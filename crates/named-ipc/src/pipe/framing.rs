//! Length-prefixed framing: a u32 little-endian size, then the bytes.
//!
//! Each frame is a 4-byte **little-endian** unsigned length `N`, then `N` bytes of
//! payload. There is no other header, no padding and no terminator; a zero-length
//! frame is 4 zero bytes. The same bytes carry message mode on Unix, so any program
//! that can write a `u32` in little-endian order speaks it:
//!
//! ```text
//! "hi"  ->  02 00 00 00 68 69
//! ""    ->  00 00 00 00
//! ```
//!
//! A receiver refuses a frame longer than its limit ([`DEFAULT_MAX_MESSAGE`],
//! 16 MiB, unless configured) with [`io::ErrorKind::InvalidData`] before allocating
//! anything, and a stream that ends inside a frame gives
//! [`io::ErrorKind::UnexpectedEof`]. Either error poisons the reader: the byte
//! stream can no longer be trusted to be at a frame boundary, so every later call
//! returns the same error.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// The default largest message a receiver accepts: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: u32 = 16 << 20;

/// The largest message the wire format can carry: 4 GiB − 1.
pub const MAX_MESSAGE_LIMIT: u32 = u32::MAX;

/// Bytes buffered per reader: small messages arrive with their header in one read.
const READ_BUF: usize = 8 * 1024;

/// Encodes the length prefix of a frame.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] if `len` does not fit in a `u32`.
pub fn encode_header(len: usize) -> io::Result<[u8; HEADER_LEN]> {
    u32::try_from(len).map(u32::to_le_bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message of {len} bytes is too large: the limit is {MAX_MESSAGE_LIMIT} bytes"
            ),
        )
    })
}

/// Result of a partial message read: [`PipeStream::recv_slice`] and
/// [`Framed::recv_slice`].
///
/// [`PipeStream::recv_slice`]: crate::pipe::PipeStream::recv_slice
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the caller's buffer by this call.
    pub len: usize,
    /// Bytes of the same message still unread; the next read continues there.
    /// Zero means the message is complete.
    pub remaining: u64,
}

impl Received {
    /// Whether this call finished the message.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }
}

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

/// Writes one frame with a single `write_all` for payloads up to 64 KiB (so the
/// peer usually gets header and payload in one read), assembled in `scratch`,
/// and with two writes for larger ones.
pub(crate) fn write_frame<W: Write + ?Sized>(
    w: &mut W,
    msg: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    let header = encode_header(msg.len())?;
    if msg.len() <= 64 * 1024 {
        scratch.clear();
        scratch.extend_from_slice(&header);
        scratch.extend_from_slice(msg);
        w.write_all(scratch)
    } else {
        w.write_all(&header)?;
        w.write_all(msg)
    }
}

/// Message framing over any byte stream: a u32-LE size before each message.
///
/// Wrap a byte-mode [`PipeStream`](crate::pipe::PipeStream), a `TcpStream`, a file
/// or a `Cursor`. Frames are a u32 little-endian length then the payload (see the
/// [module docs](self)).
///
/// # Examples
/// ```
/// use named_ipc::pipe::Framed;
/// use std::io::Cursor;
///
/// let mut out = Framed::new(Vec::new());
/// out.send(b"hello")?;
/// out.send(b"")?;
/// let bytes = out.into_inner();
/// assert_eq!(&bytes[..4], &5u32.to_le_bytes());
///
/// let mut input = Framed::new(Cursor::new(bytes));
/// assert_eq!(input.recv()?.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(input.recv()?.as_deref(), Some(&b""[..]));
/// assert_eq!(input.recv()?, None); // clean end of stream
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Framed<T> {
    io: T,
    reader: FrameReader,
    scratch: Vec<u8>,
    /// Size and payload as two writes.
    split: bool,
}

impl<T> Framed<T> {
    /// Wraps `io`, accepting incoming frames up to [`DEFAULT_MAX_MESSAGE`] bytes.
    pub fn new(io: T) -> Framed<T> {
        Framed::with_max_message(io, DEFAULT_MAX_MESSAGE)
    }

    /// Wraps `io`, accepting incoming frames up to `max` bytes.
    pub fn with_max_message(io: T, max: u32) -> Framed<T> {
        Framed {
            io,
            reader: FrameReader::new(max, "framed stream".to_owned()),
            scratch: Vec::new(),
            split: false,
        }
    }

    /// The largest incoming frame accepted.
    pub fn max_message(&self) -> u32 {
        self.reader.max()
    }

    /// Writes each frame's 4-byte size and its payload with two separate
    /// writes (none for an empty payload) instead of one (the default, for
    /// payloads up to 64 KiB). The bytes are the same either way.
    ///
    /// It matters over a Windows pipe of message type
    /// ([`PipeStream::pipe_type`] is [`PipeMode::Message`]), where each write
    /// is one message: the usual Win32 size-prefixed reader takes the size
    /// with one `ReadFile` and the payload with another, which then get one
    /// message each; a frame written at once would be one message, and the
    /// 4-byte read of it fails with `ERROR_MORE_DATA`. On a byte stream
    /// (every Unix pipe, a Windows byte-type pipe) nothing changes.
    ///
    /// # Examples
    /// ```no_run
    /// use named_ipc::pipe::{ConnectOptions, Framed, PipeMode};
    ///
    /// let stream = ConnectOptions::new().mode(PipeMode::Byte).connect("sized")?;
    /// let mut framed = Framed::new(&stream);
    /// framed.set_split_writes(stream.pipe_type()? == PipeMode::Message);
    /// framed.send(b"hello")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`PipeStream::pipe_type`]: crate::pipe::PipeStream::pipe_type
    /// [`PipeMode::Message`]: crate::pipe::PipeMode::Message
    pub fn set_split_writes(&mut self, split: bool) {
        self.split = split;
    }

    /// Whether size and payload go out as separate writes; see
    /// [`set_split_writes`](Self::set_split_writes).
    pub fn split_writes(&self) -> bool {
        self.split
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The wrapped stream, mutably. Reading from it directly desynchronises the
    /// framing.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Unwraps the stream. Bytes already read ahead into the frame buffer are
    /// dropped; call this only at a point where the peer has sent nothing more.
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: Write> Framed<T> {
    /// Sends `msg` as one frame and flushes.
    ///
    /// # Errors
    /// Errors of the underlying stream; [`io::ErrorKind::InvalidInput`] for a
    /// message of 4 GiB or more.
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.split {
            let header = encode_header(msg.len())?;
            self.io.write_all(&header)?;
            self.io.write_all(msg)?;
        } else {
            write_frame(&mut self.io, msg, &mut self.scratch)?;
        }
        self.io.flush()
    }
}

impl<T: Read> Framed<T> {
    /// Receives the next frame. `Ok(None)` when the stream ends cleanly between
    /// frames.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] for a frame over the limit,
    /// [`io::ErrorKind::UnexpectedEof`] for a stream that ends inside a frame, and
    /// errors of the underlying stream (after `WouldBlock` or `TimedOut` the next
    /// call resumes where this one stopped).
    pub fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv_into(&mut v)?.map(|_| v))
    }

    /// Like [`recv`](Self::recv), reusing `buf`'s allocation; returns the length.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.reader.recv_into(&mut Plain(&mut self.io), buf)
    }

    /// Reads as much of the next frame as fits into `buf`; the rest stays for the
    /// next call (like Windows' `ERROR_MORE_DATA`). See [`Received`].
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_slice(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.reader.recv_slice(&mut self.io, buf, true)
    }
}

/// A sans-I/O frame decoder: push bytes in, take frames out. Useful when the bytes
/// come from somewhere that is not a `Read`, and the target of our fuzzing.
///
/// # Examples
/// ```
/// use named_ipc::pipe::FrameDecoder;
///
/// let mut d = FrameDecoder::new(1024);
/// d.push(&[3, 0, 0, 0, b'a']);
/// assert_eq!(d.next_frame()?, None); // incomplete
/// d.push(b"bc");
/// assert_eq!(d.next_frame()?.as_deref(), Some(&b"abc"[..]));
/// d.finish();
/// assert_eq!(d.next_frame()?, None); // clean end
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    reader: FrameReader,
    input: Input,
}

#[derive(Debug, Default)]
struct Input {
    bytes: VecDeque<u8>,
    eof: bool,
}

impl Source for Input {}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.bytes.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        self.bytes.read(buf)
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to `max` bytes.
    pub fn new(max: u32) -> FrameDecoder {
        FrameDecoder {
            reader: FrameReader::new(max, "frame decoder".to_owned()),
            input: Input::default(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.bytes.extend(bytes);
    }

    /// Marks the end of input: a partial frame left over becomes an error.
    pub fn finish(&mut self) {
        self.input.eof = true;
    }

    /// Whether no partial frame is pending.
    pub fn is_idle(&self) -> bool {
        self.reader.at_boundary() && self.input.bytes.is_empty()
    }

    /// The next complete frame, or `None` if more input is needed (or, after
    /// [`finish`](Self::finish), if the input ended cleanly).
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] for a frame over the limit and
    /// [`io::ErrorKind::UnexpectedEof`] for input that ends inside a frame; both
    /// are permanent.
    pub fn next_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        match self.reader.recv_into(&mut self.input, &mut v) {
            Ok(Some(_)) => Ok(Some(v)),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut w = Vec::new();
        let mut scratch = Vec::new();
        for m in msgs {
            write_frame(&mut w, m, &mut scratch).unwrap();
        }
        w
    }

    #[test]
    fn wire_bytes_are_u32_le_length_then_payload() {
        assert_eq!(frames(&[b"hi"]), [2, 0, 0, 0, b'h', b'i']);
        assert_eq!(frames(&[b""]), [0, 0, 0, 0]);
        assert_eq!(encode_header(0x0102_0304).unwrap(), [4, 3, 2, 1]);
    }

    #[test]
    fn oversize_frame_poisons_reader() {
        let mut bytes = 11u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 11]);
        let mut f = Framed::with_max_message(Cursor::new(bytes), 10);
        let e = f.recv().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string().contains("11 bytes exceeds the limit of 10"),
            "{e}"
        );
        assert_eq!(f.recv().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn truncated_frame_is_unexpected_eof() {
        let mut bytes = frames(&[b"hello"]);
        bytes.truncate(7);
        let mut f = Framed::new(Cursor::new(bytes));
        let e = f.recv().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            e.to_string().contains("5-byte message (3 bytes received)"),
            "{e}"
        );

        let mut f = Framed::new(Cursor::new(vec![1, 0]));
        assert_eq!(f.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn recv_slice_splits_a_message_without_loss() {
        let mut f = Framed::new(Cursor::new(frames(&[b"0123456789", b"x"])));
        let mut buf = [0u8; 4];
        let r = f.recv_slice(&mut buf).unwrap().unwrap();
        assert_eq!((r.len, r.remaining), (4, 6));
        assert_eq!(&buf, b"0123");
        let r = f.recv_slice(&mut buf).unwrap().unwrap();
        assert_eq!((r.len, r.remaining), (4, 2));
        assert_eq!(&buf, b"4567");
        // recv after a partial read returns the rest of that message.
        assert_eq!(f.recv().unwrap().unwrap(), b"89");
        assert_eq!(f.recv().unwrap().unwrap(), b"x");
        assert_eq!(f.recv().unwrap(), None);
    }

    /// A reader that hands out at most `chunk` bytes per call and interleaves
    /// `WouldBlock` between successful reads.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        block_next: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn interrupted_reads_resume_without_loss() {
        let big = vec![7u8; 20_000];
        let msgs: Vec<&[u8]> = vec![b"a", &big, b"", b"tail"];
        let mut r = Trickle {
            data: frames(&msgs),
            pos: 0,
            chunk: 3000,
            block_next: false,
        };
        let mut fr = FrameReader::new(DEFAULT_MAX_MESSAGE, "t".into());
        let mut got = Vec::new();
        let mut v = Vec::new();
        loop {
            match fr.recv_into(&mut Plain(&mut r), &mut v) {
                Ok(Some(_)) => got.push(v.clone()),
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u8>> = msgs.iter().map(|m| m.to_vec()).collect();
        assert_eq!(got, want);
    }

    /// A source with the scatter fast path, cutting the stream at `cuts` and
    /// returning `WouldBlock` between reads, like a nonblocking socket.
    struct Scatter {
        data: Vec<u8>,
        pos: usize,
        cuts: Vec<usize>,
        k: usize,
        block_next: bool,
    }

    impl Scatter {
        fn next_len(&mut self) -> Option<usize> {
            if self.block_next {
                self.block_next = false;
                return None;
            }
            self.block_next = true;
            let n = self.cuts[self.k % self.cuts.len()];
            self.k += 1;
            Some(n.min(self.data.len() - self.pos))
        }
    }

    impl Read for Scatter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self
                .next_len()
                .ok_or(io::ErrorKind::WouldBlock)?
                .min(buf.len());
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Source for Scatter {
        fn read_head_and_append(
            &mut self,
            head: &mut [u8; HEADER_LEN],
            out: &mut Vec<u8>,
        ) -> Option<io::Result<usize>> {
            let Some(n) = self.next_len() else {
                return Some(Err(io::ErrorKind::WouldBlock.into()));
            };
            let h = n.min(HEADER_LEN);
            head[..h].copy_from_slice(&self.data[self.pos..self.pos + h]);
            let room = out.capacity() - out.len();
            let p = (n - h).min(room);
            out.extend_from_slice(&self.data[self.pos + h..self.pos + h + p]);
            self.pos += h + p;
            Some(Ok(h + p))
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256, failure_persistence: None, ..Default::default()
        })]

        #[test]
        fn the_scatter_fast_path_loses_nothing(
            msgs in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..700), 0..12),
            cuts in proptest::collection::vec(1usize..900, 1..6),
            cap in 0usize..1200,
        ) {
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            let mut src = Scatter { data: frames(&refs), pos: 0, cuts, k: 0, block_next: false };
            let mut fr = FrameReader::new(1 << 20, "t".into());
            let mut got = Vec::new();
            let mut v = Vec::with_capacity(cap);
            let mut spins = 0;
            loop {
                spins += 1;
                proptest::prop_assert!(spins < 100_000);
                match fr.recv_into(&mut src, &mut v) {
                    Ok(Some(_)) => got.push(v.clone()),
                    Ok(None) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            proptest::prop_assert_eq!(got, msgs);
        }
    }

    #[test]
    fn read_payload_skips_boundaries() {
        let mut f = FrameReader::new(100, "t".into());
        let mut c = Cursor::new(frames(&[b"ab", b"", b"cd"]));
        let mut s = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = f.read_payload(&mut c, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.extend_from_slice(&buf[..n]);
        }
        assert_eq!(s, b"abcd");
    }

    #[test]
    fn decoder_handles_byte_at_a_time_input() {
        let bytes = frames(&[b"one", b"", b"three"]);
        let mut d = FrameDecoder::new(100);
        let mut out = Vec::new();
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                out.push(f);
            }
        }
        d.finish();
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(out, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(d.is_idle());
    }
}
