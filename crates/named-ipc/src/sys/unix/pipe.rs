//! Pipes on Unix: `SOCK_STREAM` Unix domain sockets.
//!
//! Message mode sends each message as a u32 little-endian length and the payload
//! (see [`framing`](crate::pipe::framing)). A listener holds an exclusive `flock`
//! on `<socket>.lock` (which also records its pid) for its lifetime: that lock is
//! how a second server learns the name is taken, and how a leftover socket of a
//! crashed server is recognised and reclaimed.

use std::ffi::OsStr;
use std::io::{self, IoSlice, Read};
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{cstr, cvt, cvt_r, ensure_private_dir, lstat, runtime_dir, UserRepr};
use crate::error::{Error, ErrorKind, Result};
use crate::name;
use crate::pipe::framing::{encode_header, FrameReader, Received, Source, HEADER_LEN};
use crate::pipe::{Access, ConnectOptions, Direction, ListenerOptions, PipeEntry, PipeMode};
use crate::security::Security;
use crate::sys::{Backoff, Wait};

/// Frames up to this size (header included) are copied into one buffer and
/// sent with a single `send`.
const SMALL_FRAME: usize = 1024;

/// Longest socket path (bytes, without the terminating NUL).
const MAX_PATH: usize = {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let a: libc::sockaddr_un = unsafe { mem::zeroed() };
    a.sun_path.len() - 1
};

/// `send` flags: no SIGPIPE where the OS has a per-call flag (macOS uses the
/// `SO_NOSIGPIPE` socket option instead).
#[cfg(sock_cloexec)]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(sock_cloexec))]
const SEND_FLAGS: libc::c_int = 0;

/// Where a pipe lives: its socket path.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    path: PathBuf,
    /// Our per-user directory holding the socket, created 0700 on bind.
    private_dir: Option<PathBuf>,
}

impl Addr {
    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }

    fn lock_path(&self) -> PathBuf {
        lock_path_of(&self.path)
    }
}

fn lock_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
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

/// (device, inode): identifies a file across renames and replacements.
// The casts are no-ops on Linux but widen on macOS (dev_t is i32 there).
#[allow(clippy::unnecessary_cast)]
fn file_ident(st: &libc::stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid `stat`.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn unlink(path: &Path) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: c is NUL-terminated.
    cvt(unsafe { libc::unlink(c.as_ptr()) }).map(drop)
}

#[cfg(not(sock_cloexec))]
fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fd is an open descriptor we own; F_SETFD only sets its flags.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fd is open; F_GETFL reads its flags.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above, setting the status flags.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// A new `AF_UNIX` stream socket, close-on-exec, optionally nonblocking.
fn unix_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    #[cfg(sock_cloexec)]
    let fd = {
        let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
        if nonblocking {
            ty |= libc::SOCK_NONBLOCK;
        }
        // SAFETY: plain socket(2) call.
        let raw = cvt(unsafe { libc::socket(libc::AF_UNIX, ty, 0) })?;
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(raw) }
    };
    #[cfg(not(sock_cloexec))]
    let fd = {
        // SAFETY: plain socket(2) call.
        let raw = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) })?;
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_cloexec(fd.as_raw_fd())?;
        set_nonblocking(fd.as_raw_fd(), nonblocking)?;
        fd
    };
    no_sigpipe(&fd)?;
    Ok(fd)
}

#[cfg(apple)]
fn no_sigpipe(fd: &OwnedFd) -> io::Result<()> {
    setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1)
}

