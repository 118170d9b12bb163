//! Named mutexes and events on Unix, as small POSIX shm objects (`/NAME`) with
//! the header of [`crate::sync::header`].
//!
//! - Mutex, Linux: a process-shared, robust, error-checking pthread mutex. When
//!   its holder dies, the next locker gets `EOWNERDEAD`, marks it consistent and
//!   is told the data may be inconsistent.
//! - Mutex, other Unix (no robust mutexes on macOS): an `flock` on a file in
//!   the per-user directory, whose first byte records "held"; the kernel drops a
//!   dead holder's lock and the byte tells the next locker it was abandoned.
//! - Event: three words (manual-reset flag, state, generation); waiters sleep
//!   on the generation word with [`futex`](super::futex). An auto-reset
//!   event's state counts releases owed and waiters asleep, so that each `set`
//!   releases one sleeping waiter, as on Windows. Every
//!   `set` bumps the generation, so a manual-reset event that is set and
//!   reset at once ("pulsed") still releases every thread that was waiting
//!   when it was set: each waiter notes the generation when it starts and
//!   returns once it changes, as on Windows.
//!
//! Timed waits measure time on the monotonic clock, so wall-clock changes do
//! not lengthen or shorten them: futex/`__ulock` waits take a relative timeout
//! and loop on the time left by [`Instant`](std::time::Instant); timed mutex
//! locks use `pthread_mutex_clocklock(CLOCK_MONOTONIC)` (glibc 2.30+, bionic),
//! looked up at run time, and elsewhere `pthread_mutex_timedlock` against
//! `CLOCK_REALTIME` in slices of at most 50 ms bounded by a monotonic
//! deadline: a forward jump of the wall clock cannot shorten the timeout,
//! and a backward jump can lengthen it only by that jump, for the slice it
//! falls in. The `flock` mutex polls against a monotonic deadline.

mod event;
mod mutex;

pub(crate) use event::Event;
pub(crate) use mutex::{mutex_identity, remove_mutex, Mutex, MutexGuard};

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::shm::Mapping;
use crate::error::{Error, ErrorKind, Result};
use crate::shm::Protection;
use crate::sync::header::{
    self, Abi, Raw, Verdict, WrongKind, ABI_LEN, ABI_OFFSET, HEADER_LEN, PREFIX_LEN, STATE_INIT,
    STATE_READY, VERSION,
};
use crate::sys::{Backoff, Create, Wait};

fn state_word(map: &Mapping) -> &AtomicU32 {
    // SAFETY: callers check that the mapping holds at least PREFIX_LEN bytes
    // (the creator made it HEADER_LEN + body); it is page-aligned, so offset
    // 12 is a valid, aligned u32 that lives as long as the mapping.
    unsafe { &*(map.ptr().add(12) as *const AtomicU32) }
}

/// A u32 word at `offset` of the body (after the header).
fn body_word(map: &Mapping, offset: usize) -> &AtomicU32 {
    debug_assert!(HEADER_LEN + offset + 4 <= map.len() && offset.is_multiple_of(4));
    // SAFETY: callers pass offsets inside the body size validated on open, and
    // 4-aligned offsets after a 16-byte header keep the word aligned.
    unsafe { &*(map.ptr().add(HEADER_LEN + offset) as *const AtomicU32) }
}

/// What `open_object` opens.
struct Spec<'a> {
    name: &'a str,
    os_name: &'a str,
    kind: &'a str,
    magic: [u8; 8],
    abi: Abi,
    create: Create,
    mode: u32,
}

