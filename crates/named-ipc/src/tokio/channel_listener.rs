//! The async server side of a shared-memory channel.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use ::tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};

use super::channel::ShmStream;
use crate::channel::{handshake, ChannelOptions};
use crate::error::Result;

/// At most this many handshakes run at once (as for the blocking
/// listener); further clients wait in the pipe's backlog until one ends.
const MAX_HANDSHAKES: usize = 64;

/// An async channel server: accepts clients, each with its own shared rings
/// — the async twin of [`channel::ShmListener`](crate::channel::ShmListener),
/// with the same options, rendezvous pipe and handshake.
///
/// The rendezvous pipe is an async [`PipeListener`](super::PipeListener).
/// Each client's handshake (a few messages, at most 10 s) runs on tokio's
/// blocking pool, at most 64 at once: a client that connects and says
/// nothing, or a slow one, delays nobody else. [`accept`](Self::accept)
/// returns whichever client finishes first; clients whose handshake fails
/// are dropped.
///
/// # Examples
/// An echo server, one task per client:
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use named_ipc::tokio::ShmListener;
///
/// let listener = ShmListener::bind("fast-lane")?;
/// loop {
///     let conn = listener.accept().await?;
///     tokio::spawn(async move {
///         while let Some(msg) = conn.recv().await? {
///             conn.send(&msg).await?;
///         }
///         std::io::Result::Ok(())
///     });
/// }
/// # }
/// ```
pub struct ShmListener {
    pipe: super::PipeListener,
    opts: ChannelOptions,
    /// Channels whose handshake finished, oldest first (the receiver under
    /// a lock: one `accept` at a time takes from it).
    ready: Mutex<mpsc::UnboundedReceiver<Box<crate::channel::ShmStream>>>,
    done: mpsc::UnboundedSender<Box<crate::channel::ShmStream>>,
    handshakes: Arc<Semaphore>,
}

impl fmt::Debug for ShmListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmListener")
            .field("name", &self.pipe.name())
            .field("capacity", &self.opts.capacity)
            .finish_non_exhaustive()
    }
}

/// What one round of `accept` came back with.
enum Next {
    Ready(Option<Box<crate::channel::ShmStream>>),
    Client(io::Result<(OwnedSemaphorePermit, super::PipeStream)>),
}

impl ShmListener {
    /// Creates a channel server with default [`ChannelOptions`]. Must be
    /// called within a tokio runtime.
    ///
    /// # Errors
    /// As for [`ChannelOptions::bind`]; also when called outside a tokio
    /// runtime with I/O enabled.
    pub fn bind(name: &str) -> Result<ShmListener> {
        ShmListener::bind_with(name, &ChannelOptions::new())
    }

    /// Creates a channel server with `opts`. Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    /// As for [`ChannelOptions::bind`]; also when called outside a tokio
    /// runtime with I/O enabled.
    pub fn bind_with(name: &str, opts: &ChannelOptions) -> Result<ShmListener> {
        let pipe = super::PipeListener::bind_with(name, &ChannelOptions::rendezvous_listener())?;
        let mut opts = opts.clone();
        opts.reactor = true;
        let (done, ready) = mpsc::unbounded_channel();
        Ok(ShmListener {
            pipe,
            opts,
            ready: Mutex::new(ready),
            done,
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
        })
    }

    /// The name clients connect to.
    pub fn name(&self) -> &str {
        self.pipe.name()
    }

    /// Waits for a client whose handshake succeeded and returns its channel.
    ///
    /// Cancellation-safe: dropping the future loses no client — one that
    /// connected stays in the pipe's backlog (or, on Windows, on its
    /// listening instance), and one whose handshake is under way or done is
    /// returned by a later `accept`.
    ///
    /// # Errors
    /// OS errors of the rendezvous pipe, or of registering the channel with
    /// the runtime. Clients whose handshake fails are dropped, not reported.
    pub async fn accept(&self) -> io::Result<ShmStream> {
        let mut ready = self.ready.lock().await;
        loop {
            let next = {
                let mut client = pin!(async {
                    let slot = Arc::clone(&self.handshakes)
                        .acquire_owned()
                        .await
                        .map_err(|_| io::Error::other("the listener's handshakes are closed"))?;
                    Ok((slot, self.pipe.accept().await?))
                });
                poll_fn(|cx| {
                    if let Poll::Ready(s) = ready.poll_recv(cx) {
                        return Poll::Ready(Next::Ready(s));
                    }
                    client.as_mut().poll(cx).map(Next::Client)
                })
                .await
            };
            match next {
                Next::Ready(Some(s)) => return ShmStream::from_blocking(*s),
                Next::Ready(None) => {
                    return Err(io::Error::other("the listener's handshakes are closed"))
                }
                Next::Client(Ok((slot, pipe))) => self.start_handshake(slot, pipe),
                Next::Client(Err(e)) => return Err(e),
            }
        }
    }

    /// Runs one client's handshake on the blocking pool; its channel joins
    /// the ready ones. The stream goes blocking first (the handshake is the
    /// blocking channel's), and registers with the runtime again when an
    /// `accept` takes it.
    fn start_handshake(&self, slot: OwnedSemaphorePermit, pipe: super::PipeStream) {
        let Ok(pipe) = pipe.into_blocking() else {
            return;
        };
        let opts = self.opts.clone();
        let done = self.done.clone();
        ::tokio::task::spawn_blocking(move || {
            if let Ok(s) = handshake::server(pipe, &opts) {
                // The listener may be gone: then the channel is dropped.
                let _ = done.send(Box::new(s));
            }
            drop(slot);
        });
    }
}
