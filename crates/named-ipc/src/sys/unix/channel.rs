//! The shared-memory channel's OS side on Unix: the segment is a memfd passed
//! over the rendezvous socket (`SCM_RIGHTS`), sleepers wait on futexes in the
//! segment, and a hang-up on the socket means the peer is gone.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use super::futex;
use super::pipe::Stream;
use super::shm::Mapping;
use crate::channel::header::Hello;
use crate::sys::Wait;

/// The segment's descriptor travels beside the hello message.
pub(crate) type Attachment = Option<OwnedFd>;

/// The OS half of a channel end's link to its peer: sleeping and waking on
/// the bells, and telling whether the peer process is still there.
pub(crate) struct OsLink {
    /// A duplicate of the rendezvous socket: readable (EOF) once the peer's
    /// end closes, which the kernel does when the peer process dies.
    watch: OwnedFd,
}

impl OsLink {
    fn new(stream: &Stream) -> io::Result<OsLink> {
        Ok(OsLink {
            watch: stream.watch_fd()?,
        })
    }

    /// Sleeps on `word` (bell `_bell` of the segment) while it equals `seen`,
    /// at most `timeout`.
    pub(crate) fn sleep(&self, _bell: usize, word: &AtomicU32, seen: u32, timeout: Duration) {
        futex::wait(word, seen, Some(timeout));
    }

    /// Wakes the sleeper on `word`.
    pub(crate) fn wake(&self, _bell: usize, word: &AtomicU32) {
        futex::wake(word, 1);
    }

    /// Whether the peer closed its end of the rendezvous socket (it exited,
    /// crashed or dropped its stream). The peer never writes to it after the
    /// handshake, so readable means end of stream.
    pub(crate) fn peer_gone(&self) -> bool {
        let mut p = [PollFd::new(&self.watch, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut p, Some(&zero)), Ok(n) if n > 0)
            && p[0]
                .revents()
                .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
    }
}

/// Server side: sends the hello with the segment's descriptor attached. The
/// descriptor is in flight once sent, so there is nothing to wait for.
pub(crate) fn send_hello(
    stream: &Stream,
    hello: Hello,
    seg: &Mapping,
    _wait: Wait,
) -> io::Result<OsLink> {
    stream.send_msg_with_fd(&hello.encode(), seg.fd().as_fd())?;
    OsLink::new(stream)
}

/// Client side: receives the hello and the segment's descriptor.
pub(crate) fn recv_hello(stream: &Stream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    stream.recv_msg_with_fd(wait)
}

/// Client side: maps the received segment, which must be `hello.segment_len`
/// bytes (see [`Mapping::from_fd`] for the checks), and sets up the OS link. The
/// hello must name no handles on Unix.
pub(crate) fn attach(
    stream: &Stream,
    fd: Attachment,
    hello: &Hello,
    _wait: Wait,
) -> io::Result<(Mapping, OsLink)> {
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
    let map = Mapping::from_fd(fd, hello.segment_len)?;
    Ok((map, OsLink::new(stream)?))
}

/// A hostile channel server, written by hand: it does the rendezvous like a
/// real one (accept, read the client's hello, answer with a handshake and a
/// descriptor) but hands out segments a client must refuse. Linux only: the
/// segments are memfds with chosen seals.
#[cfg(all(test, linux_like))]
mod tests {
    use std::io::IoSlice;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use rustix::fs::{MemfdFlags, SealFlags};
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

    use crate::channel::header::{Hello, Layout};
    use crate::channel::ChannelOptions;
    use crate::error::Error;
    use crate::pipe::framing::encode_header;
    use crate::pipe::{ListenerOptions, PipeMode, PipeStream};

    /// Longest any step may take before the test fails (never a timing check).
    const STEP: Duration = Duration::from_secs(30);
    const CAPACITY: usize = 4096;

