//! Named mutexes and events on Unix, as small POSIX shm objects (`/NAME`) with
//! the header of [`crate::sync::header`].
//!
//! - Mutex, Linux: a process-shared, robust, error-checking pthread mutex. When
//!   its holder dies, the next locker gets `EOWNERDEAD`, marks it consistent and
//!   is told the data may be inconsistent.
//! - Mutex, other Unix (no robust mutexes on macOS): an `flock` on a file in
//!   the per-user directory, whose first byte records "held"; the kernel drops a
//!   dead holder's lock and the byte tells the next locker it was abandoned.
//! - Event: three words (manual-reset flag, signalled flag, generation);
//!   waiters sleep on the generation word with [`futex`](super::futex). Every
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

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::futex;
use super::shm::Mapping;
use crate::error::{Error, ErrorKind, Result};
use crate::security::Security;
use crate::shm::Protection;
use crate::sync::header::{
    self, Abi, Raw, Verdict, WrongKind, ABI_LEN, ABI_OFFSET, HEADER_LEN, PREFIX_LEN, STATE_INIT,
    STATE_READY, VERSION,
};
use crate::sys::{Backoff, Create, Locked, ObjectId, Wait};

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

// --------------------------------------------------------------------- event --

/// Body: word 0 = manual-reset (0/1), word 1 = signalled (0/1), word 2 =
/// generation (bumped by every `set`, wrapping), word 3 reserved.
const EVENT_BODY: usize = 16;

/// Events are plain u32 words: any process on the machine can share them.
fn event_abi() -> Abi {
    Abi::new("u32-words", EVENT_BODY, 4, false)
}

pub(crate) struct Event {
    map: Mapping,
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
        let mode = super::mode_for(security);
        let spec = Spec {
            name,
            os_name,
            kind: "event",
            magic: header::EVENT_MAGIC,
            abi: event_abi(),
            create,
            mode,
        };
        let (map, created) = open_object(spec, |m| {
            body_word(m, 0).store(u32::from(manual), Ordering::Relaxed);
            body_word(m, 4).store(u32::from(initial), Ordering::Relaxed);
            Ok(())
        })?;
        let manual = match body_word(&map, 0).load(Ordering::Acquire) {
            0 => false,
            1 => true,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    name,
                    format!("cannot open event {name:?}: its mode word is {other}, not 0 or 1; the object is corrupt"),
                ))
            }
        };
        Ok((Event { map, manual }, created))
    }

    pub(crate) fn is_manual(&self) -> bool {
        self.manual
    }

    /// The identity of the object (see `crate::registry`).
    pub(crate) fn identity(&self) -> Option<ObjectId> {
        self.map.identity()
    }

    fn signalled(&self) -> &AtomicU32 {
        body_word(&self.map, 4)
    }

    fn generation(&self) -> &AtomicU32 {
        body_word(&self.map, 8)
    }

    pub(crate) fn set(&self) -> io::Result<()> {
        self.signalled().store(1, Ordering::SeqCst);
        self.generation().fetch_add(1, Ordering::SeqCst);
        futex::wake(self.generation(), if self.manual { u32::MAX } else { 1 });
        Ok(())
    }

    pub(crate) fn reset(&self) -> io::Result<()> {
        self.signalled().store(0, Ordering::SeqCst);
        Ok(())
    }

    /// `Ok(true)` when signalled (an auto-reset event is reset by this wait),
    /// `Ok(false)` when the wait ran out.
    ///
    /// Manual-reset: true once the event is set, or once any `set` happened
    /// since the wait began (even if a `reset` followed). Auto-reset: true for
    /// the waiter that turns the signalled word from 1 to 0. Either way the
    /// waiter sleeps on the generation word, read *before* the check, so a
    /// `set` between the check and the sleep makes the sleep return at once.
    pub(crate) fn wait(&self, wait: Wait) -> io::Result<bool> {
        let (word, generation) = (self.signalled(), self.generation());
        let start = generation.load(Ordering::SeqCst);
        loop {
            let seen = generation.load(Ordering::SeqCst);
            let got = if self.manual {
                seen != start || word.load(Ordering::SeqCst) != 0
            } else {
                word.compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            };
            if got {
                return Ok(true);
            }
            // Time left on the monotonic clock; the futex takes it relative.
            let left = wait.remaining();
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            futex::wait(generation, seen, left);
        }
    }
}