#[cfg(not(apple))]
fn no_sigpipe(_fd: &OwnedFd) -> io::Result<()> {
    Ok(())
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a c_int living for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut a: libc::sockaddr_un = unsafe { mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > MAX_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in a.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((a, len as libc::socklen_t))
}

/// Waits until `fd` is ready for `events`, or the wait runs out.
fn poll_fd(fd: RawFd, events: libc::c_short, wait: Wait) -> io::Result<()> {
    loop {
        let timeout = match wait.remaining_ms_ceil() {
            None => -1,
            Some(ms) => ms.min(i32::MAX as u64) as libc::c_int,
        };
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: p is one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 {
            return Ok(());
        }
        if let Some(left) = wait.remaining() {
            if left.is_zero() {
                return Err(wait.expired_error());
            }
        }
    }
}

fn recv_raw(fd: RawFd, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    // SAFETY: the iovec describes `buf`, valid for writes while it is borrowed.
    unsafe { recv_iov(fd, &mut iov, wait) }
}

/// `recvmsg` into the buffers `iov` describes, waiting per `wait`.
///
/// # Safety
/// Every iovec must describe memory valid for writes until this returns.
unsafe fn recv_iov(fd: RawFd, iov: &mut [libc::iovec], wait: Wait) -> io::Result<usize> {
    if wait == Wait::Block {
        // readv: the cheapest blocking scatter read (no msghdr to copy in).
        // SAFETY: the caller guarantees the iovecs are writable.
        return cvt_r(|| unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) })
            .map(|n| n as usize);
    }
    let call = |flags: libc::c_int| {
        // SAFETY: all-zero is a valid msghdr; we point it at `iov`.
        let mut m: libc::msghdr = unsafe { mem::zeroed() };
        m.msg_iov = iov.as_ptr() as *mut libc::iovec;
        m.msg_iovlen = iov.len() as _;
        // SAFETY: the caller guarantees the iovecs are writable.
        unsafe { libc::recvmsg(fd, &mut m, flags) }
    };
    match wait {
        Wait::Block => cvt_r(|| call(0)).map(|n| n as usize),
        Wait::Never => cvt_r(|| call(libc::MSG_DONTWAIT)).map(|n| n as usize),
        Wait::Until(_) => loop {
            poll_fd(fd, libc::POLLIN, wait)?;
            match cvt_r(|| call(libc::MSG_DONTWAIT)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r.map(|n| n as usize),
            }
        },
    }
}

