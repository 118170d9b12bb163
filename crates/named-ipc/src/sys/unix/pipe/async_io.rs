//! The tokio driver of Unix pipes: the listener and streams of the blocking
//! API — same socket paths, lock file, socket options, framing and send
//! state — registered with tokio's reactor ([`AsyncFd`]) and driven by
//! readiness. Every call here is one of the blocking API's calls with
//! [`Wait::Never`], made when the reactor says the socket is ready; none
//! blocks a runtime thread (except a stream's drop, see [`Stream`]'s `Drop`).
//!
//! One waker per direction: the portable layer (`crate::tokio`) lets one
//! task at a time receive, send or accept.

use std::io;
use std::task::{ready, Context, Poll};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;

use super::socket::{sockaddr, Addr};
use super::stream::{busy_error, busy_wait, connected, dial, Dial};
use super::{Listener, Stream};
use crate::pipe::{ConnectOptions, ListenerOptions, PipeMode};
use crate::proto::send::{Outgoing, SEND_GRACE};
use crate::sys::unix::UserRepr;
use crate::sys::{Accept, Backoff, Wait};

fn would_block<T>(r: &io::Result<T>) -> bool {
    matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// A bound listener on the reactor.
pub(crate) struct AsyncListener {
    io: AsyncFd<Listener>,
}

impl AsyncListener {
    /// Binds as the blocking listener does (lock file, stale-socket reclaim,
    /// mode bits before `listen`). Must run inside a tokio runtime.
    pub(crate) fn bind(
        name: &str,
        addr: &Addr,
        opts: &ListenerOptions,
    ) -> crate::Result<AsyncListener> {
        let l = Listener::bind(name, addr, opts)?;
        // SAFETY: the listener owns its descriptor for its whole life and
        // never replaces it.
        let io = unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) };
        let io = io.map_err(|e| {
            crate::Error::from_io(
                e.into(),
                name,
                &format!("cannot register pipe {name:?} with the tokio runtime"),
                "call this from within a tokio runtime with I/O enabled",
            )
        })?;
        Ok(AsyncListener { io })
    }

    /// Accepts one client: `Pending` until one is waiting. Cancelling loses
    /// nothing: a client not yet accepted stays in the backlog.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<AsyncStream>> {
        loop {
            let mut guard = ready!(self.io.poll_read_ready(cx))?;
            let r = guard.try_io(|l| match l.get_ref().accept(Wait::Never, None)? {
                Accept::Client(s) => Ok(s),
                Accept::Busy | Accept::Interrupted => Err(io::ErrorKind::WouldBlock.into()),
            });
            match r {
                Ok(r) => return Poll::Ready(r.and_then(AsyncStream::new)),
                Err(_would_block) => continue,
            }
        }
    }

    pub(crate) fn display(&self) -> String {
        self.io.get_ref().display()
    }
}

/// One message on its way out (the frame and how much of it left).
pub(crate) struct SendOp<'a>(Outgoing<'a>);

impl SendOp<'_> {
    /// Some of the message has left: the sender can no longer take it back.
    pub(crate) fn started(&self) -> bool {
        self.0.sent() > 0
    }
}

/// A connected stream on the reactor.
pub(crate) struct AsyncStream {
    /// `None` only inside `drop`.
    io: Option<AsyncFd<Stream>>,
}

impl Drop for AsyncStream {
    /// A message the stream still has to finish (the rest of a frame whose
    /// `send` was dropped) is finished by a task on the runtime, within the
    /// grace period, so that the drop blocks no runtime thread (on a
    /// current-thread runtime the reader may be a task of the same thread).
    /// Then the socket closes. Outside a runtime the blocking stream's drop
    /// does the same on this thread.
    fn drop(&mut self) {
        let Some(io) = self.io.take() else { return };
        if !io.get_ref().has_tail() {
            return;
        }
        let Ok(rt) = ::tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let flushed = ::tokio::time::timeout(
                SEND_GRACE,
                std::future::poll_fn(|cx| poll_out(&io, cx, |s| s.flush_ready())),
            )
            .await;
            if flushed.is_err() {
                io.get_ref().cut_tail();
            }
        });
    }
}

fn poll_out<T>(
    io: &AsyncFd<Stream>,
    cx: &mut Context<'_>,
    mut f: impl FnMut(&Stream) -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        let mut guard = ready!(io.poll_write_ready(cx))?;
        match guard.try_io(|s| f(s.get_ref())) {
            Ok(r) => return Poll::Ready(r),
            Err(_would_block) => continue,
        }
    }
}

impl AsyncStream {
    pub(crate) fn new(s: Stream) -> io::Result<AsyncStream> {
        // SAFETY: the stream owns its descriptor for its whole life and never
        // replaces it.
        let io = unsafe { AsyncFd::register(s) }?;
        Ok(AsyncStream { io: Some(io) })
    }

