//! Partial sends: how far a message got on its way out, and what happens
//! when a send's time runs out part-way.
//!
//! The contract every send in this crate keeps:
//! - `Ok` means the whole message was handed over (to the kernel for a pipe,
//!   committed to the ring for the channel);
//! - a send that gives up (timeout, `WouldBlock`) before its first byte left
//!   is a clean error, with nothing sent;
//! - a send that runs out of time after part of a message left gets
//!   [`SEND_GRACE`] more to finish it. If it still cannot, the sending side is
//!   poisoned: this and every later send fail, and the transport closes its
//!   sending direction so the peer sees the stream end inside the message
//!   (an error there, never a half message followed by the next one).
//!
//! An async send is a future its caller may drop at any await point. Dropped
//! before its first byte left, it sent nothing. Dropped after, the frame is
//! not given up: [`SendState::keep_rest`] copies its unsent rest into the
//! sending state, and the stream finishes it before anything else goes out —
//! at the next send, at a flush, or (bounded by [`SEND_GRACE`], then the
//! poison rule above) when the stream is dropped. The peer therefore sees
//! every frame whole, once, in order.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::HEADER_LEN;
use super::recv::Poison;
use crate::sys::Wait;

/// How much longer a send that has already put part of a message on its way
/// may take to finish it.
pub(crate) const SEND_GRACE: Duration = Duration::from_secs(1);

/// One message on its way out: an optional u32-LE length prefix, the payload,
/// and how many of those bytes have been handed over.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    head: [u8; HEADER_LEN],
    head_len: usize,
    body: &'a [u8],
    sent: usize,
    /// At least one write happened (an empty message is one empty write).
    started: bool,
    /// The rest of a frame whose first bytes left earlier (a kept tail):
    /// partial from the start.
    continued: bool,
}

impl<'a> Outgoing<'a> {
    /// A length-prefixed frame.
    ///
    /// # Errors
    /// `InvalidInput` for a payload of 4 GiB or more.
    pub(crate) fn framed(body: &'a [u8]) -> io::Result<Outgoing<'a>> {
        Ok(Outgoing {
            head: encode_header(body.len())?,
            head_len: HEADER_LEN,
            body,
            sent: 0,
            started: false,
            continued: false,
        })
    }

    /// A message the transport delimits itself (native pipe messages, ring
    /// records).
    pub(crate) fn raw(body: &'a [u8]) -> Outgoing<'a> {
        Outgoing {
            head: [0; HEADER_LEN],
            head_len: 0,
            body,
            sent: 0,
            started: false,
            continued: false,
        }
    }

    /// The rest of a frame whose first bytes already left (a tail kept by
    /// [`SendState::keep_rest`]); never empty.
    fn continuation(rest: &'a [u8]) -> Outgoing<'a> {
        debug_assert!(!rest.is_empty());
        Outgoing {
            head: [0; HEADER_LEN],
            head_len: 0,
            body: rest,
            sent: 0,
            started: true,
            continued: true,
        }
    }

    /// Total bytes, prefix included.
    pub(crate) fn len(&self) -> usize {
        self.head_len + self.body.len()
    }

    /// Bytes handed over so far.
    pub(crate) fn sent(&self) -> usize {
        self.sent
    }

    /// The rest of a message whose first bytes left earlier (a kept tail).
    pub(crate) fn is_continuation(&self) -> bool {
        self.continued
    }

    /// Some of the message has left: giving up now would cut it.
    pub(crate) fn is_partial(&self) -> bool {
        (self.sent > 0 || self.continued) && !self.is_done()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.started && self.sent == self.len()
    }

    /// What is left: the rest of the prefix, the rest of the payload.
    pub(crate) fn rest(&self) -> [&[u8]; 2] {
        if self.sent < self.head_len {
            [&self.head[self.sent..self.head_len], self.body]
        } else {
            [&[], &self.body[self.sent - self.head_len..]]
        }
    }

    /// The next piece of payload for a transport with a largest unit (ring
    /// records), and whether more pieces follow it. Only for `raw` messages.
    pub(crate) fn next_piece(&self, max: usize) -> (&'a [u8], bool) {
        debug_assert_eq!(self.head_len, 0);
        let rest = &self.body[self.sent..];
        let n = rest.len().min(max);
        (&rest[..n], n < rest.len())
    }

    /// Records that `n` more bytes were handed over.
    pub(crate) fn advance(&mut self, n: usize) {
        debug_assert!(self.sent + n <= self.len());
        self.sent += n;
        self.started = true;
    }
}

/// Encodes the length prefix of a frame.
///
/// # Errors
/// `InvalidInput` if `len` does not fit in a `u32`.
pub(crate) fn encode_header(len: usize) -> io::Result<[u8; HEADER_LEN]> {
    u32::try_from(len).map(u32::to_le_bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message of {len} bytes is too large: the limit is {} bytes",
                u32::MAX
            ),
        )
    })
}

