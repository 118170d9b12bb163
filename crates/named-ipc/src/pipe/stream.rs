//! One connected end of a pipe.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::pipe::framing::Received;
use crate::pipe::listener::SlotGuard;
use crate::pipe::{Access, ConnectOptions, Direction, PipeMode, ServerIdentity};
use crate::sys::{self, Wait};

/// A user, as the OS identifies it: a uid on Unix, a SID on Windows.
///
/// Compare [`PipeStream::peer_user`] with [`UserId::current`] to check that the
/// peer runs as you.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub(crate) sys::UserRepr);

impl UserId {
    /// The user this process runs as (effective uid; token user on Windows).
    ///
    /// # Errors
    /// Windows: the OS error of reading the process token.
    pub fn current() -> io::Result<UserId> {
        sys::UserRepr::current().map(UserId)
    }
}

impl std::str::FromStr for UserId {
    type Err = Error;

    /// Unix: a uid, `1000` or `uid 1000` (as [`Display`](fmt::Display) writes
    /// it). Windows: a SID, `S-1-5-21-…`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for anything else.
    fn from_str(s: &str) -> Result<UserId> {
        sys::UserRepr::parse(s).map(UserId).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                s,
                format!("{s:?} is not a user: {e}"),
            )
            .with_source(e)
        })
    }
}

impl fmt::Display for UserId {
    /// `uid 1000` on Unix, `S-1-5-21-…` on Windows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({self})")
    }
}

/// Timeouts and blocking mode, changeable through `&self`.
pub(crate) struct Timing {
    /// Nanoseconds; `u64::MAX` means none.
    read: AtomicU64,
    write: AtomicU64,
    nonblocking: AtomicBool,
}

const NO_TIMEOUT: u64 = u64::MAX;

impl Timing {
    pub(crate) fn new(nonblocking: bool) -> Timing {
        Timing {
            read: AtomicU64::new(NO_TIMEOUT),
            write: AtomicU64::new(NO_TIMEOUT),
            nonblocking: AtomicBool::new(nonblocking),
        }
    }

    pub(crate) fn read_wait(&self) -> Wait {
        self.wait(&self.read)
    }

    pub(crate) fn write_wait(&self) -> Wait {
        self.wait(&self.write)
    }

    pub(crate) fn set_read(&self, d: Option<Duration>) -> io::Result<()> {
        Timing::set(&self.read, d)
    }

    pub(crate) fn set_write(&self, d: Option<Duration>) -> io::Result<()> {
        Timing::set(&self.write, d)
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        Timing::get(&self.read)
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        Timing::get(&self.write)
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    fn wait(&self, slot: &AtomicU64) -> Wait {
        if self.nonblocking.load(Ordering::Relaxed) {
            return Wait::Never;
        }
        match slot.load(Ordering::Relaxed) {
            NO_TIMEOUT => Wait::Block,
            // The clock starts only if the call has to wait.
            ns => Wait::After(Duration::from_nanos(ns)),
        }
    }

    fn get(slot: &AtomicU64) -> Option<Duration> {
        match slot.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    fn set(slot: &AtomicU64, d: Option<Duration>) -> io::Result<()> {
        let ns = match d {
            None => NO_TIMEOUT,
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a zero timeout is not allowed; use set_nonblocking(true) to never wait",
                ))
            }
            Some(d) => u64::try_from(d.as_nanos())
                .unwrap_or(NO_TIMEOUT - 1)
                .min(NO_TIMEOUT - 1),
        };
        slot.store(ns, Ordering::Relaxed);
        Ok(())
    }
}

/// A connected pipe: what [`PipeStream::connect`] and
/// [`PipeListener::accept`](crate::pipe::PipeListener::accept) return.
///
/// Every method takes `&self`, so one stream can be shared between a reading and
/// a writing thread (`Arc<PipeStream>`, or `&PipeStream` as `Read`/`Write`).
/// Concurrent `send`s never interleave their bytes.
///
/// - Message mode: [`send`](Self::send), [`recv`](Self::recv),
///   [`recv_into`](Self::recv_into), [`recv_slice`](Self::recv_slice) keep message
///   boundaries; `Write::write` sends its buffer as one message and `Read::read`
///   returns message bytes without boundaries.
/// - Byte mode: `Read` and `Write` only (wrap in
///   [`Framed`](crate::pipe::Framed) for size-prefixed messages).
///
/// Dropping the stream closes it; data already sent stays readable by the peer,
/// which then sees the end of the stream.
pub struct PipeStream {
    inner: sys::pipe::Stream,
    name: Arc<str>,
    mode: PipeMode,
    can_read: bool,
    can_write: bool,
    timing: Timing,
    /// Released after `inner` is closed (field order), so a listener waiting for
    /// a free instance finds one.
    _slot: Option<SlotGuard>,
}