    /// Back to the blocking stream, off the reactor (for a handshake run
    /// on a blocking thread). Nothing may be kept to go out.
    pub(crate) fn into_sync(mut self) -> io::Result<Stream> {
        match self.io.take() {
            Some(io) if !io.get_ref().has_tail() => Ok(io.into_inner()),
            _ => Err(io::Error::other(
                "the stream still has a message to finish; it cannot leave the runtime",
            )),
        }
    }

    fn fd(&self) -> &AsyncFd<Stream> {
        match &self.io {
            Some(io) => io,
            None => unreachable!("the stream is taken only by drop"),
        }
    }

    /// The blocking stream underneath (peer credentials, mode).
    fn sys(&self) -> &Stream {
        self.fd().get_ref()
    }

    /// Connects as the blocking client does, waiting on the tokio timer for
    /// a pipe that does not exist yet or a full backlog (backoff from 1 to
    /// 50 ms; there is no OS notification for a socket file appearing) and
    /// on the reactor for a connect in progress.
    pub(crate) async fn connect(
        addr: &Addr,
        opts: &ConnectOptions,
        name: &str,
        wait: Wait,
    ) -> io::Result<AsyncStream> {
        let sa = sockaddr(&addr.path)?;
        let mut backoff = Backoff::new();
        let busy = busy_wait(wait);
        let fd = loop {
            match dial(&sa)? {
                Dial::Connected(fd) => break fd,
                Dial::InProgress(fd) => {
                    // SAFETY: an OwnedFd keeps its descriptor until dropped.
                    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }?;
                    let ready = afd.writable();
                    match busy {
                        Wait::Until(t) => {
                            ::tokio::time::timeout_at(t.into(), ready)
                                .await
                                .map_err(|_| busy.expired_error())??
                                .retain_ready();
                        }
                        _ => ready.await?.retain_ready(),
                    }
                    break connected(afd.into_inner())?;
                }
                Dial::Busy => {
                    if !backoff.sleep_async(busy).await {
                        return Err(busy_error(name));
                    }
                }
                Dial::Missing(e) => {
                    if !backoff.sleep_async(wait).await {
                        return Err(e);
                    }
                }
            }
        };
        AsyncStream::new(Stream::connected(fd, opts, name))
    }

    /// Receives one whole message into `out` (the blocking `recv_msg`
    /// without waiting). Cancel-safe: what arrived stays in the decoder.
    pub(crate) fn poll_recv_into(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<io::Result<Option<usize>>> {
        self.poll_in(cx, |s| s.recv_msg(out, Wait::Never))
    }

    /// `Read`: bytes (byte mode) or message payloads without boundaries.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_in(cx, |s| s.read(buf, Wait::Never))
    }

    fn poll_in<T>(
        &self,
        cx: &mut Context<'_>,
        mut f: impl FnMut(&Stream) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            let mut guard = match self.fd().poll_read_ready(cx) {
                Poll::Ready(g) => g?,
                // Not readable, but a whole message may wait in read-ahead.
                Poll::Pending if self.sys().has_buffered() => {
                    let r = f(self.sys());
                    return if would_block(&r) {
                        Poll::Pending
                    } else {
                        Poll::Ready(r)
                    };
                }
                Poll::Pending => return Poll::Pending,
            };
            match guard.try_io(|s| f(s.get_ref())) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_out<T>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnMut(&Stream) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        poll_out(self.fd(), cx, f)
    }

    /// A message send: `msg` as one frame.
    pub(crate) fn send_op<'a>(&self, msg: &'a [u8]) -> io::Result<SendOp<'a>> {
        Outgoing::framed(msg).map(SendOp)
    }

    /// Drives `op` (after any kept tail) until the whole frame left.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        op: &mut SendOp<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_out(cx, |s| s.send_ready(&mut op.0))
    }

    /// The sender of `op` stops waiting: a frame already started is kept
    /// and finished by the stream; one not started is dropped whole.
    pub(crate) fn abandon_send(&self, op: &SendOp<'_>) {
        self.sys().keep_rest(&op.0);
    }

    /// Byte mode `write`: as much as the socket takes now.
    pub(crate) fn poll_write_bytes(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_out(cx, |s| s.write(buf, Wait::Never))
    }

    /// Pushes out a kept tail; `Ok` once nothing of ours waits to go out.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.sys().has_tail() {
            return Poll::Ready(self.sys().flush(Wait::Never));
        }
        self.poll_out(cx, |s| s.flush_ready())
    }

    /// Half-close (after [`poll_flush`](Self::poll_flush)): the peer reads
    /// the end of the stream.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.sys().shutdown_write()
    }

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        self.sys().peer_pid()
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        self.sys().peer_user()
    }

    pub(crate) fn pipe_type(&self) -> io::Result<PipeMode> {
        self.sys().pipe_type()
    }
}
