//! One connected end: framed messages or bytes over the socket, and the
//! descriptor-carrying handshake message of the shared-memory channel.
//!
//! Message mode sends each message as a u32 little-endian length and the payload
//! (see [`framing`](crate::pipe::framing)).

use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::Shutdown;

use super::socket::{
    poll_fd, recv_exact, recv_iov, recv_raw, recv_uninit, send_raw, set_nonblocking, sockaddr,
    unix_socket, Addr,
};
use super::{ancillary, credentials};
use crate::pipe::framing::{encode_header, Received, HEADER_LEN};
use crate::pipe::legacy_reader::{FrameReader, Source};
use crate::pipe::{Access, ConnectOptions, PipeMode};
use crate::sys::unix::UserRepr;
use crate::sys::{Backoff, Wait};

/// Frames up to this size (header included) are copied into one buffer and
/// sent with a single `send`.
const SMALL_FRAME: usize = 1024;

fn is_wait_expired(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One connected end.
pub(crate) struct Stream {
    fd: OwnedFd,
    mode: PipeMode,
    rx: Mutex<FrameReader>,
    tx: Mutex<Tx>,
}

/// The unsent tail of a message that the socket accepted only in part.
#[derive(Default)]
struct Tx {
    pending: Vec<u8>,
    off: usize,
}

struct FdReader<'a> {
    fd: BorrowedFd<'a>,
    wait: Wait,
}

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_raw(self.fd, buf, self.wait)
    }
}

/// The iovec of `out`'s spare capacity, at most `max` bytes.
fn spare_iovec(out: &mut Vec<u8>, max: usize) -> libc::iovec {
    let spare = out.spare_capacity_mut();
    libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len().min(max),
    }
}