impl fmt::Debug for PipeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeStream")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PipeStream {
    /// Connects to the pipe `name` in message mode, read and write. Fails at once
    /// if no server has created it; see [`ConnectOptions`] for every option.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`].
    pub fn connect(name: &str) -> Result<PipeStream> {
        ConnectOptions::new().connect(name)
    }

    /// Connects, waiting up to `timeout` for the server to appear or for a busy
    /// instance to free up. Waiting sleeps (Windows: `WaitNamedPipeW`), it does
    /// not spin.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`]; [`ErrorKind::NotFound`] or
    /// [`ErrorKind::Busy`] once `timeout` has passed.
    pub fn connect_timeout(name: &str, timeout: Duration) -> Result<PipeStream> {
        ConnectOptions::new().timeout(timeout).connect(name)
    }

    pub(crate) fn connect_with(name: &str, opts: &ConnectOptions) -> Result<PipeStream> {
        let addr = sys::pipe::resolve(name)?;
        let wait = match opts.timeout {
            None => Wait::Never,
            Some(d) => Wait::timeout(Some(d)),
        };
        let inner = sys::pipe::Stream::connect(&addr, opts, name, wait)
            .map_err(|e| connect_error(name, &addr.display(), opts, e))?;
        check_server(
            || inner.peer_user(),
            &opts.server_identity,
            name,
            &addr.display(),
        )?;
        let (can_read, can_write) = match opts.access {
            Access::ReadWrite => (true, true),
            Access::Read => (true, false),
            Access::Write => (false, true),
        };
        Ok(PipeStream {
            inner,
            name: name.into(),
            mode: opts.mode,
            can_read,
            can_write,
            timing: Timing::new(opts.nonblocking),
            _slot: None,
        })
    }

    pub(crate) fn accepted(
        inner: sys::pipe::Stream,
        name: Arc<str>,
        mode: PipeMode,
        direction: Direction,
        nonblocking: bool,
        slot: SlotGuard,
    ) -> PipeStream {
        let (can_read, can_write) = match direction {
            Direction::Duplex => (true, true),
            Direction::Inbound => (true, false),
            Direction::Outbound => (false, true),
        };
        PipeStream {
            inner,
            name,
            mode,
            can_read,
            can_write,
            timing: Timing::new(nonblocking),
            _slot: Some(slot),
        }
    }

    /// A blocking stream of an async one's OS stream (the async channel
    /// runs its handshake on a blocking thread).
    #[cfg(feature = "tokio")]
    pub(crate) fn from_sys(
        inner: sys::pipe::Stream,
        name: Arc<str>,
        mode: PipeMode,
        can_read: bool,
        can_write: bool,
    ) -> PipeStream {
        PipeStream {
            inner,
            name,
            mode,
            can_read,
            can_write,
            timing: Timing::new(false),
            _slot: None,
        }
    }

    /// The OS stream (for the shared-memory channel's handshake).
    pub(crate) fn sys(&self) -> &sys::pipe::Stream {
        &self.inner
    }

    /// The name this stream was connected or created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Message or byte mode.
    pub fn mode(&self) -> PipeMode {
        self.mode
    }

    fn need_message_mode(&self, op: &str) -> io::Result<()> {
        need_message_mode(
            &self.name,
            self.mode,
            op,
            "Read/Write, or wrap the stream in named_ipc::pipe::Framed",
        )
    }

    fn need_read(&self) -> io::Result<()> {
        need_direction(&self.name, self.can_read, "send-only")
    }

    fn need_write(&self) -> io::Result<()> {
        need_direction(&self.name, self.can_write, "receive-only")
    }

    /// Sends `msg` as one message (0 bytes to 4 GiB − 1).
    ///
    /// `Ok` means the whole message was handed to the OS. After `WouldBlock`
    /// or `TimedOut` nothing was sent — unless the error says the sending side
    /// is closed: a message stuck part-way for longer than the write timeout
    /// plus a second closes it, so the peer never takes a cut message for a
    /// whole one (see the README's "What `Ok` means").
    ///
    /// # Errors
    /// `BrokenPipe` when the peer has gone; `WouldBlock`/`TimedOut` in
    /// nonblocking mode or after the write timeout; `InvalidInput` in byte mode.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.need_message_mode("send")?;
        self.need_write()?;
        self.inner.send_msg(msg, self.timing.write_wait())
    }

    /// Receives one whole message. `Ok(None)` means the peer closed the pipe
    /// cleanly (at a message boundary).
    ///
    /// # Errors
    /// `InvalidData` for a message over the size limit, `UnexpectedEof` if the
    /// peer vanished mid-message (both permanent for this stream), `WouldBlock`
    /// or `TimedOut` (retry: nothing is lost), `InvalidInput` in byte mode.
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv_into(&mut v)?.map(|_| v))
    }

    /// Like [`recv`](Self::recv), but fills `buf` (replacing its contents, reusing
    /// its allocation) and returns the message length.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.need_message_mode("recv_into")?;
        self.need_read()?;
        self.inner.recv_msg(buf, self.timing.read_wait())
    }

    /// Reads as much of the next message as fits into `buf`. If it does not fit,
    /// [`Received::remaining`] says how much is left and the next `recv_slice` or
    /// `recv` continues with it (Windows' `ERROR_MORE_DATA`, on every OS).
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_slice(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.need_message_mode("recv_slice")?;
        self.need_read()?;
        self.inner.recv_msg_slice(buf, self.timing.read_wait())
    }

    /// Sets how long `recv`/`read` may wait (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_read(timeout)?;
        self.inner.set_read_timeout(timeout)
    }

    /// Sets how long `send`/`write` may wait (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_write(timeout)?;
        self.inner.set_write_timeout(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.timing.read_timeout()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.timing.write_timeout()
    }

    /// In nonblocking mode every call that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing
            .nonblocking
            .store(nonblocking, Ordering::Relaxed);
    }

    /// Whether the stream is nonblocking.
    pub fn is_nonblocking(&self) -> bool {
        self.timing.is_nonblocking()
    }

    /// The pipe's type as the OS reports it: how the OS carries writes on
    /// this pipe, whatever this end's [`mode`](Self::mode).
    ///
    /// - Windows (`GetNamedPipeInfo`): [`PipeMode::Message`] for a pipe its
    ///   server created with `PIPE_TYPE_MESSAGE`, where every write is one
    ///   message, also from a client that reads in byte mode;
    ///   [`PipeMode::Byte`] for `PIPE_TYPE_BYTE`.
    /// - Unix: always [`PipeMode::Byte`]: a stream socket (message mode frames
    ///   the bytes).
    ///
    /// For talking to programs that read a message in several `ReadFile`s;
    /// see [`Framed::set_split_writes`](crate::pipe::Framed::set_split_writes).
    ///
    /// # Errors
    /// OS errors.
    #[doc(alias = "GetNamedPipeInfo")]
    pub fn pipe_type(&self) -> io::Result<PipeMode> {
        self.inner.pipe_type()
    }

    /// The peer's process id (`SO_PEERCRED`, `LOCAL_PEERPID`,
    /// `GetNamedPipeClientProcessId`/`GetNamedPipeServerProcessId`).
    ///
    /// # Errors
    /// `Unsupported` where the OS cannot tell; other OS errors.
    #[doc(alias = "GetNamedPipeClientProcessId")]
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_pid(&self) -> io::Result<u32> {
        self.inner.peer_pid()
    }

    /// The user the peer runs as.
    ///
    /// On Windows a server reads its client's user by impersonating it for
    /// the duration of one `OpenThreadToken` (clients grant only the
    /// identification level). Should `RevertToSelf` then fail, the process
    /// aborts, as Microsoft advises: the thread would otherwise go on running
    /// as the client.
    ///
    /// # Errors
    /// OS errors; on Windows also when the peer's token cannot be read, and
    /// for a client of a remote `\\server\pipe\NAME`, whose server's user
    /// cannot be read from this machine.
    pub fn peer_user(&self) -> io::Result<UserId> {
        self.inner.peer_user().map(UserId)
    }

    /// Waits until everything sent has been handed to the OS, then closes this
    /// end. On a Windows server this is `FlushFileBuffers` (which waits until the
    /// client has read everything) and `DisconnectNamedPipe`. Dropping the stream
    /// without this also delivers what was sent, without waiting.
    ///
    /// # Errors
    /// OS errors of flushing.
    pub fn disconnect(self) -> io::Result<()> {
        self.inner.disconnect()
    }
}

