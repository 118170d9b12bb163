//! Descriptor passing (`SCM_RIGHTS`) for the shared-memory channel's
//! handshake: the server sends the segment's descriptor with the first bytes
//! of its hello, the client receives it.
//!
//! Descriptors from the peer are untrusted input. The receiver takes at most
//! one: it closes every descriptor that arrived (extra ones included) unless
//! it hands exactly one to its caller, and it refuses control data the kernel
//! had to truncate (`MSG_CTRUNC`).
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

/// Room for this many descriptors in one receive: more than the one we
/// accept, so that a few extra ones are seen (and closed) rather than
/// truncated.
const ROOM: usize = 4;

#[cfg(sock_cloexec)]
const RECV_FLAGS: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(sock_cloexec))]
const RECV_FLAGS: RecvFlags = RecvFlags::empty();

/// One blocking `sendmsg` of `bytes` with `fd` attached; returns how many
/// bytes went (the descriptor goes with the first of them).
pub(super) fn send_with_fd(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<usize> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
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
/// descriptor that came with them, if any.
///
/// # Errors
/// `InvalidData` if the peer sent more than one descriptor or more control
/// data than fits (all of them are closed); OS errors.
pub(super) fn recv_with_fd(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<OwnedFd>)> {
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
    if fds.len() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the peer sent {} descriptors with the handshake where one was expected; \
                 all were closed",
                fds.len()
            ),
        ));
    }
    Ok((msg.bytes, fds.pop()))
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
        send_with_fd(tx.as_fd(), b"hi", fd.as_fd()).unwrap();
        let mut buf = [0u8; 8];
        let (n, got) = recv_with_fd(rx.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        let got = got.expect("the descriptor");
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
        let e = recv_with_fd(rx.as_fd(), &mut buf).unwrap_err();
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
        let e = recv_with_fd(rx.as_fd(), &mut buf).unwrap_err();
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
        let (n, got) = recv_with_fd(rx.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert!(got.is_none());
    }
}
