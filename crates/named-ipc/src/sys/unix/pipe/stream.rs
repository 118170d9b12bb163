//! One connected end: framed messages or bytes over the socket, and the
//! descriptor-carrying handshake message of the shared-memory channel.
//!
//! Message mode sends each message as a u32 little-endian length and the payload
//! (see [`framing`](crate::pipe::framing)).

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::sockopt::Timeout;
use rustix::net::Shutdown;

use rustix::net::SocketAddrUnix;

use super::socket::{
    poll_fd, recv_exact, recv_iov, recv_raw, send_raw, set_nonblocking, sockaddr, unix_socket,
    Addr, Deadline,
};
use super::{ancillary, credentials};
use crate::pipe::framing::{encode_header, Received, HEADER_LEN};
use crate::pipe::{Access, ConnectOptions, PipeMode};
use crate::proto::frame::{Decoder, Source, Targets};
use crate::proto::send::{Outgoing, SendState, Sink};
use crate::sys::unix::UserRepr;
use crate::sys::{Backoff, Wait};

/// Frames up to this size (header included) are copied into one buffer and
/// sent with a single `send`; larger ones go as header + payload without
/// copying (`sendmsg`).
const SMALL_FRAME: usize = 1024;

/// One connected end. The framing state machines (receive: [`Decoder`];
/// send: [`SendState`]) are the shared sans-I/O core; this file only moves
/// bytes for them. The blocking API calls it with a [`Wait`]; the tokio
/// driver (`async_io`) with [`Wait::Never`] when the reactor says the socket
/// is ready — the same sources, sinks and state, one implementation.
pub(crate) struct Stream {
    fd: OwnedFd,
    mode: PipeMode,
    rx: Mutex<Decoder>,
    tx: Mutex<SendState>,
    /// The socket's `SO_RCVTIMEO` / `SO_SNDTIMEO` in nanoseconds (0: none),
    /// kept equal to the stream's read / write timeout so that a receive or
    /// send with that timeout is one blocking system call.
    recv_timeout: AtomicU64,
    send_timeout: AtomicU64,
}

fn load_timeout(slot: &AtomicU64) -> Option<Duration> {
    match slot.load(Ordering::Relaxed) {
        0 => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

/// The socket as a frame [`Source`]: one scatter read puts the missing
/// header bytes, then the payload straight into the caller's buffer, then
/// whatever follows into the read-ahead buffer.
struct FdSource<'a> {
    fd: BorrowedFd<'a>,
    dl: Deadline,
}

fn iovec(p: *mut u8, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: p.cast(),
        iov_len: len,
    }
}

impl Source for FdSource<'_> {
    fn read_targets(&mut self, t: &mut Targets<'_>) -> io::Result<usize> {
        let head = t.head.len();
        let spare = t.direct.spare_capacity_mut();
        let direct = spare.len().min(t.direct_max);
        let mut iov = [
            iovec(t.head.as_mut_ptr(), head),
            iovec(spare.as_mut_ptr().cast(), direct),
            iovec(t.ahead.as_mut_ptr(), t.ahead.len()),
        ];
        // SAFETY: the iovecs describe `t.head`, the first `direct` bytes of
        // `t.direct`'s spare capacity and `t.ahead`, all writable and borrowed
        // for this call.
        let n = unsafe { recv_iov(self.fd, &mut iov, &mut self.dl) }?;
        let got = n.saturating_sub(head).min(direct);
        // SAFETY: the kernel filled the iovecs in order, so `got` bytes of the
        // spare capacity right after the initialised part are initialised.
        unsafe { t.direct.set_len(t.direct.len() + got) };
        Ok(n)
    }

    fn read_slice(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_raw(self.fd, buf, &mut self.dl)
    }
}

/// The socket as a frame [`Sink`]: small frames as one contiguous `send`,
/// large ones gathered (`sendmsg`) without copying the payload.
struct FdSink<'a> {
    fd: BorrowedFd<'a>,
    /// The socket's own send timeout.
    kernel: Option<Duration>,
}

