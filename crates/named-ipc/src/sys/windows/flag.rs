//! A level-triggered flag a blocked `accept` also watches: raised, it makes
//! [`Listener::accept`](super::pipe::Listener::accept) return
//! [`Accept::Interrupted`](crate::sys::Accept::Interrupted) until lowered.
//! On Windows: a manual-reset event.

use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::{ResetEvent, SetEvent};

use super::{manual_event, raw};

pub(crate) struct Flag {
    event: OwnedHandle,
}

impl Flag {
    pub(crate) fn new() -> io::Result<Flag> {
        Ok(Flag {
            event: manual_event()?,
        })
    }

    /// Raises the flag (no effect if raised).
    pub(crate) fn raise(&self) {
        // SAFETY: an event handle we own.
        unsafe { SetEvent(raw(&self.event)) };
    }

    /// Lowers the flag (no effect if lowered).
    pub(crate) fn lower(&self) {
        // SAFETY: an event handle we own.
        unsafe { ResetEvent(raw(&self.event)) };
    }

    /// The event that is signalled while the flag is raised.
    pub(crate) fn handle(&self) -> HANDLE {
        raw(&self.event)
    }
}