/// The error of a failed connect: its kind, the pipe, and what to do.
pub(crate) fn connect_error(name: &str, shown: &str, opts: &ConnectOptions, e: io::Error) -> Error {
    let what = format!("cannot connect to pipe {name:?} ({shown})");
    let waited = opts
        .timeout
        .map(|d| format!(" within {d:?}"))
        .unwrap_or_default();
    let kind = if e.kind() == io::ErrorKind::WouldBlock {
        ErrorKind::Busy
    } else {
        ErrorKind::of_io(&e)
    };
    let hint = match kind {
        ErrorKind::NotFound => format!(
            "no server is listening{waited}; start the server first{}",
            if opts.timeout.is_none() {
                " or pass a connect timeout"
            } else {
                ""
            }
        ),
        ErrorKind::Busy | ErrorKind::TimedOut => {
            format!("every instance stayed busy{waited}; retry later or raise the timeout")
        }
        ErrorKind::PermissionDenied => {
            "the pipe's security does not admit this user or this access".to_owned()
        }
        ErrorKind::InvalidInput => {
            "the server's mode or direction does not match the options".to_owned()
        }
        _ => String::new(),
    };
    let msg = if hint.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {hint} ({e})")
    };
    Error::new(kind, name, msg).with_source(e)
}

/// Fails with `PermissionDenied` unless the server, whose user `peer_user`
/// reads, runs as `expected` says.
pub(crate) fn check_server(
    peer_user: impl FnOnce() -> io::Result<sys::UserRepr>,
    expected: &ServerIdentity,
    name: &str,
    shown: &str,
) -> Result<()> {
    let what = format!("cannot connect to pipe {name:?} ({shown})");
    let (want, whom) = match expected {
        ServerIdentity::Any => return Ok(()),
        ServerIdentity::SameUser => {
            let me = UserId::current().map_err(|e| {
                Error::from_io(
                    e,
                    name,
                    &what,
                    "cannot read which user this process runs as",
                )
            })?;
            let whom = format!("you ({me})");
            (me, whom)
        }
        ServerIdentity::User(u) => (u.clone(), u.to_string()),
    };
    let found = peer_user().map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // The server left before we could read its user.
            return Error::from_io(e, name, &what, "");
        }
        Error::new(
            ErrorKind::PermissionDenied,
            name,
            format!(
                "{what}: cannot tell which user runs its server ({e}), so it may not be the \
                 server you expect; if any server will do, connect with ServerIdentity::Any"
            ),
        )
        .with_source(e)
    })?;
    if found == want.0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::PermissionDenied,
        name,
        format!(
            "{what}: its server runs as {found}, not as {whom}; another user's program may \
             have created the pipe first. Stop that program and restart your server, or, if \
             that server is the one you want, connect with ServerIdentity::User or \
             ServerIdentity::Any"
        ),
    ))
}

