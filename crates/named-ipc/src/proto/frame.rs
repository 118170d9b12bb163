//! The length-prefixed frame decoder: a u32 little-endian length, then that
//! many payload bytes (the wire format is documented in
//! [`pipe::framing`](crate::pipe::framing)).
//!
//! The decoder does no I/O. Its driver asks it for [`Targets`] — where the
//! next read should put its bytes — reads once, and reports how much arrived.
//! The targets are, in order: the header bytes still missing, the spare
//! capacity of the caller's message buffer (so a payload goes straight where
//! the caller wants it, often together with its header in one system call),
//! and a small read-ahead buffer for whatever follows. The buffer for a
//! payload grows as its bytes arrive, never by the length the peer announced:
//! a header claiming 4 GiB costs nothing until 4 GiB arrive.

use std::io::{self, Read};
use std::sync::Arc;

use super::recv::RecvState;
use crate::pipe::framing::Received;

pub(crate) use crate::pipe::framing::HEADER_LEN;

/// Read-ahead buffer per stream: small messages arrive with their header in
/// one read.
const READ_AHEAD: usize = 8 * 1024;

/// At a message boundary the length is not known yet; a read may put at most
/// this much into the caller's buffer (bytes beyond the message move to the
/// read-ahead buffer).
const DIRECT_AT_BOUNDARY: usize = 64 * 1024;

/// While a payload arrives, the caller's buffer grows by at least this much
/// (or by its current length, whichever is more), never past the payload.
const GROW_MIN: usize = 64 * 1024;

/// Where the next read should put its bytes, filled strictly in this order:
/// `head` completely before `direct`, `direct` completely before `ahead`.
pub(crate) struct Targets<'a> {
    /// Header bytes still missing (empty inside a payload).
    pub(crate) head: &'a mut [u8],
    /// The caller's message buffer: bytes go into its spare capacity, at most
    /// `direct_max`, and its length grows by what arrived.
    pub(crate) direct: &'a mut Vec<u8>,
    pub(crate) direct_max: usize,
    /// All `direct_max` bytes belong to the current message, so a source that
    /// cannot scatter may keep reading until it has them.
    pub(crate) direct_exact: bool,
    /// Read-ahead: whatever follows.
    pub(crate) ahead: &'a mut [u8],
}