/// A transport's sending direction, as the send driver sees it.
pub(crate) trait Sink {
    /// Hands over some of what is left of `out` (the first bytes of
    /// `out.rest()`), waiting per `wait`; returns how many. `WouldBlock` or
    /// `TimedOut` when the wait ran out with nothing handed over. A sink that
    /// starts waiting anchors `wait` ([`Wait::anchor`]), so the writes of one
    /// send share one deadline.
    fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize>;

    /// The sending side was poisoned: close the sending direction so the peer
    /// sees the stream end (errors are ignored: it is already failing).
    fn abort(&mut self);

    /// Whether the last failed write may have handed over part of the
    /// message although it reported nothing (a transport that cannot tell,
    /// like a cancelled Windows message write): then the failure is not a
    /// clean one and the sending side is poisoned.
    fn cut(&self) -> bool {
        false
    }
}

fn is_expiry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The sending side of one stream between calls.
#[derive(Debug)]
pub(crate) struct SendState {
    label: Arc<str>,
    poison: Option<Poison>,
    /// The unsent rest of a frame whose sender stopped waiting after its
    /// first bytes left (a dropped future): `tail[tail_sent..]` goes out
    /// before anything else.
    tail: Vec<u8>,
    tail_sent: usize,
}

/// How a driver waits when the sink is not ready.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Per a [`Wait`], with the grace period for a partial frame.
    Blocking,
    /// Not at all: `WouldBlock` hands control back to a readiness-based
    /// (async) driver, progress kept in the [`Outgoing`].
    Ready,
}

impl SendState {
    pub(crate) fn new(label: impl Into<Arc<str>>) -> SendState {
        SendState {
            label: label.into(),
            poison: None,
            tail: Vec::new(),
            tail_sent: 0,
        }
    }

    /// Whether a kept tail waits to go out ([`keep_rest`](Self::keep_rest)).
    #[cfg_attr(not(all(unix, feature = "tokio")), allow(dead_code))]
    pub(crate) fn has_tail(&self) -> bool {
        self.tail_sent < self.tail.len()
    }

    /// The sender of `out` stops waiting for it (its future was dropped, or
    /// a poll-based writer reported the frame as taken). A frame none of
    /// whose bytes left is dropped whole: nothing was sent. A frame partly
    /// sent keeps its unsent rest as an owned copy, which the next
    /// [`send`](Self::send), [`send_ready`](Self::send_ready) or
    /// [`finish_tail`](Self::finish_tail) sends first, so the peer gets the
    /// frame whole. Returns whether a tail was kept.
    #[cfg_attr(not(all(unix, feature = "tokio")), allow(dead_code))]
    pub(crate) fn keep_rest(&mut self, out: &Outgoing<'_>) -> bool {
        if !out.is_partial() || self.poison.is_some() {
            return false;
        }
        let [a, b] = out.rest();
        if self.has_tail() {
            // Only the tail's own continuation can be partial while a tail
            // exists, and its progress is tracked in `tail_sent` already.
            debug_assert!(out.continued);
            return true;
        }
        self.tail.clear();
        self.tail.extend_from_slice(a);
        self.tail.extend_from_slice(b);
        self.tail_sent = 0;
        true
    }

