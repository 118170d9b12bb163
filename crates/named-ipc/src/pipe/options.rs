//! Builders for pipe servers and clients: every `CreateNamedPipe` parameter.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::pipe::framing::DEFAULT_MAX_MESSAGE;
use crate::pipe::{PipeListener, PipeStream, UserId};
use crate::security::Security;

/// How data is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PipeMode {
    /// Each `send` is one message and each `recv` returns one whole message.
    /// Windows: `PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE`. Unix: each message
    /// travels as a u32 little-endian length and the payload.
    #[default]
    Message,
    /// A plain byte stream (`Read`/`Write`), no boundaries. Windows:
    /// `PIPE_TYPE_BYTE | PIPE_READMODE_BYTE`. Wrap it in
    /// [`Framed`](crate::pipe::Framed) for size-prefixed messages.
    Byte,
}

/// Which way data flows, seen from the server (`dwOpenMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Direction {
    /// Both ways (`PIPE_ACCESS_DUPLEX`).
    #[default]
    Duplex,
    /// Client to server only (`PIPE_ACCESS_INBOUND`): the server only receives.
    Inbound,
    /// Server to client only (`PIPE_ACCESS_OUTBOUND`): the server only sends.
    Outbound,
}

/// What a client asks to do (`GENERIC_READ`/`GENERIC_WRITE` of `CreateFile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Access {
    /// Send and receive; needs a [`Direction::Duplex`] server.
    #[default]
    ReadWrite,
    /// Receive only; the server must be [`Direction::Outbound`] or duplex.
    Read,
    /// Send only; the server must be [`Direction::Inbound`] or duplex.
    Write,
}

/// The largest `max_instances` value that is a real limit; this value itself
/// means unlimited, as `PIPE_UNLIMITED_INSTANCES` does.
pub const UNLIMITED_INSTANCES: u32 = 255;

/// Options for creating a pipe server, in the style of tokio's `ServerOptions`.
///
/// One value creates many listeners; every setter returns `&mut Self`.
///
/// # Examples
/// ```no_run
/// use named_ipc::pipe::{ListenerOptions, PipeMode};
/// use std::time::Duration;
///
/// let listener = ListenerOptions::new()
///     .mode(PipeMode::Message)
///     .max_instances(4)
///     .buffer_sizes(4096, 4096)
///     .default_timeout(Duration::from_millis(200))
///     .create("jobs")?;
/// # Ok::<(), named_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    pub(crate) mode: PipeMode,
    pub(crate) direction: Direction,
    pub(crate) nonblocking: bool,
    pub(crate) reject_remote_clients: bool,
    pub(crate) max_instances: u32,
    /// `None`: the OS default (Windows: 64 KiB each).
    pub(crate) buffer_sizes: Option<(u32, u32)>,
    pub(crate) default_timeout: Duration,
    pub(crate) max_message: u32,
    pub(crate) security: Security,
    /// Windows only: a full SDDL security descriptor.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) sddl: Option<String>,
    /// Unix only: explicit socket file permission bits.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) unix_mode: Option<u32>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions::new()
    }
}

impl ListenerOptions {
    /// The defaults: message mode, duplex, blocking, remote clients rejected,
    /// unlimited instances, OS-default buffers (64 KiB on Windows), 50 ms default timeout, 16 MiB largest
    /// message, owner-only security.
    pub fn new() -> ListenerOptions {
        ListenerOptions {
            mode: PipeMode::Message,
            direction: Direction::Duplex,
            nonblocking: false,
            reject_remote_clients: true,
            max_instances: UNLIMITED_INSTANCES,
            buffer_sizes: None,
            default_timeout: Duration::from_millis(50),
            max_message: DEFAULT_MAX_MESSAGE,
            security: Security::OwnerOnly,
            sddl: None,
            unix_mode: None,
        }
    }

    /// Message or byte mode (`PIPE_TYPE_*` and `PIPE_READMODE_*`).
    pub fn mode(&mut self, mode: PipeMode) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Data direction (`PIPE_ACCESS_DUPLEX`, `_INBOUND`, `_OUTBOUND`).
    pub fn direction(&mut self, direction: Direction) -> &mut Self {
        self.direction = direction;
        self
    }

