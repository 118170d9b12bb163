//! Windows backend: native named pipes, overlapped I/O, DACLs from SDDL.
#![allow(unsafe_code)]

#[cfg(feature = "bench-support")]
pub(crate) mod affinity;
#[cfg(not(loom))]
pub(crate) mod channel;
pub(crate) mod flag;
pub(crate) mod pipe;
#[cfg(feature = "tokio")]
pub(crate) mod pool_wait;
pub(crate) mod process;
pub(crate) mod security;
pub(crate) mod shm;
pub(crate) mod sync;

use std::cell::UnsafeCell;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_BROKEN_PIPE, ERROR_FILE_INVALID, ERROR_INVALID_NAME, ERROR_IO_PENDING,
    ERROR_MORE_DATA, ERROR_NO_DATA, ERROR_OPERATION_ABORTED, ERROR_PIPE_BUSY,
    ERROR_PRIVILEGE_NOT_HELD, ERROR_SEM_TIMEOUT, HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, SetEvent, WaitForMultipleObjects, WaitForSingleObject, INFINITE,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

use crate::error::ErrorKind;
use crate::sys::Wait;

/// Windows error codes that deserve a specific [`ErrorKind`].
pub(crate) fn classify_os_error(e: &io::Error) -> Option<ErrorKind> {
    let code = u32::try_from(e.raw_os_error()?).ok()?;
    Some(match code {
        ERROR_PIPE_BUSY => ErrorKind::Busy,
        ERROR_SEM_TIMEOUT => ErrorKind::TimedOut,
        ERROR_PRIVILEGE_NOT_HELD => ErrorKind::PermissionDenied,
        ERROR_INVALID_NAME => ErrorKind::InvalidName,
        ERROR_BROKEN_PIPE | ERROR_NO_DATA => ErrorKind::Disconnected,
        ERROR_FILE_INVALID => ErrorKind::InvalidInput,
        _ => return None,
    })
}

/// A user: the SID in string form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UserRepr(pub(crate) String);

impl UserRepr {
    pub(crate) fn current() -> io::Result<UserRepr> {
        security::current_user_sid().map(UserRepr)
    }

    /// A SID in string form, normalised the way Windows writes it.
    pub(crate) fn parse(s: &str) -> io::Result<UserRepr> {
        security::normalize_sid(s).map(UserRepr)
    }
}