impl Sink for FdSink<'_> {
    fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
        let mut dl = Deadline {
            wait: *wait,
            kernel: self.kernel,
        };
        let [a, b] = out.rest();
        let r = if a.len() + b.len() <= SMALL_FRAME {
            let mut small = [MaybeUninit::<u8>::uninit(); SMALL_FRAME];
            let n = a.len() + b.len();
            // SAFETY: `a` then `b` fill the first `n` bytes of `small`
            // (n <= SMALL_FRAME), which are then read as initialised bytes;
            // the copies cannot overlap (stack array vs the caller's slices).
            let frame = unsafe {
                let p = small.as_mut_ptr().cast::<u8>();
                std::ptr::copy_nonoverlapping(a.as_ptr(), p, a.len());
                std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(a.len()), b.len());
                std::slice::from_raw_parts(p, n)
            };
            send_raw(self.fd, &[IoSlice::new(frame)], &mut dl)
        } else {
            let bufs = [IoSlice::new(a), IoSlice::new(b)];
            send_raw(
                self.fd,
                if a.is_empty() { &bufs[1..] } else { &bufs },
                &mut dl,
            )
        };
        *wait = dl.wait;
        r
    }

    fn abort(&mut self) {
        // The peer reads the end of the stream inside the frame: an error
        // there, never the cut frame as a whole message.
        let _ = rustix::net::shutdown(self.fd, Shutdown::Write);
    }
}

use crate::lock;

/// One connection attempt, without waiting.
pub(crate) enum Dial {
    Connected(OwnedFd),
    /// Completes when the socket turns writable (then see [`connected`]).
    InProgress(OwnedFd),
    /// The server exists but its backlog is full.
    Busy,
    /// No server (yet): no socket file, or nobody listening on it.
    Missing(io::Error),
}

/// Starts a connection to `sa` on a new nonblocking socket.
pub(crate) fn dial(sa: &SocketAddrUnix) -> io::Result<Dial> {
    loop {
        let fd = unix_socket(true)?;
        let err = match rustix::net::connect(&fd, sa) {
            Ok(()) => return Ok(Dial::Connected(fd)),
            Err(e) => e,
        };
        return Ok(match err {
            Errno::INTR => continue,
            Errno::INPROGRESS => Dial::InProgress(fd),
            Errno::AGAIN => Dial::Busy,
            Errno::NOENT | Errno::CONNREFUSED => Dial::Missing(err.into()),
            _ => return Err(err.into()),
        });
    }
}

/// The outcome of a connect that was in progress, once the socket is
/// writable.
pub(crate) fn connected(fd: OwnedFd) -> io::Result<OwnedFd> {
    match rustix::net::sockopt::socket_error(&fd)? {
        Ok(()) => Ok(fd),
        Err(so) => Err(so.into()),
    }
}

/// How long a full backlog is waited for: the connect's own wait, or with
/// none the Windows default 50 ms.
pub(crate) fn busy_wait(wait: Wait) -> Wait {
    match wait {
        Wait::Never => Wait::timeout(Some(std::time::Duration::from_millis(50))),
        w => w,
    }
}

pub(crate) fn busy_error(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("every instance of pipe {name:?} is busy"),
    )
}

impl Stream {
    pub(super) fn new(fd: OwnedFd, mode: PipeMode, max_message: u32, label: String) -> Stream {
        Stream {
            fd,
            mode,
            rx: Mutex::new(Decoder::new(label.clone(), max_message)),
            tx: Mutex::new(SendState::new(label)),
            recv_timeout: AtomicU64::new(0),
            send_timeout: AtomicU64::new(0),
        }
    }

    pub(crate) fn connect(
        addr: &Addr,
        opts: &ConnectOptions,
        name: &str,
        wait: Wait,
    ) -> io::Result<Stream> {
        let sa = sockaddr(&addr.path)?;
        let mut backoff = Backoff::new();
        let busy_wait = busy_wait(wait);
        let fd = loop {
            match dial(&sa)? {
                Dial::Connected(fd) => break fd,
                Dial::InProgress(fd) => {
                    poll_fd(fd.as_fd(), PollFlags::OUT, busy_wait)?;
                    break connected(fd)?;
                }
                Dial::Busy => {
                    if !backoff.sleep(busy_wait) {
                        return Err(busy_error(name));
                    }
                }
                Dial::Missing(e) => {
                    if !backoff.sleep(wait) {
                        return Err(e);
                    }
                }
            }
        };
        Ok(Stream::connected(fd, opts, name))
    }

    /// The stream of a socket whose connect succeeded, set up per `opts`.
    pub(crate) fn connected(fd: OwnedFd, opts: &ConnectOptions, name: &str) -> Stream {
        // Blocking, as accepted sockets are: every call says how it waits
        // (MSG_DONTWAIT for the nonblocking and async paths).
        let _ = set_nonblocking(fd.as_fd(), false);
        match opts.access {
            Access::ReadWrite => {}
            Access::Read => {
                let _ = rustix::net::shutdown(&fd, Shutdown::Write);
            }
            Access::Write => {
                let _ = rustix::net::shutdown(&fd, Shutdown::Read);
            }
        }
        Stream::new(fd, opts.mode, opts.max_message, format!("pipe {name:?}"))
    }