/// Something frames can be read from: the driver's only I/O.
pub(crate) trait Source {
    /// One read into `t`, in order (see [`Targets`]); appends to `t.direct`.
    /// Returns the bytes read in total; 0 is the end of the stream. On error,
    /// `t.head` and `t.ahead` must be untouched (bytes appended to `t.direct`
    /// before the error are kept and accounted for).
    fn read_targets(&mut self, t: &mut Targets<'_>) -> io::Result<usize>;

    /// One read into `buf`; 0 is the end of the stream.
    fn read_slice(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// Any reader as a [`Source`], without scatter reads: the header and small
/// payloads go through the read-ahead buffer, large payloads straight into
/// the caller's buffer.
pub(crate) struct Plain<'a, R: ?Sized>(pub(crate) &'a mut R);

impl<R: Read + ?Sized> Source for Plain<'_, R> {
    fn read_targets(&mut self, t: &mut Targets<'_>) -> io::Result<usize> {
        if !t.head.is_empty() {
            return self.0.read(t.head);
        }
        if t.direct_exact && t.direct_max > 0 {
            let before = t.direct.len();
            (&mut *self.0)
                .take(t.direct_max as u64)
                .read_to_end(t.direct)?;
            return Ok(t.direct.len() - before);
        }
        self.0.read(t.ahead)
    }

    fn read_slice(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// The frame decoder. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Decoder {
    rx: RecvState,
    /// Header bytes collected so far (between messages).
    head: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current message not yet taken from the
    /// read-ahead buffer or the transport.
    left: u32,
    /// Read-ahead; `ahead[lo..hi]` is unread. Allocated on first use.
    ahead: Vec<u8>,
    lo: usize,
    hi: usize,
}

impl Decoder {
    /// `label` names the stream in error messages (`pipe "jobs"`).
    pub(crate) fn new(label: impl Into<Arc<str>>, max: u32) -> Decoder {
        Decoder {
            rx: RecvState::new(label, max),
            head: [0; HEADER_LEN],
            have: 0,
            left: 0,
            ahead: Vec::new(),
            lo: 0,
            hi: 0,
        }
    }

    pub(crate) fn max(&self) -> u32 {
        self.rx.max()
    }

    /// Between messages with nothing buffered or stashed, and not poisoned.
    pub(crate) fn is_idle(&self) -> bool {
        !self.rx.is_mid() && self.have == 0 && self.lo == self.hi && !self.rx.is_poisoned()
    }

    /// Read-ahead bytes are waiting: a receive may complete without reading
    /// the transport (a readiness-based driver must try before it waits).
    #[cfg_attr(not(all(unix, feature = "tokio")), allow(dead_code))]
    pub(crate) fn has_buffered(&self) -> bool {
        self.lo < self.hi
    }

    /// Appends input bytes to the read-ahead buffer (the [`FrameDecoder`]
    /// path, where the caller does the reading).
    ///
    /// [`FrameDecoder`]: crate::pipe::FrameDecoder
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        }
        if self.ahead.len() - self.hi < bytes.len() {
            if self.lo > 0 {
                self.ahead.copy_within(self.lo..self.hi, 0);
                self.hi -= self.lo;
                self.lo = 0;
            }
            if self.ahead.len() - self.hi < bytes.len() {
                self.ahead.resize(self.hi + bytes.len(), 0);
            }
        }
        self.ahead[self.hi..self.hi + bytes.len()].copy_from_slice(bytes);
        self.hi += bytes.len();
    }

    /// Parses the complete header: the message begins.
    fn begin_message(&mut self) -> io::Result<()> {
        let len = u32::from_le_bytes(self.head);
        self.have = 0;
        self.rx.start(Some(u64::from(len)))?;
        self.left = len;
        Ok(())
    }

    /// Takes header bytes from the read-ahead buffer; true once the message
    /// has begun.
    fn header_from_ahead(&mut self) -> io::Result<bool> {
        if self.rx.is_mid() {
            return Ok(true);
        }
        let k = (HEADER_LEN - self.have).min(self.hi - self.lo);
        self.head[self.have..self.have + k].copy_from_slice(&self.ahead[self.lo..self.lo + k]);
        self.lo += k;
        self.have += k;
        if self.have < HEADER_LEN {
            return Ok(false);
        }
        self.begin_message()?;
        Ok(true)
    }

    /// Runs on what is buffered. `Some(Ok(len))`: a message is complete in
    /// `out`; `Some(Err)`: the stream is poisoned; `None`: more input is
    /// needed (and the read-ahead buffer is empty).
    fn decode(&mut self, out: &mut Vec<u8>) -> Option<io::Result<usize>> {
        match self.header_from_ahead() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let k = (self.left as usize).min(self.hi - self.lo);
        out.extend_from_slice(&self.ahead[self.lo..self.lo + k]);
        self.lo += k;
        self.left -= k as u32;
        if self.left == 0 {
            self.rx.finish();
            return Some(Ok(out.len()));
        }
        None
    }

    /// Where the next read goes (call after `decode` returned `None`).
    fn targets<'a>(&'a mut self, out: &'a mut Vec<u8>) -> Targets<'a> {
        debug_assert_eq!(self.lo, self.hi);
        self.lo = 0;
        self.hi = 0;
        if self.ahead.is_empty() {
            self.ahead = vec![0; READ_AHEAD];
        }
        if self.rx.is_mid() {
            let left = self.left as usize;
            let want = left.min(GROW_MIN.max(out.len()));
            if out.capacity() - out.len() < want {
                out.reserve(want);
            }
            let direct_max = (out.capacity() - out.len()).min(left);
            Targets {
                head: &mut [],
                direct: out,
                direct_max,
                direct_exact: true,
                ahead: &mut self.ahead[..],
            }
        } else {
            let direct_max = (out.capacity() - out.len()).min(DIRECT_AT_BOUNDARY);
            Targets {
                head: &mut self.head[self.have..],
                direct: out,
                direct_max,
                direct_exact: false,
                ahead: &mut self.ahead[..],
            }
        }
    }

