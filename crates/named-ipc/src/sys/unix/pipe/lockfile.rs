//! The name lock: a listener holds an exclusive `flock` on `<socket>.lock`
//! (which also records its pid) for its lifetime. That lock is how a second
//! server learns the name is taken, and how a leftover socket of a crashed
//! server is recognised and reclaimed.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::file_ident;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::unix::lstat;

/// `<socket>.lock`.
pub(super) fn lock_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the name's lock file: returns it locked, or `AlreadyExists`.
pub(super) fn take_lock(name: &str, lock_path: &Path) -> Result<OwnedFd> {
    for _ in 0..8 {
        // A private regular file; never follow a symlink planted there.
        let fd = rustix::fs::open(
            lock_path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| {
            Error::from_io(
                e.into(),
                name,
                &format!(
                    "cannot create pipe {name:?}: cannot open its lock file {}",
                    lock_path.display()
                ),
                "check the directory's permissions",
            )
        })?;
        if let Err(e) = rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            let e = io::Error::from(e);
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
        let mine = rustix::fs::fstat(&fd).ok().map(|s| file_ident(&s));
        let there = lstat(lock_path).ok().map(|s| file_ident(&s));
        if mine.is_some() && mine == there {
            // Record our pid for `nipc pipe ls` and error messages (best effort).
            let _ = rustix::fs::ftruncate(&fd, 0);
            let pid = format!("{}\n", std::process::id());
            let _ = rustix::io::pwrite(&fd, pid.as_bytes(), 0);
            return Ok(fd);
        }
    }
    Err(Error::new(
        ErrorKind::Busy,
        name,
        format!("cannot create pipe {name:?}: its lock file keeps changing; try again"),
    ))
}

/// Whether a server holds the lock file, and the pid written in it.
pub(super) fn lock_state(lock_path: &Path) -> (Option<bool>, Option<u32>) {
    let Ok(fd) = rustix::fs::open(
        lock_path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) else {
        return (None, None);
    };
    let pid = std::fs::read_to_string(lock_path)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // A shared lock fails while the server holds its exclusive one; if we get
    // it, it is released when fd closes.
    let free = rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared).is_ok();
    (Some(!free), pid)
}
