//! The async server side of a pipe.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;

use ::tokio::sync::{Mutex, Semaphore};

use super::stream::PipeStream;
use crate::error::{Error, Result};
use crate::pipe::{Direction, ListenerOptions, PipeMode, UNLIMITED_INSTANCES};
use crate::sys;

/// An async pipe server: creates the pipe and accepts clients, each on its
/// own connection — the async twin of
/// [`pipe::PipeListener`](crate::pipe::PipeListener), with the same options
/// and the same OS objects.
///
/// [`accept`](Self::accept) is cancellation-safe (see the [module
/// docs](crate::tokio#cancellation)). On Windows the listener always keeps
/// one instance listening, so clients never see "not found" between two
/// `accept`s; on Unix it removes its socket file and lock file when dropped.
///
/// # Examples
/// An echo server, one task per client:
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use named_ipc::tokio::PipeListener;
///
/// let listener = PipeListener::bind("echo")?;
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
pub struct PipeListener {
    inner: sys::pipe::AsyncListener,
    name: Arc<str>,
    mode: PipeMode,
    direction: Direction,
    /// `max_instances` connections at once (`None`: unlimited).
    slots: Option<Arc<Semaphore>>,
    /// One `accept` at a time waits on the OS (the others queue here, in
    /// order).
    turn: Mutex<()>,
}

impl fmt::Debug for PipeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeListener")
            .field("name", &self.name)
            .field("os_name", &self.inner.display())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PipeListener {
    /// Creates the pipe `name` with default [`ListenerOptions`] (message
    /// mode, duplex, owner-only). Must be called within a tokio runtime.
    ///
    /// # Errors
    /// As for [`ListenerOptions::create`]; also when called outside a tokio
    /// runtime with I/O enabled.
    pub fn bind(name: &str) -> Result<PipeListener> {
        PipeListener::bind_with(name, &ListenerOptions::new())
    }

    /// Creates the pipe `name` with `opts` (`nonblocking` has no meaning
    /// here and is ignored). Must be called within a tokio runtime.
    ///
    /// # Errors
    /// As for [`ListenerOptions::create`]; also when called outside a tokio
    /// runtime with I/O enabled.
    pub fn bind_with(name: &str, opts: &ListenerOptions) -> Result<PipeListener> {
        opts.validate(name)?;
        let addr = sys::pipe::resolve(name)?;
        let inner = sys::pipe::AsyncListener::bind(name, &addr, opts)?;
        let slots = (opts.max_instances < UNLIMITED_INSTANCES)
            .then(|| Arc::new(Semaphore::new(opts.max_instances as usize)));
        Ok(PipeListener {
            inner,
            name: name.into(),
            mode: opts.mode,
            direction: opts.direction,
            slots,
            turn: Mutex::new(()),
        })
    }

    /// The name the pipe was created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS-level name: `\\.\pipe\NAME` or the socket path.
    pub fn os_name(&self) -> String {
        self.inner.display()
    }

    /// Waits for the next client and returns its connection. With
    /// `max_instances` set, waits first for one of this listener's
    /// connections to close while that many are open.
    ///
    /// Cancellation-safe: dropping the future loses no client.
    ///
    /// # Errors
    /// OS errors, naming the pipe.
    pub async fn accept(&self) -> io::Result<PipeStream> {
        let slot = match &self.slots {
            Some(s) => Some(
                Arc::clone(s)
                    .acquire_owned()
                    .await
                    .map_err(|_| io::Error::other("the listener's instance count is closed"))?,
            ),
            None => None,
        };
        let _turn = self.turn.lock().await;
        let s = poll_fn(|cx| self.inner.poll_accept(cx))
            .await
            .map_err(|e| {
                let kind = e.kind();
                io::Error::new(
                    kind,
                    Error::from_io(
                        e,
                        &self.name,
                        &format!("accept on pipe {:?} failed", &*self.name),
                        "",
                    ),
                )
            })?;
        Ok(PipeStream::accepted(
            s,
            Arc::clone(&self.name),
            self.mode,
            self.direction,
            slot,
        ))
    }
}