    fn unique(tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "nit-{tag}-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A memfd of `len` bytes holding a valid channel header for CAPACITY,
    /// sealed with `seals`.
    fn segment(len: u64, seals: SealFlags) -> OwnedFd {
        let fd = rustix::fs::memfd_create(
            c"nipc-test",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .unwrap();
        rustix::fs::ftruncate(&fd, len).unwrap();
        let header = Layout::new(CAPACITY).encode();
        assert_eq!(rustix::io::pwrite(&fd, &header, 0).unwrap(), header.len());
        if !seals.is_empty() {
            rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
        }
        fd
    }

    fn hello() -> Vec<u8> {
        Hello {
            max_message: 1 << 20,
            capacity: CAPACITY as u64,
            segment_len: Layout::new(CAPACITY).total as u64,
            server_pid: std::process::id(),
            handles: Vec::new(),
        }
        .encode()
    }

    /// Sends the handshake frame with `fds` attached, as a server would.
    fn send_hello(pipe: &PipeStream, fds: &[BorrowedFd<'_>]) {
        let mut frame = encode_header(hello().len()).unwrap().to_vec();
        frame.extend_from_slice(&hello());
        let sock = pipe.sys().watch_fd().unwrap();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
        let n = rustix::net::sendmsg(
            &sock,
            &[IoSlice::new(&frame)],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        assert_eq!(n, frame.len());
    }

    /// Runs a hostile server that answers one client with `fds`, connects to
    /// it, and returns the client's error. The connect must fail: a client
    /// that accepts the segment fails the test.
    fn connect_to_hostile_server(fds: Vec<OwnedFd>) -> Error {
        let name = unique("hostile");
        let listener = ListenerOptions::new()
            .mode(PipeMode::Message)
            .create(&name)
            .unwrap();
        let server = std::thread::spawn(move || {
            let pipe = listener.accept_timeout(STEP).unwrap();
            pipe.set_read_timeout(Some(STEP)).unwrap();
            let hi = pipe.recv().unwrap().expect("the client's hello");
            assert_eq!(&hi[..8], b"NIPC-CL1");
            let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
            send_hello(&pipe, &borrowed);
            drop(fds);
            // Until the client hangs up (it must, having refused us).
            while let Ok(Some(_)) = pipe.recv() {}
        });
        let got = ChannelOptions::new().timeout(STEP).connect(&name);
        let err = match got {
            Ok(_) => panic!("the client accepted a hostile server's segment"),
            Err(e) => e,
        };
        server.join().unwrap();
        err
    }

    fn expect_refusal(err: &Error, words: &str) {
        let text = err.to_string();
        assert!(
            text.contains(words),
            "expected an error about {words:?}, got: {text}"
        );
    }

    fn total() -> u64 {
        Layout::new(CAPACITY).total as u64
    }

    #[test]
    fn a_segment_that_is_not_sealed_is_refused() {
        let fd = segment(total(), SealFlags::empty());
        let err = connect_to_hostile_server(vec![fd]);
        expect_refusal(&err, "not sealed");
    }

    #[test]
    fn a_segment_sealed_only_against_growing_is_refused() {
        let fd = segment(total(), SealFlags::GROW | SealFlags::SEAL);
        let err = connect_to_hostile_server(vec![fd]);
        expect_refusal(&err, "not sealed");
    }

    #[test]
    fn a_descriptor_that_is_not_a_memfd_is_refused() {
        let (sock, _other) = UnixStream::pair().unwrap();
        let err = connect_to_hostile_server(vec![OwnedFd::from(sock)]);
        expect_refusal(&err, "not a sealable memfd");
    }

    #[test]
    fn a_sealed_segment_larger_than_the_handshake_says_is_refused() {
        let fd = segment(total() + 4096, SealFlags::SHRINK | SealFlags::GROW);
        let err = connect_to_hostile_server(vec![fd]);
        expect_refusal(&err, "handshake says");
    }

    #[test]
    fn a_sealed_segment_smaller_than_the_handshake_says_is_refused() {
        let fd = segment(total() - 4096, SealFlags::SHRINK | SealFlags::GROW);
        let err = connect_to_hostile_server(vec![fd]);
        expect_refusal(&err, "handshake says");
    }

    #[test]
    fn extra_descriptors_are_refused_and_closed() {
        let good = segment(
            total(),
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        );
        // The extra descriptor is one end of a socket pair: once every copy of
        // it is closed, the other end reads end-of-stream.
        let (extra, mut witness) = UnixStream::pair().unwrap();
        let err = connect_to_hostile_server(vec![good, OwnedFd::from(extra)]);
        expect_refusal(&err, "descriptors");
        witness.set_read_timeout(Some(STEP)).unwrap();
        let mut b = [0u8; 1];
        let n = std::io::Read::read(&mut witness, &mut b)
            .expect("the client kept a copy of the extra descriptor open");
        assert_eq!(n, 0);
    }

    #[test]
    fn truncated_descriptors_are_refused() {
        let good = segment(
            total(),
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        );
        let mut fds = vec![good];
        for _ in 0..16 {
            let (a, _b) = UnixStream::pair().unwrap();
            fds.push(OwnedFd::from(a));
        }
        let err = connect_to_hostile_server(fds);
        expect_refusal(&err, "truncated");
    }
}