    /// The socket, borrowed for one call.
    fn raw(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends `msg` as one frame: all of it, or nothing if the wait runs out
    /// before its first byte; a frame stuck part-way gets the grace period,
    /// then closes the sending side (see [`crate::proto::send`]).
    pub(crate) fn send_msg(&self, msg: &[u8], wait: Wait) -> io::Result<()> {
        let mut out = Outgoing::framed(msg)?;
        let mut sink = FdSink {
            fd: self.raw(),
            kernel: load_timeout(&self.send_timeout),
        };
        lock(&self.tx).send(&mut sink, &mut out, wait)
    }

    /// A send's deadline, with the socket's own send timeout.
    fn send_deadline(&self, wait: Wait) -> Deadline {
        Deadline {
            wait,
            kernel: load_timeout(&self.send_timeout),
        }
    }

    /// A receive's deadline, with the socket's own receive timeout.
    fn recv_deadline(&self, wait: Wait) -> Deadline {
        Deadline {
            wait,
            kernel: load_timeout(&self.recv_timeout),
        }
    }

    /// Sets the socket's `SO_RCVTIMEO` to the stream's read timeout.
    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(&self.fd, Timeout::Recv, d)?;
        let ns = d.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.recv_timeout.store(ns, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the socket's `SO_SNDTIMEO` to the stream's write timeout.
    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(&self.fd, Timeout::Send, d)?;
        let ns = d.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.send_timeout.store(ns, Ordering::Relaxed);
        Ok(())
    }

    /// One nonblocking pass of a send for the async driver (see
    /// [`SendState::send_ready`]): `WouldBlock` keeps the progress in `out`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn send_ready(&self, out: &mut Outgoing<'_>) -> io::Result<()> {
        let mut sink = FdSink {
            fd: self.raw(),
            kernel: load_timeout(&self.send_timeout),
        };
        lock(&self.tx).send_ready(&mut sink, out)
    }

