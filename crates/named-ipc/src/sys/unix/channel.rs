//! The shared-memory channel's OS side on Unix: the segment is a memfd passed
//! over the rendezvous socket (`SCM_RIGHTS`), a hang-up on the socket means
//! the peer is gone, and sleepers wait either on futexes in the segment (a
//! blocking end) or on descriptors of their own that a reactor watches (an
//! async end: an eventfd per bell on Linux, a socket pair elsewhere), handed
//! to the peer in the handshake so that it can wake them (see
//! `channel/header.rs`, "Wake-up descriptors").

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use super::futex;
use super::pipe::Stream;
use super::shm::Mapping;
use crate::channel::flow::Bells;
use crate::channel::header::{Hello, WAKERS};
use crate::sys::Wait;

/// The descriptors that travel beside a hello message.
pub(crate) type Attachment = Vec<OwnedFd>;

/// The wake-up descriptors of an end that sleeps through a reactor, for the
/// bells it sleeps on (its receiver's, then its sender's); none for a
/// blocking end, which sleeps on futexes.
pub(crate) struct Wakers {
    pairs: Vec<WakePair>,
}

/// One bell's wake-up pair: the sleeper keeps `wait` (the reactor watches
/// it), the peer gets `ring` (it signals it).
struct WakePair {
    wait: OwnedFd,
    ring: OwnedFd,
}

impl Wakers {
    /// For an end that sleeps through a reactor (`reactor`), one pair per
    /// bell it sleeps on; none otherwise.
    pub(crate) fn new(reactor: bool) -> io::Result<Wakers> {
        let n = if reactor { WAKERS as usize } else { 0 };
        Ok(Wakers {
            pairs: (0..n).map(|_| wake_pair()).collect::<io::Result<_>>()?,
        })
    }

    /// How many descriptors go to the peer.
    pub(crate) fn count(&self) -> u32 {
        self.pairs.len() as u32
    }

    fn rings(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.pairs.iter().map(|p| p.ring.as_fd())
    }
}

#[cfg(linux_like)]
fn wake_pair() -> io::Result<WakePair> {
    use rustix::event::EventfdFlags;
    let fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
    Ok(WakePair {
        ring: fd.try_clone()?,
        wait: fd,
    })
}

#[cfg(not(linux_like))]
fn wake_pair() -> io::Result<WakePair> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let (wait, ring) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )?;
    // Close-on-exec right away (no SOCK_CLOEXEC on macOS; a fork + exec by
    // another thread in between could inherit them), nonblocking both ways.
    for fd in [&wait, &ring] {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(fd, true)?;
    }
    Ok(WakePair { wait, ring })
}

/// Signals a sleeper's descriptor (never blocks: it is nonblocking; a full
/// counter or buffer means wake-ups are pending already).
fn ring(fd: BorrowedFd<'_>) {
    #[cfg(linux_like)]
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
    #[cfg(not(linux_like))]
    let _ = rustix::net::send(fd, &[1], no_signal());
}

#[cfg(all(not(linux_like), sock_cloexec))]
fn no_signal() -> rustix::net::SendFlags {
    rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT
}

#[cfg(all(not(linux_like), not(sock_cloexec)))]
fn no_signal() -> rustix::net::SendFlags {
    rustix::net::SendFlags::DONTWAIT
}

/// Takes the pending wake-ups off our descriptor: `WouldBlock` if there
/// were none.
fn drain(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut b = [0u8; 64];
    #[cfg(linux_like)]
    let n = rustix::io::read(fd, &mut b[..8])?;
    #[cfg(not(linux_like))]
    let n = {
        let mut n = 0;
        loop {
            match rustix::io::read(fd, &mut b) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(rustix::io::Errno::AGAIN) if n > 0 => break,
                Err(e) => return Err(e.into()),
            }
        }
        n
    };
    if n == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(())
}

/// A wake-up descriptor from the peer: checked to be the kind we create
/// (Linux: an anonymous inode such as an eventfd; elsewhere a socket) and
/// made nonblocking, so that signalling it can never block us.
fn peer_waker(fd: OwnedFd) -> io::Result<OwnedFd> {
    let st = rustix::fs::fstat(&fd)?;
    let ty = rustix::fs::FileType::from_raw_mode(super::mode_of(&st) as _);
    #[cfg(linux_like)]
    let ok = ty == rustix::fs::FileType::Unknown;
    #[cfg(not(linux_like))]
    let ok = ty == rustix::fs::FileType::Socket;
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the peer's wake-up descriptor is a {ty:?}, not an event descriptor; it was \
                 closed"
            ),
        ));
    }
    rustix::io::ioctl_fionbio(&fd, true)?;
    #[cfg(apple)]
    rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
    Ok(fd)
}

/// The OS half of a channel end's link to its peer: sleeping and waking on
/// the bells, and telling whether the peer process is still there.
pub(crate) struct OsLink {
    /// A duplicate of the rendezvous socket: readable (EOF) once the peer's
    /// end closes, which the kernel does when the peer process dies.
    watch: OwnedFd,
    /// Per bell the peer sleeps on: its wake-up descriptor, or `None` for a
    /// futex sleeper.
    peer: [Option<OwnedFd>; 4],
    /// Per bell we sleep on through a reactor: our descriptor.
    own: [Option<Arc<OwnedFd>>; 4],
}

