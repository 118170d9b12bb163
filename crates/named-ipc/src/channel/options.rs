//! Options for channel servers and clients.

use std::io;
use std::time::{Duration, Instant};

use super::header::{MAX_CAPACITY, MIN_CAPACITY};
use super::{ShmListener, ShmStream};
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::framing::DEFAULT_MAX_MESSAGE;
use crate::pipe::{ConnectOptions, ListenerOptions, PipeMode, ServerIdentity};

/// The largest message the rendezvous pipe carries: the handshake's.
const HANDSHAKE_MAX: u32 = 4096;

/// Options for channel servers and clients.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    pub(crate) capacity: usize,
    /// A client set `capacity` itself, so it asks the server for it.
    pub(crate) capacity_asked: bool,
    /// The largest ring a server grants a client that asks.
    pub(crate) max_capacity: usize,
    pub(crate) max_message: u32,
    pub(crate) spin: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) server_identity: ServerIdentity,
    /// This end sleeps through a reactor (the async channel): on Unix it
    /// hands the peer wake-up descriptors in the handshake.
    pub(crate) reactor: bool,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions::new()
    }
}

impl ChannelOptions {
    /// 256 KiB per direction (a server grants clients up to 16 MiB), 16 MiB
    /// largest message, 20 µs of spinning before sleeping, no connect
    /// timeout, a server running as this user.
    pub fn new() -> ChannelOptions {
        ChannelOptions {
            capacity: 256 * 1024,
            capacity_asked: false,
            max_capacity: 16 << 20,
            max_message: DEFAULT_MAX_MESSAGE,
            spin: Duration::from_micros(20),
            timeout: None,
            server_identity: ServerIdentity::SameUser,
            reactor: false,
        }
    }

    /// Ring size per direction, rounded up to a power of two in 4 KiB..=1 GiB.
    ///
    /// On a server: the size of the rings of clients that do not ask for one.
    /// On a client: the size it asks for; the server grants it up to its
    /// [`max_capacity`](Self::max_capacity) (check
    /// [`ShmStream::max_in_place`](crate::channel::ShmStream::max_in_place)).
    /// A message written in place ([`ShmStream::send_with`]) may be as large
    /// as the ring minus 16 bytes (its header and the next record's); a
    /// copying send puts a message of up to a quarter of the ring in one
    /// record and streams larger ones in pieces of a quarter.
    ///
    /// [`ShmStream::send_with`]: crate::channel::ShmStream::send_with
    pub fn capacity(&mut self, bytes: usize) -> &mut Self {
        self.capacity = bytes
            .clamp(MIN_CAPACITY as usize, MAX_CAPACITY as usize)
            .next_power_of_two();
        self.capacity_asked = true;
        self
    }

    /// Server: the largest ring it grants a client that asks for one (default
    /// 16 MiB; each connection maps two rings). Rounded as for
    /// [`capacity`](Self::capacity).
    pub fn max_capacity(&mut self, bytes: usize) -> &mut Self {
        self.max_capacity = bytes
            .clamp(MIN_CAPACITY as usize, MAX_CAPACITY as usize)
            .next_power_of_two();
        self
    }

    /// Largest message this end accepts (default 16 MiB, at most 4 GiB − 1).
    /// The peer learns it in the handshake and refuses to send larger ones.
    pub fn max_message_size(&mut self, max: u32) -> &mut Self {
        self.max_message = max;
        self
    }

    /// How long a `send`/`recv` that must wait spins before it sleeps. Zero:
    /// sleep at once (lowest CPU, a kernel wake-up per message); longer: lower
    /// latency while the peer keeps up, at the cost of a busy core while
    /// waiting. Default 20 µs.
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// How long `connect` waits for the server to appear and finish the
    /// handshake (default: the server must be there; the handshake then
    /// takes at most 10 s).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Which server `connect` accepts (default: one running as this user), as
    /// for [`ConnectOptions::server_identity`]; checked on the rendezvous pipe
    /// before the handshake.
    pub fn server_identity(&mut self, identity: ServerIdentity) -> &mut Self {
        self.server_identity = identity;
        self
    }

    /// The rendezvous pipe's server options. It carries only the
    /// handshake's few bytes: a "client" announcing more is refused at its
    /// header, never buffered.
    pub(crate) fn rendezvous_listener() -> ListenerOptions {
        let mut o = ListenerOptions::new();
        o.mode(PipeMode::Message).max_message_size(HANDSHAKE_MAX);
        o
    }

    /// The rendezvous pipe's client options.
    pub(crate) fn rendezvous_client(&self) -> ConnectOptions {
        let mut o = ConnectOptions::new();
        o.mode(PipeMode::Message)
            .max_message_size(HANDSHAKE_MAX)
            .server_identity(self.server_identity.clone());
        if let Some(t) = self.timeout {
            o.timeout(t);
        }
        o
    }

    /// When a client's handshake must be over: the connect timeout, which
    /// started at `start`, covers it, and it takes at most 10 s.
    pub(crate) fn handshake_deadline(&self, start: Instant) -> Instant {
        let handshake_end = Instant::now() + super::handshake::HANDSHAKE;
        self.timeout
            .and_then(|t| start.checked_add(t))
            .map_or(handshake_end, |d| d.min(handshake_end))
    }

    /// Creates a channel server.
    ///
    /// # Errors
    /// As for [`ListenerOptions::create`].
    pub fn bind(&self, name: &str) -> Result<ShmListener> {
        let pipe = ChannelOptions::rendezvous_listener().create(name)?;
        ShmListener::new(pipe, self.clone())
            .map_err(|e| Error::from_io(e, name, &format!("cannot create channel {name:?}"), ""))
    }

    /// Connects to a channel server.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`] (including
    /// [`ErrorKind::PermissionDenied`] for a server that runs as another user
    /// than [`server_identity`](Self::server_identity) expects);
    /// [`ErrorKind::VersionMismatch`] or [`ErrorKind::InvalidInput`] if the
    /// server's handshake is not acceptable, including (Windows) handles the
    /// server named that are not its section and events.
    pub fn connect(&self, name: &str) -> Result<ShmStream> {
        let start = Instant::now();
        let pipe = self.rendezvous_client().connect(name)?;
        let deadline = self.handshake_deadline(start);
        super::handshake::client(pipe, self, deadline).map_err(|e| handshake_error(e, name))
    }
}

pub(crate) fn handshake_error(e: io::Error, name: &str) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::InvalidData => ErrorKind::VersionMismatch,
        _ => ErrorKind::of_io(&e),
    };
    Error::new(
        kind,
        name,
        format!("channel handshake on {name:?} failed: {e}"),
    )
    .with_source(e)
}