// --------------------------------------------------------------------- mutex --

#[cfg(linux_like)]
pub(crate) use robust::{mutex_identity, remove_mutex, Mutex, MutexGuard};

#[cfg(linux_like)]
mod robust {
    use super::*;

    const BODY: usize = std::mem::size_of::<libc::pthread_mutex_t>();

    /// The C library whose `pthread_mutex_t` the body holds.
    const LIBC: &str = if cfg!(target_os = "android") {
        "bionic"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else if cfg!(target_env = "uclibc") {
        "uclibc"
    } else if cfg!(target_env = "gnu") {
        "gnu"
    } else {
        std::env::consts::OS
    };

    /// This process's mutex ABI: CPU, C library, pointer width, and the size
    /// and alignment of `pthread_mutex_t`.
    fn mutex_abi() -> Abi {
        Abi::new(
            &format!("{}-{LIBC}", std::env::consts::ARCH),
            BODY,
            std::mem::align_of::<libc::pthread_mutex_t>(),
            true,
        )
    }

    /// Removes a mutex's name.
    pub(crate) fn remove_mutex(os_name: &str) -> io::Result<()> {
        super::super::shm::unlink(os_name)
    }

    /// The identity of the mutex now at `os_name`.
    pub(crate) fn mutex_identity(os_name: &str) -> io::Result<Option<ObjectId>> {
        super::super::shm::identity(os_name)
    }

    pub(crate) struct Mutex {
        map: Mapping,
    }

    /// Unlocks on drop. Must be dropped by the thread that locked (the portable
    /// guard is `!Send`).
    pub(crate) struct MutexGuard<'a> {
        m: &'a Mutex,
    }