    /// Nonblocking listener and streams: `accept` and `recv` return
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock) instead of waiting, and a
    /// `send` that cannot start now does too. Windows implements this with
    /// overlapped I/O, not the legacy `PIPE_NOWAIT`.
    pub fn nonblocking(&mut self, nonblocking: bool) -> &mut Self {
        self.nonblocking = nonblocking;
        self
    }

    /// Refuse clients on other machines (`PIPE_REJECT_REMOTE_CLIENTS`, default
    /// `true`). Unix domain sockets are always local, so this has no effect there.
    pub fn reject_remote_clients(&mut self, reject: bool) -> &mut Self {
        self.reject_remote_clients = reject;
        self
    }

    /// Most clients connected at once (`nMaxInstances`): 1 to 254, or
    /// [`UNLIMITED_INSTANCES`] (255). Checked by `create`.
    ///
    /// When all are in use, Windows makes new clients wait (`ERROR_PIPE_BUSY`,
    /// `WaitNamedPipe`); on Unix their connections queue in the socket backlog and
    /// are accepted as earlier clients leave.
    pub fn max_instances(&mut self, n: u32) -> &mut Self {
        self.max_instances = n;
        self
    }

    /// Buffer sizes in bytes: `nInBufferSize` (client to server) and
    /// `nOutBufferSize` (server to client); without this call Windows gets 64 KiB
    /// each. Unix: `SO_RCVBUF` and `SO_SNDBUF` of each accepted socket (Linux
    /// doubles the value and counts per-message overhead against it); without
    /// this call the OS default stays.
    pub fn buffer_sizes(&mut self, in_size: u32, out_size: u32) -> &mut Self {
        self.buffer_sizes = Some((in_size, out_size));
        self
    }

    /// `nDefaultTimeOut`: how long a Windows client waits for a busy pipe when it
    /// asks for the default wait (`WaitNamedPipe` with
    /// `NMPWAIT_USE_DEFAULT_WAIT`). Zero means 50 ms, as on Windows. Only other
    /// Win32 clients consult it: named-ipc clients wait their own timeout (or
    /// 50 ms without one), and Unix has no such setting.
    pub fn default_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.default_timeout = if timeout.is_zero() {
            Duration::from_millis(50)
        } else {
            timeout
        };
        self
    }

    /// Largest incoming message accepted, up to 4 GiB − 1 (default 16 MiB). A
    /// larger one fails that connection's `recv` with `InvalidData`.
    pub fn max_message_size(&mut self, max: u32) -> &mut Self {
        self.max_message = max;
        self
    }

    /// Who may connect (default: only this user).
    pub fn security(&mut self, security: Security) -> &mut Self {
        self.security = security;
        self
    }

    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        if self.max_instances == 0 || self.max_instances > UNLIMITED_INSTANCES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                name,
                format!(
                    "max_instances must be 1 to 254, or {UNLIMITED_INSTANCES} for unlimited; got {}",
                    self.max_instances
                ),
            ));
        }
        Ok(())
    }

    /// Creates the pipe and its first instance.
    ///
    /// # Errors
    /// - [`ErrorKind::AlreadyExists`]: another server owns the name
    ///   (Windows: `FILE_FLAG_FIRST_PIPE_INSTANCE`; Unix: the name's lock).
    /// - [`ErrorKind::InvalidName`], [`ErrorKind::InvalidInput`]: bad name or options.
    /// - [`ErrorKind::PermissionDenied`]: the OS refused (e.g. an unsafe directory).
    pub fn create(&self, name: &str) -> Result<PipeListener> {
        self.validate(name)?;
        PipeListener::create_with(name, self)
    }
}

/// Which server a client accepts: see [`ConnectOptions::server_identity`].
///
/// # Examples
/// ```no_run
/// use named_ipc::pipe::{ConnectOptions, ServerIdentity};
///
/// // A server that admits every local user and runs as `root` (uid 0) on
/// // Unix, or as SYSTEM on Windows.
/// let server = if cfg!(windows) { "S-1-5-18" } else { "0" };
/// let stream = ConnectOptions::new()
///     .server_identity(ServerIdentity::User(server.parse()?))
///     .connect("jobs")?;
/// # Ok::<(), named_ipc::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ServerIdentity {
    /// The server must run as the user this process runs as (the default),
    /// which the owner-only default security of a server implies. A pipe
    /// that another user's program created first is refused.
    #[default]
    SameUser,
    /// Any server will do: for servers that admit other users
    /// ([`Security::LocalUsers`](crate::Security::LocalUsers)) and run as
    /// someone else, when you trust whoever holds the name.
    Any,
    /// The server must run as this user.
    User(UserId),
}

