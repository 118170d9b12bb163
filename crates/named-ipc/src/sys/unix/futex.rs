//! Waiting on a 32-bit word in shared memory, across processes.
//!
//! Linux: `futex(2)` without `FUTEX_PRIVATE_FLAG`. macOS: `__ulock_wait` /
//! `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED` (libSystem exports them;
//! libc++ uses them for `std::atomic::wait`). Other Unix: a sleep of at most
//! 1 ms, re-checking the word (correct, but slower to wake).
//!
//! `wait` returns on a wake-up, a change of the word, a timeout or spuriously;
//! callers re-check their condition in a loop.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout` (`None`: no limit).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    imp::wait(word, expected, timeout)
}

/// Wakes up to `n` waiters on `word` (`u32::MAX`: all).
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    imp::wake(word, n)
}

#[cfg(linux_like)]
mod imp {
    use super::*;
    use rustix::thread::futex::{self, Flags};

    // No `Flags::PRIVATE`: the word lives in memory shared between processes.
    // Errors (`EAGAIN`: the word changed; `ETIMEDOUT`; `EINTR`) all mean
    // "re-check", which every caller does.

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(crate::sys::unix::timespec);
        let _ = futex::wait(word, Flags::empty(), expected, ts.as_ref());
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        let _ = futex::wake(word, Flags::empty(), n.min(i32::MAX as u32));
    }
}

#[cfg(apple)]
mod imp {
    use super::*;

    const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
    const ULF_WAKE_ALL: u32 = 0x100;

    // No rustix (or libc crate) wrapper exists for these: our own FFI.
    extern "C" {
        fn __ulock_wait(
            operation: u32,
            addr: *mut std::ffi::c_void,
            value: u64,
            timeout_us: u32,
        ) -> std::ffi::c_int;
        fn __ulock_wake(
            operation: u32,
            addr: *mut std::ffi::c_void,
            wake_value: u64,
        ) -> std::ffi::c_int;
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        // 0 means no timeout to the kernel, so a zero duration becomes 1 µs.
        let us = timeout.map_or(0, |d| d.as_micros().clamp(1, u128::from(u32::MAX)) as u32);
        // SAFETY: word is a live, aligned u32; the kernel only reads it.
        unsafe {
            __ulock_wait(
                UL_COMPARE_AND_WAIT_SHARED,
                word.as_ptr().cast(),
                u64::from(expected),
                us,
            )
        };
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        let op = if n > 1 {
            UL_COMPARE_AND_WAIT_SHARED | ULF_WAKE_ALL
        } else {
            UL_COMPARE_AND_WAIT_SHARED
        };
        // SAFETY: waking on a live, aligned u32 touches no memory.
        unsafe { __ulock_wake(op, word.as_ptr().cast(), 0) };
    }
}

#[cfg(not(any(linux_like, apple)))]
mod imp {
    use super::*;
    use std::sync::atomic::Ordering;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        if word.load(Ordering::Acquire) == expected {
            let step = Duration::from_millis(1);
            std::thread::sleep(timeout.map_or(step, |d| d.min(step)));
        }
    }

    pub(super) fn wake(_word: &AtomicU32, _n: u32) {}
}