    /// Accounts for a read of `n` bytes into the targets, `out` having had
    /// `before` bytes when they were made.
    fn filled(&mut self, out: &mut Vec<u8>, n: usize, before: usize) -> io::Result<()> {
        let direct = out.len() - before;
        let head = if self.rx.is_mid() {
            0
        } else {
            (HEADER_LEN - self.have).min(n)
        };
        debug_assert!(direct == 0 || self.rx.is_mid() || self.have + head == HEADER_LEN);
        self.have += head;
        self.hi = n - head - direct;
        if !self.rx.is_mid() {
            if self.have < HEADER_LEN {
                return Ok(());
            }
            if let Err(e) = self.begin_message() {
                out.truncate(before);
                return Err(e);
            }
        }
        if direct > self.left as usize {
            // The read ran past this message: what follows goes back in front
            // of the read-ahead bytes.
            let keep = before + self.left as usize;
            let excess = out.len() - keep;
            if self.ahead.len() < self.hi + excess {
                self.ahead.resize(self.hi + excess, 0);
            }
            self.ahead.copy_within(0..self.hi, excess);
            self.ahead[..excess].copy_from_slice(&out[keep..]);
            self.hi += excess;
            out.truncate(keep);
            self.left = 0;
        } else {
            self.left -= direct as u32;
        }
        Ok(())
    }

    /// The transport ended; `received` bytes of the current message arrived.
    fn eof(&mut self, received: u64) -> io::Result<Option<usize>> {
        if !self.rx.is_mid() && self.have > 0 {
            let got = self.have;
            let msg = format!(
                "{}: the peer closed the stream inside a message header \
                 ({got} of {HEADER_LEN} length bytes received)",
                self.rx.label()
            );
            return Err(self.rx.fail(io::ErrorKind::UnexpectedEof, msg));
        }
        self.rx.end_of_stream(Some(received))
    }

    /// Receives one whole message into `out` (replacing its contents).
    /// `Ok(None)`: the stream ended cleanly between messages. After an error
    /// from the source (timeout, `WouldBlock`), the next call resumes the same
    /// message; nothing is lost.
    pub(crate) fn recv_into<S: Source + ?Sized>(
        &mut self,
        src: &mut S,
        out: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        self.rx.begin(out)?;
        loop {
            if let Some(r) = self.decode(out) {
                return r.map(Some);
            }
            let before = out.len();
            let r = src.read_targets(&mut self.targets(out));
            match r {
                Ok(0) => return self.eof(out.len() as u64),
                Ok(n) => self.filled(out, n, before)?,
                Err(e) => {
                    // Only a source that cannot scatter appends before failing,
                    // and only inside a payload.
                    self.left -= (out.len() - before) as u32;
                    self.rx.interrupt(out);
                    return Err(e);
                }
            }
        }
    }

    /// The next message from bytes already pushed ([`push`](Self::push)):
    /// `Ok(None)` when more input is needed, or (with `eof`) at a clean end.
    pub(crate) fn next_buffered(
        &mut self,
        out: &mut Vec<u8>,
        eof: bool,
    ) -> io::Result<Option<usize>> {
        self.rx.begin(out)?;
        match self.decode(out) {
            Some(r) => r.map(Some),
            None if eof => {
                let got = out.len() as u64;
                self.eof(got)
            }
            None => {
                self.rx.interrupt(out);
                Ok(None)
            }
        }
    }

