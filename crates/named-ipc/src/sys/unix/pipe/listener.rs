//! The listening side: binding the socket under the name's lock, and
//! accepting clients.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{FileType, Mode, RawMode};
use rustix::io::Errno;
use rustix::net::Shutdown;
#[cfg(sock_cloexec)]
use rustix::net::SocketFlags;

use super::file_ident;
use super::lockfile::take_lock;
#[cfg(not(sock_cloexec))]
use super::socket::{no_sigpipe, set_cloexec, set_nonblocking};
use super::socket::{poll_fd, sockaddr, unix_socket, Addr};
use super::stream::Stream;
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::{Direction, ListenerOptions, PipeMode};
use crate::security::Security;
use crate::sys::unix::flag::Flag;
use crate::sys::unix::{ensure_private_dir, file_type, lstat, timespec};
use crate::sys::{Accept, Wait};

/// A bound, listening socket and the lock that owns its name.
pub(crate) struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    lock_path: PathBuf,
    /// Held for our lifetime: proof that this server owns the name.
    _lock: OwnedFd,
    /// (dev, ino) of the socket file we created, so that Drop removes only ours.
    ident: (u64, u64),
    mode: PipeMode,
    direction: Direction,
    max_message: u32,
    bufsizes: Option<(u32, u32)>,
    label: String,
}

