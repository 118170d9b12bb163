//! Who is at the other end of a connected socket: the peer's pid and uid.
//!
//! Linux: `SO_PEERCRED`. macOS: `LOCAL_PEERPID` and `getpeereid`. Other BSDs:
//! `getpeereid` (no pid). rustix wraps none of the BSD calls, and its
//! `SO_PEERCRED` wrapper returns the pid as a non-zero `Pid`, which the kernel
//! does not promise (it reports 0 for a peer outside our pid namespace), so
//! all three stay small libc calls here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

#[cfg(linux_like)]
fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<libc::ucred> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c/len are valid out-pointers for SO_PEERCRED; fd is open.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(c)
}

/// The peer process's pid (0 if it is not visible from our pid namespace).
#[cfg(linux_like)]
pub(super) fn peer_pid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(peer_cred(fd)?.pid as u32)
}

/// The peer's effective uid when it connected.
#[cfg(linux_like)]
pub(super) fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(peer_cred(fd)?.uid)
}

/// The peer process's pid.
#[cfg(apple)]
pub(super) fn peer_pid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut pid: libc::pid_t = 0;
    let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: pid/len are valid out-pointers for LOCAL_PEERPID; fd is open.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            (&mut pid as *mut libc::pid_t).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as u32)
}

/// Not available on this OS.
#[cfg(not(any(linux_like, apple)))]
pub(super) fn peer_pid(_fd: BorrowedFd<'_>) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer pid is not available on this OS",
    ))
}

/// The peer's effective uid when it connected.
#[cfg(not(linux_like))]
pub(super) fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: uid/gid are valid out-pointers; fd is open.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}