impl Source for FdReader<'_> {
    /// One `recv` straight into the spare capacity: no zeroing, no copy, and
    /// the whole remainder asked for at once.
    fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        out.reserve(max);
        let spare = out.spare_capacity_mut();
        let len = spare.len().min(max);
        let n = recv_uninit(self.fd, &mut spare[..len], self.wait)?;
        // SAFETY: recv initialised the first n (<= len) bytes of the spare
        // capacity, which set_len now exposes.
        unsafe { out.set_len(out.len() + n) };
        Ok(n)
    }

    fn read_head_and_append(
        &mut self,
        head: &mut [u8; HEADER_LEN],
        out: &mut Vec<u8>,
    ) -> Option<io::Result<usize>> {
        let mut iov = [
            libc::iovec {
                iov_base: head.as_mut_ptr().cast(),
                iov_len: HEADER_LEN,
            },
            // Bounded, so that read-ahead of later messages stays small.
            spare_iovec(out, 64 * 1024),
        ];
        // SAFETY: both iovecs describe writable memory borrowed for this call.
        let r = unsafe { recv_iov(self.fd, &mut iov, self.wait) };
        if let Ok(n) = r {
            let payload = n.saturating_sub(HEADER_LEN);
            // SAFETY: recvmsg initialised `payload` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + payload) };
        }
        Some(r)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stream {
    pub(super) fn new(fd: OwnedFd, mode: PipeMode, max_message: u32, label: String) -> Stream {
        Stream {
            fd,
            mode,
            rx: Mutex::new(FrameReader::new(max_message, label)),
            tx: Mutex::new(Tx::default()),
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
        // With no deadline we still give a full backlog the Windows default 50 ms.
        let busy_wait = match wait {
            Wait::Never => Wait::timeout(Some(std::time::Duration::from_millis(50))),
            w => w,
        };
        let fd = loop {
            let fd = unix_socket(true)?;
            let err = match rustix::net::connect(&fd, &sa) {
                Ok(()) => break fd,
                Err(e) => e,
            };
            match err {
                Errno::INTR => continue,
                Errno::INPROGRESS => {
                    poll_fd(fd.as_fd(), PollFlags::OUT, busy_wait)?;
                    match rustix::net::sockopt::socket_error(&fd)? {
                        Ok(()) => break fd,
                        Err(so) => return Err(so.into()),
                    }
                }
                Errno::AGAIN => {
                    // The server's backlog is full: it exists but is busy.
                    if !backoff.sleep(busy_wait) {
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            format!("every instance of pipe {name:?} is busy"),
                        ));
                    }
                }
                Errno::NOENT | Errno::CONNREFUSED => {
                    if !backoff.sleep(wait) {
                        return Err(err.into());
                    }
                }
                _ => return Err(err.into()),
            }
        };
        set_nonblocking(fd.as_fd(), false)?;
        match opts.access {
            Access::ReadWrite => {}
            Access::Read => {
                let _ = rustix::net::shutdown(&fd, Shutdown::Write);
            }
            Access::Write => {
                let _ = rustix::net::shutdown(&fd, Shutdown::Read);
            }
        }
        Ok(Stream::new(
            fd,
            opts.mode,
            opts.max_message,
            format!("pipe {name:?}"),
        ))
    }

    /// The socket, borrowed for one call.
    fn raw(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends whatever an earlier partial send left behind.
    fn drain(&self, tx: &mut Tx, wait: Wait) -> io::Result<()> {
        while tx.off < tx.pending.len() {
            let n = send_raw(self.raw(), &[IoSlice::new(&tx.pending[tx.off..])], wait)?;
            tx.off += n;
        }
        tx.pending.clear();
        tx.off = 0;
        Ok(())
    }

    pub(crate) fn send_msg(&self, msg: &[u8], wait: Wait) -> io::Result<()> {
        let header = encode_header(msg.len())?;
        // Small frames go out as one contiguous buffer (one plain `send`); large
        // ones as header + payload without copying (`sendmsg`).
        let mut small = [0u8; SMALL_FRAME];
        let (a, b): (&[u8], &[u8]) = if msg.len() <= SMALL_FRAME - HEADER_LEN {
            small[..HEADER_LEN].copy_from_slice(&header);
            small[HEADER_LEN..HEADER_LEN + msg.len()].copy_from_slice(msg);
            (&small[..HEADER_LEN + msg.len()], &[])
        } else {
            (&header, msg)
        };
        let mut tx = lock(&self.tx);
        self.drain(&mut tx, wait)?;
        let total = a.len() + b.len();
        let mut sent = 0usize;
        while sent < total {
            let (x, y) = if sent < a.len() {
                (&a[sent..], b)
            } else {
                (&b[sent - a.len()..], &[][..])
            };
            let bufs = [IoSlice::new(x), IoSlice::new(y)];
            let n = if y.is_empty() { 1 } else { 2 };
            match send_raw(self.raw(), &bufs[..n], wait) {
                Ok(k) => sent += k,
                Err(e) if is_wait_expired(&e) && sent > 0 => {
                    // Part of the frame is on the wire: the message is accepted and
                    // its tail goes out with the next send or flush.
                    tx.pending.extend_from_slice(x);
                    tx.pending.extend_from_slice(y);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(crate) fn recv_msg(&self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        let mut r = FdReader {
            fd: self.raw(),
            wait,
        };
        lock(&self.rx).recv_into(&mut r, out)
    }

    pub(crate) fn recv_msg_slice(
        &self,
        out: &mut [u8],
        wait: Wait,
    ) -> io::Result<Option<Received>> {
        let mut r = FdReader {
            fd: self.raw(),
            wait,
        };
        lock(&self.rx).recv_slice(&mut r, out, true)
    }

    pub(crate) fn read(&self, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
        match self.mode {
            PipeMode::Byte => recv_raw(self.raw(), buf, wait),
            PipeMode::Message => {
                let mut r = FdReader {
                    fd: self.raw(),
                    wait,
                };
                lock(&self.rx).read_payload(&mut r, buf)
            }
        }
    }

    pub(crate) fn write(&self, buf: &[u8], wait: Wait) -> io::Result<usize> {
        match self.mode {
            PipeMode::Byte => {
                let mut tx = lock(&self.tx);
                self.drain(&mut tx, wait)?;
                send_raw(self.raw(), &[IoSlice::new(buf)], wait)
            }
            PipeMode::Message => self.send_msg(buf, wait).map(|()| buf.len()),
        }
    }

    pub(crate) fn flush(&self, wait: Wait) -> io::Result<()> {
        let mut tx = lock(&self.tx);
        self.drain(&mut tx, wait)
    }

    /// Sends `msg` as one framed message with `fd` attached (`SCM_RIGHTS`).
    /// Used by the shared-memory channel's handshake.
    pub(crate) fn send_msg_with_fd(&self, msg: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut frame = encode_header(msg.len())?.to_vec();
        frame.extend_from_slice(msg);
        let _tx = lock(&self.tx);
        let n = ancillary::send_with_fd(self.raw(), &frame, fd)?;
        // The descriptor went with the first bytes; the rest is plain data.
        let mut sent = n;
        while sent < frame.len() {
            sent += send_raw(self.raw(), &[IoSlice::new(&frame[sent..])], Wait::Block)?;
        }
        Ok(())
    }

    /// Receives one framed message and the descriptor sent with it, if any.
    /// Must be the first read on the stream (nothing buffered yet).
    pub(crate) fn recv_msg_with_fd(&self, wait: Wait) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
        let rx = lock(&self.rx);
        if !rx.is_fresh() {
            return Err(io::Error::other(
                "a descriptor must come with the first message",
            ));
        }
        let mut head = [0u8; HEADER_LEN];
        if wait != Wait::Block {
            poll_fd(self.raw(), PollFlags::IN, wait)?;
        }
        let (got, fd) = ancillary::recv_with_fd(self.raw(), &mut head)?;
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
                "handshake message too long",
            ));
        }
        let mut body = vec![0u8; len];
        recv_exact(self.raw(), &mut body, wait)?;
        Ok((body, fd))
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

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        credentials::peer_pid(self.raw())
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        credentials::peer_uid(self.raw()).map(UserRepr)
    }
}
