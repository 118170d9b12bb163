//! Async pipes on the [tokio] runtime (cargo feature `tokio`).
//!
//! [`PipeListener`] and [`PipeStream`] are the async twins of
//! [`pipe::PipeListener`](crate::pipe::PipeListener) and
//! [`pipe::PipeStream`](crate::pipe::PipeStream): the same names, the same
//! [`ListenerOptions`] and [`ConnectOptions`], the same errors, and the same
//! OS objects and wire — a blocking peer and an async peer talk to each other,
//! in either role.
//!
//! - Message mode: [`PipeStream::send`], [`PipeStream::recv`],
//!   [`PipeStream::recv_into`]; [`Messages`] turns a stream (or a half) into a
//!   `futures` `Stream<Item = io::Result<Bytes>>` and `Sink<Bytes>`.
//! - Byte mode (and message mode, as the blocking stream's `Read`/`Write` do):
//!   [`tokio::io::AsyncRead`] and
//!   [`AsyncWrite`](::tokio::io::AsyncWrite). `poll_flush` pushes out
//!   whatever the stream still holds; `poll_shutdown` half-closes on Unix.
//! - [`PipeStream::into_split`] gives an [`OwnedReadHalf`] and an
//!   [`OwnedWriteHalf`] that can move to different tasks.
//!
//! # Cancellation
//!
//! Every future here may be dropped at any await point (`tokio::select!`,
//! `tokio::time::timeout`, an aborted task) without losing or corrupting
//! anything:
//!
//! - **`recv`, `recv_into`, `accept` are cancellation-safe.** Dropping the
//!   future before it completes loses no byte: the part of a message that
//!   already arrived stays in the stream, and the next call returns the whole
//!   next message. A client that connected while an `accept` was dropped is
//!   returned by the next `accept` (Windows: the instance it connected to,
//!   with the next one already listening).
//! - **`send` is all or nothing.** Dropped before the first byte of its
//!   message left, it sent nothing. Dropped after, the message is not given
//!   up half-way: the stream keeps what is left (Unix: an owned copy of the
//!   unsent rest of the frame; Windows: the write operation, which owns its
//!   copy of the message, stays in flight) and completes it before anything
//!   else goes out — at the next `send`, at `flush`, or when the stream is
//!   dropped. The peer receives every message whole, exactly once, in order;
//!   the stream stays usable. `Ok` means the whole message was handed to the
//!   OS, as for the blocking API.
//! - **Dropping a stream, a half or a listener** in any state leaks no
//!   descriptor, handle or thread, and frees no memory the kernel may still
//!   write: Windows operations own their buffers and `OVERLAPPED`, and a drop
//!   cancels them (`CancelIoEx`) and waits for their completion before
//!   freeing them. A message still going out at the drop (see `send`) gets
//!   up to one second to finish, as a blocking
//!   send stuck part-way does; if the peer reads nothing in that time, the
//!   sending side is closed and the peer's receive fails with
//!   `UnexpectedEof` rather than delivering a cut message. This is the one
//!   place a drop can block the thread it runs on.
//!
//! `AsyncWrite::poll_write` in message mode sends its buffer as one message;
//! once part of it has left it reports the whole buffer written, the rest
//! being the stream's to finish, which `poll_flush` waits for.
//!
//! # Unix
//!
//! The socket paths, lock files, permissions, listener setup and socket
//! options are those of the blocking API (the same code binds and connects),
//! registered with tokio's reactor; the framing, resumable receive and
//! partial-send state are the same state machines. The message wire is
//! exactly what [`tokio_util::codec::LengthDelimitedCodec`] produces and
//! reads when configured for a little-endian `u32` length that counts the
//! payload only:
//!
//! ```ignore
//! LengthDelimitedCodec::builder()
//!     .little_endian()
//!     .length_field_type::<u32>()
//!     .max_frame_length(16 << 20)
//!     .new_codec()
//! ```
//!
//! so a `Framed<UnixStream, LengthDelimitedCodec>` on the pipe's socket path
//! (`PipeListener::os_name`) talks to a named-ipc pipe.
//!
//! # Windows
//!
//! Native overlapped I/O on the pipe handles, not tokio's `named_pipe`
//! module (whose writes report success before the data leaves, and whose
//! reads do not keep message boundaries): each read, write and
//! `ConnectNamedPipe` is an operation that owns its buffer and `OVERLAPPED`;
//! its completion event wakes the task through a thread-pool wait
//! (`RegisterWaitForSingleObject`). Message mode reads a whole message
//! whatever its size (`ERROR_MORE_DATA`, then the rest), up to the
//! receiver's limit. The listener keeps one instance listening at all times,
//! so clients never see "not found" between two `accept`s. `connect` waits
//! for a missing pipe on the tokio timer (backoff up to 50 ms) and for a busy
//! one in `WaitNamedPipeW` on tokio's blocking pool, in slices of at most
//! 50 ms, never on a runtime thread. `poll_shutdown` flushes but cannot
//! half-close a Windows pipe.
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use named_ipc::tokio::{PipeListener, PipeStream};
//! use std::time::Duration;
//!
//! let name = format!("doc-async-{}", std::process::id());
//! let listener = PipeListener::bind(&name)?;
//! let server = tokio::spawn(async move {
//!     let conn = listener.accept().await?;
//!     while let Some(msg) = conn.recv().await? {
//!         conn.send(&msg).await?;
//!     }
//!     std::io::Result::Ok(())
//! });
//! let conn = PipeStream::connect_timeout(&name, Duration::from_secs(5)).await?;
//! conn.send(b"ping").await?;
//! assert_eq!(conn.recv().await?.as_deref(), Some(&b"ping"[..]));
//! drop(conn);
//! server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! [tokio]: https://docs.rs/tokio
//! [`tokio_util::codec::LengthDelimitedCodec`]: https://docs.rs/tokio-util/latest/tokio_util/codec/length_delimited/index.html

mod channel;
mod channel_listener;
mod listener;
mod messages;
mod stream;

pub use channel::{Permit, RecvGuard, ShmReceiver, ShmSender, ShmStream};
pub use channel_listener::ShmListener;
pub use listener::PipeListener;
pub use messages::{MessageIo, MessageRecv, MessageSend, Messages};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, PipeStream};

pub use crate::channel::{ChannelOptions, InPlace, InPlaceMut};

pub use crate::pipe::{
    Access, ConnectOptions, Direction, ListenerOptions, PipeMode, ServerIdentity, UserId,
};
