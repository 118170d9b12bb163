//! Async pipes and the async shared-memory channel on the [tokio] runtime
//! (cargo feature `tokio`).
//!
//! [`PipeListener`] and [`PipeStream`] are the async twins of
//! [`pipe::PipeListener`](crate::pipe::PipeListener) and
//! [`pipe::PipeStream`](crate::pipe::PipeStream): the same names, the same
//! [`ListenerOptions`] and [`ConnectOptions`], the same errors, and the same
//! OS objects and wire — a blocking peer and an async peer talk to each other,
//! in either role. [`ShmListener`] and [`ShmStream`] are the same for the
//! shared-memory channel ([`channel`](crate::channel)): see [the
//! shared-memory channel](#the-shared-memory-channel) below.
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
//! Everything here runs on a runtime with both the I/O and the time drivers
//! (`tokio::runtime::Builder::enable_all`, which `#[tokio::main]` turns on):
//! connecting waits on the timer, and a sleeping channel end looks again
//! every 50 ms.
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
//!   `UnexpectedEof` rather than delivering a cut message (on Windows a
//!   cancelled write the peer has not started reading is withdrawn whole,
//!   and the peer's receive then reports the end of the stream, as if the
//!   message had never been sent). This is the one place a drop can block
//!   the thread it runs on.
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
//! ```text
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
//! # The shared-memory channel
//!
//! [`ShmListener`] and [`ShmStream`] are the async twins of
//! [`channel::ShmListener`](crate::channel::ShmListener) and
//! [`channel::ShmStream`](crate::channel::ShmStream): the same
//! [`ChannelOptions`], rings, records and handshake, so a blocking end and an
//! async end talk to each other in either role.
//!
//! - [`ShmStream::send`], [`recv`](ShmStream::recv),
//!   [`recv_into`](ShmStream::recv_into), [`try_send`](ShmStream::try_send),
//!   [`try_recv`](ShmStream::try_recv), [`flush`](ShmStream::flush), all
//!   `&self`; [`into_split`](ShmStream::into_split) gives a [`ShmSender`] and
//!   a [`ShmReceiver`] that take no lock.
//! - Zero copy: [`reserve`](ShmStream::reserve) waits for room and returns
//!   a [`Permit`] to fill in place and [`commit`](Permit::commit) (dropped
//!   uncommitted, it sends nothing); [`recv_in_place`](ShmStream::recv_in_place)
//!   returns a [`RecvGuard`] whose view reads the message in the ring, and
//!   which releases it when dropped. Both views copy ([`InPlaceMut`],
//!   [`InPlace`]): no safe code gets a `&[u8]` into memory the peer can
//!   write.
//! - Waiting spins for [`ChannelOptions::spin`] (0 allowed) on the polling
//!   thread, then the task sleeps on something the runtime watches, so no
//!   runtime thread waits: on Unix a wake-up descriptor of its own per bell
//!   (an eventfd on Linux, a socket pair elsewhere) that it handed the peer
//!   in the handshake, on Windows the channel's events through thread-pool
//!   waits (`RegisterWaitForSingleObject`, the pipe driver's mechanism). The
//!   peer signals it only after the sleeper raised the bell's waiting flag,
//!   so a busy channel makes no system call; a blocking peer and an async
//!   one each wake the other the way the other sleeps (futex or descriptor).
//! - A dead peer (`SIGKILL`, `TerminateProcess`) wakes a sleeping task at
//!   once (Unix: the rendezvous socket hangs up; Windows: the peer's process
//!   handle is signalled): its call fails with `BrokenPipe` ("peer gone").
//! - Connecting and accepting: the rendezvous pipe is an async pipe; each
//!   handshake (a few messages, at most 10 s) runs on tokio's blocking pool,
//!   at most 64 at once per listener.
//!
//! The cancellation contract above holds here word for word: `recv`,
//! `recv_into`, `recv_in_place` and `accept` are cancellation-safe (a
//! receive that took part of a message of several records keeps it for the
//! next call); `send` is all or nothing — a message whose first records are
//! in the ring when its future is dropped keeps its rest in the stream's
//! sending state (the blocking channel's partial-message machinery), which
//! the next `send`, `reserve`, `try_send` or `flush` completes before
//! anything else, and the stream's (or sender's) drop completes within the
//! grace period (one second) on a task, or else closes the sending side so
//! the peer's receive fails with `UnexpectedEof`; a `reserve` dropped, or a
//! permit dropped uncommitted, sends nothing; dropping anything leaks no
//! descriptor, handle or thread (a handshake under way at a listener's drop
//! finishes on its blocking thread, at most 10 s, and its channel is
//! dropped).
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