    impl Drop for MutexGuard<'_> {
        fn drop(&mut self) {
            // SAFETY: the mutex is initialised and held by this thread.
            unsafe { libc::pthread_mutex_unlock(self.m.raw()) };
        }
    }

    /// `pthread_mutex_clocklock` (glibc 2.30+, bionic), if this C library has
    /// it. Looked up at run time, so the binary still runs on older ones.
    type ClockLock = unsafe extern "C" fn(
        *mut libc::pthread_mutex_t,
        libc::clockid_t,
        *const libc::timespec,
    ) -> libc::c_int;

    pub(super) fn clocklock() -> Option<ClockLock> {
        static FN: std::sync::OnceLock<Option<ClockLock>> = std::sync::OnceLock::new();
        *FN.get_or_init(|| {
            // SAFETY: dlsym only looks a symbol up; the name is NUL-terminated.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_mutex_clocklock".as_ptr()) };
            // SAFETY: a non-null pthread_mutex_clocklock has exactly this
            // signature (POSIX 2024, glibc 2.30).
            (!p.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut libc::c_void, ClockLock>(p) })
        })
    }

    /// The time on `clock` `d` from now, as an absolute timespec.
    fn deadline_on(clock: libc::clockid_t, d: Duration) -> libc::timespec {
        // SAFETY: all-zero is a valid timespec; clock_gettime fills it.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: now is a valid out-pointer; both clocks always exist.
        unsafe { libc::clock_gettime(clock, &mut now) };
        let total = Duration::new(
            now.tv_sec.max(0) as u64,
            now.tv_nsec.clamp(0, 999_999_999) as u32,
        )
        .saturating_add(d);
        libc::timespec {
            tv_sec: libc::time_t::try_from(total.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: total.subsec_nanos() as libc::c_long,
        }
    }

    /// Longest slice of a `CLOCK_REALTIME` timed lock in the fallback.
    const SLICE: Duration = Duration::from_millis(50);

    /// Locks `m` before `wait`'s (monotonic) deadline; returns the pthread
    /// result (`ETIMEDOUT` when it ran out).
    ///
    /// # Safety
    /// `m` points at an initialised mutex that stays alive during the call.
    unsafe fn timed_lock(m: *mut libc::pthread_mutex_t, wait: Wait) -> libc::c_int {
        if let Some(clocklock) = clocklock() {
            let abs = deadline_on(libc::CLOCK_MONOTONIC, wait.remaining().unwrap_or_default());
            // SAFETY: m is an initialised mutex (caller); abs is a live timespec.
            return unsafe { clocklock(m, libc::CLOCK_MONOTONIC, &abs) };
        }
        // SAFETY: as promised by our caller.
        unsafe { timed_lock_sliced(m, wait) }
    }

    /// The fallback: `pthread_mutex_timedlock` (which measures against
    /// `CLOCK_REALTIME`) in slices of at most [`SLICE`], until the monotonic
    /// deadline of `wait` has passed.
    ///
    /// # Safety
    /// As for [`timed_lock`].
    pub(super) unsafe fn timed_lock_sliced(
        m: *mut libc::pthread_mutex_t,
        wait: Wait,
    ) -> libc::c_int {
        loop {
            let left = wait.remaining().unwrap_or_default();
            let abs = deadline_on(libc::CLOCK_REALTIME, left.min(SLICE));
            // SAFETY: m is an initialised mutex (caller); abs is a live timespec.
            let r = unsafe { libc::pthread_mutex_timedlock(m, &abs) };
            if r != libc::ETIMEDOUT || wait.remaining() == Some(Duration::ZERO) {
                return r;
            }
        }
    }

    fn check(r: libc::c_int) -> io::Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    }

    impl Mutex {
        fn raw(&self) -> *mut libc::pthread_mutex_t {
            // SAFETY: the body (validated size >= BODY) starts at HEADER_LEN,
            // 16-aligned within a page-aligned mapping.
            unsafe { self.map.ptr().add(HEADER_LEN).cast() }
        }

        pub(crate) fn open(
            name: &str,
            os_name: &str,
            create: Create,
            security: &Security,
        ) -> Result<(Mutex, bool)> {
            let mode = super::super::mode_for(security);
            let spec = Spec {
                name,
                os_name,
                kind: "mutex",
                magic: header::MUTEX_MAGIC,
                abi: mutex_abi(),
                create,
                mode,
            };
            let (map, created) = open_object(spec, |m| {
                // SAFETY: all-zero is a valid pthread_mutexattr_t to hand to init.
                let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
                // SAFETY: attr is ours; the mutex memory is our freshly created
                // body, not yet visible as ready to anyone.
                unsafe {
                    check(libc::pthread_mutexattr_init(&mut attr))?;
                    let r = (|| {
                        check(libc::pthread_mutexattr_setpshared(
                            &mut attr,
                            libc::PTHREAD_PROCESS_SHARED,
                        ))?;
                        check(libc::pthread_mutexattr_setrobust(
                            &mut attr,
                            libc::PTHREAD_MUTEX_ROBUST,
                        ))?;
                        check(libc::pthread_mutexattr_settype(
                            &mut attr,
                            libc::PTHREAD_MUTEX_ERRORCHECK,
                        ))?;
                        check(libc::pthread_mutex_init(
                            m.ptr().add(HEADER_LEN).cast(),
                            &attr,
                        ))
                    })();
                    libc::pthread_mutexattr_destroy(&mut attr);
                    r
                }
            })?;
            Ok((Mutex { map }, created))
        }

        /// The identity of the object (see `crate::registry`).
        pub(crate) fn identity(&self) -> Option<ObjectId> {
            self.map.identity()
        }

        pub(crate) fn lock(&self, wait: Wait) -> io::Result<(Locked, MutexGuard<'_>)> {
            // SAFETY: the mutex is initialised (the header said ready) and lives
            // as long as `self`.
            let r = unsafe {
                match wait {
                    Wait::Block => libc::pthread_mutex_lock(self.raw()),
                    Wait::Never => libc::pthread_mutex_trylock(self.raw()),
                    Wait::Until(_) | Wait::After(_) => {
                        let mut wait = wait;
                        timed_lock(self.raw(), wait.anchor())
                    }
                }
            };
            let guard = MutexGuard { m: self };
            match r {
                0 => Ok((Locked::Clean, guard)),
                libc::EOWNERDEAD => {
                    // We hold it now; make it usable again and report.
                    // SAFETY: we hold the robust mutex after EOWNERDEAD.
                    unsafe { libc::pthread_mutex_consistent(self.raw()) };
                    Ok((Locked::Abandoned, guard))
                }
                _ => {
                    std::mem::forget(guard);
                    Err(match r {
                        libc::EBUSY | libc::ETIMEDOUT => wait.expired_error(),
                        libc::EDEADLK => io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "this thread already holds the mutex (named mutexes are not reentrant)",
                        ),
                        libc::ENOTRECOVERABLE => io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the mutex is unusable: an earlier holder died and it was never repaired",
                        ),
                        other => io::Error::from_raw_os_error(other),
                    })
                }
            }
        }
    }
}

