//! One end of an async shared-memory channel, its owned halves, and the
//! zero-copy permit and receive guard.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::tokio::sync::{Mutex, MutexGuard};

use crate::channel::flow::Parked;
use crate::channel::options::handshake_error;
use crate::channel::poll::First;
use crate::channel::ring::{Record, Reservation};
use crate::channel::rx::RxEnd;
use crate::channel::tx::TxEnd;
use crate::channel::wait::Inner;
use crate::channel::{handshake, ChannelOptions, InPlace, InPlaceMut};
use crate::error::Result;
use crate::pipe::UserId;
use crate::proto::send::{Outgoing, SEND_GRACE};
use crate::sys::channel::AsyncDoze;
use crate::sys::Wait;

/// The sending direction of an async end: the blocking channel's sending
/// end, and how its task sleeps for room.
struct TxParts {
    doze: AsyncDoze,
    end: TxEnd,
}

/// `None` only inside `drop`, which hands a message still going out to a
/// task.
struct Tx(Option<TxParts>);

impl Drop for Tx {
    /// A message whose send future was dropped after its first records went
    /// is finished by a task on the runtime within the grace period (one
    /// second), then the sending side closes; outside a runtime, on this
    /// thread. If the peer reads nothing meanwhile, the sending side is
    /// closed with the message cut: the peer's receive fails with
    /// `UnexpectedEof`, never taking it for a whole one.
    fn drop(&mut self) {
        let Some(mut parts) = self.0.take() else {
            return;
        };
        if !parts.end.has_tail() {
            return;
        }
        let Ok(rt) = ::tokio::runtime::Handle::try_current() else {
            parts.end.finish_tail_blocking();
            return;
        };
        rt.spawn(async move {
            let TxParts { doze, end } = &mut parts;
            let mut park = Parked::new(end.space_bell());
            let flushed = ::tokio::time::timeout(
                SEND_GRACE,
                poll_fn(|cx| end.poll_flush(doze, &mut park, cx)),
            )
            .await;
            drop(park);
            if flushed.is_err() {
                end.cut_tail();
            }
        });
    }
}

/// A send in progress: if its future is dropped, a message some of whose
/// records are in the ring leaves its rest to the sending state.
struct Sending<'a, 'm> {
    end: &'a mut TxEnd,
    out: Outgoing<'m>,
}

impl Drop for Sending<'_, '_> {
    fn drop(&mut self) {
        self.end.abandon(&self.out);
    }
}

impl Tx {
    fn parts(&mut self) -> &mut TxParts {
        match &mut self.0 {
            Some(p) => p,
            None => unreachable!("taken only by drop"),
        }
    }

    fn get(&self) -> &TxParts {
        match &self.0 {
            Some(p) => p,
            None => unreachable!("taken only by drop"),
        }
    }

    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let TxParts { doze, end } = self.parts();
        // The blocking send's fast path first (no kept tail, the whole
        // message fits now): one record, no sending state, no await point.
        match end.try_send_now(msg) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        end.check_send(msg.len())?;
        let mut park = Parked::new(end.space_bell());
        let mut op = Sending {
            end,
            out: Outgoing::raw(msg),
        };
        poll_fn(|cx| op.end.poll_send(doze, &mut park, cx, &mut op.out)).await
    }

    fn try_send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.parts().end.try_send_now(msg)
    }

    async fn flush(&mut self) -> io::Result<()> {
        let TxParts { doze, end } = self.parts();
        let mut park = Parked::new(end.space_bell());
        poll_fn(|cx| end.poll_flush(doze, &mut park, cx)).await
    }

    async fn reserve(&mut self, len: usize) -> io::Result<Reservation> {
        let TxParts { doze, end } = self.parts();
        end.check_in_place(len)?;
        let mut park = Parked::new(end.space_bell());
        poll_fn(|cx| end.poll_reserve(doze, &mut park, cx, len)).await
    }

    fn max_in_place(&self) -> usize {
        self.get().end.max_in_place()
    }
}

