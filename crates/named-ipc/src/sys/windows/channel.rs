//! The shared-memory channel's OS side on Windows.
//!
//! The server creates an unnamed section and four auto-reset events and sends
//! their handle values *in its own process* in the hello. The client opens the
//! pipe's server process — its pid comes from `GetNamedPipeServerProcessId`, the
//! peer the pipe connected us to (and whose user `connect` checked), never from
//! the message — with `PROCESS_DUP_HANDLE`, duplicates each value out of it
//! with only the rights it needs, checks each object's type (`Section`,
//! `Event`) and that the section is plain memory of the size the hello gives,
//! closes the `PROCESS_DUP_HANDLE` handle, and answers `ok`. The server's
//! handles are its own, open for the whole connection, and the server waits for
//! that `ok` before `accept` returns, so the values cannot be closed and reused
//! for other objects while the client takes them.
//!
//! A client never adopts a number as a handle of its own: a hostile server can
//! neither make it use objects the server does not have nor make it close
//! handles it owns. Every handle the client took is an `OwnedHandle`, closed on
//! any failure.
//!
//! Each side then waits on its event together with the peer's process handle
//! (`SYNCHRONIZE` only), so a peer that dies wakes it at once. `WaitOnAddress`
//! does not cross processes. An async end waits on the same two objects
//! through thread-pool waits ([`AsyncDoze`], the async pipe driver's
//! mechanism), so no runtime thread is parked per connection, and blocking
//! and async ends wake each other the same way (`SetEvent`).

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use windows_sys::Win32::Foundation::{DuplicateHandle, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Memory::{SECTION_MAP_READ, SECTION_MAP_WRITE, SECTION_QUERY};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentProcess, SetEvent, WaitForMultipleObjects, WaitForSingleObject,
    EVENT_MODIFY_STATE, PROCESS_DUP_HANDLE, PROCESS_SYNCHRONIZE,
};

use super::pipe::Stream;
use super::process;
use super::shm::Mapping;
use super::{object_type, owned, raw};
use crate::channel::flow::Bells;
use crate::channel::header::Hello;
use crate::sys::Wait;

/// Nothing travels beside the hello message on Windows: handle values are in it.
pub(crate) type Attachment = ();

/// Wake-up objects of an end's own: none on Windows, where every end waits
/// on the server's events (an async end through thread-pool waits).
pub(crate) struct Wakers;

impl Wakers {
    pub(crate) fn new(_reactor: bool) -> io::Result<Wakers> {
        Ok(Wakers)
    }

    /// How many wake-up descriptors go to the peer: none.
    pub(crate) fn count(&self) -> u32 {
        0
    }
}

/// The peer must announce no wake-up descriptors on Windows.
fn no_wakers(announced: u32, who: &str) -> io::Result<()> {
    if announced != 0 {
        return Err(invalid(format!(
            "the {who} announced {announced} wake-up descriptors, which Windows handshakes \
             never carry"
        )));
    }
    Ok(())
}

/// Client side: sends its hello.
pub(crate) fn send_request(
    stream: &Stream,
    hello: &[u8],
    _own: &Wakers,
    wait: Wait,
) -> io::Result<()> {
    stream.send_msg(hello, wait)
}

/// Server side: receives the client's hello.
pub(crate) fn recv_request(stream: &Stream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    let mut msg = Vec::new();
    match stream.recv_msg(&mut msg, wait)? {
        Some(_) => Ok((msg, ())),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client left during the handshake",
        )),
    }
}

/// The client's answer once it has duplicated the server's handles.
const TAKEN: &[u8] = b"ok";

/// `SYNCHRONIZE`: all the peer's process handle is kept for.
const SYNCHRONIZE: u32 = PROCESS_SYNCHRONIZE;

/// The OS half of a channel end's link to its peer: sleeping and waking on
/// the bells, and telling whether the peer process is still there.
pub(crate) struct OsLink {
    /// Auto-reset events: ring 0 data, ring 0 space, ring 1 data, ring 1 space.
    events: Vec<OwnedHandle>,
    /// The peer process (`SYNCHRONIZE` only), signalled when it ends.
    peer: OwnedHandle,
}

impl OsLink {
    pub(crate) fn sleep(&self, bell: usize, _word: &AtomicU32, _seen: u32, timeout: Duration) {
        let handles = [raw(&self.events[bell]), raw(&self.peer)];
        let ms = timeout.as_millis().clamp(1, u128::from(u32::MAX - 1)) as u32;
        // SAFETY: two valid handles we own; the result is re-checked by callers.
        unsafe { WaitForMultipleObjects(2, handles.as_ptr(), 0, ms) };
    }

    pub(crate) fn wake(&self, bell: usize, _word: &AtomicU32) {
        // SAFETY: an event handle we own.
        unsafe { SetEvent(raw(&self.events[bell])) };
    }

