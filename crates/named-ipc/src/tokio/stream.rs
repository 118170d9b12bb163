//! One connected end of an async pipe, and its owned halves.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::sync::{Mutex, OwnedSemaphorePermit};

use crate::error::Result;
use crate::pipe::{
    check_server, connect_error, Access, ConnectOptions, Direction, PipeMode, UserId,
};
use crate::sys::{self, Wait};

/// What a stream and its halves share (public only to the sealed
/// [`MessageIo`](super::MessageIo) trait; not nameable outside the crate).
pub struct Shared {
    pub(super) io: sys::pipe::AsyncStream,
    name: Arc<str>,
    mode: PipeMode,
    can_read: bool,
    can_write: bool,
    /// One receive and one send at a time wait on the OS; the others queue
    /// here, in order. (A send that stopped part-way has left its rest to
    /// the stream, which the next one finishes first.)
    recv_turn: Mutex<()>,
    send_turn: Mutex<()>,
    /// Released after `io` is closed (field order), so the listener's next
    /// `accept` finds the instance free.
    _slot: Option<OwnedSemaphorePermit>,
}

/// Gives a send's rest to the stream if its future is dropped part-way.
struct Abandon<'s, 'm> {
    io: &'s sys::pipe::AsyncStream,
    op: sys::pipe::SendOp<'m>,
}

impl Drop for Abandon<'_, '_> {
    fn drop(&mut self) {
        self.io.abandon_send(&self.op);
    }
}

impl Shared {
    fn need_message_mode(&self, op: &str) -> io::Result<()> {
        crate::pipe::stream::need_message_mode(
            &self.name,
            self.mode,
            op,
            "AsyncRead/AsyncWrite, or a length-delimited codec",
        )
    }

    fn need_read(&self) -> io::Result<()> {
        crate::pipe::stream::need_direction(&self.name, self.can_read, "send-only")
    }

    fn need_write(&self) -> io::Result<()> {
        crate::pipe::stream::need_direction(&self.name, self.can_write, "receive-only")
    }

    pub(super) fn check_recv(&self, op: &str) -> io::Result<()> {
        self.need_message_mode(op)?;
        self.need_read()
    }

    pub(super) fn check_send(&self, op: &str) -> io::Result<()> {
        self.need_message_mode(op)?;
        self.need_write()
    }

    async fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.check_recv("recv_into")?;
        let _turn = self.recv_turn.lock().await;
        poll_fn(|cx| self.io.poll_recv_into(cx, buf)).await
    }

    async fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv_into(&mut v).await?.map(|_| v))
    }

    async fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.check_send("send")?;
        let _turn = self.send_turn.lock().await;
        let mut op = Abandon {
            io: &self.io,
            op: self.io.send_op(msg)?,
        };
        poll_fn(|cx| self.io.poll_send(cx, &mut op.op)).await
    }

    /// One message from a poll-based writer (`poll_write`, the `Sink`):
    /// `Ready(Ok)` once it is the stream's — all of it sent, or the rest
    /// kept by the stream for `poll_flush`; `Pending` with nothing sent.
    pub(super) fn poll_send_msg(&self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<io::Result<()>> {
        let mut op = self.io.send_op(msg)?;
        match self.io.poll_send(cx, &mut op) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending if op.started() => {
                self.io.abandon_send(&op);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.need_read()?;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = ready!(self.io.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.need_write()?;
        match self.mode {
            PipeMode::Byte => self.io.poll_write_bytes(cx, buf),
            PipeMode::Message => self.poll_send_msg(cx, buf).map_ok(|()| buf.len()),
        }
    }

    pub(super) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_flush(cx)
    }

    pub(super) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Poll::Ready(self.io.shutdown_write())
    }
}

/// A connected async pipe: what [`PipeStream::connect`] and
/// [`PipeListener::accept`](super::PipeListener::accept) return — the async
/// twin of [`pipe::PipeStream`](crate::pipe::PipeStream).
///
/// Message mode: [`send`](Self::send), [`recv`](Self::recv),
/// [`recv_into`](Self::recv_into) take `&self`, so one task can receive while
/// another sends (share it with `Arc`, or [`into_split`](Self::into_split)
/// it). Concurrent sends never interleave their bytes; concurrent receives
/// each get whole messages. Any mode: `AsyncRead`/`AsyncWrite`.
///
/// See the [module docs](crate::tokio#cancellation) for what dropping a
/// future, or the stream, does.
pub struct PipeStream {
    sh: Arc<Shared>,
}