/// Options for connecting to a pipe, in the style of tokio's `ClientOptions`.
///
/// # Examples
/// ```no_run
/// use named_ipc::pipe::{ConnectOptions, PipeMode};
/// use std::time::Duration;
///
/// let stream = ConnectOptions::new()
///     .mode(PipeMode::Byte)
///     .timeout(Duration::from_secs(5))
///     .connect("jobs")?;
/// # Ok::<(), named_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) mode: PipeMode,
    pub(crate) access: Access,
    pub(crate) timeout: Option<Duration>,
    pub(crate) nonblocking: bool,
    pub(crate) max_message: u32,
    pub(crate) server_identity: ServerIdentity,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions::new()
    }
}

impl ConnectOptions {
    /// The defaults: message mode, read and write, no waiting for a pipe that
    /// does not exist, blocking, 16 MiB largest message, a server running as
    /// this user.
    pub fn new() -> ConnectOptions {
        ConnectOptions {
            mode: PipeMode::Message,
            access: Access::ReadWrite,
            timeout: None,
            nonblocking: false,
            max_message: DEFAULT_MAX_MESSAGE,
            server_identity: ServerIdentity::SameUser,
        }
    }

    /// Must match the server's mode. Windows checks it (`SetNamedPipeHandleState`
    /// fails on a byte pipe); on Unix a mismatch shows up as garbled data.
    pub fn mode(&mut self, mode: PipeMode) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Read, write or both (`GENERIC_READ` / `GENERIC_WRITE`).
    pub fn access(&mut self, access: Access) -> &mut Self {
        self.access = access;
        self
    }

    /// How long to wait for a pipe that does not exist yet or whose instances are
    /// all busy. Without it, a missing pipe fails at once and a busy one is waited
    /// for 50 ms at most, on every OS. (A Windows client never asks for the
    /// server's default wait, `NMPWAIT_USE_DEFAULT_WAIT`: the server chooses
    /// that, up to about 49 days.)
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Nonblocking stream: `recv` returns `WouldBlock` instead of waiting.
    pub fn nonblocking(&mut self, nonblocking: bool) -> &mut Self {
        self.nonblocking = nonblocking;
        self
    }

    /// Largest incoming message accepted (default 16 MiB).
    pub fn max_message_size(&mut self, max: u32) -> &mut Self {
        self.max_message = max;
        self
    }

    /// Which server to accept (default [`ServerIdentity::SameUser`]).
    ///
    /// Checked right after connecting, before anything is sent, from the OS's
    /// record of who the server is: on Unix the socket's peer credentials
    /// (`SO_PEERCRED`, `getpeereid`: the server's effective uid when it
    /// started listening); on Windows `GetNamedPipeServerProcessId`, then the
    /// user of that process's token. If the user found is not the one
    /// expected, or cannot be read (a Windows server whose process this user
    /// may not open, or a remote `\\server\pipe\NAME`), `connect` fails with
    /// [`ErrorKind::PermissionDenied`] and closes the connection.
    ///
    /// The default matters where names are shared between users: any user can
    /// create a Windows pipe name (or a socket in a directory open to all)
    /// before your server does, and its clients would then talk to that
    /// program.
    ///
    /// Windows goes by the server's process id: a server that exits just
    /// after the client connected could have its id reused by a new process
    /// before the check opens it. The connection is dead by then, so the
    /// client can send nothing to either.
    #[doc(alias = "GetNamedPipeServerProcessId")]
    #[doc(alias = "SO_PEERCRED")]
    #[doc(alias = "getpeereid")]
    pub fn server_identity(&mut self, identity: ServerIdentity) -> &mut Self {
        self.server_identity = identity;
        self
    }

    /// Connects.
    ///
    /// # Errors
    /// - [`ErrorKind::NotFound`]: no server by that name (within the timeout).
    /// - [`ErrorKind::Busy`]: every instance stayed busy until the timeout.
    /// - [`ErrorKind::PermissionDenied`]: the pipe's security refuses us, or
    ///   the server does not run as the user [`server_identity`] expects.
    /// - [`ErrorKind::InvalidName`]: bad name.
    ///
    /// [`server_identity`]: Self::server_identity
    pub fn connect(&self, name: &str) -> Result<PipeStream> {
        PipeStream::connect_with(name, self)
    }
}
