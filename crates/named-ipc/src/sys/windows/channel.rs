//! The shared-memory channel's OS side on Windows: the server duplicates an
//! unnamed section and four auto-reset events into the client it accepted
//! (found by `GetNamedPipeClientProcessId`, so only that process gets them), and
//! each side waits on its event together with the peer's process handle, so a
//! peer that dies wakes it at once. `WaitOnAddress` does not cross processes.

use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    DuplicateHandle, GetHandleInformation, DUPLICATE_SAME_ACCESS, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentProcess, OpenProcess, SetEvent, WaitForMultipleObjects,
    WaitForSingleObject, PROCESS_DUP_HANDLE, PROCESS_SYNCHRONIZE,
};

use super::shm::Mapping;
use super::{cvt, owned, raw};
use crate::channel::header::Hello;
use crate::pipe::PipeStream;
use crate::sys::Wait;

/// Nothing travels beside the hello message on Windows: handles are in it.
pub(crate) type Attachment = ();

/// Wake-ups and peer liveness for one channel end.
pub(crate) struct Signals {
    /// Auto-reset events: ring 0 data, ring 0 space, ring 1 data, ring 1 space.
    events: Vec<OwnedHandle>,
    /// The peer process, signalled when it ends.
    peer: OwnedHandle,
}

impl Signals {
    pub(crate) fn wait(&self, bell: usize, _word: &AtomicU32, _seen: u32, timeout: Duration) {
        let handles = [raw(&self.events[bell]), raw(&self.peer)];
        let ms = timeout.as_millis().clamp(1, u128::from(u32::MAX - 1)) as u32;
        // SAFETY: two valid handles we own; the result is re-checked by callers.
        unsafe { WaitForMultipleObjects(2, handles.as_ptr(), 0, ms) };
    }

    pub(crate) fn ring(&self, bell: usize, _word: &AtomicU32) {
        // SAFETY: an event handle we own.
        unsafe { SetEvent(raw(&self.events[bell])) };
    }

    pub(crate) fn peer_gone(&self) -> bool {
        // SAFETY: a process handle we own, polled without waiting.
        unsafe { WaitForSingleObject(raw(&self.peer), 0) == WAIT_OBJECT_0 }
    }
}

fn open_process(pid: u32, access: u32) -> io::Result<OwnedHandle> {
    // SAFETY: plain OpenProcess; the handle is owned below.
    owned(unsafe { OpenProcess(access, 0, pid) }, std::ptr::null_mut())
}

fn auto_event() -> io::Result<OwnedHandle> {
    // SAFETY: an unnamed auto-reset event, not signalled.
    owned(
        unsafe { CreateEventW(std::ptr::null(), 0, 0, std::ptr::null()) },
        std::ptr::null_mut(),
    )
}

/// Server side: duplicates the section and fresh events into the client,
/// writes their values into the hello, sends it.
pub(crate) fn send_hello(
    stream: &PipeStream,
    mut hello: Hello,
    seg: &Mapping,
) -> io::Result<Signals> {
    let client = open_process(stream.peer_pid()?, PROCESS_DUP_HANDLE | PROCESS_SYNCHRONIZE)?;
    let events = (0..4)
        .map(|_| auto_event())
        .collect::<io::Result<Vec<_>>>()?;
    let dup = |h: HANDLE| -> io::Result<u64> {
        let mut target: HANDLE = std::ptr::null_mut();
        // SAFETY: duplicating our own handle into the client process; the copy
        // belongs to the client from now on.
        cvt(unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                h,
                raw(&client),
                &mut target,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        })?;
        Ok(target as usize as u64)
    };
    hello.handles = vec![dup(seg.section())?];
    for e in &events {
        hello.handles.push(dup(raw(e))?);
    }
    stream.send(&hello.encode())?;
    Ok(Signals {
        events,
        peer: client,
    })
}

/// Client side: receives the hello.
pub(crate) fn recv_hello(stream: &PipeStream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    if let Some(d) = wait.remaining() {
        stream.set_read_timeout(Some(d.max(Duration::from_millis(1))))?;
    }
    let msg = stream.recv();
    stream.set_read_timeout(None)?;
    match msg? {
        Some(m) => Ok((m, ())),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the pipe during the handshake",
        )),
    }
}

/// Takes ownership of a handle value the server duplicated into us, after
/// checking that it is an open handle here.
fn adopt(value: u64) -> io::Result<OwnedHandle> {
    let h = value as usize as HANDLE;
    let mut flags = 0u32;
    // SAFETY: only queries the handle table; fails for values that are not open.
    if value == 0 || unsafe { GetHandleInformation(h, &mut flags) } == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("handle {value} from the server is not open"),
        ));
    }
    // SAFETY: the server duplicated this handle into our process for us alone.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// Client side: maps the section and adopts the events named in the hello.
pub(crate) fn attach(
    stream: &PipeStream,
    _attachment: Attachment,
    handles: &[u64],
    server_pid: u32,
    _segment_len: u64,
) -> io::Result<(Mapping, Signals)> {
    if handles.len() != 5 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the handshake must carry 5 handles",
        ));
    }
    if stream.peer_pid()? != server_pid {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the handshake names another process than the pipe's server",
        ));
    }
    let peer = open_process(server_pid, PROCESS_SYNCHRONIZE)?;
    let section = adopt(handles[0])?;
    let events = handles[1..]
        .iter()
        .map(|&h| adopt(h))
        .collect::<io::Result<Vec<_>>>()?;
    let map = Mapping::from_section(section)?;
    Ok((map, Signals { events, peer }))
}
