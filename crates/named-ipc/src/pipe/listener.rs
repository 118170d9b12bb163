//! The server side of a pipe.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipe::{Direction, ListenerOptions, PipeMode, PipeStream, UNLIMITED_INSTANCES};
use crate::sys::{self, Backoff, Wait};

/// Counts a listener's live connections to enforce `max_instances`.
pub(crate) struct Slots {
    live: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// One reserved instance; dropping it frees the slot.
pub(crate) struct SlotGuard(Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut live = crate::lock(&self.0.live);
        *live -= 1;
        drop(live);
        self.0.freed.notify_all();
    }
}

impl Slots {
    fn new(max: u32) -> Arc<Slots> {
        let max = if max >= UNLIMITED_INSTANCES {
            usize::MAX
        } else {
            max as usize
        };
        Arc::new(Slots {
            live: Mutex::new(0),
            freed: Condvar::new(),
            max,
        })
    }

    /// Reserves a slot, waiting while all `max` are taken.
    fn reserve(self: &Arc<Slots>, wait: Wait) -> io::Result<SlotGuard> {
        let mut live = crate::lock(&self.live);
        while *live >= self.max {
            live = match wait.remaining() {
                None => self.freed.wait(live).unwrap_or_else(|p| p.into_inner()),
                Some(left) if left.is_zero() => return Err(wait.expired_error()),
                Some(left) => {
                    self.freed
                        .wait_timeout(live, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        *live += 1;
        Ok(SlotGuard(Arc::clone(self)))
    }
}

/// A pipe server: creates the pipe and accepts clients, each on its own instance.
///
/// On Windows the listener always keeps one instance waiting for the next client
/// (up to `max_instances`), so clients do not see "not found" between two
/// `accept`s. On Unix the socket file is removed when the listener is dropped.
///
/// # Examples
/// An echo server that serves each client on its own thread:
/// ```no_run
/// use named_ipc::pipe::PipeListener;
///
/// let listener = PipeListener::bind("echo")?;
/// for conn in listener.incoming() {
///     let conn = conn?;
///     std::thread::spawn(move || -> std::io::Result<()> {
///         while let Some(msg) = conn.recv()? {
///             conn.send(&msg)?;
///         }
///         Ok(())
///     });
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PipeListener {
    inner: sys::pipe::Listener,
    name: Arc<str>,
    mode: PipeMode,
    direction: Direction,
    slots: Arc<Slots>,
    nonblocking: AtomicBool,
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
    /// Creates the pipe `name` with default [`ListenerOptions`] (message mode,
    /// duplex, owner-only).
    ///
    /// # Errors
    /// As for [`ListenerOptions::create`].
    pub fn bind(name: &str) -> Result<PipeListener> {
        ListenerOptions::new().create(name)
    }

    pub(crate) fn create_with(name: &str, opts: &ListenerOptions) -> Result<PipeListener> {
        let addr = sys::pipe::resolve(name)?;
        let inner = sys::pipe::Listener::bind(name, &addr, opts)?;
        Ok(PipeListener {
            inner,
            name: name.into(),
            mode: opts.mode,
            direction: opts.direction,
            slots: Slots::new(opts.max_instances),
            nonblocking: AtomicBool::new(opts.nonblocking),
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

    /// Waits for the next client and returns its connection.
    ///
    /// A client that connects and leaves before it is accepted does not disturb
    /// the listener; its stream simply reads as closed.
    ///
    /// # Errors
    /// `WouldBlock` in nonblocking mode when no client is waiting; OS errors.
    pub fn accept(&self) -> io::Result<PipeStream> {
        let wait = if self.nonblocking.load(Ordering::Relaxed) {
            Wait::Never
        } else {
            Wait::Block
        };
        self.accept_wait(wait)
    }

    /// Like [`accept`](Self::accept), giving up with `TimedOut` after `timeout`.
    /// Useful to check a shutdown flag between clients.
    ///
    /// # Errors
    /// `TimedOut`; OS errors.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<PipeStream> {
        self.accept_wait(Wait::timeout(Some(timeout)))
    }

    fn accept_wait(&self, wait: Wait) -> io::Result<PipeStream> {
        match self.accept_or_interrupt(wait, None)? {
            Some(s) => Ok(s),
            None => unreachable!("accept without a flag is never interrupted"),
        }
    }

    /// Accepts a client, or returns `Ok(None)` as soon as `flag` is raised
    /// (the channel listener's way to hear about finished handshakes while it
    /// waits for the next client).
    pub(crate) fn accept_or_interrupt(
        &self,
        wait: Wait,
        flag: Option<&sys::flag::Flag>,
    ) -> io::Result<Option<PipeStream>> {
        let slot = self.slots.reserve(wait)?;
        let mut backoff = Backoff::new();
        loop {
            match self.inner.accept(wait, flag) {
                Ok(sys::Accept::Client(s)) => {
                    return Ok(Some(PipeStream::accepted(
                        s,
                        Arc::clone(&self.name),
                        self.mode,
                        self.direction,
                        self.nonblocking.load(Ordering::Relaxed),
                        slot,
                    )))
                }
                Ok(sys::Accept::Interrupted) => return Ok(None),
                // Windows: every instance is taken by connections this listener
                // does not count (another process serving the same name).
                Ok(sys::Accept::Busy) => {
                    if !backoff.sleep(wait) {
                        return Err(wait.expired_error());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(e)
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        Error::from_io(
                            e,
                            &self.name,
                            &format!("accept on pipe {:?} failed", &*self.name),
                            "",
                        ),
                    ))
                }
            }
        }
    }

    /// Switches `accept` (and the streams it returns from now on) between
    /// blocking and nonblocking.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    /// An endless iterator over incoming connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }
}

/// Iterator returned by [`PipeListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a PipeListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<PipeStream>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept())
    }
}
