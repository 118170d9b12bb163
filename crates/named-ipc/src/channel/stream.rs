//! A channel end, and its split halves.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::options::ChannelOptions;
use super::raw::{InPlace, InPlaceMut};
use super::rx::RxEnd;
use super::tx::TxEnd;
use super::wait::Inner;
use crate::error::Result;
use crate::pipe::{Received, Timing, UserId};
use crate::sys::Wait;

pub(crate) use crate::lock;

/// One end of a shared-memory channel. Every method takes `&self`: sends from
/// several threads are serialised by a lock, as are receives. For the fastest
/// path, [`split`](Self::split) it into lock-free halves.
pub struct ShmStream {
    tx: Mutex<TxEnd>,
    rx: Mutex<RxEnd>,
    timing: Timing,
    inner: Arc<Inner>,
}

impl fmt::Debug for ShmStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmStream")
            .field("name", &self.inner.name)
            .field("max_message", &self.inner.max_message)
            .finish_non_exhaustive()
    }
}

impl ShmStream {
    /// Connects with default [`ChannelOptions`]; fails at once if no server.
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub fn connect(name: &str) -> Result<ShmStream> {
        ChannelOptions::new().connect(name)
    }

    /// Connects, waiting up to `timeout` for the server to appear.
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub fn connect_timeout(name: &str, timeout: Duration) -> Result<ShmStream> {
        ChannelOptions::new().timeout(timeout).connect(name)
    }

    pub(crate) fn from_parts(tx: TxEnd, rx: RxEnd, inner: Arc<Inner>) -> ShmStream {
        ShmStream {
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
            timing: Timing::new(false),
            inner,
        }
    }

    /// The ends and what they share (for the async channel, which drives the
    /// same ends).
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(self) -> (TxEnd, RxEnd, Arc<Inner>) {
        let tx = self.tx.into_inner().unwrap_or_else(|p| p.into_inner());
        let rx = self.rx.into_inner().unwrap_or_else(|p| p.into_inner());
        (tx, rx, self.inner)
    }

    /// Splits into an owned sending half and an owned receiving half, each
    /// usable from its own thread without any lock: the fastest way to use a
    /// channel. Timeouts and nonblocking mode carry over.
    pub fn split(self) -> (ShmSender, ShmReceiver) {
        let tx = self.tx.into_inner().unwrap_or_else(|p| p.into_inner());
        let rx = self.rx.into_inner().unwrap_or_else(|p| p.into_inner());
        let t = |r: Option<Duration>, w: Option<Duration>| {
            let timing = Timing::new(self.timing.is_nonblocking());
            let _ = timing.set_read(r);
            let _ = timing.set_write(w);
            timing
        };
        let (r, w) = (self.timing.read_timeout(), self.timing.write_timeout());
        (
            ShmSender {
                tx,
                timing: t(r, w),
            },
            ShmReceiver {
                rx,
                timing: t(r, w),
            },
        )
    }

    /// The name the channel was bound or connected with.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The largest message the peer accepts.
    pub fn peer_max_message(&self) -> u32 {
        self.inner.peer_max
    }

    /// Bytes a single [`send_with`](Self::send_with) can write in place.
    pub fn max_in_place(&self) -> usize {
        lock(&self.tx).max_in_place()
    }

    /// The peer's process id.
    ///
    /// # Errors
    /// As for [`PipeStream::peer_pid`](crate::pipe::PipeStream::peer_pid).
    pub fn peer_pid(&self) -> io::Result<u32> {
        self.inner.pipe.peer_pid()
    }

    /// The user the peer runs as.
    ///
    /// # Errors
    /// As for [`PipeStream::peer_user`](crate::pipe::PipeStream::peer_user).
    pub fn peer_user(&self) -> io::Result<UserId> {
        self.inner.pipe.peer_user()
    }