/// Creates or opens the shm object of a sync primitive and waits until it is
/// initialised. `init` runs only in the creator, before the object is marked
/// ready. Returns the mapping and whether we created it.
fn open_object(
    spec: Spec<'_>,
    init: impl FnOnce(&Mapping) -> io::Result<()>,
) -> Result<(Mapping, bool)> {
    let Spec {
        name,
        os_name,
        kind,
        magic,
        abi,
        create,
        mode,
    } = spec;
    let body = abi.body_size as usize;
    let what = |verb: &str| format!("cannot {verb} {kind} {name:?} ({os_name})");
    if create != Create::Open {
        match Mapping::create(os_name, (HEADER_LEN + body) as u64, mode) {
            Ok(map) => {
                state_word(&map).store(STATE_INIT, Ordering::Relaxed);
                let version = VERSION.to_ne_bytes();
                let abi = abi.to_bytes();
                // SAFETY: we created the object exclusively, HEADER_LEN + body
                // bytes long, and nobody reads the magic, version or ABI before
                // the state becomes READY (Release below).
                unsafe {
                    std::ptr::copy_nonoverlapping(magic.as_ptr(), map.ptr(), 8);
                    std::ptr::copy_nonoverlapping(version.as_ptr(), map.ptr().add(8), 4);
                    std::ptr::copy_nonoverlapping(abi.as_ptr(), map.ptr().add(ABI_OFFSET), ABI_LEN);
                }
                if let Err(e) = init(&map) {
                    let _ = super::shm::unlink(os_name);
                    return Err(Error::from_io(e, name, &what("create"), ""));
                }
                state_word(&map).store(STATE_READY, Ordering::Release);
                return Ok((map, true));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && create == Create::Either => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    name,
                    format!(
                        "{}: it already exists; open it instead, or choose another name",
                        what("create")
                    ),
                )
                .with_source(e))
            }
            Err(e) => return Err(Error::from_io(e, name, &what("create"), "")),
        }
    }
    let map = Mapping::open(os_name, Protection::ReadWrite).map_err(|e| {
        Error::from_io(
            e,
            name,
            &what("open"),
            "does it exist? its creator may not have started yet",
        )
    })?;
    let wait = Wait::timeout(Some(Duration::from_secs(2)));
    let mut backoff = Backoff::new();
    loop {
        let state = if map.len() >= PREFIX_LEN {
            state_word(&map).load(Ordering::Acquire)
        } else {
            0
        };
        let mut m = [0u8; 8];
        let mut v = [0u8; 4];
        let mut a = [0u8; ABI_LEN];
        if state == STATE_READY {
            // SAFETY: the mapping holds at least PREFIX_LEN bytes when the state
            // word could be read; reads are ordered after the Acquire load.
            unsafe {
                std::ptr::copy_nonoverlapping(map.ptr(), m.as_mut_ptr(), 8);
                std::ptr::copy_nonoverlapping(map.ptr().add(8), v.as_mut_ptr(), 4);
            }
            if map.len() >= HEADER_LEN {
                // SAFETY: the mapping holds the whole header, as just checked.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        map.ptr().add(ABI_OFFSET),
                        a.as_mut_ptr(),
                        ABI_LEN,
                    )
                };
            }
        }
        let raw = Raw {
            len: map.len(),
            state,
            magic: m,
            version: u32::from_ne_bytes(v),
            abi: (map.len() >= HEADER_LEN).then(|| Abi::from_bytes(a)),
        };
        match header::judge(&raw, magic, &abi) {
            Verdict::Ready => return Ok((map, false)),
            Verdict::NotYet => {
                if !backoff.sleep(wait) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        name,
                        format!(
                            "{}: it was never initialised (its creator may have crashed while \
                             creating it); remove it with `nipc shm rm {name}` and try again",
                            what("open")
                        ),
                    ));
                }
            }
            Verdict::Wrong(k, why) => {
                let kind = match k {
                    WrongKind::Version => ErrorKind::VersionMismatch,
                    WrongKind::NotOurs => ErrorKind::InvalidInput,
                };
                return Err(Error::new(kind, name, format!("{}: {why}", what("open"))));
            }
        }
    }
}

/// Removes an event's name.
pub(crate) fn remove_event(os_name: &str) -> io::Result<()> {
    super::shm::unlink(os_name)
}