/// The receiving direction of an async end.
struct Rx {
    doze: AsyncDoze,
    end: RxEnd,
}

/// A receive in progress: if its future is dropped, what it took stays in
/// the receiving state for the next one.
struct Receiving<'a, 'o> {
    end: &'a mut RxEnd,
    out: &'o mut Vec<u8>,
    done: bool,
}

impl Drop for Receiving<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            self.end.recv_interrupted(self.out);
        }
    }
}

/// Where an in-place receive's message is.
enum Found {
    /// One record, in the ring.
    Ring(Record),
    /// Assembled from several records in the receiver's scratch buffer.
    Scratch,
}

impl Rx {
    async fn recv_into(&mut self, out: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let Rx { doze, end } = self;
        if end.recv_start(out)? {
            return Ok(Some(out.len()));
        }
        let mut park = Parked::new(end.data_bell());
        let mut op = Receiving {
            end,
            out,
            done: false,
        };
        let r = poll_fn(|cx| op.end.poll_recv(doze, &mut park, cx, op.out)).await;
        // Finished either way: a failed receive kept its part already.
        op.done = true;
        r
    }

    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv_into(&mut v).await?.map(|_| v))
    }

    fn try_recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.end.recv_vec(Wait::Never)
    }

    async fn recv_in_place(&mut self) -> io::Result<Option<Found>> {
        let first = {
            let Rx { doze, end } = &mut *self;
            let mut park = Parked::new(end.data_bell());
            poll_fn(|cx| end.poll_first(doze, &mut park, cx)).await?
        };
        match first {
            First::End => Ok(None),
            First::InPlace(r) => Ok(Some(Found::Ring(r))),
            First::Assemble => {
                let mut scratch = std::mem::take(&mut self.end.scratch);
                let got = self.recv_into(&mut scratch).await;
                self.end.scratch = scratch;
                Ok(got?.map(|_| Found::Scratch))
            }
        }
    }
}

/// One end of an async shared-memory channel: what
/// [`ShmStream::connect`] and [`ShmListener::accept`](super::ShmListener::accept)
/// return — the async twin of
/// [`channel::ShmStream`](crate::channel::ShmStream), on the same rings and
/// handshake (a blocking peer and an async peer talk, in either role).
///
/// Every method takes `&self`: sends are serialised by an async lock, as are
/// receives, so one task can receive while another sends (share it with
/// `Arc`). For the fastest path, [`into_split`](Self::into_split) it into
/// halves that take no lock.
///
/// Waiting spins for [`ChannelOptions::spin`] on the calling thread, then the
/// task sleeps until the peer rings (or dies) — no runtime thread waits. See
/// the [module docs](crate::tokio#the-shared-memory-channel) for what
/// dropping a future, or the stream, does.
pub struct ShmStream {
    tx: Mutex<Tx>,
    rx: Mutex<Rx>,
    max_in_place: usize,
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
    /// Connects with default [`ChannelOptions`]; fails at once if there is
    /// no server.
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub async fn connect(name: &str) -> Result<ShmStream> {
        ShmStream::connect_with(name, &ChannelOptions::new()).await
    }

    /// Connects, waiting up to `timeout` for the server to appear and for
    /// the handshake.
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub async fn connect_timeout(name: &str, timeout: Duration) -> Result<ShmStream> {
        ShmStream::connect_with(name, ChannelOptions::new().timeout(timeout)).await
    }

    /// Connects with `opts`. The rendezvous pipe is connected on the
    /// runtime (waiting for a missing server on the tokio timer); the
    /// handshake's few messages run on tokio's blocking pool, bounded by
    /// the connect timeout and at most 10 s. Cancelling the future closes
    /// whatever it opened (a handshake already under way finishes on its
    /// blocking thread, and its channel is dropped).
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub async fn connect_with(name: &str, opts: &ChannelOptions) -> Result<ShmStream> {
        let start = Instant::now();
        let pipe = super::PipeStream::connect_with(name, &opts.rendezvous_client()).await?;
        let pipe = pipe.into_blocking().map_err(|e| handshake_error(e, name))?;
        let deadline = opts.handshake_deadline(start);
        let mut opts = opts.clone();
        opts.reactor = true;
        let done =
            ::tokio::task::spawn_blocking(move || handshake::client(pipe, &opts, deadline)).await;
        let s = done
            .unwrap_or_else(|e| Err(io::Error::other(e)))
            .map_err(|e| handshake_error(e, name))?;
        ShmStream::from_blocking(s).map_err(|e| handshake_error(e, name))
    }

