//! Named mutexes and events on Windows: the native kernel objects, so plain
//! Win32 programs using `CreateMutex`/`CreateEvent` with the same names join in.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ALREADY_EXISTS, ERROR_INVALID_HANDLE, HANDLE, WAIT_ABANDONED,
    WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateMutexW, OpenEventW, OpenMutexW, ReleaseMutex, ResetEvent, SetEvent,
    WaitForSingleObject, EVENT_MODIFY_STATE, INFINITE, MUTEX_MODIFY_STATE,
    SYNCHRONIZATION_SYNCHRONIZE,
};

use super::security::SecurityDescriptor;
use super::{cvt, owned, raw, wide};
use crate::error::{Error, ErrorKind, Result};
use crate::security::Security;
use crate::sys::{Create, Locked, Wait};

/// `EVENT_QUERY_STATE`: lets NtQueryEvent tell auto- from manual-reset.
const EVENT_QUERY_STATE: u32 = 0x0001;

#[repr(C)]
struct EventBasicInformation {
    event_type: i32,
    event_state: i32,
}

#[link(name = "ntdll")]
extern "system" {
    fn NtQueryEvent(
        event: HANDLE,
        class: u32,
        info: *mut c_void,
        len: u32,
        returned: *mut u32,
    ) -> i32;
}

fn wait_ms(wait: Wait) -> u32 {
    match wait.remaining_ms_ceil() {
        None => INFINITE,
        Some(ms) => ms.min(u64::from(INFINITE - 1)) as u32,
    }
}

/// Maps the outcome of creating or opening a named kernel object.
fn named_result(
    h: HANDLE,
    name: &str,
    os_name: &str,
    kind: &str,
    create: Create,
) -> Result<(OwnedHandle, bool)> {
    // SAFETY: reading the last error right after the call that set it.
    let existed = unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
    let verb = if create == Create::Open {
        "open"
    } else {
        "create"
    };
    let what = format!("cannot {verb} {kind} {name:?} ({os_name})");
    let handle = owned(h, std::ptr::null_mut()).map_err(|e| {
        if e.raw_os_error() == Some(ERROR_INVALID_HANDLE as i32) {
            Error::new(
                ErrorKind::AlreadyExists,
                name,
                format!("{what}: the name belongs to another kind of object (shared memory, a mutex or an event share one namespace)"),
            )
            .with_source(e)
        } else if os_name.starts_with("Global\\") && e.kind() == io::ErrorKind::PermissionDenied {
            Error::from_io(e, name, &what, "creating Global\\ objects needs SeCreateGlobalPrivilege (run as a service or an administrator), or use a Local\\ name")
        } else {
            Error::from_io(e, name, &what, "")
        }
    })?;
    if existed && create == Create::Exclusive {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            name,
            format!("{what}: it already exists; open it instead, or choose another name"),
        ));
    }
    Ok((handle, !existed && create != Create::Open))
}

fn descriptor(name: &str, security: &Security) -> Result<SecurityDescriptor> {
    SecurityDescriptor::default_for(*security == Security::LocalUsers)
        .map_err(|e| Error::from_io(e, name, "cannot build the security descriptor", ""))
}

/// Windows objects vanish with their last handle: nothing to remove.
pub(crate) fn remove_mutex(_os_name: &str) -> io::Result<()> {
    Ok(())
}

/// See [`remove_mutex`].
pub(crate) fn remove_event(_os_name: &str) -> io::Result<()> {
    Ok(())
}

/// Windows objects are never removed by name: their identity is not needed.
pub(crate) fn mutex_identity(_os_name: &str) -> io::Result<Option<crate::sys::ObjectId>> {
    Ok(None)
}

// --------------------------------------------------------------------- mutex --

pub(crate) struct Mutex {
    h: OwnedHandle,
}

pub(crate) struct MutexGuard<'a> {
    m: &'a Mutex,
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread owns the mutex (the portable guard is !Send).
        unsafe { ReleaseMutex(raw(&self.m.h)) };
    }
}