impl Listener {
    pub(crate) fn bind(name: &str, addr: &Addr, opts: &ListenerOptions) -> Result<Listener> {
        let what = || format!("cannot create pipe {name:?} ({})", addr.display());
        let socket_mode = match (opts.unix_mode, &opts.security) {
            (Some(m), _) => m & 0o777,
            (None, Security::LocalUsers) => 0o666,
            (None, _) => 0o600,
        };
        if let Some(dir) = &addr.private_dir {
            if socket_mode & 0o077 != 0 {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    name,
                    format!(
                        "{}: admitting other users needs a socket outside the private directory {}; \
                         give the pipe an absolute path name such as /tmp/{name}.sock",
                        what(),
                        dir.display()
                    ),
                ));
            }
            ensure_private_dir(name, dir)?;
        }
        let lock_path = addr.lock_path();
        let lock = take_lock(name, &lock_path)?;
        // We own the name. A socket file left there is a crashed server's, or a
        // foreign program's: reclaim only a dead socket.
        match lstat(&addr.path) {
            Ok(st) if file_type(&st) == FileType::Socket => {
                if probe_live(&addr.path) {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        name,
                        format!(
                            "{}: another program is listening on that socket; \
                             stop it or choose another name",
                            what()
                        ),
                    ));
                }
                rustix::fs::unlink(&addr.path).map_err(|e| {
                    Error::from_io(e.into(), name, &what(), "cannot remove the stale socket")
                })?;
            }
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    name,
                    format!("{}: that path exists and is not a socket; remove it or choose another name", what()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from_io(e, name, &what(), "")),
        }
        let fd = unix_socket(true).map_err(|e| Error::from_io(e, name, &what(), ""))?;
        let sa = sockaddr(&addr.path).map_err(|e| Error::from_io(e, name, &what(), ""))?;
        rustix::net::bind(&fd, &sa).map_err(|e| Error::from_io(e.into(), name, &what(), ""))?;
        let created = lstat(&addr.path).map_err(|e| Error::from_io(e, name, &what(), ""))?;
        let ident = file_ident(&created);
        // Permissions before listen(): nobody can connect before this point.
        let listen = rustix::fs::chmod(&addr.path, Mode::from_raw_mode(socket_mode as RawMode))
            .and_then(|()| rustix::net::listen(&fd, libc::SOMAXCONN));
        if let Err(e) = listen {
            let _ = rustix::fs::unlink(&addr.path);
            return Err(Error::from_io(e.into(), name, &what(), ""));
        }
        Ok(Listener {
            fd,
            path: addr.path.clone(),
            lock_path,
            _lock: lock,
            ident,
            mode: opts.mode,
            direction: opts.direction,
            max_message: opts.max_message,
            bufsizes: opts.buffer_sizes,
            label: format!("pipe {name:?}"),
        })
    }

    /// Accepts one client, or [`Accept::Interrupted`] once `flag` is raised.
    /// Never [`Accept::Busy`] on Unix (Windows returns it
    /// when it has no free instance).
    pub(crate) fn accept(&self, wait: Wait, flag: Option<&Flag>) -> io::Result<Accept<Stream>> {
        loop {
            if let Some(flag) = flag {
                if poll_either(self.fd.as_fd(), flag.fd(), wait)? {
                    return Ok(Accept::Interrupted);
                }
            } else if wait != Wait::Never {
                poll_fd(self.fd.as_fd(), PollFlags::IN, wait)?;
            }
            match accept_raw(self.fd.as_fd()) {
                Ok(fd) => {
                    if let Some((inb, outb)) = self.bufsizes {
                        let clamp = |v: u32| v.min(i32::MAX as u32) as usize;
                        if inb > 0 {
                            rustix::net::sockopt::set_socket_recv_buffer_size(&fd, clamp(inb))?;
                        }
                        if outb > 0 {
                            rustix::net::sockopt::set_socket_send_buffer_size(&fd, clamp(outb))?;
                        }
                    }
                    // Enforce the direction at the socket too, so a peer that reads
                    // an inbound pipe sees EOF and one that writes an outbound pipe
                    // gets EPIPE instead of blocking forever.
                    let how = match self.direction {
                        Direction::Duplex => None,
                        Direction::Inbound => Some(Shutdown::Write),
                        Direction::Outbound => Some(Shutdown::Read),
                    };
                    if let Some(how) = how {
                        let _ = rustix::net::shutdown(&fd, how);
                    }
                    return Ok(Accept::Client(Stream::new(
                        fd,
                        self.mode,
                        self.max_message,
                        self.label.clone(),
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && wait != Wait::Never => continue,
                // A client that connected and vanished before accept: not our
                // problem, wait for the next one.
                Err(e) if e.raw_os_error() == Some(Errno::CONNABORTED.raw_os_error()) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// Waits until `listen` has a client or `flag` is readable (raised), per
/// `wait`; `true` when the flag is raised. `Never` only looks.
fn poll_either(listen: BorrowedFd<'_>, flag: BorrowedFd<'_>, wait: Wait) -> io::Result<bool> {
    loop {
        let timeout = wait
            .remaining_ms_ceil()
            .map(|ms| timespec(std::time::Duration::from_millis(ms)));
        let mut p = [
            PollFd::from_borrowed_fd(listen, PollFlags::IN),
            PollFd::from_borrowed_fd(flag, PollFlags::IN),
        ];
        match rustix::event::poll(&mut p, timeout.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        if p[1].revents().contains(PollFlags::IN) {
            return Ok(true);
        }
        if !p[0].revents().is_empty() {
            return Ok(false);
        }
        if wait.remaining().is_some_and(|left| left.is_zero()) {
            return Err(wait.expired_error());
        }
    }
}

fn accept_raw(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    #[cfg(sock_cloexec)]
    {
        Ok(rustix::io::retry_on_intr(|| {
            rustix::net::accept_with(fd, SocketFlags::CLOEXEC)
        })?)
    }
    #[cfg(not(sock_cloexec))]
    {
        // No accept4 here: a fork+exec in another thread before set_cloexec
        // would inherit the socket (macOS has no atomic way).
        let owned = rustix::io::retry_on_intr(|| rustix::net::accept(fd))?;
        set_cloexec(owned.as_fd())?;
        // BSD-derived systems hand the listener's O_NONBLOCK to accepted sockets.
        set_nonblocking(owned.as_fd(), false)?;
        no_sigpipe(&owned)?;
        Ok(owned)
    }
}

/// Whether something accepts connections on the socket at `path`.
fn probe_live(path: &Path) -> bool {
    let Ok(fd) = unix_socket(true) else {
        return false;
    };
    let Ok(sa) = sockaddr(path) else {
        return false;
    };
    // EAGAIN: backlog full, so somebody is listening; EINPROGRESS likewise.
    match rustix::net::connect(&fd, &sa) {
        Ok(()) => true,
        Err(e) => e == Errno::AGAIN || e == Errno::INPROGRESS,
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Remove the socket only if it is still the one we created.
        if let Ok(st) = lstat(&self.path) {
            if file_ident(&st) == self.ident {
                let _ = rustix::fs::unlink(&self.path);
            }
        }
        // Still holding the lock: nobody else can be mid-bind on this name.
        let _ = rustix::fs::unlink(&self.lock_path);
    }
}
