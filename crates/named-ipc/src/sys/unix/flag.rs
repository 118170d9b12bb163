//! A level-triggered flag a blocked `accept` also watches: raised, it makes
//! [`Listener::accept`](super::pipe::Listener::accept) return
//! [`Accept::Interrupted`](crate::sys::Accept::Interrupted) until lowered.
//! On Unix the read end of a nonblocking pipe holds one byte while raised.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct Flag {
    read: OwnedFd,
    write: OwnedFd,
    raised: AtomicBool,
}

impl Flag {
    pub(crate) fn new() -> io::Result<Flag> {
        #[cfg(not(apple))]
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        // No pipe2 on macOS: set the flags right after (only our own threads
        // could fork in between, and this runs when a listener is created).
        #[cfg(apple)]
        let (read, write) = {
            let (r, w) = rustix::pipe::pipe()?;
            for fd in [&r, &w] {
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
                rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?;
            }
            (r, w)
        };
        Ok(Flag {
            read,
            write,
            raised: AtomicBool::new(false),
        })
    }

    /// Raises the flag (no effect if raised). Callers serialise `raise` and
    /// `lower` (the channel listener holds its queue lock).
    pub(crate) fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            let _ = rustix::io::write(&self.write, &[1]);
        }
    }

    /// Lowers the flag (no effect if lowered).
    pub(crate) fn lower(&self) {
        if self.raised.swap(false, Ordering::AcqRel) {
            let _ = rustix::io::read(&self.read, &mut [0u8; 1]);
        }
    }

    /// The descriptor that is readable while the flag is raised.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}
