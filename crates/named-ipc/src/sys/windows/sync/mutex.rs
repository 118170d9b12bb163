//! Named mutexes: `CreateMutexW`/`OpenMutexW` kernel objects.

use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::{WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{
    CreateMutexW, OpenMutexW, ReleaseMutex, WaitForSingleObject, MUTEX_MODIFY_STATE,
    SYNCHRONIZATION_SYNCHRONIZE,
};

use super::{descriptor, named_result, wait_ms};
use crate::error::Result;
use crate::security::Security;
use crate::sys::windows::{raw, wide};
use crate::sys::{Create, Locked, Wait};

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

    /// See [`mutex_identity`](super::mutex_identity).
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