impl OsLink {
    /// `own`: our wake-up pairs (for `bells.rx_data`, `bells.tx_space`);
    /// `peer`: the peer's wake-up descriptors, for the bells it sleeps on
    /// (its receiver's is the one we ring after sending, `bells.tx_data`;
    /// its sender's the one we ring after freeing room, `bells.rx_space`).
    fn new(stream: &Stream, bells: Bells, own: Wakers, peer: Vec<OwnedFd>) -> io::Result<OsLink> {
        let mut link = OsLink {
            watch: stream.watch_fd()?,
            peer: Default::default(),
            own: Default::default(),
        };
        for (bell, pair) in [bells.rx_data, bells.tx_space].into_iter().zip(own.pairs) {
            link.own[bell] = Some(Arc::new(pair.wait));
        }
        for (bell, fd) in [bells.tx_data, bells.rx_space].into_iter().zip(peer) {
            link.peer[bell] = Some(peer_waker(fd)?);
        }
        Ok(link)
    }

    /// Sleeps on `word` (bell `bell` of the segment) while it equals `seen`,
    /// at most `timeout`: on the futex, or (an end that sleeps through a
    /// reactor, waiting without one) on its wake-up descriptor.
    pub(crate) fn sleep(&self, bell: usize, word: &AtomicU32, seen: u32, timeout: Duration) {
        match &self.own[bell] {
            None => futex::wait(word, seen, Some(timeout)),
            Some(fd) => {
                let mut p = [PollFd::new(&**fd, PollFlags::IN)];
                let ts = super::timespec(timeout);
                if matches!(rustix::event::poll(&mut p, Some(&ts)), Ok(n) if n > 0) {
                    let _ = drain(fd.as_fd());
                }
            }
        }
    }

    /// Wakes the sleeper on `word` (bell `bell`): through the descriptor
    /// it gave us, or its futex.
    pub(crate) fn wake(&self, bell: usize, word: &AtomicU32) {
        match &self.peer[bell] {
            None => futex::wake(word, 1),
            Some(fd) => ring(fd.as_fd()),
        }
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

/// Checks that the peer attached exactly the wake-up descriptors its hello
/// announced.
fn expect_wakers(fds: &[OwnedFd], announced: u32, who: &str) -> io::Result<()> {
    if fds.len() != announced as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the {who} announced {announced} wake-up descriptors but sent {} descriptors \
                 with its handshake; all were closed",
                fds.len()
            ),
        ));
    }
    Ok(())
}

/// Client side: sends its hello with its wake-up descriptors attached.
pub(crate) fn send_request(
    stream: &Stream,
    hello: &[u8],
    own: &Wakers,
    _wait: Wait,
) -> io::Result<()> {
    let fds: Vec<_> = own.rings().collect();
    stream.send_msg_with_fds(hello, &fds)
}

/// Server side: receives the client's hello and its wake-up descriptors.
pub(crate) fn recv_request(stream: &Stream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    stream.recv_msg_with_fds(wait, WAKERS as usize)
}

/// Server side: sends the hello with the segment's descriptor and our
/// wake-up descriptors attached (the descriptors are in flight once sent,
/// so there is nothing to wait for), and sets up the OS link with the
/// client's (`peer`, as many as `peer_wakers` its hello announced).
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_hello(
    stream: &Stream,
    hello: Hello,
    seg: &Mapping,
    own: Wakers,
    peer: Attachment,
    peer_wakers: u32,
    bells: Bells,
    _wait: Wait,
) -> io::Result<OsLink> {
    expect_wakers(&peer, peer_wakers, "client")?;
    debug_assert_eq!(hello.wakers, own.count());
    let fds: Vec<_> = std::iter::once(seg.fd().as_fd())
        .chain(own.rings())
        .collect();
    stream.send_msg_with_fds(&hello.encode(), &fds)?;
    OsLink::new(stream, bells, own, peer)
}

/// Client side: receives the hello, the segment's descriptor and the
/// server's wake-up descriptors.
pub(crate) fn recv_hello(stream: &Stream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    stream.recv_msg_with_fds(wait, 1 + WAKERS as usize)
}

/// Client side: maps the received segment, which must be `hello.segment_len`
/// bytes (see [`Mapping::from_fd`] for the checks), and sets up the OS link. The
/// hello must name no handles on Unix.
pub(crate) fn attach(
    stream: &Stream,
    fds: Attachment,
    hello: &Hello,
    own: Wakers,
    bells: Bells,
    _wait: Wait,
) -> io::Result<(Mapping, OsLink)> {
    if !hello.handles.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected handles in a Unix handshake",
        ));
    }
    let mut fds = fds.into_iter();
    let fd = fds.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the handshake carried no segment descriptor",
        )
    })?;
    let peer: Vec<OwnedFd> = fds.collect();
    expect_wakers(&peer, hello.wakers, "server")?;
    let map = Mapping::from_fd(fd, hello.segment_len)?;
    Ok((map, OsLink::new(stream, bells, own, peer)?))
}

