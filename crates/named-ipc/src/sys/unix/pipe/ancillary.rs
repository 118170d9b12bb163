//! Descriptor passing (`SCM_RIGHTS`) for the shared-memory channel's
//! handshake: the server sends the segment's descriptor (and an async
//! server its wake-up descriptors) with the first bytes of its hello; an
//! async client sends its wake-up descriptors with its own hello.
//!
//! Descriptors from the peer are untrusted input. The receiver takes at most
//! as many as its caller allows: it closes every descriptor that arrived
//! when there are more, and it refuses control data the kernel had to
//! truncate (`MSG_CTRUNC`).
//!
//! # Close-on-exec
//! Received descriptors are close-on-exec from the moment they exist where
//! the OS has `MSG_CMSG_CLOEXEC` (Linux, Android, FreeBSD, NetBSD, OpenBSD).
//! macOS has no such flag: the descriptors are installed by `recvmsg` and we
//! set `FD_CLOEXEC` on each right after it returns, before anything else. A
//! `fork` + `exec` by another thread of this process in between, a window of
//! a few instructions, would still let its child inherit them. Closing that
//! window needs every thread that forks to coordinate with us, which a
//! library cannot impose.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage,
};

use super::socket::SEND_FLAGS;

/// Room for this many descriptors in one receive: more than the most we
/// accept (three), so that a few extra ones are seen (and closed) rather
/// than truncated.
const ROOM: usize = 6;

/// The most descriptors one send carries.
const MAX_SEND: usize = 3;

#[cfg(sock_cloexec)]
const RECV_FLAGS: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(sock_cloexec))]
const RECV_FLAGS: RecvFlags = RecvFlags::empty();

/// One blocking `sendmsg` of `bytes` with `fds` attached (at most three);
/// returns how many bytes went (the descriptors go with the first of them).
pub(super) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_SEND {
        return Err(io::Error::other(
            "too many descriptors for one handshake message",
        ));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SEND))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(
            "no room for a descriptor in the control buffer",
        ));
    }
    let iov = [IoSlice::new(bytes)];
    Ok(rustix::io::retry_on_intr(|| {
        rustix::net::sendmsg(sock, &iov, &mut control, SEND_FLAGS)
    })?)
}

/// One blocking `recvmsg` into `buf`; returns the byte count and the
/// descriptors that came with them (at most `max`).
///
/// # Errors
/// `InvalidData` if the peer sent more than `max` descriptors or more
/// control data than fits (all of them are closed); OS errors.
pub(super) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(ROOM))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = rustix::io::retry_on_intr(|| {
        rustix::net::recvmsg(sock, &mut iov, &mut control, RECV_FLAGS)
    })?;
    // Take ownership of everything that arrived, so that each is closed on
    // every path below (dropping the buffer would close the rest, too).
    let mut fds: Vec<OwnedFd> = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    #[cfg(not(sock_cloexec))]
    for fd in &fds {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer sent more control data than the handshake allows (truncated, \
             MSG_CTRUNC); its descriptors were closed",
        ));
    }
    if fds.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the peer sent {} descriptors with the handshake where at most {max} were \
                 expected; all were closed",
                fds.len()
            ),
        ));
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;

    /// Longest a blocking step may take before the test fails.
    const STEP: Duration = Duration::from_secs(30);

    /// Sends `bytes` with every one of `fds` attached, in one `sendmsg`.
    fn send_fds(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) {
        let fds: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        let iov = [IoSlice::new(bytes)];
        let n = rustix::net::sendmsg(sock, &iov, &mut control, SEND_FLAGS).unwrap();
        assert_eq!(n, bytes.len());
    }

    /// A socket pair whose second end reads end-of-stream only once every
    /// copy of the first end is closed.
    fn witness() -> (OwnedFd, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(STEP)).unwrap();
        (OwnedFd::from(a), b)
    }

    fn assert_all_closed(mut w: UnixStream) {
        let mut b = [0u8; 1];
        let n = w.read(&mut b).expect("a received descriptor was left open");
        assert_eq!(n, 0);
    }

    #[test]
    fn one_descriptor_arrives_close_on_exec() {
        let (tx, rx) = UnixStream::pair().unwrap();
        let (fd, _w) = witness();
        send_with_fds(tx.as_fd(), b"hi", &[fd.as_fd()]).unwrap();
        let mut buf = [0u8; 8];
        let (n, mut got) = recv_with_fds(rx.as_fd(), &mut buf, 1).unwrap();
        assert_eq!(&buf[..n], b"hi");
        let got = got.pop().expect("the descriptor");
        let flags = rustix::io::fcntl_getfd(&got).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }

    #[test]
    fn extra_descriptors_are_refused_and_all_closed() {
        let (tx, rx) = UnixStream::pair().unwrap();
        let (a, wa) = witness();
        let (b, wb) = witness();
        send_fds(&tx, b"hi", &[a, b]);
        let mut buf = [0u8; 8];
        let e = recv_with_fds(rx.as_fd(), &mut buf, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("2 descriptors"), "{e}");
        assert_all_closed(wa);
        assert_all_closed(wb);
    }

    #[test]
    fn truncated_control_data_is_refused_and_what_arrived_closed() {
        let (tx, rx) = UnixStream::pair().unwrap();
        let (fds, witnesses): (Vec<_>, Vec<_>) = (0..ROOM * 4).map(|_| witness()).unzip();
        send_fds(&tx, b"hi", &fds);
        drop(fds);
        let mut buf = [0u8; 8];
        let e = recv_with_fds(rx.as_fd(), &mut buf, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("truncated"), "{e}");
        for w in witnesses {
            assert_all_closed(w);
        }
    }

    #[test]
    fn no_descriptor_is_fine() {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut tx, b"hi").unwrap();
        let mut buf = [0u8; 8];
        let (n, got) = recv_with_fds(rx.as_fd(), &mut buf, 3).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert!(got.is_empty());
    }

    #[test]
    fn three_descriptors_arrive_in_order() {
        let (tx, rx) = UnixStream::pair().unwrap();
        let (fds, mut witnesses): (Vec<_>, Vec<_>) = (0..3).map(|_| witness()).unzip();
        let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        send_with_fds(tx.as_fd(), b"hi", &borrowed).unwrap();
        drop(fds);
        let mut buf = [0u8; 8];
        let (n, got) = recv_with_fds(rx.as_fd(), &mut buf, 3).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(got.len(), 3);
        // Writing through the i-th received descriptor reaches witness i.
        for (i, fd) in got.into_iter().enumerate() {
            let mut s = UnixStream::from(fd);
            std::io::Write::write_all(&mut s, &[i as u8]).unwrap();
            let mut b = [9u8];
            witnesses[i].read_exact(&mut b).unwrap();
            assert_eq!(b[0], i as u8);
        }
        witnesses.clear();
    }
}