    /// The async end of a channel whose handshake (as a reactor sleeper)
    /// just finished. Must run inside the runtime.
    pub(super) fn from_blocking(s: crate::channel::ShmStream) -> io::Result<ShmStream> {
        let (tx, rx, inner) = s.into_parts();
        let tx = TxParts {
            doze: AsyncDoze::new(&inner.os, inner.bells.tx_space)?,
            end: tx,
        };
        let rx = Rx {
            doze: AsyncDoze::new(&inner.os, inner.bells.rx_data)?,
            end: rx,
        };
        Ok(ShmStream {
            max_in_place: tx.end.max_in_place(),
            tx: Mutex::new(Tx(Some(tx))),
            rx: Mutex::new(rx),
            inner,
        })
    }

    /// Splits into an owned sending half and an owned receiving half, each
    /// usable from its own task without any lock: the fastest way to use a
    /// channel (like the blocking
    /// [`ShmStream::split`](crate::channel::ShmStream::split)).
    pub fn into_split(self) -> (ShmSender, ShmReceiver) {
        (
            ShmSender {
                tx: self.tx.into_inner(),
            },
            ShmReceiver {
                rx: self.rx.into_inner(),
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

    /// Bytes a single [`reserve`](Self::reserve) can write in place.
    pub fn max_in_place(&self) -> usize {
        self.max_in_place
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

    /// Sends `msg` as one message (0 bytes up to the peer's maximum),
    /// waiting for room as long as it takes. `Ok` means all of it is in the
    /// ring.
    ///
    /// All or nothing under cancellation: dropped before its first record
    /// went, it sent nothing; dropped after (a message larger than a record
    /// goes in several), the stream completes the message before anything
    /// else goes — at the next send, reservation, [`flush`](Self::flush), or
    /// the stream's drop (see the [module
    /// docs](crate::tokio#the-shared-memory-channel)).
    ///
    /// # Errors
    /// `BrokenPipe` when the peer closed or died; `InvalidInput` for a
    /// message over the peer's maximum; `InvalidData` if the peer corrupted
    /// the ring; the error that closed the sending side (a message the
    /// stream could not complete).
    pub async fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.tx.lock().await.send(msg).await
    }

    /// Sends without waiting: the whole message if it fits in the ring's
    /// free space now (after the rest of a message an earlier, cancelled
    /// send started, which must go now too), otherwise nothing
    /// (`WouldBlock`). Also `WouldBlock` while another task's send holds the
    /// sending side.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn try_send(&self, msg: &[u8]) -> io::Result<()> {
        match self.tx.try_lock() {
            Ok(mut tx) => tx.try_send(msg),
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Waits until nothing this stream took is left to go out (the rest of
    /// a message a cancelled send started). Every `send` that returned `Ok`
    /// is in the ring already.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub async fn flush(&self) -> io::Result<()> {
        self.tx.lock().await.flush().await
    }

    /// Reserves room for a `len`-byte message in the ring, waiting for it:
    /// fill it in place through [`Permit::in_place`], then
    /// [`Permit::commit`] to send it. Dropping the permit (or this future)
    /// sends nothing. `len` may be at most
    /// [`max_in_place`](Self::max_in_place). The permit holds the sending
    /// side: other sends wait until it is committed or dropped.
    ///
    /// ```no_run
    /// # async fn f(conn: named_ipc::tokio::ShmStream) -> std::io::Result<()> {
    /// let mut permit = conn.reserve(8).await?;
    /// permit.in_place().copy_from_slice(&42u64.to_le_bytes());
    /// permit.commit();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for `len` over `max_in_place` or the peer's maximum;
    /// otherwise as for [`send`](Self::send).
    pub async fn reserve(&self, len: usize) -> io::Result<Permit<'_>> {
        let mut tx = self.tx.lock().await;
        let r = tx.reserve(len).await?;
        Ok(Permit {
            tx: TxRef::Locked(tx),
            r,
        })
    }

    /// Receives one whole message; `Ok(None)` when the peer closed the
    /// channel. Cancellation-safe: dropped before it completes, it loses
    /// nothing — the part of a message it took waits for the next call.
    ///
    /// # Errors
    /// `BrokenPipe` ("peer gone") when the peer process ended without
    /// closing; `InvalidData` for a message over the limit or a corrupt ring
    /// (permanent); `UnexpectedEof` if the peer closed in the middle of a
    /// message.
    pub async fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        self.rx.lock().await.recv().await
    }

    /// Like [`recv`](Self::recv), into `buf` (replacing its contents).
    /// Cancellation-safe: a dropped call may leave `buf` empty, and the part
    /// of the message that arrived waits in the stream for the next call.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub async fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.rx.lock().await.recv_into(buf).await
    }

    /// Receives without waiting: `WouldBlock` if no whole message is there
    /// (or another task's receive holds the receiving side).
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn try_recv(&self) -> io::Result<Option<Vec<u8>>> {
        match self.rx.try_lock() {
            Ok(mut rx) => rx.try_recv(),
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Receives one message and returns a guard with a view of it in place
    /// (no copy out of the ring when it is one record, up to
    /// [`max_in_place`](Self::max_in_place) bytes; larger ones are assembled
    /// first). The record is released when the guard is dropped; the guard
    /// holds the receiving side meanwhile. `Ok(None)` when the peer closed
    /// the channel. Cancellation-safe, as [`recv`](Self::recv).
    ///
    /// ```no_run
    /// # async fn f(conn: named_ipc::tokio::ShmStream) -> std::io::Result<()> {
    /// if let Some(msg) = conn.recv_in_place().await? {
    ///     let mut id = [0u8; 8];
    ///     if msg.in_place().read_at(0, &mut id) {
    ///         println!("message {}", u64::from_le_bytes(id));
    ///     }
    /// } // released here
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub async fn recv_in_place(&self) -> io::Result<Option<RecvGuard<'_>>> {
        let mut rx = self.rx.lock().await;
        Ok(rx.recv_in_place().await?.map(|found| RecvGuard {
            rx: RxRef::Locked(rx),
            found: Some(found),
        }))
    }
}

/// The sending half of an async [`ShmStream`] ([`ShmStream::into_split`]):
/// `&mut self`, no lock. Dropping it closes the sending direction (after
/// completing a message a cancelled send started, as the stream's drop
/// does).
pub struct ShmSender {
    tx: Tx,
}

/// The receiving half of an async [`ShmStream`] ([`ShmStream::into_split`]):
/// `&mut self`, no lock.
pub struct ShmReceiver {
    rx: Rx,
}

impl fmt::Debug for ShmSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmSender")
            .field("name", &self.tx.get().end.inner.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ShmReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmReceiver")
            .field("name", &self.rx.end.inner.name)
            .finish_non_exhaustive()
    }
}

impl ShmSender {
    /// As [`ShmStream::send`]: all or nothing under cancellation.
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg).await
    }

    /// As [`ShmStream::try_send`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn try_send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.try_send(msg)
    }

    /// As [`ShmStream::flush`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub async fn flush(&mut self) -> io::Result<()> {
        self.tx.flush().await
    }

    /// As [`ShmStream::reserve`].
    ///
    /// # Errors
    /// As for [`ShmStream::reserve`].
    pub async fn reserve(&mut self, len: usize) -> io::Result<Permit<'_>> {
        let r = self.tx.reserve(len).await?;
        Ok(Permit {
            tx: TxRef::Borrowed(&mut self.tx),
            r,
        })
    }

    /// Bytes a single [`reserve`](Self::reserve) can write in place.
    pub fn max_in_place(&self) -> usize {
        self.tx.max_in_place()
    }
}