/// Fills `buf` completely; the end of the stream first is `UnexpectedEof`.
fn recv_exact(fd: RawFd, mut buf: &mut [u8], wait: Wait) -> io::Result<()> {
    while !buf.is_empty() {
        match recv_raw(fd, buf, wait)? {
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

fn send_raw(fd: RawFd, bufs: &[IoSlice<'_>], wait: Wait) -> io::Result<usize> {
    let call = |flags: libc::c_int| {
        if let [one] = bufs {
            // SAFETY: `one` is valid for reads of its length during the call.
            return unsafe { libc::send(fd, one.as_ptr().cast(), one.len(), flags | SEND_FLAGS) };
        }
        // SAFETY: all-zero is a valid msghdr; we point it at `bufs`.
        let mut m: libc::msghdr = unsafe { mem::zeroed() };
        // IoSlice is ABI-compatible with iovec; sendmsg only reads through it.
        m.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        m.msg_iovlen = bufs.len() as _;
        // SAFETY: m describes `bufs`, which outlive the call.
        unsafe { libc::sendmsg(fd, &m, flags | SEND_FLAGS) }
    };
    match wait {
        Wait::Block => cvt_r(|| call(0)).map(|n| n as usize),
        Wait::Never => cvt_r(|| call(libc::MSG_DONTWAIT)).map(|n| n as usize),
        Wait::Until(_) => loop {
            poll_fd(fd, libc::POLLOUT, wait)?;
            match cvt_r(|| call(libc::MSG_DONTWAIT)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r.map(|n| n as usize),
            }
        },
    }
}

fn is_wait_expired(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

// ------------------------------------------------------------------ listener --

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

/// Takes the name's lock file: returns it locked, or `AlreadyExists`.
fn take_lock(name: &str, lock_path: &Path) -> Result<OwnedFd> {
    let c = cstr(lock_path).map_err(|e| Error::from_io(e, name, "bad lock path", ""))?;
    for _ in 0..8 {
        // SAFETY: c is NUL-terminated; the flags create a private regular file.
        let raw = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o600 as libc::c_uint,
            )
        };
        if raw < 0 {
            return Err(Error::from_io(
                io::Error::last_os_error(),
                name,
                &format!(
                    "cannot create pipe {name:?}: cannot open its lock file {}",
                    lock_path.display()
                ),
                "check the directory's permissions",
            ));
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: fd is open.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                let pid = std::fs::read_to_string(lock_path).unwrap_or_default();
                let pid = pid.trim();
                let who = if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    name,
                    format!(
                        "cannot create pipe {name:?}: it is already in use by another server{who}; \
                         stop that server or choose another name"
                    ),
                ));
            }
            return Err(Error::from_io(e, name, "cannot lock the pipe name", ""));
        }
        // The file may have been unlinked by a server that shut down between our
        // open and our flock: then our lock is on an orphan inode; retry.
        let mine = fstat(fd.as_fd()).ok().map(|s| file_ident(&s));
        let there = lstat(lock_path).ok().map(|s| file_ident(&s));
        if mine.is_some() && mine == there {
            // Record our pid for `nipc pipe ls` and error messages.
            // SAFETY: fd is open; truncating our own lock file.
            unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
            let pid = format!("{}\n", std::process::id());
            // SAFETY: pid's bytes are valid for reads of their length.
            unsafe { libc::pwrite(fd.as_raw_fd(), pid.as_ptr().cast(), pid.len(), 0) };
            return Ok(fd);
        }
    }
    Err(Error::new(
        ErrorKind::Busy,
        name,
        format!("cannot create pipe {name:?}: its lock file keeps changing; try again"),
    ))
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
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFSOCK => {
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
                unlink(&addr.path).map_err(|e| {
                    Error::from_io(e, name, &what(), "cannot remove the stale socket")
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
        let (sa, len) = sockaddr(&addr.path).map_err(|e| Error::from_io(e, name, &what(), ""))?;
        // SAFETY: sa/len describe a valid sockaddr_un.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len,
            )
        })
        .map_err(|e| Error::from_io(e, name, &what(), ""))?;
        let created = lstat(&addr.path).map_err(|e| Error::from_io(e, name, &what(), ""))?;
        let ident = file_ident(&created);
        // Permissions before listen(): nobody can connect before this point.
        let c = cstr(&addr.path).map_err(|e| Error::from_io(e, name, &what(), ""))?;
        // SAFETY: c is NUL-terminated.
        let chmod = cvt(unsafe { libc::chmod(c.as_ptr(), socket_mode as libc::mode_t) });
        let listen = chmod.and_then(|_| {
            // SAFETY: fd is a bound socket.
            cvt(unsafe { libc::listen(fd.as_raw_fd(), libc::SOMAXCONN) })
        });
        if let Err(e) = listen {
            let _ = unlink(&addr.path);
            return Err(Error::from_io(e, name, &what(), ""));
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

    /// Accepts one client. Never returns `Ok(None)` on Unix (Windows returns it
    /// when it has no free instance).
    pub(crate) fn accept(&self, wait: Wait) -> io::Result<Option<Stream>> {
        loop {
            if wait != Wait::Never {
                poll_fd(self.fd.as_raw_fd(), libc::POLLIN, wait)?;
            }
            match accept_raw(self.fd.as_raw_fd()) {
                Ok(fd) => {
                    if let Some((inb, outb)) = self.bufsizes {
                        let clamp = |v: u32| v.min(i32::MAX as u32) as libc::c_int;
                        let raw = fd.as_raw_fd();
                        if inb > 0 {
                            setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(inb))?;
                        }
                        if outb > 0 {
                            setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, clamp(outb))?;
                        }
                    }
                    // Enforce the direction at the socket too, so a peer that reads
                    // an inbound pipe sees EOF and one that writes an outbound pipe
                    // gets EPIPE instead of blocking forever.
                    let how = match self.direction {
                        Direction::Duplex => None,
                        Direction::Inbound => Some(libc::SHUT_WR),
                        Direction::Outbound => Some(libc::SHUT_RD),
                    };
                    if let Some(how) = how {
                        // SAFETY: fd is a connected socket.
                        unsafe { libc::shutdown(fd.as_raw_fd(), how) };
                    }
                    return Ok(Some(Stream::new(
                        fd,
                        self.mode,
                        self.max_message,
                        self.label.clone(),
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && wait != Wait::Never => continue,
                // A client that connected and vanished before accept: not our
                // problem, wait for the next one.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }
}

fn accept_raw(fd: RawFd) -> io::Result<OwnedFd> {
    #[cfg(sock_cloexec)]
    {
        // SAFETY: fd is a listening socket; we ask for no peer address.
        let raw = cvt_r(|| unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        })?;
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }
    #[cfg(not(sock_cloexec))]
    {
        // SAFETY: fd is a listening socket; we ask for no peer address.
        let raw =
            cvt_r(|| unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) })?;
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        set_cloexec(raw)?;
        // BSD-derived systems hand the listener's O_NONBLOCK to accepted sockets.
        set_nonblocking(raw, false)?;
        no_sigpipe(&owned)?;
        Ok(owned)
    }
}

/// Whether something accepts connections on the socket at `path`.
fn probe_live(path: &Path) -> bool {
    let Ok(fd) = unix_socket(true) else {
        return false;
    };
    let Ok((sa, len)) = sockaddr(path) else {
        return false;
    };
    // SAFETY: sa/len describe a valid sockaddr_un.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if r == 0 {
        return true;
    }
    let e = io::Error::last_os_error();
    // EAGAIN: backlog full, so somebody is listening; EINPROGRESS likewise.
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EINPROGRESS)
    )
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Remove the socket only if it is still the one we created.
        if let Ok(st) = lstat(&self.path) {
            if file_ident(&st) == self.ident {
                let _ = unlink(&self.path);
            }
        }
        // Still holding the lock: nobody else can be mid-bind on this name.
        let _ = unlink(&self.lock_path);
    }
}