    /// Reads as much of the current (or next) message as fits into `out`.
    /// With `fill`, waits until `out` is full or the message complete;
    /// without, returns once any payload byte was delivered (or the message
    /// is empty). `Ok(None)`: the stream ended cleanly between messages.
    pub(crate) fn recv_slice<S: Source + ?Sized>(
        &mut self,
        src: &mut S,
        out: &mut [u8],
        fill: bool,
    ) -> io::Result<Option<Received>> {
        self.rx.check()?;
        while !self.header_from_ahead()? {
            self.lo = 0;
            self.hi = 0;
            if self.ahead.is_empty() {
                self.ahead = vec![0; READ_AHEAD];
            }
            let mut none = Vec::new();
            let mut t = Targets {
                head: &mut self.head[self.have..],
                direct: &mut none,
                direct_max: 0,
                direct_exact: false,
                ahead: &mut self.ahead[..],
            };
            let n = src.read_targets(&mut t)?;
            if n == 0 {
                return self.eof(0).map(|_| None);
            }
            let head = (HEADER_LEN - self.have).min(n);
            self.have += head;
            self.hi = n - head;
        }
        let mut n = self.rx.take_stash(out);
        let k = (out.len() - n)
            .min(self.left as usize)
            .min(self.hi - self.lo);
        out[n..n + k].copy_from_slice(&self.ahead[self.lo..self.lo + k]);
        self.lo += k;
        self.left -= k as u32;
        n += k;
        while n < out.len() && self.left > 0 && (fill || n == 0) {
            let want = (out.len() - n).min(self.left as usize);
            match src.read_slice(&mut out[n..n + want]) {
                Ok(0) => {
                    let total = self.rx.total().unwrap_or(0);
                    let e = match self.eof(total - u64::from(self.left)) {
                        Err(e) => e,
                        Ok(_) => io::ErrorKind::UnexpectedEof.into(),
                    };
                    if n == 0 {
                        return Err(e);
                    }
                    break;
                }
                Ok(k) => {
                    n += k;
                    self.left -= k as u32;
                }
                // Nothing delivered: report it (nothing is lost). Something
                // delivered: return that; the error comes back next call.
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        let remaining = self.rx.stashed() as u64 + u64::from(self.left);
        if remaining == 0 && !self.rx.is_poisoned() {
            self.rx.finish();
        }
        Ok(Some(Received { len: n, remaining }))
    }

    /// `Read` over message payloads: boundaries dropped, empty messages
    /// skipped; 0 only at the end of the stream (or for an empty `out`).
    /// (Windows pipes read native messages instead.)
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn read_payload<S: Source + ?Sized>(
        &mut self,
        src: &mut S,
        out: &mut [u8],
    ) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.recv_slice(src, out, false)? {
                None => return Ok(0),
                Some(got) if got.len == 0 && got.remaining == 0 => continue,
                Some(got) => return Ok(got.len),
            }
        }
    }
}

/// A source like a nonblocking socket, for tests and fuzzing: reads are cut
/// at sizes cycling through `cuts`, with `WouldBlock` between them.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod scatter {
    use super::{Source, Targets};
    use std::io;

    pub(crate) struct Scatter {
        pub(crate) data: Vec<u8>,
        pub(crate) pos: usize,
        pub(crate) cuts: Vec<usize>,
        pub(crate) k: usize,
        pub(crate) block_next: bool,
    }

    impl Scatter {
        fn next_len(&mut self) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = self.cuts[self.k % self.cuts.len()];
            self.k += 1;
            Ok(n.min(self.data.len() - self.pos))
        }

        fn take(&mut self, dst: &mut [u8]) -> usize {
            let n = dst.len().min(self.data.len() - self.pos);
            dst[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            n
        }
    }

    impl Source for Scatter {
        fn read_targets(&mut self, t: &mut Targets<'_>) -> io::Result<usize> {
            let mut budget = self.next_len()?;
            let h = budget.min(t.head.len());
            let got = self.take(&mut t.head[..h]);
            budget -= got;
            let mut total = got;
            if got == t.head.len() {
                let d = budget.min(t.direct_max);
                let mut tmp = vec![0; d];
                let got = self.take(&mut tmp);
                t.direct.extend_from_slice(&tmp[..got]);
                budget -= got;
                total += got;
                if got == t.direct_max {
                    let a = budget.min(t.ahead.len());
                    total += self.take(&mut t.ahead[..a]);
                }
            }
            Ok(total)
        }

        fn read_slice(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.next_len()?.min(buf.len());
            Ok(self.take(&mut buf[..n]))
        }
    }
}

