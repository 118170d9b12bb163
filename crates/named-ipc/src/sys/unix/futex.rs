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

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: word is a live, aligned u32 (in shared memory); FUTEX_WAIT
        // only reads it; tsp is null or points at a live timespec.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                tsp,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        let n = n.min(i32::MAX as u32) as libc::c_int;
        // SAFETY: FUTEX_WAKE on a live, aligned u32 touches no memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                n,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }
}

#[cfg(apple)]
mod imp {
    use super::*;

    const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
    const ULF_WAKE_ALL: u32 = 0x100;

    extern "C" {
        fn __ulock_wait(
            operation: u32,
            addr: *mut libc::c_void,
            value: u64,
            timeout_us: u32,
        ) -> libc::c_int;
        fn __ulock_wake(operation: u32, addr: *mut libc::c_void, wake_value: u64) -> libc::c_int;
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