    /// The async sender of `out` stopped waiting: the stream keeps the rest
    /// of a frame already started ([`SendState::keep_rest`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn keep_rest(&self, out: &Outgoing<'_>) -> bool {
        lock(&self.tx).keep_rest(out)
    }

    /// Whether a kept tail waits to go out.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn has_tail(&self) -> bool {
        lock(&self.tx).has_tail()
    }

    /// One nonblocking pass over a kept tail ([`SendState::flush_ready`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn flush_ready(&self) -> io::Result<()> {
        let mut sink = FdSink {
            fd: self.raw(),
            kernel: load_timeout(&self.send_timeout),
        };
        lock(&self.tx).flush_ready(&mut sink)
    }

    /// Gives up on a kept tail whose grace period the async driver spent
    /// ([`SendState::cut_tail`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn cut_tail(&self) {
        let mut sink = FdSink {
            fd: self.raw(),
            kernel: load_timeout(&self.send_timeout),
        };
        lock(&self.tx).cut_tail(&mut sink)
    }

    /// A whole message may wait in the read-ahead buffer (try before
    /// waiting for readiness).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn has_buffered(&self) -> bool {
        self.mode == PipeMode::Message && lock(&self.rx).has_buffered()
    }

    /// Half-closes: the peer reads the end of the stream after what was sent.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        lock(&self.tx).check()?;
        match rustix::net::shutdown(&self.fd, Shutdown::Write) {
            Ok(()) | Err(Errno::NOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn recv_msg(&self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        let mut src = FdSource {
            fd: self.raw(),
            dl: self.recv_deadline(wait),
        };
        lock(&self.rx).recv_into(&mut src, out)
    }

    pub(crate) fn recv_msg_slice(
        &self,
        out: &mut [u8],
        wait: Wait,
    ) -> io::Result<Option<Received>> {
        let mut src = FdSource {
            fd: self.raw(),
            dl: self.recv_deadline(wait),
        };
        lock(&self.rx).recv_slice(&mut src, out, true)
    }

    pub(crate) fn read(&self, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
        match self.mode {
            PipeMode::Byte => recv_raw(self.raw(), buf, &mut self.recv_deadline(wait)),
            PipeMode::Message => {
                let mut src = FdSource {
                    fd: self.raw(),
                    dl: self.recv_deadline(wait),
                };
                lock(&self.rx).read_payload(&mut src, buf)
            }
        }
    }

    /// Byte mode: as much as the socket takes now (`Write` semantics).
    /// Message mode: one message, all of it.
    pub(crate) fn write_vectored(&self, bufs: &[IoSlice<'_>], wait: Wait) -> io::Result<usize> {
        match self.mode {
            // Byte mode has no frames, so nothing can poison it.
            PipeMode::Byte => send_raw(self.raw(), bufs, &mut self.send_deadline(wait)),
            PipeMode::Message => {
                let msg: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                self.send_msg(&msg, wait).map(|()| msg.len())
            }
        }
    }

    pub(crate) fn write(&self, buf: &[u8], wait: Wait) -> io::Result<usize> {
        match self.mode {
            PipeMode::Byte => send_raw(
                self.raw(),
                &[IoSlice::new(buf)],
                &mut self.send_deadline(wait),
            ),
            PipeMode::Message => self.send_msg(buf, wait).map(|()| buf.len()),
        }
    }

    /// Every send hands its whole frame to the kernel before it returns, so
    /// there is nothing of ours to flush; this reports a sending side closed
    /// by a frame stuck part-way.
    pub(crate) fn flush(&self, _wait: Wait) -> io::Result<()> {
        lock(&self.tx).check()
    }

    /// Sends `msg` as one framed message with `fds` attached (`SCM_RIGHTS`,
    /// at most three). Used by the shared-memory channel's handshake.
    pub(crate) fn send_msg_with_fds(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let mut frame = encode_header(msg.len())?.to_vec();
        frame.extend_from_slice(msg);
        let _tx = lock(&self.tx);
        let n = ancillary::send_with_fds(self.raw(), &frame, fds)?;
        // The descriptor went with the first bytes; the rest is plain data.
        let mut sent = n;
        while sent < frame.len() {
            sent += send_raw(
                self.raw(),
                &[IoSlice::new(&frame[sent..])],
                &mut self.send_deadline(Wait::Block),
            )?;
        }
        Ok(())
    }

    /// Receives one framed message and the descriptors sent with it (at most
    /// `max`). Must be the first read on the stream (nothing buffered yet).
    pub(crate) fn recv_msg_with_fds(
        &self,
        wait: Wait,
        max: usize,
    ) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
        let rx = lock(&self.rx);
        if !rx.is_idle() {
            return Err(io::Error::other(
                "the channel handshake must be the first message on its pipe (something \
                 was read before it); this is a bug in the caller",
            ));
        }
        let mut head = [0u8; HEADER_LEN];
        if wait != Wait::Block {
            poll_fd(self.raw(), PollFlags::IN, wait)?;
        }
        let (got, fds) = ancillary::recv_with_fds(self.raw(), &mut head, max)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the pipe",
            ));
        }
        recv_exact(self.raw(), &mut head[got..], wait)?;
        let len = u32::from_le_bytes(head) as usize;
        if len > 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer's channel handshake message is longer than 64 KiB: it is \
                 not a named-ipc channel peer of this version",
            ));
        }
        let mut body = vec![0u8; len];
        recv_exact(self.raw(), &mut body, wait)?;
        Ok((body, fds))
    }

    /// A duplicate of the socket, for watching whether the peer hung up.
    pub(crate) fn watch_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Unix has nothing to flush beyond our own buffer: closing keeps data the
    /// kernel already holds deliverable.
    pub(crate) fn disconnect(&self) -> io::Result<()> {
        self.flush(Wait::Block)?;
        Ok(rustix::net::shutdown(&self.fd, Shutdown::Both)?)
    }

    /// A stream socket carries bytes; message mode is framing on top.
    pub(crate) fn pipe_type(&self) -> io::Result<PipeMode> {
        Ok(PipeMode::Byte)
    }

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        credentials::peer_pid(self.raw())
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        credentials::peer_uid(self.raw()).map(UserRepr)
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Stream {
    /// A frame whose async sender stopped waiting after its first bytes left
    /// is finished here: given the grace period, then cut with the sending
    /// side closed (so the peer sees an error, never a cut message as a
    /// whole one). Blocking sends never leave one.
    fn drop(&mut self) {
        let tx = self.tx.get_mut().unwrap_or_else(|p| p.into_inner());
        if tx.has_tail() {
            let mut sink = FdSink {
                fd: self.fd.as_fd(),
                kernel: load_timeout(&self.send_timeout),
            };
            let _ = tx.finish_tail(&mut sink, Wait::Never);
        }
    }
}