/// Fuzzing entry: the decoder driven through [`Targets`] by a scatter source
/// cut where the input says, with a caller buffer of any capacity, and a
/// limit up to 4 GiB − 1 (so announced lengths far beyond the input are
/// exercised: the buffer must grow only with what arrives).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let max = match data[0] {
        255 => u32::MAX,
        254 => 1 << 30,
        m => u32::from(m) * 64,
    };
    let cuts = vec![usize::from(data[1]).max(1), usize::from(data[2]) * 37 + 1];
    let cap = usize::from(data[3]) * 97;
    let stream = data[4..].to_vec();
    let total = stream.len();
    let mut src = scatter::Scatter {
        data: stream,
        pos: 0,
        cuts,
        k: 0,
        block_next: false,
    };
    let mut d = Decoder::new("fuzz", max);
    let mut v = Vec::with_capacity(cap);
    let mut seen = 0usize;
    for _ in 0..100_000 {
        match d.recv_into(&mut src, &mut v) {
            Ok(Some(n)) => {
                assert!(n <= max as usize && n == v.len());
                seen += 4 + n;
                assert!(seen <= total);
            }
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                assert!(matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ));
                break;
            }
        }
        // Growth follows arrivals: never more than twice what arrived (plus
        // the caller's own capacity and one growth step).
        assert!(v.capacity() <= cap.max(2 * (total + GROW_MIN)));
    }
}