impl fmt::Debug for PipeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeStream")
            .field("name", &self.sh.name)
            .field("mode", &self.sh.mode)
            .finish_non_exhaustive()
    }
}

impl PipeStream {
    /// Connects to the pipe `name` in message mode, read and write. Fails at
    /// once if no server has created it; see [`ConnectOptions`] for every
    /// option.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`].
    pub async fn connect(name: &str) -> Result<PipeStream> {
        PipeStream::connect_with(name, &ConnectOptions::new()).await
    }

    /// Connects, waiting up to `timeout` for the server to appear or for a
    /// busy instance to free up. The task waits; no runtime thread blocks.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`].
    pub async fn connect_timeout(name: &str, timeout: Duration) -> Result<PipeStream> {
        PipeStream::connect_with(name, ConnectOptions::new().timeout(timeout)).await
    }

    /// Connects with `opts` (`nonblocking` has no meaning here and is
    /// ignored). Cancelling the future closes whatever it had opened.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`]: `NotFound`, `Busy`,
    /// `PermissionDenied` (including a server that does not run as
    /// [`ConnectOptions::server_identity`] expects), `InvalidName`.
    pub async fn connect_with(name: &str, opts: &ConnectOptions) -> Result<PipeStream> {
        let addr = sys::pipe::resolve(name)?;
        let wait = match opts.timeout {
            None => Wait::Never,
            Some(d) => Wait::timeout(Some(d)),
        };
        let io = sys::pipe::AsyncStream::connect(&addr, opts, name, wait)
            .await
            .map_err(|e| connect_error(name, &addr.display(), opts, e))?;
        check_server(
            || io.peer_user(),
            &opts.server_identity,
            name,
            &addr.display(),
        )?;
        let (can_read, can_write) = match opts.access {
            Access::ReadWrite => (true, true),
            Access::Read => (true, false),
            Access::Write => (false, true),
        };
        Ok(PipeStream::new(
            io,
            name.into(),
            opts.mode,
            can_read,
            can_write,
            None,
        ))
    }

    pub(super) fn accepted(
        io: sys::pipe::AsyncStream,
        name: Arc<str>,
        mode: PipeMode,
        direction: Direction,
        slot: Option<OwnedSemaphorePermit>,
    ) -> PipeStream {
        let (can_read, can_write) = match direction {
            Direction::Duplex => (true, true),
            Direction::Inbound => (true, false),
            Direction::Outbound => (false, true),
        };
        PipeStream::new(io, name, mode, can_read, can_write, slot)
    }

    fn new(
        io: sys::pipe::AsyncStream,
        name: Arc<str>,
        mode: PipeMode,
        can_read: bool,
        can_write: bool,
        slot: Option<OwnedSemaphorePermit>,
    ) -> PipeStream {
        PipeStream {
            sh: Arc::new(Shared {
                io,
                name,
                mode,
                can_read,
                can_write,
                recv_turn: Mutex::new(()),
                send_turn: Mutex::new(()),
                _slot: slot,
            }),
        }
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.sh
    }

    /// The name this stream was connected or created with.
    pub fn name(&self) -> &str {
        &self.sh.name
    }

    /// Message or byte mode.
    pub fn mode(&self) -> PipeMode {
        self.sh.mode
    }

    /// The blocking stream on the same connection (the async channel's
    /// handshake runs on a blocking thread). Only for a stream nothing was
    /// sent or received on yet.
    pub(crate) fn into_blocking(self) -> io::Result<crate::pipe::PipeStream> {
        let sh = Arc::try_unwrap(self.sh)
            .map_err(|_| io::Error::other("the stream is shared; it cannot leave the runtime"))?;
        let Shared {
            io,
            name,
            mode,
            can_read,
            can_write,
            ..
        } = sh;
        Ok(crate::pipe::PipeStream::from_sys(
            io.into_sync()?,
            name,
            mode,
            can_read,
            can_write,
        ))
    }