    /// Nothing poisoned and no kept tail to finish first: a new message may
    /// go out directly (a transport's fast path checks this first).
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.poison.is_none() && self.tail_sent >= self.tail.len()
    }

    /// Fails with the sticky error, if the sending side is poisoned.
    #[inline]
    pub(crate) fn check(&self) -> io::Result<()> {
        match &self.poison {
            Some(p) => Err(p.to_io()),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.is_some()
    }

    /// Poisons the sending side after `out` was cut by `cause`.
    pub(crate) fn fail(&mut self, out: &Outgoing<'_>, cause: &io::Error) -> io::Error {
        let kind = if is_expiry(cause) {
            io::ErrorKind::TimedOut
        } else {
            cause.kind()
        };
        let what = if out.continued {
            format!(
                "the rest of a message whose sender stopped waiting could not be sent \
                 ({} of {} bytes left)",
                out.len() - out.sent(),
                out.len()
            )
        } else {
            format!(
                "a send stopped after {} of {} bytes of a message",
                out.sent(),
                out.len()
            )
        };
        let p = Poison::new(
            kind,
            format!(
                "{}: {what} ({cause}); the sending side is closed so that the peer does not \
                 take a cut message for a whole one — reconnect to send again",
                self.label,
            ),
        );
        let e = p.to_io();
        self.poison = Some(p);
        self.tail = Vec::new();
        self.tail_sent = 0;
        e
    }

    /// Sends all of `out` through `sink` per the contract in the [module
    /// docs](self), after a kept tail, if any.
    #[inline]
    pub(crate) fn send<S: Sink + ?Sized>(
        &mut self,
        sink: &mut S,
        out: &mut Outgoing<'_>,
        wait: Wait,
    ) -> io::Result<()> {
        self.check()?;
        self.finish_tail(sink, wait)?;
        self.drive(sink, out, wait, Mode::Blocking)
    }

    /// Sends what is left of a kept tail, waiting per `wait` and then the
    /// grace period; a tail that cannot finish poisons the sending side (the
    /// frame is partial: the peer must not take it for a whole one).
    pub(crate) fn finish_tail<S: Sink + ?Sized>(
        &mut self,
        sink: &mut S,
        wait: Wait,
    ) -> io::Result<()> {
        self.tail_step(sink, wait, Mode::Blocking)
    }

    /// Gives up on a kept tail at once (its driver already waited the grace
    /// period): poisons the sending side and aborts the sink, as a blocking
    /// send that runs out of grace does.
    #[cfg_attr(not(all(unix, feature = "tokio")), allow(dead_code))]
    pub(crate) fn cut_tail<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        if !self.has_tail() {
            return;
        }
        let tail = std::mem::take(&mut self.tail);
        let out = Outgoing::continuation(&tail[self.tail_sent..]);
        let cause = io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer read nothing for the grace period after the stream was dropped",
        );
        self.abort(sink, &out, cause);
    }

    /// One nonblocking pass for a readiness-based (async) driver: a kept
    /// tail first, then `out`. `WouldBlock` means "wait until the sink is
    /// writable and call again": the progress stays in `out` (and in the
    /// tail). There is no deadline here — the caller's cancellation is the
    /// deadline, and [`keep_rest`](Self::keep_rest) the way to give up.
    #[cfg_attr(not(all(unix, feature = "tokio")), allow(dead_code))]
    pub(crate) fn send_ready<S: Sink + ?Sized>(
        &mut self,
        sink: &mut S,
        out: &mut Outgoing<'_>,
    ) -> io::Result<()> {
        self.flush_ready(sink)?;
        self.drive(sink, out, Wait::Never, Mode::Ready)
    }

    /// The nonblocking pass over a kept tail alone (`poll_flush`): `Ok` once
    /// nothing of ours is left to go out, `WouldBlock` to be called again
    /// when the sink is writable.
    #[cfg_attr(not(all(unix, feature = "tokio")), allow(dead_code))]
    pub(crate) fn flush_ready<S: Sink + ?Sized>(&mut self, sink: &mut S) -> io::Result<()> {
        self.check()?;
        self.tail_step(sink, Wait::Never, Mode::Ready)
    }

    fn tail_step<S: Sink + ?Sized>(
        &mut self,
        sink: &mut S,
        wait: Wait,
        mode: Mode,
    ) -> io::Result<()> {
        if !self.has_tail() {
            return Ok(());
        }
        let tail = std::mem::take(&mut self.tail);
        let mut out = Outgoing::continuation(&tail[self.tail_sent..]);
        let r = self.drive(sink, &mut out, wait, mode);
        if r.is_ok() || self.poison.is_some() {
            self.tail_sent = 0;
            self.tail = tail;
            self.tail.clear();
        } else {
            self.tail_sent += out.sent();
            self.tail = tail;
        }
        r
    }

    #[inline]
    fn drive<S: Sink + ?Sized>(
        &mut self,
        sink: &mut S,
        out: &mut Outgoing<'_>,
        wait: Wait,
        mode: Mode,
    ) -> io::Result<()> {
        self.check()?;
        let mut wait = wait;
        let mut grace = false;
        while !out.is_done() {
            match sink.write(out, &mut wait) {
                Ok(0) if out.len() > out.sent() => {
                    let e = io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the OS took none of the message and reported no error; the stream is \
                         unusable — reconnect",
                    );
                    return Err(self.abort(sink, out, e));
                }
                Ok(n) => out.advance(n),
                Err(e) if sink.cut() => return Err(self.abort(sink, out, e)),
                Err(e) if is_expiry(&e) && (mode == Mode::Ready || !out.is_partial()) => {
                    return Err(e)
                }
                Err(e) if is_expiry(&e) && !grace => {
                    grace = true;
                    wait = Wait::Until(Instant::now() + SEND_GRACE);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if out.is_partial() => return Err(self.abort(sink, out, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn abort<S: Sink + ?Sized>(
        &mut self,
        sink: &mut S,
        out: &Outgoing<'_>,
        cause: io::Error,
    ) -> io::Error {
        let e = self.fail(out, &cause);
        sink.abort();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes `take[i]` bytes on call i, or times out when that is 0.
    struct Script {
        take: Vec<usize>,
        i: usize,
        got: Vec<u8>,
        aborted: bool,
        waits: Vec<Wait>,
    }

    impl Sink for Script {
        fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
            let wait = *wait;
            self.waits.push(wait);
            let k = self.take.get(self.i).copied().unwrap_or(usize::MAX);
            self.i += 1;
            if k == 0 {
                return Err(wait.expired_error());
            }
            let [a, b] = out.rest();
            let mut n = 0;
            for s in [a, b] {
                let m = s.len().min(k - n);
                self.got.extend_from_slice(&s[..m]);
                n += m;
            }
            Ok(n)
        }

        fn abort(&mut self) {
            self.aborted = true;
        }
    }

    fn script(take: &[usize]) -> Script {
        Script {
            take: take.to_vec(),
            i: 0,
            got: Vec::new(),
            aborted: false,
            waits: Vec::new(),
        }
    }

    #[test]
    fn a_timeout_before_the_first_byte_is_clean() {
        let mut st = SendState::new("t");
        let mut s = script(&[0]);
        let mut out = Outgoing::framed(b"hello").unwrap();
        let e = st.send(&mut s, &mut out, Wait::Never).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(s.got.is_empty() && !s.aborted && !st.is_poisoned());
        // The stream stays usable.
        let mut s = script(&[]);
        st.send(&mut s, &mut Outgoing::framed(b"hi").unwrap(), Wait::Never)
            .unwrap();
        assert_eq!(s.got, [2, 0, 0, 0, b'h', b'i']);
    }

    #[test]
    fn a_partial_send_gets_the_grace_period_and_finishes() {
        let mut st = SendState::new("t");
        let mut s = script(&[3, 0, 2]);
        let mut out = Outgoing::framed(b"hello").unwrap();
        st.send(&mut s, &mut out, Wait::Never).unwrap();
        assert_eq!(s.got, [5, 0, 0, 0, b'h', b'e', b'l', b'l', b'o']);
        assert!(matches!(s.waits[2], Wait::Until(_)), "{:?}", s.waits);

        // An async driver that waited the grace itself cuts at once.
        let mut st = SendState::new("t");
        let mut s = script(&[4, 0]);
        let mut out = Outgoing::framed(b"hello").unwrap();
        st.send_ready(&mut s, &mut out).unwrap_err();
        assert!(st.keep_rest(&out));
        st.cut_tail(&mut s);
        assert!(s.aborted && st.is_poisoned() && !st.has_tail());
    }

    #[test]
    fn a_partial_send_that_cannot_finish_poisons_and_aborts() {
        let mut st = SendState::new("pipe \"x\"");
        let mut s = script(&[3, 0, 0]);
        let mut out = Outgoing::framed(b"hello").unwrap();
        let e = st.send(&mut s, &mut out, Wait::Never).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("after 3 of 9 bytes"), "{e}");
        assert!(s.aborted);
        let mut s = script(&[]);
        let e = st
            .send(&mut s, &mut Outgoing::framed(b"x").unwrap(), Wait::Block)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(s.got.is_empty());
    }

    /// A readiness driver's frame dropped part-way: its rest is kept and
    /// goes out before the next frame, so the peer sees both whole, once.
    #[test]
    fn a_dropped_partial_frame_is_finished_before_the_next() {
        let mut st = SendState::new("t");
        // 3 bytes leave, then the sink would block: WouldBlock, progress kept.
        let mut s = script(&[3, 0]);
        let mut out = Outgoing::framed(b"hello").unwrap();
        let e = st.send_ready(&mut s, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(!st.is_poisoned() && !s.aborted);
        assert_eq!(out.sent(), 3);
        // The future is dropped: the rest becomes the stream's.
        assert!(st.keep_rest(&out));
        assert!(st.has_tail());
        // The tail itself is cut again (2 bytes, then blocked) ...
        let mut s2 = script(&[2, 0]);
        let mut next = Outgoing::framed(b"xy").unwrap();
        let e = st.send_ready(&mut s2, &mut next).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(next.sent(), 0, "the next frame waits for the tail");
        // ... and this sender gives up too, before its first byte: nothing kept.
        assert!(!st.keep_rest(&next));
        // A flush finishes the tail; the next frame follows intact.
        let mut s3 = script(&[]);
        st.flush_ready(&mut s3).unwrap();
        assert!(!st.has_tail());
        st.send_ready(&mut s3, &mut Outgoing::framed(b"z").unwrap())
            .unwrap();
        let mut wire = s.got.clone();
        wire.extend_from_slice(&s2.got);
        wire.extend_from_slice(&s3.got);
        assert_eq!(
            wire,
            [5, 0, 0, 0, b'h', b'e', b'l', b'l', b'o', 1, 0, 0, 0, b'z']
        );
    }

    /// Nothing is kept of a frame that did not start, or finished.
    #[test]
    fn keep_rest_keeps_only_partial_frames() {
        let mut st = SendState::new("t");
        assert!(!st.keep_rest(&Outgoing::framed(b"abc").unwrap()));
        let mut s = script(&[]);
        let mut out = Outgoing::framed(b"abc").unwrap();
        st.send_ready(&mut s, &mut out).unwrap();
        assert!(!st.keep_rest(&out));
        assert!(!st.has_tail());
    }

    /// The blocking path (a stream dropped with a tail) grants the grace
    /// period, then poisons and aborts, naming what was left.
    #[test]
    fn a_tail_that_cannot_finish_poisons_and_aborts() {
        let mut st = SendState::new("pipe \"x\"");
        let mut s = script(&[4, 0]);
        let mut out = Outgoing::framed(b"hello").unwrap();
        st.send_ready(&mut s, &mut out).unwrap_err();
        assert!(st.keep_rest(&out));
        let mut s = script(&[1, 0, 0]);
        let e = st.finish_tail(&mut s, Wait::Never).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("4 of 5 bytes left"), "{e}");
        assert!(s.aborted && st.is_poisoned() && !st.has_tail());
        assert!(matches!(s.waits[2], Wait::Until(_)), "{:?}", s.waits);
    }

    #[test]
    fn an_empty_raw_message_is_one_write() {
        let mut st = SendState::new("t");
        let mut s = script(&[]);
        st.send(&mut s, &mut Outgoing::raw(b""), Wait::Block)
            .unwrap();
        assert_eq!(s.i, 1);
    }

    #[test]
    fn pieces_cover_the_payload() {
        let body = [1u8; 10];
        let mut out = Outgoing::raw(&body);
        let mut pieces = Vec::new();
        while !out.is_done() {
            let (p, more) = out.next_piece(4);
            pieces.push((p.len(), more));
            out.advance(p.len());
        }
        assert_eq!(pieces, [(4, true), (4, true), (2, false)]);
    }
}
