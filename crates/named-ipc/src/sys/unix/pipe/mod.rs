//! Pipes on Unix: `SOCK_STREAM` Unix domain sockets.
//!
//! - [`socket`]: a pipe's address, socket creation, readiness waits and the
//!   send/receive calls.
//! - [`lockfile`]: the name lock. A listener holds an exclusive `flock` on
//!   `<socket>.lock` (which also records its pid) for its lifetime: that lock
//!   is how a second server learns the name is taken, and how a leftover
//!   socket of a crashed server is recognised and reclaimed.
//! - [`listener`] and [`stream`]: the two ends. Message mode sends each
//!   message as a u32 little-endian length and the payload (see
//!   [`framing`](crate::pipe::framing)).
//! - [`ancillary`]: descriptor passing for the channel handshake.
//! - [`credentials`]: the peer's pid and uid.
//! - `async_io` (feature `tokio`): the same listener and stream registered
//!   with tokio's reactor, driven by readiness with the same framing code.

mod ancillary;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
mod async_io;
#[allow(unsafe_code)]
mod credentials;
mod listener;
mod lockfile;
#[allow(unsafe_code)]
mod socket;
#[allow(unsafe_code)]
mod stream;

use std::ffi::OsStr;
use std::io;

use rustix::fs::{FileType, Stat};

#[cfg(feature = "tokio")]
pub(crate) use async_io::{AsyncListener, AsyncStream, SendOp};
pub(crate) use listener::Listener;
pub(crate) use socket::resolve;
pub(crate) use stream::Stream;

use crate::pipe::PipeEntry;
use crate::sys::unix::{file_type, lstat, runtime_dir};

/// (device, inode): identifies a file across renames and replacements.
// The casts are no-ops on Linux but widen on macOS (dev_t is i32 there).
#[allow(clippy::unnecessary_cast)]
fn file_ident(st: &Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
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
        if file_type(&st) != FileType::Socket {
            continue;
        }
        let name = ent.file_name();
        let (alive, pid) = lockfile::lock_state(&lockfile::lock_path_of(&path));
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
