//! OS backends. Everything that calls the OS lives below this module; the public
//! modules above it contain no `cfg`.
//!
//! Each backend (`unix`, `windows`, same file names on both sides) provides:
//!
//! - `pipe`: `resolve(name) -> Addr` (name rules), `Listener` (`bind`, `accept`,
//!   `display`), `Stream` (`connect`; `send_msg`/`recv_msg`/`recv_msg_slice` with
//!   boundaries — native on Windows, u32-LE framed on Unix; `read`/`write` for byte
//!   mode; `flush`; `disconnect`; peer pid and user; `pipe_type`), `list()` for
//!   `nipc pipe ls`;
//! - `channel`: the shared-memory channel's handshake on a `pipe::Stream`
//!   (`send_hello`, `recv_hello`, `attach`: how the segment and the wake-up
//!   objects reach the client) and its `Signals` (wait, wake, peer gone);
//! - `classify_os_error`: OS error codes that map to a specific
//!   [`ErrorKind`](crate::ErrorKind) (e.g. `ERROR_PIPE_BUSY` → `Busy`);
//! - `UserRepr`: how a user is identified (uid or SID string; `current`, `parse`).
//!
//! Every blocking call takes a [`Wait`]: block, give up at a deadline, or never
//! block (`WouldBlock`). Raw handles never leave this module.

use std::io;
use std::time::{Duration, Instant};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(unix, windows)))]
compile_error!("named-ipc supports Unix (Linux, macOS, BSD) and Windows only");

/// How long a blocking OS call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Until the operation completes.
    Block,
    /// Not at all: `WouldBlock` if it cannot complete now.
    Never,
    /// At most this long from the moment the call first has to wait: a
    /// timeout that costs nothing (not even reading the clock) while the call
    /// never waits. [`anchor`](Self::anchor) turns it into `Until` when the
    /// waiting starts; a call that waits more than once must anchor first.
    After(Duration),
    /// Until this instant: `TimedOut` after it.
    Until(Instant),
}

impl Wait {
    /// `Until(now + d)`, or `Block` if `d` is `None`.
    pub(crate) fn timeout(d: Option<Duration>) -> Wait {
        match d {
            None => Wait::Block,
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Wait::Block, Wait::Until),
        }
    }

    /// `After(d)` (the clock is read only if the call has to wait), or
    /// `Block` if `d` is `None`.
    pub(crate) fn after(d: Option<Duration>) -> Wait {
        d.map_or(Wait::Block, Wait::After)
    }

    /// Starts the clock of an `After` wait (it becomes `Until`), and returns
    /// the wait. Other waits are unchanged.
    pub(crate) fn anchor(&mut self) -> Wait {
        if let Wait::After(d) = *self {
            *self = Wait::timeout(Some(d));
        }
        *self
    }

    /// Time left, `None` for `Block`; zero once the deadline has passed. For
    /// `After`, all of it: the clock has not started.
    pub(crate) fn remaining(self) -> Option<Duration> {
        match self {
            Wait::Block => None,
            Wait::Never => Some(Duration::ZERO),
            Wait::After(d) => Some(d),
            Wait::Until(t) => Some(t.saturating_duration_since(Instant::now())),
        }
    }

    /// Milliseconds left, rounded up so that a short wait never becomes a spin;
    /// `None` for `Block`.
    pub(crate) fn remaining_ms_ceil(self) -> Option<u64> {
        self.remaining().map(|d| {
            let ms = d.as_millis();
            let ms = if Duration::from_millis(ms as u64) < d {
                ms + 1
            } else {
                ms
            };
            ms.min(u128::from(u32::MAX - 1)) as u64
        })
    }

    /// Whether a deadline has passed (an `After` wait has not started yet).
    pub(crate) fn is_expired(self) -> bool {
        match self {
            Wait::Until(t) => Instant::now() >= t,
            Wait::Never => true,
            Wait::Block | Wait::After(_) => false,
        }
    }

    /// The error for a wait that ran out.
    pub(crate) fn expired_error(self) -> io::Error {
        match self {
            Wait::Never => io::ErrorKind::WouldBlock.into(),
            _ => io::Error::new(io::ErrorKind::TimedOut, "the operation timed out"),
        }
    }
}

/// What a listener's `accept` came back with.
pub(crate) enum Accept<S> {
    /// A client.
    Client(S),
    /// Windows: every instance is in use (by connections this listener does
    /// not count); the caller waits for one to close.
    #[cfg_attr(unix, allow(dead_code))]
    Busy,
    /// The [`flag::Flag`] passed to `accept` is raised.
    Interrupted,
}

