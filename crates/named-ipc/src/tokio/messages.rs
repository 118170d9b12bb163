//! `futures` `Stream`/`Sink` adapters over message-mode pipes.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;

use super::stream::{OwnedReadHalf, OwnedWriteHalf, PipeStream, Shared};

mod sealed {
    use super::{OwnedReadHalf, OwnedWriteHalf, PipeStream, Shared};

    /// Gives [`Messages`](super::Messages) the stream's insides; nameable
    /// only in this crate.
    pub trait Sealed {
        fn shared(&self) -> &Shared;
    }

    impl Sealed for PipeStream {
        fn shared(&self) -> &Shared {
            PipeStream::shared(self)
        }
    }
    impl Sealed for OwnedReadHalf {
        fn shared(&self) -> &Shared {
            OwnedReadHalf::shared(self)
        }
    }
    impl Sealed for OwnedWriteHalf {
        fn shared(&self) -> &Shared {
            OwnedWriteHalf::shared(self)
        }
    }
}

/// A stream or half that [`Messages`] can wrap: [`PipeStream`],
/// [`OwnedReadHalf`], [`OwnedWriteHalf`]. Sealed.
pub trait MessageIo: sealed::Sealed {}

/// A [`MessageIo`] that receives: [`Messages`] is a `Stream` over it.
pub trait MessageRecv: MessageIo {}

/// A [`MessageIo`] that sends: [`Messages`] is a `Sink` over it.
pub trait MessageSend: MessageIo {}

impl MessageIo for PipeStream {}
impl MessageIo for OwnedReadHalf {}
impl MessageIo for OwnedWriteHalf {}
impl MessageRecv for PipeStream {}
impl MessageRecv for OwnedReadHalf {}
impl MessageSend for PipeStream {}
impl MessageSend for OwnedWriteHalf {}

/// A message-mode [`PipeStream`] (or one of its halves) as a
/// [`futures_core::Stream`] of received messages and a
/// [`futures_sink::Sink`] of messages to send, for combinators (`StreamExt`,
/// `SinkExt::send_all`, `forward`).
///
/// The stream yields each whole message as [`Bytes`], then `None` at a clean
/// end; an error ends nothing by itself, but receive errors other than a
/// dropped future are permanent for the pipe (see
/// [`PipeStream::recv`]). The sink sends each item as one message with the
/// contract of [`PipeStream::send`]: `poll_ready` waits until the previous
/// message is the stream's, `poll_flush` until everything left, and
/// `poll_close` flushes and half-closes (Unix). Dropping the adapter with a
/// message part-way out leaves its rest to the stream, as a dropped `send`
/// does.
///
/// # Examples
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use futures_util::{SinkExt, StreamExt};
/// use named_ipc::tokio::{Messages, PipeStream};
///
/// let (rx, tx) = PipeStream::connect("jobs").await?.into_split();
/// let mut incoming = Messages::new(rx);
/// let mut outgoing = Messages::new(tx);
/// outgoing.send(Bytes::from_static(b"hello")).await?;
/// while let Some(msg) = incoming.next().await {
///     println!("{:?}", msg?);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Messages<T: MessageIo> {
    io: T,
    /// The receive buffer (handed out as `Bytes`).
    buf: Vec<u8>,
    /// A message accepted by `start_send`, none of it sent yet.
    item: Option<Bytes>,
}

impl<T: MessageIo> fmt::Debug for Messages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages")
            .field("queued", &self.item.as_ref().map(Bytes::len))
            .finish_non_exhaustive()
    }
}

impl<T: MessageIo> Messages<T> {
    /// Wraps a message-mode stream or half.
    pub fn new(io: T) -> Messages<T> {
        Messages {
            io,
            buf: Vec::new(),
            item: None,
        }
    }

    /// The stream or half.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The stream or half back. A message accepted by `start_send` and not
    /// yet started is dropped unsent (flush first to send it).
    pub fn into_inner(self) -> T {
        self.io
    }

    /// Drives the queued item until it is the stream's.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(item) = &self.item {
            let r = ready!(self.io.shared().poll_send_msg(cx, item));
            self.item = None;
            r?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: MessageIo + Unpin> Unpin for Messages<T> {}

impl<T: MessageRecv + Unpin> Stream for Messages<T> {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let sh = this.io.shared();
        if let Err(e) = sh.check_recv("a message Stream") {
            return Poll::Ready(Some(Err(e)));
        }
        match ready!(sh.io.poll_recv_into(cx, &mut this.buf)) {
            Ok(Some(_)) => Poll::Ready(Some(Ok(Bytes::from(std::mem::take(&mut this.buf))))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl<T: MessageSend + Unpin> Sink<Bytes> for Messages<T> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_item(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> io::Result<()> {
        let this = self.get_mut();
        this.io.shared().check_send("a message Sink")?;
        debug_assert!(this.item.is_none(), "start_send without poll_ready");
        this.item = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_item(cx))?;
        this.io.shared().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_item(cx))?;
        this.io.shared().poll_shutdown(cx)
    }
}