    pub(crate) fn peer_gone(&self) -> bool {
        // SAFETY: a process handle we own, polled without waiting.
        unsafe { WaitForSingleObject(raw(&self.peer), 0) == WAIT_OBJECT_0 }
    }
}

fn auto_event() -> io::Result<OwnedHandle> {
    // SAFETY: an unnamed auto-reset event, not signalled.
    owned(
        unsafe { CreateEventW(std::ptr::null(), 0, 0, std::ptr::null()) },
        std::ptr::null_mut(),
    )
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Server side: creates the events, sends the hello naming the section and the
/// events by their values in this process, and waits (per `wait`) until the
/// client says it has duplicated them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_hello(
    stream: &Stream,
    mut hello: Hello,
    seg: &Mapping,
    _own: Wakers,
    _peer: Attachment,
    peer_wakers: u32,
    _bells: Bells,
    wait: Wait,
) -> io::Result<OsLink> {
    no_wakers(peer_wakers, "client")?;
    let pid = stream.peer_pid()?;
    let client = process::open(pid, SYNCHRONIZE, "the channel client")?;
    let events = (0..4)
        .map(|_| auto_event())
        .collect::<io::Result<Vec<_>>>()?;
    hello.handles = std::iter::once(seg.section())
        .chain(events.iter().map(raw))
        .map(|h| h as usize as u64)
        .collect();
    stream.send_msg(&hello.encode(), wait)?;
    // Until the client answers, the values must keep naming these objects:
    // they are ours and stay open, and `accept` (whose caller could drop them)
    // does not return before.
    let mut reply = Vec::new();
    match stream.recv_msg(&mut reply, wait)? {
        Some(_) if reply == TAKEN => Ok(OsLink {
            events,
            peer: client,
        }),
        Some(n) => Err(invalid(format!(
            "the client answered the channel handshake with {n} bytes instead of \"ok\""
        ))),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client left during the channel handshake (it refused or could not \
             take the channel's handles)",
        )),
    }
}

/// Client side: receives the hello.
pub(crate) fn recv_hello(stream: &Stream, wait: Wait) -> io::Result<(Vec<u8>, Attachment)> {
    let mut msg = Vec::new();
    match stream.recv_msg(&mut msg, wait)? {
        Some(_) => Ok((msg, ())),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the pipe during the handshake",
        )),
    }
}

/// Duplicates handle `value` out of the server process into ours with `access`
/// and checks that it is an object of type `ty`. `what` names the slot in
/// errors. A bogus value fails here with `InvalidData` (or `PermissionDenied`)
/// and touches nothing of ours.
fn take(
    server: &OwnedHandle,
    value: u64,
    access: u32,
    ty: &str,
    what: &str,
) -> io::Result<OwnedHandle> {
    let refuse = |kind, why: String| {
        io::Error::new(
            kind,
            format!("the channel server named handle {value:#x} as its {what}, but {why}"),
        )
    };
    // Real handle values are small positive numbers; NULL and the
    // pseudo-handles (-1 the process itself, -2 its thread, ...) are not
    // objects to take.
    if value == 0 || value > 0x7fff_ffff {
        return Err(refuse(
            io::ErrorKind::InvalidData,
            "that is not a handle value".into(),
        ));
    }
    let mut h: HANDLE = std::ptr::null_mut();
    // SAFETY: DuplicateHandle reads the server's handle table through our
    // PROCESS_DUP_HANDLE handle and creates a new handle in this process,
    // which `owned` takes below; nothing of ours is touched if it fails.
    let ok = unsafe {
        DuplicateHandle(
            raw(server),
            value as usize as HANDLE,
            GetCurrentProcess(),
            &mut h,
            access,
            0,
            0,
        )
    };
    if ok == 0 {
        let e = io::Error::last_os_error();
        // A server killed mid-handshake fails duplication too: that is the
        // server leaving, not a bogus handle.
        if process::ends_soon(server) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the channel server ended during the handshake",
            ));
        }
        let kind = match e.kind() {
            io::ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::InvalidData,
        };
        return Err(refuse(
            kind,
            format!("it cannot be duplicated out of the server process ({e})"),
        ));
    }
    let h = owned(h, std::ptr::null_mut())?;
    let found =
        object_type(raw(&h)).map_err(|e| refuse(io::ErrorKind::InvalidData, format!("{e}")))?;
    if found != ty {
        return Err(refuse(
            io::ErrorKind::InvalidData,
            format!("it is an object of type {found}, not {ty}"),
        ));
    }
    Ok(h)
}

