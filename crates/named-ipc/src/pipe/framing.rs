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
//! returns the same error. A receiver never reserves memory for a length it was
//! told: its buffer grows as the payload arrives.
//!
//! A sender returns `Ok` only once the whole frame was written. If the writer
//! times out (or would block) before the first byte, nothing was sent; if it
//! stops part-way, the sender keeps trying for up to a second and otherwise
//! poisons itself: every later send fails, rather than putting a frame after a
//! cut one.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::proto::frame::{Decoder, Plain};
use crate::proto::send::{Outgoing, SendState, Sink};
use crate::sys::Wait;

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// The default largest message a receiver accepts: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: u32 = 16 << 20;

/// The largest message the wire format can carry: 4 GiB − 1.
pub const MAX_MESSAGE_LIMIT: u32 = u32::MAX;

/// Encodes the length prefix of a frame.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] if `len` does not fit in a `u32`.
pub fn encode_header(len: usize) -> io::Result<[u8; HEADER_LEN]> {
    crate::proto::send::encode_header(len)
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

/// The [`Sink`] for any writer: writes header and payload with one vectored
/// write where the writer supports it. A writer that times out or would block
/// part-way through a frame is retried, with short sleeps, until the grace
/// deadline the send driver sets.
struct WriteSink<'a, W: ?Sized> {
    w: &'a mut W,
    /// Size and payload as separate writes.
    split: bool,
}

impl<W: Write + ?Sized> Sink for WriteSink<'_, W> {
    fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
        let [a, b] = out.rest();
        let bufs = [io::IoSlice::new(a), io::IoSlice::new(b)];
        let bufs = if a.is_empty() {
            &bufs[1..]
        } else if self.split {
            &bufs[..1]
        } else {
            &bufs[..]
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match self.w.write_vectored(bufs) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // The writer has its own timeouts; only the grace period
                    // (a deadline) is worth retrying for.
                    let Wait::Until(t) = *wait else { return Err(e) };
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn abort(&mut self) {
        // A generic writer cannot be half-closed; the poisoned sender refuses
        // every later frame.
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
    decoder: Decoder,
    sender: SendState,
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
            decoder: Decoder::new("framed stream", max),
            sender: SendState::new("framed stream"),
            split: false,
        }
    }

    /// The largest incoming frame accepted.
    pub fn max_message(&self) -> u32 {
        self.decoder.max()
    }

    /// Writes each frame's 4-byte size and its payload with two separate
    /// writes (none for an empty payload) instead of one vectored write (the
    /// default). The bytes are the same either way.
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
    /// Sends `msg` as one frame and flushes. `Ok` means the whole frame was
    /// written.
    ///
    /// # Errors
    /// Errors of the underlying stream; [`io::ErrorKind::InvalidInput`] for a
    /// message of 4 GiB or more. After `WouldBlock` or `TimedOut` nothing of
    /// this frame was written, unless the writer stopped part-way for more than
    /// a second: then the sender is poisoned and every later `send` fails too
    /// (drop the stream; the peer sees a frame cut short, an error there).
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let mut out = Outgoing::framed(msg)?;
        let mut sink = WriteSink {
            w: &mut self.io,
            split: self.split,
        };
        self.sender.send(&mut sink, &mut out, Wait::Block)?;
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
        self.decoder.recv_into(&mut Plain(&mut self.io), buf)
    }

    /// Reads as much of the next frame as fits into `buf`; the rest stays for the
    /// next call (like Windows' `ERROR_MORE_DATA`). See [`Received`].
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_slice(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.decoder.recv_slice(&mut Plain(&mut self.io), buf, true)
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
    decoder: Decoder,
    eof: bool,
}

impl FrameDecoder {
    /// A decoder accepting frames up to `max` bytes.
    pub fn new(max: u32) -> FrameDecoder {
        FrameDecoder {
            decoder: Decoder::new("frame decoder", max),
            eof: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// Marks the end of input: a partial frame left over becomes an error.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Whether no partial frame is pending.
    pub fn is_idle(&self) -> bool {
        self.decoder.is_idle()
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
        Ok(self.decoder.next_buffered(&mut v, self.eof)?.map(|_| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut w = Framed::new(Vec::new());
        for m in msgs {
            w.send(m).unwrap();
        }
        w.into_inner()
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
        let big = vec![7u8; 200_000];
        let msgs: Vec<&[u8]> = vec![b"a", &big, b"", b"tail"];
        let mut f = Framed::new(Trickle {
            data: frames(&msgs),
            pos: 0,
            chunk: 3000,
            block_next: false,
        });
        let mut got = Vec::new();
        let mut v = Vec::new();
        loop {
            match f.recv_into(&mut v) {
                Ok(Some(_)) => got.push(v.clone()),
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u8>> = msgs.iter().map(|m| m.to_vec()).collect();
        assert_eq!(got, want);
    }

    /// A writer that takes `take[i]` bytes on call i, or would block when 0.
    struct Stingy {
        take: Vec<usize>,
        i: usize,
        out: Vec<u8>,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let k = self.take.get(self.i).copied().unwrap_or(usize::MAX);
            self.i += 1;
            if k == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = k.min(buf.len());
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_send_that_would_block_at_once_sends_nothing() {
        let mut f = Framed::new(Stingy {
            take: vec![0],
            i: 0,
            out: Vec::new(),
        });
        assert_eq!(
            f.send(b"abc").unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        f.send(b"abc").unwrap();
        assert_eq!(f.get_ref().out, [3, 0, 0, 0, b'a', b'b', b'c']);
    }

    #[test]
    fn a_send_cut_short_finishes_within_the_grace_period_or_poisons() {
        // Blocks twice mid-frame, then takes the rest: the frame completes.
        let mut f = Framed::new(Stingy {
            take: vec![2, 0, 0, 1, 1],
            i: 0,
            out: Vec::new(),
        });
        f.send(b"abc").unwrap();
        assert_eq!(f.get_ref().out, [3, 0, 0, 0, b'a', b'b', b'c']);
        // Never takes the rest: the sender is poisoned, no later frame goes out.
        let mut take = vec![2];
        take.extend(std::iter::repeat_n(0, 10_000));
        let mut f = Framed::new(Stingy {
            take,
            i: 0,
            out: Vec::new(),
        });
        let e = f.send(b"abc").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        f.get_mut().take.clear();
        assert!(f.send(b"next").is_err());
        assert_eq!(f.get_ref().out, [3, 0]);
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