impl Read for &PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.need_read()?;
        self.inner.read(buf, self.timing.read_wait())
    }
}

impl Write for &PipeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.need_write()?;
        self.inner.write(buf, self.timing.write_wait())
    }

    /// Byte mode: one gathering write (what [`Framed`](crate::pipe::Framed)
    /// uses to send a size and its payload together). Message mode: the
    /// buffers together as one message.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.need_write()?;
        self.inner.write_vectored(bufs, self.timing.write_wait())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush(self.timing.write_wait())
    }
}

impl Read for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for PipeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

/// Refuses `op` (a message call) on a byte-mode pipe; `instead` says what to
/// use. Shared by the blocking and the async stream.
pub(crate) fn need_message_mode(
    name: &str,
    mode: PipeMode,
    op: &str,
    instead: &str,
) -> io::Result<()> {
    if mode == PipeMode::Message {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "pipe {name:?} is in byte mode, so {op} cannot keep message boundaries; use {instead}"
        ),
    ))
}

/// Refuses a direction this end does not have (`which`: "send-only" for a
/// receive, "receive-only" for a send). Shared by the blocking and the async
/// stream.
pub(crate) fn need_direction(name: &str, allowed: bool, which: &str) -> io::Result<()> {
    if allowed {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("pipe {name:?} is {which} on this end"),
    ))
}