    /// Sends `msg` as one message (0 bytes to 4 GiB − 1). `Ok` means all of
    /// it was handed to the OS.
    ///
    /// All or nothing under cancellation: dropped before its first byte
    /// left, it sent nothing; dropped after, the stream completes the message
    /// before anything else goes out (see the [module
    /// docs](crate::tokio#cancellation)).
    ///
    /// # Errors
    /// `BrokenPipe` when the peer has gone; `InvalidInput` in byte mode or
    /// for a message of 4 GiB or more; a sending side closed by a message
    /// that could not be completed.
    pub async fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.sh.send(msg).await
    }

    /// Receives one whole message. `Ok(None)` means the peer closed the pipe
    /// cleanly (at a message boundary). Cancellation-safe.
    ///
    /// # Errors
    /// `InvalidData` for a message over the size limit, `UnexpectedEof` if
    /// the peer vanished mid-message (both permanent for this stream),
    /// `InvalidInput` in byte mode.
    pub async fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        self.sh.recv().await
    }

    /// Like [`recv`](Self::recv), but fills `buf` (replacing its contents,
    /// reusing its allocation) and returns the message length.
    /// Cancellation-safe: a dropped call may leave `buf` empty, and the part
    /// of the message that arrived waits in the stream for the next call.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub async fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.sh.recv_into(buf).await
    }

    /// Splits the stream into a receiving and a sending half that can move
    /// to different tasks. The connection closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                sh: Arc::clone(&self.sh),
            },
            OwnedWriteHalf { sh: self.sh },
        )
    }

    /// How the OS carries writes on this pipe (see
    /// [`pipe::PipeStream::pipe_type`](crate::pipe::PipeStream::pipe_type)).
    ///
    /// # Errors
    /// OS errors.
    pub fn pipe_type(&self) -> io::Result<PipeMode> {
        self.sh.io.pipe_type()
    }

    /// The peer's process id (see
    /// [`pipe::PipeStream::peer_pid`](crate::pipe::PipeStream::peer_pid)).
    ///
    /// # Errors
    /// `Unsupported` where the OS cannot tell; other OS errors.
    pub fn peer_pid(&self) -> io::Result<u32> {
        self.sh.io.peer_pid()
    }

    /// The user the peer runs as (see
    /// [`pipe::PipeStream::peer_user`](crate::pipe::PipeStream::peer_user)).
    ///
    /// # Errors
    /// OS errors.
    pub fn peer_user(&self) -> io::Result<UserId> {
        self.sh.io.peer_user().map(UserId)
    }
}

/// The receiving half of a [`PipeStream`] ([`PipeStream::into_split`]).
pub struct OwnedReadHalf {
    sh: Arc<Shared>,
}

/// The sending half of a [`PipeStream`] ([`PipeStream::into_split`]).
///
/// Dropping it does not close the sending direction while the read half
/// lives (a message the stream is still completing would be cut): call
/// `AsyncWriteExt::shutdown` to half-close.
pub struct OwnedWriteHalf {
    sh: Arc<Shared>,
}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedReadHalf")
            .field("name", &self.sh.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("name", &self.sh.name)
            .finish_non_exhaustive()
    }
}

impl OwnedReadHalf {
    /// As [`PipeStream::recv`]; cancellation-safe.
    ///
    /// # Errors
    /// As for [`PipeStream::recv`].
    pub async fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        self.sh.recv().await
    }

    /// As [`PipeStream::recv_into`]; cancellation-safe.
    ///
    /// # Errors
    /// As for [`PipeStream::recv`].
    pub async fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.sh.recv_into(buf).await
    }

    /// Whether `other` is the other half of the same stream.
    pub fn is_pair_of(&self, other: &OwnedWriteHalf) -> bool {
        Arc::ptr_eq(&self.sh, &other.sh)
    }

    /// Puts the stream back together.
    ///
    /// # Errors
    /// Both halves back when they belong to different streams.
    pub fn reunite(
        self,
        other: OwnedWriteHalf,
    ) -> std::result::Result<PipeStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if self.is_pair_of(&other) {
            drop(other);
            Ok(PipeStream { sh: self.sh })
        } else {
            Err((self, other))
        }
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.sh
    }
}

impl OwnedWriteHalf {
    /// As [`PipeStream::send`]: all or nothing under cancellation.
    ///
    /// # Errors
    /// As for [`PipeStream::send`].
    pub async fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.sh.send(msg).await
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.sh
    }
}

impl AsyncRead for PipeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.sh.poll_read(cx, buf)
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.sh.poll_read(cx, buf)
    }
}

impl AsyncWrite for PipeStream {
    /// Byte mode: as much as the OS takes now. Message mode: `buf` as one
    /// message, reported written once it is the stream's (see the [module
    /// docs](crate::tokio#cancellation)).
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sh.poll_write(cx, buf)
    }

    /// Waits until nothing this stream took is left to go out.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sh.poll_flush(cx)
    }

    /// Flushes, then half-closes (Unix: the peer reads the end of the
    /// stream; Windows pipes cannot half-close: flush only).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sh.poll_shutdown(cx)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sh.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sh.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sh.poll_shutdown(cx)
    }
}