    /// Sets how long `recv` may wait (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_read(timeout)
    }

    /// Sets how long `send` may wait for room (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_write(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.timing.read_timeout()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.timing.write_timeout()
    }

    /// In nonblocking mode every call that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing.set_nonblocking(nonblocking);
    }

    /// Sends `msg` as one message (0 bytes up to the peer's maximum). `Ok`
    /// means all of it is in the ring.
    ///
    /// A message larger than a record ([`max_in_place`](Self::max_in_place))
    /// travels as several records. If the write timeout runs out after some of
    /// them went, the send gets one more second to finish; if the peer still
    /// reads nothing, this end's sending direction is closed (the error says
    /// so; every later send fails with it) and the peer's `recv` fails with
    /// `UnexpectedEof` instead of seeing a cut message.
    ///
    /// # Errors
    /// `BrokenPipe` when the peer closed or died; `InvalidInput` for a message
    /// over the peer's maximum; `WouldBlock` in nonblocking mode when the
    /// message does not fit in the ring now, `TimedOut` after the write timeout
    /// (in both cases nothing was sent); `TimedOut` (or the peer's error) with
    /// the sending direction closed, as above; `InvalidData` if the peer
    /// corrupted the ring.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        lock(&self.tx).send(msg, self.timing.write_wait())
    }

    /// Sends without waiting: the whole message if it fits in the ring's free
    /// space now, otherwise nothing (`WouldBlock`). A message larger than the
    /// ring never fits: use [`send`](Self::send) or
    /// [`send_timeout`](Self::send_timeout) for those.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn try_send(&self, msg: &[u8]) -> io::Result<()> {
        lock(&self.tx).send(msg, Wait::Never)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> io::Result<()> {
        lock(&self.tx).send(msg, Wait::after(Some(timeout)))
    }

    /// Writes a `len`-byte message directly into the ring: `fill` gets a view
    /// of the message's bytes (zeroed or stale — write all of them) and its
    /// return value is returned; the message is sent when `fill` returns.
    /// `len` may be at most [`max_in_place`](Self::max_in_place).
    ///
    /// ```no_run
    /// # let conn = named_ipc::channel::ShmStream::connect("x")?;
    /// conn.send_with(8, |buf| buf.copy_from_slice(&42u64.to_le_bytes()))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for `len` over `max_in_place` or the peer's maximum;
    /// otherwise as for [`send`](Self::send).
    pub fn send_with<R>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut InPlaceMut<'_>) -> R,
    ) -> io::Result<R> {
        lock(&self.tx).send_with(len, self.timing.write_wait(), fill)
    }

    /// Every send that returned `Ok` is already in the ring, so there is
    /// nothing to flush; this reports whether the sending direction was closed
    /// by a send stuck part-way (see [`send`](Self::send)).
    ///
    /// # Errors
    /// The error that closed the sending direction.
    pub fn flush(&self) -> io::Result<()> {
        lock(&self.tx).flush()
    }

    /// Receives one whole message; `Ok(None)` when the peer closed the channel.
    ///
    /// # Errors
    /// `BrokenPipe` ("peer gone") when the peer process ended without closing;
    /// `InvalidData` for a message over the limit or a corrupt ring (permanent);
    /// `WouldBlock`/`TimedOut` in nonblocking mode or after the read timeout
    /// (nothing is lost; call again).
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        lock(&self.rx).recv_vec(self.timing.read_wait())
    }

    /// Like [`recv`](Self::recv), into `buf` (replacing its contents).
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        lock(&self.rx).recv(buf, self.timing.read_wait())
    }

    /// Reads as much of the next message as fits into `buf`; if it does not
    /// fit, [`Received::remaining`] says how much is left and the next
    /// `recv_slice` or `recv` continues with it (like the pipe's
    /// [`recv_slice`](crate::pipe::PipeStream::recv_slice) and Windows'
    /// `ERROR_MORE_DATA`). Waits until `buf` is full or the message complete;
    /// after the read timeout it returns what it has, if anything.
    /// `Ok(None)` when the peer closed the channel.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_slice(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        lock(&self.rx).recv_slice(buf, self.timing.read_wait())
    }

    /// Receives without waiting: `WouldBlock` if no whole message is there.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn try_recv(&self) -> io::Result<Option<Vec<u8>>> {
        lock(&self.rx).recv_vec(Wait::Never)
    }

    /// Receives, waiting at most `timeout`.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        lock(&self.rx).recv_vec(Wait::after(Some(timeout)))
    }

    /// Receives one message and hands `f` a view of it in place, without
    /// copying it out of the ring when it is one record (messages up to
    /// [`max_in_place`](Self::max_in_place) bytes); larger ones are assembled
    /// first. The record is released when `f` returns. `Ok(None)` when the
    /// peer closed the channel.
    ///
    /// The view reads by copying, because the ring is memory the peer could
    /// write (see [`InPlace`]):
    /// ```no_run
    /// # let conn = named_ipc::channel::ShmStream::connect("x")?;
    /// let id = conn.recv_with(|msg| {
    ///     let mut id = [0u8; 8];
    ///     msg.read_at(0, &mut id).then(|| u64::from_le_bytes(id))
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_with<R>(&self, f: impl FnOnce(&InPlace<'_>) -> R) -> io::Result<Option<R>> {
        lock(&self.rx).recv_with(self.timing.read_wait(), f)
    }
}

