//! The shared-memory channel's OS side on Unix: the segment is a memfd passed
//! over the rendezvous socket (`SCM_RIGHTS`), sleepers wait on futexes in the
//! segment, and a hang-up on the socket means the peer is gone.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::futex;
use super::pipe::Stream;
use super::shm::Mapping;
use crate::channel::header::Hello;
use crate::sys::Wait;

/// The segment's descriptor travels beside the hello message.
pub(crate) type Attachment = Option<OwnedFd>;

/// Wake-ups and peer liveness for one channel end.
pub(crate) struct Signals {
    /// A duplicate of the rendezvous socket: readable (EOF) once the peer's
    /// end closes, which the kernel does when the peer process dies.
    watch: OwnedFd,
}

impl Signals {
    fn new(stream: &Stream) -> io::Result<Signals> {
        Ok(Signals {
            watch: stream.watch_fd()?,
        })
    }

    /// Sleeps on `word` (bell `_bell` of the segment) while it equals `seen`,
    /// at most `timeout`.
    pub(crate) fn wait(&self, _bell: usize, word: &AtomicU32, seen: u32, timeout: Duration) {
        futex::wait(word, seen, Some(timeout));
    }

    /// Wakes the sleeper on `word`.
    pub(crate) fn ring(&self, _bell: usize, word: &AtomicU32) {
        futex::wake(word, 1);
    }

    /// Whether the peer closed its end of the rendezvous socket (it exited,
    /// crashed or dropped its stream). The peer never writes to it after the
    /// handshake, so readable means end of stream.
    pub(crate) fn peer_gone(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.watch.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        r > 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
    }
}

/// Server side: sends the hello with the segment's descriptor attached. The
/// descriptor is in flight once sent, so there is nothing to wait for.
pub(crate) fn send_hello(
    stream: &Stream,
    hello: Hello,
    seg: &Mapping,
    _wait: Wait,
) -> io::Result<Signals> {
    stream.send_msg_with_fd(&hello.encode(), seg.fd().as_fd())?;
    Signals::new(stream)
}

/// Client side: receives the hello and the segment's descriptor.
pub(crate) fn recv_hello(stream: &Stream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    stream.recv_msg_with_fd(wait)
}

/// Client side: maps the received segment and sets up signals. The hello must
/// name no handles on Unix.
pub(crate) fn attach(
    stream: &Stream,
    fd: Attachment,
    hello: &Hello,
    _wait: Wait,
) -> io::Result<(Mapping, Signals)> {
    if !hello.handles.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected handles in a Unix handshake",
        ));
    }
    let fd = fd.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the handshake carried no segment descriptor",
        )
    })?;
    let map = Mapping::from_fd(fd)?;
    Ok((map, Signals::new(stream)?))
}