// -------------------------------------------------------------------- stream --

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

struct FdReader {
    fd: RawFd,
    wait: Wait,
}

impl Read for FdReader {
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

impl Source for FdReader {
    /// One `recv` straight into the spare capacity: no zeroing, no copy, and
    /// the whole remainder asked for at once.
    fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        out.reserve(max);
        let mut iov = [spare_iovec(out, max)];
        // SAFETY: the iovec covers spare capacity of `out`, writable while it
        // is borrowed; recvmsg initialises the first n bytes, which set_len
        // then exposes.
        let n = unsafe { recv_iov(self.fd, &mut iov, self.wait) }?;
        // SAFETY: see above; n <= the iovec length.
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
    fn new(fd: OwnedFd, mode: PipeMode, max_message: u32, label: String) -> Stream {
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
        let (sa, len) = sockaddr(&addr.path)?;
        let mut backoff = Backoff::new();
        // With no deadline we still give a full backlog the Windows default 50 ms.
        let busy_wait = match wait {
            Wait::Never => Wait::timeout(Some(std::time::Duration::from_millis(50))),
            w => w,
        };
        let fd = loop {
            let fd = unix_socket(true)?;
            // SAFETY: sa/len describe a valid sockaddr_un.
            let r = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_un).cast(),
                    len,
                )
            };
            let err = if r == 0 {
                break fd;
            } else {
                io::Error::last_os_error()
            };
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINPROGRESS) => {
                    poll_fd(fd.as_raw_fd(), libc::POLLOUT, busy_wait)?;
                    let mut so: libc::c_int = 0;
                    let mut sl = mem::size_of::<libc::c_int>() as libc::socklen_t;
                    // SAFETY: so/sl are valid out-pointers for SO_ERROR.
                    cvt(unsafe {
                        libc::getsockopt(
                            fd.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_ERROR,
                            (&mut so as *mut libc::c_int).cast(),
                            &mut sl,
                        )
                    })?;
                    if so == 0 {
                        break fd;
                    }
                    return Err(io::Error::from_raw_os_error(so));
                }
                Some(libc::EAGAIN) => {
                    // The server's backlog is full: it exists but is busy.
                    if !backoff.sleep(busy_wait) {
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            format!("every instance of pipe {name:?} is busy"),
                        ));
                    }
                }
                Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => {
                    if !backoff.sleep(wait) {
                        return Err(err);
                    }
                }
                _ => return Err(err),
            }
        };
        set_nonblocking(fd.as_raw_fd(), false)?;
        match opts.access {
            Access::ReadWrite => {}
            // SAFETY: fd is a connected socket.
            Access::Read => unsafe {
                libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
            },
            // SAFETY: fd is a connected socket.
            Access::Write => unsafe {
                libc::shutdown(fd.as_raw_fd(), libc::SHUT_RD);
            },
        }
        Ok(Stream::new(
            fd,
            opts.mode,
            opts.max_message,
            format!("pipe {name:?}"),
        ))
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
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
        let raw_fd = fd.as_raw_fd();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut iov = [libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        }];
        // SAFETY: all-zero is a valid msghdr; it points at live buffers below.
        let mut m: libc::msghdr = unsafe { mem::zeroed() };
        m.msg_iov = iov.as_mut_ptr();
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = space as _;
        // SAFETY: the control buffer has room for one cmsg carrying one fd.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as _;
            std::ptr::copy_nonoverlapping(
                (&raw_fd as *const RawFd).cast::<u8>(),
                libc::CMSG_DATA(c),
                mem::size_of::<RawFd>(),
            );
        }
        // SAFETY: m describes the frame and the control buffer, both alive.
        let n = cvt_r(|| unsafe { libc::sendmsg(self.raw(), &m, SEND_FLAGS) })? as usize;
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
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE((4 * mem::size_of::<RawFd>()) as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut iov = [libc::iovec {
            iov_base: head.as_mut_ptr().cast(),
            iov_len: HEADER_LEN,
        }];
        // SAFETY: all-zero is a valid msghdr; it points at live buffers.
        let mut m: libc::msghdr = unsafe { mem::zeroed() };
        m.msg_iov = iov.as_mut_ptr();
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = space as _;
        if wait != Wait::Block {
            poll_fd(self.raw(), libc::POLLIN, wait)?;
        }
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let flags = libc::MSG_CMSG_CLOEXEC;
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let flags = 0;
        // SAFETY: m describes live, writable buffers.
        let got = cvt_r(|| unsafe { libc::recvmsg(self.raw(), &mut m, flags) })? as usize;
        let mut fds = Vec::new();
        // SAFETY: walking the control messages the kernel filled in, within
        // msg_controllen; each SCM_RIGHTS payload is an array of descriptors
        // that are now ours.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&m);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c);
                    let n = ((*c).cmsg_len as usize - (data as usize - c as usize))
                        / mem::size_of::<RawFd>();
                    for i in 0..n {
                        let mut fd: RawFd = -1;
                        std::ptr::copy_nonoverlapping(
                            data.add(i * mem::size_of::<RawFd>()),
                            (&mut fd as *mut RawFd).cast::<u8>(),
                            mem::size_of::<RawFd>(),
                        );
                        if fd >= 0 {
                            fds.push(OwnedFd::from_raw_fd(fd));
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&m, c);
            }
        }
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
        Ok((body, fds.into_iter().next()))
    }

    /// A duplicate of the socket, for watching whether the peer hung up.
    pub(crate) fn watch_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Unix has nothing to flush beyond our own buffer: closing keeps data the
    /// kernel already holds deliverable.
    pub(crate) fn disconnect(&self) -> io::Result<()> {
        self.flush(Wait::Block)?;
        // SAFETY: fd is a connected socket.
        cvt(unsafe { libc::shutdown(self.raw(), libc::SHUT_RDWR) }).map(drop)
    }

    /// A stream socket carries bytes; message mode is framing on top.
    pub(crate) fn pipe_type(&self) -> io::Result<PipeMode> {
        Ok(PipeMode::Byte)
    }

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        peer_pid(self.raw())
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        peer_uid(self.raw()).map(UserRepr)
    }
}