impl Mutex {
    pub(crate) fn open(
        name: &str,
        os_name: &str,
        create: Create,
        security: &Security,
    ) -> Result<(Mutex, bool)> {
        let w = wide(os_name);
        let h = if create == Create::Open {
            // SAFETY: w is NUL-terminated.
            unsafe {
                OpenMutexW(
                    SYNCHRONIZATION_SYNCHRONIZE | MUTEX_MODIFY_STATE,
                    0,
                    w.as_ptr(),
                )
            }
        } else {
            let sd = descriptor(name, security)?;
            let sa = sd.attributes();
            // SAFETY: w is NUL-terminated; sa points at a live descriptor.
            unsafe { CreateMutexW(&sa, 0, w.as_ptr()) }
        };
        let (h, created) = named_result(h, name, os_name, "mutex", create)?;
        Ok((Mutex { h }, created))
    }

    /// See [`mutex_identity`].
    pub(crate) fn identity(&self) -> Option<crate::sys::ObjectId> {
        None
    }

    pub(crate) fn lock(&self, wait: Wait) -> io::Result<(Locked, MutexGuard<'_>)> {
        // SAFETY: waiting on our own mutex handle.
        match unsafe { WaitForSingleObject(raw(&self.h), wait_ms(wait)) } {
            WAIT_OBJECT_0 => Ok((Locked::Clean, MutexGuard { m: self })),
            WAIT_ABANDONED => Ok((Locked::Abandoned, MutexGuard { m: self })),
            WAIT_TIMEOUT => Err(wait.expired_error()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

// --------------------------------------------------------------------- event --

pub(crate) struct Event {
    h: OwnedHandle,
    manual: bool,
}

impl Event {
    pub(crate) fn open(
        name: &str,
        os_name: &str,
        create: Create,
        security: &Security,
        manual: bool,
        initial: bool,
    ) -> Result<(Event, bool)> {
        let w = wide(os_name);
        let h = if create == Create::Open {
            // SAFETY: w is NUL-terminated.
            unsafe {
                OpenEventW(
                    SYNCHRONIZATION_SYNCHRONIZE | EVENT_MODIFY_STATE | EVENT_QUERY_STATE,
                    0,
                    w.as_ptr(),
                )
            }
        } else {
            let sd = descriptor(name, security)?;
            let sa = sd.attributes();
            // SAFETY: w is NUL-terminated; sa points at a live descriptor.
            unsafe { CreateEventW(&sa, i32::from(manual), i32::from(initial), w.as_ptr()) }
        };
        let (h, created) = named_result(h, name, os_name, "event", create)?;
        let manual = if created {
            manual
        } else {
            query_manual(&h).unwrap_or(manual)
        };
        Ok((Event { h, manual }, created))
    }

    pub(crate) fn is_manual(&self) -> bool {
        self.manual
    }

    /// See [`mutex_identity`].
    pub(crate) fn identity(&self) -> Option<crate::sys::ObjectId> {
        None
    }

    pub(crate) fn set(&self) -> io::Result<()> {
        // SAFETY: our event handle.
        cvt(unsafe { SetEvent(raw(&self.h)) })
    }

    pub(crate) fn reset(&self) -> io::Result<()> {
        // SAFETY: our event handle.
        cvt(unsafe { ResetEvent(raw(&self.h)) })
    }

    pub(crate) fn wait(&self, wait: Wait) -> io::Result<bool> {
        // SAFETY: waiting on our own event handle.
        match unsafe { WaitForSingleObject(raw(&self.h), wait_ms(wait)) } {
            WAIT_OBJECT_0 => Ok(true),
            WAIT_TIMEOUT => Ok(false),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

/// Whether an event is manual-reset (NotificationEvent, type 0).
fn query_manual(h: &OwnedHandle) -> Option<bool> {
    let mut info = EventBasicInformation {
        event_type: -1,
        event_state: 0,
    };
    // SAFETY: info is a valid out-buffer of the size we pass.
    let status = unsafe {
        NtQueryEvent(
            raw(h),
            0,
            (&mut info as *mut EventBasicInformation).cast(),
            std::mem::size_of::<EventBasicInformation>() as u32,
            std::ptr::null_mut(),
        )
    };
    (status >= 0).then_some(info.event_type == 0)
}
