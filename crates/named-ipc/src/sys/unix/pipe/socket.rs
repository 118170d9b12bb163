//! The socket layer under listeners and streams: a pipe's address, socket
//! creation, readiness waits, and the send/receive calls with their
//! [`Wait`] policy.

use std::io::{self, IoSlice};
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::lockfile::lock_path_of;
use crate::error::{Error, ErrorKind, Result};
use crate::name;
use crate::sys::unix::{runtime_dir, timespec};
use crate::sys::Wait;

/// Longest socket path (bytes, without the terminating NUL): the size of
/// `sun_path`, which ends a `sockaddr_un` on every Unix we support.
pub(super) const MAX_PATH: usize =
    mem::size_of::<libc::sockaddr_un>() - mem::offset_of!(libc::sockaddr_un, sun_path) - 1;

/// `send` flags: no SIGPIPE where the OS has a per-call flag (macOS uses the
/// `SO_NOSIGPIPE` socket option instead).
#[cfg(sock_cloexec)]
pub(super) const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
#[cfg(not(sock_cloexec))]
pub(super) const SEND_FLAGS: SendFlags = SendFlags::empty();

/// Where a pipe lives: its socket path.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    pub(super) path: PathBuf,
    /// Our per-user directory holding the socket, created 0700 on bind.
    pub(super) private_dir: Option<PathBuf>,
}

impl Addr {
    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }

    pub(super) fn lock_path(&self) -> PathBuf {
        lock_path_of(&self.path)
    }
}

pub(crate) fn resolve(name: &str) -> Result<Addr> {
    let bare = name::pipe_base_name(name, "pipe")?;
    let (path, private_dir) = if bare.starts_with('/') {
        (PathBuf::from(bare), None)
    } else {
        name::check_plain(name, bare, "pipe")?;
        let dir = runtime_dir();
        (dir.join(bare), Some(dir))
    };
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "pipe name {name:?} is too long: its socket path {} is {len} bytes and this OS \
                 allows {MAX_PATH}; use a shorter name",
                path.display()
            ),
        ));
    }
    Ok(Addr { path, private_dir })
}

/// The socket address of `path`.
pub(super) fn sockaddr(path: &Path) -> io::Result<SocketAddrUnix> {
    if path.as_os_str().len() > MAX_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket path is too long for this OS; use a shorter pipe name",
        ));
    }
    Ok(SocketAddrUnix::new(path)?)
}

#[cfg(not(sock_cloexec))]
pub(super) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?)
}

pub(super) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, on)?)
}

/// A new `AF_UNIX` stream socket, close-on-exec, optionally nonblocking.
pub(super) fn unix_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    #[cfg(sock_cloexec)]
    let fd = {
        let mut flags = SocketFlags::CLOEXEC;
        if nonblocking {
            flags |= SocketFlags::NONBLOCK;
        }
        rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?
    };
    #[cfg(not(sock_cloexec))]
    let fd = {
        // No SOCK_CLOEXEC here: a fork+exec in another thread between these
        // two calls would inherit the socket (macOS has no atomic way).
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::empty(),
            None,
        )?;
        set_cloexec(std::os::fd::AsFd::as_fd(&fd))?;
        set_nonblocking(std::os::fd::AsFd::as_fd(&fd), nonblocking)?;
        fd
    };
    no_sigpipe(&fd)?;
    Ok(fd)
}

#[cfg(apple)]
pub(super) fn no_sigpipe(fd: &OwnedFd) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_socket_nosigpipe(fd, true)?)
}

#[cfg(not(apple))]
pub(super) fn no_sigpipe(_fd: &OwnedFd) -> io::Result<()> {
    Ok(())
}

/// Waits until `fd` is ready for `events`, or the wait runs out.
pub(super) fn poll_fd(fd: BorrowedFd<'_>, events: PollFlags, wait: Wait) -> io::Result<()> {
    loop {
        let timeout = wait
            .remaining_ms_ceil()
            .map(|ms| timespec(std::time::Duration::from_millis(ms)));
        let mut p = [PollFd::from_borrowed_fd(fd, events)];
        match rustix::event::poll(&mut p, timeout.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) => {}
        }
        if let Some(left) = wait.remaining() {
            if left.is_zero() {
                return Err(wait.expired_error());
            }
        }
    }
}

/// One call's wait, and the timeout the socket itself applies in the
/// call's direction (`SO_RCVTIMEO` / `SO_SNDTIMEO`, kept equal to the
/// stream's read / write timeout).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    pub(super) wait: Wait,
    pub(super) kernel: Option<Duration>,
}

impl From<Wait> for Deadline {
    fn from(wait: Wait) -> Deadline {
        Deadline { wait, kernel: None }
    }
}