/// Which object a name or descriptor refers to: device and inode on Unix (for
/// POSIX shm on Linux and FreeBSD, for files everywhere); volume serial number
/// and file index for Windows files. Two different live objects never share
/// one; an inode number can only come back after the object is freed (tmpfs
/// counts inodes up, so that takes 2^32 creations on one file system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ObjectId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// How to treat an existing object of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Must not exist yet.
    Exclusive,
    /// Must exist.
    Open,
    /// Either.
    Either,
}

/// How a lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    Clean,
    /// The previous holder died holding it.
    Abandoned,
}

/// Parses a child token of the form `PREFIX:NUMBER` (`fd:5`, `handle:1234`).
pub(crate) fn parse_token(token: &str, prefix: &str) -> io::Result<u64> {
    token
        .strip_prefix(prefix)
        .and_then(|n| n.strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{token:?} is not a shared-memory token from this OS (expected {prefix}:N)"
                ),
            )
        })
}

/// Sleeps with exponential backoff from 1 ms to 50 ms while waiting for something
/// that has no OS wake-up (a pipe name that does not exist yet).
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            next: Duration::from_millis(1),
        }
    }

    /// Sleeps for the next step, not past `wait`'s deadline. Returns `false`
    /// (without sleeping) if the deadline has passed or `wait` is `Never`.
    pub(crate) fn sleep(&mut self, wait: Wait) -> bool {
        let step = match wait.remaining() {
            Some(left) if left.is_zero() => return false,
            Some(left) => self.next.min(left),
            None => self.next,
        };
        std::thread::sleep(step);
        self.next = (self.next * 2).min(Duration::from_millis(50));
        true
    }

    /// [`sleep`](Self::sleep) on the tokio timer: the task sleeps, the
    /// runtime thread goes on with other tasks.
    #[cfg(feature = "tokio")]
    pub(crate) async fn sleep_async(&mut self, wait: Wait) -> bool {
        let step = match wait.remaining() {
            Some(left) if left.is_zero() => return false,
            Some(left) => self.next.min(left),
            None => self.next,
        };
        ::tokio::time::sleep(step).await;
        self.next = (self.next * 2).min(Duration::from_millis(50));
        true
    }
}

/// A periodic re-check for a task asleep on a shared-memory channel bell:
/// `Ready` once every `period` while it sleeps. A blocking sleeper looks at
/// the ring again after each liveness slice, so a wake-up it missed costs it
/// at most that slice; an async sleeper would otherwise sleep until the next
/// ring, which may never come (a consumer that published what it freed
/// without looking at the sleep flag, then stopped receiving). Created on
/// first use, on the runtime's timer (the runtime needs its time driver, as
/// for `connect`).
#[cfg(feature = "tokio")]
pub(crate) struct Recheck {
    period: Duration,
    timer: std::sync::Mutex<Option<std::pin::Pin<Box<::tokio::time::Sleep>>>>,
}

#[cfg(feature = "tokio")]
impl Recheck {
    pub(crate) fn new(period: Duration) -> Recheck {
        Recheck {
            period,
            timer: std::sync::Mutex::new(None),
        }
    }

    /// `Ready` when a period has passed since the timer was (re)started,
    /// which restarts it; otherwise `Pending` with `cx`'s waker registered.
    pub(crate) fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::future::Future;
        let mut timer = crate::lock(&self.timer);
        let sleep = timer.get_or_insert_with(|| Box::pin(::tokio::time::sleep(self.period)));
        if sleep.as_mut().poll(cx).is_ready() {
            let next = ::tokio::time::Instant::now() + self.period;
            sleep.as_mut().reset(next);
            return std::task::Poll::Ready(());
        }
        std::task::Poll::Pending
    }
}

#[cfg(all(test, feature = "tokio"))]
mod recheck_tests {
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    use super::Recheck;

    /// A task asleep with nothing ringing still looks again, every period:
    /// what saves an async sleeper from a wake-up it missed.
    #[tokio::test]
    async fn a_sleeper_nobody_wakes_is_woken_every_period() {
        let r = Recheck::new(Duration::from_millis(5));
        let mut first = true;
        let pending_first = poll_fn(|cx| {
            let p = r.poll(cx).is_pending();
            Poll::Ready(std::mem::replace(&mut first, false) && p)
        })
        .await;
        assert!(pending_first, "a fresh recheck must not fire at once");
        for round in 0..3 {
            tokio::time::timeout(Duration::from_secs(30), poll_fn(|cx| r.poll(cx)))
                .await
                .unwrap_or_else(|_| panic!("round {round}: the recheck never fired"));
        }
    }
}