/// The sending half of a split [`ShmStream`]: `&mut self`, no lock.
pub struct ShmSender {
    tx: TxEnd,
    timing: Timing,
}

impl fmt::Debug for ShmSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmSender")
            .field("name", &self.tx.inner.name)
            .finish_non_exhaustive()
    }
}

impl ShmSender {
    /// See [`ShmStream::send`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg, self.timing.write_wait())
    }

    /// See [`ShmStream::try_send`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn try_send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg, Wait::Never)
    }

    /// See [`ShmStream::send_timeout`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> io::Result<()> {
        self.tx.send(msg, Wait::after(Some(timeout)))
    }

    /// See [`ShmStream::send_with`].
    ///
    /// # Errors
    /// As for [`ShmStream::send_with`].
    pub fn send_with<R>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut InPlaceMut<'_>) -> R,
    ) -> io::Result<R> {
        self.tx.send_with(len, self.timing.write_wait(), fill)
    }

    /// See [`ShmStream::flush`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.tx.flush()
    }

    /// Sets how long `send` may wait for room (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_write(timeout)
    }

    /// In nonblocking mode a `send` that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing.set_nonblocking(nonblocking);
    }

    /// Bytes a single [`send_with`](Self::send_with) can write in place.
    pub fn max_in_place(&self) -> usize {
        self.tx.max_in_place()
    }
}

/// The receiving half of a split [`ShmStream`]: `&mut self`, no lock.
pub struct ShmReceiver {
    rx: RxEnd,
    timing: Timing,
}

impl fmt::Debug for ShmReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmReceiver")
            .field("name", &self.rx.inner.name)
            .finish_non_exhaustive()
    }
}

impl ShmReceiver {
    /// See [`ShmStream::recv`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv_vec(self.timing.read_wait())
    }

    /// See [`ShmStream::recv_into`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.rx.recv(buf, self.timing.read_wait())
    }

    /// See [`ShmStream::recv_slice`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_slice(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.rx.recv_slice(buf, self.timing.read_wait())
    }

    /// See [`ShmStream::try_recv`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn try_recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv_vec(Wait::Never)
    }

    /// See [`ShmStream::recv_timeout`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv_vec(Wait::after(Some(timeout)))
    }

    /// See [`ShmStream::recv_with`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&InPlace<'_>) -> R) -> io::Result<Option<R>> {
        self.rx.recv_with(self.timing.read_wait(), f)
    }

    /// Sets how long `recv` may wait (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_read(timeout)
    }

    /// In nonblocking mode a `recv` that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing.set_nonblocking(nonblocking);
    }
}