#[cfg(linux_like)]
fn peer_cred(fd: RawFd) -> io::Result<libc::ucred> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c/len are valid out-pointers for SO_PEERCRED.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(c)
}

#[cfg(linux_like)]
fn peer_pid(fd: RawFd) -> io::Result<u32> {
    Ok(peer_cred(fd)?.pid as u32)
}

#[cfg(linux_like)]
fn peer_uid(fd: RawFd) -> io::Result<u32> {
    Ok(peer_cred(fd)?.uid)
}

#[cfg(apple)]
fn peer_pid(fd: RawFd) -> io::Result<u32> {
    let mut pid: libc::pid_t = 0;
    let mut len = mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: pid/len are valid out-pointers for LOCAL_PEERPID.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            (&mut pid as *mut libc::pid_t).cast(),
            &mut len,
        )
    })?;
    Ok(pid as u32)
}

#[cfg(not(any(linux_like, apple)))]
fn peer_pid(_fd: RawFd) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer pid is not available on this OS",
    ))
}

#[cfg(not(linux_like))]
fn peer_uid(fd: RawFd) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: uid/gid are valid out-pointers.
    cvt(unsafe { libc::getpeereid(fd, &mut uid, &mut gid) })?;
    Ok(uid)
}

/// Live and stale pipes in our per-user directory.
pub(crate) fn list() -> io::Result<Vec<PipeEntry>> {
    let dir = runtime_dir();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent?;
        let path = ent.path();
        let Ok(st) = lstat(&path) else { continue };
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            continue;
        }
        let name = ent.file_name();
        let (alive, pid) = lock_state(&lock_path_of(&path));
        out.push(PipeEntry {
            name: OsStr::new(&name).to_string_lossy().into_owned(),
            os_name: path.display().to_string(),
            server_pid: pid,
            alive,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether a server holds the lock file, and the pid written in it.
fn lock_state(lock_path: &Path) -> (Option<bool>, Option<u32>) {
    let Ok(c) = cstr(lock_path) else {
        return (None, None);
    };
    // SAFETY: c is NUL-terminated; read-only open of an existing file.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if raw < 0 {
        return (None, None);
    }
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let pid = std::fs::read_to_string(lock_path)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // SAFETY: fd is open. A shared lock fails while the server holds its
    // exclusive one; if we get it, it is released when fd closes.
    let free = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    (Some(!free), pid)
}