impl std::fmt::Display for UserRepr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A NUL-terminated UTF-16 copy of `s`.
pub(crate) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// Turns a `FALSE` return into the thread's last error.
pub(crate) fn cvt(ok: i32) -> io::Result<()> {
    if ok == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Takes ownership of a handle returned by the OS, where `invalid` (NULL or
/// `INVALID_HANDLE_VALUE`, depending on the function) means failure.
pub(crate) fn owned(h: HANDLE, invalid: HANDLE) -> io::Result<OwnedHandle> {
    if h == invalid {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the OS just returned this handle to us; nothing else owns it.
        Ok(unsafe { OwnedHandle::from_raw_handle(h) })
    }
}

pub(crate) fn raw(h: &OwnedHandle) -> HANDLE {
    h.as_raw_handle() as HANDLE
}

#[repr(C)]
struct UnicodeString {
    /// In bytes.
    length: u16,
    maximum_length: u16,
    buffer: *const u16,
}

/// `ObjectTypeInformation` of `NtQueryObject`.
const OBJECT_TYPE_INFORMATION: u32 = 2;

#[link(name = "ntdll")]
extern "system" {
    fn NtQueryObject(
        handle: HANDLE,
        class: u32,
        info: *mut std::ffi::c_void,
        len: u32,
        returned: *mut u32,
    ) -> i32;
}

/// The kernel type name of the object behind `h`: `Event`, `Section`,
/// `Process`, `File`, … (`NtQueryObject`, `ObjectTypeInformation`). For
/// checking handles that came from another process.
pub(crate) fn object_type(h: HANDLE) -> io::Result<String> {
    // PUBLIC_OBJECT_TYPE_INFORMATION: a UNICODE_STRING pointing into the same
    // buffer, 22 reserved ULONGs, then the name. u64 elements for alignment.
    let mut buf = [0u64; 128];
    let size = std::mem::size_of_val(&buf);
    // SAFETY: buf is writable for `size` bytes; the returned length is not needed.
    let status = unsafe {
        NtQueryObject(
            h,
            OBJECT_TYPE_INFORMATION,
            buf.as_mut_ptr().cast(),
            size as u32,
            std::ptr::null_mut(),
        )
    };
    if status < 0 {
        return Err(io::Error::other(format!(
            "cannot read the type of a handle (NtQueryObject status {status:#x})"
        )));
    }
    // SAFETY: on success the buffer starts with the UNICODE_STRING; buf is
    // 8-aligned, as the struct needs.
    let name = unsafe { &*(buf.as_ptr() as *const UnicodeString) };
    let start = buf.as_ptr() as usize;
    let (p, bytes) = (name.buffer as usize, usize::from(name.length));
    // Read the name only where it lies inside our buffer.
    if p < start || p % 2 != 0 || p + bytes > start + size {
        return Err(io::Error::other(
            "NtQueryObject returned a type name outside its buffer",
        ));
    }
    // SAFETY: in bounds of buf (checked above), 2-aligned, initialised u64s.
    let units = unsafe { std::slice::from_raw_parts(name.buffer, bytes / 2) };
    Ok(String::from_utf16_lossy(units))
}

/// A wait's time left as a Win32 timeout in milliseconds (`INFINITE` for
/// none), rounded up so that a short wait never becomes a spin.
pub(crate) fn wait_ms(wait: Wait) -> u32 {
    match wait.remaining_ms_ceil() {
        None => INFINITE,
        Some(ms) => ms.min(u64::from(INFINITE - 1)) as u32,
    }
}

/// A manual-reset event, initially not signalled.
pub(crate) fn manual_event() -> io::Result<OwnedHandle> {
    // SAFETY: no security attributes, no name: a private event.
    let h = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    owned(h, std::ptr::null_mut())
}

/// An `OVERLAPPED` with its own event, at a stable address.
///
/// The kernel writes to the structure while an operation is in flight, so it is
/// only touched through raw pointers, and an owner with an operation in flight
/// must complete or cancel it before dropping this.
pub(crate) struct Overlapped {
    ov: Box<UnsafeCell<OVERLAPPED>>,
    /// Shared only with threads that wait on it ([`Overlapped::shared_event`]).
    event: Arc<OwnedHandle>,
}

// SAFETY: the OVERLAPPED holds only integers and the event handle; which thread
// waits on it does not matter. Access is serialised by the owner (a Mutex).
unsafe impl Send for Overlapped {}

/// An [`Overlapped`]'s completion event, held by a thread that waits on it.
pub(crate) struct SharedEvent(Arc<OwnedHandle>);

impl SharedEvent {
    /// Waits per `wait` for the event, or for `extra` (an event) if given:
    /// `Ok(Some(true))` the event, `Ok(Some(false))` `extra`, `Ok(None)` the
    /// wait ran out.
    pub(crate) fn wait(&self, wait: Wait, extra: Option<HANDLE>) -> io::Result<Option<bool>> {
        let ms = wait_ms(wait);
        let handles = [raw(&self.0), extra.unwrap_or_default()];
        let n = if extra.is_some() { 2 } else { 1 };
        // SAFETY: `n` valid event handles (ours, kept alive by the Arc, and
        // the caller's live one); nothing is written.
        match unsafe { WaitForMultipleObjects(n, handles.as_ptr(), 0, ms) } {
            WAIT_OBJECT_0 => Ok(Some(true)),
            r if n == 2 && r == WAIT_OBJECT_0 + 1 => Ok(Some(false)),
            WAIT_TIMEOUT => Ok(None),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

/// The result of starting an overlapped operation.
pub(crate) enum Started {
    /// Finished at once: bytes transferred, and whether more data is left in the
    /// message (`ERROR_MORE_DATA`).
    Done(u32, bool),
    /// In flight; complete it with [`Overlapped::wait`] or [`Overlapped::cancel`].
    Pending,
}

impl Overlapped {
    pub(crate) fn new() -> io::Result<Overlapped> {
        let event = manual_event()?;
        // SAFETY: OVERLAPPED is plain data; all-zero is its documented initial state.
        let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
        ov.hEvent = raw(&event);
        Ok(Overlapped {
            ov: Box::new(UnsafeCell::new(ov)),
            event: Arc::new(event),
        })
    }

    pub(crate) fn ptr(&self) -> *mut OVERLAPPED {
        self.ov.get()
    }

    /// The manual-reset event the kernel signals when an operation completes.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn event(&self) -> HANDLE {
        raw(&self.event)
    }

    /// Starts an operation: `start` is the API call, given our OVERLAPPED.
    ///
    /// # Safety
    /// No operation may be in flight on this OVERLAPPED, and every buffer `start`
    /// hands to the OS must stay valid until the operation is complete (returned
    /// `Done`, or `wait` returned `Some`, or `cancel` returned).
    pub(crate) unsafe fn start(
        &self,
        h: HANDLE,
        start: impl FnOnce(*mut OVERLAPPED) -> i32,
    ) -> io::Result<Started> {
        let p = self.ptr();
        // SAFETY: no operation is in flight (caller's contract), so we may reset
        // the fields the kernel uses, keeping hEvent.
        unsafe {
            (*p).Internal = 0;
            (*p).InternalHigh = 0;
            (*p).Anonymous = std::mem::zeroed();
        }
        if start(p) != 0 {
            return self.outcome(h, false).map(|r| match r {
                Some((n, more)) => Started::Done(n, more),
                None => Started::Pending,
            });
        }
        // SAFETY: reading the calling thread's last error has no preconditions.
        match unsafe { GetLastError() } {
            ERROR_IO_PENDING => Ok(Started::Pending),
            ERROR_MORE_DATA => self.outcome(h, false).map(|r| match r {
                Some((n, _)) => Started::Done(n, true),
                None => Started::Pending,
            }),
            code => Err(io::Error::from_raw_os_error(code as i32)),
        }
    }

    /// Result of a finished (or, with `block`, any) operation that went
    /// pending; `None` if still in flight. Once it reports the operation
    /// over, the event has been set too (see [`settle`](Self::settle)), so
    /// this OVERLAPPED may start another one.
    pub(crate) fn result(&self, h: HANDLE, block: bool) -> io::Result<Option<(u32, bool)>> {
        let r = self.outcome(h, block);
        if !matches!(r, Ok(None)) {
            self.settle();
        }
        r
    }

    /// Waits (bounded) for the event of an operation seen complete through
    /// its status word rather than its event. The system writes the status
    /// first and sets the event after (under Wine a server round trip
    /// later): reused before that, this OVERLAPPED's next operation could
    /// have its event set by the previous one's late signal, its wait end
    /// early, and `GetOverlappedResult` report it done (Wine: "pending"
    /// counts as success after a wait) while the kernel still writes its
    /// buffer. A pending operation's completion always sets the event; the
    /// bound only keeps a system that failed to from hanging us.
    fn settle(&self) {
        const SETTLE_MS: u32 = 10_000;
        // SAFETY: waiting on our own event handle.
        unsafe { WaitForSingleObject(raw(&self.event), SETTLE_MS) };
    }

    /// Signals the event, for threads holding a [`SharedEvent`] of it, when
    /// this OVERLAPPED leaves their reach (handed on or dropped): their wait
    /// ends and they look again, instead of waiting on an event nothing
    /// will set any more.
    pub(crate) fn release_event_holders(&self) {
        if self.event_is_shared() {
            // SAFETY: setting our own event.
            unsafe { SetEvent(raw(&self.event)) };
        }
    }

    /// What `GetOverlappedResult` says, without [`settle`](Self::settle):
    /// for an operation that completed synchronously, or one whose event
    /// was seen set.
    pub(crate) fn outcome(&self, h: HANDLE, block: bool) -> io::Result<Option<(u32, bool)>> {
        let mut n = 0u32;
        // SAFETY: our OVERLAPPED is valid; n is a valid out-pointer.
        let ok = unsafe { GetOverlappedResult(h, self.ptr(), &mut n, i32::from(block)) };
        if ok != 0 {
            return Ok(Some((n, false)));
        }
        // SAFETY: as above.
        match unsafe { GetLastError() } {
            ERROR_MORE_DATA => Ok(Some((n, true))),
            windows_sys::Win32::Foundation::ERROR_IO_INCOMPLETE => Ok(None),
            code => Err(io::Error::from_raw_os_error(code as i32)),
        }
    }

    /// Waits for the in-flight operation per `wait`. `Ok(None)`: still in flight.
    pub(crate) fn wait(&self, h: HANDLE, wait: Wait) -> io::Result<Option<(u32, bool)>> {
        let ms = wait_ms(wait);
        // SAFETY: waiting on our own event handle.
        match unsafe { WaitForSingleObject(raw(&self.event), ms) } {
            // The event is set: the operation is over (and settled).
            WAIT_OBJECT_0 => self.outcome(h, true),
            WAIT_TIMEOUT => Ok(None),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// The completion event, for threads that wait on an operation another
    /// thread owns (and may finish, or hand on, meanwhile): they keep the
    /// event alive, and touch neither the OVERLAPPED nor the file handle.
    pub(crate) fn shared_event(&self) -> SharedEvent {
        SharedEvent(Arc::clone(&self.event))
    }

    /// Whether a [`SharedEvent`] of this OVERLAPPED is still held elsewhere:
    /// then the event must not be reused for another operation (a thread
    /// about to wait on it would wait for that one instead). Exact when no
    /// new `SharedEvent` can be made meanwhile (the owner's lock is held or
    /// the owner is the only one left with access).
    pub(crate) fn event_is_shared(&self) -> bool {
        Arc::strong_count(&self.event) > 1
    }

    /// Cancels the in-flight operation and waits until it is over. Returns its
    /// result if it completed before the cancel took effect, the bytes it
    /// transferred before the cancel if any (a write a reader had already
    /// taken part of), or else an `ERROR_OPERATION_ABORTED` error.
    pub(crate) fn cancel(&self, h: HANDLE) -> io::Result<(u32, bool)> {
        // SAFETY: cancelling our own operation on a handle we own.
        unsafe { CancelIoEx(h, self.ptr()) };
        let mut n = 0u32;
        // SAFETY: our OVERLAPPED is valid; n is a valid out-pointer; waits
        // until the operation is over, so the kernel is done with its buffer.
        let ok = unsafe { GetOverlappedResult(h, self.ptr(), &mut n, 1) };
        // SAFETY: reading the calling thread's last error.
        let err = unsafe { GetLastError() };
        // It may have completed before the cancel, seen through its status.
        self.settle();
        if ok != 0 {
            return Ok((n, false));
        }
        match err {
            ERROR_MORE_DATA => Ok((n, true)),
            // The count is valid for an aborted operation: what moved before.
            ERROR_OPERATION_ABORTED if n > 0 => Ok((n, false)),
            code => Err(io::Error::from_raw_os_error(code as i32)),
        }
    }

    /// For an owner letting go of an operation whose handle may already be
    /// closed (a future dropped while a runtime shuts down): cancels it —
    /// by its `OVERLAPPED`, so a closed or reused handle value cancels
    /// nothing else — and waits up to `ms` for the kernel to be done with
    /// it. `false`: not done; the caller must then leak this value and the
    /// operation's buffer rather than free memory the kernel may still write.
    #[cfg(feature = "tokio")]
    pub(crate) fn abandon(&self, h: HANDLE, ms: u32) -> bool {
        const STATUS_PENDING: usize = 0x103;
        // SAFETY: cancelling by our OVERLAPPED pointer touches only our
        // operation; an invalid handle makes the call fail harmlessly.
        unsafe { CancelIoEx(h, self.ptr()) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms.into());
        loop {
            // SAFETY: the kernel writes the status word; read it without
            // forming a reference.
            let status = unsafe { std::ptr::addr_of!((*self.ptr()).Internal).read_volatile() };
            if status != STATUS_PENDING {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            // The completion signals our event (also when the handle's close
            // cancelled the operation); the status is what says it is over.
            let slice = left.as_millis().clamp(1, 50) as u32;
            // SAFETY: waiting on our own event handle.
            unsafe { WaitForSingleObject(raw(&self.event), slice) };
        }
    }

    /// Starts an operation and waits for it per `wait`; if the wait runs out the
    /// operation is cancelled and, if it really did not complete, the wait's
    /// error (`WouldBlock`/`TimedOut`) is returned.
    ///
    /// # Safety
    /// As for [`start`](Self::start); the buffers need only outlive this call.
    pub(crate) unsafe fn run(
        &self,
        h: HANDLE,
        wait: Wait,
        start: impl FnOnce(*mut OVERLAPPED) -> i32,
    ) -> io::Result<(u32, bool)> {
        // SAFETY: forwarded contract; we complete or cancel before returning.
        match unsafe { self.start(h, start) }? {
            Started::Done(n, more) => Ok((n, more)),
            Started::Pending => match self.wait(h, wait)? {
                Some(r) => Ok(r),
                None => match self.cancel(h) {
                    Err(e) if e.raw_os_error() == Some(ERROR_OPERATION_ABORTED as i32) => {
                        Err(wait.expired_error())
                    }
                    other => other,
                },
            },
        }
    }
}

/// The directory of owner records (see `crate::registry`):
/// `%LOCALAPPDATA%\named-ipc\objects`, private to the user like its parent.
pub(crate) fn registry_dir() -> io::Result<std::path::PathBuf> {
    let dir = std::env::var_os("LOCALAPPDATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("named-ipc")
        .join("objects");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Opens (creating it if needed) a lock file of the owner registry. `None`:
/// the file is being deleted (an open of a delete-pending file is denied), so
/// try again shortly.
pub(crate) fn open_lock_file(path: &std::path::Path) -> io::Result<Option<std::fs::File>> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(None),
        Err(e) => Err(e),
    }
}

/// Volume serial number and file index of an open file.
fn file_id(f: &std::fs::File) -> io::Result<crate::sys::ObjectId> {
    use windows_sys::Win32::Storage::FileSystem::{
        GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION,
    };
    // SAFETY: all-zero is a valid BY_HANDLE_FILE_INFORMATION.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: f is an open file handle; info is a valid out-pointer.
    cvt(unsafe { GetFileInformationByHandle(f.as_raw_handle(), &mut info) })?;
    Ok(crate::sys::ObjectId {
        dev: u64::from(info.dwVolumeSerialNumber),
        ino: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    })
}

/// Whether `path` still names the file `f` is open on.
pub(crate) fn same_file(f: &std::fs::File, path: &std::path::Path) -> io::Result<bool> {
    let other = match std::fs::File::open(path) {
        Ok(o) => o,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(e),
    };
    Ok(file_id(f)? == file_id(&other)?)
}

/// No cross-process futex on Windows (`WaitOnAddress` is per process): the
/// bench uses events there; this only sleeps briefly.
#[cfg(feature = "bench-support")]
pub(crate) fn bench_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<std::time::Duration>,
) {
    if word.load(std::sync::atomic::Ordering::Acquire) == expected {
        std::thread::sleep(
            timeout
                .unwrap_or(std::time::Duration::from_millis(1))
                .min(std::time::Duration::from_millis(1)),
        );
    }
}

#[cfg(feature = "bench-support")]
pub(crate) fn bench_wake(_word: &std::sync::atomic::AtomicU32) {}
