//! Native Windows named pipes, always opened for overlapped I/O so that reads,
//! writes and accepts can time out, be nonblocking, and run concurrently from
//! two threads on one handle.

#[cfg(feature = "tokio")]
mod async_io;
mod credentials;
mod listener;
mod stream;

#[cfg(feature = "tokio")]
pub(crate) use async_io::{AsyncListener, AsyncStream, SendOp};
pub(crate) use listener::Listener;
pub(crate) use stream::Stream;

use std::io;

use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    FindClose, FindFirstFileW, FindNextFileW, WIN32_FIND_DATAW,
};

use super::wide;
use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, PIPE_PREFIX};
use crate::pipe::PipeEntry;

/// While a large message arrives, the receive buffer grows by at least this
/// much (or its current length), never past what is left of the message.
pub(super) const GROW_MIN: usize = 64 * 1024;
/// How long a client without a connect timeout waits for a busy pipe: the
/// Windows default `nDefaultTimeOut`, and what Unix clients wait. Never the
/// server's own `nDefaultTimeOut` (`NMPWAIT_USE_DEFAULT_WAIT`), which the
/// server chooses.
pub(super) const BUSY_WAIT_MS: u32 = 50;

/// The whole `\\.\pipe\NAME` string may be at most this many UTF-16 units.
const MAX_NAME: usize = 256;

/// Where a pipe lives: its full `\\.\pipe\NAME`.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    pub(super) full: String,
    pub(super) wide: Vec<u16>,
    /// `\\server\pipe\NAME`: served on another machine.
    remote: bool,
}

impl Addr {
    pub(crate) fn display(&self) -> String {
        self.full.clone()
    }
}

pub(crate) fn resolve(name: &str) -> Result<Addr> {
    let bare = name::pipe_base_name(name, "pipe")?;
    let remote =
        name.starts_with(r"\\") && name::strip_prefix_ignore_case(name, PIPE_PREFIX).is_none();
    let full = if remote {
        // \\server\pipe\NAME: a remote pipe, for clients that ask for one.
        name.to_owned()
    } else {
        name::check_plain(name, bare, "pipe")?;
        format!("{PIPE_PREFIX}{bare}")
    };
    let wide = wide(&full);
    if wide.len() - 1 > MAX_NAME {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "pipe name {name:?} is too long: {full} is {} UTF-16 units and Windows allows \
                 {MAX_NAME}; use a shorter name",
                wide.len() - 1
            ),
        ));
    }
    Ok(Addr { full, wide, remote })
}

pub(super) use crate::lock;

pub(super) fn code(e: &io::Error) -> Option<u32> {
    e.raw_os_error().map(|c| c as u32)
}

/// Every pipe under `\\.\pipe\`.
pub(crate) fn list() -> io::Result<Vec<PipeEntry>> {
    let pattern = wide(&format!("{PIPE_PREFIX}*"));
    // SAFETY: all-zero is a valid WIN32_FIND_DATAW.
    let mut data: WIN32_FIND_DATAW = unsafe { std::mem::zeroed() };
    // SAFETY: pattern is NUL-terminated; data is a valid out-pointer.
    let h = unsafe { FindFirstFileW(pattern.as_ptr(), &mut data) };
    if h == INVALID_HANDLE_VALUE {
        let e = io::Error::last_os_error();
        if code(&e) == Some(ERROR_FILE_NOT_FOUND) {
            return Ok(Vec::new());
        }
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        let n = data
            .cFileName
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(data.cFileName.len());
        let name = String::from_utf16_lossy(&data.cFileName[..n]);
        out.push(PipeEntry {
            os_name: format!("{PIPE_PREFIX}{name}"),
            name,
            server_pid: None,
            alive: Some(true),
        });
        // SAFETY: h is our find handle; data is a valid out-pointer.
        if unsafe { FindNextFileW(h, &mut data) } == 0 {
            break;
        }
    }
    // SAFETY: h is our find handle.
    unsafe { FindClose(h) };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