impl ShmReceiver {
    /// As [`ShmStream::recv`]; cancellation-safe.
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv().await
    }

    /// As [`ShmStream::recv_into`]; cancellation-safe.
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub async fn recv_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.rx.recv_into(buf).await
    }

    /// As [`ShmStream::try_recv`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn try_recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.rx.try_recv()
    }

    /// As [`ShmStream::recv_in_place`]; cancellation-safe.
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub async fn recv_in_place(&mut self) -> io::Result<Option<RecvGuard<'_>>> {
        Ok(self.rx.recv_in_place().await?.map(|found| RecvGuard {
            rx: RxRef::Borrowed(&mut self.rx),
            found: Some(found),
        }))
    }
}

/// The sending side a permit holds: the stream's, locked, or a half's.
enum TxRef<'a> {
    Locked(MutexGuard<'a, Tx>),
    Borrowed(&'a mut Tx),
}

impl TxRef<'_> {
    fn end(&mut self) -> &mut TxEnd {
        let tx: &mut Tx = match self {
            TxRef::Locked(g) => g.deref_mut(),
            TxRef::Borrowed(t) => t,
        };
        &mut tx.parts().end
    }
}

/// Room for one message in the ring ([`ShmStream::reserve`]): fill it
/// through [`in_place`](Self::in_place), then [`commit`](Self::commit).
/// Dropped without `commit`, nothing is sent.
pub struct Permit<'a> {
    tx: TxRef<'a>,
    r: Reservation,
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("len", &self.r.len)
            .finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// The message's length.
    pub fn len(&self) -> usize {
        self.r.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.r.len == 0
    }

    /// The message's bytes in the ring, to write (zeroed or stale — write
    /// all of them). A view that copies, never a `&mut [u8]`: the ring is
    /// memory the peer process can write (see [`InPlaceMut`]).
    pub fn in_place(&mut self) -> InPlaceMut<'_> {
        let r = self.r;
        let end: &TxEnd = self.tx.end();
        end.view_mut(&r)
    }

    /// Sends the message.
    pub fn commit(mut self) {
        let r = self.r;
        self.tx.end().commit_reserved(r);
    }
}

