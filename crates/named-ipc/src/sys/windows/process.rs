//! The peer process: opening it by pid, and telling a peer that is ending
//! from one that refuses us.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::time::Duration;

use windows_sys::Win32::Foundation::{ERROR_INVALID_PARAMETER, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{OpenProcess, WaitForSingleObject};

use super::{owned, raw};

/// Opens process `pid` with `access`. A pid that names no process any more
/// (the peer ended) is `BrokenPipe`, as a closed pipe is; `peer` names it in
/// that error ("the channel server").
pub(crate) fn open(pid: u32, access: u32, peer: &str) -> io::Result<OwnedHandle> {
    // SAFETY: plain OpenProcess; the handle is owned below.
    owned(unsafe { OpenProcess(access, 0, pid) }, std::ptr::null_mut()).map_err(|e| {
        if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) {
            ended(peer, pid)
        } else {
            e
        }
    })
}

/// How long a failed operation on a peer process waits to see whether the
/// peer is ending: a process being terminated refuses handle duplication and
/// token queries (`Access denied`, `Invalid handle`) a moment before its
/// handle is signalled.
const ENDING: Duration = Duration::from_millis(200);

/// Whether `process` (opened with `SYNCHRONIZE`) ended, or ends within
/// [`ENDING`].
pub(crate) fn ends_soon(process: &OwnedHandle) -> bool {
    let ms = ENDING.as_millis() as u32;
    // SAFETY: a process handle we own; waiting needs only SYNCHRONIZE.
    unsafe { WaitForSingleObject(raw(process), ms) == WAIT_OBJECT_0 }
}

/// `BrokenPipe`: `peer` (process `pid`) ended while we were talking to it.
pub(crate) fn ended(peer: &str, pid: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!("{peer} (process {pid}) ended while this end was setting up the connection"),
    )
}