/// Client side: duplicates the section and the events out of the pipe's
/// server process, maps the section, answers `ok`, and keeps only
/// `SYNCHRONIZE` on the server process.
pub(crate) fn attach(
    stream: &Stream,
    _attachment: Attachment,
    hello: &Hello,
    _own: Wakers,
    _bells: Bells,
    wait: Wait,
) -> io::Result<(Mapping, OsLink)> {
    no_wakers(hello.wakers, "server")?;
    if hello.handles.len() != 5 {
        return Err(invalid(format!(
            "the channel handshake carries {} handles, not 5",
            hello.handles.len()
        )));
    }
    // The pipe's own record of its server, not the number in the message.
    let pid = stream.peer_pid()?;
    if pid != hello.server_pid {
        return Err(invalid(format!(
            "the channel handshake names process {}, but the pipe's server is process {pid}",
            hello.server_pid
        )));
    }
    let server = process::open(pid, PROCESS_DUP_HANDLE | SYNCHRONIZE, "the channel server")
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return e;
            }
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open the channel server's process (pid {pid}) to take its shared \
                 handles: {e}; run the server as this user, at the same or a lower elevation"
                ),
            )
        })?;
    let section = take(
        &server,
        hello.handles[0],
        SECTION_MAP_READ | SECTION_MAP_WRITE | SECTION_QUERY,
        "Section",
        "shared section",
    )?;
    let events = hello.handles[1..]
        .iter()
        .map(|&v| {
            take(
                &server,
                v,
                EVENT_MODIFY_STATE | SYNCHRONIZE,
                "Event",
                "event",
            )
        })
        .collect::<io::Result<Vec<_>>>()?;
    let map = Mapping::from_section(section, hello.segment_len).map_err(|e| {
        invalid(format!(
            "the channel server named handle {:#x} as its shared section, but it cannot be \
             mapped as {} bytes of memory: {e}",
            hello.handles[0], hello.segment_len
        ))
    })?;
    // Keep only SYNCHRONIZE on the server, on the very process object we
    // opened; PROCESS_DUP_HANDLE closes with `server` below.
    let mut peer: HANDLE = std::ptr::null_mut();
    // SAFETY: duplicating our own process handle within our process, with
    // less access; `owned` takes the copy.
    super::cvt(unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            raw(&server),
            GetCurrentProcess(),
            &mut peer,
            SYNCHRONIZE,
            0,
            0,
        )
    })?;
    let peer = owned(peer, std::ptr::null_mut())?;
    drop(server);
    stream.send_msg(TAKEN, wait)?;
    Ok((map, OsLink { events, peer }))
}

/// How a task of an async channel end sleeps on one bell: thread-pool waits
/// on the bell's event (for the connection's life: an auto-reset event is
/// reset by each satisfied wait) and on the peer's process handle (once: it
/// stays signalled), so a ring and the peer's death each wake the task at
/// once, and no runtime thread waits.
#[cfg(feature = "tokio")]
pub(crate) struct AsyncDoze {
    // The waits are declared before the handles they wait on: dropped (and
    // unregistered, waiting for a running callback) first.
    on_event: super::pool_wait::PoolWait,
    on_peer: super::pool_wait::PoolWait,
    recheck: crate::sys::Recheck,
    _event: OwnedHandle,
    _peer: OwnedHandle,
}

#[cfg(feature = "tokio")]
impl AsyncDoze {
    /// For bell `bell`. Registers the waits on duplicates of the link's
    /// handles, which this value owns.
    pub(crate) fn new(link: &OsLink, bell: usize) -> io::Result<AsyncDoze> {
        use super::pool_wait::{PoolWait, Times};
        let dup = |h: &OwnedHandle| h.try_clone();
        let event = dup(&link.events[bell])?;
        let peer = dup(&link.peer)?;
        let mut on_event = PoolWait::new();
        let mut on_peer = PoolWait::new();
        // SAFETY: both handles are owned by the AsyncDoze and outlive the
        // waits (field order: the waits are dropped first).
        unsafe {
            on_event.register(raw(&event), Times::Every)?;
            on_peer.register(raw(&peer), Times::Once)?;
        }
        Ok(AsyncDoze {
            on_event,
            on_peer,
            recheck: crate::sys::Recheck::new(crate::channel::flow::PEER_CHECK),
            _event: event,
            _peer: peer,
        })
    }
}

#[cfg(feature = "tokio")]
impl crate::channel::flow::Doze for AsyncDoze {
    fn poll_doze(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // Wakers first, then the marks: a signal in between wakes us.
        self.on_event.set_waker(cx.waker());
        self.on_peer.set_waker(cx.waker());
        // The peer's mark stays: once gone, every later poll says so.
        if self.on_event.take_fired() || self.on_peer.fired() {
            return std::task::Poll::Ready(());
        }
        // A wake-up missed (see `Recheck`) costs at most a period.
        self.recheck.poll(cx)
    }
}
