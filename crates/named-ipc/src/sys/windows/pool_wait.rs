//! Waking a task when a kernel object is signalled, without parking a
//! runtime thread: a thread-pool wait (`RegisterWaitForSingleObject`) whose
//! callback wakes the task's waker. The async pipe driver waits this way on
//! each operation's completion event (once per operation); the async
//! channel on its wake-up events (for the connection's life) and on the
//! peer's process handle (once).
//!
//! No wake-up is lost between a task's look at its condition and its
//! `Pending`: the callback raises `fired` before it takes the waker, and a
//! task stores its waker before it looks at `fired` (or at whatever the
//! object's signal means, such as an operation's result).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Threading::{
    RegisterWaitForSingleObject, UnregisterWaitEx, INFINITE, WT_EXECUTEONLYONCE,
};

use crate::lock;

/// What the callback sees: at a stable heap address for as long as the wait
/// is registered.
struct Core {
    waker: Mutex<Option<Waker>>,
    fired: AtomicBool,
}

/// Called on a thread-pool thread when the object is signalled.
///
/// # Safety
/// `ctx` is the `Core` of a [`PoolWait`] whose wait is registered; the
/// `PoolWait` unregisters (waiting for this callback to return) before it
/// frees it.
unsafe extern "system" fn on_signal(ctx: *mut std::ffi::c_void, _timed_out: bool) {
    // SAFETY: per this function's contract the Core is alive.
    let core = unsafe { &*(ctx as *const Core) };
    core.fired.store(true, Ordering::SeqCst);
    let w = lock(&core.waker).take();
    if let Some(w) = w {
        w.wake();
    }
}

/// How long a registration lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Times {
    /// Until the object is signalled once (`WT_EXECUTEONLYONCE`): for an
    /// object that stays signalled (an operation's manual-reset event, a
    /// process).
    Once,
    /// Every time it is signalled, until unregistered: for an auto-reset
    /// event, which each satisfied wait resets.
    Every,
}

/// One thread-pool wait on one handle, and the task it wakes.
pub(crate) struct PoolWait {
    core: Box<Core>,
    wait: Option<HANDLE>,
}

// SAFETY: the wait handle is a plain value owned by this PoolWait; the
// callback reaches the Core only through the stable Box, which is freed
// only after the wait is unregistered.
unsafe impl Send for PoolWait {}
// SAFETY: shared access touches only the Core's Mutex and atomic.
unsafe impl Sync for PoolWait {}

impl PoolWait {
    pub(crate) fn new() -> PoolWait {
        PoolWait {
            core: Box::new(Core {
                waker: Mutex::new(None),
                fired: AtomicBool::new(false),
            }),
            wait: None,
        }
    }

    /// Whether a wait is registered.
    pub(crate) fn is_registered(&self) -> bool {
        self.wait.is_some()
    }

    /// Registers the wait on `h`. A registration still in place is removed
    /// first.
    ///
    /// # Safety
    /// `h` must stay a valid handle until [`unregister`](Self::unregister)
    /// returns (or this value is dropped).
    pub(crate) unsafe fn register(&mut self, h: HANDLE, times: Times) -> io::Result<()> {
        self.unregister();
        self.core.fired.store(false, Ordering::SeqCst);
        // Callbacks run on the pool's workers, never `WT_EXECUTEINWAITTHREAD`:
        // under Wine 8 a wait-thread callback still pending when the wait is
        // unregistered makes `UnregisterWaitEx` unlink a list entry that was
        // never linked (a page fault in `tp_object_cancel`, or a corrupted
        // heap; about one run in a hundred of async_channel_drop.rs under
        // load). A worker costs a thread hop per wake-up, only when a task
        // sleeps.
        let flags = match times {
            Times::Once => WT_EXECUTEONLYONCE,
            Times::Every => 0,
        };
        let mut wait: HANDLE = std::ptr::null_mut();
        let ctx: *const Core = &*self.core;
        // SAFETY: `h` is valid until unregistered (caller's contract); ctx
        // stays valid until the wait is unregistered (unregister, called
        // before the Box is freed, waits for the callback).
        let ok = unsafe {
            RegisterWaitForSingleObject(&mut wait, h, Some(on_signal), ctx.cast(), INFINITE, flags)
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        self.wait = Some(wait);
        Ok(())
    }

    /// The task to wake at the next signal (replacing the previous one).
    /// Store it before looking at the condition the signal reports.
    pub(crate) fn set_waker(&self, w: &Waker) {
        let mut slot = lock(&self.core.waker);
        match slot.as_ref() {
            Some(old) if old.will_wake(w) => {}
            _ => *slot = Some(w.clone()),
        }
    }

    /// Whether the object was signalled since the last call (or the
    /// registration); clears the mark.
    pub(crate) fn take_fired(&self) -> bool {
        self.core.fired.swap(false, Ordering::SeqCst)
    }

    /// Whether the object was signalled since the registration (the mark
    /// stays).
    pub(crate) fn fired(&self) -> bool {
        self.core.fired.load(Ordering::SeqCst)
    }

    /// Removes the registered wait, waiting for a callback that is running.
    pub(crate) fn unregister(&mut self) {
        if let Some(w) = self.wait.take() {
            // SAFETY: our registration; INVALID_HANDLE_VALUE waits for a
            // running callback to return, after which none can start.
            unsafe { UnregisterWaitEx(w, INVALID_HANDLE_VALUE) };
        }
    }
}

impl Drop for PoolWait {
    fn drop(&mut self) {
        self.unregister();
    }
}