/// The receiving side a guard holds: the stream's, locked, or a half's.
enum RxRef<'a> {
    Locked(MutexGuard<'a, Rx>),
    Borrowed(&'a mut Rx),
}

impl RxRef<'_> {
    fn end(&self) -> &RxEnd {
        match self {
            RxRef::Locked(g) => &g.end,
            RxRef::Borrowed(r) => &r.end,
        }
    }

    fn end_mut(&mut self) -> &mut RxEnd {
        match self {
            RxRef::Locked(g) => &mut g.end,
            RxRef::Borrowed(r) => &mut r.end,
        }
    }
}

/// A received message, read in place ([`ShmStream::recv_in_place`]); the
/// record is released when the guard is dropped.
pub struct RecvGuard<'a> {
    rx: RxRef<'a>,
    /// `None` only inside `drop`.
    found: Option<Found>,
}

impl fmt::Debug for RecvGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvGuard")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl RecvGuard<'_> {
    /// A view of the message: it reads by copying, because the ring is
    /// memory the peer process could write (see [`InPlace`]).
    pub fn in_place(&self) -> InPlace<'_> {
        let end = self.rx.end();
        match &self.found {
            Some(Found::Ring(r)) => end.view(r),
            Some(Found::Scratch) | None => InPlace::of(&end.scratch),
        }
    }

    /// The message's length.
    pub fn len(&self) -> usize {
        self.in_place().len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        if let Some(Found::Ring(r)) = self.found.take() {
            self.rx.end_mut().release_in_place(r);
        }
    }
}