/// Runs one socket call per `dl`. `call(dontwait)` makes the call, with
/// `MSG_DONTWAIT` when `dontwait`; `EINTR` retries it.
///
/// - `Block`: one blocking call.
/// - `Never`: one call that does not wait.
/// - `After(d)` where the socket's own timeout is `d`: one blocking call,
///   which the kernel ends after `d` — a timeout that costs no extra system
///   call. The deadline is anchored for any further call of the same
///   operation.
/// - otherwise: the call without waiting first (no `poll` when the socket is
///   ready), then `poll` until the deadline and call again.
fn with_wait<T>(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    dl: &mut Deadline,
    mut call: impl FnMut(bool) -> io::Result<T>,
) -> io::Result<T> {
    let mut once = |dontwait: bool| loop {
        match call(dontwait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    };
    let would_block = |e: &io::Error| e.kind() == io::ErrorKind::WouldBlock;
    match dl.wait {
        // With a socket timeout set, a blocking call can come back empty:
        // `Block` means no deadline, so call again.
        Wait::Block => loop {
            match once(false) {
                Err(e) if would_block(&e) && dl.kernel.is_some() => continue,
                r => return r,
            }
        },
        Wait::Never => once(true),
        Wait::After(d) if dl.kernel == Some(d) => {
            dl.wait.anchor();
            match once(false) {
                Err(e) if would_block(&e) => Err(dl.wait.expired_error()),
                r => r,
            }
        }
        Wait::After(_) | Wait::Until(_) => {
            match once(true) {
                Err(e) if would_block(&e) => {}
                r => return r,
            }
            dl.wait.anchor();
            loop {
                poll_fd(fd, events, dl.wait)?;
                match once(true) {
                    Err(e) if would_block(&e) => continue,
                    r => return r,
                }
            }
        }
    }
}

fn dontwait_recv(dontwait: bool) -> rustix::net::RecvFlags {
    if dontwait {
        rustix::net::RecvFlags::DONTWAIT
    } else {
        rustix::net::RecvFlags::empty()
    }
}

/// Receives into `buf`, waiting per `wait`.
pub(super) fn recv_raw(fd: BorrowedFd<'_>, buf: &mut [u8], dl: &mut Deadline) -> io::Result<usize> {
    with_wait(fd, PollFlags::IN, dl, |dontwait| {
        Ok(rustix::net::recv(fd, &mut *buf, dontwait_recv(dontwait))?.1)
    })
}

/// `recvmsg` (or `readv`) into the buffers `iov` describes, waiting per
/// `wait`.
///
/// libc rather than rustix: rustix's vectored reads take `IoSliceMut`, which
/// must not cover uninitialised memory, and the framing reads the header and
/// the payload into a `Vec`'s spare capacity in one call.
///
/// # Safety
/// Every iovec must describe memory valid for writes until this returns.
pub(super) unsafe fn recv_iov(
    fd: BorrowedFd<'_>,
    iov: &mut [libc::iovec],
    dl: &mut Deadline,
) -> io::Result<usize> {
    let raw = fd.as_raw_fd();
    with_wait(fd, PollFlags::IN, dl, |dontwait| {
        let r = if dontwait {
            // SAFETY: all-zero is a valid msghdr; we point it at `iov`.
            let mut m: libc::msghdr = unsafe { mem::zeroed() };
            m.msg_iov = iov.as_mut_ptr();
            m.msg_iovlen = iov.len() as _;
            // SAFETY: the caller guarantees the iovecs are writable.
            unsafe { libc::recvmsg(raw, &mut m, libc::MSG_DONTWAIT) }
        } else {
            // readv: the cheapest blocking scatter read (no msghdr to copy in).
            // SAFETY: the caller guarantees the iovecs are writable.
            unsafe { libc::readv(raw, iov.as_ptr(), iov.len() as libc::c_int) }
        };
        usize::try_from(r).map_err(|_| io::Error::last_os_error())
    })
}

/// Fills `buf` completely; the end of the stream first is `UnexpectedEof`.
pub(super) fn recv_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8], wait: Wait) -> io::Result<()> {
    let mut dl = Deadline::from(wait);
    dl.wait.anchor();
    while !buf.is_empty() {
        match recv_raw(fd, buf, &mut dl)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the pipe",
                ))
            }
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Sends from `bufs` (one `send`, or a gathering `sendmsg`), waiting per
/// `wait`; returns how much the socket took.
pub(super) fn send_raw(
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    dl: &mut Deadline,
) -> io::Result<usize> {
    with_wait(fd, PollFlags::OUT, dl, |dontwait| {
        let flags = if dontwait {
            SEND_FLAGS | SendFlags::DONTWAIT
        } else {
            SEND_FLAGS
        };
        Ok(if let [one] = bufs {
            rustix::net::send(fd, one, flags)?
        } else {
            rustix::net::sendmsg(fd, bufs, &mut SendAncillaryBuffer::default(), flags)?
        })
    })
}