/// How a task of an async channel end sleeps on one bell: our wake-up
/// descriptor and a duplicate of the rendezvous socket, both on tokio's
/// reactor, so a ring and the peer's death each wake the task at once.
#[cfg(feature = "tokio")]
pub(crate) struct AsyncDoze {
    bell: ::tokio::io::unix::AsyncFd<Arc<OwnedFd>>,
    watch: ::tokio::io::unix::AsyncFd<OwnedFd>,
    recheck: crate::sys::Recheck,
}

#[cfg(feature = "tokio")]
impl AsyncDoze {
    /// For bell `bell`, which this end sleeps on through a reactor. Must run
    /// inside a tokio runtime.
    pub(crate) fn new(link: &OsLink, bell: usize) -> io::Result<AsyncDoze> {
        use ::tokio::io::{unix::AsyncFd, Interest};
        let fd = link.own[bell].clone().ok_or_else(|| {
            io::Error::other("this channel end has no wake-up descriptor for the bell")
        })?;
        let watch = link.watch.try_clone()?;
        // SAFETY: both descriptors are owned by what is registered (an Arc
        // shared with the link, which never closes or replaces it; a fresh
        // duplicate), so they stay open and the same until the AsyncFd drops.
        let bell = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        // SAFETY: as above.
        let watch = unsafe { AsyncFd::register_with_interest(watch, Interest::READABLE) };
        Ok(AsyncDoze {
            bell: bell.map_err(io::Error::from)?,
            watch: watch.map_err(io::Error::from)?,
            recheck: crate::sys::Recheck::new(crate::channel::flow::PEER_CHECK),
        })
    }
}

#[cfg(feature = "tokio")]
impl crate::channel::flow::Doze for AsyncDoze {
    fn poll_doze(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        // The peer's end readable or hung up: it may be gone (the caller
        // looks). Left ready, so every later poll says so too.
        if self.watch.poll_read_ready(cx).is_ready() {
            return Poll::Ready(());
        }
        loop {
            match self.bell.poll_read_ready(cx) {
                // A wake-up missed (see `Recheck`) costs at most a period.
                Poll::Pending => return self.recheck.poll(cx),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(mut guard)) => {
                    match guard.try_io(|fd| drain(fd.get_ref().as_fd())) {
                        Ok(_) => return Poll::Ready(()),
                        // Nothing pending after all: readiness cleared.
                        Err(_would_block) => continue,
                    }
                }
            }
        }
    }
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

    fn hello(wakers: u32) -> Vec<u8> {
        Hello {
            max_message: 1 << 20,
            capacity: CAPACITY as u64,
            segment_len: Layout::new(CAPACITY).total as u64,
            server_pid: std::process::id(),
            wakers,
            handles: Vec::new(),
        }
        .encode()
    }

    /// Sends the handshake frame with `fds` attached, as a server would
    /// (announcing every descriptor after the first as a wake-up one).
    fn send_hello(pipe: &PipeStream, fds: &[BorrowedFd<'_>]) {
        let hello = hello(fds.len().saturating_sub(1) as u32);
        let mut frame = encode_header(hello.len()).unwrap().to_vec();
        frame.extend_from_slice(&hello);
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

    fn sealed_segment() -> OwnedFd {
        segment(
            total(),
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )
    }

    /// Review: a server's wake-up descriptors that are the write ends of
    /// pipes (which block, or raise SIGPIPE, on write) are refused, and
    /// every copy the client had is closed (the read ends see end of file).
    #[test]
    fn pipes_as_wake_up_descriptors_are_refused_and_closed() {
        let (r1, w1) = rustix::pipe::pipe().unwrap();
        let (r2, w2) = rustix::pipe::pipe().unwrap();
        let err = connect_to_hostile_server(vec![sealed_segment(), w1, w2]);
        expect_refusal(&err, "not an event descriptor");
        for r in [r1, r2] {
            let mut p = [rustix::event::PollFd::new(&r, rustix::event::PollFlags::IN)];
            let ts = crate::sys::unix::timespec(STEP);
            assert_eq!(rustix::event::poll(&mut p, Some(&ts)).unwrap(), 1);
            let mut b = [0u8; 1];
            assert_eq!(
                rustix::io::read(&r, &mut b).unwrap(),
                0,
                "the client kept a copy of a wake-up descriptor it refused"
            );
        }
    }

    /// Review: a regular file (here a memfd, which writes would grow) as a
    /// wake-up descriptor is refused.
    #[test]
    fn a_regular_file_as_a_wake_up_descriptor_is_refused() {
        let file = rustix::fs::memfd_create(c"nipc-waker", MemfdFlags::CLOEXEC).unwrap();
        let (_r, w) = rustix::pipe::pipe().unwrap();
        let err = connect_to_hostile_server(vec![sealed_segment(), file, w]);
        expect_refusal(&err, "not an event descriptor");
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
