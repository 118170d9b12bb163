//! Named mutexes and events on Windows: the native kernel objects, so plain
//! Win32 programs using `CreateMutex`/`CreateEvent` with the same names join in.

mod event;
mod mutex;

pub(crate) use event::Event;
pub(crate) use mutex::{Mutex, MutexGuard};

use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ALREADY_EXISTS, ERROR_INVALID_HANDLE, HANDLE,
};

use super::security::SecurityDescriptor;
use super::{owned, wait_ms};
use crate::error::{Error, ErrorKind, Result};
use crate::security::Security;
use crate::sys::Create;

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
