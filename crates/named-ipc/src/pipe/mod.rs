//! Named pipes: a server ([`PipeListener`]) creates a pipe by name, clients
//! ([`PipeStream::connect`]) open it, and both talk both ways.
//!
//! # Windows and Unix
//!
//! On Windows a pipe is a real named pipe, `\\.\pipe\NAME`, created with
//! `CreateNamedPipeW` and opened with `CreateFileW`, so programs that use the
//! Win32 API directly (C or C++ programs calling `CreateFile` on the same name)
//! interoperate with it.
//! Message mode is the native `PIPE_TYPE_MESSAGE`.
//!
//! On Linux and macOS a pipe is a `SOCK_STREAM` Unix domain socket at
//! `$XDG_RUNTIME_DIR/named-ipc/NAME` (or `/tmp/named-ipc-<uid>/NAME`). Message
//! mode sends each message as a u32 little-endian length and the payload, the same
//! bytes as [`Framed`], so a program in any language can take part (see
//! [`framing`]).
//!
//! What differs, and cannot be hidden:
//! - Windows pipe names are case-insensitive; socket paths are not.
//! - When every instance is busy, a Windows client waits in `connect`; a Unix
//!   client connects at once and waits in the listen backlog until accepted.
//! - A Windows client learns at `connect` that the server's mode or direction
//!   does not match; on Unix it shows up at the first `recv` or `send`.
//!
//! # Examples
//! Server and client in one program (normally they are two processes):
//! ```
//! use named_ipc::pipe::{PipeListener, PipeStream};
//! use std::time::Duration;
//!
//! let name = format!("doc-example-{}", std::process::id());
//! let listener = PipeListener::bind(&name)?;
//! let client = std::thread::spawn({
//!     let name = name.clone();
//!     move || -> std::io::Result<Vec<u8>> {
//!         let c = PipeStream::connect_timeout(&name, Duration::from_secs(5))?;
//!         c.send(b"ping")?;
//!         Ok(c.recv()?.unwrap_or_default())
//!     }
//! });
//! let conn = listener.accept()?;
//! assert_eq!(conn.recv()?.as_deref(), Some(&b"ping"[..]));
//! conn.send(b"pong")?;
//! assert_eq!(client.join().unwrap()?, b"pong");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod framing;
mod listener;
mod options;
pub(crate) mod stream;

pub use framing::{FrameDecoder, Framed, Received};
pub use listener::{Incoming, PipeListener};
pub use options::{
    Access, ConnectOptions, Direction, ListenerOptions, PipeMode, ServerIdentity,
    UNLIMITED_INSTANCES,
};
#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use stream::Timing;
#[cfg(feature = "tokio")]
pub(crate) use stream::{check_server, connect_error};
pub use stream::{PipeStream, UserId};

use std::io;

/// A pipe found by [`list`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeEntry {
    /// The name to pass to [`PipeStream::connect`].
    pub name: String,
    /// The OS-level name: `\\.\pipe\NAME` or the socket path.
    pub os_name: String,
    /// The server's process id, when known (Unix: recorded by named-ipc servers).
    pub server_pid: Option<u32>,
    /// Whether a server is listening: `Some(false)` for a leftover socket of a
    /// server that died (the next server reclaims it), `None` when unknown.
    pub alive: Option<bool>,
}

/// Lists pipes: on Unix, the sockets in the per-user directory; on Windows, every
/// pipe under `\\.\pipe\` (including other programs' pipes).
///
/// # Errors
/// The OS error of reading the directory.
pub fn list() -> io::Result<Vec<PipeEntry>> {
    crate::sys::pipe::list()
}
