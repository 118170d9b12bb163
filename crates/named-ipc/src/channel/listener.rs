//! The channel server: accepts clients on the rendezvous pipe and runs each
//! handshake on its own thread, so a client that connects and then stalls
//! (or a slow one) never holds up the others.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::handshake;
use super::options::ChannelOptions;
use super::stream::{lock, ShmStream};
use crate::error::Result;
use crate::pipe::PipeListener;
use crate::sys::{self, Wait};

/// At most this many handshakes run at once; further clients wait in the
/// pipe's backlog (Windows: for a free instance) until one finishes.
const MAX_HANDSHAKES: usize = 64;

/// A channel server: accepts clients, each with its own shared rings.
///
/// Each client's handshake runs on a short-lived thread of its own, bounded
/// by a 10 s deadline: [`accept`](Self::accept) returns whichever client
/// finishes first, and a client that connects and says nothing, or goes
/// slowly, delays nobody else. A client whose handshake fails (not a
/// named-ipc channel client, another version, left or stalled) is dropped
/// without troubling `accept`.
pub struct ShmListener {
    pipe: PipeListener,
    opts: ChannelOptions,
    shared: Arc<Shared>,
}

/// What the handshake threads hand back.
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a handshake ends.
    ended: Condvar,
    /// Raised while `ready` is not empty, so an `accept` blocked on the pipe
    /// wakes up for a finished handshake. Raised and lowered under `state`.
    flag: sys::flag::Flag,
}

struct State {
    /// Channels whose handshake finished, oldest first.
    ready: VecDeque<ShmStream>,
    /// Handshakes in progress.
    running: usize,
}

impl fmt::Debug for ShmListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmListener")
            .field("name", &self.pipe.name())
            .field("capacity", &self.opts.capacity)
            .finish_non_exhaustive()
    }
}

impl ShmListener {
    pub(crate) fn new(pipe: PipeListener, opts: ChannelOptions) -> io::Result<ShmListener> {
        Ok(ShmListener {
            pipe,
            opts,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    ready: VecDeque::new(),
                    running: 0,
                }),
                ended: Condvar::new(),
                flag: sys::flag::Flag::new()?,
            }),
        })
    }

    /// Creates a channel server with default [`ChannelOptions`].
    ///
    /// # Errors
    /// As for [`ChannelOptions::bind`].
    pub fn bind(name: &str) -> Result<ShmListener> {
        ChannelOptions::new().bind(name)
    }

    /// The name clients connect to.
    pub fn name(&self) -> &str {
        self.pipe.name()
    }

    /// Waits for a client whose handshake succeeded and returns its channel.
    /// On Windows a handshake ends once the client has taken the channel's
    /// handles (it says so).
    ///
    /// # Errors
    /// OS errors of the rendezvous pipe. Clients whose handshake fails are
    /// dropped, not reported.
    pub fn accept(&self) -> io::Result<ShmStream> {
        self.accept_wait(Wait::Block)
    }

    /// Like [`accept`](Self::accept), giving up with `TimedOut` after `timeout`.
    ///
    /// # Errors
    /// As for [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<ShmStream> {
        self.accept_wait(Wait::timeout(Some(timeout)))
    }

    fn accept_wait(&self, wait: Wait) -> io::Result<ShmStream> {
        loop {
            {
                let mut st = lock(&self.shared.state);
                if let Some(s) = st.ready.pop_front() {
                    if st.ready.is_empty() {
                        self.shared.flag.lower();
                    }
                    return Ok(s);
                }
                if st.running >= MAX_HANDSHAKES {
                    // Let one finish before taking another client.
                    match wait.remaining() {
                        None => drop(self.shared.ended.wait(st)),
                        Some(left) if left.is_zero() => return Err(wait.expired_error()),
                        Some(left) => drop(self.shared.ended.wait_timeout(st, left)),
                    }
                    continue;
                }
            }
            match self
                .pipe
                .accept_or_interrupt(wait, Some(&self.shared.flag))?
            {
                // A handshake finished: take it above.
                None => continue,
                Some(pipe) => self.start_handshake(pipe)?,
            }
        }
    }

    fn start_handshake(&self, pipe: crate::pipe::PipeStream) -> io::Result<()> {
        lock(&self.shared.state).running += 1;
        let shared = Arc::clone(&self.shared);
        let opts = self.opts.clone();
        let spawned = std::thread::Builder::new()
            .name("named-ipc handshake".into())
            .spawn(move || {
                let done = handshake::server(pipe, &opts);
                let mut st = lock(&shared.state);
                st.running -= 1;
                if let Ok(s) = done {
                    st.ready.push_back(s);
                    shared.flag.raise();
                }
                drop(st);
                shared.ended.notify_all();
            });
        if let Err(e) = spawned {
            lock(&self.shared.state).running -= 1;
            return Err(e);
        }
        Ok(())
    }
}