#[cfg(not(linux_like))]
pub(crate) use flocked::{mutex_identity, remove_mutex, Mutex, MutexGuard};

#[cfg(not(linux_like))]
mod flocked {
    use super::*;
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    fn path_of(os_name: &str) -> std::path::PathBuf {
        super::super::runtime_dir()
            .join("mutex")
            .join(os_name.trim_start_matches('/'))
    }

    /// Removes a mutex's name.
    pub(crate) fn remove_mutex(os_name: &str) -> io::Result<()> {
        std::fs::remove_file(path_of(os_name))
    }

    /// The identity of the mutex file now at `os_name`.
    pub(crate) fn mutex_identity(os_name: &str) -> io::Result<Option<ObjectId>> {
        let f = File::open(path_of(os_name))?;
        super::super::fd_id(&f)
    }

    pub(crate) struct Mutex {
        file: File,
        /// flock is per open file: threads of this process queue here first.
        local: std::sync::Mutex<()>,
    }

    pub(crate) struct MutexGuard<'a> {
        m: &'a Mutex,
        _local: std::sync::MutexGuard<'a, ()>,
    }

    impl Drop for MutexGuard<'_> {
        fn drop(&mut self) {
            let _ = self.m.file.write_at(&[0], 0);
            let _ = self.m.file.unlock();
        }
    }

    impl Mutex {
        pub(crate) fn open(
            name: &str,
            os_name: &str,
            create: Create,
            security: &Security,
        ) -> Result<(Mutex, bool)> {
            let mode = super::super::mode_for(security);
            let dir = super::super::runtime_dir().join("mutex");
            super::super::ensure_private_dir(name, &dir)?;
            let path = path_of(os_name);
            let open = |create_new: bool| {
                let mut o = OpenOptions::new();
                o.read(true).write(true).mode(mode).create_new(create_new);
                o.open(&path)
            };
            // Created means "made by this open" (O_EXCL), never a guess.
            let opened = match create {
                Create::Exclusive => open(true).map(|f| (f, true)),
                Create::Open => open(false).map(|f| (f, false)),
                Create::Either => match open(true) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        open(false).map(|f| (f, false))
                    }
                    other => other.map(|f| (f, true)),
                },
            };
            let (file, created) = opened.map_err(|e| {
                Error::from_io(
                    e,
                    name,
                    &format!("cannot open mutex {name:?} ({})", path.display()),
                    "",
                )
            })?;
            Ok((
                Mutex {
                    file,
                    local: std::sync::Mutex::new(()),
                },
                created,
            ))
        }

        /// The identity of the mutex file (see `crate::registry`).
        pub(crate) fn identity(&self) -> Option<ObjectId> {
            super::super::fd_id(&self.file).ok().flatten()
        }

        pub(crate) fn lock(&self, wait: Wait) -> io::Result<(Locked, MutexGuard<'_>)> {
            let mut backoff = Backoff::new();
            let local = loop {
                match wait {
                    Wait::Block => break self.local.lock().unwrap_or_else(|p| p.into_inner()),
                    _ => match self.local.try_lock() {
                        Ok(g) => break g,
                        Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                        Err(std::sync::TryLockError::WouldBlock) => {
                            if !backoff.sleep(wait) {
                                return Err(wait.expired_error());
                            }
                        }
                    },
                }
            };
            loop {
                if wait == Wait::Block {
                    self.file.lock()?;
                    break;
                }
                match self.file.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) => {
                        if !backoff.sleep(wait) {
                            return Err(wait.expired_error());
                        }
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
            }
            let mut held = [0u8];
            let _ = self.file.read_at(&mut held, 0);
            self.file.write_at(&[1], 0)?;
            let how = if held[0] == 1 {
                Locked::Abandoned
            } else {
                Locked::Clean
            };
            Ok((
                how,
                MutexGuard {
                    m: self,
                    _local: local,
                },
            ))
        }
    }
}