#[cfg(test)]
mod tests {
    use super::scatter::Scatter;
    use super::*;
    use crate::proto::send::Outgoing;
    use std::io::Cursor;

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut w = Vec::new();
        for m in msgs {
            let o = Outgoing::framed(m).unwrap();
            let [a, b] = o.rest();
            w.extend_from_slice(a);
            w.extend_from_slice(b);
        }
        w
    }

    fn recv_all<S: Source>(src: &mut S, d: &mut Decoder, cap: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut v = Vec::with_capacity(cap);
        let mut spins = 0;
        loop {
            spins += 1;
            assert!(spins < 1_000_000);
            match d.recv_into(src, &mut v) {
                Ok(Some(_)) => got.push(v.clone()),
                Ok(None) => return got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn oversize_frame_poisons_before_allocating() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 11]);
        let mut d = Decoder::new("t", 10);
        let mut v = Vec::new();
        let e = d
            .recv_into(&mut Plain(&mut Cursor::new(bytes)), &mut v)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string()
                .contains("4294967295 bytes exceeds the limit of 10"),
            "{e}"
        );
        assert!(v.capacity() < 1024);
    }

    /// A header announcing 4 GiB − 1 with a limit that allows it: the buffer
    /// grows with what arrives, not with what was announced.
    #[test]
    fn announced_length_reserves_nothing() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[7; 1000]);
        let mut d = Decoder::new("t", u32::MAX);
        let mut v = Vec::new();
        let e = d
            .recv_into(&mut Plain(&mut Cursor::new(bytes)), &mut v)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(v.capacity() <= 2 * GROW_MIN, "{}", v.capacity());
    }

    #[test]
    fn truncated_frames_are_unexpected_eof() {
        let mut bytes = frames(&[b"hello"]);
        bytes.truncate(7);
        let mut d = Decoder::new("t", 100);
        let e = d
            .recv_into(&mut Plain(&mut Cursor::new(bytes)), &mut Vec::new())
            .unwrap_err();
        assert!(
            e.to_string().contains("5-byte message (3 bytes received)"),
            "{e}"
        );
        let mut d = Decoder::new("t", 100);
        let e = d
            .recv_into(&mut Plain(&mut Cursor::new(vec![1, 0])), &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("2 of 4 length bytes"), "{e}");
    }

    #[test]
    fn recv_slice_splits_a_message_without_loss() {
        let mut c = Cursor::new(frames(&[b"0123456789", b"x"]));
        let mut d = Decoder::new("t", 100);
        let mut buf = [0u8; 4];
        let r = d
            .recv_slice(&mut Plain(&mut c), &mut buf, true)
            .unwrap()
            .unwrap();
        assert_eq!((r.len, r.remaining), (4, 6));
        assert_eq!(&buf, b"0123");
        let r = d
            .recv_slice(&mut Plain(&mut c), &mut buf, true)
            .unwrap()
            .unwrap();
        assert_eq!((r.len, r.remaining), (4, 2));
        let mut v = Vec::new();
        d.recv_into(&mut Plain(&mut c), &mut v).unwrap();
        assert_eq!(v, b"89");
        d.recv_into(&mut Plain(&mut c), &mut v).unwrap();
        assert_eq!(v, b"x");
        assert_eq!(d.recv_into(&mut Plain(&mut c), &mut v).unwrap(), None);
    }

    #[test]
    fn read_payload_skips_boundaries_and_empty_messages() {
        let mut c = Cursor::new(frames(&[b"ab", b"", b"", b"cd"]));
        let mut d = Decoder::new("t", 100);
        let mut s = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = d.read_payload(&mut Plain(&mut c), &mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.extend_from_slice(&buf[..n]);
        }
        assert_eq!(s, b"abcd");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512, failure_persistence: None, ..Default::default()
        })]

        /// Scatter reads cut anywhere, any starting capacity of the caller's
        /// buffer, timeouts between reads: every message arrives whole.
        #[test]
        fn scatter_reads_lose_nothing(
            msgs in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..3000), 0..12),
            cuts in proptest::collection::vec(1usize..9000, 1..6),
            cap in 0usize..100_000,
        ) {
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            let mut src = Scatter { data: frames(&refs), pos: 0, cuts, k: 0, block_next: false };
            let mut d = Decoder::new("t", 1 << 20);
            proptest::prop_assert_eq!(recv_all(&mut src, &mut d, cap), msgs);
        }

        /// The same stream read with a mix of whole-message and partial reads.
        #[test]
        fn mixed_slice_and_whole_reads_lose_nothing(
            msgs in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..600), 1..10),
            cuts in proptest::collection::vec(1usize..700, 1..6),
            slice in 1usize..300,
            pattern in proptest::collection::vec(proptest::bool::ANY, 1..8),
        ) {
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            let mut src = Scatter { data: frames(&refs), pos: 0, cuts, k: 0, block_next: false };
            let mut d = Decoder::new("t", 1 << 20);
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut cur = Vec::new();
            let mut i = 0;
            let mut spins = 0;
            loop {
                spins += 1;
                proptest::prop_assert!(spins < 1_000_000);
                i += 1;
                if pattern[i % pattern.len()] {
                    let mut buf = vec![0; slice];
                    match d.recv_slice(&mut src, &mut buf, false) {
                        Ok(Some(r)) => {
                            cur.extend_from_slice(&buf[..r.len]);
                            if r.remaining == 0 { got.push(std::mem::take(&mut cur)); }
                        }
                        Ok(None) => break,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("{e}"),
                    }
                } else {
                    let mut v = Vec::new();
                    match d.recv_into(&mut src, &mut v) {
                        Ok(Some(_)) => { cur.extend_from_slice(&v); got.push(std::mem::take(&mut cur)); }
                        Ok(None) => break,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            proptest::prop_assert!(cur.is_empty());
            proptest::prop_assert_eq!(got, msgs);
        }
    }
}
