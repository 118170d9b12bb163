//! Named events: `CreateEventW`/`OpenEventW` kernel objects.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{
    CreateEventW, OpenEventW, ResetEvent, SetEvent, WaitForSingleObject, EVENT_MODIFY_STATE,
    SYNCHRONIZATION_SYNCHRONIZE,
};

use super::{descriptor, named_result, wait_ms};
use crate::error::Result;
use crate::security::Security;
use crate::sys::windows::{cvt, raw, wide};
use crate::sys::{Create, Wait};

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

    /// See [`mutex_identity`](super::mutex_identity).
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