#[cfg(all(test, linux_like))]
mod tests {
    use super::robust::{clocklock, timed_lock_sliced};
    use crate::sys::Wait;
    use std::time::{Duration, Instant};

    /// glibc 2.30 and later have `pthread_mutex_clocklock`, so timed locks
    /// there measure on `CLOCK_MONOTONIC`.
    #[cfg(target_env = "gnu")]
    #[test]
    fn glibc_2_30_and_later_lock_on_the_monotonic_clock() {
        // SAFETY: returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let v = v.to_str().unwrap();
        let (major, minor) = v.split_once('.').unwrap();
        let minor: u32 = minor.split('.').next().unwrap().parse().unwrap();
        let new_enough = major.parse::<u32>().unwrap() > 2 || minor >= 30;
        assert_eq!(clocklock().is_some(), new_enough, "glibc {v}");
    }

    /// The sliced fallback keeps waiting across slices until the monotonic
    /// deadline, then times out; and takes a free mutex at once.
    #[test]
    fn the_sliced_fallback_waits_out_its_whole_timeout() {
        struct Shared(std::cell::UnsafeCell<libc::pthread_mutex_t>);
        // SAFETY: a pthread mutex is made to be used from several threads.
        unsafe impl Sync for Shared {}
        let m = std::sync::Arc::new(Shared(std::cell::UnsafeCell::new(
            libc::PTHREAD_MUTEX_INITIALIZER,
        )));
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            std::thread::spawn(move || {
                // SAFETY: a statically initialised mutex, alive via the Arc.
                unsafe { libc::pthread_mutex_lock(m.0.get()) };
                locked_tx.send(()).unwrap();
                let _ = done_rx.recv();
                // SAFETY: this thread locked it.
                unsafe { libc::pthread_mutex_unlock(m.0.get()) };
            })
        };
        locked_rx.recv().unwrap();
        let timeout = Duration::from_millis(130);
        let start = Instant::now();
        // SAFETY: initialised and alive.
        let r = unsafe { timed_lock_sliced(m.0.get(), Wait::timeout(Some(timeout))) };
        assert_eq!(r, libc::ETIMEDOUT);
        assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        // SAFETY: initialised, alive, and now free.
        let r = unsafe { timed_lock_sliced(m.0.get(), Wait::timeout(Some(timeout))) };
        assert_eq!(r, 0);
        // SAFETY: we hold it.
        unsafe { libc::pthread_mutex_unlock(m.0.get()) };
    }
}
